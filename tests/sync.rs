//! Multi-device sync: CONDSTORE / QRESYNC (RFC 7162) behaviour, and a
//! randomized multi-client test that checks the invariants of every session's
//! view after every response.

mod common;

use std::collections::HashMap;

use common::*;

fn num_after(text: &str, key: &str) -> u64 {
    let i = text
        .find(key)
        .unwrap_or_else(|| panic!("{key} not in {text}"))
        + key.len();
    text[i..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn qresync_select_reports_vanished_and_changed() {
    let s = TestServer::start().await;
    let mut a = s.login().await;
    for i in 0..4 {
        a.append("INBOX", "", &message(&format!("m{i}"), "x")).await;
    }
    let r = a.ok("SELECT INBOX").await;
    let uidvalidity = num_after(&r.text(), "[UIDVALIDITY ");
    let modseq = num_after(&r.text(), "[HIGHESTMODSEQ ");
    a.ok("STORE 1 +FLAGS (\\Flagged)").await;
    a.ok("STORE 2,3 +FLAGS (\\Deleted)").await;
    a.ok("EXPUNGE").await;

    let mut b = s.login().await;
    b.bad(&format!("SELECT INBOX (QRESYNC ({uidvalidity} {modseq}))"))
        .await;
    let r = b.ok("ENABLE QRESYNC").await;
    assert!(r.has("* ENABLED QRESYNC"), "{}", r.text());
    let r = b
        .ok(&format!("SELECT INBOX (QRESYNC ({uidvalidity} {modseq}))"))
        .await;
    assert!(r.has("* VANISHED (EARLIER) 2:3\r\n"), "{}", r.text());
    assert!(
        r.has("* 1 FETCH (UID 1 FLAGS (\\Flagged) MODSEQ ("),
        "{}",
        r.text()
    );
    assert!(
        !r.has("UID 4 "),
        "unchanged message must not be reported: {}",
        r.text()
    );
    // known-uids limits what is reported.
    let r = b
        .ok(&format!(
            "SELECT INBOX (QRESYNC ({uidvalidity} {modseq} 3:4))"
        ))
        .await;
    assert!(r.has("* VANISHED (EARLIER) 3\r\n"), "{}", r.text());
    // A different UIDVALIDITY: the client must resync fully, nothing reported.
    let r = b
        .ok(&format!(
            "SELECT INBOX (QRESYNC ({} {modseq}))",
            uidvalidity + 1
        ))
        .await;
    assert!(!r.has("VANISHED") && !r.has("FETCH"), "{}", r.text());
    // UID FETCH ... (CHANGEDSINCE n VANISHED).
    let r = b
        .ok(&format!(
            "UID FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq} VANISHED)"
        ))
        .await;
    assert!(r.has("* VANISHED (EARLIER) 2:3\r\n"), "{}", r.text());
    assert!(r.has("UID 1 ") && r.has("MODSEQ ("), "{}", r.text());
    b.bad("FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)").await;
    // With QRESYNC, expunges are VANISHED, not EXPUNGE.
    b.ok("STORE 1 +FLAGS (\\Deleted)").await;
    let r = b.ok("EXPUNGE").await;
    assert_eq!(r.text(), "* VANISHED 1\r\n");
    let r = b.ok("UID MOVE 4 Archive").await;
    assert!(
        r.has("* VANISHED 4\r\n") && !r.has("EXPUNGE"),
        "{}",
        r.text()
    );
    s.stop().await;
}

#[tokio::test]
async fn condstore_enabled_by_select_parameter_adds_modseq_to_unsolicited_fetch() {
    let s = TestServer::start().await;
    let mut a = s.login().await;
    let mut b = s.login().await;
    a.append("INBOX", "", &message("m", "x")).await;
    let r = a.ok("SELECT INBOX (CONDSTORE)").await;
    assert!(r.has("[HIGHESTMODSEQ "));
    b.ok("SELECT INBOX").await;
    b.ok("STORE 1 +FLAGS (\\Seen)").await;
    let r = a.ok("NOOP").await;
    assert!(
        r.has("* 1 FETCH (UID 1 FLAGS (\\Seen) MODSEQ ("),
        "{}",
        r.text()
    );
    s.stop().await;
}

/// A deterministic xorshift generator (no external randomness in tests).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// What one client knows of its selected mailbox.
#[derive(Default)]
struct Model {
    /// UID per sequence number (None until the client learns it).
    uids: Vec<Option<u32>>,
    modseq: HashMap<u32, u64>,
    gone: std::collections::HashSet<u32>,
}

impl Model {
    /// Applies untagged responses and checks the invariants; returns a
    /// description of the first violation.
    fn apply(&mut self, r: &Response, cmd: &str) -> Result<(), String> {
        for line in r.lines_starting("* ") {
            let l = line.trim_end();
            let mut words = l.split(' ');
            words.next();
            let first = words.next().unwrap_or("");
            let second = words.next().unwrap_or("");
            if let Ok(n) = first.parse::<usize>() {
                match second {
                    "EXISTS" => {
                        if n < self.uids.len() {
                            return Err(format!(
                                "EXISTS went down from {} to {n} ({cmd})",
                                self.uids.len()
                            ));
                        }
                        self.uids.resize(n, None);
                    }
                    "EXPUNGE" => {
                        if n == 0 || n > self.uids.len() {
                            return Err(format!(
                                "EXPUNGE {n} out of range 1..{} ({cmd})",
                                self.uids.len()
                            ));
                        }
                        if cmd.starts_with("FETCH")
                            || cmd.starts_with("STORE")
                            || cmd.starts_with("SEARCH")
                        {
                            return Err(format!("EXPUNGE during {cmd}"));
                        }
                        if let Some(u) = self.uids.remove(n - 1) {
                            self.gone.insert(u);
                        }
                    }
                    "FETCH" => {
                        if n == 0 || n > self.uids.len() {
                            return Err(format!(
                                "FETCH {n} beyond EXISTS {} ({cmd}): {l}",
                                self.uids.len()
                            ));
                        }
                        if let Some(i) = l.find("UID ") {
                            let uid: u32 = l[i + 4..]
                                .chars()
                                .take_while(|c| c.is_ascii_digit())
                                .collect::<String>()
                                .parse()
                                .unwrap();
                            if self.gone.contains(&uid) {
                                return Err(format!("FETCH for expunged UID {uid}"));
                            }
                            match self.uids[n - 1] {
                                Some(u) if u != uid => {
                                    return Err(format!("seq {n} was UID {u}, now {uid}"))
                                }
                                _ => self.uids[n - 1] = Some(uid),
                            }
                            if let Some(j) = l.find("MODSEQ (") {
                                let m: u64 = l[j + 8..]
                                    .chars()
                                    .take_while(|c| c.is_ascii_digit())
                                    .collect::<String>()
                                    .parse()
                                    .unwrap();
                                let prev = self.modseq.insert(uid, m).unwrap_or(0);
                                if m < prev {
                                    return Err(format!(
                                        "MODSEQ of UID {uid} went down {prev} -> {m}"
                                    ));
                                }
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        let known: Vec<u32> = self.uids.iter().flatten().copied().collect();
        if known.windows(2).any(|w| w[0] >= w[1]) {
            return Err(format!("UIDs not ascending in sequence order: {known:?}"));
        }
        Ok(())
    }
}

#[tokio::test]
async fn randomized_concurrent_clients_keep_consistent_views() {
    let s = TestServer::start().await;
    {
        let mut c = s.login().await;
        for i in 0..6 {
            c.append("INBOX", "", &message(&format!("seed{i}"), "x"))
                .await;
        }
    }
    let mut tasks = Vec::new();
    for client in 0..4u64 {
        let mut c = s.login().await;
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((client + 1) * 0x1234_5678));
            let mut model = Model::default();
            c.ok("ENABLE CONDSTORE").await;
            let r = c.ok("SELECT INBOX").await;
            model.apply(&r, "SELECT").unwrap();
            for step in 0..60 {
                let n = model.uids.len() as u64;
                let seq = 1 + rng.below(n.max(1));
                let cmd = match rng.below(9) {
                    0 | 1 => format!("STORE {seq} +FLAGS (\\Flagged)"),
                    2 => format!("STORE {seq} -FLAGS (\\Flagged)"),
                    3 => format!("STORE {seq} +FLAGS (\\Deleted)"),
                    4 => "EXPUNGE".to_string(),
                    5 => "FETCH 1:* (UID FLAGS MODSEQ)".to_string(),
                    6 => "UID FETCH 1:* (FLAGS)".to_string(),
                    7 => format!("UID MOVE {} Archive", 1 + rng.below(40)),
                    _ => "NOOP".to_string(),
                };
                let (r, cmd) = if rng.below(7) == 0 {
                    (
                        c.append("INBOX", "", &message(&format!("c{client}s{step}"), "y"))
                            .await,
                        "APPEND".to_string(),
                    )
                } else if n == 0 && (cmd.starts_with("STORE") || cmd.starts_with("FETCH")) {
                    (c.ok("NOOP").await, "NOOP".to_string())
                } else {
                    (c.cmd(&cmd).await, cmd)
                };
                // Other sessions may expunge what we address: NO is fine, BAD is not.
                assert!(
                    !r.tagged.starts_with("BAD"),
                    "client {client} step {step}: {cmd} -> {}",
                    r.tagged
                );
                if let Err(e) = model.apply(&r, &cmd) {
                    panic!("client {client} step {step}: {e}\n{}", r.text());
                }
            }
            let r = c.ok("NOOP").await;
            model.apply(&r, "NOOP").unwrap();
            let r = c.ok("UID SEARCH ALL").await;
            let uids: Vec<u32> = r.lines_starting("* SEARCH")[0]
                .split_whitespace()
                .skip(2)
                .map(|x| x.parse().unwrap())
                .collect();
            assert_eq!(
                uids.len(),
                model.uids.len(),
                "client {client}: SEARCH ALL vs EXISTS"
            );
            uids
        }));
    }
    let mut finals = Vec::new();
    for t in tasks {
        finals.push(t.await.expect("client task"));
    }
    // After a final NOOP every client sees the same mailbox.
    let mut c = s.login().await;
    c.ok("SELECT INBOX").await;
    let r = c.ok("UID SEARCH ALL").await;
    let truth: Vec<u32> = r.lines_starting("* SEARCH")[0]
        .split_whitespace()
        .skip(2)
        .map(|x| x.parse().unwrap())
        .collect();
    for f in finals {
        // Clients finished at different times; each view is a snapshot that
        // must be a superset of the UIDs that still exist now and appeared before.
        for u in &truth {
            if *u <= *f.last().unwrap_or(&0) {
                assert!(
                    f.contains(u),
                    "UID {u} exists but a client's final view lacks it"
                );
            }
        }
    }
    s.stop().await;
}

/// Flag changes and expunges do not wait for the disk, so a power loss can
/// take back the last of them after clients saw their modseqs. Here a
/// snapshot of the database is taken after a durable APPEND, the flag
/// changes that follow are lost by putting the snapshot back while the
/// server is down, and the restarted server must not hand out again a modseq
/// a client has seen (RFC 7162 3.1.1: a client may assume a modseq names one
/// change).
#[tokio::test]
async fn modseqs_seen_before_a_power_loss_are_not_handed_out_again() {
    const FILES: [&str; 3] = ["meta.sqlite3", "meta.sqlite3-wal", "meta.sqlite3-shm"];
    let mut s = TestServer::start().await;
    let mut a = s.login().await;
    a.append("INBOX", "", &message("kept", "x")).await;
    a.ok("SELECT INBOX (CONDSTORE)").await;
    // What the disk holds: the APPEND returned once it was durable. Copying
    // the live files could tear them (the server checkpoints and indexes in
    // the background), so SQLite takes a consistent snapshot of what is
    // committed, which at this point is the durable APPEND plus, possibly,
    // background indexing: both are states a crash can leave.
    let disk = tempfile::tempdir().expect("tempdir");
    let snapshot = disk.path().join(FILES[0]);
    rusqlite::Connection::open(s.dir.path().join(FILES[0]))
        .and_then(|c| c.execute("VACUUM INTO ?1", [snapshot.to_str().expect("utf-8 path")]))
        .expect("snapshot");
    let mut seen = 0;
    for sign in ['+', '-', '+'] {
        let r = a.ok(&format!("STORE 1 {sign}FLAGS (\\Seen)")).await;
        seen = seen.max(num_after(&r.text(), "MODSEQ ("));
    }
    a.ok("LOGOUT").await;
    s.restart(|dir| {
        for f in FILES {
            let _ = std::fs::remove_file(dir.join(f));
        }
        std::fs::copy(&snapshot, dir.join(FILES[0])).expect("restore");
    })
    .await;

    let mut b = s.login().await;
    let r = b.ok("SELECT INBOX (CONDSTORE)").await;
    assert!(
        num_after(&r.text(), "[HIGHESTMODSEQ ") >= seen,
        "{}",
        r.text()
    );
    // The flag changes were lost indeed.
    assert!(!b.ok("FETCH 1 (FLAGS)").await.has("\\Seen"));
    let r = b.ok("STORE 1 +FLAGS (\\Flagged)").await;
    assert!(num_after(&r.text(), "MODSEQ (") > seen, "{}", r.text());
}
