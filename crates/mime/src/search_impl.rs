//! Text for SEARCH: decoded header values and body text. Decoding (RFC 2047,
//! transfer encodings, charsets) is delegated to mail-parser, which is good
//! at it; only the header field split uses our own scanner so that field
//! names match exactly what FETCH shows.

use mail_parser::{MessageParser, PartType};

use crate::header;

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

fn collect(msg: &mail_parser::Message<'_>, out: &mut String, depth: usize) {
    for part in &msg.parts {
        match &part.body {
            PartType::Text(t) | PartType::Html(t) => {
                out.push_str(t);
                out.push('\n');
            }
            PartType::Message(m) if depth < 32 => collect(m, out, depth + 1),
            _ => {}
        }
    }
}

pub(crate) fn body_text(raw: &[u8]) -> String {
    let mut out = String::new();
    if let Some(msg) = MessageParser::new().parse(raw) {
        collect(&msg, &mut out, 0);
    }
    out
}
