//! SEARCH and UID SEARCH: the whole RFC 9051 key grammar, CHARSET, ESEARCH
//! RETURN options (RFC 4731) and SEARCHRES (RFC 5182). String keys are
//! case-insensitive substring matches against decoded text (RFC 2047 words,
//! transfer encodings and body charsets decoded), as in Dovecot.
//!
//! This is the brute-force evaluator; it is also the reference a full-text
//! index must agree with.

use std::sync::Arc;

use pillarbox_mime::search as text;
use pillarbox_proto::respond;
use pillarbox_proto::types::{
    Date, SearchCommand, SearchKey, SearchReturnOpt, SeqNum, SequenceSet,
};
use pillarbox_store::{BlobStore, MessageMeta, Uid};

use crate::cmd::{CmdError, CmdResult, Done};
use crate::session::Session;

/// Decodes the search strings of a key tree from the given charset to UTF-8.
fn decode_strings(key: &SearchKey, enc: &'static encoding_rs::Encoding) -> Result<Key, String> {
    let dec = |b: &[u8]| -> Result<String, String> {
        let (s, had_errors) = enc.decode_without_bom_handling(b);
        if had_errors {
            return Err("Search string is not valid in the given charset".into());
        }
        Ok(casefold(&s))
    };
    Ok(match key {
        SearchKey::Bcc(b) => Key::Header("Bcc".into(), dec(b)?),
        SearchKey::Cc(b) => Key::Header("Cc".into(), dec(b)?),
        SearchKey::From(b) => Key::Header("From".into(), dec(b)?),
        SearchKey::To(b) => Key::Header("To".into(), dec(b)?),
        SearchKey::Subject(b) => Key::Header("Subject".into(), dec(b)?),
        SearchKey::Header(name, b) => Key::Header(name.clone(), dec(b)?),
        SearchKey::Body(b) => Key::Body(dec(b)?),
        SearchKey::Text(b) => Key::Text(dec(b)?),
        SearchKey::Not(k) => Key::Not(Box::new(decode_strings(k, enc)?)),
        SearchKey::Or(a, b) => Key::Or(
            Box::new(decode_strings(a, enc)?),
            Box::new(decode_strings(b, enc)?),
        ),
        SearchKey::And(ks) => Key::And(
            ks.iter()
                .map(|k| decode_strings(k, enc))
                .collect::<Result<_, _>>()?,
        ),
        other => Key::Plain(other.clone()),
    })
}

/// i;unicode-casemap approximation: Unicode lower-casing.
fn casefold(s: &str) -> String {
    s.to_lowercase()
}

/// A search key with its strings decoded and case-folded.
#[derive(Debug, Clone)]
enum Key {
    Header(String, String),
    Body(String),
    Text(String),
    Not(Box<Key>),
    Or(Box<Key>, Box<Key>),
    And(Vec<Key>),
    Plain(SearchKey),
}

/// Per-message evaluation context; the message bytes and decoded texts are
/// loaded only if a key needs them, and at most once.
struct Ctx<'a> {
    meta: &'a MessageMeta,
    seq: u32,
    max_seq: u32,
    max_uid: Uid,
    saved: Option<&'a [Uid]>,
    now: i64,
    blobs: &'a dyn BlobStore,
    raw: Option<Vec<u8>>,
    body: Option<String>,
    headers: Option<String>,
}

impl Ctx<'_> {
    fn raw(&mut self) -> &[u8] {
        if self.raw.is_none() {
            self.raw = Some(self.blobs.get(&self.meta.blob).unwrap_or_default());
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
    fn has_flag(&self, f: &str) -> bool {
        self.meta.flags.iter().any(|x| x.eq_ignore_ascii_case(f))
    }
}

fn in_set(
    set: &SequenceSet,
    n: u32,
    max: u32,
    saved: Option<&[Uid]>,
    by_uid_saved: Option<Uid>,
) -> bool {
    match set {
        SequenceSet::Saved => match (saved, by_uid_saved) {
            (Some(s), Some(uid)) => s.contains(&uid),
            _ => false,
        },
        SequenceSet::Ranges(r) => r.iter().any(|&(a, b)| {
            let a = match a {
                SeqNum::Value(v) => v,
                SeqNum::Star => max,
            };
            let b = match b {
                SeqNum::Value(v) => v,
                SeqNum::Star => max,
            };
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            n >= lo && n <= hi
        }),
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
fn strip_comments(v: &str) -> String {
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
    let raw = ctx.raw();
    let v = text::header_values(raw, "Date");
    v.first().and_then(|d| header_date(d)).unwrap_or(Date {
        year: 1970,
        month: 1,
        day: 1,
    })
}

fn eval(key: &Key, ctx: &mut Ctx) -> bool {
    match key {
        Key::Header(name, needle) => {
            let raw = ctx.raw();
            if needle.is_empty() {
                return text::has_header(raw, name);
            }
            text::header_values(raw, name)
                .iter()
                .any(|v| casefold(v).contains(needle.as_str()))
        }
        Key::Body(needle) => ctx.body().contains(needle.as_str()),
        Key::Text(needle) => {
            ctx.headers().contains(needle.as_str()) || ctx.body().contains(needle.as_str())
        }
        Key::Not(k) => !eval(k, ctx),
        Key::Or(a, b) => eval(a, ctx) || eval(b, ctx),
        Key::And(ks) => ks.iter().all(|k| eval(k, ctx)),
        Key::Plain(k) => eval_plain(k, ctx),
    }
}

fn eval_plain(key: &SearchKey, ctx: &mut Ctx) -> bool {
    let internal =
        || civil_from_unix(ctx.meta.internal_date + ctx.meta.date_offset_minutes as i64 * 60);
    match key {
        SearchKey::All | SearchKey::Old => true,
        SearchKey::New | SearchKey::Recent => false,
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
        SearchKey::Before(d) => internal() < *d,
        SearchKey::On(d) => internal() == *d,
        SearchKey::Since(d) => internal() >= *d,
        SearchKey::SentBefore(d) => sent_date(ctx) < *d,
        SearchKey::SentOn(d) => sent_date(ctx) == *d,
        SearchKey::SentSince(d) => sent_date(ctx) >= *d,
        SearchKey::Larger(n) => ctx.meta.size > *n,
        SearchKey::Smaller(n) => ctx.meta.size < *n,
        SearchKey::Uid(set) => in_set(
            set,
            ctx.meta.uid,
            ctx.max_uid,
            ctx.saved,
            Some(ctx.meta.uid),
        ),
        SearchKey::SequenceSet(set) => {
            in_set(set, ctx.seq, ctx.max_seq, ctx.saved, Some(ctx.meta.uid))
        }
        SearchKey::ModSeq(n) => ctx.meta.modseq >= *n,
        SearchKey::Older(secs) => ctx.meta.internal_date <= ctx.now - *secs as i64,
        SearchKey::Younger(secs) => ctx.meta.internal_date >= ctx.now - *secs as i64,
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

fn uses_modseq(k: &SearchKey) -> bool {
    match k {
        SearchKey::ModSeq(_) => true,
        SearchKey::Not(k) => uses_modseq(k),
        SearchKey::Or(a, b) => uses_modseq(a) || uses_modseq(b),
        SearchKey::And(ks) => ks.iter().any(uses_modseq),
        _ => false,
    }
}

/// Runs a search over messages (in sequence order); returns matching indexes.
pub(crate) fn run(
    messages: &[MessageMeta],
    key: &SearchKey,
    charset: Option<&str>,
    saved: Option<&[Uid]>,
    blobs: &dyn BlobStore,
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
    let key = decode_strings(key, enc).map_err(CmdError::no)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let max_uid = messages.last().map(|m| m.uid).unwrap_or(0);
    let mut out = Vec::new();
    for (i, meta) in messages.iter().enumerate() {
        let mut ctx = Ctx {
            meta,
            seq: i as u32 + 1,
            max_seq: messages.len() as u32,
            max_uid,
            saved,
            now,
            blobs,
            raw: None,
            body: None,
            headers: None,
        };
        if eval(&key, &mut ctx) {
            out.push(i);
        }
    }
    Ok(out)
}

impl Session {
    pub(crate) async fn cmd_search(
        &mut self,
        tag: &str,
        uid: bool,
        cmd: &SearchCommand,
    ) -> CmdResult {
        let sel = self
            .selected
            .as_ref()
            .ok_or_else(|| CmdError::bad("No mailbox selected"))?;
        let messages = sel.messages.clone();
        let saved = self.saved_search.clone();
        let blobs: Arc<dyn BlobStore> = self.shared.blobs.clone();
        let key = cmd.key.clone();
        let charset = cmd.charset.clone();
        let msgs = messages.clone();
        let idxs = tokio::task::spawn_blocking(move || {
            run(&msgs, &key, charset.as_deref(), saved.as_deref(), &*blobs)
        })
        .await
        .map_err(|_| CmdError::no_code("SERVERBUG", "Internal error"))??;
        if uses_modseq(&cmd.key) {
            self.condstore = true;
        }
        let nums: Vec<u32> = idxs
            .iter()
            .map(|&i| if uid { messages[i].uid } else { i as u32 + 1 })
            .collect();
        let uids: Vec<Uid> = idxs.iter().map(|&i| messages[i].uid).collect();
        let max_modseq = idxs.iter().map(|&i| messages[i].modseq).max();
        let esearch = cmd.return_opts.is_some() || self.rev2;
        let opts: Vec<SearchReturnOpt> = match &cmd.return_opts {
            Some(o) if o.is_empty() => vec![SearchReturnOpt::All],
            Some(o) => o.clone(),
            None => vec![SearchReturnOpt::All],
        };
        if opts.contains(&SearchReturnOpt::Save) {
            let has_min = opts.contains(&SearchReturnOpt::Min);
            let has_max = opts.contains(&SearchReturnOpt::Max);
            // RFC 5182 2.1: with MIN and/or MAX only those are saved.
            let saved: Vec<Uid> = if (has_min || has_max)
                && !opts.contains(&SearchReturnOpt::All)
                && !opts.contains(&SearchReturnOpt::Count)
            {
                let mut v = Vec::new();
                if has_min {
                    v.extend(uids.first());
                }
                if has_max {
                    v.extend(uids.last());
                }
                v.dedup();
                v
            } else {
                uids.clone()
            };
            self.saved_search = Some(saved);
        }
        if !esearch {
            let mut line = b"* SEARCH".to_vec();
            for n in &nums {
                line.extend_from_slice(format!(" {n}").as_bytes());
            }
            if uses_modseq(&cmd.key) {
                if let Some(m) = max_modseq {
                    line.extend_from_slice(format!(" (MODSEQ {m})").as_bytes());
                }
            }
            line.extend_from_slice(b"\r\n");
            self.out.extend_from_slice(&line);
            return Ok(Done::ok("Search completed"));
        }
        let only_save = opts.iter().all(|o| *o == SearchReturnOpt::Save);
        if only_save {
            return Ok(Done::ok("Search completed"));
        }
        let mut line = b"* ESEARCH (TAG ".to_vec();
        respond::string(&mut line, tag.as_bytes());
        line.push(b')');
        if uid {
            line.extend_from_slice(b" UID");
        }
        let mut sorted = nums.clone();
        sorted.sort_unstable();
        for o in &opts {
            match o {
                SearchReturnOpt::Min => {
                    if let Some(n) = sorted.first() {
                        line.extend_from_slice(format!(" MIN {n}").as_bytes());
                    }
                }
                SearchReturnOpt::Max => {
                    if let Some(n) = sorted.last() {
                        line.extend_from_slice(format!(" MAX {n}").as_bytes());
                    }
                }
                SearchReturnOpt::Count => {
                    line.extend_from_slice(format!(" COUNT {}", sorted.len()).as_bytes())
                }
                SearchReturnOpt::All => {
                    if !sorted.is_empty() {
                        line.extend_from_slice(b" ALL ");
                        respond::sequence_set(&mut line, &sorted);
                    }
                }
                SearchReturnOpt::Save => {}
            }
        }
        if uses_modseq(&cmd.key) {
            if let Some(m) = max_modseq {
                line.extend_from_slice(format!(" MODSEQ {m}").as_bytes());
            }
        }
        line.extend_from_slice(b"\r\n");
        self.out.extend_from_slice(&line);
        Ok(Done::ok("Search completed"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
