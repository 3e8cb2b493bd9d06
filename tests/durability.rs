//! Durability across a hard crash: the server is killed with SIGKILL while
//! clients are appending; after a restart every APPEND that was answered OK
//! is there (same UID, same bytes), UIDs are not reused and UIDVALIDITY has
//! not changed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

use common::binary::{free_port, spawn_serve, BIN};

fn start(data: &Path, port: u16) -> Child {
    spawn_serve(data, port, Stdio::null())
}

struct Conn {
    s: TcpStream,
    r: BufReader<TcpStream>,
    n: u32,
}

impl Conn {
    fn open(port: u16) -> Option<Conn> {
        let s = TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        let mut r = BufReader::new(s.try_clone().ok()?);
        let mut l = String::new();
        r.read_line(&mut l).ok()?;
        let mut c = Conn { s, r, n: 0 };
        c.cmd("LOGIN zoe pw")?;
        Some(c)
    }
    /// Sends a command (with an optional non-synchronizing literal) and returns
    /// all response text, or None if the connection broke.
    fn cmd_lit(&mut self, text: &str, lit: Option<&[u8]>) -> Option<String> {
        self.n += 1;
        let tag = format!("d{}", self.n);
        let mut out = format!("{tag} {text}").into_bytes();
        if let Some(l) = lit {
            out.extend_from_slice(format!(" {{{}+}}\r\n", l.len()).as_bytes());
            out.extend_from_slice(l);
        }
        out.extend_from_slice(b"\r\n");
        self.s.write_all(&out).ok()?;
        let mut all = String::new();
        loop {
            let mut l = String::new();
            if self.r.read_line(&mut l).ok()? == 0 {
                return None;
            }
            if let Some(n) = literal_len(&l) {
                let mut buf = vec![0; n];
                self.r.read_exact(&mut buf).ok()?;
                l.push_str(&String::from_utf8_lossy(&buf));
            }
            all.push_str(&l);
            if l.starts_with(&format!("{tag} ")) {
                return Some(all);
            }
        }
    }
    fn cmd(&mut self, text: &str) -> Option<String> {
        self.cmd_lit(text, None)
    }
}

fn literal_len(l: &str) -> Option<usize> {
    let l = l.strip_suffix("}\r\n")?;
    l[l.rfind('{')? + 1..].parse().ok()
}

fn msg(i: usize) -> Vec<u8> {
    format!(
        "Subject: durable {i}\r\nMessage-ID: <d{i}@example>\r\n\r\nbody of message {i} {}\r\n",
        "x".repeat(i % 700)
    )
    .into_bytes()
}

#[test]
fn acknowledged_appends_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut add = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["user", "add", "zoe", "--password-stdin"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    add.stdin.take().unwrap().write_all(b"pw\n").unwrap();
    assert!(add.wait().unwrap().success());
    let port = free_port();
    let mut server = start(dir.path(), port);
    let uidvalidity = {
        let mut c = Conn::open(port).unwrap();
        let r = c.cmd("STATUS INBOX (UIDVALIDITY)").unwrap();
        r.split("UIDVALIDITY ")
            .nth(1)
            .unwrap()
            .split(')')
            .next()
            .unwrap()
            .to_string()
    };
    // (uid, message index) of every APPEND answered OK.
    let acked: Arc<Mutex<Vec<(u32, usize)>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..4 {
        let acked = acked.clone();
        writers.push(std::thread::spawn(move || {
            let Some(mut c) = Conn::open(port) else {
                return;
            };
            for k in 0..1000 {
                let i = w * 1000 + k;
                let Some(r) = c.cmd_lit("APPEND INBOX", Some(&msg(i))) else {
                    return;
                };
                let Some(code) = r.split("[APPENDUID ").nth(1) else {
                    return;
                };
                let uid: u32 = code
                    .split(']')
                    .next()
                    .unwrap()
                    .split(' ')
                    .nth(1)
                    .unwrap()
                    .parse()
                    .unwrap();
                acked.lock().unwrap().push((uid, i));
            }
        }));
    }
    // Let some appends complete, then crash the server hard.
    let t = Instant::now();
    while acked.lock().unwrap().len() < 60 && t.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(5));
    }
    server.kill().unwrap();
    server.wait().unwrap();
    for w in writers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 60,
        "only {} appends acknowledged",
        acked.len()
    );

    let mut server = start(dir.path(), port);
    let mut c = Conn::open(port).unwrap();
    let r = c.cmd("SELECT INBOX").unwrap();
    assert!(
        r.contains(&format!("[UIDVALIDITY {uidvalidity}]")),
        "UIDVALIDITY changed: {r}"
    );
    let uidnext: u32 = r
        .split("[UIDNEXT ")
        .nth(1)
        .unwrap()
        .split(']')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    for (uid, i) in &acked {
        assert!(*uid < uidnext);
        let r = c.cmd(&format!("UID FETCH {uid} BODY.PEEK[]")).unwrap();
        let want = String::from_utf8(msg(*i)).unwrap();
        assert!(
            r.contains(&want),
            "acknowledged message {i} (UID {uid}) lost after crash: {r}"
        );
    }
    // UIDs are not reused after the crash.
    let r = c
        .cmd_lit("APPEND INBOX", Some(b"Subject: after\r\n\r\nx\r\n"))
        .unwrap();
    let new_uid: u32 = r
        .split("[APPENDUID ")
        .nth(1)
        .unwrap()
        .split(']')
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let max_acked = acked.iter().map(|a| a.0).max().unwrap();
    assert!(
        new_uid > max_acked && new_uid >= uidnext,
        "UID {new_uid} reused (max acknowledged {max_acked}, UIDNEXT {uidnext})"
    );
    let _ = server.kill();
    let _ = server.wait();
}
