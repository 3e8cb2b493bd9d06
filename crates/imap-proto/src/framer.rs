//! Framing: a request is one or more lines; a line ending in a literal
//! announcement (`{n}`, `{n+}` for LITERAL+/LITERAL-, `~{n}`, `~{n+}` for literal8)
//! is followed by n bytes, then more of the
//! request. The connection reads lines (enforcing its line-length limit), and
//! when [`CommandBuffer::push_line`] reports a literal, checks the size limit,
//! sends `+ ` for a synchronizing literal, reads the bytes (into memory or a
//! spool file) and hands them back with [`CommandBuffer::push_literal`].

use crate::types::{LiteralData, ParseError, Request};

/// A literal announced at the end of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiteralSpec {
    pub len: u64,
    /// `{n+}` (LITERAL+ / LITERAL-): the client does not wait for `+`.
    pub non_sync: bool,
    /// `~{n}` (literal8, RFC 3516).
    pub binary: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Line text without CRLF and without the trailing literal announcement.
    Text(Vec<u8>),
    Literal {
        data: LiteralData,
        binary: bool,
    },
}

/// Accumulates the parts of one request.
#[derive(Debug, Default)]
pub struct CommandBuffer {
    parts: Vec<Part>,
}

impl CommandBuffer {
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds one line (without its CRLF). Returns the literal announced at its end,
    /// if any (the request then continues after the literal), or None when the
    /// request is complete. A malformed announcement is a ParseError.
    pub fn push_line(&mut self, line: &[u8]) -> Result<Option<LiteralSpec>, ParseError> {
        let first = self.parts.is_empty();
        match split_announcement(line) {
            Ok(None) => {
                self.parts.push(Part::Text(line.to_vec()));
                Ok(None)
            }
            Ok(Some((text_len, spec))) => {
                self.parts.push(Part::Text(line[..text_len].to_vec()));
                Ok(Some(spec))
            }
            Err(text) => {
                let tag = if first { read_tag(line) } else { self.tag() };
                // Keep the text so the buffer still reflects what was read.
                self.parts.push(Part::Text(line.to_vec()));
                Err(ParseError { tag, text })
            }
        }
    }
    pub fn push_literal(&mut self, data: LiteralData, binary: bool) {
        self.parts.push(Part::Literal { data, binary });
    }
    /// The tag, if the first line starts with a valid one.
    pub fn tag(&self) -> Option<String> {
        match self.parts.first() {
            Some(Part::Text(t)) => read_tag(t),
            _ => None,
        }
    }
    /// The command name upper-cased (`APPEND`, `UID`, ...), if readable.
    pub fn command_name(&self) -> Option<String> {
        let line = match self.parts.first() {
            Some(Part::Text(t)) => t,
            _ => return None,
        };
        let tag = read_tag(line)?;
        let rest = line.get(tag.len()..)?;
        let rest = rest.strip_prefix(b" ")?;
        let end = rest
            .iter()
            .position(|&b| !crate::parse::is_atom_char(b))
            .unwrap_or(rest.len());
        let name = rest.get(..end)?;
        if name.is_empty() || !name.is_ascii() {
            return None;
        }
        Some(String::from_utf8_lossy(name).to_ascii_uppercase())
    }
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }
    /// Bytes buffered so far (text plus in-memory literals), for limits.
    pub fn buffered_len(&self) -> usize {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Text(t) => t.len(),
                Part::Literal {
                    data: LiteralData::Memory(v),
                    ..
                } => v.len(),
                Part::Literal { .. } => 0,
            })
            .fold(0usize, |a, b| a.saturating_add(b))
    }
    pub fn into_parts(self) -> Vec<Part> {
        self.parts
    }
}

/// Reads the tag at the start of a request line: `1*<ASTRING-CHAR except "+">`
/// followed by SP or the end of the line.
/// The tag a command line starts with, if it is a valid one.
pub fn read_tag(line: &[u8]) -> Option<String> {
    let end = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
    let tag = line.get(..end)?;
    if tag.is_empty() || !tag.iter().all(|&b| crate::parse::is_tag_char(b)) {
        return None;
    }
    String::from_utf8(tag.to_vec()).ok()
}

/// Finds a literal announcement at the end of `line`. Ok(Some((len of the text
/// before it, spec))), Ok(None) when the line does not end in `}`, Err(reason)
/// when it ends in something that looks like, but is not, an announcement.
fn split_announcement(line: &[u8]) -> Result<Option<(usize, LiteralSpec)>, String> {
    if line.last() != Some(&b'}') {
        return Ok(None);
    }
    let open = match line.iter().rposition(|&b| b == b'{') {
        Some(i) => i,
        None => return Ok(None),
    };
    let inner = line.get(open + 1..line.len() - 1).unwrap_or(&[]);
    let (digits, non_sync) = match inner.split_last() {
        Some((b'+', rest)) => (rest, true),
        _ => (inner, false),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(format!(
            "Invalid literal announcement {{{}}}",
            String::from_utf8_lossy(inner)
        ));
    }
    let mut len: u64 = 0;
    for &d in digits {
        len = len
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(d - b'0')))
            .ok_or_else(|| "Literal size too large".to_string())?;
    }
    let (text_len, binary) = if open > 0 && line.get(open - 1) == Some(&b'~') {
        (open - 1, true)
    } else {
        (open, false)
    };
    Ok(Some((
        text_len,
        LiteralSpec {
            len,
            non_sync,
            binary,
        },
    )))
}

/// Parses a complete request. `max_depth` bounds parenthesis nesting.
pub fn parse_request(parts: Vec<Part>, max_depth: usize) -> Result<Request, ParseError> {
    crate::parse::parse_request(parts, max_depth)
}
