//! Shared harness for socket-level tests: starts a real server on 127.0.0.1:0
//! with a fresh data directory, and a small raw IMAP client that keeps every
//! response byte. Every read is bounded in time.

#![allow(dead_code)]

pub mod binary;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pillarbox_server::{auth, open_store, Config, Server};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

pub const USER: &str = "alice";
pub const PASS: &str = "wonderland";
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// The BYE text of a session whose selected mailbox was deleted.
pub const MAILBOX_DELETED: &str = "Selected mailbox was deleted, have to disconnect.";

pub struct TestServer {
    pub server: Option<Server>,
    pub dir: tempfile::TempDir,
    pub addr: SocketAddr,
    pub tls_addr: SocketAddr,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    /// The configuration of a test server on `dir`: loopback, any port.
    fn config(dir: &std::path::Path) -> Config {
        let mut config = Config {
            data_dir: dir.to_path_buf(),
            listen_imap: "127.0.0.1:0".into(),
            listen_imaps: "127.0.0.1:0".into(),
            ..Config::default()
        };
        config.auth.failure_delay_ms = 10;
        config
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Self::config(dir.path());
        tweak(&mut config);
        {
            let (store, _) = open_store(&config.data_dir).expect("store");
            let hash = auth::hash_password(PASS).expect("hash");
            store.create_account(USER, &hash).expect("user");
            let hash = auth::hash_password("builder").expect("hash");
            store.create_account("bob", &hash).expect("user");
        }
        let server = Server::start(config).await.expect("server starts");
        let addr = server.imap_addr.expect("imap addr");
        let tls_addr = server.imaps_addr.expect("imaps addr");
        TestServer {
            server: Some(server),
            dir,
            addr,
            tls_addr,
        }
    }

    pub async fn client(&self) -> Client {
        Client::connect(self.addr).await
    }

    /// A logged-in client.
    pub async fn login(&self) -> Client {
        let mut c = self.client().await;
        c.ok(&format!("LOGIN {USER} {PASS}")).await;
        c
    }

    /// Shuts the server down and starts it again on the same data
    /// directory (default configuration, new ports); `between` runs while
    /// it is down.
    pub async fn restart(&mut self, between: impl FnOnce(&std::path::Path)) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
        between(self.dir.path());
        let server = Server::start(Self::config(self.dir.path()))
            .await
            .expect("server restarts");
        self.addr = server.imap_addr.expect("imap addr");
        self.tls_addr = server.imaps_addr.expect("imaps addr");
        self.server = Some(server);
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }

    /// The store of this server opened as another process would (its
    /// changes are published nowhere in the server), and the id of
    /// `mailbox` of the test user.
    pub fn other_process(&self, mailbox: &str) -> (pillarbox_store::sqlite::SqliteStore, i64) {
        let st = pillarbox_store::sqlite::SqliteStore::open(&self.dir.path().join("meta.sqlite3"))
            .unwrap();
        let id = mailbox_id(&st, mailbox);
        (st, id)
    }

    /// The store the server's sessions use (`Server::store`: a change made
    /// through it is published to none of them), and the id of `mailbox`
    /// of the test user.
    pub fn own_store(&self, mailbox: &str) -> (Arc<dyn pillarbox_store::MetaStore>, i64) {
        let st = self.server.as_ref().expect("running").store();
        let id = mailbox_id(&*st, mailbox);
        (st, id)
    }
}

/// Changes one flag of message `uid` of `mailbox` directly in `store`
/// (another process's store, or the server's own, which publishes nothing).
pub fn set_flag(
    store: &dyn pillarbox_store::MetaStore,
    mailbox: i64,
    uid: u32,
    op: pillarbox_store::FlagOp,
    flag: &str,
) {
    store
        .store_flags(mailbox, &[uid], op, &[flag.to_string()], None)
        .unwrap();
}

/// The UIDs `mailbox` holds in `store`, ascending.
pub fn held_uids(store: &dyn pillarbox_store::MetaStore, mailbox: i64) -> Vec<u32> {
    store
        .snapshot(mailbox)
        .unwrap()
        .1
        .iter()
        .map(|m| m.uid)
        .collect()
}

fn mailbox_id(st: &dyn pillarbox_store::MetaStore, mailbox: &str) -> i64 {
    let acc = st.account(USER).unwrap().unwrap().id;
    st.mailbox(acc, mailbox).unwrap().unwrap().id
}

/// A message to add through a store directly: `message(subject, "x")`'s
/// bytes, no flags (its body is not stored: not for FETCH).
pub fn new_message(subject: &str) -> pillarbox_store::NewMessage {
    let body = message(subject, "x");
    pillarbox_store::NewMessage {
        blob: pillarbox_store::BlobId::of(&body),
        size: body.len() as u64,
        internal_date: 1_700_000_000,
        date_offset_minutes: 0,
        flags: Vec::new(),
        summary: Vec::new(),
        inline: None,
    }
}

/// The number after `key` in `text`.
pub fn num_after(text: &str, key: &str) -> u64 {
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

/// A response: untagged lines (with literals inline) and the tagged line.
#[derive(Debug)]
pub struct Response {
    pub untagged: Vec<Vec<u8>>,
    pub tagged: String,
}

impl Response {
    pub fn text(&self) -> String {
        self.untagged
            .iter()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect()
    }
    pub fn has(&self, needle: &str) -> bool {
        self.text().contains(needle)
    }
    pub fn lines_starting(&self, prefix: &str) -> Vec<String> {
        self.untagged
            .iter()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .filter(|l| l.starts_with(prefix))
            .collect()
    }
    /// The numbers of the (first) `* SEARCH` response.
    pub fn search_numbers(&self) -> Vec<u32> {
        self.lines_starting("* SEARCH")[0]
            .split_whitespace()
            .skip(2)
            .map(|x| x.parse().unwrap())
            .collect()
    }
}

pub struct Client {
    pub r: BufReader<TcpStream>,
    n: u32,
    pub greeting: String,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let s = tokio::time::timeout(TIMEOUT, TcpStream::connect(addr))
            .await
            .expect("connect timeout")
            .expect("connect");
        let mut c = Client {
            r: BufReader::new(s),
            n: 0,
            greeting: String::new(),
        };
        let g = c.read_response_line().await.expect("greeting");
        c.greeting = String::from_utf8_lossy(&g).into_owned();
        c
    }

    pub fn next_tag(&mut self) -> String {
        self.n += 1;
        format!("t{}", self.n)
    }

    pub async fn send_raw(&mut self, data: &[u8]) {
        self.r.get_mut().write_all(data).await.expect("write");
    }

    async fn read_line_raw(&mut self) -> Option<Vec<u8>> {
        let mut line = Vec::new();
        let n = tokio::time::timeout(TIMEOUT, self.r.read_until(b'\n', &mut line))
            .await
            .expect("timed out waiting for the server")
            .ok()?;
        if n == 0 {
            return None;
        }
        Some(line)
    }

    /// One logical response line including literals; None on EOF.
    pub async fn read_response_line(&mut self) -> Option<Vec<u8>> {
        let mut data = self.read_line_raw().await?;
        loop {
            let Some(n) = literal_len(&data) else {
                return Some(data);
            };
            let mut lit = vec![0u8; n];
            tokio::time::timeout(TIMEOUT, self.r.read_exact(&mut lit))
                .await
                .expect("timed out reading literal")
                .ok()?;
            data.extend_from_slice(&lit);
            let more = self.read_line_raw().await?;
            data.extend_from_slice(&more);
        }
    }

    /// Sends `tag text` and reads until the tagged response.
    pub async fn cmd(&mut self, text: &str) -> Response {
        let tag = self.next_tag();
        self.send_raw(format!("{tag} {text}\r\n").as_bytes()).await;
        self.read_until_tagged(&tag).await
    }

    pub async fn read_until_tagged(&mut self, tag: &str) -> Response {
        let mut untagged = Vec::new();
        loop {
            let line = self.read_response_line().await.unwrap_or_else(|| {
                panic!(
                    "connection closed before tagged response {tag}; got {:?}",
                    lossy(&untagged)
                )
            });
            if line.starts_with(format!("{tag} ").as_bytes()) {
                return Response {
                    untagged,
                    tagged: String::from_utf8_lossy(&line[tag.len() + 1..])
                        .trim_end()
                        .to_string(),
                };
            }
            untagged.push(line);
        }
    }

    pub async fn ok(&mut self, text: &str) -> Response {
        let r = self.cmd(text).await;
        assert!(
            r.tagged.starts_with("OK"),
            "{text} -> {} / {:?}",
            r.tagged,
            r.text()
        );
        r
    }

    pub async fn no(&mut self, text: &str) -> Response {
        let r = self.cmd(text).await;
        assert!(
            r.tagged.starts_with("NO"),
            "{text} -> {} / {:?}",
            r.tagged,
            r.text()
        );
        r
    }

    pub async fn bad(&mut self, text: &str) -> Response {
        let r = self.cmd(text).await;
        assert!(
            r.tagged.starts_with("BAD"),
            "{text} -> {} / {:?}",
            r.tagged,
            r.text()
        );
        r
    }

    /// APPEND with a synchronizing literal.
    pub async fn append(&mut self, mailbox: &str, flags: &str, msg: &[u8]) -> Response {
        let tag = self.next_tag();
        let flags = if flags.is_empty() {
            String::new()
        } else {
            format!("({flags}) ")
        };
        self.send_raw(format!("{tag} APPEND {mailbox} {flags}{{{}}}\r\n", msg.len()).as_bytes())
            .await;
        let cont = self.read_response_line().await.expect("continuation");
        assert!(
            cont.starts_with(b"+"),
            "expected continuation, got {:?}",
            String::from_utf8_lossy(&cont)
        );
        self.send_raw(msg).await;
        self.send_raw(b"\r\n").await;
        self.read_until_tagged(&tag).await
    }

    /// Reads one untagged line (for IDLE), with a timeout.
    pub async fn read_line_timeout(&mut self, d: Duration) -> Option<String> {
        let mut line = Vec::new();
        match tokio::time::timeout(d, self.r.read_until(b'\n', &mut line)).await {
            Ok(Ok(n)) if n > 0 => Some(String::from_utf8_lossy(&line).into_owned()),
            _ => None,
        }
    }

    /// Asserts that all the server sends from now on is `* BYE {text}`,
    /// then it closes the connection (each read bounded by TIMEOUT).
    pub async fn expect_bye_then_closed(&mut self, text: &str) {
        let mut lines = Vec::new();
        while let Some(l) = self.read_response_line().await {
            lines.push(String::from_utf8_lossy(&l).into_owned());
        }
        assert_eq!(lines, [format!("* BYE {text}\r\n")], "{lines:?}");
    }

    /// True if the server closed the connection (EOF) within the timeout.
    pub async fn is_closed(&mut self) -> bool {
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match tokio::time::timeout(TIMEOUT, self.r.read_until(b'\n', &mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }
}

fn lossy(v: &[Vec<u8>]) -> Vec<String> {
    v.iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect()
}

/// The bytes of the first literal in the first untagged response.
pub fn first_literal(r: &Response) -> Vec<u8> {
    let l = &r.untagged[0];
    let open = l.iter().position(|b| *b == b'{').unwrap();
    let close = open + l[open..].iter().position(|b| *b == b'}').unwrap();
    let n: usize = std::str::from_utf8(&l[open + 1..close])
        .unwrap()
        .parse()
        .unwrap();
    l[close + 3..close + 3 + n].to_vec()
}

/// `{n}\r\n` or `~{n}\r\n` at the end of a line.
pub fn literal_len(line: &[u8]) -> Option<usize> {
    let l = line.strip_suffix(b"\r\n")?;
    let l = l.strip_suffix(b"}")?;
    let open = l.iter().rposition(|b| *b == b'{')?;
    let digits = &l[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// A small well-formed message.
pub fn message(subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Alice <alice@example.org>\r\nTo: Bob <bob@example.net>\r\nSubject: {subject}\r\nDate: Mon, 7 Feb 2022 10:00:00 +0000\r\nMessage-ID: <{subject}@example.org>\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

/// How many files are under `dir`, in every subdirectory (0 if it does not
/// exist): the blob files of a data directory.
pub fn files_under(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| {
        d.flatten()
            .map(|e| {
                let p = e.path();
                if p.is_dir() {
                    files_under(&p)
                } else {
                    1
                }
            })
            .sum()
    })
}

impl Client {
    /// SELECT, past IMAP4rev1's \Recent: the first SELECT after new mail
    /// takes its \Recent (RFC 3501 2.3.2) and a second finds none. For tests
    /// about other things, whose expected FLAGS would otherwise show it.
    pub async fn select_settled(&mut self, mailbox: &str) -> Response {
        self.ok(&format!("SELECT {mailbox}")).await;
        self.ok(&format!("SELECT {mailbox}")).await
    }
}
