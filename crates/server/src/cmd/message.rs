//! EXPUNGE, UID EXPUNGE, STORE, COPY, MOVE (with UIDPLUS response codes).

use pillarbox_proto::respond;
use pillarbox_proto::types::{Flag, MailboxName, SequenceSet, StoreMode};
use pillarbox_store::FlagOp;

use super::{CmdError, CmdResult, Done};
use crate::session::Session;

/// Flags as the store keeps them (the parser refused `\Recent`).
pub(crate) fn flag_strings(flags: &[Flag]) -> Vec<String> {
    flags
        .iter()
        .map(|f| match f {
            Flag::Seen => "\\Seen".to_string(),
            Flag::Answered => "\\Answered".to_string(),
            Flag::Flagged => "\\Flagged".to_string(),
            Flag::Deleted => "\\Deleted".to_string(),
            Flag::Draft => "\\Draft".to_string(),
            Flag::Keyword(k) => k.clone(),
        })
        .collect()
}

impl Session {
    /// Indexes into the view for a sequence or UID set.
    pub(crate) fn resolve(&self, uid: bool, set: &SequenceSet) -> Result<Vec<usize>, CmdError> {
        let sel = self
            .selected
            .as_ref()
            .ok_or_else(|| CmdError::bad("No mailbox selected"))?;
        let saved = self.saved_search.as_deref();
        if uid {
            Ok(sel.resolve_uids(set, saved))
        } else {
            sel.resolve_seqs(set, saved).map_err(CmdError::bad)
        }
    }

    fn writable(&self) -> Result<i64, CmdError> {
        let sel = self
            .selected
            .as_ref()
            .ok_or_else(|| CmdError::bad("No mailbox selected"))?;
        if sel.read_only {
            return Err(CmdError::no_code("READ-ONLY", "Mailbox is read-only"));
        }
        Ok(sel.id)
    }

    pub(crate) async fn cmd_expunge(&mut self, set: Option<&SequenceSet>) -> CmdResult {
        let id = self.writable()?;
        self.sync(true).await?;
        let sel = self
            .selected
            .as_ref()
            .ok_or_else(|| CmdError::bad("No mailbox selected"))?;
        let candidates: Vec<usize> = match set {
            Some(s) => self.resolve(true, s)?,
            None => (0..sel.messages.len()).collect(),
        };
        let uids: Vec<u32> = candidates
            .into_iter()
            .map(|i| &sel.messages[i])
            .filter(|m| m.flags.iter().any(|f| f == "\\Deleted"))
            .map(|m| m.uid)
            .collect();
        if uids.is_empty() {
            return Ok(Done::ok("Expunge completed"));
        }
        let pillarbox_store::Expunged {
            uids: gone,
            modseq,
            unreferenced_files,
        } = self.expunge_deleted(id, uids).await?;
        self.announce_expunged(&gone);
        // Nothing removed (another session expunged these first): the store
        // did not move the modseq, and there is nothing to publish. A delta
        // "from modseq - 1 to modseq" would name the change another session
        // made there, with none of its content: a cached snapshot that took
        // it would keep that session's expunged messages (or miss its new
        // ones) for good.
        if gone.is_empty() {
            return Ok(Done::ok("Expunge completed"));
        }
        let uidnext = self.selected.as_ref().map(|s| s.uidnext).unwrap_or(0);
        let delta = pillarbox_store::Delta {
            from_modseq: modseq.saturating_sub(1),
            changes: pillarbox_store::MailboxChanges {
                uidvalidity: 0,
                uidnext,
                highest_modseq: modseq,
                changed: Vec::new(),
                expunged: gone,
            },
        };
        self.publish_own_delta(id, delta);
        self.free_blobs(unreferenced_files).await;
        Ok(Done::ok("Expunge completed").expunged())
    }

    /// Removes UIDs from the view and writes `* n EXPUNGE` for each.
    pub(crate) fn announce_expunged(&mut self, uids: &[u32]) {
        let Some(sel) = self.selected.as_mut() else {
            return;
        };
        let (seqs, removed) = sel.remove_uids(uids);
        self.write_expunged(&seqs, &removed);
    }

    /// `* n EXPUNGE` per message, or one `* VANISHED uid-set` once QRESYNC is
    /// enabled (RFC 7162 3.2.10).
    pub(crate) fn write_expunged(&mut self, seqs: &[u32], uids: &[u32]) {
        if uids.is_empty() {
            return;
        }
        if self.qresync {
            let mut sorted = uids.to_vec();
            sorted.sort_unstable();
            let mut line = b"* VANISHED ".to_vec();
            respond::sequence_set(&mut line, &sorted);
            line.extend_from_slice(b"\r\n");
            self.out.extend_from_slice(&line);
        } else {
            for seq in seqs {
                self.out
                    .extend_from_slice(format!("* {seq} EXPUNGE\r\n").as_bytes());
            }
        }
    }

    pub(crate) async fn cmd_store(
        &mut self,
        uid: bool,
        set: &SequenceSet,
        mode: StoreMode,
        silent: bool,
        flags: &[Flag],
        unchanged_since: Option<u64>,
    ) -> CmdResult {
        let id = self.writable()?;
        let idxs = self.resolve(uid, set)?;
        if unchanged_since.is_some() {
            self.enable_condstore();
        }
        let Some(sel) = self.selected.as_ref() else {
            return Err(CmdError::bad("No mailbox selected"));
        };
        let uids: Vec<u32> = idxs.iter().map(|i| sel.messages[*i].uid).collect();
        let flags = flag_strings(flags);
        let op = match mode {
            StoreMode::Replace => FlagOp::Replace,
            StoreMode::Add => FlagOp::Add,
            StoreMode::Remove => FlagOp::Remove,
        };
        let res = self
            .store_flags(id, uids.clone(), op, flags, unchanged_since)
            .await?;
        let mut new_keywords = false;
        if let Some(sel) = self.selected.as_mut() {
            // The keywords the mailbox had, if this STORE set any at all.
            let is_keyword = |k: &String| !k.starts_with('\\');
            let sets_keywords = res.updated.iter().any(|(_, f, _)| f.iter().any(is_keyword));
            let known: std::collections::HashSet<String> = if sets_keywords {
                sel.messages
                    .iter()
                    .flat_map(|m| m.flags.iter().filter(|k| is_keyword(k)).cloned())
                    .collect()
            } else {
                Default::default()
            };
            for (u, f, ms) in &res.updated {
                if sel.set_flags(*u, f, *ms) {
                    new_keywords |= f.iter().any(|k| is_keyword(k) && !known.contains(k));
                }
            }
        }
        if new_keywords {
            self.write_flags_list();
        }
        let updated: std::collections::HashSet<u32> = res.updated.iter().map(|u| u.0).collect();
        // Not reported: failed UNCHANGEDSINCE, or expunged meanwhile (no
        // flags to show; the expunge is announced when allowed). A set: a
        // STORE over many messages may skip many.
        let skipped: std::collections::HashSet<u32> =
            res.modified.iter().chain(&res.missing).copied().collect();
        for u in &uids {
            if skipped.contains(u) {
                continue;
            }
            if !silent {
                self.write_flags_fetch(*u, uid);
            } else if self.condstore && updated.contains(u) {
                self.write_modseq_fetch(*u, uid);
            }
        }
        if !res.updated.is_empty() {
            // The view now holds the new flags and modseqs of these messages.
            let sel = self.selected.as_ref();
            let changed: Option<Vec<pillarbox_store::MessageMeta>> = res
                .updated
                .iter()
                .map(|(u, _, _)| {
                    sel.and_then(|s| s.seq_of(*u))
                        .and_then(|q| sel?.messages.get(q as usize - 1).cloned())
                })
                .collect();
            match changed {
                Some(mut changed) if res.updated.iter().all(|u| u.2 == res.highest_modseq) => {
                    changed.sort_by_key(|m| m.uid);
                    let uidnext = sel.map(|s| s.uidnext).unwrap_or(0);
                    self.publish_own_delta(
                        id,
                        pillarbox_store::Delta {
                            from_modseq: res.highest_modseq.saturating_sub(1),
                            changes: pillarbox_store::MailboxChanges {
                                uidvalidity: 0,
                                uidnext,
                                highest_modseq: res.highest_modseq,
                                changed,
                                expunged: Vec::new(),
                            },
                        },
                    );
                }
                _ => self.publish(id, res.highest_modseq),
            }
        }
        if !res.modified.is_empty() {
            let Some(sel) = self.selected.as_ref() else {
                return Err(CmdError::bad("No mailbox selected"));
            };
            let mut nums: Vec<u32> = if uid {
                res.modified.clone()
            } else {
                res.modified.iter().filter_map(|u| sel.seq_of(*u)).collect()
            };
            nums.sort_unstable();
            let mut code = b"MODIFIED ".to_vec();
            respond::sequence_set(&mut code, &nums);
            return Ok(Done::code(
                String::from_utf8_lossy(&code).into_owned(),
                "Conditional store failed",
            ));
        }
        Ok(Done::ok("Store completed"))
    }

    /// `* FLAGS` and `* OK [PERMANENTFLAGS]` with every keyword now in use
    /// (after a new keyword appears).
    pub(crate) fn write_flags_list(&mut self) {
        let Some(sel) = self.selected.as_ref() else {
            return;
        };
        let o = super::mailbox::flags_responses(sel.keywords(), sel.read_only);
        self.out.extend_from_slice(o.as_bytes());
    }

    pub(crate) async fn cmd_copy(
        &mut self,
        uid: bool,
        set: &SequenceSet,
        m: &MailboxName,
        mv: bool,
    ) -> CmdResult {
        let verb = if mv { "Move" } else { "Copy" };
        let src = if mv {
            self.writable()?
        } else {
            self.selected
                .as_ref()
                .map(|s| s.id)
                .ok_or_else(|| CmdError::bad("No mailbox selected"))?
        };
        let idxs = self.resolve(uid, set)?;
        let name = self.decode_name(m)?;
        let dst = self.find_target(&name).await?;
        let Some(sel) = self.selected.as_ref() else {
            return Err(CmdError::bad("No mailbox selected"));
        };
        let uids: Vec<u32> = idxs.iter().map(|i| sel.messages[*i].uid).collect();
        if uids.is_empty() {
            return Ok(Done::ok(format!("No messages found ({verb} completed)")));
        }
        let dst_id = dst.id;
        let res = self.db(move |s| s.copy(src, dst_id, &uids, mv)).await?;
        if res.src_uids.is_empty() {
            // All expunged by another session meanwhile: nothing to report
            // in a COPYUID (its UID sets cannot be empty, RFC 4315 3). The
            // expunges are announced with this response (Dovecot answers
            // the same).
            return Err(CmdError::no_code(
                "EXPUNGEISSUED",
                "Some of the requested messages no longer exist",
            ));
        }
        self.publish(dst_id, 0);
        let mut code = format!("COPYUID {} ", res.uidvalidity).into_bytes();
        respond::sequence_set(&mut code, &res.src_uids);
        code.push(b' ');
        respond::sequence_set(&mut code, &res.dst_uids);
        let code = String::from_utf8_lossy(&code).into_owned();
        if mv {
            self.out
                .extend_from_slice(format!("* OK [{code}] Moved\r\n").as_bytes());
            self.announce_expunged(&res.src_uids);
            self.publish(src, 0);
            return Ok(Done::ok("Move completed").expunged());
        }
        Ok(Done::code(code, "Copy completed"))
    }
}
