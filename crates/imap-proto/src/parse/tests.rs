//! Parser tests: requests are given as wire bytes, framed with the real
//! `CommandBuffer`, then parsed.

use crate::framer::{parse_request, CommandBuffer, Part};
use crate::types::*;

const DEPTH: usize = 20;

/// Frames `wire` (lines separated by CRLF, literals as on the wire).
fn frame(wire: &[u8]) -> Result<Vec<Part>, ParseError> {
    let mut buf = CommandBuffer::new();
    let mut rest = wire;
    loop {
        let (line, after) = match rest.windows(2).position(|w| w == b"\r\n") {
            Some(i) => (&rest[..i], &rest[i + 2..]),
            None => (rest, &rest[rest.len()..]),
        };
        match buf.push_line(line)? {
            None => {
                assert!(after.is_empty(), "trailing data after request");
                return Ok(buf.into_parts());
            }
            Some(spec) => {
                let n = spec.len as usize;
                assert!(after.len() >= n, "short literal in test input");
                buf.push_literal(LiteralData::Memory(after[..n].to_vec()), spec.binary);
                rest = &after[n..];
            }
        }
    }
}

fn parse(wire: &str) -> Result<Request, ParseError> {
    parse_request(frame(wire.as_bytes())?, DEPTH)
}

fn cmd(wire: &str) -> Command {
    match parse(wire) {
        Ok(r) => r.command,
        Err(e) => panic!("{wire:?}: {e:?}"),
    }
}

/// Expects a parse error; when the request starts with a readable tag `a `, the
/// error must carry it.
fn bad(wire: &str) -> ParseError {
    match parse(wire) {
        Ok(r) => panic!("{wire:?} parsed as {r:?}"),
        Err(e) => {
            if wire.starts_with("a ") || wire == "a" {
                assert_eq!(e.tag.as_deref(), Some("a"), "{wire:?}: {e:?}");
            }
            e
        }
    }
}

fn bad_text(wire: &str) -> String {
    bad(wire).text
}

fn mb(s: &str) -> MailboxName {
    MailboxName(s.as_bytes().to_vec())
}

fn r(a: u32, b: u32) -> (SeqNum, SeqNum) {
    (SeqNum::Value(a), SeqNum::Value(b))
}

fn set(v: Vec<(SeqNum, SeqNum)>) -> SequenceSet {
    SequenceSet::Ranges(v)
}

fn search_key(wire: &str) -> SearchKey {
    match cmd(wire) {
        Command::Search { search, .. } => search.key,
        c => panic!("{c:?}"),
    }
}

// ---------- framer ----------

#[test]
fn framer_announcements() {
    let mut b = CommandBuffer::new();
    let s = b.push_line(b"a1 LOGIN {5}").unwrap().unwrap();
    assert_eq!((s.len, s.non_sync, s.binary), (5, false, false));
    assert_eq!(b.tag().as_deref(), Some("a1"));
    assert_eq!(b.command_name().as_deref(), Some("LOGIN"));
    b.push_literal(LiteralData::Memory(b"alice".to_vec()), false);
    let s = b.push_line(b" {3+}").unwrap().unwrap();
    assert!(s.non_sync && !s.binary && s.len == 3);
    b.push_literal(LiteralData::Memory(b"pwd".to_vec()), false);
    assert_eq!(b.push_line(b"").unwrap(), None);
    assert_eq!(b.buffered_len(), "a1 LOGIN ".len() + 5 + 1 + 3);
    let parts = b.into_parts();
    assert_eq!(parts[0], Part::Text(b"a1 LOGIN ".to_vec()));
    let r = parse_request(parts, DEPTH).unwrap();
    assert_eq!(
        r.command,
        Command::Login {
            username: b"alice".to_vec(),
            password: b"pwd".to_vec()
        }
    );

    let mut b = CommandBuffer::new();
    let s = b.push_line(b"x APPEND INBOX ~{10+}").unwrap().unwrap();
    assert!(s.binary && s.non_sync && s.len == 10);
    assert_eq!(b.into_parts()[0], Part::Text(b"x APPEND INBOX ".to_vec()));

    let mut b = CommandBuffer::new();
    let s = b.push_line(b"x APPEND INBOX ~{0}").unwrap().unwrap();
    assert!(s.binary && s.len == 0);
}

#[test]
fn framer_errors_and_names() {
    let mut b = CommandBuffer::new();
    let e = b.push_line(b"t7 LOGIN {abc}").unwrap_err();
    assert_eq!(e.tag.as_deref(), Some("t7"));
    assert!(e.text.contains("literal"), "{}", e.text);
    let mut b = CommandBuffer::new();
    let e = b
        .push_line(b"t8 LOGIN {99999999999999999999999}")
        .unwrap_err();
    assert_eq!(e.tag.as_deref(), Some("t8"));
    let mut b = CommandBuffer::new();
    assert!(b.push_line(b"t9 X {}").is_err());
    let mut b = CommandBuffer::new();
    assert!(b.push_line(b"t9 X {1-}").is_err());
    let mut b = CommandBuffer::new();
    let e = b.push_line(b"+bad {x}").unwrap_err();
    assert_eq!(e.tag, None);

    let mut b = CommandBuffer::new();
    b.push_line(b"A003 uid fetch 1:* FLAGS").unwrap();
    assert_eq!(b.command_name().as_deref(), Some("UID"));
    assert_eq!(b.tag().as_deref(), Some("A003"));
    let mut b = CommandBuffer::new();
    b.push_line(b"noop").unwrap();
    assert_eq!(b.tag().as_deref(), Some("noop"));
    assert_eq!(b.command_name(), None);
    let b = CommandBuffer::new();
    assert!(b.is_empty());
    assert_eq!(b.tag(), None);
    assert_eq!(b.buffered_len(), 0);
    // a line ending in "}" without "{" is not a literal
    let mut b = CommandBuffer::new();
    assert_eq!(b.push_line(b"a SELECT foo}").unwrap(), None);
}

// ---------- simple commands ----------

#[test]
fn simple_commands() {
    assert_eq!(cmd("a CAPABILITY"), Command::Capability);
    assert_eq!(cmd("a noop"), Command::Noop);
    assert_eq!(cmd("a LOGOUT"), Command::Logout);
    assert_eq!(cmd("a StartTLS"), Command::StartTls);
    assert_eq!(cmd("a NAMESPACE"), Command::Namespace);
    assert_eq!(cmd("a IDLE"), Command::Idle);
    assert_eq!(cmd("a CHECK"), Command::Check);
    assert_eq!(cmd("a CLOSE"), Command::Close);
    assert_eq!(cmd("a UNSELECT"), Command::Unselect);
    assert_eq!(cmd("a EXPUNGE"), Command::Expunge);
    let r = parse("tag.1 NOOP").unwrap();
    assert_eq!(r.tag, "tag.1");
}

#[test]
fn general_bad_paths() {
    let e = bad("a FOO");
    assert_eq!(e.text, "Unknown command FOO");
    assert_eq!(e.tag.as_deref(), Some("a"));
    assert_eq!(bad_text("a"), "Expected SP after tag");
    assert_eq!(bad("a").tag.as_deref(), Some("a"));
    assert_eq!(bad_text("a  NOOP"), "Missing command name");
    assert!(bad_text("a NOOP x").starts_with("Unexpected characters"));
    assert!(bad_text("a NOOP ").starts_with("Unexpected characters"));
    let e = bad("+ NOOP");
    assert_eq!(e.tag, None);
    // A tag with a character tags may not hold is no tag at all.
    for line in [
        "a+b NOOP",
        "a{b NOOP",
        "a\"b NOOP",
        "a%b NOOP",
        "a*b NOOP",
        "\u{e9} NOOP",
    ] {
        let e = bad(line);
        assert_eq!(e.tag, None, "{line}");
    }
    assert_eq!(parse("a]b NOOP").unwrap().tag, "a]b");
    let e = bad("");
    assert_eq!(e.tag, None);
    assert_eq!(bad_text("a UID FOO 1"), "Unknown command UID FOO");
    assert_eq!(bad_text("a UID"), "Expected SP after UID");
    assert!(bad_text("a NOOP {3}\r\nabc").starts_with("Unexpected characters"));
    assert_eq!(
        parse_request(
            vec![
                Part::Text(b"a NOOP".to_vec()),
                Part::Literal {
                    data: LiteralData::Memory(vec![]),
                    binary: false
                }
            ],
            DEPTH
        )
        .unwrap_err()
        .text,
        "Unexpected literal after command"
    );
}

// ---------- auth / session ----------

#[test]
fn login_forms() {
    let l = |u: &str, p: &str| Command::Login {
        username: u.as_bytes().to_vec(),
        password: p.as_bytes().to_vec(),
    };
    assert_eq!(cmd("a LOGIN alice secret"), l("alice", "secret"));
    assert_eq!(
        cmd("a login \"al ice\" \"se\\\"c\\\\r\""),
        l("al ice", "se\"c\\r")
    );
    assert_eq!(cmd("a LOGIN alice {6}\r\nse cr\""), l("alice", "se cr\""));
    assert_eq!(cmd("a LOGIN {5+}\r\nalice {0}\r\n"), l("alice", ""));
    assert_eq!(cmd("a LOGIN pass]word x"), l("pass]word", "x"));
    assert_eq!(bad_text("a LOGIN"), "Missing user name");
    assert_eq!(bad_text("a LOGIN alice"), "Missing password");
    assert_eq!(bad_text("a LOGIN alice "), "Missing password");
    assert_eq!(bad_text("a LOGIN \"alice"), "Unterminated quoted string");
    assert_eq!(
        bad_text("a LOGIN \"a\\lice\" x"),
        "Invalid escape in quoted string"
    );
    assert_eq!(bad_text("a LOGIN (x) y"), "Invalid user name");
    // a literal8 is not a string
    assert_eq!(bad_text("a LOGIN ~{1}\r\nx y"), "literal8 not allowed here");
}

#[test]
fn spooled_literal_only_in_append() {
    let parts = vec![
        Part::Text(b"a LOGIN ".to_vec()),
        Part::Literal {
            data: LiteralData::Spooled {
                path: "spool".into(),
                len: 5,
            },
            binary: false,
        },
        Part::Text(b" x".to_vec()),
    ];
    let e = parse_request(parts, DEPTH).unwrap_err();
    assert_eq!(e.text, "literal too large");
    assert_eq!(e.tag.as_deref(), Some("a"));

    let data = LiteralData::Spooled {
        path: "spool".into(),
        len: 5,
    };
    let parts = vec![
        Part::Text(b"a APPEND INBOX ".to_vec()),
        Part::Literal {
            data: data.clone(),
            binary: false,
        },
        Part::Text(Vec::new()),
    ];
    match parse_request(parts, DEPTH).unwrap().command {
        Command::Append { messages, .. } => assert_eq!(messages[0].data, data),
        c => panic!("{c:?}"),
    }
}

#[test]
fn authenticate_forms() {
    assert_eq!(
        cmd("a AUTHENTICATE plain"),
        Command::Authenticate {
            mechanism: "PLAIN".into(),
            initial_response: None
        }
    );
    assert_eq!(
        cmd("a AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA=="),
        Command::Authenticate {
            mechanism: "PLAIN".into(),
            initial_response: Some(b"AGFsaWNlAHNlY3JldA==".to_vec())
        }
    );
    assert_eq!(
        cmd("a AUTHENTICATE EXTERNAL ="),
        Command::Authenticate {
            mechanism: "EXTERNAL".into(),
            initial_response: Some(b"=".to_vec())
        }
    );
    assert_eq!(bad_text("a AUTHENTICATE"), "Missing SASL mechanism");
    assert_eq!(
        bad_text("a AUTHENTICATE PLAIN abc"),
        "Invalid base64 in SASL initial response"
    );
    assert_eq!(
        bad_text("a AUTHENTICATE PLAIN a=bc"),
        "Invalid base64 in SASL initial response"
    );
    assert_eq!(
        bad_text("a AUTHENTICATE PLAIN !"),
        "Invalid SASL initial response"
    );
}

#[test]
fn enable_and_id() {
    assert_eq!(
        cmd("a ENABLE CONDSTORE UTF8=ACCEPT"),
        Command::Enable(vec!["CONDSTORE".into(), "UTF8=ACCEPT".into()])
    );
    assert_eq!(bad_text("a ENABLE"), "Missing capability to ENABLE");
    assert_eq!(cmd("a ID NIL"), Command::Id(None));
    assert_eq!(
        cmd("a ID (\"name\" \"mutt\" \"version\" NIL)"),
        Command::Id(Some(vec![
            (b"name".to_vec(), Some(b"mutt".to_vec())),
            (b"version".to_vec(), None)
        ]))
    );
    assert_eq!(cmd("a ID ()"), Command::Id(Some(vec![])));
    assert_eq!(
        cmd("a ID ({4}\r\nname {3}\r\nfoo)"),
        Command::Id(Some(vec![(b"name".to_vec(), Some(b"foo".to_vec()))]))
    );
    assert_eq!(bad_text("a ID"), "Expected SP after ID");
    assert_eq!(bad_text("a ID FOO"), "Expected ( or NIL after ID");
    assert_eq!(
        bad_text("a ID (\"name\")"),
        "Expected SP after ID field name"
    );
    assert_eq!(
        bad_text("a ID (\"k\" \"v\""),
        "Missing ) to end ID parameter list"
    );
}

// ---------- mailbox commands ----------

#[test]
fn select_examine() {
    let none = SelectParams {
        condstore: false,
        qresync: None,
    };
    assert_eq!(
        cmd("a SELECT INBOX"),
        Command::Select {
            mailbox: mb("INBOX"),
            params: none.clone()
        }
    );
    assert_eq!(
        cmd("a select \"Sent Items\""),
        Command::Select {
            mailbox: mb("Sent Items"),
            params: none.clone()
        }
    );
    assert_eq!(
        cmd("a EXAMINE {5}\r\nin(x)"),
        Command::Examine {
            mailbox: mb("in(x)"),
            params: none
        }
    );
    assert_eq!(
        cmd("a SELECT INBOX (CONDSTORE)"),
        Command::Select {
            mailbox: mb("INBOX"),
            params: SelectParams {
                condstore: true,
                qresync: None
            }
        }
    );
    let q = |w: &str| match cmd(w) {
        Command::Select { params, .. } => params.qresync.unwrap(),
        c => panic!("{c:?}"),
    };
    assert_eq!(
        q("a SELECT INBOX (QRESYNC (67890007 20050715194045000))"),
        QResyncParams {
            uidvalidity: 67890007,
            modseq: 20050715194045000,
            known_uids: None,
            seq_match: None
        }
    );
    assert_eq!(
        q("a SELECT INBOX (QRESYNC (67890007 90060115194045000 41:211,214:541))"),
        QResyncParams {
            uidvalidity: 67890007,
            modseq: 90060115194045000,
            known_uids: Some(set(vec![r(41, 211), r(214, 541)])),
            seq_match: None
        }
    );
    assert_eq!(
        q("a SELECT INBOX (QRESYNC (1 2 1:30 (1:3,5 10:12,20)))"),
        QResyncParams {
            uidvalidity: 1,
            modseq: 2,
            known_uids: Some(set(vec![r(1, 30)])),
            seq_match: Some((set(vec![r(1, 3), r(5, 5)]), set(vec![r(10, 12), r(20, 20)])))
        }
    );
    assert_eq!(
        q("a SELECT INBOX (qresync (1 2 (1 10)) condstore)").seq_match,
        Some((set(vec![r(1, 1)]), set(vec![r(10, 10)])))
    );
    // RFC 7162 7: "*" is not allowed in any of QRESYNC's sets.
    for (line, what) in [
        ("a SELECT INBOX (QRESYNC (1 2 1:*))", "known UIDs"),
        (
            "a SELECT INBOX (QRESYNC (1 2 1:9 (1:* 1:9)))",
            "known sequence set",
        ),
        ("a EXAMINE INBOX (QRESYNC (1 2 (1:3 *)))", "known UID set"),
    ] {
        assert_eq!(
            bad_text(line),
            format!("\"*\" and \"$\" are not allowed in QRESYNC {what}")
        );
    }
    assert_eq!(bad_text("a SELECT"), "Missing mailbox name");
    assert_eq!(bad_text("a SELECT "), "Missing mailbox name");
    assert_eq!(
        bad_text("a SELECT INBOX (FOO)"),
        "Unknown SELECT parameter FOO"
    );
    assert_eq!(
        bad_text("a SELECT INBOX (QRESYNC (0 1))"),
        "UIDVALIDITY must not be zero"
    );
    assert_eq!(
        bad_text("a SELECT INBOX (QRESYNC (1 0))"),
        "QRESYNC mod-sequence must not be zero"
    );
    assert_eq!(
        bad_text("a SELECT INBOX (QRESYNC (1 2 3"),
        "Expected ) to end QRESYNC parameters"
    );
}

#[test]
fn create_delete_rename_subscribe() {
    assert_eq!(
        cmd("a CREATE Work/Projects"),
        Command::Create {
            mailbox: mb("Work/Projects"),
            special_use: vec![]
        }
    );
    assert_eq!(
        cmd("a CREATE MySpecial (USE (\\Drafts \\Sent))"),
        Command::Create {
            mailbox: mb("MySpecial"),
            special_use: vec!["\\Drafts".into(), "\\Sent".into()]
        }
    );
    assert_eq!(bad_text("a CREATE x (FOO)"), "Unknown CREATE parameter FOO");
    assert_eq!(
        bad_text("a CREATE x (USE (Drafts))"),
        "Expected special-use attribute"
    );
    assert_eq!(cmd("a DELETE foo"), Command::Delete(mb("foo")));
    assert_eq!(bad_text("a DELETE"), "Missing mailbox name");
    assert_eq!(
        cmd("a RENAME old \"new one\""),
        Command::Rename {
            from: mb("old"),
            to: mb("new one")
        }
    );
    assert_eq!(bad_text("a RENAME old"), "Missing new mailbox name");
    assert_eq!(cmd("a SUBSCRIBE x"), Command::Subscribe(mb("x")));
    assert_eq!(cmd("a UNSUBSCRIBE \"\""), Command::Unsubscribe(mb("")));
}

#[test]
fn status_cmd() {
    assert_eq!(
        cmd("a STATUS INBOX (MESSAGES UIDNEXT uidvalidity UNSEEN RECENT DELETED SIZE HIGHESTMODSEQ APPENDLIMIT)"),
        Command::Status {
            mailbox: mb("INBOX"),
            items: vec![
                StatusItem::Messages,
                StatusItem::UidNext,
                StatusItem::UidValidity,
                StatusItem::Unseen,
                StatusItem::Recent,
                StatusItem::Deleted,
                StatusItem::Size,
                StatusItem::HighestModSeq,
                StatusItem::AppendLimit
            ]
        }
    );
    assert_eq!(bad_text("a STATUS INBOX"), "Missing status items");
    assert_eq!(bad_text("a STATUS INBOX ()"), "Empty status item list");
    assert_eq!(bad_text("a STATUS INBOX (FOO)"), "Unknown status item FOO");
    assert_eq!(
        bad_text("a STATUS INBOX (MESSAGES"),
        "Missing ) to end status item list"
    );
}

#[test]
fn list_forms() {
    let l = |w: &str| match cmd(w) {
        Command::List(l) => l,
        c => panic!("{c:?}"),
    };
    let x = l("a LIST \"\" *");
    assert_eq!(x.reference, mb(""));
    assert_eq!(x.patterns, vec![mb("*")]);
    assert!(!x.extended && x.select_opts.is_empty() && x.return_opts.is_empty());
    let x = l("a LIST ~/Mail/ %/foo*");
    assert_eq!(x.reference, mb("~/Mail/"));
    assert_eq!(x.patterns, vec![mb("%/foo*")]);
    let x = l("a LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (INBOX \"Sent*\" {3}\r\n%/%) RETURN (CHILDREN SPECIAL-USE SUBSCRIBED STATUS (MESSAGES UNSEEN))");
    assert!(x.extended);
    assert_eq!(
        x.select_opts,
        vec![ListSelectOpt::Subscribed, ListSelectOpt::RecursiveMatch]
    );
    assert_eq!(x.patterns, vec![mb("INBOX"), mb("Sent*"), mb("%/%")]);
    assert_eq!(
        x.return_opts,
        vec![
            ListReturnOpt::Children,
            ListReturnOpt::SpecialUse,
            ListReturnOpt::Subscribed,
            ListReturnOpt::Status(vec![StatusItem::Messages, StatusItem::Unseen])
        ]
    );
    let x = l("a LIST () \"\" %");
    assert!(x.extended && x.select_opts.is_empty());
    let x = l("a LIST (SPECIAL-USE REMOTE) \"\" *");
    assert_eq!(
        x.select_opts,
        vec![ListSelectOpt::SpecialUse, ListSelectOpt::Remote]
    );
    let x = l("a LIST \"\" % RETURN ()");
    assert!(x.extended && x.return_opts.is_empty());
    assert_eq!(bad_text("a LIST"), "Missing mailbox name");
    assert_eq!(bad_text("a LIST \"\""), "Missing mailbox pattern");
    assert_eq!(
        bad_text("a LIST (FOO) \"\" *"),
        "Unknown LIST selection option FOO"
    );
    assert_eq!(
        bad_text("a LIST (RECURSIVEMATCH) \"\" *"),
        "RECURSIVEMATCH requires another selection option"
    );
    assert_eq!(
        bad_text("a LIST \"\" * RETURN (BAR)"),
        "Unknown LIST return option BAR"
    );
    assert_eq!(
        bad_text("a LIST \"\" * FOO (X)"),
        "Expected RETURN, got FOO"
    );
    assert_eq!(bad_text("a LIST \"\" ()"), "Empty mailbox pattern list");
    assert_eq!(
        cmd("a LSUB \"\" news.*"),
        Command::Lsub {
            reference: mb(""),
            pattern: mb("news.*")
        }
    );
    assert_eq!(bad_text("a LSUB \"\""), "Missing mailbox pattern");
}

// ---------- APPEND ----------

#[test]
fn append_forms() {
    let a = |w: &str| match cmd(w) {
        Command::Append { mailbox, messages } => (mailbox, messages),
        c => panic!("{c:?}"),
    };
    let (m, msgs) = a("a APPEND INBOX {5}\r\nhello");
    assert_eq!(m, mb("INBOX"));
    assert_eq!(
        msgs,
        vec![AppendMessage {
            flags: vec![],
            date: None,
            data: LiteralData::Memory(b"hello".to_vec()),
            binary: false
        }]
    );
    let (_, msgs) =
        a("a APPEND saved-messages (\\Seen $Work) \"17-Jul-1996 02:44:25 -0700\" {3+}\r\nabc");
    assert_eq!(
        msgs[0].flags,
        vec![Flag::Seen, Flag::Keyword("$Work".into())]
    );
    assert_eq!(
        msgs[0].date,
        Some(DateTime {
            unix: 837_596_665,
            offset_minutes: -420
        })
    );
    let (_, msgs) = a("a APPEND x \" 5-Jan-2024 10:00:00 +0100\" ~{2}\r\n\0\x01");
    assert!(msgs[0].binary);
    assert_eq!(msgs[0].data, LiteralData::Memory(vec![0, 1]));
    assert_eq!(
        msgs[0].date,
        Some(DateTime {
            unix: 1_704_445_200,
            offset_minutes: 60
        })
    );
    // MULTIAPPEND
    let (_, msgs) = a("a APPEND Drafts (\\Draft) {2}\r\nm1 {2}\r\nm2 (\\Seen) \"01-Feb-2020 00:00:00 +0000\" {2}\r\nm3");
    assert_eq!(msgs.len(), 3);
    assert_eq!(msgs[0].flags, vec![Flag::Draft]);
    assert_eq!(msgs[1].flags, vec![]);
    assert_eq!(msgs[1].data, LiteralData::Memory(b"m2".to_vec()));
    assert_eq!(msgs[2].flags, vec![Flag::Seen]);
    assert!(msgs[2].date.is_some());
    // mailbox name as literal
    let (m, _) = a("a APPEND {3}\r\nA B {1}\r\nx");
    assert_eq!(m, mb("A B"));

    assert_eq!(bad_text("a APPEND"), "Missing mailbox name");
    assert_eq!(bad_text("a APPEND INBOX"), "Missing message literal");
    assert_eq!(
        bad_text("a APPEND INBOX (\\Seen)"),
        "Expected SP after APPEND flag list"
    );
    assert_eq!(bad_text("a APPEND INBOX hello"), "Expected message literal");
    assert!(
        bad_text("a APPEND INBOX \"32-Jan-2024 00:00:00 +0000\" {1}\r\nx")
            .starts_with("Invalid date-time")
    );
    assert!(
        bad_text("a APPEND INBOX \"01-Jan-2024 24:00:00 +0000\" {1}\r\nx")
            .starts_with("Invalid date-time")
    );
    assert_eq!(
        bad_text("a APPEND INBOX (\\Recent) {1}\r\nx"),
        "The \\Recent flag cannot be set"
    );
    assert_eq!(
        bad_text("a APPEND INBOX {1}\r\nx junk"),
        "Expected message literal"
    );
}

// ---------- FETCH ----------

fn fetch_attrs(w: &str) -> Vec<FetchAttr> {
    match cmd(w) {
        Command::Fetch { attrs, .. } => attrs,
        c => panic!("{c:?}"),
    }
}

fn body(
    part: Vec<u32>,
    text: Option<SectionText>,
    partial: Option<(u32, u32)>,
    peek: bool,
) -> FetchAttr {
    FetchAttr::BodySection {
        section: Section { part, text },
        partial,
        peek,
    }
}

#[test]
fn fetch_macros_and_simple() {
    use FetchAttr::*;
    assert_eq!(
        fetch_attrs("a FETCH 1 ALL"),
        vec![Flags, InternalDate, Rfc822Size, Envelope]
    );
    assert_eq!(
        fetch_attrs("a FETCH 1 fast"),
        vec![Flags, InternalDate, Rfc822Size]
    );
    assert_eq!(
        fetch_attrs("a FETCH 1 FULL"),
        vec![Flags, InternalDate, Rfc822Size, Envelope, Body]
    );
    assert_eq!(fetch_attrs("a FETCH 1:* FLAGS"), vec![Flags]);
    assert_eq!(
        fetch_attrs("a FETCH 1 (UID RFC822 RFC822.HEADER RFC822.TEXT RFC822.SIZE ENVELOPE BODY BODYSTRUCTURE MODSEQ EMAILID THREADID INTERNALDATE)"),
        vec![Uid, Rfc822, Rfc822Header, Rfc822Text, Rfc822Size, Envelope, Body, BodyStructure, ModSeq, EmailId, ThreadId, InternalDate]
    );
    assert_eq!(
        fetch_attrs("a FETCH 1 (PREVIEW PREVIEW (LAZY))"),
        vec![Preview { lazy: false }, Preview { lazy: true }]
    );
    match cmd("a FETCH 2,4:5 FLAGS") {
        Command::Fetch { uid, set: s, .. } => {
            assert!(!uid);
            assert_eq!(s, set(vec![r(2, 2), r(4, 5)]));
        }
        c => panic!("{c:?}"),
    }
    match cmd("a UID FETCH $ (FLAGS) (CHANGEDSINCE 12345 VANISHED)") {
        Command::Fetch {
            uid,
            set,
            modifiers,
            ..
        } => {
            assert!(uid);
            assert_eq!(set, SequenceSet::Saved);
            assert_eq!(
                modifiers,
                vec![FetchModifier::ChangedSince(12345), FetchModifier::Vanished]
            );
        }
        c => panic!("{c:?}"),
    }
    match cmd("a FETCH 1 ALL (CHANGEDSINCE 1)") {
        Command::Fetch {
            attrs, modifiers, ..
        } => {
            assert_eq!(attrs.len(), 4);
            assert_eq!(modifiers, vec![FetchModifier::ChangedSince(1)]);
        }
        c => panic!("{c:?}"),
    }
    match cmd("a FETCH 1 PREVIEW (CHANGEDSINCE 1)") {
        Command::Fetch {
            attrs, modifiers, ..
        } => {
            assert_eq!(attrs, vec![Preview { lazy: false }]);
            assert_eq!(modifiers, vec![FetchModifier::ChangedSince(1)]);
        }
        c => panic!("{c:?}"),
    }
}

#[test]
fn fetch_sections() {
    use SectionText::*;
    assert_eq!(
        fetch_attrs("a FETCH 1 BODY[]"),
        vec![body(vec![], None, None, false)]
    );
    assert_eq!(
        fetch_attrs("a FETCH 1 body.peek[HEADER]"),
        vec![body(vec![], Some(Header), None, true)]
    );
    assert_eq!(
        fetch_attrs(
            "a FETCH 1 (BODY[TEXT]<0.2048> BODY[1.2.MIME] BODY[3] BODY[4.TEXT] BODY[2.HEADER])"
        ),
        vec![
            body(vec![], Some(Text), Some((0, 2048)), false),
            body(vec![1, 2], Some(Mime), None, false),
            body(vec![3], None, None, false),
            body(vec![4], Some(Text), None, false),
            body(vec![2], Some(Header), None, false),
        ]
    );
    assert_eq!(
        fetch_attrs("a FETCH 1 (BODY.PEEK[HEADER.FIELDS (From To \"Subject\" {10}\r\nMessage-ID)]<10.20> UID)"),
        vec![
            body(
                vec![],
                Some(HeaderFields(vec!["From".into(), "To".into(), "Subject".into(), "Message-ID".into()])),
                Some((10, 20)),
                true
            ),
            FetchAttr::Uid
        ]
    );
    assert_eq!(
        fetch_attrs("a FETCH 1 BODY[1.HEADER.FIELDS.NOT (Received)]"),
        vec![body(
            vec![1],
            Some(HeaderFieldsNot(vec!["Received".into()])),
            None,
            false
        )]
    );
    assert_eq!(
        fetch_attrs("a FETCH 1 (BINARY[1.2] BINARY.PEEK[]<0.10> BINARY.SIZE[3])"),
        vec![
            FetchAttr::Binary {
                part: vec![1, 2],
                partial: None,
                peek: false
            },
            FetchAttr::Binary {
                part: vec![],
                partial: Some((0, 10)),
                peek: true
            },
            FetchAttr::BinarySize { part: vec![3] },
        ]
    );
}

#[test]
fn fetch_bad_paths() {
    assert_eq!(bad_text("a FETCH"), "Missing sequence set");
    assert_eq!(bad_text("a FETCH 1"), "Missing FETCH attributes");
    assert_eq!(bad_text("a FETCH 1 "), "Missing FETCH attribute");
    assert_eq!(bad_text("a FETCH 0 FLAGS"), "Invalid sequence set: 0");
    assert_eq!(bad_text("a FETCH x FLAGS"), "Invalid sequence set");
    assert_eq!(bad_text("a FETCH 1 FOO"), "Unknown FETCH attribute FOO");
    assert_eq!(
        bad_text("a FETCH 1 (FLAGS ALL)"),
        "ALL is a macro and cannot be in a list"
    );
    assert_eq!(bad_text("a FETCH 1 ()"), "Empty FETCH attribute list");
    assert_eq!(
        bad_text("a FETCH 1 (FLAGS"),
        "Missing ) to end FETCH attribute list"
    );
    assert_eq!(
        bad_text("a FETCH 1 BODY[MIME]"),
        "MIME section requires a part number"
    );
    assert_eq!(bad_text("a FETCH 1 BODY[0]"), "Invalid section part number");
    assert_eq!(
        bad_text("a FETCH 1 BODY[1.0]"),
        "Invalid section part number"
    );
    assert_eq!(
        bad_text("a FETCH 1 BODY[FOO]"),
        "Invalid section specification FOO"
    );
    assert_eq!(
        bad_text("a FETCH 1 BODY[HEADER"),
        "Expected ] to end section"
    );
    assert_eq!(
        bad_text("a FETCH 1 BODY[HEADER.FIELDS]"),
        "Expected SP after HEADER.FIELDS"
    );
    assert_eq!(
        bad_text("a FETCH 1 BODY[HEADER.FIELDS ()]"),
        "Empty header field list"
    );
    assert_eq!(
        bad_text("a FETCH 1 BODY.PEEK"),
        "Expected [ after BODY.PEEK"
    );
    assert_eq!(
        bad_text("a FETCH 1 BODY[]<5>"),
        "Expected . in partial range"
    );
    assert_eq!(
        bad_text("a FETCH 1 BODY[]<5.0>"),
        "partial length must not be zero"
    );
    assert_eq!(
        bad_text("a FETCH 1 BODY[]<5.1"),
        "Expected > to end partial range"
    );
    assert_eq!(bad_text("a FETCH 1 BINARY"), "Expected [ after BINARY");
    assert_eq!(
        bad_text("a FETCH 1 BINARY[TEXT]"),
        "Expected ] to end BINARY section"
    );
    assert_eq!(
        bad_text("a FETCH 1 FLAGS (FOO)"),
        "Unknown FETCH modifier FOO"
    );
    assert_eq!(
        bad_text("a FETCH 1 FLAGS (CHANGEDSINCE 1 VANISHED)"),
        "VANISHED is only allowed with UID FETCH"
    );
    assert_eq!(
        bad_text("a UID FETCH 1 FLAGS (VANISHED)"),
        "VANISHED requires CHANGEDSINCE"
    );
    assert_eq!(
        bad_text("a FETCH 1 PREVIEW (FOO)"),
        "Unknown FETCH modifier FOO"
    );
    assert_eq!(
        bad_text("a FETCH 1 (PREVIEW (LAZY X))"),
        "Unknown PREVIEW modifier X"
    );
}

// ---------- STORE / COPY / MOVE / UID EXPUNGE ----------

#[test]
fn store_forms() {
    let st = |w: &str| match cmd(w) {
        Command::Store {
            uid,
            set,
            mode,
            silent,
            flags,
            unchanged_since,
        } => (uid, set, mode, silent, flags, unchanged_since),
        c => panic!("{c:?}"),
    };
    let (uid, s, mode, silent, flags, us) = st("a STORE 2:4 +FLAGS (\\Deleted)");
    assert!(!uid && !silent && us.is_none());
    assert_eq!(s, set(vec![r(2, 4)]));
    assert_eq!(mode, StoreMode::Add);
    assert_eq!(flags, vec![Flag::Deleted]);
    let (uid, _, mode, silent, flags, _) =
        st("a UID STORE 1 -flags.silent \\seen \\ANSWERED $Junk");
    assert!(uid && silent);
    assert_eq!(mode, StoreMode::Remove);
    assert_eq!(
        flags,
        vec![Flag::Seen, Flag::Answered, Flag::Keyword("$Junk".into())]
    );
    let (_, _, mode, _, flags, us) = st("a STORE 1 (UNCHANGEDSINCE 320162338) FLAGS.SILENT ()");
    assert_eq!(mode, StoreMode::Replace);
    assert!(flags.is_empty());
    assert_eq!(us, Some(320162338));
    let (_, _, _, _, flags, _) = st("a STORE 1 FLAGS (\\Flagged \\Draft)");
    assert_eq!(flags, vec![Flag::Flagged, Flag::Draft]);

    assert_eq!(bad_text("a STORE"), "Missing sequence set");
    assert_eq!(bad_text("a STORE 1"), "Missing STORE data item");
    assert_eq!(bad_text("a STORE 1 FLAGS"), "Missing flags");
    assert_eq!(
        bad_text("a STORE 1 LABELS x"),
        "Unknown STORE data item LABELS"
    );
    assert_eq!(
        bad_text("a STORE 1 (FOO 1) FLAGS x"),
        "Unknown STORE modifier FOO"
    );
    assert_eq!(
        bad_text("a STORE 1 FLAGS (\\Seen"),
        "Expected SP or ) in flag list"
    );
    assert_eq!(bad_text("a STORE 1 FLAGS \\"), "Invalid flag");
    // No flag-extension is defined (RFC 3501 9); keywords are 7-bit atoms.
    assert_eq!(
        bad_text("a STORE 1 +FLAGS (\\Seen \\Custom)"),
        "Invalid system flag \\Custom"
    );
    assert_eq!(
        bad_text("a APPEND INBOX (\\Foo) {1}\r\nx"),
        "Invalid system flag \\Foo"
    );
    assert_eq!(
        bad_text("a STORE 1 +FLAGS (caf\u{e9})"),
        "8-bit characters are not allowed in a flag"
    );
    assert_eq!(
        bad_text("a STORE 1 +FLAGS \\Recent"),
        "The \\Recent flag cannot be set"
    );
}

#[test]
fn copy_move_expunge() {
    assert_eq!(
        cmd("a COPY 2:4 MEETING"),
        Command::Copy {
            uid: false,
            set: set(vec![r(2, 4)]),
            mailbox: mb("MEETING")
        }
    );
    assert_eq!(
        cmd("a uid move 42,43:* \"Archive/2024\""),
        Command::Move {
            uid: true,
            set: set(vec![r(42, 42), (SeqNum::Value(43), SeqNum::Star)]),
            mailbox: mb("Archive/2024")
        }
    );
    assert_eq!(
        cmd("a UID COPY 1 {4}\r\nx yz"),
        Command::Copy {
            uid: true,
            set: set(vec![r(1, 1)]),
            mailbox: mb("x yz")
        }
    );
    assert_eq!(
        cmd("a MOVE 1 Trash"),
        Command::Move {
            uid: false,
            set: set(vec![r(1, 1)]),
            mailbox: mb("Trash")
        }
    );
    assert_eq!(bad_text("a COPY 1"), "Missing mailbox name");
    assert_eq!(bad_text("a MOVE"), "Missing sequence set");
    assert_eq!(
        cmd("a UID EXPUNGE 3000:3002"),
        Command::UidExpunge(set(vec![r(3000, 3002)]))
    );
    assert_eq!(bad_text("a UID EXPUNGE"), "Expected SP after UID EXPUNGE");
    assert_eq!(bad_text("a UID EXPUNGE "), "Missing sequence set");
}

#[test]
fn sequence_sets() {
    let s = |w: &str| match cmd(&format!("a UID EXPUNGE {w}")) {
        Command::UidExpunge(s) => s,
        c => panic!("{c:?}"),
    };
    assert_eq!(s("1"), set(vec![r(1, 1)]));
    assert_eq!(s("*"), set(vec![(SeqNum::Star, SeqNum::Star)]));
    assert_eq!(s("1:*"), set(vec![(SeqNum::Value(1), SeqNum::Star)]));
    assert_eq!(s("*:4"), set(vec![(SeqNum::Star, SeqNum::Value(4))]));
    assert_eq!(s("5:2"), set(vec![r(5, 2)]));
    assert_eq!(s("1,3:4,9"), set(vec![r(1, 1), r(3, 4), r(9, 9)]));
    assert_eq!(s("4294967295"), set(vec![r(u32::MAX, u32::MAX)]));
    assert_eq!(s("$"), SequenceSet::Saved);
    for b in [
        "0",
        "1:0",
        "0:*",
        "1,",
        ",1",
        "1::2",
        "1:2:3",
        "$,1",
        "$$",
        "4294967296",
        "1,,2",
        ":",
    ] {
        assert!(
            bad_text(&format!("a UID EXPUNGE {b}")).starts_with("Invalid sequence set"),
            "{b}"
        );
    }
}

// ---------- SEARCH ----------

fn d(year: i32, month: u32, day: u32) -> Date {
    Date { year, month, day }
}

#[test]
fn search_keys_all() {
    use SearchKey::*;
    let k = search_key(
        "a SEARCH ALL ANSWERED DELETED DRAFT FLAGGED SEEN UNANSWERED UNDELETED UNDRAFT UNFLAGGED UNSEEN NEW OLD RECENT",
    );
    assert_eq!(
        k,
        And(vec![
            All, Answered, Deleted, Draft, Flagged, Seen, Unanswered, Undeleted, Undraft,
            Unflagged, Unseen, New, Old, Recent
        ])
    );
    assert_eq!(search_key("a SEARCH all"), All);
    assert_eq!(
        search_key("a SEARCH KEYWORD $Junk UNKEYWORD foo"),
        And(vec![Keyword("$Junk".into()), Unkeyword("foo".into())])
    );
    assert_eq!(
        search_key("a SEARCH BCC a CC \"b c\" FROM {3}\r\nd e TO f SUBJECT g BODY h TEXT i"),
        And(vec![
            Bcc(b"a".to_vec()),
            Cc(b"b c".to_vec()),
            From(b"d e".to_vec()),
            To(b"f".to_vec()),
            Subject(b"g".to_vec()),
            Body(b"h".to_vec()),
            Text(b"i".to_vec())
        ])
    );
    assert_eq!(
        search_key("a SEARCH HEADER Message-ID \"<x@y>\""),
        Header("Message-ID".into(), b"<x@y>".to_vec())
    );
    assert_eq!(
        search_key("a SEARCH HEADER X-Empty \"\""),
        Header("X-Empty".into(), vec![])
    );
    assert_eq!(
        search_key("a SEARCH BEFORE 1-Feb-1994 ON \"01-feb-1994\" SINCE 29-Feb-2024 SENTBEFORE 3-Mar-2000 SENTON 31-Dec-1999 SENTSINCE \"4-Jul-1776\""),
        And(vec![
            Before(d(1994, 2, 1)),
            On(d(1994, 2, 1)),
            Since(d(2024, 2, 29)),
            SentBefore(d(2000, 3, 3)),
            SentOn(d(1999, 12, 31)),
            SentSince(d(1776, 7, 4))
        ])
    );
    assert_eq!(
        search_key("a SEARCH LARGER 1024 SMALLER 10000000000"),
        And(vec![Larger(1024), Smaller(10_000_000_000)])
    );
    assert_eq!(
        search_key("a SEARCH UID 1:5,7 2:4 $ *"),
        And(vec![
            Uid(set(vec![r(1, 5), r(7, 7)])),
            SequenceSet(set(vec![r(2, 4)])),
            SequenceSet(crate::types::SequenceSet::Saved),
            SequenceSet(set(vec![(SeqNum::Star, SeqNum::Star)]))
        ])
    );
    assert_eq!(
        search_key("a SEARCH NOT (SEEN FLAGGED)"),
        Not(Box::new(And(vec![Seen, Flagged])))
    );
    assert_eq!(
        search_key("a SEARCH OR SEEN (OR DRAFT NOT DELETED)"),
        Or(
            Box::new(Seen),
            Box::new(And(vec![Or(
                Box::new(Draft),
                Box::new(Not(Box::new(Deleted)))
            )]))
        )
    );
    assert_eq!(search_key("a SEARCH MODSEQ 620162338"), ModSeq(620162338));
    assert_eq!(
        search_key("a SEARCH MODSEQ \"/flags/\\\\draft\" all 620162338"),
        ModSeq(620162338)
    );
    assert_eq!(
        search_key("a SEARCH OLDER 3600 YOUNGER 60"),
        And(vec![Older(3600), Younger(60)])
    );
}

#[test]
fn search_charset_and_return() {
    match cmd("a SEARCH CHARSET UTF-8 SUBJECT {4}\r\nf\u{fc}r") {
        Command::Search { uid, search } => {
            assert!(!uid);
            assert_eq!(search.charset.as_deref(), Some("UTF-8"));
            assert_eq!(search.return_opts, None);
            assert_eq!(search.key, SearchKey::Subject("für".as_bytes().to_vec()));
        }
        c => panic!("{c:?}"),
    }
}

#[test]
fn search_charset_literal_then_keys() {
    match cmd("a UID SEARCH CHARSET {5}\r\nUTF-8 TEXT {4}\r\nt\u{e9}t UNSEEN") {
        Command::Search { uid, search } => {
            assert!(uid);
            assert_eq!(search.charset.as_deref(), Some("UTF-8"));
            assert_eq!(
                search.key,
                SearchKey::And(vec![
                    SearchKey::Text("tét".as_bytes().to_vec()),
                    SearchKey::Unseen
                ])
            );
        }
        c => panic!("{c:?}"),
    }
    match cmd("a SEARCH RETURN (MIN MAX COUNT ALL SAVE) CHARSET us-ascii DELETED") {
        Command::Search { search, .. } => {
            assert_eq!(
                search.return_opts,
                Some(vec![
                    SearchReturnOpt::Min,
                    SearchReturnOpt::Max,
                    SearchReturnOpt::Count,
                    SearchReturnOpt::All,
                    SearchReturnOpt::Save
                ])
            );
            assert_eq!(search.charset.as_deref(), Some("us-ascii"));
            assert_eq!(search.key, SearchKey::Deleted);
        }
        c => panic!("{c:?}"),
    }
    match cmd("a UID SEARCH RETURN () 1:*") {
        Command::Search { search, .. } => {
            assert_eq!(search.return_opts, Some(vec![]));
        }
        c => panic!("{c:?}"),
    }
}

#[test]
fn search_bad_paths() {
    assert_eq!(bad_text("a SEARCH"), "Missing search criteria");
    assert_eq!(bad_text("a SEARCH "), "Missing search key");
    assert_eq!(bad_text("a SEARCH FOO"), "Unknown search key FOO");
    assert_eq!(
        bad_text("a SEARCH CHARSET UTF-8"),
        "Missing search criteria"
    );
    assert_eq!(
        bad_text("a SEARCH RETURN (FOO) ALL"),
        "Unknown SEARCH return option FOO"
    );
    assert_eq!(bad_text("a SEARCH RETURN (MIN)"), "Missing search criteria");
    assert_eq!(
        bad_text("a SEARCH SUBJECT"),
        "Missing argument for SEARCH SUBJECT"
    );
    assert_eq!(
        bad_text("a SEARCH HEADER X"),
        "Missing argument for SEARCH HEADER"
    );
    assert_eq!(
        bad_text("a SEARCH KEYWORD"),
        "Missing argument for SEARCH KEYWORD"
    );
    assert!(bad_text("a SEARCH BEFORE 32-Jan-2024").starts_with("Invalid date for SEARCH BEFORE"));
    assert!(bad_text("a SEARCH ON 29-Feb-2023").starts_with("Invalid date"));
    assert!(bad_text("a SEARCH ON 1-Foo-2023").starts_with("Invalid date"));
    assert!(bad_text("a SEARCH ON 001-Jan-2023").starts_with("Invalid date"));
    assert!(bad_text("a SEARCH SINCE 1-Jan-23").starts_with("Invalid date"));
    assert_eq!(
        bad_text("a SEARCH SINCE"),
        "Missing argument for SEARCH SINCE"
    );
    assert_eq!(
        bad_text("a SEARCH LARGER x"),
        "Expected number for SEARCH LARGER"
    );
    assert_eq!(
        bad_text("a SEARCH LARGER 99999999999999999999999"),
        "Number too large for SEARCH LARGER"
    );
    assert_eq!(bad_text("a SEARCH UID 0"), "Invalid sequence set: 0");
    assert_eq!(
        bad_text("a SEARCH MODSEQ 9223372036854775808"),
        "Number too large for SEARCH MODSEQ"
    );
    assert_eq!(
        search_key("a SEARCH MODSEQ 9223372036854775807"),
        SearchKey::ModSeq(9223372036854775807)
    );
    assert_eq!(bad_text("a SEARCH 1:0"), "Invalid sequence set: 1:0");
    assert_eq!(bad_text("a SEARCH (SEEN"), "Missing ) in search key list");
    assert_eq!(bad_text("a SEARCH ()"), "Empty search key list");
    assert_eq!(
        bad_text("a SEARCH OR SEEN"),
        "Missing argument for SEARCH OR"
    );
    assert_eq!(bad_text("a SEARCH NOT"), "Missing argument for SEARCH NOT");
    assert_eq!(
        bad_text("a SEARCH MODSEQ \"/foo\" all 1"),
        "Invalid MODSEQ entry name"
    );
    assert_eq!(
        bad_text("a SEARCH MODSEQ \"/flags/x\" bogus 1"),
        "Invalid MODSEQ entry type BOGUS"
    );
    assert_eq!(
        bad_text("a SEARCH OLDER 0"),
        "SEARCH OLDER interval must not be zero"
    );
    assert_eq!(
        bad_text("a SEARCH SEEN)"),
        "Unexpected characters at end of command: )"
    );
}

#[test]
fn nesting_limit() {
    let deep = |n: usize| format!("a SEARCH {}SEEN{}", "(".repeat(n), ")".repeat(n));
    assert!(parse(&deep(DEPTH)).is_ok());
    let e = bad(&deep(DEPTH + 1));
    assert_eq!(e.tag.as_deref(), Some("a"));
    assert!(e.text.starts_with("Too deep nesting"), "{}", e.text);
    let nots = format!("a SEARCH {}SEEN", "NOT ".repeat(DEPTH + 1));
    assert!(bad_text(&nots).starts_with("Too deep nesting"));
    // a huge configured depth is still bounded (no stack overflow)
    let huge = format!("a SEARCH {}SEEN", "NOT ".repeat(100_000));
    let e = parse_request(frame(huge.as_bytes()).unwrap(), usize::MAX).unwrap_err();
    assert!(e.text.starts_with("Too deep nesting"));
    let e = parse_request(
        frame(format!("a SEARCH {}", "(".repeat(100_000)).as_bytes()).unwrap(),
        usize::MAX,
    )
    .unwrap_err();
    assert!(e.text.starts_with("Too deep nesting"));
    // depth applies to other lists too
    let e = parse_request(frame(b"a STATUS x (MESSAGES)").unwrap(), 0).unwrap_err();
    assert!(e.text.starts_with("Too deep nesting"));
}

// ---------- robustness ----------

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn no_panic(parts: Vec<Part>) {
    let _ = parse_request(parts, 8);
}

#[test]
fn fuzz_like_no_panic() {
    let corpus: &[&[u8]] = &[
        b"a LOGIN alice secret",
        b"a SELECT INBOX (QRESYNC (1 2 1:* (1:3 10:12)) CONDSTORE)",
        b"a UID FETCH 1:*,5 (FLAGS BODY.PEEK[1.2.HEADER.FIELDS (From To)]<0.100> BINARY[1]<1.2> PREVIEW (LAZY)) (CHANGEDSINCE 5 VANISHED)",
        b"a SEARCH RETURN (MIN COUNT) CHARSET UTF-8 OR (FROM \"x\" NOT SEEN) UID 1:5 HEADER X y SINCE 1-Jan-2020 MODSEQ \"/flags/x\" all 5",
        b"a STORE 1:* (UNCHANGEDSINCE 5) +FLAGS.SILENT (\\Seen $x)",
        b"a LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (% *) RETURN (STATUS (MESSAGES) CHILDREN)",
        b"a APPEND INBOX (\\Seen) \" 1-Jan-2020 00:00:00 +0000\" ",
        b"a CREATE x (USE (\\Drafts))",
        b"a ID (\"a\" NIL \"b\" \"c\")",
        b"a AUTHENTICATE PLAIN AGFsaWNl",
        b"a STATUS INBOX (MESSAGES UNSEEN)",
    ];
    let alphabet = b" ()[]<>{}\"\\*%$:,.+-~0123456789ABCXYZabc\r\n\0\xff";
    let mut rng = Lcg(0x5eed);
    for round in 0..20_000 {
        let base = corpus[rng.below(corpus.len())];
        let mut line = base.to_vec();
        match round % 4 {
            0 => line.truncate(rng.below(line.len() + 1)),
            1 => {
                for _ in 0..1 + rng.below(4) {
                    let i = rng.below(line.len());
                    line[i] = alphabet[rng.below(alphabet.len())];
                }
            }
            2 => {
                let i = rng.below(line.len() + 1);
                line.insert(i, alphabet[rng.below(alphabet.len())]);
            }
            _ => {
                line = (0..rng.below(60))
                    .map(|_| alphabet[rng.below(alphabet.len())])
                    .collect();
            }
        }
        // through the framer (line may end in an announcement)
        let mut buf = CommandBuffer::new();
        let _ = buf.tag();
        let _ = buf.command_name();
        if let Ok(Some(_)) = buf.push_line(&line) {
            let lit = (0..rng.below(5)).map(|_| b'x').collect();
            buf.push_literal(LiteralData::Memory(lit), rng.below(2) == 0);
            let tail: Vec<u8> = base.iter().copied().skip(rng.below(base.len())).collect();
            let _ = buf.push_line(&tail);
        }
        let _ = buf.tag();
        let _ = buf.command_name();
        let _ = buf.buffered_len();
        no_panic(buf.into_parts());
        // and raw parts with a literal spliced in
        let cut = rng.below(line.len() + 1);
        let parts = vec![
            Part::Text(line[..cut].to_vec()),
            Part::Literal {
                data: LiteralData::Memory(b"lit".to_vec()),
                binary: rng.below(3) == 0,
            },
            Part::Text(line[cut..].to_vec()),
        ];
        no_panic(parts);
        let _ = crate::mutf7::decode(&line);
    }
    // degenerate part lists
    no_panic(vec![]);
    no_panic(vec![Part::Literal {
        data: LiteralData::Memory(vec![]),
        binary: false,
    }]);
    no_panic(vec![Part::Text(vec![]), Part::Text(vec![])]);
}

#[test]
fn missing_arguments() {
    for (w, t) in [
        ("a CREATE", "Missing mailbox name"),
        ("a DELETE ", "Missing mailbox name"),
        ("a RENAME", "Missing mailbox name"),
        ("a SUBSCRIBE", "Missing mailbox name"),
        ("a UNSUBSCRIBE", "Missing mailbox name"),
        ("a EXAMINE", "Missing mailbox name"),
        ("a STATUS", "Missing mailbox name"),
        ("a LSUB", "Missing mailbox name"),
        ("a APPEND ", "Missing mailbox name"),
        ("a COPY 1 ", "Missing mailbox name"),
        ("a UID COPY", "Missing sequence set"),
        ("a UID STORE 1:2", "Missing STORE data item"),
        ("a UID SEARCH", "Missing search criteria"),
        ("a UID FETCH 1", "Missing FETCH attributes"),
        ("a SELECT INBOX (", "Missing SELECT parameter"),
        ("a SELECT INBOX x", "Expected ( to start SELECT parameters"),
        ("a DELETE (x)", "Invalid mailbox name"),
        ("a SELECT \"INBOX", "Unterminated quoted string"),
        ("a LOGIN \"a\rb\" c", "Invalid character in quoted string"),
    ] {
        assert_eq!(bad_text(w), t, "{w:?}");
    }
}

#[test]
fn literal_edge_cases() {
    // empty literal as a mailbox name, literal reference for LIST
    assert_eq!(
        cmd("a SELECT {0}\r\n"),
        Command::Select {
            mailbox: mb(""),
            params: SelectParams {
                condstore: false,
                qresync: None
            }
        }
    );
    match cmd("a LIST {0}\r\n {1}\r\n*") {
        Command::List(l) => {
            assert_eq!(l.reference, mb(""));
            assert_eq!(l.patterns, vec![mb("*")]);
        }
        c => panic!("{c:?}"),
    }
    // literal as a STORE flag is not allowed
    assert_eq!(bad_text("a STORE 1 FLAGS {2}\r\nab"), "Invalid flag");
    // literal where a sequence set is expected
    assert_eq!(bad_text("a FETCH {1}\r\n1 FLAGS"), "Invalid sequence set");
    // literal as a header name in HEADER.FIELDS and as a SEARCH HEADER field
    assert_eq!(
        search_key("a SEARCH HEADER {7}\r\nX-Spam: {3}\r\nyes"),
        SearchKey::Header("X-Spam:".into(), b"yes".to_vec())
    );
}
