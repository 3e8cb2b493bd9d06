//! Storage for Pillarbox: the [`MetaStore`] (accounts, mailboxes, messages,
//! flags, modseq change log), the [`BlobStore`] (raw message bytes,
//! content-addressed with BLAKE3, zstd-compressed) and the [`ChangeBus`]
//! (post-commit hints "mailbox X changed at modseq N").
//!
//! The embedded backend is SQLite in WAL mode (`sqlite` module) plus blob files
//! in the data directory (`blob` module). The API is synchronous: each call is one
//! transaction; the server runs calls on tokio's blocking pool. Nothing here
//! assumes that only one process writes the store: the change bus is only a hint,
//! and sessions re-read `changes_since`.
//!
//! Mailbox names are UTF-8 with `/` as hierarchy separator; `INBOX` is always
//! stored as exactly `INBOX` (the server normalises case).

pub mod blob;
pub mod bus;
mod flush;
pub mod gate;
pub mod sqlite;

pub use blob::{BlobId, BlobStore, FsBlobStore, InlineBlobs, TieredBlobStore};
pub use bus::{ChangeBus, ChangeEvent, ChangeKind, ChangeReceiver, Delta};
pub use gate::BlobGate;
pub use sqlite::SqliteStore;

pub type AccountId = i64;
pub type MailboxId = i64;
pub type Uid = u32;
pub type ModSeq = u64;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("mailbox does not exist")]
    NoSuchMailbox,
    #[error("mailbox already exists")]
    MailboxExists,
    #[error("account does not exist")]
    NoSuchAccount,
    #[error("account already exists")]
    AccountExists,
    #[error("invalid name: {0}")]
    InvalidName(String),
    #[error("database error: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Other(String),
}

impl StoreError {
    /// The thing asked for does not exist: for a blob, its bytes were freed
    /// because no message references it any more (an expunge committed since
    /// the caller learnt of the message).
    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreError::Io(e) if e.kind() == std::io::ErrorKind::NotFound)
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    pub name: String,
    pub password_hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxInfo {
    pub id: MailboxId,
    pub account: AccountId,
    pub name: String,
    pub uidvalidity: u32,
    /// Next UID to assign; never decreases, never reused.
    pub uidnext: Uid,
    /// Highest modseq of any change in this mailbox (starts at 1).
    pub highest_modseq: ModSeq,
    /// RFC 6154 attribute, e.g. `\Sent`.
    pub special_use: Option<String>,
    /// The first UID no session has been given as \Recent (see
    /// [`MetaStore::claim_recent`]): below `uidnext`, there is new mail.
    pub recent_from: Uid,
}

/// A message's flags (see [`MessageMeta::flags`]). Shared: messages with the
/// same flags read together point to one list, so a view of a large mailbox
/// holds a handful of lists, not one per message; see also [`share_flags`].
pub type Flags = std::sync::Arc<Vec<String>>;

/// The system flags a message can have (`\Recent` is never stored), in
/// canonical case and sorted.
pub const SYSTEM_FLAGS: [&str; 5] = ["\\Answered", "\\Deleted", "\\Draft", "\\Flagged", "\\Seen"];

/// `list` (canonical and sorted, as [`MessageMeta::flags`]) as [`Flags`]:
/// a list of system flags only (most messages' flags; 32 possible lists) is
/// one list shared by the whole process, whoever read or changed the
/// message. Every view and snapshot then points the most of its messages at
/// a few lists that stay in the CPU's cache, instead of one allocation per
/// message changed since it was read (walking a view's flags, as SELECT
/// does for its FLAGS and UNSEEN, was a cache miss per message). Lists with
/// keywords get their own allocation.
pub fn share_flags(list: &[String]) -> Flags {
    static SYSTEM_SETS: std::sync::LazyLock<Vec<Flags>> = std::sync::LazyLock::new(|| {
        (0..1usize << SYSTEM_FLAGS.len())
            .map(|mask| {
                let set = SYSTEM_FLAGS
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| mask & (1 << i) != 0)
                    .map(|(_, f)| f.to_string())
                    .collect();
                std::sync::Arc::new(set)
            })
            .collect()
    });
    let mut mask = 0;
    for f in list {
        match SYSTEM_FLAGS.iter().position(|s| s == f) {
            Some(i) => mask |= 1 << i,
            None => return std::sync::Arc::new(list.to_vec()),
        }
    }
    let shared = &SYSTEM_SETS[mask];
    // Equal only if in the canonical order without repeats; anything else
    // is kept as it came.
    if shared.as_slice() == list {
        shared.clone()
    } else {
        std::sync::Arc::new(list.to_vec())
    }
}

/// Per-message metadata as a session needs it for its view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageMeta {
    pub uid: Uid,
    pub modseq: ModSeq,
    /// Flags and keywords exactly as they should be shown: system flags in canonical
    /// case (`\Seen`, `\Answered`, `\Flagged`, `\Deleted`, `\Draft`), keywords as first set.
    /// Sorted, no duplicates (case-insensitive).
    pub flags: Flags,
    /// INTERNALDATE: seconds since the epoch (UTC) and the zone offset in minutes to show it in.
    pub internal_date: i64,
    pub date_offset_minutes: i32,
    /// RFC822.SIZE (bytes of the stored message).
    pub size: u64,
    pub blob: BlobId,
}

/// A message to add (APPEND, COPY from another account, LMTP, import).
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub blob: BlobId,
    pub size: u64,
    pub internal_date: i64,
    pub date_offset_minutes: i32,
    pub flags: Vec<String>,
    /// Serialised MIME summary (opaque to the store).
    pub summary: Vec<u8>,
    /// The blob's compressed bytes ([`BlobStore::stage`]) when the
    /// metadata store keeps them: written in the same transaction as the
    /// message row. `None`: the blob is already durable in the blob store.
    pub inline: Option<std::sync::Arc<[u8]>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendResult {
    pub uidvalidity: u32,
    pub uids: Vec<Uid>,
    pub modseq: ModSeq,
    /// The UIDs `[from, to)` now \Recent for the caller
    /// ([`MetaStore::append_indexed_recent`]); empty otherwise.
    pub recent: (Uid, Uid),
}

/// What changed in a mailbox after some modseq.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxChanges {
    pub uidvalidity: u32,
    pub uidnext: Uid,
    pub highest_modseq: ModSeq,
    /// Messages that still exist and were added or had flags changed with modseq > since,
    /// ordered by UID.
    pub changed: Vec<MessageMeta>,
    /// UIDs expunged with modseq > since (tombstones), ascending. When the
    /// mailbox no longer keeps tombstones back to `since` (it keeps a bounded
    /// number), every UID below `uidnext` it does not hold: a superset, which
    /// also names UIDs gone before `since`.
    pub expunged: Vec<Uid>,
}

impl MailboxChanges {
    /// `old` (messages ascending by UID, as of the state these changes
    /// start from) with the changes applied: changed messages replace or
    /// join it, expunged ones leave it.
    pub fn apply_to(&self, old: &[MessageMeta]) -> Vec<MessageMeta> {
        let mut out = Vec::with_capacity(old.len() + self.changed.len());
        let mut changed = self.changed.iter().peekable();
        let mut expunged = self.expunged.iter().peekable();
        let mut gone = |uid: Uid| {
            while expunged.next_if(|&&u| u < uid).is_some() {}
            expunged.peek().is_some_and(|&&u| u == uid)
        };
        for m in old {
            while let Some(c) = changed.next_if(|c| c.uid < m.uid) {
                out.push(c.clone());
            }
            match changed.next_if(|c| c.uid == m.uid) {
                Some(c) => out.push(c.clone()),
                None if gone(m.uid) => {}
                None => out.push(m.clone()),
            }
        }
        out.extend(changed.cloned());
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagOp {
    Replace,
    Add,
    Remove,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreFlagsResult {
    /// Messages whose flags actually changed: (uid, new flags, new modseq).
    pub updated: Vec<(Uid, Vec<String>, ModSeq)>,
    /// UIDs that failed the UNCHANGEDSINCE test (CONDSTORE `[MODIFIED ...]`).
    pub modified: Vec<Uid>,
    /// UIDs asked for that the mailbox no longer has (expunged meanwhile).
    pub missing: Vec<Uid>,
    pub highest_modseq: ModSeq,
}

/// What an EXPUNGE did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expunged {
    /// The UIDs expunged, ascending (those of the request that existed).
    pub uids: Vec<Uid>,
    /// The mailbox's modseq after the expunge.
    pub modseq: ModSeq,
    /// Blobs no message references any more that may have a file in the
    /// blob store. A body kept in the metadata store went with the
    /// transaction; these files are the caller's to delete, after checking
    /// the references again under the blob gate (an APPEND of the same
    /// content may have found the file present meanwhile).
    pub unreferenced_files: Vec<BlobId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyResult {
    pub uidvalidity: u32,
    /// Source UIDs actually copied (ascending) and the UIDs they got in the target, pairwise.
    pub src_uids: Vec<Uid>,
    pub dst_uids: Vec<Uid>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailboxStatus {
    pub messages: u32,
    pub unseen: u32,
    pub deleted: u32,
    /// Sum of RFC822.SIZE.
    pub size: u64,
    pub uidnext: Uid,
    pub uidvalidity: u32,
    pub highest_modseq: ModSeq,
}

/// Which decoded text of a message a full-text lookup is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextPart {
    /// The decoded header block (SEARCH HEADER/FROM/SUBJECT/... and the header half of TEXT).
    Headers,
    /// The decoded body text (SEARCH BODY and the body half of TEXT).
    Body,
}

/// What SEARCH, SORT and THREAD need of one message content, computed once at
/// ingest by the server (the store does not parse MIME) and kept per blob.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchDoc {
    /// Case-folded, decoded header block: exactly the text SEARCH TEXT matches headers against.
    pub headers: String,
    /// Case-folded, decoded body text: exactly the text SEARCH BODY matches against.
    pub body: String,
    pub fields: HeaderFields,
    /// RFC 8970 preview text (at most 256 characters, empty when the message
    /// has no text to preview), served by FETCH PREVIEW without parsing.
    pub preview: String,
}

/// What SORT and THREAD need of one message, read in one pass over a mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortRow {
    pub uid: Uid,
    pub internal_date: i64,
    pub size: u64,
    pub blob: BlobId,
    /// Stored header values; `None` when the message is not indexed. Stores
    /// may leave out what SORT/THREAD do not use (the From/To/Cc/Bcc search
    /// values and the sent day) and give an indexed message an empty `blob`.
    pub fields: Option<HeaderFields>,
}

/// The numeric SORT keys of one message (ARRIVAL, SIZE, DATE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortDate {
    pub uid: Uid,
    pub internal_date: i64,
    pub size: u64,
    /// Whether the message is indexed: only then is `sent_date` known (`None`
    /// then means the message has no usable Date: header).
    pub indexed: bool,
    pub sent_date: Option<i64>,
}

/// Decoded header values and sort/thread keys of one message content.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderFields {
    /// Case-folded decoded values of the Subject/From/To/Cc/Bcc fields, several
    /// fields of the same name joined with NUL; `None` when there is no such field.
    pub subject: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub cc: Option<String>,
    pub bcc: Option<String>,
    /// The Date: header as seconds since the epoch (UTC), if it parses (SORT DATE).
    pub sent_date: Option<i64>,
    /// The Date: header's own calendar day as `yyyymmdd` (SENTBEFORE/SENTON/SENTSINCE).
    pub sent_day: Option<i32>,
    /// RFC 5256 base subject, upper-cased (SORT SUBJECT, THREAD).
    pub sort_subject: String,
    /// addr-mailbox of the first From/To/Cc address, upper-cased (SORT FROM/TO/CC).
    pub sort_from: String,
    pub sort_to: String,
    pub sort_cc: String,
    /// RFC 5957 display name (or address) of the first From/To address, upper-cased.
    pub display_from: String,
    pub display_to: String,
    /// Message-ID, In-Reply-To and References as `<id>` tokens separated by spaces (THREAD).
    pub message_id: String,
    pub in_reply_to: String,
    pub references: String,
}

/// Size on disk of the search index (bytes of database pages).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchIndexSize {
    /// The two trigram FTS5 tables (header text and body text).
    pub fulltext: u64,
    /// The decoded header/sort-key table.
    pub fields: u64,
    /// Distinct message contents indexed.
    pub docs: u64,
}

/// The metadata store. Every mutation bumps the mailbox's modseq and records the
/// change (flags, appends, and expunges as tombstones) in one transaction, and
/// is durable when the call returns.
pub trait MetaStore: Send + Sync {
    // ---- accounts
    /// Creates the account with INBOX, Drafts, Sent, Trash, Junk and Archive
    /// (special-use \Drafts \Sent \Trash \Junk \Archive), all subscribed.
    fn create_account(&self, name: &str, password_hash: &str) -> Result<Account>;
    fn account(&self, name: &str) -> Result<Option<Account>>;
    fn set_password(&self, name: &str, password_hash: &str) -> Result<()>;
    /// Deletes the account, its mailboxes and messages; returns the blobs no longer
    /// referenced by anything that may have a file, for the caller to delete
    /// (as [`Expunged::unreferenced_files`]).
    fn delete_account(&self, name: &str) -> Result<Vec<BlobId>>;
    fn list_accounts(&self) -> Result<Vec<String>>;

    // ---- mailboxes
    fn list_mailboxes(&self, account: AccountId) -> Result<Vec<MailboxInfo>>;
    fn mailbox(&self, account: AccountId, name: &str) -> Result<Option<MailboxInfo>>;
    /// The mailbox with this id (NoSuchMailbox if there is none).
    fn mailbox_by_id(&self, id: MailboxId) -> Result<MailboxInfo>;
    /// Creates the mailbox and any missing parents (RFC 9051 6.3.4). A new
    /// mailbox gets a fresh UIDVALIDITY never used before for that name.
    fn create_mailbox(
        &self,
        account: AccountId,
        name: &str,
        special_use: Option<&str>,
    ) -> Result<MailboxInfo>;
    /// Deletes the mailbox and its messages (not its children); returns the
    /// blobs no longer referenced that may have a file (as
    /// [`Expunged::unreferenced_files`]).
    fn delete_mailbox(&self, account: AccountId, name: &str) -> Result<Vec<BlobId>>;
    /// Of these blobs, the ones no message references (now). A caller about
    /// to delete blob files checks again with this while no APPEND can be
    /// between storing a file and committing its message: an APPEND of the
    /// same content may have found the file present and referenced it since.
    fn unreferenced_blobs(&self, ids: &[BlobId]) -> Result<Vec<BlobId>>;
    /// Returns once every commit this store has made so far is durable.
    /// Most writes are durable when they return; those that are not (flag
    /// changes, EXPUNGE) become durable here, or with the next write that is.
    /// A blob file may be deleted only after the commit that stopped
    /// referencing it is durable: otherwise a crash could bring back its
    /// messages without their bytes.
    fn make_durable(&self) -> Result<()> {
        Ok(())
    }
    /// Renames the mailbox and all its children (`from/...`). Renaming INBOX
    /// moves all its messages into a new mailbox `to` and leaves INBOX empty.
    /// Creates missing parents of `to`. UIDVALIDITY is kept (except for INBOX).
    fn rename_mailbox(&self, account: AccountId, from: &str, to: &str) -> Result<()>;
    fn subscriptions(&self, account: AccountId) -> Result<Vec<String>>;
    fn subscribe(&self, account: AccountId, name: &str) -> Result<()>;
    fn unsubscribe(&self, account: AccountId, name: &str) -> Result<()>;

    // ---- messages
    /// Appends all messages atomically (MULTIAPPEND): all or none.
    fn append(&self, mailbox: MailboxId, messages: &[NewMessage]) -> Result<AppendResult>;
    /// A consistent snapshot of the mailbox: its info and all messages by UID.
    fn snapshot(&self, mailbox: MailboxId) -> Result<(MailboxInfo, Vec<MessageMeta>)>;
    fn changes_since(&self, mailbox: MailboxId, modseq: ModSeq) -> Result<MailboxChanges>;
    /// A number that changes whenever another process commits to the store
    /// (it may change without one, too); None when it cannot be had without
    /// waiting. Equal values taken at two moments mean that every change in
    /// between was made by this process, which publishes its own (see the
    /// server's publish log).
    fn foreign_version(&self) -> Option<u64> {
        None
    }
    /// (account, mailbox, highest modseq) of every mailbox: what a process
    /// compares with what it published to find another process's changes.
    fn mailbox_modseqs(&self) -> Result<Vec<(AccountId, MailboxId, ModSeq)>>;
    /// Changes flags of the given UIDs (those that no longer exist are ignored).
    /// With `unchanged_since`, messages whose modseq is greater are not touched and
    /// reported in `modified`.
    fn store_flags(
        &self,
        mailbox: MailboxId,
        uids: &[Uid],
        op: FlagOp,
        flags: &[String],
        unchanged_since: Option<ModSeq>,
    ) -> Result<StoreFlagsResult>;
    /// Like [`MetaStore::store_flags`], but returns None without doing
    /// anything when it would have to wait for another writer, or for the
    /// disk (a change that must be durable before it is reported), so that
    /// a caller can run it on a thread that must not block and fall back to
    /// `store_flags` elsewhere.
    fn try_store_flags(
        &self,
        mailbox: MailboxId,
        uids: &[Uid],
        op: FlagOp,
        flags: &[String],
        unchanged_since: Option<ModSeq>,
    ) -> Option<Result<StoreFlagsResult>> {
        let _ = (mailbox, uids, op, flags, unchanged_since);
        None
    }
    /// Expunges the given UIDs (those that exist): see [`Expunged`]. The
    /// commit need not be durable when this returns (see
    /// [`MetaStore::make_durable`]): a crash may bring the messages back,
    /// never lose one.
    fn expunge(&self, mailbox: MailboxId, uids: &[Uid]) -> Result<Expunged>;
    /// IMAP EXPUNGE: like [`MetaStore::expunge`], for those of `uids` whose
    /// `\Deleted` flag is set when the write commits. A session chooses the
    /// UIDs from its view, which may be behind: a message another session
    /// (or process) undeleted meanwhile stays.
    fn expunge_deleted(&self, mailbox: MailboxId, uids: &[Uid]) -> Result<Expunged>;
    /// Like [`MetaStore::expunge_deleted`], but returns None without doing
    /// anything when it would have to wait for another writer (see
    /// [`MetaStore::try_store_flags`]).
    fn try_expunge_deleted(&self, mailbox: MailboxId, uids: &[Uid]) -> Option<Result<Expunged>> {
        let _ = (mailbox, uids);
        None
    }
    /// Copies (or moves, when `remove_source`) messages, keeping flags and internal
    /// date, in one transaction. Works across accounts.
    fn copy(
        &self,
        src: MailboxId,
        dst: MailboxId,
        uids: &[Uid],
        remove_source: bool,
    ) -> Result<CopyResult>;
    /// The stored MIME summary of a message.
    fn summary(&self, mailbox: MailboxId, uid: Uid) -> Result<Option<Vec<u8>>> {
        Ok(self.summaries(mailbox, &[uid])?.pop().flatten())
    }
    /// The stored MIME summaries of several messages, in the order of `uids`,
    /// read in one transaction.
    fn summaries(&self, mailbox: MailboxId, uids: &[Uid]) -> Result<Vec<Option<Vec<u8>>>>;
    fn status(&self, mailbox: MailboxId) -> Result<MailboxStatus>;
    /// IMAP4rev1's \Recent (RFC 3501 2.3.2): the UIDs `[from, to)` that no
    /// session has been given as recent yet (`to` is UIDNEXT), now this
    /// caller's: no later call returns them. (Whether there are any is
    /// [`MailboxInfo::recent_from`] below `uidnext`.) Not durable at once:
    /// after a power loss some may be recent again, which is harmless.
    fn claim_recent(&self, mailbox: MailboxId) -> Result<(Uid, Uid)>;
    /// \Recent for a session that has just learnt of the messages
    /// `[from, to)` (new mail pushed or found by a sync): those of them no
    /// session has been given yet are now this caller's (RFC 3501 2.3.2,
    /// "the first session to have been notified"), returned as a range
    /// (empty when another session was first). Anything below `from` that
    /// nobody took is left to no one: the caller already knew it.
    fn claim_recent_range(&self, mailbox: MailboxId, from: Uid, to: Uid) -> Result<(Uid, Uid)>;
    /// Like [`MetaStore::claim_recent_range`], but None without doing
    /// anything when it would wait for another writer (see
    /// [`MetaStore::try_store_flags`]).
    fn try_claim_recent_range(
        &self,
        mailbox: MailboxId,
        from: Uid,
        to: Uid,
    ) -> Option<Result<(Uid, Uid)>> {
        let _ = (mailbox, from, to);
        None
    }
    /// How many messages of the mailbox no session has been given as recent
    /// (STATUS RECENT).
    fn recent_count(&self, mailbox: MailboxId) -> Result<u32>;

    // ---- search index (see `sqlite::fts`). Defaults: no index, callers fall back to scans.
    /// Like [`MetaStore::append`], also indexing `docs[i]` for `messages[i]` in
    /// the same transaction (`docs` may be shorter: the rest stay unindexed).
    fn append_indexed(
        &self,
        mailbox: MailboxId,
        messages: &[NewMessage],
        docs: &[SearchDoc],
    ) -> Result<AppendResult> {
        let _ = docs;
        self.append(mailbox, messages)
    }
    /// [`MetaStore::append_indexed`] by a session that has the mailbox
    /// selected (IMAP4rev1, read-write) and knows its UIDs below
    /// `recent_from`: it is the first to learn of its own messages, and of
    /// any other new one, so it takes \Recent for them
    /// ([`MetaStore::claim_recent_range`] from `recent_from` to the new
    /// UIDNEXT), in the same transaction when the store can
    /// ([`AppendResult::recent`]).
    fn append_indexed_recent(
        &self,
        mailbox: MailboxId,
        messages: &[NewMessage],
        docs: &[SearchDoc],
        recent_from: Option<Uid>,
    ) -> Result<AppendResult> {
        let mut r = self.append_indexed(mailbox, messages, docs)?;
        if let (Some(from), Some(&last)) = (recent_from, r.uids.iter().max()) {
            r.recent = self.claim_recent_range(mailbox, from, last + 1)?;
        }
        Ok(r)
    }
    /// Like [`MetaStore::append_indexed_recent`], but returns None without
    /// doing anything when it would have to wait (for another writer, see
    /// [`MetaStore::try_store_flags`], or for the full-text queue to make
    /// room), and returns once the commit is made,
    /// not once it is durable: the caller calls [`MetaStore::make_durable`]
    /// before it acknowledges the messages or tells anyone of them.
    fn try_append_indexed_recent(
        &self,
        mailbox: MailboxId,
        messages: &[NewMessage],
        docs: &[SearchDoc],
        recent_from: Option<Uid>,
    ) -> Option<Result<AppendResult>> {
        let _ = (mailbox, messages, docs, recent_from);
        None
    }
    /// Indexes message contents (idempotent per blob) and links every message
    /// with that blob to its document.
    fn index_docs(&self, docs: &[(BlobId, SearchDoc)]) -> Result<()> {
        let _ = docs;
        Ok(())
    }
    /// UIDs (ascending) of the messages of `mailbox` whose `part` may contain
    /// `needle` (already case-folded): a superset of the real matches that
    /// includes every message not indexed yet. `None` when the index cannot
    /// answer (needle shorter than 3 characters, or no index).
    fn text_candidates(
        &self,
        mailbox: MailboxId,
        part: TextPart,
        needle: &str,
    ) -> Result<Option<Vec<Uid>>> {
        let _ = (mailbox, part, needle);
        Ok(None)
    }
    /// Header fields of the given messages (all when `uids` is `None`), by UID
    /// ascending; `None` for a message that is not indexed.
    fn header_fields(
        &self,
        mailbox: MailboxId,
        uids: Option<&[Uid]>,
    ) -> Result<Vec<(Uid, Option<HeaderFields>)>> {
        let _ = (mailbox, uids);
        Ok(Vec::new())
    }
    /// Drops the whole search index (for `pillarbox reindex`).
    fn clear_search_index(&self) -> Result<()> {
        Ok(())
    }
    /// Makes the documents whose full text an earlier process queued but
    /// did not write unindexed again (for `unindexed_blobs`). Call at start,
    /// before this process appends anything. Returns how many there were.
    fn requeue_pending_texts(&self) -> Result<usize> {
        Ok(0)
    }
    /// Moves each mailbox's highest modseq past every modseq a commit that
    /// was not durable yet may have shown to a client (flag changes and
    /// EXPUNGE do not wait for the disk, and a power loss may take them
    /// back): a modseq, once announced, must never name another change (RFC
    /// 7162 3.1.1). Call at start, before any session. Returns how many
    /// mailboxes moved.
    fn skip_unsynced_modseqs(&self) -> Result<usize> {
        Ok(0)
    }
    /// Waits until the full text of every search document created so far by
    /// this process is in the index (it is written in batches, shortly after
    /// the APPEND; searches are right meanwhile, only slower).
    fn flush_search_texts(&self) {}
    /// Up to `limit` distinct blobs of messages that are not indexed.
    fn unindexed_blobs(&self, limit: usize) -> Result<Vec<BlobId>> {
        let _ = limit;
        Ok(Vec::new())
    }
    fn search_index_size(&self) -> Result<SearchIndexSize> {
        Ok(SearchIndexSize::default())
    }
    /// Metadata of the given messages (all when `uids` is `None`) by UID
    /// ascending; UIDs that do not exist (any more) are left out. SEARCH reads
    /// flags, dates, sizes and modseqs here instead of from a session's view.
    fn search_meta(&self, mailbox: MailboxId, uids: Option<&[Uid]>) -> Result<Vec<MessageMeta>> {
        let (_, mut all) = self.snapshot(mailbox)?;
        if let Some(uids) = uids {
            all.retain(|m| uids.contains(&m.uid));
        }
        Ok(all)
    }
    /// The numeric SORT keys of every message of the mailbox by UID ascending,
    /// when the store keeps them apart (one cheap read); `None` otherwise
    /// (callers then use [`MetaStore::sort_rows`]).
    fn sort_dates(&self, mailbox: MailboxId) -> Result<Option<Vec<SortDate>>> {
        let _ = mailbox;
        Ok(None)
    }
    /// The mailbox's UIDVALIDITY and the SORT/THREAD rows of its messages with
    /// a UID greater than `after`, by UID ascending (one read transaction).
    fn sort_rows(&self, mailbox: MailboxId, after: Uid) -> Result<(u32, Vec<SortRow>)> {
        let (info, all) = self.snapshot(mailbox)?;
        let fields = self.header_fields(mailbox, None)?;
        let rows = all
            .into_iter()
            .filter(|m| m.uid > after)
            .map(|m| SortRow {
                uid: m.uid,
                internal_date: m.internal_date,
                size: m.size,
                fields: fields
                    .binary_search_by_key(&m.uid, |f| f.0)
                    .ok()
                    .and_then(|i| fields[i].1.clone()),
                blob: m.blob,
            })
            .collect();
        Ok((info.uidvalidity, rows))
    }
    /// Stored RFC 8970 previews of the given messages, by UID ascending;
    /// `None` when a message has none stored (not indexed, or indexed before
    /// previews were kept). UIDs that do not exist are left out.
    fn previews(&self, mailbox: MailboxId, uids: &[Uid]) -> Result<Vec<(Uid, Option<String>)>> {
        let _ = mailbox;
        Ok(uids.iter().map(|&u| (u, None)).collect())
    }
}
