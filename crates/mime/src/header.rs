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
    memchr::memchr(c, s)
}

/// Split a header block into fields (the terminating empty line is skipped).
pub(crate) fn fields(block: &[u8]) -> Vec<Field<'_>> {
    iter_fields(block).collect()
}

/// The fields of a header block one by one, as [`fields`] lists them.
pub(crate) fn iter_fields(block: &[u8]) -> Fields<'_> {
    Fields { block, pos: 0 }
}

pub(crate) struct Fields<'a> {
    block: &'a [u8],
    pos: usize,
}

impl<'a> Fields<'a> {
    /// The line at `pos`: (end including the line ending, content end).
    fn line_at(&self, pos: usize) -> (usize, usize) {
        let block = self.block;
        let end = match memchr(b'\n', &block[pos..]) {
            Some(i) => pos + i + 1,
            None => block.len(),
        };
        (end, pos + trim_eol(&block[pos..end]).len())
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Field<'a>;

    fn next(&mut self) -> Option<Field<'a>> {
        let block = self.block;
        let start = self.pos;
        if start >= block.len() {
            return None;
        }
        let (mut end, content_end) = self.line_at(start);
        if content_end == start {
            // the empty line ending the header
            self.pos = block.len();
            return None;
        }
        let content = &block[start..content_end];
        let (name, vs, has_colon) = match memchr(b':', content) {
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
                (n, start + v, true)
            }
            None => (content, content_end, false),
        };
        let mut value_end = content_end;
        // Continuation lines belong to this field.
        while end < block.len() && (block[end] == b' ' || block[end] == b'\t') {
            let (next_end, next_content_end) = self.line_at(end);
            value_end = next_content_end;
            end = next_end;
        }
        self.pos = end;
        Some(Field {
            name,
            value: &block[vs.min(value_end)..value_end],
            raw: &block[start..end],
            has_colon,
        })
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// (name, value, raw, has_colon) of each field.
    fn split(block: &[u8]) -> Vec<(String, String, String, bool)> {
        let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        iter_fields(block)
            .map(|f| (s(f.name), s(f.value), s(f.raw), f.has_colon))
            .collect()
    }

    fn field(name: &str, value: &str, raw: &str, colon: bool) -> (String, String, String, bool) {
        (name.into(), value.into(), raw.into(), colon)
    }

    #[test]
    fn fields_with_folding_odd_lines_and_the_end_of_the_header() {
        let block = b" lead: x\r\nSubject : \t hello\r\n  world\r\n\tagain\r\nno colon here\r\n cont\r\nTo:a\n\r\nBody: not a field\r\n";
        assert_eq!(
            split(block),
            vec![
                // A first line starting with whitespace is a field of its own.
                field(" lead", "x", " lead: x\r\n", true),
                field(
                    "Subject",
                    "hello\r\n  world\r\n\tagain",
                    "Subject : \t hello\r\n  world\r\n\tagain\r\n",
                    true
                ),
                // A line without a colon does not end the header; its
                // continuation lines are its value.
                field(
                    "no colon here",
                    "\r\n cont",
                    "no colon here\r\n cont\r\n",
                    false
                ),
                field("To", "a", "To:a\n", true),
            ]
        );
        assert_eq!(fields(block).len(), 4);
        // No line ending at the end of the block, in a continuation line or
        // in a field's own line.
        assert_eq!(
            split(b"A: 1\r\nB: 2\r\n x"),
            vec![
                field("A", "1", "A: 1\r\n", true),
                field("B", "2\r\n x", "B: 2\r\n x", true),
            ]
        );
        assert_eq!(split(b"A: 1"), vec![field("A", "1", "A: 1", true)]);
    }

    #[test]
    fn fields_without_a_final_line_ending_or_empty_line() {
        assert_eq!(
            split(b"A: 1\r\nB:   \r\n C"),
            vec![
                field("A", "1", "A: 1\r\n", true),
                field("B", "\r\n C", "B:   \r\n C", true),
            ]
        );
        assert!(split(b"\r\nA: 1\r\n").is_empty());
        assert!(split(b"").is_empty());
    }
}
