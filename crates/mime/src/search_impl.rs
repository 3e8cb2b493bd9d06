//! Text for SEARCH: decoded header values and body text. Decoding (RFC 2047,
//! transfer encodings, charsets) is delegated to mail-parser, which is good
//! at it; only the header field split uses our own scanner so that field
//! names match exactly what FETCH shows.

use std::borrow::Cow;

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

/// The header text SEARCH TEXT looks at: the message's header fields, then
/// those of every MIME part and attached message ("the header (including
/// MIME header fields)", RFC 9051 6.4.4; as Dovecot, so that TEXT finds an
/// attachment by its file name or type), unfolded and RFC 2047 decoded.
pub(crate) fn headers_text(raw: &[u8]) -> String {
    headers_text_of(&structure::parse(raw), raw)
}

/// [`headers_text`] of a message already parsed into `root`.
fn headers_text_of(root: &Part, raw: &[u8]) -> String {
    let mut out = String::new();
    push_fields(&root_fields(raw), &mut out);
    part_headers(root, raw, &mut out, 0);
    out
}

/// [`headers_text`], [`body_text`] and [`preview`] of one message, from one
/// parse of its structure (what ingest computes).
pub(crate) fn texts(raw: &[u8]) -> (String, String, String) {
    let root = structure::parse(raw);
    // The preview's part is one of those the body text holds, decoded once.
    let mut body = String::new();
    let mut own = OwnText::default();
    collect(&root, raw, &mut body, 0, Some(&mut own));
    let preview = own.preview(&body);
    (headers_text_of(&root, raw), body, preview)
}

/// Where [`collect`] put the text of the message's own first text/plain and
/// first text/html part (not attachments, not inside an attached message):
/// the parts [`preview`] is made of.
#[derive(Default)]
struct OwnText {
    plain: Option<std::ops::Range<usize>>,
    html: Option<std::ops::Range<usize>>,
}

fn push_fields(fields: &[header::Field<'_>], out: &mut String) {
    for f in fields {
        out.push_str(&String::from_utf8_lossy(f.name));
        if f.has_colon {
            out.push_str(": ");
            out.push_str(&decode_value(f.value));
        }
        out.push('\n');
    }
}

/// The header fields of the parts below `part` (not its own).
fn part_headers(part: &Part, raw: &[u8], out: &mut String, depth: usize) {
    if depth > 64 {
        return;
    }
    let child = |k: &Part, raw: &[u8], out: &mut String| {
        let hdr = raw.get(k.hdr..k.body).unwrap_or_default();
        push_fields(&header::fields(hdr), out);
        part_headers(k, raw, out, depth + 1);
    };
    match &part.kind {
        Kind::Multipart(kids) => {
            for k in kids {
                child(k, raw, out);
            }
        }
        Kind::Message(Some(k)) => child(k, raw, out),
        Kind::Message(None) => {
            // An encoded message/rfc822 (see `collect`).
            let body = raw.get(part.body..part.end).unwrap_or_default();
            let inner = lenient_decode(body, part.bcte.as_deref());
            let root = structure::parse(&inner);
            child(&root, &inner, out);
        }
        _ => {}
    }
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
    body_text_of(&structure::parse(raw), raw)
}

fn body_text_of(root: &Part, raw: &[u8]) -> String {
    let mut out = String::new();
    collect(root, raw, &mut out, 0, None);
    out
}

/// Appends the searchable text of `part` to `out` (see [`body_text`]);
/// with `own`, also where the preview's candidates went (see [`OwnText`]).
fn collect(part: &Part, raw: &[u8], out: &mut String, depth: usize, mut own: Option<&mut OwnText>) {
    if depth > 64 {
        return;
    }
    match &part.kind {
        Kind::Multipart(kids) => {
            for k in kids {
                collect(k, raw, out, depth + 1, own.as_deref_mut());
            }
        }
        // An attached message is not the message's own text.
        Kind::Message(Some(k)) => collect(k, raw, out, depth + 1, None),
        Kind::Message(None) => {
            // an encoded message/rfc822 (not allowed by RFC 2046, but sent):
            // decode it and search its parts like those of any message
            let body = raw.get(part.body..part.end).unwrap_or_default();
            let inner = lenient_decode(body, part.bcte.as_deref());
            let root = structure::parse(&inner);
            collect(&root, &inner, out, depth + 1, None);
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
            let start = out.len();
            push_part_text(out, raw, part, &info);
            if let Some(own) = own.filter(|_| !info.is_attachment()) {
                let (plain, html) = info.plain_or_html();
                if plain && own.plain.is_none() {
                    own.plain = Some(start..out.len());
                } else if html && own.html.is_none() {
                    own.html = Some(start..out.len());
                }
            }
            out.push('\n');
        }
    }
}

/// Undo the transfer encoding as far as the data allows (a search should
/// still find the readable part of a damaged body).
fn lenient_decode<'a>(body: &'a [u8], cte: Option<&str>) -> Cow<'a, [u8]> {
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
        _ => return Cow::Borrowed(body),
    }
    Cow::Owned(out)
}

/// Convert to UTF-8 from the declared charset. US-ASCII, a missing or an
/// unknown charset are read as UTF-8 (mislabelled UTF-8 is common; bytes
/// that are not UTF-8 become U+FFFD and match nothing).
fn push_utf8(out: &mut String, data: &[u8], charset: Option<&[u8]>) {
    let enc = charset
        .filter(|c| {
            let c = String::from_utf8_lossy(c).trim().to_ascii_lowercase();
            !matches!(c.as_str(), "us-ascii" | "ascii" | "ansi_x3.4-1968" | "")
        })
        .and_then(encoding_rs::Encoding::for_label)
        .filter(|e| *e != encoding_rs::UTF_8);
    match enc {
        Some(e) => out.push_str(&e.decode_without_bom_handling(data).0),
        // Checked by the faster validator first: most text is valid.
        None => match std::str::from_utf8(data) {
            Ok(text) => out.push_str(text),
            Err(_) => out.push_str(&String::from_utf8_lossy(data)),
        },
    }
}

/// RFC 8970 preview: the first text part (the first text/plain one, else the
/// first text/html one with its markup removed; attachments skipped), decoded,
/// whitespace collapsed, at most 256 characters. Empty when there is none.
pub(crate) fn preview(raw: &[u8]) -> String {
    preview_of(&structure::parse(raw), raw)
}

fn preview_of(root: &Part, raw: &[u8]) -> String {
    let mut text = String::new();
    let mut own = OwnText::default();
    collect(root, raw, &mut text, 0, Some(&mut own));
    own.preview(&text)
}

impl OwnText {
    /// The preview of a message whose body text [`collect`] put in `text`:
    /// its first text/plain part, else its first text/html one without the
    /// markup, whitespace collapsed, at most 256 characters.
    fn preview(&self, text: &str) -> String {
        let html;
        let text = match (&self.plain, &self.html) {
            (Some(p), _) => &text[p.clone()],
            (None, Some(h)) => {
                html = strip_html(&text[h.clone()]);
                html.as_str()
            }
            (None, None) => return String::new(),
        };
        let mut out = String::new();
        let mut n = 0;
        for w in text.split_whitespace() {
            let sep = (n > 0).then_some(' ');
            for c in sep.into_iter().chain(w.chars()) {
                if n == 256 {
                    return out;
                }
                if !c.is_control() {
                    out.push(c);
                    n += 1;
                }
            }
        }
        out
    }
}

/// Text of an HTML document: tags, comments and `<head>`/`<script>`/`<style>`
/// contents removed, the common entities decoded.
fn strip_html(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    let mut skip_until: Option<&str> = None;
    while let Some(lt) = rest.find('<') {
        if skip_until.is_none() {
            out.push_str(&decode_entities(&rest[..lt]));
        }
        rest = &rest[lt..];
        if rest.starts_with("<!--") {
            rest = rest.find("-->").map_or("", |e| &rest[e + 3..]);
            continue;
        }
        let end = rest.find('>').map_or(rest.len(), |e| e + 1);
        let tag = rest[1..end.saturating_sub(1).max(1)]
            .trim()
            .to_ascii_lowercase();
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        match skip_until {
            Some(s) if tag.starts_with('/') && name == s => skip_until = None,
            Some(_) => {}
            None if !tag.starts_with('/')
                && matches!(name.as_str(), "head" | "script" | "style") =>
            {
                skip_until = Some(match name.as_str() {
                    "head" => "head",
                    "script" => "script",
                    _ => "style",
                });
            }
            None => out.push(' '),
        }
        rest = &rest[end..];
    }
    if skip_until.is_none() {
        out.push_str(&decode_entities(rest));
    }
    out
}

fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(a) = rest.find('&') {
        out.push_str(&rest[..a]);
        rest = &rest[a..];
        let semi = rest.bytes().take(12).position(|b| b == b';');
        let ent = semi.map(|e| &rest[1..e]);
        let c = ent.and_then(|e| match e {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "nbsp" => Some(' '),
            _ => {
                let n = e.strip_prefix('#')?;
                let v = match n.strip_prefix(['x', 'X']) {
                    Some(h) => u32::from_str_radix(h, 16).ok()?,
                    None => n.parse().ok()?,
                };
                char::from_u32(v)
            }
        });
        match (c, semi) {
            (Some(c), Some(e)) => {
                out.push(c);
                rest = &rest[e + 1..];
            }
            _ => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Appends a leaf part's body, transfer-decoded (leniently) and converted
/// to UTF-8 from its charset parameter.
fn push_part_text(out: &mut String, raw: &[u8], part: &Part, info: &Info) {
    let body = raw.get(part.body..part.end).unwrap_or_default();
    let decoded = lenient_decode(body, part.bcte.as_deref());
    let charset = info
        .params
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(b"charset"))
        .map(|(_, v)| v.as_slice());
    push_utf8(out, &decoded, charset);
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIXED: &[u8] = b"From: a@example.org\r\n\
Content-Type: multipart/mixed; boundary=b\r\n\
\r\n\
--b\r\n\
Content-Type: text/html; charset=utf-8\r\n\
\r\n\
<html><head><title>t</title></head><body><p>Own   html\r\n  words</p></body></html>\r\n\
--b\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
Subject: inner\r\n\
\r\n\
attached message words\r\n\
--b\r\n\
Content-Type: text/plain\r\n\
Content-Disposition: attachment; filename=notes.txt\r\n\
\r\n\
attachment words\r\n\
--b--\r\n";

    #[test]
    fn the_preview_is_the_own_text_of_the_body_text_decoded_once() {
        let (_, body, preview) = texts(MIXED);
        // The body text holds every searchable part, the attached message's
        // and the attachment's too...
        for w in ["Own   html", "attached message words", "attachment words"] {
            assert!(body.contains(w), "{w:?} in {body:?}");
        }
        // ...the preview only the message's own first text part: here the
        // HTML one (the plain part is an attachment, the other plain text is
        // in an attached message), without markup, whitespace collapsed.
        assert_eq!(preview, "Own html words");
        assert_eq!(super::preview(MIXED), preview);
    }

    #[test]
    fn the_first_own_plain_part_wins_over_html() {
        let raw = b"Content-Type: multipart/alternative; boundary=x\r\n\r\n\
--x\r\nContent-Type: text/html\r\n\r\n<b>rich</b>\r\n\
--x\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\r\ncaf=E9 plain\r\n\
--x--\r\n";
        let (_, body, preview) = texts(raw);
        assert_eq!(preview, "caf\u{e9} plain");
        assert!(body.contains("<b>rich</b>") && body.contains("caf\u{e9} plain"));
    }

    #[test]
    fn bytes_that_are_not_utf8_become_replacement_characters() {
        let raw = b"Subject: x\r\n\r\nok \xff\xfe end\r\n";
        let (_, body, preview) = texts(raw);
        assert!(body.contains("ok \u{fffd}\u{fffd} end"), "{body:?}");
        assert_eq!(preview, "ok \u{fffd}\u{fffd} end");
    }
}
