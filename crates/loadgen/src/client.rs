//! A minimal IMAP client: just enough to drive a server and time commands.
//!
//! It reads whole response lines including their literals, tracks the
//! selected mailbox's message count from untagged EXISTS/EXPUNGE, and never
//! interprets anything else. Works over plain TCP or TLS (tokio-rustls).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufStream};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Outcome of a tagged response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    No,
    Bad,
}

/// Length of the literal announced at the end of a line (`{12}` or `{12+}`
/// before CRLF), if any.
pub fn literal_len(line: &[u8]) -> Option<usize> {
    let l = line.strip_suffix(b"\n")?;
    let l = l.strip_suffix(b"\r").unwrap_or(l);
    let l = l.strip_suffix(b"}")?;
    let l = l.strip_suffix(b"+").unwrap_or(l);
    let open = l.iter().rposition(|&c| c == b'{')?;
    let digits = &l[open + 1..];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Prints the first few NO/BAD answers of the run (to stderr), so that an
/// error count in the results comes with its reason.
fn report_failure(line: &[u8]) {
    static SHOWN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    const MAX_SHOWN: usize = 10;
    if SHOWN.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < MAX_SHOWN {
        eprintln!(
            "server answered: {}",
            String::from_utf8_lossy(line).trim_end()
        );
    }
}

/// The status of a tagged response line for `tag`, if it is one.
pub fn tagged_status(line: &[u8], tag: &str) -> Option<Status> {
    let rest = line.strip_prefix(tag.as_bytes())?.strip_prefix(b" ")?;
    let word: Vec<u8> = rest
        .iter()
        .take_while(|c| c.is_ascii_alphabetic())
        .map(u8::to_ascii_uppercase)
        .collect();
    match word.as_slice() {
        b"OK" => Some(Status::Ok),
        b"NO" => Some(Status::No),
        b"BAD" => Some(Status::Bad),
        _ => None,
    }
}

/// `* N KEYWORD ...` → (N, KEYWORD uppercased), e.g. `* 12 EXISTS`.
pub fn untagged_number(line: &[u8]) -> Option<(u32, String)> {
    let rest = line.strip_prefix(b"* ")?;
    let n_end = rest.iter().position(|c| !c.is_ascii_digit())?;
    if n_end == 0 {
        return None;
    }
    let n: u32 = std::str::from_utf8(&rest[..n_end]).ok()?.parse().ok()?;
    let rest = rest[n_end..].strip_prefix(b" ")?;
    let kw: String = rest
        .iter()
        .take_while(|c| c.is_ascii_alphabetic())
        .map(|&c| c.to_ascii_uppercase() as char)
        .collect();
    Some((n, kw))
}

/// Is this an untagged line that reports a mailbox change (what an IDLE
/// client waits for)? Keepalives (`* OK ...`) are not.
pub fn is_change_notification(line: &[u8]) -> bool {
    if line.starts_with(b"* VANISHED") {
        return true;
    }
    matches!(
        untagged_number(line),
        Some((_, ref kw)) if kw == "EXISTS" || kw == "EXPUNGE" || kw == "FETCH" || kw == "RECENT"
    )
}

/// IMAP quoted string.
pub fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    q
}

/// How to reach the server.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

pub struct Client {
    s: BufStream<Box<dyn Io>>,
    next_tag: u32,
    /// Messages in the selected mailbox as announced to this session.
    pub exists: u32,
    /// Untagged lines seen since the last call of `take_untagged`, if
    /// collection is enabled.
    pub collect: bool,
    pub untagged: Vec<Vec<u8>>,
}

impl Client {
    /// Connect and read the greeting.
    pub async fn connect(t: &Target) -> Result<Client> {
        let tcp = TcpStream::connect(t.addr)
            .await
            .with_context(|| format!("connect {}", t.addr))?;
        tcp.set_nodelay(true)?;
        let io: Box<dyn Io> = match &t.tls {
            None => Box::new(tcp),
            Some(cfg) => {
                let name = rustls::pki_types::ServerName::try_from("localhost")?;
                let tls = TlsConnector::from(cfg.clone())
                    .connect(name, tcp)
                    .await
                    .context("TLS handshake")?;
                Box::new(tls)
            }
        };
        let mut c = Client {
            s: BufStream::with_capacity(4096, 1024, io),
            next_tag: 1,
            exists: 0,
            collect: false,
            untagged: Vec::new(),
        };
        let g = c.read_line().await?;
        if !g.starts_with(b"* OK") && !g.starts_with(b"* PREAUTH") {
            bail!("unexpected greeting: {}", String::from_utf8_lossy(&g));
        }
        Ok(c)
    }

    /// Connect, LOGIN and (optionally) SELECT.
    pub async fn login(t: &Target, user: &str, pass: &str, select: Option<&str>) -> Result<Client> {
        let mut c = Client::connect(t).await?;
        let (st, _) = c
            .command(&format!("LOGIN {} {}", quote(user), quote(pass)))
            .await?;
        if st != Status::Ok {
            bail!("LOGIN {user} failed: {st:?}");
        }
        if let Some(mb) = select {
            let (st, _) = c.command(&format!("SELECT {}", quote(mb))).await?;
            if st != Status::Ok {
                bail!("SELECT {mb} failed: {st:?}");
            }
        }
        Ok(c)
    }

    fn tag(&mut self) -> String {
        let t = format!("L{}", self.next_tag);
        self.next_tag += 1;
        t
    }

    /// One response line with its literals inlined.
    pub async fn read_line(&mut self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let start = out.len();
            let n = self.s.read_until(b'\n', &mut out).await?;
            if n == 0 {
                bail!("connection closed by server");
            }
            match literal_len(&out[start..]) {
                Some(len) => {
                    let at = out.len();
                    out.resize(at + len, 0);
                    self.s.read_exact(&mut out[at..]).await?;
                }
                None => break,
            }
        }
        self.observe(&out);
        Ok(out)
    }

    fn observe(&mut self, line: &[u8]) {
        if let Some((n, kw)) = untagged_number(line) {
            match kw.as_str() {
                "EXISTS" => self.exists = n,
                "EXPUNGE" => self.exists = self.exists.saturating_sub(1),
                _ => {}
            }
        }
        if self.collect && line.starts_with(b"* ") {
            self.untagged.push(line.to_vec());
        }
    }

    async fn read_until_tagged(&mut self, tag: &str) -> Result<Status> {
        loop {
            let line = self.read_line().await?;
            if let Some(st) = tagged_status(&line, tag) {
                if st != Status::Ok {
                    report_failure(&line);
                }
                return Ok(st);
            }
        }
    }

    /// Send one command line and wait for its tagged response.
    pub async fn command(&mut self, cmd: &str) -> Result<(Status, Duration)> {
        self.command_bytes(format!("{cmd}\r\n").as_bytes()).await
    }

    /// Send one command given as bytes (`tag ` is prepended, CRLF is not
    /// appended: non-synchronizing literals must be in it already) and wait
    /// for its tagged response.
    pub async fn command_bytes(&mut self, cmd: &[u8]) -> Result<(Status, Duration)> {
        let tag = self.tag();
        let t0 = Instant::now();
        self.s.write_all(format!("{tag} ").as_bytes()).await?;
        self.s.write_all(cmd).await?;
        self.s.flush().await?;
        let st = self.read_until_tagged(&tag).await?;
        Ok((st, t0.elapsed()))
    }

    /// APPEND with a synchronizing literal (works with every server).
    pub async fn append(
        &mut self,
        mailbox: &str,
        flags: &str,
        msg: &[u8],
    ) -> Result<(Status, Duration)> {
        let tag = self.tag();
        let t0 = Instant::now();
        self.s
            .write_all(
                format!(
                    "{tag} APPEND {} ({flags}) {{{}}}\r\n",
                    quote(mailbox),
                    msg.len()
                )
                .as_bytes(),
            )
            .await?;
        self.s.flush().await?;
        loop {
            let line = self.read_line().await?;
            if line.starts_with(b"+") {
                break;
            }
            if let Some(st) = tagged_status(&line, &tag) {
                return Ok((st, t0.elapsed()));
            }
        }
        self.s.write_all(msg).await?;
        self.s.write_all(b"\r\n").await?;
        self.s.flush().await?;
        let st = self.read_until_tagged(&tag).await?;
        Ok((st, t0.elapsed()))
    }

    /// Send IDLE and wait for the continuation; returns the tag to finish
    /// with [`Client::idle_done`].
    pub async fn idle_start(&mut self) -> Result<String> {
        let tag = self.tag();
        self.s
            .write_all(format!("{tag} IDLE\r\n").as_bytes())
            .await?;
        self.s.flush().await?;
        loop {
            let line = self.read_line().await?;
            if line.starts_with(b"+") {
                return Ok(tag);
            }
            if let Some(st) = tagged_status(&line, &tag) {
                return Err(anyhow!("IDLE refused: {st:?}"));
            }
        }
    }

    pub async fn idle_done(&mut self, tag: &str) -> Result<Status> {
        self.s.write_all(b"DONE\r\n").await?;
        self.s.flush().await?;
        self.read_until_tagged(tag).await
    }

    /// Close politely (LOGOUT), ignoring errors.
    pub async fn logout(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.command("LOGOUT")).await;
    }
}

/// TLS client configuration: trust the given CA file, or (default) accept
/// any certificate — the benchmark runs on loopback against self-signed
/// certificates.
pub fn tls_config(ca_file: Option<&str>) -> Result<Arc<rustls::ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let cfg = match ca_file {
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            let mut rd = std::io::BufReader::new(
                std::fs::File::open(path).with_context(|| format!("open {path}"))?,
            );
            for cert in rustls_pemfile::certs(&mut rd) {
                roots.add(cert?)?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
            .with_no_client_auth(),
    };
    Ok(Arc::new(cfg))
}

#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals() {
        assert_eq!(literal_len(b"* 1 FETCH (BODY[] {123}\r\n"), Some(123));
        assert_eq!(literal_len(b"* 1 FETCH (BODY[] {5+}\r\n"), Some(5));
        assert_eq!(literal_len(b"* 1 FETCH (BODY[] {0}\n"), Some(0));
        assert_eq!(literal_len(b"* OK done\r\n"), None);
        assert_eq!(literal_len(b"* OK {}\r\n"), None);
        assert_eq!(literal_len(b"* OK {1a}\r\n"), None);
        assert_eq!(literal_len(b"* OK {12}"), None, "no line end yet");
    }

    #[test]
    fn tagged() {
        assert_eq!(tagged_status(b"L1 OK done\r\n", "L1"), Some(Status::Ok));
        assert_eq!(
            tagged_status(b"L1 no [TRYCREATE] x\r\n", "L1"),
            Some(Status::No)
        );
        assert_eq!(tagged_status(b"L1 BAD what\r\n", "L1"), Some(Status::Bad));
        assert_eq!(tagged_status(b"L12 OK done\r\n", "L1"), None);
        assert_eq!(tagged_status(b"* OK hi\r\n", "L1"), None);
        assert_eq!(tagged_status(b"L1 OKAY\r\n", "L1"), None);
    }

    #[test]
    fn untagged() {
        assert_eq!(
            untagged_number(b"* 12 EXISTS\r\n"),
            Some((12, "EXISTS".into()))
        );
        assert_eq!(
            untagged_number(b"* 3 expunge\r\n"),
            Some((3, "EXPUNGE".into()))
        );
        assert_eq!(
            untagged_number(b"* 3 FETCH (FLAGS ())\r\n"),
            Some((3, "FETCH".into()))
        );
        assert_eq!(untagged_number(b"* OK [UIDNEXT 4]\r\n"), None);
        assert_eq!(untagged_number(b"L1 OK\r\n"), None);
        assert!(is_change_notification(b"* 4 EXISTS\r\n"));
        assert!(is_change_notification(b"* 4 FETCH (FLAGS (\\Seen))\r\n"));
        assert!(is_change_notification(b"* VANISHED 4\r\n"));
        assert!(!is_change_notification(b"* OK Still here\r\n"));
        assert!(!is_change_notification(b"* FLAGS (\\Seen)\r\n"));
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("a"), "\"a\"");
        assert_eq!(quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
    }

    #[tokio::test]
    async fn client_against_scripted_server() {
        use tokio::net::TcpListener;
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let srv = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            let mut s = BufStream::new(s);
            s.write_all(b"* OK ready\r\n").await.unwrap();
            s.flush().await.unwrap();
            let mut line = String::new();
            s.read_line(&mut line).await.unwrap();
            assert_eq!(line, "L1 SELECT \"INBOX\"\r\n");
            s.write_all(b"* 5 EXISTS\r\n* 1 FETCH (BODY[] {9}\r\nab\r\n{1}\r\n)\r\n* 2 EXPUNGE\r\nL1 OK done\r\n")
                .await
                .unwrap();
            s.flush().await.unwrap();
            line.clear();
            s.read_line(&mut line).await.unwrap();
            assert_eq!(line, "L2 APPEND \"INBOX\" () {3}\r\n");
            s.write_all(b"+ go\r\n").await.unwrap();
            s.flush().await.unwrap();
            let mut body = [0u8; 5];
            s.read_exact(&mut body).await.unwrap();
            assert_eq!(&body, b"abc\r\n");
            s.write_all(b"L2 NO quota\r\n").await.unwrap();
            s.flush().await.unwrap();
        });
        let t = Target { addr, tls: None };
        let mut c = Client::connect(&t).await.unwrap();
        c.collect = true;
        let (st, _) = c.command("SELECT \"INBOX\"").await.unwrap();
        assert_eq!(st, Status::Ok);
        // the literal containing "{1}\r\n" must not be taken as a new literal
        assert_eq!(c.exists, 4);
        assert_eq!(c.untagged.len(), 3);
        assert_eq!(
            c.untagged[1],
            b"* 1 FETCH (BODY[] {9}\r\nab\r\n{1}\r\n)\r\n"
        );
        let (st, _) = c.append("INBOX", "", b"abc").await.unwrap();
        assert_eq!(st, Status::No);
        srv.await.unwrap();
    }
}
