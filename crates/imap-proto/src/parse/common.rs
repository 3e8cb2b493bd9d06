//! Grammar pieces shared by several commands: sequence sets, flags, dates,
//! mailbox names, parenthesised lists.

use super::cursor::{parse_u64, printable, Parser, Peek};
use crate::types::{Date, DateTime, Flag, MailboxName, SeqNum, SequenceSet};

pub(crate) const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];

fn is_seq_char(b: u8) -> bool {
    b.is_ascii_digit() || matches!(b, b'*' | b':' | b',' | b'$')
}

/// Parses `1`, `*`, `1:*`, `5:2`, `1,3:4`, `$`. None if invalid (incl. zero).
pub(crate) fn parse_sequence_set(s: &[u8]) -> Option<SequenceSet> {
    if s == b"$" {
        return Some(SequenceSet::Saved);
    }
    if s.is_empty() {
        return None;
    }
    let mut ranges = Vec::new();
    for item in s.split(|&b| b == b',') {
        let mut it = item.splitn(2, |&b| b == b':');
        let a = seq_num(it.next()?)?;
        let b = match it.next() {
            Some(x) => seq_num(x)?,
            None => a,
        };
        ranges.push((a, b));
    }
    Some(SequenceSet::Ranges(ranges))
}

fn seq_num(s: &[u8]) -> Option<SeqNum> {
    if s == b"*" {
        return Some(SeqNum::Star);
    }
    if s.is_empty() || s.len() > 10 {
        return None;
    }
    let n = u32::try_from(parse_u64(s)?).ok()?;
    if n == 0 {
        return None;
    }
    Some(SeqNum::Value(n))
}

/// Days since 1970-01-01 for a proleptic Gregorian date (H. Hinnant's algorithm).
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn is_leap(y: i32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        _ => 28,
    }
}

fn month_from(s: &[u8]) -> Option<u32> {
    let up = std::str::from_utf8(s).ok()?.to_ascii_uppercase();
    MONTHS
        .iter()
        .position(|m| *m == up)
        .and_then(|i| u32::try_from(i + 1).ok())
}

/// `date-text`: `d-Mon-yyyy` (day 1 or 2 digits).
pub(crate) fn parse_date_text(s: &[u8]) -> Option<Date> {
    let mut it = s.split(|&b| b == b'-');
    let d = it.next()?;
    let m = it.next()?;
    let y = it.next()?;
    if it.next().is_some() || d.is_empty() || d.len() > 2 || y.len() != 4 {
        return None;
    }
    let day = u32::try_from(parse_u64(d)?).ok()?;
    let month = month_from(m)?;
    let year = i32::try_from(parse_u64(y)?).ok()?;
    if day == 0 || day > days_in_month(year, month) {
        return None;
    }
    Some(Date { year, month, day })
}

/// `date-time` contents: `dd-Mon-yyyy hh:mm:ss +zzzz` (day may be space-padded).
pub(crate) fn parse_date_time(s: &[u8]) -> Option<DateTime> {
    if s.len() != 26 {
        return None;
    }
    let day_part = s.get(0..2)?;
    let day_digits: &[u8] = if day_part.first() == Some(&b' ') {
        day_part.get(1..)?
    } else {
        day_part
    };
    if s.get(2) != Some(&b'-') || s.get(6) != Some(&b'-') || s.get(11) != Some(&b' ') {
        return None;
    }
    let day = u32::try_from(parse_u64(day_digits)?).ok()?;
    let month = month_from(s.get(3..6)?)?;
    let year = i32::try_from(parse_u64(s.get(7..11)?)?).ok()?;
    if day == 0 || day > days_in_month(year, month) {
        return None;
    }
    if s.get(14) != Some(&b':') || s.get(17) != Some(&b':') || s.get(20) != Some(&b' ') {
        return None;
    }
    let h = parse_u64(s.get(12..14)?)?;
    let mi = parse_u64(s.get(15..17)?)?;
    let sec = parse_u64(s.get(18..20)?)?;
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let sign = match s.get(21)? {
        b'+' => 1i64,
        b'-' => -1i64,
        _ => return None,
    };
    let zh = parse_u64(s.get(22..24)?)?;
    let zm = parse_u64(s.get(24..26)?)?;
    if zm > 59 || zh > 99 {
        return None;
    }
    let offset = sign * (zh as i64 * 60 + zm as i64);
    let days = days_from_civil(i64::from(year), month, day);
    let local = days * 86400 + h as i64 * 3600 + mi as i64 * 60 + sec as i64;
    Some(DateTime {
        unix: local - offset * 60,
        offset_minutes: i32::try_from(offset).ok()?,
    })
}

impl Parser {
    /// A sequence set (`$` allowed).
    pub(crate) fn sequence_set(&mut self) -> Result<SequenceSet, ParseError> {
        let raw = self.take_while(is_seq_char);
        if raw.is_empty() {
            return if self.at_end() {
                Err(self.err("Missing sequence set"))
            } else {
                Err(self.err("Invalid sequence set"))
            };
        }
        parse_sequence_set(&raw)
            .ok_or_else(|| self.err(format!("Invalid sequence set: {}", printable(&raw, 40))))
    }

    /// A mailbox name (astring).
    pub(crate) fn mailbox(&mut self) -> Result<MailboxName, ParseError> {
        if self.at_end() {
            return Err(self.err("Missing mailbox name"));
        }
        Ok(MailboxName(self.astring("mailbox name")?))
    }

    /// One flag: a system flag or a keyword (an atom, so 7-bit: RFC 9051
    /// 9, `flag-keyword`). `\Recent` is rejected (not settable), and so is
    /// any other `\Xyz`: no standard defines one, and a server "MUST NOT
    /// generate flag-extension flags" (RFC 3501 9) that it would echo.
    pub(crate) fn flag(&mut self) -> Result<Flag, ParseError> {
        let backslash = self.eat(b'\\');
        let name = self.take_while(super::is_atom_char);
        if name.is_empty() {
            return Err(self.err("Invalid flag"));
        }
        if !name.is_ascii() {
            return Err(self.err("8-bit characters are not allowed in a flag"));
        }
        let name = String::from_utf8(name).map_err(|_| self.err("Invalid flag"))?;
        if !backslash {
            return Ok(Flag::Keyword(name));
        }
        Ok(match name.to_ascii_uppercase().as_str() {
            "SEEN" => Flag::Seen,
            "ANSWERED" => Flag::Answered,
            "FLAGGED" => Flag::Flagged,
            "DELETED" => Flag::Deleted,
            "DRAFT" => Flag::Draft,
            "RECENT" => return Err(self.err("The \\Recent flag cannot be set")),
            _ => return Err(self.err(format!("Invalid system flag \\{name}"))),
        })
    }

    /// `(flag *(SP flag))` or `()`.
    pub(crate) fn flag_list(&mut self) -> Result<Vec<Flag>, ParseError> {
        self.expect(b'(', "( to start flag list")?;
        let mut flags = Vec::new();
        if self.eat(b')') {
            return Ok(flags);
        }
        loop {
            flags.push(self.flag()?);
            if self.eat(b')') {
                return Ok(flags);
            }
            if !self.eat(b' ') {
                return Err(self.err("Expected SP or ) in flag list"));
            }
        }
    }

    /// `date`: date-text or quoted date-text.
    pub(crate) fn date(&mut self, what: &str) -> Result<Date, ParseError> {
        let raw = if self.peek() == Peek::Byte(b'"') {
            self.quoted()?
        } else {
            self.take_while(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        if raw.is_empty() {
            return Err(self.err(format!("Missing date for {what}")));
        }
        parse_date_text(&raw)
            .ok_or_else(|| self.err(format!("Invalid date for {what}: {}", printable(&raw, 30))))
    }

    /// `date-time` (quoted).
    pub(crate) fn date_time(&mut self) -> Result<DateTime, ParseError> {
        let raw = self.quoted()?;
        parse_date_time(&raw)
            .ok_or_else(|| self.err(format!("Invalid date-time: {}", printable(&raw, 30))))
    }

    /// Parses `( item *(SP item) )` (empty allowed if `allow_empty`), calling `item`
    /// for each element. Counts as one nesting level.
    pub(crate) fn paren_list<T>(
        &mut self,
        what: &str,
        allow_empty: bool,
        mut item: impl FnMut(&mut Parser) -> Result<T, ParseError>,
    ) -> Result<Vec<T>, ParseError> {
        if !self.eat(b'(') {
            return Err(self.err(format!("Expected ( to start {what}")));
        }
        self.enter()?;
        let mut out = Vec::new();
        if self.eat(b')') {
            self.leave();
            if !allow_empty {
                return Err(self.err(format!("Empty {what}")));
            }
            return Ok(out);
        }
        loop {
            out.push(item(self)?);
            if self.eat(b')') {
                self.leave();
                return Ok(out);
            }
            if !self.eat(b' ') {
                return Err(if self.at_end() {
                    self.err(format!("Missing ) to end {what}"))
                } else {
                    self.err(format!("Expected SP or ) in {what}"))
                });
            }
        }
    }
}

use crate::types::ParseError;
