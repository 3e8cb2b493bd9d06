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
    assert_eq!(
        a.read_line_timeout(WAIT).await.unwrap(),
        "* LIST () \"/\" Projects\r\n"
    );
    b.ok("RENAME Projects Work").await;
    assert_eq!(
        a.read_line_timeout(WAIT).await.unwrap(),
        "* LIST () \"/\" Work (\"OLDNAME\" (Projects))\r\n"
    );
    b.ok("SUBSCRIBE Work").await;
    assert_eq!(
        a.read_line_timeout(WAIT).await.unwrap(),
        "* LIST (\\Subscribed) \"/\" Work\r\n"
    );
    b.ok("DELETE Work").await;
    assert_eq!(
        a.read_line_timeout(WAIT).await.unwrap(),
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
    a.read_line_timeout(WAIT).await.unwrap();
    b.append("INBOX", "", &message("m", "x")).await;
    assert_eq!(a.read_line_timeout(WAIT).await.unwrap(), "* 1 EXISTS\r\n");
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
    let mut sock = tokio::net::TcpStream::connect(metrics).await.unwrap();
    sock.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
    let mut out = String::new();
    sock.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.0 404"));
    s.stop().await;
}
