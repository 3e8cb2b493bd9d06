//! The MIME part tree with byte offsets, and BODY / BODYSTRUCTURE output.
//!
//! Why a hand-written scanner instead of mail-parser's tree: FETCH answers
//! must agree byte for byte with Dovecot, which defines a part's extent by
//! its own rules (the line ending before a boundary belongs to the boundary,
//! a boundary is a *line* starting with `--boundary` (prefix match, the rest
//! of the line ignored), any enclosing multipart's boundary also ends a part,
//! the first Content-Type wins, message/rfc822 with a base64/QP CTE is not
//! parsed, multipart without boundary has no children...). mail-parser
//! decodes as it goes, keeps no header/body offsets for every level, and
//! recognises boundaries inside lines (the known early-end bug), so
//! reproducing these rules on top of it would be harder than scanning the
//! raw bytes directly, which is what Dovecot's `message-parser.c` does.

use serde::{Deserialize, Serialize};

use crate::envelope;
use crate::header::{self, Field};
use crate::quote;
use crate::rfc822::Parser;

/// Nesting limit: deeper parts are treated as opaque leaves (Dovecot has a
/// similar limit); keeps recursion bounded on hostile input.
const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) enum Kind {
    Leaf,
    Multipart(Vec<Part>),
    /// message/rfc822; `None` when the body was not parsed (encoded CTE).
    Message(Option<Box<Part>>),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct Part {
    /// Offset of the MIME header (start of the part).
    pub hdr: usize,
    /// Offset of the body (after the header's empty line).
    pub body: usize,
    /// End of the body (exclusive).
    pub end: usize,
    /// Content-Transfer-Encoding as written (None if absent); the first
    /// field, as BODYSTRUCTURE reports it.
    pub cte: Option<String>,
    /// The encoding BINARY undoes: the token of the *last*
    /// Content-Transfer-Encoding field (Dovecot's rule; an empty or
    /// garbled value is an unknown encoding). None if there is no field.
    pub bcte: Option<String>,
    /// For a base64 / quoted-printable part that decodes: the length of its
    /// MIME header rewritten for BINARY and of its decoded body (leaves
    /// only; 0 for composites). Computed at ingest so that BINARY.SIZE
    /// needs neither the message bytes nor a decoder.
    pub bin: Option<(u64, u64)>,
    pub kind: Kind,
    /// The inner message of a message/rfc822 part with an encoded CTE: not
    /// described in BODYSTRUCTURE nor numbered, but `n.HEADER` / `n.TEXT`
    /// still see it (Dovecot).
    #[serde(default)]
    pub opaque: Option<Box<Part>>,
}

enum End {
    Eof,
    Boundary {
        line_start: usize,
        idx: usize,
        close: bool,
        next: usize,
    },
}

struct Ctx<'a> {
    raw: &'a [u8],
    bounds: Vec<Vec<u8>>,
}

/// Parameter list: (name, value) as written.
pub(crate) type Params = Vec<(Vec<u8>, Vec<u8>)>;

/// Parsed Content-* information of one part.
#[derive(Default)]
pub(crate) struct Info {
    pub ctype: Option<(Vec<u8>, Vec<u8>)>,
    pub params: Vec<(Vec<u8>, Vec<u8>)>,
    pub id: Option<Vec<u8>>,
    pub desc: Option<Vec<u8>>,
    pub cte: Option<Vec<u8>>,
    pub md5: Option<Vec<u8>>,
    pub disp: Option<(Vec<u8>, Params)>,
    pub lang: Option<Vec<Vec<u8>>>,
    pub location: Option<Vec<u8>>,
}

fn hdr_str(v: &[u8]) -> Vec<u8> {
    v.iter().map(|&b| if b == 0 { 0x80 } else { b }).collect()
}

impl Info {
    /// `Content-Disposition: attachment`.
    pub(crate) fn is_attachment(&self) -> bool {
        self.disp
            .as_ref()
            .is_some_and(|(d, _)| d.eq_ignore_ascii_case(b"attachment"))
    }

    /// Whether the part is text/plain (also when it has no Content-Type),
    /// and whether it is text/html.
    pub(crate) fn plain_or_html(&self) -> (bool, bool) {
        match &self.ctype {
            None => (true, false),
            Some((t, s)) if t.eq_ignore_ascii_case(b"text") => (
                s.eq_ignore_ascii_case(b"plain"),
                s.eq_ignore_ascii_case(b"html"),
            ),
            _ => (false, false),
        }
    }

    pub fn from_fields(fields: &[Field<'_>]) -> Info {
        let mut info = Info::default();
        for f in fields {
            if !f.has_colon || f.name.len() < 8 || !f.name[..8].eq_ignore_ascii_case(b"content-") {
                continue;
            }
            let n = f.name[8..].to_ascii_lowercase();
            match n.as_slice() {
                b"type" if info.ctype.is_none() => {
                    let (ctype, params) = parse_content_type(f.value);
                    info.ctype = Some(ctype);
                    info.params = params;
                }
                b"transfer-encoding" if info.cte.is_none() => {
                    let mut p = Parser::new(f.value);
                    p.skip_lwsp();
                    let mut s = Vec::new();
                    // junk after the token makes it invalid (default 7bit)
                    info.cte = if p.parse_mime_token(&mut s) == 0 {
                        Some(s)
                    } else {
                        None
                    };
                }
                b"id" => info.id = Some(hdr_str(f.value)),
                b"description" => info.desc = Some(hdr_str(f.value)),
                b"md5" => info.md5 = Some(hdr_str(f.value)),
                b"location" => info.location = Some(hdr_str(f.value)),
                b"disposition" => {
                    let mut p = Parser::new(f.value);
                    p.skip_lwsp();
                    let mut s = Vec::new();
                    if p.parse_mime_token(&mut s) >= 0 {
                        let params = p.parse_params();
                        info.disp = Some((s, params));
                    }
                }
                b"language" => {
                    let mut p = Parser::new(f.value);
                    let mut langs = Vec::new();
                    p.skip_lwsp();
                    while !p.at_end() {
                        let mut s = Vec::new();
                        if p.parse_atom(&mut s) < 0 {
                            break;
                        }
                        langs.push(s);
                        if p.peek() != Some(b',') {
                            break;
                        }
                        p.pos += 1;
                        p.skip_lwsp();
                    }
                    info.lang = Some(langs);
                }
                _ => {}
            }
        }
        info
    }

    fn is_type(&self, t: &str) -> bool {
        self.ctype
            .as_ref()
            .is_some_and(|(a, _)| a.eq_ignore_ascii_case(t.as_bytes()))
    }
    fn is_sub(&self, s: &str) -> bool {
        self.ctype
            .as_ref()
            .is_some_and(|(_, b)| b.eq_ignore_ascii_case(s.as_bytes()))
    }
    fn boundary(&self) -> Option<&[u8]> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(b"boundary"))
            .map(|(_, v)| v.as_slice())
    }
}

/// Dovecot's Content-Type rules: `type` alone gives (type, "") without
/// parameters; anything else that is not `type/subtype` optionally followed
/// by `;` parameters gives ("", "") without parameters (README quirk 9).
fn parse_content_type(value: &[u8]) -> ((Vec<u8>, Vec<u8>), Params) {
    let invalid = ((Vec::new(), Vec::new()), Vec::new());
    let mut p = Parser::new(value);
    if p.skip_lwsp() <= 0 {
        return invalid;
    }
    let mut t = Vec::new();
    match p.parse_mime_token(&mut t) {
        r if r < 0 => return invalid,
        0 => return ((t, Vec::new()), Vec::new()),
        _ => {}
    }
    if p.peek() != Some(b'/') {
        return invalid;
    }
    p.pos += 1;
    if p.skip_lwsp() <= 0 {
        return ((t, Vec::new()), Vec::new());
    }
    let mut st = Vec::new();
    let r = p.parse_mime_token(&mut st);
    if r < 0 || (r > 0 && p.peek() != Some(b';')) {
        return invalid;
    }
    let params = p.parse_params();
    ((t, st), params)
}

/// Longest boundary Dovecot keeps (longer ones are truncated, so lines only
/// need to start with the first 70 characters).
const BOUNDARY_MAX_LEN: usize = 70;

/// A header that is never terminated (no empty line before EOF) is not
/// used for the MIME description: Dovecot only applies Content-* fields at
/// the end of a header block.
fn part_info(raw: &[u8], start: usize, end: usize, fields: &[Field<'_>]) -> Info {
    let block = &raw[start..end];
    let terminated = block.ends_with(b"\n\n")
        || block.ends_with(b"\n\r\n")
        || block == b"\n"
        || block == b"\r\n";
    let _ = terminated;
    Info::from_fields(fields)
}

fn cte_parses_message(cte: &Option<Vec<u8>>) -> bool {
    match cte {
        None => true,
        Some(c) => {
            c.eq_ignore_ascii_case(b"7bit")
                || c.eq_ignore_ascii_case(b"8bit")
                || c.eq_ignore_ascii_case(b"binary")
        }
    }
}

impl Ctx<'_> {
    /// Is the line at `pos` a boundary line of one of the enclosing multiparts?
    fn boundary_at(&self, pos: usize) -> Option<End> {
        let raw = self.raw;
        if raw.len() < pos + 2 || raw[pos] != b'-' || raw[pos + 1] != b'-' {
            return None;
        }
        let rest = &raw[pos + 2..];
        // Dovecot's boundary_find: newest to oldest, the line only has to
        // start with the boundary, the longest matching boundary wins.
        let mut best: Option<usize> = None;
        for idx in (0..self.bounds.len()).rev() {
            let b = &self.bounds[idx];
            if rest.starts_with(b) && best.is_none_or(|x| self.bounds[x].len() < b.len()) {
                best = Some(idx);
            }
        }
        let idx = best?;
        let b = &self.bounds[idx];
        let after = &rest[b.len()..];
        let close = after.starts_with(b"--");
        let next = match header::memchr(b'\n', after) {
            Some(i) => pos + 2 + b.len() + i + 1,
            None => raw.len(),
        };
        Some(End::Boundary {
            line_start: pos,
            idx,
            close,
            next,
        })
    }

    /// Find the next boundary line at or after line start `pos`.
    fn scan(&self, mut pos: usize) -> End {
        if self.bounds.is_empty() {
            return End::Eof;
        }
        let raw = self.raw;
        while pos < raw.len() {
            if let Some(e) = self.boundary_at(pos) {
                return e;
            }
            match header::memchr(b'\n', &raw[pos..]) {
                Some(i) => pos += i + 1,
                None => break,
            }
        }
        End::Eof
    }

    /// Where a body that is ended by `e` stops (the line ending before a
    /// boundary belongs to the boundary).
    fn body_end(&self, e: &End, body: usize) -> usize {
        match e {
            End::Eof => self.raw.len(),
            End::Boundary { line_start, .. } => {
                let mut p = *line_start;
                if p > body && self.raw[p - 1] == b'\n' {
                    p -= 1;
                    if p > body && self.raw[p - 1] == b'\r' {
                        p -= 1;
                    }
                }
                p.max(body)
            }
        }
    }

    /// The header block at `start`: ends at the empty line, or at a boundary
    /// line of an enclosing multipart, or at EOF.
    fn header_end(&self, start: usize) -> (usize, Option<End>) {
        let raw = self.raw;
        let mut pos = start;
        while pos < raw.len() {
            if raw[pos] == b'\n' {
                return (pos + 1, None);
            }
            if raw[pos] == b'\r' && raw.get(pos + 1) == Some(&b'\n') {
                return (pos + 2, None);
            }
            if let Some(e) = self.boundary_at(pos) {
                return (pos, Some(e));
            }
            match header::memchr(b'\n', &raw[pos..]) {
                Some(i) => pos += i + 1,
                None => return (raw.len(), None),
            }
        }
        (raw.len(), None)
    }

    /// Is the line at `pos` a boundary of an enclosing multipart (rather
    /// than the own boundary of the multipart described by `info`)?
    fn ends_at_boundary(&mut self, pos: usize, info: &Info) -> bool {
        let own = if info.is_type("multipart") {
            info.boundary()
                .map(|b| b[..b.len().min(BOUNDARY_MAX_LEN)].to_vec())
        } else {
            None
        };
        let pushed = own.is_some();
        if let Some(b) = own {
            self.bounds.push(b);
        }
        let hit = match self.boundary_at(pos) {
            Some(End::Boundary { idx, .. }) => !(pushed && idx == self.bounds.len() - 1),
            _ => false,
        };
        if pushed {
            self.bounds.pop();
        }
        hit
    }

    /// `message_root`: the part is a message (top level or the body of a
    /// message/rfc822) rather than a child of a multipart.
    ///
    /// Returns the part, what ended it, and how far its bytes reach for the
    /// enclosing multipart: a header line ending given to a following
    /// boundary is not in the part, but still in its parent.
    fn parse_part(
        &mut self,
        start: usize,
        digest_child: bool,
        message_root: bool,
        depth: usize,
    ) -> (Part, End, usize) {
        let (mut hdr_end, hdr_boundary) = self.header_end(start);
        let hdr_reach = hdr_end;
        let fields = header::fields(&self.raw[start..hdr_end]);
        let info = part_info(self.raw, start, hdr_end, &fields);
        // The line ending before a boundary line belongs to the boundary,
        // also when it is the last line ending of the header: a header that
        // runs into a boundary, or whose empty line is directly followed by
        // an enclosing multipart's boundary, loses that line ending (and the
        // body is empty). A multipart's own first boundary takes nothing.
        match &hdr_boundary {
            // (a message header that runs into a boundary keeps it)
            Some(e) if !message_root => hdr_end = self.body_end(e, start),
            Some(_) => {}
            None if hdr_end > start && self.ends_at_boundary(hdr_end, &info) => {
                hdr_end -= 1;
                if hdr_end > start && self.raw[hdr_end - 1] == b'\r' {
                    hdr_end -= 1;
                }
            }
            None => {}
        }
        let cte = info
            .cte
            .as_ref()
            .map(|c| String::from_utf8_lossy(c).into_owned());
        let bcte = fields
            .iter()
            .rev()
            .find(|f| f.has_colon && f.name.eq_ignore_ascii_case(b"content-transfer-encoding"))
            .map(|f| {
                let mut p = Parser::new(f.value);
                p.skip_lwsp();
                let mut s = Vec::new();
                p.parse_mime_token(&mut s);
                String::from_utf8_lossy(&s).into_owned()
            });
        let mut part = Part {
            hdr: start,
            body: hdr_end,
            end: hdr_end,
            cte,
            bcte,
            bin: None,
            kind: Kind::Leaf,
            opaque: None,
        };
        let is_multipart = info.is_type("multipart");
        let is_message = if info.ctype.is_none() {
            digest_child
        } else {
            info.is_type("message") && info.is_sub("rfc822")
        };
        if let Some(e) = hdr_boundary {
            part.kind = if is_multipart {
                Kind::Multipart(Vec::new())
            } else if is_message {
                Kind::Message(None)
            } else {
                Kind::Leaf
            };
            return (part, e, hdr_reach);
        }
        let body = hdr_end;
        if is_multipart && depth < MAX_DEPTH {
            let digest = info.is_sub("digest");
            let Some(boundary) = info
                .boundary()
                .map(|b| b[..b.len().min(BOUNDARY_MAX_LEN)].to_vec())
            else {
                let e = self.scan(body);
                part.end = self.body_end(&e, body);
                part.kind = Kind::Multipart(Vec::new());
                let reach = hdr_reach.max(part.end);
                return (part, e, reach);
            };
            self.bounds.push(boundary);
            let my = self.bounds.len() - 1;
            let mut children = Vec::new();
            let mut last_reach = body;
            let mut e = self.scan(body);
            loop {
                match e {
                    End::Boundary {
                        idx, close, next, ..
                    } if idx == my => {
                        if close {
                            self.bounds.truncate(my);
                            let e2 = self.scan(next);
                            // the line ending of the closing boundary line
                            // is not given to the next boundary
                            part.end = self.body_end(&e2, next.min(self.raw.len()));
                            part.kind = Kind::Multipart(children);
                            let reach = part.end;
                            return (part, e2, reach);
                        }
                        if next >= self.raw.len() && next == start {
                            break;
                        }
                        let (child, ce, reach) = self.parse_part(next, digest, false, depth + 1);
                        children.push(child);
                        last_reach = reach;
                        e = ce;
                    }
                    _ => break,
                }
            }
            self.bounds.truncate(my);
            // Ended by an enclosing boundary (no close delimiter): the line
            // ending before it belongs to the boundary, unless the last child
            // ended inside its header (then it stays in this multipart).
            part.end = self.body_end(&e, body).max(last_reach);
            part.kind = Kind::Multipart(children);
            let reach = part.end;
            return (part, e, reach);
        }
        if is_message && depth < MAX_DEPTH {
            // The inner message decides where the part ends (a header that
            // runs into the boundary keeps its last line ending), even when
            // an encoded CTE keeps us from exposing it (README quirk 12).
            let (child, e, _) = self.parse_part(body, false, true, depth + 1);
            part.end = self.body_end(&e, body).max(child.end);
            if cte_parses_message(&info.cte) {
                part.kind = Kind::Message(Some(Box::new(child)));
            } else {
                part.kind = Kind::Message(None);
                part.opaque = Some(Box::new(child));
            }
            let reach = part.end;
            return (part, e, reach);
        }
        let e = self.scan(body);
        part.end = self.body_end(&e, body);
        let reach = part.end.max(hdr_reach);
        (part, e, reach)
    }
}

pub(crate) fn parse(raw: &[u8]) -> Part {
    let mut ctx = Ctx {
        raw,
        bounds: Vec::new(),
    };
    let (mut root, _, _) = ctx.parse_part(0, false, true, 0);
    root.end = raw.len();
    root
}

fn count_lines(s: &[u8]) -> usize {
    s.iter().filter(|&&b| b == b'\n').count()
}

const EMPTY_BODY: &[u8] = b"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)";
const EMPTY_BODYSTRUCTURE: &[u8] =
    b"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)";
const EMPTY_ENVELOPE: &[u8] = b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)";

fn params_write(out: &mut Vec<u8>, params: &[(Vec<u8>, Vec<u8>)], default_charset: bool) {
    if !default_charset && params.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    let mut seen_charset = false;
    for (i, (k, v)) in params.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        if k.eq_ignore_ascii_case(b"charset") {
            seen_charset = true;
        }
        quote::string(out, k);
        out.push(b' ');
        quote::string(out, v);
    }
    if default_charset && !seen_charset {
        if !params.is_empty() {
            out.push(b' ');
        }
        out.extend_from_slice(b"\"charset\" \"us-ascii\"");
    }
    out.push(b')');
}

/// Write BODY (`extended == false`) or BODYSTRUCTURE of `part`.
pub(crate) fn write(out: &mut Vec<u8>, raw: &[u8], part: &Part, extended: bool) {
    let fields = header::fields(&raw[part.hdr..part.body]);
    let info = part_info(raw, part.hdr, part.body, &fields);
    out.push(b'(');
    match &part.kind {
        Kind::Multipart(children) => {
            if children.is_empty() {
                out.extend_from_slice(if extended {
                    EMPTY_BODYSTRUCTURE
                } else {
                    EMPTY_BODY
                });
            }
            for c in children {
                write(out, raw, c, extended);
            }
            out.push(b' ');
            let sub = info.ctype.as_ref().map(|c| c.1.as_slice()).unwrap_or(b"");
            quote::string(out, sub);
            if extended {
                out.push(b' ');
                params_write(out, &info.params, false);
                write_ext_tail(out, &info);
            }
        }
        _ => {
            let is_msg = matches!(part.kind, Kind::Message(_));
            let text;
            if is_msg {
                out.extend_from_slice(b"\"message\" \"rfc822\"");
                text = false;
            } else {
                match &info.ctype {
                    None => {
                        out.extend_from_slice(b"\"text\" \"plain\"");
                        text = true;
                    }
                    Some((t, s)) => {
                        text = t.eq_ignore_ascii_case(b"text");
                        quote::string(out, t);
                        out.push(b' ');
                        quote::string(out, s);
                    }
                }
            }
            out.push(b' ');
            params_write(out, &info.params, text);
            out.push(b' ');
            quote::nstring_nolf(out, info.id.as_deref());
            out.push(b' ');
            quote::nstring_nolf(out, info.desc.as_deref());
            out.push(b' ');
            match &info.cte {
                Some(c) => quote::string(out, c),
                None => out.extend_from_slice(b"\"7bit\""),
            }
            let body = &raw[part.body..part.end];
            out.extend_from_slice(format!(" {}", body.len()).as_bytes());
            if text {
                out.extend_from_slice(format!(" {}", count_lines(body)).as_bytes());
            } else if let Kind::Message(child) = &part.kind {
                out.push(b' ');
                match child {
                    Some(c) => {
                        let cf = header::fields(&raw[c.hdr..c.body]);
                        out.extend_from_slice(&envelope::build(&cf));
                        out.push(b' ');
                        write(out, raw, c, extended);
                    }
                    None => {
                        out.extend_from_slice(EMPTY_ENVELOPE);
                        out.push(b' ');
                        out.extend_from_slice(if extended {
                            EMPTY_BODYSTRUCTURE
                        } else {
                            EMPTY_BODY
                        });
                    }
                }
                out.extend_from_slice(format!(" {}", count_lines(body)).as_bytes());
            }
            if extended {
                out.push(b' ');
                quote::nstring_nolf(out, info.md5.as_deref());
                write_ext_tail(out, &info);
            }
        }
    }
    out.push(b')');
}

fn write_ext_tail(out: &mut Vec<u8>, info: &Info) {
    out.push(b' ');
    match &info.disp {
        None => out.extend_from_slice(b"NIL"),
        Some((d, params)) => {
            out.push(b'(');
            quote::string(out, d);
            out.push(b' ');
            params_write(out, params, false);
            out.push(b')');
        }
    }
    out.push(b' ');
    match &info.lang {
        Some(l) if !l.is_empty() => {
            out.push(b'(');
            for (i, s) in l.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                quote::string(out, s);
            }
            out.push(b')');
        }
        _ => out.extend_from_slice(b"NIL"),
    }
    out.push(b' ');
    quote::nstring_nolf(out, info.location.as_deref());
}

/// Resolve a section part number path (Dovecot's rules, README quirk 5):
/// a multipart selects its n-th child; a non-multipart part accepts only 1;
/// a message (the top level or a message/rfc822 body) answers `1` with
/// itself once, a leaf inside a multipart answers `1` with itself again;
/// a message/rfc822 part is entered when more numbers follow.
pub(crate) fn find<'p>(root: &'p Part, path: &[u32]) -> Option<&'p Part> {
    let mut part = root;
    let mut is_message_root = true;
    let mut used = false;
    for (i, &num) in path.iter().enumerate() {
        match &part.kind {
            Kind::Multipart(children) => {
                let idx = (num as usize).checked_sub(1)?;
                part = children.get(idx)?;
                is_message_root = false;
                used = false;
            }
            _ => {
                if num != 1 {
                    return None;
                }
                if is_message_root {
                    if used {
                        return None;
                    }
                    used = true;
                }
            }
        }
        if i + 1 < path.len() {
            if let Kind::Message(Some(child)) = &part.kind {
                part = child;
                is_message_root = true;
                used = false;
            }
        }
    }
    Some(part)
}
