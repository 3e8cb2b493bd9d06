//! Per-command parsers (one submodule per command family).
//!
//! [`parse_request`] walks the parts of a framed request with a [`cursor::Parser`]
//! (which knows about text and literal parts), reads the tag and the command name,
//! and hands over to the command family's parser. Every error carries the tag once
//! it has been read, and every error text says what was expected where.

mod append;
mod common;
mod cursor;
mod fetch;
mod list;
mod mailbox;
mod notify;
mod search;
mod session;
mod sort;
mod store;
#[cfg(test)]
mod tests;

use crate::framer::Part;
use crate::types::{Command, ParseError, Request};
use cursor::Parser;

/// Hard cap on nesting regardless of the configured `max_depth`, so a huge
/// configured value can never turn into a stack overflow.
const HARD_MAX_DEPTH: usize = 256;

/// `ATOM-CHAR`: any CHAR except atom-specials. Bytes >= 0x80 are accepted too
/// (UTF-8 in atoms, as Dovecot does); controls are not.
pub(crate) fn is_atom_char(b: u8) -> bool {
    b > 0x20 && b != 0x7f && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
}

/// `ASTRING-CHAR`: ATOM-CHAR or `]`.
pub(crate) fn is_astring_char(b: u8) -> bool {
    is_atom_char(b) || b == b']'
}

/// `list-char`: ATOM-CHAR, list-wildcards or `]`.
pub(crate) fn is_list_char(b: u8) -> bool {
    is_astring_char(b) || b == b'%' || b == b'*'
}

/// `tag`: 1*<any ASTRING-CHAR except "+">.
pub(crate) fn is_tag_char(b: u8) -> bool {
    b.is_ascii() && is_astring_char(b) && b != b'+'
}

/// Parses a complete request. `max_depth` bounds parenthesis nesting.
pub(crate) fn parse_request(parts: Vec<Part>, max_depth: usize) -> Result<Request, ParseError> {
    let mut p = Parser::new(parts, max_depth.min(HARD_MAX_DEPTH));
    let tag = p.read_tag()?;
    p.sp_after("tag")?;
    let name = p.command_word()?;
    let command = dispatch(&mut p, &name)?;
    p.end()?;
    Ok(Request { tag, command })
}

fn dispatch(p: &mut Parser, name: &str) -> Result<Command, ParseError> {
    let cmd = match name {
        "CAPABILITY" => Command::Capability,
        "NOOP" => Command::Noop,
        "LOGOUT" => Command::Logout,
        "STARTTLS" => Command::StartTls,
        "NAMESPACE" => Command::Namespace,
        "IDLE" => Command::Idle,
        "CHECK" => Command::Check,
        "CLOSE" => Command::Close,
        "UNSELECT" => Command::Unselect,
        "EXPUNGE" => Command::Expunge,
        "AUTHENTICATE" => session::authenticate(p)?,
        "LOGIN" => session::login(p)?,
        "ENABLE" => session::enable(p)?,
        "ID" => session::id(p)?,
        "SELECT" | "EXAMINE" => mailbox::select(p, name == "SELECT")?,
        "CREATE" => mailbox::create(p)?,
        "DELETE" => Command::Delete(mailbox::single_mailbox(p, "DELETE")?),
        "SUBSCRIBE" => Command::Subscribe(mailbox::single_mailbox(p, "SUBSCRIBE")?),
        "UNSUBSCRIBE" => Command::Unsubscribe(mailbox::single_mailbox(p, "UNSUBSCRIBE")?),
        "RENAME" => mailbox::rename(p)?,
        "STATUS" => mailbox::status(p)?,
        "LIST" => list::list(p)?,
        "LSUB" => list::lsub(p)?,
        "APPEND" => append::append(p)?,
        "SEARCH" => search::search(p, false)?,
        "SORT" => sort::sort(p, false)?,
        "THREAD" => sort::thread(p, false)?,
        "FETCH" => fetch::fetch(p, false)?,
        "STORE" => store::store(p, false)?,
        "COPY" => store::copy_move(p, false, false)?,
        "MOVE" => store::copy_move(p, false, true)?,
        "UID" => uid(p)?,
        "NOTIFY" => notify::notify(p)?,
        _ => return Err(p.err(format!("Unknown command {name}"))),
    };
    Ok(cmd)
}

fn uid(p: &mut Parser) -> Result<Command, ParseError> {
    p.sp_after("UID")?;
    let name = p.command_word()?;
    match name.as_str() {
        "SEARCH" => search::search(p, true),
        "SORT" => sort::sort(p, true),
        "THREAD" => sort::thread(p, true),
        "FETCH" => fetch::fetch(p, true),
        "STORE" => store::store(p, true),
        "COPY" => store::copy_move(p, true, false),
        "MOVE" => store::copy_move(p, true, true),
        "EXPUNGE" => {
            p.sp_after("UID EXPUNGE")?;
            Ok(Command::UidExpunge(p.sequence_set()?))
        }
        _ => Err(p.err(format!("Unknown command UID {name}"))),
    }
}

#[cfg(test)]
pub(crate) fn parse_date_time_for_tests(s: &[u8]) -> Option<crate::types::DateTime> {
    common::parse_date_time(s)
}
