//! The FTS5 tokenizer of the search index, `pillarbox_trigram`: every run of
//! three characters is a token, like FTS5's built-in `trigram`, but
//! - a document yields each distinct trigram **once**. The index is
//!   `detail=none` (it stores only which documents hold a token, never where
//!   or how often), so repeats change nothing in it, yet FTS5 hashes every
//!   token it is given: in ordinary mail most trigrams repeat, and handing
//!   FTS5 the repeats was most of the cost of indexing;
//! - it does no case folding: the text indexed and the needles searched are
//!   both already folded by the caller (the exact folding the brute-force
//!   evaluator uses), so folding again would only cost time.
//!
//! Queries (and anything but a document) get every trigram in order, as the
//! built-in tokenizer gives them. Bytes that are not UTF-8 count as one
//! character each, so no input is rejected.
//!
//! The tokenizer is registered per connection ([`register`]); every
//! connection that opens the index tables needs it.
use std::ffi::{c_char, c_int, c_void, CStr};

use rusqlite::{ffi, Connection};

use crate::{Result, StoreError};

/// The name the index tables are created with (`tokenize = '...'`).
pub(crate) const NAME: &str = "pillarbox_trigram";
const NAME_C: &CStr = c"pillarbox_trigram";

/// Makes [`NAME`] available to FTS5 tables opened through this connection.
pub(crate) fn register(conn: &Connection) -> Result<()> {
    // SAFETY: the handle stays valid while `conn` is borrowed; the statement
    // is finalized before returning; `api` outlives the step that writes it.
    unsafe {
        let db = conn.handle();
        let mut stmt: *mut ffi::sqlite3_stmt = std::ptr::null_mut();
        let sql = c"SELECT fts5(?1)";
        let rc = ffi::sqlite3_prepare_v2(db, sql.as_ptr(), -1, &mut stmt, std::ptr::null_mut());
        if rc != ffi::SQLITE_OK {
            return Err(StoreError::Other(format!(
                "cannot reach FTS5 (prepare: code {rc})"
            )));
        }
        let mut api: *mut ffi::fts5_api = std::ptr::null_mut();
        ffi::sqlite3_bind_pointer(
            stmt,
            1,
            (&mut api as *mut *mut ffi::fts5_api).cast::<c_void>(),
            c"fts5_api_ptr".as_ptr(),
            None,
        );
        ffi::sqlite3_step(stmt);
        ffi::sqlite3_finalize(stmt);
        if api.is_null() {
            return Err(StoreError::Other("this SQLite has no FTS5".into()));
        }
        let Some(create) = (*api).xCreateTokenizer else {
            return Err(StoreError::Other("FTS5 cannot register tokenizers".into()));
        };
        // FTS5 copies the struct.
        let mut tok = ffi::fts5_tokenizer {
            xCreate: Some(x_create),
            xDelete: Some(x_delete),
            xTokenize: Some(x_tokenize),
        };
        let rc = create(api, NAME_C.as_ptr(), std::ptr::null_mut(), &mut tok, None);
        if rc != ffi::SQLITE_OK {
            return Err(StoreError::Other(format!(
                "cannot register the {NAME} tokenizer (code {rc})"
            )));
        }
    }
    Ok(())
}

/// The tokenizer has no per-table state: every instance is this address.
static INSTANCE: u8 = 0;

unsafe extern "C" fn x_create(
    _user: *mut c_void,
    _args: *mut *const c_char,
    _n: c_int,
    out: *mut *mut ffi::Fts5Tokenizer,
) -> c_int {
    // SAFETY: FTS5 passes a valid out-pointer; the instance is never written.
    unsafe { *out = std::ptr::addr_of!(INSTANCE).cast_mut().cast() };
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_delete(_tok: *mut ffi::Fts5Tokenizer) {}

type TokenFn =
    unsafe extern "C" fn(*mut c_void, c_int, *const c_char, c_int, c_int, c_int) -> c_int;

unsafe extern "C" fn x_tokenize(
    _tok: *mut ffi::Fts5Tokenizer,
    ctx: *mut c_void,
    flags: c_int,
    text: *const c_char,
    n: c_int,
    token: Option<TokenFn>,
) -> c_int {
    let Some(token) = token else {
        return ffi::SQLITE_MISUSE;
    };
    if text.is_null() || n <= 0 {
        return ffi::SQLITE_OK;
    }
    // SAFETY: FTS5 hands us `n` readable bytes.
    let bytes = unsafe { std::slice::from_raw_parts(text.cast::<u8>(), n as usize) };
    let distinct = flags & ffi::FTS5_TOKENIZE_DOCUMENT != 0;
    for_each_trigram(bytes, distinct, |start, end| {
        // SAFETY: `start..end` lies within the text FTS5 gave us; offsets fit
        // in c_int because the whole text's length does.
        unsafe {
            token(
                ctx,
                0,
                text.add(start),
                (end - start) as c_int,
                start as c_int,
                end as c_int,
            )
        }
    })
}

/// Length of the character starting with byte `b` (1 for bytes that cannot
/// start a UTF-8 sequence).
fn char_len(b: u8) -> usize {
    match b {
        0xF0..=0xF7 => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

/// The bytes of one character (as [`char_len`] delimits it) as a number.
/// Distinct byte strings give distinct numbers: the lead byte fixes the
/// length, and the ranges of the lengths do not overlap.
fn char_key(c: &[u8]) -> u32 {
    c.iter().fold(0u32, |k, &b| (k << 8) | u32::from(b))
}

/// Slots of the per-thread table that drops repeated trigrams.
const SLOTS: usize = 4096;

/// The characters most folded text is made of, 64 of them, so that a
/// trigram of three has an 18-bit number and the trigrams seen in a document
/// fit an exact bitmap of 32 KiB (see [`Seen::ascii`]).
const ALPHABET: &[u8; 64] = b"abcdefghijklmnopqrstuvwxyz0123456789 \n\r\t.,-'\":;!?()@/_=+&#*%<>[]";

/// A byte's index in [`ALPHABET`], or [`NOT_CODED`].
static CODE: [u8; 256] = {
    let mut t = [NOT_CODED; 256];
    let mut i = 0;
    while i < ALPHABET.len() {
        t[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    t
};
const NOT_CODED: u8 = 0xFF;
/// The bits of three [`ALPHABET`] indexes.
const CODED_TRIGRAMS_MASK: usize = (1 << 18) - 1;

/// Direct-mapped table of recently emitted trigrams: a repeat found in its
/// slot is not emitted again. It is lossy on purpose (a trigram evicted by
/// another one is emitted again, which FTS5 tolerates: it only costs the
/// hashing this table saves), and exact where it matters: a trigram is only
/// skipped when its full key is in the slot, tagged with this document's
/// generation (so the table is never cleared).
///
/// Trigrams of three [`ALPHABET`] characters (most of them) skip the table:
/// `ascii` has a bit for each of them, exact and cheaper to test, and
/// `touched` lists its words set in this document, cleared at the next one.
struct Seen {
    slots: Box<[(u128, u32)]>,
    generation: u32,
    ascii: Box<[u64]>,
    touched: Vec<u16>,
}

impl Seen {
    fn new() -> Seen {
        Seen {
            slots: vec![(0, 0); SLOTS].into_boxed_slice(),
            generation: 0,
            ascii: vec![0; (CODED_TRIGRAMS_MASK + 1) / 64].into_boxed_slice(),
            touched: Vec::new(),
        }
    }

    /// Starts a new document.
    fn next_document(&mut self) {
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.slots.fill((0, 0));
            self.generation = 1;
        }
        for w in self.touched.drain(..) {
            self.ascii[usize::from(w)] = 0;
        }
    }

    /// True the first time the trigram numbered `n` (its [`ALPHABET`]
    /// indexes, 6 bits each) is seen in this document (exactly).
    fn first_coded(&mut self, n: usize) -> bool {
        let (word, bit) = (n >> 6, 1u64 << (n & 63));
        let w = &mut self.ascii[word];
        if *w & bit != 0 {
            return false;
        }
        if *w == 0 {
            // `word` < 4096.
            self.touched.push(word as u16);
        }
        *w |= bit;
        true
    }

    /// True the first time `key` is seen in this document (as far as the
    /// table remembers).
    fn first(&mut self, key: u128) -> bool {
        let h = ((key as u64) ^ ((key >> 64) as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F))
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let slot = &mut self.slots[(h >> (64 - SLOTS.trailing_zeros())) as usize];
        if *slot == (key, self.generation) {
            return false;
        }
        *slot = (key, self.generation);
        true
    }
}

/// Takes the ALPHABET characters of `text` from `at` on, while the last
/// three characters all have one (`window` holds them): only the window and
/// the exact bitmap matter there, so nothing else is kept. Emits each
/// trigram seen for the first time; returns where the run ends, or the
/// first non-OK code `emit` returns.
#[inline]
fn alphabet_run(
    text: &[u8],
    mut at: usize,
    window: &mut usize,
    seen: &mut Seen,
    emit: &mut impl FnMut(usize, usize) -> c_int,
) -> std::result::Result<usize, c_int> {
    while at < text.len() {
        let code = CODE[usize::from(text[at])];
        if code == NOT_CODED {
            break;
        }
        *window = ((*window << 6) | usize::from(code)) & CODED_TRIGRAMS_MASK;
        at += 1;
        if seen.first_coded(*window) {
            let rc = emit(at - 3, at);
            if rc != ffi::SQLITE_OK {
                return Err(rc);
            }
        }
    }
    Ok(at)
}

/// Calls `emit(start, end)` with the byte range of every trigram of `text`
/// (repeats mostly dropped if `distinct`), stopping at (and returning) the
/// first non-OK code `emit` returns.
fn for_each_trigram(
    text: &[u8],
    distinct: bool,
    mut emit: impl FnMut(usize, usize) -> c_int,
) -> c_int {
    thread_local! {
        static SEEN: std::cell::RefCell<Option<Seen>> = const { std::cell::RefCell::new(None) };
    }
    let mut run = |mut seen: Option<&mut Seen>| -> c_int {
        // Start offsets and keys of the last three characters; the ALPHABET
        // indexes of the last three, 6 bits each, and how many of the last
        // characters (up to 3) have one.
        let mut starts = [0usize; 3];
        let mut keys = [0u32; 3];
        let mut window = 0usize;
        let mut coded = 0u8;
        let mut count = 0usize;
        let mut at = 0usize;
        while at < text.len() {
            // A run of ALPHABET characters (most of a document) goes through
            // `alphabet_run`; after it, the last three characters are single
            // bytes, from which `starts` and `keys` are restored.
            if let (3, Some(seen)) = (coded, seen.as_deref_mut()) {
                let end = match alphabet_run(text, at, &mut window, seen, &mut emit) {
                    Ok(end) => end,
                    Err(rc) => return rc,
                };
                if end > at {
                    count += end - at;
                    at = end;
                    starts = [at - 3, at - 2, at - 1];
                    keys = [
                        u32::from(text[at - 3]),
                        u32::from(text[at - 2]),
                        u32::from(text[at - 1]),
                    ];
                    continue;
                }
            }
            let b = text[at];
            let code = CODE[usize::from(b)];
            starts = [starts[1], starts[2], at];
            if code != NOT_CODED {
                keys = [keys[1], keys[2], u32::from(b)];
                window = ((window << 6) | usize::from(code)) & CODED_TRIGRAMS_MASK;
                coded = (coded + 1).min(3);
                at += 1;
            } else {
                let len = char_len(b).min(text.len() - at);
                keys = [keys[1], keys[2], char_key(&text[at..at + len])];
                coded = 0;
                at += len;
            }
            count += 1;
            if count < 3 {
                continue;
            }
            if let Some(seen) = seen.as_deref_mut() {
                let first = if coded == 3 {
                    seen.first_coded(window)
                } else {
                    let key = (u128::from(keys[0]) << 64)
                        | (u128::from(keys[1]) << 32)
                        | u128::from(keys[2]);
                    seen.first(key)
                };
                if !first {
                    continue;
                }
            }
            let rc = emit(starts[0], at);
            if rc != ffi::SQLITE_OK {
                return rc;
            }
        }
        ffi::SQLITE_OK
    };
    if !distinct {
        return run(None);
    }
    SEEN.with(|cell| match cell.try_borrow_mut() {
        Ok(mut slot) => {
            let seen = slot.get_or_insert_with(Seen::new);
            seen.next_document();
            run(Some(seen))
        }
        // Re-entered (cannot happen: emit never tokenizes): no filtering.
        Err(_) => run(None),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grams(text: &str, distinct: bool) -> Vec<String> {
        let mut out = Vec::new();
        for_each_trigram(text.as_bytes(), distinct, |s, e| {
            out.push(text[s..e].to_string());
            ffi::SQLITE_OK
        });
        out
    }

    #[test]
    fn every_trigram_in_order_for_queries() {
        assert_eq!(grams("abcab", false), ["abc", "bca", "cab"]);
        assert_eq!(grams("ab", false), Vec::<String>::new());
        assert_eq!(grams("aaaa", false), ["aaa", "aaa"]);
        // Multi-byte characters are one character each.
        assert_eq!(grams("éüßx", false), ["éüß", "üßx"]);
        assert_eq!(grams("a😀b", false), ["a😀b"]);
    }

    #[test]
    fn documents_give_each_trigram_once() {
        assert_eq!(grams("aaaa", true), ["aaa"]);
        assert_eq!(grams("abcabcabc", true), ["abc", "bca", "cab"]);
        // Grams sharing their first 8 bytes still differ.
        assert_eq!(grams("😀😀😀😀😁", true), ["😀😀😀", "😀😀😁"]);
        // A new document starts with nothing seen.
        assert_eq!(grams("abc", true), ["abc"]);
        assert_eq!(grams("abc", true), ["abc"]);
    }

    #[test]
    fn documents_never_lose_a_trigram_when_the_table_overflows() {
        // Far more distinct trigrams than slots, each repeated.
        let once: String = (0..20_000u32)
            .filter_map(|i| char::from_u32(0x4E00 + (i * 7919) % 20_000))
            .collect();
        let text = once.repeat(3);
        let all: std::collections::BTreeSet<String> = grams(&text, false).into_iter().collect();
        let emitted = grams(&text, true);
        assert!(all.len() > 2 * SLOTS);
        let distinct: std::collections::BTreeSet<String> = emitted.iter().cloned().collect();
        assert_eq!(distinct, all);
    }

    #[test]
    fn documents_mixing_alphabet_runs_and_other_characters() {
        // Runs of ALPHABET characters (the fast path) broken by characters
        // outside it (upper case, other ASCII, multi-byte) at every offset.
        let pieces = ["ab", "c", " ", ".", "A", "Z", "~", "é", "😀", "ab c", "xyz"];
        let mut x = 12345u32;
        let text: String = (0..5000)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                pieces[(x >> 16) as usize % pieces.len()]
            })
            .collect();
        let all = grams(&text, false);
        let emitted = grams(&text, true);
        let set = |v: &[String]| v.iter().cloned().collect::<std::collections::BTreeSet<_>>();
        assert_eq!(set(&emitted), set(&all));
        // Emitted in the order of the text: a subsequence of all trigrams.
        let mut rest = all.iter();
        for g in &emitted {
            assert!(rest.any(|a| a == g), "{g:?} out of order");
        }
        // Trigrams of ALPHABET characters are never emitted twice.
        let coded: Vec<&String> = emitted
            .iter()
            .filter(|g| g.bytes().all(|b| CODE[usize::from(b)] != NOT_CODED))
            .collect();
        let distinct: std::collections::BTreeSet<&String> = coded.iter().copied().collect();
        assert_eq!(distinct.len(), coded.len());
        assert!(coded.len() > 20, "{}", coded.len());
    }

    #[test]
    fn the_alphabet_codes_64_distinct_bytes() {
        let coded: Vec<u8> = (0..=255u8)
            .filter(|&b| CODE[usize::from(b)] != NOT_CODED)
            .collect();
        assert_eq!(coded.len(), 64);
        for (i, &b) in ALPHABET.iter().enumerate() {
            assert_eq!(usize::from(CODE[usize::from(b)]), i);
        }
    }

    #[test]
    fn plain_text_trigrams_are_dropped_exactly_past_the_table_size() {
        // Far more distinct trigrams of the alphabet than table slots: the
        // bitmap, unlike the table, never lets a repeat through.
        let words: Vec<String> = (0..6_000u32)
            .map(|i| {
                let a = ALPHABET[(i % 26) as usize] as char;
                let b = ALPHABET[(i / 26 % 36) as usize] as char;
                let c = ALPHABET[(i / 936 % 26) as usize] as char;
                format!("{a}{b}{c}")
            })
            .collect();
        let once = words.join("");
        let text = format!("{once}{once}");
        let all: std::collections::BTreeSet<String> = grams(&text, false).into_iter().collect();
        assert!(all.len() > SLOTS);
        let emitted = grams(&text, true);
        assert_eq!(emitted.len(), all.len(), "a repeat was emitted");
        assert_eq!(
            emitted
                .into_iter()
                .collect::<std::collections::BTreeSet<_>>(),
            all
        );
        // Mixed with characters outside the alphabet, each trigram still once.
        assert_eq!(
            grams("ab\u{e9}ab\u{e9}abAab", true),
            ["ab\u{e9}", "b\u{e9}a", "\u{e9}ab", "abA", "bAa", "Aab"]
        );
    }

    #[test]
    fn stops_at_the_first_refusal() {
        let mut n = 0;
        let rc = for_each_trigram(b"abcdef", false, |_, _| {
            n += 1;
            if n == 2 {
                ffi::SQLITE_DONE
            } else {
                ffi::SQLITE_OK
            }
        });
        assert_eq!((rc, n), (ffi::SQLITE_DONE, 2));
    }

    #[test]
    fn character_keys_are_distinct_across_lengths() {
        // A lone lead byte (cut off at the end of the text), a continuation
        // byte, and whole characters of each length.
        let chars: [&[u8]; 7] = [
            b"a",
            b"\xc3",
            b"\xa9",
            "é".as_bytes(),
            "€".as_bytes(),
            b"\xe2\x82",
            "😀".as_bytes(),
        ];
        let keys: std::collections::HashSet<u32> = chars.iter().map(|c| char_key(c)).collect();
        assert_eq!(keys.len(), chars.len());
    }

    #[test]
    fn invalid_utf8_counts_bytewise() {
        let mut out = Vec::new();
        for_each_trigram(b"\xff\xfeab\xe2", false, |s, e| {
            out.push((s, e));
            ffi::SQLITE_OK
        });
        assert_eq!(out, [(0, 3), (1, 4), (2, 5)]);
    }

    #[test]
    fn fts5_table_finds_substrings_through_the_tokenizer() {
        let conn = Connection::open_in_memory().unwrap();
        register(&conn).unwrap();
        conn.execute_batch(&format!(
            "CREATE VIRTUAL TABLE t USING fts5(x, tokenize = '{NAME}', detail = 'none',
                 content = '', contentless_delete = 1);
             INSERT INTO t(rowid, x) VALUES (1, 'the quick brown fox'), (2, 'über straße'),
                 (3, 'aaaa aaaa aaaa');"
        ))
        .unwrap();
        let find = |q: &str| -> Vec<i64> {
            let mut s = conn
                .prepare("SELECT rowid FROM t WHERE t MATCH ?1 ORDER BY rowid")
                .unwrap();
            s.query_map([q], |r| r.get(0))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap()
        };
        assert_eq!(find("\"ick\" AND \"k b\""), [1]);
        assert_eq!(find("\"aße\""), [2]);
        assert_eq!(find("\"aaa\""), [3]);
        assert_eq!(find("\"xyz\""), Vec::<i64>::new());
        conn.execute("DELETE FROM t WHERE rowid = 1", []).unwrap();
        assert_eq!(find("\"ick\""), Vec::<i64>::new());
    }
}
