//! Message commands: APPEND (MULTIAPPEND, LITERAL+, literal8), FETCH, STORE,
//! COPY, MOVE, EXPUNGE, UID EXPUNGE, SEARCH (ESEARCH, SEARCHRES), CONDSTORE basics.

mod common;

use common::*;

const MULTIPART: &[u8] = b"From: Carol <carol@example.com>\r\n\
To: dave@example.com\r\n\
Subject: Report attached\r\n\
Date: Tue, 15 Mar 2022 08:30:00 +0100\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"XYZ\"\r\n\
\r\n\
preamble\r\n\
--XYZ\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Gr=C3=BC=C3=9Fe aus Z=C3=BCrich, zanzibar\r\n\
--XYZ\r\n\
Content-Type: application/octet-stream; name=\"data.bin\"\r\n\
Content-Transfer-Encoding: base64\r\n\
Content-Disposition: attachment; filename=\"data.bin\"\r\n\
\r\n\
AAECAwQFBgc=\r\n\
--XYZ--\r\n";

async fn setup(s: &TestServer) -> Client {
    let mut c = s.login().await;
    c.append("INBOX", "", &message("first", "hello world"))
        .await;
    c.append("INBOX", "\\Flagged", &message("second", "another body"))
        .await;
    c.append("INBOX", "", MULTIPART).await;
    c.select_settled("INBOX").await;
    c
}

#[tokio::test]
async fn append_reports_appenduid_and_is_fetchable() {
    let s = TestServer::start().await;
    let mut c = s.login().await;
    let msg = message("hi", "text");
    let r = c.append("INBOX", "\\Seen $Work", &msg).await;
    assert!(r.tagged.starts_with("OK [APPENDUID "), "{}", r.tagged);
    assert!(r.tagged.contains(" 1]"), "{}", r.tagged);
    // With an internal date.
    let tag = c.next_tag();
    c.send_raw(
        format!(
            "{tag} APPEND INBOX () \"05-Mar-2021 14:30:00 +0200\" {{{}}}\r\n",
            msg.len()
        )
        .as_bytes(),
    )
    .await;
    c.read_response_line().await.unwrap();
    c.send_raw(&msg).await;
    c.send_raw(b"\r\n").await;
    let r = c.read_until_tagged(&tag).await;
    assert!(r.tagged.contains(" 2]"), "{}", r.tagged);
    c.select_settled("INBOX").await;
    let r = c.ok("FETCH 1:2 (FLAGS INTERNALDATE RFC822.SIZE UID)").await;
    let t = r.text();
    assert!(
        t.contains("FLAGS ($Work \\Seen)") || t.contains("FLAGS (\\Seen $Work)"),
        "{t}"
    );
    assert!(
        t.contains("INTERNALDATE \"05-Mar-2021 14:30:00 +0200\""),
        "{t}"
    );
    assert!(t.contains(&format!("RFC822.SIZE {}", msg.len())), "{t}");
    let r = c.ok("FETCH 1 BODY.PEEK[]").await;
    assert!(r.untagged[0].ends_with(&[msg.as_slice(), b")\r\n"].concat()));
    let r = c.no("APPEND nosuch {3}\r\nabc").await;
    assert!(r.tagged.contains("[TRYCREATE]"), "{}", r.tagged);
    s.stop().await;
}

#[tokio::test]
async fn multiappend_literal_plus_and_literal8() {
    let s = TestServer::start().await;
    let mut c = s.login().await;
    let a = message("m1", "one");
    let b = message("m2", "two\0with nul");
    let mut cmd = format!("x APPEND INBOX (\\Seen) {{{}+}}\r\n", a.len()).into_bytes();
    cmd.extend_from_slice(&a);
    cmd.extend_from_slice(format!(" ~{{{}+}}\r\n", b.len()).as_bytes());
    cmd.extend_from_slice(&b);
    cmd.extend_from_slice(b"\r\n");
    c.send_raw(&cmd).await;
    let r = c.read_until_tagged("x").await;
    assert!(
        r.tagged.starts_with("OK [APPENDUID ") && r.tagged.contains(" 1:2]"),
        "{}",
        r.tagged
    );
    // NUL in a normal literal is refused.
    let mut cmd = format!("y APPEND INBOX {{{}+}}\r\n", b.len()).into_bytes();
    cmd.extend_from_slice(&b);
    cmd.extend_from_slice(b"\r\n");
    c.send_raw(&cmd).await;
    let r = c.read_until_tagged("y").await;
    assert!(r.tagged.starts_with("NO"), "{}", r.tagged);
    let r = c.ok("STATUS INBOX (MESSAGES)").await;
    assert!(r.has("MESSAGES 2"));
    s.stop().await;
}

#[tokio::test]
async fn large_append_is_spooled_and_round_trips() {
    let s = TestServer::start_with(|c| c.limits.spool_threshold = 1024).await;
    let mut c = s.login().await;
    let body: String = (0..20_000)
        .map(|i| format!("line {i} of a long message\r\n"))
        .collect();
    let msg = message("big", &body);
    let r = c.append("INBOX", "", &msg).await;
    assert!(r.tagged.starts_with("OK"), "{}", r.tagged);
    c.ok("SELECT INBOX").await;
    let r = c.ok("FETCH 1 (RFC822.SIZE BODY.PEEK[]<100.50>)").await;
    assert!(r.has(&format!("RFC822.SIZE {}", msg.len())));
    assert!(r.untagged[0].windows(50).any(|w| w == &msg[100..150]));
    // The spool directory is left empty.
    let spool = s.dir.path().join("spool");
    assert_eq!(std::fs::read_dir(spool).map(|d| d.count()).unwrap_or(0), 0);
    s.stop().await;
}

#[tokio::test]
async fn fetch_items_and_sections() {
    let s = TestServer::start().await;
    let mut c = setup(&s).await;
    let r = c.ok("FETCH 3 (ENVELOPE BODYSTRUCTURE)").await;
    let t = r.text();
    assert!(t.contains("ENVELOPE (\"Tue, 15 Mar 2022 08:30:00 +0100\" \"Report attached\" ((\"Carol\" NIL \"carol\" \"example.com\"))"), "{t}");
    assert!(t.contains("BODYSTRUCTURE ((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"quoted-printable\""), "{t}");
    assert!(t.contains("\"mixed\" (\"boundary\" \"XYZ\")"), "{t}");
    let r = c
        .ok("FETCH 3 (BODY.PEEK[1] BODY.PEEK[2.MIME] BODY.PEEK[HEADER.FIELDS (Subject)])")
        .await;
    let t = r.text();
    assert!(
        t.contains("BODY[1] {41}\r\nGr=C3=BC=C3=9Fe aus Z=C3=BCrich, zanzibar"),
        "{t}"
    );
    assert!(t.contains("BODY[2.MIME] {"), "{t}");
    assert!(
        t.contains("BODY[HEADER.FIELDS (SUBJECT)] {28}\r\nSubject: Report attached\r\n\r\n"),
        "{t}"
    );
    let r = c
        .ok("FETCH 3 (BINARY.PEEK[2] BINARY.SIZE[2] BINARY.PEEK[1])")
        .await;
    let raw = &r.untagged[0];
    assert!(
        raw.windows(12)
            .any(|w| w == b"BINARY[2] ~{" || w == b"BINARY[2] {8"),
        "{}",
        r.text()
    );
    assert!(raw.windows(8).any(|w| w == [0u8, 1, 2, 3, 4, 5, 6, 7]));
    assert!(r.has("BINARY.SIZE[2] 8"));
    assert!(r.has("Grüße aus Zürich"));
    let r = c.ok("FETCH 1 (BODY.PEEK[TEXT]<0.5> RFC822.HEADER)").await;
    assert!(r.has("BODY[TEXT]<0> {5}\r\nhello"), "{}", r.text());
    assert!(r.has("RFC822.HEADER {"));
    let r = c.ok("FETCH 1:2 FAST").await;
    assert_eq!(r.lines_starting("* ").len(), 2);
    assert!(r.has("INTERNALDATE") && r.has("RFC822.SIZE") && r.has("FLAGS"));
    let r = c.ok("UID FETCH 2:* (FLAGS)").await;
    assert!(r.has("UID 2") && r.has("UID 3") && !r.has("UID 1 "));
    // A UID range with no messages is fine; a sequence number past the end is not.
    let r = c.ok("UID FETCH 100:200 FLAGS").await;
    assert!(r.untagged.is_empty());
    c.bad("FETCH 9 FLAGS").await;
    s.stop().await;
}

#[tokio::test]
async fn non_peek_fetch_sets_seen() {
    let s = TestServer::start().await;
    let mut c = setup(&s).await;
    let r = c.ok("FETCH 1 BODY[TEXT]").await;
    assert!(r.has("FLAGS (\\Seen)"), "{}", r.text());
    let r = c.ok("FETCH 2 BODY.PEEK[TEXT]").await;
    assert!(!r.has("\\Seen"));
    let r = c.ok("FETCH 2 RFC822").await;
    assert!(r.has("\\Seen"), "{}", r.text());
    let r = c.ok("STATUS INBOX (UNSEEN)").await;
    assert!(r.has("UNSEEN 1"));
    s.stop().await;
}

#[tokio::test]
async fn store_flags_and_keywords() {
    let s = TestServer::start().await;
    let mut c = setup(&s).await;
    let r = c.ok("STORE 1 +FLAGS (\\Seen \\Answered)").await;
    assert!(
        r.has("* 1 FETCH (FLAGS (\\Answered \\Seen))"),
        "{}",
        r.text()
    );
    let r = c.ok("STORE 1 -FLAGS (\\Answered)").await;
    assert!(r.has("* 1 FETCH (FLAGS (\\Seen))"), "{}", r.text());
    let r = c.ok("STORE 1:2 FLAGS.SILENT (\\Draft)").await;
    assert!(r.untagged.is_empty(), "{}", r.text());
    let r = c.ok("UID STORE 3 +FLAGS ($Important)").await;
    assert!(
        r.has("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Important)"),
        "{}",
        r.text()
    );
    assert!(r.has("UID 3") && r.has("$Important"), "{}", r.text());
    let r = c.ok("FETCH 1:3 FLAGS").await;
    assert!(r.has("* 1 FETCH (FLAGS (\\Draft))"));
    assert!(r.has("* 2 FETCH (FLAGS (\\Draft))"));
    c.bad("STORE 1 +FLAGS (\\Recent)").await;
    c.bad("STORE 1 BOGUS (\\Seen)").await;
    // No flag-extension is defined (RFC 3501 9: a server MUST NOT generate
    // one), and a keyword is an atom, 7-bit: refused, nothing stored, and
    // no other client is sent them.
    let r = c.bad("STORE 1 +FLAGS (\\Foo)").await;
    assert!(
        r.tagged.contains("Invalid system flag \\Foo"),
        "{}",
        r.tagged
    );
    let r = c.bad("STORE 1 +FLAGS (caf\u{e9})").await;
    assert!(r.tagged.contains("8-bit"), "{}", r.tagged);
    let r = c
        .bad(&format!("APPEND INBOX (\\Foo) {{{}}}\r\n{}", 3, "a\r\n"))
        .await;
    assert!(r.tagged.contains("Invalid system flag"), "{}", r.tagged);
    let r = c.ok("FETCH 1:* (FLAGS)").await;
    assert!(!r.has("\\Foo") && !r.has("caf"), "{}", r.text());
    assert_eq!(r.lines_starting("* ").len(), 3, "{}", r.text());
    s.stop().await;
}

#[tokio::test]
async fn copy_move_and_uidplus() {
    let s = TestServer::start().await;
    let mut c = setup(&s).await;
    let r = c.ok("COPY 1:2 Archive").await;
    assert!(r.tagged.starts_with("OK [COPYUID "), "{}", r.tagged);
    assert!(r.tagged.contains(" 1:2 1:2]"), "{}", r.tagged);
    let r = c.no("COPY 1 nosuch").await;
    assert!(r.tagged.contains("[TRYCREATE]"));
    // A name CREATE would refuse: CREATE cannot help, so no TRYCREATE.
    for cmd in ["COPY 1 \"\"", "MOVE 1 \"a//b\"", "APPEND \"\" {3}\r\na\r\n"] {
        let r = c.no(cmd).await;
        assert!(r.tagged.contains("[CANNOT]"), "{cmd}: {}", r.tagged);
    }
    let r = c.ok("UID MOVE 2 Trash").await;
    assert!(r.has("* OK [COPYUID "), "{}", r.text());
    assert!(r.has("* 2 EXPUNGE"), "{}", r.text());
    let r = c.ok("FETCH 1:* UID").await;
    assert_eq!(r.lines_starting("* ").len(), 2);
    let r = c.ok("STATUS Archive (MESSAGES)").await;
    assert!(r.has("MESSAGES 2"));
    let r = c.ok("STATUS Trash (MESSAGES)").await;
    assert!(r.has("MESSAGES 1"));
    // Flags travel with the message.
    c.ok("SELECT Archive").await;
    let r = c.ok("FETCH 2 FLAGS").await;
    assert!(r.has("\\Flagged"));
    s.stop().await;
}

#[tokio::test]
async fn expunge_and_uid_expunge_never_reuse_uids() {
    let s = TestServer::start().await;
    let mut c = setup(&s).await;
    c.ok("STORE 1:3 +FLAGS.SILENT (\\Deleted)").await;
    let r = c.ok("UID EXPUNGE 2").await;
    assert_eq!(r.lines_starting("* 2 EXPUNGE").len(), 1, "{}", r.text());
    let r = c.ok("EXPUNGE").await;
    // Highest first, so each number is valid when sent: uid 3 (seq 2), then uid 1.
    assert_eq!(r.lines_starting("* ").len(), 2, "{}", r.text());
    assert_eq!(r.text(), "* 2 EXPUNGE\r\n* 1 EXPUNGE\r\n");
    let r = c.append("INBOX", "", &message("again", "x")).await;
    assert!(
        r.tagged.contains(" 4]"),
        "UIDs must not be reused: {}",
        r.tagged
    );
    // CLOSE expunges silently.
    c.ok("SELECT INBOX").await;
    c.ok("STORE 1 +FLAGS (\\Deleted)").await;
    let r = c.ok("CLOSE").await;
    assert!(r.untagged.is_empty());
    let r = c.ok("STATUS INBOX (MESSAGES UIDNEXT)").await;
    assert!(r.has("MESSAGES 0") && r.has("UIDNEXT 5"), "{}", r.text());
    s.stop().await;
}

#[tokio::test]
async fn search_keys() {
    let s = TestServer::start().await;
    let mut c = setup(&s).await;
    let check = |r: &Response, want: &str| {
        let got = r.lines_starting("* SEARCH");
        assert_eq!(got, vec![format!("* SEARCH{want}\r\n")], "{}", r.text());
    };
    check(&c.ok("SEARCH ALL").await, " 1 2 3");
    check(&c.ok("SEARCH FLAGGED").await, " 2");
    check(&c.ok("SEARCH UNFLAGGED").await, " 1 3");
    check(&c.ok("SEARCH SUBJECT first").await, " 1");
    check(&c.ok("SEARCH SUBJECT FIRST").await, " 1");
    check(&c.ok("SEARCH FROM carol").await, " 3");
    check(&c.ok("SEARCH TO bob").await, " 1 2");
    check(&c.ok("SEARCH BODY zanzibar").await, " 3");
    check(&c.ok("SEARCH TEXT \"Report attached\"").await, " 3");
    check(&c.ok("SEARCH BODY \"Report attached\"").await, "");
    check(&c.ok("SEARCH CHARSET UTF-8 BODY {7}\r\nzürich").await, " 3");
    check(&c.ok("SEARCH OR FLAGGED SUBJECT first").await, " 1 2");
    check(&c.ok("SEARCH NOT FLAGGED").await, " 1 3");
    check(&c.ok("SEARCH HEADER Message-ID second").await, " 2");
    check(&c.ok("SEARCH SENTBEFORE 1-Mar-2022").await, " 1 2");
    check(&c.ok("SEARCH SENTON 15-Mar-2022").await, " 3");
    check(&c.ok("SEARCH SINCE 1-Jan-2000").await, " 1 2 3");
    check(&c.ok("SEARCH BEFORE 1-Jan-2000").await, "");
    check(&c.ok("SEARCH LARGER 300").await, " 3");
    check(&c.ok("SEARCH UID 2:3 NOT UID 3").await, " 2");
    check(&c.ok("SEARCH 2:*").await, " 2 3");
    check(&c.ok("UID SEARCH SUBJECT second").await, " 2");
    check(&c.ok("SEARCH (FLAGGED) (TO bob)").await, " 2");
    check(&c.ok("SEARCH YOUNGER 3600").await, " 1 2 3");
    check(&c.ok("SEARCH OLDER 3600").await, "");
    let r = c.no("SEARCH CHARSET X-NOPE BODY x").await;
    assert!(r.tagged.contains("[BADCHARSET"));
    c.bad("SEARCH FROBNICATE").await;
    s.stop().await;
}

/// What `$` holds now, as UIDs.
async fn saved(c: &mut Client) -> Vec<String> {
    c.ok("UID SEARCH UID $").await.lines_starting("* SEARCH")
}

#[tokio::test]
async fn esearch_and_searchres() {
    let s = TestServer::start().await;
    let mut c = setup(&s).await;
    let r = c
        .ok("UID SEARCH RETURN (MIN MAX COUNT ALL) NOT FLAGGED")
        .await;
    let l = r.lines_starting("* ESEARCH");
    assert_eq!(l.len(), 1);
    assert!(
        l[0].contains(" UID MIN 1 MAX 3 COUNT 2 ALL 1,3"),
        "{}",
        l[0]
    );
    let r = c.ok("UID SEARCH RETURN (MIN COUNT MIN) NOT FLAGGED").await;
    let l = r.lines_starting("* ESEARCH");
    assert!(l[0].ends_with(" UID MIN 1 COUNT 2\r\n"), "{}", l[0]);
    let r = c.ok("SEARCH RETURN (COUNT) SUBJECT nothing-matches").await;
    assert!(r.lines_starting("* ESEARCH")[0].contains("COUNT 0"));
    let r = c.ok("SEARCH RETURN (SAVE) SUBJECT first").await;
    assert!(r.untagged.is_empty(), "{}", r.text());
    let r = c.ok("FETCH $ (UID)").await;
    assert_eq!(r.lines_starting("* ").len(), 1);
    assert!(r.has("UID 1"));
    let r = c.ok("UID SEARCH UID $").await;
    assert_eq!(
        r.lines_starting("* SEARCH"),
        vec!["* SEARCH 1\r\n".to_string()]
    );
    // RFC 5182 2.1: a SAVE search answered BAD leaves `$` as it was; one
    // answered NO empties it; SELECT and EXAMINE (even of the same
    // mailbox) empty it.
    c.bad("SEARCH RETURN (SAVE) NOSUCHKEY").await;
    assert_eq!(saved(&mut c).await, vec!["* SEARCH 1\r\n".to_string()]);
    let r = c
        .no("SEARCH RETURN (SAVE) CHARSET X-UNKNOWN SUBJECT second")
        .await;
    assert!(r.tagged.contains("[BADCHARSET"), "{}", r.text());
    assert_eq!(saved(&mut c).await, vec!["* SEARCH\r\n".to_string()]);
    c.ok("SEARCH RETURN (SAVE) SUBJECT first").await;
    c.ok("SELECT INBOX").await;
    assert_eq!(saved(&mut c).await, vec!["* SEARCH\r\n".to_string()]);
    let r = c.ok("FETCH $ (UID)").await;
    assert!(r.untagged.is_empty(), "{}", r.text());
    c.ok("SEARCH RETURN (SAVE) SUBJECT first").await;
    c.ok("EXAMINE INBOX").await;
    assert_eq!(saved(&mut c).await, vec!["* SEARCH\r\n".to_string()]);
    c.ok("SELECT INBOX").await;
    // IMAP4rev2 sessions get ESEARCH for plain SEARCH too.
    c.ok("ENABLE IMAP4rev2").await;
    let r = c.ok("SEARCH ALL").await;
    assert!(
        r.lines_starting("* ESEARCH")[0].contains("ALL 1:3"),
        "{}",
        r.text()
    );
    s.stop().await;
}

#[tokio::test]
async fn condstore_modseq_changedsince_unchangedsince() {
    let s = TestServer::start().await;
    let mut c = setup(&s).await;
    let r = c.ok("FETCH 1:3 (MODSEQ)").await;
    let t = r.text();
    // The FETCH turned CONDSTORE on, with a mailbox selected: its
    // HIGHESTMODSEQ comes first, as Dovecot sends it.
    assert!(
        r.lines_starting("* ")[0].starts_with("* OK [HIGHESTMODSEQ "),
        "{t}"
    );
    assert_eq!(r.lines_starting("* ").len(), 4, "{t}");
    assert!(t.contains("MODSEQ ("), "{t}");
    let r = c.ok("STATUS INBOX (HIGHESTMODSEQ)").await;
    let hms: u64 = r
        .text()
        .split("HIGHESTMODSEQ ")
        .nth(1)
        .unwrap()
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .unwrap();
    c.ok("STORE 2 +FLAGS (\\Seen)").await;
    let r = c
        .ok(&format!("FETCH 1:* (FLAGS) (CHANGEDSINCE {hms})"))
        .await;
    assert_eq!(r.lines_starting("* ").len(), 1, "{}", r.text());
    assert!(r.has("* 2 FETCH"));
    let r = c
        .ok(&format!(
            "STORE 2,3 (UNCHANGEDSINCE {hms}) +FLAGS (\\Answered)"
        ))
        .await;
    assert!(r.tagged.contains("[MODIFIED 2]"), "{}", r.tagged);
    let r = c.ok(&format!("SEARCH MODSEQ {}", hms + 1)).await;
    assert!(
        r.lines_starting("* SEARCH")[0].starts_with("* SEARCH 2 3 (MODSEQ"),
        "{}",
        r.text()
    );
    s.stop().await;
}

/// Messages above the streaming threshold (4 MiB) are served from storage in
/// chunks; the bytes must be exactly those of the in-memory path.
#[tokio::test]
async fn large_message_sections_are_streamed_exactly() {
    let s = TestServer::start().await;
    let mut c = s.login().await;
    let mut big = b"From: big@example.org\r\nSubject: big\r\nContent-Type: multipart/mixed; boundary=\"B\"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nsmall part\r\n--B\r\nContent-Type: application/octet-stream\r\n\r\n".to_vec();
    let mut x: u32 = 7;
    for i in 0..(6 << 20) / 64 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        big.extend_from_slice(
            format!("{i:08} {x:010} abcdefghijklmnopqrstuvwxyz0123456789ABCDE\r\n").as_bytes(),
        );
    }
    big.extend_from_slice(b"--B--\r\n");
    let r = c.append("INBOX", "", &big).await;
    assert!(r.tagged.starts_with("OK"), "{}", r.tagged);
    c.select_settled("INBOX").await;
    let item = first_literal;
    let r = c.ok("FETCH 1 BODY.PEEK[]").await;
    assert_eq!(item(&r), big);
    let r = c.ok("FETCH 1 BODY.PEEK[]<1000000.5000>").await;
    assert!(r.has("BODY[]<1000000> {5000}"));
    assert_eq!(item(&r), &big[1_000_000..1_005_000]);
    let r = c.ok("FETCH 1 BODY.PEEK[1]").await;
    assert_eq!(item(&r), b"small part");
    let r = c
        .ok("FETCH 1 (RFC822.SIZE BODY.PEEK[HEADER.FIELDS (Subject)])")
        .await;
    assert!(r.has(&format!("RFC822.SIZE {}", big.len())));
    assert!(r.has("Subject: big"));
    let r = c.ok("FETCH 1 RFC822.TEXT").await;
    let head_len = big.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(item(&r), &big[head_len..]);
    assert!(
        r.has("FLAGS (\\Seen)"),
        "non-peek streaming fetch still sets \\Seen"
    );
    c.ok("NOOP").await;
    s.stop().await;
}

/// BINARY of a large base64 attachment is decoded as a stream (literal8) and
/// equals the original bytes; partial ranges too.
#[tokio::test]
async fn large_base64_attachment_binary_is_streamed_exactly() {
    let s = TestServer::start().await;
    let mut c = s.login().await;
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let data: Vec<u8> = (0..(5 << 20))
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    let b64 = {
        const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut s = Vec::new();
        for (i, ch) in data.chunks(3).enumerate() {
            if i > 0 && i % 19 == 0 {
                s.extend_from_slice(b"\r\n");
            }
            let b = [ch[0], *ch.get(1).unwrap_or(&0), *ch.get(2).unwrap_or(&0)];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            s.push(T[(n >> 18) as usize & 63]);
            s.push(T[(n >> 12) as usize & 63]);
            s.push(if ch.len() > 1 {
                T[(n >> 6) as usize & 63]
            } else {
                b'='
            });
            s.push(if ch.len() > 2 {
                T[n as usize & 63]
            } else {
                b'='
            });
        }
        s
    };
    let mut msg = b"Subject: attachment\r\nContent-Type: multipart/mixed; boundary=\"Z\"\r\n\r\n--Z\r\nContent-Type: text/plain\r\n\r\nsee attachment\r\n--Z\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n".to_vec();
    msg.extend_from_slice(&b64);
    msg.extend_from_slice(b"\r\n--Z--\r\n");
    let r = c.append("INBOX", "", &msg).await;
    assert!(r.tagged.starts_with("OK"), "{}", r.tagged);
    c.ok("SELECT INBOX").await;
    let item = first_literal;
    let r = c.ok("FETCH 1 (BINARY.SIZE[2] BINARY.PEEK[2])").await;
    assert!(r.has(&format!("BINARY.SIZE[2] {}", data.len())));
    assert!(r.has("BINARY[2] ~{"), "streamed BINARY is a literal8");
    assert!(item(&r) == data, "decoded attachment differs");
    let r = c.ok("FETCH 1 BINARY.PEEK[2]<4000000.300000>").await;
    assert!(r.has("BINARY[2]<4000000> ~{300000}"));
    assert!(item(&r) == data[4_000_000..4_300_000]);
    let r = c.ok("FETCH 1 BINARY.PEEK[1]").await;
    assert_eq!(item(&r), b"see attachment");
    c.ok("NOOP").await;
    s.stop().await;
}

/// Summaries served from the shared cache (a second FETCH, another session,
/// a copy of the same message in another mailbox) are the ones read from
/// the store: same answers as a server without the cache.
#[tokio::test]
async fn fetch_answers_are_the_same_with_and_without_the_summary_cache() {
    const ITEMS: &str = "(ENVELOPE BODYSTRUCTURE BODY.PEEK[HEADER] \
        BODY.PEEK[HEADER.FIELDS (SUBJECT TO)] BINARY.SIZE[1] BODY.PEEK[2.MIME])";
    // The answer without its "* n FETCH" and tagged line.
    let answer = |r: &Response| {
        let t = r.text().replace(&r.tagged, "");
        t[t.find("FETCH (").expect("FETCH")..].to_string()
    };
    let mut answers = Vec::new();
    for mib in [0, 64] {
        let s = TestServer::start_with(|c| c.summary_cache_mib = mib).await;
        let mut a = setup(&s).await;
        let mut b = s.login().await;
        a.ok("COPY 3 Archive").await;
        b.ok("SELECT Archive").await;
        for _ in 0..2 {
            let r = a.ok(&format!("FETCH 3 {ITEMS}")).await;
            assert!(r.text().contains("Report attached"), "{}", r.text());
            answers.push((mib, answer(&r)));
        }
        let r = b.ok(&format!("FETCH 1 {ITEMS}")).await;
        answers.push((mib, answer(&r)));
        s.stop().await;
    }
    let first = &answers[0].1;
    for (mib, text) in &answers {
        assert_eq!(text, first, "summary_cache_mib = {mib}");
    }
}
