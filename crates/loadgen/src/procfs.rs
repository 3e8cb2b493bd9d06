//! Server resource usage from `/proc`: CPU seconds and resident memory of a
//! process *tree* (the given PID and all its descendants), so that a
//! multi-process server such as Dovecot (master, imap-login, imap, auth, ...)
//! is measured as a whole, and a single-process server such as Pillarbox is
//! simply a tree of one.
//!
//! CPU of children that already exited is included through the root's
//! `cutime`/`cstime` (the master reaps its children), so a delta between two
//! samples counts short-lived processes such as Dovecot's per-connection
//! `imap` processes.

use std::collections::{HashMap, HashSet};
use std::fs;

/// Fields 14..17 (utime, stime, cutime, cstime) and 4 (ppid) of
/// `/proc/PID/stat`. The command name (field 2) may contain spaces and
/// parentheses, so parsing starts after the last `)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatTimes {
    pub ppid: u32,
    pub utime: u64,
    pub stime: u64,
    pub cutime: u64,
    pub cstime: u64,
}

pub fn parse_stat(s: &str) -> Option<StatTimes> {
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state), so field n is f[n - 3].
    Some(StatTimes {
        ppid: f.get(1)?.parse().ok()?,
        utime: f.get(11)?.parse().ok()?,
        stime: f.get(12)?.parse().ok()?,
        cutime: f.get(13)?.parse().ok()?,
        cstime: f.get(14)?.parse().ok()?,
    })
}

/// A `kB` value line of `/proc/PID/status` or `smaps_rollup`, e.g.
/// `VmRSS:   12345 kB` for key `VmRSS`.
pub fn parse_kb(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(key)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

fn stat_of(pid: u32) -> Option<StatTimes> {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| parse_stat(&s))
}

/// The stat of every process there is.
fn all_stats() -> HashMap<u32, StatTimes> {
    let mut out = HashMap::new();
    if let Ok(rd) = fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(st) = stat_of(pid) {
                out.insert(pid, st);
            }
        }
    }
    out
}

/// `root` and every live descendant of it, among `stats`.
fn tree_in(root: u32, stats: &HashMap<u32, StatTimes>) -> Vec<u32> {
    let parent: HashMap<u32, u32> = stats.iter().map(|(&pid, st)| (pid, st.ppid)).collect();
    descendants(root, &parent)
}

/// `root` and every live descendant of it.
pub fn tree(root: u32) -> Vec<u32> {
    tree_in(root, &all_stats())
}

/// Pure part of [`tree`]: the closure of `root` under the child relation.
pub fn descendants(root: u32, parent: &HashMap<u32, u32>) -> Vec<u32> {
    let mut set: HashSet<u32> = HashSet::from([root]);
    let mut out = vec![root];
    loop {
        let before = out.len();
        for (&pid, &pp) in parent {
            if set.contains(&pp) && set.insert(pid) {
                out.push(pid);
            }
        }
        if out.len() == before {
            break;
        }
    }
    out
}

/// CPU seconds (user + system) of the tree, including reaped children of the
/// root.
///
/// A child reaped while the tree is read would be counted in neither place
/// if its own stat was read after it was gone and the root's `cutime` before
/// it took the child's time in (Dovecot's `imap` process of a client that
/// just logged out: all of a one-client run's CPU), or in both if it was
/// read alive and the root after it was reaped. So the root is read before
/// and after the others, and the whole reading is done again if its
/// `cutime` moved meanwhile.
pub fn cpu_seconds(root: u32) -> f64 {
    let reaped = |st: &StatTimes| st.cutime + st.cstime;
    let mut ticks = 0u64;
    for _ in 0..20 {
        let Some(first) = stat_of(root) else {
            return 0.0;
        };
        let stats = all_stats();
        ticks = first.utime + first.stime + reaped(&first);
        for pid in tree_in(root, &stats).into_iter().filter(|&p| p != root) {
            ticks += stats[&pid].utime + stats[&pid].stime;
        }
        if stat_of(root).is_some_and(|last| reaped(&last) == reaped(&first)) {
            break;
        }
    }
    ticks as f64 / clk_tck()
}

/// The machine's CPU time from the `cpu` line of `/proc/stat`, in ticks:
/// all of it, and the part stolen by the hypervisor (time the virtual CPUs
/// were ready to run but another guest ran). Stolen time slows whatever
/// runs meanwhile, so a run with much of it measures the host, not the
/// server: the RESULT lines give it (`steal_pct`) so that runs can be
/// compared knowing that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MachineTimes {
    pub total: u64,
    pub steal: u64,
}

/// Parses the aggregate `cpu` line of `/proc/stat` (user nice system idle
/// iowait irq softirq steal guest guest_nice; guest time is already counted
/// in user and nice, so it is left out of the total).
pub fn parse_machine(stat: &str) -> Option<MachineTimes> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    if v.len() < 8 {
        return None;
    }
    Some(MachineTimes {
        total: v[..8].iter().sum(),
        steal: v[7],
    })
}

pub fn machine_times() -> Option<MachineTimes> {
    parse_machine(&fs::read_to_string("/proc/stat").ok()?)
}

/// Percent of the machine's CPU time stolen between two readings.
pub fn steal_pct(before: MachineTimes, after: MachineTimes) -> Option<f64> {
    let total = after.total.checked_sub(before.total)?;
    let steal = after.steal.checked_sub(before.steal)?;
    (total > 0).then(|| steal as f64 * 100.0 / total as f64)
}

/// Memory of the tree in KiB: summed VmRSS (counts shared pages once per
/// process) and summed Pss (shares them out; needs `smaps_rollup`, 0 if
/// unreadable), and the number of processes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mem {
    pub rss_kib: u64,
    pub pss_kib: u64,
    pub procs: u64,
}

pub fn memory(root: u32) -> Mem {
    let mut m = Mem::default();
    for pid in tree(root) {
        if let Some(rss) = fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| parse_kb(&s, "VmRSS"))
        {
            m.rss_kib += rss;
            m.procs += 1;
        }
        if let Some(pss) = fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
            .ok()
            .and_then(|s| parse_kb(&s, "Pss"))
        {
            m.pss_kib += pss;
        }
    }
    m
}

/// The PID in a pidfile (first token).
pub fn read_pidfile(path: &str) -> anyhow::Result<u32> {
    let s = fs::read_to_string(path)?;
    Ok(s.split_whitespace()
        .next()
        .ok_or_else(|| anyhow::anyhow!("empty pidfile {path}"))?
        .parse()?)
}

/// Raise RLIMIT_NOFILE's soft limit to the hard limit (or `want`, whichever
/// is lower); returns the resulting soft limit.
pub fn raise_nofile(want: u64) -> u64 {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid pointer to a properly sized struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 {
            return 0;
        }
        let target = want.min(rl.rlim_max);
        if rl.rlim_cur < target {
            rl.rlim_cur = target;
            libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl);
        }
    }
    rl.rlim_cur
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_spaces_in_comm() {
        let s = "1234 (imap (pre) x) S 77 1234 1234 0 -1 4194560 100 0 0 0 \
                 15 7 3 2 20 0 1 0 100 1000 50 18446744073709551615";
        let st = parse_stat(s).unwrap();
        assert_eq!(
            st,
            StatTimes {
                ppid: 77,
                utime: 15,
                stime: 7,
                cutime: 3,
                cstime: 2
            }
        );
        assert!(parse_stat("garbage").is_none());
        assert!(parse_stat("1 (x) S 1 2").is_none());
    }

    #[test]
    fn machine_steal() {
        let a = "cpu  100 5 50 800 10 0 5 30 0 0\ncpu0 50 2 25 400 5 0 2 15 0 0\n";
        let b = "cpu  200 5 100 1500 10 0 5 180 7 0\n";
        let (a, b) = (parse_machine(a).unwrap(), parse_machine(b).unwrap());
        assert_eq!(
            a,
            MachineTimes {
                total: 1000,
                steal: 30
            }
        );
        assert_eq!(
            b,
            MachineTimes {
                total: 2000,
                steal: 180
            }
        );
        assert_eq!(steal_pct(a, b), Some(15.0));
        assert_eq!(steal_pct(b, a), None);
        assert_eq!(steal_pct(a, a), None);
        assert!(parse_machine("cpu0 1 2 3\n").is_none());
        assert!(parse_machine("cpu  1 2 x 4 5 6 7 8\n").is_none());
        let now = machine_times().unwrap();
        assert!(now.total > 0 && now.steal <= now.total);
    }

    #[test]
    fn own_stat_parses() {
        let s = fs::read_to_string("/proc/self/stat").unwrap();
        assert!(parse_stat(&s).is_some());
        let status = fs::read_to_string("/proc/self/status").unwrap();
        assert!(parse_kb(&status, "VmRSS").unwrap() > 0);
        assert!(memory(std::process::id()).procs >= 1);
    }

    /// A child that used CPU and was reaped is counted (in the root's
    /// `cutime`) as much as the kernel says it used.
    #[test]
    fn reaped_children_count() {
        let children = || {
            // SAFETY: an all-zero rusage is valid; getrusage fills it.
            let mut u: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: RUSAGE_CHILDREN of this process, into `u`.
            assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) }, 0);
            let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
            secs(u.ru_utime) + secs(u.ru_stime)
        };
        let (before, reaped) = (cpu_seconds(std::process::id()), children());
        let status = std::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"])
            .status()
            .unwrap();
        assert!(status.success());
        let used = children() - reaped;
        assert!(used > 0.05, "the child used {used} s");
        let after = cpu_seconds(std::process::id());
        // Clock ticks are coarser than rusage: one tick of slack.
        assert!(
            after - before >= used - 0.02,
            "{before} -> {after}, child {used}"
        );
    }

    #[test]
    fn kb_lines() {
        let t = "Name:\timap\nVmRSSX:\t9 kB\nVmRSS:\t  4321 kB\nPss:    12 kB\n";
        assert_eq!(parse_kb(t, "VmRSS"), Some(4321));
        assert_eq!(parse_kb(t, "Pss"), Some(12));
        assert_eq!(parse_kb(t, "VmHWM"), None);
    }

    #[test]
    fn descendants_closure() {
        // 1 -> 2 -> 4, 1 -> 3, 5 unrelated, 6 -> 5
        let p: HashMap<u32, u32> = [(2, 1), (3, 1), (4, 2), (5, 6), (1, 0)].into();
        let mut d = descendants(1, &p);
        d.sort_unstable();
        assert_eq!(d, [1, 2, 3, 4]);
        assert_eq!(descendants(6, &p), [6, 5]);
    }
}
