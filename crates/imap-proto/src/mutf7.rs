//! Modified UTF-7 (RFC 3501 5.1.3).
//!
//! Decoding is strict: only canonical encodings are accepted (no encoded
//! printable ASCII, no two adjacent shifted runs, zero padding bits, paired
//! surrogates), so every valid name has exactly one encoding and
//! `encode(decode(x)) == x`.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

fn b64_value(b: u8) -> Option<u32> {
    match b {
        b'A'..=b'Z' => Some(u32::from(b - b'A')),
        b'a'..=b'z' => Some(u32::from(b - b'a') + 26),
        b'0'..=b'9' => Some(u32::from(b - b'0') + 52),
        b'+' => Some(62),
        b',' => Some(63),
        _ => None,
    }
}

fn is_direct(c: char) -> bool {
    (' '..='~').contains(&c)
}

fn flush(out: &mut String, units: &[u16]) {
    out.push('&');
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &u in units {
        acc = (acc << 16) | u32::from(u);
        bits += 16;
        while bits >= 6 {
            bits -= 6;
            out.push(char::from(ALPHABET[((acc >> bits) & 0x3f) as usize]));
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((acc << (6 - bits)) & 0x3f) as usize]));
    }
    out.push('-');
}

/// Encodes a UTF-8 mailbox name as modified UTF-7.
pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut pending: Vec<u16> = Vec::new();
    for c in name.chars() {
        if is_direct(c) {
            if !pending.is_empty() {
                flush(&mut out, &pending);
                pending.clear();
            }
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut buf = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    if !pending.is_empty() {
        flush(&mut out, &pending);
    }
    out
}

/// Decodes modified UTF-7; None if the input is not valid modified UTF-7.
pub fn decode(name: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut i = 0;
    // True right after a shifted run: another one may not follow directly.
    let mut after_shift = false;
    while let Some(&b) = name.get(i) {
        if b == b'&' {
            let start = i + 1;
            let len = name.get(start..)?.iter().position(|&c| c == b'-')?;
            let run = name.get(start..start + len)?;
            i = start + len + 1;
            if run.is_empty() {
                out.push('&');
                after_shift = false;
                continue;
            }
            if after_shift {
                return None;
            }
            decode_run(run, &mut out)?;
            after_shift = true;
        } else if (0x20..=0x7e).contains(&b) {
            out.push(char::from(b));
            i += 1;
            after_shift = false;
        } else {
            return None;
        }
    }
    Some(out)
}

fn decode_run(run: &[u8], out: &mut String) -> Option<()> {
    let mut units = Vec::with_capacity(run.len() * 6 / 16);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &c in run {
        acc = (acc << 6) | b64_value(c)?;
        bits += 6;
        if bits >= 16 {
            bits -= 16;
            units.push(((acc >> bits) & 0xffff) as u16);
            acc &= (1 << bits) - 1;
        }
    }
    // Leftover bits must be fewer than one base64 char and all zero.
    if bits >= 6 || acc != 0 || units.is_empty() {
        return None;
    }
    for r in char::decode_utf16(units.iter().copied()) {
        let c = r.ok()?;
        if is_direct(c) {
            return None;
        }
        out.push(c);
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_and_ampersand() {
        assert_eq!(encode("INBOX"), "INBOX");
        assert_eq!(encode("&"), "&-");
        assert_eq!(encode("Tom & Jerry"), "Tom &- Jerry");
        assert_eq!(decode(b"&-").as_deref(), Some("&"));
        assert_eq!(decode(b"Tom &- Jerry").as_deref(), Some("Tom & Jerry"));
    }

    #[test]
    fn rfc_example() {
        let s = "~peter/mail/\u{53f0}\u{5317}/\u{65e5}\u{672c}\u{8a9e}";
        assert_eq!(encode(s), "~peter/mail/&U,BTFw-/&ZeVnLIqe-");
        assert_eq!(
            decode(b"~peter/mail/&U,BTFw-/&ZeVnLIqe-").as_deref(),
            Some(s)
        );
    }

    #[test]
    fn round_trips() {
        for s in [
            "",
            "Entw\u{fc}rfe",
            "Gel\u{f6}schte Elemente",
            "\u{1F600} smile",
            "a\u{1F4E7}&\u{e9}\u{10FFFF}z",
            "\u{65e5}&\u{672c}",
            "&&&",
            "caf\u{e9}",
        ] {
            let e = encode(s);
            assert!(e.bytes().all(|b| (0x20..0x7f).contains(&b)), "{e}");
            assert_eq!(decode(e.as_bytes()).as_deref(), Some(s), "{e}");
        }
        assert_eq!(encode("\u{1F600}"), "&2D3eAA-");
        assert_eq!(encode("caf\u{e9}"), "caf&AOk-");
    }

    #[test]
    fn strict_rejects() {
        // unterminated
        assert_eq!(decode(b"&AOk"), None);
        // invalid base64 char
        assert_eq!(decode(b"&A/k-"), None);
        // non-zero padding bits
        assert_eq!(decode(b"&AOl-"), None);
        // encoded printable ASCII ("a")
        assert_eq!(decode(b"&AGE-"), None);
        // two adjacent shifted runs
        assert_eq!(decode(b"&AOk-&AOk-"), None);
        assert_eq!(decode(b"&AOkA6Q-").as_deref(), Some("\u{e9}\u{e9}"));
        // unpaired surrogate
        assert_eq!(decode(b"&2D0-"), None);
        // 8-bit and control bytes
        assert_eq!(decode("caf\u{e9}".as_bytes()), None);
        assert_eq!(decode(b"a\tb"), None);
        // a trailing extra base64 char
        assert_eq!(decode(b"&AOkA-"), None);
    }

    #[test]
    fn random_round_trips() {
        let mut x: u64 = 42;
        let mut next = move || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) as u32
        };
        for _ in 0..2000 {
            let len = next() % 12;
            let s: String = (0..len)
                .filter_map(|_| match next() % 4 {
                    0 => char::from_u32(0x20 + next() % 0x5f),
                    1 => char::from_u32(0x80 + next() % 0x780),
                    2 => char::from_u32(0x800 + next() % 0xf000),
                    _ => char::from_u32(0x10000 + next() % 0x100000),
                })
                .collect();
            let e = encode(&s);
            assert_eq!(decode(e.as_bytes()).as_deref(), Some(s.as_str()), "{e}");
            // any byte string: decode never panics, and what it accepts re-encodes identically
            const ALPHA: &[u8] = b"&-AZaz09+,/ ~\x80";
            let raw: Vec<u8> = (0..next() % 16)
                .map(|_| ALPHA[next() as usize % ALPHA.len()])
                .collect();
            if let Some(d) = decode(&raw) {
                assert_eq!(encode(&d).as_bytes(), &raw[..]);
            }
        }
    }
}
