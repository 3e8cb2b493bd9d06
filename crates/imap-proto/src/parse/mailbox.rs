//! SELECT/EXAMINE, CREATE, DELETE, RENAME, (UN)SUBSCRIBE, STATUS.

use super::cursor::{Parser, Peek};
use crate::types::{
    Command, MailboxName, ParseError, QResyncParams, SelectParams, SeqNum, SequenceSet, StatusItem,
};

pub(crate) fn single_mailbox(p: &mut Parser, cmd: &str) -> Result<MailboxName, ParseError> {
    if !p.eat(b' ') {
        let at_end = p.at_end();
        return Err(p.err(if at_end {
            "Missing mailbox name".to_string()
        } else {
            format!("Expected SP after {cmd}")
        }));
    }
    p.mailbox()
}

/// `SELECT mailbox [SP "(" select-param *(SP select-param) ")"]`.
pub(crate) fn select(p: &mut Parser, select: bool) -> Result<Command, ParseError> {
    let mailbox = single_mailbox(p, if select { "SELECT" } else { "EXAMINE" })?;
    let mut params = SelectParams {
        condstore: false,
        qresync: None,
    };
    if p.eat(b' ') {
        let mut condstore = false;
        let mut qresync = None;
        p.paren_list("SELECT parameters", true, |p| {
            let name = p.keyword("SELECT parameter")?;
            match name.as_str() {
                "CONDSTORE" => condstore = true,
                "QRESYNC" => {
                    p.sp_after("QRESYNC")?;
                    qresync = Some(qresync_params(p)?);
                }
                _ => return Err(p.err(format!("Unknown SELECT parameter {name}"))),
            }
            Ok(())
        })?;
        params.condstore = condstore;
        params.qresync = qresync;
    }
    Ok(if select {
        Command::Select { mailbox, params }
    } else {
        Command::Examine { mailbox, params }
    })
}

/// `"(" uidvalidity SP mod-sequence-value [SP known-uids] [SP seq-match-data] ")"`.
fn qresync_params(p: &mut Parser) -> Result<QResyncParams, ParseError> {
    p.expect(b'(', "( after QRESYNC")?;
    p.enter()?;
    let uidvalidity = p.nz_number("UIDVALIDITY")?;
    p.sp_after("UIDVALIDITY")?;
    let modseq = p.number64("QRESYNC mod-sequence")?;
    if modseq == 0 {
        return Err(p.err("QRESYNC mod-sequence must not be zero"));
    }
    let mut known_uids = None;
    let mut seq_match = None;
    if p.eat(b' ') {
        if p.peek() != Peek::Byte(b'(') {
            known_uids = Some(starless(p, "known UIDs")?);
            if p.eat(b' ') {
                seq_match = Some(seq_match_data(p)?);
            }
        } else {
            seq_match = Some(seq_match_data(p)?);
        }
    }
    p.expect(b')', ") to end QRESYNC parameters")?;
    p.leave();
    Ok(QResyncParams {
        uidvalidity,
        modseq,
        known_uids,
        seq_match,
    })
}

/// A sequence set of QRESYNC's parameters, where `*` is not allowed (RFC
/// 7162 7: the client names the messages it knows).
fn starless(p: &mut Parser, what: &str) -> Result<SequenceSet, ParseError> {
    let set = p.sequence_set()?;
    let star = match &set {
        SequenceSet::Ranges(r) => r
            .iter()
            .any(|&(a, b)| a == SeqNum::Star || b == SeqNum::Star),
        SequenceSet::Saved => true,
    };
    if star {
        return Err(p.err(format!("\"*\" and \"$\" are not allowed in QRESYNC {what}")));
    }
    Ok(set)
}

fn seq_match_data(
    p: &mut Parser,
) -> Result<(crate::types::SequenceSet, crate::types::SequenceSet), ParseError> {
    p.expect(b'(', "( to start QRESYNC sequence match data")?;
    p.enter()?;
    let seqs = starless(p, "known sequence set")?;
    p.sp_after("known sequence set")?;
    let uids = starless(p, "known UID set")?;
    p.expect(b')', ") to end QRESYNC sequence match data")?;
    p.leave();
    Ok((seqs, uids))
}

/// `CREATE mailbox [SP "(" "USE" SP "(" use-attr *(SP use-attr) ")" ")"]`.
pub(crate) fn create(p: &mut Parser) -> Result<Command, ParseError> {
    let mailbox = single_mailbox(p, "CREATE")?;
    let mut special_use = Vec::new();
    if p.eat(b' ') {
        let mut uses = Vec::new();
        p.paren_list("CREATE parameters", false, |p| {
            let name = p.keyword("CREATE parameter")?;
            if name != "USE" {
                return Err(p.err(format!("Unknown CREATE parameter {name}")));
            }
            p.sp_after("USE")?;
            let list = p.paren_list("USE list", true, |p| {
                p.expect(b'\\', "special-use attribute")?;
                let a = p.atom("special-use attribute")?;
                Ok(format!("\\{a}"))
            })?;
            uses.extend(list);
            Ok(())
        })?;
        special_use = uses;
    }
    Ok(Command::Create {
        mailbox,
        special_use,
    })
}

pub(crate) fn rename(p: &mut Parser) -> Result<Command, ParseError> {
    let from = single_mailbox(p, "RENAME")?;
    if !p.eat(b' ') {
        return Err(p.err("Missing new mailbox name"));
    }
    let to = p.mailbox()?;
    Ok(Command::Rename { from, to })
}

pub(crate) fn status_item(p: &mut Parser) -> Result<StatusItem, ParseError> {
    let name = p.keyword("status item")?;
    Ok(match name.as_str() {
        "MESSAGES" => StatusItem::Messages,
        "RECENT" => StatusItem::Recent,
        "UIDNEXT" => StatusItem::UidNext,
        "UIDVALIDITY" => StatusItem::UidValidity,
        "UNSEEN" => StatusItem::Unseen,
        "DELETED" => StatusItem::Deleted,
        "SIZE" => StatusItem::Size,
        "HIGHESTMODSEQ" => StatusItem::HighestModSeq,
        "APPENDLIMIT" => StatusItem::AppendLimit,
        _ => return Err(p.err(format!("Unknown status item {name}"))),
    })
}

/// `STATUS mailbox SP "(" status-att *(SP status-att) ")"`.
pub(crate) fn status(p: &mut Parser) -> Result<Command, ParseError> {
    let mailbox = single_mailbox(p, "STATUS")?;
    if !p.eat(b' ') {
        return Err(p.err("Missing status items"));
    }
    let items = p.paren_list("status item list", false, status_item)?;
    Ok(Command::Status { mailbox, items })
}
