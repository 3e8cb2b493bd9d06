//! Schema and migrations. `schema_version` holds the version the file is at;
//! each migration runs inside the writer's `BEGIN IMMEDIATE` so two processes
//! opening a fresh file at once cannot both apply it.
use rusqlite::{OptionalExtension, Transaction};

use crate::{Result, StoreError};

/// The version this binary writes.
pub(crate) const CURRENT_VERSION: i64 = 1;

const V1: &str = "
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
-- Last UIDVALIDITY handed out (global, so that no mailbox name ever sees a
-- value twice, even across delete/recreate of the account).
INSERT INTO meta(key, value) VALUES ('last_uidvalidity', 0);

CREATE TABLE accounts (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL
);

CREATE TABLE mailboxes (
    id             INTEGER PRIMARY KEY,
    account        INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    uidvalidity    INTEGER NOT NULL,
    uidnext        INTEGER NOT NULL DEFAULT 1,
    highest_modseq INTEGER NOT NULL DEFAULT 1,
    special_use    TEXT,
    UNIQUE(account, name)
);

CREATE TABLE messages (
    mailbox       INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    uid           INTEGER NOT NULL,
    modseq        INTEGER NOT NULL,
    flags         TEXT NOT NULL,
    seen          INTEGER NOT NULL,
    deleted       INTEGER NOT NULL,
    internal_date INTEGER NOT NULL,
    date_offset   INTEGER NOT NULL,
    size          INTEGER NOT NULL,
    blob          TEXT NOT NULL,
    summary       BLOB NOT NULL,
    PRIMARY KEY(mailbox, uid)
);
CREATE INDEX messages_modseq ON messages(mailbox, modseq);
-- Covering index: STATUS aggregates never touch the table rows.
CREATE INDEX messages_status ON messages(mailbox, seen, deleted, size);
-- Is this blob still referenced anywhere?
CREATE INDEX messages_blob ON messages(blob);

CREATE TABLE expunged (
    mailbox INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    uid     INTEGER NOT NULL,
    modseq  INTEGER NOT NULL,
    PRIMARY KEY(mailbox, uid)
);
CREATE INDEX expunged_modseq ON expunged(mailbox, modseq);

CREATE TABLE subscriptions (
    account INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name    TEXT NOT NULL,
    PRIMARY KEY(account, name)
);
";

/// Brings the database to [`CURRENT_VERSION`].
pub(crate) fn migrate(tx: &Transaction<'_>) -> Result<()> {
    tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);")?;
    let version: i64 = tx
        .query_row("SELECT max(version) FROM schema_version", [], |r| {
            r.get::<_, Option<i64>>(0)
        })
        .optional()?
        .flatten()
        .unwrap_or(0);
    if version > CURRENT_VERSION {
        return Err(StoreError::Other(format!(
            "database schema version {version} is newer than this binary supports ({CURRENT_VERSION})"
        )));
    }
    if version < 1 {
        tx.execute_batch(V1)?;
        tx.execute("INSERT INTO schema_version(version) VALUES (1)", [])?;
    }
    Ok(())
}
