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

/// Verifies passwords against stored argon2 hashes without letting a burst of
/// logins run many 19 MiB argon2 computations at once (a semaphore sized to
/// the CPUs), and remembers recent successful verifications like Dovecot's
/// auth cache: a keyed BLAKE3 digest of the password (key random per process)
/// per user, valid while the stored hash is unchanged and for `CACHE_TTL`.
/// Failed attempts are never cached, so guessing still pays full price.
pub(crate) struct Verifier {
    permits: tokio::sync::Semaphore,
    key: [u8; 32],
    cache: std::sync::Mutex<std::collections::HashMap<String, CacheEntry>>,
}

struct CacheEntry {
    stored_hash: String,
    digest: [u8; 32],
    at: std::time::Instant,
}

const CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(3600);
const CACHE_MAX: usize = 100_000;

impl Verifier {
    pub(crate) fn new() -> Self {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Verifier {
            permits: tokio::sync::Semaphore::new(cpus),
            key: rand::random(),
            cache: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    pub(crate) async fn verify(&self, user: &str, password: &[u8], stored_hash: &str) -> bool {
        let digest = *blake3::keyed_hash(&self.key, password).as_bytes();
        {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(e) = cache.get(user) {
                if e.stored_hash == stored_hash && e.at.elapsed() < CACHE_TTL && e.digest == digest
                {
                    return true;
                }
            }
        }
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        let (pw, hash) = (password.to_vec(), stored_hash.to_string());
        let ok = tokio::task::spawn_blocking(move || verify_password(&pw, &hash))
            .await
            .unwrap_or(false);
        if ok {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
            cache.insert(
                user.to_string(),
                CacheEntry {
                    stored_hash: stored_hash.to_string(),
                    digest,
                    at: std::time::Instant::now(),
                },
            );
        }
        ok
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

    #[tokio::test]
    async fn verifier_caches_only_successes_and_follows_hash_changes() {
        let v = Verifier::new();
        let h1 = hash_password("one").unwrap();
        assert!(v.verify("u", b"one", &h1).await);
        assert!(v.verify("u", b"one", &h1).await, "cached success");
        assert!(
            !v.verify("u", b"two", &h1).await,
            "a wrong password never hits the cache"
        );
        // After a password change the old password no longer works, cached or not.
        let h2 = hash_password("two").unwrap();
        assert!(!v.verify("u", b"one", &h2).await);
        assert!(v.verify("u", b"two", &h2).await);
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
