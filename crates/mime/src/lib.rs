//! Parse a message once at ingest into a [`Summary`] that is stored next to the
//! message; FETCH answers ENVELOPE / BODYSTRUCTURE / BODY[section] / BINARY from
//! the summary plus slices of the raw bytes, never by re-parsing.
//!
//! Reference behaviour: Dovecot 2.3 (see the project's fidelity tests).

use std::borrow::Cow;

use pillarbox_proto::types::{Section, SectionText};
use serde::{Deserialize, Serialize};

mod binary_append;
mod date;
mod decode;
pub use decode::StreamDecoder;
mod envelope;
mod header;
mod quote;
mod rfc822;
mod search_impl;
mod section;
mod structure;

/// Why BINARY[...] of a part cannot be served (RFC 3516).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum BinaryError {
    /// `NO [UNKNOWN-CTE]`: the part's Content-Transfer-Encoding is not one we decode.
    #[error("unknown content-transfer-encoding")]
    UnknownCte,
    /// `NO [PARSE]`: the encoded data is invalid.
    #[error("invalid data in MIME part")]
    Parse,
}

/// What FETCH needs of a message, computed once at ingest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    // `serde_bytes`: read as one slice, not byte by byte (the encoding is the
    // same: postcard writes a byte sequence as length + bytes either way).
    #[serde(with = "serde_bytes")]
    envelope: Vec<u8>,
    #[serde(with = "serde_bytes")]
    bodystructure: Vec<u8>,
    #[serde(with = "serde_bytes")]
    body: Vec<u8>,
    root: structure::Part,
    sent_date: Option<i64>,
    /// The message up to the end of its header: top-level HEADER and
    /// HEADER.FIELDS(.NOT) are answered from it without reading the message.
    #[serde(default, with = "serde_bytes")]
    head: Vec<u8>,
    /// Where the fields of the top-level header are in `head`, so that
    /// HEADER.FIELDS does not scan it again at every FETCH (computed, not
    /// stored).
    #[serde(skip)]
    fields: Vec<section::FieldSpan>,
}

/// First byte of the binary (postcard) serialisation; older summaries are JSON
/// and start with `{`.
const FORMAT_POSTCARD: u8 = 1;

impl Summary {
    /// Parse `raw` (the exact stored bytes). Never panics, whatever the input.
    pub fn parse(raw: &[u8]) -> Summary {
        let mut root = structure::parse(raw);
        // Decoded sizes of every part, so BINARY.SIZE never decodes at FETCH
        // time. A part that does not decode makes only that part's BINARY and
        // BINARY.SIZE fail (RFC 3516 4.2), not the other parts'.
        let _ = section::prepare(&mut root, raw);
        let fields = header::fields(&raw[root.hdr..root.body]);
        let envelope = envelope::build(&fields);
        let mut bodystructure = Vec::new();
        structure::write(&mut bodystructure, raw, &root, true);
        let mut body = Vec::new();
        structure::write(&mut body, raw, &root, false);
        let sent_date = date::sent_date(&fields);
        let head = raw[..root.body.min(raw.len())].to_vec();
        Summary {
            envelope,
            bodystructure,
            body,
            root,
            sent_date,
            head,
            fields: Vec::new(),
        }
        .indexed()
    }

    /// With [`Summary::fields`] filled in.
    fn indexed(mut self) -> Summary {
        self.fields = section::field_spans(section::root_block(&self.root, &self.head));
        self
    }
    /// Compact serialisation for storage.
    pub fn to_bytes(&self) -> Vec<u8> {
        let out = vec![FORMAT_POSTCARD];
        match postcard::to_extend(self, out) {
            Ok(v) => v,
            Err(_) => serde_json::to_vec(self).unwrap_or_default(),
        }
    }
    /// About how many bytes of heap this summary holds (for caches).
    pub fn heap_size(&self) -> usize {
        fn part(p: &structure::Part) -> usize {
            let strings =
                p.cte.as_ref().map_or(0, String::len) + p.bcte.as_ref().map_or(0, String::len);
            let children = match &p.kind {
                structure::Kind::Leaf => 0,
                structure::Kind::Multipart(parts) => parts.iter().map(part).sum(),
                structure::Kind::Message(inner) => inner.as_deref().map_or(0, part),
            };
            std::mem::size_of::<structure::Part>()
                + strings
                + children
                + p.opaque.as_deref().map_or(0, part)
        }
        self.envelope.len()
            + self.bodystructure.len()
            + self.body.len()
            + self.head.len()
            + self.fields.len() * std::mem::size_of::<section::FieldSpan>()
            + part(&self.root)
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Summary> {
        match bytes.split_first() {
            Some((&FORMAT_POSTCARD, rest)) => postcard::from_bytes(rest).ok(),
            _ => serde_json::from_slice(bytes).ok(),
        }
        .map(Summary::indexed)
    }
    /// Whether `section` can be answered by [`Summary::section_from_head`],
    /// i.e. without the message bytes.
    pub fn head_answers(section: &Section) -> bool {
        section.part.is_empty()
            && matches!(
                section.text,
                Some(
                    SectionText::Header
                        | SectionText::HeaderFields(_)
                        | SectionText::HeaderFieldsNot(_)
                )
            )
    }
    /// `BODY[HEADER]`, `BODY[HEADER.FIELDS (...)]` or `BODY[HEADER.FIELDS.NOT
    /// (...)]` of the whole message, from the header kept at ingest.
    pub fn section_from_head(&self, section: &Section) -> Cow<'_, [u8]> {
        section::head_section(&self.root, &self.head, &self.fields, section)
    }
    /// The ENVELOPE value, e.g. `("date" "subject" ((...)) ...)`, as wire bytes
    /// (strings quoted or as literals exactly as they must be sent).
    pub fn envelope(&self) -> &[u8] {
        &self.envelope
    }
    /// The BODYSTRUCTURE value (with extension data) as wire bytes.
    pub fn bodystructure(&self) -> &[u8] {
        &self.bodystructure
    }
    /// The BODY value (no extension data) as wire bytes.
    pub fn body(&self) -> &[u8] {
        &self.body
    }
    /// The bytes of `BODY[section]` (before any `<partial>` is applied).
    /// Non-existent parts give an empty slice (Dovecot behaviour).
    pub fn section<'a>(&self, raw: &'a [u8], section: &Section) -> Cow<'a, [u8]> {
        section::section(&self.root, raw, section)
    }
    /// The byte range of `section` in a message of `len` bytes when it is a
    /// plain slice of the stored bytes (everything but HEADER.FIELDS(.NOT)),
    /// so a large section can be streamed from storage without loading the
    /// message.
    pub fn section_range(&self, section: &Section, len: usize) -> Option<(usize, usize)> {
        match section::locate(&self.root, len, section) {
            section::Located::Slice(a, b) => {
                let b = b.min(len);
                Some((a.min(b), b))
            }
            section::Located::Fields { .. } => None,
        }
    }
    /// How to stream `BINARY[part]` of a large message: the encoded body's
    /// byte range in the message, the decoded size, and a decoder to feed it
    /// to. None when the part is composite, the whole message, or does not
    /// decode (then use [`Summary::binary`]).
    pub fn binary_stream(&self, part: &[u32]) -> Option<(usize, usize, u64, StreamDecoder)> {
        let (start, end, cte, size) = section::stream_plan(&self.root, part)?;
        Some((start, end, size, StreamDecoder::new(cte)))
    }
    /// `BINARY[part]`: the decoded content of a part (`part` empty = the whole message,
    /// header included); composite parts come back with their nested leaves decoded.
    pub fn binary<'a>(&self, raw: &'a [u8], part: &[u32]) -> Result<Cow<'a, [u8]>, BinaryError> {
        section::binary(&self.root, raw, part)
    }
    /// `BINARY.SIZE[part]`: always `binary(part)?.len()` when it succeeds,
    /// answered from sizes recorded at ingest (no decoding, no message bytes).
    ///
    /// Fails when *any* part of the message cannot be decoded, even if `part`
    /// itself can (Dovecot computes the binary sizes of the whole message at
    /// once and behaves the same; a NO is allowed for any FETCH item that
    /// cannot be produced, and the client can still FETCH BINARY[part]).
    pub fn binary_size(&self, part: &[u32]) -> Result<u64, BinaryError> {
        section::binary_size(&self.root, part)
    }
    /// The Date: header as seconds since the epoch, with its zone applied (for SENT* keys
    /// and SORT DATE). None if missing or unparsable.
    pub fn sent_date(&self) -> Option<i64> {
        self.sent_date
    }
}

/// For an APPEND sent as a literal8 (RFC 3516 4.3): the message to store,
/// with its `Content-Transfer-Encoding: binary` leaf parts re-encoded as
/// base64, or None to store the bytes as sent. See the module docs of
/// `binary_append` for why.
pub fn convert_binary_append(raw: &[u8]) -> Option<Vec<u8>> {
    binary_append::convert(raw)
}

/// Search helpers: the text a SEARCH key is matched against (substring, case-insensitive
/// matching is done by the caller on the returned UTF-8 text).
pub mod search {
    /// All values of header `name` (case-insensitive), unfolded, RFC 2047 decoded to UTF-8.
    /// For From/To/Cc/Bcc the address text as written (display names decoded).
    pub fn header_values(raw: &[u8], name: &str) -> Vec<String> {
        crate::search_impl::header_values(raw, name)
    }
    /// Whether the message has a header field `name` at all.
    pub fn has_header(raw: &[u8], name: &str) -> bool {
        crate::search_impl::has_header(raw, name)
    }
    /// The whole header block, then the MIME header fields of every part
    /// and attached message, unfolded and RFC 2047 decoded (for TEXT).
    pub fn headers_text(raw: &[u8]) -> String {
        crate::search_impl::headers_text(raw)
    }
    /// The decoded text of the body: every text/* part (and message/rfc822 parts
    /// recursively) with transfer encoding removed and charset converted to UTF-8.
    pub fn body_text(raw: &[u8]) -> String {
        crate::search_impl::body_text(raw)
    }
    /// RFC 8970 preview text: the first text/plain part (else the first
    /// text/html one without markup), decoded, whitespace collapsed, at most
    /// 256 characters; empty when the message has no such part.
    pub fn preview(raw: &[u8]) -> String {
        crate::search_impl::preview(raw)
    }
    /// [`headers_text`], [`body_text`] and [`preview`] of one message, from
    /// one parse of its structure: what indexing a message needs.
    pub fn texts(raw: &[u8]) -> (String, String, String) {
        crate::search_impl::texts(raw)
    }
}

#[cfg(test)]
mod tests;
