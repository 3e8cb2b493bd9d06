//! The full-text tables live in a database file of their own, next to the
//! main one (`meta.sqlite3` → `meta-search.sqlite3`), so that writing them
//! never holds the main database's write lock: FTS5 takes a batch of texts
//! in, and now and then merges large segments, which held up every APPEND,
//! STORE and EXPUNGE behind it (10-client APPEND: the longest such hold was
//! 150-200 ms, p99 20 ms, 4-5 s of lock time in every 15 s).
//!
//! The file holds derived data only. Its identity (a random number) is kept
//! in both files; when they differ (the index file is missing, was replaced,
//! or belongs to another copy of the main database), the index starts over:
//! its tables are emptied, every message becomes unindexed in the main
//! database, and the background indexer indexes them again. Until then
//! SEARCH reads those messages, so it stays right, only slower.
//!
//! Readers attach the file as `ix` (see `SqliteStore::on_reader`); the text
//! writer's thread is its only writer in a process (`texts.rs`).
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension};

use crate::Result;

/// The index file of the main database at `main`.
pub(crate) fn path_for(main: &Path) -> PathBuf {
    let stem = main.file_stem().map(|s| s.to_string_lossy().into_owned());
    let name = match (stem, main.extension()) {
        (Some(stem), Some(ext)) => format!("{stem}-search.{}", ext.to_string_lossy()),
        (Some(stem), None) => format!("{stem}-search"),
        (None, _) => "search.sqlite3".to_string(),
    };
    main.with_file_name(name)
}

/// Opens (creating if needed) the index file for the main database whose
/// write transaction `main` is, and makes the two agree: if their
/// identities differ, the index starts over (see the module docs). The
/// caller commits `main`. Returns the index file's write connection.
pub(crate) fn open(main: &Connection, path: &Path) -> Result<Connection> {
    let conn = super::open_connection(path, false)?;
    let mode = super::switch_to_wal(&conn)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(crate::StoreError::Other(format!(
            "could not switch the search index to WAL mode (got {mode})"
        )));
    }
    let want: Option<i64> = main
        .query_row(
            "SELECT value FROM meta WHERE key = 'search_index_id'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    let tx = super::txn::Tx::begin(&conn, super::txn::Begin::Immediate)?;
    tx.execute_batch("CREATE TABLE IF NOT EXISTS ident (id INTEGER NOT NULL);")?;
    let have: Option<i64> = tx
        .query_row("SELECT id FROM ident", [], |r| r.get(0))
        .optional()?;
    if have.is_some() && have == want {
        tx.commit()?;
        return Ok(conn);
    }
    // Start over: the index file first (a crash before the main database
    // commits leaves the identities different, so this runs again).
    let id: i64 = rand::random::<i64>() & i64::MAX;
    tx.execute_batch(
        "DROP TABLE IF EXISTS fts_head;
         DROP TABLE IF EXISTS fts_body;
         DELETE FROM ident;",
    )?;
    tx.execute_batch(super::schema::INDEX_TABLES)?;
    tx.execute("INSERT INTO ident(id) VALUES (?1)", [id])?;
    tx.commit()?;
    if want.is_some() {
        tracing::warn!(
            "the search index file does not belong to this database: indexing every message again"
        );
    }
    super::fts::unlink_all(main, false)?;
    main.execute(
        "INSERT OR REPLACE INTO meta(key, value) VALUES ('search_index_id', ?1)",
        [id],
    )?;
    Ok(conn)
}
