//! The benchmark modes. Each is bounded in time (`--duration`) or count and
//! prints a table plus one `RESULT` line.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;

use crate::client::{is_change_notification, quote, Client, Status, Target};
use crate::stats::{ms, table as stats_table, Recorder};
use crate::{msg, procfs, Env};

const HEADER_FIELDS: &str = "FROM TO CC SUBJECT DATE MESSAGE-ID";

#[derive(Args, Debug)]
pub struct PopulateArgs {
    /// Messages to append to each user's INBOX.
    #[arg(long, default_value_t = 300)]
    count: u64,
    /// Users populated at the same time.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
}

#[derive(Args, Debug)]
pub struct MixArgs {
    #[arg(long, default_value_t = 10)]
    clients: usize,
    /// Seconds of measured load (after all clients logged in).
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Seconds of the same load before the measured `--duration`, on the
    /// same connections, counted in nothing: the server's caches fill as in
    /// one that has been running (a server just started pays for filling
    /// them in the first seconds).
    #[arg(long, default_value_t = 0)]
    warmup: u64,
    /// Weights per operation.
    #[arg(long, default_value = DEFAULT_MIX)]
    mix: String,
    /// How long an `idle` operation stays in IDLE (ms), unless a change
    /// arrives first.
    #[arg(long, default_value_t = 50)]
    idle_ms: u64,
    /// Clients per account: client i logs in as account i / devices, like a
    /// user's laptop, phone and webmail. With 1, every client has its own
    /// account (while there are enough), and an `idle` operation waits out
    /// its `--idle-ms`: nobody else changes that account's INBOX. With more,
    /// the other devices' changes end it as soon as the server pushes them.
    #[arg(long, default_value_t = 1)]
    devices: usize,
}

pub const DEFAULT_MIX: &str =
    "fetch_headers=25,fetch_body=15,store=15,append=4,expunge=4,idle=5,noop=20,select=10,login=2";

#[derive(Args, Debug)]
pub struct AppendArgs {
    #[arg(long, default_value_t = 10)]
    clients: usize,
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Mailbox appended to (created if missing) in the first user's account.
    #[arg(long, default_value = "loadgen-append")]
    mailbox: String,
}

#[derive(Args, Debug)]
pub struct PushArgs {
    /// IDLE connections that measure.
    #[arg(long, default_value_t = 100)]
    idlers: usize,
    /// Measured writer operations (a cycle of APPEND, STORE, EXPUNGE).
    #[arg(long, default_value_t = 150)]
    ops: u64,
    /// Longest wait for all idlers to see one change (ms).
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    /// Mailbox used (created if missing) in the first user's account.
    #[arg(long, default_value = "loadgen-push")]
    mailbox: String,
    /// Sessions logged in at the same time while connecting.
    #[arg(long, default_value_t = 32)]
    connect_concurrency: usize,
}

#[derive(Args, Debug)]
pub struct IdleMemArgs {
    #[arg(long, default_value_t = 1000)]
    sessions: usize,
    /// Use the implicit-TLS port (--tls-port).
    #[arg(long)]
    tls: bool,
    /// Sessions logged in at the same time while connecting.
    #[arg(long, default_value_t = 32)]
    connect_concurrency: usize,
    /// Seconds to wait after the last session is idle before each memory
    /// sample: the steady state of idle sessions, not the moments after they
    /// entered IDLE (a server may compact or release memory a little later;
    /// Pillarbox returns freed memory to the system within a second).
    #[arg(long, default_value_t = 3)]
    settle: u64,
}

/// One kind of operation in the mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    FetchHeaders,
    FetchBody,
    Store,
    Append,
    Expunge,
    Idle,
    Noop,
    Select,
    Login,
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "fetch_headers" => Op::FetchHeaders,
            "fetch_body" => Op::FetchBody,
            "store" => Op::Store,
            "append" => Op::Append,
            "expunge" => Op::Expunge,
            "idle" => Op::Idle,
            "noop" => Op::Noop,
            "select" => Op::Select,
            "login" => Op::Login,
            _ => return None,
        })
    }
}

/// `name=weight,...` → cumulative table for weighted choice.
pub fn parse_mix(spec: &str) -> Result<Vec<(Op, u32)>> {
    let mut out = Vec::new();
    let mut total = 0u32;
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, w) = part
            .split_once('=')
            .with_context(|| format!("mix entry {part:?} is not name=weight"))?;
        let op = Op::parse(name.trim()).with_context(|| format!("unknown operation {name:?}"))?;
        let w: u32 = w
            .trim()
            .parse()
            .with_context(|| format!("weight of {name:?}"))?;
        if w > 0 {
            total += w;
            out.push((op, total));
        }
    }
    if out.is_empty() {
        bail!("empty mix");
    }
    Ok(out)
}

/// Weighted choice from a cumulative table, `r` in `0..total`.
pub fn choose(table: &[(Op, u32)], r: u32) -> Op {
    table
        .iter()
        .find(|(_, c)| r < *c)
        .map(|(o, _)| *o)
        .unwrap_or(table[table.len() - 1].0)
}

/// What a run's CPU figures are taken against: the server's CPU seconds
/// and the machine's CPU time at its start.
struct CpuMark {
    server: Option<f64>,
    machine: Option<procfs::MachineTimes>,
}

fn cpu(env: &Env) -> CpuMark {
    CpuMark {
        server: env.server_pid.map(procfs::cpu_seconds),
        machine: procfs::machine_times(),
    }
}

fn cpu_report(env: &Env, before: CpuMark, commands: u64) -> (String, String) {
    let now = cpu(env);
    let steal = before
        .machine
        .zip(now.machine)
        .and_then(|(a, b)| procfs::steal_pct(a, b));
    let steal_line = steal.map_or(String::new(), |p| format!(" (machine: {p:.1}% stolen)"));
    let steal_kv = steal.map_or(String::new(), |p| format!(" steal_pct={p:.1}"));
    match (before.server, now.server) {
        (Some(a), Some(b)) => {
            let used = b - a;
            let per_k = if commands > 0 {
                used * 1000.0 / commands as f64
            } else {
                0.0
            };
            (
                format!("server CPU: {used:.2} s, {per_k:.4} s per 1000 commands{steal_line}"),
                format!(" server_cpu_s={used:.3} cpu_s_per_1k={per_k:.5}{steal_kv}"),
            )
        }
        _ => (
            format!("server CPU: not measured (no --server-pid){steal_line}"),
            steal_kv,
        ),
    }
}

async fn ensure_mailbox(t: &Target, user: &(String, String), mailbox: &str) -> Result<()> {
    let mut c = Client::login(t, &user.0, &user.1, None).await?;
    // NO when it exists already: fine.
    let _ = c.command(&format!("CREATE {}", quote(mailbox))).await?;
    c.logout().await;
    Ok(())
}

/// Log in `n` sessions (users round robin), select `mailbox`, optionally
/// start IDLE; at most `conc` handshakes at a time. Failures are counted, not
/// fatal.
async fn open_sessions(
    t: &Target,
    users: &[(String, String)],
    n: usize,
    conc: usize,
    mailbox: &str,
    idle: bool,
    user_offset: usize,
) -> (Vec<(usize, Client, Option<String>)>, usize, Option<String>) {
    let sem = Arc::new(Semaphore::new(conc.max(1)));
    let mut set = JoinSet::new();
    for i in 0..n {
        let (u, p) = users[(i + user_offset) % users.len()].clone();
        let t = t.clone();
        let sem = sem.clone();
        let mailbox = mailbox.to_string();
        set.spawn(async move {
            let _permit = sem.acquire_owned().await?;
            if crate::MEMORY_LOW.load(Ordering::Relaxed) {
                bail!("not opened: machine memory guard tripped (MemAvailable below --min-available-mib)");
            }
            let mut c = tokio::time::timeout(
                Duration::from_secs(60),
                Client::login(&t, &u, &p, Some(&mailbox)),
            )
            .await
            .context("login timed out")??;
            let tag = if idle {
                Some(c.idle_start().await?)
            } else {
                None
            };
            anyhow::Ok((i, c, tag))
        });
    }
    let mut ok = Vec::with_capacity(n);
    let mut failed = 0;
    let mut first_err = None;
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Ok(c)) => ok.push(c),
            Ok(Err(e)) => {
                failed += 1;
                first_err.get_or_insert_with(|| format!("{e:#}"));
            }
            Err(e) => {
                failed += 1;
                first_err.get_or_insert_with(|| e.to_string());
            }
        }
    }
    (ok, failed, first_err)
}

pub async fn populate(env: &Env, a: PopulateArgs) -> Result<()> {
    let t0 = Instant::now();
    let sem = Arc::new(Semaphore::new(a.concurrency.max(1)));
    let mut set = JoinSet::new();
    for (ui, (u, p)) in env.users.iter().cloned().enumerate() {
        let t = env.plain.clone();
        let sem = sem.clone();
        let seed = env.seed;
        let count = a.count;
        set.spawn(async move {
            let _permit = sem.acquire_owned().await?;
            let mut c = Client::login(&t, &u, &p, None).await?;
            for i in 0..count {
                let m = msg::message(seed, ui as u64 * 1_000_000 + i);
                let flags = if i % 3 == 0 { "" } else { "\\Seen" };
                let (st, _) = c.append("INBOX", flags, &m).await?;
                if st != Status::Ok {
                    bail!("APPEND for {u} failed: {st:?}");
                }
            }
            c.logout().await;
            anyhow::Ok(())
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    println!(
        "[{}] populated {} users x {} messages in {:.1} s",
        env.label,
        env.users.len(),
        a.count,
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

/// One mix client: runs until `deadline`, reconnecting after wire errors;
/// records only the operations started at or after `measure_from`.
#[allow(clippy::too_many_arguments)]
async fn mix_client(
    t: Target,
    user: (String, String),
    mut c: Client,
    table: Arc<Vec<(Op, u32)>>,
    seed: u64,
    idle_ms: u64,
    measure_from: Instant,
    deadline: Instant,
) -> Recorder {
    let mut rec = Recorder::default();
    let mut warmup = Recorder::default();
    let mut rng = StdRng::seed_from_u64(seed);
    let total = table.last().map(|x| x.1).unwrap_or(1);
    let floor = c.exists / 2;
    let mut appended = 0u64;
    while Instant::now() < deadline {
        let op = choose(&table, rng.gen_range(0..total));
        let into = if Instant::now() < measure_from {
            &mut warmup
        } else {
            &mut rec
        };
        let r = mix_op(
            &t,
            &user,
            &mut c,
            op,
            &mut rng,
            into,
            idle_ms,
            floor,
            seed,
            &mut appended,
        )
        .await;
        if let Err(e) = r {
            into.error("wire");
            eprintln!("client {}: {op:?}: {e:#}; reconnecting", user.0);
            tokio::time::sleep(Duration::from_millis(100)).await;
            match Client::login(&t, &user.0, &user.1, Some("INBOX")).await {
                Ok(n) => c = n,
                Err(e) => {
                    eprintln!("client {}: reconnect failed: {e:#}", user.0);
                    return rec;
                }
            }
        }
    }
    c.logout().await;
    rec
}

fn note(rec: &mut Recorder, kind: &'static str, r: (Status, Duration)) {
    if r.0 == Status::Ok {
        rec.record(kind, r.1);
    } else {
        rec.error(kind);
    }
}

#[allow(clippy::too_many_arguments)]
async fn mix_op(
    t: &Target,
    user: &(String, String),
    c: &mut Client,
    op: Op,
    rng: &mut StdRng,
    rec: &mut Recorder,
    idle_ms: u64,
    floor: u32,
    seed: u64,
    appended: &mut u64,
) -> Result<()> {
    let n = c.exists;
    // Operations on messages need some; fall back to appending.
    let op = match op {
        Op::FetchHeaders | Op::FetchBody | Op::Store if n == 0 => Op::Append,
        Op::Expunge if n <= floor.max(1) => Op::Append,
        o => o,
    };
    match op {
        Op::FetchHeaders => {
            let a = rng.gen_range(1..=n);
            let b = (a + 19).min(n);
            let r = c
                .command(&format!("FETCH {a}:{b} (UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS ({HEADER_FIELDS})])"))
                .await?;
            note(rec, "fetch_headers", r);
        }
        Op::FetchBody => {
            let a = rng.gen_range(1..=n);
            let r = c.command(&format!("FETCH {a} (UID BODY.PEEK[])")).await?;
            note(rec, "fetch_body", r);
        }
        Op::Store => {
            let a = rng.gen_range(1..=n);
            let (sign, flag) = match rng.gen_range(0..4) {
                0 => ('+', "\\Flagged"),
                1 => ('-', "\\Flagged"),
                2 => ('+', "\\Seen"),
                _ => ('-', "\\Seen"),
            };
            let r = c
                .command(&format!("STORE {a} {sign}FLAGS ({flag})"))
                .await?;
            note(rec, "store", r);
        }
        Op::Append => {
            *appended += 1;
            let m = msg::message(seed, 500_000_000 + *appended);
            let r = c.append("INBOX", "", &m).await?;
            note(rec, "append", r);
        }
        Op::Expunge => {
            let a = rng.gen_range(1..=n);
            let r = c
                .command(&format!("STORE {a} +FLAGS.SILENT (\\Deleted)"))
                .await?;
            note(rec, "store", r);
            let r = c.command("EXPUNGE").await?;
            note(rec, "expunge", r);
        }
        Op::Idle => {
            let t0 = Instant::now();
            let tag = c.idle_start().await?;
            let started = t0.elapsed();
            // Stay idle for a short while (or until something arrives).
            let _ = tokio::time::timeout(Duration::from_millis(idle_ms), c.read_line()).await;
            let t1 = Instant::now();
            let st = c.idle_done(&tag).await?;
            note(rec, "idle", (st, started + t1.elapsed()));
        }
        Op::Noop => {
            let r = c.command("NOOP").await?;
            note(rec, "noop", r);
        }
        Op::Select => {
            let r = c.command("SELECT \"INBOX\"").await?;
            note(rec, "select", r);
        }
        Op::Login => {
            let old = std::mem::replace(c, Client::connect(t).await?);
            old.logout().await;
            let t0 = Instant::now();
            let r = c
                .command(&format!("LOGIN {} {}", quote(&user.0), quote(&user.1)))
                .await?;
            let d = t0.elapsed();
            note(rec, "login", (r.0, d));
            if r.0 != Status::Ok {
                bail!("LOGIN failed");
            }
            let r = c.command("SELECT \"INBOX\"").await?;
            note(rec, "select", r);
        }
    }
    Ok(())
}

pub async fn mix(env: &Env, a: MixArgs) -> Result<()> {
    let table = Arc::new(parse_mix(&a.mix)?);
    let devices = a.devices.max(1);
    let users: Vec<(String, String)> = (0..a.clients)
        .map(|i| env.users[(i / devices) % env.users.len()].clone())
        .collect();
    let (sessions, failed, err) = open_sessions(
        &env.plain,
        &users,
        a.clients,
        a.clients.min(32),
        "INBOX",
        false,
        0,
    )
    .await;
    if failed > 0 {
        bail!(
            "{failed} of {} clients could not log in: {}",
            a.clients,
            err.unwrap_or_default()
        );
    }
    let t0 = Instant::now() + Duration::from_secs(a.warmup);
    let deadline = t0 + Duration::from_secs(a.duration);
    let mut set = JoinSet::new();
    for (i, c, _) in sessions {
        let user = users[i].clone();
        set.spawn(mix_client(
            env.plain.clone(),
            user,
            c,
            table.clone(),
            env.seed.wrapping_mul(1000) + i as u64,
            a.idle_ms,
            t0,
            deadline,
        ));
    }
    // The measurement starts when the warm-up ends (at once without one).
    tokio::time::sleep_until(t0.into()).await;
    let cpu0 = cpu(env);
    let mut rec = Recorder::default();
    while let Some(r) = set.join_next().await {
        rec.merge(r?);
    }
    let secs = t0.elapsed().as_secs_f64();
    let (cpu_line, cpu_kv) = cpu_report(env, cpu0, rec.count());
    let s = rec.summaries();
    let all = s.last().cloned().context("no summary")?;
    // Clients wrap around the accounts there are: with fewer accounts than
    // clients / devices, more clients share one (and see its changes).
    let accounts = a.clients.div_ceil(devices).min(env.users.len());
    println!(
        "[{}] mix: {} clients on {} accounts (up to {} per account), {:.1} s after {} s of warm-up, mix {}",
        env.label,
        a.clients,
        accounts,
        a.clients.div_ceil(accounts.max(1)),
        secs,
        a.warmup,
        a.mix
    );
    print!("{}", stats_table(&s, secs));
    println!("  {cpu_line}");
    println!(
        "RESULT label={} mode=mix clients={} devices={} idle_ms={} mix={} cmds_per_s={:.1} p50_ms={} p90_ms={} p99_ms={} errors={}{}",
        env.label,
        a.clients,
        devices,
        a.idle_ms,
        a.mix,
        all.count as f64 / secs,
        ms(all.p50),
        ms(all.p90),
        ms(all.p99),
        all.errors,
        cpu_kv
    );
    Ok(())
}

pub async fn append(env: &Env, a: AppendArgs) -> Result<()> {
    let user = env.users[0].clone();
    ensure_mailbox(&env.plain, &user, &a.mailbox).await?;
    let (sessions, failed, err) = open_sessions(
        &env.plain,
        std::slice::from_ref(&user),
        a.clients,
        a.clients,
        &a.mailbox,
        false,
        0,
    )
    .await;
    if failed > 0 {
        bail!(
            "{failed} append clients could not log in: {}",
            err.unwrap_or_default()
        );
    }
    let cpu0 = cpu(env);
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(a.duration);
    let mut set = JoinSet::new();
    for (i, mut c, _) in sessions {
        let mailbox = a.mailbox.clone();
        let seed = env.seed;
        set.spawn(async move {
            let mut rec = Recorder::default();
            let mut k = 0u64;
            while Instant::now() < deadline {
                k += 1;
                let m = msg::message(seed, 900_000_000 + i as u64 * 1_000_000 + k);
                match c.append(&mailbox, "", &m).await {
                    Ok(r) => note(&mut rec, "append", r),
                    Err(e) => {
                        eprintln!("append client {i}: {e:#}");
                        rec.error("wire");
                        break;
                    }
                }
            }
            c.logout().await;
            rec
        });
    }
    let mut rec = Recorder::default();
    while let Some(r) = set.join_next().await {
        rec.merge(r?);
    }
    let secs = t0.elapsed().as_secs_f64();
    let (cpu_line, cpu_kv) = cpu_report(env, cpu0, rec.count());
    let s = rec.summaries();
    let all = s.last().cloned().context("no summary")?;
    println!(
        "[{}] append: {} clients into one mailbox, {:.1} s",
        env.label, a.clients, secs
    );
    print!("{}", stats_table(&s, secs));
    println!("  {cpu_line}");
    println!(
        "RESULT label={} mode=append clients={} msgs_per_s={:.1} p50_ms={} p99_ms={} errors={}{}",
        env.label,
        a.clients,
        all.count as f64 / secs,
        ms(all.p50),
        ms(all.p99),
        all.errors,
        cpu_kv
    );
    Ok(())
}

/// (generation, arrival) from an idler: the first change notification it saw
/// after the writer started operation `generation`.
type Arrival = (u64, Instant);

pub async fn push(env: &Env, a: PushArgs) -> Result<()> {
    let user = env.users[0].clone();
    ensure_mailbox(&env.plain, &user, &a.mailbox).await?;
    let t_open = Instant::now();
    let (idlers, failed, err) = open_sessions(
        &env.plain,
        std::slice::from_ref(&user),
        a.idlers,
        a.connect_concurrency,
        &a.mailbox,
        true,
        0,
    )
    .await;
    if idlers.is_empty() {
        bail!("no idler could start: {}", err.unwrap_or_default());
    }
    if failed > 0 {
        eprintln!(
            "warning: {failed} of {} idlers could not start ({}); measuring with {}",
            a.idlers,
            err.unwrap_or_default(),
            idlers.len()
        );
    }
    let want = a.idlers;
    let a = PushArgs {
        idlers: idlers.len(),
        ..a
    };
    println!(
        "[{}] push: {} IDLE sessions ready in {:.1} s",
        env.label,
        idlers.len(),
        t_open.elapsed().as_secs_f64()
    );
    let generation = Arc::new(AtomicU64::new(0));
    let (tx, mut rx) = mpsc::unbounded_channel::<Arrival>();
    let mut tasks = JoinSet::new();
    for (_, mut c, _tag) in idlers {
        let generation = generation.clone();
        let tx = tx.clone();
        tasks.spawn(async move {
            let mut reported = 0u64;
            loop {
                let Ok(line) = c.read_line().await else {
                    return;
                };
                let now = Instant::now();
                let g = generation.load(Ordering::SeqCst);
                if g > reported && is_change_notification(&line) {
                    reported = g;
                    if tx.send((g, now)).is_err() {
                        return;
                    }
                }
            }
        });
    }
    drop(tx);
    let mut w = Client::login(&env.plain, &user.0, &user.1, Some(&a.mailbox)).await?;
    let mut rec = Recorder::default(); // writer command latency
    let mut push_rec = Recorder::default(); // commit-to-push latency
    let mut early = 0u64;
    let mut missed = 0u64;
    let timeout = Duration::from_millis(a.timeout_ms);
    let cpu0 = cpu(env);
    let t0 = Instant::now();
    for i in 1..=a.ops {
        generation.store(i, Ordering::SeqCst);
        let (kind, r) = match i % 3 {
            1 => {
                let m = msg::message(env.seed, 800_000_000 + i);
                ("append", w.append(&a.mailbox, "", &m).await?)
            }
            2 => {
                let n = w.exists.max(1);
                (
                    "store",
                    w.command(&format!("STORE {n} +FLAGS (\\Deleted)")).await?,
                )
            }
            _ => ("expunge", w.command("EXPUNGE").await?),
        };
        let ok_at = Instant::now();
        note(&mut rec, kind, r);
        if r.0 != Status::Ok {
            continue;
        }
        let deadline = ok_at + timeout;
        let mut got = 0usize;
        while got < a.idlers {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, rx.recv()).await {
                Ok(Some((g, at))) if g == i => {
                    got += 1;
                    if at < ok_at {
                        early += 1;
                    }
                    push_rec.record(kind, at.saturating_duration_since(ok_at));
                }
                Ok(Some(_)) => {} // late arrival of an earlier operation
                Ok(None) | Err(_) => break,
            }
        }
        if got < a.idlers {
            missed += (a.idlers - got) as u64;
            for _ in got..a.idlers {
                push_rec.error(kind);
            }
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let (cpu_line, cpu_kv) = cpu_report(env, cpu0, rec.count());
    tasks.abort_all();
    w.logout().await;
    let ps = push_rec.summaries();
    let all = ps.last().cloned().context("no summary")?;
    println!(
        "[{}] push: {} writer operations in {:.1} s, {} IDLE sessions",
        env.label, a.ops, secs, a.idlers
    );
    println!(" writer command latency (tagged OK):");
    print!("{}", stats_table(&rec.summaries(), secs));
    println!(
        " commit-to-push latency (writer's tagged OK -> first untagged on each IDLE session; errors = not seen within {} ms):",
        a.timeout_ms
    );
    print!("{}", stats_table(&ps, secs));
    println!("  notifications arriving before the writer's OK (counted as 0 ms): {early}; missed: {missed}");
    println!("  {cpu_line}");
    println!(
        "RESULT label={} mode=push idlers={} started={} p50_ms={} p90_ms={} p99_ms={} max_ms={} missed={}{}",
        env.label,
        want,
        a.idlers,
        ms(all.p50),
        ms(all.p90),
        ms(all.p99),
        ms(all.max),
        missed,
        cpu_kv
    );
    Ok(())
}

pub async fn idle_mem(env: &Env, a: IdleMemArgs) -> Result<()> {
    let pid = env
        .server_pid
        .context("idle-mem needs --server-pid or --server-pidfile")?;
    let target = if a.tls {
        Target {
            addr: env.tls_addr.context("--tls needs --tls-port")?,
            tls: Some(crate::client::tls_config(env.ca_file.as_deref())?),
        }
    } else {
        env.plain.clone()
    };
    let transport = if a.tls { "tls" } else { "plain" };
    // One warm-up session so that one-time costs (caches, thread pools,
    // the mailbox's metadata) are not charged to the sessions.
    let (warm, _, _) = open_sessions(&target, &env.users, 1, 1, "INBOX", true, 0).await;
    // Every sample is taken `settle` seconds after the last session went
    // idle, so that the marginal figure compares like with like.
    tokio::time::sleep(Duration::from_secs(a.settle)).await;
    let m0 = procfs::memory(pid);
    let t0 = Instant::now();
    let tenth = (a.sessions / 10).max(1);
    let (first, f1, e1) = open_sessions(
        &target,
        &env.users,
        tenth,
        a.connect_concurrency,
        "INBOX",
        true,
        1,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(a.settle)).await;
    let m1 = procfs::memory(pid);
    let rest = a.sessions - tenth.min(a.sessions);
    let (second, f2, e2) = open_sessions(
        &target,
        &env.users,
        rest,
        a.connect_concurrency,
        "INBOX",
        true,
        1 + tenth,
    )
    .await;
    let open_secs = t0.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(a.settle)).await;
    let m2 = procfs::memory(pid);
    let ok = first.len() + second.len();
    let failed = f1 + f2;
    let per = |a: u64, b: u64, n: usize| {
        if n > 0 {
            b.saturating_sub(a) as f64 / n as f64
        } else {
            0.0
        }
    };
    let rss_per = per(m0.rss_kib, m2.rss_kib, ok);
    let pss_per = per(m0.pss_kib, m2.pss_kib, ok);
    let rss_marginal = per(m1.rss_kib, m2.rss_kib, second.len());
    // What the sessions hold: the size of the INBOXes they selected.
    let msgs: u64 = first
        .iter()
        .chain(&second)
        .map(|(_, c, _)| u64::from(c.exists))
        .sum();
    let msgs_avg = msgs as f64 / ok.max(1) as f64;
    println!(
        "[{}] idle-mem ({transport}): {ok} sessions in IDLE ({failed} failed{}), opened in {open_secs:.1} s, INBOX of {msgs_avg:.0} messages on average",
        env.label,
        e1.or(e2).map(|e| format!(", first error: {e}")).unwrap_or_default()
    );
    println!(
        "  server before: RSS {} KiB, PSS {} KiB, {} processes",
        m0.rss_kib, m0.pss_kib, m0.procs
    );
    println!(
        "  after {:>6}: RSS {} KiB, PSS {} KiB, {} processes",
        first.len(),
        m1.rss_kib,
        m1.pss_kib,
        m1.procs
    );
    println!(
        "  after {:>6}: RSS {} KiB, PSS {} KiB, {} processes",
        ok, m2.rss_kib, m2.pss_kib, m2.procs
    );
    println!(
        "  per session: RSS {rss_per:.1} KiB (marginal over the last {} sessions: {rss_marginal:.1} KiB), PSS {pss_per:.1} KiB",
        second.len()
    );
    println!(
        "RESULT label={} mode=idle-mem transport={transport} requested={} sessions={ok} failed={failed} rss_kib_per_session={rss_per:.2} \
         rss_kib_marginal={rss_marginal:.2} pss_kib_per_session={pss_per:.2} rss_kib_total={} inbox_msgs_avg={msgs_avg:.0} memory_guard={}",
        env.label,
        a.sessions,
        m2.rss_kib.saturating_sub(m0.rss_kib),
        crate::MEMORY_LOW.load(Ordering::Relaxed)
    );
    drop(first);
    drop(second);
    drop(warm);
    // Let the server notice the closed connections before the next mode.
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_parse_and_choose() {
        let t = parse_mix("noop=1, append=0 ,fetch_headers=3").unwrap();
        assert_eq!(t, vec![(Op::Noop, 1), (Op::FetchHeaders, 4)]);
        assert_eq!(choose(&t, 0), Op::Noop);
        assert_eq!(choose(&t, 1), Op::FetchHeaders);
        assert_eq!(choose(&t, 3), Op::FetchHeaders);
        assert!(parse_mix("bogus=1").is_err());
        assert!(parse_mix("noop").is_err());
        assert!(parse_mix("noop=0").is_err());
        assert!(parse_mix(DEFAULT_MIX).is_ok());
    }

    #[test]
    fn choose_distribution_follows_weights() {
        let t = parse_mix("noop=1,store=3").unwrap();
        let mut rng = StdRng::seed_from_u64(7);
        let n = 40_000;
        let stores = (0..n)
            .filter(|_| choose(&t, rng.gen_range(0..4)) == Op::Store)
            .count();
        let share = stores as f64 / n as f64;
        assert!((share - 0.75).abs() < 0.02, "{share}");
    }
}
