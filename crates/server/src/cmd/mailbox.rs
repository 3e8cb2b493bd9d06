//! SELECT, EXAMINE, CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, STATUS,
//! CLOSE, UNSELECT.

use pillarbox_proto::respond;
use pillarbox_proto::types::ranges_contain;
use pillarbox_proto::types::{
    MailboxName, QResyncParams, SelectParams, SeqNum, SequenceSet, StatusItem,
};
use pillarbox_store::{BlobId, ChangeKind, MailboxInfo, MailboxStatus, StoreError};

use super::{CmdError, CmdResult, Done};
use crate::names;
use crate::session::{Session, State};
use crate::view::SelectedMailbox;

pub(crate) const SYSTEM_FLAGS: &str = "\\Answered \\Flagged \\Deleted \\Seen \\Draft";

const SPECIAL_USES: &[&str] = &[
    "\\All",
    "\\Archive",
    "\\Drafts",
    "\\Flagged",
    "\\Junk",
    "\\Sent",
    "\\Trash",
];

impl Session {
    /// Decodes a mailbox name as this session's clients send them.
    pub(crate) fn decode_name(&self, m: &MailboxName) -> Result<String, CmdError> {
        names::decode(&m.0, self.utf8).map_err(CmdError::bad)
    }

    /// Looks a mailbox up by name; NO [NONEXISTENT] if missing.
    pub(crate) async fn find_mailbox(&self, name: &str) -> Result<MailboxInfo, CmdError> {
        let acc = self.account_id()?;
        let n = name.to_string();
        self.db_quick(|s| s.mailbox(acc, &n))?
            .ok_or_else(|| CmdError::no_code("NONEXISTENT", "Mailbox doesn't exist"))
    }

    /// The mailbox an APPEND, COPY or MOVE puts messages into. One that does
    /// not exist is `NO [TRYCREATE]` (RFC 9051 7.1) only when CREATE could
    /// make it; a name CREATE refuses is `NO [CANNOT]`, as CREATE answers.
    pub(crate) async fn find_target(&self, name: &str) -> Result<MailboxInfo, CmdError> {
        match self.find_mailbox(name).await {
            Err(e) if e.code.as_deref() == Some("NONEXISTENT") => {
                names::validate(name).map_err(|t| CmdError::no_code("CANNOT", t))?;
                Err(CmdError::no_code("TRYCREATE", "Mailbox doesn't exist"))
            }
            r => r,
        }
    }

    pub(crate) async fn cmd_select(
        &mut self,
        m: &MailboxName,
        params: &SelectParams,
        read_only: bool,
    ) -> CmdResult {
        let name = self.decode_name(m)?;
        // SELECT and EXAMINE reset the saved search result (RFC 5182 2.1);
        // one that fails leaves no mailbox selected for `$` to refer to.
        self.saved_search = None;
        if self.selected.take().is_some() {
            self.state = State::Authenticated;
            self.out
                .extend_from_slice(b"* OK [CLOSED] Previous mailbox closed\r\n");
        }
        if params.condstore {
            self.condstore = true;
        }
        if params.qresync.is_some() && !self.qresync {
            return Err(CmdError::bad(
                "QRESYNC parameter requires ENABLE QRESYNC first",
            ));
        }
        let info = self.find_mailbox(&name).await?;
        let id = info.id;
        let found = (info.recent_from, info.uidnext);
        // The shared snapshot keeps the name and special-use of its first
        // read (a rename keeps the id): those of the row read by name now.
        let (current_name, current_use) = (info.name, info.special_use);
        // UIDNEXT bounds the message count from above.
        let small = info.uidnext <= crate::view::SMALL_SNAPSHOT;
        let read = self
            .read_mailbox(id, small, 0)
            .await?
            .ok_or_else(|| CmdError::from_store(StoreError::NoSuchMailbox))?;
        let (mut info, messages) = (read.info, read.messages);
        info.name = current_name;
        info.special_use = current_use;
        // IMAP4rev1 \Recent (RFC 3501 2.3.2): the new mail no session was
        // given yet is this one's; EXAMINE only looks (as Dovecot does).
        // IMAP4rev2 has no \Recent.
        let (from, to) = if self.rev2 {
            (0, 0)
        } else if read_only || found.0 >= found.1 {
            // Nothing to take (the mailbox row read by name just now says
            // so), or EXAMINE, which takes nothing: no write.
            found
        } else {
            // A write: on the blocking pool, as it may wait for the writer.
            let taken = self.db(move |s| s.claim_recent(id)).await?;
            self.shared.published.took_recent(id, taken.1);
            taken
        };
        let recent = crate::view::RecentUids::from_range(from, to);
        let mut o = flags_responses(
            crate::view::keywords(messages.iter().map(|m| &m.flags)),
            read_only,
        );
        o.push_str(&format!("* {} EXISTS\r\n", messages.len()));
        let mut recent_n = 0;
        if self.rev2 {
            // RFC 9051 6.3.2: LIST is one of SELECT's required responses
            // (it gives the mailbox name as the server spells it).
            let mut list = format!(
                "* LIST ({}) \"/\" ",
                info.special_use.as_deref().unwrap_or("")
            )
            .into_bytes();
            respond::mailbox(&mut list, &info.name, self.utf8);
            list.extend_from_slice(b"\r\n");
            o.push_str(&String::from_utf8_lossy(&list));
        } else {
            let n = messages.iter().filter(|m| recent.contains(m.uid)).count();
            recent_n = n as u32;
            o.push_str(&format!("* {n} RECENT\r\n"));
            if let Some(pos) = messages
                .iter()
                .position(|m| !m.flags.iter().any(|f| f == "\\Seen"))
            {
                o.push_str(&format!("* OK [UNSEEN {}] First unseen\r\n", pos + 1));
            }
        }
        o.push_str(&format!(
            "* OK [UIDVALIDITY {}] UIDs valid\r\n",
            info.uidvalidity
        ));
        o.push_str(&format!(
            "* OK [UIDNEXT {}] Predicted next UID\r\n",
            info.uidnext
        ));
        o.push_str(&format!(
            "* OK [HIGHESTMODSEQ {}] Highest\r\n",
            info.highest_modseq
        ));
        self.out.extend_from_slice(o.as_bytes());
        self.selected = Some(SelectedMailbox {
            id: info.id,
            uidvalidity: info.uidvalidity,
            read_only,
            uidnext: info.uidnext,
            known_modseq: info.highest_modseq,
            messages,
            pending_expunge: Vec::new(),
            pending_floor: 0,
            recent,
            recent_pending: None,
            recent_sent: recent_n,
            recent_n,
            hibernated: None,
            // As fresh as a sync's store read: the sync after SELECT need
            // not read the store again.
            seen_version: read.version,
            checked_at: Some(read.at),
            foreign: read.foreign,
        });
        self.state = State::Selected;
        if let Some(q) = &params.qresync {
            if q.uidvalidity == info.uidvalidity {
                self.qresync_select(id, q).await?;
            }
        }
        let (code, verb) = if read_only {
            ("READ-ONLY", "Examine")
        } else {
            ("READ-WRITE", "Select")
        };
        Ok(Done::code(code, format!("{verb} completed")))
    }

    pub(crate) async fn cmd_create(
        &mut self,
        m: &MailboxName,
        special_use: &[String],
    ) -> CmdResult {
        let mut name = self.decode_name(m)?;
        // A trailing separator only declares the intent to create children.
        while name.len() > 1 && name.ends_with(names::SEP) {
            name.pop();
        }
        names::validate(&name).map_err(|t| CmdError::no_code("CANNOT", t))?;
        if name == "INBOX" {
            return Err(CmdError::no_code("ALREADYEXISTS", "Mailbox already exists"));
        }
        let use_attr = match special_use {
            [] => None,
            [one] => {
                let canon = SPECIAL_USES
                    .iter()
                    .find(|s| s.eq_ignore_ascii_case(one))
                    .ok_or_else(|| {
                        CmdError::no_code(
                            "USEATTR",
                            format!("Unsupported special-use attribute {one}"),
                        )
                    })?;
                Some(canon.to_string())
            }
            _ => {
                return Err(CmdError::no_code(
                    "USEATTR",
                    "Only one special-use attribute per mailbox",
                ))
            }
        };
        let acc = self.account_id()?;
        let n = name.clone();
        let info = self
            .db(move |s| s.create_mailbox(acc, &n, use_attr.as_deref()))
            .await?;
        self.publish_kind(
            info.id,
            info.highest_modseq,
            ChangeKind::MailboxCreated { name },
        );
        Ok(Done::ok("Create completed"))
    }

    pub(crate) async fn cmd_delete(&mut self, m: &MailboxName) -> CmdResult {
        let name = self.decode_name(m)?;
        if name == "INBOX" {
            return Err(CmdError::no_code("CANNOT", "INBOX can't be deleted"));
        }
        let info = self.find_mailbox(&name).await?;
        let acc = self.account_id()?;
        let all = self.db(move |s| s.list_mailboxes(acc)).await?;
        let prefix = format!("{name}{}", names::SEP);
        if all.iter().any(|mb| mb.name.starts_with(&prefix)) {
            // RFC 9051 6.3.5: a server that does not delete a mailbox with
            // inferiors says so with HASCHILDREN.
            return Err(CmdError::no_code(
                "HASCHILDREN",
                "Mailbox has children, delete them first",
            ));
        }
        if self.selected.as_ref().is_some_and(|s| s.id == info.id) {
            self.selected = None;
            self.state = State::Authenticated;
        }
        let n = name.clone();
        let freed = self.db(move |s| s.delete_mailbox(acc, &n)).await?;
        self.free_blobs(freed).await;
        self.publish_kind(
            info.id,
            info.highest_modseq + 1,
            ChangeKind::MailboxDeleted { name },
        );
        Ok(Done::ok("Delete completed"))
    }

    /// Removes blob files that no message references any more.
    pub(crate) async fn free_blobs(&self, ids: Vec<BlobId>) {
        if ids.is_empty() {
            return;
        }
        let shared = self.shared.clone();
        let _ = tokio::task::spawn_blocking(move || {
            pillarbox_store::gate::free_files(&*shared.store, &*shared.blobs, &ids)
        })
        .await;
    }

    pub(crate) async fn cmd_rename(&mut self, from: &MailboxName, to: &MailboxName) -> CmdResult {
        let from = self.decode_name(from)?;
        let mut to = self.decode_name(to)?;
        while to.len() > 1 && to.ends_with(names::SEP) {
            to.pop();
        }
        names::validate(&to).map_err(|t| CmdError::no_code("CANNOT", t))?;
        if to == "INBOX" {
            return Err(CmdError::no_code(
                "ALREADYEXISTS",
                "Target mailbox already exists",
            ));
        }
        if to.starts_with(&format!("{from}{}", names::SEP)) {
            return Err(CmdError::no_code(
                "CANNOT",
                "Can't rename a mailbox into itself",
            ));
        }
        let src = self.find_mailbox(&from).await?;
        let acc = self.account_id()?;
        let t = to.clone();
        if self.db(move |s| s.mailbox(acc, &t)).await?.is_some() {
            return Err(CmdError::no_code(
                "ALREADYEXISTS",
                "Target mailbox already exists",
            ));
        }
        let (f, t) = (from.clone(), to.clone());
        self.db(move |s| s.rename_mailbox(acc, &f, &t)).await?;
        // Renaming INBOX moves its messages out (RFC 9051 6.3.6): for the
        // sessions that have INBOX selected they are expunged, and those in
        // IDLE are told now.
        let inbox = from == "INBOX";
        self.publish_kind(
            src.id,
            src.highest_modseq,
            ChangeKind::MailboxRenamed { from, to },
        );
        if inbox {
            self.publish(src.id, 0);
        }
        Ok(Done::ok("Rename completed"))
    }

    pub(crate) async fn cmd_subscribe(&mut self, m: &MailboxName, on: bool) -> CmdResult {
        let name = self.decode_name(m)?;
        let acc = self.account_id()?;
        if on {
            // Dovecot and RFC 9051 6.3.7: subscribing to a non-existent name is allowed
            // but we refuse obvious garbage.
            names::validate(&name).map_err(|t| CmdError::no_code("CANNOT", t))?;
            let n = name.clone();
            self.db(move |s| s.subscribe(acc, &n)).await?;
            self.publish_kind(
                0,
                0,
                ChangeKind::Subscription {
                    name,
                    subscribed: true,
                },
            );
            Ok(Done::ok("Subscribe completed"))
        } else {
            let n = name.clone();
            self.db(move |s| s.unsubscribe(acc, &n)).await?;
            self.publish_kind(
                0,
                0,
                ChangeKind::Subscription {
                    name,
                    subscribed: false,
                },
            );
            Ok(Done::ok("Unsubscribe completed"))
        }
    }

    pub(crate) async fn cmd_status(&mut self, m: &MailboxName, items: &[StatusItem]) -> CmdResult {
        let name = self.decode_name(m)?;
        let info = self.find_mailbox(&name).await?;
        // Asking for HIGHESTMODSEQ enables CONDSTORE (RFC 7162 3.1).
        if items.contains(&StatusItem::HighestModSeq) {
            self.enable_condstore();
        }
        let line = self.status_line(&info, items).await?;
        self.out.extend_from_slice(&line);
        Ok(Done::ok("Status completed"))
    }

    /// `* STATUS name (...)\r\n` for a mailbox.
    pub(crate) async fn status_line(
        &self,
        info: &MailboxInfo,
        items: &[StatusItem],
    ) -> Result<Vec<u8>, CmdError> {
        let id = info.id;
        let st: MailboxStatus = self.db_quick(|s| s.status(id))?;
        let mut line = b"* STATUS ".to_vec();
        respond::mailbox(&mut line, &info.name, self.utf8);
        line.extend_from_slice(b" (");
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                line.push(b' ');
            }
            let (k, v) = match item {
                StatusItem::Messages => ("MESSAGES", st.messages as u64),
                StatusItem::Recent => {
                    // What no session took, plus, for the selected mailbox,
                    // what this session holds (\Recent is per session).
                    let own = self
                        .selected
                        .as_ref()
                        .filter(|s| s.id == id)
                        .map_or(0, |s| s.recent_count() as u64);
                    (
                        "RECENT",
                        own + u64::from(self.db_quick(|s| s.recent_count(id))?),
                    )
                }
                StatusItem::UidNext => ("UIDNEXT", st.uidnext as u64),
                StatusItem::UidValidity => ("UIDVALIDITY", st.uidvalidity as u64),
                StatusItem::Unseen => ("UNSEEN", st.unseen as u64),
                StatusItem::Deleted => ("DELETED", st.deleted as u64),
                StatusItem::Size => ("SIZE", st.size),
                StatusItem::HighestModSeq => ("HIGHESTMODSEQ", st.highest_modseq),
                StatusItem::AppendLimit => {
                    ("APPENDLIMIT", self.shared.config.limits.max_literal_size)
                }
            };
            line.extend_from_slice(format!("{k} {v}").as_bytes());
        }
        line.extend_from_slice(b")\r\n");
        Ok(line)
    }

    /// CLOSE (expunge = true) and UNSELECT.
    pub(crate) async fn cmd_close(&mut self, expunge: bool) -> CmdResult {
        let Some(sel) = self.selected.take() else {
            return Err(CmdError::bad("No mailbox selected"));
        };
        self.state = State::Authenticated;
        if expunge && !sel.read_only {
            let id = sel.id;
            let (_, msgs) = self.db(move |s| s.snapshot(id)).await?;
            let uids: Vec<u32> = msgs
                .iter()
                .filter(|m| m.flags.iter().any(|f| f == "\\Deleted"))
                .map(|m| m.uid)
                .collect();
            if !uids.is_empty() {
                let done = self.expunge_deleted(id, uids).await?;
                self.publish(id, done.modseq);
                self.free_blobs(done.unreferenced_files).await;
            }
        }
        Ok(Done::ok(if expunge {
            "Close completed"
        } else {
            "Unselect completed"
        }))
    }

    fn write_vanished_earlier_uids(&mut self, uids: &[u32]) {
        if uids.is_empty() {
            return;
        }
        let mut line = b"* VANISHED (EARLIER) ".to_vec();
        respond::sequence_set(&mut line, uids);
        line.extend_from_slice(b"\r\n");
        self.out.extend_from_slice(&line);
    }

    /// `UID FETCH set ... (CHANGEDSINCE n VANISHED)`: UIDs of `set` expunged
    /// after modseq n (RFC 7162 3.2.6).
    pub(crate) async fn write_vanished_earlier(
        &mut self,
        set: &pillarbox_proto::types::SequenceSet,
        since: u64,
    ) -> Result<(), CmdError> {
        let Some(sel) = self.selected.as_ref() else {
            return Ok(());
        };
        let id = sel.id;
        let max_view = sel.max_uid();
        let ch = self.db(move |s| s.changes_since(id, since)).await?;
        let max = max_view.max(ch.uidnext.saturating_sub(1));
        // Not one the view still holds (as in `qresync_select`): its expunge
        // is announced when the view learns of it.
        let sel = self.selected.as_ref();
        let asked = set.normalized(max);
        let uids: Vec<u32> = ch
            .expunged
            .into_iter()
            .filter(|&u| ranges_contain(&asked, u) && sel.is_none_or(|s| s.seq_of(u).is_none()))
            .collect();
        self.write_vanished_earlier_uids(&uids);
        Ok(())
    }

    /// RFC 7162 3.2.5: after a SELECT (QRESYNC ...) with a matching UIDVALIDITY,
    /// report what the client missed since its modseq: `VANISHED (EARLIER)` for
    /// expunged UIDs it knows about and FETCH for changed messages.
    async fn qresync_select(&mut self, id: i64, q: &QResyncParams) -> Result<(), CmdError> {
        let since = q.modseq;
        let ch = self.db(move |s| s.changes_since(id, since)).await?;
        let Some(sel) = self.selected.as_ref() else {
            return Ok(());
        };
        let max = sel.max_uid().max(ch.uidnext.saturating_sub(1));
        // Only the messages the client names, if it does (3.2.5.1).
        let known_uids = q.known_uids.as_ref().map(|set| set.normalized(max));
        let known = |u: u32| known_uids.as_ref().is_none_or(|r| ranges_contain(r, u));
        // No message below this UID was expunged since the client's view
        // (3.2.5.2).
        let intact_below = q
            .seq_match
            .as_ref()
            .map_or(0, |(seqs, uids)| intact_below(sel, seqs, uids));
        // Only what the view no longer holds: the view comes from the shared
        // snapshot, which may not have an expunge this store read shows yet
        // (committed, not yet published). Such a message is in EXISTS, so it
        // is announced as vanished when the view learns of it, not here.
        let vanished: Vec<u32> = ch
            .expunged
            .iter()
            .copied()
            .filter(|&u| known(u) && u > intact_below && sel.seq_of(u).is_none())
            .collect();
        let changed: Vec<u32> = ch
            .changed
            .iter()
            .filter(|m| sel.seq_of(m.uid).is_some() && known(m.uid))
            .map(|m| m.uid)
            .collect();
        self.write_vanished_earlier_uids(&vanished);
        for uid in changed {
            self.write_flags_fetch(uid, true);
        }
        Ok(())
    }
}

/// QRESYNC's sequence match data (RFC 7162 3.2.5.2): pairs of a sequence
/// number and the UID the client knows at it, ascending. While a pair still
/// holds in the mailbox now, no message below its UID was expunged since the
/// client's view (none can be added below it). Returns the UID of the last
/// pair that holds before the first that does not (0: none holds, or the
/// two sets differ in size, which restricts nothing).
fn intact_below(sel: &SelectedMailbox, seqs: &SequenceSet, uids: &SequenceSet) -> u32 {
    let values = |set: &SequenceSet| -> Vec<(u32, u32)> {
        match set {
            SequenceSet::Ranges(r) => r
                .iter()
                .filter_map(|&(a, b)| match (a, b) {
                    (SeqNum::Value(a), SeqNum::Value(b)) => Some((a.min(b), a.max(b))),
                    _ => None,
                })
                .collect(),
            SequenceSet::Saved => Vec::new(),
        }
    };
    let (seqs, uids) = (values(seqs), values(uids));
    let count = |r: &[(u32, u32)]| r.iter().map(|&(a, b)| u64::from(b - a) + 1).sum::<u64>();
    if count(&seqs) != count(&uids) {
        return 0;
    }
    let expand = |r: Vec<(u32, u32)>| r.into_iter().flat_map(|(a, b)| a..=b);
    let mut intact = 0;
    for (seq, uid) in expand(seqs).zip(expand(uids)) {
        let holds = seq >= 1
            && sel
                .messages
                .get(seq as usize - 1)
                .is_some_and(|m| m.uid == uid);
        if !holds {
            break;
        }
        intact = uid;
    }
    intact
}

/// `* FLAGS (...)` and `* OK [PERMANENTFLAGS (...)]` for a mailbox whose
/// messages use these keywords: sent by SELECT, and again whenever a new
/// keyword appears (RFC 9051 7.3.5: the client records the update).
pub(crate) fn flags_responses(keywords: Vec<&str>, read_only: bool) -> String {
    let kw = keywords.iter().map(|k| format!(" {k}")).collect::<String>();
    let mut o = format!("* FLAGS ({SYSTEM_FLAGS}{kw})\r\n");
    if read_only {
        o.push_str("* OK [PERMANENTFLAGS ()] Read-only mailbox\r\n");
    } else {
        o.push_str(&format!(
            "* OK [PERMANENTFLAGS ({SYSTEM_FLAGS}{kw} \\*)] Flags permitted\r\n"
        ));
    }
    o
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use pillarbox_store::gate::free_files;
    use pillarbox_store::{MetaStore, NewMessage};

    /// A message that does not compress: stored as a file, not in the database.
    fn large_message() -> Vec<u8> {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut m = b"Subject: large\r\n\r\n".to_vec();
        m.extend((0..64 << 10).map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if i % 78 == 77 {
                b'\n'
            } else {
                b'!' + (x % 90) as u8
            }
        }));
        m
    }

    fn add(store: &dyn MetaStore, mailbox: i64, blob: pillarbox_store::BlobId, size: usize) {
        let m = NewMessage {
            blob,
            size: size as u64,
            internal_date: 0,
            date_offset_minutes: 0,
            flags: Vec::new(),
            summary: Vec::new(),
            inline: None,
        };
        store.append(mailbox, &[m]).unwrap();
    }

    #[test]
    fn a_blob_file_referenced_again_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let shared = crate::test_util::shared(dir.path());
        let (store, blobs) = (&*shared.store, &*shared.blobs);
        let raw = large_message();
        let (id, inline) = blobs.stage(&raw).unwrap();
        assert!(inline.is_none(), "a file");
        blobs.sync_all().unwrap();
        let acc = store.create_account("a", "h").unwrap().id;
        let work = store.create_mailbox(acc, "Work", None).unwrap().id;
        let inbox = store.mailbox(acc, "INBOX").unwrap().unwrap().id;
        add(store, work, id, raw.len());
        let freed = store.delete_mailbox(acc, "Work").unwrap();
        assert_eq!(freed, vec![id]);
        // Meanwhile an APPEND of the same content found the file and
        // committed a message referencing it: the file stays.
        add(store, inbox, id, raw.len());
        free_files(store, blobs, &freed);
        assert_eq!(blobs.get(&id).unwrap(), raw);
        // Unreferenced for good: deleted.
        let trash = store.mailbox(acc, "Trash").unwrap().unwrap().id;
        store.copy(inbox, trash, &[1], true).unwrap();
        let freed = store.delete_mailbox(acc, "Trash").unwrap();
        assert_eq!(freed, vec![id]);
        free_files(store, blobs, &freed);
        assert!(blobs.get(&id).is_err());
    }

    #[test]
    fn blob_files_are_not_deleted_while_an_append_is_in_flight() {
        let dir = tempfile::tempdir().unwrap();
        let shared = std::sync::Arc::new(crate::test_util::shared(dir.path()));
        let raw = large_message();
        let (id, _) = shared.blobs.stage(&raw).unwrap();
        // An APPEND between storing its file and its commit.
        let append = shared.blobs.gate().shared();
        let (done, finished) = mpsc::channel();
        let s = shared.clone();
        let t = std::thread::spawn(move || {
            free_files(&*s.store, &*s.blobs, &[id]);
            done.send(()).unwrap();
        });
        assert!(finished.recv_timeout(Duration::from_millis(200)).is_err());
        assert_eq!(shared.blobs.get(&id).unwrap(), raw);
        drop(append);
        finished.recv_timeout(Duration::from_secs(10)).unwrap();
        t.join().unwrap();
        assert!(
            shared.blobs.get(&id).is_err(),
            "unreferenced: deleted after the commit"
        );
    }
}
