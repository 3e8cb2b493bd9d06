//! AUTHENTICATE, LOGIN, ENABLE, ID.

use super::cursor::{Parser, Peek};
use crate::types::{Command, ParseError};

/// `AUTHENTICATE SP auth-type [SP (base64 / "=")]` (SASL-IR, RFC 4959).
pub(crate) fn authenticate(p: &mut Parser) -> Result<Command, ParseError> {
    if !p.eat(b' ') {
        return Err(p.err("Missing SASL mechanism"));
    }
    let mechanism = p.atom("SASL mechanism")?;
    let initial_response = if p.eat(b' ') {
        let ir = p.take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
        if ir.is_empty() {
            return Err(p.err("Invalid SASL initial response"));
        }
        if ir != b"=" {
            let pad = ir.iter().rev().take_while(|&&b| b == b'=').count();
            let body = ir.get(..ir.len() - pad).unwrap_or(&[]);
            if pad > 2 || body.contains(&b'=') || !ir.len().is_multiple_of(4) {
                return Err(p.err("Invalid base64 in SASL initial response"));
            }
        }
        Some(ir)
    } else {
        None
    };
    Ok(Command::Authenticate {
        mechanism: mechanism.to_ascii_uppercase(),
        initial_response,
    })
}

/// `LOGIN SP userid SP password`.
pub(crate) fn login(p: &mut Parser) -> Result<Command, ParseError> {
    if !p.eat(b' ') {
        return Err(p.err("Missing user name"));
    }
    let username = p.astring("user name")?;
    if !p.eat(b' ') {
        return Err(p.err("Missing password"));
    }
    let password = p.astring("password")?;
    Ok(Command::Login { username, password })
}

/// `ENABLE 1*(SP capability)`.
pub(crate) fn enable(p: &mut Parser) -> Result<Command, ParseError> {
    let mut caps = Vec::new();
    while p.eat(b' ') {
        caps.push(p.atom("capability")?);
    }
    if caps.is_empty() {
        return Err(p.err("Missing capability to ENABLE"));
    }
    Ok(Command::Enable(caps))
}

/// `ID SP ("(" [string SP nstring *(SP string SP nstring)] ")" / NIL)`.
pub(crate) fn id(p: &mut Parser) -> Result<Command, ParseError> {
    p.sp_after("ID")?;
    if p.peek() != Peek::Byte(b'(') {
        let w = p.atom("ID parameter list")?;
        if w.eq_ignore_ascii_case("NIL") {
            return Ok(Command::Id(None));
        }
        return Err(p.err("Expected ( or NIL after ID"));
    }
    let pairs = p.paren_list("ID parameter list", true, |p| {
        let k = p.string("ID field name")?;
        p.sp_after("ID field name")?;
        let v = p.nstring("ID field value")?;
        Ok((k, v))
    })?;
    if pairs.len() > 30 {
        return Err(p.err("Too many ID fields (at most 30)"));
    }
    Ok(Command::Id(Some(pairs)))
}
