//! Mailbox and account name rules. The hierarchy separator is `/`.
use crate::{Result, StoreError};

const MAX_NAME_BYTES: usize = 1024;

/// A mailbox name: non-empty, no empty component (so no leading, trailing or
/// doubled `/`), no control characters, at most 1 KiB. `INBOX` must be spelled
/// exactly so (the server normalises its case).
pub(crate) fn validate(name: &str) -> Result<()> {
    let bad = |why: &str| Err(StoreError::InvalidName(format!("{name:?}: {why}")));
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > MAX_NAME_BYTES {
        return bad("too long");
    }
    if name.chars().any(|c| c.is_control()) {
        return bad("control character");
    }
    if name.split('/').any(str::is_empty) {
        return bad("empty hierarchy level");
    }
    if name.eq_ignore_ascii_case("INBOX") && name != "INBOX" {
        return bad("INBOX must be spelled INBOX");
    }
    Ok(())
}

pub(crate) fn validate_account(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES || name.chars().any(|c| c.is_control()) {
        return Err(StoreError::InvalidName(format!("account {name:?}")));
    }
    Ok(())
}

/// The proper ancestors of `name`, outermost first: `a/b/c` → `a`, `a/b`.
pub(crate) fn parents(name: &str) -> impl Iterator<Item = &str> {
    name.match_indices('/').map(move |(i, _)| &name[..i])
}

/// `name` is `root` or lies below it.
pub(crate) fn is_inferior_or_same(name: &str, root: &str) -> bool {
    name == root
        || (name.len() > root.len()
            && name.starts_with(root)
            && name.as_bytes()[root.len()] == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert!(validate("INBOX").is_ok());
        assert!(validate("a/b/c").is_ok());
        assert!(validate("Entwürfe").is_ok());
        for bad in ["", "/a", "a/", "a//b", "inbox", "a\nb"] {
            assert!(validate(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parents("a/b/c").collect::<Vec<_>>(), vec!["a", "a/b"]);
        assert_eq!(parents("a").count(), 0);
        assert!(is_inferior_or_same("a/b", "a"));
        assert!(is_inferior_or_same("a", "a"));
        assert!(!is_inferior_or_same("ab", "a"));
    }
}
