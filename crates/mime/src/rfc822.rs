//! A port of the parts of Dovecot's `rfc822-parser.c` that ENVELOPE and
//! BODYSTRUCTURE depend on (atoms, quoted strings, comments, MIME tokens,
//! parameters), so that broken input degrades exactly the same way.

pub(crate) struct Parser<'a> {
    pub data: &'a [u8],
    pub pos: usize,
    /// When `Some`, the content of the last comment skipped is stored here.
    pub last_comment: Option<Vec<u8>>,
}

pub(crate) fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b) || b >= 0x80
}

fn is_tspecial(b: u8) -> bool {
    b"()<>@,;:\\\"/[]?=".contains(&b)
}

impl<'a> Parser<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Parser {
            data,
            pos: 0,
            last_comment: None,
        }
    }
    pub fn peek(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }
    pub fn at_end(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// Skip a comment starting at `(`. -1 if unterminated.
    fn skip_comment(&mut self) -> i32 {
        let mut level = 1;
        self.pos += 1;
        let start = self.pos;
        let mut text = Vec::new();
        while self.pos < self.data.len() {
            let b = self.data[self.pos];
            match b {
                b'(' => level += 1,
                b')' => {
                    level -= 1;
                    if level == 0 {
                        if let Some(c) = self.last_comment.as_mut() {
                            c.clear();
                            c.extend_from_slice(&text);
                        }
                        let _ = start;
                        self.pos += 1;
                        return if self.at_end() { 0 } else { 1 };
                    }
                }
                b'\n' | b'\r' => {
                    self.pos += 1;
                    continue;
                }
                b'\\' => {
                    self.pos += 1;
                    if self.pos >= self.data.len() {
                        return -1;
                    }
                    text.push(self.data[self.pos]);
                    self.pos += 1;
                    continue;
                }
                _ => {}
            }
            text.push(b);
            self.pos += 1;
        }
        -1
    }

    /// Skip whitespace and comments. 0 = end of data, 1 = more data, -1 = error.
    pub fn skip_lwsp(&mut self) -> i32 {
        while self.pos < self.data.len() {
            match self.data[self.pos] {
                b' ' | b'\t' | b'\r' | b'\n' => self.pos += 1,
                b'(' => {
                    if self.skip_comment() < 0 {
                        return -1;
                    }
                }
                _ => return 1,
            }
        }
        0
    }

    pub fn parse_atom(&mut self, out: &mut Vec<u8>) -> i32 {
        match self.peek() {
            Some(b) if is_atext(b) => {}
            _ => return -1,
        }
        while let Some(b) = self.peek() {
            if !is_atext(b) {
                break;
            }
            out.push(b);
            self.pos += 1;
        }
        self.skip_lwsp()
    }

    /// atext or '.', used for obs-phrase.
    pub fn parse_atom_or_dot(&mut self, out: &mut Vec<u8>) -> i32 {
        while let Some(b) = self.peek() {
            if !is_atext(b) && b != b'.' {
                break;
            }
            out.push(b);
            self.pos += 1;
        }
        self.skip_lwsp()
    }

    pub fn parse_dot_atom(&mut self, out: &mut Vec<u8>) -> i32 {
        match self.peek() {
            Some(b) if is_atext(b) => {}
            _ => return -1,
        }
        loop {
            while let Some(b) = self.peek() {
                if !is_atext(b) {
                    break;
                }
                out.push(b);
                self.pos += 1;
            }
            let ret = self.skip_lwsp();
            if ret <= 0 || self.peek() != Some(b'.') {
                return ret;
            }
            self.pos += 1;
            out.push(b'.');
            let ret = self.skip_lwsp();
            if ret <= 0 {
                return ret;
            }
            match self.peek() {
                Some(b) if is_atext(b) => {}
                _ => return -1,
            }
        }
    }

    /// Quoted string starting at `"`; content unescaped, folding removed.
    pub fn parse_quoted_string(&mut self, out: &mut Vec<u8>) -> i32 {
        self.pos += 1;
        while self.pos < self.data.len() {
            let b = self.data[self.pos];
            match b {
                b'"' => {
                    self.pos += 1;
                    return self.skip_lwsp();
                }
                b'\r' => {}
                b'\n' => {
                    // folding: drop the line break
                }
                b'\\' => {
                    self.pos += 1;
                    if self.pos >= self.data.len() {
                        return -1;
                    }
                    out.push(self.data[self.pos]);
                }
                _ => out.push(b),
            }
            self.pos += 1;
        }
        -1
    }

    pub fn parse_phrase(&mut self, out: &mut Vec<u8>) -> i32 {
        if self.at_end() {
            return 0;
        }
        if self.peek() == Some(b'.') {
            return -1;
        }
        loop {
            let ret = if self.peek() == Some(b'"') {
                self.parse_quoted_string(out)
            } else {
                self.parse_atom_or_dot(out)
            };
            if ret <= 0 {
                return ret;
            }
            match self.peek() {
                Some(b) if is_atext(b) || b == b'"' || b == b'.' => out.push(b' '),
                _ => break,
            }
        }
        self.skip_lwsp()
    }

    pub fn parse_mime_token(&mut self, out: &mut Vec<u8>) -> i32 {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if b <= 0x20 || b == 0x7f || is_tspecial(b) {
                break;
            }
            out.push(b);
            self.pos += 1;
        }
        if self.pos == start {
            return -1;
        }
        self.skip_lwsp()
    }

    /// domain = dot-atom / domain-literal
    pub fn parse_domain(&mut self, out: &mut Vec<u8>) -> i32 {
        // at '@'
        self.pos += 1;
        let ret = self.skip_lwsp();
        if ret <= 0 {
            return -1;
        }
        if self.peek() == Some(b'[') {
            return self.parse_domain_literal(out);
        }
        self.parse_dot_atom(out)
    }

    fn parse_domain_literal(&mut self, out: &mut Vec<u8>) -> i32 {
        let start = self.pos;
        while self.pos < self.data.len() {
            let b = self.data[self.pos];
            self.pos += 1;
            match b {
                b']' => {
                    out.extend(
                        self.data[start..self.pos]
                            .iter()
                            .filter(|&&c| c != b'\r' && c != b'\n'),
                    );
                    return self.skip_lwsp();
                }
                b'\\' if self.pos < self.data.len() => {
                    self.pos += 1;
                }
                _ => {}
            }
        }
        -1
    }

    /// One `; key=value` parameter (`rfc822_parse_content_param`).
    /// 0 = no more, 1 = got one, -1 = broken (the caller skips one byte).
    fn parse_content_param(&mut self) -> (i32, Vec<u8>, Vec<u8>) {
        let mut key = Vec::new();
        let mut value = Vec::new();
        if self.at_end() {
            return (0, key, value);
        }
        if self.peek() != Some(b';') {
            return (-1, key, value);
        }
        self.pos += 1;
        if self.skip_lwsp() <= 0 {
            return (-1, key, value);
        }
        if self.parse_mime_token(&mut key) <= 0 || self.peek() != Some(b'=') {
            return (-1, key, value);
        }
        self.pos += 1;
        let mut ret = self.skip_lwsp();
        if ret <= 0 {
            // no value
        } else if self.peek() == Some(b'"') {
            ret = self.parse_quoted_string(&mut value);
        } else if self.peek() == Some(b'=') {
            // Dovecot's workaround for `name==?utf-8?b?...?=`
            while let Some(b) = self.peek() {
                if matches!(b, b';' | b' ' | b'\t' | b'\r' | b'\n') {
                    break;
                }
                value.push(b);
                self.pos += 1;
            }
        } else {
            ret = self.parse_mime_token(&mut value);
        }
        (if ret < 0 { -1 } else { 1 }, key, value)
    }

    /// `rfc2231_parse`: all parameters; RFC 2231 continuations (`name*0`,
    /// `name*1*`...) are merged under `name` / `name*`, values stay encoded.
    pub fn parse_params(&mut self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut plain: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        // (base key, index, extended, value)
        let mut cont: Vec<(Vec<u8>, u32, bool, Vec<u8>)> = Vec::new();
        loop {
            let (ret, key, value) = self.parse_content_param();
            if ret == 0 {
                break;
            }
            if ret < 0 {
                // "try to continue anyway": skip one byte
                if self.at_end() {
                    break;
                }
                self.pos += 1;
                continue;
            }
            // continuation?
            if let Some(star) = key.iter().position(|&b| b == b'*') {
                let rest = &key[star + 1..];
                let (digits, ext) = match rest.split_last() {
                    Some((&b'*', d)) => (d, true),
                    _ => (rest, false),
                };
                if digits.is_empty() {
                    let _ = ext;
                    cont.push((key[..star].to_vec(), 0, true, value));
                    continue;
                }
                if digits.iter().all(|b| b.is_ascii_digit()) {
                    let idx: u32 = std::str::from_utf8(digits)
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(u32::MAX);
                    cont.push((key[..star].to_vec(), idx, ext, value));
                    continue;
                }
            }
            plain.push((key, value));
        }
        if !cont.is_empty() {
            // group by base key (case-insensitive), in order of first appearance
            let mut keys: Vec<Vec<u8>> = Vec::new();
            for (k, _, _, _) in &cont {
                if !keys.iter().any(|x| x.eq_ignore_ascii_case(k)) {
                    keys.push(k.clone());
                }
            }
            // Dovecot sorts the continued parameters by name
            keys.sort_by_key(|k| k.to_ascii_lowercase());
            for k in keys {
                let mut parts: Vec<&(Vec<u8>, u32, bool, Vec<u8>)> = cont
                    .iter()
                    .filter(|c| c.0.eq_ignore_ascii_case(&k))
                    .collect();
                parts.sort_by_key(|c| c.1);
                let mut value = Vec::new();
                let mut extended = false;
                for (expect, p) in parts.into_iter().enumerate() {
                    if p.1 as usize != expect {
                        break;
                    }
                    if p.1 == 0 {
                        extended = p.2;
                    }
                    value.extend_from_slice(&p.3);
                }
                let mut key = k.clone();
                if extended {
                    key.push(b'*');
                }
                plain.push((key, value));
            }
        }
        plain
    }
}
