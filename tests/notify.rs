//! NOTIFY (RFC 5465): events about other mailboxes and the selected one,
//! delivered without the client issuing a command; and the metrics endpoint's
//! synchronisation-latency histogram.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(3);

#[tokio::test]
async fn status_for_other_mailboxes_arrives_unsolicited() {
    let s = TestServer::start().await;
    let mut a = s.login().await;
    let mut b = s.login().await;
    let r = a.ok("CAPABILITY").await;
    assert!(r.has(" NOTIFY"));
    a.ok("SELECT INBOX").await;
    let r = a
        .ok("NOTIFY SET STATUS (PERSONAL (MessageNew MessageExpunge))")
        .await;
    // STATUS at once for every watched mailbox but the selected one.
    assert_eq!(r.lines_starting("* STATUS").len(), 5, "{}", r.text());
    assert!(
        r.has("* STATUS Archive (MESSAGES 0 UIDNEXT 1 UIDVALIDITY "),
        "{}",
        r.text()
    );
    b.append("Archive", "", &message("news", "x")).await;
    let l = a
        .read_line_timeout(WAIT)
        .await
        .expect("STATUS pushed without a command");
    assert!(
        l.starts_with("* STATUS Archive (MESSAGES 1 UIDNEXT 2 UIDVALIDITY "),
        "{l}"
    );
    assert!(l.contains("UNSEEN 1"), "{l}");
    // Changes made by this session itself are not echoed back.
    a.append("Archive", "", &message("mine", "x")).await;
    assert_eq!(a.read_line_timeout(Duration::from_millis(300)).await, None);
    a.ok("NOTIFY NONE").await;
    b.append("Archive", "", &message("quiet", "x")).await;
    assert_eq!(a.read_line_timeout(Duration::from_millis(300)).await, None);
    s.stop().await;
}

#[tokio::test]
async fn selected_mailbox_events_with_fetch_attributes() {
    let s = TestServer::start().await;
    let mut a = s.login().await;
    let mut b = s.login().await;
    a.ok("SELECT INBOX").await;
    a.ok("NOTIFY SET (SELECTED (MessageNew (UID FLAGS) MessageExpunge FlagChange))")
        .await;
    b.ok("SELECT INBOX").await;
    b.append("INBOX", "\\Seen", &message("hello", "x")).await;
    let l = a.read_line_timeout(WAIT).await.expect("EXISTS");
    assert_eq!(l, "* 1 EXISTS\r\n");
    let l = a
        .read_line_timeout(WAIT)
        .await
        .expect("FETCH of the new message");
    assert_eq!(l, "* 1 FETCH (UID 1 FLAGS (\\Seen))\r\n");
    b.ok("STORE 1 +FLAGS (\\Deleted)").await;
    let l = a.read_line_timeout(WAIT).await.expect("flag change");
    assert!(
        l.starts_with("* 1 FETCH (UID 1 FLAGS (\\Deleted \\Seen))"),
        "{l}"
    );
    b.ok("EXPUNGE").await;
    let l = a.read_line_timeout(WAIT).await.expect("expunge");
    assert_eq!(l, "* 1 EXPUNGE\r\n");
    a.ok("NOOP").await;
    s.stop().await;
}

/// With NOTIFY on the selected mailbox, its deletion by another session
/// ends this one at once, without a command (as in IDLE; see
/// multi_session.rs): `* BYE`, then the connection closes.
#[tokio::test]
async fn selected_mailbox_deleted_under_notify_ends_the_session() {
    let s = TestServer::start().await;
    let mut a = s.login().await;
    let mut b = s.login().await;
    b.ok("CREATE Work").await;
    a.ok("SELECT Work").await;
    a.ok("NOTIFY SET (SELECTED (MessageNew MessageExpunge))")
        .await;
    b.ok("DELETE Work").await;
    a.expect_bye_then_closed(MAILBOX_DELETED).await;
    s.stop().await;
}

#[tokio::test]
async fn mailbox_name_and_subscription_events() {
    let s = TestServer::start().await;
    let mut a = s.login().await;
    let mut b = s.login().await;
    a.ok("NOTIFY SET (PERSONAL (MailboxName SubscriptionChange))")
        .await;
    b.ok("CREATE Projects").await;
    assert_eq!(pushed(&mut a).await, "* LIST () \"/\" Projects\r\n");
    b.ok("RENAME Projects Work").await;
    assert_eq!(
        pushed(&mut a).await,
        "* LIST () \"/\" Work (\"OLDNAME\" (Projects))\r\n"
    );
    b.ok("SUBSCRIBE Work").await;
    assert_eq!(pushed(&mut a).await, "* LIST (\\Subscribed) \"/\" Work\r\n");
    b.ok("DELETE Work").await;
    assert_eq!(
        pushed(&mut a).await,
        "* LIST (\\NonExistent) \"/\" Work\r\n"
    );
    s.stop().await;
}

#[tokio::test]
async fn notify_errors() {
    let s = TestServer::start().await;
    let mut a = s.login().await;
    a.bad("NOTIFY SET (PERSONAL (MessageNew))").await;
    a.bad("NOTIFY SET (PERSONAL (FlagChange))").await;
    a.bad("NOTIFY SET (NOWHERE (MessageNew MessageExpunge))")
        .await;
    a.ok("NOTIFY SET (INBOXES NONE)").await;
    s.stop().await;
}

/// The next line the server sends unprompted (within WAIT).
async fn pushed(c: &mut Client) -> String {
    c.read_line_timeout(WAIT).await.expect("a line within WAIT")
}

/// Nothing more arrives (for a short while).
async fn quiet(c: &mut Client) {
    assert_eq!(c.read_line_timeout(Duration::from_millis(300)).await, None);
}

/// Sends `n` commands at once (`cmd(i)`) and waits for all their tagged
/// responses.
async fn pipeline(c: &mut Client, n: usize, cmd: impl Fn(usize) -> String) {
    let mut buf = String::new();
    for i in 0..n {
        buf.push_str(&format!("p{i} {}\r\n", cmd(i)));
    }
    c.send_raw(buf.as_bytes()).await;
    for i in 0..n {
        let r = c.read_until_tagged(&format!("p{i}")).await;
        assert!(r.tagged.starts_with("OK"), "{}", r.tagged);
    }
}

/// RFC 5465 5.8: a session that cannot keep up with the events (more than
/// the change bus holds arrived while it was busy with a command) is told
/// `* OK [NOTIFICATIONOVERFLOW]` and is then as after NOTIFY NONE. Nothing
/// else is sent outside a command: in particular no EXPUNGE (RFC 9051
/// 7.5.1); the next command reports the selected mailbox's changes.
#[tokio::test]
async fn overflow_is_announced_and_ends_notify() {
    let s = TestServer::start().await;
    let mut a = s.login().await;
    let mut b = s.login().await;
    b.ok("CREATE Work").await;
    b.append("Work", "", &message("one", "x")).await;
    b.append("Work", "", &message("two", "x")).await;
    b.append("Archive", "", &message("flag me", "x")).await;
    a.ok("SELECT Work").await;
    a.ok("NOTIFY SET (SELECTED (MessageNew MessageExpunge FlagChange)) (PERSONAL (MessageNew MessageExpunge MailboxName))")
        .await;
    // A command that waits for its literal: no event is read meanwhile.
    a.send_raw(b"s SEARCH SUBJECT {1}\r\n").await;
    let cont = a.read_line_timeout(WAIT).await.expect("continuation");
    assert!(cont.starts_with('+'), "{cont}");
    b.ok("SELECT Work").await;
    b.ok("UID STORE 1 +FLAGS (\\Deleted)").await;
    b.ok("UID EXPUNGE 1").await;
    b.ok("SELECT Archive").await;
    // More events than the change bus holds (1024).
    pipeline(&mut b, 1100, |i| {
        format!(
            "STORE 1 {}FLAGS (\\Flagged)",
            if i % 2 == 0 { '+' } else { '-' }
        )
    })
    .await;
    a.send_raw(b"o\r\n").await;
    // SEARCH by sequence number: no EXPUNGE in its response either.
    let r = a.read_until_tagged("s").await;
    assert!(r.tagged.starts_with("OK"), "{}", r.tagged);
    assert!(!r.has("EXPUNGE"), "{}", r.text());
    let l = a.read_line_timeout(WAIT).await.expect("overflow");
    assert!(l.starts_with("* OK [NOTIFICATIONOVERFLOW] "), "{l}");
    quiet(&mut a).await;
    // As after NOTIFY NONE: no more notifications.
    b.ok("CREATE Later").await;
    b.append("Archive", "", &message("more", "x")).await;
    b.append("Work", "", &message("three", "x")).await;
    quiet(&mut a).await;
    // The selected mailbox is brought up to date by commands, as usual.
    let r = a.ok("NOOP").await;
    assert!(r.has("* 1 EXPUNGE\r\n"), "{}", r.text());
    assert!(r.has("* 2 EXISTS\r\n"), "{}", r.text());
    s.stop().await;
}

/// RFC 5465 3.1, 5: events of the selected mailbox that were not asked
/// for (no FlagChange, SELECTED NONE, or no SELECTED group at all) are not
/// sent between commands; the next command reports them as usual.
#[tokio::test]
async fn selected_events_not_asked_for_wait_for_a_command() {
    let s = TestServer::start().await;
    let mut a = s.login().await;
    let mut b = s.login().await;
    b.append("INBOX", "", &message("one", "x")).await;
    b.ok("SELECT INBOX").await;
    a.ok("SELECT INBOX").await;
    a.ok("NOTIFY SET (SELECTED (MessageNew MessageExpunge))")
        .await;
    b.ok("STORE 1 +FLAGS (\\Flagged)").await;
    quiet(&mut a).await;
    b.append("INBOX", "", &message("two", "x")).await;
    assert_eq!(pushed(&mut a).await, "* 2 EXISTS\r\n");
    quiet(&mut a).await;
    let r = a.ok("NOOP").await;
    assert!(r.has("* 1 FETCH (UID 1 FLAGS (\\Flagged))"), "{}", r.text());
    for set in [
        "NOTIFY SET (SELECTED NONE)",
        "NOTIFY SET (SELECTED-DELAYED NONE) (PERSONAL (MessageNew MessageExpunge))",
        // No SELECTED group: the same as SELECTED NONE.
        "NOTIFY SET (PERSONAL (MessageNew MessageExpunge FlagChange))",
    ] {
        a.ok(set).await;
        b.ok("STORE 1 -FLAGS (\\Flagged)").await;
        b.append("INBOX", "", &message("more", "x")).await;
        quiet(&mut a).await;
        let r = a.ok("NOOP").await;
        assert!(r.has(" EXISTS\r\n"), "{set}: {}", r.text());
        assert!(r.has("* 1 FETCH (UID 1 FLAGS ())"), "{set}: {}", r.text());
        b.ok("STORE 1 +FLAGS (\\Flagged)").await;
        a.ok("NOOP").await;
    }
    s.stop().await;
}

/// RFC 5465 3.1: events the server does not support (no ANNOTATE, no
/// METADATA) are refused with a tagged NO [BADEVENT (supported events)].
/// An unknown event name is an `event-ext` atom in the RFC's grammar (8), so
/// it gets the same NO (Dovecot answers BAD there); the settings in effect
/// stay.
#[tokio::test]
async fn unsupported_events_get_no_badevent() {
    let s = TestServer::start().await;
    let mut a = s.login().await;
    let mut b = s.login().await;
    a.ok("NOTIFY SET (PERSONAL (MailboxName))").await;
    for (group, event) in [
        (
            "(PERSONAL (MessageNew MessageExpunge AnnotationChange))",
            "AnnotationChange",
        ),
        (
            "(PERSONAL (MailboxMetadataChange))",
            "MailboxMetadataChange",
        ),
        ("(INBOXES (ServerMetadataChange))", "ServerMetadataChange"),
        ("(PERSONAL (MailboxName Frobnicate))", "FROBNICATE"),
    ] {
        let r = a.no(&format!("NOTIFY SET {group}")).await;
        assert_eq!(
            r.tagged,
            format!("NO [BADEVENT (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange)] Unsupported NOTIFY event {event}")
        );
    }
    b.ok("CREATE Projects").await;
    assert_eq!(pushed(&mut a).await, "* LIST () \"/\" Projects\r\n");
    s.stop().await;
}

/// RFC 5465 6.1: one of SELECTED and SELECTED-DELAYED per NOTIFY, and only
/// message events with them; anything else is an error (tagged BAD).
#[tokio::test]
async fn invalid_selected_groups_are_bad() {
    let s = TestServer::start().await;
    let mut a = s.login().await;
    let mut b = s.login().await;
    a.ok("NOTIFY SET (PERSONAL (MailboxName))").await;
    for bad in [
        "NOTIFY SET (SELECTED (MessageNew MessageExpunge)) (SELECTED-DELAYED (MessageNew MessageExpunge))",
        "NOTIFY SET (SELECTED NONE) (SELECTED NONE)",
        "NOTIFY SET (SELECTED (MailboxName))",
        "NOTIFY SET (SELECTED-DELAYED (MessageNew MessageExpunge SubscriptionChange))",
    ] {
        let r = a.bad(bad).await;
        assert!(r.tagged.len() > "BAD ".len() + 10, "{}", r.tagged);
    }
    b.ok("CREATE Projects").await;
    assert_eq!(pushed(&mut a).await, "* LIST () \"/\" Projects\r\n");
    s.stop().await;
}

/// A flag change in another mailbox is reported (STATUS) only with
/// FlagChange; MessageNew and MessageExpunge are about messages coming and
/// going (as Dovecot).
#[tokio::test]
async fn flag_changes_elsewhere_need_flagchange() {
    let s = TestServer::start().await;
    let mut a = s.login().await;
    let mut b = s.login().await;
    b.append("Archive", "", &message("one", "x")).await;
    a.ok("NOTIFY SET (PERSONAL (MessageNew MessageExpunge))")
        .await;
    b.ok("SELECT Archive").await;
    b.ok("STORE 1 +FLAGS (\\Seen)").await;
    quiet(&mut a).await;
    b.append("Archive", "", &message("two", "x")).await;
    let l = pushed(&mut a).await;
    assert!(
        l.starts_with("* STATUS Archive (MESSAGES 2 UIDNEXT 3 "),
        "{l}"
    );
    b.ok("STORE 2 +FLAGS (\\Seen)").await;
    quiet(&mut a).await;
    b.ok("STORE 1 +FLAGS (\\Deleted)").await;
    b.ok("EXPUNGE").await;
    let l = pushed(&mut a).await;
    assert!(
        l.starts_with("* STATUS Archive (MESSAGES 1 UIDNEXT 3 "),
        "{l}"
    );
    quiet(&mut a).await;
    a.ok("NOTIFY SET (PERSONAL (MessageNew MessageExpunge FlagChange))")
        .await;
    b.ok("UID STORE 2 -FLAGS (\\Seen)").await;
    let l = pushed(&mut a).await;
    assert!(l.starts_with("* STATUS Archive (MESSAGES 1 "), "{l}");
    assert!(l.contains("UNSEEN 1"), "{l}");
    s.stop().await;
}

/// RFC 5465 4: during IDLE the server sends exactly the events asked for
/// with NOTIFY; the rest is reported when IDLE ends.
#[tokio::test]
async fn idle_sends_only_the_events_notify_asked_for() {
    let s = TestServer::start().await;
    let mut a = s.login().await;
    let mut b = s.login().await;
    b.append("INBOX", "", &message("one", "x")).await;
    b.ok("SELECT INBOX").await;
    a.ok("SELECT INBOX").await;
    a.ok("NOTIFY SET (PERSONAL (MessageNew MessageExpunge))")
        .await;
    a.send_raw(b"i IDLE\r\n").await;
    assert!(pushed(&mut a).await.starts_with('+'));
    b.append("INBOX", "", &message("two", "x")).await;
    b.ok("STORE 1 +FLAGS (\\Flagged)").await;
    quiet(&mut a).await;
    b.append("Archive", "", &message("elsewhere", "x")).await;
    let l = pushed(&mut a).await;
    assert!(l.starts_with("* STATUS Archive (MESSAGES 1 "), "{l}");
    a.send_raw(b"DONE\r\n").await;
    let r = a.read_until_tagged("i").await;
    assert!(r.has("* 2 EXISTS\r\n"), "{}", r.text());
    assert!(r.has("FLAGS (\\Flagged)"), "{}", r.text());
    a.ok("NOTIFY SET (SELECTED (MessageNew MessageExpunge))")
        .await;
    a.send_raw(b"j IDLE\r\n").await;
    assert!(pushed(&mut a).await.starts_with('+'));
    b.ok("STORE 1 -FLAGS (\\Flagged)").await;
    quiet(&mut a).await;
    b.append("INBOX", "", &message("three", "x")).await;
    assert_eq!(pushed(&mut a).await, "* 3 EXISTS\r\n");
    quiet(&mut a).await;
    a.send_raw(b"DONE\r\n").await;
    let r = a.read_until_tagged("j").await;
    assert!(r.has("* 1 FETCH (UID 1 FLAGS ())"), "{}", r.text());
    s.stop().await;
}

/// Only what happens after NOTIFY SET is reported: not changes made
/// before it, nor while NOTIFY NONE was in effect (the STATUS option is the
/// way to catch up).
#[tokio::test]
async fn only_events_after_notify_set_are_reported() {
    let s = TestServer::start().await;
    let mut a = s.login().await;
    let mut b = s.login().await;
    b.ok("CREATE Ghost").await;
    b.ok("DELETE Ghost").await;
    b.append("Archive", "", &message("early", "x")).await;
    a.ok("NOTIFY SET (PERSONAL (MailboxName MessageNew MessageExpunge))")
        .await;
    quiet(&mut a).await;
    a.ok("NOTIFY NONE").await;
    b.ok("CREATE Ghost2").await;
    b.ok("DELETE Ghost2").await;
    b.append("Archive", "", &message("meanwhile", "x")).await;
    a.ok("NOTIFY SET (PERSONAL (MailboxName MessageNew MessageExpunge))")
        .await;
    quiet(&mut a).await;
    b.ok("CREATE Real").await;
    assert_eq!(pushed(&mut a).await, "* LIST () \"/\" Real\r\n");
    quiet(&mut a).await;
    s.stop().await;
}

/// RENAME INBOX moves INBOX's messages to a new mailbox and INBOX stays
/// (RFC 9051 6.3.6): a new name, not a rename, and INBOX's messages went.
#[tokio::test]
async fn rename_inbox_is_reported_as_a_new_mailbox() {
    let s = TestServer::start().await;
    let mut a = s.login().await;
    let mut b = s.login().await;
    b.append("INBOX", "", &message("one", "x")).await;
    a.ok("NOTIFY SET (PERSONAL (MailboxName MessageNew MessageExpunge))")
        .await;
    b.ok("RENAME INBOX Old").await;
    assert_eq!(pushed(&mut a).await, "* LIST () \"/\" Old\r\n");
    let l = pushed(&mut a).await;
    assert!(l.starts_with("* STATUS INBOX (MESSAGES 0 "), "{l}");
    quiet(&mut a).await;
    s.stop().await;
}

/// RFC 5465 5.4: a LIST for each mailbox name a command affects: the
/// parents CREATE and RENAME make, and a RENAME's inferiors (with OLDNAME).
#[tokio::test]
async fn parents_and_inferiors_get_their_own_list() {
    let s = TestServer::start().await;
    let mut a = s.login().await;
    let mut b = s.login().await;
    a.ok("NOTIFY SET (PERSONAL (MailboxName))").await;
    b.ok("CREATE Projects/2024/Q1").await;
    for name in ["Projects", "Projects/2024", "Projects/2024/Q1"] {
        assert_eq!(pushed(&mut a).await, format!("* LIST () \"/\" {name}\r\n"));
    }
    b.ok("CREATE Projects/2024/Q2").await;
    assert_eq!(pushed(&mut a).await, "* LIST () \"/\" Projects/2024/Q2\r\n");
    quiet(&mut a).await;
    b.ok("RENAME Projects/2024 Old/2024").await;
    for line in [
        "* LIST () \"/\" Old\r\n",
        "* LIST () \"/\" Old/2024 (\"OLDNAME\" (Projects/2024))\r\n",
        "* LIST () \"/\" Old/2024/Q1 (\"OLDNAME\" (Projects/2024/Q1))\r\n",
        "* LIST () \"/\" Old/2024/Q2 (\"OLDNAME\" (Projects/2024/Q2))\r\n",
    ] {
        assert_eq!(pushed(&mut a).await, line);
    }
    quiet(&mut a).await;
    s.stop().await;
}

async fn scrape(addr: std::net::SocketAddr) -> String {
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    sock.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    tokio::time::timeout(TIMEOUT, sock.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    out
}

/// The value of one series (name and labels) in a scrape; 0 when absent.
fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0, |n| n.trim().parse().unwrap())
}

#[tokio::test]
async fn metrics_endpoint_reports_push_latency_sessions_and_commands() {
    let s = TestServer::start_with(|c| c.listen_metrics = "127.0.0.1:0".into()).await;
    let metrics = s
        .server
        .as_ref()
        .unwrap()
        .metrics_addr
        .expect("metrics address");
    let mut a = s.login().await;
    let mut b = s.login().await;
    a.ok("SELECT INBOX").await;
    a.send_raw(b"i IDLE\r\n").await;
    pushed(&mut a).await;
    b.append("INBOX", "", &message("m", "x")).await;
    assert_eq!(pushed(&mut a).await, "* 1 EXISTS\r\n");
    a.send_raw(b"DONE\r\n").await;
    a.read_until_tagged("i").await;
    let mut c = s.client().await;
    c.no("LOGIN alice wrong").await;
    let text = scrape(metrics).await;
    assert!(text.starts_with("HTTP/1.0 200 OK"), "{text}");
    assert!(
        text.contains("pillarbox_push_delay_seconds_count 1"),
        "{text}"
    );
    assert!(text.contains("pillarbox_sessions_active 3"), "{text}");
    assert!(
        text.contains("pillarbox_commands_total{command=\"LOGIN\",status=\"OK\"} 2"),
        "{text}"
    );
    assert!(text.contains("pillarbox_auth_failures_total 1"), "{text}");
    assert!(
        text.contains("pillarbox_appended_messages_total 1"),
        "{text}"
    );
    assert!(
        text.contains("pillarbox_command_duration_seconds_bucket{"),
        "{text}"
    );
    // A client that leaves during IDLE: the IDLE got no tagged response,
    // and the session ended by end of input.
    let ended = |text: &str, reason: &str| {
        metric(
            text,
            &format!("pillarbox_session_end_total{{reason=\"{reason}\"}}"),
        )
    };
    let before = ended(&text, "eof");
    b.ok("SELECT INBOX").await;
    // The last tagged status before the IDLE is BAD: not what IDLE counts.
    b.bad("FETCH 9 (FLAGS)").await;
    b.send_raw(b"j IDLE\r\n").await;
    pushed(&mut b).await;
    drop(b);
    let mut text = scrape(metrics).await;
    for _ in 0..50 {
        if ended(&text, "eof") > before {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        text = scrape(metrics).await;
    }
    assert_eq!(ended(&text, "eof"), before + 1, "{text}");
    assert_eq!(ended(&text, "error"), 0, "{text}");
    assert!(
        text.contains("pillarbox_commands_total{command=\"IDLE\",status=\"none\"} 1"),
        "{text}"
    );
    let mut sock = tokio::net::TcpStream::connect(metrics).await.unwrap();
    sock.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
    let mut out = String::new();
    sock.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.0 404"));
    s.stop().await;
}

/// The summary and body caches count their lookups: a message's first
/// FETCH of each kind misses, the next one (from another session too) hits.
#[tokio::test]
async fn metrics_count_cache_hits_and_misses() {
    let s = TestServer::start_with(|c| c.listen_metrics = "127.0.0.1:0".into()).await;
    let metrics = s.server.as_ref().unwrap().metrics_addr.unwrap();
    let count = |text: &str, cache: &str, result: &str| {
        metric(
            text,
            &format!("pillarbox_cache_lookups_total{{cache=\"{cache}\",result=\"{result}\"}}"),
        )
    };
    let grew = |from: &str, to: &str, cache: &str, result: &str| {
        count(to, cache, result) - count(from, cache, result)
    };
    let mut a = s.login().await;
    let mut b = s.login().await;
    a.append("INBOX", "", &message("cached", "body")).await;
    a.ok("SELECT INBOX").await;
    b.ok("SELECT INBOX").await;
    let before = scrape(metrics).await;
    a.ok("FETCH 1 (ENVELOPE)").await;
    a.ok("FETCH 1 (BODY.PEEK[])").await;
    let first = scrape(metrics).await;
    assert_eq!(grew(&before, &first, "summary", "miss"), 1, "{first}");
    assert_eq!(grew(&before, &first, "body", "miss"), 1, "{first}");
    b.ok("FETCH 1 (ENVELOPE)").await;
    b.ok("FETCH 1 (BODY.PEEK[])").await;
    let second = scrape(metrics).await;
    // (BODY[] takes the summary too: its sections are found through it.)
    assert!(grew(&first, &second, "summary", "hit") >= 1, "{second}");
    assert_eq!(grew(&first, &second, "summary", "miss"), 0, "{second}");
    assert_eq!(grew(&first, &second, "body", "hit"), 1, "{second}");
    assert_eq!(grew(&first, &second, "body", "miss"), 0, "{second}");
    s.stop().await;
}

/// A session's own change to a watched mailbox is not reported, but it
/// must not swallow another session's: when the store shows more than the
/// own change (here a message added through the server's own store, which
/// publishes nothing, standing for another session's commit not yet
/// published), the counts the client was told stay, and the next change
/// by another session, even one that leaves the counts alone, reports
/// them. (Audit: without FlagChange, 48 of 100 rounds of two sessions
/// appending at once lost the other session's message.)
#[tokio::test]
async fn own_changes_do_not_swallow_another_sessions() {
    let s = TestServer::start().await;
    let mut a = s.login().await;
    let mut b = s.login().await;
    b.append("Archive", "", &message("one", "x")).await;
    a.ok("NOTIFY SET (PERSONAL (MessageNew MessageExpunge))")
        .await;
    let (store, archive) = s.own_store("Archive");
    store
        .append(archive, &[new_message("unpublished")])
        .unwrap();
    // Own: not reported.
    a.append("Archive", "", &message("mine", "x")).await;
    quiet(&mut a).await;
    // Another session's flag change: no count of its own, but the counts
    // differ from what the client was told.
    b.ok("SELECT Archive").await;
    b.ok("STORE 1 +FLAGS (\\Seen)").await;
    let l = pushed(&mut a).await;
    assert!(
        l.starts_with("* STATUS Archive (MESSAGES 3 UIDNEXT 4 "),
        "{l}"
    );
    // Own changes alone are still taken in silently.
    a.append("Archive", "", &message("mine too", "x")).await;
    b.ok("STORE 1 -FLAGS (\\Seen)").await;
    quiet(&mut a).await;
    s.stop().await;
}
