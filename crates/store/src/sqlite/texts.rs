//! Deferred full text: APPEND commits a message's search document (header
//! fields, sort keys, preview) at once, but its full text goes into the FTS
//! tables a little later, many documents per transaction.
//!
//! Why: FTS5 writes the text a transaction added as a new segment when the
//! transaction commits (and merges segments later), so a document per
//! transaction costs several times what a batch costs per document (an
//! APPEND spent most of its time there). Batches come from this queue.
//!
//! How it stays correct:
//! - APPEND records each document whose text is not in the index yet in
//!   `fts_pending` (docid, blob), in its own transaction, so it is durable
//!   with the message. SEARCH treats the messages of pending documents as
//!   candidates (like unindexed ones) and checks them by reading them, so a
//!   search right after an APPEND is right, only slower.
//! - The texts wait in memory ([`TextQueue`]); a thread writes them in one
//!   transaction after [`BATCH_DELAY`] (or when [`BATCH_MAX`] texts or
//!   [`BATCH_MAX_BYTES`] are waiting),
//!   each only if its `fts_pending` row (same docid *and* blob: docids of
//!   deleted documents are reused) still exists, and deletes that row. A
//!   document expunged meanwhile lost its row, so its text is dropped.
//! - Deleting a document (its last message expunged) removes it from the
//!   FTS tables in the same batches: `fts::gc` records its docid in
//!   `fts_deleted` (which wakes the text writer, [`watch_deletions`]),
//!   and no new document takes a docid recorded there
//!   (`fts::insert_doc_row`), so the postings still in the index match no
//!   message meanwhile. (Each FTS5 write, a delete included, ends in a
//!   segment flush and merge work; one per EXPUNGE cost more than the rest
//!   of the EXPUNGE.)
//! - That commit need not be durable (the index is derived data): if the
//!   process stops before it, the `fts_pending` rows remain, and the server
//!   turns them back into unindexed messages at its next start
//!   (`MetaStore::requeue_pending_texts`), which it then indexes in the
//!   background.
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
pub(crate) const BATCH_MAX: usize = 256;
/// ...or until their texts add up to this many bytes. A batch holds the
/// write lock while FTS5 takes it in, so APPENDs queue behind it: this
/// bounds that wait. 10 clients appending fill it about every 10 ms
/// (APPEND p99 13-15 ms; 100 ms batches without this bound: 24-27 ms).
pub(crate) const BATCH_MAX_BYTES: usize = 160 << 10;

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
        let batch = std::mem::take(&mut st.texts);
        st.bytes = 0;
        st.flushing = false;
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

    fn close(&self) {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.closed = true;
        self.wake.notify_all();
        self.written.notify_all();
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

/// Removes the deleted documents recorded in `fts_deleted` from the FTS
/// tables (if `deletes`) and writes the texts whose pending mark still
/// exists, removing the marks. Every plain-table statement runs before the
/// first FTS write (see `fts::insert_text` on statement savepoints).
pub(crate) fn write_texts(tx: &Connection, texts: &[PendingText], deletes: bool) -> Result<()> {
    let mut keep = Vec::with_capacity(texts.len());
    {
        let mut unmark =
            tx.prepare_cached("DELETE FROM fts_pending WHERE docid = ?1 AND blob = ?2")?;
        for t in texts {
            if unmark.execute(params![t.docid, t.blob.as_str()])? == 1 {
                keep.push(t);
            }
        }
    }
    let mut gone: Vec<i64> = Vec::new();
    if deletes {
        let mut q = tx.prepare_cached("SELECT docid FROM fts_deleted")?;
        let rows = q.query_map([], |r| r.get(0))?;
        gone = rows.collect::<rusqlite::Result<_>>()?;
        tx.execute("DELETE FROM fts_deleted", [])?;
    }
    for id in gone {
        super::fts::delete_text(tx, id)?;
    }
    for t in &keep {
        super::fts::insert_text(tx, t.docid, &t.headers, &t.body)?;
    }
    Ok(())
}

/// Turns the documents still pending (their text was queued by a process
/// that stopped before writing it) back into unindexed messages, for the
/// background indexer. Returns how many documents that was.
pub(crate) fn requeue(tx: &Connection) -> Result<usize> {
    tx.execute_batch(
        "UPDATE messages SET docid = NULL WHERE docid IN (SELECT docid FROM fts_pending);
         DELETE FROM search_docs WHERE docid IN (SELECT docid FROM fts_pending);",
    )?;
    Ok(tx.execute("DELETE FROM fts_pending", [])?)
}

/// The thread that writes queued texts; closing the queue and joining it
/// (on drop) writes what is still queued.
pub(crate) struct TextWriter {
    queue: Arc<TextQueue>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TextWriter {
    /// `keep_alive` is held by the thread as long as it may use `writer`
    /// (the writer's WAL hook points into it).
    pub(crate) fn spawn<K: Send + 'static>(
        writer: Arc<Mutex<Connection>>,
        queue: Arc<TextQueue>,
        keep_alive: K,
    ) -> Result<TextWriter> {
        let q = queue.clone();
        let thread = std::thread::Builder::new()
            .name("fts-writer".into())
            .spawn(move || {
                let _keep_alive = keep_alive;
                while let Some((batch, deletes)) = q.next_batch() {
                    if let Err(e) = super::write_on(&writer, |tx| write_texts(tx, &batch, deletes))
                    {
                        // The marks stay: the next start indexes them again
                        // (and applies the deletions).
                        tracing::warn!("cannot write {} search texts: {e}", batch.len());
                    }
                    q.batch_done();
                }
            })
            .map_err(|e| StoreError::Other(format!("cannot start the text writer: {e}")))?;
        Ok(TextWriter {
            queue,
            thread: Some(thread),
        })
    }
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
