//! BODY[section] and BINARY[part] from the part tree and the raw bytes.

use std::borrow::Cow;

use pillarbox_proto::types::{Section, SectionText};

use crate::decode;
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
    let mut out = Vec::new();
    for f in header::fields(block) {
        let matched = f.has_colon
            && names
                .iter()
                .any(|n| f.name.eq_ignore_ascii_case(n.as_bytes()));
        if matched != not {
            out.extend_from_slice(f.raw);
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

pub(crate) fn section<'a>(root: &Part, raw: &'a [u8], section: &Section) -> Cow<'a, [u8]> {
    let empty: Cow<'a, [u8]> = Cow::Borrowed(&[]);
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
                return Cow::Borrowed(raw);
            }
            return Cow::Borrowed(slice(raw, part.body, part.end));
        }
        Some(t) => t,
    };
    if let SectionText::Mime = text {
        if section.part.is_empty() {
            return empty;
        }
        return Cow::Borrowed(slice(raw, part.hdr, part.body));
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
        SectionText::Header => Cow::Borrowed(slice(raw, msg.hdr, msg.body)),
        SectionText::Text => Cow::Borrowed(slice(raw, msg.body, msg.end)),
        SectionText::HeaderFields(names) => {
            Cow::Owned(header_fields(slice(raw, msg.hdr, msg.body), names, false))
        }
        SectionText::HeaderFieldsNot(names) => {
            Cow::Owned(header_fields(slice(raw, msg.hdr, msg.body), names, true))
        }
        SectionText::Mime => empty,
    }
}

pub(crate) fn binary<'a>(
    root: &Part,
    raw: &'a [u8],
    path: &[u32],
) -> Result<Cow<'a, [u8]>, BinaryError> {
    let part = if path.is_empty() {
        root
    } else {
        match find(root, path) {
            Some(p) => p,
            None => return Ok(Cow::Borrowed(&[])),
        }
    };
    let body = slice(raw, part.body, part.end);
    match &part.kind {
        Kind::Leaf => decode::decode(body, part.cte.as_deref()),
        // Composite parts are returned as they are (Dovecot does the same;
        // RFC 3516 defines decoding only for leaf parts).
        _ => Ok(Cow::Borrowed(body)),
    }
}
