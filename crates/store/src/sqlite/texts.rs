//! Deferred full text: APPEND commits a message's search document (header
//! fields, sort keys, preview) at once, but its full text goes into the FTS
//! tables a little later, many documents per transaction, in the index file
//! (`index_file.rs`), by threads of its own.
//!
//! Why: FTS5 writes the text a transaction added as a new segment when the
//! transaction commits (and merges segments later), so a document per
//! transaction costs several times what a batch costs per document (an
//! APPEND spent most of its time there). Batches come from this queue. And
//! the index file has its own write lock, so its writes never hold up the
//! main database's writers; the thread that writes it runs at the lowest
//! CPU priority, so under load it takes the CPU that sessions leave.
//!
//! How it stays correct:
//! - APPEND (and the background indexer) records each document whose text
//!   is not in the index yet in `fts_pending` (docid, blob), in its own
//!   transaction, so it is durable with the message, and queues the text
//!   ([`TextQueue`]) before its transaction lets go of the write lock, so a
//!   text is always queued before anything can delete its document. SEARCH
//!   treats the messages of pending documents as candidates (like unindexed
//!   ones) and checks them by reading them, so a search right after an
//!   APPEND is right, only slower.
//! - The texts wait in memory; a batch is taken after [`BATCH_DELAY`] (or
//!   when [`BATCH_MAX`] texts or [`BATCH_MAX_BYTES`] are waiting) and
//!   written in three steps: the docids recorded in `fts_deleted` are read
//!   from the main database (holding its write lock a moment); one transaction of the index file adds the
//!   batch's texts, then removes those deleted documents, and is durable
//!   when it commits; then one transaction of the main database removes the
//!   batch's pending marks (same docid *and* blob) and those `fts_deleted`
//!   rows. So a mark goes only once its text is in the index on disk
//!   (SEARCH reads the main database first: `fts::candidates`).
//! - Deleting a document (its last message expunged) records its docid in
//!   `fts_deleted` (`fts::gc`, which wakes the text writer,
//!   [`watch_deletions`]), also when its text is still queued or being
//!   written: the text goes into the index anyway and leaves it in the same
//!   or the next batch. No new document takes a docid recorded there
//!   (`fts::insert_doc_row`), so postings still in the index match no
//!   message meanwhile, and a docid is used again only once its postings
//!   are gone. (Each FTS5 write, a delete included, ends in a segment flush
//!   and merge work; one per EXPUNGE cost more than the rest of the EXPUNGE.)
//! - A process that stops between the steps leaves pending marks (and
//!   perhaps their texts in the index): at its next start the server turns
//!   those documents back into unindexed messages and records their docids
//!   as deleted (`MetaStore::requeue_pending_texts`), and indexes them again
//!   in the background.
//! - Memory: writers wait ([`TextQueue::wait_room`], outside the write lock)
//!   while more than [`QUEUE_MAX_BYTES`] of text is queued.
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::{params, Connection};

use crate::{BlobId, Result, StoreError};

/// A text waits at most this long for others to share its commit...
/// Fewer, larger batches cost less per document (FTS5 writes each distinct
/// term of a batch once, and merges fewer segments): 10-client load mix,
/// text writer CPU 0.64 s with 10 ms batches, 0.33 s with 100 ms (A/B);
/// later, in 10 s runs of the same mix, 0.16 s with 100 ms and 0.12 s with
/// 500 ms (3% of the server's CPU). Until then a new message is found by
/// reading it, so only a SEARCH within that half second pays for the wait.
pub(crate) const BATCH_DELAY: Duration = Duration::from_millis(500);
/// ...or until this many are waiting...
pub(crate) const BATCH_MAX: usize = 1024;
/// ...or until their texts add up to this many bytes (the memory FTS5
/// holds for a batch). When batches shared the main write lock this was
/// 160 KiB, to bound the APPENDs' wait; with a lock of their own, 1 MiB
/// batches cost the index writer 25% less CPU per message (10-client
/// APPEND, 2 alternating pairs: 0.14-0.16 ms against 0.19-0.21 ms; the
/// load mix: 0.18-0.19 s against 0.24-0.26 s in 10 s).
pub(crate) const BATCH_MAX_BYTES: usize = 1 << 20;
/// Writers of new texts wait while this much is queued (the index writer
/// runs at the lowest priority, so a machine busy with sessions for long
/// lets the queue grow).
pub(crate) const QUEUE_MAX_BYTES: usize = 32 << 20;

/// The full text of one new search document.
pub(crate) struct PendingText {
    pub docid: i64,
    pub blob: BlobId,
    pub headers: String,
    pub body: String,
}

#[derive(Default)]
pub(crate) struct TextQueue {
    state: Mutex<QueueState>,
    wake: Condvar,
    /// Signalled after each batch is written (see [`TextQueue::flush`]).
    written: Condvar,
}

#[derive(Default)]
struct QueueState {
    texts: Vec<PendingText>,
    /// Bytes of text in `texts`.
    bytes: usize,
    /// Someone waits in [`TextQueue::flush`]: write without waiting for more.
    flushing: bool,
    /// Documents were (or may have been) deleted: `fts_deleted` has work.
    deletes: bool,
    /// A batch is taken by the writer thread and not written yet.
    in_flight: bool,
    closed: bool,
    /// The writer thread has ended (closed and drained, or panicked): queued
    /// texts are dropped, and nobody waits for room.
    stopped: bool,
    #[cfg(test)]
    paused: bool,
}

impl QueueState {
    fn has_work(&self) -> bool {
        !self.texts.is_empty() || self.deletes
    }

    fn batch_full(&self) -> bool {
        self.texts.len() >= BATCH_MAX || self.bytes >= BATCH_MAX_BYTES
    }
}

impl TextQueue {
    pub(crate) fn push(&self, texts: Vec<PendingText>) {
        if texts.is_empty() {
            return;
        }
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if st.stopped {
            // Nobody writes them: they stay marked pending, and the next
            // start queues them again (`requeue`).
            return;
        }
        let idle = !st.has_work();
        st.bytes += texts
            .iter()
            .map(|t| t.headers.len() + t.body.len())
            .sum::<usize>();
        st.texts.extend(texts);
        // The writer needs waking only when work appears or a batch is full
        // (a wake-up per APPEND would cost a context switch each).
        if idle || st.batch_full() {
            self.wake.notify_one();
        }
    }

    /// Tells the writer thread that `fts_deleted` may have rows.
    pub(crate) fn note_deletes(&self) {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let idle = !st.has_work();
        st.deletes = true;
        if idle {
            self.wake.notify_one();
        }
    }

    /// Waits until every text queued and every deletion noted before this
    /// call has been written (or dropped by a failed batch).
    pub(crate) fn flush(&self) {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        while !st.texts.is_empty() || st.deletes || st.in_flight {
            if st.closed {
                return;
            }
            st.flushing = true;
            self.wake.notify_one();
            st = self
                .written
                .wait(st)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// The next batch (texts, and whether to apply deletions): waits for
    /// work, then up to [`BATCH_DELAY`] for more. `None` once closed and
    /// nothing is left.
    fn next_batch(&self) -> Option<(Vec<PendingText>, bool)> {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            #[cfg(test)]
            let held = st.paused;
            #[cfg(not(test))]
            let held = false;
            let work = st.has_work();
            if st.closed {
                if !work {
                    return None;
                }
                break;
            }
            if work && !held {
                break;
            }
            st = self.wake.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
        let deadline = Instant::now() + BATCH_DELAY;
        while !st.batch_full() && !st.closed && !st.flushing {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            st = self
                .wake
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        // At most one batch's worth: the rest waits for the next round.
        let mut n = 0;
        let mut bytes = 0;
        while n < st.texts.len() && n < BATCH_MAX && bytes < BATCH_MAX_BYTES {
            bytes += st.texts[n].headers.len() + st.texts[n].body.len();
            n += 1;
        }
        let batch: Vec<PendingText> = st.texts.drain(..n).collect();
        st.bytes -= bytes;
        if st.texts.is_empty() {
            st.flushing = false;
        }
        let deletes = std::mem::take(&mut st.deletes);
        st.in_flight = true;
        Some((batch, deletes))
    }

    /// Tests: holds back (or lets go) the writing of queued texts.
    #[cfg(test)]
    pub(crate) fn pause(&self, paused: bool) {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.paused = paused;
        self.wake.notify_all();
    }

    fn batch_done(&self) {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.in_flight = false;
        self.written.notify_all();
    }

    /// Whether a writer of new texts may go on without waiting
    /// ([`TextQueue::wait_room`]).
    pub(crate) fn has_room(&self) -> bool {
        let st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.bytes <= QUEUE_MAX_BYTES || st.closed
    }

    /// Waits while more than [`QUEUE_MAX_BYTES`] of text is queued. Never
    /// called holding the main write lock (the text writer needs it).
    pub(crate) fn wait_room(&self) {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        while st.bytes > QUEUE_MAX_BYTES && !st.closed {
            self.wake.notify_one();
            st = self
                .written
                .wait(st)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Records that deletions are waiting again (a batch took only part of
    /// them).
    fn more_deletes(&self) {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .deletes = true;
    }

    fn close(&self) {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.closed = true;
        self.wake.notify_all();
        self.written.notify_all();
    }

    /// The writer thread is gone (see [`StopOnExit`]): nothing will be
    /// written any more.
    fn stop(&self) {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.closed = true;
        st.stopped = true;
        st.texts = Vec::new();
        st.bytes = 0;
        st.in_flight = false;
        self.wake.notify_all();
        self.written.notify_all();
    }
}

/// Held by the writer thread: however it ends (also by a panic), the queue
/// learns that nobody writes any more, so that APPENDs waiting for room
/// (`wait_room`) and a `flush` go on, and new texts are not kept in memory
/// for nobody.
struct StopOnExit(Arc<TextQueue>);

impl Drop for StopOnExit {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// Tells `queue` whenever `writer` records a deleted document in
/// `fts_deleted` (`fts::gc`, on any path that deletes messages), so that the
/// text writer removes it from the FTS tables. The hook runs inside the
/// transaction; the text writer reads `fts_deleted` only once it holds the
/// write lock, so after that transaction has committed (or rolled back:
/// then it finds nothing to do).
pub(crate) fn watch_deletions(writer: &Connection, queue: &Arc<TextQueue>) {
    let queue = queue.clone();
    writer.update_hook(Some(move |action, _db: &str, table: &str, _rowid: i64| {
        if action == rusqlite::hooks::Action::SQLITE_INSERT && table == "fts_deleted" {
            queue.note_deletes();
        }
    }));
}

/// Records that a document's text is not in the FTS tables yet.
pub(crate) fn mark_pending(tx: &Connection, docid: i64, blob: &BlobId) -> Result<()> {
    tx.prepare_cached("INSERT OR REPLACE INTO fts_pending(docid, blob) VALUES (?1, ?2)")?
        .execute(params![docid, blob.as_str()])?;
    Ok(())
}

/// At most this many deleted documents leave the FTS tables per batch
/// (after `pillarbox reindex` all of them do).
const DELETES_MAX: i64 = 10_000;

/// The docids recorded in `fts_deleted` (step 1), and whether more are left.
fn deleted_docids(main: &Connection) -> Result<(Vec<i64>, bool)> {
    let mut q = main.prepare_cached("SELECT docid FROM fts_deleted ORDER BY docid LIMIT ?1")?;
    let rows = q.query_map([DELETES_MAX + 1], |r| r.get(0))?;
    let mut gone: Vec<i64> = rows.collect::<rusqlite::Result<_>>()?;
    let more = gone.len() as i64 > DELETES_MAX;
    gone.truncate(DELETES_MAX as usize);
    Ok((gone, more))
}

/// Step 2, on the index file: adds the texts, then removes the deleted
/// documents (a text may belong to one of them: see the module docs).
fn write_texts(index: &Connection, texts: &[PendingText], gone: &[i64]) -> Result<()> {
    let tx = super::txn::Tx::begin(index, super::txn::Begin::Immediate)?;
    for t in texts {
        super::fts::insert_text(&tx, t.docid, &t.headers, &t.body)?;
    }
    for &id in gone {
        super::fts::delete_text(&tx, id)?;
    }
    tx.commit()?;
    Ok(())
}

/// Step 3, on the main database: the texts' pending marks and the deleted
/// documents' rows go.
fn unmark(tx: &Connection, texts: &[(i64, BlobId)], gone: &[i64]) -> Result<()> {
    let mut unmark = tx.prepare_cached("DELETE FROM fts_pending WHERE docid = ?1 AND blob = ?2")?;
    for (docid, blob) in texts {
        unmark.execute(params![docid, blob.as_str()])?;
    }
    let mut forget = tx.prepare_cached("DELETE FROM fts_deleted WHERE docid = ?1")?;
    for id in gone {
        forget.execute([id])?;
    }
    Ok(())
}

/// Turns the documents still pending (their text was queued by a process
/// that stopped before it wrote it, or before it removed the mark) back
/// into unindexed messages, for the background indexer, and records them
/// as deleted (their text may be in the index). Returns how many documents
/// that was.
pub(crate) fn requeue(tx: &Connection) -> Result<usize> {
    tx.execute_batch(
        "INSERT OR IGNORE INTO fts_deleted(docid) SELECT docid FROM fts_pending;
         UPDATE messages SET docid = NULL WHERE docid IN (SELECT docid FROM fts_pending);
         DELETE FROM search_docs WHERE docid IN (SELECT docid FROM fts_pending);",
    )?;
    Ok(tx.execute("DELETE FROM fts_pending", [])?)
}

/// Lowers the calling thread's CPU priority to the lowest (Linux: a
/// thread's nice value is its own). Elsewhere nothing changes.
fn lowest_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain system calls on the calling thread.
    unsafe {
        let tid = libc::gettid();
        if libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19) != 0 {
            tracing::debug!("cannot lower the text writer's priority");
        }
    }
}

/// The threads that write queued texts; closing the queue and joining them
/// (on drop) writes what is still queued.
///
/// Two threads: the index file's writer runs at the lowest priority and
/// takes no lock of the main database (a thread that is seldom scheduled
/// must not hold one); the other, at normal priority, reads and writes the
/// main database around each batch.
pub(crate) struct TextWriter {
    queue: Arc<TextQueue>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A batch for the index file's thread: texts to add, docids to remove.
type IndexJob = (
    Vec<PendingText>,
    Vec<i64>,
    std::sync::mpsc::Sender<Result<()>>,
);

impl TextWriter {
    /// `keep_alive` is held by the thread as long as it may use `writer`
    /// (the writer's WAL hook points into it). `index` is the index file's
    /// write connection; `durable` makes the main database's commits so far
    /// durable.
    pub(crate) fn spawn<K: Send + 'static>(
        writer: Arc<Mutex<Connection>>,
        index: Connection,
        durable: impl Fn() -> Result<()> + Send + 'static,
        queue: Arc<TextQueue>,
        keep_alive: K,
    ) -> Result<TextWriter> {
        let (jobs, incoming) = std::sync::mpsc::channel::<IndexJob>();
        let indexer = std::thread::Builder::new()
            .name("fts-index".into())
            .spawn(move || {
                lowest_priority();
                for (texts, gone, reply) in incoming {
                    let _ = reply.send(write_texts(&index, &texts, &gone));
                }
            })
            .map_err(|e| StoreError::Other(format!("cannot start the text writer: {e}")))?;
        let q = queue.clone();
        let thread = std::thread::Builder::new()
            .name("fts-writer".into())
            .spawn(move || {
                let _keep_alive = keep_alive;
                let _stop = StopOnExit(q.clone());
                while let Some((batch, deletes)) = q.next_batch() {
                    if let Err(e) = write_batch(&writer, &durable, &jobs, batch, deletes, &q) {
                        // The marks stay: the next start indexes them again
                        // (and the deletions stay recorded).
                        tracing::warn!("cannot write search texts: {e}");
                    }
                    q.batch_done();
                }
                drop(jobs);
                let _ = indexer.join();
            })
            .map_err(|e| StoreError::Other(format!("cannot start the text writer: {e}")))?;
        Ok(TextWriter {
            queue,
            thread: Some(thread),
        })
    }
}

/// One batch's three steps (see the module docs), `writer` being the main
/// database's write connection and `durable` making its commits so far
/// durable.
fn write_batch(
    writer: &Mutex<Connection>,
    durable: &dyn Fn() -> Result<()>,
    jobs: &std::sync::mpsc::Sender<IndexJob>,
    batch: Vec<PendingText>,
    deletes: bool,
    q: &TextQueue,
) -> Result<()> {
    // Read holding the write lock: the hook that set `deletes` ran inside
    // a transaction, which has committed (or rolled back) once the lock is
    // free (see `watch_deletions`). A read of a few rows: no inversion, this
    // thread runs at normal priority.
    let (gone, more) = if deletes {
        let conn = writer.lock().unwrap_or_else(PoisonError::into_inner);
        deleted_docids(&conn)?
    } else {
        (Vec::new(), false)
    };
    if more {
        q.more_deletes();
    }
    if batch.is_empty() && gone.is_empty() {
        return Ok(());
    }
    // A commit that created a document and is lost in a crash would leave
    // its text in the index under a docid the main database hands out
    // again: so the texts go in only once their documents are durable.
    if !batch.is_empty() {
        durable()?;
    }
    let marks: Vec<(i64, BlobId)> = batch.iter().map(|t| (t.docid, t.blob)).collect();
    let (reply, result) = std::sync::mpsc::channel();
    jobs.send((batch, gone.clone(), reply))
        .map_err(|_| StoreError::Other("the index writer stopped".into()))?;
    result
        .recv()
        .map_err(|_| StoreError::Other("the index writer stopped".into()))??;
    super::write_on(writer, |tx| unmark(tx, &marks, &gone))
}

impl Drop for TextWriter {
    fn drop(&mut self) {
        self.queue.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(docid: i64, body_bytes: usize) -> PendingText {
        PendingText {
            docid,
            blob: BlobId::empty(),
            headers: "subject hi".into(),
            body: "x".repeat(body_bytes),
        }
    }

    /// A batch is full by count or by bytes, whichever comes first; taking
    /// it starts the count again.
    #[test]
    fn batches_are_bounded_by_bytes_and_count() {
        let q = TextQueue::default();
        q.push(vec![text(1, 100)]);
        assert!(!q.state.lock().unwrap().batch_full());
        q.push(vec![text(2, BATCH_MAX_BYTES)]);
        assert!(q.state.lock().unwrap().batch_full());
        let (batch, deletes) = q.next_batch().unwrap();
        assert_eq!(batch.iter().map(|t| t.docid).collect::<Vec<_>>(), [1, 2]);
        assert!(!deletes);
        q.batch_done();
        let st = q.state.lock().unwrap();
        assert_eq!(st.bytes, 0);
        assert!(!st.has_work() && !st.batch_full());
        drop(st);
        q.push((0..BATCH_MAX as i64).map(|d| text(d, 1)).collect());
        assert!(q.state.lock().unwrap().batch_full());
    }

    /// A batch is at most [`BATCH_MAX`] texts; the rest stays queued (and
    /// counted) for the next one.
    #[test]
    fn a_batch_takes_at_most_one_batchs_worth() {
        let q = TextQueue::default();
        q.push((0..BATCH_MAX as i64 + 3).map(|d| text(d, 10)).collect());
        let (batch, _) = q.next_batch().unwrap();
        assert_eq!(batch.len(), BATCH_MAX);
        q.batch_done();
        assert_eq!(q.state.lock().unwrap().bytes, 3 * (10 + "subject hi".len()));
        let (batch, _) = q.next_batch().unwrap();
        assert_eq!(
            batch.iter().map(|t| t.docid).collect::<Vec<_>>(),
            [BATCH_MAX as i64, BATCH_MAX as i64 + 1, BATCH_MAX as i64 + 2]
        );
    }

    /// `wait_room` returns at once while the queue is small, and waits while
    /// more than [`QUEUE_MAX_BYTES`] is queued, until a batch is taken.
    #[test]
    fn writers_wait_while_the_queue_is_full() {
        let q = Arc::new(TextQueue::default());
        q.push(vec![text(1, 10)]);
        q.wait_room();
        q.push(vec![text(2, QUEUE_MAX_BYTES)]);
        let waiter = {
            let q = q.clone();
            std::thread::spawn(move || q.wait_room())
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            !waiter.is_finished(),
            "wait_room returned with a full queue"
        );
        let _ = q.next_batch().unwrap();
        q.batch_done();
        waiter.join().unwrap();
    }

    /// When the writer thread ends, however it ends (here a panic), writers
    /// waiting for room go on, and texts pushed afterwards are not kept.
    #[test]
    fn a_writer_that_died_keeps_nobody_waiting() {
        let q = Arc::new(TextQueue::default());
        q.push(vec![text(1, QUEUE_MAX_BYTES + 1)]);
        let waiter = {
            let q = q.clone();
            std::thread::spawn(move || q.wait_room())
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(!waiter.is_finished(), "the queue is full");
        let writer = {
            let q = q.clone();
            std::thread::spawn(move || {
                let _stop = StopOnExit(q);
                panic!("a writer thread that fails");
            })
        };
        assert!(writer.join().is_err());
        let deadline = Instant::now() + Duration::from_secs(10);
        while !waiter.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(waiter.is_finished(), "still waiting for a dead writer");
        q.wait_room();
        q.flush();
        q.push(vec![text(2, 10)]);
        let st = q.state.lock().unwrap();
        assert!(st.texts.is_empty() && st.bytes == 0);
    }

    /// `flush` asks the writer not to wait for more texts (the `flushing`
    /// flag), returns once the batch is written, and taking a batch clears
    /// the flag again.
    #[test]
    fn flush_hands_over_the_waiting_batch() {
        let q = Arc::new(TextQueue::default());
        q.push(vec![text(1, 10)]);
        let writer = {
            let q = q.clone();
            std::thread::spawn(move || {
                // Hold the first look until a flush is waiting.
                while !q.state.lock().unwrap().flushing {
                    std::thread::yield_now();
                }
                let (batch, _) = q.next_batch().unwrap();
                q.batch_done();
                batch.len()
            })
        };
        q.flush();
        assert_eq!(writer.join().unwrap(), 1);
        assert!(!q.state.lock().unwrap().flushing);
    }
}
