//! The `pillarbox` binary: the flags scripts rely on (`--data-dir`, `serve
//! --listen-imap/--listen-imaps`, `user add/passwd/delete/list
//! --password-stdin`), bind errors, and graceful shutdown on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::binary::{free_port, spawn_serve, BIN};

fn run(data: &Path, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run pillarbox");
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

struct Serve {
    child: Child,
    port: u16,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(data: &Path) -> Serve {
    let port = free_port();
    let child = spawn_serve(data, port, Stdio::piped());
    Serve { child, port }
}

/// A data directory with user `name` (password `pw`).
fn data_with_user(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    run(
        dir.path(),
        &["user", "add", name, "--password-stdin"],
        Some("pw\n"),
    );
    dir
}

/// Connects, reads the greeting, sends `request` and reads up to the
/// response tagged `last`: the connection and the lines read after the
/// greeting. `what` names the connection when a read fails or it closes.
fn converse(port: u16, request: &[u8], last: &str, what: &str) -> (TcpStream, Vec<String>) {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut read = || {
        let mut line = String::new();
        let got = r
            .read_line(&mut line)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(got > 0, "{what}: connection closed");
        line
    };
    read();
    (&s).write_all(request).unwrap();
    let tagged = format!("{last} ");
    let mut lines = Vec::new();
    loop {
        let line = read();
        let done = line.starts_with(&tagged);
        lines.push(line);
        if done {
            return (s, lines);
        }
    }
}

fn login_ok(port: u16, user: &str, pass: &str) -> bool {
    let request = format!("a LOGIN {user} {pass}\r\n");
    let (_, lines) = converse(port, request.as_bytes(), "a", "login");
    lines.last().is_some_and(|l| l.starts_with("a OK"))
}

#[test]
fn user_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, err) = run(
        dir.path(),
        &["user", "add", "carol", "--password-stdin"],
        Some("first-pass\n"),
    );
    assert!(ok, "{out}{err}");
    let (ok, _, err) = run(
        dir.path(),
        &["user", "add", "carol", "--password-stdin"],
        Some("x\n"),
    );
    assert!(
        !ok && err.contains("carol"),
        "duplicate user must fail: {err}"
    );
    let (ok, _, err) = run(dir.path(), &["user", "add", "dave"], None);
    assert!(!ok && err.contains("--password-stdin"), "{err}");
    run(
        dir.path(),
        &["user", "add", "dave", "--password-stdin"],
        Some("dave-pass\n"),
    );
    let (ok, out, _) = run(dir.path(), &["user", "list"], None);
    assert!(ok);
    assert_eq!(out.lines().collect::<Vec<_>>(), vec!["carol", "dave"]);

    let srv = serve(dir.path());
    assert!(login_ok(srv.port, "carol", "first-pass"));
    let (ok, out, err) = run(
        dir.path(),
        &["user", "passwd", "carol", "--password-stdin"],
        Some("second-pass\n"),
    );
    assert!(ok, "{out}{err}");
    assert!(!login_ok(srv.port, "carol", "first-pass"));
    assert!(login_ok(srv.port, "carol", "second-pass"));
    drop(srv);

    let (ok, _, err) = run(dir.path(), &["user", "delete", "carol"], None);
    assert!(ok, "{err}");
    let (_, out, _) = run(dir.path(), &["user", "list"], None);
    assert_eq!(out.trim(), "dave");
    let (ok, _, _) = run(dir.path(), &["user", "delete", "carol"], None);
    assert!(!ok, "deleting a missing user fails");
}

#[test]
fn deleting_a_user_removes_their_mail() {
    let dir = data_with_user("erin");
    let srv = serve(dir.path());
    let s = TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    // A small message (kept in the database) and a large one that does not
    // compress (a file under blobs/).
    let small = "Subject: unique message for deletion test 7f3a\r\n\r\nbody\r\n".to_string();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let noise: String = (0..64 * 1024)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if i % 76 == 75 {
                '\n'
            } else {
                char::from(b'0' + (x % 75) as u8)
            }
        })
        .collect();
    let big = format!("Subject: large\r\n\r\n{}\r\n", noise.replace('\n', "\r\n"));
    let mut cmds = "a LOGIN erin pw\r\n".to_string();
    for (tag, msg) in [("b", &small), ("c", &big)] {
        cmds.push_str(&format!(
            "{tag} APPEND INBOX {{{}+}}\r\n{msg}\r\n",
            msg.len()
        ));
    }
    cmds.push_str("z LOGOUT\r\n");
    (&s).write_all(cmds.as_bytes()).unwrap();
    let mut all = String::new();
    let _ = r.read_to_string(&mut all);
    assert!(all.contains("b OK [APPENDUID"), "{all}");
    assert!(all.contains("c OK [APPENDUID"), "{all}");
    drop(srv);
    let inline = |msg: &str| {
        let st = pillarbox_store::SqliteStore::open(&dir.path().join("meta.sqlite3")).unwrap();
        let id = pillarbox_store::BlobId::of(msg.as_bytes());
        pillarbox_store::InlineBlobs::inline_blob(&st, &id)
            .unwrap()
            .is_some()
    };
    let count_blobs = || common::files_under(&dir.path().join("blobs"));
    assert_eq!(count_blobs(), 1, "the large message is a file");
    assert!(inline(&small) && !inline(&big));
    let (ok, _, err) = run(dir.path(), &["user", "delete", "erin"], None);
    assert!(ok, "{err}");
    assert_eq!(count_blobs(), 0, "the user's message files must be gone");
    assert!(!inline(&small), "the user's small message must be gone");
}

#[test]
fn port_in_use_names_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir.path())
        .args([
            "serve",
            "--listen-imap",
            &format!("127.0.0.1:{port}"),
            "--listen-imaps",
            "",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("already in use") && err.contains("--listen-imap"),
        "{err}"
    );
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["serve", "--listen-imap", "not-an-address"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--listen-imap"));
}

#[test]
fn sigterm_shuts_down_gracefully_with_bye() {
    let dir = data_with_user("frank");
    let mut srv = serve(dir.path());
    assert!(
        dir.path().join("tls/cert.pem").exists(),
        "self-signed certificate generated on first start"
    );
    let s = TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    (&s).write_all(b"a LOGIN frank pw\r\n").unwrap();
    line.clear();
    r.read_line(&mut line).unwrap();
    assert!(line.starts_with("a OK"), "{line}");
    let pid = srv.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    line.clear();
    r.read_line(&mut line).unwrap();
    assert!(line.starts_with("* BYE"), "{line}");
    let start = Instant::now();
    let status = loop {
        if let Some(st) = srv.child.try_wait().unwrap() {
            break st;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "server did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success());
    let mut log = String::new();
    srv.child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(log.contains("self-signed certificate"), "{log}");
    assert!(log.contains("shutting down"), "{log}");
}

#[test]
fn config_file_is_read_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("custom.toml");
    std::fs::write(&cfg, "bogus_key = 1\n").unwrap();
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir.path())
        .arg("--config")
        .arg(&cfg)
        .args(["user", "list"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bogus_key"));
}

/// The server's resident memory (KiB), from `/proc`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Sessions that end free their memory in the middle of the heap, which glibc
/// keeps unless asked (`malloc_trim`): the server asks within about a second
/// of sessions ending, so a burst of connections does not leave it large.
/// Without that, all of the growth stayed (5,000 sessions: 46 MB of RSS
/// after they ended, 12 MB before they started).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn memory_of_ended_sessions_goes_back_to_the_system() {
    const SESSIONS: usize = 600;
    let dir = data_with_user("gina");
    std::fs::write(
        dir.path().join("pillarbox.toml"),
        "[limits]\nmax_connections_per_ip = 1000\nmax_sessions_per_user = 1000\n",
    )
    .unwrap();
    // Not `serve`: its stderr is a pipe nobody reads here, and the log
    // lines waiting for a reader would count in the memory measured.
    let port = free_port();
    let srv = Serve {
        child: spawn_serve(dir.path(), port, Stdio::null()),
        port,
    };
    let pid = srv.child.id();
    std::thread::sleep(Duration::from_millis(1500));
    let before = rss_kib(pid);
    let mut open = Vec::new();
    for n in 0..SESSIONS {
        let (s, lines) = converse(
            srv.port,
            b"a LOGIN gina pw\r\nb SELECT INBOX\r\n",
            "b",
            &format!("session {n}"),
        );
        let line = lines.last().unwrap();
        assert!(line.starts_with("b OK"), "{line}");
        open.push(s);
    }
    let during = rss_kib(pid);
    assert!(
        during > before + 1024,
        "{SESSIONS} sessions should take over a MiB: {before} -> {during} KiB"
    );
    for s in &open {
        let _ = (&*s).write_all(b"c LOGOUT\r\n");
    }
    drop(open);
    // Trimmed at most a second after the last session ended.
    let limit = before + (during - before) / 2;
    let start = Instant::now();
    let mut after = rss_kib(pid);
    while after > limit && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(200));
        after = rss_kib(pid);
    }
    assert!(
        after <= limit,
        "RSS before {before}, with {SESSIONS} sessions {during}, after they ended {after} KiB"
    );
}

/// Whatever reads the server's stderr may stop reading (a full pipe): the
/// server goes on serving, its log lines dropped beyond what it buffers.
/// Logging straight to stderr, the 600 logins below stopped at about the
/// 365th, every session waiting to write its log line.
#[test]
fn a_stalled_log_reader_does_not_stop_the_server() {
    const LOGINS: usize = 600;
    let dir = data_with_user("hank");
    // `serve` pipes stderr, and nothing here reads it.
    let srv = serve(dir.path());
    for n in 0..LOGINS {
        let (_, lines) = converse(
            srv.port,
            b"a LOGIN hank pw\r\nb LOGOUT\r\n",
            "b",
            &format!("connection {n}"),
        );
        for line in lines.iter().filter(|l| l.starts_with("a ")) {
            assert!(line.starts_with("a OK"), "{line}");
        }
    }
}
