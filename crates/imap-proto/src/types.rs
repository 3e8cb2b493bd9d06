//! Typed IMAP commands: what the parsers in `parse/` produce and the server's
//! command handlers consume. No I/O here.
//!
//! Conventions: mailbox names are kept as the raw bytes the client sent
//! (`MailboxName`); the server decodes modified UTF-7 or UTF-8 depending on the
//! session (IMAP4rev1 vs IMAP4rev2/UTF8=ACCEPT). `INBOX` is *not* normalised by
//! the parser either.

use std::path::PathBuf;

/// A command tag (any `tag` per RFC 9051 grammar).
pub type Tag = String;

/// A literal's payload, as handed to the framer by the connection.
/// Large APPEND literals are spooled to a file so they never sit in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiteralData {
    Memory(Vec<u8>),
    /// A spool file holding exactly `len` bytes. The owner deletes it when done.
    Spooled {
        path: PathBuf,
        len: u64,
    },
}

impl LiteralData {
    pub fn len(&self) -> u64 {
        match self {
            LiteralData::Memory(v) => v.len() as u64,
            LiteralData::Spooled { len, .. } => *len,
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A mailbox name as sent by the client (after quoting/literal removal).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MailboxName(pub Vec<u8>);

/// One element of a sequence set: `n`, `*`, `n:m`, `n:*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqNum {
    Value(u32),
    /// `*`: the largest number in use.
    Star,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SequenceSet {
    /// Ranges in client order; `(a, b)` with a == b for single numbers. `a` may be > `b`.
    Ranges(Vec<(SeqNum, SeqNum)>),
    /// `$`: the saved search result (RFC 5182 SEARCHRES).
    Saved,
}

impl SequenceSet {
    /// The numbers of the set with `*` as `star`, as ranges `(low, high)`,
    /// sorted, with overlapping and adjacent ranges merged: never more ranges
    /// than the client sent, each number once, and membership is a binary
    /// search ([`ranges_contain`]). A client repeating `1:*` a thousand times
    /// gets one range. Empty for `$`.
    pub fn normalized(&self, star: u32) -> Vec<(u32, u32)> {
        let SequenceSet::Ranges(r) = self else {
            return Vec::new();
        };
        let v = |n: SeqNum| match n {
            SeqNum::Value(v) => v,
            SeqNum::Star => star,
        };
        let mut ranges: Vec<(u32, u32)> = r
            .iter()
            .map(|&(a, b)| (v(a).min(v(b)), v(a).max(v(b))))
            .collect();
        ranges.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
        for (lo, hi) in ranges {
            match merged.last_mut() {
                Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        merged
    }
}

/// Whether `n` is in `ranges`, as [`SequenceSet::normalized`] gives them.
pub fn ranges_contain(ranges: &[(u32, u32)], n: u32) -> bool {
    let i = ranges.partition_point(|&(_, hi)| hi < n);
    ranges.get(i).is_some_and(|&(lo, _)| lo <= n)
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Flag {
    Seen,
    Answered,
    Flagged,
    Deleted,
    Draft,
    /// A keyword atom (case preserved).
    Keyword(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreMode {
    Replace,
    Add,
    Remove,
}

/// `BODY[<section>]` section spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Part path, e.g. `[1, 2]` for `1.2`; empty for the whole message.
    pub part: Vec<u32>,
    pub text: Option<SectionText>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionText {
    Header,
    /// Field names as sent (case preserved; responses echo them upper-cased like Dovecot).
    HeaderFields(Vec<String>),
    HeaderFieldsNot(Vec<String>),
    Text,
    Mime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchAttr {
    Envelope,
    Flags,
    InternalDate,
    Rfc822,
    Rfc822Header,
    Rfc822Text,
    Rfc822Size,
    Body,
    BodyStructure,
    Uid,
    ModSeq,
    /// `BODY[section]<partial>` / `BODY.PEEK[...]`. partial = (offset, length).
    BodySection {
        section: Section,
        partial: Option<(u32, u32)>,
        peek: bool,
    },
    /// `BINARY[part]<partial>` / `BINARY.PEEK[...]` (RFC 3516).
    Binary {
        part: Vec<u32>,
        partial: Option<(u32, u32)>,
        peek: bool,
    },
    BinarySize {
        part: Vec<u32>,
    },
    /// RFC 8970 PREVIEW (optionally LAZY).
    Preview {
        lazy: bool,
    },
    /// RFC 8474 OBJECTID items.
    EmailId,
    ThreadId,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchModifier {
    /// CONDSTORE `(CHANGEDSINCE n)`.
    ChangedSince(u64),
    /// QRESYNC `(VANISHED)` (UID FETCH only).
    Vanished,
}

/// A date as `d-Mon-yyyy` (no time), for SEARCH.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date {
    pub year: i32,
    pub month: u32,
    pub day: u32,
}

/// `date-time` as in APPEND: stored as seconds since the epoch (UTC) plus the
/// zone offset the client gave, in minutes east of UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime {
    pub unix: i64,
    pub offset_minutes: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchKey {
    All,
    Answered,
    Deleted,
    Draft,
    Flagged,
    Seen,
    Unanswered,
    Undeleted,
    Undraft,
    Unflagged,
    Unseen,
    /// IMAP4rev1 only keys, still accepted.
    New,
    Old,
    Recent,
    Keyword(String),
    Unkeyword(String),
    /// Header/body string keys carry the raw bytes as sent (charset applied by the server).
    Bcc(Vec<u8>),
    Cc(Vec<u8>),
    From(Vec<u8>),
    To(Vec<u8>),
    Subject(Vec<u8>),
    Body(Vec<u8>),
    Text(Vec<u8>),
    Header(String, Vec<u8>),
    Before(Date),
    On(Date),
    Since(Date),
    SentBefore(Date),
    SentOn(Date),
    SentSince(Date),
    Larger(u64),
    Smaller(u64),
    Uid(SequenceSet),
    SequenceSet(SequenceSet),
    Not(Box<SearchKey>),
    Or(Box<SearchKey>, Box<SearchKey>),
    /// A parenthesised list, or the implicit AND of the top-level keys.
    And(Vec<SearchKey>),
    /// CONDSTORE `MODSEQ [entry-name entry-type] n`; only the number matters here.
    ModSeq(u64),
    /// RFC 5032 WITHIN.
    Older(u64),
    Younger(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchReturnOpt {
    Min,
    Max,
    All,
    Count,
    Save,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchCommand {
    /// `CHARSET x` if given (upper-cased by the parser is NOT done; compare case-insensitively).
    pub charset: Option<String>,
    /// `RETURN (...)` given? `Some(vec![])` means `RETURN ()` (== ALL in ESEARCH form).
    pub return_opts: Option<Vec<SearchReturnOpt>>,
    /// The top-level keys, AND-ed.
    pub key: SearchKey,
}

/// RFC 5256 / RFC 5957 sort keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Arrival,
    Cc,
    Date,
    From,
    Size,
    Subject,
    To,
    DisplayFrom,
    DisplayTo,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortCriterion {
    pub reverse: bool,
    pub key: SortKey,
}

/// RFC 5256 THREAD algorithms (REFS: Dovecot / draft-ietf-morg-inthread).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadAlgorithm {
    OrderedSubject,
    References,
    Refs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusItem {
    Messages,
    Recent,
    UidNext,
    UidValidity,
    Unseen,
    Deleted,
    Size,
    HighestModSeq,
    AppendLimit,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListSelectOpt {
    Subscribed,
    Remote,
    RecursiveMatch,
    SpecialUse,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListReturnOpt {
    Subscribed,
    Children,
    SpecialUse,
    Status(Vec<StatusItem>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListCommand {
    pub select_opts: Vec<ListSelectOpt>,
    /// True if a `(...)` selection-option list was present (even empty): LIST-EXTENDED syntax.
    pub extended: bool,
    pub reference: MailboxName,
    /// One or more patterns (LIST-EXTENDED allows a parenthesised list).
    pub patterns: Vec<MailboxName>,
    pub return_opts: Vec<ListReturnOpt>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendMessage {
    pub flags: Vec<Flag>,
    pub date: Option<DateTime>,
    pub data: LiteralData,
    /// Sent as `~{n}` (literal8, RFC 3516).
    pub binary: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectParams {
    pub condstore: bool,
    /// QRESYNC `(uidvalidity modseq [known-uids [(seq-match-data)]])`.
    pub qresync: Option<QResyncParams>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QResyncParams {
    pub uidvalidity: u32,
    pub modseq: u64,
    pub known_uids: Option<SequenceSet>,
    pub seq_match: Option<(SequenceSet, SequenceSet)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Capability,
    Noop,
    Logout,
    StartTls,
    /// `AUTHENTICATE mech [initial-response]`; initial response is the raw base64 text
    /// (`=` for an empty one), not decoded.
    Authenticate {
        mechanism: String,
        initial_response: Option<Vec<u8>>,
    },
    Login {
        username: Vec<u8>,
        password: Vec<u8>,
    },
    Enable(Vec<String>),
    /// `ID NIL` → None; `ID ("k" "v" ...)` → pairs (value None for NIL).
    #[allow(clippy::type_complexity)]
    Id(Option<Vec<(Vec<u8>, Option<Vec<u8>>)>>),
    Namespace,
    Select {
        mailbox: MailboxName,
        params: SelectParams,
    },
    Examine {
        mailbox: MailboxName,
        params: SelectParams,
    },
    Create {
        mailbox: MailboxName,
        /// RFC 6154 `CREATE name (USE (\Drafts ...))`.
        special_use: Vec<String>,
    },
    Delete(MailboxName),
    Rename {
        from: MailboxName,
        to: MailboxName,
    },
    Subscribe(MailboxName),
    Unsubscribe(MailboxName),
    List(ListCommand),
    Lsub {
        reference: MailboxName,
        pattern: MailboxName,
    },
    Status {
        mailbox: MailboxName,
        items: Vec<StatusItem>,
    },
    /// One or more messages (MULTIAPPEND).
    Append {
        mailbox: MailboxName,
        messages: Vec<AppendMessage>,
    },
    Idle,
    Check,
    Close,
    Unselect,
    Expunge,
    /// `UID EXPUNGE set` (UIDPLUS).
    UidExpunge(SequenceSet),
    Search {
        uid: bool,
        search: SearchCommand,
    },
    /// RFC 5256 SORT; `search.return_opts` is the RFC 5267 ESORT `RETURN (...)`.
    Sort {
        uid: bool,
        criteria: Vec<SortCriterion>,
        search: SearchCommand,
    },
    /// RFC 5256 THREAD.
    Thread {
        uid: bool,
        algorithm: ThreadAlgorithm,
        search: SearchCommand,
    },
    Fetch {
        uid: bool,
        set: SequenceSet,
        /// Macros (ALL/FAST/FULL) are expanded by the parser.
        attrs: Vec<FetchAttr>,
        modifiers: Vec<FetchModifier>,
    },
    Store {
        uid: bool,
        set: SequenceSet,
        mode: StoreMode,
        silent: bool,
        flags: Vec<Flag>,
        /// CONDSTORE `(UNCHANGEDSINCE n)`.
        unchanged_since: Option<u64>,
    },
    Copy {
        uid: bool,
        set: SequenceSet,
        mailbox: MailboxName,
    },
    Move {
        uid: bool,
        set: SequenceSet,
        mailbox: MailboxName,
    },
    /// RFC 5465 `NOTIFY NONE` (None) or `NOTIFY SET ...`.
    Notify(Option<NotifySet>),
}

/// A parsed request: tag + command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub tag: Tag,
    pub command: Command,
}

/// Why a command could not be parsed. `tag` is set whenever a tag could be read,
/// so the server answers `tag BAD text` (else `* BAD text`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text}")]
pub struct ParseError {
    pub tag: Option<Tag>,
    pub text: String,
}

/// RFC 5465 `NOTIFY SET [STATUS] event-group...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifySet {
    /// `STATUS`: send the current STATUS of the watched mailboxes at once.
    pub status: bool,
    pub groups: Vec<NotifyGroup>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyGroup {
    pub filter: NotifyFilter,
    /// Empty for `NONE`.
    pub events: Vec<NotifyEvent>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyFilter {
    Selected,
    SelectedDelayed,
    Inboxes,
    Personal,
    Subscribed,
    Subtree(Vec<MailboxName>),
    Mailboxes(Vec<MailboxName>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyEvent {
    /// With the FETCH attributes to send for new messages (selected mailbox only).
    MessageNew(Vec<FetchAttr>),
    MessageExpunge,
    FlagChange,
    AnnotationChange,
    MailboxName,
    SubscriptionChange,
    MailboxMetadataChange,
    ServerMetadataChange,
    /// Any other event name (`event-ext`, upper-cased): refused by the server
    /// with NO [BADEVENT].
    Other(String),
}

#[cfg(test)]
mod sequence_set_tests {
    use super::*;

    #[test]
    fn normalized_sorts_merges_and_resolves_star() {
        use SeqNum::{Star, Value};
        let set = SequenceSet::Ranges(vec![
            (Value(9), Value(7)),
            (Value(1), Star),
            (Value(1), Star),
            (Value(20), Value(20)),
            (Value(12), Value(13)),
            (Value(14), Value(15)),
        ]);
        assert_eq!(set.normalized(5), vec![(1, 5), (7, 9), (12, 15), (20, 20)]);
        assert_eq!(set.normalized(30), vec![(1, 30)]);
        assert!(SequenceSet::Saved.normalized(5).is_empty());
        let r = set.normalized(5);
        let inside: Vec<u32> = (0..=21).filter(|&n| ranges_contain(&r, n)).collect();
        assert_eq!(inside, vec![1, 2, 3, 4, 5, 7, 8, 9, 12, 13, 14, 15, 20]);
        assert!(!ranges_contain(&[], 1));
        let top = SequenceSet::Ranges(vec![(Value(u32::MAX), Value(1))]);
        assert_eq!(top.normalized(1), vec![(1, u32::MAX)]);
    }
}
