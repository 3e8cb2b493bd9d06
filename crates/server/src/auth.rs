//! Password hashing (argon2id, PHC strings) and verification.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash password: {e}"))
}

pub fn verify_password(password: &[u8], hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default().verify_password(password, &parsed).is_ok(),
        Err(_) => false,
    }
}

/// Decodes a SASL PLAIN message (`authzid NUL authcid NUL passwd`, RFC 4616).
pub(crate) fn decode_plain(msg: &[u8]) -> Option<(Vec<u8>, Vec<u8>, Vec<u8>)> {
    let mut it = msg.split(|b| *b == 0);
    let authz = it.next()?.to_vec();
    let authc = it.next()?.to_vec();
    let pass = it.next()?.to_vec();
    if it.next().is_some() || authc.is_empty() {
        return None;
    }
    Some((authz, authc, pass))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash_password("s3cret").unwrap();
        assert!(h.starts_with("$argon2"));
        assert!(verify_password(b"s3cret", &h));
        assert!(!verify_password(b"wrong", &h));
        assert!(!verify_password(b"s3cret", "not a hash"));
    }

    #[test]
    fn sasl_plain() {
        assert_eq!(
            decode_plain(b"\0bob\0pw"),
            Some((vec![], b"bob".to_vec(), b"pw".to_vec()))
        );
        assert_eq!(decode_plain(b"bob\0pw"), None);
        assert_eq!(decode_plain(b"\0\0pw"), None);
        assert_eq!(decode_plain(b"a\0b\0c\0d"), None);
    }
}
