//! CAPABILITY, ENABLE, ID, NAMESPACE.

use super::{CmdResult, Done};
use crate::session::Session;

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
                "CONDSTORE" => !std::mem::replace(&mut self.condstore, true),
                // QRESYNC implies CONDSTORE (RFC 7162 3.2.3).
                "QRESYNC" => {
                    self.condstore = true;
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

    pub(crate) fn cmd_id(&mut self) -> CmdResult {
        self.out.extend_from_slice(
            format!(
                "* ID (\"name\" \"Pillarbox\" \"version\" \"{}\")\r\n",
                env!("CARGO_PKG_VERSION")
            )
            .as_bytes(),
        );
        Ok(Done::ok("ID completed"))
    }

    pub(crate) fn cmd_namespace(&mut self) -> CmdResult {
        self.out
            .extend_from_slice(b"* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n");
        Ok(Done::ok("Namespace completed"))
    }
}
