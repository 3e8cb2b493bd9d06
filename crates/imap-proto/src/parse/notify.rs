//! NOTIFY (RFC 5465).

use super::cursor::Parser;
use super::fetch::fetch_att;
use crate::types::{Command, NotifyEvent, NotifyFilter, NotifyGroup, NotifySet, ParseError};

pub(crate) fn notify(p: &mut Parser) -> Result<Command, ParseError> {
    p.sp_after("NOTIFY")?;
    match p.keyword("NONE or SET")?.as_str() {
        "NONE" => Ok(Command::Notify(None)),
        "SET" => {
            p.sp_after("NOTIFY SET")?;
            let mut status = false;
            if p.peek_byte() != Some(b'(') {
                let w = p.keyword("STATUS or event group")?;
                if w != "STATUS" {
                    return Err(p.err(format!("Expected STATUS or an event group, got {w}")));
                }
                status = true;
                p.sp_after("STATUS")?;
            }
            let mut groups = vec![group(p)?];
            while p.eat(b' ') {
                groups.push(group(p)?);
            }
            Ok(Command::Notify(Some(NotifySet { status, groups })))
        }
        other => Err(p.err(format!("Expected NONE or SET after NOTIFY, got {other}"))),
    }
}

fn group(p: &mut Parser) -> Result<NotifyGroup, ParseError> {
    p.expect(b'(', "event group")?;
    p.enter()?;
    let filter = match p.keyword("mailbox filter")?.as_str() {
        "SELECTED" => NotifyFilter::Selected,
        "SELECTED-DELAYED" => NotifyFilter::SelectedDelayed,
        "INBOXES" => NotifyFilter::Inboxes,
        "PERSONAL" => NotifyFilter::Personal,
        "SUBSCRIBED" => NotifyFilter::Subscribed,
        "SUBTREE" => {
            p.sp_after("SUBTREE")?;
            NotifyFilter::Subtree(mailboxes(p)?)
        }
        "MAILBOXES" => {
            p.sp_after("MAILBOXES")?;
            NotifyFilter::Mailboxes(mailboxes(p)?)
        }
        other => return Err(p.err(format!("Unknown NOTIFY mailbox filter {other}"))),
    };
    p.sp_after("mailbox filter")?;
    let events = if p.peek_byte() == Some(b'(') {
        p.paren_list("event list", false, event)?
    } else {
        let w = p.keyword("events")?;
        if w != "NONE" {
            return Err(p.err(format!("Expected an event list or NONE, got {w}")));
        }
        Vec::new()
    };
    p.expect(b')', "end of event group")?;
    p.leave();
    Ok(NotifyGroup { filter, events })
}

fn mailboxes(p: &mut Parser) -> Result<Vec<crate::types::MailboxName>, ParseError> {
    if p.peek_byte() == Some(b'(') {
        p.paren_list("mailbox list", false, |p| p.mailbox())
    } else {
        Ok(vec![p.mailbox()?])
    }
}

fn event(p: &mut Parser) -> Result<NotifyEvent, ParseError> {
    let w = p.keyword("event")?;
    Ok(match w.as_str() {
        "MESSAGENEW" => {
            if p.peek_bytes(b" (") {
                p.bump();
                NotifyEvent::MessageNew(p.paren_list("fetch attributes", false, fetch_att)?)
            } else {
                NotifyEvent::MessageNew(Vec::new())
            }
        }
        "MESSAGEEXPUNGE" => NotifyEvent::MessageExpunge,
        "FLAGCHANGE" => NotifyEvent::FlagChange,
        "ANNOTATIONCHANGE" => NotifyEvent::AnnotationChange,
        "MAILBOXNAME" => NotifyEvent::MailboxName,
        "SUBSCRIPTIONCHANGE" => NotifyEvent::SubscriptionChange,
        "MAILBOXMETADATACHANGE" => NotifyEvent::MailboxMetadataChange,
        "SERVERMETADATACHANGE" => NotifyEvent::ServerMetadataChange,
        // RFC 5465 8: `event-ext = atom`. The server refuses events it does
        // not support with NO [BADEVENT] (3.1), not with a syntax error.
        _ => NotifyEvent::Other(w),
    })
}

#[cfg(test)]
mod tests {
    use crate::framer::Part;
    use crate::types::*;

    fn parse(s: &str) -> Result<Request, ParseError> {
        crate::parse::parse_request(vec![Part::Text(s.as_bytes().to_vec())], 16)
    }

    #[test]
    fn notify_forms() {
        assert_eq!(
            parse("a NOTIFY NONE").unwrap().command,
            Command::Notify(None)
        );
        let r = parse("a NOTIFY SET STATUS (SELECTED (MessageNew (UID FLAGS) MessageExpunge FlagChange)) (SUBTREE (INBOX Lists) (MessageNew MessageExpunge)) (PERSONAL (MailboxName SubscriptionChange)) (INBOXES NONE)").unwrap();
        let Command::Notify(Some(set)) = r.command else {
            panic!()
        };
        assert!(set.status);
        assert_eq!(set.groups.len(), 4);
        assert_eq!(set.groups[0].filter, NotifyFilter::Selected);
        assert_eq!(
            set.groups[0].events[0],
            NotifyEvent::MessageNew(vec![FetchAttr::Uid, FetchAttr::Flags])
        );
        assert_eq!(
            set.groups[1].filter,
            NotifyFilter::Subtree(vec![
                MailboxName(b"INBOX".to_vec()),
                MailboxName(b"Lists".to_vec())
            ])
        );
        assert!(set.groups[3].events.is_empty());
        let r = parse("a NOTIFY SET (MAILBOXES Sent (MessageNew))").unwrap();
        let Command::Notify(Some(set)) = r.command else {
            panic!()
        };
        assert!(!set.status);
        assert_eq!(
            set.groups[0].filter,
            NotifyFilter::Mailboxes(vec![MailboxName(b"Sent".to_vec())])
        );
    }

    #[test]
    fn unknown_events_are_parsed_for_the_server_to_refuse() {
        let r = parse("a NOTIFY SET (PERSONAL (MessageNew MessageExpunge Bogus))").unwrap();
        let Command::Notify(Some(set)) = r.command else {
            panic!()
        };
        assert_eq!(
            set.groups[0].events[2],
            NotifyEvent::Other("BOGUS".to_string())
        );
    }

    #[test]
    fn notify_errors() {
        for bad in [
            "a NOTIFY",
            "a NOTIFY SET",
            "a NOTIFY SET (BOGUS (MessageNew))",
            "a NOTIFY SET (SELECTED (Bogus (UID)))",
            "a NOTIFY SET (SELECTED ())",
            "a NOTIFY SET (SELECTED (MessageNew)",
            "a NOTIFY MAYBE",
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.tag.as_deref(), Some("a"), "{bad}");
        }
    }
}
