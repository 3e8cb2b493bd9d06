//! SORT and UID SORT (RFC 5256), DISPLAYFROM/DISPLAYTO (RFC 5957) and ESORT
//! `RETURN (...)` (RFC 5267), plus the key extraction SORT and THREAD share
//! (base subject, first address, sent date), which ingest stores per message
//! so that SORT never loads message blobs.
//!
//! Comparison: sort keys are stored upper-cased, which is i;ascii-casemap for
//! ASCII (RFC 5256 section 2.2) and Unicode upper-casing beyond it (close to
//! Dovecot's i;unicode-casemap). Ties keep sequence-number order (RFC 5256 3).

use std::cmp::Ordering;
use std::io::Write as _;
use std::sync::{Arc, Mutex, PoisonError};

use pillarbox_proto::types::{SearchCommand, SearchReturnOpt, SortCriterion, SortKey};
use pillarbox_store::{BlobStore, MailboxId, MetaStore, Uid};

use super::{CmdError, CmdResult, Done};
use crate::search::{mailbox_keys, KeyRow, MailboxKeys};
use crate::search::{named_by, Modseqs, Searched};
use crate::session::Session;

// ---------------------------------------------------------------- base subject (RFC 5256 2.1)

fn is_wsp(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Removes one `subj-blob` (`"[" *BLOBCHAR "]" *WSP`) at the start; returns the rest.
fn strip_blob(s: &str) -> Option<&str> {
    let rest = s.strip_prefix('[')?;
    let end = rest.find(['[', ']'])?;
    if !rest[end..].starts_with(']') {
        return None;
    }
    Some(rest[end + 1..].trim_start_matches(is_wsp))
}

/// Removes one `subj-refwd` (`("re" / ("fw" ["d"])) *WSP [subj-blob] ":"`).
fn strip_refwd(s: &str) -> Option<&str> {
    let lower = s.get(..3).map(|p| p.to_ascii_lowercase());
    let rest = if lower.as_deref() == Some("fwd") {
        &s[3..]
    } else {
        let two = s.get(..2)?.to_ascii_lowercase();
        if two == "re" || two == "fw" {
            &s[2..]
        } else {
            return None;
        }
    };
    let rest = rest.trim_start_matches(is_wsp);
    let rest = strip_blob(rest).unwrap_or(rest);
    rest.strip_prefix(':')
}

/// Removes one `subj-leader` (`(*subj-blob subj-refwd) / WSP`); the bool says
/// whether a reply/forward marker was removed.
fn strip_leader(s: &str) -> Option<(&str, bool)> {
    if s.starts_with(is_wsp) {
        return Some((s.trim_start_matches(is_wsp), false));
    }
    let mut cur = s;
    loop {
        if let Some(r) = strip_refwd(cur) {
            return Some((r, true));
        }
        cur = strip_blob(cur)?;
    }
}

/// RFC 5256 section 2.1 base subject of a decoded subject, and whether the
/// subject was a reply or forward (steps 2, 3 and 6 removed something).
pub(crate) fn base_subject(subject: &str) -> (String, bool) {
    // (1) tabs and continuations become spaces, runs of WSP one space.
    let mut s = String::with_capacity(subject.len());
    for c in subject.chars() {
        let c = if matches!(c, '\t' | '\r' | '\n') {
            ' '
        } else {
            c
        };
        if c == ' ' && s.ends_with(' ') {
            continue;
        }
        s.push(c);
    }
    let mut reply = false;
    loop {
        // (2) trailing "(fwd)" and WSP.
        loop {
            let t = s.trim_end_matches(is_wsp);
            if t.len() != s.len() {
                s.truncate(t.len());
                continue;
            }
            let n = s.len();
            if n >= 5 && s.is_char_boundary(n - 5) && s[n - 5..].eq_ignore_ascii_case("(fwd)") {
                s.truncate(n - 5);
                reply = true;
                continue;
            }
            break;
        }
        // (3)-(5) leaders and blobs.
        loop {
            let mut changed = false;
            while let Some((rest, r)) = strip_leader(&s) {
                reply |= r;
                s = rest.to_string();
                changed = true;
            }
            if let Some(rest) = strip_blob(&s) {
                if !rest.is_empty() {
                    s = rest.to_string();
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        // (6) "[fwd:" ... "]".
        if s.len() >= 6
            && s.is_char_boundary(5)
            && s[..5].eq_ignore_ascii_case("[fwd:")
            && s.ends_with(']')
        {
            s = s[5..s.len() - 1].to_string();
            reply = true;
            continue;
        }
        break;
    }
    (s, reply)
}

// ---------------------------------------------------------------- addresses

/// The first address of an address header value (RFC 2047 already decoded):
/// (display name, addr-mailbox, host). Groups yield their first member.
pub(crate) fn first_address(value: &str) -> Option<(String, String, String)> {
    // Split at the first top-level ',' (outside quotes, comments and <>).
    let mut depth = 0usize;
    let mut quoted = false;
    let mut angle = false;
    let mut start = 0usize;
    let mut esc = false;
    let b = value.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if esc {
            esc = false;
        } else if c == b'\\' && (quoted || depth > 0) {
            esc = true;
        } else if quoted {
            if c == b'"' {
                quoted = false;
            }
        } else if depth > 0 {
            match c {
                b'(' => depth += 1,
                b')' => depth -= 1,
                _ => {}
            }
        } else {
            match c {
                b'"' => quoted = true,
                b'(' => depth = 1,
                b'<' => angle = true,
                b'>' => angle = false,
                b':' if !angle => start = i + 1, // group name
                b',' | b';' if !angle => {
                    let one = &value[start..i];
                    if let Some(a) = parse_mailbox(one) {
                        return Some(a);
                    }
                    start = i + 1;
                }
                _ => {}
            }
        }
        i += 1;
    }
    parse_mailbox(&value[start..])
}

/// One `mailbox`: `[display-name] "<" addr-spec ">"` or `addr-spec [(comment)]`.
fn parse_mailbox(s: &str) -> Option<(String, String, String)> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let (name, spec) = match (s.find('<'), s.rfind('>')) {
        (Some(a), Some(b)) if a < b && !in_quotes(s, a) => (unquote(&s[..a]), &s[a + 1..b]),
        _ => {
            // addr-spec, maybe with a trailing comment as the name.
            match s.find('(') {
                Some(p) => {
                    let c = s[p + 1..].trim_end().trim_end_matches(')');
                    (c.trim().to_string(), s[..p].trim())
                }
                None => (String::new(), s),
            }
        }
    };
    let spec = spec.trim();
    // Strip a source route "@a,@b:".
    let spec = match spec.find(':') {
        Some(p) if spec.starts_with('@') => &spec[p + 1..],
        _ => spec,
    };
    let (mailbox, host) = match spec.rfind('@') {
        Some(p) => (&spec[..p], &spec[p + 1..]),
        None => (spec, ""),
    };
    let mailbox = unquote(mailbox);
    if mailbox.is_empty() && name.is_empty() {
        return None;
    }
    Some((name, mailbox, host.trim().to_string()))
}

fn in_quotes(s: &str, pos: usize) -> bool {
    s[..pos].bytes().filter(|&c| c == b'"').count() % 2 == 1
}

/// Removes quoting and collapses whitespace.
fn unquote(s: &str) -> String {
    let mut out = String::new();
    let mut esc = false;
    for c in s.trim().chars() {
        if esc {
            out.push(c);
            esc = false;
        } else if c == '\\' {
            esc = true;
        } else if c != '"' {
            out.push(c);
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// SORT FROM/TO/CC key: the addr-mailbox of the first address (RFC 5256).
pub(crate) fn sort_address(values: &[String]) -> String {
    values
        .first()
        .and_then(|v| first_address(v))
        .map(|(_, mailbox, _)| mailbox.to_uppercase())
        .unwrap_or_default()
}

/// DISPLAYFROM/DISPLAYTO key (RFC 5957 section 2): the display name of the
/// first address if non-empty, else its addr-spec.
pub(crate) fn display_address(values: &[String]) -> String {
    values
        .first()
        .and_then(|v| first_address(v))
        .map(|(name, mailbox, host)| {
            if !name.is_empty() {
                name.to_uppercase()
            } else if host.is_empty() {
                mailbox.to_uppercase()
            } else {
                format!("{mailbox}@{host}").to_uppercase()
            }
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------- dates

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The Date: header as seconds since the epoch in UTC (RFC 5256 "sent date",
/// zone-adjusted). Only when `crate::search::header_date` accepts it too.
pub(crate) fn header_datetime(value: &str) -> Option<i64> {
    let date = crate::search::header_date(value)?;
    let cleaned = crate::search::strip_comments(value);
    let tokens: Vec<&str> = cleaned.split_whitespace().collect();
    // The time is the first token with ':'; the zone follows it.
    let ti = tokens.iter().position(|t| t.contains(':'))?;
    let parts: Vec<i64> = tokens[ti]
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let (h, mi, s) = (
        parts[0],
        parts.get(1).copied().unwrap_or(0),
        parts.get(2).copied().unwrap_or(0),
    );
    let offset_min: i64 = match tokens.get(ti + 1) {
        Some(z) if z.starts_with('+') || z.starts_with('-') => {
            let n: i64 = z[1..].parse().ok()?;
            let m = (n / 100) * 60 + n % 100;
            if z.starts_with('-') {
                -m
            } else {
                m
            }
        }
        Some(z) => match z.to_ascii_uppercase().as_str() {
            "EDT" => -4 * 60,
            "EST" | "CDT" => -5 * 60,
            "CST" | "MDT" => -6 * 60,
            "MST" | "PDT" => -7 * 60,
            "PST" => -8 * 60,
            _ => 0,
        },
        None => 0,
    };
    let days = days_from_civil(i64::from(date.year), date.month, date.day);
    Some(days * 86_400 + h * 3600 + mi * 60 + s - offset_min * 60)
}

// ---------------------------------------------------------------- SORT

/// Orders two messages by the criteria; ties fall back to sequence order.
fn compare(criteria: &[SortCriterion], a: (&KeyRow, usize), b: (&KeyRow, usize)) -> Ordering {
    for c in criteria {
        let (x, y) = (a.0, b.0);
        let o = match c.key {
            SortKey::Arrival => x.internal_date.cmp(&y.internal_date),
            SortKey::Size => x.size.cmp(&y.size),
            SortKey::Date => x.date.cmp(&y.date),
            SortKey::Subject => x.sort_subject.cmp(&y.sort_subject),
            SortKey::From => x.sort_from.cmp(&y.sort_from),
            SortKey::To => x.sort_to.cmp(&y.sort_to),
            SortKey::Cc => x.sort_cc.cmp(&y.sort_cc),
            SortKey::DisplayFrom => x.display_from.cmp(&y.display_from),
            SortKey::DisplayTo => x.display_to.cmp(&y.display_to),
        };
        let o = if c.reverse { o.reverse() } else { o };
        if o != Ordering::Equal {
            return o;
        }
    }
    a.1.cmp(&b.1)
}

/// Sorts view indexes (sequence number - 1) of the messages with these UIDs
/// by the criteria.
pub(crate) fn sort_indexes(
    uids: &[Uid],
    idxs: &[usize],
    keys: &MailboxKeys,
    criteria: &[SortCriterion],
) -> Vec<usize> {
    let mut rows: Vec<(&KeyRow, usize)> = idxs.iter().map(|&i| (keys.get(uids[i]), i)).collect();
    if let [c] = criteria {
        // One numeric key (the common SORT (DATE)/(ARRIVAL)/(SIZE)): compare
        // plain integers.
        let num = |r: &KeyRow| -> Option<i64> {
            match c.key {
                SortKey::Arrival => Some(r.internal_date),
                SortKey::Date => Some(r.date),
                SortKey::Size => i64::try_from(r.size).ok(),
                _ => None,
            }
        };
        let nums: Option<Vec<(i64, usize)>> = rows
            .iter()
            .map(|&(r, i)| num(r).map(|k| (if c.reverse { -k } else { k }, i)))
            .collect();
        if let Some(mut nums) = nums.filter(|_| {
            // Negation must not overflow.
            !c.reverse || rows.iter().all(|(r, _)| num(r) != Some(i64::MIN))
        }) {
            nums.sort_unstable();
            return nums.into_iter().map(|(_, i)| i).collect();
        }
    }
    rows.sort_by(|&x, &y| compare(criteria, x, y));
    rows.into_iter().map(|(_, i)| i).collect()
}

/// SORT by ARRIVAL, SIZE and DATE only, from the store's narrow numeric keys
/// (one short range scan, no key cache needed: the first SORT (DATE) after
/// SELECT on a large mailbox stays cheap). The same order as
/// [`sort_indexes`]. `None` when a criterion needs other keys, the store does
/// not keep these apart, or a selected message is not indexed yet (its Date:
/// header is then read from the message: the general path does that).
fn sort_numeric(
    store: &dyn MetaStore,
    mailbox: MailboxId,
    uids: &[Uid],
    idxs: &[usize],
    criteria: &[SortCriterion],
) -> Result<Option<Vec<usize>>, CmdError> {
    if !criteria
        .iter()
        .all(|c| matches!(c.key, SortKey::Arrival | SortKey::Size | SortKey::Date))
    {
        return Ok(None);
    }
    let Some(dates) = store.sort_dates(mailbox).map_err(CmdError::from_store)? else {
        return Ok(None);
    };
    // (ARRIVAL, SIZE, DATE, view index); a message gone from the store sorts
    // with zero keys, like its empty `KeyRow`.
    let mut rows: Vec<(i64, u64, i64, usize)> = Vec::with_capacity(idxs.len());
    let mut at = 0usize;
    for &i in idxs {
        match crate::search::row_of(&dates, &mut at, uids[i], |d| d.uid) {
            Some(j) => {
                let d = &dates[j];
                if !d.indexed {
                    return Ok(None);
                }
                let date = d.sent_date.unwrap_or(d.internal_date);
                rows.push((d.internal_date, d.size, date, i));
            }
            None => rows.push((0, 0, 0, i)),
        }
    }
    match criteria {
        // The common single key: plain integer pairs (view indexes are
        // distinct, so an unstable sort is exact).
        [c] if !c.reverse && c.key == SortKey::Date => {
            rows.sort_unstable_by_key(|r| (r.2, r.3));
            return Ok(Some(rows.into_iter().map(|r| r.3).collect()));
        }
        [c] if c.reverse && c.key == SortKey::Date => {
            rows.sort_unstable_by_key(|r| (std::cmp::Reverse(r.2), r.3));
            return Ok(Some(rows.into_iter().map(|r| r.3).collect()));
        }
        _ => {}
    }
    rows.sort_unstable_by(|x, y| {
        for c in criteria {
            let o = match c.key {
                SortKey::Arrival => x.0.cmp(&y.0),
                SortKey::Size => x.1.cmp(&y.1),
                _ => x.2.cmp(&y.2),
            };
            let o = if c.reverse { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        x.3.cmp(&y.3)
    });
    Ok(Some(rows.into_iter().map(|r| r.3).collect()))
}

/// The key cache entry of a mailbox ([`mailbox_keys`]), loaded by one caller
/// at a time per mailbox: a command arriving while another command or a
/// background warm-up loads 100,000 rows waits for that load and then only
/// reads what is new, instead of loading everything a second time.
pub(crate) fn shared_keys(
    store: &Arc<dyn MetaStore>,
    blobs: &dyn BlobStore,
    mailbox: MailboxId,
    live: usize,
) -> Result<Arc<MailboxKeys>, CmdError> {
    type Gates = Vec<((usize, MailboxId), Arc<Mutex<()>>)>;
    static GATES: Mutex<Gates> = Mutex::new(Vec::new());
    let id = (Arc::as_ptr(store) as *const () as usize, mailbox);
    let gate = {
        let mut g = GATES.lock().unwrap_or_else(PoisonError::into_inner);
        match g.iter().find(|(k, _)| *k == id) {
            Some((_, gate)) => gate.clone(),
            None => {
                let gate = Arc::new(Mutex::new(()));
                g.push((id, gate.clone()));
                gate
            }
        }
    };
    let keys = {
        let _held = gate.lock().unwrap_or_else(PoisonError::into_inner);
        mailbox_keys(store, blobs, mailbox, live)
    };
    let mut g = GATES.lock().unwrap_or_else(PoisonError::into_inner);
    // Only the table and this caller hold it: nobody is waiting.
    if Arc::strong_count(&gate) == 2 {
        g.retain(|(k, _)| *k != id);
    }
    keys
}

/// Fills the key cache of a mailbox in the background after a SORT that did
/// not need it, so that a following SORT on strings or THREAD finds it warm
/// (at most one warm-up per mailbox at a time; once warm, a warm-up only
/// reads the rows appended since).
fn warm_keys(
    store: Arc<dyn MetaStore>,
    blobs: Arc<dyn BlobStore>,
    mailbox: MailboxId,
    live: usize,
) {
    static WARMING: Mutex<Vec<(usize, MailboxId)>> = Mutex::new(Vec::new());
    let id = (Arc::as_ptr(&store) as *const () as usize, mailbox);
    {
        let mut w = WARMING.lock().unwrap_or_else(PoisonError::into_inner);
        if w.contains(&id) {
            return;
        }
        w.push(id);
    }
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        WARMING
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|k| *k != id);
        return;
    };
    rt.spawn_blocking(move || {
        if let Ok(keys) = shared_keys(&store, &*blobs, mailbox, live) {
            crate::cmd::thread::warm_index(&keys);
        }
        WARMING
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|k| *k != id);
    });
}

impl Session {
    pub(crate) async fn cmd_sort(
        &mut self,
        tag: &str,
        uid: bool,
        criteria: &[SortCriterion],
        cmd: &SearchCommand,
    ) -> CmdResult {
        let criteria = criteria.to_vec();
        let with_modseq = crate::search::uses_modseq(&cmd.key);
        let (nums, sorted_uids, modseqs) = self
            .search_then(cmd, move |found| {
                let Searched {
                    store,
                    blobs,
                    mailbox,
                    uids,
                    idxs,
                } = found;
                let sorted = match sort_numeric(&*store, mailbox, &uids, &idxs, &criteria)? {
                    Some(sorted) => {
                        warm_keys(store.clone(), blobs.clone(), mailbox, uids.len());
                        sorted
                    }
                    None => {
                        let keys = shared_keys(&store, &*blobs, mailbox, uids.len())?;
                        sort_indexes(&uids, &idxs, &keys, &criteria)
                    }
                };
                let modseqs = if with_modseq {
                    Modseqs::read(&*store, mailbox, &uids, &idxs)?
                } else {
                    Modseqs::default()
                };
                let nums: Vec<u32> = sorted
                    .iter()
                    .map(|&i| if uid { uids[i] } else { i as u32 + 1 })
                    .collect();
                let sorted_uids: Vec<u32> = sorted.iter().map(|&i| uids[i]).collect();
                Ok::<_, CmdError>((nums, sorted_uids, modseqs))
            })
            .await?;
        if with_modseq {
            self.enable_condstore();
        }
        let Some(opts) = &cmd.return_opts else {
            let mut line = b"* SORT".to_vec();
            line.reserve(nums.len() * 7);
            for n in &nums {
                let _ = write!(line, " {n}");
            }
            // RFC 7162 3.1.9: the highest modseq of the messages returned.
            if let Some(m) = modseqs.max_of(&sorted_uids) {
                let _ = write!(line, " (MODSEQ {m})");
            }
            line.extend_from_slice(b"\r\n");
            self.out.extend_from_slice(&line);
            return Ok(Done::ok("Sort completed"));
        };
        // RFC 5267 ESORT: MIN/MAX are the first/last in sort order; ALL keeps
        // the sort order (a sequence set may not be re-sorted).
        let opts: Vec<SearchReturnOpt> = if opts.is_empty() {
            vec![SearchReturnOpt::All]
        } else {
            opts.clone()
        };
        let mut line = crate::search::esearch_line(tag, uid, &opts, &nums);
        // RFC 7162 3.1.10: of the messages named (in sort order MIN and MAX
        // are the first and last).
        if let Some(m) = modseqs.max_of(&named_by(&opts, &sorted_uids)) {
            let _ = write!(line, " MODSEQ {m}");
        }
        line.extend_from_slice(b"\r\n");
        self.out.extend_from_slice(&line);
        Ok(Done::ok("Sort completed"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_subjects() {
        // Examples follow the RFC 5256 2.1 rules step by step.
        let b = |s: &str| base_subject(s);
        assert_eq!(b("Hello"), ("Hello".into(), false));
        assert_eq!(b("Re: Hello"), ("Hello".into(), true));
        assert_eq!(b("RE: re: Fwd: Hello"), ("Hello".into(), true));
        assert_eq!(b("Re[2]: Hello"), ("Hello".into(), true));
        assert_eq!(b("[list] Re: Hello"), ("Hello".into(), true));
        assert_eq!(b("Hello (fwd)"), ("Hello".into(), true));
        assert_eq!(b("[Fwd: Re: Hello]"), ("Hello".into(), true));
        assert_eq!(b("  Hello \t  world  "), ("Hello world".into(), false));
        // A blob is kept if removing it would leave nothing.
        assert_eq!(b("[list]"), ("[list]".into(), false));
        assert_eq!(b("[list] Hello"), ("Hello".into(), false));
        assert_eq!(b("Re:"), ("".into(), true));
        assert_eq!(b("Rex: Hello"), ("Rex: Hello".into(), false));
        assert_eq!(b(""), ("".into(), false));
    }

    #[test]
    fn addresses() {
        let a = |s: &str| first_address(s);
        assert_eq!(
            a("\"Doe, John\" <john@example.com>, x@y"),
            Some(("Doe, John".into(), "john".into(), "example.com".into()))
        );
        assert_eq!(
            a("alice@example.org (Alice A)"),
            Some(("Alice A".into(), "alice".into(), "example.org".into()))
        );
        assert_eq!(
            a("undisclosed: bob@b.example, c@c;"),
            Some(("".into(), "bob".into(), "b.example".into()))
        );
        assert_eq!(a(""), None);
        assert_eq!(sort_address(&["Zed <a@z>".into()]), "A");
        assert_eq!(display_address(&["Zed <a@z>".into()]), "ZED");
        assert_eq!(display_address(&["a@z".into()]), "A@Z");
    }

    #[test]
    fn datetimes() {
        assert_eq!(header_datetime("Thu, 1 Jan 1970 00:00:00 +0000"), Some(0));
        assert_eq!(header_datetime("1 Jan 1970 01:00:00 +0100"), Some(0));
        assert_eq!(
            header_datetime("Fri, 4 May 2001 14:05:44 -0400"),
            Some(988_999_544)
        );
        assert_eq!(header_datetime("garbage"), None);
    }

    #[test]
    fn ordered_sets() {
        let mut v = Vec::new();
        crate::search::ordered_set(&mut v, &[5, 1, 2, 3, 9, 8]);
        assert_eq!(v, b"5,1:3,9,8");
    }
}
