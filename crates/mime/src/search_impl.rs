//! Text for SEARCH: decoded header values and body text. Decoding (RFC 2047,
//! transfer encodings, charsets) is delegated to mail-parser, which is good
//! at it; only the header field split uses our own scanner so that field
//! names match exactly what FETCH shows.

use mail_parser::MessageParser;

use crate::decode::{self, Cte};
use crate::header;
use crate::structure::{self, Info, Kind, Part};

fn root_fields(raw: &[u8]) -> Vec<header::Field<'_>> {
    let end = header::header_end(raw, 0, raw.len());
    header::fields(&raw[..end])
}

/// RFC 2047-decode an unstructured header value (unfolded first).
pub(crate) fn decode_value(value: &[u8]) -> String {
    let unfolded = header::unfold(value);
    if !unfolded.windows(2).any(|w| w == b"=?") {
        return String::from_utf8_lossy(&unfolded).into_owned();
    }
    let mut msg = b"Subject: ".to_vec();
    msg.extend_from_slice(&unfolded);
    msg.extend_from_slice(b"\r\n\r\n");
    MessageParser::new()
        .parse_headers(&msg)
        .and_then(|m| m.subject().map(|s| s.to_string()))
        .unwrap_or_else(|| String::from_utf8_lossy(&unfolded).into_owned())
}

pub(crate) fn header_values(raw: &[u8], name: &str) -> Vec<String> {
    root_fields(raw)
        .iter()
        .filter(|f| f.has_colon && f.name.eq_ignore_ascii_case(name.as_bytes()))
        .map(|f| decode_value(f.value))
        .collect()
}

pub(crate) fn has_header(raw: &[u8], name: &str) -> bool {
    root_fields(raw)
        .iter()
        .any(|f| f.has_colon && f.name.eq_ignore_ascii_case(name.as_bytes()))
}

pub(crate) fn headers_text(raw: &[u8]) -> String {
    let mut out = String::new();
    for f in root_fields(raw) {
        out.push_str(&String::from_utf8_lossy(f.name));
        if f.has_colon {
            out.push_str(": ");
            out.push_str(&decode_value(f.value));
        }
        out.push('\n');
    }
    out
}

/// The text SEARCH BODY / TEXT look at (Dovecot's rule, also the useful
/// one): the bodies of parts whose Content-Type is `text/*` or `message/*`
/// (no Content-Type means text/plain), with the transfer encoding undone and
/// the charset converted to UTF-8. Parts of other types (images, PDFs,
/// application/*) are not searched: their encoded bytes would give false
/// matches. A message/rfc822 part is searched through its own parts (its
/// header is not body text; an encoded one is decoded first); a
/// message/partial is searched as it is.
pub(crate) fn body_text(raw: &[u8]) -> String {
    let root = structure::parse(raw);
    let mut out = String::new();
    collect(&root, raw, &mut out, 0);
    out
}

fn collect(part: &Part, raw: &[u8], out: &mut String, depth: usize) {
    if depth > 64 {
        return;
    }
    match &part.kind {
        Kind::Multipart(kids) => {
            for k in kids {
                collect(k, raw, out, depth + 1);
            }
        }
        Kind::Message(Some(k)) => collect(k, raw, out, depth + 1),
        Kind::Message(None) => {
            // an encoded message/rfc822 (not allowed by RFC 2046, but sent):
            // decode it and search its parts like those of any message
            let body = raw.get(part.body..part.end).unwrap_or_default();
            let inner = lenient_decode(body, part.bcte.as_deref());
            let root = structure::parse(&inner);
            collect(&root, &inner, out, depth + 1);
        }
        _ => {
            let hdr = raw.get(part.hdr..part.body).unwrap_or_default();
            let info = Info::from_fields(&header::fields(hdr));
            let searchable = match &info.ctype {
                None => true,
                Some((t, _)) => {
                    t.eq_ignore_ascii_case(b"text") || t.eq_ignore_ascii_case(b"message")
                }
            };
            if !searchable {
                return;
            }
            let body = raw.get(part.body..part.end).unwrap_or_default();
            let decoded = lenient_decode(body, part.bcte.as_deref());
            let charset = info
                .params
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(b"charset"))
                .map(|(_, v)| v.as_slice());
            out.push_str(&to_utf8(&decoded, charset));
            out.push('\n');
        }
    }
}

/// Undo the transfer encoding as far as the data allows (a search should
/// still find the readable part of a damaged body).
fn lenient_decode(body: &[u8], cte: Option<&str>) -> Vec<u8> {
    let mut out = Vec::new();
    match decode::classify(cte) {
        Ok(Cte::Base64) => {
            if decode::base64(body, &mut out).is_err() {
                out.clear();
                let clean: Vec<u8> = body
                    .iter()
                    .copied()
                    .take_while(|&b| b != b'=')
                    .filter(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
                    .collect();
                let whole = clean.len() / 4 * 4;
                let _ = decode::base64(&clean[..whole], &mut out);
            }
        }
        Ok(Cte::QuotedPrintable) => {
            // invalid escapes are kept as written
            let _ = decode::quoted_printable(body, &mut out);
        }
        _ => out.extend_from_slice(body),
    }
    out
}

/// Convert to UTF-8 from the declared charset. US-ASCII, a missing or an
/// unknown charset are read as UTF-8 (mislabelled UTF-8 is common; bytes
/// that are not UTF-8 become U+FFFD and match nothing).
fn to_utf8(data: &[u8], charset: Option<&[u8]>) -> String {
    let enc = charset
        .filter(|c| {
            let c = String::from_utf8_lossy(c).trim().to_ascii_lowercase();
            !matches!(c.as_str(), "us-ascii" | "ascii" | "ansi_x3.4-1968" | "")
        })
        .and_then(encoding_rs::Encoding::for_label)
        .filter(|e| *e != encoding_rs::UTF_8);
    match enc {
        Some(e) => e.decode_without_bom_handling(data).0.into_owned(),
        None => String::from_utf8_lossy(data).into_owned(),
    }
}
