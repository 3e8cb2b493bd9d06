//! The embedded metadata store: SQLite in WAL mode.
use std::path::Path;

pub struct SqliteStore {}

impl SqliteStore {
    /// Opens (creating and migrating if needed) the database file.
    pub fn open(path: &Path) -> crate::Result<Self> {
        unimplemented!()
    }
}
