//! Where log lines go: stderr, written by a thread of its own, in batches.
//!
//! - **Nothing that logs waits for stderr.** When whatever reads stderr stops
//!   reading (a full pipe), the writer thread waits; sessions only append to
//!   a buffer in memory. Past [`MAX_BUFFERED`] bytes, lines are dropped and
//!   counted, and the count is written once the reader catches up.
//! - **One wake-up per batch, not per line.** The first line into an empty
//!   buffer wakes the thread, which then lets lines gather for
//!   [`GATHER`] (or until [`FLUSH_BYTES`] are waiting) and writes them in
//!   one call. A busy server logs a line per login and per session end; a
//!   queue that wakes its consumer for each line (as `tracing-appender`'s
//!   does, spinning and yielding the CPU before it sleeps) cost about 5% of
//!   the server's CPU per command in a mix where a client logs in every 50
//!   commands: that much less with this writer (10 clients, 20 alternating
//!   pairs), although its own thread showed under 1% of the samples.
//!
//! A line reaches stderr at most [`GATHER`] after it was logged; dropping
//! the [`LogGuard`] writes out what is waiting (waiting at most
//! [`CLOSE_WAIT`] for a stalled reader).
use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Bytes of log lines held for the writer thread at most; later lines are
/// dropped (and counted) until it catches up.
const MAX_BUFFERED: usize = 16 << 20;
/// How long the writer thread lets lines gather after the first one.
const GATHER: Duration = Duration::from_millis(50);
/// Lines waiting that make the writer thread write at once.
const FLUSH_BYTES: usize = 64 << 10;
/// How long dropping the guard waits for the last lines to be written.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

#[derive(Default)]
struct State {
    buf: Vec<u8>,
    dropped: u64,
    closing: bool,
    /// Set by the writer thread when it has written everything and stopped.
    done: bool,
}

#[derive(Default)]
struct Inner {
    state: Mutex<State>,
    /// Wakes the writer thread (lines waiting, or closing).
    wake: Condvar,
    /// Tells the guard that the writer thread is done.
    finished: Condvar,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn append(&self, bytes: &[u8]) {
        let mut st = self.lock();
        if st.buf.len() + bytes.len() > MAX_BUFFERED {
            st.dropped += 1;
            return;
        }
        let was_empty = st.buf.is_empty();
        let below = st.buf.len() < FLUSH_BYTES;
        st.buf.extend_from_slice(bytes);
        if was_empty || (below && st.buf.len() >= FLUSH_BYTES) {
            self.wake.notify_one();
        }
    }
}

/// The `MakeWriter` handed to the subscriber: every line it is given goes to
/// the writer thread's buffer.
#[derive(Clone)]
pub(crate) struct LogWriter {
    inner: Arc<Inner>,
}

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.append(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> LogWriter {
        self.clone()
    }
}

/// Writes out what is waiting when dropped (see the module docs).
pub(crate) struct LogGuard {
    inner: Arc<Inner>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        let mut st = self.inner.lock();
        st.closing = true;
        self.inner.wake.notify_one();
        let _ = self
            .inner
            .finished
            .wait_timeout_while(st, CLOSE_WAIT, |st| !st.done);
    }
}

/// Starts the writer thread, writing to `out`.
pub(crate) fn spawn(out: impl Write + Send + 'static) -> std::io::Result<(LogWriter, LogGuard)> {
    let inner = Arc::new(Inner::default());
    let thread_inner = inner.clone();
    std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || run(&thread_inner, out))?;
    Ok((
        LogWriter {
            inner: inner.clone(),
        },
        LogGuard { inner },
    ))
}

/// The writer thread: waits for lines, lets more gather, writes them.
fn run(inner: &Inner, mut out: impl Write) {
    let mut st = inner.lock();
    loop {
        while st.buf.is_empty() && st.dropped == 0 && !st.closing {
            st = inner.wake.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
        if !st.closing {
            st = inner
                .wake
                .wait_timeout_while(st, GATHER, |st| st.buf.len() < FLUSH_BYTES && !st.closing)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        let batch = std::mem::take(&mut st.buf);
        let dropped = std::mem::take(&mut st.dropped);
        let closing = st.closing;
        drop(st);
        let _ = out.write_all(&batch);
        if dropped > 0 {
            let _ = writeln!(
                out,
                "pillarbox: {dropped} log lines dropped (stderr was not read fast enough)"
            );
        }
        let _ = out.flush();
        st = inner.lock();
        // Lines dropped while the batch was written are reported before the
        // thread ends (a line longer than the whole buffer is dropped even
        // when nothing waits).
        if closing && st.buf.is_empty() && st.dropped == 0 {
            st.done = true;
            inner.finished.notify_all();
            return;
        }
        // The batch's memory serves the next one, unless it grew large.
        if st.buf.is_empty() && batch.capacity() <= 2 * FLUSH_BYTES {
            let mut batch = batch;
            batch.clear();
            st.buf = batch;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An output that keeps what it is given. One made by [`Out::stepped`]
    /// writes only when the test sends it a permit, until the test drops
    /// the sender; one made by `default` writes at once.
    #[derive(Clone, Default)]
    struct Out {
        written: Arc<Mutex<Vec<u8>>>,
        writes: Arc<Mutex<usize>>,
        permits: Option<Arc<Mutex<std::sync::mpsc::Receiver<()>>>>,
    }

    impl Out {
        fn stepped() -> (Out, std::sync::mpsc::Sender<()>) {
            let (permit, permits) = std::sync::mpsc::channel();
            let out = Out {
                permits: Some(Arc::new(Mutex::new(permits))),
                ..Out::default()
            };
            (out, permit)
        }
    }

    impl Write for Out {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Some(p) = &self.permits {
                // An error: the sender is gone, the output is open.
                let _ = p.lock().unwrap().recv();
            }
            self.written.lock().unwrap().extend_from_slice(buf);
            *self.writes.lock().unwrap() += 1;
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn text(out: &Out) -> String {
        String::from_utf8(out.written.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn lines_arrive_in_order_in_few_writes_and_the_guard_writes_the_rest() {
        let out = Out::default();
        let (writer, guard) = spawn(out.clone()).unwrap();
        let expected: String = (0..1000).map(|i| format!("line {i}\n")).collect();
        for i in 0..1000 {
            writer
                .clone()
                .write_all(format!("line {i}\n").as_bytes())
                .unwrap();
        }
        drop(guard);
        assert_eq!(text(&out), expected);
        let writes = *out.writes.lock().unwrap();
        assert!(writes < 100, "{writes} writes for 1000 lines");
    }

    #[test]
    fn a_line_is_written_without_waiting_for_more() {
        let out = Out::default();
        let (mut writer, _guard) = spawn(out.clone()).unwrap();
        writer.write_all(b"alone\n").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while text(&out).is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(text(&out), "alone\n");
    }

    /// A writer over a stepped output whose thread has taken the line
    /// "first" and waits for a permit to write it.
    fn blocked_on_first_line() -> (Out, std::sync::mpsc::Sender<()>, LogWriter, LogGuard) {
        let (out, permit) = Out::stepped();
        let (mut writer, guard) = spawn(out.clone()).unwrap();
        writer.write_all(b"first\n").unwrap();
        std::thread::sleep(GATHER * 3);
        (out, permit, writer, guard)
    }

    #[test]
    fn a_stalled_output_drops_lines_and_says_so_without_blocking_anyone() {
        // The writer thread blocks in the output with the first line; the
        // rest fill the buffer, and then some.
        let (out, gate, mut writer, guard) = blocked_on_first_line();
        let line = vec![b'x'; 1023];
        let lines = MAX_BUFFERED / 1024 + 100;
        for _ in 0..lines {
            writer.write_all(&line).unwrap();
            writer.write_all(b"\n").unwrap();
        }
        drop(gate);
        drop(guard);
        let t = text(&out);
        assert!(t.starts_with("first\n"), "{}", &t[..20]);
        assert!(t.contains(" log lines dropped"), "no drop reported");
        assert!(t.len() <= MAX_BUFFERED + 200, "{} bytes", t.len());
    }

    #[test]
    fn a_line_dropped_during_the_last_write_is_reported_at_exit() {
        // The writer thread waits to write the first line...
        let (out, permit, mut writer, guard) = blocked_on_first_line();
        // ...while the guard closes the writer and another line waits.
        let closer = std::thread::spawn(move || drop(guard));
        std::thread::sleep(GATHER);
        writer.write_all(b"second\n").unwrap();
        // The first is written; the second, taken as the last batch, waits.
        permit.send(()).unwrap();
        std::thread::sleep(GATHER * 3);
        // A line too long for the buffer is dropped, leaving it empty.
        writer.write_all(&vec![b'x'; MAX_BUFFERED + 1]).unwrap();
        drop(permit);
        closer.join().unwrap();
        assert_eq!(
            text(&out),
            "first\nsecond\npillarbox: 1 log lines dropped (stderr was not read fast enough)\n"
        );
    }
}
