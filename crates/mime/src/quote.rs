//! IMAP string output the way Dovecot 2.3 writes it (`imap-quote.c`).

/// `imap_append_nstring`: quoted when possible, a literal when the value
/// contains CR, LF, NUL or 8-bit bytes.
#[allow(dead_code)]
pub(crate) fn nstring(out: &mut Vec<u8>, s: Option<&[u8]>) {
    match s {
        None => out.extend_from_slice(b"NIL"),
        Some(s) => string(out, s),
    }
}

pub(crate) fn string(out: &mut Vec<u8>, s: &[u8]) {
    let needs_literal = s
        .iter()
        .any(|&b| b == b'\r' || b == b'\n' || b == 0 || b >= 0x80);
    if needs_literal {
        literal(out, s);
        return;
    }
    out.push(b'"');
    for &b in s {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
}

pub(crate) fn literal(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(format!("{{{}}}\r\n", s.len()).as_bytes());
    out.extend_from_slice(s);
}

/// `imap_append_nstring_nolf`: CR and LF removed (a space is inserted when
/// the next line does not start with whitespace), then [`nstring`].
pub(crate) fn nstring_nolf(out: &mut Vec<u8>, s: Option<&[u8]>) {
    match s {
        None => out.extend_from_slice(b"NIL"),
        Some(s) => {
            if !s.iter().any(|&b| b == b'\r' || b == b'\n') {
                string(out, s);
                return;
            }
            let mut v = Vec::with_capacity(s.len());
            for (i, &b) in s.iter().enumerate() {
                if b != b'\r' && b != b'\n' {
                    v.push(b);
                } else {
                    let next = s.get(i + 1).copied();
                    if !matches!(next, Some(b' ' | b'\t' | b'\r' | b'\n')) {
                        v.push(b' ');
                    }
                }
            }
            string(out, &v);
        }
    }
}

/// `imap_append_string_for_humans`: whitespace runs (SP, TAB, CR, LF) become
/// one space, leading/trailing whitespace is dropped, NUL becomes 0x80; any
/// string that needed a change (or contains `"`, `\` or 8-bit bytes) is sent
/// as a literal. RFC 3501 would send the header value unchanged; this is the
/// Dovecot behaviour the corpus expects (README quirk 7).
pub(crate) fn string_for_humans(out: &mut Vec<u8>, s: &[u8]) {
    let mut modify = false;
    let mut remove = 0usize;
    let mut last_lwsp = true;
    for &b in s {
        match b {
            0 => {
                last_lwsp = false;
                modify = true;
            }
            b'\r' | b'\n' | b'\t' | b' ' => {
                if b != b' ' {
                    modify = true;
                }
                if last_lwsp {
                    modify = true;
                    remove += 1;
                }
                last_lwsp = true;
            }
            b'"' | b'\\' => {
                modify = true;
                last_lwsp = false;
            }
            _ => {
                if b >= 0x80 {
                    modify = true;
                }
                last_lwsp = false;
            }
        }
    }
    if last_lwsp && !s.is_empty() {
        modify = true;
        remove += 1;
    }
    if !modify {
        out.push(b'"');
        out.extend_from_slice(s);
        out.push(b'"');
        return;
    }
    let mut v = Vec::with_capacity(s.len());
    let mut last_lwsp = true;
    for &b in s {
        match b {
            0 => {
                v.push(0x80);
                last_lwsp = false;
            }
            b'\r' | b'\n' | b'\t' | b' ' => {
                if !last_lwsp {
                    v.push(b' ');
                }
                last_lwsp = true;
            }
            _ => {
                v.push(b);
                last_lwsp = false;
            }
        }
    }
    if last_lwsp && v.last() == Some(&b' ') {
        v.pop();
    }
    let _ = remove;
    if v.is_empty() {
        out.extend_from_slice(b"\"\"");
        return;
    }
    literal(out, &v);
}
