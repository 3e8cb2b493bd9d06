//! The search index: SQLite FTS5 with a trigram tokenizer (our own,
//! `pillarbox_trigram`: see `tokenizer.rs`), plus a table of decoded header
//! values and sort/thread keys.
//!
//! Design, and why:
//! - **Keyed by message content (blob), not by (mailbox, uid).** Blobs are
//!   content-addressed, so a message's decoded text depends only on its blob.
//!   `search_docs` has one row per distinct blob (`docid`), and `messages.docid`
//!   links each message to it. COPY and MOVE copy the link and never touch the
//!   index; the same mail delivered to several mailboxes is indexed once. A
//!   document is deleted when the last message using it is expunged (or its
//!   mailbox/account deleted), in the same transaction.
//! - **Substring semantics from trigrams.** IMAP SEARCH is a case-insensitive
//!   substring match, which word tokenizers cannot answer. The indexed text is
//!   the exact case-folded text the brute-force evaluator matches against; a
//!   needle of n ≥ 3 characters occurs in it only if all its trigrams do, so the
//!   AND of (a bounded number of) its trigrams yields a *superset* of the
//!   matches. The server then runs the exact substring check on the candidates,
//!   so results always equal the scan. Shorter needles are not answered here.
//! - **Small on disk.** The FTS tables are contentless (`content=''`: the text
//!   is not stored twice; the blobs are the content) with `detail=none` (only
//!   doc ids per trigram, no positions/columns: we never need phrase or column
//!   queries, the exact check does that), and `contentless_delete=1` so rows can
//!   be deleted without re-supplying their text.
//! - **Never wrong, only slower, when something is not indexed.** A message
//!   without a document (appended by a path that did not index it, or a
//!   database migrated from schema 1) has `docid IS NULL` and is always a
//!   candidate; the server indexes such messages in the background when it
//!   starts, and `pillarbox reindex` rebuilds the whole index.
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::{BlobId, HeaderFields, MailboxId, Result, SearchDoc, TextPart, Uid};

/// At most this many trigrams of a needle go into one MATCH (spread over the
/// needle): more only cost time, the exact check filters anyway.
const MAX_TRIGRAMS: usize = 6;

/// The FTS5 MATCH expression for a case-folded needle: the AND of up to
/// [`MAX_TRIGRAMS`] of its distinct trigrams, each a quoted single token.
/// `None` for needles shorter than three characters.
pub(crate) fn match_expr(needle: &str) -> Option<String> {
    let chars: Vec<char> = needle.chars().collect();
    if chars.len() < 3 {
        return None;
    }
    let mut grams: Vec<String> = chars.windows(3).map(|w| w.iter().collect()).collect();
    {
        let mut seen = std::collections::HashSet::new();
        grams.retain(|g| seen.insert(g.clone()));
    }
    if grams.len() > MAX_TRIGRAMS {
        // First, last and evenly spaced ones in between.
        let n = grams.len();
        let picked: Vec<String> = (0..MAX_TRIGRAMS)
            .map(|i| grams[i * (n - 1) / (MAX_TRIGRAMS - 1)].clone())
            .collect();
        grams = picked;
    }
    let quoted: Vec<String> = grams
        .iter()
        .map(|g| format!("\"{}\"", g.replace('"', "\"\"")))
        .collect();
    Some(quoted.join(" AND "))
}

/// The document row of this blob, creating it if needed: its id, and whether
/// it was created (then its text still has to go to [`insert_text`]).
pub(crate) fn insert_doc_row(
    tx: &Connection,
    blob: &BlobId,
    doc: &SearchDoc,
) -> Result<(i64, bool)> {
    if let Some(id) = tx
        .prepare_cached("SELECT docid FROM search_docs WHERE blob = ?1")?
        .query_row([blob.as_str()], |r| r.get::<_, i64>(0))
        .optional()?
    {
        return Ok((id, false));
    }
    let f = &doc.fields;
    // The docid is past every docid whose text may still be in the FTS
    // tables (`fts_deleted`), so no new document inherits old postings.
    tx.prepare_cached(
        "INSERT INTO search_docs(docid, blob, subject, from_addr, to_addr, cc_addr, bcc_addr,
             sent_date, sent_day, sort_subject, sort_from, sort_to, sort_cc,
             display_from, display_to, message_id, in_reply_to, refs, preview)
         VALUES (max(coalesce((SELECT max(docid) FROM search_docs), 0),
                     coalesce((SELECT max(docid) FROM fts_deleted), 0)) + 1,
                 ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                 ?18)",
    )?
    .execute(params![
        blob.as_str(),
        f.subject,
        f.from,
        f.to,
        f.cc,
        f.bcc,
        f.sent_date,
        f.sent_day,
        f.sort_subject,
        f.sort_from,
        f.sort_to,
        f.sort_cc,
        f.display_from,
        f.display_to,
        f.message_id,
        f.in_reply_to,
        f.references,
        doc.preview,
    ])?;
    Ok((tx.last_insert_rowid(), true))
}

/// Adds a new document's text to the FTS tables. FTS5 keeps the text of a
/// transaction in memory and writes it out as a new segment at commit, but
/// also at every statement savepoint, which any later statement with a
/// trigger or a foreign key opens (inserting a message does). So in a
/// transaction that writes several documents, add all texts last: one
/// segment then holds them all, instead of one segment (and later merges)
/// per document.
pub(crate) fn insert_text(tx: &Connection, docid: i64, headers: &str, body: &str) -> Result<()> {
    tx.prepare_cached("INSERT INTO fts_head(rowid, t) VALUES (?1, ?2)")?
        .execute(params![docid, headers])?;
    tx.prepare_cached("INSERT INTO fts_body(rowid, t) VALUES (?1, ?2)")?
        .execute(params![docid, body])?;
    Ok(())
}

/// Links every unindexed message with this blob to the document.
pub(crate) fn link(tx: &Connection, blob: &BlobId, docid: i64) -> Result<()> {
    tx.prepare_cached("UPDATE messages SET docid = ?2 WHERE blob = ?1 AND docid IS NULL")?
        .execute(params![blob.as_str(), docid])?;
    Ok(())
}

/// Deletes the documents that no message uses any more.
pub(crate) fn gc(tx: &Connection, mut docids: Vec<i64>) -> Result<()> {
    docids.sort_unstable();
    docids.dedup();
    let mut used = tx.prepare_cached("SELECT 1 FROM messages WHERE docid = ?1 LIMIT 1")?;
    for id in docids {
        if used.query_row([id], |_| Ok(())).optional()?.is_some() {
            continue;
        }
        tx.prepare_cached("DELETE FROM search_docs WHERE docid = ?1")?
            .execute([id])?;
        // The text writer removes its text from the FTS tables (with
        // others), also a text still queued: that one may be on its way into
        // them (see `texts`). Until then no new document takes the docid.
        tx.prepare_cached("DELETE FROM fts_pending WHERE docid = ?1")?
            .execute([id])?;
        tx.prepare_cached("INSERT OR IGNORE INTO fts_deleted(docid) VALUES (?1)")?
            .execute([id])?;
    }
    Ok(())
}

/// Removes a deleted document's text from the FTS tables.
pub(crate) fn delete_text(tx: &Connection, docid: i64) -> Result<()> {
    tx.prepare_cached("DELETE FROM fts_head WHERE rowid = ?1")?
        .execute([docid])?;
    tx.prepare_cached("DELETE FROM fts_body WHERE rowid = ?1")?
        .execute([docid])?;
    Ok(())
}

/// The documents used by the messages of a mailbox (before deleting them).
pub(crate) fn docids_of_mailbox(tx: &Connection, mailbox: MailboxId) -> Result<Vec<i64>> {
    let mut stmt = tx.prepare_cached(
        "SELECT DISTINCT docid FROM messages WHERE mailbox = ?1 AND docid IS NOT NULL",
    )?;
    let rows = stmt.query_map([mailbox], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(crate) fn candidates(
    tx: &Connection,
    mailbox: MailboxId,
    part: TextPart,
    needle: &str,
) -> Result<Option<Vec<Uid>>> {
    let Some(expr) = match_expr(needle) else {
        return Ok(None);
    };
    let table = match part {
        TextPart::Headers => "fts_head",
        TextPart::Body => "fts_body",
    };
    let mut out: Vec<Uid> = Vec::new();
    // `tx` is a read transaction of a reader with the index file attached
    // as `ix`. The main database is read first, so its snapshot is the
    // older one: a text is in the index file before its pending mark goes
    // (see `texts`), so a message that is not pending in this snapshot has
    // its text in the index file's (later) snapshot.
    {
        // Unindexed messages, and those whose document's text is still
        // queued (see `texts`).
        let mut stmt = tx.prepare_cached(
            "SELECT uid FROM messages INDEXED BY messages_unindexed
             WHERE mailbox = ?1 AND docid IS NULL
             UNION ALL
             SELECT m.uid FROM fts_pending p JOIN messages m INDEXED BY messages_docid
                 ON m.docid = p.docid AND m.mailbox = ?1",
        )?;
        let mut rows = stmt.query([mailbox])?;
        while let Some(r) = rows.next()? {
            out.push(super::col_u32(r, 0)?);
        }
    }
    {
        let mut stmt = tx.prepare_cached(&format!(
            "SELECT m.uid FROM ix.{table} f JOIN messages m INDEXED BY messages_docid
                 ON m.docid = f.rowid AND m.mailbox = ?2
             WHERE f.{table} MATCH ?1"
        ))?;
        let mut rows = stmt.query(params![expr, mailbox])?;
        while let Some(r) = rows.next()? {
            out.push(super::col_u32(r, 0)?);
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(Some(out))
}

const FIELD_COLS: &str = "d.subject, d.from_addr, d.to_addr, d.cc_addr, d.bcc_addr, d.sent_date,
    d.sent_day, d.sort_subject, d.sort_from, d.sort_to, d.sort_cc, d.display_from, d.display_to,
    d.message_id, d.in_reply_to, d.refs";

/// Maps `FIELD_COLS` starting at column `o`; `None` when the join found no document.
fn fields_row(r: &Row<'_>, o: usize) -> rusqlite::Result<Option<HeaderFields>> {
    let sort_subject: Option<String> = r.get(o + 7)?;
    let Some(sort_subject) = sort_subject else {
        return Ok(None);
    };
    Ok(Some(HeaderFields {
        subject: r.get(o)?,
        from: r.get(o + 1)?,
        to: r.get(o + 2)?,
        cc: r.get(o + 3)?,
        bcc: r.get(o + 4)?,
        sent_date: r.get(o + 5)?,
        sent_day: r.get(o + 6)?,
        sort_subject,
        sort_from: r.get(o + 8)?,
        sort_to: r.get(o + 9)?,
        sort_cc: r.get(o + 10)?,
        display_from: r.get(o + 11)?,
        display_to: r.get(o + 12)?,
        message_id: r.get(o + 13)?,
        in_reply_to: r.get(o + 14)?,
        references: r.get(o + 15)?,
    }))
}

pub(crate) fn header_fields(
    tx: &Connection,
    mailbox: MailboxId,
    uids: Option<&[Uid]>,
) -> Result<Vec<(Uid, Option<HeaderFields>)>> {
    let map = |r: &Row<'_>| Ok((super::col_u32(r, 0)?, fields_row(r, 1)?));
    match uids {
        None => {
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT m.uid, {FIELD_COLS} FROM messages m
                 LEFT JOIN search_docs d ON d.docid = m.docid
                 WHERE m.mailbox = ?1 ORDER BY m.uid"
            ))?;
            let rows = stmt.query_map([mailbox], map)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        }
        Some(uids) => {
            let mut wanted = uids.to_vec();
            wanted.sort_unstable();
            wanted.dedup();
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT m.uid, {FIELD_COLS} FROM messages m
                 LEFT JOIN search_docs d ON d.docid = m.docid
                 WHERE m.mailbox = ?1 AND m.uid = ?2"
            ))?;
            let mut out = Vec::with_capacity(wanted.len());
            for uid in wanted {
                if let Some(v) = stmt
                    .query_row(params![mailbox, i64::from(uid)], map)
                    .optional()?
                {
                    out.push(v);
                }
            }
            Ok(out)
        }
    }
}

/// SORT/THREAD rows of the messages of a mailbox with UID > `after`: one
/// range scan of the (narrow, clustered) message rows, the documents joined
/// by rowid; a message not indexed comes with its blob id (an indexed one
/// gets an empty one: its fields are stored).
/// The header *search* values SORT/THREAD do not use (From/To/Cc/Bcc, the
/// sent day) are left `None`.
pub(crate) fn sort_rows(
    tx: &Connection,
    mailbox: MailboxId,
    after: Uid,
) -> Result<Vec<crate::SortRow>> {
    let mut stmt = tx.prepare_cached(
        "SELECT m.uid, m.internal_date, m.size, CASE WHEN d.docid IS NULL THEN m.blob ELSE '' END,
             d.subject, NULL, NULL, NULL, NULL, d.sent_date, NULL, d.sort_subject, d.sort_from,
             d.sort_to, d.sort_cc, d.display_from, d.display_to, d.message_id, d.in_reply_to,
             d.refs
         FROM messages m
         LEFT JOIN search_docs d ON d.docid = m.docid
         WHERE m.mailbox = ?1 AND m.uid > ?2 ORDER BY m.uid",
    )?;
    let rows = stmt.query_map(params![mailbox, i64::from(after)], |r| {
        Ok(crate::SortRow {
            uid: super::col_u32(r, 0)?,
            internal_date: r.get(1)?,
            size: super::col_u64(r, 2)?,
            blob: BlobId::new(super::col_str(r, 3)?),
            fields: fields_row(r, 4)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The numeric SORT keys of a mailbox's messages: one range scan of the
/// narrow `sort_dates` table.
pub(crate) fn sort_dates(tx: &Connection, mailbox: MailboxId) -> Result<Vec<crate::SortDate>> {
    let mut stmt = tx.prepare_cached(
        "SELECT uid, internal_date, size, indexed, sent_date FROM sort_dates
         WHERE mailbox = ?1 ORDER BY uid",
    )?;
    let rows = stmt.query_map(params![mailbox], |r| {
        Ok(crate::SortDate {
            uid: super::col_u32(r, 0)?,
            internal_date: r.get(1)?,
            size: super::col_u64(r, 2)?,
            indexed: r.get(3)?,
            sent_date: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Stored previews of the given messages (ascending, existing ones only).
pub(crate) fn previews(
    tx: &Connection,
    mailbox: MailboxId,
    uids: &[Uid],
) -> Result<Vec<(Uid, Option<String>)>> {
    let mut wanted = uids.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    let mut stmt = tx.prepare_cached(
        "SELECT d.preview FROM messages m LEFT JOIN search_docs d ON d.docid = m.docid
         WHERE m.mailbox = ?1 AND m.uid = ?2",
    )?;
    let mut out = Vec::with_capacity(wanted.len());
    for uid in wanted {
        if let Some(p) = stmt
            .query_row(params![mailbox, i64::from(uid)], |r| {
                r.get::<_, Option<String>>(0)
            })
            .optional()?
        {
            out.push((uid, p));
        }
    }
    Ok(out)
}

/// Empties the search index (`pillarbox reindex`): every message becomes
/// unindexed, and every document's text leaves the FTS tables through the
/// text writer, like a deleted document's (so no docid is used again while
/// its postings may still be there).
pub(crate) fn clear(tx: &Connection) -> Result<()> {
    unlink_all(tx, true)
}

/// Makes every message unindexed and drops every document. `deleted`: the
/// documents' texts may be in the FTS tables, so they are recorded in
/// `fts_deleted` for the text writer; otherwise (the FTS tables were just
/// created empty) nothing is.
pub(crate) fn unlink_all(tx: &Connection, deleted: bool) -> Result<()> {
    if deleted {
        tx.execute_batch(
            "INSERT OR IGNORE INTO fts_deleted(docid) SELECT docid FROM search_docs;
             INSERT OR IGNORE INTO fts_deleted(docid) SELECT docid FROM fts_pending;",
        )?;
    } else {
        tx.execute("DELETE FROM fts_deleted", [])?;
    }
    tx.execute_batch(
        "UPDATE messages SET docid = NULL WHERE docid IS NOT NULL;
         DELETE FROM search_docs;
         DELETE FROM fts_pending;",
    )?;
    Ok(())
}

pub(crate) fn unindexed_blobs(tx: &Connection, limit: usize) -> Result<Vec<BlobId>> {
    let mut stmt = tx.prepare_cached(
        "SELECT DISTINCT blob FROM messages INDEXED BY messages_unindexed
         WHERE docid IS NULL LIMIT ?1",
    )?;
    let rows = stmt.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
        Ok(BlobId::new(super::col_str(r, 0)?))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(crate) fn size(tx: &Connection) -> Result<crate::SearchIndexSize> {
    let pages = |schema: &str, pattern: &str| -> Result<u64> {
        let v: i64 = tx.query_row(
            "SELECT coalesce(sum(pgsize), 0) FROM dbstat(?1) WHERE name LIKE ?2",
            [schema, pattern],
            |r| r.get(0),
        )?;
        Ok(u64::try_from(v).unwrap_or(0))
    };
    // (`_` is a LIKE wildcard; no other table name starts like these.)
    let fulltext = pages("ix", "fts_head%")? + pages("ix", "fts_body%")?;
    let fields = pages("main", "search_docs%")? + pages("main", "sqlite_autoindex_search_docs%")?;
    let docs: i64 = tx.query_row("SELECT count(*) FROM search_docs", [], |r| r.get(0))?;
    Ok(crate::SearchIndexSize {
        fulltext,
        fields,
        docs: u64::try_from(docs).unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::match_expr;
    use crate::sqlite::SqliteStore;
    use crate::{
        AccountId, BlobId, HeaderFields, MailboxId, MetaStore, NewMessage, SearchDoc, TextPart,
    };

    fn msg(body: &str) -> (NewMessage, SearchDoc) {
        let raw = format!("Subject: {body}\r\n\r\n{body}\r\n");
        let m = NewMessage {
            blob: BlobId::of(raw.as_bytes()),
            size: raw.len() as u64,
            internal_date: 1_700_000_000,
            date_offset_minutes: 0,
            flags: Vec::new(),
            summary: Vec::new(),
            inline: None,
        };
        let d = SearchDoc {
            headers: format!("subject: {body}\n"),
            body: format!("{body}\n"),
            fields: HeaderFields {
                subject: Some(body.to_string()),
                sort_subject: body.to_uppercase(),
                ..Default::default()
            },
            preview: body.to_string(),
        };
        (m, d)
    }

    /// A fresh store with one account: its directory (kept alive by the
    /// caller), the store, the account and its INBOX.
    fn store() -> (tempfile::TempDir, SqliteStore, AccountId, MailboxId) {
        let dir = tempfile::tempdir().expect("tempdir");
        let st = SqliteStore::open(&dir.path().join("m.sqlite")).expect("open");
        let acc = st.create_account("u", "x").expect("account").id;
        let inbox = st.mailbox(acc, "INBOX").expect("q").expect("inbox").id;
        (dir, st, acc, inbox)
    }

    /// Rows in a table.
    fn rows(st: &SqliteStore, table: &str) -> i64 {
        st.read(|tx| Ok(tx.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?))
            .expect("count")
    }

    fn docs(st: &SqliteStore) -> i64 {
        rows(st, "search_docs")
    }

    /// The first column of every row `sql` returns.
    fn column<T: rusqlite::types::FromSql>(st: &SqliteStore, sql: &str) -> Vec<T> {
        st.read(|tx| {
            let mut q = tx.prepare(sql)?;
            let rows = q.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .expect("query")
    }

    /// Body-search candidates of a mailbox.
    fn body_candidates(st: &SqliteStore, mailbox: MailboxId, needle: &str) -> Option<Vec<u32>> {
        st.text_candidates(mailbox, TextPart::Body, needle)
            .expect("candidates")
    }

    /// A document for a blob that no unindexed message uses any more
    /// (expunged before it was indexed) is not written: nothing would ever
    /// delete it.
    #[test]
    fn index_docs_skips_blobs_without_waiting_messages() {
        let (_dir, st, _, inbox) = store();
        let (m1, d1) = msg("gone before indexing");
        let (m2, d2) = msg("still here");
        st.append(inbox, &[m1.clone(), m2.clone()]).expect("append");
        st.expunge(inbox, &[1]).expect("expunge");
        st.index_docs(&[(m1.blob, d1), (m2.blob, d2.clone())])
            .expect("index");
        assert_eq!(docs(&st), 1);
        // Indexing again (already linked) adds nothing either.
        st.index_docs(&[(m2.blob, d2)]).expect("index");
        assert_eq!(docs(&st), 1);
        assert_eq!(body_candidates(&st, inbox, "still"), Some(vec![2]));
    }

    /// Schema 7 moved the index to the `pillarbox_trigram` tokenizer. A
    /// schema 6 database (built-in `trigram`) opens with its index emptied and
    /// every message unindexed (found by reading it until the server indexes
    /// it again), and new documents go to the new tables.
    #[test]
    fn migration_to_v7_rebuilds_the_index_tables() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.sqlite");
        let inbox;
        let (m1, d1) = msg("written by schema six");
        {
            let st = SqliteStore::open(&path).expect("open");
            let acc = st.create_account("u", "x").expect("account");
            inbox = st.mailbox(acc.id, "INBOX").expect("q").expect("inbox").id;
            st.append_indexed(inbox, std::slice::from_ref(&m1), &[d1])
                .expect("append");
            // Back to what schema 6 had.
            st.writer
                .lock()
                .expect("writer")
                .execute_batch(
                    "DELETE FROM schema_version WHERE version >= 7;
                     DROP TABLE fts_pending; DROP TABLE fts_deleted;
                     CREATE VIRTUAL TABLE fts_head USING fts5(t, tokenize = 'trigram',
                         detail = 'none', content = '', contentless_delete = 1);
                     CREATE VIRTUAL TABLE fts_body USING fts5(t, tokenize = 'trigram',
                         detail = 'none', content = '', contentless_delete = 1);
                     INSERT INTO fts_body(rowid, t) SELECT docid, 'written by schema six'
                         FROM search_docs;",
                )
                .expect("downgrade");
            crate::sqlite::tests::undo_from_v13(&st.writer.lock().expect("writer"));
        }
        let st = SqliteStore::open(&path).expect("reopen");
        // (V21 then moved them to the index file.)
        let in_main: Vec<String> = column(
            &st,
            "SELECT sql FROM main.sqlite_master WHERE name IN ('fts_head', 'fts_body')",
        );
        assert!(in_main.is_empty(), "{in_main:?}");
        let sql: Vec<String> = column(
            &st,
            "SELECT sql FROM ix.sqlite_master WHERE name IN ('fts_head', 'fts_body')",
        );
        assert_eq!(sql.len(), 2);
        assert!(
            sql.iter().all(|s| s.contains("pillarbox_trigram")),
            "{sql:?}"
        );
        let automerge: Vec<i64> = column(
            &st,
            "SELECT v FROM fts_head_config WHERE k = 'automerge'
             UNION ALL SELECT v FROM fts_body_config WHERE k = 'automerge'",
        );
        assert_eq!(automerge, [16, 16]);
        let deletemerge: Vec<i64> = column(
            &st,
            "SELECT v FROM fts_head_config WHERE k = 'deletemerge'
             UNION ALL SELECT v FROM fts_body_config WHERE k = 'deletemerge'",
        );
        assert_eq!(deletemerge, [50, 50]);
        assert_eq!(docs(&st), 0);
        assert_eq!(st.unindexed_blobs(10).expect("q"), vec![m1.blob]);
        // Unindexed: a candidate for any needle.
        assert_eq!(body_candidates(&st, inbox, "nowhere"), Some(vec![1]));
        let (_, d1) = msg("written by schema six");
        st.index_docs(&[(m1.blob, d1)]).expect("index");
        st.flush_search_texts();
        assert_eq!(body_candidates(&st, inbox, "schema six"), Some(vec![1]));
        assert_eq!(body_candidates(&st, inbox, "nowhere"), Some(vec![]));
    }

    /// V20 (MIME part headers in the header text) starts the index over:
    /// documents, pending texts and deletions go, every message is
    /// unindexed until indexed again, and the merge settings are kept.
    #[test]
    fn migration_to_v20_starts_the_index_over() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.sqlite");
        let (m1, d1) = msg("indexed by schema nineteen");
        let (m2, d2) = msg("still pending then");
        let inbox;
        {
            let st = SqliteStore::open(&path).expect("open");
            let acc = st.create_account("u", "x").expect("account");
            inbox = st.mailbox(acc.id, "INBOX").expect("q").expect("inbox").id;
            st.append_indexed(inbox, &[m1.clone(), m2.clone()], &[d1, d2])
                .expect("append");
            st.texts.flush();
            st.writer
                .lock()
                .expect("writer")
                .execute_batch(
                    "DELETE FROM schema_version WHERE version >= 20;
                     INSERT INTO fts_pending(docid, blob) SELECT docid, blob FROM search_docs
                         WHERE docid = (SELECT max(docid) FROM search_docs);",
                )
                .expect("downgrade");
            assert_eq!(docs(&st), 2);
        }
        let st = SqliteStore::open(&path).expect("reopen");
        assert_eq!(docs(&st), 0);
        let pending: Vec<i64> = column(&st, "SELECT count(*) FROM fts_pending");
        assert_eq!(pending, [0]);
        let mut unindexed = st.unindexed_blobs(10).expect("q");
        unindexed.sort();
        let mut want = vec![m1.blob, m2.blob];
        want.sort();
        assert_eq!(unindexed, want);
        assert_eq!(body_candidates(&st, inbox, "nowhere"), Some(vec![1, 2]));
        let merge: Vec<i64> = column(
            &st,
            "SELECT v FROM fts_head_config WHERE k IN ('automerge', 'deletemerge')
             UNION ALL SELECT v FROM fts_body_config WHERE k IN ('automerge', 'deletemerge')",
        );
        assert_eq!(merge.iter().sum::<i64>(), 2 * (16 + 50));
        let (_, d1) = msg("indexed by schema nineteen");
        st.index_docs(&[(m1.blob, d1)]).expect("index");
        st.flush_search_texts();
        assert_eq!(body_candidates(&st, inbox, "nineteen"), Some(vec![1, 2]));
        assert_eq!(body_candidates(&st, inbox, "pending"), Some(vec![2]));
    }

    #[test]
    fn sort_dates_follow_messages() {
        let (_dir, st, acc, inbox) = store();
        let trash = st.mailbox(acc, "Trash").expect("q").expect("trash").id;
        let (m1, mut d1) = msg("one");
        d1.fields.sent_date = Some(5);
        let (m2, d2) = msg("two");
        let (m3, mut d3) = msg("three");
        d3.fields.sent_date = Some(7);
        st.append_indexed(inbox, &[m1.clone(), m2.clone(), m3.clone()], &[d1, d2])
            .expect("append");
        let keys = |mb| -> Vec<(u32, bool, Option<i64>)> {
            st.sort_dates(mb)
                .expect("dates")
                .expect("kept")
                .into_iter()
                .map(|d| {
                    assert_eq!(d.internal_date, 1_700_000_000);
                    (d.uid, d.indexed, d.sent_date)
                })
                .collect()
        };
        assert_eq!(
            keys(inbox),
            vec![(1, true, Some(5)), (2, true, None), (3, false, None)]
        );
        assert_eq!(
            st.sort_dates(inbox).expect("d").expect("k")[1].size,
            m2.size
        );
        st.index_docs(&[(m3.blob, d3)]).expect("index");
        assert_eq!(keys(inbox)[2], (3, true, Some(7)));
        st.copy(inbox, trash, &[1, 3], false).expect("copy");
        st.expunge(inbox, &[1]).expect("expunge");
        assert_eq!(keys(inbox), vec![(2, true, None), (3, true, Some(7))]);
        assert_eq!(keys(trash), vec![(1, true, Some(5)), (2, true, Some(7))]);
        // The SORT/THREAD rows agree with them; only unindexed ones carry a blob.
        let (_, rows) = st.sort_rows(trash, 0).expect("rows");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].fields.as_ref().and_then(|f| f.sent_date), Some(7));
        st.clear_search_index().expect("clear");
        assert_eq!(keys(trash), vec![(1, false, None), (2, false, None)]);
        let (_, rows) = st.sort_rows(trash, 0).expect("rows");
        assert_eq!(rows[0].blob, m1.blob);
        assert!(rows[0].fields.is_none());
    }

    #[test]
    fn index_follows_messages() {
        let (_dir, st, acc, inbox) = store();
        let trash = st.mailbox(acc, "Trash").expect("q").expect("trash").id;
        let (m1, d1) = msg("alpha quick brown");
        let (m2, d2) = msg("beta lazy dog");
        let (m3, _) = msg("gamma not indexed");
        st.append_indexed(inbox, &[m1.clone(), m2, m3.clone()], &[d1.clone(), d2])
            .expect("append");
        let cand = |mb, part, n: &str| st.text_candidates(mb, part, n).expect("cand");
        // Until their texts are written, new documents are candidates for
        // any needle; uid 3 is unindexed: always a candidate.
        assert_eq!(cand(inbox, TextPart::Body, "nowhere"), Some(vec![1, 2, 3]));
        st.flush_search_texts();
        assert_eq!(cand(inbox, TextPart::Body, "nowhere"), Some(vec![3]));
        assert_eq!(cand(inbox, TextPart::Body, "quick"), Some(vec![1, 3]));
        assert_eq!(
            cand(inbox, TextPart::Body, "LAZY".to_lowercase().as_str()),
            Some(vec![2, 3])
        );
        assert_eq!(cand(inbox, TextPart::Headers, "zzz"), Some(vec![3]));
        assert_eq!(cand(inbox, TextPart::Body, "qu"), None);
        // Same content appended again shares the document.
        st.append(inbox, std::slice::from_ref(&m1))
            .expect("append again");
        assert_eq!(docs(&st), 2);
        assert_eq!(cand(inbox, TextPart::Body, "quick"), Some(vec![1, 3, 4]));
        // Copy shares it too; expunging the originals keeps it while the copy exists.
        st.copy(inbox, trash, &[1, 4], false).expect("copy");
        st.expunge(inbox, &[1, 4]).expect("expunge");
        assert_eq!(docs(&st), 2);
        assert_eq!(cand(trash, TextPart::Body, "quick"), Some(vec![1, 2]));
        assert_eq!(cand(inbox, TextPart::Body, "quick"), Some(vec![3]));
        st.expunge(trash, &[1, 2]).expect("expunge copy");
        assert_eq!(docs(&st), 1);
        // Indexing later links the unindexed message.
        assert_eq!(st.unindexed_blobs(10).expect("unindexed"), vec![m3.blob]);
        let (_, d3) = msg("gamma not indexed");
        st.index_docs(&[(m3.blob, d3)]).expect("index");
        assert!(st.unindexed_blobs(10).expect("unindexed").is_empty());
        // Queued like an APPEND's text: a candidate until written.
        assert_eq!(cand(inbox, TextPart::Body, "quick"), Some(vec![3]));
        st.flush_search_texts();
        assert_eq!(cand(inbox, TextPart::Body, "quick"), Some(vec![]));
        assert_eq!(cand(inbox, TextPart::Body, "gamma"), Some(vec![3]));
        let f = st.header_fields(inbox, None).expect("fields");
        assert_eq!(f.len(), 2);
        assert_eq!(
            f[0].1.as_ref().map(|h| h.sort_subject.as_str()),
            Some("BETA LAZY DOG")
        );
        // Clearing unlinks everything; deleting a mailbox drops its documents.
        st.clear_search_index().expect("clear");
        assert_eq!(docs(&st), 0);
        assert_eq!(st.unindexed_blobs(10).expect("unindexed").len(), 2);
        let size = st.search_index_size().expect("size");
        assert_eq!(size.docs, 0);
        st.create_mailbox(acc, "X", None).expect("create");
        let x = st.mailbox(acc, "X").expect("q").expect("x").id;
        st.append_indexed(x, &[m1], &[d1]).expect("append x");
        assert_eq!(docs(&st), 1);
        // Deleted while its text may still be queued: the text is dropped.
        st.delete_mailbox(acc, "X").expect("delete");
        assert_eq!(docs(&st), 0);
        st.flush_search_texts();
        assert_eq!(pending(&st), 0);
        assert_eq!(body_hits(&st, "alpha"), 0);
    }

    fn pending(st: &SqliteStore) -> i64 {
        rows(st, "fts_pending")
    }

    /// Documents in the body index holding all trigrams of `needle`.
    fn body_hits(st: &SqliteStore, needle: &str) -> i64 {
        let expr = match_expr(needle).expect("long enough");
        st.read(|tx| {
            Ok(tx.query_row(
                "SELECT count(*) FROM fts_body WHERE fts_body MATCH ?1",
                [expr],
                |r| r.get(0),
            )?)
        })
        .expect("count")
    }

    /// A document expunged before its queued text is written: its docid
    /// is not handed out again until the text writer has removed it from
    /// the index (its text may be on its way in), so the next document gets
    /// a new one, and only the new text stays in the index.
    #[test]
    fn queued_text_of_a_deleted_document_leaves_the_index_and_its_docid_waits() {
        let (_dir, st, _, inbox) = store();
        let (ma, da) = msg("first xylophone");
        let (mb, db) = msg("second marimba");
        let docid_of = |uid: u32| -> i64 {
            st.read(|tx| {
                Ok(tx.query_row(
                    "SELECT docid FROM messages WHERE mailbox = ?1 AND uid = ?2",
                    rusqlite::params![inbox, uid],
                    |r| r.get(0),
                )?)
            })
            .expect("docid")
        };
        // Nothing is written from the queue until `resume`.
        st.texts.pause(true);
        st.append_indexed(inbox, &[ma], &[da]).expect("append a");
        let first = docid_of(1);
        st.expunge(inbox, &[1]).expect("expunge a");
        assert_eq!(pending(&st), 0);
        assert_eq!(rows(&st, "fts_deleted"), 1);
        st.append_indexed(inbox, &[mb], &[db]).expect("append b");
        let second = docid_of(2);
        assert_ne!(
            first, second,
            "a docid was handed out while its text may be queued"
        );
        assert_eq!(pending(&st), 1);
        st.texts.pause(false);
        st.flush_search_texts();
        assert_eq!(pending(&st), 0);
        assert_eq!(rows(&st, "fts_deleted"), 0);
        assert_eq!(body_hits(&st, "marimba"), 1);
        assert_eq!(body_candidates(&st, inbox, "marimba"), Some(vec![2]));
        assert_eq!(body_hits(&st, "xylophone"), 0);
    }

    /// A document deleted while its text is in the index: its postings stay
    /// until the text writer removes them, match no message meanwhile, and
    /// no new document takes its docid (it would inherit them, then lose
    /// its own postings to the deletion).
    #[test]
    fn deleted_documents_leave_the_index_in_batches_without_docid_reuse() {
        let (_dir, st, _, inbox) = store();
        let (ma, da) = msg("old xylophone");
        let (mb, db) = msg("new marimba");
        st.append_indexed(inbox, &[ma], &[da]).expect("append a");
        st.flush_search_texts();
        assert_eq!(body_hits(&st, "xylophone"), 1);
        st.texts.pause(true);
        st.expunge(inbox, &[1]).expect("expunge a");
        // Still in the FTS tables, but no message has it.
        assert_eq!(body_hits(&st, "xylophone"), 1);
        assert_eq!(body_candidates(&st, inbox, "xylophone"), Some(vec![]));
        st.append_indexed(inbox, &[mb], &[db]).expect("append b");
        let docids: Vec<i64> = column(
            &st,
            "SELECT docid FROM search_docs UNION ALL SELECT docid FROM fts_deleted",
        );
        assert_eq!(docids.len(), 2);
        assert_ne!(docids[0], docids[1], "a deleted docid was reused");
        st.texts.pause(false);
        st.flush_search_texts();
        assert_eq!(body_hits(&st, "xylophone"), 0);
        assert_eq!(body_hits(&st, "marimba"), 1);
        assert_eq!(body_candidates(&st, inbox, "marimba"), Some(vec![2]));
        assert_eq!(rows(&st, "fts_deleted"), 0);
    }

    /// Texts queued by a process that stopped before writing them (or
    /// before removing their marks): at the next start their documents
    /// become unindexed messages again, and leave the index.
    #[test]
    fn requeue_makes_pending_documents_unindexed() {
        let (_dir, st, _, inbox) = store();
        let (m1, d1) = msg("left behind");
        let (m2, d2) = msg("written fine");
        st.append_indexed(inbox, &[m1.clone(), m2], &[d1, d2])
            .expect("append");
        st.flush_search_texts();
        assert_eq!(st.requeue_pending_texts().expect("requeue"), 0);
        // As if the first text had never been written.
        st.writer
            .lock()
            .expect("writer")
            .execute(
                "INSERT INTO fts_pending(docid, blob)
                 SELECT docid, blob FROM search_docs WHERE blob = ?1",
                [m1.blob.as_str()],
            )
            .expect("mark");
        assert_eq!(body_hits(&st, "behind"), 1);
        assert_eq!(st.requeue_pending_texts().expect("requeue"), 1);
        assert_eq!(pending(&st), 0);
        assert_eq!(docs(&st), 1);
        assert_eq!(rows(&st, "fts_deleted"), 1);
        assert_eq!(st.unindexed_blobs(10).expect("q"), vec![m1.blob]);
        assert_eq!(body_candidates(&st, inbox, "nowhere"), Some(vec![1]));
        st.texts.note_deletes();
        st.flush_search_texts();
        assert_eq!(rows(&st, "fts_deleted"), 0);
        assert_eq!(body_hits(&st, "behind"), 0);
        assert_eq!(body_hits(&st, "written"), 1);
    }

    /// The index file keeps its documents from one open to the next; when
    /// it is missing, or is another database's, the index starts over:
    /// every message is unindexed (so a candidate of every search) until
    /// indexed again.
    #[test]
    fn the_index_file_starts_over_when_it_is_not_this_databases() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.sqlite");
        let index = super::super::index_file::path_for(&path);
        assert_eq!(index, dir.path().join("m-search.sqlite"));
        let (m1, d1) = msg("alpha xylophone");
        let inbox;
        {
            let st = SqliteStore::open(&path).expect("open");
            let acc = st.create_account("u", "x").expect("account");
            inbox = st.mailbox(acc.id, "INBOX").expect("q").expect("inbox").id;
            st.append_indexed(inbox, std::slice::from_ref(&m1), std::slice::from_ref(&d1))
                .expect("append");
        }
        assert!(index.exists());
        let reindex = |st: &SqliteStore| {
            assert_eq!(docs(st), 0);
            assert_eq!(st.unindexed_blobs(10).expect("q"), vec![m1.blob]);
            assert_eq!(body_candidates(st, inbox, "nowhere"), Some(vec![1]));
            st.index_docs(&[(m1.blob, d1.clone())]).expect("index");
            st.flush_search_texts();
            assert_eq!(body_candidates(st, inbox, "nowhere"), Some(vec![]));
            assert_eq!(body_candidates(st, inbox, "xylophone"), Some(vec![1]));
        };
        {
            // Kept: the text written when the store closed is found.
            let st = SqliteStore::open(&path).expect("reopen");
            assert_eq!(docs(&st), 1);
            assert_eq!(pending(&st), 0);
            assert_eq!(body_candidates(&st, inbox, "nowhere"), Some(vec![]));
            assert_eq!(body_candidates(&st, inbox, "xylophone"), Some(vec![1]));
        }
        let remove = |suffixes: &[&str]| {
            for suffix in suffixes {
                let mut p = index.clone().into_os_string();
                p.push(suffix);
                let _ = std::fs::remove_file(p);
            }
        };
        remove(&["", "-wal", "-shm"]);
        reindex(&SqliteStore::open(&path).expect("reopen without index"));
        // Another database's index file, with a document under the same docid.
        let other = dir.path().join("o.sqlite");
        {
            let st = SqliteStore::open(&other).expect("open other");
            let acc = st.create_account("u", "x").expect("account");
            let ib = st.mailbox(acc.id, "INBOX").expect("q").expect("inbox").id;
            let (m, d) = msg("beta marimba");
            st.append_indexed(ib, &[m], &[d]).expect("append");
        }
        std::fs::copy(super::super::index_file::path_for(&other), &index).expect("copy");
        remove(&["-wal", "-shm"]);
        reindex(&SqliteStore::open(&path).expect("reopen with another index"));
    }

    /// The index file's writer runs at the lowest CPU priority (Linux: the
    /// nice value of the `fts-index` thread).
    #[cfg(target_os = "linux")]
    #[test]
    fn the_index_writer_thread_runs_at_the_lowest_priority() {
        let (_dir, _st, _, _) = store();
        let mut seen = 0;
        for task in std::fs::read_dir("/proc/self/task").expect("tasks") {
            let task = task.expect("task").path();
            let comm = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
            if comm.trim() != "fts-index" {
                continue;
            }
            let stat = std::fs::read_to_string(task.join("stat")).expect("stat");
            // Fields after the parenthesised name: state is field 3, nice 19.
            let rest = &stat[stat.rfind(')').expect("name") + 2..];
            let nice: i32 = rest
                .split(' ')
                .nth(16)
                .expect("nice")
                .parse()
                .expect("number");
            assert_eq!(nice, 19, "{stat}");
            seen += 1;
        }
        assert!(seen >= 1, "no fts-index thread");
    }

    /// Searches racing the text writer never miss a message: one thread
    /// appends messages with a token of their own, another expunges the
    /// even ones, and a third searches the odd ones' tokens meanwhile
    /// (pending, being written, or written: each must stay a candidate).
    /// At the end the expunged texts have left the index.
    #[test]
    fn searches_racing_the_text_writer_find_every_message() {
        use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
        const N: u32 = 300;
        let (_dir, st, _, inbox) = store();
        let token = |i: u32| format!("w{i:05}q");
        let appended = AtomicU32::new(0);
        let done = AtomicBool::new(false);
        let misses = std::thread::scope(|scope| {
            scope.spawn(|| {
                for i in 1..=N {
                    let (m, d) = msg(&format!("{} common", token(i)));
                    st.append_indexed(inbox, &[m], &[d]).expect("append");
                    appended.store(i, Ordering::SeqCst);
                }
                done.store(true, Ordering::SeqCst);
            });
            scope.spawn(|| {
                let mut next = 2;
                while next <= N {
                    if appended.load(Ordering::SeqCst) >= next {
                        st.expunge(inbox, &[next]).expect("expunge");
                        next += 2;
                    } else if done.load(Ordering::SeqCst) {
                        break;
                    } else {
                        std::thread::yield_now();
                    }
                }
            });
            let searcher = scope.spawn(|| {
                let mut misses = Vec::new();
                let mut k = 1u32;
                while !done.load(Ordering::SeqCst) {
                    let top = appended.load(Ordering::SeqCst);
                    if top == 0 {
                        std::thread::yield_now();
                        continue;
                    }
                    // Odd UIDs (never expunged), cycling over those appended.
                    k = (k * 7 + 3) % top + 1;
                    let i = k | 1;
                    if i > top {
                        continue;
                    }
                    let found = st
                        .text_candidates(inbox, TextPart::Body, &token(i))
                        .expect("candidates")
                        .expect("indexable needle");
                    if !found.contains(&i) {
                        misses.push(i);
                    }
                }
                misses
            });
            searcher.join().expect("searcher")
        });
        assert!(misses.is_empty(), "searches missed messages {misses:?}");
        st.flush_search_texts();
        for i in 1..=N {
            let want = i64::from(i % 2);
            assert_eq!(body_hits(&st, &token(i)), want, "postings of {}", token(i));
        }
        assert_eq!(pending(&st), 0);
        assert_eq!(rows(&st, "fts_deleted"), 0);
    }

    /// The text writer may remove a docid that is not in the FTS tables
    /// (a requeued document whose text never went in, a deletion two
    /// processes both apply): that changes nothing, and the docid can take
    /// a text afterwards.
    #[test]
    fn removing_an_absent_document_is_harmless() {
        let conn = rusqlite::Connection::open_in_memory().expect("open");
        crate::sqlite::tokenizer::register(&conn).expect("tokenizer");
        conn.execute_batch(crate::sqlite::schema::INDEX_TABLES)
            .expect("tables");
        let hits = |needle: &str| -> Vec<i64> {
            let mut q = conn
                .prepare("SELECT rowid FROM fts_body WHERE fts_body MATCH ?1")
                .expect("prepare");
            let rows = q
                .query_map([match_expr(needle).expect("expr")], |r| r.get(0))
                .expect("query");
            rows.collect::<rusqlite::Result<_>>().expect("rows")
        };
        super::insert_text(&conn, 1, "h", "hello world").expect("insert");
        super::delete_text(&conn, 5).expect("delete absent");
        assert_eq!(hits("hello"), [1]);
        super::delete_text(&conn, 1).expect("delete");
        super::delete_text(&conn, 1).expect("delete again");
        assert!(hits("hello").is_empty());
        super::insert_text(&conn, 1, "h", "other text").expect("insert again");
        super::delete_text(&conn, 7).expect("delete absent");
        assert_eq!(hits("other"), [1]);
        assert!(hits("hello").is_empty());
    }

    #[test]
    fn match_expressions() {
        assert_eq!(match_expr("ab"), None);
        assert_eq!(match_expr("abc").as_deref(), Some("\"abc\""));
        assert_eq!(
            match_expr("a\"bc").as_deref(),
            Some("\"a\"\"b\" AND \"\"\"bc\"")
        );
        assert_eq!(match_expr("aaaa").as_deref(), Some("\"aaa\""));
        let long = match_expr("abcdefghijklmnop").expect("long");
        assert_eq!(long.matches(" AND ").count(), 5);
        assert!(long.starts_with("\"abc\"") && long.ends_with("\"nop\""));
        // Multi-byte characters count as one.
        assert_eq!(match_expr("äöü").as_deref(), Some("\"äöü\""));
    }
}
