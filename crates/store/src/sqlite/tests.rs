//! Tests of the SQLite MetaStore.
use std::sync::Arc;

use super::*;

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    store: SqliteStore,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("meta.sqlite");
    let store = SqliteStore::open(&path).expect("open");
    Fixture {
        _dir: dir,
        path,
        store,
    }
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn msg(n: u32, flags: &[&str]) -> NewMessage {
    let body = format!("Subject: {n}\r\n\r\nbody {n}\r\n");
    NewMessage {
        blob: BlobId::of(body.as_bytes()),
        size: body.len() as u64,
        internal_date: 1_700_000_000 + i64::from(n),
        date_offset_minutes: 60,
        flags: s(flags),
        summary: format!("summary {n}").into_bytes(),
        inline: None,
    }
}

fn inbox(st: &SqliteStore, account: AccountId) -> MailboxInfo {
    st.mailbox(account, "INBOX").unwrap().expect("INBOX")
}

fn uids(st: &SqliteStore, mbox: MailboxId) -> Vec<Uid> {
    st.snapshot(mbox).unwrap().1.iter().map(|m| m.uid).collect()
}

#[test]
fn account_lifecycle() {
    let f = fixture();
    let st = &f.store;
    let a = st.create_account("alice", "hash1").unwrap();
    assert!(matches!(
        st.create_account("alice", "x"),
        Err(StoreError::AccountExists)
    ));
    assert_eq!(st.account("alice").unwrap(), Some(a.clone()));
    assert_eq!(st.account("bob").unwrap(), None);
    st.set_password("alice", "hash2").unwrap();
    assert_eq!(st.account("alice").unwrap().unwrap().password_hash, "hash2");
    assert!(matches!(
        st.set_password("bob", "x"),
        Err(StoreError::NoSuchAccount)
    ));
    st.create_account("bob", "h").unwrap();
    assert_eq!(st.list_accounts().unwrap(), s(&["alice", "bob"]));

    let boxes = st.list_mailboxes(a.id).unwrap();
    let names: Vec<_> = boxes.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        vec!["Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash"]
    );
    let special = |n: &str| {
        boxes
            .iter()
            .find(|m| m.name == n)
            .unwrap()
            .special_use
            .clone()
    };
    assert_eq!(special("INBOX"), None);
    assert_eq!(special("Sent").as_deref(), Some("\\Sent"));
    assert_eq!(special("Archive").as_deref(), Some("\\Archive"));
    // distinct UIDVALIDITY for every mailbox
    let mut v: Vec<_> = boxes.iter().map(|m| m.uidvalidity).collect();
    v.sort();
    v.dedup();
    assert_eq!(v.len(), 6);
    assert!(boxes
        .iter()
        .all(|m| m.uidnext == 1 && m.highest_modseq == 1));
    assert_eq!(
        st.subscriptions(a.id).unwrap(),
        s(&["Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash"])
    );

    assert!(st.delete_account("alice").unwrap().is_empty());
    assert_eq!(st.account("alice").unwrap(), None);
    assert!(st.list_mailboxes(a.id).unwrap().is_empty());
    assert!(st.subscriptions(a.id).unwrap().is_empty());
    assert!(matches!(
        st.delete_account("alice"),
        Err(StoreError::NoSuchAccount)
    ));
    assert_eq!(st.list_accounts().unwrap(), s(&["bob"]));
}

#[test]
fn delete_account_returns_unreferenced_blobs() {
    let f = fixture();
    let st = &f.store;
    let a = st.create_account("alice", "h").unwrap();
    let b = st.create_account("bob", "h").unwrap();
    let ai = inbox(st, a.id);
    let bi = inbox(st, b.id);
    let shared = msg(1, &[]);
    let only_alice = msg(2, &[]);
    st.append(
        ai.id,
        &[shared.clone(), only_alice.clone(), only_alice.clone()],
    )
    .unwrap();
    st.append(bi.id, std::slice::from_ref(&shared)).unwrap();
    let blobs = st.delete_account("alice").unwrap();
    assert_eq!(blobs, vec![only_alice.blob]);
    let blobs = st.delete_account("bob").unwrap();
    assert_eq!(blobs, vec![shared.blob]);
}

#[test]
fn mailbox_create_delete_and_uidvalidity() {
    let f = fixture();
    let st = &f.store;
    let a = st.create_account("alice", "h").unwrap();
    let m = st.create_mailbox(a.id, "Projects/2024/Q1", None).unwrap();
    assert_eq!(m.name, "Projects/2024/Q1");
    assert!(st.mailbox(a.id, "Projects").unwrap().is_some());
    assert!(st.mailbox(a.id, "Projects/2024").unwrap().is_some());
    assert!(matches!(
        st.create_mailbox(a.id, "Projects/2024/Q1", None),
        Err(StoreError::MailboxExists)
    ));
    assert!(matches!(
        st.create_mailbox(a.id, "a//b", None),
        Err(StoreError::InvalidName(_))
    ));
    assert!(matches!(
        st.create_mailbox(999, "x", None),
        Err(StoreError::NoSuchAccount)
    ));
    // trailing separator is dropped
    assert_eq!(st.create_mailbox(a.id, "Foo/", None).unwrap().name, "Foo");
    let su = st
        .create_mailbox(a.id, "Important", Some("\\Flagged"))
        .unwrap();
    assert_eq!(su.special_use.as_deref(), Some("\\Flagged"));

    // UIDs are never reused and delete+recreate gives a new UIDVALIDITY
    let r = st.append(m.id, &[msg(1, &[]), msg(2, &[])]).unwrap();
    assert_eq!(r.uids, vec![1, 2]);
    st.expunge(m.id, &[2]).unwrap();
    assert_eq!(st.append(m.id, &[msg(3, &[])]).unwrap().uids, vec![3]);
    let blobs = st.delete_mailbox(a.id, "Projects/2024/Q1").unwrap();
    assert_eq!(blobs.len(), 2);
    assert!(st.mailbox(a.id, "Projects/2024/Q1").unwrap().is_none());
    assert!(st.mailbox(a.id, "Projects/2024").unwrap().is_some());
    let m2 = st.create_mailbox(a.id, "Projects/2024/Q1", None).unwrap();
    assert_ne!(m2.uidvalidity, m.uidvalidity);
    assert!(m2.uidvalidity > m.uidvalidity);
    assert_ne!(m2.id, m.id);
    assert!(matches!(st.snapshot(m.id), Err(StoreError::NoSuchMailbox)));

    assert!(matches!(
        st.delete_mailbox(a.id, "INBOX"),
        Err(StoreError::InvalidName(_))
    ));
    assert!(matches!(
        st.delete_mailbox(a.id, "Nope"),
        Err(StoreError::NoSuchMailbox)
    ));
}

#[test]
fn mailbox_ids_are_never_reused() {
    let f = fixture();
    let st = &f.store;
    let a = st.create_account("alice", "h").unwrap();
    // The newest mailbox: a plain rowid would hand its id out again.
    let old = st.create_mailbox(a.id, "Work", None).unwrap();
    st.delete_mailbox(a.id, "Work").unwrap();
    let new = st.create_mailbox(a.id, "Work", None).unwrap();
    assert!(new.id > old.id, "{} reused", old.id);
    assert!(matches!(
        st.changes_since(old.id, 0),
        Err(StoreError::NoSuchMailbox)
    ));
    // Also across reopening and deleting the whole account.
    st.delete_mailbox(a.id, "Work").unwrap();
    let f2 = SqliteStore::open(&f.path).unwrap();
    f2.delete_account("alice").unwrap();
    let b = f2.create_account("bob", "h").unwrap();
    let ids: Vec<MailboxId> = f2
        .list_mailboxes(b.id)
        .unwrap()
        .iter()
        .map(|m| m.id)
        .collect();
    let again = f2.create_mailbox(b.id, "Work", None).unwrap();
    assert!(
        ids.iter().chain([&again.id]).all(|&id| id > new.id),
        "{ids:?} {}",
        again.id
    );
}

/// Puts the full-text tables back into the main database, where schemas
/// before V21 had them (with the built-in tokenizer: a plain connection has
/// no other; V20 makes them again anyway).
pub(crate) fn undo_v21(conn: &rusqlite::Connection) {
    conn.execute_batch(
        "CREATE VIRTUAL TABLE IF NOT EXISTS fts_head USING fts5(t, tokenize = 'trigram',
             detail = 'none', content = '', contentless_delete = 1);
         CREATE VIRTUAL TABLE IF NOT EXISTS fts_body USING fts5(t, tokenize = 'trigram',
             detail = 'none', content = '', contentless_delete = 1);",
    )
    .unwrap();
}

/// Takes a database back to before schema V19 (and V21: `undo_v21`): the
/// summaries in the rows of a rowid `messages` table, with its two covering
/// indexes. The triggers on `messages` are kept as they are.
pub(crate) fn undo_v19(conn: &rusqlite::Connection) {
    undo_v21(conn);
    let triggers: Vec<String> = {
        let mut stmt = conn
            .prepare(
                "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'messages'",
            )
            .unwrap();
        let rows = stmt.query_map([], |r| r.get(0)).unwrap();
        rows.collect::<rusqlite::Result<_>>().unwrap()
    };
    conn.execute_batch(
        "CREATE TABLE messages_v18 (
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
             docid         INTEGER,
             PRIMARY KEY(mailbox, uid)
         );
         INSERT INTO messages_v18
             SELECT m.mailbox, m.uid, m.modseq, m.flags, m.seen, m.deleted, m.internal_date,
                    m.date_offset, m.size, m.blob, s.summary, m.docid
             FROM messages m JOIN summaries s ON s.id = m.summary;
         DROP TABLE messages;
         DROP TABLE summaries;
         ALTER TABLE messages_v18 RENAME TO messages;
         CREATE INDEX messages_modseq ON messages(mailbox, modseq);
         CREATE INDEX messages_blob ON messages(blob);
         CREATE INDEX messages_docid ON messages(docid, mailbox, uid);
         CREATE INDEX messages_unindexed ON messages(mailbox, uid) WHERE docid IS NULL;
         CREATE INDEX messages_mailbox_docid ON messages(mailbox, uid, docid);
         CREATE INDEX messages_view
             ON messages(mailbox, uid, modseq, flags, internal_date, date_offset, size, blob);
         DELETE FROM schema_version WHERE version >= 19;",
    )
    .unwrap();
    for t in triggers {
        conn.execute_batch(&t).unwrap();
    }
}

/// Takes a database back to before schema V13 (STATUS counts in the mailbox
/// row), V14 (small blobs in `bodies`), V15 (modseq reservations), V16
/// (the counts' update triggers), V17 (\Recent), V18 (bounded
/// tombstones) and V19 (narrow messages table), for tests that re-run
/// migrations from an earlier version.
pub(crate) fn undo_from_v13(conn: &rusqlite::Connection) {
    undo_v19(conn);
    conn.execute_batch(
        "ALTER TABLE mailboxes DROP COLUMN expunged_floor;
         ALTER TABLE mailboxes DROP COLUMN tombstones;
         ALTER TABLE mailboxes DROP COLUMN recent_from;
         ALTER TABLE mailboxes DROP COLUMN modseq_reserved;
         DROP TABLE bodies;
         DROP TRIGGER mailbox_counts_insert;
         DROP TRIGGER mailbox_counts_delete;
         DROP TRIGGER mailbox_counts_update;
         DROP TRIGGER IF EXISTS mailbox_counts_move;
         ALTER TABLE mailboxes DROP COLUMN messages;
         ALTER TABLE mailboxes DROP COLUMN unseen;
         ALTER TABLE mailboxes DROP COLUMN deleted;
         ALTER TABLE mailboxes DROP COLUMN size;
         CREATE INDEX messages_status ON messages(mailbox, seen, deleted, size);",
    )
    .unwrap();
}

/// MESSAGES, UNSEEN, DELETED, SIZE.
type Counts = (u32, u32, u32, u64);

/// The STATUS counts kept in the mailbox row, next to what counting the
/// messages gives.
fn counts_and_truth(st: &SqliteStore, mailbox: MailboxId) -> (Counts, Counts) {
    let s = st.status(mailbox).unwrap();
    let truth = st
        .read(|tx| {
            Ok(tx.query_row(
                "SELECT count(*), coalesce(sum(seen = 0), 0), coalesce(sum(deleted), 0),
                        coalesce(sum(size), 0)
                 FROM messages WHERE mailbox = ?1",
                [mailbox],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )?)
        })
        .unwrap();
    ((s.messages, s.unseen, s.deleted, s.size), truth)
}

#[test]
fn status_counts_follow_every_change() {
    let f = fixture();
    let st = &f.store;
    let a = st.create_account("alice", "h").unwrap();
    let i = inbox(st, a.id);
    let work = st.create_mailbox(a.id, "Work", None).unwrap();
    let check = |what: &str, boxes: &[MailboxId]| {
        for &m in boxes {
            let (kept, truth) = counts_and_truth(st, m);
            assert_eq!(kept, truth, "after {what}, mailbox {m}");
        }
    };
    check("nothing", &[i.id, work.id]);
    st.append(
        i.id,
        &[msg(1, &[]), msg(2, &["\\Seen"]), msg(3, &["\\Deleted"])],
    )
    .unwrap();
    check("append", &[i.id, work.id]);
    assert_eq!(counts_and_truth(st, i.id).0 .0, 3);
    st.store_flags(i.id, &[1, 2], FlagOp::Add, &s(&["\\Seen"]), None)
        .unwrap();
    check("+Seen", &[i.id, work.id]);
    st.store_flags(i.id, &[1], FlagOp::Add, &s(&["\\Flagged"]), None)
        .unwrap();
    check("+Flagged (no count changes)", &[i.id, work.id]);
    st.store_flags(i.id, &[2, 3], FlagOp::Replace, &s(&["\\Deleted"]), None)
        .unwrap();
    check("replace", &[i.id, work.id]);
    st.copy(i.id, work.id, &[1, 2], false).unwrap();
    check("copy", &[i.id, work.id]);
    st.copy(i.id, work.id, &[3], true).unwrap();
    check("move", &[i.id, work.id]);
    st.expunge(work.id, &[1]).unwrap();
    check("expunge", &[i.id, work.id]);
    let (kept, _) = counts_and_truth(st, work.id);
    assert_eq!(kept.0, 2);
    assert_ne!(kept, (0, 0, 0, 0));
    // No command changes a row's mailbox in place, but the counts follow
    // that too (an UPDATE of several columns at once).
    st.write(|tx| {
        tx.execute(
            "UPDATE messages SET mailbox = ?1, uid = 99, seen = 1 - seen, size = size + 7
             WHERE mailbox = ?2 AND uid = 2",
            [work.id, i.id],
        )?;
        Ok(())
    })
    .unwrap();
    check("a row moved by hand", &[i.id, work.id]);
    st.delete_mailbox(a.id, "Work").unwrap();
    let again = st.create_mailbox(a.id, "Work", None).unwrap();
    assert_eq!(st.status(again.id).unwrap().messages, 0);
    check("delete and recreate", &[i.id, again.id]);
}

#[test]
fn migration_counts_the_existing_messages() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.sqlite");
    let st = SqliteStore::open(&path).unwrap();
    let a = st.create_account("alice", "h").unwrap();
    let i = inbox(&st, a.id);
    st.append(i.id, &[msg(1, &[]), msg(2, &["\\Seen", "\\Deleted"])])
        .unwrap();
    st.append(i.id, &[msg(3, &[]), msg(4, &[])]).unwrap();
    st.expunge(i.id, &[3, 4]).unwrap();
    let before = st.status(i.id).unwrap();
    drop(st);
    let conn = rusqlite::Connection::open(&path).unwrap();
    undo_from_v13(&conn);
    conn.execute("DELETE FROM schema_version WHERE version >= 13", [])
        .unwrap();
    drop(conn);
    let st = SqliteStore::open(&path).unwrap();
    let after = st.status(i.id).unwrap();
    assert_eq!(
        (after.messages, after.unseen, after.deleted, after.size),
        (2, 1, 1, before.size)
    );
    assert!(before.size > 0);
    let (kept, truth) = counts_and_truth(&st, i.id);
    assert_eq!(kept, truth);
    // V18 counts the tombstones there are.
    assert_eq!(tombstones(&st, i.id), (2, 0, 2));
}

/// How many summaries the store holds.
fn summary_rows(st: &SqliteStore) -> i64 {
    st.read(|tx| Ok(tx.query_row("SELECT count(*) FROM summaries", [], |r| r.get(0))?))
        .unwrap()
}

#[test]
fn summaries_go_with_the_last_message_that_holds_them() {
    let f = fixture();
    let st = &f.store;
    let a = st.create_account("alice", "h").unwrap();
    let i = inbox(st, a.id);
    let work = st.create_mailbox(a.id, "Work", None).unwrap();
    // UID 1 and 3 have the same content; each APPEND stores its summary.
    let mut again = msg(1, &[]);
    again.summary = b"summary 1, parsed again".to_vec();
    st.append(i.id, &[msg(1, &[]), msg(2, &[])]).unwrap();
    st.append(i.id, std::slice::from_ref(&again)).unwrap();
    assert_eq!(summary_rows(st), 3);
    // A copy shares its original's summary.
    let copied = st.copy(i.id, work.id, &[1, 2], false).unwrap();
    assert_eq!(summary_rows(st), 3);
    assert_eq!(
        st.summaries(work.id, &copied.dst_uids).unwrap(),
        [Some(b"summary 1".to_vec()), Some(b"summary 2".to_vec())]
    );
    // The original goes; the copy still holds the summary.
    st.expunge(i.id, &[1]).unwrap();
    assert_eq!(summary_rows(st), 3);
    assert_eq!(
        st.summaries(work.id, &copied.dst_uids[..1]).unwrap(),
        [Some(b"summary 1".to_vec())]
    );
    // The copy goes too: its summary goes, not that of UID 3 (same content).
    let gone = st.expunge(work.id, &copied.dst_uids[..1]).unwrap();
    assert!(gone.unreferenced_files.is_empty(), "UID 3 holds the blob");
    assert_eq!(summary_rows(st), 2);
    assert_eq!(
        st.summaries(i.id, &[3]).unwrap(),
        [Some(b"summary 1, parsed again".to_vec())]
    );
    // A move keeps it; deleting the mailbox and the account takes the rest.
    st.copy(i.id, work.id, &[3], true).unwrap();
    assert_eq!(summary_rows(st), 2);
    st.delete_mailbox(a.id, "Work").unwrap();
    assert_eq!(summary_rows(st), 1);
    st.delete_account("alice").unwrap();
    assert_eq!(summary_rows(st), 0);
}

#[test]
fn migration_to_v19_keeps_every_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.sqlite");
    let st = SqliteStore::open(&path).unwrap();
    let a = st.create_account("alice", "h").unwrap();
    let i = inbox(&st, a.id);
    let work = st.create_mailbox(a.id, "Work", None).unwrap();
    st.append(
        i.id,
        &[msg(1, &["\\Seen"]), msg(2, &["$Label"]), msg(3, &[])],
    )
    .unwrap();
    st.copy(i.id, work.id, &[2], false).unwrap();
    st.expunge(i.id, &[3]).unwrap();
    let view = |st: &SqliteStore, m| st.snapshot(m).unwrap().1;
    let before = (
        view(&st, i.id),
        view(&st, work.id),
        st.status(i.id).unwrap(),
    );
    drop(st);
    let conn = rusqlite::Connection::open(&path).unwrap();
    undo_v19(&conn);
    drop(conn);
    let st = SqliteStore::open(&path).unwrap();
    let after = (
        view(&st, i.id),
        view(&st, work.id),
        st.status(i.id).unwrap(),
    );
    assert_eq!(format!("{before:?}"), format!("{after:?}"));
    assert_eq!(
        st.summaries(i.id, &[1, 2, 3]).unwrap(),
        [
            Some(b"summary 1".to_vec()),
            Some(b"summary 2".to_vec()),
            None
        ]
    );
    assert_eq!(
        st.summaries(work.id, &[1]).unwrap(),
        [Some(b"summary 2".to_vec())]
    );
    // One summary per old row; they go with their messages from then on.
    assert_eq!(summary_rows(&st), 3);
    st.expunge(i.id, &[1, 2]).unwrap();
    assert_eq!(summary_rows(&st), 1);
    // The triggers came back: the counts follow.
    let (kept, truth) = counts_and_truth(&st, i.id);
    assert_eq!(kept, truth);
    assert_eq!(kept.0, 0);
    // The covering indexes the narrow table replaces are gone.
    let indexes: Vec<String> = st
        .read(|tx| {
            let mut stmt = tx.prepare(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'messages'
                 ORDER BY name",
            )?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .unwrap();
    assert_eq!(
        indexes,
        [
            "messages_blob",
            "messages_docid",
            "messages_modseq",
            "messages_unindexed"
        ]
    );
}

#[test]
fn migration_starts_mailbox_ids_after_the_highest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.sqlite");
    let st = SqliteStore::open(&path).unwrap();
    let a = st.create_account("alice", "h").unwrap();
    let m = st.create_mailbox(a.id, "Work", None).unwrap();
    drop(st);
    // A file from before schema V11: no counter.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "DELETE FROM meta WHERE key = 'last_mailbox_id';
         DELETE FROM schema_version WHERE version >= 11;",
    )
    .unwrap();
    undo_from_v13(&conn);
    drop(conn);
    let st = SqliteStore::open(&path).unwrap();
    st.delete_mailbox(a.id, "Work").unwrap();
    assert!(st.create_mailbox(a.id, "Work", None).unwrap().id > m.id);
}

#[test]
fn uidvalidity_differs_after_account_recreate() {
    let f = fixture();
    let st = &f.store;
    let a = st.create_account("alice", "h").unwrap();
    let old = inbox(st, a.id).uidvalidity;
    st.delete_account("alice").unwrap();
    let a = st.create_account("alice", "h").unwrap();
    assert!(inbox(st, a.id).uidvalidity > old);
}

#[test]
fn delete_mailbox_keeps_blobs_still_referenced() {
    let f = fixture();
    let st = &f.store;
    let a = st.create_account("alice", "h").unwrap();
    let i = inbox(st, a.id);
    let x = st.create_mailbox(a.id, "X", None).unwrap();
    st.append(i.id, &[msg(1, &[])]).unwrap();
    st.copy(i.id, x.id, &[1], false).unwrap();
    st.append(x.id, &[msg(2, &[])]).unwrap();
    assert_eq!(
        st.delete_mailbox(a.id, "X").unwrap(),
        vec![msg(2, &[]).blob]
    );
}

#[test]
fn append_snapshot_summary_status() {
    let f = fixture();
    let st = &f.store;
    let a = st.create_account("alice", "h").unwrap();
    let i = inbox(st, a.id);
    let r = st
        .append(
            i.id,
            &[
                msg(1, &["\\seen", "Work", "\\Recent"]),
                msg(2, &["\\Deleted", "work", "Work"]),
                msg(3, &[]),
            ],
        )
        .unwrap();
    assert_eq!(r.uids, vec![1, 2, 3]);
    assert_eq!(r.uidvalidity, i.uidvalidity);
    assert_eq!(r.modseq, 2);
    let (info, msgs) = st.snapshot(i.id).unwrap();
    assert_eq!(info.uidnext, 4);
    assert_eq!(info.highest_modseq, 2);
    assert_eq!(msgs.len(), 3);
    assert_eq!(*msgs[0].flags, s(&["Work", "\\Seen"]));
    assert_eq!(*msgs[1].flags, s(&["\\Deleted", "work"]));
    assert!(msgs[2].flags.is_empty());
    assert_eq!(msgs[0].internal_date, 1_700_000_001);
    assert_eq!(msgs[0].date_offset_minutes, 60);
    assert_eq!(msgs[0].blob, msg(1, &[]).blob);
    assert!(msgs.iter().all(|m| m.modseq == 2));
    assert_eq!(st.summary(i.id, 2).unwrap(), Some(b"summary 2".to_vec()));
    assert_eq!(st.summary(i.id, 9).unwrap(), None);

    let total: u64 = msgs.iter().map(|m| m.size).sum();
    assert_eq!(
        st.status(i.id).unwrap(),
        MailboxStatus {
            messages: 3,
            unseen: 2,
            deleted: 1,
            size: total,
            uidnext: 4,
            uidvalidity: i.uidvalidity,
            highest_modseq: 2,
        }
    );
    let empty = st
        .status(st.mailbox(a.id, "Sent").unwrap().unwrap().id)
        .unwrap();
    assert_eq!(empty.messages, 0);
    assert_eq!(empty.size, 0);
    assert!(matches!(st.status(12345), Err(StoreError::NoSuchMailbox)));
    assert!(matches!(
        st.append(12345, &[msg(1, &[])]),
        Err(StoreError::NoSuchMailbox)
    ));
    // empty append changes nothing
    let r = st.append(i.id, &[]).unwrap();
    assert!(r.uids.is_empty());
    assert_eq!(r.modseq, 2);
}

#[test]
fn multiappend_is_atomic() {
    let f = fixture();
    let st = &f.store;
    let a = st.create_account("alice", "h").unwrap();
    let i = inbox(st, a.id);
    // An invalid flag in the third message: nothing is appended.
    let bad = NewMessage {
        flags: s(&["bad flag"]),
        ..msg(3, &[])
    };
    assert!(st.append(i.id, &[msg(1, &[]), msg(2, &[]), bad]).is_err());
    // An invalid blob id in the last message.
    let bad = NewMessage {
        blob: BlobId::new("nope"),
        ..msg(3, &[])
    };
    assert!(st.append(i.id, &[msg(1, &[]), bad]).is_err());
    // A size that cannot be stored.
    let bad = NewMessage {
        size: u64::MAX,
        ..msg(3, &[])
    };
    assert!(st.append(i.id, &[msg(1, &[]), bad]).is_err());
    let info = inbox(st, a.id);
    assert_eq!(info.uidnext, 1);
    assert_eq!(info.highest_modseq, 1);
    assert!(uids(st, i.id).is_empty());
}

#[test]
fn multiappend_rolls_back_on_db_failure() {
    let f = fixture();
    let st = &f.store;
    let a = st.create_account("alice", "h").unwrap();
    let i = inbox(st, a.id);
    // Make the third insert fail inside the transaction with a trigger.
    {
        let conn = Connection::open(&f.path).unwrap();
        conn.execute_batch(
            "CREATE TRIGGER fail_third BEFORE INSERT ON messages WHEN NEW.uid = 3
             BEGIN SELECT RAISE(ABORT, 'boom'); END;",
        )
        .unwrap();
    }
    assert!(st
        .append(i.id, &[msg(1, &[]), msg(2, &[]), msg(3, &[])])
        .is_err());
    let info = inbox(st, a.id);
    assert_eq!(info.uidnext, 1);
    assert_eq!(info.highest_modseq, 1);
    assert!(uids(st, i.id).is_empty());
}

#[test]
fn expunge_deleted_leaves_messages_undeleted_meanwhile() {
    let f = fixture();
    let st = &f.store;
    let a = st.create_account("alice", "h").unwrap();
    let i = inbox(st, a.id);
    st.append(
        i.id,
        &[msg(1, &["\\Deleted"]), msg(2, &["\\Deleted"]), msg(3, &[])],
    )
    .unwrap();
    // A session saw 1 and 2 deleted; another undeleted 2 since.
    st.store_flags(i.id, &[2], FlagOp::Remove, &s(&["\\Deleted"]), None)
        .unwrap();
    let done = st.expunge_deleted(i.id, &[1, 2, 3]).unwrap();
    assert_eq!(done.uids, vec![1]);
    assert_eq!(uids(st, i.id), vec![2, 3]);
    // Nothing left to remove: no modseq, no tombstone.
    let before = st.status(i.id).unwrap().highest_modseq;
    assert!(st.expunge_deleted(i.id, &[2, 3]).unwrap().uids.is_empty());
    assert_eq!(st.status(i.id).unwrap().highest_modseq, before);
    // `expunge` (MOVE's removal) does not look at the flag.
    assert_eq!(st.expunge(i.id, &[2]).unwrap().uids, vec![2]);
    // The inline path does the same, and nothing while another thread of
    // this process holds the writer, or another process the write lock.
    st.store_flags(i.id, &[3], FlagOp::Add, &s(&["\\Deleted"]), None)
        .unwrap();
    {
        let _held = st.writer.lock().unwrap();
        assert!(st.try_expunge_deleted(i.id, &[3]).is_none());
    }
    let mut other = Connection::open(&f.path).unwrap();
    let tx = other
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .unwrap();
    assert!(st.try_expunge_deleted(i.id, &[3]).is_none());
    tx.rollback().unwrap();
    assert_eq!(uids(st, i.id), vec![3]);
    let done = st.try_expunge_deleted(i.id, &[3]).unwrap().unwrap();
    assert_eq!(done.uids, vec![3]);
    assert!(uids(st, i.id).is_empty());
}

#[test]
fn uids_never_reused_after_expunge() {
    let f = fixture();
    let st = &f.store;
    let a = st.create_account("alice", "h").unwrap();
    let i = inbox(st, a.id);
    st.append(i.id, &[msg(1, &[]), msg(2, &[]), msg(3, &[])])
        .unwrap();
    let done = st.expunge(i.id, &[3, 2, 7, 2]).unwrap();
    assert_eq!(done.uids, vec![2, 3]);
    assert_eq!(done.modseq, 3);
    // expunging nothing does not bump
    let done = st.expunge(i.id, &[2, 3]).unwrap();
    assert!(done.uids.is_empty());
    assert_eq!(done.modseq, 3);
    assert_eq!(st.append(i.id, &[msg(4, &[])]).unwrap().uids, vec![4]);
    assert_eq!(uids(st, i.id), vec![1, 4]);
}

/// (tombstones, expunged_floor) of a mailbox row, and the tombstones there are.
fn tombstones(st: &SqliteStore, mailbox: MailboxId) -> (i64, i64, i64) {
    st.read(|tx| {
        Ok(tx.query_row(
            "SELECT tombstones, expunged_floor,
                    (SELECT count(*) FROM expunged WHERE mailbox = ?1)
             FROM mailboxes WHERE id = ?1",
            [mailbox],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?)
    })
    .unwrap()
}

#[test]
fn tombstones_are_bounded_and_older_changes_list_every_missing_uid() {
    let f = fixture();
    let st = &f.store;
    st.set_expunge_history(4);
    let a = st.create_account("alice", "h").unwrap();
    let i = inbox(st, a.id);
    let msgs: Vec<NewMessage> = (1..=20).map(|n| msg(n, &[])).collect();
    st.append(i.id, &msgs).unwrap();
    // One UID per EXPUNGE: modseq m_k expunges UID k.
    let mut modseqs = Vec::new();
    for uid in 1..=5 {
        modseqs.push(st.expunge(i.id, &[uid]).unwrap().modseq);
    }
    // Five is not a quarter over four: all kept.
    assert_eq!(tombstones(st, i.id), (5, 0, 5));
    modseqs.push(st.expunge(i.id, &[6]).unwrap().modseq);
    // Six is: the two oldest go, the floor is the newer of their modseqs.
    let floor = modseqs[1];
    assert_eq!(tombstones(st, i.id), (4, floor as i64, 4));

    // From at or above the floor: exactly what was expunged since.
    assert_eq!(
        st.changes_since(i.id, floor).unwrap().expunged,
        vec![3, 4, 5, 6]
    );
    assert_eq!(
        st.changes_since(i.id, modseqs[3]).unwrap().expunged,
        vec![5, 6]
    );
    // From below it: every UID the mailbox no longer has, those gone
    // before `since` too (UID 1 went at modseqs[0]).
    let c = st.changes_since(i.id, modseqs[0]).unwrap();
    assert_eq!(c.expunged, vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(c.uidnext, 21);
    // Holes between held messages, and UIDs above the last held one.
    st.expunge(i.id, &[10, 20]).unwrap();
    let c = st.changes_since(i.id, 0).unwrap();
    assert_eq!(c.expunged, vec![1, 2, 3, 4, 5, 6, 10, 20]);
    assert_eq!(c.changed.len(), 12);

    // One EXPUNGE of many: its UIDs share a modseq, so they go together.
    let big = st.expunge(i.id, &[7, 8, 9, 11, 12, 13]).unwrap();
    let (count, floor, rows) = tombstones(st, i.id);
    assert_eq!((count, rows), (0, 0), "all of that modseq and before");
    assert_eq!(floor, big.modseq as i64);
    // Nothing is lost to a client at that modseq; one below it sees the
    // whole of what is missing.
    assert!(st
        .changes_since(i.id, big.modseq)
        .unwrap()
        .expunged
        .is_empty());
    assert_eq!(
        st.changes_since(i.id, big.modseq - 1).unwrap().expunged,
        vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 20]
    );

    // MOVE leaves tombstones in its source, counted the same way.
    let arch = st.mailbox(a.id, "Archive").unwrap().unwrap();
    st.copy(i.id, arch.id, &[14, 15], true).unwrap();
    assert_eq!(tombstones(st, i.id), (2, floor, 2));

    // 0 keeps them all.
    st.set_expunge_history(0);
    st.expunge(i.id, &[16, 17, 18, 19]).unwrap();
    assert_eq!(tombstones(st, i.id), (6, floor, 6));
}

#[test]
fn modseq_strictly_increases_and_changes_since() {
    let f = fixture();
    let st = &f.store;
    let a = st.create_account("alice", "h").unwrap();
    let i = inbox(st, a.id);
    let mut last = inbox(st, a.id).highest_modseq;
    let mut check = |st: &SqliteStore| {
        let now = st.status(i.id).unwrap().highest_modseq;
        assert!(now > last, "{now} > {last}");
        last = now;
        now
    };
    st.append(i.id, &[msg(1, &[]), msg(2, &[]), msg(3, &[])])
        .unwrap();
    let m_append = check(st);
    let r = st
        .store_flags(i.id, &[1, 2], FlagOp::Add, &s(&["\\Seen"]), None)
        .unwrap();
    let m_flags = check(st);
    assert_eq!(r.highest_modseq, m_flags);
    assert_eq!(
        r.updated,
        vec![(1, s(&["\\Seen"]), m_flags), (2, s(&["\\Seen"]), m_flags)]
    );
    st.expunge(i.id, &[3]).unwrap();
    let m_exp = check(st);
    st.append(i.id, &[msg(4, &[])]).unwrap();
    check(st);

    let c = st.changes_since(i.id, m_append).unwrap();
    assert_eq!(
        c.changed.iter().map(|m| m.uid).collect::<Vec<_>>(),
        vec![1, 2, 4]
    );
    assert_eq!(c.expunged, vec![3]);
    assert_eq!(c.uidnext, 5);
    assert_eq!(c.highest_modseq, last);
    assert_eq!(c.uidvalidity, i.uidvalidity);
    let c = st.changes_since(i.id, m_flags).unwrap();
    assert_eq!(c.changed.iter().map(|m| m.uid).collect::<Vec<_>>(), vec![4]);
    assert_eq!(c.expunged, vec![3]);
    let c = st.changes_since(i.id, m_exp).unwrap();
    assert_eq!(c.changed.len(), 1);
    assert!(c.expunged.is_empty());
    let c = st.changes_since(i.id, last).unwrap();
    assert!(c.changed.is_empty() && c.expunged.is_empty());
    let c = st.changes_since(i.id, 0).unwrap();
    assert_eq!(c.changed.len(), 3);
    assert_eq!(c.expunged, vec![3]);
    let c = st.changes_since(i.id, u64::MAX).unwrap();
    assert!(c.changed.is_empty());
}

#[test]
fn store_flags_ops_and_unchanged_since() {
    let f = fixture();
    let st = &f.store;
    let a = st.create_account("alice", "h").unwrap();
    let i = inbox(st, a.id);
    st.append(i.id, &[msg(1, &["Foo"]), msg(2, &[]), msg(3, &[])])
        .unwrap(); // modseq 2
    let r = st
        .store_flags(i.id, &[1], FlagOp::Add, &s(&["foo", "\\FLAGGED"]), None)
        .unwrap();
    assert_eq!(r.updated, vec![(1, s(&["Foo", "\\Flagged"]), 3)]);
    // no-op store: no modseq bump, nothing updated
    let r = st
        .store_flags(i.id, &[1], FlagOp::Add, &s(&["\\Flagged"]), None)
        .unwrap();
    assert!(r.updated.is_empty());
    assert_eq!(r.highest_modseq, 3);
    let r = st
        .store_flags(i.id, &[1, 2], FlagOp::Remove, &s(&["FOO"]), None)
        .unwrap();
    assert_eq!(r.updated, vec![(1, s(&["\\Flagged"]), 4)]);
    let r = st
        .store_flags(
            i.id,
            &[1, 2, 99],
            FlagOp::Replace,
            &s(&["\\draft", "x"]),
            None,
        )
        .unwrap();
    assert_eq!(
        r.updated,
        vec![(1, s(&["\\Draft", "x"]), 5), (2, s(&["\\Draft", "x"]), 5)]
    );
    // UNCHANGEDSINCE 4: uid 1 and 2 are at 5 → modified; uid 3 at 2 → updated
    let r = st
        .store_flags(i.id, &[1, 2, 3], FlagOp::Add, &s(&["\\Seen"]), Some(4))
        .unwrap();
    assert_eq!(r.modified, vec![1, 2]);
    assert_eq!(r.updated, vec![(3, s(&["\\Seen"]), 6)]);
    assert_eq!(r.highest_modseq, 6);
    let (_, msgs) = st.snapshot(i.id).unwrap();
    assert_eq!(*msgs[0].flags, s(&["\\Draft", "x"]));
    assert_eq!(st.status(i.id).unwrap().unseen, 2);
    // UNCHANGEDSINCE 0 fails for everything
    let r = st
        .store_flags(i.id, &[1, 2, 3], FlagOp::Add, &s(&["y"]), Some(0))
        .unwrap();
    assert_eq!(r.modified, vec![1, 2, 3]);
    assert!(r.updated.is_empty());
    assert!(st
        .store_flags(i.id, &[1], FlagOp::Add, &s(&["a b"]), None)
        .is_err());
}

#[test]
fn store_flags_many_uids_uses_range_scan() {
    let f = fixture();
    let st = &f.store;
    let a = st.create_account("alice", "h").unwrap();
    let i = inbox(st, a.id);
    let msgs: Vec<_> = (1..=300).map(|n| msg(n, &[])).collect();
    st.append(i.id, &msgs).unwrap();
    st.expunge(i.id, &(100..=150).collect::<Vec<_>>()).unwrap();
    // even UIDs 2..=400 (some expunged, some beyond uidnext)
    let want: Vec<Uid> = (1..=200).map(|n| n * 2).collect();
    let r = st
        .store_flags(i.id, &want, FlagOp::Add, &s(&["\\Seen"]), None)
        .unwrap();
    let got: Vec<Uid> = r.updated.iter().map(|u| u.0).collect();
    let expect: Vec<Uid> = want
        .iter()
        .copied()
        .filter(|u| *u <= 300 && !(100..=150).contains(u))
        .collect();
    assert_eq!(got, expect);
    assert_eq!(st.status(i.id).unwrap().unseen, 249 - expect.len() as u32);
}

#[test]
fn copy_and_move() {
    let f = fixture();
    let st = &f.store;
    let a = st.create_account("alice", "h").unwrap();
    let i = inbox(st, a.id);
    let arch = st.mailbox(a.id, "Archive").unwrap().unwrap();
    st.append(
        i.id,
        &[
            msg(1, &["\\Seen"]),
            msg(2, &["\\Flagged", "k"]),
            msg(3, &[]),
        ],
    )
    .unwrap();
    st.append(arch.id, &[msg(10, &[])]).unwrap();
    let before_arch = st.status(arch.id).unwrap().highest_modseq;

    let r = st.copy(i.id, arch.id, &[3, 1, 42], false).unwrap();
    assert_eq!(r.src_uids, vec![1, 3]);
    assert_eq!(r.dst_uids, vec![2, 3]);
    assert_eq!(r.uidvalidity, arch.uidvalidity);
    let (ainfo, amsgs) = st.snapshot(arch.id).unwrap();
    assert!(ainfo.highest_modseq > before_arch);
    assert_eq!(*amsgs[1].flags, s(&["\\Seen"]));
    assert_eq!(amsgs[1].internal_date, 1_700_000_001);
    assert_eq!(amsgs[1].modseq, ainfo.highest_modseq);
    assert_eq!(st.summary(arch.id, 3).unwrap(), Some(b"summary 3".to_vec()));
    assert_eq!(uids(st, i.id), vec![1, 2, 3]);

    // move
    let src_before = st.status(i.id).unwrap().highest_modseq;
    let r = st.copy(i.id, arch.id, &[2, 3], true).unwrap();
    assert_eq!(r.src_uids, vec![2, 3]);
    assert_eq!(r.dst_uids, vec![4, 5]);
    assert_eq!(uids(st, i.id), vec![1]);
    let c = st.changes_since(i.id, src_before).unwrap();
    assert_eq!(c.expunged, vec![2, 3]);
    assert!(c.highest_modseq > src_before);
    let (_, amsgs) = st.snapshot(arch.id).unwrap();
    assert_eq!(*amsgs[3].flags, s(&["\\Flagged", "k"]));

    // nothing to copy
    let r = st.copy(i.id, arch.id, &[2, 3], false).unwrap();
    assert!(r.src_uids.is_empty() && r.dst_uids.is_empty());
    assert!(matches!(
        st.copy(i.id, 999, &[1], false),
        Err(StoreError::NoSuchMailbox)
    ));

    // across accounts
    let b = st.create_account("bob", "h").unwrap();
    let bi = inbox(st, b.id);
    let r = st.copy(i.id, bi.id, &[1], true).unwrap();
    assert_eq!(r.dst_uids, vec![1]);
    assert!(uids(st, i.id).is_empty());
    assert_eq!(*st.snapshot(bi.id).unwrap().1[0].flags, s(&["\\Seen"]));

    // move within the same mailbox
    let r = st.copy(bi.id, bi.id, &[1], true).unwrap();
    assert_eq!(r.dst_uids, vec![2]);
    assert_eq!(uids(st, bi.id), vec![2]);
}

#[test]
fn rename_with_children_and_subscriptions() {
    let f = fixture();
    let st = &f.store;
    let a = st.create_account("alice", "h").unwrap();
    let p = st.create_mailbox(a.id, "Work", None).unwrap();
    let c = st.create_mailbox(a.id, "Work/Old", None).unwrap();
    st.create_mailbox(a.id, "Workshop", None).unwrap();
    st.subscribe(a.id, "Work/Old").unwrap();
    st.append(c.id, &[msg(1, &[])]).unwrap();

    st.rename_mailbox(a.id, "Work", "Jobs/Current").unwrap();
    assert!(st.mailbox(a.id, "Work").unwrap().is_none());
    assert!(st.mailbox(a.id, "Work/Old").unwrap().is_none());
    assert!(st.mailbox(a.id, "Workshop").unwrap().is_some());
    assert!(st.mailbox(a.id, "Jobs").unwrap().is_some());
    let np = st.mailbox(a.id, "Jobs/Current").unwrap().unwrap();
    let nc = st.mailbox(a.id, "Jobs/Current/Old").unwrap().unwrap();
    assert_eq!((np.id, np.uidvalidity), (p.id, p.uidvalidity));
    assert_eq!((nc.id, nc.uidvalidity), (c.id, c.uidvalidity));
    assert_eq!(uids(st, nc.id), vec![1]);
    assert!(st
        .subscriptions(a.id)
        .unwrap()
        .contains(&"Jobs/Current/Old".to_string()));
    assert!(!st
        .subscriptions(a.id)
        .unwrap()
        .contains(&"Work/Old".to_string()));

    assert!(matches!(
        st.rename_mailbox(a.id, "Nope", "X"),
        Err(StoreError::NoSuchMailbox)
    ));
    assert!(matches!(
        st.rename_mailbox(a.id, "Jobs/Current", "Workshop"),
        Err(StoreError::MailboxExists)
    ));
    assert!(matches!(
        st.rename_mailbox(a.id, "Jobs", "Jobs/Sub"),
        Err(StoreError::InvalidName(_))
    ));
    // a child's new name collides with an existing mailbox
    st.create_mailbox(a.id, "Other/Old", None).unwrap();
    st.delete_mailbox(a.id, "Other").unwrap();
    assert!(matches!(
        st.rename_mailbox(a.id, "Jobs/Current", "Other"),
        Err(StoreError::MailboxExists)
    ));
    // moving up over its own old names: a/x, a/x/x → a, a/x
    st.create_mailbox(a.id, "A/X/X", None).unwrap();
    st.delete_mailbox(a.id, "A").unwrap();
    st.rename_mailbox(a.id, "A/X", "A").unwrap();
    assert!(st.mailbox(a.id, "A").unwrap().is_some());
    assert!(st.mailbox(a.id, "A/X").unwrap().is_some());
    assert!(st.mailbox(a.id, "A/X/X").unwrap().is_none());
}

#[test]
fn rename_inbox_moves_messages() {
    let f = fixture();
    let st = &f.store;
    let a = st.create_account("alice", "h").unwrap();
    let i = inbox(st, a.id);
    let child = st.create_mailbox(a.id, "INBOX/Child", None).unwrap();
    st.append(i.id, &[msg(1, &["\\Seen"]), msg(2, &[]), msg(3, &[])])
        .unwrap();
    st.expunge(i.id, &[1]).unwrap();
    let before = inbox(st, a.id);

    st.rename_mailbox(a.id, "INBOX", "Old/Mail").unwrap();
    let after = inbox(st, a.id);
    assert_eq!(after.id, i.id);
    assert_eq!(after.uidvalidity, i.uidvalidity);
    assert_eq!(after.uidnext, before.uidnext);
    assert!(after.highest_modseq > before.highest_modseq);
    assert!(uids(st, i.id).is_empty());
    let c = st.changes_since(i.id, before.highest_modseq).unwrap();
    assert_eq!(c.expunged, vec![2, 3]);
    let moved = st.mailbox(a.id, "Old/Mail").unwrap().unwrap();
    assert_ne!(moved.uidvalidity, i.uidvalidity);
    assert_eq!(uids(st, moved.id), vec![1, 2]);
    assert!(st.mailbox(a.id, "Old").unwrap().is_some());
    // inferiors of INBOX are unaffected
    assert_eq!(
        st.mailbox(a.id, "INBOX/Child").unwrap().unwrap().id,
        child.id
    );
    // INBOX stays subscribed
    assert!(st
        .subscriptions(a.id)
        .unwrap()
        .contains(&"INBOX".to_string()));
    // renaming INBOX to an existing name fails
    assert!(matches!(
        st.rename_mailbox(a.id, "INBOX", "Sent"),
        Err(StoreError::MailboxExists)
    ));
    // to INBOX's own inferior works (INBOX stays)
    st.append(i.id, &[msg(5, &[])]).unwrap();
    st.rename_mailbox(a.id, "INBOX", "INBOX/Saved").unwrap();
    let saved = st.mailbox(a.id, "INBOX/Saved").unwrap().unwrap();
    assert_eq!(uids(st, saved.id), vec![1]);
}

#[test]
fn subscriptions() {
    let f = fixture();
    let st = &f.store;
    let a = st.create_account("alice", "h").unwrap();
    st.subscribe(a.id, "Lists/rust").unwrap();
    st.subscribe(a.id, "Lists/rust").unwrap();
    st.unsubscribe(a.id, "Junk").unwrap();
    st.unsubscribe(a.id, "never-subscribed").unwrap();
    assert_eq!(
        st.subscriptions(a.id).unwrap(),
        s(&["Archive", "Drafts", "INBOX", "Lists/rust", "Sent", "Trash"])
    );
    assert!(matches!(
        st.subscribe(999, "x"),
        Err(StoreError::NoSuchAccount)
    ));
    // deleting a mailbox leaves its subscription (RFC 9051 6.3.9)
    st.delete_mailbox(a.id, "Sent").unwrap();
    assert!(st
        .subscriptions(a.id)
        .unwrap()
        .contains(&"Sent".to_string()));
}

#[test]
fn reopen_keeps_data() {
    let f = fixture();
    let a = f.store.create_account("alice", "h").unwrap();
    let i = inbox(&f.store, a.id);
    f.store.append(i.id, &[msg(1, &[])]).unwrap();
    let again = SqliteStore::open(&f.path).unwrap();
    assert_eq!(uids(&again, i.id), vec![1]);
    let mode: String = again
        .writer
        .lock()
        .unwrap()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let sync: i64 = again
        .writer
        .lock()
        .unwrap()
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .unwrap();
    assert_eq!(sync, 1); // NORMAL: the WAL is fsynced after the commit (sync_wal)
}

#[test]
fn refuses_newer_schema() {
    let f = fixture();
    {
        let conn = Connection::open(&f.path).unwrap();
        conn.execute("INSERT INTO schema_version(version) VALUES (99)", [])
            .unwrap();
    }
    assert!(SqliteStore::open(&f.path).is_err());
}

#[test]
fn concurrent_appends_threads_and_two_instances() {
    let f = fixture();
    let a = f.store.create_account("alice", "h").unwrap();
    let i = inbox(&f.store, a.id);
    let s1 = Arc::new(f.store);
    let s2 = Arc::new(SqliteStore::open(&f.path).unwrap());
    let mut handles = Vec::new();
    for t in 0..6u32 {
        let st = if t % 2 == 0 { s1.clone() } else { s2.clone() };
        handles.push(std::thread::spawn(move || {
            let mut got = Vec::new();
            for n in 0..25u32 {
                let r = st
                    .append(
                        i.id,
                        &[msg(t * 1000 + n, &[]), msg(t * 1000 + n + 500, &[])],
                    )
                    .unwrap();
                got.extend(r.uids);
                // readers run concurrently with the writers
                st.status(i.id).unwrap();
                if n % 5 == 0 {
                    st.store_flags(i.id, &[1], FlagOp::Add, &[format!("t{t}n{n}")], None)
                        .unwrap();
                }
            }
            got
        }));
    }
    let mut all: Vec<Uid> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    all.sort();
    let n = all.len();
    all.dedup();
    assert_eq!(all.len(), n, "UIDs must be unique");
    assert_eq!(all, (1..=300).collect::<Vec<_>>());
    let st = s1.status(i.id).unwrap();
    assert_eq!(st.messages, 300);
    assert_eq!(st.uidnext, 301);
    // 150 appends + 30 flag stores, one modseq each
    assert_eq!(st.highest_modseq, 1 + 150 + 30);
    assert_eq!(s2.snapshot(i.id).unwrap().1[0].flags.len(), 30);
}

#[test]
fn concurrent_account_and_mailbox_creation_two_instances() {
    let f = fixture();
    let s1 = Arc::new(f.store);
    let s2 = Arc::new(SqliteStore::open(&f.path).unwrap());
    let mut handles = Vec::new();
    for t in 0..4 {
        let st = if t % 2 == 0 { s1.clone() } else { s2.clone() };
        handles.push(std::thread::spawn(move || {
            let a = st.create_account(&format!("user{t}"), "h").unwrap();
            for n in 0..5 {
                st.create_mailbox(a.id, &format!("F{n}"), None).unwrap();
            }
        }));
    }
    for h in handles {
        h.join().unwrap();
    }
    let mut vals = Vec::new();
    for name in s1.list_accounts().unwrap() {
        let a = s1.account(&name).unwrap().unwrap();
        vals.extend(
            s2.list_mailboxes(a.id)
                .unwrap()
                .iter()
                .map(|m| m.uidvalidity),
        );
    }
    assert_eq!(vals.len(), 4 * 11);
    vals.sort();
    vals.dedup();
    assert_eq!(vals.len(), 4 * 11, "UIDVALIDITY values are unique");
}

#[test]
fn changes_since_uses_modseq_index() {
    let f = fixture();
    let conn = f.store.writer.lock().unwrap();
    let plan: Vec<String> = conn
        .prepare(
            "EXPLAIN QUERY PLAN SELECT uid FROM messages INDEXED BY messages_modseq
             WHERE mailbox = 1 AND modseq > 5 ORDER BY uid",
        )
        .unwrap()
        .query_map([], |r| r.get::<_, String>(3))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert!(
        plan.iter().any(|p| p.contains("messages_modseq")),
        "{plan:?}"
    );
}

const CHILD_DB_ENV: &str = "PILLARBOX_STORE_TEST_CHILD_DB";
const CHILD_MBOX_ENV: &str = "PILLARBOX_STORE_TEST_CHILD_MBOX";
const CHILD_APPENDS: u32 = 40;

/// Run by `multi_process_appends` in child processes (a no-op otherwise).
#[test]
#[ignore = "helper: run in a child process by multi_process_appends"]
fn child_append_worker() {
    let (Ok(path), Ok(mbox)) = (std::env::var(CHILD_DB_ENV), std::env::var(CHILD_MBOX_ENV)) else {
        return;
    };
    let mbox: MailboxId = mbox.parse().unwrap();
    let st = SqliteStore::open(Path::new(&path)).unwrap();
    let mut got = Vec::new();
    for n in 0..CHILD_APPENDS {
        got.extend(st.append(mbox, &[msg(n, &[])]).unwrap().uids);
    }
    let list: Vec<String> = got.iter().map(|u| u.to_string()).collect();
    println!("UIDS {}", list.join(","));
}

#[test]
fn multi_process_appends() {
    let f = fixture();
    let a = f.store.create_account("alice", "h").unwrap();
    let i = inbox(&f.store, a.id);
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..2)
        .map(|_| {
            std::process::Command::new(&exe)
                .args([
                    "--ignored",
                    "--exact",
                    "sqlite::tests::child_append_worker",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_DB_ENV, &f.path)
                .env(CHILD_MBOX_ENV, i.id.to_string())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut all = Vec::new();
    for n in 0..CHILD_APPENDS {
        all.extend(f.store.append(i.id, &[msg(n, &[])]).unwrap().uids);
    }
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        // libtest may print "test name ... " on the same line before our output.
        let line = text
            .split("UIDS ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .expect("child printed its UIDs");
        all.extend(line.split(',').map(|u| u.parse::<Uid>().unwrap()));
    }
    all.sort();
    assert_eq!(all, (1..=3 * CHILD_APPENDS).collect::<Vec<_>>());
    let st = f.store.status(i.id).unwrap();
    assert_eq!(st.messages, 3 * CHILD_APPENDS);
    assert_eq!(st.highest_modseq, 1 + u64::from(3 * CHILD_APPENDS));
}

/// \Recent: new mail is recent for the first claim only; a peek does not
/// claim; STATUS RECENT counts what no one claimed.
#[test]
fn recent_mail_is_claimed_once() {
    let f = fixture();
    let a = f.store.create_account("alice", "h").unwrap();
    let i = inbox(&f.store, a.id);
    f.store.append(i.id, &[msg(1, &[]), msg(2, &[])]).unwrap();
    assert_eq!(f.store.recent_count(i.id).unwrap(), 2);
    let peek = f.store.mailbox(a.id, "INBOX").unwrap().unwrap();
    assert_eq!((peek.recent_from, peek.uidnext), (1, 3));
    assert_eq!(f.store.claim_recent(i.id).unwrap(), (1, 3));
    assert_eq!(f.store.claim_recent(i.id).unwrap(), (3, 3));
    assert_eq!(f.store.recent_count(i.id).unwrap(), 0);
    f.store.append(i.id, &[msg(3, &[])]).unwrap();
    assert_eq!(f.store.recent_count(i.id).unwrap(), 1);
    assert_eq!(f.store.claim_recent(i.id).unwrap(), (3, 4));
    assert!(matches!(
        f.store.claim_recent(999),
        Err(StoreError::NoSuchMailbox)
    ));
}

/// \Recent for a session notified of new mail: only what nobody took yet,
/// at most once; what lies below the range asked for is not handed out.
#[test]
fn notified_recent_mail_is_claimed_once() {
    let f = fixture();
    let a = f.store.create_account("alice", "h").unwrap();
    let i = inbox(&f.store, a.id);
    f.store.append(i.id, &[msg(1, &[]), msg(2, &[])]).unwrap();
    // A session that knew UIDs 1 and 2 learns of 3 and 4.
    f.store.append(i.id, &[msg(3, &[]), msg(4, &[])]).unwrap();
    assert_eq!(f.store.claim_recent_range(i.id, 3, 5).unwrap(), (3, 5));
    // Another session notified of the same messages gets none of them.
    assert_eq!(f.store.claim_recent_range(i.id, 3, 5).unwrap(), (5, 5));
    assert_eq!(
        f.store.try_claim_recent_range(i.id, 3, 5).unwrap().unwrap(),
        (5, 5)
    );
    // 1 and 2 were skipped, not claimed: nobody gets them later either.
    assert_eq!(f.store.recent_count(i.id).unwrap(), 0);
    assert_eq!(f.store.claim_recent(i.id).unwrap(), (5, 5));
    f.store.append(i.id, &[msg(5, &[]), msg(6, &[])]).unwrap();
    // A session that learns of 6 only (5 came through SELECT elsewhere).
    assert_eq!(
        f.store.try_claim_recent_range(i.id, 6, 7).unwrap().unwrap(),
        (6, 7)
    );
    assert_eq!(f.store.claim_recent_range(i.id, 5, 6).unwrap(), (6, 6));
    assert_eq!(f.store.claim_recent_range(i.id, 7, 7).unwrap(), (7, 7));
    assert!(matches!(
        f.store.claim_recent_range(999, 1, 2),
        Err(StoreError::NoSuchMailbox)
    ));
}

/// An APPEND by a session with the mailbox selected takes \Recent in its own
/// transaction: its messages and any other nobody took from the session's
/// first unknown UID on; a plain APPEND takes nothing.
#[test]
fn append_takes_recent_for_its_session() {
    let f = fixture();
    let a = f.store.create_account("alice", "h").unwrap();
    let i = inbox(&f.store, a.id);
    f.store.append(i.id, &[msg(1, &[])]).unwrap();
    let r = f
        .store
        .append_indexed_recent(i.id, &[msg(2, &[]), msg(3, &[])], &[], Some(1))
        .unwrap();
    assert_eq!((r.uids.clone(), r.recent), (vec![2, 3], (1, 4)));
    let r = f.store.append(i.id, &[msg(4, &[])]).unwrap();
    assert_eq!(r.recent, (0, 0));
    assert_eq!(f.store.recent_count(i.id).unwrap(), 1);
    // A session that knew UIDs up to 2 only: 3 is taken, 4 and its own 5 not.
    let r = f
        .store
        .append_indexed_recent(i.id, &[msg(5, &[])], &[], Some(3))
        .unwrap();
    assert_eq!(r.recent, (4, 6));
    assert_eq!(f.store.recent_count(i.id).unwrap(), 0);
}

/// The inline APPEND (`try_append_indexed_recent`): nothing while another
/// thread of this process holds the writer, another process the write lock,
/// or when a message is invalid; else the same commit as
/// `append_indexed_recent` (\Recent included), not yet durable: the
/// caller's `make_durable` flushes it.
#[test]
fn try_append_commits_at_once_and_leaves_the_flush_to_the_caller() {
    let f = fixture();
    let st = &f.store;
    let a = st.create_account("alice", "h").unwrap();
    let i = inbox(st, a.id);
    st.append(i.id, &[msg(1, &[])]).unwrap();
    {
        let _held = st.writer.lock().unwrap();
        assert!(st
            .try_append_indexed_recent(i.id, &[msg(2, &[])], &[], Some(1))
            .is_none());
    }
    let mut other = Connection::open(&f.path).unwrap();
    let tx = other
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .unwrap();
    assert!(st
        .try_append_indexed_recent(i.id, &[msg(2, &[])], &[], Some(1))
        .is_none());
    tx.rollback().unwrap();
    let mut bad = msg(2, &[]);
    bad.blob = BlobId::new("not an id");
    assert!(st
        .try_append_indexed_recent(i.id, &[bad], &[], Some(1))
        .unwrap()
        .is_err());
    assert_eq!(uids(st, i.id), vec![1]);
    let flushes = || st.wal_flush.snapshot().0;
    st.make_durable().unwrap();
    let before = flushes();
    let r = st
        .try_append_indexed_recent(i.id, &[msg(2, &[]), msg(3, &["\\Seen"])], &[], Some(1))
        .unwrap()
        .unwrap();
    assert_eq!((r.uids.clone(), r.recent), (vec![2, 3], (1, 4)));
    assert_eq!(uids(st, i.id), vec![1, 2, 3]);
    assert_eq!(st.status(i.id).unwrap().unseen, 2);
    assert_eq!(flushes(), before, "committed, not flushed");
    st.make_durable().unwrap();
    assert_eq!(flushes(), before + 1);
}

/// `foreign_version` moves with another connection's commit (another
/// process), not with this store's own writes.
#[test]
fn foreign_version_moves_only_with_other_connections() {
    let f = fixture();
    let a = f.store.create_account("alice", "h").unwrap();
    let i = inbox(&f.store, a.id);
    let before = f.store.foreign_version().expect("writer free");
    f.store.append(i.id, &[msg(1, &[])]).unwrap();
    f.store
        .store_flags(i.id, &[1], FlagOp::Add, &s(&["\\Seen"]), None)
        .unwrap();
    f.store.expunge(i.id, &[1]).unwrap();
    assert_eq!(f.store.foreign_version(), Some(before));
    let other = Connection::open(&f.path).unwrap();
    other
        .execute(
            "INSERT INTO meta(key, value) VALUES ('another process', 1)",
            [],
        )
        .unwrap();
    let after = f.store.foreign_version().expect("writer free");
    assert_ne!(after, before);
    // Held by this process: not waited for.
    let _held = f.store.writer.lock().unwrap();
    assert_eq!(f.store.foreign_version(), None);
}

#[test]
fn readers_do_not_wait_for_a_writer() {
    let f = fixture();
    let a = f.store.create_account("alice", "h").unwrap();
    let i = inbox(&f.store, a.id);
    f.store.append(i.id, &[msg(1, &[])]).unwrap();
    // Another "process" holds the write lock with an uncommitted append.
    let mut other = Connection::open(&f.path).unwrap();
    let tx = other
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .unwrap();
    tx.execute(
        "UPDATE mailboxes SET uidnext = uidnext + 1 WHERE id = ?1",
        [i.id],
    )
    .unwrap();
    let start = std::time::Instant::now();
    let st = f.store.status(i.id).unwrap();
    assert_eq!(st.uidnext, 2); // the uncommitted change is invisible
    assert_eq!(uids(&f.store, i.id), vec![1]);
    assert!(f.store.changes_since(i.id, 0).is_ok());
    assert!(start.elapsed() < std::time::Duration::from_secs(2));
    tx.rollback().unwrap();
}

#[test]
fn changes_since_small_delta_on_big_mailbox() {
    let f = fixture();
    let st = &f.store;
    let a = st.create_account("alice", "h").unwrap();
    let i = inbox(st, a.id);
    let batch: Vec<_> = (1..=5000).map(|n| msg(n, &[])).collect();
    st.append(i.id, &batch).unwrap();
    let base = st.status(i.id).unwrap().highest_modseq;
    st.store_flags(i.id, &[17, 4000], FlagOp::Add, &s(&["\\Seen"]), None)
        .unwrap();
    st.expunge(i.id, &[99]).unwrap();
    let c = st.changes_since(i.id, base).unwrap();
    assert_eq!(
        c.changed.iter().map(|m| m.uid).collect::<Vec<_>>(),
        vec![17, 4000]
    );
    assert_eq!(c.expunged, vec![99]);
    // The query reads only the delta: count the rows the VM steps through.
    let conn = st.writer.lock().unwrap();
    let mut stmt = conn
        .prepare(&format!(
            "SELECT {MESSAGE_COLS} FROM messages INDEXED BY messages_modseq
             WHERE mailbox = ?1 AND modseq > ?2 ORDER BY uid"
        ))
        .unwrap();
    let n = stmt
        .query_map(params![i.id, base as i64], |_| Ok(()))
        .unwrap()
        .count();
    assert_eq!(n, 2);
    assert_eq!(
        stmt.get_status(rusqlite::StatementStatus::FullscanStep),
        0,
        "no full scan"
    );
    assert!(stmt.get_status(rusqlite::StatementStatus::VmStep) < 500);
}

#[test]
fn concurrent_open_of_a_fresh_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fresh.sqlite");
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let p = path.clone();
            std::thread::spawn(move || SqliteStore::open(&p).map(|_| ()))
        })
        .collect();
    for h in handles {
        h.join().unwrap().unwrap();
    }
    let st = SqliteStore::open(&path).unwrap();
    let n: i64 = st
        .writer
        .lock()
        .unwrap()
        .query_row("SELECT count(*) FROM schema_version", [], |r| r.get(0))
        .unwrap();
    // One row per migration: each applied exactly once.
    assert_eq!(n, schema::CURRENT_VERSION, "migration applied exactly once");
}

#[test]
fn group_commit_isolates_a_failing_append_and_keeps_modseqs_contiguous() {
    let f = fixture();
    let a = f.store.create_account("alice", "h").unwrap();
    let i = inbox(&f.store, a.id);
    let st = Arc::new(f.store);
    let start = st.status(i.id).unwrap().highest_modseq;
    let mut handles = Vec::new();
    for t in 0..8u32 {
        let st = st.clone();
        handles.push(std::thread::spawn(move || {
            let mut out = Vec::new();
            for n in 0..20u32 {
                // Every fourth thread appends to a mailbox that does not exist:
                // its jobs fail inside the shared transaction, the others commit.
                let target = if t % 4 == 3 { 999_999 } else { i.id };
                out.push(st.append(target, &[msg(t * 100 + n, &[])]));
            }
            (t, out)
        }));
    }
    let mut modseqs = Vec::new();
    let mut uids = Vec::new();
    for h in handles {
        let (t, results) = h.join().unwrap();
        for r in results {
            if t % 4 == 3 {
                assert!(matches!(r, Err(StoreError::NoSuchMailbox)), "{r:?}");
            } else {
                let r = r.unwrap();
                modseqs.push(r.modseq);
                uids.extend(r.uids);
            }
        }
    }
    // Each successful APPEND bumped the modseq by exactly one.
    modseqs.sort_unstable();
    let want: Vec<u64> = (start + 1..=start + 120).collect();
    assert_eq!(modseqs, want);
    uids.sort_unstable();
    uids.dedup();
    assert_eq!(uids.len(), 120);
    assert_eq!(self::uids(&st, i.id).len(), 120);
}

/// Commits never checkpoint; the background checkpointer copies the WAL into
/// the database once it passes the threshold, and the data stays readable.
#[test]
fn checkpointer_empties_the_wal_in_the_background() {
    let f = fixture();
    let st = &f.store;
    let acc = st.create_account("ckpt", "x").unwrap();
    let i = inbox(st, acc.id);
    let msgs: Vec<NewMessage> = (1..=50).map(|n| msg(n, &[])).collect();
    st.append(i.id, &msgs).unwrap();
    // A lower threshold than the server's, for a shorter test.
    const AT: i32 = 4000;
    st.wal
        .checkpoint_at
        .store(AT, std::sync::atomic::Ordering::Relaxed);
    let frames = || st.wal.frames.load(std::sync::atomic::Ordering::Relaxed);
    let mut n = 0;
    while frames() < AT {
        let op = if (n / 50) % 2 == 0 {
            FlagOp::Add
        } else {
            FlagOp::Remove
        };
        st.store_flags(i.id, &[1 + n % 50], op, &s(&["$k"]), None)
            .unwrap();
        n += 1;
        assert!(n < 5_000, "the WAL hook never reported the frames");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while frames() >= AT {
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint within 10 s ({} frames)",
            frames()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The next commit starts the WAL over: the hook reports a short log.
    st.store_flags(i.id, &[1], FlagOp::Add, &s(&["$after"]), None)
        .unwrap();
    assert!(frames() < 100, "{}", frames());
    drop(f.store);
    let again = SqliteStore::open(&f.path).unwrap();
    let (_, all) = again.snapshot(i.id).unwrap();
    assert_eq!(all.len(), 50);
    assert!(all[0].flags.contains(&"$after".to_string()));
}

/// Under a continuous stream of commits (and readers), the WAL still starts
/// over regularly (the frame count the WAL hook reports drops): a checkpoint
/// that only copies frames in the background never finds the WAL fully
/// copied with no commit in between, and the WAL would grow without bound.
#[test]
fn wal_stays_bounded_under_continuous_commits() {
    let f = fixture();
    let st = Arc::new(f.store);
    let acc = st.create_account("busy", "x").unwrap();
    let i = inbox(&st, acc.id);
    let msgs: Vec<NewMessage> = (1..=20).map(|n| msg(n, &[])).collect();
    st.append(i.id, &msgs).unwrap();
    // A lower threshold than the server's, for a shorter test.
    st.wal
        .checkpoint_at
        .store(4000, std::sync::atomic::Ordering::Relaxed);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (st, stop) = (st.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    st.snapshot(i.id).unwrap();
                }
            })
        })
        .collect();
    let mut max_frames = 0;
    let mut restarts = 0u32;
    let mut last = 0;
    let mut commits = 0u32;
    let t0 = std::time::Instant::now();
    while t0.elapsed() < Duration::from_secs(3) {
        let op = if commits.is_multiple_of(2) {
            FlagOp::Add
        } else {
            FlagOp::Remove
        };
        st.store_flags(i.id, &[1 + commits / 2 % 20], op, &s(&["$x"]), None)
            .unwrap();
        commits += 1;
        let frames = st.wal.frames.load(std::sync::atomic::Ordering::Relaxed);
        if frames < last {
            restarts += 1;
        }
        last = frames;
        max_frames = max_frames.max(frames);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    // Measured: about 20 restarts in 3 s; without the final RESTART step
    // none, and the WAL grew to 130,000-230,000 frames.
    assert!(
        restarts >= 3,
        "the WAL started over {restarts} times in {commits} commits (up to {max_frames} frames)"
    );
}

#[test]
fn snapshot_shares_one_flag_list_per_distinct_set() {
    let f = fixture();
    let a = f.store.create_account("alice", "h").unwrap();
    let i = inbox(&f.store, a.id);
    let msgs: Vec<NewMessage> = (1..=6)
        .map(|n| msg(n, if n % 2 == 0 { &["\\Seen"] } else { &[] }))
        .collect();
    f.store.append(i.id, &msgs).unwrap();
    let (_, snap) = f.store.snapshot(i.id).unwrap();
    assert_eq!(*snap[1].flags, s(&["\\Seen"]));
    assert!(snap[0].flags.is_empty());
    assert!(Arc::ptr_eq(&snap[1].flags, &snap[3].flags));
    assert!(Arc::ptr_eq(&snap[0].flags, &snap[4].flags));
    assert!(!Arc::ptr_eq(&snap[0].flags, &snap[1].flags));
    // System-only lists are the process's shared ones, read after read;
    // a list with a keyword is shared within one read.
    let (_, again) = f.store.snapshot(i.id).unwrap();
    assert!(Arc::ptr_eq(&snap[1].flags, &again[1].flags));
    f.store
        .append(i.id, &[msg(7, &["work"]), msg(8, &["work"])])
        .unwrap();
    let (_, snap) = f.store.snapshot(i.id).unwrap();
    assert!(Arc::ptr_eq(&snap[6].flags, &snap[7].flags));
    let (_, again) = f.store.snapshot(i.id).unwrap();
    assert!(!Arc::ptr_eq(&snap[6].flags, &again[6].flags));
}

#[test]
fn small_reads_see_commits_of_another_process() {
    // Small reads run on the writer connection when it is free; its page
    // cache must not hide what another connection (another process, e.g.
    // the `user` command while the server runs) committed.
    let f = fixture();
    let st = &f.store;
    let a = st.create_account("alice", "h").unwrap();
    let i = inbox(st, a.id);
    st.append(i.id, &[msg(1, &[])]).unwrap();
    let before = st.changes_since(i.id, 0).unwrap();
    assert_eq!(before.changed.len(), 1);
    let other = rusqlite::Connection::open(&f.path).unwrap();
    other
        .execute_batch(
            "UPDATE messages SET flags = '\\Flagged', modseq = modseq + 10;
             UPDATE mailboxes SET highest_modseq = highest_modseq + 10 WHERE name = 'INBOX';
             INSERT INTO subscriptions(account, name) SELECT id, 'Elsewhere' FROM accounts;",
        )
        .unwrap();
    drop(other);
    let after = st.changes_since(i.id, before.highest_modseq).unwrap();
    assert_eq!(after.highest_modseq, before.highest_modseq + 10);
    assert_eq!(after.changed.len(), 1);
    assert_eq!(*after.changed[0].flags, s(&["\\Flagged"]));
    assert!(st
        .subscriptions(a.id)
        .unwrap()
        .contains(&"Elsewhere".to_string()));
    assert!(st.mailbox(a.id, "INBOX").unwrap().is_some());
}

/// A store with the tiered blob store over it (small blobs in `bodies`,
/// others files), in a fresh directory (kept alive by the first value).
fn tiered() -> (
    tempfile::TempDir,
    Arc<SqliteStore>,
    crate::blob::TieredBlobStore,
) {
    let dir = tempfile::tempdir().unwrap();
    let st = Arc::new(SqliteStore::open(&dir.path().join("meta.sqlite")).unwrap());
    let files = crate::FsBlobStore::open(dir.path().join("blobs")).unwrap();
    let blobs = crate::blob::TieredBlobStore::new(st.clone(), files);
    (dir, st, blobs)
}

/// `len` bytes that do not compress, from a xorshift generator: each byte
/// is `byte` of the next state.
fn noise(seed: u64, len: usize, byte: impl Fn(u64) -> u8) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            byte(x)
        })
        .collect()
}

/// A small message's bytes kept in the database (`bodies`), read through the
/// tiered blob store, with a large one still a file; the body row lives as
/// long as some message references it, and deleting the last mailbox holding
/// it removes it in the same transaction.
#[test]
fn small_blobs_live_in_the_database_with_their_messages() {
    use crate::blob::{BlobStore, InlineBlobs, INLINE_MAX};
    let (_dir, st, blobs) = tiered();
    let a = st.create_account("alice", "h").unwrap();
    let i = inbox(&st, a.id);
    let work = st.create_mailbox(a.id, "Work", None).unwrap();

    let small = b"Subject: small\r\n\r\nkept with its row\r\n".repeat(20);
    let (id, compressed) = blobs.stage(&small).unwrap();
    let compressed = compressed.expect("small enough");
    assert_eq!(id, BlobId::of(&small));
    assert!(blobs.get(&id).is_err(), "staged, not stored");
    assert!(compressed.len() < small.len(), "stored compressed");
    // Incompressible and larger than the limit: a file, as before.
    let big = noise(0x2545_f491_4f6c_dd1d, INLINE_MAX + 4096, |x| {
        b'!' + (x % 90) as u8
    });
    let (big_id, none) = blobs.stage(&big).unwrap();
    assert!(none.is_none());
    assert_eq!(blobs.get(&big_id).unwrap(), big, "stored as a file");

    let with = |blob: BlobId, inline: Option<Arc<[u8]>>, size: usize| NewMessage {
        blob,
        size: size as u64,
        inline,
        ..msg(1, &[])
    };
    // An APPEND that fails (a bad flag in its second message) leaves no body.
    let bad = NewMessage {
        flags: s(&["bad flag"]),
        ..msg(2, &[])
    };
    let first = with(id, Some(compressed.clone()), small.len());
    assert!(st.append(i.id, &[first.clone(), bad]).is_err());
    assert_eq!(st.inline_blob(&id).unwrap(), None);
    assert!(blobs.get(&id).is_err(), "nothing stored anywhere");

    st.append(i.id, &[first, with(big_id, None, big.len())])
        .unwrap();
    assert_eq!(
        st.inline_blob(&id).unwrap().as_deref(),
        Some(&compressed[..])
    );
    assert_eq!(blobs.get(&id).unwrap(), small);
    let mut read = Vec::new();
    std::io::Read::read_to_end(&mut *blobs.open(&id).unwrap(), &mut read).unwrap();
    assert_eq!(read, small);
    assert_eq!(st.inline_blob(&big_id).unwrap(), None);
    assert_eq!(blobs.get(&big_id).unwrap(), big);

    // The same content appended again (in another mailbox) shares the row;
    // the bytes first written stay.
    st.append(
        work.id,
        &[with(id, Some(Arc::from(&b"other"[..])), small.len())],
    )
    .unwrap();
    assert_eq!(
        st.inline_blob(&id).unwrap().as_deref(),
        Some(&compressed[..])
    );
    // Still referenced from Work: kept.
    let freed = st.delete_mailbox(a.id, "Work").unwrap();
    assert!(!freed.contains(&id));
    assert_eq!(blobs.get(&id).unwrap(), small);
    // The last reference goes, and the row with it: only the file is left
    // for the caller to delete.
    let freed = st.delete_account("alice").unwrap();
    assert_eq!(freed, vec![big_id]);
    assert_eq!(st.inline_blob(&id).unwrap(), None);
    for f in &freed {
        blobs.delete(f).unwrap();
    }
    assert!(blobs.get(&big_id).is_err());

    // Damaged bytes in the row are reported, not served.
    let b = st.create_account("bob", "h").unwrap();
    let bad_bytes = crate::blob::compress(b"something else").unwrap();
    st.append(inbox(&st, b.id).id, &[with(id, Some(bad_bytes.into()), 14)])
        .unwrap();
    let err = blobs.get(&id).unwrap_err().to_string();
    assert!(err.contains("corrupt"), "{err}");
}

/// EXPUNGE frees what no message references any more: a body kept in the
/// database goes in the expunging transaction, a file is reported for the
/// caller to delete (after the expunge is durable: the EXPUNGE itself does
/// not wait for the disk); content another message still uses stays.
#[test]
fn expunge_frees_the_bodies_of_its_last_references() {
    use crate::blob::{BlobStore, InlineBlobs, INLINE_MAX};
    let (_dir, st, blobs) = tiered();
    let a = st.create_account("alice", "h").unwrap();
    let i = inbox(&st, a.id);
    let trash = st.create_mailbox(a.id, "Old", None).unwrap();
    let staged = |raw: &[u8]| {
        let (blob, inline) = blobs.stage(raw).unwrap();
        NewMessage {
            blob,
            size: raw.len() as u64,
            inline,
            ..msg(1, &[])
        }
    };
    let small = staged(&b"Subject: small\r\n\r\nbody\r\n".repeat(10));
    let other = staged(b"Subject: other\r\n\r\nanother body\r\n");
    let big_raw = noise(0x9e37_79b9_7f4a_7c15, INLINE_MAX + 4096, |x| {
        b'!' + (x % 90) as u8
    });
    let big = staged(&big_raw);
    assert!(big.inline.is_none() && small.inline.is_some());

    // INBOX: small twice, other, big (UIDs 1-4); Old: a copy of small.
    st.append(
        i.id,
        &[small.clone(), small.clone(), other.clone(), big.clone()],
    )
    .unwrap();
    st.copy(i.id, trash.id, &[1], false).unwrap();
    // WAL flushes asked for so far: an EXPUNGE does not wait for the disk.
    let flushes = || st.wal_flush.snapshot().0;
    let before = flushes();

    // Both INBOX copies of small go at once; the one in Old keeps the body.
    let done = st.expunge(i.id, &[1, 2]).unwrap();
    assert_eq!(done.uids, vec![1, 2]);
    assert!(done.unreferenced_files.is_empty());
    assert_eq!(blobs.get(&small.blob).unwrap().len() as u64, small.size);
    // Its last reference goes: the body row goes in the same transaction.
    let done = st.expunge(trash.id, &[1]).unwrap();
    assert!(done.unreferenced_files.is_empty(), "nothing left to delete");
    assert_eq!(st.inline_blob(&small.blob).unwrap(), None);
    assert!(blobs.get(&small.blob).is_err());
    // The other messages are untouched.
    assert!(st.inline_blob(&other.blob).unwrap().is_some());
    assert_eq!(blobs.get(&big.blob).unwrap(), big_raw);

    // A file is reported, not deleted (the caller does that under its gate).
    let done = st.expunge(i.id, &[4]).unwrap();
    assert_eq!(done.unreferenced_files, vec![big.blob]);
    assert_eq!(blobs.get(&big.blob).unwrap(), big_raw);
    assert!(st.unreferenced_blobs(&[big.blob]).unwrap() == vec![big.blob]);
    // Expunging what is already gone frees nothing.
    let gone = st.expunge(i.id, &[1, 4]).unwrap();
    assert!(gone.uids.is_empty() && gone.unreferenced_files.is_empty());
    assert_eq!(flushes(), before, "no EXPUNGE flushed the WAL");

    // Deleting the file makes the expunge durable first.
    assert_eq!(
        crate::gate::free_files(&*st, &blobs, &done.unreferenced_files),
        1
    );
    assert_eq!(flushes(), before + 1);
    assert!(blobs.get(&big.blob).is_err());
}

/// An APPEND skips the blob gate when `may_stage_file` says no: such bytes
/// must really stay out of the files, even incompressible ones.
#[test]
fn bytes_said_to_stay_inline_are_never_files() {
    use crate::blob::{BlobStore, INLINE_MAX};
    let (_dir, _, blobs) = tiered();
    let noise = noise(0x853c_49e6_748f_ea9b, INLINE_MAX + 1024, |x| x as u8);
    let largest = (0..noise.len() as u64)
        .rev()
        .find(|&n| !blobs.may_stage_file(n))
        .expect("small sizes are inline") as usize;
    assert!(largest > INLINE_MAX - 1024, "{largest}");
    for n in [0, 1, 1000, largest] {
        let (_, inline) = blobs.stage(&noise[..n]).unwrap();
        assert!(inline.is_some(), "{n} bytes");
    }
    assert!(blobs.may_stage_file(largest as u64 + 1));
    assert!(blobs.may_stage_file(u64::MAX));
}

/// Flag changes and expunges do not wait for the disk, so a power loss can
/// take back modseqs a client has seen. Each mailbox hands out modseqs only
/// up to a reservation made durable beforehand, and a start moves it past
/// the reservation: a modseq is never handed out twice.
#[test]
fn modseqs_lost_in_a_crash_are_never_handed_out_again() {
    let f = fixture();
    let st = &f.store;
    let a = st.create_account("alice", "h").unwrap();
    let i = inbox(st, a.id);
    st.append(i.id, &[msg(1, &[]), msg(2, &[])]).unwrap();
    let flushes = || st.wal_flush.snapshot().0;
    let flag = |op| {
        st.store_flags(i.id, &[1], op, &s(&["\\Seen"]), None)
            .unwrap()
            .highest_modseq
    };
    // Within the reservation the APPEND made: no flush.
    let before = flushes();
    let mut seen = 0;
    for n in 0..10 {
        seen = flag(if n % 2 == 0 {
            FlagOp::Add
        } else {
            FlagOp::Remove
        });
    }
    let gone = st.expunge(i.id, &[2]).unwrap().modseq;
    assert!(gone > seen);
    assert_eq!(flushes(), before, "relaxed commits inside the reservation");

    // A power loss takes back the last commits (their modseqs were shown).
    st.writer
        .lock()
        .unwrap()
        .execute(
            "UPDATE mailboxes SET highest_modseq = highest_modseq - 5 WHERE id = ?1",
            [i.id],
        )
        .unwrap();
    assert_eq!(st.skip_unsynced_modseqs().unwrap(), 1);
    let now = inbox(st, a.id).highest_modseq;
    assert!(now > gone, "{now} > {gone}");
    // Nothing to skip any more; the next change needs a new reservation,
    // which is made durable before the change is reported: not by an
    // inline write (its thread must not wait for the disk), which leaves it
    // to the plain one, on a thread that may.
    assert_eq!(st.skip_unsynced_modseqs().unwrap(), 0);
    let next = flushes();
    assert!(st
        .try_store_flags(i.id, &[1], FlagOp::Add, &s(&["\\Seen"]), None)
        .is_none());
    assert_eq!(inbox(st, a.id).highest_modseq, now, "nothing was changed");
    assert_eq!(flushes(), next);
    assert!(flag(FlagOp::Add) > now);
    assert_eq!(flushes(), next + 1, "the new reservation was flushed");
    let reserved: i64 = st
        .writer
        .lock()
        .unwrap()
        .query_row(
            "SELECT modseq_reserved FROM mailboxes WHERE id = ?1",
            [i.id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(reserved, now as i64 + 1 + MODSEQ_RESERVE);
    // The inline STORE path does the same.
    let m = st
        .try_store_flags(i.id, &[1], FlagOp::Remove, &s(&["\\Seen"]), None)
        .unwrap()
        .unwrap()
        .highest_modseq;
    assert_eq!(m, now + 2);
    assert_eq!(flushes(), next + 1);
}

/// Dropping the store closes every connection before it returns. SQLite's
/// last close of a database checkpoints it and removes its WAL by name; a
/// connection left to a background thread would do that later, to the WAL
/// of a store opened on the same path in between (a restart).
#[test]
fn dropping_the_store_closes_every_connection() {
    let f = fixture();
    let st = &f.store;
    let a = st.create_account("alice", "h").unwrap();
    let mbox = inbox(st, a.id).id;
    st.append(mbox, &[msg(1, &[])]).unwrap();
    let wal = PathBuf::from(format!("{}-wal", f.path.display()));
    assert!(wal.exists(), "the commits are in the WAL");
    let Fixture { _dir, path, store } = f;
    drop(store);
    assert!(!wal.exists(), "a connection outlived the store");
    // And the next store opens what the last one wrote.
    let st = SqliteStore::open(&path).unwrap();
    assert_eq!(uids(&st, mbox).len(), 1);
}

/// `make_durable` flushes the WAL only when a commit was made since the last
/// flush began: deleting files after a durable DELETE costs no second fsync.
#[test]
fn making_durable_what_already_is_needs_no_flush() {
    let f = fixture();
    let st = &f.store;
    let a = st.create_account("alice", "h").unwrap();
    let i = inbox(st, a.id);
    st.append(i.id, &[msg(1, &[])]).unwrap();
    st.flush_search_texts();
    let flushes = || st.wal_flush.snapshot().0;
    // The APPEND was durable; the text writer's commit since was not.
    st.make_durable().unwrap();
    let before = flushes();
    st.make_durable().unwrap();
    assert_eq!(flushes(), before, "nothing committed since the last flush");
    // A flag change does not wait for the disk: the next call flushes.
    st.store_flags(i.id, &[1], FlagOp::Add, &s(&["\\Seen"]), None)
        .unwrap();
    st.make_durable().unwrap();
    assert_eq!(flushes(), before + 1);
    st.make_durable().unwrap();
    assert_eq!(flushes(), before + 1);
}

/// The last UIDs: an APPEND that would take a UID past the 32-bit space
/// fails and leaves the mailbox as it was; changes that take no UID go on.
#[test]
fn uid_space_exhausted_fails_and_changes_nothing() {
    let f = fixture();
    let st = &f.store;
    let a = st.create_account("alice", "h").unwrap();
    let i = inbox(st, a.id);
    let last = u32::MAX - 1;
    st.writer
        .lock()
        .unwrap()
        .execute(
            "UPDATE mailboxes SET uidnext = ?2 WHERE id = ?1",
            params![i.id, i64::from(last)],
        )
        .unwrap();
    assert_eq!(st.append(i.id, &[msg(1, &[])]).unwrap().uids, vec![last]);
    let count = || st.status(i.id).unwrap().messages;
    let before = inbox(st, a.id);
    let err = st.append(i.id, &[msg(2, &[])]).unwrap_err();
    assert!(err.to_string().contains("UID space exhausted"), "{err}");
    let after = inbox(st, a.id);
    assert_eq!(after.uidnext, u32::MAX);
    assert_eq!(
        (after.uidnext, after.highest_modseq),
        (before.uidnext, before.highest_modseq)
    );
    assert_eq!(count(), 1);
    // Flag changes and expunges take no UID and still work.
    let m = st
        .store_flags(i.id, &[last], FlagOp::Add, &s(&["\\Seen"]), None)
        .unwrap()
        .highest_modseq;
    assert_eq!(m, before.highest_modseq + 1);
    assert_eq!(st.expunge(i.id, &[last]).unwrap().uids, vec![last]);
    assert_eq!(count(), 0);
}
