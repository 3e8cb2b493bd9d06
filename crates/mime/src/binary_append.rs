//! Messages APPENDed as a literal8 (RFC 3516 4.3) are stored with their
//! `Content-Transfer-Encoding: binary` parts re-encoded as base64.
//!
//! Why: a binary part may hold NUL bytes and lines of any length, which no
//! IMAP4rev1 literal can carry. `BODY[]`, `RFC822` and `BODY[n]` are
//! `nstring`s (RFC 3501 9, RFC 3516 4.2 allows literal8 only in BINARY
//! responses), so without the conversion a client that does not use BINARY
//! could not be sent the message correctly. The conversion keeps the content
//! (BINARY[n] still returns the original bytes) and makes the stored message
//! valid 7-bit MIME. Dovecot does the same.

use base64::Engine;

use crate::header;
use crate::structure::{self, Kind, Part};

/// Base64 line length (RFC 2045 6.8: at most 76 characters).
const LINE: usize = 76;

/// The message with every non-empty leaf part whose transfer encoding is
/// `binary` re-encoded as base64 (its Content-Transfer-Encoding field
/// rewritten); None when there is no such part.
pub(crate) fn convert(raw: &[u8]) -> Option<Vec<u8>> {
    let root = structure::parse(raw);
    let mut parts = Vec::new();
    collect(&root, &mut parts, 0);
    if parts.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 3 + 64);
    let mut pos = 0;
    for p in parts {
        if p.hdr < pos || p.end > raw.len() {
            continue;
        }
        out.extend_from_slice(&raw[pos..p.hdr]);
        // the header with its CTE field(s) replaced, at the first one's place
        let block = &raw[p.hdr..p.body];
        let mut done = false;
        let mut copied = 0;
        for f in header::iter_fields(block) {
            let start = f.raw.as_ptr() as usize - block.as_ptr() as usize;
            out.extend_from_slice(&block[copied..start]);
            copied = start + f.raw.len();
            if f.has_colon && f.name.eq_ignore_ascii_case(b"content-transfer-encoding") {
                if !done {
                    out.extend_from_slice(b"Content-Transfer-Encoding: base64\r\n");
                    done = true;
                }
            } else {
                out.extend_from_slice(f.raw);
            }
        }
        out.extend_from_slice(&block[copied..]);
        let encoded = base64::engine::general_purpose::STANDARD.encode(&raw[p.body..p.end]);
        for (i, line) in encoded.as_bytes().chunks(LINE).enumerate() {
            if i > 0 {
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(line);
        }
        pos = p.end;
    }
    out.extend_from_slice(&raw[pos..]);
    Some(out)
}

fn collect<'p>(part: &'p Part, out: &mut Vec<&'p Part>, depth: usize) {
    if depth > 128 {
        return;
    }
    match &part.kind {
        Kind::Multipart(kids) => kids.iter().for_each(|k| collect(k, out, depth + 1)),
        Kind::Message(Some(k)) => collect(k, out, depth + 1),
        _ => {
            let binary = part
                .bcte
                .as_deref()
                .is_some_and(|c| c.eq_ignore_ascii_case("binary"));
            if binary && part.end > part.body {
                out.push(part);
            }
        }
    }
}
