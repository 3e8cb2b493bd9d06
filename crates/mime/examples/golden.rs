//! Replays the golden corpus's FETCH commands (C1..C7) against
//! `pillarbox-mime` without a server and prints one JSON line per command
//! in the format of `golden/fetch.jsonl`, for `tests/golden_compare.py`.
//!
//! Usage: `cargo run -p pillarbox-mime --example golden -- CORPUS_DIR > out.jsonl`

use std::fs;
use std::path::Path;

use pillarbox_mime::{BinaryError, Summary};
use pillarbox_proto::types::{Section, SectionText};

fn lit(out: &mut Vec<u8>, data: &[u8], allow8: bool) {
    if allow8 && data.contains(&0) {
        out.extend_from_slice(format!("~{{{}}}\r\n", data.len()).as_bytes());
    } else {
        out.extend_from_slice(format!("{{{}}}\r\n", data.len()).as_bytes());
    }
    out.extend_from_slice(data);
}

fn sec(part: &[u32], text: Option<SectionText>) -> Section {
    Section {
        part: part.to_vec(),
        text,
    }
}

fn latin1(b: &[u8]) -> String {
    b.iter().map(|&c| c as char).collect()
}

fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| ".".into());
    let dir = Path::new(&dir);
    let append = fs::read_to_string(dir.join("golden/append.jsonl")).expect("append.jsonl");
    let mut uid = 0u32;
    for line in append.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).expect("json");
        let file = v["file"].as_str().unwrap_or_default().to_string();
        uid += 1;
        let appended = dir.join("golden/appended").join(&file);
        let raw = fs::read(&appended)
            .or_else(|_| fs::read(dir.join("messages").join(&file)))
            .expect("message");
        // the server stores literal8 APPENDs with binary parts as base64
        let raw = if v["literal"].as_str() == Some("literal8") {
            pillarbox_mime::convert_binary_append(&raw).unwrap_or(raw)
        } else {
            raw
        };
        let s = Summary::parse(&raw);
        let s = Summary::from_bytes(&s.to_bytes()).expect("round trip");
        let head = format!("* {uid} FETCH (UID {uid} ");
        for cmd in ["C1", "C2", "C3", "C4", "C5", "C6", "C7"] {
            let mut out = head.clone().into_bytes();
            let mut tagged = "OK Fetch completed.\r\n".to_string();
            match cmd {
                "C1" => {
                    out.extend_from_slice(
                        format!("RFC822.SIZE {} ENVELOPE ", raw.len()).as_bytes(),
                    );
                    out.extend_from_slice(s.envelope());
                    out.extend_from_slice(b" BODYSTRUCTURE ");
                    out.extend_from_slice(s.bodystructure());
                }
                "C2" => {
                    out.extend_from_slice(b"BODY ");
                    out.extend_from_slice(s.body());
                }
                "C3" => {
                    out.extend_from_slice(b"BODY[HEADER] ");
                    lit(
                        &mut out,
                        &s.section(&raw, &sec(&[], Some(SectionText::Header))),
                        false,
                    );
                    out.extend_from_slice(b" BODY[TEXT] ");
                    lit(
                        &mut out,
                        &s.section(&raw, &sec(&[], Some(SectionText::Text))),
                        false,
                    );
                }
                "C4" => {
                    out.extend_from_slice(b"BODY[1] ");
                    lit(&mut out, &s.section(&raw, &sec(&[1], None)), false);
                    out.extend_from_slice(b" BODY[1.MIME] ");
                    lit(
                        &mut out,
                        &s.section(&raw, &sec(&[1], Some(SectionText::Mime))),
                        false,
                    );
                    let names = ["From", "To", "Subject", "Date", "Message-ID"];
                    out.extend_from_slice(
                        b" BODY[HEADER.FIELDS (FROM TO SUBJECT DATE MESSAGE-ID)] ",
                    );
                    let hf =
                        SectionText::HeaderFields(names.iter().map(|n| n.to_string()).collect());
                    lit(&mut out, &s.section(&raw, &sec(&[], Some(hf))), false);
                }
                "C5" => {
                    // like the server: each item that succeeds is sent, the
                    // last failure becomes the tagged NO
                    let mut failure = None;
                    match s.binary(&raw, &[1]) {
                        Ok(data) => {
                            out.extend_from_slice(b"BINARY[1] ");
                            lit(&mut out, &data, true);
                        }
                        Err(e) => failure = Some(e),
                    }
                    match s.binary_size(&[1]) {
                        Ok(size) => {
                            if !out.ends_with(b" ") {
                                out.push(b' ');
                            }
                            out.extend_from_slice(format!("BINARY.SIZE[1] {size}").as_bytes());
                        }
                        Err(e) => failure = Some(e),
                    }
                    if out.ends_with(b" ") {
                        out.truncate(out.len() - 1);
                    }
                    if let Some(e) = failure {
                        tagged = match e {
                            BinaryError::UnknownCte => {
                                "NO [UNKNOWN-CTE] Unknown Content-Transfer-Encoding\r\n".into()
                            }
                            BinaryError::Parse => "NO [PARSE] Invalid data in MIME part\r\n".into(),
                        };
                    }
                }
                "C6" => {
                    let t = s.section(&raw, &sec(&[], Some(SectionText::Text)));
                    out.extend_from_slice(b"BODY[TEXT]<0> ");
                    lit(&mut out, &t[..t.len().min(100)], false);
                }
                _ => {
                    out.extend_from_slice(b"BODY[2] ");
                    lit(&mut out, &s.section(&raw, &sec(&[2], None)), false);
                    out.extend_from_slice(b" BODY[1.1] ");
                    lit(&mut out, &s.section(&raw, &sec(&[1, 1], None)), false);
                    out.extend_from_slice(b" BODY[2.MIME] ");
                    lit(
                        &mut out,
                        &s.section(&raw, &sec(&[2], Some(SectionText::Mime))),
                        false,
                    );
                    out.extend_from_slice(b" BODY[1.HEADER] ");
                    lit(
                        &mut out,
                        &s.section(&raw, &sec(&[1], Some(SectionText::Header))),
                        false,
                    );
                    let names = vec!["Received".to_string(), "Content-Type".to_string()];
                    out.extend_from_slice(b" BODY[HEADER.FIELDS.NOT (RECEIVED CONTENT-TYPE)] ");
                    let hf = SectionText::HeaderFieldsNot(names);
                    lit(&mut out, &s.section(&raw, &sec(&[], Some(hf))), false);
                    let all = s.section(&raw, &sec(&[], None));
                    let a = all.len().min(10);
                    let b = all.len().min(50);
                    out.extend_from_slice(b" BODY[]<10> ");
                    lit(&mut out, &all[a..b], false);
                }
            }
            out.extend_from_slice(b")\r\n");
            let status = tagged.split(' ').next().unwrap_or("OK").to_string();
            let rec = serde_json::json!({
                "file": file,
                "uid": uid,
                "cmd_id": cmd,
                "response": latin1(&out),
                "status": status,
                "tagged": tagged,
            });
            println!("{rec}");
        }
    }
}
