//! SEARCH and UID SEARCH: the whole RFC 9051 key grammar, CHARSET, ESEARCH
//! RETURN options (RFC 4731) and SEARCHRES (RFC 5182). String keys are
//! case-insensitive substring matches against decoded text (RFC 2047 words,
//! transfer encodings and body charsets decoded), as in Dovecot.
//!
//! The evaluator is brute force over decoded text, and it is the reference
//! the full-text index must agree with: with a store at hand (`Index`), string
//! keys of three characters or more first ask the store's trigram index for
//! candidates (a superset of the matches, including every unindexed message),
//! and only candidates get the exact substring check. Header keys on
//! Subject/From/To/Cc/Bcc and the SENT* keys read the decoded values stored at
//! ingest (`HeaderFields`) instead of the message blob. Without a store, or for
//! shorter needles, every message is checked: the results are the same.

use std::sync::Arc;

use pillarbox_mime::search as text;
use pillarbox_proto::respond;
use pillarbox_proto::types::{
    Date, SearchCommand, SearchKey, SearchReturnOpt, SeqNum, SequenceSet,
};
use pillarbox_store::{
    BlobStore, HeaderFields, MailboxId, MessageMeta, MetaStore, SearchDoc, TextPart, Uid,
};

use crate::cmd::{CmdError, CmdResult, Done};
use crate::session::Session;

/// Decodes the search strings of a key tree from the given charset to UTF-8.
/// `key` with its strings decoded, and its sequence and UID sets sorted and
/// merged (`*` resolved with `max_seq` and `max_uid`), so that testing a
/// message against one is a binary search ([`in_set`]).
fn decode_strings(
    key: &SearchKey,
    enc: &'static encoding_rs::Encoding,
    max_seq: u32,
    max_uid: Uid,
) -> Result<Key, String> {
    let dec = |b: &[u8]| -> Result<String, String> {
        let (s, had_errors) = enc.decode_without_bom_handling(b);
        if had_errors {
            return Err("Search string is not valid in the given charset".into());
        }
        Ok(casefold(&s))
    };
    Ok(match key {
        SearchKey::Bcc(b) => Key::Header("Bcc".into(), dec(b)?, None),
        SearchKey::Cc(b) => Key::Header("Cc".into(), dec(b)?, None),
        SearchKey::From(b) => Key::Header("From".into(), dec(b)?, None),
        SearchKey::To(b) => Key::Header("To".into(), dec(b)?, None),
        SearchKey::Subject(b) => Key::Header("Subject".into(), dec(b)?, None),
        SearchKey::Header(name, b) => Key::Header(name.clone(), dec(b)?, None),
        SearchKey::Body(b) => Key::Body(dec(b)?, None),
        SearchKey::Text(b) => Key::Text(dec(b)?, None),
        SearchKey::Not(k) => Key::Not(Box::new(decode_strings(k, enc, max_seq, max_uid)?)),
        SearchKey::Or(a, b) => Key::Or(
            Box::new(decode_strings(a, enc, max_seq, max_uid)?),
            Box::new(decode_strings(b, enc, max_seq, max_uid)?),
        ),
        SearchKey::And(ks) => Key::And(
            ks.iter()
                .map(|k| decode_strings(k, enc, max_seq, max_uid))
                .collect::<Result<_, _>>()?,
        ),
        SearchKey::Uid(set @ SequenceSet::Ranges(_)) => {
            Key::Plain(SearchKey::Uid(normalized(set, max_uid)))
        }
        SearchKey::SequenceSet(set @ SequenceSet::Ranges(_)) => {
            Key::Plain(SearchKey::SequenceSet(normalized(set, max_seq)))
        }
        other => Key::Plain(other.clone()),
    })
}

/// `set` as sorted, merged ranges of numbers (see [`in_set`]).
fn normalized(set: &SequenceSet, star: u32) -> SequenceSet {
    SequenceSet::Ranges(
        set.normalized(star)
            .into_iter()
            .map(|(lo, hi)| (SeqNum::Value(lo), SeqNum::Value(hi)))
            .collect(),
    )
}

/// i;unicode-casemap approximation: Unicode lower-casing.
fn casefold(s: &str) -> String {
    s.to_lowercase()
}

/// Candidate UIDs from the index (ascending): messages outside cannot match.
type Cands = Option<Vec<Uid>>;

/// A search key with its strings decoded and case-folded.
#[derive(Debug, Clone)]
enum Key {
    Header(String, String, Cands),
    Body(String, Cands),
    Text(String, Cands),
    Not(Box<Key>),
    Or(Box<Key>, Box<Key>),
    And(Vec<Key>),
    Plain(SearchKey),
}

/// Where a search runs: the mailbox in the store (flags, dates, sizes and
/// modseqs are read there by UID, not from the session's view), its blobs,
/// and whether the search index may be used.
pub(crate) struct Scope<'a> {
    pub store: &'a dyn MetaStore,
    pub blobs: &'a dyn BlobStore,
    pub mailbox: MailboxId,
    /// Use the trigram index and the stored header values; `false` gives the
    /// brute-force reference evaluation (same results, only slower).
    pub index: bool,
    /// The UIDs \Recent in the session (RECENT, NEW, OLD).
    pub recent: crate::view::RecentUids,
}

/// Per-message evaluation context; the message metadata, bytes and decoded
/// texts are loaded only if a key needs them, and at most once.
struct Ctx<'a> {
    uid: Uid,
    seq: u32,
    saved: Option<&'a [Uid]>,
    now: i64,
    scope: &'a Scope<'a>,
    /// Metadata prefetched for the messages being evaluated (by UID ascending).
    prefetched: Option<&'a [MessageMeta]>,
    /// Metadata loaded for this message alone (when not prefetched).
    loaded: Option<Option<MessageMeta>>,
    raw: Option<Vec<u8>>,
    body: Option<String>,
    headers: Option<String>,
    /// Header values stored at ingest (by UID ascending), when prefetched.
    fields: Option<&'a [(Uid, Option<HeaderFields>)]>,
}

impl Ctx<'_> {
    /// The message's metadata in the store; `None` if it is gone (expunged by
    /// another session but still in this one's view): it then has no flags,
    /// no content and zero dates and size.
    fn meta(&mut self) -> Option<&MessageMeta> {
        if let Some(all) = self.prefetched {
            let i = all.binary_search_by_key(&self.uid, |m| m.uid).ok()?;
            return all.get(i);
        }
        if self.loaded.is_none() {
            let one = self
                .scope
                .store
                .search_meta(self.scope.mailbox, Some(&[self.uid]))
                .ok()
                .and_then(|v| v.into_iter().next());
            self.loaded = Some(one);
        }
        self.loaded.as_ref().and_then(|m| m.as_ref())
    }
    fn raw(&mut self) -> &[u8] {
        if self.raw.is_none() {
            let blob = self.meta().map(|m| m.blob);
            let raw = blob
                .and_then(|b| self.scope.blobs.get(&b).ok())
                .unwrap_or_default();
            self.raw = Some(raw);
        }
        self.raw.as_deref().unwrap_or_default()
    }
    fn body(&mut self) -> &str {
        if self.body.is_none() {
            let b = casefold(&text::body_text(self.raw()));
            self.body = Some(b);
        }
        self.body.as_deref().unwrap_or_default()
    }
    fn headers(&mut self) -> &str {
        if self.headers.is_none() {
            let h = casefold(&text::headers_text(self.raw()));
            self.headers = Some(h);
        }
        self.headers.as_deref().unwrap_or_default()
    }
    fn fields(&self) -> Option<&HeaderFields> {
        let all = self.fields?;
        let i = all.binary_search_by_key(&self.uid, |r| r.0).ok()?;
        all[i].1.as_ref()
    }
    fn is_recent(&self) -> bool {
        self.scope.recent.contains(self.uid)
    }
    fn has_flag(&mut self, f: &str) -> bool {
        self.meta()
            .is_some_and(|m| m.flags.iter().any(|x| x.eq_ignore_ascii_case(f)))
    }
    fn internal_date(&mut self) -> i64 {
        self.meta().map_or(0, |m| m.internal_date)
    }
}

/// Whether `n` is in `set`: ranges as `decode_strings` leaves them (sorted,
/// merged, no `*`), or `$` with `saved` ascending.
fn in_set(set: &SequenceSet, n: u32, saved: Option<&[Uid]>, by_uid_saved: Option<Uid>) -> bool {
    match set {
        SequenceSet::Saved => match (saved, by_uid_saved) {
            (Some(s), Some(uid)) => s.binary_search(&uid).is_ok(),
            _ => false,
        },
        SequenceSet::Ranges(r) => {
            let v = |x: SeqNum| match x {
                SeqNum::Value(v) => v,
                SeqNum::Star => u32::MAX,
            };
            let i = r.partition_point(|&(_, hi)| v(hi) < n);
            r.get(i).is_some_and(|&(lo, _)| v(lo) <= n)
        }
    }
}

fn civil_from_unix(secs: i64) -> Date {
    let days = secs.div_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    Date {
        year: (if m <= 2 { y + 1 } else { y }) as i32,
        month: m,
        day: d,
    }
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// The date of a Date: header as written (its own time zone): RFC 5322
/// `[day-name ","] day month year hour ":" minute [":" second] [zone]`, with
/// the obsolete 2/3-digit years and named zones. Like Dovecot, a header that
/// does not parse as a whole (broken time, fractional seconds, bad zone) counts
/// as no date. None if it cannot be read.
pub(crate) fn header_date(value: &str) -> Option<Date> {
    let value = strip_comments(value);
    let mut tokens: Vec<&str> = value.split_whitespace().collect();
    if let Some(first) = tokens.first() {
        if let Some(stripped) = first.strip_suffix(',') {
            if stripped.chars().all(|c| c.is_ascii_alphabetic()) {
                tokens.remove(0);
            }
        } else if first.chars().all(|c| c.is_ascii_alphabetic()) && tokens.get(1) == Some(&",") {
            tokens.drain(..2);
        } else if first.contains(',') {
            let (day_name, rest) = first.split_once(',')?;
            if !day_name.chars().all(|c| c.is_ascii_alphabetic()) {
                return None;
            }
            tokens[0] = rest;
        }
    }
    let [day, month, year, time, rest @ ..] = tokens.as_slice() else {
        return None;
    };
    let day: u32 = day.parse().ok().filter(|d| (1..=31).contains(d))?;
    let month = MONTHS.iter().position(|m| month.eq_ignore_ascii_case(m))? as u32 + 1;
    if !year.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut year_n: i32 = year.parse().ok()?;
    match year.len() {
        2 => year_n += if year_n >= 50 { 1900 } else { 2000 },
        3 => year_n += 1900,
        4 => {}
        _ => return None,
    }
    let parts: Vec<&str> = time.split(':').collect();
    if !(2..=3).contains(&parts.len())
        || parts
            .iter()
            .any(|p| !(1..=2).contains(&p.len()) || !p.chars().all(|c| c.is_ascii_digit()))
    {
        return None;
    }
    match rest {
        [] => {}
        [zone, ..] => {
            let numeric = (zone.starts_with('+') || zone.starts_with('-'))
                && zone.len() == 5
                && zone[1..].chars().all(|c| c.is_ascii_digit());
            let named = zone.chars().all(|c| c.is_ascii_alphabetic()) && zone.len() <= 5;
            if !numeric && !named {
                return None;
            }
        }
    }
    Some(Date {
        year: year_n,
        month,
        day,
    })
}

/// Removes RFC 5322 comments `( ... )` (nested).
pub(crate) fn strip_comments(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut depth = 0usize;
    for c in v.chars() {
        match c {
            '(' => depth += 1,
            ')' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

fn sent_date(ctx: &mut Ctx) -> Date {
    if let Some(f) = ctx.fields() {
        return match f.sent_day {
            Some(d) => Date {
                year: d / 10_000,
                month: (d / 100 % 100) as u32,
                day: (d % 100) as u32,
            },
            None => Date {
                year: 1970,
                month: 1,
                day: 1,
            },
        };
    }
    let raw = ctx.raw();
    let v = text::header_values(raw, "Date");
    v.first().and_then(|d| header_date(d)).unwrap_or(Date {
        year: 1970,
        month: 1,
        day: 1,
    })
}

/// The stored value of a header field the index keeps: `Some(None)` when the
/// message has no such field, `None` when the field is not one of those kept.
fn stored_field<'f>(f: &'f HeaderFields, name: &str) -> Option<Option<&'f str>> {
    let v = if name.eq_ignore_ascii_case("subject") {
        &f.subject
    } else if name.eq_ignore_ascii_case("from") {
        &f.from
    } else if name.eq_ignore_ascii_case("to") {
        &f.to
    } else if name.eq_ignore_ascii_case("cc") {
        &f.cc
    } else if name.eq_ignore_ascii_case("bcc") {
        &f.bcc
    } else {
        return None;
    };
    Some(v.as_deref())
}

fn excluded(cands: &Cands, uid: Uid) -> bool {
    cands
        .as_ref()
        .is_some_and(|c| c.binary_search(&uid).is_err())
}

fn eval(key: &Key, ctx: &mut Ctx) -> bool {
    match key {
        Key::Header(name, needle, cands) => {
            if excluded(cands, ctx.uid) {
                return false;
            }
            if let Some(stored) = ctx.fields().and_then(|f| stored_field(f, name)) {
                // Values are stored case-folded and joined with NUL, which a
                // needle cannot contain: a match lies within one value.
                return match stored {
                    None => false,
                    Some(v) => v.contains(needle.as_str()),
                };
            }
            let raw = ctx.raw();
            if needle.is_empty() {
                return text::has_header(raw, name);
            }
            text::header_values(raw, name)
                .iter()
                .any(|v| casefold(v).contains(needle.as_str()))
        }
        Key::Body(needle, cands) => {
            !excluded(cands, ctx.uid) && ctx.body().contains(needle.as_str())
        }
        Key::Text(needle, cands) => {
            !excluded(cands, ctx.uid)
                && (ctx.headers().contains(needle.as_str()) || ctx.body().contains(needle.as_str()))
        }
        Key::Not(k) => !eval(k, ctx),
        Key::Or(a, b) => eval(a, ctx) || eval(b, ctx),
        Key::And(ks) => ks.iter().all(|k| eval(k, ctx)),
        Key::Plain(k) => eval_plain(k, ctx),
    }
}

fn eval_plain(key: &SearchKey, ctx: &mut Ctx) -> bool {
    let internal = |ctx: &mut Ctx| {
        let off = ctx.meta().map_or(0, |m| m.date_offset_minutes);
        civil_from_unix(ctx.internal_date() + off as i64 * 60)
    };
    match key {
        SearchKey::All => true,
        // RFC 3501 6.4.4: NEW is RECENT UNSEEN, OLD is NOT RECENT.
        SearchKey::Recent => ctx.is_recent(),
        SearchKey::Old => !ctx.is_recent(),
        SearchKey::New => ctx.is_recent() && !ctx.has_flag("\\Seen"),
        SearchKey::Answered => ctx.has_flag("\\Answered"),
        SearchKey::Deleted => ctx.has_flag("\\Deleted"),
        SearchKey::Draft => ctx.has_flag("\\Draft"),
        SearchKey::Flagged => ctx.has_flag("\\Flagged"),
        SearchKey::Seen => ctx.has_flag("\\Seen"),
        SearchKey::Unanswered => !ctx.has_flag("\\Answered"),
        SearchKey::Undeleted => !ctx.has_flag("\\Deleted"),
        SearchKey::Undraft => !ctx.has_flag("\\Draft"),
        SearchKey::Unflagged => !ctx.has_flag("\\Flagged"),
        SearchKey::Unseen => !ctx.has_flag("\\Seen"),
        SearchKey::Keyword(k) => ctx.has_flag(k),
        SearchKey::Unkeyword(k) => !ctx.has_flag(k),
        SearchKey::Before(d) => internal(ctx) < *d,
        SearchKey::On(d) => internal(ctx) == *d,
        SearchKey::Since(d) => internal(ctx) >= *d,
        SearchKey::SentBefore(d) => sent_date(ctx) < *d,
        SearchKey::SentOn(d) => sent_date(ctx) == *d,
        SearchKey::SentSince(d) => sent_date(ctx) >= *d,
        SearchKey::Larger(n) => ctx.meta().map_or(0, |m| m.size) > *n,
        SearchKey::Smaller(n) => ctx.meta().map_or(0, |m| m.size) < *n,
        SearchKey::Uid(set) => in_set(set, ctx.uid, ctx.saved, Some(ctx.uid)),
        SearchKey::SequenceSet(set) => in_set(set, ctx.seq, ctx.saved, Some(ctx.uid)),
        SearchKey::ModSeq(n) => ctx.meta().map_or(0, |m| m.modseq) >= *n,
        SearchKey::Older(secs) => ctx.internal_date() <= ctx.now - *secs as i64,
        SearchKey::Younger(secs) => ctx.internal_date() >= ctx.now - *secs as i64,
        // String keys were converted to `Key` variants by `decode_strings`.
        SearchKey::Bcc(_)
        | SearchKey::Cc(_)
        | SearchKey::From(_)
        | SearchKey::To(_)
        | SearchKey::Subject(_)
        | SearchKey::Body(_)
        | SearchKey::Text(_)
        | SearchKey::Header(..) => false,
        SearchKey::Not(k) => !eval_plain(k, ctx),
        SearchKey::Or(a, b) => eval_plain(a, ctx) || eval_plain(b, ctx),
        SearchKey::And(ks) => ks.iter().all(|k| eval_plain(k, ctx)),
    }
}

/// Whether evaluating `key` reads every evaluated message's metadata (flags,
/// dates, size, modseq, or the blob for its content): then it is prefetched
/// in one store call instead of one per message.
fn wants_meta(key: &Key, index: bool) -> bool {
    match key {
        Key::Header(name, _, _) => {
            !index
                || !["subject", "from", "to", "cc", "bcc"]
                    .iter()
                    .any(|n| name.eq_ignore_ascii_case(n))
        }
        Key::Body(..) | Key::Text(..) => true,
        Key::Not(k) => wants_meta(k, index),
        Key::Or(a, b) => wants_meta(a, index) || wants_meta(b, index),
        Key::And(ks) => ks.iter().any(|k| wants_meta(k, index)),
        Key::Plain(k) => plain_wants_meta(k, index),
    }
}

fn plain_wants_meta(k: &SearchKey, index: bool) -> bool {
    match k {
        SearchKey::All
        | SearchKey::Old
        | SearchKey::Recent
        | SearchKey::Uid(_)
        | SearchKey::SequenceSet(_) => false,
        SearchKey::SentBefore(_) | SearchKey::SentOn(_) | SearchKey::SentSince(_) => !index,
        SearchKey::Not(k) => plain_wants_meta(k, index),
        SearchKey::Or(a, b) => plain_wants_meta(a, index) || plain_wants_meta(b, index),
        SearchKey::And(ks) => ks.iter().any(|k| plain_wants_meta(k, index)),
        _ => true,
    }
}

/// UIDs (ascending) outside which `key` cannot match, from index candidates.
fn bound(key: &Key) -> Option<Vec<Uid>> {
    match key {
        Key::Header(_, _, c) | Key::Body(_, c) | Key::Text(_, c) => c.clone(),
        Key::And(ks) => ks.iter().filter_map(bound).reduce(|a, b| {
            a.into_iter()
                .filter(|u| b.binary_search(u).is_ok())
                .collect()
        }),
        Key::Or(a, b) => Some(union(&bound(a)?, &bound(b)?)),
        Key::Not(_) | Key::Plain(_) => None,
    }
}

pub(crate) fn uses_modseq(k: &SearchKey) -> bool {
    match k {
        SearchKey::ModSeq(_) => true,
        SearchKey::Not(k) => uses_modseq(k),
        SearchKey::Or(a, b) => uses_modseq(a) || uses_modseq(b),
        SearchKey::And(ks) => ks.iter().any(uses_modseq),
        _ => false,
    }
}

/// Union of two ascending UID lists.
fn union(a: &[Uid], b: &[Uid]) -> Vec<Uid> {
    let mut v: Vec<Uid> = a.iter().chain(b).copied().collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// What the prefetch of stored header values must cover.
#[derive(Default)]
struct FieldNeed {
    /// Some key needs the values of every message.
    all: bool,
    uids: Vec<Uid>,
}

/// Fills in index candidates for the string keys and notes which messages'
/// stored header values the evaluation will read.
fn annotate(
    key: &mut Key,
    store: &dyn MetaStore,
    mailbox: MailboxId,
    need: &mut FieldNeed,
) -> Result<(), pillarbox_store::StoreError> {
    match key {
        Key::Header(name, needle, cands) => {
            *cands = store.text_candidates(mailbox, TextPart::Headers, needle)?;
            let kept = ["subject", "from", "to", "cc", "bcc"]
                .iter()
                .any(|n| name.eq_ignore_ascii_case(n));
            if kept {
                match cands {
                    Some(c) => need.uids.extend_from_slice(c),
                    None => need.all = true,
                }
            }
        }
        Key::Body(needle, cands) => {
            *cands = store.text_candidates(mailbox, TextPart::Body, needle)?;
        }
        Key::Text(needle, cands) => {
            let h = store.text_candidates(mailbox, TextPart::Headers, needle)?;
            let b = store.text_candidates(mailbox, TextPart::Body, needle)?;
            *cands = match (h, b) {
                (Some(h), Some(b)) => Some(union(&h, &b)),
                _ => None,
            };
        }
        Key::Not(k) => annotate(k, store, mailbox, need)?,
        Key::Or(a, b) => {
            annotate(a, store, mailbox, need)?;
            annotate(b, store, mailbox, need)?;
        }
        Key::And(ks) => {
            for k in ks {
                annotate(k, store, mailbox, need)?;
            }
        }
        Key::Plain(k) => {
            if uses_sent(k) {
                need.all = true;
            }
        }
    }
    Ok(())
}

fn uses_sent(k: &SearchKey) -> bool {
    match k {
        SearchKey::SentBefore(_) | SearchKey::SentOn(_) | SearchKey::SentSince(_) => true,
        SearchKey::Not(k) => uses_sent(k),
        SearchKey::Or(a, b) => uses_sent(a) || uses_sent(b),
        SearchKey::And(ks) => ks.iter().any(uses_sent),
        _ => false,
    }
}

/// Up to this many messages' stored values (or a quarter of the mailbox, if
/// more) are fetched one by one; more in one scan of the mailbox.
const FIELD_POINT_MAX: usize = 512;

fn fetch_fields(
    store: &dyn MetaStore,
    mailbox: MailboxId,
    uids: Option<&[Uid]>,
    total: usize,
) -> Result<Vec<(Uid, Option<HeaderFields>)>, CmdError> {
    let uids = uids.filter(|u| u.len() <= FIELD_POINT_MAX.max(total / 4));
    store
        .header_fields(mailbox, uids)
        .map_err(CmdError::from_store)
}

/// Runs a search over the messages with these UIDs (in sequence order);
/// returns the indexes (sequence number - 1) of the matching ones. With
/// `scope.index`, the store's search index narrows the work (same results).
pub(crate) fn run(
    uids: &[Uid],
    key: &SearchKey,
    charset: Option<&str>,
    saved: Option<&[Uid]>,
    scope: &Scope<'_>,
) -> Result<Vec<usize>, CmdError> {
    let enc = match charset {
        None => encoding_rs::UTF_8,
        Some(c) if c.eq_ignore_ascii_case("US-ASCII") || c.eq_ignore_ascii_case("UTF-8") => {
            encoding_rs::UTF_8
        }
        Some(c) => encoding_rs::Encoding::for_label(c.as_bytes()).ok_or_else(|| {
            CmdError::no_code(
                "BADCHARSET (UTF-8 US-ASCII)",
                format!("Unsupported charset {c}"),
            )
        })?,
    };
    let max_uid = uids.last().copied().unwrap_or(0);
    let mut key = decode_strings(key, enc, uids.len() as u32, max_uid).map_err(CmdError::no)?;
    // `$` is tested with a binary search.
    let saved: Option<Vec<Uid>> = saved.map(|s| {
        let mut v = s.to_vec();
        v.sort_unstable();
        v
    });
    let saved = saved.as_deref();
    let (store, mailbox) = (scope.store, scope.mailbox);
    let mut fields = None;
    let mut limit = None;
    if scope.index {
        let mut need = FieldNeed::default();
        annotate(&mut key, store, mailbox, &mut need).map_err(CmdError::from_store)?;
        limit = bound(&key);
        if let Some(b) = &limit {
            // Only the messages that can match are evaluated.
            need.uids = if need.all {
                b.clone()
            } else {
                need.uids
                    .into_iter()
                    .filter(|u| b.binary_search(u).is_ok())
                    .collect()
            };
            need.all = false;
        }
        if need.all {
            fields = Some(fetch_fields(store, mailbox, None, uids.len())?);
        } else if !need.uids.is_empty() {
            need.uids.sort_unstable();
            need.uids.dedup();
            fields = Some(fetch_fields(store, mailbox, Some(&need.uids), uids.len())?);
        }
    }
    let meta = if wants_meta(&key, scope.index) {
        let m = match &limit {
            Some(b) => store.search_meta(mailbox, Some(b)),
            None => store.search_meta(mailbox, None),
        };
        Some(m.map_err(CmdError::from_store)?)
    } else {
        None
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let mut out = Vec::new();
    for (i, &uid) in uids.iter().enumerate() {
        if limit
            .as_ref()
            .is_some_and(|b| b.binary_search(&uid).is_err())
        {
            continue;
        }
        let mut ctx = Ctx {
            uid,
            seq: i as u32 + 1,
            saved,
            now,
            scope,
            prefetched: meta.as_deref(),
            loaded: None,
            raw: None,
            body: None,
            headers: None,
            fields: fields.as_deref(),
        };
        if eval(&key, &mut ctx) {
            out.push(i);
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------- ingest

fn joined(values: &[String]) -> Option<String> {
    if values.is_empty() {
        return None;
    }
    let folded: Vec<String> = values.iter().map(|v| casefold(v)).collect();
    Some(folded.join("\0"))
}

/// `<id>` tokens of a header value, space-separated.
fn msg_ids(values: &[String]) -> String {
    let mut out = Vec::new();
    for v in values {
        let mut rest = v.as_str();
        while let Some(a) = rest.find('<') {
            let Some(b) = rest[a..].find('>') else { break };
            let id: String = rest[a..a + b + 1]
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            if id.len() > 2 {
                out.push(id);
            }
            rest = &rest[a + b + 1..];
        }
    }
    out.join(" ")
}

/// The stored header values and sort/thread keys of a message.
pub(crate) fn header_fields_of(raw: &[u8]) -> HeaderFields {
    use crate::cmd::sort::{base_subject, display_address, header_datetime, sort_address};
    let subject = text::header_values(raw, "Subject");
    let from = text::header_values(raw, "From");
    let to = text::header_values(raw, "To");
    let cc = text::header_values(raw, "Cc");
    let date = text::header_values(raw, "Date");
    let sent_day = date
        .first()
        .and_then(|d| header_date(d))
        .map(|d| d.year * 10_000 + d.month as i32 * 100 + d.day as i32);
    let sent_date = date.first().and_then(|d| header_datetime(d));
    HeaderFields {
        subject: joined(&subject),
        from: joined(&from),
        to: joined(&to),
        cc: joined(&cc),
        bcc: joined(&text::header_values(raw, "Bcc")),
        sent_date,
        sent_day,
        sort_subject: subject
            .first()
            .map(|s| base_subject(s).0.to_uppercase())
            .unwrap_or_default(),
        sort_from: sort_address(&from),
        sort_to: sort_address(&to),
        sort_cc: sort_address(&cc),
        display_from: display_address(&from),
        display_to: display_address(&to),
        message_id: msg_ids(&text::header_values(raw, "Message-ID"))
            .split(' ')
            .next()
            .unwrap_or_default()
            .to_string(),
        in_reply_to: msg_ids(&text::header_values(raw, "In-Reply-To")),
        references: msg_ids(&text::header_values(raw, "References")),
    }
}

/// What the search index keeps of a message: computed once at ingest.
pub(crate) fn make_doc(raw: &[u8]) -> SearchDoc {
    let (headers, body, preview) = text::texts(raw);
    SearchDoc {
        headers: casefold(&headers),
        body: casefold(&body),
        fields: header_fields_of(raw),
        preview,
    }
}

/// What SORT and THREAD need of one message, compact (no per-field
/// `Option`s, boxed strings): built once per message from the stored values.
#[derive(Debug, Default, Clone)]
pub(crate) struct KeyRow {
    pub uid: Uid,
    pub internal_date: i64,
    pub size: u64,
    /// RFC 5256 sent date: the Date: header, else INTERNALDATE.
    pub date: i64,
    pub sort_subject: Box<str>,
    pub sort_from: Box<str>,
    pub sort_to: Box<str>,
    pub sort_cc: Box<str>,
    pub display_from: Box<str>,
    pub display_to: Box<str>,
    pub message_id: Box<str>,
    /// References, or the first In-Reply-To id when there are none (space-separated).
    pub refs: Box<str>,
    /// RFC 5256 base subject (upper-cased) for THREAD, and whether the subject
    /// was a reply or forward.
    pub base_subject: Box<str>,
    pub reply: bool,
}

impl KeyRow {
    fn new(row: pillarbox_store::SortRow, blobs: &dyn BlobStore) -> KeyRow {
        let f = row
            .fields
            .unwrap_or_else(|| header_fields_of(&blobs.get(&row.blob).unwrap_or_default()));
        let subject = f
            .subject
            .as_deref()
            .map(|s| s.split('\0').next().unwrap_or_default())
            .unwrap_or_default();
        let (base, reply) = crate::cmd::sort::base_subject(subject);
        let refs = if f.references.trim().is_empty() {
            f.in_reply_to
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .into()
        } else {
            f.references.into_boxed_str()
        };
        KeyRow {
            uid: row.uid,
            internal_date: row.internal_date,
            size: row.size,
            date: f.sent_date.unwrap_or(row.internal_date),
            sort_subject: f.sort_subject.into(),
            sort_from: f.sort_from.into(),
            sort_to: f.sort_to.into(),
            sort_cc: f.sort_cc.into(),
            display_from: f.display_from.into(),
            display_to: f.display_to.into(),
            message_id: f.message_id.into(),
            refs,
            base_subject: base.to_uppercase().into(),
            reply,
        }
    }
}

/// The SORT/THREAD keys of one mailbox (one UIDVALIDITY), by UID ascending.
pub(crate) struct MailboxKeys {
    /// The store these keys were read from (several stores may live in one
    /// process, e.g. tests): held weakly, so its address is not reused while
    /// the entry exists.
    owner: std::sync::Weak<dyn MetaStore>,
    uidvalidity: u32,
    rows: Vec<KeyRow>,
    used: std::sync::atomic::AtomicU64,
}

impl MailboxKeys {
    /// Every row, by UID ascending.
    pub(crate) fn rows(&self) -> &[KeyRow] {
        &self.rows
    }

    /// The keys of a message; an empty row for one no longer in the store.
    pub(crate) fn get(&self, uid: Uid) -> &KeyRow {
        static EMPTY: std::sync::OnceLock<KeyRow> = std::sync::OnceLock::new();
        match self.rows.binary_search_by_key(&uid, |r| r.uid) {
            Ok(i) => &self.rows[i],
            Err(_) => EMPTY.get_or_init(KeyRow::default),
        }
    }
}

/// Process-wide cache of SORT/THREAD keys per mailbox. A message's keys
/// never change (its content, INTERNALDATE and size are immutable) and a UID
/// is never reused within a UIDVALIDITY, so an entry is only ever extended by
/// the UIDs above its last one (one indexed range query per command, which
/// also returns the current UIDVALIDITY: a recreated mailbox starts over).
/// Rows of expunged messages are dropped when they outnumber the live ones.
/// Bounded: least recently used mailboxes are dropped past `KEY_CACHE_MAX` rows.
static KEY_CACHE: std::sync::OnceLock<std::sync::Mutex<KeyCache>> = std::sync::OnceLock::new();
/// Entries by (address of the store, mailbox id).
type KeyCache = std::collections::HashMap<(usize, MailboxId), Arc<MailboxKeys>>;
const KEY_CACHE_MAX: usize = 400_000;
static KEY_CACHE_CLOCK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The SORT/THREAD keys of a mailbox whose view has `live` messages.
pub(crate) fn mailbox_keys(
    store: &Arc<dyn MetaStore>,
    blobs: &dyn BlobStore,
    mailbox: MailboxId,
    live: usize,
) -> Result<Arc<MailboxKeys>, CmdError> {
    use std::sync::atomic::Ordering::Relaxed;
    let cache = KEY_CACHE.get_or_init(Default::default);
    let lock = || {
        cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    let owner = Arc::downgrade(store);
    let id = (Arc::as_ptr(store) as *const () as usize, mailbox);
    let cached = lock().get(&id).filter(|c| c.owner.ptr_eq(&owner)).cloned();
    let after = cached
        .as_ref()
        .and_then(|c| c.rows.last().map(|r| r.uid))
        .unwrap_or(0);
    let (uidvalidity, fresh) = store
        .sort_rows(mailbox, after)
        .map_err(CmdError::from_store)?;
    let now = KEY_CACHE_CLOCK.fetch_add(1, Relaxed);
    let reuse = cached
        .filter(|c| c.uidvalidity == uidvalidity && c.rows.len() + fresh.len() <= 2 * live + 1024);
    if let Some(c) = &reuse {
        if fresh.is_empty() {
            c.used.store(now, Relaxed);
            return Ok(c.clone());
        }
    }
    let rows: Vec<KeyRow> = match reuse {
        Some(c) => {
            let mut rows: Vec<KeyRow> = Vec::with_capacity(c.rows.len() + fresh.len());
            rows.extend(c.rows.iter().cloned());
            rows.extend(fresh.into_iter().map(|r| KeyRow::new(r, blobs)));
            rows
        }
        None if after == 0 => fresh.into_iter().map(|r| KeyRow::new(r, blobs)).collect(),
        None => {
            let (_, all) = store.sort_rows(mailbox, 0).map_err(CmdError::from_store)?;
            all.into_iter().map(|r| KeyRow::new(r, blobs)).collect()
        }
    };
    let keys = Arc::new(MailboxKeys {
        owner,
        uidvalidity,
        rows,
        used: now.into(),
    });
    let mut c = lock();
    c.retain(|_, k| k.owner.strong_count() > 0);
    c.insert(id, keys.clone());
    let mut total: usize = c.values().map(|k| k.rows.len()).sum();
    while total > KEY_CACHE_MAX && c.len() > 1 {
        let Some((&oldest, k)) = c
            .iter()
            .filter(|(&k, _)| k != id)
            .min_by_key(|(_, k)| k.used.load(Relaxed))
        else {
            break;
        };
        total -= k.rows.len();
        c.remove(&oldest);
    }
    Ok(keys)
}

/// The sequence-ordered UIDs of the selected mailbox: all SEARCH takes from
/// the session's view (everything else is read from the store by UID).
pub(crate) fn view_uids(sel: &crate::view::SelectedMailbox) -> Vec<Uid> {
    sel.messages.iter().map(|m| m.uid).collect()
}

/// RFC 8970 previews of these messages for FETCH PREVIEW, by UID: the text
/// stored at ingest; for a message stored without one (not indexed, or
/// indexed before previews were kept) computed from its blob, unless `lazy`
/// (RFC 8970 3.2: then `None`, sent as NIL). Messages gone from the store are
/// left out (NIL).
pub(crate) fn load_previews(
    store: &dyn MetaStore,
    blobs: &dyn BlobStore,
    mailbox: MailboxId,
    uids: &[Uid],
    lazy: bool,
) -> Result<std::collections::HashMap<Uid, Option<String>>, CmdError> {
    let stored = store
        .previews(mailbox, uids)
        .map_err(CmdError::from_store)?;
    let missing: Vec<Uid> = stored
        .iter()
        .filter(|(_, p)| p.is_none())
        .map(|(u, _)| *u)
        .collect();
    let mut out: std::collections::HashMap<Uid, Option<String>> = stored.into_iter().collect();
    if !lazy && !missing.is_empty() {
        for m in store
            .search_meta(mailbox, Some(&missing))
            .map_err(CmdError::from_store)?
        {
            let raw = blobs.get(&m.blob).unwrap_or_default();
            out.insert(m.uid, Some(text::preview(&raw)));
        }
    }
    Ok(out)
}

impl Session {
    /// [`load_previews`] on the blocking pool.
    pub(crate) async fn fetch_previews(
        &self,
        mailbox: MailboxId,
        uids: Vec<Uid>,
        lazy: bool,
    ) -> Result<std::collections::HashMap<Uid, Option<String>>, CmdError> {
        let store: Arc<dyn MetaStore> = self.shared.store.clone();
        let blobs: Arc<dyn BlobStore> = self.shared.blobs.clone();
        tokio::task::spawn_blocking(move || load_previews(&*store, &*blobs, mailbox, &uids, lazy))
            .await
            .map_err(|_| CmdError::no_code("SERVERBUG", "Internal error"))?
    }
}

/// Rebuilds the search index of a data directory (`pillarbox reindex`):
/// drops it, then indexes every message content from its blob. Returns the
/// number of documents and the index size.
pub fn reindex(
    store: &dyn MetaStore,
    blobs: &dyn BlobStore,
) -> Result<(u64, pillarbox_store::SearchIndexSize), String> {
    store.clear_search_index().map_err(|e| e.to_string())?;
    let n = index_unindexed(store, blobs, &|| false)?;
    // The texts are written by the store's text writer, in batches.
    store.flush_search_texts();
    let size = store.search_index_size().map_err(|e| e.to_string())?;
    Ok((n, size))
}

/// Indexes, in batches, every message content that has no search document
/// (after `reindex` cleared the index, or a migration did; APPEND indexes its
/// own messages). Until then SEARCH reads such messages, so this only makes
/// searches fast again. Stops early when `stop()` says so between batches.
/// Returns the number of documents written.
pub(crate) fn index_unindexed(
    store: &dyn MetaStore,
    blobs: &dyn BlobStore,
    stop: &dyn Fn() -> bool,
) -> Result<u64, String> {
    let mut n = 0u64;
    while !stop() {
        let batch = store.unindexed_blobs(256).map_err(|e| e.to_string())?;
        if batch.is_empty() {
            break;
        }
        let docs: Vec<_> = batch
            .into_iter()
            .map(|b| {
                let raw = blobs.get(&b).unwrap_or_default();
                let doc = make_doc(&raw);
                (b, doc)
            })
            .collect();
        n += docs.len() as u64;
        store.index_docs(&docs).map_err(|e| e.to_string())?;
    }
    Ok(n)
}

/// Index of the row for `uid` in `rows` (ascending by UID), for callers that
/// walk UIDs in ascending order: `*at` (the row after the previous hit) is
/// tried first, and only a view UID the rows lack costs a binary search.
pub(crate) fn row_of<T>(
    rows: &[T],
    at: &mut usize,
    uid: Uid,
    key: impl Fn(&T) -> Uid,
) -> Option<usize> {
    let j = if rows.get(*at).is_some_and(|r| key(r) == uid) {
        *at
    } else {
        rows.binary_search_by_key(&uid, key).ok()?
    };
    *at = j + 1;
    Some(j)
}

/// What a search over the selected mailbox produced, handed to the rest of
/// the command on the blocking pool (SEARCH, SORT and THREAD share it).
pub(crate) struct Searched {
    pub store: Arc<dyn MetaStore>,
    pub blobs: Arc<dyn BlobStore>,
    pub mailbox: MailboxId,
    /// The view's UIDs in sequence order.
    pub uids: Vec<Uid>,
    /// Indexes into `uids` of the matching messages, ascending.
    pub idxs: Vec<usize>,
}

impl Session {
    /// Evaluates `cmd`'s search key over the selected mailbox on the blocking
    /// pool, then runs `then` there on the result.
    pub(crate) async fn search_then<T, F>(
        &self,
        cmd: &SearchCommand,
        then: F,
    ) -> Result<T, CmdError>
    where
        T: Send + 'static,
        F: FnOnce(Searched) -> Result<T, CmdError> + Send + 'static,
    {
        let sel = self
            .selected
            .as_ref()
            .ok_or_else(|| CmdError::bad("No mailbox selected"))?;
        let uids = view_uids(sel);
        let (mailbox, recent) = (sel.id, sel.recent.clone());
        let saved = self.saved_search.clone();
        let store: Arc<dyn MetaStore> = self.shared.store.clone();
        let blobs: Arc<dyn BlobStore> = self.shared.blobs.clone();
        let key = cmd.key.clone();
        let charset = cmd.charset.clone();
        tokio::task::spawn_blocking(move || {
            let scope = Scope {
                store: &*store,
                blobs: &*blobs,
                mailbox,
                index: true,
                recent,
            };
            let idxs = run(&uids, &key, charset.as_deref(), saved.as_deref(), &scope)?;
            then(Searched {
                store,
                blobs,
                mailbox,
                uids,
                idxs,
            })
        })
        .await
        .map_err(|_| CmdError::no_code("SERVERBUG", "Internal error"))?
    }

    pub(crate) async fn cmd_search(
        &mut self,
        tag: &str,
        uid: bool,
        cmd: &SearchCommand,
    ) -> CmdResult {
        let with_modseq = uses_modseq(&cmd.key);
        let saving = cmd
            .return_opts
            .as_ref()
            .is_some_and(|o| o.contains(&SearchReturnOpt::Save));
        let searched = self
            .search_then(cmd, move |found| {
                let Searched {
                    store,
                    mailbox,
                    uids,
                    idxs,
                    ..
                } = found;
                let modseqs = if with_modseq {
                    Modseqs::read(&*store, mailbox, &uids, &idxs)?
                } else {
                    Modseqs::default()
                };
                Ok((uids, idxs, modseqs))
            })
            .await;
        // A SAVE search that fails with NO leaves `$` empty; one that gets
        // BAD leaves it as it was (RFC 5182 2.1).
        let (uids, idxs, modseqs) = match searched {
            Err(e) if saving && !e.bad => {
                self.saved_search = None;
                return Err(e);
            }
            r => r?,
        };
        if with_modseq {
            self.enable_condstore();
        }
        let nums: Vec<u32> = idxs
            .iter()
            .map(|&i| if uid { uids[i] } else { i as u32 + 1 })
            .collect();
        let uids: Vec<Uid> = idxs.iter().map(|&i| uids[i]).collect();
        let esearch = cmd.return_opts.is_some() || self.rev2;
        let mut opts: Vec<SearchReturnOpt> = match &cmd.return_opts {
            Some(o) if o.is_empty() => vec![SearchReturnOpt::All],
            Some(o) => o.clone(),
            None => vec![SearchReturnOpt::All],
        };
        // Each result option once, in the order first asked for: `RETURN
        // (MIN MIN)` answers `MIN n`, not `MIN n MIN n`.
        let mut kept = Vec::with_capacity(opts.len());
        opts.retain(|o| {
            if kept.contains(o) {
                return false;
            }
            kept.push(*o);
            true
        });
        // SAVE keeps the messages the ESEARCH response names (RFC 5182 2.1).
        let named = named_by(&opts, &uids);
        if opts.contains(&SearchReturnOpt::Save) {
            self.saved_search = Some(named.clone());
        }
        if !esearch {
            let mut line = b"* SEARCH".to_vec();
            for n in &nums {
                line.extend_from_slice(format!(" {n}").as_bytes());
            }
            if let Some(m) = modseqs.max_of(&uids) {
                line.extend_from_slice(format!(" (MODSEQ {m})").as_bytes());
            }
            line.extend_from_slice(b"\r\n");
            self.out.extend_from_slice(&line);
            return Ok(Done::ok("Search completed"));
        }
        let only_save = opts.iter().all(|o| *o == SearchReturnOpt::Save);
        if only_save {
            return Ok(Done::ok("Search completed"));
        }
        let mut sorted = nums.clone();
        sorted.sort_unstable();
        let mut line = esearch_line(tag, uid, &opts, &sorted);
        if let Some(m) = modseqs.max_of(&named) {
            line.extend_from_slice(format!(" MODSEQ {m}").as_bytes());
        }
        line.extend_from_slice(b"\r\n");
        self.out.extend_from_slice(&line);
        Ok(Done::ok("Search completed"))
    }
}

/// The modseqs of a search's matches, read from the store when the search
/// used MODSEQ: SEARCH, SORT and their ESEARCH forms then report the highest
/// of the messages they return (RFC 7162 3.1.5, 3.1.9, 3.1.10).
#[derive(Default)]
pub(crate) struct Modseqs(std::collections::HashMap<Uid, u64>);

impl Modseqs {
    /// Of the matches `idxs` (positions in `uids`).
    pub(crate) fn read(
        store: &dyn MetaStore,
        mailbox: i64,
        uids: &[Uid],
        idxs: &[usize],
    ) -> Result<Modseqs, CmdError> {
        if idxs.is_empty() {
            return Ok(Modseqs::default());
        }
        let matched: Vec<Uid> = idxs.iter().map(|&i| uids[i]).collect();
        let metas = store
            .search_meta(mailbox, Some(&matched))
            .map_err(CmdError::from_store)?;
        Ok(Modseqs(metas.iter().map(|m| (m.uid, m.modseq)).collect()))
    }

    /// The highest modseq of these messages (None: none, or MODSEQ was not
    /// searched).
    pub(crate) fn max_of(&self, uids: &[Uid]) -> Option<u64> {
        uids.iter().filter_map(|u| self.0.get(u)).max().copied()
    }
}

/// The messages an ESEARCH response names, of `uids` in result order: with
/// MIN and/or MAX but neither ALL nor COUNT, only the first and/or last (RFC
/// 4731 3.2: MODSEQ is then theirs).
pub(crate) fn named_by(opts: &[SearchReturnOpt], uids: &[Uid]) -> Vec<Uid> {
    let has_min = opts.contains(&SearchReturnOpt::Min);
    let has_max = opts.contains(&SearchReturnOpt::Max);
    if !(has_min || has_max)
        || opts.contains(&SearchReturnOpt::All)
        || opts.contains(&SearchReturnOpt::Count)
    {
        return uids.to_vec();
    }
    let mut v = Vec::new();
    if has_min {
        v.extend(uids.first());
    }
    if has_max {
        v.extend(uids.last());
    }
    v.dedup();
    v
}

/// `* ESEARCH (TAG "t") [UID] MIN a MAX b COUNT n ALL set` without the line
/// end (RFC 4731), also for ESORT (RFC 5267): `nums` are in result order
/// (ascending for SEARCH, sort order for SORT); MIN and MAX are the first and
/// last of that order and ALL keeps it.
pub(crate) fn esearch_line(
    tag: &str,
    uid: bool,
    opts: &[SearchReturnOpt],
    nums: &[u32],
) -> Vec<u8> {
    let mut line = b"* ESEARCH (TAG ".to_vec();
    respond::string(&mut line, tag.as_bytes());
    line.push(b')');
    if uid {
        line.extend_from_slice(b" UID");
    }
    for o in opts {
        match o {
            SearchReturnOpt::Min => {
                if let Some(n) = nums.first() {
                    line.extend_from_slice(format!(" MIN {n}").as_bytes());
                }
            }
            SearchReturnOpt::Max => {
                if let Some(n) = nums.last() {
                    line.extend_from_slice(format!(" MAX {n}").as_bytes());
                }
            }
            SearchReturnOpt::Count => {
                line.extend_from_slice(format!(" COUNT {}", nums.len()).as_bytes())
            }
            SearchReturnOpt::All => {
                if !nums.is_empty() {
                    line.extend_from_slice(b" ALL ");
                    ordered_set(&mut line, nums);
                }
            }
            SearchReturnOpt::Save => {}
        }
    }
    line
}

/// A sequence set that keeps the given order: ascending runs become `a:b`
/// (for ascending input this is the usual compressed set).
pub(crate) fn ordered_set(out: &mut Vec<u8>, nums: &[u32]) {
    let mut i = 0;
    let mut first = true;
    while i < nums.len() {
        let mut j = i;
        while j + 1 < nums.len() && nums[j + 1] == nums[j].wrapping_add(1) {
            j += 1;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        if j > i {
            out.extend_from_slice(format!("{}:{}", nums[i], nums[j]).as_bytes());
        } else {
            out.extend_from_slice(nums[i].to_string().as_bytes());
        }
        i = j + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use pillarbox_proto::types::SearchKey as K;
    use pillarbox_store::{FsBlobStore, NewMessage, SqliteStore};

    /// Deterministic xorshift generator (no seed from the environment).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
            v[self.below(v.len())]
        }
    }

    const WORDS: &[&str] = &[
        "alpha",
        "Beta",
        "gamma",
        "DELTA",
        "straße",
        "Ünïcode",
        "naïve",
        "résumé",
        "ab",
        "abc",
        "xyzzy",
        "foo",
        "bar",
        "quux",
        "Σίσυφος",
        "日本語",
        "meeting",
        "invoice",
        "re",
        "the",
    ];

    fn words(r: &mut Rng, n: usize) -> String {
        (0..n).map(|_| r.pick(WORDS)).collect::<Vec<_>>().join(" ")
    }

    /// A random message: plain/QP/base64/multipart bodies, encoded words,
    /// optional headers, several charsets.
    fn random_mail(r: &mut Rng, i: usize) -> Vec<u8> {
        use base64::Engine;
        let mut m = String::new();
        let n = 1 + r.below(4);
        let subj = words(r, n);
        match r.below(3) {
            0 => m.push_str(&format!("Subject: {subj}\r\n")),
            1 => {
                let enc = base64::engine::general_purpose::STANDARD.encode(subj.as_bytes());
                m.push_str(&format!("Subject: =?UTF-8?B?{enc}?=\r\n"))
            }
            _ => {}
        }
        if r.below(5) > 0 {
            m.push_str(&format!(
                "From: \"{}\" <{}@example.org>\r\n",
                words(r, 2),
                r.pick(WORDS)
                    .to_lowercase()
                    .replace(|c: char| !c.is_ascii_alphanumeric(), "x")
            ));
        }
        if r.below(2) == 0 {
            m.push_str(&format!(
                "To: {}@example.com\r\n",
                r.pick(&["ann", "bob", "carol"])
            ));
        }
        if r.below(3) == 0 {
            m.push_str(&format!("Cc: {} <cc@x.org>\r\n", words(r, 1)));
        }
        if r.below(4) == 0 {
            m.push_str("Bcc: hidden@example.net\r\n");
        }
        if r.below(3) > 0 {
            m.push_str(&format!(
                "Date: {} Mar 20{:02} 10:00:00 +0100\r\n",
                1 + r.below(28),
                r.below(30)
            ));
        }
        m.push_str(&format!(
            "Message-ID: <{i}@gen>\r\nX-Tag: {}\r\n",
            words(r, 1)
        ));
        let n = 5 + r.below(40);
        let body = words(r, n);
        match r.below(4) {
            0 => m.push_str(&format!("\r\n{body}\r\n")),
            1 => {
                let enc = base64::engine::general_purpose::STANDARD.encode(body.as_bytes());
                m.push_str(&format!(
                    "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{enc}\r\n"
                ));
            }
            2 => {
                let latin: String = body.chars().filter(|c| (*c as u32) < 256).collect();
                let (enc, _, _) = encoding_rs::WINDOWS_1252.encode(&latin);
                let mut qp = String::new();
                for &b in enc.iter() {
                    if b.is_ascii_alphanumeric() || b == b' ' {
                        qp.push(b as char);
                    } else {
                        qp.push_str(&format!("={b:02X}"));
                    }
                }
                m.push_str(&format!(
                    "Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{qp}\r\n"
                ));
            }
            _ => {
                m.push_str(&format!(
                    "Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\nContent-Type: text/plain\r\n\r\n{body}\r\n--b{i}\r\nContent-Type: text/html\r\n\r\n<p>{}</p>\r\n--b{i}--\r\n",
                    words(r, 3)
                ));
            }
        }
        m.into_bytes()
    }

    fn random_needle(r: &mut Rng) -> Vec<u8> {
        let w = r.pick(WORDS);
        let chars: Vec<char> = w.chars().collect();
        // A substring of a word (any case), sometimes spanning a space.
        let a = r.below(chars.len());
        let b = (a + 1 + r.below(chars.len() - a)).min(chars.len());
        let mut s: String = chars[a..b].iter().collect();
        if r.below(4) == 0 {
            s.push(' ');
            s.push_str(r.pick(WORDS));
        }
        if r.below(2) == 0 {
            s = s.to_uppercase();
        }
        s.into_bytes()
    }

    fn random_key(r: &mut Rng, depth: usize) -> K {
        let n = if depth > 2 { 10 } else { 14 };
        match r.below(n) {
            0 => K::Body(random_needle(r)),
            1 => K::Text(random_needle(r)),
            2 => K::Subject(random_needle(r)),
            3 => K::From(random_needle(r)),
            4 => K::To(random_needle(r)),
            5 => K::Cc(random_needle(r)),
            6 => K::Bcc(random_needle(r)),
            7 => K::Header(
                r.pick(&["X-Tag", "subject", "FROM", "Message-ID"]).into(),
                random_needle(r),
            ),
            8 => K::SentSince(Date {
                year: 2010,
                month: 1,
                day: 1,
            }),
            9 => K::Header("Cc".into(), Vec::new()),
            10 => K::Not(Box::new(random_key(r, depth + 1))),
            11 => K::Or(
                Box::new(random_key(r, depth + 1)),
                Box::new(random_key(r, depth + 1)),
            ),
            _ => K::And(vec![random_key(r, depth + 1), random_key(r, depth + 1)]),
        }
    }

    /// The index-assisted search equals the brute-force scan, on random mail
    /// (some of it appended without index documents, some copied and
    /// expunged) and random queries.
    #[test]
    fn index_agrees_with_scan() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&dir.path().join("m.sqlite")).expect("store");
        let blobs = FsBlobStore::open(dir.path().join("blobs")).expect("blobs");
        let acc = store.create_account("u", "x").expect("account");
        let inbox = store
            .mailbox(acc.id, "INBOX")
            .expect("q")
            .expect("inbox")
            .id;
        let trash = store
            .mailbox(acc.id, "Trash")
            .expect("q")
            .expect("trash")
            .id;
        let mut r = Rng(0x5eed_1234_abcd_0001);
        for i in 0..160 {
            let raw = random_mail(&mut r, i);
            let blob = blobs.put(&raw).expect("put");
            let m = NewMessage {
                blob,
                size: raw.len() as u64,
                internal_date: 1_600_000_000 + i as i64 * 3600,
                date_offset_minutes: 0,
                flags: Vec::new(),
                summary: Vec::new(),
                inline: None,
            };
            let docs = if i % 7 == 3 {
                Vec::new()
            } else {
                vec![make_doc(&raw)]
            };
            store.append_indexed(inbox, &[m], &docs).expect("append");
        }
        store
            .copy(inbox, trash, &[1, 2, 3, 4, 5], false)
            .expect("copy");
        store.expunge(inbox, &[2, 9, 10]).expect("expunge");
        for mailbox in [inbox, trash] {
            let (_, msgs) = store.snapshot(mailbox).expect("snapshot");
            let uids: Vec<Uid> = msgs.iter().map(|m| m.uid).collect();
            let scope = |index| Scope {
                store: &store,
                blobs: &blobs,
                mailbox,
                index,
                recent: crate::view::RecentUids::from_range(3, 6),
            };
            for q in 0..120 {
                let key = random_key(&mut r, 0);
                let scan = run(&uids, &key, None, None, &scope(false)).expect("scan");
                let idx = run(&uids, &key, None, None, &scope(true)).expect("indexed");
                assert_eq!(idx, scan, "query {q}: {key:?}");
            }
        }
    }

    #[test]
    fn stored_fields_equal_computed() {
        let mut r = Rng(7);
        for i in 0..50 {
            let raw = random_mail(&mut r, i);
            let f = header_fields_of(&raw);
            let from = text::header_values(&raw, "From");
            assert_eq!(f.from.is_some(), !from.is_empty());
            if let Some(d) = text::header_values(&raw, "Date").first() {
                assert_eq!(f.sent_date.is_some(), header_date(d).is_some());
            }
        }
    }

    #[test]
    fn header_dates() {
        assert_eq!(
            header_date("Fri, 4 May 2001 14:05:44 -0400"),
            Some(Date {
                year: 2001,
                month: 5,
                day: 4
            })
        );
        assert_eq!(
            header_date("15 Feb 07 10:00 GMT"),
            Some(Date {
                year: 2007,
                month: 2,
                day: 15
            })
        );
        assert_eq!(
            header_date("Thu, 1 Jan 98 00:00:00 +0000"),
            Some(Date {
                year: 1998,
                month: 1,
                day: 1
            })
        );
        assert_eq!(header_date("garbage"), None);
        assert_eq!(
            header_date("7 Apr 2026 10:00:01 +0000 (UTC)"),
            Some(Date {
                year: 2026,
                month: 4,
                day: 7
            })
        );
        // Dovecot (and RFC 5322) reject these as a whole.
        assert_eq!(header_date("Tue, 7 Apr 2026 10:00:t <x@example>"), None);
        assert_eq!(header_date("Tue, 17 Jul 2012 22:23:35.882 0000"), None);
    }

    #[test]
    fn civil_dates() {
        assert_eq!(
            civil_from_unix(0),
            Date {
                year: 1970,
                month: 1,
                day: 1
            }
        );
        assert_eq!(
            civil_from_unix(1_704_067_200),
            Date {
                year: 2024,
                month: 1,
                day: 1
            }
        );
        assert_eq!(
            civil_from_unix(1_704_067_199),
            Date {
                year: 2023,
                month: 12,
                day: 31
            }
        );
        assert_eq!(
            civil_from_unix(951_782_400),
            Date {
                year: 2000,
                month: 2,
                day: 29
            }
        );
    }
}
