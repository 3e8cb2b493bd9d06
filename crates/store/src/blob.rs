//! Content-addressed blob storage.
use std::path::PathBuf;

/// BLAKE3 hash of the uncompressed message bytes, hex-encoded (64 chars).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobId(pub String);

pub trait BlobStore: Send + Sync {
    /// Stores the bytes (zstd-compressed, written to a temp file, fsynced, renamed,
    /// directory fsynced) unless a blob with the same content already exists.
    fn put(&self, data: &[u8]) -> crate::Result<BlobId>;
    /// Stores the content of a file (a spooled APPEND literal) without reading it
    /// all into memory.
    fn put_file(&self, path: &std::path::Path) -> crate::Result<BlobId>;
    fn get(&self, id: &BlobId) -> crate::Result<Vec<u8>>;
    fn delete(&self, id: &BlobId) -> crate::Result<()>;
}

/// Blobs as files under `<data>/blobs/ab/cdef...zst`.
pub struct FsBlobStore {
    root: PathBuf,
}

impl FsBlobStore {
    /// Opens (creating if needed) the blob directory.
    pub fn open(root: PathBuf) -> crate::Result<Self> {
        unimplemented!()
    }
}
