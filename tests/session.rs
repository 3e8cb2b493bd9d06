//! Connection-level behaviour: greeting, capabilities, authentication, TLS,
//! bad input, limits, timeouts and shutdown.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[tokio::test]
async fn greeting_and_capabilities() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    assert!(
        c.greeting
            .starts_with("* OK [CAPABILITY IMAP4rev1 IMAP4rev2"),
        "{}",
        c.greeting
    );
    let r = c.ok("CAPABILITY").await;
    let caps = r.lines_starting("* CAPABILITY")[0].clone();
    assert!(caps.contains(" STARTTLS"));
    // Loopback is trusted by default, as in Dovecot.
    assert!(caps.contains(" AUTH=PLAIN"));
    assert!(
        !caps.contains("IDLE"),
        "post-auth capabilities must not be listed before login"
    );
    let r = c.ok(&format!("LOGIN {USER} {PASS}")).await;
    assert!(r.tagged.contains("[CAPABILITY IMAP4rev1"));
    let r = c.ok("CAPABILITY").await;
    let caps = r.lines_starting("* CAPABILITY")[0].clone();
    for cap in [
        "IDLE",
        "UIDPLUS",
        "MOVE",
        "ESEARCH",
        "SEARCHRES",
        "LIST-EXTENDED",
        "SPECIAL-USE",
        "BINARY",
        "APPENDLIMIT=",
        "CONDSTORE",
        "LITERAL+",
    ] {
        assert!(caps.contains(cap), "missing {cap} in {caps}");
    }
    assert!(!caps.contains("STARTTLS"));
    // The tagged texts: the command's own, or "<command> completed", after
    // the response code.
    assert_eq!(c.ok("NOOP").await.tagged.trim_end(), "OK NOOP completed");
    assert_eq!(
        c.ok("SELECT INBOX").await.tagged.trim_end(),
        "OK [READ-WRITE] Select completed"
    );
    assert_eq!(c.ok("CHECK").await.tagged.trim_end(), "OK CHECK completed");
    let r = c.ok("LOGOUT").await;
    assert!(r.has("* BYE"));
    assert!(c.is_closed().await);
    s.stop().await;
}

#[tokio::test]
async fn wrong_password_is_delayed_counted_and_disconnects() {
    let s = TestServer::start_with(|c| c.auth.max_failures = 2).await;
    let mut c = s.client().await;
    let r = c.no(&format!("LOGIN {USER} wrong")).await;
    assert!(r.tagged.contains("[AUTHENTICATIONFAILED]"), "{}", r.tagged);
    c.no("LOGIN nosuchuser x").await;
    assert!(
        c.is_closed().await,
        "connection must close after max_failures"
    );
    // A fresh connection still works.
    let mut c = s.login().await;
    c.ok("NOOP").await;
    s.stop().await;
}

/// Failures from one address add up across connections (as Dovecot's
/// penalty): a client opening a fresh connection per guess still waits
/// longer and longer (here 50, 100, 200, then at least 400 ms; only the
/// lower bound is checked).
#[tokio::test]
async fn failures_from_one_address_add_up_across_connections() {
    let s = TestServer::start_with(|c| c.auth.failure_delay_ms = 50).await;
    for n in 0..4u32 {
        let mut c = s.client().await;
        let started = std::time::Instant::now();
        let r = c.no(&format!("LOGIN {USER} wrong{n}")).await;
        assert!(r.tagged.contains("[AUTHENTICATIONFAILED]"), "{}", r.tagged);
        let least = Duration::from_millis(50 << n);
        assert!(
            started.elapsed() >= least,
            "failure {n}: {:?}",
            started.elapsed()
        );
    }
    // The right password still logs in.
    let mut c = s.login().await;
    c.ok("NOOP").await;
    s.stop().await;
}

#[tokio::test]
async fn commands_in_the_wrong_state_get_bad() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    let r = c.bad("SELECT INBOX").await;
    assert!(r.tagged.contains("Not authenticated"));
    c.bad("FETCH 1 FLAGS").await;
    c.ok(&format!("LOGIN {USER} {PASS}")).await;
    c.bad(&format!("LOGIN {USER} {PASS}")).await;
    let r = c.bad("FETCH 1 FLAGS").await;
    assert!(r.tagged.contains("No mailbox selected"));
    c.ok("NOOP").await;
    s.stop().await;
}

/// Before login a connection can make the server hold little: a command
/// line or a literal over `preauth_max_bytes` is refused (the same line is
/// fine after login), and `preauth_max_bad_commands` invalid commands close
/// the connection with BYE.
#[tokio::test]
async fn preauth_limits() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    let query = format!("SEARCH SUBJECT {}", "x".repeat(9000));
    let r = c.bad(&query).await;
    assert!(
        r.tagged
            .contains("Command line too long (limit 8192 bytes)"),
        "{}",
        r.tagged
    );
    let r = c.no("LOGIN {9000}").await;
    assert!(r.tagged.contains("[TOOBIG]"), "{}", r.tagged);
    c.ok(&format!("LOGIN {USER} {PASS}")).await;
    c.ok("SELECT INBOX").await;
    let r = c.ok(&query).await;
    assert!(r.has("* SEARCH\r\n"), "{}", r.text());
    // Ten invalid commands before login: the tenth is answered, then BYE.
    let mut c = s.client().await;
    for _ in 0..9 {
        c.bad("FROBNICATE").await;
    }
    c.send_raw(b"t10 SELECT INBOX\r\n").await;
    let l = c.read_response_line().await.expect("answer");
    assert!(
        l.starts_with(b"t10 BAD"),
        "{:?}",
        String::from_utf8_lossy(&l)
    );
    c.expect_bye_then_closed("Too many invalid commands").await;
    // A logged-in session is not counted.
    let mut c = s.login().await;
    for _ in 0..12 {
        c.bad("FROBNICATE").await;
    }
    c.ok("NOOP").await;
    s.stop().await;
}

#[tokio::test]
async fn malformed_input_gets_bad_and_the_session_continues() {
    let s = TestServer::start_with(|c| {
        c.limits.max_line_length = 200;
        c.limits.max_nesting = 4;
        c.limits.max_other_literal_size = 100;
    })
    .await;
    let mut c = s.login().await;
    // No tag readable.
    c.send_raw(b"\x01\x02\r\n").await;
    let l = c.read_response_line().await.unwrap();
    assert!(l.starts_with(b"* BAD"), "{:?}", String::from_utf8_lossy(&l));
    // A tag with a character tags may not hold: untagged BAD, so that no
    // command tagged `a` takes it as its answer (RFC 9051 7.1).
    for line in [&b"a+b NOOP\r\n"[..], b"a\xc3\xa9 NOOP\r\n"] {
        c.send_raw(line).await;
        let l = c.read_response_line().await.unwrap();
        assert!(l.starts_with(b"* BAD"), "{:?}", String::from_utf8_lossy(&l));
    }
    c.bad("FROBNICATE").await;
    c.bad("SELECT").await;
    c.bad("FETCH 1:x FLAGS").await;
    c.ok("SELECT INBOX").await;
    c.bad("FETCH 0 FLAGS").await;
    c.bad("FETCH 1 (FLAGS").await;
    c.bad("SEARCH ((((((ALL))))))").await;
    c.bad("UID FROB 1").await;
    // Too long a line: BAD with its tag, so that the client waiting for it
    // is answered (in one piece, or over several reads)...
    let long = format!("t99 NOOP {}\r\n", "x".repeat(500));
    c.send_raw(long.as_bytes()).await;
    let l = c.read_response_line().await.unwrap();
    assert!(
        l.starts_with(b"t99 BAD Command line too long"),
        "{:?}",
        String::from_utf8_lossy(&l)
    );
    for part in ["t98 NOOP ", &"y".repeat(3000), "\r\n"] {
        c.send_raw(part.as_bytes()).await;
    }
    let l = c.read_response_line().await.unwrap();
    assert!(
        l.starts_with(b"t98 BAD"),
        "{:?}",
        String::from_utf8_lossy(&l)
    );
    // ...or untagged when no tag can be read in its start.
    c.send_raw(format!("{}\r\n", "z".repeat(500)).as_bytes())
        .await;
    let l = c.read_response_line().await.unwrap();
    assert!(l.starts_with(b"* BAD"), "{:?}", String::from_utf8_lossy(&l));
    // A synchronizing literal over the limit is refused before any byte is read.
    c.send_raw(b"t100 SEARCH TEXT {1000}\r\n").await;
    let l = c.read_response_line().await.unwrap();
    assert!(
        l.starts_with(b"t100 NO [TOOBIG]"),
        "{:?}",
        String::from_utf8_lossy(&l)
    );
    c.ok("NOOP").await;
    // Pipelined commands are answered in order.
    c.send_raw(b"p1 NOOP\r\np2 NOOP\r\n").await;
    let r = c.read_until_tagged("p1").await;
    assert!(r.tagged.starts_with("OK"));
    let r = c.read_until_tagged("p2").await;
    assert!(r.tagged.starts_with("OK"));
    s.stop().await;
}

#[tokio::test]
async fn oversized_non_synchronizing_literal_closes_with_bye() {
    let s = TestServer::start_with(|c| c.limits.max_literal_size = 1000).await;
    let mut c = s.login().await;
    c.send_raw(b"a APPEND INBOX {5000+}\r\n").await;
    let l = c.read_response_line().await.unwrap();
    assert!(
        l.starts_with(b"* BYE [TOOBIG]"),
        "{:?}",
        String::from_utf8_lossy(&l)
    );
    assert!(c.is_closed().await);
    // A synchronizing one over the limit gets NO and the session goes on.
    let mut c = s.login().await;
    c.send_raw(b"a APPEND INBOX {5000}\r\n").await;
    let r = c.read_until_tagged("a").await;
    assert!(r.tagged.starts_with("NO [TOOBIG]"), "{}", r.tagged);
    c.ok("NOOP").await;
    s.stop().await;
}

#[tokio::test]
async fn authenticate_plain_with_and_without_initial_response() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    // base64("\0alice\0wonderland")
    let ir = "AGFsaWNlAHdvbmRlcmxhbmQ=";
    c.ok(&format!("AUTHENTICATE PLAIN {ir}")).await;
    c.ok("SELECT INBOX").await;

    let mut c = s.client().await;
    c.send_raw(b"a AUTHENTICATE PLAIN\r\n").await;
    let l = c.read_response_line().await.unwrap();
    assert!(l.starts_with(b"+"));
    c.send_raw(format!("{ir}\r\n").as_bytes()).await;
    let r = c.read_until_tagged("a").await;
    assert!(r.tagged.starts_with("OK"), "{}", r.tagged);

    let mut c = s.client().await;
    c.send_raw(b"a AUTHENTICATE PLAIN\r\n").await;
    c.read_response_line().await.unwrap();
    c.send_raw(b"*\r\n").await;
    let r = c.read_until_tagged("a").await;
    assert!(r.tagged.starts_with("BAD"), "{}", r.tagged);
    c.no("AUTHENTICATE CRAM-MD5").await;
    // Valid base64 that is not a PLAIN message (no NUL separators; an empty
    // one): the authentication fails (RFC 4616 2), it is no syntax error.
    for bad in ["dTFwdzE=", "="] {
        let r = c.no(&format!("AUTHENTICATE PLAIN {bad}")).await;
        assert!(r.tagged.contains("[AUTHENTICATIONFAILED]"), "{}", r.tagged);
    }
    s.stop().await;
}

fn tls_connector(s: &TestServer) -> tokio_rustls::TlsConnector {
    let pem = std::fs::read(s.dir.path().join("tls/cert.pem")).expect("generated certificate");
    let mut roots = rustls::RootCertStore::empty();
    let mut rd = &pem[..];
    for cert in rustls_pemfile_certs(&mut rd) {
        roots.add(cert).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

fn rustls_pemfile_certs(rd: &mut &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(rd)
        .map(|c| c.unwrap())
        .collect()
}

async fn tls_cmd<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    r: &mut BufReader<S>,
    tag: &str,
    cmd: &str,
) -> Vec<String> {
    r.get_mut()
        .write_all(format!("{tag} {cmd}\r\n").as_bytes())
        .await
        .unwrap();
    let mut lines = Vec::new();
    loop {
        let mut l = String::new();
        let n = tokio::time::timeout(TIMEOUT, r.read_line(&mut l))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed");
        let done = l.starts_with(&format!("{tag} "));
        lines.push(l);
        if done {
            return lines;
        }
    }
}

#[tokio::test]
async fn plaintext_login_refused_until_starttls_and_pipelined_input_discarded() {
    let s = TestServer::start_with(|c| c.auth.trust_loopback = false).await;
    let mut c = s.client().await;
    assert!(c.greeting.contains("LOGINDISABLED"), "{}", c.greeting);
    assert!(!c.greeting.contains("AUTH="), "{}", c.greeting);
    let r = c.no(&format!("LOGIN {USER} {PASS}")).await;
    assert!(r.tagged.contains("[PRIVACYREQUIRED]"));
    c.no("AUTHENTICATE PLAIN AGFsaWNlAHdvbmRlcmxhbmQ=").await;
    // STARTTLS with a command pipelined after it: that command must be dropped.
    c.send_raw(b"s1 STARTTLS\r\ns2 CAPABILITY\r\n").await;
    let l = c.read_response_line().await.unwrap();
    assert!(l.starts_with(b"s1 OK"), "{:?}", String::from_utf8_lossy(&l));
    let tcp = c.r.into_inner();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tls_connector(&s)
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    let mut r = BufReader::new(tls);
    let lines = tls_cmd(&mut r, "c1", "CAPABILITY").await;
    assert_eq!(
        lines.len(),
        2,
        "the pipelined s2 must have been discarded: {lines:?}"
    );
    assert!(
        lines[0].contains("AUTH=PLAIN") && !lines[0].contains("STARTTLS"),
        "{lines:?}"
    );
    let lines = tls_cmd(&mut r, "c2", &format!("LOGIN {USER} {PASS}")).await;
    assert!(lines.last().unwrap().starts_with("c2 OK"), "{lines:?}");
    s.stop().await;
}

#[tokio::test]
async fn implicit_tls_port() {
    let s = TestServer::start_with(|c| c.auth.trust_loopback = false).await;
    let tcp = TcpStream::connect(s.tls_addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tls_connector(&s)
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    let mut r = BufReader::new(tls);
    let mut greeting = String::new();
    r.read_line(&mut greeting).await.unwrap();
    assert!(
        greeting.starts_with("* OK")
            && greeting.contains("AUTH=PLAIN")
            && !greeting.contains("STARTTLS")
    );
    let lines = tls_cmd(&mut r, "a", &format!("LOGIN {USER} {PASS}")).await;
    assert!(lines.last().unwrap().starts_with("a OK"), "{lines:?}");
    let lines = tls_cmd(&mut r, "b", "SELECT INBOX").await;
    assert!(lines.last().unwrap().starts_with("b OK"), "{lines:?}");
    s.stop().await;
}

#[tokio::test]
async fn connection_limit_per_ip() {
    let s = TestServer::start_with(|c| c.limits.max_connections_per_ip = 2).await;
    let _a = s.client().await;
    let _b = s.client().await;
    let c = s.client().await;
    assert!(c.greeting.starts_with("* BYE"), "{}", c.greeting);
    drop(_a);
    // The slot frees once the first connection is gone.
    let mut ok = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let c = s.client().await;
        if c.greeting.starts_with("* OK") {
            ok = true;
            break;
        }
    }
    assert!(ok);
    s.stop().await;
}

#[tokio::test]
async fn sessions_per_user_limit() {
    let s = TestServer::start_with(|c| c.limits.max_sessions_per_user = 1).await;
    let _a = s.login().await;
    let mut b = s.client().await;
    let r = b.no(&format!("LOGIN {USER} {PASS}")).await;
    assert!(r.tagged.contains("[LIMIT]"));
    s.stop().await;
}

#[tokio::test]
async fn preauth_inactivity_timeout() {
    let s = TestServer::start_with(|c| c.limits.preauth_timeout_secs = 1).await;
    let mut c = s.client().await;
    let l = c
        .read_line_timeout(Duration::from_secs(5))
        .await
        .expect("BYE");
    assert!(l.starts_with("* BYE"), "{l}");
    assert!(c.is_closed().await);
    s.stop().await;
}

/// The inactivity limit counts from the last command, not from the start
/// of the session: a client that keeps sending commands stays past it; one
/// that goes quiet is told BYE. After login the (here shorter) limit of
/// authenticated sessions applies at once.
#[tokio::test]
async fn inactivity_counts_from_the_last_command() {
    let s = TestServer::start_with(|c| {
        c.limits.preauth_timeout_secs = 30;
        c.limits.auth_timeout_secs = 2;
    })
    .await;
    let mut c = s.login().await;
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        c.ok("NOOP").await;
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    c.ok("NOOP").await;
    let quiet = std::time::Instant::now();
    let l = c
        .read_line_timeout(Duration::from_secs(10))
        .await
        .expect("BYE");
    assert!(l.starts_with("* BYE"), "{l}");
    let waited = quiet.elapsed();
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(8),
        "BYE after {waited:?} of silence"
    );
    assert!(c.is_closed().await);
    s.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_sends_bye() {
    let s = TestServer::start().await;
    let mut c = s.login().await;
    c.ok("SELECT INBOX").await;
    let addr = s.addr;
    s.stop().await;
    let l = c
        .read_line_timeout(Duration::from_secs(5))
        .await
        .expect("BYE on shutdown");
    assert!(l.starts_with("* BYE"), "{l}");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "listener must be closed"
    );
}

#[tokio::test]
async fn id_namespace_enable() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    let r = c.ok("ID (\"name\" \"test\")").await;
    assert_eq!(r.text(), "* ID (\"name\" \"Pillarbox\")\r\n");
    c.ok(&format!("LOGIN {USER} {PASS}")).await;
    let r = c.ok("ID NIL").await;
    assert!(
        r.has(&format!("\"version\" \"{}\"", env!("CARGO_PKG_VERSION"))),
        "{}",
        r.text()
    );
    let r = c.ok("NAMESPACE").await;
    assert!(r.has("* NAMESPACE ((\"\" \"/\")) NIL NIL"));
    let r = c.ok("ENABLE IMAP4rev2 CONDSTORE X-UNKNOWN").await;
    assert_eq!(
        r.lines_starting("* ENABLED"),
        vec!["* ENABLED IMAP4REV2 CONDSTORE\r\n".to_string()]
    );
    let r = c.ok("ENABLE CONDSTORE").await;
    assert_eq!(
        r.lines_starting("* ENABLED"),
        vec!["* ENABLED\r\n".to_string()]
    );
    s.stop().await;
}
