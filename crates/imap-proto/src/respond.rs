//! Encoders for response data.

/// A string: quoted when it can be (no CR, LF, NUL, `"`/`\` escaped, 7-bit unless
/// `utf8`-safe is wanted by the caller, at most 1000 bytes), else a literal `{n}\r\n...`.
pub fn string(out: &mut Vec<u8>, s: &[u8]) {
    unimplemented!()
}
/// Always a literal `{n}\r\n` + bytes.
pub fn literal(out: &mut Vec<u8>, s: &[u8]) {
    unimplemented!()
}
/// `NIL` or a string.
pub fn nstring(out: &mut Vec<u8>, s: Option<&[u8]>) {
    unimplemented!()
}
/// An atom when every byte is an ATOM-CHAR (and it is not `NIL`), else a string.
pub fn astring(out: &mut Vec<u8>, s: &[u8]) {
    unimplemented!()
}
/// A mailbox name: modified UTF-7 when `!utf8` (IMAP4rev1), raw UTF-8 otherwise
/// (quoted or literal as needed).
pub fn mailbox(out: &mut Vec<u8>, name: &str, utf8: bool) {
    unimplemented!()
}
/// `(\Seen $Label)`.
pub fn flag_list<S: AsRef<str>>(out: &mut Vec<u8>, flags: &[S]) {
    unimplemented!()
}
/// Compressed sequence set from ascending numbers: `1:3,5,7:9`.
pub fn sequence_set(out: &mut Vec<u8>, ascending: &[u32]) {
    unimplemented!()
}
/// `"01-Jan-2024 00:00:00 +0000"` (quoted) for an INTERNALDATE.
pub fn date_time(out: &mut Vec<u8>, unix: i64, offset_minutes: i32) {
    unimplemented!()
}
