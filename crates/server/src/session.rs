//! One task per connection: the accept loop, connection limits, the request
//! reader (lines, literals, limits) and the command loop. Command handlers live
//! in `cmd/` as methods on [`Session`].

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use pillarbox_proto::framer::{parse_request, CommandBuffer};
use pillarbox_proto::types::{LiteralData, Request};
use pillarbox_store::bus::RecvError;
use pillarbox_store::{Account, ChangeEvent, ChangeKind, ChangeReceiver, MetaStore, ModSeq, Uid};
use tokio::net::{TcpListener, TcpStream};

use crate::cmd::CmdError;
use crate::conn::{Connection, Line, Stream};
use crate::view::SelectedMailbox;
use crate::Shared;

/// A STORE or EXPUNGE of at most this many messages may run on the
/// session's thread (see `Session::store_flags`, `Session::expunge_deleted`).
const INLINE_STORE_UIDS: usize = 64;

pub(crate) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, implicit_tls: bool) {
    let mut shutdown = shared.shutdown.clone();
    loop {
        tokio::select! {
            r = listener.accept() => {
                let (tcp, peer) = match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let admitted = admit(&shared, peer.ip());
                let shared = shared.clone();
                tokio::spawn(async move {
                    match admitted {
                        Err(why) => reject(tcp, implicit_tls, &shared, why).await,
                        Ok(()) => {
                            let _guard = ConnGuard { shared: shared.clone(), ip: peer.ip() };
                            run_connection(tcp, peer, shared, implicit_tls).await;
                        }
                    }
                });
            }
            _ = shutdown.changed() => break,
        }
    }
}

fn admit(shared: &Shared, ip: IpAddr) -> Result<(), &'static str> {
    let limits = &shared.config.limits;
    let mut c = shared.conns.lock().unwrap_or_else(|e| e.into_inner());
    if c.total >= limits.max_connections {
        return Err("Too many connections");
    }
    let n = c.per_ip.get(&ip).copied().unwrap_or(0);
    if n >= limits.max_connections_per_ip {
        return Err("Too many connections from your address");
    }
    c.total += 1;
    *c.per_ip.entry(ip).or_insert(0) += 1;
    Ok(())
}

struct ConnGuard {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let mut c = self.shared.conns.lock().unwrap_or_else(|e| e.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.per_ip.remove(&self.ip);
            }
        }
    }
}

async fn reject(tcp: TcpStream, implicit_tls: bool, shared: &Shared, why: &str) {
    let stream = if implicit_tls {
        match tls_accept(tcp, shared).await {
            Some(s) => s,
            None => return,
        }
    } else {
        Stream::Plain(tcp)
    };
    let mut conn = Connection::new(stream);
    let _ = conn
        .write_all(format!("* BYE [UNAVAILABLE] {why}\r\n").as_bytes())
        .await;
    conn.shutdown().await;
}

async fn tls_accept(tcp: TcpStream, shared: &Shared) -> Option<Stream> {
    let acceptor = shared.tls.as_ref()?;
    match tokio::time::timeout(shared.config.preauth_timeout(), acceptor.accept(tcp)).await {
        Ok(Ok(s)) => Some(Stream::Tls(Box::new(s))),
        Ok(Err(e)) => {
            tracing::debug!("TLS handshake failed: {e}");
            None
        }
        Err(_) => None,
    }
}

async fn run_connection(tcp: TcpStream, peer: SocketAddr, shared: Arc<Shared>, implicit_tls: bool) {
    let stream = if implicit_tls {
        match tls_accept(tcp, &shared).await {
            Some(s) => s,
            None => return,
        }
    } else {
        Stream::Plain(tcp)
    };
    let metrics = shared.metrics.clone();
    metrics.sessions.inc();
    metrics.sessions_active.inc();
    let started = std::time::Instant::now();
    let mut session = Session::new(Connection::new(stream), peer, shared);
    let reason = session.run().await;
    session.release_user();
    metrics.session_ended(reason, started.elapsed());
    drop(session);
    crate::memory_released();
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    NotAuthenticated,
    Authenticated,
    Selected,
    Logout,
}

/// What woke the command loop.
enum Wake {
    Line(std::io::Result<Line>),
    Timeout,
    Shutdown,
    Event(Result<ChangeEvent, RecvError>),
}

/// Receives from the bus if subscribed; otherwise never completes.
async fn recv_opt(rx: Option<&mut ChangeReceiver>) -> Result<ChangeEvent, RecvError> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// What reading one request produced.
enum ReadOutcome {
    Request(Request),
    /// Already answered (BAD / NO); continue with the next request.
    Answered,
    Close,
}

pub(crate) struct Session {
    pub shared: Arc<Shared>,
    pub conn: Connection,
    pub peer: SocketAddr,
    pub state: State,
    pub account: Option<Account>,
    pub selected: Option<SelectedMailbox>,
    /// ENABLE IMAP4rev2 given.
    pub rev2: bool,
    /// ENABLE UTF8=ACCEPT (or IMAP4rev2): mailbox names are UTF-8.
    pub utf8: bool,
    pub condstore: bool,
    /// ENABLE QRESYNC: expunges are reported as VANISHED (RFC 7162 3.2.10).
    pub qresync: bool,
    pub auth_failures: u32,
    /// Commands answered BAD before login.
    pub preauth_bad: u32,
    /// SEARCHRES `$` (UIDs).
    pub saved_search: Option<Vec<Uid>>,
    pub out: Vec<u8>,
    /// The change bus, subscribed to while NOTIFY is in effect (IDLE
    /// subscribes for its own duration otherwise).
    pub changes: Option<ChangeReceiver>,
    counted_user: Option<String>,
    /// Unique per connection (the origin of the changes it publishes).
    pub id: u64,
    /// Status word of the last tagged response (for metrics).
    pub last_status: &'static str,
    /// RFC 5465 NOTIFY settings, when active (boxed: most sessions have none,
    /// and an idle session is counted in bytes).
    pub notify: Option<Box<crate::cmd::notify::NotifyState>>,
    /// Set when the server ends the session after a command (for metrics).
    pub end_reason: Option<&'static str>,
}

static NEXT_SESSION_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl Session {
    fn new(conn: Connection, peer: SocketAddr, shared: Arc<Shared>) -> Self {
        Session {
            shared,
            conn,
            peer,
            state: State::NotAuthenticated,
            account: None,
            selected: None,
            rev2: false,
            utf8: false,
            condstore: false,
            qresync: false,
            auth_failures: 0,
            preauth_bad: 0,
            saved_search: None,
            out: Vec::with_capacity(256),
            changes: None,
            counted_user: None,
            id: NEXT_SESSION_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            notify: None,
            last_status: "OK",
            end_reason: None,
        }
    }

    /// The command loop; returns how the session ended (for metrics).
    async fn run(&mut self) -> &'static str {
        let greeting = format!(
            "* OK [CAPABILITY {}] Pillarbox ready.\r\n",
            self.capabilities()
        );
        self.out.extend_from_slice(greeting.as_bytes());
        if self.flush().await.is_err() {
            return "error";
        }
        let mut shutdown = self.shared.shutdown.clone();
        while self.state != State::Logout {
            let max_line = self.line_limit();
            if *shutdown.borrow() {
                self.bye("Server shutting down").await;
                return "shutdown";
            }
            // The timer and the shutdown waiter are made for each wait, not
            // kept for the whole loop: kept, they would stay in the
            // session's memory during IDLE too (about 0.4 KiB per idle
            // session, measured), for a saving within the noise.
            let timeout = self.inactivity_limit();
            let notify_on = self.notify.is_some();
            let wake = tokio::select! {
                r = tokio::time::timeout(timeout, self.conn.read_line(max_line)) => match r {
                    Ok(line) => Wake::Line(line),
                    Err(_) => Wake::Timeout,
                },
                _ = shutdown.changed() => Wake::Shutdown,
                ev = recv_opt(self.changes.as_mut()), if notify_on => Wake::Event(ev),
            };
            let outcome = match wake {
                Wake::Timeout => {
                    self.bye("Disconnected for inactivity").await;
                    return "timeout";
                }
                Wake::Shutdown => {
                    self.bye("Server shutting down").await;
                    return "shutdown";
                }
                Wake::Event(ev) => {
                    let r = self.notify_event(ev, false).await;
                    if self.flush().await.is_err() {
                        return "error";
                    }
                    if r.is_err() {
                        // What the client was told (e.g. BYE) is sent first.
                        return self.end_reason.unwrap_or("error");
                    }
                    continue;
                }
                Wake::Line(first) => {
                    match tokio::time::timeout(timeout, self.read_request(first)).await {
                        Ok(o) => o,
                        Err(_) => {
                            self.bye("Disconnected for inactivity").await;
                            return "timeout";
                        }
                    }
                }
            };
            match outcome {
                ReadOutcome::Close => return "eof",
                ReadOutcome::Answered => {
                    if self.flush().await.is_err() {
                        return "error";
                    }
                    if self.too_many_bad().await {
                        return "bad_commands";
                    }
                }
                ReadOutcome::Request(req) => {
                    let keep = self.execute(req).await;
                    if self.flush().await.is_err() {
                        return "error";
                    }
                    if self.too_many_bad().await {
                        return "bad_commands";
                    }
                    if !keep {
                        return if let Some(reason) = self.end_reason {
                            reason
                        } else if self.state == State::Logout {
                            "logout"
                        } else if self.auth_failures >= self.shared.config.auth.max_failures {
                            "auth_failures"
                        } else {
                            "error"
                        };
                    }
                }
            }
        }
        self.conn.shutdown().await;
        "logout"
    }

    /// How long the client may keep the server waiting for a command:
    /// shorter before login.
    fn inactivity_limit(&self) -> std::time::Duration {
        if self.state == State::NotAuthenticated {
            self.shared.config.preauth_timeout()
        } else {
            self.shared.config.auth_timeout()
        }
    }

    /// The longest command line read now.
    fn line_limit(&self) -> usize {
        self.before_login_at_most(self.shared.config.limits.max_line_length)
    }

    /// `limit`, or before login at most `preauth_max_bytes` (lines and
    /// literals alike).
    fn before_login_at_most<T: Ord + TryFrom<usize>>(&self, limit: T) -> T {
        let cap = T::try_from(self.shared.config.limits.preauth_max_bytes);
        match cap {
            Ok(cap) if self.state == State::NotAuthenticated => limit.min(cap),
            _ => limit,
        }
    }

    /// Before login, after `preauth_max_bad_commands` invalid commands:
    /// says BYE (and the session ends).
    async fn too_many_bad(&mut self) -> bool {
        if self.state != State::NotAuthenticated
            || self.preauth_bad < self.shared.config.limits.preauth_max_bad_commands
        {
            return false;
        }
        self.bye("Too many invalid commands").await;
        true
    }

    pub(crate) async fn bye(&mut self, text: &str) {
        self.out
            .extend_from_slice(format!("* BYE {text}\r\n").as_bytes());
        let _ = self.flush().await;
        self.conn.shutdown().await;
    }

    pub(crate) async fn flush(&mut self) -> std::io::Result<()> {
        self.write_out().await?;
        // A \Recent claim that waited for the writer: after what was
        // ready went out, so that a push is not delayed by it.
        if self
            .selected
            .as_ref()
            .is_some_and(|s| s.recent_pending.is_some())
        {
            self.claim_pending_recent().await;
            self.write_out().await?;
        }
        Ok(())
    }

    async fn write_out(&mut self) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let r = self.conn.write_all(&self.out).await;
        self.out.clear();
        if self.out.capacity() > 64 * 1024 {
            self.out.shrink_to(4096);
        }
        r
    }

    /// Reads lines and literals until a request is complete, enforcing limits.
    /// Reads the rest of a request whose first line has been read (reading
    /// the first line is cancel-safe, so the session can wait for it and for
    /// notifications at once; literals and continuation lines are not).
    async fn read_request(&mut self, first: std::io::Result<Line>) -> ReadOutcome {
        let limits = self.shared.config.limits.clone();
        let mut buf = CommandBuffer::new();
        let mut first = Some(first);
        loop {
            let next = match first.take() {
                Some(l) => l,
                None => self.conn.read_line(self.line_limit()).await,
            };
            let line = match next {
                Ok(Line::Text(l)) => l,
                Ok(Line::TooLong { start }) => {
                    // The tag of the request, or of this line if it is the
                    // first one and its tag ended within what was kept.
                    let tag = buf
                        .tag()
                        .or_else(|| {
                            (buf.is_empty() && start.contains(&b' '))
                                .then(|| pillarbox_proto::framer::read_tag(&start))
                                .flatten()
                        })
                        .unwrap_or_else(|| "*".into());
                    let limit = self.line_limit();
                    self.untagged_or_tagged_bad(
                        Some(&tag),
                        &format!("Command line too long (limit {limit} bytes)"),
                    );
                    return ReadOutcome::Answered;
                }
                Ok(Line::Eof) | Err(_) => return ReadOutcome::Close,
            };
            if buf.is_empty() && line.is_empty() {
                return ReadOutcome::Answered; // tolerate empty lines between commands
            }
            let spec = match buf.push_line(&line) {
                Ok(None) => break,
                Ok(Some(spec)) => spec,
                Err(e) => {
                    self.untagged_or_tagged_bad(e.tag.as_deref(), &e.text);
                    return ReadOutcome::Answered;
                }
            };
            let tag = buf.tag().unwrap_or_else(|| "*".into());
            let is_append = buf.command_name().as_deref() == Some("APPEND");
            let max = self.before_login_at_most(if is_append {
                limits.max_literal_size
            } else {
                limits.max_other_literal_size
            });
            if spec.len > max {
                if spec.non_sync {
                    // The client is already sending the bytes; we cannot resync the stream.
                    self.out.extend_from_slice(
                        format!(
                            "* BYE [TOOBIG] Literal of {} bytes exceeds the limit of {max}\r\n",
                            spec.len
                        )
                        .as_bytes(),
                    );
                    let _ = self.flush().await;
                    return ReadOutcome::Close;
                }
                self.out.extend_from_slice(
                    format!(
                        "{tag} NO [TOOBIG] Literal of {} bytes exceeds the limit of {max}\r\n",
                        spec.len
                    )
                    .as_bytes(),
                );
                return ReadOutcome::Answered;
            }
            if !is_append
                && buf.buffered_len() as u64 + spec.len
                    > limits.max_other_literal_size + limits.max_line_length as u64
            {
                self.out
                    .extend_from_slice(format!("{tag} BAD Command too long\r\n").as_bytes());
                return ReadOutcome::Answered;
            }
            if !spec.non_sync {
                self.out.extend_from_slice(b"+ Ready for literal data\r\n");
                if self.flush().await.is_err() {
                    return ReadOutcome::Close;
                }
            }
            let data = if is_append && buf.buffered_len() as u64 + spec.len > limits.spool_threshold
            {
                match self.spool_literal(spec.len).await {
                    Ok(d) => d,
                    Err(_) => return ReadOutcome::Close,
                }
            } else {
                match self.conn.read_exact_vec(spec.len as usize).await {
                    Ok(v) => LiteralData::Memory(v),
                    Err(_) => return ReadOutcome::Close,
                }
            };
            buf.push_literal(data, spec.binary);
        }
        let tag = buf.tag();
        match parse_request(buf.into_parts(), limits.max_nesting) {
            Ok(req) => ReadOutcome::Request(req),
            Err(e) => {
                self.untagged_or_tagged_bad(e.tag.as_deref().or(tag.as_deref()), &e.text);
                ReadOutcome::Answered
            }
        }
    }

    fn untagged_or_tagged_bad(&mut self, tag: Option<&str>, text: &str) {
        if self.state == State::NotAuthenticated {
            self.preauth_bad += 1;
        }
        let tag = tag.unwrap_or("*");
        self.out
            .extend_from_slice(format!("{tag} BAD {text}\r\n").as_bytes());
    }

    async fn spool_literal(&mut self, len: u64) -> std::io::Result<LiteralData> {
        let dir = self.shared.config.data_dir.join("spool");
        std::fs::create_dir_all(&dir)?;
        let file = tempfile::NamedTempFile::new_in(&dir)?;
        let (mut f, path) = file.keep().map_err(|e| e.error)?;
        let r = self.conn.read_into(len, &mut f).await;
        if let Err(e) = r {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        Ok(LiteralData::Spooled { path, len })
    }

    /// Runs a store operation on the blocking pool.
    pub(crate) async fn db<T, F>(&self, f: F) -> Result<T, CmdError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn MetaStore) -> pillarbox_store::Result<T> + Send + 'static,
    {
        let store = self.shared.store.clone();
        match tokio::task::spawn_blocking(move || f(&*store)).await {
            Ok(r) => r.map_err(CmdError::from_store),
            Err(_) => Err(CmdError::no_code("SERVERBUG", "Internal error")),
        }
    }

    /// Runs a small indexed read on the current thread. A hand-off to the
    /// blocking pool costs more than such a query (tens of microseconds, a
    /// WAL reader never waits for the writer); anything that may touch many
    /// rows, write, or wait for a lock uses [`Session::db`].
    /// STORE: on the current thread when it is small and the write lock is
    /// free (a flag change commits without an fsync, see the store), else on
    /// the blocking pool.
    pub(crate) async fn store_flags(
        &self,
        mailbox: i64,
        uids: Vec<u32>,
        op: pillarbox_store::FlagOp,
        flags: Vec<String>,
        unchanged_since: Option<u64>,
    ) -> Result<pillarbox_store::StoreFlagsResult, CmdError> {
        if uids.len() <= INLINE_STORE_UIDS {
            let store = &self.shared.store;
            if let Some(r) = store.try_store_flags(mailbox, &uids, op, &flags, unchanged_since) {
                return r.map_err(CmdError::from_store);
            }
        }
        self.db(move |s| s.store_flags(mailbox, &uids, op, &flags, unchanged_since))
            .await
    }

    /// `MetaStore::expunge_deleted`: a few messages on the session's thread
    /// when the writer is free (as `store_flags`: the trip to the blocking
    /// pool and back cost more than such a write), else on the blocking
    /// pool.
    pub(crate) async fn expunge_deleted(
        &self,
        mailbox: i64,
        uids: Vec<u32>,
    ) -> Result<pillarbox_store::Expunged, CmdError> {
        if uids.len() <= INLINE_STORE_UIDS {
            if let Some(r) = self.shared.store.try_expunge_deleted(mailbox, &uids) {
                return r.map_err(CmdError::from_store);
            }
        }
        self.db(move |s| s.expunge_deleted(mailbox, &uids)).await
    }

    /// A read that is small when `small` (e.g. the snapshot of a mailbox with
    /// few messages): on the current thread, like [`Session::db_quick`];
    /// otherwise on the blocking pool.
    pub(crate) async fn db_read<T, F>(&self, small: bool, f: F) -> Result<T, CmdError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn MetaStore) -> pillarbox_store::Result<T> + Send + 'static,
    {
        if small {
            self.db_quick(f)
        } else {
            self.db(f).await
        }
    }

    pub(crate) fn db_quick<T>(
        &self,
        f: impl FnOnce(&dyn MetaStore) -> pillarbox_store::Result<T>,
    ) -> Result<T, CmdError> {
        f(&*self.shared.store).map_err(CmdError::from_store)
    }

    pub(crate) fn account_id(&self) -> Result<i64, CmdError> {
        self.account
            .as_ref()
            .map(|a| a.id)
            .ok_or_else(|| CmdError::bad("Not authenticated"))
    }

    /// Counts this session against its user's limit; false if over it.
    pub(crate) fn count_user(&mut self, name: &str) -> bool {
        let max = self.shared.config.limits.max_sessions_per_user;
        let mut c = self.shared.conns.lock().unwrap_or_else(|e| e.into_inner());
        let n = c.per_user.entry(name.to_string()).or_insert(0);
        if *n >= max {
            return false;
        }
        *n += 1;
        self.counted_user = Some(name.to_string());
        true
    }

    fn release_user(&mut self) {
        if let Some(name) = self.counted_user.take() {
            let mut c = self.shared.conns.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = c.per_user.get_mut(&name) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    c.per_user.remove(&name);
                }
            }
        }
    }

    pub(crate) fn publish(&self, mailbox: i64, modseq: ModSeq) {
        self.publish_kind(mailbox, modseq, ChangeKind::Messages);
    }

    /// Publishes a message change together with its exact content, so idle
    /// sessions can apply it without reading the store. A delta is taken as
    /// *the* change from its first modseq to its last: one without content
    /// cannot be a commit (every commit that moves the modseq changes a
    /// message), so it is published as a change to read from the store.
    pub(crate) fn publish_delta(&self, mailbox: i64, delta: pillarbox_store::Delta) -> u64 {
        let empty = delta.changes.changed.is_empty() && delta.changes.expunged.is_empty();
        debug_assert!(!empty, "a delta without content: {delta:?}");
        self.publish_event(
            mailbox,
            delta.changes.highest_modseq,
            ChangeKind::Messages,
            (!empty).then(|| Arc::new(delta)),
        )
    }

    /// Like `publish_delta`, for a change this session made to its selected
    /// mailbox and has already applied to its view: when nothing else changed
    /// since the view last read the store (the delta starts at the view's
    /// modseq and no other change was published meanwhile), the view is
    /// marked current, so the sync after the command does not read the store
    /// only to find this change.
    pub(crate) fn publish_own_delta(&mut self, mailbox: i64, delta: pillarbox_store::Delta) {
        let (from, to) = (delta.from_modseq, delta.changes.highest_modseq);
        let version = self.publish_delta(mailbox, delta);
        self.mark_current(mailbox, from, to, version);
    }

    /// For a change this session made and published as `version` but has not
    /// applied to its view yet (APPEND): applies it (announcing EXISTS) when
    /// the view is exactly where the change starts, and marks the view current
    /// as `publish_own_delta` does. Otherwise the sync after the command reads
    /// the store as usual.
    pub(crate) fn apply_own_delta(&mut self, delta: &pillarbox_store::Delta, version: u64) {
        let Some(sel) = self.selected.as_ref() else {
            return;
        };
        if sel.known_modseq != delta.from_modseq || sel.seen_version + 1 != version {
            return;
        }
        // `apply_delta` moves the view's modseq to the delta's end.
        if self.apply_delta(delta, true) {
            if let Some(sel) = self.selected.as_mut() {
                sel.seen_version = version;
            }
        }
    }

    fn mark_current(&mut self, mailbox: i64, from: ModSeq, to: ModSeq, version: u64) {
        if let Some(sel) = self.selected.as_mut() {
            if sel.id == mailbox && sel.known_modseq == from && sel.seen_version + 1 == version {
                sel.known_modseq = to;
                sel.seen_version = version;
            }
        }
    }

    /// Announces a committed change to the other sessions (a hint; they re-read the store).
    pub(crate) fn publish_kind(&self, mailbox: i64, modseq: ModSeq, kind: ChangeKind) {
        self.publish_event(mailbox, modseq, kind, None);
    }

    fn publish_event(
        &self,
        mailbox: i64,
        modseq: ModSeq,
        kind: ChangeKind,
        delta: Option<Arc<pillarbox_store::Delta>>,
    ) -> u64 {
        let Some(a) = &self.account else {
            return 0;
        };
        self.shared
            .publish(a.id, mailbox, modseq, kind, delta, self.id)
    }

    pub(crate) fn is_loopback(&self) -> bool {
        match self.peer.ip() {
            IpAddr::V4(v4) => v4.is_loopback(),
            IpAddr::V6(v6) => {
                v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v| v.is_loopback())
            }
        }
    }

    /// Whether plaintext credentials may be sent on this connection.
    pub(crate) fn login_allowed(&self) -> bool {
        self.conn.tls
            || (self.shared.config.auth.trust_loopback && self.is_loopback())
            || self.shared.config.auth.allow_plaintext
    }

    pub(crate) fn capabilities(&self) -> String {
        let mut caps = vec![
            "IMAP4rev1",
            "IMAP4rev2",
            "SASL-IR",
            "LITERAL+",
            "ID",
            "ENABLE",
        ];
        let appendlimit;
        match self.state {
            State::NotAuthenticated => {
                if !self.conn.tls && self.shared.tls.is_some() {
                    caps.push("STARTTLS");
                }
                if self.login_allowed() {
                    caps.push("AUTH=PLAIN");
                } else {
                    caps.push("LOGINDISABLED");
                }
            }
            _ => {
                caps.extend([
                    "IDLE",
                    "NAMESPACE",
                    "UIDPLUS",
                    "MOVE",
                    "UNSELECT",
                    "CHILDREN",
                    "LIST-EXTENDED",
                    "LIST-STATUS",
                    "SPECIAL-USE",
                    "CREATE-SPECIAL-USE",
                    "ESEARCH",
                    "SEARCHRES",
                    "BINARY",
                    "MULTIAPPEND",
                    "CONDSTORE",
                    "QRESYNC",
                    "NOTIFY",
                    "UTF8=ACCEPT",
                    "STATUS=SIZE",
                    "SORT",
                    "SORT=DISPLAY",
                    "ESORT",
                    "THREAD=ORDEREDSUBJECT",
                    "THREAD=REFERENCES",
                    "THREAD=REFS",
                    "PREVIEW",
                ]);
                appendlimit = format!("APPENDLIMIT={}", self.shared.config.limits.max_literal_size);
                caps.push(&appendlimit);
            }
        }
        caps.join(" ")
    }
}
