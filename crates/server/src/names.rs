//! Mailbox names: decoding what the client sent (modified UTF-7 for IMAP4rev1,
//! UTF-8 for IMAP4rev2 / UTF8=ACCEPT), INBOX normalisation, validation, and LIST
//! pattern matching. The hierarchy separator is `/`.

use pillarbox_proto::mutf7;

pub(crate) const SEP: char = '/';

/// Decodes a mailbox name or LIST pattern from the wire.
pub(crate) fn decode(raw: &[u8], utf8: bool) -> Result<String, String> {
    let s = if utf8 {
        match std::str::from_utf8(raw) {
            Ok(s) => s.to_string(),
            Err(_) => return Err("Mailbox name is not valid UTF-8".into()),
        }
    } else if raw.contains(&b'&') {
        mutf7::decode(raw).ok_or("Mailbox name is not valid modified UTF-7")?
    } else {
        match std::str::from_utf8(raw) {
            Ok(s) => s.to_string(),
            Err(_) => {
                return Err("Mailbox name contains 8-bit characters; use modified UTF-7".into())
            }
        }
    };
    Ok(normalize_inbox(&s))
}

/// `inbox`, `Inbox/x` → `INBOX`, `INBOX/x`.
pub(crate) fn normalize_inbox(s: &str) -> String {
    if s.len() >= 5 && s.is_char_boundary(5) && s[..5].eq_ignore_ascii_case("INBOX") {
        let rest = &s[5..];
        if rest.is_empty() || rest.starts_with(SEP) {
            return format!("INBOX{rest}");
        }
    }
    s.to_string()
}

/// Checks a name that is to be created.
pub(crate) fn validate(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("Empty mailbox name".into());
    }
    if name.len() > 255 {
        return Err("Mailbox name too long".into());
    }
    if name.starts_with(SEP) || name.ends_with(SEP) || name.contains("//") {
        return Err("Invalid hierarchy in mailbox name".into());
    }
    if name.chars().any(|c| c == '*' || c == '%' || c.is_control()) {
        return Err("Mailbox name contains an invalid character".into());
    }
    if name.split(SEP).count() > 16 {
        return Err("Mailbox hierarchy too deep".into());
    }
    Ok(())
}

/// All proper ancestors of `name`: `a/b/c` → `a`, `a/b`.
pub(crate) fn parents(name: &str) -> Vec<&str> {
    name.match_indices(SEP).map(|(i, _)| &name[..i]).collect()
}

/// Joins a LIST reference and pattern (RFC 9051 6.3.9): the pattern is
/// interpreted relative to the reference.
pub(crate) fn join_reference(reference: &str, pattern: &str) -> String {
    if reference.is_empty() || pattern.starts_with(SEP) {
        return normalize_inbox(pattern);
    }
    if reference.ends_with(SEP) {
        normalize_inbox(&format!("{reference}{pattern}"))
    } else {
        normalize_inbox(&format!("{reference}{SEP}{pattern}"))
    }
}

/// LIST wildcard match: `*` matches anything, `%` anything but the separator.
pub(crate) fn matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Iterative DP keeps this linear-space and free of deep recursion.
    let mut cur = vec![false; n.len() + 1];
    cur[0] = true;
    for pc in &p {
        let mut next = vec![false; n.len() + 1];
        match pc {
            '*' => {
                let mut any = false;
                for j in 0..=n.len() {
                    any |= cur[j];
                    next[j] = any;
                }
            }
            '%' => {
                let mut any = false;
                for j in 0..=n.len() {
                    if j > 0 && n[j - 1] == SEP {
                        any = false;
                    }
                    any |= cur[j];
                    next[j] = any;
                }
            }
            c => {
                for j in 1..=n.len() {
                    next[j] = cur[j - 1] && n[j - 1] == *c;
                }
            }
        }
        cur = next;
    }
    cur[n.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbox_is_case_insensitive() {
        assert_eq!(normalize_inbox("inbox"), "INBOX");
        assert_eq!(normalize_inbox("Inbox/Sub"), "INBOX/Sub");
        assert_eq!(normalize_inbox("Inboxes"), "Inboxes");
    }

    #[test]
    fn wildcards() {
        assert!(matches("*", "a/b/c"));
        assert!(matches("%", "a"));
        assert!(!matches("%", "a/b"));
        assert!(matches("a/%", "a/b"));
        assert!(!matches("a/%", "a/b/c"));
        assert!(matches("a*c", "a/b/c"));
        assert!(matches("%/%", "a/b"));
        assert!(!matches("b", "a"));
        assert!(matches("", ""));
    }

    #[test]
    fn reference_join() {
        assert_eq!(join_reference("", "%"), "%");
        assert_eq!(join_reference("a", "%"), "a/%");
        assert_eq!(join_reference("a/", "%"), "a/%");
        assert_eq!(join_reference("x", "/abs"), "/abs");
    }

    #[test]
    fn validation() {
        assert!(validate("a/b").is_ok());
        assert!(validate("").is_err());
        assert!(validate("/a").is_err());
        assert!(validate("a//b").is_err());
        assert!(validate("a*").is_err());
        assert_eq!(parents("a/b/c"), vec!["a", "a/b"]);
    }
}
