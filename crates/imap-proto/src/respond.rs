//! Encoders for response data.

use crate::mutf7;

const MAX_QUOTED: usize = 1000;
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn quotable(s: &[u8], allow_8bit: bool) -> bool {
    s.len() <= MAX_QUOTED
        && s.iter()
            .all(|&b| (0x20..0x7f).contains(&b) || (allow_8bit && b >= 0x80))
        && (!allow_8bit || std::str::from_utf8(s).is_ok())
}

fn quoted(out: &mut Vec<u8>, s: &[u8]) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    for &b in s {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
}

fn is_out_atom_char(b: u8) -> bool {
    (0x21..0x7f).contains(&b)
        && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
}

/// A string: quoted when it can be (no CR, LF, NUL, `"`/`\` escaped, 7-bit unless
/// `utf8`-safe is wanted by the caller, at most 1000 bytes), else a literal `{n}\r\n...`.
pub fn string(out: &mut Vec<u8>, s: &[u8]) {
    if quotable(s, false) {
        quoted(out, s);
    } else {
        literal(out, s);
    }
}
/// Always a literal `{n}\r\n` + bytes.
pub fn literal(out: &mut Vec<u8>, s: &[u8]) {
    literal_with_header(out, s, false);
}
/// A literal8 `~{n}\r\n` + bytes (RFC 3516: may hold NUL).
pub fn literal8(out: &mut Vec<u8>, s: &[u8]) {
    literal_with_header(out, s, true);
}
fn literal_with_header(out: &mut Vec<u8>, s: &[u8], literal8: bool) {
    out.reserve(s.len() + 24);
    literal_header(out, s.len() as u64, literal8);
    out.extend_from_slice(s);
}
/// The header of a literal of `len` bytes, `{len}\r\n`, or of a literal8,
/// `~{len}\r\n`: for data sent after it (streamed).
pub fn literal_header(out: &mut Vec<u8>, len: u64, literal8: bool) {
    if literal8 {
        out.push(b'~');
    }
    out.push(b'{');
    number(out, len);
    out.extend_from_slice(b"}\r\n");
}
/// A number in decimal. Responses carry several per message (sequence
/// number, UID, size, literal length, modseq): `write!` through
/// `core::fmt` cost several times as much.
pub fn number(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}
/// `NIL` or a string.
pub fn nstring(out: &mut Vec<u8>, s: Option<&[u8]>) {
    match s {
        Some(s) => string(out, s),
        None => out.extend_from_slice(b"NIL"),
    }
}
/// An atom when every byte is an ATOM-CHAR (and it is not `NIL`), else a string.
pub fn astring(out: &mut Vec<u8>, s: &[u8]) {
    if !s.is_empty() && s.iter().all(|&b| is_out_atom_char(b)) && !s.eq_ignore_ascii_case(b"NIL") {
        out.extend_from_slice(s);
    } else {
        string(out, s);
    }
}
/// A mailbox name: modified UTF-7 when `!utf8` (IMAP4rev1), raw UTF-8 otherwise
/// (quoted or literal as needed).
pub fn mailbox(out: &mut Vec<u8>, name: &str, utf8: bool) {
    if name.eq_ignore_ascii_case("INBOX") {
        out.extend_from_slice(name.as_bytes());
    } else if !utf8 {
        astring(out, mutf7::encode(name).as_bytes());
    } else if name.is_ascii() {
        astring(out, name.as_bytes());
    } else if quotable(name.as_bytes(), true) {
        quoted(out, name.as_bytes());
    } else {
        literal(out, name.as_bytes());
    }
}
/// `(\Seen $Label)`.
pub fn flag_list<S: AsRef<str>>(out: &mut Vec<u8>, flags: &[S]) {
    out.push(b'(');
    for (i, f) in flags.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(f.as_ref().as_bytes());
    }
    out.push(b')');
}
/// Compressed sequence set from ascending numbers: `1:3,5,7:9`.
pub fn sequence_set(out: &mut Vec<u8>, ascending: &[u32]) {
    let mut first = true;
    let mut i = 0;
    while let Some(&start) = ascending.get(i) {
        let mut end = start;
        i += 1;
        while let Some(&n) = ascending.get(i) {
            if n == end || Some(n) == end.checked_add(1) {
                end = n;
                i += 1;
            } else {
                break;
            }
        }
        if !first {
            out.push(b',');
        }
        first = false;
        if start == end {
            out.extend_from_slice(start.to_string().as_bytes());
        } else {
            out.extend_from_slice(format!("{start}:{end}").as_bytes());
        }
    }
}

/// Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `"01-Jan-2024 00:00:00 +0000"` (quoted) for an INTERNALDATE.
pub fn date_time(out: &mut Vec<u8>, unix: i64, offset_minutes: i32) {
    let local = unix.saturating_add(i64::from(offset_minutes) * 60);
    let days = local.div_euclid(86400);
    let secs = local.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    let month = MONTHS
        .get((m as usize).saturating_sub(1))
        .copied()
        .unwrap_or("Jan");
    let sign = if offset_minutes < 0 { '-' } else { '+' };
    let off = offset_minutes.unsigned_abs();
    out.extend_from_slice(
        format!(
            "\"{:02}-{}-{:04} {:02}:{:02}:{:02} {}{:02}{:02}\"",
            d,
            month,
            y,
            secs / 3600,
            (secs / 60) % 60,
            secs % 60,
            sign,
            (off / 60) % 100,
            off % 60
        )
        .as_bytes(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut v = Vec::new();
        f(&mut v);
        String::from_utf8_lossy(&v).into_owned()
    }

    #[test]
    fn strings() {
        assert_eq!(w(|o| string(o, b"hello")), "\"hello\"");
        assert_eq!(w(|o| string(o, b"a\"b\\c")), "\"a\\\"b\\\\c\"");
        assert_eq!(w(|o| string(o, b"")), "\"\"");
        assert_eq!(w(|o| string(o, b"a\r\nb")), "{4}\r\na\r\nb");
        assert_eq!(w(|o| string(o, b"a\0")), "{2}\r\na\0");
        assert_eq!(w(|o| string(o, "é".as_bytes())), "{2}\r\né");
        let long = vec![b'x'; 1001];
        assert!(w(|o| string(o, &long)).starts_with("{1001}\r\n"));
        let ok = vec![b'x'; 1000];
        assert!(w(|o| string(o, &ok)).starts_with('"'));
        assert_eq!(w(|o| literal(o, b"abc")), "{3}\r\nabc");
        assert_eq!(w(|o| literal(o, b"")), "{0}\r\n");
        assert_eq!(w(|o| literal8(o, b"a\0")), "~{2}\r\na\0");
        assert_eq!(w(|o| literal_header(o, 70000, false)), "{70000}\r\n");
        assert_eq!(w(|o| number(o, 0)), "0");
        assert_eq!(w(|o| number(o, 4_294_967_295)), "4294967295");
        assert_eq!(w(|o| number(o, u64::MAX)), "18446744073709551615");
        assert_eq!(w(|o| nstring(o, None)), "NIL");
        assert_eq!(w(|o| nstring(o, Some(b"x"))), "\"x\"");
    }

    #[test]
    fn astrings_and_mailboxes() {
        assert_eq!(w(|o| astring(o, b"Sent")), "Sent");
        assert_eq!(w(|o| astring(o, b"NIL")), "\"NIL\"");
        assert_eq!(w(|o| astring(o, b"nil")), "\"nil\"");
        assert_eq!(w(|o| astring(o, b"")), "\"\"");
        assert_eq!(w(|o| astring(o, b"a b")), "\"a b\"");
        assert_eq!(w(|o| astring(o, b"a]")), "\"a]\"");
        assert_eq!(w(|o| mailbox(o, "INBOX", false)), "INBOX");
        assert_eq!(w(|o| mailbox(o, "Entwürfe", false)), "Entw&APw-rfe");
        assert_eq!(w(|o| mailbox(o, "Entwürfe", true)), "\"Entwürfe\"");
        assert_eq!(w(|o| mailbox(o, "A & B", false)), "\"A &- B\"");
        assert_eq!(w(|o| mailbox(o, "Sent Items", true)), "\"Sent Items\"");
        assert_eq!(w(|o| mailbox(o, "Archive/2024", true)), "Archive/2024");
    }

    #[test]
    fn flags() {
        assert_eq!(
            w(|o| flag_list(o, &["\\Seen", "$Label"])),
            "(\\Seen $Label)"
        );
        assert_eq!(w(|o| flag_list::<&str>(o, &[])), "()");
    }

    #[test]
    fn sequence_sets() {
        assert_eq!(w(|o| sequence_set(o, &[1, 2, 3, 5, 7, 8, 9])), "1:3,5,7:9");
        assert_eq!(w(|o| sequence_set(o, &[4])), "4");
        assert_eq!(w(|o| sequence_set(o, &[])), "");
        assert_eq!(w(|o| sequence_set(o, &[1, 3, 5])), "1,3,5");
        assert_eq!(w(|o| sequence_set(o, &[1, 1, 2])), "1:2");
        assert_eq!(
            w(|o| sequence_set(o, &[u32::MAX - 1, u32::MAX])),
            format!("{}:{}", u32::MAX - 1, u32::MAX)
        );
    }

    #[test]
    fn date_times() {
        assert_eq!(
            w(|o| date_time(o, 1_704_067_200, 0)),
            "\"01-Jan-2024 00:00:00 +0000\""
        );
        assert_eq!(w(|o| date_time(o, 0, 0)), "\"01-Jan-1970 00:00:00 +0000\"");
        // 2024-02-29 12:34:56 UTC shown at +0200 and -0530
        let t = 1_709_210_096;
        assert_eq!(
            w(|o| date_time(o, t, 120)),
            "\"29-Feb-2024 14:34:56 +0200\""
        );
        assert_eq!(
            w(|o| date_time(o, t, -330)),
            "\"29-Feb-2024 07:04:56 -0530\""
        );
        assert_eq!(w(|o| date_time(o, -1, 0)), "\"31-Dec-1969 23:59:59 +0000\"");
        // round trip with the parser's date-time
        let dt = crate::parse::parse_date_time_for_tests(b"17-Jul-1996 02:44:25 -0700");
        let dt = dt.expect("valid");
        assert_eq!(
            w(|o| date_time(o, dt.unix, dt.offset_minutes)),
            "\"17-Jul-1996 02:44:25 -0700\""
        );
        assert_eq!(dt.unix, 837_596_665);
    }
}
