//! Content-Transfer-Encoding decoding for BINARY (RFC 3516).

use std::borrow::Cow;

use crate::BinaryError;

/// A transfer encoding as far as BINARY is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cte {
    /// 7bit, 8bit, binary (or no field): the body is the content.
    Identity,
    Base64,
    QuotedPrintable,
}

/// Classify the token of a Content-Transfer-Encoding field (None = no
/// field = 7bit). Anything else, an empty value included, is unknown
/// (`NO [UNKNOWN-CTE]`, RFC 3516 4.2).
pub(crate) fn classify(cte: Option<&str>) -> Result<Cte, BinaryError> {
    let Some(c) = cte else {
        return Ok(Cte::Identity);
    };
    if c.eq_ignore_ascii_case("7bit")
        || c.eq_ignore_ascii_case("8bit")
        || c.eq_ignore_ascii_case("binary")
    {
        Ok(Cte::Identity)
    } else if c.eq_ignore_ascii_case("base64") {
        Ok(Cte::Base64)
    } else if c.eq_ignore_ascii_case("quoted-printable") {
        Ok(Cte::QuotedPrintable)
    } else {
        Err(BinaryError::UnknownCte)
    }
}

/// Where decoded bytes go: a buffer, or a counter when only the decoded
/// size is wanted (ingest computes BINARY.SIZE without keeping the data).
pub(crate) trait Sink {
    fn put(&mut self, b: u8);
    fn put_all(&mut self, s: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, b: u8) {
        self.push(b);
    }
    fn put_all(&mut self, s: &[u8]) {
        self.extend_from_slice(s);
    }
}

/// Counts bytes instead of storing them.
#[derive(Default)]
pub(crate) struct Count(pub u64);

impl Sink for Count {
    fn put(&mut self, _: u8) {
        self.0 += 1;
    }
    fn put_all(&mut self, s: &[u8]) {
        self.0 += s.len() as u64;
    }
}

/// Decode `body` according to the BINARY transfer encoding `cte`.
pub(crate) fn decode<'a>(body: &'a [u8], cte: Option<&str>) -> Result<Cow<'a, [u8]>, BinaryError> {
    match classify(cte)? {
        Cte::Identity => Ok(Cow::Borrowed(body)),
        Cte::Base64 => {
            let mut out = Vec::with_capacity(body.len() / 4 * 3);
            base64(body, &mut out)?;
            Ok(Cow::Owned(out))
        }
        Cte::QuotedPrintable => {
            let mut out = Vec::with_capacity(body.len());
            quoted_printable(body, &mut out)?;
            Ok(Cow::Owned(out))
        }
    }
}

/// The decoded length of `body` (validating it) without keeping the data.
pub(crate) fn decoded_len(body: &[u8], cte: Cte) -> Result<u64, BinaryError> {
    let mut n = Count::default();
    match cte {
        Cte::Identity => return Ok(body.len() as u64),
        Cte::Base64 => base64(body, &mut n)?,
        Cte::QuotedPrintable => quoted_printable(body, &mut n)?,
    }
    Ok(n.0)
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
/// skipped; a character outside the alphabet, data that ends inside a
/// 4-character group, wrong padding, or anything but whitespace after the
/// padding is an error (`NO [PARSE]`). Text after the padding is not
/// silently dropped: it usually means the part was cut or glued together.
pub(crate) fn base64(body: &[u8], out: &mut impl Sink) -> Result<(), BinaryError> {
    let mut quad = [0u8; 4];
    let mut n = 0;
    let mut i = 0;
    let is_ws = |b: u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    while i < body.len() {
        let b = body[i];
        i += 1;
        if is_ws(b) {
            continue;
        }
        if b == b'=' {
            // padding: "==" after 2 characters of a group, "=" after 3
            match n {
                2 => {
                    out.put((quad[0] << 2) | (quad[1] >> 4));
                    while i < body.len() && is_ws(body[i]) {
                        i += 1;
                    }
                    if body.get(i) != Some(&b'=') {
                        return Err(BinaryError::Parse);
                    }
                    i += 1;
                }
                3 => {
                    out.put((quad[0] << 2) | (quad[1] >> 4));
                    out.put((quad[1] << 4) | (quad[2] >> 2));
                }
                _ => return Err(BinaryError::Parse),
            }
            if body[i..].iter().all(|&b| is_ws(b)) {
                return Ok(());
            }
            return Err(BinaryError::Parse);
        }
        let Some(v) = b64val(b) else {
            return Err(BinaryError::Parse);
        };
        quad[n] = v;
        n += 1;
        if n == 4 {
            out.put((quad[0] << 2) | (quad[1] >> 4));
            out.put((quad[1] << 4) | (quad[2] >> 2));
            out.put((quad[2] << 6) | quad[3]);
            n = 0;
        }
    }
    if n != 0 {
        return Err(BinaryError::Parse);
    }
    Ok(())
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
pub(crate) fn quoted_printable(body: &[u8], out: &mut impl Sink) -> Result<(), BinaryError> {
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
                        out.put((h << 4) | l);
                        i += 3;
                        continue;
                    }
                }
                invalid = true;
                out.put(b'=');
                i += 1;
                continue;
            }
            out.put(b);
            i += 1;
        }
        if !soft && eol_len > 0 {
            out.put_all(&body[line_end..line_end + eol_len]);
        }
        pos = line_end + eol_len;
        if eol_len == 0 {
            break;
        }
    }
    if invalid {
        return Err(BinaryError::Parse);
    }
    Ok(())
}

/// Incremental decoding for streaming BINARY of large parts. Fed the encoded
/// body in arbitrary chunks it produces, for data the strict decoders above
/// accept, exactly what they produce for the whole body: base64 keeps its
/// 4-character group across chunks, quoted-printable decodes whole lines (its
/// rules are line-local) and keeps a partial line for the next chunk.
pub struct StreamDecoder {
    cte: Cte,
    quad: [u8; 4],
    n: usize,
    /// Base64 padding seen: the rest is whitespace.
    done: bool,
    /// Quoted-printable: the start of a line not yet complete.
    pending: Vec<u8>,
}

impl StreamDecoder {
    pub(crate) fn new(cte: Cte) -> Self {
        StreamDecoder {
            cte,
            quad: [0; 4],
            n: 0,
            done: false,
            pending: Vec::new(),
        }
    }

    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        match self.cte {
            Cte::Identity => out.extend_from_slice(input),
            Cte::QuotedPrintable => {
                self.pending.extend_from_slice(input);
                if let Some(last) = self.pending.iter().rposition(|&b| b == b'\n') {
                    let rest = self.pending.split_off(last + 1);
                    let _ = quoted_printable(&self.pending, out);
                    self.pending = rest;
                }
            }
            Cte::Base64 => {
                for &b in input {
                    if self.done || matches!(b, b' ' | b'\t' | b'\r' | b'\n') {
                        continue;
                    }
                    if b == b'=' {
                        let q = self.quad;
                        match self.n {
                            2 => out.push((q[0] << 2) | (q[1] >> 4)),
                            3 => {
                                out.push((q[0] << 2) | (q[1] >> 4));
                                out.push((q[1] << 4) | (q[2] >> 2));
                            }
                            _ => {}
                        }
                        self.done = true;
                        continue;
                    }
                    let Some(v) = b64val(b) else { continue };
                    self.quad[self.n] = v;
                    self.n += 1;
                    if self.n == 4 {
                        let q = self.quad;
                        out.push((q[0] << 2) | (q[1] >> 4));
                        out.push((q[1] << 4) | (q[2] >> 2));
                        out.push((q[2] << 6) | q[3]);
                        self.n = 0;
                    }
                }
            }
        }
    }

    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.cte == Cte::QuotedPrintable && !self.pending.is_empty() {
            let _ = quoted_printable(&self.pending, out);
            self.pending.clear();
        }
    }
}
