//! Framing: a request is one or more lines; a line ending in a literal
//! announcement (`{n}`, `{n+}`, `{n-}`... `~{n}`) is followed by n bytes, then more of the
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
    Literal { data: LiteralData, binary: bool },
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
        unimplemented!()
    }
    pub fn push_literal(&mut self, data: LiteralData, binary: bool) {
        unimplemented!()
    }
    /// The tag, if the first line starts with a valid one.
    pub fn tag(&self) -> Option<String> {
        unimplemented!()
    }
    /// The command name upper-cased (`APPEND`, `UID`, ...), if readable.
    pub fn command_name(&self) -> Option<String> {
        unimplemented!()
    }
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }
    /// Bytes buffered so far (text plus in-memory literals), for limits.
    pub fn buffered_len(&self) -> usize {
        unimplemented!()
    }
    pub fn into_parts(self) -> Vec<Part> {
        self.parts
    }
}

/// Parses a complete request. `max_depth` bounds parenthesis nesting.
pub fn parse_request(parts: Vec<Part>, max_depth: usize) -> Result<Request, ParseError> {
    unimplemented!()
}
