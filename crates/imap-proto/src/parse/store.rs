//! STORE (with CONDSTORE UNCHANGEDSINCE), COPY, MOVE.

use super::cursor::{Parser, Peek};
use crate::types::{Command, ParseError, StoreMode};

/// `STORE SP sequence-set [SP "(" "UNCHANGEDSINCE" SP n ")"] SP store-att-flags`.
pub(crate) fn store(p: &mut Parser, uid: bool) -> Result<Command, ParseError> {
    if !p.eat(b' ') {
        return Err(p.err("Missing sequence set"));
    }
    let set = p.sequence_set()?;
    if !p.eat(b' ') {
        return Err(p.err("Missing STORE data item"));
    }
    let mut unchanged_since = None;
    if p.peek() == Peek::Byte(b'(') {
        let mods = p.paren_list("STORE modifiers", false, |p| {
            let name = p.keyword("STORE modifier")?;
            if name != "UNCHANGEDSINCE" {
                return Err(p.err(format!("Unknown STORE modifier {name}")));
            }
            p.sp_after("UNCHANGEDSINCE")?;
            p.number64("UNCHANGEDSINCE")
        })?;
        unchanged_since = mods.last().copied();
        if !p.eat(b' ') {
            return Err(p.err("Missing STORE data item"));
        }
    }
    let mode = if p.eat(b'+') {
        StoreMode::Add
    } else if p.eat(b'-') {
        StoreMode::Remove
    } else {
        StoreMode::Replace
    };
    let item = p.keyword("STORE data item")?;
    let silent = match item.as_str() {
        "FLAGS" => false,
        "FLAGS.SILENT" => true,
        _ => return Err(p.err(format!("Unknown STORE data item {item}"))),
    };
    if !p.eat(b' ') {
        return Err(p.err("Missing flags"));
    }
    let flags = if p.peek() == Peek::Byte(b'(') {
        p.flag_list()?
    } else {
        let mut flags = vec![p.flag()?];
        while p.eat(b' ') {
            flags.push(p.flag()?);
        }
        flags
    };
    Ok(Command::Store {
        uid,
        set,
        mode,
        silent,
        flags,
        unchanged_since,
    })
}

/// `COPY/MOVE SP sequence-set SP mailbox`.
pub(crate) fn copy_move(p: &mut Parser, uid: bool, is_move: bool) -> Result<Command, ParseError> {
    if !p.eat(b' ') {
        return Err(p.err("Missing sequence set"));
    }
    let set = p.sequence_set()?;
    if !p.eat(b' ') {
        return Err(p.err("Missing mailbox name"));
    }
    let mailbox = p.mailbox()?;
    Ok(if is_move {
        Command::Move { uid, set, mailbox }
    } else {
        Command::Copy { uid, set, mailbox }
    })
}
