//! APPEND, with MULTIAPPEND (RFC 3502) and literal8 (RFC 3516).

use super::cursor::{Parser, Peek};
use crate::types::{AppendMessage, Command, ParseError};

/// `APPEND mailbox 1*(SP [flag-list SP] [date-time SP] (literal / literal8))`.
pub(crate) fn append(p: &mut Parser) -> Result<Command, ParseError> {
    if !p.eat(b' ') {
        return Err(p.err("Missing mailbox name"));
    }
    let mailbox = p.mailbox()?;
    let mut messages = Vec::new();
    while p.eat(b' ') {
        let mut flags = Vec::new();
        let mut date = None;
        if p.peek() == Peek::Byte(b'(') {
            flags = p.flag_list()?;
            p.sp_after("APPEND flag list")?;
        }
        if p.peek() == Peek::Byte(b'"') {
            date = Some(p.date_time()?);
            p.sp_after("APPEND date-time")?;
        }
        match p.peek() {
            Peek::Literal => {}
            Peek::End => return Err(p.err("Missing message literal")),
            Peek::Byte(_) => return Err(p.err("Expected message literal")),
        }
        let (data, binary) = p.literal_data(true, true)?;
        messages.push(AppendMessage {
            flags,
            date,
            data,
            binary,
        });
    }
    if messages.is_empty() {
        let at_end = p.at_end();
        return Err(p.err(if at_end {
            "Missing message literal"
        } else {
            "Expected SP after mailbox name"
        }));
    }
    Ok(Command::Append { mailbox, messages })
}
