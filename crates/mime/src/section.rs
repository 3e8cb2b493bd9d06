//! BODY[section] and BINARY[part] from the part tree and the raw bytes.

use std::borrow::Cow;

use pillarbox_proto::types::{Section, SectionText};

use crate::decode::{self, Cte};
use crate::header;
use crate::structure::{find, Kind, Part};
use crate::BinaryError;

fn slice(raw: &[u8], a: usize, b: usize) -> &[u8] {
    let b = b.min(raw.len());
    let a = a.min(b);
    &raw[a..b]
}

/// `HEADER.FIELDS` / `HEADER.FIELDS.NOT`: the matching fields as they are
/// written, followed by the empty line.
fn header_fields(block: &[u8], names: &[String], not: bool) -> Vec<u8> {
    let fields = header::iter_fields(block).map(|f| (f.name, f.raw, f.has_colon));
    select_fields(block, fields, names, not)
}

/// Where one field of a header block is (see [`header::Field`]): its name
/// and its whole text, as byte ranges of the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FieldSpan {
    name: (u32, u32),
    raw: (u32, u32),
    has_colon: bool,
}

/// The fields of `block`, as [`header::iter_fields`] finds them. Empty when
/// the block is too large for the offsets (it is then scanned each time).
pub(crate) fn field_spans(block: &[u8]) -> Vec<FieldSpan> {
    if u32::try_from(block.len()).is_err() {
        return Vec::new();
    }
    let range = |s: &[u8]| {
        let at = s.as_ptr() as usize - block.as_ptr() as usize;
        (at as u32, (at + s.len()) as u32)
    };
    header::iter_fields(block)
        .map(|f| FieldSpan {
            name: range(f.name),
            raw: range(f.raw),
            has_colon: f.has_colon,
        })
        .collect()
}

/// [`header_fields`] from the block's [`field_spans`], without scanning it.
pub(crate) fn header_fields_of(
    block: &[u8],
    spans: &[FieldSpan],
    names: &[String],
    not: bool,
) -> Vec<u8> {
    let at = |(a, b): (u32, u32)| &block[a as usize..b as usize];
    let fields = spans.iter().map(|f| (at(f.name), at(f.raw), f.has_colon));
    select_fields(block, fields, names, not)
}

fn select_fields<'a>(
    block: &[u8],
    fields: impl Iterator<Item = (&'a [u8], &'a [u8], bool)>,
    names: &[String],
    not: bool,
) -> Vec<u8> {
    // At most the whole block and an empty line: one allocation.
    let mut out = Vec::with_capacity(block.len() + 2);
    for (name, raw, has_colon) in fields {
        let matched = has_colon
            && names
                .iter()
                .any(|n| name.eq_ignore_ascii_case(n.as_bytes()));
        if matched != not {
            out.extend_from_slice(raw);
        }
    }
    // HEADER.FIELDS always ends with the empty line; HEADER.FIELDS.NOT
    // copies it only if the header had one (Dovecot)
    if !not
        || block.ends_with(b"\n\r\n")
        || block.ends_with(b"\n\n")
        || block == b"\r\n"
        || block == b"\n"
    {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Where a BODY[section] is in the stored bytes: a plain slice, or the header
/// block that HEADER.FIELDS(.NOT) filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Located<'s> {
    Slice(usize, usize),
    Fields {
        hdr: usize,
        body: usize,
        names: &'s [String],
        not: bool,
    },
}

/// Locates `section` in a message of `len` bytes (non-existent sections are
/// the empty slice, as in Dovecot).
pub(crate) fn locate<'s>(root: &Part, len: usize, section: &'s Section) -> Located<'s> {
    let empty = Located::Slice(0, 0);
    let part = if section.part.is_empty() {
        root
    } else {
        match find(root, &section.part) {
            Some(p) => p,
            None => return empty,
        }
    };
    let text = match &section.text {
        None => {
            if section.part.is_empty() {
                return Located::Slice(0, len);
            }
            return Located::Slice(part.body, part.end);
        }
        Some(t) => t,
    };
    if let SectionText::Mime = text {
        if section.part.is_empty() {
            return empty;
        }
        return Located::Slice(part.hdr, part.body);
    }
    let msg = if section.part.is_empty() {
        part
    } else {
        match (&part.kind, &part.opaque) {
            (Kind::Message(Some(child)), _) => child.as_ref(),
            (_, Some(child)) => child.as_ref(),
            _ => return empty,
        }
    };
    match text {
        SectionText::Header => Located::Slice(msg.hdr, msg.body),
        SectionText::Text => Located::Slice(msg.body, msg.end),
        SectionText::HeaderFields(names) => Located::Fields {
            hdr: msg.hdr,
            body: msg.body,
            names,
            not: false,
        },
        SectionText::HeaderFieldsNot(names) => Located::Fields {
            hdr: msg.hdr,
            body: msg.body,
            names,
            not: true,
        },
        SectionText::Mime => empty,
    }
}

pub(crate) fn section<'a>(root: &Part, raw: &'a [u8], section: &Section) -> Cow<'a, [u8]> {
    answer(raw, locate(root, raw.len(), section), None)
}

/// [`section`] of a message's header block `head` (what
/// [`crate::Summary::section_from_head`] answers), with the top-level
/// HEADER.FIELDS(.NOT) taken from the block's [`field_spans`].
pub(crate) fn head_section<'a>(
    root: &Part,
    head: &'a [u8],
    spans: &[FieldSpan],
    section: &Section,
) -> Cow<'a, [u8]> {
    let located = locate(root, head.len(), section);
    let top = matches!(located, Located::Fields { hdr, body, .. } if (hdr, body) == (root.hdr, root.body));
    answer(head, located, top.then_some(spans))
}

/// The bytes of a located section of `raw`; HEADER.FIELDS(.NOT) from
/// `spans` (the block's [`field_spans`]) when given and not empty.
fn answer<'a>(raw: &'a [u8], located: Located<'_>, spans: Option<&[FieldSpan]>) -> Cow<'a, [u8]> {
    match located {
        Located::Slice(a, b) => Cow::Borrowed(slice(raw, a, b)),
        Located::Fields {
            hdr,
            body,
            names,
            not,
        } => {
            let block = slice(raw, hdr, body);
            Cow::Owned(match spans.filter(|s| !s.is_empty()) {
                Some(spans) => header_fields_of(block, spans, names, not),
                None => header_fields(block, names, not),
            })
        }
    }
}

/// The top-level header block of a message whose header is `head`.
pub(crate) fn root_block<'a>(root: &Part, head: &'a [u8]) -> &'a [u8] {
    slice(head, root.hdr, root.body)
}

/// `BINARY[part]` (RFC 3516 4.2): the part with its Content-Transfer-Encoding
/// undone. `path` empty means the whole message, header included.
///
/// A leaf part is its decoded body. A composite part (multipart, or a
/// message/rfc822 that was parsed) is its raw body in which every nested
/// base64 / quoted-printable leaf is replaced by its decoded content and its
/// MIME header says `Content-Transfer-Encoding: binary`, so that the result
/// is again a well-formed MIME entity whose declared encodings are true.
/// Everything else (boundaries, preambles, 7bit/8bit/binary bodies) is
/// copied unchanged. The result borrows the stored bytes when nothing needed
/// decoding.
pub(crate) fn binary<'a>(
    root: &Part,
    raw: &'a [u8],
    path: &[u32],
) -> Result<Cow<'a, [u8]>, BinaryError> {
    let Some(part) = target(root, path) else {
        return Ok(Cow::Borrowed(&[]));
    };
    let include_hdr = path.is_empty();
    let start = if include_hdr { part.hdr } else { part.body };
    let end = part.end.min(raw.len());
    let mut conv = Converter {
        raw,
        out: Vec::new(),
        copy_from: start,
        changed: false,
    };
    if include_hdr {
        conv.part(part, 0)?;
    } else {
        match children(part) {
            Some(kids) => {
                for c in kids {
                    conv.part(c, 1)?;
                }
            }
            None => return decode::decode(slice(raw, part.body, part.end), part.bcte.as_deref()),
        }
    }
    if !conv.changed {
        return Ok(Cow::Borrowed(slice(raw, start, end)));
    }
    conv.copy_to(end);
    Ok(Cow::Owned(conv.out))
}

/// For BINARY[path] of a leaf part whose data decodes: the encoded body's
/// byte range, its encoding and the decoded size (recorded at ingest), so the
/// part can be decoded as a stream.
pub(crate) fn stream_plan(root: &Part, path: &[u32]) -> Option<(usize, usize, Cte, u64)> {
    if path.is_empty() {
        return None;
    }
    let part = find(root, path)?;
    if children(part).is_some() {
        return None;
    }
    let cte = decode::classify(part.bcte.as_deref()).ok()?;
    let size = match cte {
        Cte::Identity => span(part.body, part.end),
        _ => part.bin?.1,
    };
    Some((part.body, part.end, cte, size))
}

fn target<'p>(root: &'p Part, path: &[u32]) -> Option<&'p Part> {
    if path.is_empty() {
        Some(root)
    } else {
        find(root, path)
    }
}

/// `BINARY.SIZE[part]`: exactly `binary(part)?.len()`, computed from the
/// sizes recorded at ingest (no decoding, no message bytes).
pub(crate) fn binary_size(root: &Part, path: &[u32]) -> Result<u64, BinaryError> {
    let Some(part) = target(root, path) else {
        return Ok(0);
    };
    if path.is_empty() {
        return converted_len(part, true, 0);
    }
    converted_len(part, false, 1)
}

fn span(a: usize, b: usize) -> u64 {
    b.saturating_sub(a) as u64
}

/// Length of the BINARY form of `part` (header included or not), mirroring
/// [`Converter::part`].
fn converted_len(part: &Part, include_hdr: bool, depth: usize) -> Result<u64, BinaryError> {
    let cte = decode::classify(part.bcte.as_deref())?;
    let encoded = cte != Cte::Identity;
    let hdr = match (include_hdr, encoded, part.bin) {
        (false, _, _) => 0,
        (true, false, _) => span(part.hdr, part.body),
        (true, true, Some((h, _))) => h,
        (true, true, None) => return Err(BinaryError::Parse),
    };
    let body = match children(part) {
        Some(kids) if depth < MAX_DEPTH => {
            let mut n = span(part.body, part.end);
            for k in kids {
                n = n.saturating_sub(span(k.hdr, k.end));
                n += converted_len(k, true, depth + 1)?;
            }
            n
        }
        _ if encoded => match part.bin {
            Some((_, d)) => d,
            None => return Err(BinaryError::Parse),
        },
        _ => span(part.body, part.end),
    };
    Ok(hdr + body)
}

/// At ingest: record the BINARY sizes of every encoded part and return the
/// first reason the message as a whole cannot be converted (an unknown
/// encoding anywhere wins over invalid data, as in Dovecot, which checks
/// every part's encoding before decoding any).
pub(crate) fn prepare(root: &mut Part, raw: &[u8]) -> Option<BinaryError> {
    let mut unknown = false;
    let mut invalid = false;
    prepare_part(root, raw, 0, &mut unknown, &mut invalid);
    if unknown {
        Some(BinaryError::UnknownCte)
    } else if invalid {
        Some(BinaryError::Parse)
    } else {
        None
    }
}

fn prepare_part(part: &mut Part, raw: &[u8], depth: usize, unknown: &mut bool, invalid: &mut bool) {
    let cte = match decode::classify(part.bcte.as_deref()) {
        Ok(c) => Some(c),
        Err(_) => {
            *unknown = true;
            None
        }
    };
    let composite = children(part).is_some() && depth < MAX_DEPTH;
    if let Some(c) = cte.filter(|c| *c != Cte::Identity) {
        let h = binary_header(slice(raw, part.hdr, part.body)).len() as u64;
        if composite {
            part.bin = Some((h, 0));
        } else {
            match decode::decoded_len(slice(raw, part.body, part.end), c) {
                Ok(d) => part.bin = Some((h, d)),
                Err(_) => *invalid = true,
            }
        }
    }
    if composite {
        match &mut part.kind {
            Kind::Multipart(kids) => {
                for k in kids {
                    prepare_part(k, raw, depth + 1, unknown, invalid);
                }
            }
            Kind::Message(Some(k)) => prepare_part(k, raw, depth + 1, unknown, invalid),
            _ => {}
        }
    }
}

/// The parts nested in a composite part, None for a leaf (a message/rfc822
/// whose body was not parsed because of its encoding is a leaf here: its
/// encoding is undone like any other).
fn children(part: &Part) -> Option<&[Part]> {
    match &part.kind {
        Kind::Multipart(c) => Some(c),
        Kind::Message(Some(c)) => Some(std::slice::from_ref(c.as_ref())),
        _ => None,
    }
}

struct Converter<'a> {
    raw: &'a [u8],
    out: Vec<u8>,
    /// Stored bytes from here on are not yet in `out`.
    copy_from: usize,
    changed: bool,
}

const MAX_DEPTH: usize = 128;

impl Converter<'_> {
    fn copy_to(&mut self, to: usize) {
        if to > self.copy_from {
            self.out
                .extend_from_slice(slice(self.raw, self.copy_from, to));
            self.copy_from = to;
        }
    }

    /// Append `part` (header included) with its encoded leaves decoded.
    fn part(&mut self, part: &Part, depth: usize) -> Result<(), BinaryError> {
        let cte = decode::classify(part.bcte.as_deref())?;
        let encoded = cte != Cte::Identity;
        if encoded {
            self.copy_to(part.hdr);
            self.out
                .extend_from_slice(&binary_header(slice(self.raw, part.hdr, part.body)));
            self.copy_from = part.body;
            self.changed = true;
        }
        match children(part) {
            Some(kids) if depth < MAX_DEPTH => {
                for c in kids {
                    self.part(c, depth + 1)?;
                }
            }
            _ if encoded => {
                let body = slice(self.raw, part.body, part.end);
                match cte {
                    Cte::Base64 => decode::base64(body, &mut self.out)?,
                    _ => decode::quoted_printable(body, &mut self.out)?,
                }
                self.copy_from = part.end;
            }
            _ => {}
        }
        Ok(())
    }
}
/// A MIME header with its Content-Transfer-Encoding fields removed and
/// `Content-Transfer-Encoding: binary` added as the last field.
fn binary_header(block: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(block.len() + 40);
    let mut fields_len = 0;
    for f in header::iter_fields(block) {
        let start = f.raw.as_ptr() as usize - block.as_ptr() as usize;
        fields_len = start + f.raw.len();
        if !(f.has_colon && f.name.eq_ignore_ascii_case(b"content-transfer-encoding")) {
            out.extend_from_slice(f.raw);
        }
    }
    if !out.is_empty() && !out.ends_with(b"\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Content-Transfer-Encoding: binary\r\n");
    // the empty line that ends the header, as written (or one if missing)
    let rest = &block[fields_len.min(block.len())..];
    if rest.is_empty() {
        out.extend_from_slice(b"\r\n");
    } else {
        out.extend_from_slice(rest);
    }
    out
}
