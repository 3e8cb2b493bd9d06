//! STARTTLS, LOGIN, AUTHENTICATE PLAIN (with SASL-IR), failed-login delays.

use std::time::Duration;

use base64::Engine;

use super::{CmdError, CmdResult, Done};
use crate::auth::decode_plain;
use crate::conn::Line;
use crate::session::{Session, State};

impl Session {
    pub(crate) async fn cmd_starttls(&mut self, tag: &str) -> bool {
        let Some(acceptor) = self.shared.tls.clone() else {
            self.tagged(tag, "NO", None, "TLS is not configured");
            return true;
        };
        if self.conn.tls {
            self.tagged(tag, "BAD", None, "TLS is already active");
            return true;
        }
        self.tagged(tag, "OK", None, "Begin TLS negotiation now");
        if self.flush().await.is_err() {
            return false;
        }
        matches!(
            tokio::time::timeout(
                self.shared.config.preauth_timeout(),
                self.conn.upgrade(&acceptor)
            )
            .await,
            Ok(Ok(()))
        )
    }

    pub(crate) async fn cmd_login(&mut self, user: &[u8], pass: &[u8]) -> CmdResult {
        if !self.login_allowed() {
            return Err(CmdError::no_code(
                "PRIVACYREQUIRED",
                "Plaintext authentication disallowed on non-secure connections; use STARTTLS",
            ));
        }
        self.authenticate_user(user, pass).await
    }

    pub(crate) async fn cmd_authenticate(
        &mut self,
        tag: &str,
        mech: &str,
        ir: Option<Vec<u8>>,
    ) -> CmdResult {
        if !mech.eq_ignore_ascii_case("PLAIN") {
            return Err(CmdError::no("Unsupported authentication mechanism"));
        }
        if !self.login_allowed() {
            return Err(CmdError::no_code(
                "PRIVACYREQUIRED",
                "Plaintext authentication disallowed on non-secure connections; use STARTTLS",
            ));
        }
        let _ = tag;
        let response = match ir {
            Some(r) => r,
            None => {
                self.out.extend_from_slice(b"+ \r\n");
                self.flush()
                    .await
                    .map_err(|_| CmdError::bad("Connection lost"))?;
                let max = self.shared.config.limits.max_line_length;
                match self.conn.read_line(max).await {
                    Ok(Line::Text(l)) => l,
                    Ok(Line::TooLong { .. }) => {
                        return Err(CmdError::bad("Authentication response too long"))
                    }
                    _ => {
                        return Err(CmdError {
                            close: true,
                            ..CmdError::bad("Connection lost")
                        });
                    }
                }
            }
        };
        if response == b"*" {
            return Err(CmdError::bad("Authentication cancelled"));
        }
        let decoded = if response == b"=" {
            Vec::new()
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(&response)
                .map_err(|_| CmdError::bad("Invalid base64 in authentication response"))?
        };
        // Decoded, but not a PLAIN message (RFC 4616 2: the server fails
        // the exchange): a failed authentication, delayed and counted like
        // a wrong password, not a syntax error.
        let Some((authz, authc, pass)) = decode_plain(&decoded) else {
            return Err(self.auth_failed().await);
        };
        if !authz.is_empty() && authz != authc {
            return Err(CmdError::no_code(
                "AUTHORIZATIONFAILED",
                "Authorization identity not permitted",
            ));
        }
        self.authenticate_user(&authc, &pass).await
    }

    async fn authenticate_user(&mut self, user: &[u8], pass: &[u8]) -> CmdResult {
        let name = String::from_utf8_lossy(user).into_owned();
        let lookup = name.clone();
        let account = self.db_quick(|s| s.account(&lookup))?;
        let pass = pass.to_vec();
        let ok_account = match account {
            Some(a) => {
                let ok = self
                    .shared
                    .verifier
                    .verify(&a.name, &pass, &a.password_hash)
                    .await;
                ok.then_some(a)
            }
            None => None,
        };
        let Some(mut account) = ok_account else {
            return Err(self.auth_failed().await);
        };
        if !self.count_user(&account.name) {
            return Err(CmdError::no_code(
                "LIMIT",
                "Too many sessions for this user",
            ));
        }
        tracing::info!(user = %account.name, peer = %self.peer, "logged in");
        // Not needed after login; every idle session saves the bytes.
        account.password_hash = String::new();
        self.account = Some(account);
        self.state = State::Authenticated;
        let caps = self.capabilities();
        Ok(Done::code(format!("CAPABILITY {caps}"), "Logged in"))
    }

    /// Delays (doubling per failure of this connection, or of its address
    /// across connections if more, capped at 15 s) and counts; closes after
    /// the limit of this connection.
    async fn auth_failed(&mut self) -> CmdError {
        self.auth_failures += 1;
        self.shared.metrics.auth_failures.inc();
        let from_address = self.shared.note_auth_failure(self.peer.ip());
        let failures = self.auth_failures.max(from_address);
        let cfg = &self.shared.config.auth;
        let base = cfg.failure_delay_ms;
        let delay = base.saturating_mul(1 << (failures - 1).min(10)).min(15_000);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        tracing::info!(peer = %self.peer, failures = self.auth_failures, "authentication failed");
        let mut e = CmdError::no_code("AUTHENTICATIONFAILED", "Authentication failed");
        if self.auth_failures >= cfg.max_failures {
            self.out
                .extend_from_slice(b"* BYE Too many authentication failures\r\n");
            e.close = true;
        }
        e
    }
}
