//! LIST (RFC 9051 / RFC 5258 LIST-EXTENDED, RFC 6154, RFC 5819) and LSUB.

use super::cursor::{Parser, Peek};
use super::mailbox::status_item;
use crate::types::{Command, ListCommand, ListReturnOpt, ListSelectOpt, MailboxName, ParseError};

/// `LIST [SP list-select-opts] SP mailbox SP mbox-or-pat [SP list-return-opts]`.
pub(crate) fn list(p: &mut Parser) -> Result<Command, ParseError> {
    if !p.eat(b' ') {
        let at_end = p.at_end();
        return Err(p.err(if at_end {
            "Missing mailbox name"
        } else {
            "Expected SP after LIST"
        }));
    }
    let mut select_opts = Vec::new();
    let mut extended = false;
    if p.peek() == Peek::Byte(b'(') {
        extended = true;
        select_opts = p.paren_list("LIST selection options", true, |p| {
            let name = p.keyword("LIST selection option")?;
            Ok(match name.as_str() {
                "SUBSCRIBED" => ListSelectOpt::Subscribed,
                "REMOTE" => ListSelectOpt::Remote,
                "RECURSIVEMATCH" => ListSelectOpt::RecursiveMatch,
                "SPECIAL-USE" => ListSelectOpt::SpecialUse,
                _ => return Err(p.err(format!("Unknown LIST selection option {name}"))),
            })
        })?;
        if select_opts.contains(&ListSelectOpt::RecursiveMatch)
            && !select_opts
                .iter()
                .any(|o| !matches!(o, ListSelectOpt::RecursiveMatch | ListSelectOpt::Remote))
        {
            return Err(p.err("RECURSIVEMATCH requires another selection option"));
        }
        p.sp_after("LIST selection options")?;
    }
    if p.at_end() {
        return Err(p.err("Missing mailbox name"));
    }
    let reference = MailboxName(p.astring("reference name")?);
    if !p.eat(b' ') {
        return Err(p.err("Missing mailbox pattern"));
    }
    let patterns = if p.peek() == Peek::Byte(b'(') {
        extended = true;
        p.paren_list("mailbox pattern list", false, |p| {
            Ok(MailboxName(p.list_mailbox("mailbox pattern")?))
        })?
    } else {
        vec![MailboxName(p.list_mailbox("mailbox pattern")?)]
    };
    let mut return_opts = Vec::new();
    if p.eat(b' ') {
        let kw = p.keyword("RETURN")?;
        if kw != "RETURN" {
            return Err(p.err(format!("Expected RETURN, got {kw}")));
        }
        p.sp_after("RETURN")?;
        return_opts = p.paren_list("LIST return options", true, |p| {
            let name = p.keyword("LIST return option")?;
            Ok(match name.as_str() {
                "SUBSCRIBED" => ListReturnOpt::Subscribed,
                "CHILDREN" => ListReturnOpt::Children,
                "SPECIAL-USE" => ListReturnOpt::SpecialUse,
                "STATUS" => {
                    p.sp_after("STATUS")?;
                    ListReturnOpt::Status(p.paren_list("status item list", false, status_item)?)
                }
                _ => return Err(p.err(format!("Unknown LIST return option {name}"))),
            })
        })?;
        extended = true;
    }
    Ok(Command::List(ListCommand {
        select_opts,
        extended,
        reference,
        patterns,
        return_opts,
    }))
}

/// `LSUB SP mailbox SP list-mailbox`.
pub(crate) fn lsub(p: &mut Parser) -> Result<Command, ParseError> {
    if !p.eat(b' ') {
        return Err(p.err("Missing mailbox name"));
    }
    let reference = MailboxName(p.astring("reference name")?);
    if !p.eat(b' ') {
        return Err(p.err("Missing mailbox pattern"));
    }
    let pattern = MailboxName(p.list_mailbox("mailbox pattern")?);
    Ok(Command::Lsub { reference, pattern })
}
