//! Unit tests on hand-made messages (no corpus needed).

use std::borrow::Cow;

use pillarbox_proto::types::{Section, SectionText};

use crate::{search, BinaryError, Summary};

fn sec(part: &[u32], text: Option<SectionText>) -> Section {
    Section {
        part: part.to_vec(),
        text,
    }
}

fn s(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const MULTI: &[u8] = b"From: A <a@b.c>\r\nTo: x@y.z\r\nSubject: hi\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\npreamble\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nsoft=\r\nbreak =C3=A9\r\n--b1\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\nFrom: i@j.k\r\n\r\ninner body\r\n--b1--\r\nepilogue\r\n";

#[test]
fn multipart_structure_and_sections() {
    let m = Summary::parse(MULTI);
    let bs = s(m.bodystructure());
    assert!(bs.starts_with("((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"quoted-printable\" 19 1 NIL NIL NIL NIL)(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" "), "{bs}");
    assert!(
        bs.ends_with(" \"mixed\" (\"boundary\" \"b1\") NIL NIL NIL)"),
        "{bs}"
    );
    assert!(s(m.body()).ends_with(" \"mixed\")"));
    assert_eq!(
        s(&m.section(MULTI, &sec(&[1], None))),
        "soft=\r\nbreak =C3=A9"
    );
    assert_eq!(
        s(&m.section(MULTI, &sec(&[1], Some(SectionText::Mime)))),
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    );
    assert_eq!(
        s(&m.section(MULTI, &sec(&[2], Some(SectionText::Header)))),
        "Subject: inner\r\nFrom: i@j.k\r\n\r\n"
    );
    assert_eq!(
        s(&m.section(MULTI, &sec(&[2], Some(SectionText::Text)))),
        "inner body"
    );
    assert_eq!(s(&m.section(MULTI, &sec(&[2, 1], None))), "inner body");
    // BODY[1.1] of a leaf inside a multipart is the leaf itself (Dovecot)
    assert_eq!(
        s(&m.section(MULTI, &sec(&[1, 1], None))),
        "soft=\r\nbreak =C3=A9"
    );
    // nonexistent parts are empty
    assert_eq!(m.section(MULTI, &sec(&[3], None)).len(), 0);
    assert_eq!(
        m.section(MULTI, &sec(&[1], Some(SectionText::Header)))
            .len(),
        0
    );
    let hf = SectionText::HeaderFields(vec!["subject".into(), "TO".into()]);
    assert_eq!(
        s(&m.section(MULTI, &sec(&[], Some(hf)))),
        "To: x@y.z\r\nSubject: hi\r\n\r\n"
    );
    let hn = SectionText::HeaderFieldsNot(vec!["content-type".into(), "from".into()]);
    assert_eq!(
        s(&m.section(MULTI, &sec(&[], Some(hn)))),
        "To: x@y.z\r\nSubject: hi\r\n\r\n"
    );
    assert_eq!(m.section(MULTI, &sec(&[], None)), Cow::Borrowed(MULTI));
}

#[test]
fn binary_decoding() {
    let m = Summary::parse(MULTI);
    assert_eq!(
        m.binary(MULTI, &[1]).unwrap().as_ref(),
        "softbreak é".as_bytes()
    );
    assert_eq!(m.binary_size(&[1]).unwrap(), "softbreak é".len() as u64);
    let b64 = b"Content-Transfer-Encoding: base64\r\n\r\naGVs\r\nbG8=\r\n";
    assert_eq!(
        Summary::parse(b64).binary(b64, &[1]).unwrap().as_ref(),
        b"hello"
    );
    let bad = b"Content-Transfer-Encoding: base64\r\n\r\naGV*bG8=\r\n";
    assert_eq!(
        Summary::parse(bad).binary(bad, &[1]),
        Err(BinaryError::Parse)
    );
    let short = b"Content-Transfer-Encoding: base64\r\n\r\naGVsb\r\n";
    assert_eq!(
        Summary::parse(short).binary(short, &[1]),
        Err(BinaryError::Parse)
    );
    let gz = b"Content-Transfer-Encoding: x-gzip64\r\n\r\nabc\r\n";
    assert_eq!(
        Summary::parse(gz).binary(gz, &[1]),
        Err(BinaryError::UnknownCte)
    );
    let seven = b"Content-Transfer-Encoding: 7bit\r\n\r\nplain\r\n";
    assert_eq!(
        Summary::parse(seven).binary(seven, &[1]).unwrap().as_ref(),
        b"plain\r\n"
    );
}

#[test]
fn envelope_quirks() {
    let raw = b"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nSubject: a\r\n\tfolded  subject\r\nFrom: bar\r\nTo: \"Q \\\"x\\\"\" <q@x.y>, grp: m@n.o;\r\nTo: second@x.y\r\nCc: <>\r\nMessage-ID: <id@x>\r\n\r\nbody\r\n";
    let m = Summary::parse(raw);
    let env = s(m.envelope());
    assert!(
        env.starts_with("(\"Mon, 1 Jan 2024 00:00:00 +0000\" {16}\r\na folded subject"),
        "{env}"
    );
    assert!(
        env.contains("((NIL NIL \"bar\" \"MISSING_DOMAIN\"))"),
        "{env}"
    );
    assert!(env.contains("(NIL NIL \"grp\" NIL)(NIL NIL \"m\" \"n.o\")(NIL NIL NIL NIL)(NIL NIL \"second\" \"x.y\")"), "{env}");
    assert!(
        env.contains("((NIL NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\"))"),
        "{env}"
    );
    assert!(env.ends_with(" NIL \"<id@x>\")"), "{env}");
    assert_eq!(m.sent_date(), Some(1704067200));
    // RFC 2047 is left encoded in ENVELOPE, decoded for SEARCH
    let enc = b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n\r\nx";
    assert!(s(Summary::parse(enc).envelope()).contains("\"=?utf-8?q?Gr=C3=BC=C3=9Fe?=\""));
    assert_eq!(
        search::header_values(enc, "subject"),
        vec!["Grüße".to_string()]
    );
    assert!(search::has_header(enc, "SUBJECT"));
    assert!(!search::has_header(enc, "from"));
    assert!(search::headers_text(enc).contains("Grüße"));
}

#[test]
fn bodystructure_quirks() {
    // no boundary: one empty text/plain child
    let nb = b"Content-Type: multipart/mixed\r\n\r\nstuff\r\n";
    let bs = s(Summary::parse(nb).bodystructure());
    assert!(bs.starts_with("((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL) \"mixed\""), "{bs}");
    // first Content-Type wins, case preserved, RFC 2231 kept encoded
    let ct = b"Content-Type: TEXT/Plain; Name*=utf-8''a%20b\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\nhi\r\n";
    let bs = s(Summary::parse(ct).bodystructure());
    assert!(
        bs.starts_with("(\"TEXT\" \"Plain\" (\"Name*\" \"utf-8''a%20b\" \"charset\" \"us-ascii\")"),
        "{bs}"
    );
    // unparsable Content-Type
    let bad = b"Content-Type: text/plain>\r\n\r\nhi\r\n";
    assert!(
        s(Summary::parse(bad).bodystructure()).starts_with("(\"\" \"\" NIL NIL NIL \"7bit\" 4 NIL")
    );
}

#[test]
fn bare_lf_and_missing_close_boundary() {
    let raw = b"Content-Type: multipart/alternative; boundary=zz\n\n--zz\nContent-Type: text/plain\n\none\n--zz\nContent-Type: text/html\n\n<b>two</b>\n";
    let m = Summary::parse(raw);
    assert_eq!(s(&m.section(raw, &sec(&[1], None))), "one");
    assert_eq!(s(&m.section(raw, &sec(&[2], None))), "<b>two</b>\n");
    assert!(s(m.body()).contains("\"html\""));
}

/// mail-parser (DESIGN.md) ends a part when the boundary string appears
/// inside a line; our scanner only recognises `--boundary` at a line start.
#[test]
fn boundary_inside_a_line_does_not_end_the_part() {
    let raw = b"Content-Type: multipart/mixed; boundary=XYZ\r\n\r\n--XYZ\r\nContent-Type: text/plain\r\n\r\nthis line mentions --XYZ in the middle\r\nand XYZ--XYZ too\r\n--XYZ--\r\n";
    let m = Summary::parse(raw);
    assert_eq!(
        s(&m.section(raw, &sec(&[1], None))),
        "this line mentions --XYZ in the middle\r\nand XYZ--XYZ too"
    );
}

#[test]
fn header_without_body_and_non_header_first_line() {
    let raw = b"not a header line\r\nFrom: a@b.c\r\n";
    let m = Summary::parse(raw);
    assert_eq!(
        m.section(raw, &sec(&[], Some(SectionText::Header)))
            .as_ref(),
        raw.as_slice()
    );
    assert_eq!(m.section(raw, &sec(&[], Some(SectionText::Text))).len(), 0);
    // single part: BODY[1.1] is empty, BODY[1.MIME] is the message header
    let one = b"Subject: x\r\n\r\nbody\r\n";
    let m = Summary::parse(one);
    assert_eq!(m.section(one, &sec(&[1, 1], None)).len(), 0);
    assert_eq!(
        s(&m.section(one, &sec(&[1], Some(SectionText::Mime)))),
        "Subject: x\r\n\r\n"
    );
}

#[test]
fn serde_round_trip() {
    let m = Summary::parse(MULTI);
    let back = Summary::from_bytes(&m.to_bytes()).expect("round trip");
    assert_eq!(back, m);
    assert!(Summary::from_bytes(b"garbage").is_none());
    // Summaries stored by earlier versions (JSON) still load.
    let json = serde_json::to_vec(&m).unwrap();
    assert_eq!(Summary::from_bytes(&json).expect("json"), m);
}

#[test]
fn section_ranges_match_sections() {
    use pillarbox_proto::types::{Section, SectionText};
    let m = Summary::parse(MULTI);
    let mut sections = vec![Section {
        part: vec![],
        text: None,
    }];
    for part in [vec![], vec![1], vec![2], vec![3], vec![1, 1], vec![9]] {
        for text in [
            None,
            Some(SectionText::Header),
            Some(SectionText::Text),
            Some(SectionText::Mime),
        ] {
            if part.is_empty() && text.is_none() {
                continue;
            }
            sections.push(Section {
                part: part.clone(),
                text,
            });
        }
    }
    for s in &sections {
        let (a, b) = m.section_range(s, MULTI.len()).expect("plain slice");
        assert_eq!(&MULTI[a..b], m.section(MULTI, s).as_ref(), "{s:?}");
    }
    let fields = Section {
        part: vec![],
        text: Some(SectionText::HeaderFields(vec!["Subject".into()])),
    };
    assert_eq!(m.section_range(&fields, MULTI.len()), None);
}

#[test]
fn header_sections_from_the_stored_head_equal_those_from_the_message() {
    use pillarbox_proto::types::{Section, SectionText};
    for raw in [
        MULTI,
        b"Subject: x\r\nFrom: a@b\r\n\r\nbody\r\n".as_slice(),
        b"no header at all".as_slice(),
        b"".as_slice(),
    ] {
        let m = Summary::parse(raw);
        for text in [
            SectionText::Header,
            SectionText::HeaderFields(vec!["subject".into(), "From".into()]),
            SectionText::HeaderFieldsNot(vec!["Subject".into()]),
        ] {
            let s = Section {
                part: vec![],
                text: Some(text),
            };
            assert!(Summary::head_answers(&s));
            assert_eq!(m.section_from_head(&s), m.section(raw, &s));
        }
        let body = Section {
            part: vec![],
            text: Some(SectionText::Text),
        };
        assert!(!Summary::head_answers(&body));
        assert!(!Summary::head_answers(&Section {
            part: vec![1],
            text: Some(SectionText::Header)
        }));
    }
}

#[test]
fn body_text_decodes_and_recurses() {
    let t = search::body_text(MULTI);
    assert!(t.contains("softbreak é"), "{t}");
    assert!(t.contains("inner body"), "{t}");
}

/// Deterministic, bounded fuzzing: truncations and byte mutations of a few
/// seeds must never panic, and sections must stay inside the input.
#[test]
fn no_panic_on_random_and_truncated_input() {
    let seeds: [&[u8]; 3] = [MULTI, b"Content-Type: multipart/digest; boundary=\"d\"\r\n\r\n--d\r\n\r\nSubject: s\r\n\r\nx\r\n--d--", b"From: (unterminated <a@\r\nTo: \"q\\\r\nContent-Type: message/rfc822\r\n\r\nContent-Type: multipart/x; boundary=a\r\n\r\n--a\r\n--a--"];
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let sections = [
        sec(&[], None),
        sec(&[1], None),
        sec(&[1, 1], None),
        sec(&[2], Some(SectionText::Mime)),
        sec(&[1], Some(SectionText::Header)),
        sec(&[], Some(SectionText::HeaderFieldsNot(vec!["to".into()]))),
    ];
    for seed in seeds {
        for cut in 0..=seed.len() {
            let raw = &seed[..cut];
            let m = Summary::parse(raw);
            for sct in &sections {
                assert!(m.section(raw, sct).len() <= raw.len() + 2);
            }
            let _ = m.binary(raw, &[1]);
        }
        for _ in 0..300 {
            let mut raw = seed.to_vec();
            for _ in 0..(next() % 8) {
                let i = (next() as usize) % raw.len();
                raw[i] = b"\r\n-:;\"\\()<>@=\0\xff ab"[(next() % 18) as usize];
            }
            let m = Summary::parse(&raw);
            for sct in &sections {
                let _ = m.section(&raw, sct);
            }
            // BINARY.SIZE is exactly the length of BINARY whenever both succeed
            for path in [&[][..], &[1], &[2], &[1, 1], &[2, 1], &[3]] {
                if let (Ok(b), Ok(n)) = (m.binary(&raw, path), m.binary_size(path)) {
                    assert_eq!(b.len() as u64, n, "{path:?} of {:?}", s(&raw));
                }
            }
            let _ = search::body_text(&raw);
            let _ = search::header_values(&raw, "to");
        }
    }
}

#[test]
fn streamed_binary_equals_binary_for_any_chunking() {
    use pillarbox_proto::types::{Section, SectionText};
    let _ = (
        Section {
            part: vec![],
            text: None,
        },
        SectionText::Text,
    );
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for round in 0..60 {
        let len = (rnd() % 3000) as usize;
        let data: Vec<u8> = (0..len).map(|_| (rnd() % 256) as u8).collect();
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&data);
        let mut b64_lines = String::new();
        let width = 60 + (rnd() % 20) as usize; // not always a multiple of 4
        for (i, c) in b64.chars().enumerate() {
            if i > 0 && i % width == 0 {
                b64_lines.push_str("\r\n");
            }
            b64_lines.push(c);
        }
        let text: String = (0..len)
            .map(|_| match rnd() % 20 {
                0 => '=',
                1 => ' ',
                2 => '\n',
                3 => 'é',
                _ => (b'a' + (rnd() % 26) as u8) as char,
            })
            .collect();
        let mut qp = String::new();
        let mut col = 0;
        for ch in text.chars() {
            let enc = match ch {
                '\n' => {
                    qp.push_str("\r\n");
                    col = 0;
                    continue;
                }
                '=' => "=3D".to_string(),
                'é' => "=C3=A9".to_string(),
                c => c.to_string(),
            };
            if col + enc.len() > 72 {
                qp.push_str("=\r\n");
                col = 0;
            }
            col += enc.len();
            qp.push_str(&enc);
        }
        for (cte, body) in [
            ("base64", b64_lines.as_bytes()),
            ("quoted-printable", qp.as_bytes()),
            ("8bit", qp.as_bytes()),
        ] {
            let mut msg = format!("Subject: t\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: {cte}\r\n\r\n").into_bytes();
            msg.extend_from_slice(body);
            msg.extend_from_slice(b"\r\n--b--\r\n");
            let m = Summary::parse(&msg);
            let whole = m.binary(&msg, &[1]).expect("valid part").into_owned();
            let (start, end, size, mut dec) = m.binary_stream(&[1]).expect("stream plan");
            assert_eq!(size, whole.len() as u64, "round {round} {cte}");
            let mut out = Vec::new();
            let mut pos = start;
            while pos < end {
                let step = 1 + (rnd() % 97) as usize;
                let next = (pos + step).min(end);
                dec.feed(&msg[pos..next], &mut out);
                pos = next;
            }
            dec.finish(&mut out);
            assert_eq!(out, whole, "round {round} {cte}");
        }
    }
    // Composite parts and the whole message are not streamed.
    let m = Summary::parse(MULTI);
    assert!(m.binary_stream(&[]).is_none());
}

/// Summaries stored before the byte fields were marked `serde_bytes` decode
/// unchanged, and new ones decode with the old layout: the encoding is the
/// same (postcard writes a byte sequence as its length and the bytes).
#[test]
fn summary_encoding_is_unchanged_by_serde_bytes() {
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Old {
        envelope: Vec<u8>,
        bodystructure: Vec<u8>,
        body: Vec<u8>,
        root: crate::structure::Part,
        sent_date: Option<i64>,
        #[serde(default)]
        head: Vec<u8>,
    }
    let raw = b"From: a@example.com\r\nSubject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nhello\r\n--b--\r\n";
    let new = Summary::parse(raw);
    let old = Old {
        envelope: new.envelope.clone(),
        bodystructure: new.bodystructure.clone(),
        body: new.body.clone(),
        root: new.root.clone(),
        sent_date: new.sent_date,
        head: new.head.clone(),
    };
    let mut old_bytes = vec![1u8];
    old_bytes.extend(postcard::to_stdvec(&old).unwrap());
    assert_eq!(new.to_bytes(), old_bytes);
    assert_eq!(Summary::from_bytes(&old_bytes), Some(new.clone()));
    let back: Old = postcard::from_bytes(&new.to_bytes()[1..]).unwrap();
    assert_eq!(back, old);
    // The JSON form of the first summaries still reads too.
    let json = serde_json::to_vec(&old).unwrap();
    assert_eq!(Summary::from_bytes(&json), Some(new));
}

/// HEADER.FIELDS(.NOT) from the header kept at ingest, through the field
/// index built from it, answers exactly what scanning the message does, also
/// after the summary went through storage (the index is rebuilt, not
/// stored).
#[test]
fn header_fields_from_the_index_match_a_scan() {
    let messages: [&[u8]; 6] = [
        MULTI,
        b"Subject: folded\r\n  on two lines\r\nX-Odd\r\nTo:  spaced\r\nsubject : again\r\n\r\nbody\r\n",
        b"from: lower@case\nTo: bare-lf\n\nbody\n",
        b"No-Body: at all\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n",
        b"\r\nbody without a header\r\n",
        b"",
    ];
    let lists: [Vec<String>; 4] = [
        vec!["subject".into(), "TO".into()],
        vec!["From".into(), "date".into(), "x-odd".into()],
        vec!["absent".into()],
        vec![],
    ];
    for raw in messages {
        let stored = Summary::parse(raw);
        let loaded = Summary::from_bytes(&stored.to_bytes()).unwrap();
        for names in &lists {
            for text in [
                SectionText::HeaderFields(names.clone()),
                SectionText::HeaderFieldsNot(names.clone()),
            ] {
                let section = sec(&[], Some(text));
                let scanned = stored.section(raw, &section);
                assert_eq!(
                    stored.section_from_head(&section),
                    scanned,
                    "{:?} {names:?}",
                    s(raw)
                );
                assert_eq!(loaded.section_from_head(&section), scanned);
            }
        }
    }
}
