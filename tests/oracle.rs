//! imap-codec as an independent oracle for our wire format.
//!
//! Responses: a scripted session drives every command family we support and
//! feeds every response line (with its literals) to imap-codec's
//! `ResponseCodec` (the greeting to `GreetingCodec`). Everything must decode,
//! except the few response types imap-codec cannot represent, listed in
//! [`ALLOW`] with the reason. Decoded values are checked where that is cheap
//! (tags, sequence numbers against the announced EXISTS, sizes, section data).
//!
//! Commands: a list of command strings is parsed both by imap-codec's
//! `CommandCodec` and by our framer + parser; both must accept (or both reject)
//! and agree on the tag and the command name.
//!
//! imap-codec is built without its default `quirk_*` features: those make it
//! accept known deviations of other servers, which is exactly what we want to
//! be told about.

mod common;

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::time::Duration;

use common::*;
use imap_codec::decode::Decoder;
use imap_codec::imap_types::core::NString8;
use imap_codec::imap_types::fetch::MessageDataItem;
use imap_codec::imap_types::response::{Code, Data, Response as Resp, Status, StatusKind};
use imap_codec::{CommandCodec, GreetingCodec, ResponseCodec};
use pillarbox_proto::framer::{parse_request, CommandBuffer};
use pillarbox_proto::types::LiteralData;

/// Valid response lines that imap-codec 2.0.0-alpha.10 (no quirks) cannot
/// decode, each with the reason. Every entry must be hit by the scripted session,
/// so the list cannot silently rot when either side changes.
struct Allow {
    name: &'static str,
    reason: &'static str,
    matches: fn(&[u8]) -> bool,
}

const ALLOW: &[Allow] = &[
    Allow {
        name: "ESEARCH",
        reason: "RFC 4731 / RFC 9051 section 7.3.4 ESEARCH response: imap-types has no Data \
                 variant for it (imap-codec's list of supported extensions has no ESEARCH; \
                 DESIGN.md notes the same)",
        matches: |l| l.starts_with(b"* ESEARCH "),
    },
    Allow {
        name: "LIST-EXTENDED data",
        reason: "RFC 5258 section 6 mbox-list-extended (`(\"CHILDINFO\" (\"SUBSCRIBED\"))` \
                 after the mailbox name): imap-codec's mailbox_list stops after the mailbox; \
                 its ext_list_extended feature exists only in imap-types and is 'Unfinished'",
        matches: is_list_extended,
    },
    Allow {
        name: "BINARY[...]<origin>",
        reason: "RFC 3516 section 4.2 and RFC 9051 section 7.5.2 describe the FETCH response \
                 item `BINARY[<section-binary>]<<number>>` for a partial BINARY fetch, but their \
                 ABNF (msg-att-static) omits the `<number>`; imap-codec follows the ABNF. We \
                 follow the prose, as Dovecot does (RFC 9051 erratum 7246 proposing the \
                 opposite is only 'Reported')",
        matches: has_binary_origin,
    },
];

/// `BINARY[...]<n>` inside a FETCH response (before any literal data).
fn has_binary_origin(line: &[u8]) -> bool {
    let head = match line.iter().position(|&b| b == b'{') {
        Some(i) => &line[..i],
        None => line,
    };
    let t = lossy(head);
    t.starts_with("* ") && t.contains(" FETCH (") && {
        t.match_indices("BINARY[").any(|(i, _)| {
            let rest = &t[i..];
            rest.find(']')
                .is_some_and(|e| rest[e + 1..].starts_with('<'))
        })
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// One command's exchange: raw lines (untagged, continuations, tagged last) and
/// what imap-codec made of each decodable one.
struct Exchange {
    raw: Vec<Vec<u8>>,
    decoded: Vec<Resp<'static>>,
    tagged: String,
}

impl Exchange {
    fn is_ok(&self) -> bool {
        self.tagged.starts_with("OK")
    }
    fn fetches(&self) -> Vec<(u32, Vec<MessageDataItem<'static>>)> {
        self.decoded
            .iter()
            .filter_map(|r| match r {
                Resp::Data(Data::Fetch { seq, items }) => {
                    Some((seq.get(), items.as_ref().to_vec()))
                }
                _ => None,
            })
            .collect()
    }
    fn codes(&self) -> Vec<Code<'static>> {
        self.decoded
            .iter()
            .filter_map(|r| match r {
                Resp::Status(Status::Untagged(b)) => b.code.clone(),
                Resp::Status(Status::Tagged(t)) => t.body.code.clone(),
                _ => None,
            })
            .collect()
    }
    fn data(&self) -> Vec<&Data<'static>> {
        self.decoded
            .iter()
            .filter_map(|r| match r {
                Resp::Data(d) => Some(d),
                _ => None,
            })
            .collect()
    }
    fn text(&self) -> String {
        self.raw.iter().map(|l| lossy(l)).collect()
    }
}

/// A client plus what it has been told about the selected mailbox.
struct Sess {
    c: Client,
    name: &'static str,
    exists: Option<u32>,
}

#[derive(Default)]
struct Oracle {
    failures: Vec<String>,
    skipped: BTreeMap<&'static str, usize>,
    decoded: usize,
}

impl Oracle {
    fn fail(&mut self, msg: String) {
        self.failures.push(msg);
    }

    /// Decodes one response line; records a failure if it does not decode
    /// completely or fails a sanity check.
    fn check(
        &mut self,
        s: &mut Sess,
        ctx: &str,
        line: &[u8],
        tag: Option<&str>,
    ) -> Option<Resp<'static>> {
        if let Some(a) = ALLOW.iter().find(|a| (a.matches)(line)) {
            *self.skipped.entry(a.name).or_default() += 1;
            return None;
        }
        let resp = match ResponseCodec::new().decode_static(line) {
            Ok(([], resp)) => resp,
            Ok((rest, _)) => {
                self.fail(format!(
                    "[{}] {ctx}: trailing bytes {:?} after {:?}",
                    s.name,
                    lossy(rest),
                    lossy(line)
                ));
                return None;
            }
            Err(e) => {
                self.fail(format!(
                    "[{}] {ctx}: imap-codec cannot decode {:?}: {e:?}",
                    s.name,
                    lossy(line)
                ));
                return None;
            }
        };
        self.decoded += 1;
        self.sanity(s, ctx, line, tag, &resp);
        Some(resp)
    }

    fn sanity(&mut self, s: &mut Sess, ctx: &str, line: &[u8], tag: Option<&str>, resp: &Resp) {
        let bad = |o: &mut Self, what: &str| {
            o.fail(format!("[{}] {ctx}: {what}: {:?}", s.name, lossy(line)))
        };
        match resp {
            Resp::Status(Status::Tagged(t)) => {
                if Some(t.tag.inner()) != tag {
                    bad(self, &format!("tag {:?}, expected {tag:?}", t.tag.inner()));
                }
            }
            Resp::Status(_) | Resp::CommandContinuationRequest(_) => {}
            Resp::Data(d) => match d {
                Data::Exists(n) => s.exists = Some(*n),
                Data::Expunge(n) => match s.exists {
                    Some(e) if n.get() <= e => s.exists = Some(e - 1),
                    e => bad(self, &format!("EXPUNGE {n} with EXISTS {e:?}")),
                },
                Data::Vanished { earlier: false, .. } => {
                    let n = count_set(line.strip_prefix(b"* VANISHED ").unwrap_or(b""));
                    match s.exists {
                        Some(e) if n <= e => s.exists = Some(e - n),
                        e => bad(self, &format!("VANISHED of {n} with EXISTS {e:?}")),
                    }
                }
                Data::Fetch { seq, items } => {
                    if s.exists.is_none_or(|e| seq.get() > e) {
                        bad(self, &format!("FETCH {seq} beyond EXISTS {:?}", s.exists));
                    }
                    let text = lossy(line);
                    let want = format!("* {seq} FETCH (");
                    if !text.starts_with(&want) {
                        bad(self, "decoded sequence number differs from the wire");
                    }
                    if items.as_ref().is_empty() {
                        bad(self, "empty FETCH");
                    }
                }
                _ => {}
            },
        }
    }

    /// Sends `cmd` under a fresh tag and reads to the tagged response,
    /// checking every line.
    async fn run(&mut self, s: &mut Sess, cmd: &str) -> Exchange {
        let tag = s.c.next_tag();
        s.c.send_raw(format!("{tag} {cmd}\r\n").as_bytes()).await;
        self.finish(s, cmd, &tag, Vec::new(), Vec::new()).await
    }

    async fn finish(
        &mut self,
        s: &mut Sess,
        ctx: &str,
        tag: &str,
        mut raw: Vec<Vec<u8>>,
        mut decoded: Vec<Resp<'static>>,
    ) -> Exchange {
        loop {
            let line =
                s.c.read_response_line()
                    .await
                    .unwrap_or_else(|| panic!("[{}] {ctx}: EOF before {tag}", s.name));
            if std::env::var_os("ORACLE_DUMP").is_some() {
                eprintln!("[{}] {ctx} <- {:?}", s.name, lossy(&line));
            }
            let tagged = line.starts_with(format!("{tag} ").as_bytes());
            if let Some(r) = self.check(s, ctx, &line, tagged.then_some(tag)) {
                decoded.push(r);
            }
            raw.push(line.clone());
            if tagged {
                let t = lossy(&line[tag.len() + 1..]).trim_end().to_string();
                return Exchange {
                    raw,
                    decoded,
                    tagged: t,
                };
            }
        }
    }

    async fn ok(&mut self, s: &mut Sess, cmd: &str) -> Exchange {
        let x = self.run(s, cmd).await;
        assert!(
            x.is_ok(),
            "[{}] {cmd} -> {} / {}",
            s.name,
            x.tagged,
            x.text()
        );
        x
    }

    async fn expect(&mut self, s: &mut Sess, cmd: &str, status: &str) -> Exchange {
        let x = self.run(s, cmd).await;
        assert!(
            x.tagged.starts_with(status),
            "[{}] {cmd} -> {} (wanted {status}) / {}",
            s.name,
            x.tagged,
            x.text()
        );
        x
    }

    /// A command whose last argument is a literal (sync `{n}` or LITERAL+ `{n+}`).
    async fn with_literals(
        &mut self,
        s: &mut Sess,
        head: &str,
        pieces: &[(&[u8], bool)],
    ) -> Exchange {
        let tag = s.c.next_tag();
        let ctx = head.to_string();
        let mut raw = Vec::new();
        let mut decoded = Vec::new();
        let mut prefix = format!("{tag} {head}");
        for (data, non_sync) in pieces {
            let plus = if *non_sync { "+" } else { "" };
            s.c.send_raw(format!("{prefix}{{{}{plus}}}\r\n", data.len()).as_bytes())
                .await;
            if !non_sync {
                let cont = s.c.read_response_line().await.expect("continuation");
                assert!(cont.starts_with(b"+"), "{ctx}: {:?}", lossy(&cont));
                match self.check(s, &ctx, &cont, None) {
                    Some(r @ Resp::CommandContinuationRequest(_)) => decoded.push(r),
                    Some(other) => self.fail(format!("{ctx}: continuation decoded as {other:?}")),
                    None => {}
                }
                raw.push(cont);
            }
            s.c.send_raw(data).await;
            prefix = " ".to_string();
        }
        s.c.send_raw(b"\r\n").await;
        self.finish(s, &ctx, &tag, raw, decoded).await
    }

    /// A single line that earns an untagged response only (no usable tag).
    async fn untagged_only(&mut self, s: &mut Sess, line: &[u8]) -> Option<Resp<'static>> {
        s.c.send_raw(line).await;
        let resp = s.c.read_response_line().await.expect("response");
        self.check(s, &lossy(line), &resp, None)
    }
}

/// Number of values in an explicit set like `1:3,5` (no `*`).
fn count_set(set: &[u8]) -> u32 {
    let text = lossy(set);
    text.trim_end()
        .split(',')
        .map(|p| match p.split_once(':') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().unwrap_or(0), b.parse().unwrap_or(0));
                a.max(b) - a.min(b) + 1
            }
            None => 1,
        })
        .sum()
}

/// `* LIST (...) delim mailbox (extended-data)`: ends in `)` after the mailbox.
fn is_list_extended(line: &[u8]) -> bool {
    let Some(rest) = line.strip_prefix(b"* LIST (") else {
        return false;
    };
    let Some(close) = rest.iter().position(|&b| b == b')') else {
        return false;
    };
    let after_attrs = &rest[close + 1..];
    // ` "/" name (` or ` NIL name (`: a third space-separated item that opens a paren
    // and is not part of a quoted mailbox name.
    let t = lossy(after_attrs);
    let t = t.trim_end();
    if !t.ends_with(')') {
        return false;
    }
    // Skip the delimiter and the mailbox (quoted or atom), look at what follows.
    let t = t.trim_start();
    let after_delim = if let Some(r) = t.strip_prefix("NIL ") {
        r
    } else if t.len() > 4 && t.starts_with('"') {
        let end = if t.as_bytes()[1] == b'\\' { 4 } else { 3 };
        t[end..].trim_start()
    } else {
        return false;
    };
    let after_mailbox = if let Some(q) = after_delim.strip_prefix('"') {
        let mut esc = false;
        let mut end = None;
        for (i, ch) in q.char_indices() {
            match (esc, ch) {
                (true, _) => esc = false,
                (false, '\\') => esc = true,
                (false, '"') => {
                    end = Some(i + 1);
                    break;
                }
                _ => {}
            }
        }
        match end {
            Some(e) => &q[e..],
            None => return false,
        }
    } else {
        match after_delim.find(' ') {
            Some(i) => &after_delim[i..],
            None => return false,
        }
    };
    after_mailbox.starts_with(" (")
}

fn multipart() -> Vec<u8> {
    b"From: \"Alice Example\" <alice@example.org>\r\n\
To: bob@example.net, \"Carol \\\"C\\\"\" <carol@example.com>\r\n\
Cc: undisclosed-recipients:;\r\n\
Subject: =?UTF-8?Q?multipart_caf=C3=A9?=\r\n\
Date: Tue, 8 Feb 2022 11:00:00 +0100\r\n\
Message-ID: <mp@example.org>\r\n\
In-Reply-To: <hello@example.org>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\
\r\n\
preamble\r\n\
--b1\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
caf=C3=A9 body text\r\n\
--b1\r\n\
Content-Type: application/octet-stream; name=\"blob.bin\"\r\n\
Content-Disposition: attachment; filename=\"blob.bin\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
AAECAwQFBgcICQ==\r\n\
--b1\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
From: Inner <inner@example.org>\r\n\
Subject: inner\r\n\
Date: Wed, 9 Feb 2022 12:00:00 +0000\r\n\
\r\n\
inner body\r\n\
--b1--\r\n"
        .to_vec()
}

fn body_data(items: &[MessageDataItem]) -> Option<Vec<u8>> {
    items.iter().find_map(|i| match i {
        MessageDataItem::BodyExt { data, .. } => data.0.as_ref().map(|d| d.as_ref().to_vec()),
        _ => None,
    })
}

fn uid_validity(x: &Exchange) -> Option<u32> {
    x.codes().into_iter().find_map(|c| match c {
        Code::UidValidity(v) => Some(v.get()),
        _ => None,
    })
}

fn highest_modseq(x: &Exchange) -> Option<u64> {
    x.codes().into_iter().find_map(|c| match c {
        Code::HighestModSeq(v) => Some(v.get()),
        _ => None,
    })
}

#[tokio::test]
async fn every_response_decodes_with_imap_codec() {
    let srv = TestServer::start().await;
    let mut o = Oracle::default();
    let mut a = Sess {
        c: srv.client().await,
        name: "a",
        exists: None,
    };

    // Greeting.
    let greeting = a.c.greeting.clone();
    match GreetingCodec::new().decode(greeting.as_bytes()) {
        Ok(([], _)) => o.decoded += 1,
        other => o.fail(format!("greeting {greeting:?}: {other:?}")),
    }

    // Not authenticated.
    let x = o.ok(&mut a, "CAPABILITY").await;
    assert!(
        x.data().iter().any(|d| matches!(d, Data::Capability(_))),
        "{}",
        x.text()
    );
    o.ok(&mut a, "NOOP").await;
    o.ok(&mut a, "ID (\"name\" \"oracle\" \"version\" \"1.0\")")
        .await;
    o.ok(&mut a, "ID NIL").await;
    o.expect(&mut a, "LOGIN alice wrong", "NO").await;
    o.expect(&mut a, "SELECT INBOX", "BAD").await;
    let x = o.ok(&mut a, "LOGIN alice wonderland").await;
    assert!(
        x.codes().iter().any(|c| matches!(c, Code::Capability(_)))
            || x.text().contains("CAPABILITY")
    );

    // Authenticated.
    o.ok(&mut a, "CAPABILITY").await;
    let x = o.ok(&mut a, "ENABLE CONDSTORE").await;
    assert!(
        x.data().iter().any(|d| matches!(d, Data::Enabled { .. })),
        "{}",
        x.text()
    );
    let x = o.ok(&mut a, "NAMESPACE").await;
    assert!(
        x.data().iter().any(|d| matches!(d, Data::Namespace { .. })),
        "{}",
        x.text()
    );
    o.ok(&mut a, "LIST \"\" \"\"").await;
    let x = o.ok(&mut a, "LIST \"\" \"*\"").await;
    let lists = x
        .data()
        .iter()
        .filter(|d| matches!(d, Data::List { .. }))
        .count();
    assert!(lists >= 6, "{}", x.text());
    o.ok(&mut a, "LIST \"\" \"%\"").await;
    o.ok(&mut a, "CREATE Work").await;
    o.ok(&mut a, "CREATE Work/Sub").await;
    o.ok(&mut a, "CREATE \"Quoted \\\"Name\\\"\"").await;
    o.ok(&mut a, "CREATE Caf&AOk-").await;
    o.expect(&mut a, "CREATE INBOX", "NO").await;
    o.ok(&mut a, "RENAME Work Projects").await;
    o.ok(&mut a, "SUBSCRIBE Projects").await;
    o.ok(&mut a, "SUBSCRIBE Projects/Sub").await;
    o.ok(&mut a, "LSUB \"\" \"*\"").await;
    o.ok(&mut a, "LIST (SUBSCRIBED) \"\" \"*\"").await;
    o.ok(&mut a, "UNSUBSCRIBE Projects").await;
    // Projects is not subscribed but has a subscribed child: CHILDINFO is a MUST.
    let x = o
        .ok(&mut a, "LIST (SUBSCRIBED RECURSIVEMATCH) \"\" \"%\"")
        .await;
    assert!(x.text().contains("CHILDINFO"), "{}", x.text());
    o.ok(&mut a, "SUBSCRIBE Projects").await;
    o.ok(&mut a, "LIST (SPECIAL-USE) \"\" \"*\"").await;
    o.ok(
        &mut a,
        "LIST \"\" \"*\" RETURN (SUBSCRIBED CHILDREN SPECIAL-USE)",
    )
    .await;
    o.ok(&mut a, "UNSUBSCRIBE Projects/Sub").await;
    o.ok(&mut a, "DELETE \"Quoted \\\"Name\\\"\"").await;
    o.expect(&mut a, "DELETE Nope", "NO").await;
    o.ok(&mut a, "LIST \"\" \"*\"").await;

    // APPEND: sync literal, LITERAL+, MULTIAPPEND, failure.
    let hello = message("hello", "first body");
    let mp = multipart();
    let x = o
        .with_literals(&mut a, "APPEND INBOX (\\Seen) ", &[(&hello, false)])
        .await;
    assert!(x.is_ok(), "{}", x.text());
    assert!(
        x.codes()
            .iter()
            .any(|c| matches!(c, Code::AppendUid { uid, .. } if uid.get() == 1)),
        "APPENDUID: {}",
        x.text()
    );
    let x = o
        .with_literals(
            &mut a,
            "APPEND INBOX () \"08-Feb-2022 11:00:00 +0100\" ",
            &[(&mp, true)],
        )
        .await;
    assert!(x.is_ok(), "{}", x.text());
    let third = message("third", "third body");
    let fourth = message("fourth", "fourth body");
    let x = o
        .with_literals(
            &mut a,
            "APPEND INBOX (\\Flagged) ",
            &[(&third, false), (&fourth, true)],
        )
        .await;
    assert!(x.is_ok(), "{}", x.text());
    let x = o
        .with_literals(&mut a, "APPEND Nope ", &[(&hello, true)])
        .await;
    assert!(x.tagged.starts_with("NO"), "{}", x.text());
    assert!(
        x.codes().iter().any(|c| matches!(c, Code::TryCreate)),
        "{}",
        x.text()
    );

    // STATUS and LIST-STATUS.
    let x = o
        .ok(
            &mut a,
            "STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE HIGHESTMODSEQ)",
        )
        .await;
    assert!(
        x.data().iter().any(|d| matches!(d, Data::Status { .. })),
        "{}",
        x.text()
    );
    o.ok(
        &mut a,
        "LIST \"\" (INBOX Projects) RETURN (STATUS (MESSAGES UIDNEXT UNSEEN SIZE HIGHESTMODSEQ))",
    )
    .await;

    // SELECT / EXAMINE with CONDSTORE.
    let x = o.ok(&mut a, "EXAMINE INBOX (CONDSTORE)").await;
    assert!(
        x.codes().iter().any(|c| matches!(c, Code::ReadOnly)),
        "{}",
        x.text()
    );
    let x = o.ok(&mut a, "SELECT INBOX (CONDSTORE)").await;
    assert_eq!(a.exists, Some(4), "{}", x.text());
    assert!(
        x.codes().iter().any(|c| matches!(c, Code::ReadWrite)),
        "{}",
        x.text()
    );
    assert!(highest_modseq(&x).is_some(), "{}", x.text());
    assert!(uid_validity(&x).is_some(), "{}", x.text());

    // FETCH.
    let x = o
        .ok(
            &mut a,
            "FETCH 1:* (FLAGS INTERNALDATE RFC822.SIZE UID MODSEQ)",
        )
        .await;
    let f = x.fetches();
    assert_eq!(f.len(), 4, "{}", x.text());
    for (seq, items) in &f {
        let want_size = [hello.len(), mp.len(), third.len(), fourth.len()][*seq as usize - 1];
        let size = items.iter().find_map(|i| match i {
            MessageDataItem::Rfc822Size(n) => Some(*n as usize),
            _ => None,
        });
        assert_eq!(size, Some(want_size), "RFC822.SIZE of {seq}: {}", x.text());
        assert!(items
            .iter()
            .any(|i| matches!(i, MessageDataItem::Uid(u) if u.get() == *seq)));
        assert!(items
            .iter()
            .any(|i| matches!(i, MessageDataItem::ModSeq(_))));
        assert!(items
            .iter()
            .any(|i| matches!(i, MessageDataItem::InternalDate(_))));
    }
    let x = o.ok(&mut a, "FETCH 1:2 ENVELOPE").await;
    for (seq, items) in x.fetches() {
        let subject = items.iter().find_map(|i| match i {
            MessageDataItem::Envelope(e) => e.subject.0.as_ref().map(|s| s.as_ref().to_vec()),
            _ => None,
        });
        let want: &[u8] = if seq == 1 {
            b"hello"
        } else {
            b"=?UTF-8?Q?multipart_caf=C3=A9?="
        };
        assert_eq!(subject.as_deref(), Some(want), "{}", x.text());
    }
    let x = o.ok(&mut a, "FETCH 2 (BODY BODYSTRUCTURE)").await;
    assert_eq!(x.fetches().len(), 1, "{}", x.text());
    o.ok(&mut a, "FETCH 1 (BODYSTRUCTURE)").await;
    o.ok(&mut a, "FETCH 1 ALL").await;
    o.ok(&mut a, "FETCH 1 FAST").await;
    o.ok(&mut a, "FETCH 1:2 FULL").await;
    let x = o.ok(&mut a, "FETCH 2 BODY.PEEK[]").await;
    assert_eq!(body_data(&x.fetches()[0].1).as_deref(), Some(&mp[..]));
    let x = o.ok(&mut a, "FETCH 2 BODY.PEEK[]<0.10>").await;
    let f = x.fetches();
    assert_eq!(body_data(&f[0].1).as_deref(), Some(&mp[..10]));
    assert!(
        f[0].1.iter().any(|i| matches!(
            i,
            MessageDataItem::BodyExt {
                origin: Some(0),
                ..
            }
        )),
        "{}",
        x.text()
    );
    let x = o
        .ok(
            &mut a,
            "FETCH 2 BODY.PEEK[HEADER.FIELDS (Subject From)]<0.10>",
        )
        .await;
    assert_eq!(body_data(&x.fetches()[0].1).map(|d| d.len()), Some(10));
    o.ok(&mut a, "FETCH 2 BODY.PEEK[HEADER.FIELDS.NOT (Subject)]")
        .await;
    o.ok(&mut a, "FETCH 2 (BODY.PEEK[HEADER] BODY.PEEK[TEXT])")
        .await;
    let x = o
        .ok(&mut a, "FETCH 2 (BODY.PEEK[1] BODY.PEEK[1.MIME])")
        .await;
    let items = &x.fetches()[0].1;
    assert!(
        items
            .iter()
            .any(|i| matches!(i, MessageDataItem::BodyExt { data, .. }
            if data.0.as_ref().map(|d| d.as_ref()) == Some(&b"caf=C3=A9 body text"[..]))),
        "{}",
        x.text()
    );
    o.ok(
        &mut a,
        "FETCH 2 (BODY.PEEK[3] BODY.PEEK[3.HEADER] BODY.PEEK[3.TEXT] BODY.PEEK[3.1])",
    )
    .await;
    o.ok(&mut a, "FETCH 2 BODY.PEEK[2]<4.8>").await;
    let x = o
        .ok(
            &mut a,
            "FETCH 2 (BINARY.PEEK[1] BINARY.PEEK[2] BINARY.SIZE[1] BINARY.SIZE[2])",
        )
        .await;
    let items = &x.fetches()[0].1;
    let blob: Vec<u8> = (0u8..10).collect();
    assert!(
        items.iter().any(|i| match i {
            MessageDataItem::Binary {
                value: NString8::Literal8(l),
                ..
            } => l.data.as_ref() == blob,
            MessageDataItem::Binary {
                value: NString8::NString(n),
                ..
            } => n.0.as_ref().map(|d| d.as_ref()) == Some(&blob[..]),
            _ => false,
        }),
        "BINARY[2]: {}",
        x.text()
    );
    assert!(
        items
            .iter()
            .any(|i| matches!(i, MessageDataItem::BinarySize { size: 10, .. })),
        "BINARY.SIZE[2]: {}",
        x.text()
    );
    assert!(
        items.iter().any(|i| matches!(i, MessageDataItem::Binary { value, .. }
            if matches!(value, NString8::NString(n) if n.0.as_ref().map(|d| d.as_ref()) == Some("café body text".as_bytes()))
            || matches!(value, NString8::Literal8(l) if l.data.as_ref() == "café body text".as_bytes()))),
        "BINARY[1]: {}",
        x.text()
    );
    o.ok(&mut a, "FETCH 2 BINARY.PEEK[2]<2.4>").await;
    o.ok(&mut a, "FETCH 1 (RFC822.HEADER RFC822.TEXT)").await;
    // A FETCH that sets \Seen: the FLAGS change comes along.
    let x = o.ok(&mut a, "FETCH 3 RFC822").await;
    assert_eq!(body_data(&x.fetches()[0].1), None);
    assert!(
        x.fetches()[0]
            .1
            .iter()
            .any(|i| matches!(i, MessageDataItem::Rfc822(n) if n.0.as_ref().map(|d| d.as_ref()) == Some(&third[..]))),
        "{}",
        x.text()
    );
    let x = o.ok(&mut a, "UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1)").await;
    assert!(!x.fetches().is_empty(), "{}", x.text());
    for (_, items) in x.fetches() {
        assert!(
            items.iter().any(|i| matches!(i, MessageDataItem::Uid(_))),
            "{}",
            x.text()
        );
    }
    o.ok(&mut a, "UID FETCH 2,4 (UID RFC822.SIZE)").await;

    // STORE.
    let x = o.ok(&mut a, "STORE 1 +FLAGS (\\Flagged $Custom)").await;
    assert_eq!(x.fetches().len(), 1, "{}", x.text());
    o.ok(&mut a, "STORE 1 -FLAGS.SILENT (\\Flagged)").await;
    o.ok(&mut a, "STORE 1:* FLAGS (\\Seen)").await;
    o.ok(&mut a, "UID STORE 2 +FLAGS (\\Answered)").await;
    let x = o
        .ok(&mut a, "STORE 1,2 (UNCHANGEDSINCE 1) +FLAGS (\\Draft)")
        .await;
    assert!(
        x.codes().iter().any(|c| matches!(c, Code::Modified(_))),
        "MODIFIED: {}",
        x.text()
    );

    // SEARCH, UID SEARCH, ESEARCH, SORT, THREAD.
    let x = o.ok(&mut a, "SEARCH ALL").await;
    assert!(
        x.data()
            .iter()
            .any(|d| matches!(d, Data::Search(v, _) if v.len() == 4)),
        "{}",
        x.text()
    );
    o.ok(&mut a, "SEARCH OR ANSWERED (FLAGGED NOT DELETED)")
        .await;
    let x = o.ok(&mut a, "SEARCH NOT ALL").await;
    assert!(
        x.data()
            .iter()
            .any(|d| matches!(d, Data::Search(v, _) if v.is_empty())),
        "{}",
        x.text()
    );
    let x = o
        .ok(&mut a, "SEARCH SUBJECT \"multipart\" FROM alice")
        .await;
    assert!(
        x.data()
            .iter()
            .any(|d| matches!(d, Data::Search(v, _) if v == &[NonZeroU32::new(2).unwrap()])),
        "{}",
        x.text()
    );
    let x = o.ok(&mut a, "SEARCH MODSEQ 1").await;
    assert!(
        x.data()
            .iter()
            .any(|d| matches!(d, Data::Search(_, Some(_)))),
        "{}",
        x.text()
    );
    o.ok(&mut a, "UID SEARCH UID 2:* SEEN").await;
    o.ok(&mut a, "SEARCH CHARSET UTF-8 BODY \"body\"").await;
    o.expect(&mut a, "SEARCH CHARSET X-NOPE ALL", "NO").await;
    o.ok(&mut a, "SEARCH RETURN (MIN MAX COUNT ALL) ALL").await;
    o.ok(&mut a, "UID SEARCH RETURN () 1:3").await;
    o.ok(&mut a, "SEARCH RETURN (SAVE) SUBJECT third").await;
    o.ok(&mut a, "FETCH $ (UID FLAGS)").await;
    o.ok(&mut a, "SORT (REVERSE SUBJECT) UTF-8 ALL").await;
    o.ok(&mut a, "UID SORT (DATE) UTF-8 ALL").await;
    o.ok(&mut a, "THREAD REFERENCES UTF-8 ALL").await;
    o.ok(&mut a, "THREAD ORDEREDSUBJECT UTF-8 ALL").await;

    // COPY / MOVE with COPYUID, EXPUNGE.
    let x = o.ok(&mut a, "COPY 1:2 Projects").await;
    assert!(
        x.codes().iter().any(|c| matches!(c, Code::CopyUid { .. })),
        "COPYUID: {}",
        x.text()
    );
    o.ok(&mut a, "UID COPY 3 Projects").await;
    o.expect(&mut a, "COPY 1 Nope", "NO").await;
    let x = o.ok(&mut a, "MOVE 4 Projects").await;
    assert!(
        x.codes().iter().any(|c| matches!(c, Code::CopyUid { .. })),
        "COPYUID: {}",
        x.text()
    );
    assert_eq!(a.exists, Some(3), "{}", x.text());
    o.ok(&mut a, "UID MOVE 3 Projects").await;
    assert_eq!(a.exists, Some(2));
    o.ok(&mut a, "STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    let x = o.ok(&mut a, "EXPUNGE").await;
    assert!(
        x.data().iter().any(|d| matches!(d, Data::Expunge(_))),
        "{}",
        x.text()
    );
    assert_eq!(a.exists, Some(1));
    o.ok(&mut a, "CHECK").await;
    o.ok(&mut a, "SELECT Projects").await;
    o.ok(&mut a, "STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    o.ok(&mut a, "UID EXPUNGE 1:*").await;
    o.ok(&mut a, "UNSELECT").await;
    o.ok(&mut a, "SELECT INBOX").await;

    // A second session changes INBOX: NOOP and IDLE see it.
    let mut b = Sess {
        c: srv.login().await,
        name: "b",
        exists: None,
    };
    o.ok(&mut b, "SELECT INBOX").await;
    o.with_literals(&mut b, "APPEND INBOX ", &[(&message("fifth", "x"), true)])
        .await;
    o.with_literals(&mut b, "APPEND INBOX ", &[(&message("sixth", "y"), true)])
        .await;
    o.ok(&mut b, "NOOP").await;
    o.ok(&mut b, "STORE 1 +FLAGS (\\Flagged)").await;
    let x = o.ok(&mut a, "NOOP").await;
    assert!(
        x.data().iter().any(|d| matches!(d, Data::Exists(3))),
        "{}",
        x.text()
    );
    assert!(!x.fetches().is_empty(), "FETCH FLAGS: {}", x.text());
    o.ok(&mut b, "STORE 2 +FLAGS.SILENT (\\Deleted)").await;
    o.ok(&mut b, "EXPUNGE").await;
    let x = o.ok(&mut a, "NOOP").await;
    assert!(
        x.data().iter().any(|d| matches!(d, Data::Expunge(_))),
        "{}",
        x.text()
    );
    assert_eq!(a.exists, Some(2));

    // IDLE: EXISTS pushed by the other session, then DONE.
    let tag = a.c.next_tag();
    a.c.send_raw(format!("{tag} IDLE\r\n").as_bytes()).await;
    let cont = a.c.read_response_line().await.expect("idle continuation");
    let r = o.check(&mut a, "IDLE", &cont, None);
    assert!(
        matches!(r, Some(Resp::CommandContinuationRequest(_))),
        "{:?}",
        lossy(&cont)
    );
    o.with_literals(&mut b, "APPEND INBOX ", &[(&message("seventh", "z"), true)])
        .await;
    let pushed = tokio::time::timeout(Duration::from_secs(10), a.c.read_response_line())
        .await
        .expect("EXISTS pushed during IDLE")
        .expect("line");
    let r = o.check(&mut a, "IDLE push", &pushed, None);
    assert!(
        matches!(r, Some(Resp::Data(Data::Exists(3)))),
        "{:?}",
        lossy(&pushed)
    );
    a.c.send_raw(b"DONE\r\n").await;
    let x = o
        .finish(&mut a, "IDLE DONE", &tag, Vec::new(), Vec::new())
        .await;
    assert!(x.is_ok(), "{}", x.text());

    // QRESYNC: VANISHED (EARLIER) on SELECT and in UID FETCH, VANISHED on EXPUNGE.
    let mut q = Sess {
        c: srv.login().await,
        name: "q",
        exists: None,
    };
    o.ok(&mut q, "ENABLE QRESYNC").await;
    let x = o.ok(&mut q, "SELECT INBOX").await;
    let validity = uid_validity(&x).expect("UIDVALIDITY");
    let modseq = highest_modseq(&x).expect("HIGHESTMODSEQ");
    o.ok(&mut b, "STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    o.ok(&mut b, "EXPUNGE").await;
    o.ok(&mut b, "STORE 1 +FLAGS (\\Answered)").await;
    o.ok(&mut q, "UNSELECT").await;
    q.exists = None;
    let x = o
        .ok(
            &mut q,
            &format!("SELECT INBOX (QRESYNC ({validity} {modseq} 1:10))"),
        )
        .await;
    assert!(
        x.data()
            .iter()
            .any(|d| matches!(d, Data::Vanished { earlier: true, .. })),
        "{}",
        x.text()
    );
    assert!(!x.fetches().is_empty(), "{}", x.text());
    let x = o
        .ok(
            &mut q,
            &format!("UID FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq} VANISHED)"),
        )
        .await;
    assert!(
        x.data()
            .iter()
            .any(|d| matches!(d, Data::Vanished { earlier: true, .. })),
        "{}",
        x.text()
    );
    o.ok(&mut q, "STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    let x = o.ok(&mut q, "EXPUNGE").await;
    assert!(
        x.data()
            .iter()
            .any(|d| matches!(d, Data::Vanished { earlier: false, .. })),
        "{}",
        x.text()
    );
    let x = o.ok(&mut q, "CLOSE").await;
    assert!(x.is_ok());

    // Bad commands.
    o.expect(&mut a, "FOO", "BAD").await;
    o.expect(&mut a, "FETCH", "BAD").await;
    o.expect(&mut a, "FETCH 1 (FLAGS", "BAD").await;
    o.expect(&mut a, "FETCH 0 FLAGS", "BAD").await;
    o.expect(&mut a, "STORE 1 +FLAGS (\\Seen", "BAD").await;
    o.expect(&mut a, "SEARCH OR SEEN", "BAD").await;
    o.expect(&mut a, "LOGIN alice wonderland", "BAD").await;
    let r = o.untagged_only(&mut a, b"*** garbage\r\n").await;
    assert!(
        matches!(r, Some(Resp::Status(Status::Untagged(ref body))) if body.kind == StatusKind::Bad),
        "{r:?}"
    );

    // LOGOUT: BYE then the tagged OK.
    for s in [&mut b, &mut q, &mut a] {
        let x = o.ok(s, "LOGOUT").await;
        assert!(
            x.decoded
                .iter()
                .any(|r| matches!(r, Resp::Status(Status::Bye(_)))),
            "{}",
            x.text()
        );
    }
    srv.stop().await;

    let unused: Vec<_> = ALLOW
        .iter()
        .filter(|a| !o.skipped.contains_key(a.name))
        .map(|a| (a.name, a.reason))
        .collect();
    assert!(
        unused.is_empty(),
        "allow-list entries never hit: {unused:?}"
    );
    assert!(o.decoded > 150, "only {} responses decoded", o.decoded);
    assert!(
        o.failures.is_empty(),
        "{} of {} responses rejected by imap-codec (skipped {:?}):\n{}",
        o.failures.len(),
        o.decoded + o.failures.len(),
        o.skipped,
        o.failures.join("\n")
    );
}

// ---------------------------------------------------------------------------
// Commands: both parsers must agree.

/// Splits a wire command into lines and literals the way the connection does,
/// then runs our parser. Ok((tag, name)) or Err(reason).
fn ours(wire: &[u8]) -> Result<(String, String), String> {
    let mut buf = CommandBuffer::new();
    let mut rest = wire;
    loop {
        let end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("no CRLF")?;
        let line = &rest[..end];
        rest = &rest[end + 2..];
        match buf.push_line(line).map_err(|e| e.text)? {
            None => break,
            Some(spec) => {
                let n = spec.len as usize;
                let data = rest.get(..n).ok_or("short literal")?.to_vec();
                rest = &rest[n..];
                buf.push_literal(LiteralData::Memory(data), spec.binary);
            }
        }
    }
    if !rest.is_empty() {
        return Err(format!("trailing {:?}", lossy(rest)));
    }
    let req = parse_request(buf.into_parts(), 32).map_err(|e| e.text)?;
    let dbg = format!("{:?}", req.command);
    let variant: String = dbg.chars().take_while(|c| c.is_alphanumeric()).collect();
    let name = match variant.as_str() {
        "UidExpunge" => "EXPUNGE".to_string(),
        v => v.to_ascii_uppercase(),
    };
    Ok((req.tag, name))
}

fn codec(wire: &[u8]) -> Result<(String, String), String> {
    match CommandCodec::new().decode(wire) {
        Ok(([], cmd)) => Ok((cmd.tag.inner().to_string(), cmd.body.name().to_string())),
        Ok((rest, _)) => Err(format!("trailing {:?}", lossy(rest))),
        Err(e) => Err(format!("{e:?}")),
    }
}

/// The command name as the codecs report it: `UID FETCH` is `FETCH`.
fn expected_name(wire: &[u8]) -> String {
    let text = lossy(wire);
    let mut words = text.split([' ', '\r']).skip(1);
    let first = words.next().unwrap_or("").to_ascii_uppercase();
    if first == "UID" {
        words.next().unwrap_or("").to_ascii_uppercase()
    } else {
        first
    }
}

/// Commands both parsers must accept, with identical tag and name.
const BOTH_ACCEPT: &[&[u8]] = &[
    b"a1 CAPABILITY\r\n",
    b"a2 NOOP\r\n",
    b"a3 LOGOUT\r\n",
    b"a4 STARTTLS\r\n",
    b"a5 LOGIN alice wonderland\r\n",
    b"a6 LOGIN \"alice\" \"wonder \\\"land\\\" \\\\ x\"\r\n",
    b"a7 LOGIN {5}\r\nalice {10}\r\nwonderland\r\n",
    b"a8 LOGIN {5+}\r\nalice {10+}\r\nwonderland\r\n",
    b"a9 AUTHENTICATE PLAIN\r\n",
    b"a10 AUTHENTICATE PLAIN AGFsaWNlAHdvbmRlcmxhbmQ=\r\n",
    b"b1 ENABLE CONDSTORE\r\n",
    b"b2 ENABLE QRESYNC UTF8=ACCEPT\r\n",
    b"b3 ID (\"name\" \"oracle\" \"version\" \"1.0\")\r\n",
    b"b4 ID NIL\r\n",
    b"b5 NAMESPACE\r\n",
    b"c1 SELECT INBOX\r\n",
    b"c2 SELECT \"INBOX\" (CONDSTORE)\r\n",
    b"c3 EXAMINE {5}\r\nINBOX\r\n",
    b"c4 SELECT INBOX (QRESYNC (67890007 90060115194045000 41:211,214:541))\r\n",
    b"c5 CREATE Work/Sub\r\n",
    b"c6 CREATE \"Quoted \\\"Name\\\"\"\r\n",
    b"c7 DELETE Caf&AOk-\r\n",
    b"c8 RENAME Work Projects\r\n",
    b"c9 SUBSCRIBE Projects\r\n",
    b"c10 UNSUBSCRIBE \"Projects\"\r\n",
    b"c11 LIST \"\" \"*\"\r\n",
    b"c12 LIST \"\" %\r\n",
    b"c13 LIST \"\" \"\"\r\n",
    b"c14 LSUB \"\" *\r\n",
    b"c15 STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)\r\n",
    b"c16 STATUS INBOX (DELETED SIZE HIGHESTMODSEQ)\r\n",
    b"d1 APPEND INBOX {5}\r\nhello\r\n",
    b"d2 APPEND INBOX (\\Seen $Custom) {5+}\r\nhello\r\n",
    b"d3 APPEND INBOX (\\Flagged) \"08-Feb-2022 11:00:00 +0100\" {5}\r\nhello\r\n",
    b"d4 APPEND INBOX \" 8-Feb-2022 11:00:00 -0130\" {5}\r\nhello\r\n",
    b"e1 CHECK\r\n",
    b"e2 CLOSE\r\n",
    b"e3 UNSELECT\r\n",
    b"e4 EXPUNGE\r\n",
    b"e5 UID EXPUNGE 1:3,7\r\n",
    b"e6 IDLE\r\n",
    b"f1 FETCH 1:* (FLAGS INTERNALDATE RFC822.SIZE ENVELOPE UID)\r\n",
    b"f2 FETCH 1 ALL\r\n",
    b"f3 FETCH 1,3:5,7:* FAST\r\n",
    b"f4 FETCH *:1 FULL\r\n",
    b"f5 FETCH 2 (BODY BODYSTRUCTURE)\r\n",
    b"f6 FETCH 2 BODY.PEEK[HEADER.FIELDS (Subject From)]<0.10>\r\n",
    b"f7 FETCH 2 BODY[HEADER.FIELDS.NOT (Subject \"X-Odd\")]\r\n",
    b"f8 FETCH 2 (BODY.PEEK[1] BODY.PEEK[1.MIME] BODY[3.1.TEXT] BODY[TEXT]<5.1>)\r\n",
    b"f9 FETCH 2 (BINARY.PEEK[1] BINARY[2]<2.4> BINARY.SIZE[2])\r\n",
    b"f10 FETCH 1 (RFC822 RFC822.HEADER RFC822.TEXT)\r\n",
    b"f11 UID FETCH 1:* (FLAGS MODSEQ)\r\n",
    b"f12 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345)\r\n",
    b"f13 FETCH 1 body.peek[]\r\n",
    b"g1 STORE 1 +FLAGS (\\Flagged $Custom)\r\n",
    b"g2 STORE 1:* -FLAGS.SILENT (\\Seen)\r\n",
    b"g3 UID STORE 2 FLAGS \\Answered\r\n",
    b"g4 STORE 1,2 (UNCHANGEDSINCE 12) +FLAGS (\\Draft)\r\n",
    b"h1 SEARCH ALL\r\n",
    b"h2 SEARCH OR SEEN (FLAGGED NOT DELETED)\r\n",
    b"h3 SEARCH NOT (OR ANSWERED DRAFT) SUBJECT \"a \\\"b\\\"\" FROM alice\r\n",
    b"h4 SEARCH CHARSET UTF-8 BODY {5}\r\ncaf\xc3\xa9\r\n",
    b"h5 UID SEARCH UID 2:* SEEN SINCE 1-Feb-2022 LARGER 10\r\n",
    b"h6 SEARCH 1:3,* HEADER Message-ID \"<x@y>\"\r\n",
    b"h7 SEARCH MODSEQ 1\r\n",
    b"h8 SEARCH ((SEEN) (OR NEW OLD))\r\n",
    b"i1 COPY 1:2 Projects\r\n",
    b"i2 UID COPY 3 \"Projects\"\r\n",
    b"i3 MOVE 4 Projects\r\n",
    b"i4 UID MOVE 3:* Projects\r\n",
    b"j1 SORT (REVERSE SUBJECT) UTF-8 ALL\r\n",
    b"j2 UID SORT (DATE ARRIVAL) UTF-8 SEEN\r\n",
    b"j3 THREAD REFERENCES UTF-8 ALL\r\n",
];

/// Commands imap-codec does not know (extensions it lacks) but we must accept.
const OURS_ONLY: &[(&[u8], &str)] = &[
    (
        b"x1 LIST (SUBSCRIBED) \"\" \"*\"\r\n",
        "RFC 5258 list-select-opts",
    ),
    (
        b"x2 LIST \"\" \"*\" RETURN (SUBSCRIBED CHILDREN SPECIAL-USE)\r\n",
        "RFC 5258 RETURN",
    ),
    (
        b"x3 LIST \"\" (INBOX Sent) RETURN (STATUS (MESSAGES UIDNEXT))\r\n",
        "RFC 5819",
    ),
    (
        b"x4 SEARCH RETURN (MIN MAX COUNT ALL) ALL\r\n",
        "RFC 4731 ESEARCH",
    ),
    (
        b"x5 SEARCH RETURN (SAVE) SUBJECT third\r\n",
        "RFC 5182 SEARCHRES",
    ),
    (b"x5b FETCH $ FLAGS\r\n", "RFC 5182 SEARCHRES `$`"),
    (
        b"x6 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)\r\n",
        "RFC 7162 VANISHED modifier",
    ),
    (
        b"x7 APPEND INBOX (\\Seen) {5+}\r\nhello (\\Flagged) {3+}\r\nbye\r\n",
        "RFC 3502 MULTIAPPEND",
    ),
    (
        b"x8 CREATE Foo (USE (\\Flagged))\r\n",
        "RFC 6154 CREATE-SPECIAL-USE",
    ),
    (b"x9 NOTIFY NONE\r\n", "RFC 5465 NOTIFY"),
    (
        b"x10 APPEND INBOX ~{3}\r\na\x00b\r\n",
        "RFC 3516 literal8 in APPEND",
    ),
];

/// Commands both must reject.
const BOTH_REJECT: &[&[u8]] = &[
    b"r1 FETCH 1 (FLAGS\r\n",
    b"r2 LOGIN alice\r\n",
    b"r3 SELECT\r\n",
    b"r4 FETCH 0 FLAGS\r\n",
    b"r5 STORE 1 +FLAGS (\\Seen\r\n",
    b"r6 SEARCH OR SEEN\r\n",
    b"r7 FOO BAR\r\n",
    b"r8 FETCH 1 BODY[HEADER.FIELDS ()]\r\n",
    b"r9 LOGIN \"unterminated\r\n",
    b"r10 NOOP extra\r\n",
    b"r11 FETCH 1:x FLAGS\r\n",
    b"r12 SEARCH SINCE 31-Foo-2022\r\n",
    b"r+ NOOP\r\n",
];

#[test]
fn command_parsers_agree_with_imap_codec() {
    let mut problems = Vec::new();
    for wire in BOTH_ACCEPT {
        let want = expected_name(wire);
        match (ours(wire), codec(wire)) {
            (Ok(a), Ok(b)) => {
                if a != b {
                    problems.push(format!("{:?}: ours {a:?}, imap-codec {b:?}", lossy(wire)));
                }
                if a.1 != want {
                    problems.push(format!(
                        "{:?}: name {:?}, expected {want}",
                        lossy(wire),
                        a.1
                    ));
                }
            }
            (a, b) => problems.push(format!("{:?}: ours {a:?}, imap-codec {b:?}", lossy(wire))),
        }
    }
    for (wire, why) in OURS_ONLY {
        if let Err(e) = ours(wire) {
            problems.push(format!("{:?} ({why}): ours rejects: {e}", lossy(wire)));
        }
    }
    for wire in BOTH_REJECT {
        match (ours(wire), codec(wire)) {
            (Err(_), Err(_)) => {}
            (a, b) => problems.push(format!(
                "{:?}: must be rejected: ours {a:?}, imap-codec {b:?}",
                lossy(wire)
            )),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
