//! Flag canonicalisation. System flags are matched case-insensitively and
//! stored in canonical case; keywords are deduplicated case-insensitively (the
//! first spelling wins); `\Recent` is never stored. A flag set is stored as the
//! sorted flags joined by single spaces (flags are IMAP atoms: no spaces).
use crate::{FlagOp, Result, StoreError};

pub(crate) const SEEN: &str = "\\Seen";
pub(crate) const DELETED: &str = "\\Deleted";
use crate::SYSTEM_FLAGS as SYSTEM;

/// The canonical spelling of a flag, `None` for flags that are never stored.
fn canonical(flag: &str) -> Result<Option<String>> {
    if flag.is_empty()
        || flag
            .bytes()
            .any(|b| b <= b' ' || b == 0x7f || b == b'(' || b == b')' || b == b'"')
    {
        return Err(StoreError::InvalidName(format!("flag {flag:?}")));
    }
    if flag.starts_with('\\') {
        if flag.eq_ignore_ascii_case("\\Recent") {
            return Ok(None);
        }
        if let Some(s) = SYSTEM.iter().find(|s| s.eq_ignore_ascii_case(flag)) {
            return Ok(Some((*s).to_string()));
        }
    }
    Ok(Some(flag.to_string()))
}

fn contains(set: &[String], flag: &str) -> bool {
    set.iter().any(|f| f.eq_ignore_ascii_case(flag))
}

/// Adds `add` to `set` (keeping existing spellings) and returns it sorted.
fn merged(set: &[String], add: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = set.to_vec();
    for f in add {
        if let Some(c) = canonical(f)? {
            if !contains(&out, &c) {
                out.push(c);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Canonical, deduplicated, sorted form of a client-supplied flag list.
pub(crate) fn normalize(flags: &[String]) -> Result<Vec<String>> {
    merged(&[], flags)
}

/// Applies a STORE operation to the current (already canonical) flags.
pub(crate) fn apply(current: &[String], op: FlagOp, flags: &[String]) -> Result<Vec<String>> {
    match op {
        FlagOp::Replace => normalize(flags),
        FlagOp::Add => merged(current, flags),
        FlagOp::Remove => {
            // Validate the input even though removing never adds anything.
            for f in flags {
                canonical(f)?;
            }
            let mut out: Vec<String> = current
                .iter()
                .filter(|f| !contains(flags, f))
                .cloned()
                .collect();
            out.sort();
            Ok(out)
        }
    }
}

pub(crate) fn encode(flags: &[String]) -> String {
    flags.join(" ")
}

pub(crate) fn decode(s: &str) -> Vec<String> {
    s.split(' ')
        .filter(|f| !f.is_empty())
        .map(str::to_string)
        .collect()
}

pub(crate) fn has(flags: &[String], flag: &str) -> bool {
    flags.iter().any(|f| f == flag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn canonical_system_flags_and_keywords() {
        let n = normalize(&v(&[
            "\\SEEN",
            "foo",
            "\\recent",
            "FOO",
            "\\flagged",
            "$Junk",
            "\\Seen",
        ]))
        .unwrap();
        assert_eq!(n, v(&["$Junk", "\\Flagged", "\\Seen", "foo"]));
    }

    #[test]
    fn ops() {
        let cur = v(&["Work", "\\Seen"]);
        assert_eq!(
            apply(&cur, FlagOp::Add, &v(&["work", "\\answered"])).unwrap(),
            v(&["Work", "\\Answered", "\\Seen"])
        );
        assert_eq!(
            apply(&cur, FlagOp::Remove, &v(&["WORK", "\\Draft"])).unwrap(),
            v(&["\\Seen"])
        );
        assert_eq!(
            apply(&cur, FlagOp::Replace, &v(&["\\deleted"])).unwrap(),
            v(&["\\Deleted"])
        );
        assert!(apply(&cur, FlagOp::Add, &v(&["bad flag"])).is_err());
    }

    #[test]
    fn encode_decode() {
        let f = v(&["\\Seen", "a"]);
        assert_eq!(decode(&encode(&f)), f);
        assert!(decode("").is_empty());
    }

    #[test]
    fn system_flag_lists_are_shared_process_wide() {
        for f in [
            &[][..],
            &["\\Seen"],
            &["\\Flagged", "\\Seen"],
            &crate::SYSTEM_FLAGS,
        ] {
            let (a, b) = (crate::share_flags(&v(f)), crate::share_flags(&v(f)));
            assert!(std::sync::Arc::ptr_eq(&a, &b), "{f:?}");
            assert_eq!(*a, v(f));
        }
        // Keywords, or a list not in canonical form, keep their own list,
        // exactly as given.
        for f in [
            &["$Junk"][..],
            &["\\Seen", "work"],
            &["\\Seen", "\\Flagged"],
            &["\\Seen", "\\Seen"],
        ] {
            let (a, b) = (crate::share_flags(&v(f)), crate::share_flags(&v(f)));
            assert!(!std::sync::Arc::ptr_eq(&a, &b), "{f:?}");
            assert_eq!(*a, v(f));
        }
    }
}
