//! Content-Transfer-Encoding decoding for BINARY (RFC 3516).

use std::borrow::Cow;

use crate::BinaryError;

/// Decode `body` according to `cte` (None = 7bit).
pub(crate) fn decode<'a>(body: &'a [u8], cte: Option<&str>) -> Result<Cow<'a, [u8]>, BinaryError> {
    let cte = cte.unwrap_or("7bit").trim();
    if cte.eq_ignore_ascii_case("7bit")
        || cte.eq_ignore_ascii_case("8bit")
        || cte.eq_ignore_ascii_case("binary")
        || cte.is_empty()
    {
        return Ok(Cow::Borrowed(body));
    }
    if cte.eq_ignore_ascii_case("base64") {
        return base64(body).map(Cow::Owned);
    }
    if cte.eq_ignore_ascii_case("quoted-printable") {
        return quoted_printable(body).map(Cow::Owned);
    }
    Err(BinaryError::UnknownCte)
}

fn b64val(b: u8) -> Option<u8> {
    Some(match b {
        b'A'..=b'Z' => b - b'A',
        b'a'..=b'z' => b - b'a' + 26,
        b'0'..=b'9' => b - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    })
}

/// Base64 as Dovecot's decoder accepts it: whitespace and line breaks are
/// skipped; a character outside the alphabet, or data that ends inside a
/// 4-character group, is an error (`NO [PARSE]`). After the `=` padding
/// the rest of the part is ignored.
pub(crate) fn base64(body: &[u8]) -> Result<Vec<u8>, BinaryError> {
    let mut out = Vec::with_capacity(body.len() / 4 * 3);
    let mut quad = [0u8; 4];
    let mut n = 0;
    let mut i = 0;
    while i < body.len() {
        let b = body[i];
        i += 1;
        if matches!(b, b' ' | b'\t' | b'\r' | b'\n') {
            continue;
        }
        if b == b'=' {
            // padding: valid only at position 2 or 3 of a group
            match n {
                2 => {
                    out.push((quad[0] << 2) | (quad[1] >> 4));
                }
                3 => {
                    out.push((quad[0] << 2) | (quad[1] >> 4));
                    out.push((quad[1] << 4) | (quad[2] >> 2));
                }
                _ => return Err(BinaryError::Parse),
            }
            return Ok(out);
        }
        let Some(v) = b64val(b) else {
            return Err(BinaryError::Parse);
        };
        quad[n] = v;
        n += 1;
        if n == 4 {
            out.push((quad[0] << 2) | (quad[1] >> 4));
            out.push((quad[1] << 4) | (quad[2] >> 2));
            out.push((quad[2] << 6) | quad[3]);
            n = 0;
        }
    }
    if n != 0 {
        return Err(BinaryError::Parse);
    }
    Ok(out)
}

fn hexval(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// Quoted-printable (RFC 2045 6.7): `=XX`, soft line breaks `=` EOL
/// (whitespace allowed between), trailing whitespace of a line removed.
/// An `=` not followed by two hex digits or a line end is invalid data.
pub(crate) fn quoted_printable(body: &[u8]) -> Result<Vec<u8>, BinaryError> {
    let mut out = Vec::with_capacity(body.len());
    let mut invalid = false;
    let mut pos = 0;
    while pos < body.len() {
        let (line_end, eol_len) = match body[pos..].iter().position(|&b| b == b'\n') {
            Some(i) => {
                let e = pos + i;
                if e > pos && body[e - 1] == b'\r' {
                    (e - 1, 2)
                } else {
                    (e, 1)
                }
            }
            None => (body.len(), 0),
        };
        let mut line = &body[pos..line_end];
        while let Some((&l, rest)) = line.split_last() {
            if l == b' ' || l == b'\t' {
                line = rest;
            } else {
                break;
            }
        }
        let mut soft = false;
        let mut i = 0;
        while i < line.len() {
            let b = line[i];
            if b == b'=' {
                if i + 1 == line.len() {
                    soft = true;
                    break;
                }
                if i + 2 < line.len() + 1 {
                    if let (Some(h), Some(l)) = (
                        line.get(i + 1).copied().and_then(hexval),
                        line.get(i + 2).copied().and_then(hexval),
                    ) {
                        out.push((h << 4) | l);
                        i += 3;
                        continue;
                    }
                }
                invalid = true;
                out.push(b'=');
                i += 1;
                continue;
            }
            out.push(b);
            i += 1;
        }
        if !soft && eol_len > 0 {
            out.extend_from_slice(&body[line_end..line_end + eol_len]);
        }
        pos = line_end + eol_len;
        if eol_len == 0 {
            break;
        }
    }
    if invalid {
        return Err(BinaryError::Parse);
    }
    Ok(out)
}
