//! ENVELOPE (RFC 3501 7.4.2) built the way Dovecot 2.3 does it
//! (`message-address.c`, `imap-envelope.c`): addresses parsed with
//! "fill missing" atoms, strings "for humans".

use crate::header::Field;
use crate::quote;
use crate::rfc822::{is_atext, Parser};

#[derive(Debug, Default, Clone)]
struct Addr {
    name: Option<Vec<u8>>,
    route: Option<Vec<u8>>,
    mailbox: Option<Vec<u8>>,
    domain: Option<Vec<u8>>,
    invalid_syntax: bool,
    /// group start/end marker (no fill-in of missing atoms)
    group: bool,
}

struct AddrParser<'a> {
    p: Parser<'a>,
    cur: Addr,
    out: Vec<Addr>,
}

impl<'a> AddrParser<'a> {
    fn add(&mut self) {
        let mut a = std::mem::take(&mut self.cur);
        if !a.group {
            if a.mailbox.as_ref().is_none_or(|m| m.is_empty()) {
                a.mailbox = Some(b"MISSING_MAILBOX".to_vec());
            }
            if a.domain.as_ref().is_none_or(|d| d.is_empty()) {
                a.domain = Some(if a.invalid_syntax {
                    b"SYNTAX_ERROR".to_vec()
                } else {
                    b"MISSING_DOMAIN".to_vec()
                });
            }
        }
        self.out.push(a);
    }

    fn parse_local_part(&mut self) -> i32 {
        let mut s = Vec::new();
        let ret = if self.p.peek() == Some(b'"') {
            self.p.parse_quoted_string(&mut s)
        } else {
            self.p.parse_dot_atom(&mut s)
        };
        if ret < 0 {
            return -1;
        }
        self.cur.mailbox = Some(s);
        ret
    }

    fn parse_domain(&mut self) -> i32 {
        let mut s = Vec::new();
        let ret = self.p.parse_domain(&mut s);
        if ret < 0 {
            return -1;
        }
        self.cur.domain = Some(s);
        ret
    }

    fn parse_domain_list(&mut self) -> i32 {
        // "@" domain *("," [CFWS] "@" domain)
        let mut route = Vec::new();
        loop {
            if self.p.peek() != Some(b'@') {
                break;
            }
            if !route.is_empty() {
                route.push(b',');
            }
            route.push(b'@');
            let mut s = Vec::new();
            let ret = self.p.parse_domain(&mut s);
            if ret <= 0 {
                self.cur.route = Some(route);
                return ret;
            }
            route.extend_from_slice(&s);
            if self.p.peek() != Some(b',') {
                break;
            }
            self.p.pos += 1;
            if self.p.skip_lwsp() <= 0 {
                self.cur.route = Some(route);
                return -1;
            }
        }
        self.cur.route = Some(route);
        1
    }

    fn parse_angle_addr(&mut self) -> i32 {
        self.p.pos += 1; // '<'
        if self.p.skip_lwsp() <= 0 {
            return -1;
        }
        if self.p.peek() == Some(b'@') {
            if self.parse_domain_list() > 0 && self.p.peek() == Some(b':') {
                self.p.pos += 1;
            } else {
                self.cur.route = Some(b"INVALID_ROUTE".to_vec());
                if self.p.at_end() {
                    return -1;
                }
            }
            if self.p.skip_lwsp() <= 0 {
                return -1;
            }
        }
        if self.p.peek() != Some(b'>') {
            if self.parse_local_part() <= 0 {
                return -1;
            }
            if self.p.peek() == Some(b'@') && self.parse_domain() <= 0 {
                return -1;
            }
        }
        if self.p.peek() != Some(b'>') {
            return -1;
        }
        self.p.pos += 1;
        self.p.skip_lwsp()
    }

    fn parse_name_addr(&mut self) -> i32 {
        let mut name = Vec::new();
        if self.p.parse_phrase(&mut name) <= 0 || self.p.peek() != Some(b'<') {
            return -1;
        }
        self.cur.name = if name.is_empty() { None } else { Some(name) };
        self.parse_angle_addr()
    }

    fn parse_addr_spec(&mut self) -> i32 {
        self.p.last_comment = Some(Vec::new());
        let quoted = self.p.peek() == Some(b'"');
        let mut ret = self.parse_local_part();
        if ret < 0 {
            self.cur.invalid_syntax = true;
        }
        let mut ret2 = -2;
        if ret != 0 && self.p.peek() == Some(b'@') {
            ret2 = self.parse_domain();
            if ret2 <= 0 {
                ret = ret2;
            }
        }
        let comment = self.p.last_comment.take().unwrap_or_default();
        if !comment.is_empty() {
            self.cur.name = Some(comment);
        } else if ret2 == -2 {
            let mut s = self.cur.mailbox.clone().unwrap_or_default();
            s.push(b' ');
            let orig = s.len();
            let _ = self.p.parse_phrase(&mut s);
            if s.len() != orig {
                self.cur.mailbox = None;
                self.cur.name = Some(s);
            } else if !quoted {
                self.cur.domain = Some(Vec::new());
            }
        }
        ret
    }

    fn parse_mailbox(&mut self) -> i32 {
        let start = self.p.pos;
        let mut ret = self.parse_name_addr();
        if ret < 0 {
            self.p.pos = start;
            ret = self.parse_addr_spec();
            if ret < 0 {
                self.cur.invalid_syntax = true;
            }
        }
        self.add();
        ret
    }

    fn parse_group(&mut self) -> i32 {
        let mut name = Vec::new();
        if self.p.parse_phrase(&mut name) <= 0 || self.p.peek() != Some(b':') {
            return -1;
        }
        self.p.pos += 1;
        let mut ret = self.p.skip_lwsp();
        self.cur = Addr {
            mailbox: Some(name),
            group: true,
            ..Addr::default()
        };
        self.add();
        if ret > 0 && self.p.peek() != Some(b';') {
            loop {
                if self.parse_mailbox() <= 0 {
                    ret = -1;
                    break;
                }
                if self.p.at_end() {
                    ret = 0;
                    break;
                }
                if self.p.peek() != Some(b',') {
                    break;
                }
                self.p.pos += 1;
                if self.p.skip_lwsp() <= 0 {
                    ret = -1;
                    break;
                }
            }
        }
        if ret >= 0 {
            if self.p.peek() != Some(b';') {
                ret = -1;
            } else {
                self.p.pos += 1;
                ret = self.p.skip_lwsp();
            }
        }
        self.cur = Addr {
            group: true,
            ..Addr::default()
        };
        self.add();
        if ret == 0 {
            0
        } else {
            1
        }
    }

    fn parse_address(&mut self) -> i32 {
        let start = self.p.pos;
        let ret = self.parse_group();
        if ret < 0 {
            self.p.pos = start;
            self.cur = Addr::default();
            return self.parse_mailbox();
        }
        ret
    }

    fn parse_list(&mut self) {
        if self.p.skip_lwsp() <= 0 {
            return;
        }
        loop {
            let ret = self.parse_address();
            if ret <= 0 {
                break;
            }
            if self.p.peek() != Some(b',') {
                break;
            }
            self.p.pos += 1;
            if self.p.skip_lwsp() <= 0 {
                break;
            }
        }
    }
}

fn parse_addresses(value: &[u8]) -> Vec<Addr> {
    let mut ap = AddrParser {
        p: Parser::new(value),
        cur: Addr::default(),
        out: Vec::new(),
    };
    ap.parse_list();
    ap.out
}

fn write_addresses(out: &mut Vec<u8>, addrs: &Option<Vec<Addr>>) {
    let addrs = match addrs {
        Some(a) if !a.is_empty() => a,
        _ => {
            out.extend_from_slice(b"NIL");
            return;
        }
    };
    out.push(b'(');
    for a in addrs {
        out.push(b'(');
        match &a.name {
            None => out.extend_from_slice(b"NIL"),
            Some(n) => quote::string_for_humans(out, n),
        }
        out.push(b' ');
        quote::nstring_nolf(out, a.route.as_deref());
        out.push(b' ');
        quote::nstring_nolf(out, a.mailbox.as_deref());
        out.push(b' ');
        quote::nstring_nolf(out, a.domain.as_deref());
        out.push(b')');
    }
    out.push(b')');
}

/// Dovecot's `message_header_strdup`: NUL becomes 0x80.
fn hdr_str(v: &[u8]) -> Vec<u8> {
    v.iter().map(|&b| if b == 0 { 0x80 } else { b }).collect()
}

/// Build the ENVELOPE wire bytes from a header block's fields.
pub(crate) fn build(fields: &[Field<'_>]) -> Vec<u8> {
    let mut date = None;
    let mut subject = None;
    let mut in_reply_to = None;
    let mut message_id = None;
    let mut addrs: [Option<Vec<Addr>>; 6] = Default::default();
    for f in fields {
        if !f.has_colon {
            continue;
        }
        let name = f.name.to_ascii_lowercase();
        let str_slot = match name.as_slice() {
            b"date" => Some(&mut date),
            b"subject" => Some(&mut subject),
            b"in-reply-to" => Some(&mut in_reply_to),
            b"message-id" => Some(&mut message_id),
            _ => None,
        };
        if let Some(slot) = str_slot {
            // a repeated field replaces the earlier value (Dovecot)
            *slot = Some(hdr_str(f.value));
            continue;
        }
        let idx = match name.as_slice() {
            b"from" => 0,
            b"sender" => 1,
            b"reply-to" => 2,
            b"to" => 3,
            b"cc" => 4,
            b"bcc" => 5,
            _ => continue,
        };
        let parsed = parse_addresses(f.value);
        match &mut addrs[idx] {
            Some(list) => list.extend(parsed),
            slot @ None => *slot = Some(parsed),
        }
    }
    let _ = is_atext;
    let mut out = Vec::with_capacity(256);
    out.push(b'(');
    quote::nstring_nolf(&mut out, date.as_deref());
    out.push(b' ');
    match &subject {
        None => out.extend_from_slice(b"NIL"),
        Some(s) => quote::string_for_humans(&mut out, s),
    }
    let nonempty = |a: &Option<Vec<Addr>>| a.as_ref().is_some_and(|v| !v.is_empty());
    out.push(b' ');
    write_addresses(&mut out, &addrs[0]);
    out.push(b' ');
    if nonempty(&addrs[1]) {
        write_addresses(&mut out, &addrs[1]);
    } else {
        write_addresses(&mut out, &addrs[0]);
    }
    out.push(b' ');
    if nonempty(&addrs[2]) {
        write_addresses(&mut out, &addrs[2]);
    } else {
        write_addresses(&mut out, &addrs[0]);
    }
    for a in &addrs[3..6] {
        out.push(b' ');
        write_addresses(&mut out, a);
    }
    out.push(b' ');
    quote::nstring_nolf(&mut out, in_reply_to.as_deref());
    out.push(b' ');
    quote::nstring_nolf(&mut out, message_id.as_deref());
    out.push(b')');
    out
}
