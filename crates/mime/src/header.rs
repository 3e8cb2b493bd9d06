//! Header block scanning over raw bytes, following Dovecot's
//! `message-header-parser.c`: the header ends at the first empty line (which
//! belongs to the header); a line that is not a `name: value` field does not
//! end it (README quirk 13).

/// One header field as it appears in the raw bytes.
#[derive(Debug, Clone)]
pub(crate) struct Field<'a> {
    /// Field name with whitespace before the colon removed.
    pub name: &'a [u8],
    /// The value after the colon (leading whitespace skipped), continuation
    /// lines included, final line ending excluded.
    pub value: &'a [u8],
    /// The whole field including continuation lines and the final line ending.
    pub raw: &'a [u8],
    /// Whether a colon was found.
    pub has_colon: bool,
}

/// End of the header block starting at `start` (exclusive, the empty line
/// included). Without an empty line the header runs to `end`.
pub(crate) fn header_end(raw: &[u8], start: usize, end: usize) -> usize {
    let mut pos = start;
    while pos < end {
        // pos is at a line start
        if raw[pos] == b'\n' {
            return pos + 1;
        }
        if raw[pos] == b'\r' && pos + 1 < end && raw[pos + 1] == b'\n' {
            return pos + 2;
        }
        match memchr(b'\n', &raw[pos..end]) {
            Some(i) => pos += i + 1,
            None => return end,
        }
    }
    end
}

pub(crate) fn memchr(c: u8, s: &[u8]) -> Option<usize> {
    s.iter().position(|&b| b == c)
}

/// Split a header block into fields (the terminating empty line is skipped).
pub(crate) fn fields(block: &[u8]) -> Vec<Field<'_>> {
    let mut out: Vec<Field<'_>> = Vec::new();
    let mut pos = 0;
    let len = block.len();
    while pos < len {
        let line_start = pos;
        let line_end = match memchr(b'\n', &block[pos..]) {
            Some(i) => pos + i + 1,
            None => len,
        };
        let line = &block[line_start..line_end];
        let content = trim_eol(line);
        if content.is_empty() {
            // the empty line ending the header
            break;
        }
        if (line[0] == b' ' || line[0] == b'\t') && !out.is_empty() {
            if let Some(last) = out.last_mut() {
                let start = last.raw.as_ptr() as usize - block.as_ptr() as usize;
                last.raw = &block[start..line_end];
                let vstart = last.value.as_ptr() as usize - block.as_ptr() as usize;
                let vend = line_start + content.len();
                last.value = &block[vstart.min(vend)..vend];
            }
            pos = line_end;
            continue;
        }
        let (name, value, has_colon) = match memchr(b':', content) {
            Some(c) => {
                let mut n = &content[..c];
                while let Some((&l, rest)) = n.split_last() {
                    if l == b' ' || l == b'\t' {
                        n = rest;
                    } else {
                        break;
                    }
                }
                let mut v = c + 1;
                while v < content.len() && (content[v] == b' ' || content[v] == b'\t') {
                    v += 1;
                }
                let vs = line_start + v;
                (n, &block[vs..line_start + content.len()], true)
            }
            None => (
                content,
                &block[line_start + content.len()..line_start + content.len()],
                false,
            ),
        };
        out.push(Field {
            name,
            value,
            raw: line,
            has_colon,
        });
        pos = line_end;
    }
    out
}

pub(crate) fn trim_eol(line: &[u8]) -> &[u8] {
    let mut l = line;
    if let Some((&b'\n', rest)) = l.split_last() {
        l = rest;
        if let Some((&b'\r', rest)) = l.split_last() {
            l = rest;
        }
    }
    l
}

/// The first field named `name` (case-insensitive).
pub(crate) fn first<'a>(fields: &[Field<'a>], name: &str) -> Option<&'a [u8]> {
    fields
        .iter()
        .find(|f| f.has_colon && f.name.eq_ignore_ascii_case(name.as_bytes()))
        .map(|f| f.value)
}

/// Unfold: drop CR and LF (continuation lines start with whitespace already).
pub(crate) fn unfold(v: &[u8]) -> Vec<u8> {
    v.iter()
        .copied()
        .filter(|&b| b != b'\r' && b != b'\n')
        .collect()
}
