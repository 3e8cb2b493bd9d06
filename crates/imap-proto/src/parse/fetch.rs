//! FETCH: attributes, macros, sections, partials and modifiers
//! (RFC 9051, RFC 3516 BINARY, RFC 7162 CONDSTORE/QRESYNC, RFC 8970 PREVIEW,
//! RFC 8474 OBJECTID).

use super::cursor::{parse_u64, printable, Parser, Peek};
use crate::types::{Command, FetchAttr, FetchModifier, ParseError, Section, SectionText};

/// `FETCH SP sequence-set SP ("ALL" / "FULL" / "FAST" / fetch-att /
/// "(" fetch-att *(SP fetch-att) ")") [SP fetch-modifiers]`.
pub(crate) fn fetch(p: &mut Parser, uid: bool) -> Result<Command, ParseError> {
    if !p.eat(b' ') {
        return Err(p.err("Missing sequence set"));
    }
    let set = p.sequence_set()?;
    if !p.eat(b' ') {
        return Err(p.err("Missing FETCH attributes"));
    }
    let attrs = if p.peek() == Peek::Byte(b'(') {
        p.paren_list("FETCH attribute list", false, fetch_att)?
    } else {
        let save = att_name_peek(p);
        match save.as_deref() {
            Some("ALL") => {
                p.take_while(is_att_char);
                vec![
                    FetchAttr::Flags,
                    FetchAttr::InternalDate,
                    FetchAttr::Rfc822Size,
                    FetchAttr::Envelope,
                ]
            }
            Some("FAST") => {
                p.take_while(is_att_char);
                vec![
                    FetchAttr::Flags,
                    FetchAttr::InternalDate,
                    FetchAttr::Rfc822Size,
                ]
            }
            Some("FULL") => {
                p.take_while(is_att_char);
                vec![
                    FetchAttr::Flags,
                    FetchAttr::InternalDate,
                    FetchAttr::Rfc822Size,
                    FetchAttr::Envelope,
                    FetchAttr::Body,
                ]
            }
            _ => vec![fetch_att(p)?],
        }
    };
    let mut modifiers = Vec::new();
    if p.eat(b' ') {
        modifiers = p.paren_list("FETCH modifiers", false, |p| {
            let name = p.keyword("FETCH modifier")?;
            match name.as_str() {
                "CHANGEDSINCE" => {
                    p.sp_after("CHANGEDSINCE")?;
                    Ok(FetchModifier::ChangedSince(p.number64("CHANGEDSINCE")?))
                }
                "VANISHED" => {
                    if !uid {
                        return Err(p.err("VANISHED is only allowed with UID FETCH"));
                    }
                    Ok(FetchModifier::Vanished)
                }
                _ => Err(p.err(format!("Unknown FETCH modifier {name}"))),
            }
        })?;
        if modifiers.contains(&FetchModifier::Vanished)
            && !modifiers
                .iter()
                .any(|m| matches!(m, FetchModifier::ChangedSince(_)))
        {
            return Err(p.err("VANISHED requires CHANGEDSINCE"));
        }
    }
    Ok(Command::Fetch {
        uid,
        set,
        attrs,
        modifiers,
    })
}

fn is_att_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'.'
}

/// Peeks the attribute name upper-cased, without consuming it, only when the
/// whole token is a name (followed by SP, `)` or the end).
fn att_name_peek(p: &mut Parser) -> Option<String> {
    // Cheap approach: the macros are only recognised as whole tokens; we read
    // them through `take_while` after the check, so peek a copy here.
    p.peek_token(is_att_char)
        .map(|t| String::from_utf8_lossy(&t).to_ascii_uppercase())
}

/// One fetch-att.
pub(crate) fn fetch_att(p: &mut Parser) -> Result<FetchAttr, ParseError> {
    let raw = p.take_while(is_att_char);
    if raw.is_empty() {
        return Err(if p.at_end() {
            p.err("Missing FETCH attribute")
        } else {
            p.err("Invalid FETCH attribute")
        });
    }
    let name = String::from_utf8_lossy(&raw).to_ascii_uppercase();
    let attr = match name.as_str() {
        "ENVELOPE" => FetchAttr::Envelope,
        "FLAGS" => FetchAttr::Flags,
        "INTERNALDATE" => FetchAttr::InternalDate,
        "RFC822" => FetchAttr::Rfc822,
        "RFC822.HEADER" => FetchAttr::Rfc822Header,
        "RFC822.TEXT" => FetchAttr::Rfc822Text,
        "RFC822.SIZE" => FetchAttr::Rfc822Size,
        "BODYSTRUCTURE" => FetchAttr::BodyStructure,
        "UID" => FetchAttr::Uid,
        "MODSEQ" => FetchAttr::ModSeq,
        "EMAILID" => FetchAttr::EmailId,
        "THREADID" => FetchAttr::ThreadId,
        "BODY" | "BODY.PEEK" => {
            let peek = name == "BODY.PEEK";
            if p.peek() != Peek::Byte(b'[') {
                if peek {
                    return Err(p.err("Expected [ after BODY.PEEK"));
                }
                return Ok(FetchAttr::Body);
            }
            let section = section(p)?;
            let partial = partial(p)?;
            FetchAttr::BodySection {
                section,
                partial,
                peek,
            }
        }
        "BINARY" | "BINARY.PEEK" | "BINARY.SIZE" => {
            let part = binary_section(p, &name)?;
            if name == "BINARY.SIZE" {
                FetchAttr::BinarySize { part }
            } else {
                FetchAttr::Binary {
                    part,
                    partial: partial(p)?,
                    peek: name == "BINARY.PEEK",
                }
            }
        }
        "PREVIEW" => {
            let mut lazy = false;
            if p.peek_bytes(b" (LAZY") {
                p.bump();
                let mods = p.paren_list("PREVIEW modifiers", false, |p| {
                    let m = p.keyword("PREVIEW modifier")?;
                    if m != "LAZY" {
                        return Err(p.err(format!("Unknown PREVIEW modifier {m}")));
                    }
                    Ok(())
                })?;
                lazy = !mods.is_empty();
            }
            FetchAttr::Preview { lazy }
        }
        "ALL" | "FAST" | "FULL" => {
            return Err(p.err(format!("{name} is a macro and cannot be in a list")))
        }
        _ => return Err(p.err(format!("Unknown FETCH attribute {}", printable(&raw, 40)))),
    };
    Ok(attr)
}

/// `section = "[" [section-spec] "]"`.
fn section(p: &mut Parser) -> Result<Section, ParseError> {
    p.expect(b'[', "[")?;
    let raw = p.take_while(|b| b.is_ascii_alphanumeric() || b == b'.');
    let mut part = Vec::new();
    let mut comps = raw.split(|&b| b == b'.').peekable();
    let mut text_comps: Vec<&[u8]> = Vec::new();
    if !raw.is_empty() {
        while let Some(c) = comps.peek() {
            if !c.is_empty() && c.iter().all(u8::is_ascii_digit) {
                let n = parse_u64(c)
                    .and_then(|n| u32::try_from(n).ok())
                    .filter(|&n| n != 0)
                    .ok_or_else(|| p.err("Invalid section part number"))?;
                part.push(n);
                comps.next();
            } else {
                break;
            }
        }
        text_comps.extend(comps);
    }
    let text_name = String::from_utf8_lossy(&text_comps.join(&b'.')).to_ascii_uppercase();
    let text = match text_name.as_str() {
        "" if text_comps.is_empty() => None,
        "HEADER" => Some(SectionText::Header),
        "TEXT" => Some(SectionText::Text),
        "MIME" => {
            if part.is_empty() {
                return Err(p.err("MIME section requires a part number"));
            }
            Some(SectionText::Mime)
        }
        "HEADER.FIELDS" | "HEADER.FIELDS.NOT" => {
            p.sp_after(&text_name)?;
            let names = p.paren_list("header field list", false, |p| {
                let n = p.astring("header field name")?;
                if n.is_empty() {
                    return Err(p.err("Empty header field name"));
                }
                String::from_utf8(n).map_err(|_| p.err("Invalid header field name"))
            })?;
            Some(if text_name == "HEADER.FIELDS" {
                SectionText::HeaderFields(names)
            } else {
                SectionText::HeaderFieldsNot(names)
            })
        }
        _ => {
            return Err(p.err(format!(
                "Invalid section specification {}",
                printable(&raw, 40)
            )))
        }
    };
    if !p.eat(b']') {
        return Err(p.err("Expected ] to end section"));
    }
    Ok(Section { part, text })
}

/// `section-binary = "[" [section-part] "]"`.
fn binary_section(p: &mut Parser, name: &str) -> Result<Vec<u32>, ParseError> {
    if !p.eat(b'[') {
        return Err(p.err(format!("Expected [ after {name}")));
    }
    let raw = p.take_while(|b| b.is_ascii_digit() || b == b'.');
    let mut part = Vec::new();
    if !raw.is_empty() {
        for c in raw.split(|&b| b == b'.') {
            let n = parse_u64(c)
                .filter(|_| !c.is_empty())
                .and_then(|n| u32::try_from(n).ok())
                .filter(|&n| n != 0)
                .ok_or_else(|| p.err("Invalid section part number"))?;
            part.push(n);
        }
    }
    if !p.eat(b']') {
        return Err(p.err(format!("Expected ] to end {name} section")));
    }
    Ok(part)
}

/// `partial = "<" number "." nz-number ">"`.
fn partial(p: &mut Parser) -> Result<Option<(u32, u32)>, ParseError> {
    if !p.eat(b'<') {
        return Ok(None);
    }
    let offset = p.number("partial offset")?;
    if !p.eat(b'.') {
        return Err(p.err("Expected . in partial range"));
    }
    let len = p.nz_number("partial length")?;
    if !p.eat(b'>') {
        return Err(p.err("Expected > to end partial range"));
    }
    Ok(Some((offset, len)))
}
