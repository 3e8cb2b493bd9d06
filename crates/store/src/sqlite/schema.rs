//! Schema and migrations. `schema_version` holds the version the file is at;
//! each migration runs inside the writer's `BEGIN IMMEDIATE` so two processes
//! opening a fresh file at once cannot both apply it.
use rusqlite::{Connection, OptionalExtension};

use crate::{Result, StoreError};

/// The version this binary writes.
pub(crate) const CURRENT_VERSION: i64 = MIGRATIONS.len() as i64;

/// Migration `n` (from 1) is `MIGRATIONS[n - 1]`; a file at version v gets
/// every later one, in order, each recorded in `schema_version`.
const MIGRATIONS: [&str; 21] = [
    V1, V2, V3, V4, V5, V6, V7, V8, V9, V10, V11, V12, V13, V14, V15, V16, V17, V18, V19, V20, V21,
];

/// The two full-text tables (V7; created again by V20).
macro_rules! fts_tables {
    () => {
        "
CREATE VIRTUAL TABLE fts_head USING fts5(
    t, tokenize = 'pillarbox_trigram', detail = 'none', content = '', contentless_delete = 1
);
CREATE VIRTUAL TABLE fts_body USING fts5(
    t, tokenize = 'pillarbox_trigram', detail = 'none', content = '', contentless_delete = 1
);
"
    };
}

/// FTS5 `automerge` of the full-text tables (V10; set again by V20).
macro_rules! fts_automerge {
    () => {
        "
INSERT INTO fts_head(fts_head, rank) VALUES ('automerge', 16);
INSERT INTO fts_body(fts_body, rank) VALUES ('automerge', 16);
"
    };
}

/// FTS5 `deletemerge` of the full-text tables (V12; set again by V20).
macro_rules! fts_deletemerge {
    () => {
        "
INSERT INTO fts_head(fts_head, rank) VALUES ('deletemerge', 50);
INSERT INTO fts_body(fts_body, rank) VALUES ('deletemerge', 50);
"
    };
}

/// The triggers that keep `sort_dates` (V5; created again by V19).
macro_rules! sort_dates_triggers {
    () => {
        "
CREATE TRIGGER sort_dates_insert AFTER INSERT ON messages BEGIN
    INSERT OR REPLACE INTO sort_dates VALUES (NEW.mailbox, NEW.uid, NEW.internal_date, NEW.size,
        NEW.docid IS NOT NULL, (SELECT sent_date FROM search_docs WHERE docid = NEW.docid));
END;
CREATE TRIGGER sort_dates_docid AFTER UPDATE OF docid ON messages BEGIN
    UPDATE sort_dates SET indexed = NEW.docid IS NOT NULL,
        sent_date = (SELECT sent_date FROM search_docs WHERE docid = NEW.docid)
    WHERE mailbox = NEW.mailbox AND uid = NEW.uid;
END;
CREATE TRIGGER sort_dates_delete AFTER DELETE ON messages BEGIN
    DELETE FROM sort_dates WHERE mailbox = OLD.mailbox AND uid = OLD.uid;
END;
"
    };
}

/// The triggers that keep the STATUS counts on insert and delete (V13; again by V19).
macro_rules! counts_triggers {
    () => {
        "
CREATE TRIGGER mailbox_counts_insert AFTER INSERT ON messages BEGIN
    UPDATE mailboxes SET messages = messages + 1, unseen = unseen + (NEW.seen = 0),
        deleted = deleted + NEW.deleted, size = size + NEW.size
    WHERE id = NEW.mailbox;
END;
CREATE TRIGGER mailbox_counts_delete AFTER DELETE ON messages BEGIN
    UPDATE mailboxes SET messages = messages - 1, unseen = unseen - (OLD.seen = 0),
        deleted = deleted - OLD.deleted, size = size - OLD.size
    WHERE id = OLD.mailbox;
END;
"
    };
}

/// The triggers that keep the STATUS counts on flag changes and moves (V16; again by V19).
macro_rules! counts_update_triggers {
    () => {
        "
CREATE TRIGGER mailbox_counts_update AFTER UPDATE OF seen, deleted, size ON messages
WHEN OLD.mailbox = NEW.mailbox
    AND (OLD.seen != NEW.seen OR OLD.deleted != NEW.deleted OR OLD.size != NEW.size)
BEGIN
    UPDATE mailboxes SET unseen = unseen + (NEW.seen = 0) - (OLD.seen = 0),
        deleted = deleted + NEW.deleted - OLD.deleted, size = size + NEW.size - OLD.size
    WHERE id = NEW.mailbox;
END;
CREATE TRIGGER mailbox_counts_move AFTER UPDATE OF mailbox ON messages
WHEN OLD.mailbox != NEW.mailbox
BEGIN
    UPDATE mailboxes SET messages = messages - 1, unseen = unseen - (OLD.seen = 0),
        deleted = deleted - OLD.deleted, size = size - OLD.size
    WHERE id = OLD.mailbox;
    UPDATE mailboxes SET messages = messages + 1, unseen = unseen + (NEW.seen = 0),
        deleted = deleted + NEW.deleted, size = size + NEW.size
    WHERE id = NEW.mailbox;
END;
"
    };
}

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

/// The search index (see `fts.rs` for the design): one document per distinct
/// message content (blob), linked from `messages.docid`.
const V2: &str = "
CREATE TABLE search_docs (
    docid        INTEGER PRIMARY KEY,
    blob         TEXT NOT NULL UNIQUE,
    subject      TEXT,
    from_addr    TEXT,
    to_addr      TEXT,
    cc_addr      TEXT,
    bcc_addr     TEXT,
    sent_date    INTEGER,
    sent_day     INTEGER,
    sort_subject TEXT NOT NULL,
    sort_from    TEXT NOT NULL,
    sort_to      TEXT NOT NULL,
    sort_cc      TEXT NOT NULL,
    display_from TEXT NOT NULL,
    display_to   TEXT NOT NULL,
    message_id   TEXT NOT NULL,
    in_reply_to  TEXT NOT NULL,
    refs         TEXT NOT NULL
);
CREATE VIRTUAL TABLE fts_head USING fts5(
    t, tokenize = 'trigram', detail = 'none', content = '', contentless_delete = 1
);
CREATE VIRTUAL TABLE fts_body USING fts5(
    t, tokenize = 'trigram', detail = 'none', content = '', contentless_delete = 1
);
ALTER TABLE messages ADD COLUMN docid INTEGER;
-- FTS hits -> messages of one mailbox, and: is this document still used?
CREATE INDEX messages_docid ON messages(docid, mailbox, uid);
-- Messages not indexed (yet): always candidates.
CREATE INDEX messages_unindexed ON messages(mailbox, uid) WHERE docid IS NULL;
";

/// SORT/THREAD read the stored values of a whole mailbox: a covering index
/// keeps that scan off the (large) message rows.
const V3: &str = "
CREATE INDEX messages_mailbox_docid ON messages(mailbox, uid, docid);
";

/// RFC 8970 previews, computed at ingest with the rest of the document
/// (NULL for documents indexed before: computed on demand, or by `reindex`).
const V4: &str = "
ALTER TABLE search_docs ADD COLUMN preview TEXT;
";

/// The numeric SORT keys (ARRIVAL, SIZE, DATE) of every message in a narrow
/// table ordered like the messages: a SORT (DATE) on a mailbox whose keys
/// are not cached yet is one short range scan, instead of reading the
/// message rows and their documents. Kept by triggers, so every write path
/// (append, copy, move, expunge, mailbox delete, indexing, reindex) keeps it.
const V5: &str = concat!(
    "
CREATE TABLE sort_dates (
    mailbox       INTEGER NOT NULL,
    uid           INTEGER NOT NULL,
    internal_date INTEGER NOT NULL,
    size          INTEGER NOT NULL,
    indexed       INTEGER NOT NULL,
    sent_date     INTEGER,
    PRIMARY KEY(mailbox, uid)
) WITHOUT ROWID;
INSERT INTO sort_dates
    SELECT m.mailbox, m.uid, m.internal_date, m.size, m.docid IS NOT NULL, d.sent_date
    FROM messages m LEFT JOIN search_docs d ON d.docid = m.docid;
",
    sort_dates_triggers!()
);

/// SELECT reads every message's UID, modseq, flags, dates, size and blob id:
/// a covering index makes that one range scan of narrow entries, instead of
/// a lookup per message into the table rows (which hold the summaries).
const V6: &str = "
CREATE INDEX messages_view
    ON messages(mailbox, uid, modseq, flags, internal_date, date_offset, size, blob);
";

/// The search index moves to the `pillarbox_trigram` tokenizer (each distinct
/// trigram of a document once). The index is contentless, so it cannot be
/// re-tokenized in place: it starts over empty, every message becomes
/// unindexed (still found by SEARCH, by reading it) and the server indexes
/// them again in the background (`index_unindexed`).
const V7: &str = concat!(
    "
UPDATE messages SET docid = NULL WHERE docid IS NOT NULL;
DELETE FROM search_docs;
DROP TABLE fts_head;
DROP TABLE fts_body;
",
    fts_tables!()
);

/// Search documents whose full text is not in the FTS tables yet (see
/// `texts.rs`).
const V8: &str = "
CREATE TABLE fts_pending (
    docid INTEGER PRIMARY KEY,
    blob  TEXT NOT NULL
);
";

/// Deleted search documents whose text is still in the FTS tables (see
/// `texts.rs`).
const V9: &str = "
CREATE TABLE fts_deleted (docid INTEGER PRIMARY KEY);
";

/// FTS5 merges a level of the index once it has `automerge` segments (4 by
/// default). The text writer's batches hold the write lock, and merge work
/// done in them delayed APPENDs queued behind (APPEND p99 26 ms with 4, 15
/// ms with 16, 10 clients; the total merge work also shrinks, as each
/// document is rewritten on fewer levels). A query reads a few more
/// segments per level.
const V10: &str = fts_automerge!();

/// Mailbox ids are never handed out twice. A rowid is max(id) + 1, so
/// deleting the newest mailbox and creating another gave the new one the old
/// id, and everything keyed by id (a session's selected mailbox, the change
/// bus, the snapshot cache) could take one for the other. The last id handed
/// out is kept like the last UIDVALIDITY.
const V11: &str = "
INSERT INTO meta(key, value) SELECT 'last_mailbox_id', coalesce(max(id), 0) FROM mailboxes WHERE true
    ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value);
";

/// A segment of a contentless-delete FTS5 table is merged early once
/// `deletemerge` percent of its rows are deleted (10 by default), and every
/// posting a merge reads is checked against the segment's tombstones. Mail is
/// expunged about as often as it arrives, so at 10% merges driven by deletes
/// were most of the text writer's work: 50 cuts that thread's CPU by 40% in
/// the load mix (0.25 to 0.14 s in 8 s, 10 clients; with only APPEND and
/// EXPUNGE 1.98 to 1.24 s, and command p99 25 to 11 ms), while a segment still
/// never holds more dead rows than live ones.
const V12: &str = fts_deletemerge!();

/// STATUS counts (MESSAGES, UNSEEN, DELETED, SIZE) kept in the mailbox row,
/// by triggers, so every path that adds, removes or reflags a message (and
/// every process) keeps them right. Before, STATUS counted the messages
/// through the `messages_status` index: a scan of the whole mailbox, on
/// every STATUS and every NOTIFY status event, and an index entry rewritten
/// by every flag change. The mailbox row is written by each of those
/// changes anyway (its highest modseq), so a flag change now dirties one
/// page fewer.
const V13: &str = concat!(
    "
ALTER TABLE mailboxes ADD COLUMN messages INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mailboxes ADD COLUMN unseen INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mailboxes ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mailboxes ADD COLUMN size INTEGER NOT NULL DEFAULT 0;
UPDATE mailboxes SET (messages, unseen, deleted, size) = (
    SELECT count(*), coalesce(sum(seen = 0), 0), coalesce(sum(deleted), 0), coalesce(sum(size), 0)
    FROM messages WHERE mailbox = mailboxes.id);
",
    counts_triggers!(),
    "
CREATE TRIGGER mailbox_counts_update AFTER UPDATE OF mailbox, seen, deleted, size ON messages
WHEN OLD.mailbox != NEW.mailbox OR OLD.seen != NEW.seen OR OLD.deleted != NEW.deleted
    OR OLD.size != NEW.size
BEGIN
    UPDATE mailboxes SET messages = messages - 1, unseen = unseen - (OLD.seen = 0),
        deleted = deleted - OLD.deleted, size = size - OLD.size
    WHERE id = OLD.mailbox;
    UPDATE mailboxes SET messages = messages + 1, unseen = unseen + (NEW.seen = 0),
        deleted = deleted + NEW.deleted, size = size + NEW.size
    WHERE id = NEW.mailbox;
END;
DROP INDEX messages_status;
"
);

/// Small message blobs (compressed, see `blob::TieredBlobStore`), written in
/// the transaction that adds the first message referencing them and deleted
/// by the one that removes the last (EXPUNGE, DELETE of a mailbox or an
/// account: `unreferenced_files`).
/// Keyed by the blob id as everywhere else.
const V14: &str = "
CREATE TABLE bodies (
    id   TEXT PRIMARY KEY NOT NULL,
    data BLOB NOT NULL
);
";

/// The modseqs a mailbox may hand out without another durable commit (see
/// `MODSEQ_RESERVE` in `sqlite.rs`): flag changes and expunges commit
/// without waiting for the disk, so a power loss can take back modseqs that
/// clients have seen; the server's next start moves every mailbox past its
/// reservation, which is always durable.
const V15: &str = "
ALTER TABLE mailboxes ADD COLUMN modseq_reserved INTEGER NOT NULL DEFAULT 0;
UPDATE mailboxes SET modseq_reserved = highest_modseq;
";

/// A flag change within one mailbox (every STORE of \Seen or \Deleted)
/// ran V13's update trigger, whose two UPDATEs of the mailbox row take the
/// message out of the counts and put it back. It is now one UPDATE by the
/// difference; only a message that changes mailbox still takes two.
const V16: &str = concat!(
    "
DROP TRIGGER mailbox_counts_update;
",
    counts_update_triggers!()
);

/// IMAP4rev1's \Recent (RFC 3501 2.3.2): the first UID no session has
/// been given as recent yet. Mail already there when this version arrives
/// is not recent.
const V17: &str = "
ALTER TABLE mailboxes ADD COLUMN recent_from INTEGER NOT NULL DEFAULT 1;
UPDATE mailboxes SET recent_from = uidnext;
";

/// A mailbox keeps a bounded number of tombstones (`expunged` rows): it
/// counts them (`tombstones`), and `expunged_floor` is the highest modseq
/// of those it dropped. Changes since a modseq below the floor cannot list
/// the expunges exactly (see `changes_since`).
const V18: &str = "
ALTER TABLE mailboxes ADD COLUMN tombstones INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mailboxes ADD COLUMN expunged_floor INTEGER NOT NULL DEFAULT 0;
UPDATE mailboxes SET tombstones = (SELECT count(*) FROM expunged WHERE mailbox = mailboxes.id);
";

/// The messages table becomes a narrow table clustered by (mailbox, UID)
/// (`WITHOUT ROWID`), and the MIME summaries move to their own table, keyed
/// by rowid (a message holds its summary's id; a copy shares its
/// original's). Before, a message
/// lived in a rowid table of wide rows (the summary), with a second b-tree
/// for its primary key and two covering indexes (`messages_view`,
/// `messages_mailbox_docid`) so that a mailbox could be scanned without
/// reading the summaries: every APPEND, flag change and EXPUNGE wrote all
/// four. The clustered table is itself the narrow, ordered scan those
/// indexes gave, so a flag change or an EXPUNGE touches two to three
/// b-trees fewer, and an APPEND one fewer (its summary is appended at the
/// end of `summaries`). A summary is read by a key lookup (FETCH
/// BODYSTRUCTURE and ENVELOPE), and deleted with the last message that
/// holds it (`unreferenced_files`). Summaries keep the old rows' rowids.
const V19: &str = concat!(
    "
CREATE TABLE summaries (
    id      INTEGER PRIMARY KEY,
    summary BLOB NOT NULL
);
INSERT INTO summaries(id, summary) SELECT rowid, summary FROM messages;
CREATE TABLE messages_v19 (
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
    docid         INTEGER,
    summary       INTEGER NOT NULL,
    PRIMARY KEY(mailbox, uid)
) WITHOUT ROWID;
INSERT INTO messages_v19(mailbox, uid, modseq, flags, seen, deleted, internal_date, date_offset,
                         size, blob, docid, summary)
    SELECT mailbox, uid, modseq, flags, seen, deleted, internal_date, date_offset, size, blob, docid,
           rowid
    FROM messages ORDER BY mailbox, uid;
DROP TABLE messages;
ALTER TABLE messages_v19 RENAME TO messages;
CREATE INDEX messages_modseq ON messages(mailbox, modseq);
CREATE INDEX messages_blob ON messages(blob);
CREATE INDEX messages_docid ON messages(docid, mailbox, uid);
CREATE INDEX messages_unindexed ON messages(mailbox, uid) WHERE docid IS NULL;
",
    sort_dates_triggers!(),
    counts_triggers!(),
    counts_update_triggers!()
);

/// The header text of a search document now holds the MIME header fields
/// of every part and attached message too (SEARCH TEXT, RFC 9051 6.4.4).
/// Documents indexed before lack them, so the index starts over as in V7:
/// every message becomes unindexed (still found, by reading it) and the
/// server indexes them again in the background.
const V20: &str = concat!(
    "
UPDATE messages SET docid = NULL WHERE docid IS NOT NULL;
DELETE FROM search_docs;
DELETE FROM fts_pending;
DELETE FROM fts_deleted;
DROP TABLE IF EXISTS fts_head;
DROP TABLE IF EXISTS fts_body;
",
    fts_tables!(),
    fts_automerge!(),
    fts_deletemerge!()
);

/// The full-text tables of the search index file, as V20 left them in the
/// main database (see `index_file.rs`).
pub(crate) const INDEX_TABLES: &str = concat!(fts_tables!(), fts_automerge!(), fts_deletemerge!());

/// V21: the full-text tables move to their own database file (see
/// `index_file.rs`), written under its own lock. Their postings cannot be
/// copied (the tables are contentless), so the index starts over: without
/// an identity here, `index_file::open` clears the search state and the
/// background indexer indexes every message again. (V20 drops the tables
/// only if they exist, for files taken back below V21 by hand.)
///
/// A later migration that clears the search state here must remove that
/// identity too, or the index file would keep postings of docids that are
/// handed out again.
const V21: &str = "
DROP TABLE IF EXISTS fts_head;
DROP TABLE IF EXISTS fts_body;
DELETE FROM meta WHERE key = 'search_index_id';
";

/// Brings the database to [`CURRENT_VERSION`].
pub(crate) fn migrate(tx: &Connection) -> Result<()> {
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
    for (n, sql) in (1..)
        .zip(MIGRATIONS)
        .skip(usize::try_from(version).unwrap_or(0))
    {
        tx.execute_batch(sql)?;
        tx.execute("INSERT INTO schema_version(version) VALUES (?1)", [n])?;
    }
    Ok(())
}
