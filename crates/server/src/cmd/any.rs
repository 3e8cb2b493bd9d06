//! CAPABILITY, ENABLE, ID, NAMESPACE.

use super::{CmdResult, Done};
use crate::session::{Session, State};

impl Session {
    pub(crate) fn cmd_capability(&mut self) -> CmdResult {
        let caps = self.capabilities();
        self.out
            .extend_from_slice(format!("* CAPABILITY {caps}\r\n").as_bytes());
        Ok(Done::ok("Capability completed"))
    }

    /// RFC 5161: only extensions that are advertised and "enable-able" are
    /// listed in the untagged ENABLED response.
    pub(crate) fn cmd_enable(&mut self, caps: &[String]) -> CmdResult {
        let mut enabled = Vec::new();
        for c in caps {
            let up = c.to_ascii_uppercase();
            let newly = match up.as_str() {
                "IMAP4REV2" => {
                    !std::mem::replace(&mut self.rev2, true)
                        | !std::mem::replace(&mut self.utf8, true)
                }
                "UTF8=ACCEPT" => !std::mem::replace(&mut self.utf8, true),
                "CONDSTORE" => self.enable_condstore(),
                // QRESYNC implies CONDSTORE (RFC 7162 3.2.3).
                "QRESYNC" => {
                    self.enable_condstore();
                    !std::mem::replace(&mut self.qresync, true)
                }
                _ => false,
            };
            if newly && !enabled.contains(&up) {
                enabled.push(up);
            }
        }
        let mut line = b"* ENABLED".to_vec();
        for e in &enabled {
            line.push(b' ');
            line.extend_from_slice(e.as_bytes());
        }
        line.extend_from_slice(b"\r\n");
        self.out.extend_from_slice(&line);
        Ok(Done::ok("Enabled"))
    }

    /// Turns CONDSTORE on (ENABLE, or the first command that uses it: RFC
    /// 7162 3.1); true if it was off. With a mailbox selected the client
    /// learns its HIGHESTMODSEQ then, as SELECT would have told it, like
    /// Dovecot does.
    pub(crate) fn enable_condstore(&mut self) -> bool {
        if std::mem::replace(&mut self.condstore, true) {
            return false;
        }
        if let Some(sel) = self.selected.as_ref() {
            let line = format!(
                "* OK [HIGHESTMODSEQ {}] Highest\r\n",
                sel.announced_modseq()
            );
            self.out.extend_from_slice(line.as_bytes());
        }
        true
    }

    /// The server's name; its version only after login, so that an
    /// unauthenticated client cannot look up what this version is open to
    /// (RFC 2971 7; as Dovecot, which never sends it by default).
    pub(crate) fn cmd_id(&mut self) -> CmdResult {
        let line = if self.state == State::NotAuthenticated {
            "* ID (\"name\" \"Pillarbox\")\r\n".to_string()
        } else {
            format!(
                "* ID (\"name\" \"Pillarbox\" \"version\" \"{}\")\r\n",
                env!("CARGO_PKG_VERSION")
            )
        };
        self.out.extend_from_slice(line.as_bytes());
        Ok(Done::ok("ID completed"))
    }

    pub(crate) fn cmd_namespace(&mut self) -> CmdResult {
        self.out
            .extend_from_slice(b"* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n");
        Ok(Done::ok("Namespace completed"))
    }
}
