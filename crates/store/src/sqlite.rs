//! The embedded metadata store: SQLite in WAL mode.
//!
//! One writer connection behind a mutex and a small pool of reader connections,
//! so reads never wait for the writer (WAL readers see the last commit). Every
//! trait method is exactly one transaction; writes use `BEGIN IMMEDIATE` so the
//! write lock is taken up front and several *processes* may write the same file
//! (they queue on SQLite's lock through `busy_timeout`). Nothing is cached in
//! memory: UIDs, modseqs and UIDVALIDITY are allocated inside the write
//! transaction from the database rows.
//!
//! Durability: the writer commits with `synchronous=NORMAL` (the WAL is not
//! fsynced inside the commit, so the write lock is never held across an
//! fsync), and every write method then fsyncs the WAL file itself before it
//! returns, through a coalesced flush shared by concurrent writers (one fsync
//! covers a whole group). So a call that returned `Ok` survives a power loss:
//! its WAL frames are on disk, and a checkpoint that moved them into the
//! database first synced the database (SQLite does that at NORMAL). Flag
//! changes and EXPUNGE are the exceptions (`write_relaxed`): they skip the
//! flush and are durable from the next flush or checkpoint on (as Dovecot's
//! default `mail_fsync = optimized` does for its index and for the unlinks
//! of an expunge). Losing one to a crash loses no mail: flags go back, or
//! expunged messages come back. Their bodies are still there: an expunge
//! deletes a body kept in the database in the same transaction, and a file
//! only after `make_durable` (`gate::free_files`).
//!
//! Checkpoints run on a background thread with its own connection
//! (`PASSIVE`, whenever the WAL has grown past `CHECKPOINT_WAL_FRAMES`), not
//! inside a writer's commit as SQLite's automatic checkpoint would: a
//! checkpoint fsyncs, and a commit holds the write lock.
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row};

use crate::{
    Account, AccountId, AppendResult, BlobId, CopyResult, Expunged, FlagOp, HeaderFields,
    MailboxChanges, MailboxId, MailboxInfo, MailboxStatus, MessageMeta, MetaStore, ModSeq,
    NewMessage, Result, SearchDoc, SearchIndexSize, StoreError, StoreFlagsResult, TextPart, Uid,
};

mod flags;
mod index_file;

/// Flags as the store keeps them: system flags canonical, keywords deduplicated
/// case-insensitively, sorted (what `MessageMeta::flags` will hold).
pub fn normalize_flags(list: &[String]) -> Result<Vec<String>> {
    flags::normalize(list)
}
pub(crate) mod fts;
mod names;
mod schema;
#[cfg(test)]
mod tests;
mod texts;
mod tokenizer;
mod txn;
mod wal_vfs;

use txn::{Begin, Tx};

/// How long a writer waits for another process's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle reader connections kept for reuse (more are opened on demand). As
/// many as the server runs store calls at once: opening and closing a
/// connection (schema parse, file mapping) costs far more than a query.
const MAX_IDLE_READERS: usize = 64;
/// The database file grows in steps of this size (fewer, larger extents
/// than a page at a time as checkpoints add pages).
const FILE_CHUNK_BYTES: i32 = 8 << 20;
/// The background checkpointer copies the WAL into the database once it
/// holds this many frames (64 MiB, the `journal_size_limit`; SQLite's own
/// automatic threshold is 1000). The same hot pages (a mailbox row, the ends
/// of the modseq indexes) are in many frames, and a checkpoint writes each
/// page once and fsyncs twice: 4000 instead of 1000 halved the
/// checkpointer's CPU in the 10-client load mix (0.10 to 0.05 s in 8 s, 3
/// alternating pairs). And its last step holds the write lock (about 10 ms
/// here): 10 clients appending wrote 4000 frames every 0.3 s, so that step
/// alone reached the APPEND p99. 16000 instead of 4000: 10-client APPEND
/// p99 17.0 and 17.9 ms against 20.0 and 21.6 (2 alternating pairs)...
const CHECKPOINT_WAL_FRAMES: i32 = 16000;
/// ...looking at the count the writer's WAL hook left this often.
const CHECKPOINT_POLL: Duration = Duration::from_millis(100);
/// The final (RESTART) step of a checkpoint waits at most this long for
/// readers still using old frames.
const CHECKPOINT_READER_WAIT: Duration = Duration::from_millis(10);
/// Up to this many UIDs are looked up one by one; more use one range scan.
const POINT_LOOKUP_MAX: usize = 64;

/// The mailboxes created with every account: name and special-use attribute.
pub const DEFAULT_MAILBOXES: [(&str, Option<&str>); 6] = [
    ("INBOX", None),
    ("Drafts", Some("\\Drafts")),
    ("Sent", Some("\\Sent")),
    ("Trash", Some("\\Trash")),
    ("Junk", Some("\\Junk")),
    ("Archive", Some("\\Archive")),
];

pub struct SqliteStore {
    path: PathBuf,
    /// The search index file, attached by readers as `ix` (`index_file.rs`).
    index_path: PathBuf,
    /// Declared before `wal`: the connection (whose WAL hook points at it) is
    /// dropped first.
    writer: Arc<Mutex<Connection>>,
    readers: Mutex<Vec<Connection>>,
    /// APPENDs waiting for the next group commit (see `append_indexed`).
    appends: Mutex<Vec<AppendJob>>,
    /// Coalesced fsyncs of the WAL after commits (see the module docs).
    wal_flush: Arc<crate::flush::FlushGroup>,
    /// Full texts of new search documents, written in batches (`texts.rs`).
    texts: Arc<texts::TextQueue>,
    /// Dropping it writes the queued texts and stops their thread (before
    /// the checkpointer and `wal` go).
    _text_writer: texts::TextWriter,
    /// Dropping it stops and joins the checkpointer thread, which holds the
    /// writer connection too.
    _checkpointer: CheckpointerThread,
    /// What the writer's WAL hook counts.
    wal: Arc<WalCounters>,
    /// Tombstones kept per mailbox (see [`count_tombstones`]); 0: all.
    expunge_history: std::sync::atomic::AtomicU32,
}

/// The default of [`SqliteStore::set_expunge_history`].
pub const DEFAULT_EXPUNGE_HISTORY: u32 = 10_000;

/// Kept by the writer's WAL hook (`set_wal_hook`) and `sync_wal`.
struct WalCounters {
    /// The checkpointer's threshold: [`CHECKPOINT_WAL_FRAMES`] (tests lower it).
    checkpoint_at: AtomicI32,
    /// Frames in the WAL after the writer's last commit (for the checkpointer).
    frames: AtomicI32,
    /// Commits the writer has made.
    commits: AtomicU64,
    /// Of those, how many a completed WAL fsync covers: when it is all of
    /// them, there is nothing to make durable.
    synced: AtomicU64,
}

impl Default for WalCounters {
    fn default() -> Self {
        WalCounters {
            checkpoint_at: AtomicI32::new(CHECKPOINT_WAL_FRAMES),
            frames: AtomicI32::new(0),
            commits: AtomicU64::new(0),
            synced: AtomicU64::new(0),
        }
    }
}

/// Validates (and canonicalises) what an APPEND stores, before the write
/// lock is taken: per message its encoded flags, `\Seen`, `\Deleted` and size.
fn validate_appends(messages: &[NewMessage]) -> Result<Vec<(String, bool, bool, i64)>> {
    messages
        .iter()
        .map(|m| {
            if !m.blob.is_valid() {
                return Err(StoreError::Other(format!(
                    "invalid blob id {:?}",
                    m.blob.as_str()
                )));
            }
            let f = flags::normalize(&m.flags)?;
            Ok((
                flags::encode(&f),
                flags::has(&f, flags::SEEN),
                flags::has(&f, flags::DELETED),
                to_i64(m.size)?,
            ))
        })
        .collect()
}

/// One APPEND waiting to be committed with others.
struct AppendJob {
    mailbox: MailboxId,
    messages: Vec<NewMessage>,
    docs: Vec<SearchDoc>,
    prepared: Vec<(String, bool, bool, i64)>,
    recent_from: Option<Uid>,
    reply: std::sync::mpsc::Sender<Result<AppendResult>>,
}

type AppendReply = std::sync::mpsc::Receiver<Result<AppendResult>>;

impl AppendJob {
    fn new(
        mailbox: MailboxId,
        messages: &[NewMessage],
        docs: &[SearchDoc],
        prepared: Vec<(String, bool, bool, i64)>,
        recent_from: Option<Uid>,
    ) -> (AppendJob, AppendReply) {
        let (reply, result) = std::sync::mpsc::channel();
        let job = AppendJob {
            mailbox,
            messages: messages.to_vec(),
            docs: docs.to_vec(),
            prepared,
            recent_from,
            reply,
        };
        (job, result)
    }

    /// What [`commit_appends`] sent the job.
    fn outcome(reply: AppendReply) -> Result<AppendResult> {
        reply
            .recv()
            .unwrap_or_else(|_| Err(StoreError::Other("append was not processed".into())))
    }
}

impl SqliteStore {
    /// Opens (creating and migrating if needed) the database file.
    pub fn open(path: &Path) -> crate::Result<Self> {
        let writer = open_connection(path, false)?;
        // Commits are made durable by `sync_wal` after the write lock is
        // released (see the module docs).
        // No automatic checkpoint in commits (the pragma also removes
        // SQLite's own WAL hook); the hook below feeds the checkpointer.
        writer.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0;")?;
        set_chunk_size(&writer, FILE_CHUNK_BYTES)?;
        let wal = Arc::new(WalCounters::default());
        set_wal_hook(&writer, &wal);
        let mode = switch_to_wal(&writer)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Other(format!(
                "could not switch the database to WAL mode (got {mode})"
            )));
        }
        let index_path = index_file::path_for(path);
        let index = {
            let tx = Tx::begin(&writer, Begin::Immediate)?;
            schema::migrate(&tx)?;
            let index = index_file::open(&tx, &index_path)?;
            tx.commit()?;
            index
        };
        // Deletions an earlier process recorded but did not apply.
        let texts = Arc::new(texts::TextQueue::default());
        texts.note_deletes();
        texts::watch_deletions(&writer, &texts);
        let writer = Arc::new(Mutex::new(writer));
        let wal_flush: Arc<crate::flush::FlushGroup> = Default::default();
        // The text writer makes the commits that created documents durable
        // before their texts go into the index file (see `texts`).
        let durable = {
            let (path, wal, flush) = (path.to_path_buf(), wal.clone(), wal_flush.clone());
            move || sync_wal(&path, &wal, &flush)
        };
        Ok(SqliteStore {
            path: path.to_path_buf(),
            index_path,
            writer: writer.clone(),
            readers: Mutex::new(Vec::new()),
            appends: Mutex::new(Vec::new()),
            wal_flush,
            texts: texts.clone(),
            _text_writer: texts::TextWriter::spawn(
                writer.clone(),
                index,
                durable,
                texts,
                wal.clone(),
            )?,
            _checkpointer: spawn_checkpointer(path, writer, wal.clone())?,
            wal,
            expunge_history: DEFAULT_EXPUNGE_HISTORY.into(),
        })
    }

    /// How many expunged UIDs (with their modseq) each mailbox keeps for
    /// clients that resynchronise (RFC 7162 VANISHED, CONDSTORE/QRESYNC
    /// sessions catching up), beyond which the oldest are dropped; 0: keep
    /// them all. A client resynchronising from before the oldest kept is
    /// still answered correctly, less compactly (see `changes_since`).
    pub fn set_expunge_history(&self, keep: u32) {
        self.expunge_history
            .store(keep, std::sync::atomic::Ordering::Relaxed);
    }

    fn expunge_history(&self) -> u32 {
        self.expunge_history
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Runs `f` in one write transaction (`BEGIN IMMEDIATE`), committing on
    /// `Ok`, and returns once the commit is durable.
    fn write<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let out = self.write_relaxed(f)?;
        self.sync_wal()?;
        Ok(out)
    }

    /// Like `write`, but returns without waiting for the commit to be on disk
    /// (see the module docs), unless it moved a mailbox's modseq reservation
    /// (see [`MODSEQ_RESERVE`]).
    fn write_relaxed<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        self.durable_if_reserved(reserving(|| write_on(&self.writer, f)))
    }

    /// A relaxed write's result, after making it durable if it moved a
    /// modseq reservation (rare: see [`MODSEQ_RESERVE`]).
    fn durable_if_reserved<T>(&self, (out, reserved): (Result<T>, bool)) -> Result<T> {
        let out = out?;
        if reserved {
            self.sync_wal()?;
        }
        Ok(out)
    }

    /// Like `write_relaxed`, but None (nothing done) if the write lock is
    /// held by another thread of this process, instead of waiting for it.
    /// A write that would move a modseq reservation is not made here (None):
    /// it must be made durable before it is reported, and the caller's
    /// thread must not wait for the disk.
    fn try_write_relaxed<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Option<Result<T>> {
        self.try_write_tx(|tx| {
            let (out, reserved) = reserving(|| f(&tx));
            if reserved {
                // Dropping the transaction rolls it back.
                return None;
            }
            Some(out.and_then(|out| {
                tx.commit()?;
                Ok(out)
            }))
        })
    }

    /// Runs `f` in a write transaction (`BEGIN IMMEDIATE` on the writer)
    /// that `f` commits, or returns None without waiting when another thread
    /// of this process holds the writer or another process the write lock.
    fn try_write_tx<T>(&self, f: impl FnOnce(Tx<'_>) -> Option<Result<T>>) -> Option<Result<T>> {
        let conn = match self.writer.try_lock() {
            Ok(c) => c,
            Err(std::sync::TryLockError::WouldBlock) => return None,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
        };
        // Bound, so that the transaction ends before the writer's guard.
        let out = match try_begin_immediate(&conn)? {
            Ok(tx) => f(tx),
            Err(e) => Some(Err(e)),
        };
        out
    }

    /// Makes every commit made so far durable: fsync of the WAL file (opened
    /// by path each time, so a WAL that SQLite truncated or recreated is still
    /// the one synced). No WAL file means everything was checkpointed into the
    /// database, which SQLite synced. Nothing to do when no commit was made
    /// since the last flush began (e.g. a caller making sure a write that
    /// was already durable is).
    fn sync_wal(&self) -> Result<()> {
        sync_wal(&self.path, &self.wal, &self.wal_flush)
    }

    /// Runs `f` in one read transaction on a pooled reader connection, so all its
    /// queries see the same snapshot.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        self.on_reader(|conn| read_on(conn, f))?
    }

    /// Runs `f` on a reader connection from the pool (opened if none is idle).
    /// The connection goes back to the pool only if `f` succeeded: one whose
    /// transaction failed to end is dropped, not reused.
    fn on_reader<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let pooled = self
            .readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = match pooled {
            Some(c) => c,
            None => {
                let c = open_connection(&self.path, true)?;
                c.execute(
                    "ATTACH DATABASE ?1 AS ix",
                    [self.index_path.to_string_lossy()],
                )?;
                c
            }
        };
        let out = f(&conn)?;
        let mut pool = self.readers.lock().unwrap_or_else(PoisonError::into_inner);
        if pool.len() < MAX_IDLE_READERS {
            pool.push(conn);
        }
        Ok(out)
    }

    /// Like `read`, but on the writer connection when no thread holds it. A
    /// pooled reader drops its whole page cache whenever the WAL changed since
    /// its last transaction (any commit does that) and reads every page again;
    /// the writer's cache stays valid across its own commits. The writer waits
    /// meanwhile, so this is for reads of a few rows: the changes since a
    /// modseq, a FETCH batch's summaries (10-client load mix: 5% less CPU per
    /// command, 4 alternating pairs). Reads of one statement use `read_one`.
    fn read_small<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        match self.writer.try_lock() {
            Ok(conn) => read_on(&conn, f)?,
            Err(_) => self.read(f),
        }
    }

    /// Like `read_small`, for `f` that runs **one** statement: that is a
    /// snapshot of its own, so no BEGIN and ROLLBACK around it (SQLite
    /// parses those again each time).
    fn read_one<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        match self.writer.try_lock() {
            Ok(conn) => f(&conn),
            Err(_) => self.on_reader(f),
        }
    }
}

/// [`SqliteStore::sync_wal`] of the database at `path`.
fn sync_wal(path: &Path, counters: &WalCounters, flush: &crate::flush::FlushGroup) -> Result<()> {
    if counters.synced.load(Ordering::SeqCst) >= counters.commits.load(Ordering::SeqCst) {
        return Ok(());
    }
    let mut wal = path.to_path_buf().into_os_string();
    wal.push("-wal");
    let wal = PathBuf::from(wal);
    flush.run(|| {
        let covered = counters.commits.load(Ordering::SeqCst);
        // fdatasync: the frames, and the file size when the WAL grew;
        // not the modification time (as SQLite syncs its own files).
        match std::fs::File::open(&wal) {
            Ok(f) => f.sync_data()?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        counters.synced.fetch_max(covered, Ordering::SeqCst);
        Ok(())
    })?;
    Ok(())
}

/// Runs `f` in a read transaction on `conn`. The outer `Result` is the
/// transaction's own failure, the inner one `f`'s.
fn read_on<T>(conn: &Connection, f: impl FnOnce(&Connection) -> Result<T>) -> Result<Result<T>> {
    let tx = Tx::begin(conn, Begin::Deferred)?;
    let out = f(&tx);
    // A read transaction has nothing to commit; ending it releases the snapshot.
    tx.rollback()?;
    Ok(out)
}

/// Runs `f` in one write transaction (`BEGIN IMMEDIATE`) on the writer
/// connection, committing on `Ok` (not waiting for the disk).
fn write_on<T>(writer: &Mutex<Connection>, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    let conn = writer.lock().unwrap_or_else(PoisonError::into_inner);
    let tx = Tx::begin(&conn, Begin::Immediate)?;
    let out = f(&tx)?;
    tx.commit()?;
    Ok(out)
}

/// Puts the database file in WAL mode (persistent in the file; every opener
/// asks anyway) and returns the mode it is in. The switch needs the file to
/// itself, and SQLite answers "busy" at once instead of waiting when another
/// connection holds it (several processes opening a fresh file): retried for
/// as long as a writer would wait.
fn switch_to_wal(conn: &Connection) -> Result<String> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        match conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0)) {
            Ok(mode) => return Ok(mode),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Opens a connection with the pragmas every connection needs. Readers are
/// additionally `query_only`, so a bug cannot write outside the writer's lock.
fn open_connection(path: &Path, reader: bool) -> Result<Connection> {
    // Through the VFS that writes a commit's WAL frames at once (`wal_vfs`).
    let conn = Connection::open_with_flags_and_vfs(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        wal_vfs::name()?,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    tokenizer::register(&conn)?;
    // More distinct statements than rusqlite's default cache of 16.
    conn.set_prepared_statement_cache_capacity(64);
    // Not memory-mapped: a reader that starts a transaction after any commit
    // drops its whole mapping (SQLite resets the pager when the WAL changed)
    // and faults the pages in again, which cost more under a mix of reads
    // and writes than reading the pages (mix of 10 and 50 clients: 4-8% less
    // CPU per command without it). It also keeps an I/O error an error
    // instead of a SIGBUS.
    // Temporary data in memory: the statement journal of an APPEND's
    // savepoint (the first image of every page it changes) outgrew its
    // memory buffer and became a file created and removed per APPEND.
    conn.execute_batch(
        "PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA journal_size_limit = 67108864;
         PRAGMA mmap_size = 0;
         PRAGMA temp_store = MEMORY;",
    )?;
    if reader {
        conn.execute_batch("PRAGMA query_only = ON;")?;
    }
    Ok(conn)
}

/// What the checkpointer thread holds. Fields drop in this order: the
/// writer connection (whose WAL hook points at `wal`) before `wal`.
struct Checkpointer {
    writer: Arc<Mutex<Connection>>,
    wal: Arc<WalCounters>,
    conn: Connection,
}

impl Checkpointer {
    fn checkpoint(&self, mode: &str) -> rusqlite::Result<(bool, i32, i32)> {
        self.conn
            .query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
                Ok((r.get::<_, i32>(0)? != 0, r.get(1)?, r.get(2)?))
            })
    }

    /// Copies the WAL into the database without holding up writers
    /// (PASSIVE), then, holding the writer for the few frames committed
    /// meanwhile, finishes with RESTART: it waits (briefly) for readers of
    /// old frames, so that the next commit starts the WAL over instead of
    /// growing it. Without that last step a busy server never gets a moment
    /// with the WAL fully copied and no new commit, and the WAL grows
    /// without bound.
    fn run(&self) {
        if let Err(e) = self.checkpoint("PASSIVE") {
            tracing::warn!("checkpoint failed: {e}");
            return;
        }
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        match self.checkpoint("RESTART") {
            Ok((false, log, done)) if log == done => self.wal.frames.store(0, Ordering::Relaxed),
            // Readers still on old frames: try again at the next poll.
            Ok(_) => {}
            Err(e) => tracing::warn!("checkpoint failed: {e}"),
        }
    }
}

/// The running checkpointer; dropping it stops the thread and waits for it,
/// so that its connections (the checkpointer's and, as the last holder, the
/// writer's) are closed when the store is. A connection closed later could
/// be the database's last one, and SQLite's last close removes the WAL and
/// shared-memory files by name: the files of whatever store opened the same
/// path since.
struct CheckpointerThread {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for CheckpointerThread {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts the checkpointer thread (see the module docs).
fn spawn_checkpointer(
    path: &Path,
    writer: Arc<Mutex<Connection>>,
    wal: Arc<WalCounters>,
) -> Result<CheckpointerThread> {
    let conn = open_connection(path, false)?;
    // Checkpoints are what extend the database file.
    set_chunk_size(&conn, FILE_CHUNK_BYTES)?;
    // RESTART waits this long at most for readers of old frames.
    conn.busy_timeout(CHECKPOINT_READER_WAIT)?;
    let ck = Checkpointer { writer, wal, conn };
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                rx.recv_timeout(CHECKPOINT_POLL)
            {
                if ck.wal.frames.load(Ordering::Relaxed)
                    >= ck.wal.checkpoint_at.load(Ordering::Relaxed)
                {
                    ck.run();
                }
            }
        })
        .map_err(|e| StoreError::Other(format!("cannot start the checkpointer: {e}")))?;
    Ok(CheckpointerThread {
        stop: Some(tx),
        thread: Some(thread),
    })
}

/// Makes the writer's commits count themselves and record the WAL's frame
/// count in `wal`.
fn set_wal_hook(conn: &Connection, wal: &Arc<WalCounters>) {
    unsafe extern "C" fn hook(
        ctx: *mut std::os::raw::c_void,
        _db: *mut rusqlite::ffi::sqlite3,
        _name: *const std::os::raw::c_char,
        pages: std::os::raw::c_int,
    ) -> std::os::raw::c_int {
        // SAFETY: `ctx` is the WalCounters of the store that owns the
        // connection, which outlive it (see `SqliteStore::wal`).
        let wal = unsafe { &*(ctx as *const WalCounters) };
        wal.frames.store(pages, Ordering::Relaxed);
        wal.commits.fetch_add(1, Ordering::SeqCst);
        rusqlite::ffi::SQLITE_OK
    }
    // SAFETY: the handle is live; the pointer stays valid while the
    // connection exists (the store drops the connection first).
    unsafe {
        rusqlite::ffi::sqlite3_wal_hook(
            conn.handle(),
            Some(hook),
            Arc::as_ptr(wal) as *mut std::os::raw::c_void,
        );
    }
}

/// `SQLITE_FCNTL_CHUNK_SIZE` on the main database file.
fn set_chunk_size(conn: &Connection, bytes: i32) -> Result<()> {
    let mut v: std::os::raw::c_int = bytes;
    // SAFETY: the handle is a live connection owned by `conn`; the file
    // control reads one int through the pointer during the call only.
    let rc = unsafe {
        rusqlite::ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            rusqlite::ffi::SQLITE_FCNTL_CHUNK_SIZE,
            (&mut v as *mut std::os::raw::c_int).cast(),
        )
    };
    if rc != rusqlite::ffi::SQLITE_OK {
        return Err(StoreError::Other(format!(
            "cannot set the file chunk size (code {rc})"
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------- conversions

fn to_i64(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| StoreError::Other(format!("value {v} out of range")))
}

fn col_u32(row: &Row<'_>, idx: usize) -> rusqlite::Result<u32> {
    let v: i64 = row.get(idx)?;
    u32::try_from(v).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(idx, v))
}

fn col_u64(row: &Row<'_>, idx: usize) -> rusqlite::Result<u64> {
    let v: i64 = row.get(idx)?;
    u64::try_from(v).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(idx, v))
}

fn col_i32(row: &Row<'_>, idx: usize) -> rusqlite::Result<i32> {
    let v: i64 = row.get(idx)?;
    i32::try_from(v).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(idx, v))
}

/// The columns `mailbox_row` reads, as a literal so that queries are
/// `concat!`ed at compile time (they run on every STORE, EXPUNGE, APPEND and
/// SELECT: no string built per call).
macro_rules! mailbox_cols {
    () => {
        "id, account, name, uidvalidity, uidnext, highest_modseq, special_use, recent_from"
    };
}

fn mailbox_row(row: &Row<'_>) -> rusqlite::Result<MailboxInfo> {
    Ok(MailboxInfo {
        id: row.get(0)?,
        account: row.get(1)?,
        name: row.get(2)?,
        uidvalidity: col_u32(row, 3)?,
        uidnext: col_u32(row, 4)?,
        highest_modseq: col_u64(row, 5)?,
        special_use: row.get(6)?,
        recent_from: col_u32(row, 7)?,
    })
}

const MESSAGE_COLS: &str = "uid, modseq, flags, internal_date, date_offset, size, blob";

/// A text column, borrowed from the row.
pub(crate) fn col_str<'r>(row: &'r Row<'_>, i: usize) -> rusqlite::Result<&'r str> {
    row.get_ref(i)?.as_str().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// Decodes rows of [`MESSAGE_COLS`]. Rows with the same flags text share one
/// decoded [`crate::Flags`] (a mailbox has few distinct flag sets), so a
/// snapshot allocates per distinct set, not per message.
#[derive(Default)]
struct MessageRows {
    sets: Vec<(Box<str>, crate::Flags)>,
}

impl MessageRows {
    /// Distinct flag sets remembered per read (more are decoded each time).
    const MAX_SETS: usize = 64;

    fn row(&mut self, row: &Row<'_>) -> rusqlite::Result<MessageMeta> {
        let text = col_str(row, 2)?;
        let flags = match self.sets.iter().find(|(t, _)| **t == *text) {
            Some((_, f)) => f.clone(),
            None => {
                let f = crate::share_flags(&flags::decode(text));
                if self.sets.len() < Self::MAX_SETS {
                    self.sets.push((text.into(), f.clone()));
                }
                f
            }
        };
        Ok(MessageMeta {
            uid: col_u32(row, 0)?,
            modseq: col_u64(row, 1)?,
            flags,
            internal_date: row.get(3)?,
            date_offset_minutes: col_i32(row, 4)?,
            size: col_u64(row, 5)?,
            blob: BlobId::new(col_str(row, 6)?),
        })
    }
}

// ---------------------------------------------------------------- helpers (inside a transaction)

/// Every message of a mailbox, ascending UID.
fn all_messages(tx: &Connection, mailbox: MailboxId) -> Result<Vec<MessageMeta>> {
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT {MESSAGE_COLS} FROM messages WHERE mailbox = ?1 ORDER BY uid"
    ))?;
    let mut dec = MessageRows::default();
    let rows = stmt.query_map([mailbox], |r| dec.row(r))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// STORE inside the write transaction (see `MetaStore::store_flags`).
fn store_flags_in(
    tx: &Connection,
    mailbox: MailboxId,
    uids: &[Uid],
    op: FlagOp,
    flag_list: &[String],
    unchanged_since: Option<ModSeq>,
) -> Result<StoreFlagsResult> {
    let rows = rows_for_uids(tx, mailbox, uids, "uid, modseq, flags", |r| {
        let f: String = r.get(2)?;
        Ok((col_u32(r, 0)?, col_u64(r, 1)?, flags::decode(&f)))
    })?;
    let found: std::collections::HashSet<Uid> = rows.iter().map(|r| r.0).collect();
    let missing: Vec<Uid> = uids
        .iter()
        .copied()
        .filter(|u| !found.contains(u))
        .collect();
    let mut modified = Vec::new();
    let mut changes = Vec::new();
    for (uid, modseq, current) in rows {
        if let Some(limit) = unchanged_since {
            if modseq > limit {
                modified.push(uid);
                continue;
            }
        }
        let new = flags::apply(&current, op, flag_list)?;
        if new != current {
            changes.push((uid, new));
        }
    }
    // The mailbox row is read once: here, or by `bump` (either fails with
    // NoSuchMailbox for a mailbox that is gone).
    if changes.is_empty() {
        return Ok(StoreFlagsResult {
            updated: Vec::new(),
            modified,
            missing,
            highest_modseq: mailbox_by_id(tx, mailbox)?.highest_modseq,
        });
    }
    let modseq = bump(tx, mailbox, 0, 0)?.modseq;
    let m = to_i64(modseq)?;
    let mut upd = tx.prepare_cached(
        "UPDATE messages SET flags = ?3, seen = ?4, deleted = ?5, modseq = ?6
             WHERE mailbox = ?1 AND uid = ?2",
    )?;
    let mut updated = Vec::with_capacity(changes.len());
    for (uid, new) in changes {
        upd.execute(params![
            mailbox,
            i64::from(uid),
            flags::encode(&new),
            flags::has(&new, flags::SEEN),
            flags::has(&new, flags::DELETED),
            m
        ])?;
        updated.push((uid, new, modseq));
    }
    Ok(StoreFlagsResult {
        updated,
        modified,
        missing,
        highest_modseq: modseq,
    })
}

/// Runs queued APPENDs in one transaction, each in a savepoint, and sends
/// each its result after the commit (or the commit's error). The full text
/// of the search documents created goes to `texts` once committed.
fn commit_appends(conn: &Connection, jobs: Vec<AppendJob>, texts: &texts::TextQueue) {
    match Tx::begin(conn, Begin::Immediate) {
        Ok(tx) => commit_appends_in(tx, jobs, texts),
        Err(e) => fail_appends(jobs, format!("cannot begin: {e}")),
    }
}

fn fail_appends(jobs: Vec<AppendJob>, what: String) {
    for j in jobs {
        let _ = j.reply.send(Err(StoreError::Other(what.clone())));
    }
}

/// [`commit_appends`] in a write transaction already begun.
fn commit_appends_in(tx: Tx<'_>, mut jobs: Vec<AppendJob>, texts: &texts::TextQueue) {
    let mut results = Vec::with_capacity(jobs.len());
    // (job, document index, docid) of the documents created.
    let mut created: Vec<(usize, usize, i64)> = Vec::new();
    // A lone APPEND needs no savepoint (whose statement journal copies
    // every page the APPEND changes): if it fails, the whole transaction
    // is rolled back.
    let alone = jobs.len() == 1;
    for (n, j) in jobs.iter().enumerate() {
        let run = |c: &Connection| {
            append_in(
                c,
                j.mailbox,
                &j.messages,
                &j.docs,
                &j.prepared,
                j.recent_from,
            )
        };
        let r = if alone {
            run(&tx)
        } else {
            txn::savepoint(&tx, run)
        };
        results.push(r.map(|(res, new_docs)| {
            created.extend(new_docs.into_iter().map(|(d, id)| (n, d, id)));
            res
        }));
    }
    if alone && results.iter().any(Result::is_err) {
        // Dropping the transaction rolls it back.
        drop(tx);
        for (j, r) in jobs.into_iter().zip(results) {
            let _ = j.reply.send(r);
        }
        return;
    }
    match tx.commit() {
        Ok(()) => {
            texts.push(
                created
                    .into_iter()
                    .map(|(n, d, docid)| {
                        let blob = jobs[n].messages[d].blob;
                        let doc = &mut jobs[n].docs[d];
                        texts::PendingText {
                            docid,
                            blob,
                            headers: std::mem::take(&mut doc.headers),
                            body: std::mem::take(&mut doc.body),
                        }
                    })
                    .collect(),
            );
            for (j, r) in jobs.into_iter().zip(results) {
                let _ = j.reply.send(r);
            }
        }
        Err(e) => fail_appends(jobs, format!("commit failed: {e}")),
    }
}

/// The body of one APPEND inside a write transaction. Returns, with the
/// result, the search documents it created (index into `docs`, docid),
/// marked pending: their text is for the caller to queue (`texts.rs`).
fn append_in(
    tx: &Connection,
    mailbox: MailboxId,
    messages: &[NewMessage],
    docs: &[SearchDoc],
    prepared: &[(String, bool, bool, i64)],
    recent_from: Option<Uid>,
) -> Result<(AppendResult, Vec<(usize, i64)>)> {
    if messages.is_empty() {
        let info = mailbox_by_id(tx, mailbox)?;
        return Ok((
            AppendResult {
                uidvalidity: info.uidvalidity,
                uids: Vec::new(),
                modseq: info.highest_modseq,
                recent: (0, 0),
            },
            Vec::new(),
        ));
    }
    let Bumped {
        info,
        first,
        modseq,
        ..
    } = bump(tx, mailbox, messages.len(), 0)?;
    let m = to_i64(modseq)?;
    let mut created = Vec::new();
    for (d, (msg, doc)) in messages.iter().zip(docs).enumerate() {
        let (id, new) = fts::insert_doc_row(tx, &msg.blob, doc)?;
        if new {
            texts::mark_pending(tx, id, &msg.blob)?;
            created.push((d, id));
        }
    }
    for msg in messages {
        if let Some(data) = &msg.inline {
            tx.prepare_cached("INSERT OR IGNORE INTO bodies(id, data) VALUES (?1, ?2)")?
                .execute(params![msg.blob.as_str(), &data[..]])?;
        }
    }
    // The document of the blob, if it is indexed (now or before).
    let mut ins = tx.prepare_cached(
        "INSERT INTO messages(mailbox, uid, modseq, flags, seen, deleted, internal_date,
                                  date_offset, size, blob, docid, summary)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10,
                     (SELECT docid FROM search_docs WHERE blob = ?10), ?11)",
    )?;
    let mut summary = tx.prepare_cached("INSERT INTO summaries(summary) VALUES (?1)")?;
    let mut uids = Vec::with_capacity(messages.len());
    for (i, (msg, (fl, seen, deleted, size))) in messages.iter().zip(prepared).enumerate() {
        // `bump` checked that first + len fits in a u32.
        let uid = first + i as u32;
        ins.execute(params![
            mailbox,
            i64::from(uid),
            m,
            fl,
            seen,
            deleted,
            msg.internal_date,
            i64::from(msg.date_offset_minutes),
            size,
            msg.blob.as_str(),
            summary.insert([&msg.summary])?,
        ])?;
        uids.push(uid);
    }
    // Up to the UIDNEXT `bump` moved past these messages.
    let recent = match recent_from {
        Some(from) => claim_recent_in(tx, mailbox, from, None)?,
        None => (0, 0),
    };
    Ok((
        AppendResult {
            uidvalidity: info.uidvalidity,
            uids,
            modseq,
            recent,
        },
        created,
    ))
}

fn mailbox_by_id(tx: &Connection, id: MailboxId) -> Result<MailboxInfo> {
    Ok(mailbox_counters(tx, id)?.info)
}

/// A mailbox row with the counters the store keeps for itself.
struct MailboxCounters {
    info: MailboxInfo,
    /// The modseq up to which it may hand out modseqs (see [`MODSEQ_RESERVE`]).
    modseq_reserved: i64,
    /// The highest modseq of the tombstones it dropped (see
    /// [`count_tombstones`]).
    expunged_floor: i64,
    /// Its tombstones.
    tombstones: i64,
}

fn mailbox_counters(tx: &Connection, id: MailboxId) -> Result<MailboxCounters> {
    tx.prepare_cached(concat!(
        "SELECT ",
        mailbox_cols!(),
        ", modseq_reserved, expunged_floor, tombstones FROM mailboxes WHERE id = ?1"
    ))?
    .query_row([id], |r| {
        Ok(MailboxCounters {
            info: mailbox_row(r)?,
            modseq_reserved: r.get(8)?,
            expunged_floor: r.get(9)?,
            tombstones: r.get(10)?,
        })
    })
    .optional()?
    .ok_or(StoreError::NoSuchMailbox)
}

/// Every UID below `uidnext` the mailbox does not hold, ascending: the
/// expunges since a modseq whose tombstones are gone, as a superset (it
/// also names UIDs expunged before that modseq).
fn missing_uids(tx: &Connection, mailbox: MailboxId, uidnext: Uid) -> Result<Vec<Uid>> {
    let mut stmt = tx.prepare_cached("SELECT uid FROM messages WHERE mailbox = ?1 ORDER BY uid")?;
    let mut rows = stmt.query([mailbox])?;
    let mut out = Vec::new();
    let mut next: Uid = 1;
    while let Some(r) = rows.next()? {
        let uid = col_u32(r, 0)?;
        out.extend(next..uid);
        next = uid.saturating_add(1);
    }
    out.extend(next..uidnext);
    Ok(out)
}

fn mailbox_by_name(tx: &Connection, account: AccountId, name: &str) -> Result<Option<MailboxInfo>> {
    Ok(tx
        .prepare_cached(concat!(
            "SELECT ",
            mailbox_cols!(),
            " FROM mailboxes WHERE account = ?1 AND name = ?2"
        ))?
        .query_row(params![account, name], mailbox_row)
        .optional()?)
}

fn account_exists(tx: &Connection, account: AccountId) -> Result<()> {
    let found = tx
        .prepare_cached("SELECT 1 FROM accounts WHERE id = ?1")?
        .query_row([account], |_| Ok(()))
        .optional()?;
    found.ok_or(StoreError::NoSuchAccount)
}

/// A UIDVALIDITY never handed out before by this database: max(now, last + 1).
fn next_uidvalidity(tx: &Connection) -> Result<u32> {
    let last: i64 = tx.query_row(
        "SELECT value FROM meta WHERE key = 'last_uidvalidity'",
        [],
        |r| r.get(0),
    )?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let now = i64::try_from(now).unwrap_or(i64::MAX);
    let next = now.max(last.saturating_add(1)).max(1);
    let v =
        u32::try_from(next).map_err(|_| StoreError::Other("UIDVALIDITY space exhausted".into()))?;
    tx.execute(
        "UPDATE meta SET value = ?1 WHERE key = 'last_uidvalidity'",
        [i64::from(v)],
    )?;
    Ok(v)
}

/// Inserts one mailbox row (the name must be free).
fn insert_mailbox(
    tx: &Connection,
    account: AccountId,
    name: &str,
    special_use: Option<&str>,
) -> Result<MailboxInfo> {
    let uidvalidity = next_uidvalidity(tx)?;
    // Never an id a deleted mailbox had (schema V11; every mailbox row is
    // inserted here).
    let id: MailboxId = tx
        .prepare_cached(
            "UPDATE meta SET value = value + 1 WHERE key = 'last_mailbox_id' RETURNING value",
        )?
        .query_row([], |r| r.get(0))?;
    tx.prepare_cached(
        "INSERT INTO mailboxes(id, account, name, uidvalidity, uidnext, highest_modseq, special_use)
         VALUES (?1, ?2, ?3, ?4, 1, 1, ?5)",
    )?
    .execute(params![id, account, name, i64::from(uidvalidity), special_use])?;
    Ok(MailboxInfo {
        id,
        account,
        name: name.to_string(),
        uidvalidity,
        uidnext: 1,
        highest_modseq: 1,
        special_use: special_use.map(str::to_string),
        recent_from: 1,
    })
}

/// Creates the missing parents of `name` (not `name` itself).
fn create_parents(tx: &Connection, account: AccountId, name: &str) -> Result<()> {
    for parent in names::parents(name) {
        if mailbox_by_name(tx, account, parent)?.is_none() {
            insert_mailbox(tx, account, parent, None)?;
        }
    }
    Ok(())
}

/// Creates `name` (which must not exist) and its missing parents.
fn create_mailbox_in(
    tx: &Connection,
    account: AccountId,
    name: &str,
    special_use: Option<&str>,
) -> Result<MailboxInfo> {
    account_exists(tx, account)?;
    if mailbox_by_name(tx, account, name)?.is_some() {
        return Err(StoreError::MailboxExists);
    }
    create_parents(tx, account, name)?;
    insert_mailbox(tx, account, name, special_use)
}

/// For the requested UIDs that exist (ascending, deduplicated), maps their rows.
/// `cols` must start with `uid`.
fn rows_for_uids<T>(
    tx: &Connection,
    mailbox: MailboxId,
    uids: &[Uid],
    cols: &str,
    mut map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    let mut wanted = uids.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    let mut out = Vec::new();
    let (Some(&lo), Some(&hi)) = (wanted.first(), wanted.last()) else {
        return Ok(out);
    };
    if wanted.len() <= POINT_LOOKUP_MAX {
        let mut stmt = tx.prepare_cached(&format!(
            "SELECT {cols} FROM messages WHERE mailbox = ?1 AND uid = ?2"
        ))?;
        for uid in wanted {
            if let Some(v) = stmt
                .query_row(params![mailbox, i64::from(uid)], &mut map)
                .optional()?
            {
                out.push(v);
            }
        }
    } else {
        let mut stmt = tx.prepare_cached(&format!(
            "SELECT {cols} FROM messages WHERE mailbox = ?1 AND uid BETWEEN ?2 AND ?3 ORDER BY uid"
        ))?;
        let mut rows = stmt.query(params![mailbox, i64::from(lo), i64::from(hi)])?;
        while let Some(row) = rows.next()? {
            let uid = col_u32(row, 0)?;
            if wanted.binary_search(&uid).is_ok() {
                out.push(map(row)?);
            }
        }
    }
    Ok(out)
}

/// What [`bump`] did.
struct Bumped {
    /// The mailbox as it was.
    info: MailboxInfo,
    /// The first UID reserved.
    first: Uid,
    /// The new modseq.
    modseq: ModSeq,
    /// The mailbox's tombstones, those added included.
    tombstones: i64,
}

/// Bumps the mailbox's modseq once, reserves `n` UIDs and counts
/// `tombstones` new tombstones, in one update of its row.
fn bump(tx: &Connection, mailbox: MailboxId, n: usize, tombstones: usize) -> Result<Bumped> {
    let MailboxCounters {
        info,
        modseq_reserved: reserved,
        tombstones: before,
        ..
    } = mailbox_counters(tx, mailbox)?;
    let n = u32::try_from(n).map_err(|_| StoreError::Other("too many messages".into()))?;
    let uidnext = info
        .uidnext
        .checked_add(n)
        .ok_or_else(|| StoreError::Other("mailbox UID space exhausted".into()))?;
    let modseq = info.highest_modseq + 1;
    let m = to_i64(modseq)?;
    let reserved = if m > reserved {
        RESERVED.with(|r| r.set(true));
        m.saturating_add(MODSEQ_RESERVE)
    } else {
        reserved
    };
    let tombstones = i64::try_from(tombstones)
        .ok()
        .and_then(|t| before.checked_add(t))
        .ok_or_else(|| StoreError::Other("too many UIDs".into()))?;
    tx.prepare_cached(
        "UPDATE mailboxes SET uidnext = ?2, highest_modseq = ?3, modseq_reserved = ?4,
                              tombstones = ?5
         WHERE id = ?1",
    )?
    .execute(params![
        mailbox,
        i64::from(uidnext),
        m,
        reserved,
        tombstones
    ])?;
    let first = info.uidnext;
    Ok(Bumped {
        info,
        first,
        modseq,
        tombstones,
    })
}

/// A mailbox hands out modseqs up to its `modseq_reserved`, and moves that
/// this far ahead, in a commit that is durable before the change is
/// reported, when a change needs more. Flag changes and expunges commit
/// without waiting for the disk, so a power loss can take back modseqs a
/// client has already seen, and RFC 7162 lets a client assume a modseq,
/// once seen, never names another change. The server's next start moves
/// each mailbox's modseq to its reservation
/// ([`MetaStore::skip_unsynced_modseqs`]), above anything that was handed
/// out. Costs: one fsync per this many relaxed changes of a mailbox, and a
/// jump of up to this many at each start.
const MODSEQ_RESERVE: i64 = 1000;

thread_local! {
    /// Set by `bump` when this thread's transaction moved a reservation.
    static RESERVED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// `BEGIN IMMEDIATE` on the writer, or None if another process holds the
/// write lock: a caller that must not block does not wait for it (the
/// connection's busy timeout is back in place either way).
fn try_begin_immediate(conn: &Connection) -> Option<Result<Tx<'_>>> {
    if let Err(e) = conn.busy_timeout(Duration::ZERO) {
        return Some(Err(e.into()));
    }
    let begun = Tx::begin(conn, Begin::Immediate);
    if let Err(e) = conn.busy_timeout(BUSY_TIMEOUT) {
        return Some(Err(e.into()));
    }
    match begun {
        Ok(tx) => Some(Ok(tx)),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::DatabaseBusy =>
        {
            None
        }
        Err(e) => Some(Err(e.into())),
    }
}

/// Runs `f`, returning with its result whether it moved a modseq
/// reservation (so that a relaxed write must be made durable).
fn reserving<T>(f: impl FnOnce() -> T) -> (T, bool) {
    RESERVED.with(|r| r.set(false));
    let out = f();
    (out, RESERVED.with(|r| r.replace(false)))
}

/// Deletes the existing messages among `uids` and records tombstones, bumping
/// the modseq once if anything was expunged. The bodies no message references
/// any more are deleted with them (see [`Expunged::unreferenced_files`] for
/// those kept as files).
fn expunge_in(
    tx: &Connection,
    mailbox: MailboxId,
    uids: &[Uid],
    only_deleted: bool,
    keep: u32,
) -> Result<Expunged> {
    let mut rows = rows_for_uids(
        tx,
        mailbox,
        uids,
        "uid, docid, blob, deleted, summary",
        |r| {
            Ok((
                col_u32(r, 0)?,
                r.get::<_, Option<i64>>(1)?,
                (r.get::<_, String>(2)?, r.get::<_, i64>(4)?),
                r.get::<_, bool>(3)?,
            ))
        },
    )?;
    if only_deleted {
        rows.retain(|r| r.3);
    }
    if rows.is_empty() {
        let info = mailbox_by_id(tx, mailbox)?;
        return Ok(Expunged {
            modseq: info.highest_modseq,
            ..Expunged::default()
        });
    }
    let Bumped {
        modseq, tombstones, ..
    } = bump(tx, mailbox, 0, rows.len())?;
    let m = to_i64(modseq)?;
    let mut del = tx.prepare_cached("DELETE FROM messages WHERE mailbox = ?1 AND uid = ?2")?;
    let mut tomb = tx.prepare_cached(
        "INSERT OR REPLACE INTO expunged(mailbox, uid, modseq) VALUES (?1, ?2, ?3)",
    )?;
    let mut uids = Vec::with_capacity(rows.len());
    let mut docids = Vec::new();
    let mut blobs = Vec::with_capacity(rows.len());
    for (uid, docid, blob, _) in rows {
        del.execute(params![mailbox, i64::from(uid)])?;
        tomb.execute(params![mailbox, i64::from(uid), m])?;
        uids.push(uid);
        docids.extend(docid);
        blobs.push(blob);
    }
    count_tombstones(tx, mailbox, tombstones, keep)?;
    fts::gc(tx, docids)?;
    let unreferenced_files = unreferenced_files(tx, blobs)?;
    Ok(Expunged {
        uids,
        modseq,
        unreferenced_files,
    })
}

impl SqliteStore {
    /// Whether `[from, to)` holds nothing left to claim as \Recent: read
    /// without the write lock, so that a claim another session already made
    /// (often an APPEND's own transaction) writes nothing.
    fn nothing_to_claim(&self, mailbox: MailboxId, from: Uid, to: Uid) -> Result<bool> {
        Ok(from >= to || self.read_one(|tx| Ok(recent_marks(tx, mailbox)?.0))? >= to)
    }
}

/// A mailbox's `recent_from` (UIDs below it were given out as \Recent) and
/// UIDNEXT.
fn recent_marks(tx: &Connection, mailbox: MailboxId) -> Result<(Uid, Uid)> {
    tx.prepare_cached("SELECT recent_from, uidnext FROM mailboxes WHERE id = ?1")?
        .query_row([mailbox], |r| Ok((col_u32(r, 0)?, col_u32(r, 1)?)))
        .optional()?
        .ok_or(StoreError::NoSuchMailbox)
}

/// \Recent for a caller: the part of `[from, to)` (`to` UIDNEXT when None:
/// [`MetaStore::claim_recent`]) at or above the mailbox's `recent_from`,
/// which moves past it ([`MetaStore::claim_recent_range`]).
fn claim_recent_in(
    tx: &Connection,
    mailbox: MailboxId,
    from: Uid,
    to: Option<Uid>,
) -> Result<(Uid, Uid)> {
    let (unclaimed, next) = recent_marks(tx, mailbox)?;
    let to = to.unwrap_or(next);
    let start = unclaimed.max(from);
    if start >= to {
        return Ok((to, to));
    }
    tx.prepare_cached("UPDATE mailboxes SET recent_from = ?2 WHERE id = ?1")?
        .execute(params![mailbox, to])?;
    Ok((start, to))
}

/// Once `mailbox` has `count` tombstones (counted by [`bump`]), a quarter
/// more than `keep` (0: keep them all), drops its oldest down to about
/// `keep`, raising the mailbox's `expunged_floor` to the highest modseq
/// dropped. All the tombstones of a modseq go together (one EXPUNGE's UIDs
/// share one), so more may go. The drop costs a short index walk once per
/// `keep / 4` expunges.
///
/// Why a bound: a busy mailbox's tombstones would otherwise grow with every
/// message it ever lost. What it costs: a client resynchronising from a
/// modseq below the floor is sent every UID it does not have any more, not
/// only those expunged since (see `changes_since`), which RFC 7162 allows;
/// Dovecot does the same once its transaction log has rotated.
fn count_tombstones(tx: &Connection, mailbox: MailboxId, count: i64, keep: u32) -> Result<()> {
    let keep = i64::from(keep);
    if keep == 0 || count <= keep + keep / 4 {
        return Ok(());
    }
    // The newest modseq among the `count - keep` oldest tombstones.
    let Some(floor) = tx
        .prepare_cached(
            "SELECT modseq FROM expunged INDEXED BY expunged_modseq
             WHERE mailbox = ?1 ORDER BY modseq LIMIT 1 OFFSET ?2",
        )?
        .query_row(params![mailbox, count - keep - 1], |r| r.get::<_, i64>(0))
        .optional()?
    else {
        // Fewer rows than counted (a count from before V18 cannot be off,
        // but a hand-edited database can): recount.
        tx.prepare_cached(
            "UPDATE mailboxes SET tombstones = (SELECT count(*) FROM expunged WHERE mailbox = ?1)
             WHERE id = ?1",
        )?
        .execute([mailbox])?;
        return Ok(());
    };
    let dropped = tx
        .prepare_cached("DELETE FROM expunged WHERE mailbox = ?1 AND modseq <= ?2")?
        .execute(params![mailbox, floor])?;
    tx.prepare_cached(
        "UPDATE mailboxes SET tombstones = tombstones - ?2,
                expunged_floor = max(expunged_floor, ?3)
         WHERE id = ?1",
    )?
    .execute(params![mailbox, dropped as i64, floor])?;
    Ok(())
}

fn copy_in(
    tx: &Connection,
    src: MailboxId,
    dst: MailboxId,
    uids: &[Uid],
    remove_source: bool,
    keep: u32,
) -> Result<CopyResult> {
    mailbox_by_id(tx, src)?;
    let dst_info = mailbox_by_id(tx, dst)?;
    let src_uids = rows_for_uids(tx, src, uids, "uid", |r| col_u32(r, 0))?;
    if src_uids.is_empty() {
        return Ok(CopyResult {
            uidvalidity: dst_info.uidvalidity,
            src_uids,
            dst_uids: Vec::new(),
        });
    }
    let Bumped {
        info: dst_info,
        first,
        modseq,
        ..
    } = bump(tx, dst, src_uids.len(), 0)?;
    let m = to_i64(modseq)?;
    let mut dst_uids = Vec::with_capacity(src_uids.len());
    {
        let mut ins = tx.prepare_cached(
            "INSERT INTO messages(mailbox, uid, modseq, flags, seen, deleted, internal_date,
                                  date_offset, size, blob, docid, summary)
             SELECT ?1, ?2, ?3, flags, seen, deleted, internal_date, date_offset, size, blob, docid,
                    summary
             FROM messages WHERE mailbox = ?4 AND uid = ?5",
        )?;
        for (i, &uid) in src_uids.iter().enumerate() {
            // `bump` checked that first + len fits in a u32.
            let new_uid = first + i as u32;
            ins.execute(params![dst, i64::from(new_uid), m, src, i64::from(uid)])?;
            dst_uids.push(new_uid);
        }
    }
    if remove_source {
        expunge_in(tx, src, &src_uids, false, keep)?;
    }
    Ok(CopyResult {
        uidvalidity: dst_info.uidvalidity,
        src_uids,
        dst_uids,
    })
}

/// The contents (blob, summary id) of the messages `sql` selects with `id`
/// as its parameter, for [`unreferenced_files`] once they are removed.
fn contents_of(tx: &Connection, sql: &str, id: i64) -> Result<Vec<(String, i64)>> {
    let mut stmt = tx.prepare_cached(sql)?;
    let rows = stmt.query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Of the contents (blob, summary id) of removed messages, the blobs no
/// message references any more and that may have a file, for the caller to
/// delete after its commit. Summaries no message holds any more, and a body
/// kept in the database (`bodies`), are deleted here, in the caller's
/// transaction, and the latter not reported:
/// content stored as a file before bodies moved into the database and
/// appended again since has both, and that file stays behind.
fn unreferenced_files(tx: &Connection, mut contents: Vec<(String, i64)>) -> Result<Vec<BlobId>> {
    contents.sort_unstable();
    contents.dedup();
    let mut body = tx.prepare_cached("DELETE FROM bodies WHERE id = ?1")?;
    // Only messages of the same content share a summary (copies).
    let mut held = tx.prepare_cached(
        "SELECT 1 FROM messages INDEXED BY messages_blob WHERE blob = ?1 AND summary = ?2 LIMIT 1",
    )?;
    let mut summary = tx.prepare_cached("DELETE FROM summaries WHERE id = ?1")?;
    let mut out = Vec::new();
    for (i, (b, id)) in contents.iter().enumerate() {
        if !held.exists(params![b, id])? {
            summary.execute([id])?;
        }
        let last_of_blob = contents.get(i + 1).is_none_or(|(next, _)| next != b);
        if last_of_blob && !blob_in_use(tx, b)? && body.execute([b])? == 0 {
            out.push(BlobId::new(b));
        }
    }
    Ok(out)
}

/// Does some message reference this blob?
fn blob_in_use(tx: &Connection, blob: &str) -> Result<bool> {
    Ok(tx
        .prepare_cached("SELECT 1 FROM messages INDEXED BY messages_blob WHERE blob = ?1 LIMIT 1")?
        .query_row([blob], |_| Ok(()))
        .optional()?
        .is_some())
}

fn delete_mailbox_rows(tx: &Connection, mailbox: MailboxId) -> Result<()> {
    let docids = fts::docids_of_mailbox(tx, mailbox)?;
    tx.prepare_cached("DELETE FROM messages WHERE mailbox = ?1")?
        .execute([mailbox])?;
    fts::gc(tx, docids)?;
    tx.prepare_cached("DELETE FROM expunged WHERE mailbox = ?1")?
        .execute([mailbox])?;
    tx.prepare_cached("DELETE FROM mailboxes WHERE id = ?1")?
        .execute([mailbox])?;
    Ok(())
}

fn account_row(row: &Row<'_>) -> rusqlite::Result<Account> {
    Ok(Account {
        id: row.get(0)?,
        name: row.get(1)?,
        password_hash: row.get(2)?,
    })
}

fn rename_in(tx: &Connection, account: AccountId, from: &str, to: &str, keep: u32) -> Result<()> {
    account_exists(tx, account)?;
    names::validate(from)?;
    names::validate(to)?;
    let src = mailbox_by_name(tx, account, from)?.ok_or(StoreError::NoSuchMailbox)?;
    if mailbox_by_name(tx, account, to)?.is_some() {
        return Err(StoreError::MailboxExists);
    }
    if from == "INBOX" {
        // RFC 9051 6.3.6: move all messages into a new mailbox; INBOX stays
        // (empty) and its inferiors are unaffected.
        let dst = create_mailbox_in(tx, account, to, None)?;
        let uids: Vec<Uid> = {
            let mut stmt =
                tx.prepare_cached("SELECT uid FROM messages WHERE mailbox = ?1 ORDER BY uid")?;
            let rows = stmt.query_map([src.id], |r| col_u32(r, 0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        copy_in(tx, src.id, dst.id, &uids, true, keep)?;
        return Ok(());
    }
    if names::is_inferior_or_same(to, from) {
        return Err(StoreError::InvalidName(format!(
            "cannot rename {from:?} into its own hierarchy ({to:?})"
        )));
    }
    // The mailbox and its inferiors, with their new names.
    let all: Vec<(MailboxId, String)> = {
        let mut stmt = tx.prepare_cached("SELECT id, name FROM mailboxes WHERE account = ?1")?;
        let rows = stmt.query_map([account], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let moving: Vec<(MailboxId, String)> = all
        .iter()
        .filter(|(_, n)| names::is_inferior_or_same(n, from))
        .map(|(id, n)| (*id, format!("{to}{}", &n[from.len()..])))
        .collect();
    for (_, new) in &moving {
        let taken_by_other = all
            .iter()
            .any(|(oid, n)| n == new && !moving.iter().any(|(mid, _)| mid == oid));
        if taken_by_other {
            return Err(StoreError::MailboxExists);
        }
    }
    create_parents(tx, account, to)?;
    // Two phases so that a new name equal to another moving mailbox's old name
    // never collides with the UNIQUE(account, name) constraint.
    let mut upd = tx.prepare_cached("UPDATE mailboxes SET name = ?2 WHERE id = ?1")?;
    for (id, _) in &moving {
        upd.execute(params![id, format!("\u{1}rename\u{1}{id}")])?;
    }
    for (id, new) in &moving {
        upd.execute(params![id, new])?;
    }
    // Subscriptions follow the mailboxes (as Dovecot does).
    let subs: Vec<String> = {
        let mut stmt = tx.prepare_cached("SELECT name FROM subscriptions WHERE account = ?1")?;
        let rows = stmt.query_map([account], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<Vec<String>>>()?
            .into_iter()
            .filter(|n| names::is_inferior_or_same(n, from))
            .collect()
    };
    let mut del =
        tx.prepare_cached("DELETE FROM subscriptions WHERE account = ?1 AND name = ?2")?;
    for s in &subs {
        del.execute(params![account, s])?;
    }
    let mut ins =
        tx.prepare_cached("INSERT OR IGNORE INTO subscriptions(account, name) VALUES (?1, ?2)")?;
    for s in &subs {
        ins.execute(params![account, format!("{to}{}", &s[from.len()..])])?;
    }
    Ok(())
}

// ---------------------------------------------------------------- the trait

impl crate::InlineBlobs for SqliteStore {
    fn inline_blob(&self, id: &BlobId) -> Result<Option<Vec<u8>>> {
        self.read_one(|tx| {
            Ok(tx
                .prepare_cached("SELECT data FROM bodies WHERE id = ?1")?
                .query_row([id.as_str()], |r| r.get(0))
                .optional()?)
        })
    }
}

impl MetaStore for SqliteStore {
    fn create_account(&self, name: &str, password_hash: &str) -> Result<Account> {
        names::validate_account(name)?;
        self.write(|tx| {
            let exists = tx
                .prepare_cached("SELECT 1 FROM accounts WHERE name = ?1")?
                .query_row([name], |_| Ok(()))
                .optional()?;
            if exists.is_some() {
                return Err(StoreError::AccountExists);
            }
            tx.prepare_cached("INSERT INTO accounts(name, password_hash) VALUES (?1, ?2)")?
                .execute(params![name, password_hash])?;
            let id = tx.last_insert_rowid();
            let mut sub = tx.prepare_cached(
                "INSERT OR IGNORE INTO subscriptions(account, name) VALUES (?1, ?2)",
            )?;
            for (mbox, special) in DEFAULT_MAILBOXES {
                insert_mailbox(tx, id, mbox, special)?;
                sub.execute(params![id, mbox])?;
            }
            Ok(Account {
                id,
                name: name.to_string(),
                password_hash: password_hash.to_string(),
            })
        })
    }

    fn account(&self, name: &str) -> Result<Option<Account>> {
        self.read_one(|tx| {
            Ok(tx
                .prepare_cached("SELECT id, name, password_hash FROM accounts WHERE name = ?1")?
                .query_row([name], account_row)
                .optional()?)
        })
    }

    fn set_password(&self, name: &str, password_hash: &str) -> Result<()> {
        self.write(|tx| {
            let n = tx
                .prepare_cached("UPDATE accounts SET password_hash = ?2 WHERE name = ?1")?
                .execute(params![name, password_hash])?;
            if n == 0 {
                return Err(StoreError::NoSuchAccount);
            }
            Ok(())
        })
    }

    fn delete_account(&self, name: &str) -> Result<Vec<BlobId>> {
        self.write(|tx| {
            let id: AccountId = tx
                .prepare_cached("SELECT id FROM accounts WHERE name = ?1")?
                .query_row([name], |r| r.get(0))
                .optional()?
                .ok_or(StoreError::NoSuchAccount)?;
            let blobs = contents_of(
                tx,
                "SELECT DISTINCT blob, summary FROM messages
                 WHERE mailbox IN (SELECT id FROM mailboxes WHERE account = ?1)",
                id,
            )?;
            let mailboxes: Vec<MailboxId> = {
                let mut stmt = tx.prepare_cached("SELECT id FROM mailboxes WHERE account = ?1")?;
                let rows = stmt.query_map([id], |r| r.get(0))?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            for m in mailboxes {
                delete_mailbox_rows(tx, m)?;
            }
            tx.prepare_cached("DELETE FROM subscriptions WHERE account = ?1")?
                .execute([id])?;
            tx.prepare_cached("DELETE FROM accounts WHERE id = ?1")?
                .execute([id])?;
            unreferenced_files(tx, blobs)
        })
    }

    fn list_accounts(&self) -> Result<Vec<String>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached("SELECT name FROM accounts ORDER BY name")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    fn mailbox_by_id(&self, id: MailboxId) -> Result<MailboxInfo> {
        self.read_one(|tx| mailbox_by_id(tx, id))
    }

    fn list_mailboxes(&self, account: AccountId) -> Result<Vec<MailboxInfo>> {
        self.read_small(|tx| {
            let mut stmt = tx.prepare_cached(concat!(
                "SELECT ",
                mailbox_cols!(),
                " FROM mailboxes WHERE account = ?1 ORDER BY name"
            ))?;
            let rows = stmt.query_map([account], mailbox_row)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    fn mailbox(&self, account: AccountId, name: &str) -> Result<Option<MailboxInfo>> {
        self.read_one(|tx| mailbox_by_name(tx, account, name))
    }

    fn create_mailbox(
        &self,
        account: AccountId,
        name: &str,
        special_use: Option<&str>,
    ) -> Result<MailboxInfo> {
        // RFC 9051 6.3.4: a trailing separator only declares the intent to
        // create inferiors; the mailbox is created without it.
        let name = name.strip_suffix('/').unwrap_or(name);
        names::validate(name)?;
        self.write(|tx| create_mailbox_in(tx, account, name, special_use))
    }

    fn make_durable(&self) -> Result<()> {
        self.sync_wal()
    }

    fn unreferenced_blobs(&self, ids: &[BlobId]) -> Result<Vec<BlobId>> {
        self.read(|tx| {
            let mut out = Vec::new();
            for id in ids {
                if !blob_in_use(tx, id.as_str())? {
                    out.push(*id);
                }
            }
            Ok(out)
        })
    }

    fn delete_mailbox(&self, account: AccountId, name: &str) -> Result<Vec<BlobId>> {
        if name == "INBOX" {
            return Err(StoreError::InvalidName("INBOX cannot be deleted".into()));
        }
        self.write(|tx| {
            let info = mailbox_by_name(tx, account, name)?.ok_or(StoreError::NoSuchMailbox)?;
            let blobs = contents_of(
                tx,
                "SELECT DISTINCT blob, summary FROM messages WHERE mailbox = ?1",
                info.id,
            )?;
            delete_mailbox_rows(tx, info.id)?;
            unreferenced_files(tx, blobs)
        })
    }

    fn rename_mailbox(&self, account: AccountId, from: &str, to: &str) -> Result<()> {
        let keep = self.expunge_history();
        self.write(|tx| rename_in(tx, account, from, to, keep))
    }

    fn subscriptions(&self, account: AccountId) -> Result<Vec<String>> {
        self.read_small(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT name FROM subscriptions WHERE account = ?1 ORDER BY name",
            )?;
            let rows = stmt.query_map([account], |r| r.get(0))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    fn subscribe(&self, account: AccountId, name: &str) -> Result<()> {
        names::validate(name)?;
        self.write(|tx| {
            account_exists(tx, account)?;
            tx.prepare_cached(
                "INSERT OR IGNORE INTO subscriptions(account, name) VALUES (?1, ?2)",
            )?
            .execute(params![account, name])?;
            Ok(())
        })
    }

    fn unsubscribe(&self, account: AccountId, name: &str) -> Result<()> {
        self.write(|tx| {
            account_exists(tx, account)?;
            tx.prepare_cached("DELETE FROM subscriptions WHERE account = ?1 AND name = ?2")?
                .execute(params![account, name])?;
            Ok(())
        })
    }

    fn append(&self, mailbox: MailboxId, messages: &[NewMessage]) -> Result<AppendResult> {
        self.append_indexed(mailbox, messages, &[])
    }

    fn append_indexed(
        &self,
        mailbox: MailboxId,
        messages: &[NewMessage],
        docs: &[SearchDoc],
    ) -> Result<AppendResult> {
        self.append_indexed_recent(mailbox, messages, docs, None)
    }

    fn append_indexed_recent(
        &self,
        mailbox: MailboxId,
        messages: &[NewMessage],
        docs: &[SearchDoc],
        recent_from: Option<Uid>,
    ) -> Result<AppendResult> {
        let prepared = validate_appends(messages)?;
        // Group commit: concurrent APPENDs are queued, and whoever holds the
        // writer next commits all queued ones in one transaction (one fsync),
        // each (when there are several) inside its own savepoint so one
        // failing APPEND does not fail the others. Every caller still
        // returns only after its messages are durable.
        let (job, result) = AppendJob::new(mailbox, messages, docs, prepared, recent_from);
        self.appends
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(job);
        {
            let conn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
            let jobs =
                std::mem::take(&mut *self.appends.lock().unwrap_or_else(PoisonError::into_inner));
            if !jobs.is_empty() {
                commit_appends(&conn, jobs, &self.texts);
            }
        }
        let out = AppendJob::outcome(result)?;
        self.sync_wal()?;
        self.texts.wait_room();
        Ok(out)
    }

    fn try_append_indexed_recent(
        &self,
        mailbox: MailboxId,
        messages: &[NewMessage],
        docs: &[SearchDoc],
        recent_from: Option<Uid>,
    ) -> Option<Result<AppendResult>> {
        let prepared = match validate_appends(messages) {
            Ok(p) => p,
            Err(e) => return Some(Err(e)),
        };
        // A full text queue is waited for (`append_indexed_recent`).
        if !self.texts.has_room() {
            return None;
        }
        self.try_write_tx(|tx| {
            let (job, result) = AppendJob::new(mailbox, messages, docs, prepared, recent_from);
            commit_appends_in(tx, vec![job], &self.texts);
            Some(AppendJob::outcome(result))
        })
    }

    fn snapshot(&self, mailbox: MailboxId) -> Result<(MailboxInfo, Vec<MessageMeta>)> {
        self.read(|tx| {
            let info = mailbox_by_id(tx, mailbox)?;
            Ok((info, all_messages(tx, mailbox)?))
        })
    }

    /// `PRAGMA data_version` of the writer connection: SQLite changes it
    /// when a commit by any other connection is seen. Every commit of this
    /// process is made on the writer (readers and the checkpointer commit
    /// nothing; a checkpoint may change it, which only costs a read).
    fn foreign_version(&self) -> Option<u64> {
        let conn = self.writer.try_lock().ok()?;
        conn.prepare_cached("PRAGMA data_version")
            .and_then(|mut s| s.query_row([], |r| r.get::<_, i64>(0)))
            .ok()
            .map(|v| v as u64)
    }

    fn mailbox_modseqs(&self) -> Result<Vec<(AccountId, MailboxId, ModSeq)>> {
        self.read(|tx| {
            let mut stmt =
                tx.prepare_cached("SELECT account, id, highest_modseq FROM mailboxes")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, col_u64(r, 2)?)))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    fn changes_since(&self, mailbox: MailboxId, modseq: ModSeq) -> Result<MailboxChanges> {
        // A modseq beyond i64 cannot exist in the database: nothing changed after it.
        let since = i64::try_from(modseq).unwrap_or(i64::MAX);
        self.read_small(|tx| {
            let MailboxCounters {
                info,
                expunged_floor: floor,
                ..
            } = mailbox_counters(tx, mailbox)?;
            let changed = {
                let mut stmt = tx.prepare_cached(&format!(
                    "SELECT {MESSAGE_COLS} FROM messages INDEXED BY messages_modseq
                     WHERE mailbox = ?1 AND modseq > ?2 ORDER BY uid"
                ))?;
                let mut dec = MessageRows::default();
                let rows = stmt.query_map(params![mailbox, since], |r| dec.row(r))?;
                rows.collect::<rusqlite::Result<Vec<_>>>()?
            };
            let expunged = if since < floor {
                // Tombstones after `since` were dropped (`count_tombstones`).
                missing_uids(tx, mailbox, info.uidnext)?
            } else {
                let mut stmt = tx.prepare_cached(
                    "SELECT uid FROM expunged INDEXED BY expunged_modseq
                     WHERE mailbox = ?1 AND modseq > ?2 ORDER BY uid",
                )?;
                let rows = stmt.query_map(params![mailbox, since], |r| col_u32(r, 0))?;
                rows.collect::<rusqlite::Result<Vec<_>>>()?
            };
            Ok(MailboxChanges {
                uidvalidity: info.uidvalidity,
                uidnext: info.uidnext,
                highest_modseq: info.highest_modseq,
                changed,
                expunged,
            })
        })
    }

    fn store_flags(
        &self,
        mailbox: MailboxId,
        uids: &[Uid],
        op: FlagOp,
        flag_list: &[String],
        unchanged_since: Option<ModSeq>,
    ) -> Result<StoreFlagsResult> {
        // Validate the flags before taking the write lock.
        flags::apply(&[], op, flag_list)?;
        self.write_relaxed(|tx| store_flags_in(tx, mailbox, uids, op, flag_list, unchanged_since))
    }

    fn try_store_flags(
        &self,
        mailbox: MailboxId,
        uids: &[Uid],
        op: FlagOp,
        flag_list: &[String],
        unchanged_since: Option<ModSeq>,
    ) -> Option<Result<StoreFlagsResult>> {
        if let Err(e) = flags::apply(&[], op, flag_list) {
            return Some(Err(e));
        }
        self.try_write_relaxed(|tx| {
            store_flags_in(tx, mailbox, uids, op, flag_list, unchanged_since)
        })
    }

    fn expunge(&self, mailbox: MailboxId, uids: &[Uid]) -> Result<Expunged> {
        let keep = self.expunge_history();
        self.write_relaxed(|tx| expunge_in(tx, mailbox, uids, false, keep))
    }

    fn expunge_deleted(&self, mailbox: MailboxId, uids: &[Uid]) -> Result<Expunged> {
        let keep = self.expunge_history();
        self.write_relaxed(|tx| expunge_in(tx, mailbox, uids, true, keep))
    }

    fn try_expunge_deleted(&self, mailbox: MailboxId, uids: &[Uid]) -> Option<Result<Expunged>> {
        let keep = self.expunge_history();
        self.try_write_relaxed(|tx| expunge_in(tx, mailbox, uids, true, keep))
    }

    fn copy(
        &self,
        src: MailboxId,
        dst: MailboxId,
        uids: &[Uid],
        remove_source: bool,
    ) -> Result<CopyResult> {
        let keep = self.expunge_history();
        self.write(|tx| copy_in(tx, src, dst, uids, remove_source, keep))
    }

    fn summaries(&self, mailbox: MailboxId, uids: &[Uid]) -> Result<Vec<Option<Vec<u8>>>> {
        self.read_small(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT s.summary FROM messages m JOIN summaries s ON s.id = m.summary
                     WHERE m.mailbox = ?1 AND m.uid = ?2",
            )?;
            let mut out = Vec::with_capacity(uids.len());
            for &uid in uids {
                out.push(
                    stmt.query_row(params![mailbox, i64::from(uid)], |r| r.get(0))
                        .optional()?,
                );
            }
            Ok(out)
        })
    }

    fn status(&self, mailbox: MailboxId) -> Result<MailboxStatus> {
        // The counts are kept in the mailbox row (schema V13).
        self.read_one(|tx| {
            tx.prepare_cached(
                "SELECT messages, unseen, deleted, size, uidnext, uidvalidity, highest_modseq
                 FROM mailboxes WHERE id = ?1",
            )?
            .query_row([mailbox], |r| {
                Ok(MailboxStatus {
                    messages: col_u32(r, 0)?,
                    unseen: col_u32(r, 1)?,
                    deleted: col_u32(r, 2)?,
                    size: col_u64(r, 3)?,
                    uidnext: col_u32(r, 4)?,
                    uidvalidity: col_u32(r, 5)?,
                    highest_modseq: col_u64(r, 6)?,
                })
            })
            .optional()?
            .ok_or(StoreError::NoSuchMailbox)
        })
    }

    fn claim_recent(&self, mailbox: MailboxId) -> Result<(Uid, Uid)> {
        self.write_relaxed(|tx| claim_recent_in(tx, mailbox, 0, None))
    }

    fn claim_recent_range(&self, mailbox: MailboxId, from: Uid, to: Uid) -> Result<(Uid, Uid)> {
        if self.nothing_to_claim(mailbox, from, to)? {
            return Ok((to, to));
        }
        self.write_relaxed(|tx| claim_recent_in(tx, mailbox, from, Some(to)))
    }

    fn try_claim_recent_range(
        &self,
        mailbox: MailboxId,
        from: Uid,
        to: Uid,
    ) -> Option<Result<(Uid, Uid)>> {
        match self.nothing_to_claim(mailbox, from, to) {
            Ok(true) => Some(Ok((to, to))),
            Ok(false) => self.try_write_relaxed(|tx| claim_recent_in(tx, mailbox, from, Some(to))),
            Err(e) => Some(Err(e)),
        }
    }

    fn recent_count(&self, mailbox: MailboxId) -> Result<u32> {
        self.read_one(|tx| {
            Ok(tx
                .prepare_cached(
                    "SELECT count(*) FROM messages
                     WHERE mailbox = ?1
                       AND uid >= (SELECT recent_from FROM mailboxes WHERE id = ?1)",
                )?
                .query_row([mailbox], |r| col_u32(r, 0))?)
        })
    }

    fn index_docs(&self, docs: &[(BlobId, SearchDoc)]) -> Result<()> {
        // The index is derived data: a commit lost in a crash leaves messages
        // unindexed (still found, and indexed again at the next start), so it
        // does not wait for the disk.
        // The texts are queued before the write lock goes (see `texts`).
        let conn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let tx = Tx::begin(&conn, Begin::Immediate)?;
        let queued = (|| -> Result<Vec<texts::PendingText>> {
            let mut waiting = tx.prepare_cached(
                "SELECT 1 FROM messages INDEXED BY messages_blob
                 WHERE blob = ?1 AND docid IS NULL LIMIT 1",
            )?;
            let mut texts = Vec::new();
            for (blob, doc) in docs {
                // Expunged (or indexed) meanwhile: a document nobody links
                // to would never be deleted.
                if waiting
                    .query_row([blob.as_str()], |_| Ok(()))
                    .optional()?
                    .is_none()
                {
                    continue;
                }
                let (id, created) = fts::insert_doc_row(&tx, blob, doc)?;
                fts::link(&tx, blob, id)?;
                if created {
                    texts::mark_pending(&tx, id, blob)?;
                    texts.push(texts::PendingText {
                        docid: id,
                        blob: *blob,
                        headers: doc.headers.clone(),
                        body: doc.body.clone(),
                    });
                }
            }
            Ok(texts)
        })()?;
        tx.commit()?;
        self.texts.push(queued);
        drop(conn);
        self.texts.wait_room();
        Ok(())
    }

    fn text_candidates(
        &self,
        mailbox: MailboxId,
        part: TextPart,
        needle: &str,
    ) -> Result<Option<Vec<Uid>>> {
        if fts::match_expr(needle).is_none() {
            return Ok(None);
        }
        self.read(|tx| fts::candidates(tx, mailbox, part, needle))
    }

    fn header_fields(
        &self,
        mailbox: MailboxId,
        uids: Option<&[Uid]>,
    ) -> Result<Vec<(Uid, Option<HeaderFields>)>> {
        self.read(|tx| fts::header_fields(tx, mailbox, uids))
    }

    fn clear_search_index(&self) -> Result<()> {
        self.write(fts::clear)
    }

    fn requeue_pending_texts(&self) -> Result<usize> {
        self.write(texts::requeue)
    }

    fn skip_unsynced_modseqs(&self) -> Result<usize> {
        self.write(|tx| {
            Ok(tx.execute(
                "UPDATE mailboxes SET highest_modseq = modseq_reserved
                 WHERE modseq_reserved > highest_modseq",
                [],
            )?)
        })
    }

    fn flush_search_texts(&self) {
        self.texts.flush();
    }

    fn unindexed_blobs(&self, limit: usize) -> Result<Vec<BlobId>> {
        self.read(|tx| fts::unindexed_blobs(tx, limit))
    }

    fn search_index_size(&self) -> Result<SearchIndexSize> {
        self.read(fts::size)
    }

    fn search_meta(&self, mailbox: MailboxId, uids: Option<&[Uid]>) -> Result<Vec<MessageMeta>> {
        self.read(|tx| match uids {
            Some(uids) => {
                let mut dec = MessageRows::default();
                rows_for_uids(tx, mailbox, uids, MESSAGE_COLS, |r| dec.row(r))
            }
            None => all_messages(tx, mailbox),
        })
    }

    fn sort_dates(&self, mailbox: MailboxId) -> Result<Option<Vec<crate::SortDate>>> {
        self.read(|tx| Ok(Some(fts::sort_dates(tx, mailbox)?)))
    }

    fn sort_rows(&self, mailbox: MailboxId, after: Uid) -> Result<(u32, Vec<crate::SortRow>)> {
        self.read(|tx| {
            let info = mailbox_by_id(tx, mailbox)?;
            Ok((info.uidvalidity, fts::sort_rows(tx, mailbox, after)?))
        })
    }

    fn previews(&self, mailbox: MailboxId, uids: &[Uid]) -> Result<Vec<(Uid, Option<String>)>> {
        self.read(|tx| fts::previews(tx, mailbox, uids))
    }
}
