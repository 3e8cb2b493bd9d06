//! The VFS every connection of the store opens its database through: the
//! platform's own, except that the frames a transaction appends to the WAL
//! reach the file in one write instead of two per page.
//!
//! SQLite writes each WAL frame as two writes, its 24-byte header and then
//! the page, so a commit of n pages costs 2n `pwrite` calls, each taking the
//! file's lock and touching one or two page-cache pages (a small STORE: 6,
//! an APPEND: about 40). Here a frame header is kept in memory and the writes
//! that follow it at the next offsets are appended to it; the whole run goes
//! to the file in one write when the transaction's commit frame is complete
//! (the frame header says so: its "database size after commit" is non-zero),
//! before any other operation on the file (read, sync, size, truncate, file
//! control, close), when a write is not at the next offset, or once
//! [`FLUSH_BYTES`] are held.
//!
//! Why that is safe: SQLite makes a transaction's frames visible to other
//! connections only after writing its commit frame, by updating the
//! wal-index, which is not this file; by then the frames are in the file.
//! Frames of a transaction that spilled pages before committing are only
//! read back through this same file object, which writes what it holds
//! first. A crash loses only what a crash before the commit would have lost.
//! Writes that fail are reported by the call that makes them (SQLite then
//! fails the transaction).
//!
//! Every other file (the database, its journals, the shared-memory index) is
//! the platform VFS's own file object, untouched.
use std::ffi::{c_int, c_void};
use std::sync::OnceLock;

use rusqlite::ffi;

/// The name connections pass to open through this VFS.
const NAME: &str = "pillarbox";
const NAME_C: &std::ffi::CStr = c"pillarbox";

/// Bytes of a WAL frame header.
const FRAME_HEADER: usize = 24;
/// A run of buffered frames is written once it holds this much.
const FLUSH_BYTES: usize = 1 << 20;
/// The most the platform VFS writes in one call: it uses only the low 17
/// bits of a length (a larger write fails as "disk full").
const MAX_WRITE: usize = 0x1ffff & !0xfff;

/// The platform VFS (its address), found once.
static INNER: OnceLock<usize> = OnceLock::new();

/// Registers the VFS (once per process) and returns its name.
pub(crate) fn name() -> crate::Result<&'static str> {
    static REGISTERED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            // SAFETY: sqlite3_vfs_find only reads SQLite's VFS list; the VFS
            // built here is leaked, so it outlives every connection.
            unsafe {
                let inner = ffi::sqlite3_vfs_find(std::ptr::null());
                if inner.is_null() {
                    return Err("SQLite has no default VFS".into());
                }
                let _ = INNER.set(inner as usize);
                let mut vfs: ffi::sqlite3_vfs = *inner;
                vfs.szOsFile = (inner_offset() + (*inner).szOsFile as usize) as c_int;
                vfs.pNext = std::ptr::null_mut();
                vfs.zName = NAME_C.as_ptr();
                vfs.xOpen = Some(x_open);
                let rc = ffi::sqlite3_vfs_register(Box::into_raw(Box::new(vfs)), 0);
                if rc != ffi::SQLITE_OK {
                    return Err(format!("cannot register the {NAME} VFS (code {rc})"));
                }
            }
            Ok(())
        })
        .clone()
        .map_err(crate::StoreError::Other)?;
    Ok(NAME)
}

fn inner_vfs() -> *mut ffi::sqlite3_vfs {
    *INNER.get().expect("registered before use") as *mut ffi::sqlite3_vfs
}

/// A WAL file: the buffered run of writes, then (at [`inner_offset`]) the
/// platform VFS's file object.
#[repr(C)]
struct WalFile {
    base: ffi::sqlite3_file,
    /// Bytes to be written at `start`.
    pending: Vec<u8>,
    start: i64,
    /// The last write was a frame header, of a commit frame if `commit`.
    after_header: bool,
    commit: bool,
}

/// Where the platform's file object starts inside ours (aligned as SQLite
/// aligns what it allocates).
const fn inner_offset() -> usize {
    std::mem::size_of::<WalFile>().next_multiple_of(16)
}

/// The platform's file object inside `f`.
///
/// # Safety
/// `f` is a file this VFS opened as a WAL file.
unsafe fn inner(f: *mut ffi::sqlite3_file) -> *mut ffi::sqlite3_file {
    // SAFETY: the VFS allocates `inner_offset()` more bytes than the
    // platform's file object needs (`szOsFile`).
    unsafe { f.cast::<u8>().add(inner_offset()).cast() }
}

/// The platform's methods of `f` (opened as a WAL file).
///
/// # Safety
/// As [`inner`].
unsafe fn methods<'a>(f: *mut ffi::sqlite3_file) -> &'a ffi::sqlite3_io_methods {
    // SAFETY: the platform's xOpen succeeded, so its methods are set.
    unsafe { &*(*inner(f)).pMethods }
}

/// Writes what `f` holds.
///
/// # Safety
/// As [`inner`].
unsafe fn flush(f: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: `f` is a WalFile (see x_open).
    let w = unsafe { &mut *f.cast::<WalFile>() };
    w.after_header = false;
    if w.pending.is_empty() {
        return ffi::SQLITE_OK;
    }
    let mut rc = ffi::SQLITE_OK;
    let mut at = 0;
    while at < w.pending.len() && rc == ffi::SQLITE_OK {
        let n = (w.pending.len() - at).min(MAX_WRITE);
        // SAFETY: the platform's xWrite reads `n` bytes of the buffer.
        rc = unsafe {
            (methods(f).xWrite.expect("xWrite"))(
                inner(f),
                w.pending[at..].as_ptr().cast(),
                n as c_int,
                w.start + at as i64,
            )
        };
        at += n;
    }
    w.pending.clear();
    rc
}

unsafe extern "C" fn x_open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let platform = inner_vfs();
    // SAFETY: SQLite gives `file` szOsFile bytes (ours, more than the
    // platform's); the platform VFS is called as SQLite would call it.
    unsafe {
        let open = (*platform).xOpen.expect("xOpen");
        if flags & ffi::SQLITE_OPEN_WAL == 0 {
            return open(platform, name, file, flags, out_flags);
        }
        let rc = open(platform, name, inner(file), flags, out_flags);
        if rc != ffi::SQLITE_OK {
            // The platform's object is closed if it got as far as methods.
            let inner_file = inner(file);
            if !(*inner_file).pMethods.is_null() {
                if let Some(close) = (*(*inner_file).pMethods).xClose {
                    close(inner_file);
                }
            }
            (*file).pMethods = std::ptr::null();
            return rc;
        }
        file.cast::<WalFile>().write(WalFile {
            base: ffi::sqlite3_file {
                pMethods: &WAL_METHODS,
            },
            pending: Vec::new(),
            start: 0,
            after_header: false,
            commit: false,
        });
    }
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_write(
    f: *mut ffi::sqlite3_file,
    data: *const c_void,
    n: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    // SAFETY: SQLite calls this for a file x_open made a WalFile, with `n`
    // readable bytes at `data`.
    unsafe {
        let w = &mut *f.cast::<WalFile>();
        let bytes = std::slice::from_raw_parts(data.cast::<u8>(), usize::try_from(n).unwrap_or(0));
        let next = w.start + w.pending.len() as i64;
        if !w.pending.is_empty() && offset != next {
            let rc = flush(f);
            if rc != ffi::SQLITE_OK {
                return rc;
            }
        }
        if bytes.len() == FRAME_HEADER {
            if w.pending.is_empty() {
                w.start = offset;
            }
            w.pending.extend_from_slice(bytes);
            w.after_header = true;
            w.commit = bytes[4..8] != [0; 4];
            return ffi::SQLITE_OK;
        }
        if w.pending.is_empty() {
            return (methods(f).xWrite.expect("xWrite"))(inner(f), data, n, offset);
        }
        w.pending.extend_from_slice(bytes);
        let frame_done = std::mem::take(&mut w.after_header);
        if (frame_done && w.commit) || w.pending.len() >= FLUSH_BYTES {
            return flush(f);
        }
        ffi::SQLITE_OK
    }
}

/// Defines a method that writes what the file holds, then forwards the call
/// to the platform's method of the same name.
macro_rules! flush_then {
    ($name:ident, $field:ident, ($($arg:ident: $ty:ty),*)) => {
        unsafe extern "C" fn $name(f: *mut ffi::sqlite3_file $(, $arg: $ty)*) -> c_int {
            // SAFETY: SQLite calls this for a file x_open made a WalFile.
            unsafe {
                let rc = flush(f);
                if rc != ffi::SQLITE_OK {
                    return rc;
                }
                match methods(f).$field {
                    Some(m) => m(inner(f) $(, $arg)*),
                    None => ffi::SQLITE_MISUSE,
                }
            }
        }
    };
}

flush_then!(x_read, xRead, (buf: *mut c_void, n: c_int, offset: ffi::sqlite3_int64));
flush_then!(x_truncate, xTruncate, (size: ffi::sqlite3_int64));
flush_then!(x_sync, xSync, (flags: c_int));
flush_then!(x_file_size, xFileSize, (size: *mut ffi::sqlite3_int64));
flush_then!(x_lock, xLock, (level: c_int));
flush_then!(x_unlock, xUnlock, (level: c_int));
flush_then!(x_check_reserved_lock, xCheckReservedLock, (out: *mut c_int));
flush_then!(x_file_control, xFileControl, (op: c_int, arg: *mut c_void));
flush_then!(x_shm_map, xShmMap, (page: c_int, size: c_int, extend: c_int, out: *mut *mut c_void));
flush_then!(x_shm_lock, xShmLock, (offset: c_int, n: c_int, flags: c_int));
flush_then!(x_shm_unmap, xShmUnmap, (delete: c_int));
flush_then!(x_fetch, xFetch, (offset: ffi::sqlite3_int64, n: c_int, out: *mut *mut c_void));
flush_then!(x_unfetch, xUnfetch, (offset: ffi::sqlite3_int64, p: *mut c_void));

unsafe extern "C" fn x_sector_size(f: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: SQLite calls this for a file x_open made a WalFile.
    unsafe { methods(f).xSectorSize.map_or(4096, |m| m(inner(f))) }
}

unsafe extern "C" fn x_device_characteristics(f: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: SQLite calls this for a file x_open made a WalFile.
    unsafe { methods(f).xDeviceCharacteristics.map_or(0, |m| m(inner(f))) }
}

unsafe extern "C" fn x_shm_barrier(f: *mut ffi::sqlite3_file) {
    // SAFETY: SQLite calls this for a file x_open made a WalFile.
    unsafe {
        // No way to report a failed write here: it stays held, and the next
        // call that can report it writes it.
        if let Some(m) = methods(f).xShmBarrier {
            m(inner(f));
        }
    }
}

unsafe extern "C" fn x_close(f: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: SQLite calls this once for a file x_open made a WalFile; the
    // WalFile is dropped after the platform's object is closed.
    unsafe {
        let flushed = flush(f);
        let closed = methods(f).xClose.map_or(ffi::SQLITE_OK, |m| m(inner(f)));
        std::ptr::drop_in_place(f.cast::<WalFile>());
        if flushed != ffi::SQLITE_OK {
            flushed
        } else {
            closed
        }
    }
}

static WAL_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(x_close),
    xRead: Some(x_read),
    xWrite: Some(x_write),
    xTruncate: Some(x_truncate),
    xSync: Some(x_sync),
    xFileSize: Some(x_file_size),
    xLock: Some(x_lock),
    xUnlock: Some(x_unlock),
    xCheckReservedLock: Some(x_check_reserved_lock),
    xFileControl: Some(x_file_control),
    xSectorSize: Some(x_sector_size),
    xDeviceCharacteristics: Some(x_device_characteristics),
    xShmMap: Some(x_shm_map),
    xShmLock: Some(x_shm_lock),
    xShmBarrier: Some(x_shm_barrier),
    xShmUnmap: Some(x_shm_unmap),
    xFetch: Some(x_fetch),
    xUnfetch: Some(x_unfetch),
};

#[cfg(test)]
mod tests {
    use rusqlite::{Connection, OpenFlags};

    use super::*;

    fn open(path: &std::path::Path) -> Connection {
        let c = Connection::open_with_flags_and_vfs(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
            name().unwrap(),
        )
        .unwrap();
        c.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
            .unwrap();
        c
    }

    /// Size of the WAL file on disk, as another process would see it.
    fn wal_len(path: &std::path::Path) -> u64 {
        let mut p = path.as_os_str().to_owned();
        p.push("-wal");
        std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
    }

    #[test]
    fn a_commit_is_in_the_file_when_it_returns_and_readers_see_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let w = open(&path);
        w.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB)")
            .unwrap();
        let r = open(&path);
        for i in 0..200i64 {
            let tx = w.unchecked_transaction().unwrap();
            tx.execute("INSERT INTO t VALUES (?1, zeroblob(3000))", [i])
                .unwrap();
            tx.execute("UPDATE t SET v = zeroblob(5000) WHERE k = ?1", [i / 2])
                .unwrap();
            tx.commit().unwrap();
            // Nothing held back after the commit: another connection (its
            // own file object, as in another process) reads the frames.
            let n: i64 = r
                .query_row("SELECT count(*) FROM t", [], |x| x.get(0))
                .unwrap();
            assert_eq!(n, i + 1);
        }
        let ok: String = r
            .query_row("PRAGMA integrity_check", [], |x| x.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
        // A fresh connection through the platform VFS reads the same.
        drop((w, r));
        let plain = Connection::open(&path).unwrap();
        let n: i64 = plain
            .query_row("SELECT count(*) FROM t", [], |x| x.get(0))
            .unwrap();
        assert_eq!(n, 200);
    }

    #[test]
    fn frames_of_a_transaction_reach_the_file_in_one_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let w = open(&path);
        w.execute_batch(
            "CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB);
             INSERT INTO t VALUES (1, zeroblob(20000));",
        )
        .unwrap();
        // Write calls of this thread, as the kernel counts them.
        let write_calls = || -> u64 {
            let io = std::fs::read_to_string("/proc/thread-self/io").unwrap();
            io.lines()
                .find_map(|l| l.strip_prefix("syscw:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap()
        };
        // A transaction that changes several pages (the row's overflow
        // chain): one write for all its frames.
        let (before, wal_before) = (write_calls(), wal_len(&path));
        w.execute("UPDATE t SET v = zeroblob(20001) WHERE k = 1", [])
            .unwrap();
        let writes = write_calls() - before;
        assert!(
            wal_len(&path) >= wal_before + 5 * 4096,
            "several frames: {wal_before} -> {}",
            wal_len(&path)
        );
        assert_eq!(writes, 1, "write calls for one commit of several frames");
    }

    #[test]
    fn a_transaction_that_spills_and_rolls_back_leaves_a_sound_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let w = open(&path);
        // A tiny page cache makes the transaction write frames before its
        // commit (a spill), and read them back.
        w.execute_batch(
            "PRAGMA cache_size = 10;
             CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB);",
        )
        .unwrap();
        let mut committed = 0;
        for round in 0..3i64 {
            let tx = w.unchecked_transaction().unwrap();
            for i in 0..300i64 {
                tx.execute(
                    "INSERT INTO t VALUES (?1, randomblob(500))",
                    [round * 1000 + i],
                )
                .unwrap();
            }
            let seen: i64 = tx
                .query_row("SELECT count(*) FROM t", [], |x| x.get(0))
                .unwrap();
            assert_eq!(seen, committed + 300);
            if round == 1 {
                tx.rollback().unwrap();
            } else {
                tx.commit().unwrap();
                committed += 300;
            }
        }
        let r = open(&path);
        let n: i64 = r
            .query_row("SELECT count(*) FROM t", [], |x| x.get(0))
            .unwrap();
        assert_eq!(n, 600, "rounds 0 and 2 only");
        w.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
        let ok: String = r
            .query_row("PRAGMA integrity_check", [], |x| x.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
    }
}
