//! The token cursor over a framed request: text parts are read byte by byte,
//! literal parts are taken whole where a string is allowed.

use super::{is_astring_char, is_atom_char, is_list_char, is_tag_char};
use crate::framer::Part;
use crate::types::{LiteralData, ParseError, Tag};

/// What comes next in the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Peek {
    Byte(u8),
    Literal,
    End,
}

pub(crate) struct Parser {
    parts: Vec<Part>,
    idx: usize,
    pos: usize,
    depth: usize,
    max_depth: usize,
    tag: Option<Tag>,
}

impl Parser {
    pub(crate) fn new(parts: Vec<Part>, max_depth: usize) -> Self {
        Parser {
            parts,
            idx: 0,
            pos: 0,
            depth: 0,
            max_depth,
            tag: None,
        }
    }

    /// An error carrying the tag (once read).
    pub(crate) fn err(&self, text: impl Into<String>) -> ParseError {
        ParseError {
            tag: self.tag.clone(),
            text: text.into(),
        }
    }

    /// Skips exhausted text parts.
    fn normalize(&mut self) {
        while let Some(Part::Text(t)) = self.parts.get(self.idx) {
            if self.pos < t.len() {
                return;
            }
            self.idx += 1;
            self.pos = 0;
        }
    }

    pub(crate) fn peek(&mut self) -> Peek {
        self.normalize();
        match self.parts.get(self.idx) {
            None => Peek::End,
            Some(Part::Literal { .. }) => Peek::Literal,
            Some(Part::Text(t)) => match t.get(self.pos) {
                Some(&b) => Peek::Byte(b),
                None => Peek::End,
            },
        }
    }

    /// Next byte upper-cased, or None (literal or end).
    pub(crate) fn peek_byte(&mut self) -> Option<u8> {
        match self.peek() {
            Peek::Byte(b) => Some(b),
            _ => None,
        }
    }

    pub(crate) fn at_end(&mut self) -> bool {
        self.peek() == Peek::End
    }

    /// Advances one byte (only call after peek returned a byte).
    pub(crate) fn bump(&mut self) {
        self.pos += 1;
    }

    /// Consumes `b` if it is next.
    pub(crate) fn eat(&mut self, b: u8) -> bool {
        if self.peek_byte() == Some(b) {
            self.bump();
            true
        } else {
            false
        }
    }

    pub(crate) fn expect(&mut self, b: u8, what: &str) -> Result<(), ParseError> {
        if self.eat(b) {
            Ok(())
        } else {
            Err(self.err(format!("Expected {what}")))
        }
    }

    pub(crate) fn sp_after(&mut self, after: &str) -> Result<(), ParseError> {
        if self.eat(b' ') {
            Ok(())
        } else {
            Err(self.err(format!("Expected SP after {after}")))
        }
    }

    /// The request must be complete here.
    pub(crate) fn end(&mut self) -> Result<(), ParseError> {
        match self.peek() {
            Peek::End => Ok(()),
            Peek::Literal => Err(self.err("Unexpected literal after command")),
            Peek::Byte(_) => {
                let rest = self.rest_of_text();
                Err(self.err(format!(
                    "Unexpected characters at end of command: {}",
                    printable(&rest, 40)
                )))
            }
        }
    }

    fn rest_of_text(&self) -> Vec<u8> {
        match self.parts.get(self.idx) {
            Some(Part::Text(t)) => t.get(self.pos..).unwrap_or(&[]).to_vec(),
            _ => Vec::new(),
        }
    }

    /// Consumes bytes of the current text part while `pred` holds.
    pub(crate) fn take_while(&mut self, pred: impl Fn(u8) -> bool) -> Vec<u8> {
        self.normalize();
        let Some(Part::Text(t)) = self.parts.get(self.idx) else {
            return Vec::new();
        };
        let start = self.pos.min(t.len());
        let rest = t.get(start..).unwrap_or(&[]);
        let n = rest.iter().position(|&b| !pred(b)).unwrap_or(rest.len());
        let out = rest.get(..n).unwrap_or(&[]).to_vec();
        self.pos = start + n;
        out
    }

    /// The token of the current text part matching `pred`, without consuming it.
    pub(crate) fn peek_token(&mut self, pred: impl Fn(u8) -> bool) -> Option<Vec<u8>> {
        self.normalize();
        let Some(Part::Text(t)) = self.parts.get(self.idx) else {
            return None;
        };
        let rest = t.get(self.pos..)?;
        let n = rest.iter().position(|&b| !pred(b)).unwrap_or(rest.len());
        Some(rest.get(..n)?.to_vec())
    }

    /// Whether the current text part continues with `s` (ASCII case-insensitive).
    pub(crate) fn peek_bytes(&mut self, s: &[u8]) -> bool {
        self.normalize();
        match self.parts.get(self.idx) {
            Some(Part::Text(t)) => t
                .get(self.pos..)
                .and_then(|r| r.get(..s.len()))
                .is_some_and(|r| r.eq_ignore_ascii_case(s)),
            _ => false,
        }
    }

    /// Enters one level of parenthesis nesting.
    pub(crate) fn enter(&mut self) -> Result<(), ParseError> {
        if self.depth >= self.max_depth {
            return Err(self.err(format!(
                "Too deep nesting (more than {} levels)",
                self.max_depth
            )));
        }
        self.depth += 1;
        Ok(())
    }

    pub(crate) fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    pub(crate) fn read_tag(&mut self) -> Result<Tag, ParseError> {
        let t = self.take_while(is_tag_char);
        if t.is_empty() {
            return Err(self.err("Missing or invalid tag"));
        }
        // `a+b NOOP`: the tag is not `a`; a tagged answer would go to
        // whichever command is tagged `a` (RFC 9051 7.1: untagged BAD when
        // the tag cannot be read).
        if !matches!(self.peek(), Peek::End | Peek::Byte(b' ')) {
            return Err(self.err("Invalid characters in tag"));
        }
        match String::from_utf8(t) {
            Ok(s) => {
                self.tag = Some(s.clone());
                Ok(s)
            }
            Err(_) => Err(self.err("Invalid tag")),
        }
    }

    /// A command name or keyword: an atom, upper-cased.
    pub(crate) fn command_word(&mut self) -> Result<String, ParseError> {
        let w = self.take_while(is_atom_char);
        if w.is_empty() {
            return Err(self.err("Missing command name"));
        }
        Ok(String::from_utf8_lossy(&w).to_ascii_uppercase())
    }

    /// An atom (case preserved), `what` names it in the error.
    pub(crate) fn atom(&mut self, what: &str) -> Result<String, ParseError> {
        let w = self.take_while(is_atom_char);
        if w.is_empty() {
            return Err(self.err(format!("Missing {what}")));
        }
        String::from_utf8(w).map_err(|_| self.err(format!("Invalid UTF-8 in {what}")))
    }

    /// An atom upper-cased (keywords of the grammar).
    pub(crate) fn keyword(&mut self, what: &str) -> Result<String, ParseError> {
        Ok(self.atom(what)?.to_ascii_uppercase())
    }

    /// A quoted string (the opening `"` is next).
    pub(crate) fn quoted(&mut self) -> Result<Vec<u8>, ParseError> {
        self.expect(b'"', "quoted string")?;
        let mut out = Vec::new();
        loop {
            match self.peek_in_part() {
                None => return Err(self.err("Unterminated quoted string")),
                Some(b'"') => {
                    self.bump();
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.bump();
                    match self.peek_in_part() {
                        Some(c @ (b'"' | b'\\')) => {
                            self.bump();
                            out.push(c);
                        }
                        Some(_) => return Err(self.err("Invalid escape in quoted string")),
                        None => return Err(self.err("Unterminated quoted string")),
                    }
                }
                Some(b'\r' | b'\n' | 0) => {
                    return Err(self.err("Invalid character in quoted string"))
                }
                Some(c) => {
                    self.bump();
                    out.push(c);
                }
            }
        }
    }

    /// The next byte of the current text part, without crossing into a literal.
    fn peek_in_part(&self) -> Option<u8> {
        match self.parts.get(self.idx) {
            Some(Part::Text(t)) => t.get(self.pos).copied(),
            _ => None,
        }
    }

    /// Takes a literal part. Spooled literals are only acceptable where
    /// `allow_spooled` (APPEND messages); literal8 only where `allow_binary`.
    pub(crate) fn literal_data(
        &mut self,
        allow_spooled: bool,
        allow_binary: bool,
    ) -> Result<(LiteralData, bool), ParseError> {
        self.normalize();
        let (spooled, binary) = match self.parts.get(self.idx) {
            Some(Part::Literal { data, binary }) => {
                (matches!(data, LiteralData::Spooled { .. }), *binary)
            }
            _ => return Err(self.err("Expected literal")),
        };
        if spooled && !allow_spooled {
            return Err(self.err("literal too large"));
        }
        if binary && !allow_binary {
            return Err(self.err("literal8 not allowed here"));
        }
        let part = std::mem::replace(
            self.parts.get_mut(self.idx).ok_or_else(|| ParseError {
                tag: self.tag.clone(),
                text: "Expected literal".into(),
            })?,
            Part::Text(Vec::new()),
        );
        self.idx += 1;
        self.pos = 0;
        match part {
            Part::Literal { data, binary } => Ok((data, binary)),
            Part::Text(_) => Err(self.err("Expected literal")),
        }
    }

    /// A literal held in memory.
    pub(crate) fn literal(&mut self) -> Result<Vec<u8>, ParseError> {
        match self.literal_data(false, false)?.0 {
            LiteralData::Memory(v) => Ok(v),
            LiteralData::Spooled { .. } => Err(self.err("literal too large")),
        }
    }

    /// `string`: quoted or literal.
    pub(crate) fn string(&mut self, what: &str) -> Result<Vec<u8>, ParseError> {
        match self.peek() {
            Peek::Byte(b'"') => self.quoted(),
            Peek::Literal => self.literal(),
            Peek::End => Err(self.err(format!("Missing {what}"))),
            Peek::Byte(_) => Err(self.err(format!("Expected string for {what}"))),
        }
    }

    /// `astring`: atom (with `]`) or string.
    pub(crate) fn astring(&mut self, what: &str) -> Result<Vec<u8>, ParseError> {
        match self.peek() {
            Peek::Byte(b'"') => self.quoted(),
            Peek::Literal => self.literal(),
            Peek::End => Err(self.err(format!("Missing {what}"))),
            Peek::Byte(b) if is_astring_char(b) => Ok(self.take_while(is_astring_char)),
            Peek::Byte(_) => Err(self.err(format!("Invalid {what}"))),
        }
    }

    /// `nstring`: NIL or string.
    pub(crate) fn nstring(&mut self, what: &str) -> Result<Option<Vec<u8>>, ParseError> {
        match self.peek() {
            Peek::Byte(b'"') | Peek::Literal => Ok(Some(self.string(what)?)),
            Peek::End => Err(self.err(format!("Missing {what}"))),
            Peek::Byte(_) => {
                let w = self.take_while(is_atom_char);
                if w.eq_ignore_ascii_case(b"NIL") {
                    Ok(None)
                } else {
                    Err(self.err(format!("Expected string or NIL for {what}")))
                }
            }
        }
    }

    /// `list-mailbox`: 1*list-char or string.
    pub(crate) fn list_mailbox(&mut self, what: &str) -> Result<Vec<u8>, ParseError> {
        match self.peek() {
            Peek::Byte(b'"') => self.quoted(),
            Peek::Literal => self.literal(),
            Peek::End => Err(self.err(format!("Missing {what}"))),
            Peek::Byte(b) if is_list_char(b) => Ok(self.take_while(is_list_char)),
            Peek::Byte(_) => Err(self.err(format!("Invalid {what}"))),
        }
    }

    /// Digits as u64, `what` for errors.
    pub(crate) fn number64(&mut self, what: &str) -> Result<u64, ParseError> {
        let d = self.take_while(|b| b.is_ascii_digit());
        if d.is_empty() {
            return Err(self.err(format!("Expected number for {what}")));
        }
        // number64 is at most 2^63-1 (RFC 9051), which also keeps values
        // storable as SQL integers.
        parse_u64(&d)
            .filter(|&n| i64::try_from(n).is_ok())
            .ok_or_else(|| self.err(format!("Number too large for {what}")))
    }

    pub(crate) fn number(&mut self, what: &str) -> Result<u32, ParseError> {
        let n = self.number64(what)?;
        u32::try_from(n).map_err(|_| self.err(format!("Number too large for {what}")))
    }

    pub(crate) fn nz_number(&mut self, what: &str) -> Result<u32, ParseError> {
        let n = self.number(what)?;
        if n == 0 {
            return Err(self.err(format!("{what} must not be zero")));
        }
        Ok(n)
    }
}

pub(crate) fn parse_u64(d: &[u8]) -> Option<u64> {
    let mut n: u64 = 0;
    for &c in d {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(n)
}

/// A short printable rendering of client bytes for error texts.
pub(crate) fn printable(b: &[u8], max: usize) -> String {
    let mut s: String = b
        .iter()
        .take(max)
        .map(|&c| {
            if (0x20..0x7f).contains(&c) {
                c as char
            } else {
                '?'
            }
        })
        .collect();
    if b.len() > max {
        s.push_str("...");
    }
    s
}
