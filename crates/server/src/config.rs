//! Server configuration: a TOML file whose every key has a documented default.
//! The reference with all keys is `docs/config.md` (kept in sync with this file).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Data directory (database, blobs, generated certificate, spool).
    pub data_dir: PathBuf,
    /// IMAP with STARTTLS. Empty string disables the listener.
    pub listen_imap: String,
    /// IMAP over implicit TLS. Empty string disables the listener.
    pub listen_imaps: String,
    /// Prometheus/OpenMetrics endpoint (`GET /metrics`). Empty string disables it.
    pub listen_metrics: String,
    pub tls: TlsConfig,
    pub auth: AuthConfig,
    pub limits: Limits,
    /// Seconds between untagged keepalives during IDLE.
    pub idle_keepalive_secs: u64,
    /// Milliseconds of IDLE after which a session drops all but what pushing
    /// changes needs (about 1 byte per message instead of a full view; it
    /// costs a merge with the mailbox's snapshot when IDLE ends). 0: at once.
    /// Until then the view is usually the snapshot itself, shared, and costs
    /// little; a change pushed meanwhile gives the session a copy of its own.
    /// Like Dovecot's `imap_hibernate_timeout`.
    pub idle_hibernate_ms: u64,
    /// Memory for decoded message summaries shared by all sessions (headers,
    /// ENVELOPE, BODYSTRUCTURE of recently fetched messages), in MiB. 0: none.
    pub summary_cache_mib: u64,
    /// Memory for the bodies of recently fetched messages (decompressed and
    /// checked), shared by all sessions, in MiB. 0: none.
    pub body_cache_mib: u64,
    /// Threads running sessions (the async runtime's workers). 0 (the
    /// default): half the CPUs, at least one. Store work (SQLite, blob files,
    /// fsync, the search-index writer) runs on other threads, so the event
    /// loop needs fewer than all cores, and every extra worker costs
    /// cross-thread wake-ups on each command.
    pub worker_threads: usize,
    /// Expunged UIDs each mailbox remembers, with their modseq, for clients
    /// resynchronising (QRESYNC's VANISHED (EARLIER), sessions catching up);
    /// the oldest beyond it are dropped. A client that resynchronises from
    /// before the oldest kept is sent every UID the mailbox does not have
    /// any more instead. 0: remember them all.
    pub expunge_history: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain. When unset, a self-signed certificate is generated
    /// into `<data_dir>/tls/` on first start.
    pub cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
    /// Host names put in a generated certificate.
    pub self_signed_names: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Allow LOGIN / AUTHENTICATE PLAIN on connections without TLS from
    /// non-loopback addresses. Loopback is always allowed (as in Dovecot).
    pub allow_plaintext: bool,
    /// Treat loopback connections as secure (plaintext login allowed), as
    /// Dovecot does for local clients.
    pub trust_loopback: bool,
    /// Failed authentication attempts after which the connection is closed.
    pub max_failures: u32,
    /// Delay before answering a failed authentication, in milliseconds
    /// (doubles with each failure on the same connection, or from the same
    /// address across connections within 15 minutes if more; capped at 15 s).
    pub failure_delay_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Longest command line accepted (bytes, excluding literals).
    pub max_line_length: usize,
    /// Largest literal accepted for APPEND (bytes). Checked before reading it.
    pub max_literal_size: u64,
    /// Largest literal accepted outside APPEND (bytes).
    pub max_other_literal_size: u64,
    /// APPEND literals larger than this are spooled to disk instead of memory.
    pub spool_threshold: u64,
    /// Deepest nesting accepted in a command: parentheses, and in SEARCH
    /// each OR and NOT (a client that ORs N terms nests N - 1 deep). The
    /// parser caps it at 256.
    pub max_nesting: usize,
    /// Simultaneous connections in total.
    pub max_connections: usize,
    /// Simultaneous connections from one IP address.
    pub max_connections_per_ip: usize,
    /// Simultaneous logged-in sessions of one user.
    pub max_sessions_per_user: usize,
    /// Seconds a connection may stay idle before logging in.
    pub preauth_timeout_secs: u64,
    /// Before login: the longest command line and the largest literal
    /// accepted (bytes; LOGIN and AUTHENTICATE need little), so that an
    /// unauthenticated connection cannot make the server hold much.
    pub preauth_max_bytes: usize,
    /// Before login: invalid commands (answered BAD) after which the
    /// connection is closed with BYE.
    pub preauth_max_bad_commands: u32,
    /// Seconds a logged-in connection may stay idle (RFC 9051: at least 30 minutes).
    pub auth_timeout_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./data"),
            listen_imap: "0.0.0.0:143".into(),
            listen_imaps: "0.0.0.0:993".into(),
            listen_metrics: String::new(),
            tls: TlsConfig::default(),
            auth: AuthConfig::default(),
            limits: Limits::default(),
            idle_keepalive_secs: 120,
            idle_hibernate_ms: 1000,
            summary_cache_mib: 64,
            body_cache_mib: 32,
            worker_threads: 0,
            expunge_history: pillarbox_store::sqlite::DEFAULT_EXPUNGE_HISTORY,
        }
    }
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert: None,
            key: None,
            self_signed_names: vec!["localhost".into()],
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            allow_plaintext: false,
            trust_loopback: true,
            max_failures: 3,
            failure_delay_ms: 2000,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line_length: 64 * 1024,
            max_literal_size: 50 * 1024 * 1024,
            max_other_literal_size: 1024 * 1024,
            spool_threshold: 1024 * 1024,
            max_nesting: 256,
            max_connections: 10_000,
            max_connections_per_ip: 100,
            max_sessions_per_user: 50,
            preauth_timeout_secs: 60,
            preauth_max_bytes: 8 * 1024,
            preauth_max_bad_commands: 10,
            auth_timeout_secs: 30 * 60,
        }
    }
}

impl Config {
    /// Reads a TOML file; missing keys take their defaults.
    pub fn from_file(path: &std::path::Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("invalid config file {}: {e}", path.display()))
    }

    /// The number of session threads to start: `worker_threads`, or half
    /// of `cpus` (at least one) when that is 0.
    pub fn session_threads(&self, cpus: usize) -> usize {
        if self.worker_threads > 0 {
            self.worker_threads
        } else {
            (cpus / 2).max(1)
        }
    }

    pub fn parse_addr(flag: &str, value: &str) -> Result<Option<SocketAddr>, String> {
        if value.is_empty() {
            return Ok(None);
        }
        value
            .parse()
            .map(Some)
            .map_err(|e| format!("{flag}: invalid address {value:?}: {e}"))
    }

    pub fn preauth_timeout(&self) -> Duration {
        Duration::from_secs(self.limits.preauth_timeout_secs.max(1))
    }
    pub fn auth_timeout(&self) -> Duration {
        Duration::from_secs(self.limits.auth_timeout_secs.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        let c: Config = toml::from_str("").unwrap();
        assert_eq!(c.listen_imap, "0.0.0.0:143");
        assert_eq!(c.limits.max_literal_size, 50 * 1024 * 1024);
        assert_eq!(c.idle_keepalive_secs, 120);
        assert_eq!(c.idle_hibernate_ms, 1000);
        assert_eq!(c.summary_cache_mib, 64);
        assert_eq!(c.body_cache_mib, 32);
        assert_eq!(c.worker_threads, 0);
        assert_eq!(c.expunge_history, 10_000);
        assert!(!c.auth.allow_plaintext);
    }

    #[test]
    fn session_threads_default_to_half_the_cpus() {
        let auto = Config::default();
        assert_eq!(auto.session_threads(1), 1);
        assert_eq!(auto.session_threads(2), 1);
        assert_eq!(auto.session_threads(16), 8);
        let set: Config = toml::from_str("worker_threads = 3").unwrap();
        assert_eq!(set.session_threads(2), 3);
    }

    #[test]
    fn unknown_key_is_an_error() {
        assert!(toml::from_str::<Config>("nonsense = 1").is_err());
    }

    #[test]
    fn partial_sections_keep_other_defaults() {
        let c: Config = toml::from_str("[limits]\nmax_line_length = 100\n").unwrap();
        assert_eq!(c.limits.max_line_length, 100);
        assert_eq!(c.limits.max_nesting, 256);
    }
}
