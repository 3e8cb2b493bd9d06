//! Deterministic, realistic-looking test messages: the same seed gives the
//! same bytes, so both servers of a comparison get identical mail.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const WORDS: &[&str] = &[
    "meeting", "project", "update", "invoice", "report", "quarter", "review", "draft", "the",
    "and", "for", "with", "please", "attached", "schedule", "tomorrow", "budget", "release",
    "server", "customer", "team", "thanks", "regards", "question", "follow", "status", "deadline",
    "notes", "agenda", "proposal",
];
const NAMES: &[&str] = &[
    "Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy",
];

/// Body sizes in bytes with weights: mostly small mail, some large.
const SIZES: &[(usize, u32)] = &[
    (800, 30),
    (2_000, 30),
    (5_000, 20),
    (15_000, 12),
    (60_000, 6),
    (200_000, 2),
];

fn words(rng: &mut StdRng, n: usize) -> String {
    let mut s = String::new();
    for i in 0..n {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(WORDS[rng.gen_range(0..WORDS.len())]);
    }
    s
}

/// Message number `i` of the stream for `seed` (CRLF line endings).
pub fn message(seed: u64, i: u64) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ i);
    let from = NAMES[rng.gen_range(0..NAMES.len())];
    let to = NAMES[rng.gen_range(0..NAMES.len())];
    let total: u32 = SIZES.iter().map(|s| s.1).sum();
    let mut pick = rng.gen_range(0..total);
    let mut size = SIZES[0].0;
    for &(s, w) in SIZES {
        if pick < w {
            size = s;
            break;
        }
        pick -= w;
    }
    let day = 1 + (i % 28);
    let mut m = format!(
        "Return-Path: <{f}@example.org>\r\n\
         Received: from mx.example.org by mail.example.com; Mon, {day} Jan 2024 10:{mm:02}:00 +0000\r\n\
         From: {from} <{f}@example.org>\r\n\
         To: {to} <{t}@example.com>\r\n\
         Subject: {subj}\r\n\
         Date: Mon, {day} Jan 2024 10:{mm:02}:00 +0000\r\n\
         Message-ID: <{seed}.{i}@loadgen.example.org>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\
         \r\n",
        f = from.to_lowercase(),
        t = to.to_lowercase(),
        subj = words(&mut rng, 6),
        mm = i % 60,
    );
    while m.len() < size {
        let n = rng.gen_range(6..14);
        m.push_str(&words(&mut rng, n));
        m.push_str("\r\n");
    }
    m.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_well_formed() {
        let a = message(1, 42);
        assert_eq!(a, message(1, 42));
        assert_ne!(a, message(1, 43));
        assert_ne!(a, message(2, 42));
        let s = String::from_utf8(a).unwrap();
        assert!(s.contains("\r\n\r\n"));
        assert!(s.ends_with("\r\n"));
        assert!(!s.replace("\r\n", "").contains('\n'), "bare LF");
        assert!(s.len() >= 800);
    }
}
