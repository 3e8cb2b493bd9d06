//! SEARCH keys (index-assisted and scan paths), SORT/ESORT and THREAD over
//! sockets, on hand-made mail. Expected orders are derived from RFC 5256
//! (base subject 2.1, SORT section 3, THREAD algorithms) and RFC 5957, not
//! from running the code.

mod common;

use common::TestServer;

fn mail(headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut m = String::new();
    for (k, v) in headers {
        m.push_str(&format!("{k}: {v}\r\n"));
    }
    m.push_str("\r\n");
    m.push_str(body);
    m.push_str("\r\n");
    m.into_bytes()
}

/// The numbers of the one `* <word>` line.
fn numbers(r: &common::Response, word: &str) -> Vec<u32> {
    let prefix = format!("* {word}");
    let lines = r.lines_starting(&prefix);
    assert_eq!(lines.len(), 1, "{word}: {:?}", r.text());
    lines[0][prefix.len()..]
        .split_whitespace()
        .map(|n| n.parse().expect("number"))
        .collect()
}

fn thread_line(r: &common::Response) -> String {
    let lines = r.lines_starting("* THREAD");
    assert_eq!(lines.len(), 1, "{:?}", r.text());
    lines[0]["* THREAD".len()..].trim().to_string()
}

/// Five messages with distinct headers and bodies (seq = uid = 1..5).
async fn fixture(c: &mut common::Client) {
    let msgs = [
        mail(
            &[
                ("From", "\"Zoe Zed\" <zoe@example.org>"),
                ("To", "bob@example.net"),
                ("Cc", "carol@example.com"),
                ("Subject", "Re: Quarterly report"),
                ("Date", "Tue, 3 Jan 2023 10:00:00 +0000"),
                ("Message-ID", "<m1@x>"),
            ],
            "Numbers look fine. Xylophone.",
        ),
        mail(
            &[
                ("From", "adam@example.org"),
                ("To", "\"Yolanda\" <yolanda@example.net>"),
                ("Subject", "=?UTF-8?B?U3RyYcOfZSBuYW1lcw==?="),
                ("Date", "Mon, 2 Jan 2023 10:00:00 +0000"),
                ("Message-ID", "<m2@x>"),
                ("X-Ticket", "T-4711"),
            ],
            "Die Straße heißt anders.",
        ),
        mail(
            &[
                ("From", "Mike <mike@example.org>"),
                ("To", "amy@example.net"),
                ("Bcc", "secret@example.com"),
                ("Subject", "Quarterly report"),
                ("Date", "Wed, 4 Jan 2023 09:00:00 -0500"),
                ("Message-ID", "<m3@x>"),
            ],
            "Quarterly numbers attached.",
        ),
        mail(
            &[
                ("From", "bea@example.org"),
                ("To", "zack@example.net"),
                ("Subject", "[list] Fwd: hello world"),
                ("Message-ID", "<m4@x>"),
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Content-Transfer-Encoding", "base64"),
            ],
            "Q2Fmw6kgb3BlbiB0b2RheQ==",
        ),
        mail(
            &[
                ("From", "\"Carl\" <carl@example.org>"),
                ("Subject", "ab"),
                ("Date", "Sun, 1 Jan 2023 23:00:00 -0300"),
                ("Message-ID", "<m5@x>"),
            ],
            "short ab xy",
        ),
    ];
    for m in &msgs {
        c.append("INBOX", "", m).await;
    }
    c.ok("SELECT INBOX").await;
}

#[tokio::test]
async fn search_keys_index_and_scan_paths() {
    let s = TestServer::start().await;
    let mut c = s.login().await;
    fixture(&mut c).await;
    let cases: &[(&str, &[u32])] = &[
        // Index path (>= 3 characters), case-insensitive substring.
        ("BODY xylophone", &[1]),
        ("BODY NUMBERS", &[1, 3]),
        ("BODY straße", &[2]),
        ("BODY café", &[4]), // base64 body decoded
        ("TEXT t-4711", &[2]),
        ("TEXT quarterly", &[1, 3]),
        ("SUBJECT quarterly", &[1, 3]),
        ("SUBJECT straße", &[2]), // RFC 2047 decoded
        ("FROM zoe", &[1]),
        ("FROM \"Zoe Zed\"", &[1]),
        ("FROM example.org", &[1, 2, 3, 4, 5]),
        ("TO yolanda", &[2]),
        ("CC carol", &[1]),
        ("BCC secret", &[3]),
        ("HEADER X-Ticket 4711", &[2]),
        ("HEADER Message-ID m3@", &[3]),
        ("NOT FROM example.org", &[]),
        ("OR FROM mike SUBJECT hello", &[3, 4]),
        // Scan path (shorter than a trigram).
        ("BODY ab", &[5]),
        ("SUBJECT ab", &[5]),
        ("TEXT xy", &[1, 5]),
        ("HEADER Cc \"\"", &[1]),
        ("HEADER X-Ticket \"\"", &[2]),
        // Sent dates from the stored Date: day (its own zone).
        ("SENTON 4-Jan-2023", &[3]),
        ("SENTBEFORE 2-Jan-2023", &[4, 5]),
        ("SENTSINCE 3-Jan-2023", &[1, 3]),
    ];
    for (q, want) in cases {
        let r = c.ok(&format!("SEARCH {q}")).await;
        assert_eq!(numbers(&r, "SEARCH"), *want, "SEARCH {q}");
        let r = c.ok(&format!("UID SEARCH CHARSET UTF-8 {q}")).await;
        assert_eq!(numbers(&r, "SEARCH"), *want, "UID SEARCH {q}");
    }
    // The index follows COPY (shared by content) and EXPUNGE.
    c.ok("COPY 1:3 Archive").await;
    c.ok("STORE 1 +FLAGS (\\Deleted)").await;
    c.ok("EXPUNGE").await;
    let r = c.ok("SEARCH BODY numbers").await;
    assert_eq!(numbers(&r, "SEARCH"), [2]);
    c.ok("SELECT Archive").await;
    let r = c.ok("SEARCH BODY numbers").await;
    assert_eq!(numbers(&r, "SEARCH"), [1, 3]);
    let r = c.ok("SEARCH FROM zoe").await;
    assert_eq!(numbers(&r, "SEARCH"), [1]);
    s.stop().await;
}

/// A client that ORs many terms nests one level per OR (`OR a OR b OR c
/// d`): 250 alternatives are answered, with the index and the scan path
/// mixed; past the configured nesting, BAD, and the session goes on.
#[tokio::test]
async fn long_or_chains_are_searched() {
    let s = TestServer::start().await;
    let mut c = s.login().await;
    fixture(&mut c).await;
    let chain = |terms: &[String]| {
        let (last, rest) = terms.split_last().expect("terms");
        let mut q = String::new();
        for t in rest {
            q.push_str(&format!("OR {t} "));
        }
        q.push_str(last);
        q
    };
    // 248 terms that match nothing, then BODY xylophone (1), SUBJECT ab (5).
    let mut terms: Vec<String> = (0..248).map(|i| format!("SUBJECT nomatch{i}")).collect();
    terms.push("BODY xylophone".into());
    terms.push("SUBJECT ab".into());
    let r = c.ok(&format!("SEARCH {}", chain(&terms))).await;
    assert_eq!(numbers(&r, "SEARCH"), [1, 5]);
    let r = c.ok(&format!("SEARCH NOT ({})", chain(&terms))).await;
    assert_eq!(numbers(&r, "SEARCH"), [2, 3, 4]);
    let terms: Vec<String> = (0..300).map(|i| format!("UID {}", i + 1)).collect();
    let r = c.bad(&format!("SEARCH {}", chain(&terms))).await;
    assert!(r.tagged.contains("Too deep nesting"), "{}", r.tagged);
    c.ok("NOOP").await;
    s.stop().await;
}

/// A message with a PDF attachment and an attached message.
const ATTACHMENTS: &[u8] = b"From: Ann <ann@example.org>\r\n\
To: bob@example.org\r\n\
Subject: Figures\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\
\r\n\
--b1\r\n\
Content-Type: text/plain; charset=us-ascii\r\n\
\r\n\
See the attachments.\r\n\
--b1\r\n\
Content-Type: application/pdf; name=\"report-Q3.pdf\"\r\n\
Content-Disposition: attachment; filename=\"report-Q3.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
JVBERi0xLjQKJcfs\r\n\
--b1\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
From: Carl <carl@example.org>\r\n\
Subject: Forwarded minutes\r\n\
\r\n\
The minutes.\r\n\
--b1--\r\n";

/// TEXT searches "the header (including MIME header fields) or body"
/// (RFC 9051 6.4.4): the header fields of the parts and of an attached
/// message too, so an attachment is found by its name or type; BODY and
/// the header keys look at neither. Checked at once (the texts are most
/// likely not indexed yet: the message is read) and once they are (the
/// index gives the candidates).
#[tokio::test]
async fn text_searches_the_mime_headers_of_parts() {
    let s = TestServer::start().await;
    let mut c = s.login().await;
    c.append(
        "INBOX",
        "",
        &mail(&[("Subject", "plain")], "report-Q3.pdf is late"),
    )
    .await;
    c.append("INBOX", "", ATTACHMENTS).await;
    c.ok("SELECT INBOX").await;
    let cases: &[(&str, &[u32])] = &[
        ("TEXT report-Q3.pdf", &[1, 2]),
        ("TEXT application/pdf", &[2]),
        ("TEXT \"Forwarded minutes\"", &[2]),
        ("TEXT carl@example.org", &[2]),
        ("TEXT us-ascii", &[2]),
        ("BODY report-Q3.pdf", &[1]),
        ("BODY application/pdf", &[]),
        ("BODY \"Forwarded minutes\"", &[]),
        ("BODY \"The minutes\"", &[2]),
        ("SUBJECT Forwarded", &[]),
        ("FROM carl", &[]),
        ("HEADER Content-Type pdf", &[]),
    ];
    let db = rusqlite::Connection::open(s.dir.path().join("meta.sqlite3")).expect("db");
    let pending = || -> i64 {
        db.query_row("SELECT count(*) FROM fts_pending", [], |r| r.get(0))
            .expect("pending")
    };
    for indexed in [false, true] {
        if indexed {
            let deadline = std::time::Instant::now() + common::TIMEOUT;
            while pending() > 0 {
                assert!(std::time::Instant::now() < deadline, "texts not written");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
        for (q, want) in cases {
            let r = c.ok(&format!("SEARCH {q}")).await;
            assert_eq!(
                numbers(&r, "SEARCH"),
                *want,
                "SEARCH {q} (indexed: {indexed})"
            );
        }
    }
    s.stop().await;
}

#[tokio::test]
async fn sort_orders_follow_rfc_5256() {
    let s = TestServer::start().await;
    let mut c = s.login().await;
    let r = c.ok("CAPABILITY").await;
    for cap in [
        "SORT",
        "SORT=DISPLAY",
        "ESORT",
        "THREAD=REFERENCES",
        "THREAD=REFS",
    ] {
        assert!(r.text().contains(cap), "{cap}");
    }
    fixture(&mut c).await;
    // DATE (UTC): 5 = 2 Jan 02:00, 2 = 2 Jan 10:00, 1 = 3 Jan 10:00,
    // 3 = 4 Jan 14:00; 4 has no Date: so its INTERNALDATE (now) is latest.
    let cases: &[(&str, &[u32])] = &[
        ("(DATE)", &[5, 2, 1, 3, 4]),
        ("(REVERSE DATE)", &[4, 3, 1, 2, 5]),
        // Base subjects (2.1): 1 and 3 "QUARTERLY REPORT" ("Re:" removed),
        // 2 "STRASSE NAMES", 4 "HELLO WORLD" ("[list] Fwd:" removed), 5 "AB";
        // 1 and 3 tie, so sequence order.
        ("(SUBJECT)", &[5, 4, 1, 3, 2]),
        ("(REVERSE SUBJECT)", &[2, 1, 3, 4, 5]),
        // addr-mailbox of first From: adam, bea, carl, mike, zoe.
        ("(FROM)", &[2, 4, 5, 3, 1]),
        // First To mailbox: 5 has none (""), amy, bob, yolanda, zack.
        ("(TO)", &[5, 3, 1, 2, 4]),
        // Cc: only 1 has one; empty keys first, ties in sequence order.
        ("(CC)", &[2, 3, 4, 5, 1]),
        ("(REVERSE CC)", &[1, 2, 3, 4, 5]),
        // DISPLAYFROM: display name or addr-spec: ADAM@..., BEA@..., CARL,
        // MIKE, ZOE ZED.
        ("(DISPLAYFROM)", &[2, 4, 5, 3, 1]),
        // DISPLAYTO: "" (5), AMY@, BOB@, YOLANDA, ZACK@.
        ("(DISPLAYTO)", &[5, 3, 1, 2, 4]),
        // Subject then reverse date: 1 and 3 share the base subject, 3 is newer.
        ("(SUBJECT REVERSE DATE)", &[5, 4, 3, 1, 2]),
    ];
    for (crit, want) in cases {
        let r = c.ok(&format!("SORT {crit} UTF-8 ALL")).await;
        assert_eq!(numbers(&r, "SORT"), *want, "SORT {crit}");
    }
    // SIZE: compare to the sizes the server reports.
    let r = c.ok("FETCH 1:5 RFC822.SIZE").await;
    let mut sizes: Vec<(u64, u32)> = r
        .lines_starting("* ")
        .iter()
        .map(|l| {
            let seq: u32 = l[2..].split(' ').next().expect("seq").parse().expect("n");
            let size: u64 = l
                .split("RFC822.SIZE ")
                .nth(1)
                .expect("size")
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect::<String>()
                .parse()
                .expect("n");
            (size, seq)
        })
        .collect();
    sizes.sort();
    let want: Vec<u32> = sizes.iter().map(|x| x.1).collect();
    let r = c.ok("SORT (SIZE) UTF-8 ALL").await;
    assert_eq!(numbers(&r, "SORT"), want);
    // With search criteria, and UID SORT.
    let r = c.ok("UID SORT (FROM) UTF-8 BODY numbers").await;
    assert_eq!(numbers(&r, "SORT"), [3, 1]);
    // ESORT (RFC 5267): MIN/MAX are first/last in sort order; ALL keeps it.
    let r = c
        .ok("UID SORT RETURN (MIN MAX COUNT ALL) (DATE) UTF-8 ALL")
        .await;
    let line = &r.lines_starting("* ESEARCH")[0];
    assert!(
        line.trim_end()
            .ends_with("UID MIN 5 MAX 4 COUNT 5 ALL 5,2,1,3:4"),
        "{line}"
    );
    // ARRIVAL: INTERNALDATE given at APPEND (LITERAL+).
    for (i, date) in [
        "03-Jan-2023 10:00:00 +0000",
        "01-Jan-2023 10:00:00 +0000",
        "02-Jan-2023 10:00:00 +0100",
    ]
    .iter()
    .enumerate()
    {
        let msg = mail(&[("Subject", &format!("arrival {i}"))], "x");
        let text = format!(
            "APPEND Archive \"{date}\" {{{}+}}\r\n{}",
            msg.len(),
            String::from_utf8_lossy(&msg)
        );
        c.ok(&text).await;
    }
    c.ok("SELECT Archive").await;
    let r = c.ok("SORT (ARRIVAL) UTF-8 ALL").await;
    assert_eq!(numbers(&r, "SORT"), [2, 3, 1]);
    let r = c.ok("SORT (REVERSE ARRIVAL) UTF-8 ALL").await;
    assert_eq!(numbers(&r, "SORT"), [1, 3, 2]);
    c.bad("SORT (BOGUS) UTF-8 ALL").await;
    c.bad("SORT (DATE) ALL").await;
    s.stop().await;
}

#[tokio::test]
async fn thread_algorithms_follow_rfc_5256() {
    let s = TestServer::start().await;
    let mut c = s.login().await;
    let m = |id: &str, refs: &str, subject: &str, date: &str| {
        let mut h = vec![
            ("From", "x@example.org"),
            ("Subject", subject),
            ("Date", date),
            ("Message-ID", id),
        ];
        if !refs.is_empty() {
            h.push(("References", refs));
        }
        mail(&h, "body")
    };
    let msgs = [
        // 1: thread root.
        m("<a@x>", "", "Plans", "Mon, 2 Jan 2023 10:00:00 +0000"),
        // 2: reply to 1.
        m(
            "<b@x>",
            "<a@x>",
            "Re: Plans",
            "Mon, 2 Jan 2023 11:00:00 +0000",
        ),
        // 3: unrelated, oldest.
        m("<c@x>", "", "Lunch", "Sun, 1 Jan 2023 09:00:00 +0000"),
        // 4: reply to 2 (chain a > b > d).
        m(
            "<d@x>",
            "<a@x> <b@x>",
            "Re: Plans",
            "Mon, 2 Jan 2023 12:00:00 +0000",
        ),
        // 5: second reply to 1, earlier than 4 but later than 2.
        m(
            "<e@x>",
            "<a@x>",
            "Re: Plans",
            "Mon, 2 Jan 2023 11:30:00 +0000",
        ),
        // 6: reply to a message we never saw; subject "Lunch" again (reply).
        m(
            "<f@x>",
            "<zz@x>",
            "Re: Lunch",
            "Tue, 3 Jan 2023 08:00:00 +0000",
        ),
    ];
    for msg in &msgs {
        c.append("INBOX", "", msg).await;
    }
    c.ok("SELECT INBOX").await;
    // ORDEREDSUBJECT: groups LUNCH {3, 6} and PLANS {1, 2, 5, 4} (by date);
    // first of each is the parent of the rest; groups by first date.
    let r = c.ok("THREAD ORDEREDSUBJECT UTF-8 ALL").await;
    assert_eq!(thread_line(&r), "(3 6)(1 (2)(5)(4))");
    // REFERENCES: 1 > {2 > 4, 5}; the dummy <zz@x> above 6 is pruned (one
    // child, promoted); roots by date: 3, 1, 6; then step 5 merges 6 (a reply)
    // under 3 (not a reply) with the same base subject LUNCH.
    let r = c.ok("THREAD REFERENCES UTF-8 ALL").await;
    assert_eq!(thread_line(&r), "(3 6)(1 (2 4)(5))");
    // REFS: no subject merging; threads ordered by their newest message:
    // 3 (1 Jan), 1's thread (2 Jan 12:00), 6 (3 Jan).
    let r = c.ok("THREAD REFS UTF-8 ALL").await;
    assert_eq!(thread_line(&r), "(3)(1 (2 4)(5))(6)");
    // UID THREAD with a search key.
    let r = c.ok("UID THREAD REFERENCES UTF-8 SUBJECT plans").await;
    assert_eq!(thread_line(&r), "(1 (2 4)(5))");
    let r = c
        .ok("THREAD REFERENCES UTF-8 SUBJECT nothing-matches")
        .await;
    assert_eq!(thread_line(&r), "");
    c.bad("THREAD BOGUS UTF-8 ALL").await;
    s.stop().await;
}

/// A database whose index was emptied (what the schema 7 migration does, or
/// an interrupted `pillarbox reindex`) is indexed again by the server in the
/// background; searches are right before, during and after.
#[tokio::test]
async fn server_indexes_unindexed_messages_in_the_background() {
    searches_stay_right_while_indexing(|dir| {
        let (store, _) = pillarbox_server::open_store(dir).expect("store");
        store.clear_search_index().expect("clear");
        assert_eq!(store.unindexed_blobs(10).expect("q").len(), 5);
    })
    .await;
}

/// The full-text tables live in a file of their own, `meta-search.sqlite3`
/// (derived data). Deleted while the server was stopped, the index starts
/// over: every message is unindexed, indexed again in the background, and
/// searches are right before, during and after.
#[tokio::test]
async fn a_lost_index_file_is_rebuilt_in_the_background() {
    searches_stay_right_while_indexing(|dir| {
        let index = dir.join("meta-search.sqlite3");
        assert!(index.exists(), "no index file in the data directory");
        for suffix in ["", "-wal", "-shm"] {
            let mut p = index.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    })
    .await;
}

/// Stores the fixture, then restarts the server with `unindex` run while it
/// is stopped (it leaves the fixture's messages unindexed): SEARCH is right
/// at once, the server indexes all five in the background, and SEARCH is
/// still right afterwards.
async fn searches_stay_right_while_indexing(unindex: impl FnOnce(&std::path::Path)) {
    let mut s = TestServer::start().await;
    let mut c = s.login().await;
    fixture(&mut c).await;
    c.ok("LOGOUT").await;
    s.restart(unindex).await;
    let mut c = s.login().await;
    c.ok("SELECT INBOX").await;
    let check = |r: &common::Response, want: &[u32]| assert_eq!(numbers(r, "SEARCH"), want);
    check(&c.ok("SEARCH BODY numbers").await, &[1, 3]);
    let (store, _) = pillarbox_server::open_store(s.dir.path()).expect("store");
    let deadline = std::time::Instant::now() + common::TIMEOUT;
    while !store.unindexed_blobs(1).expect("q").is_empty() {
        assert!(std::time::Instant::now() < deadline, "still unindexed");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(store.search_index_size().expect("size").docs, 5);
    check(&c.ok("SEARCH BODY numbers").await, &[1, 3]);
    check(&c.ok("SEARCH SUBJECT straße").await, &[2]);
    check(&c.ok("SEARCH BODY nowhere-at-all").await, &[]);
    s.stop().await;
}
