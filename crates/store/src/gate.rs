//! The gate between storing blob files and deleting them.
//!
//! Blobs are content-addressed, so an APPEND whose content is already stored
//! as a file writes none: it relies on that file from the moment it found it
//! until its commit references it. A deletion of the same file (its last
//! other reference just went) in that window would lose acknowledged mail.
//! So an APPEND holds the gate shared from storing its files to its commit,
//! and files are deleted only under the exclusive gate, after checking again
//! that no message references them ([`free_files`]).
//!
//! The gate works across processes too (the `user delete` command deletes
//! files while a server may run): besides an in-process lock, the process
//! holds an advisory `flock` on a lock file beside the blob directory, shared
//! while any of its threads holds the gate shared, exclusive while it holds
//! it exclusively.
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::{BlobId, BlobStore, MetaStore};

pub struct BlobGate {
    local: RwLock<()>,
    /// Threads of this process holding the gate shared (the file lock is
    /// shared while this is above zero).
    holders: Mutex<usize>,
    file: File,
}

/// The gate held shared; released on drop.
pub struct SharedGate<'a> {
    gate: &'a BlobGate,
    _local: RwLockReadGuard<'a, ()>,
}

/// The gate held exclusively; released on drop.
pub struct ExclusiveGate<'a> {
    gate: &'a BlobGate,
    _local: RwLockWriteGuard<'a, ()>,
}

impl BlobGate {
    /// Opens (creating if needed) the lock file at `path`.
    pub fn open(path: &Path) -> std::io::Result<BlobGate> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        Ok(BlobGate {
            local: RwLock::new(()),
            holders: Mutex::new(0),
            file,
        })
    }

    /// Waits for no deletion to be running, here or in another process, and
    /// keeps deletions from starting until the guard is dropped.
    pub fn shared(&self) -> SharedGate<'_> {
        let local = self.local.read().unwrap_or_else(PoisonError::into_inner);
        let mut holders = self.holders();
        if *holders == 0 {
            // Held while waiting: no other thread may count itself in before
            // the file lock is there.
            self.flock(libc::LOCK_SH);
        }
        *holders += 1;
        SharedGate {
            gate: self,
            _local: local,
        }
    }

    /// Waits for every holder of the shared gate, here and in other
    /// processes, to let go; new ones wait until the guard is dropped.
    pub fn exclusive(&self) -> ExclusiveGate<'_> {
        let local = self.local.write().unwrap_or_else(PoisonError::into_inner);
        self.flock(libc::LOCK_EX);
        ExclusiveGate {
            gate: self,
            _local: local,
        }
    }

    fn holders(&self) -> MutexGuard<'_, usize> {
        self.holders.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `flock`, retried when a signal interrupts it. Another failure (the
    /// file system has no locks) leaves the in-process lock as the only one,
    /// logged.
    fn flock(&self, op: libc::c_int) {
        loop {
            // SAFETY: flock only reads the descriptor, which `self.file` keeps open.
            if unsafe { libc::flock(self.file.as_raw_fd(), op) } == 0 {
                return;
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                tracing::warn!("blob gate: flock failed: {e}");
                return;
            }
        }
    }
}

impl Drop for SharedGate<'_> {
    fn drop(&mut self) {
        let mut holders = self.gate.holders();
        *holders -= 1;
        if *holders == 0 {
            self.gate.flock(libc::LOCK_UN);
        }
    }
}

impl Drop for ExclusiveGate<'_> {
    fn drop(&mut self) {
        self.gate.flock(libc::LOCK_UN);
    }
}

/// Deletes the files of `ids`, which a transaction that removed their last
/// messages reported unreferenced ([`crate::Expunged::unreferenced_files`]):
/// under the exclusive gate, only those no message references by then. An
/// APPEND of the same content may have found such a file present meanwhile
/// (so it wrote none) and committed a message that references it; under the
/// gate no APPEND is between storing its files and its commit, so checking
/// again there is enough. The transaction is made durable first
/// ([`MetaStore::make_durable`]): a crash must not bring back messages whose
/// files are gone. Returns how many were deleted; a failure keeps the file
/// (logged).
pub fn free_files(store: &dyn MetaStore, blobs: &dyn BlobStore, ids: &[BlobId]) -> usize {
    if ids.is_empty() {
        return 0;
    }
    if let Err(e) = store.make_durable() {
        tracing::warn!("cannot make the store durable before deleting blobs (kept): {e}");
        return 0;
    }
    let _gate = blobs.gate().exclusive();
    let unreferenced = match store.unreferenced_blobs(ids) {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!("cannot check blobs before deleting them (kept): {e}");
            return 0;
        }
    };
    let mut n = 0;
    for id in unreferenced {
        match blobs.delete(&id) {
            Ok(()) => n += 1,
            Err(e) => tracing::warn!("cannot delete blob {id}: {e}"),
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::BlobGate;

    /// Two gates on one lock file stand for two processes: `flock` locks
    /// belong to an open file, so they exclude each other like processes.
    #[test]
    fn the_gate_excludes_other_processes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blobs.lock");
        let server = std::sync::Arc::new(BlobGate::open(&path).unwrap());
        let cli = BlobGate::open(&path).unwrap();
        // Two APPENDs in the server hold it shared; the first one to finish
        // must not let the deletion in.
        let first = server.shared();
        let second = server.shared();
        let (tx, rx) = mpsc::channel();
        let t = std::thread::spawn(move || {
            let _deleting = cli.exclusive();
            tx.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(300));
        });
        drop(first);
        assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
        drop(second);
        rx.recv_timeout(Duration::from_secs(10))
            .expect("in once no APPEND holds it");
        // Meanwhile a new APPEND waits for the deletion to end.
        let started = std::time::Instant::now();
        let _third = server.shared();
        assert!(started.elapsed() >= Duration::from_millis(100));
        t.join().unwrap();
    }
}
