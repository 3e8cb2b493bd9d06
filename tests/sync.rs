//! Multi-device sync: CONDSTORE / QRESYNC (RFC 7162) behaviour, and a
//! randomized multi-client test that checks the invariants of every session's
//! view after every response.

mod common;

use std::collections::HashMap;

use common::*;

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

/// The tagged OK's `[HIGHESTMODSEQ n]`, or None.
fn tagged_modseq(r: &Response) -> Option<u64> {
    r.tagged
        .contains("[HIGHESTMODSEQ ")
        .then(|| num_after(&r.tagged, "[HIGHESTMODSEQ "))
}

async fn highest_modseq(c: &mut Client, mailbox: &str) -> u64 {
    let r = c.ok(&format!("STATUS {mailbox} (HIGHESTMODSEQ)")).await;
    num_after(&r.text(), "HIGHESTMODSEQ ")
}

/// RFC 7162 3.2.4, 3.1.3, 3.1.4, 3.2.7, 3.2.9: once QRESYNC is enabled every
/// FETCH about a change carries UID and MODSEQ (also STORE's own, STORE
/// .SILENT's, which has no FLAGS, and a FETCH that set \Seen), and EXPUNGE,
/// UID EXPUNGE and MOVE end with the mailbox's new HIGHESTMODSEQ.
#[tokio::test]
async fn qresync_fetches_carry_uid_and_modseq_and_expunges_the_highest_modseq() {
    let s = TestServer::start().await;
    let mut a = s.login().await;
    for i in 0..6 {
        a.append("INBOX", "", &message(&format!("m{i}"), "x")).await;
    }
    let mut other = s.login().await;
    a.ok("ENABLE QRESYNC").await;
    a.select_settled("INBOX").await;
    let r = a.ok("STORE 1 +FLAGS (\\Flagged)").await;
    assert!(
        r.has("* 1 FETCH (UID 1 FLAGS (\\Flagged) MODSEQ ("),
        "{}",
        r.text()
    );
    let r = a.ok("STORE 2 +FLAGS.SILENT (\\Answered)").await;
    let m = num_after(&r.text(), "MODSEQ (");
    assert_eq!(r.text(), format!("* 2 FETCH (UID 2 MODSEQ ({m}))\r\n"));
    let r = a.ok("FETCH 3 (BODY[TEXT])").await;
    assert!(
        r.has("FLAGS (\\Seen) MODSEQ (") && r.has(" UID 3)"),
        "{}",
        r.text()
    );
    let r = a.ok("FETCH 3 (FLAGS)").await;
    assert!(r.has("* 3 FETCH (FLAGS (\\Seen))"), "{}", r.text());

    a.ok("STORE 4 +FLAGS (\\Deleted)").await;
    let r = a.ok("EXPUNGE").await;
    assert_eq!(r.text(), "* VANISHED 4\r\n");
    assert_eq!(
        tagged_modseq(&r),
        Some(highest_modseq(&mut other, "INBOX").await),
        "{}",
        r.tagged
    );
    a.ok("UID STORE 5 +FLAGS (\\Deleted)").await;
    let r = a.ok("UID EXPUNGE 5").await;
    assert_eq!(
        tagged_modseq(&r),
        Some(highest_modseq(&mut other, "INBOX").await),
        "{}",
        r.tagged
    );
    let r = a.ok("UID MOVE 6 Archive").await;
    assert!(r.has("* VANISHED 6\r\n"), "{}", r.text());
    assert_eq!(
        tagged_modseq(&r),
        Some(highest_modseq(&mut other, "INBOX").await),
        "{}",
        r.tagged
    );
    // Nothing expunged: no code.
    let r = a.ok("EXPUNGE").await;
    assert_eq!(tagged_modseq(&r), None, "{}", r.tagged);
    s.stop().await;
}

/// Under CONDSTORE alone: STORE .SILENT reports the new modseq only (RFC
/// 7162 3.1.3), EXPUNGE no HIGHESTMODSEQ; every FETCH about a change carries
/// the UID too, STORE by sequence number and a FETCH that set \Seen included,
/// since a server offering QRESYNC does so once CONDSTORE is enabled (3.2.4;
/// Dovecot leaves the UID out here, which that section does not allow).
#[tokio::test]
async fn condstore_silent_store_reports_only_the_modseq() {
    let s = TestServer::start().await;
    let mut a = s.login().await;
    for i in 0..2 {
        a.append("INBOX", "", &message(&format!("m{i}"), "x")).await;
    }
    a.select_settled("INBOX (CONDSTORE)").await;
    let r = a.ok("STORE 1 +FLAGS.SILENT (\\Flagged)").await;
    let m = num_after(&r.text(), "MODSEQ (");
    assert_eq!(r.text(), format!("* 1 FETCH (UID 1 MODSEQ ({m}))\r\n"));
    let r = a
        .ok("UID STORE 2 (UNCHANGEDSINCE 99999) +FLAGS.SILENT (\\Seen)")
        .await;
    let m = num_after(&r.text(), "MODSEQ (");
    assert_eq!(r.text(), format!("* 2 FETCH (UID 2 MODSEQ ({m}))\r\n"));
    // Already set: nothing changed, nothing reported.
    let r = a.ok("STORE 1 +FLAGS.SILENT (\\Flagged)").await;
    assert_eq!(r.text(), "");
    let r = a.ok("STORE 1 -FLAGS (\\Flagged)").await;
    assert!(r.has("* 1 FETCH (UID 1 FLAGS () MODSEQ ("), "{}", r.text());
    let r = a
        .ok("STORE 1 (UNCHANGEDSINCE 99999) +FLAGS (\\Answered)")
        .await;
    assert!(
        r.has("* 1 FETCH (UID 1 FLAGS (\\Answered) MODSEQ ("),
        "{}",
        r.text()
    );
    // Sets \Seen: the FETCH carries the new flags, modseq and UID.
    let r = a.ok("FETCH 1 (BODY[TEXT])").await;
    assert!(
        r.has("\\Seen) MODSEQ (") && r.has(" UID 1)"),
        "{}",
        r.text()
    );
    a.ok("STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    let r = a.ok("EXPUNGE").await;
    assert_eq!(r.text(), "* 1 EXPUNGE\r\n");
    assert_eq!(tagged_modseq(&r), None, "{}", r.tagged);
    s.stop().await;
}

/// RFC 7162 3.1: STATUS (HIGHESTMODSEQ) is a CONDSTORE enabling command; a
/// command that enables CONDSTORE with a mailbox selected (ENABLE included)
/// reports that mailbox's HIGHESTMODSEQ, as Dovecot does.
#[tokio::test]
async fn condstore_enabled_later_reports_the_selected_mailbox_modseq() {
    let s = TestServer::start().await;
    let mut a = s.login().await;
    a.append("INBOX", "", &message("m", "x")).await;
    a.ok("STATUS INBOX (HIGHESTMODSEQ)").await;
    a.select_settled("INBOX").await;
    let r = a.ok("STORE 1 +FLAGS (\\Seen)").await;
    assert!(
        r.has("* 1 FETCH (UID 1 FLAGS (\\Seen) MODSEQ ("),
        "{}",
        r.text()
    );

    let mut b = s.login().await;
    let r = b.ok("SELECT INBOX").await;
    let hms = num_after(&r.text(), "[HIGHESTMODSEQ ");
    let r = b.ok("ENABLE CONDSTORE").await;
    assert!(
        r.has(&format!("* OK [HIGHESTMODSEQ {hms}] ")),
        "{}",
        r.text()
    );
    // Only when it turns on.
    let r = b.ok("ENABLE CONDSTORE QRESYNC").await;
    assert!(!r.has("HIGHESTMODSEQ"), "{}", r.text());
    let mut c = s.login().await;
    c.select_settled("INBOX").await;
    let r = c.ok("FETCH 1 (MODSEQ)").await;
    assert!(
        r.lines_starting("* ")[0].starts_with(&format!("* OK [HIGHESTMODSEQ {hms}] ")),
        "{}",
        r.text()
    );
    s.stop().await;
}

/// An expunge held back during FETCH by sequence number (RFC 9051 7.5.1)
/// while a later flag change is reported with its MODSEQ: the client must
/// not resynchronise from that MODSEQ, or it would never learn of the
/// expunge, so the server reports a HIGHESTMODSEQ below the expunge until it
/// can announce it (RFC 7162).
#[tokio::test]
async fn a_held_back_expunge_lowers_the_reported_highest_modseq() {
    let s = TestServer::start().await;
    let mut a = s.login().await;
    for i in 0..3 {
        a.append("INBOX", "", &message(&format!("m{i}"), "x")).await;
    }
    let r = a.ok("SELECT INBOX (CONDSTORE)").await;
    let before = num_after(&r.text(), "[HIGHESTMODSEQ ");
    let mut b = s.login().await;
    b.ok("SELECT INBOX").await;
    b.ok("STORE 1 +FLAGS (\\Deleted)").await;
    b.ok("EXPUNGE").await;
    let expunge = highest_modseq(&mut b, "INBOX").await;
    b.ok("STORE 2 +FLAGS (\\Flagged)").await;

    let r = a.ok("FETCH 1 (UID)").await;
    let flagged = num_after(&r.text(), "MODSEQ (");
    assert!(flagged > expunge, "{}", r.text());
    assert!(!r.has("EXPUNGE"), "{}", r.text());
    let floor = num_after(&r.text(), "* OK [HIGHESTMODSEQ ");
    assert!(floor < expunge && floor >= before, "{floor}: {}", r.text());
    // Still held back at the next FETCH: said again.
    let r = a.ok("FETCH 2 (FLAGS)").await;
    assert_eq!(num_after(&r.text(), "* OK [HIGHESTMODSEQ "), floor);
    // Announced: no lower modseq any more.
    let r = a.ok("NOOP").await;
    assert!(
        r.has("* 1 EXPUNGE\r\n") && !r.has("HIGHESTMODSEQ"),
        "{}",
        r.text()
    );
    let r = a.ok("FETCH 1 (FLAGS)").await;
    assert!(!r.has("HIGHESTMODSEQ"), "{}", r.text());
    s.stop().await;
}

/// RFC 4731 3.2 / RFC 7162 3.1.9-3.1.10: the MODSEQ of a search result is the
/// highest of the messages returned: with only MIN or MAX those, and SORT
/// and ESORT report it too.
#[tokio::test]
async fn search_and_sort_results_carry_the_modseq_of_what_they_return() {
    let s = TestServer::start().await;
    let mut a = s.login().await;
    for i in 0..4 {
        a.append("INBOX", "", &message(&format!("m{i}"), "x")).await;
    }
    a.ok("SELECT INBOX").await;
    // Modseqs: message 2 highest, then 4, then 1; 3 lowest.
    for set in ["1", "4", "2"] {
        a.ok(&format!("STORE {set} +FLAGS (\\Answered)")).await;
    }
    let r = a.ok("FETCH 1:4 (MODSEQ)").await;
    let ms: Vec<u64> = (1..=4)
        .map(|n| {
            let line = r
                .lines_starting(&format!("* {n} FETCH"))
                .pop()
                .unwrap_or_default();
            num_after(&line, "MODSEQ (")
        })
        .collect();
    assert!(ms[1] > ms[3] && ms[3] > ms[0] && ms[0] > ms[2], "{ms:?}");
    let esearch = |r: &Response| r.lines_starting("* ESEARCH").pop().unwrap_or_default();
    let r = a.ok("SEARCH RETURN (MIN) MODSEQ 1").await;
    assert!(
        esearch(&r).ends_with(&format!(" MIN 1 MODSEQ {}\r\n", ms[0])),
        "{}",
        r.text()
    );
    let r = a.ok("SEARCH RETURN (MAX) MODSEQ 1").await;
    assert!(
        esearch(&r).ends_with(&format!(" MAX 4 MODSEQ {}\r\n", ms[3])),
        "{}",
        r.text()
    );
    let r = a.ok("SEARCH RETURN (MIN MAX) MODSEQ 1").await;
    assert!(
        esearch(&r).ends_with(&format!(" MODSEQ {}\r\n", ms[3])),
        "{}",
        r.text()
    );
    let r = a.ok("SEARCH RETURN (COUNT) MODSEQ 1").await;
    assert!(
        esearch(&r).ends_with(&format!(" MODSEQ {}\r\n", ms[1])),
        "{}",
        r.text()
    );
    let r = a.ok("SORT (ARRIVAL) US-ASCII MODSEQ 1").await;
    assert_eq!(
        r.lines_starting("* SORT"),
        vec![format!("* SORT 1 2 3 4 (MODSEQ {})\r\n", ms[1])]
    );
    let r = a.ok("SORT (ARRIVAL) US-ASCII ALL").await;
    assert_eq!(
        r.lines_starting("* SORT"),
        vec!["* SORT 1 2 3 4\r\n".to_string()]
    );
    // In sort order MIN is the first: message 4 (subject m3) when reversed.
    let r = a
        .ok("SORT RETURN (MIN) (REVERSE SUBJECT) US-ASCII MODSEQ 1")
        .await;
    assert!(
        esearch(&r).ends_with(&format!(" MIN 4 MODSEQ {}\r\n", ms[3])),
        "{}",
        r.text()
    );
    s.stop().await;
}

/// RFC 7162 3.2.5.1-3.2.5.2: known UIDs limit the flag changes reported too;
/// sequence match data that still holds limits VANISHED (EARLIER) to UIDs
/// above it; "*" is not allowed in these sets (section 7).
#[tokio::test]
async fn qresync_known_uids_and_sequence_match_data_limit_the_report() {
    let s = TestServer::start().await;
    let mut a = s.login().await;
    for i in 0..6 {
        a.append("INBOX", "", &message(&format!("m{i}"), "x")).await;
    }
    let r = a.ok("SELECT INBOX").await;
    let uv = num_after(&r.text(), "[UIDVALIDITY ");
    let ms = num_after(&r.text(), "[HIGHESTMODSEQ ");
    a.ok("STORE 1,6 +FLAGS (\\Flagged)").await;
    a.ok("STORE 5 +FLAGS (\\Deleted)").await;
    a.ok("EXPUNGE").await;

    let mut b = s.login().await;
    b.ok("ENABLE QRESYNC").await;
    let r = b
        .ok(&format!("EXAMINE INBOX (QRESYNC ({uv} {ms} 4:6))"))
        .await;
    assert!(r.has("* VANISHED (EARLIER) 5\r\n"), "{}", r.text());
    assert!(r.has("(UID 6 FLAGS (\\Flagged)"), "{}", r.text());
    assert!(
        !r.has("UID 1 "),
        "UID 1 is not among the known: {}",
        r.text()
    );
    // The client knew message 4 as UID 4 and 5 as UID 6 (consistent with
    // no expunge below 4, which still holds at 4): VANISHED is limited to
    // UIDs above 4 and still reports 5.
    let r = b
        .ok(&format!("EXAMINE INBOX (QRESYNC ({uv} {ms} 1:6 (4 4)))"))
        .await;
    assert!(r.has("* VANISHED (EARLIER) 5\r\n"), "{}", r.text());
    // A client whose view says message 5 is UID 6 already (it saw the
    // expunge): nothing below 6 vanished as far as it is concerned.
    let r = b
        .ok(&format!(
            "EXAMINE INBOX (QRESYNC ({uv} {ms} 1:6 (1,5 1,6)))"
        ))
        .await;
    assert!(!r.has("VANISHED"), "{}", r.text());
    // A pair that does not hold restricts nothing past the last that does.
    let r = b
        .ok(&format!(
            "EXAMINE INBOX (QRESYNC ({uv} {ms} 1:6 (1,4 1,5)))"
        ))
        .await;
    assert!(r.has("* VANISHED (EARLIER) 5\r\n"), "{}", r.text());
    b.bad(&format!("EXAMINE INBOX (QRESYNC ({uv} {ms} 1:*))"))
        .await;
    b.bad(&format!(
        "EXAMINE INBOX (QRESYNC ({uv} {ms} 1:6 (1:* 1:6)))"
    ))
    .await;
    s.stop().await;
}

/// A mailbox keeps a bounded number of expunged UIDs (`expunge_history`).
/// A client resynchronising from a modseq whose expunges are still kept is
/// told exactly those; one from before them is told every UID the mailbox
/// no longer has (limited by its known UIDs), as Dovecot does once its
/// transaction log has rotated. RFC 7162 3.2.5.2 gives the client known
/// UIDs and sequence match data to narrow such reports.
#[tokio::test]
async fn expunges_older_than_the_kept_history_are_reported_as_every_missing_uid() {
    let s = TestServer::start_with(|c| c.expunge_history = 2).await;
    let mut a = s.login().await;
    for i in 0..8 {
        a.append("INBOX", "", &message(&format!("m{i}"), "x")).await;
    }
    let r = a.ok("SELECT INBOX").await;
    let uv = num_after(&r.text(), "[UIDVALIDITY ");
    // Expunges UID n alone; returns the mailbox's modseq after it.
    async fn expunge(a: &mut Client, uid: u32) -> u64 {
        a.ok(&format!("UID STORE {uid} +FLAGS (\\Deleted)")).await;
        a.ok("EXPUNGE").await;
        highest_modseq(a, "INBOX").await
    }
    let ms1 = expunge(&mut a, 1).await;
    let ms2 = expunge(&mut a, 2).await;
    let mut b = s.login().await;
    b.ok("ENABLE QRESYNC").await;
    let r = b.ok(&format!("EXAMINE INBOX (QRESYNC ({uv} {ms1}))")).await;
    assert!(r.has("* VANISHED (EARLIER) 2\r\n"), "{}", r.text());

    // Two more: the two oldest are dropped (the floor is now ms2).
    expunge(&mut a, 3).await;
    expunge(&mut a, 4).await;
    let r = b.ok(&format!("EXAMINE INBOX (QRESYNC ({uv} {ms2}))")).await;
    assert!(r.has("* VANISHED (EARLIER) 3:4\r\n"), "{}", r.text());
    // From ms1 the expunge of UID 2 is no longer known exactly: every
    // missing UID is reported, UID 1 (expunged before ms1) included...
    let r = b.ok(&format!("EXAMINE INBOX (QRESYNC ({uv} {ms1}))")).await;
    assert!(r.has("* VANISHED (EARLIER) 1:4\r\n"), "{}", r.text());
    // ...limited by the UIDs the client says it knows.
    let r = b
        .ok(&format!("EXAMINE INBOX (QRESYNC ({uv} {ms1} 2:8))"))
        .await;
    assert!(r.has("* VANISHED (EARLIER) 2:4\r\n"), "{}", r.text());
    // The same through UID FETCH (CHANGEDSINCE ... VANISHED).
    let r = b
        .ok(&format!(
            "UID FETCH 1:8 (FLAGS) (CHANGEDSINCE {ms1} VANISHED)"
        ))
        .await;
    assert!(r.has("* VANISHED (EARLIER) 1:4\r\n"), "{}", r.text());
    s.stop().await;
}

#[tokio::test]
async fn condstore_enabled_by_select_parameter_adds_modseq_to_unsolicited_fetch() {
    let s = TestServer::start().await;
    let mut a = s.login().await;
    let mut b = s.login().await;
    a.append("INBOX", "", &message("m", "x")).await;
    let r = a.select_settled("INBOX (CONDSTORE)").await;
    assert!(r.has("[HIGHESTMODSEQ "));
    b.select_settled("INBOX").await;
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
            // UIDs this client appended (APPENDUID).
            let mut mine = Vec::new();
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
                if cmd == "APPEND" {
                    mine.push(num_after(&r.tagged, "[APPENDUID ") as u32);
                }
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
            let uids = r.search_numbers();
            assert_eq!(
                uids.len(),
                model.uids.len(),
                "client {client}: SEARCH ALL vs EXISTS"
            );
            // IMAP4rev1 \Recent: what it appended to its selected mailbox
            // is recent in this session (it was the first to learn of it).
            let r = c.ok("UID SEARCH RECENT").await;
            let recent: std::collections::BTreeSet<u32> = r.search_numbers().into_iter().collect();
            for u in mine.iter().filter(|u| uids.contains(u)) {
                assert!(
                    recent.contains(u),
                    "client {client}: appended UID {u} not \\Recent"
                );
            }
            (uids, recent)
        }));
    }
    let mut finals = Vec::new();
    let mut recents: Vec<std::collections::BTreeSet<u32>> = Vec::new();
    for t in tasks {
        let (uids, recent) = t.await.expect("client task");
        // \Recent in one session at most (RFC 3501 2.3.2).
        for (i, other) in recents.iter().enumerate() {
            let both: Vec<&u32> = recent.intersection(other).collect();
            assert!(both.is_empty(), "\\Recent in two sessions ({i}): {both:?}");
        }
        recents.push(recent);
        finals.push(uids);
    }
    // After a final NOOP every client sees the same mailbox.
    let mut c = s.login().await;
    c.ok("SELECT INBOX").await;
    let r = c.ok("UID SEARCH ALL").await;
    let truth = r.search_numbers();
    // A fresh SELECT (served from the shared snapshot of the mailbox, kept
    // up to date from what the sessions published) shows what the store
    // holds.
    let (st, inbox) = s.other_process("INBOX");
    assert_eq!(
        truth,
        held_uids(&st, inbox),
        "a fresh SELECT against the store"
    );
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
