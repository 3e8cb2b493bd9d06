//! Command handlers, one file per command family, as methods on `Session`.
//! Each returns `Ok(Done)` for the tagged OK or a `CmdError` that becomes the
//! tagged NO/BAD with its response code.

mod any;
mod append;
mod authenticate;
mod idle;
mod list;
mod mailbox;
mod message;
pub(crate) mod notify;
pub(crate) mod sort;
mod thread;

use pillarbox_proto::respond;
use pillarbox_proto::types::{Command, Request};
use pillarbox_store::{StoreError, Uid};

use crate::session::{Session, State};

/// A failed command: tagged `NO` (or `BAD` when `bad`) with an optional response code.
#[derive(Debug)]
pub(crate) struct CmdError {
    pub bad: bool,
    pub code: Option<String>,
    pub text: String,
    /// Close the connection after answering.
    pub close: bool,
}

impl CmdError {
    pub fn no(text: impl Into<String>) -> Self {
        CmdError {
            bad: false,
            code: None,
            text: text.into(),
            close: false,
        }
    }
    pub fn no_code(code: &str, text: impl Into<String>) -> Self {
        CmdError {
            bad: false,
            code: Some(code.into()),
            text: text.into(),
            close: false,
        }
    }
    pub fn bad(text: impl Into<String>) -> Self {
        CmdError {
            bad: true,
            code: None,
            text: text.into(),
            close: false,
        }
    }
    pub fn from_store(e: StoreError) -> Self {
        match e {
            StoreError::NoSuchMailbox => CmdError::no_code("NONEXISTENT", "Mailbox doesn't exist"),
            StoreError::MailboxExists => {
                CmdError::no_code("ALREADYEXISTS", "Mailbox already exists")
            }
            StoreError::InvalidName(n) => {
                CmdError::no_code("CANNOT", format!("Invalid mailbox name: {n}"))
            }
            other => {
                tracing::error!("store error: {other}");
                CmdError::no_code("UNAVAILABLE", "Internal error; try again later")
            }
        }
    }
}

/// The tagged OK.
pub(crate) struct Done {
    pub code: Option<String>,
    pub text: String,
    /// The command expunged messages of the selected mailbox: once QRESYNC
    /// is enabled its tagged OK carries `[HIGHESTMODSEQ n]` (RFC 7162 3.2.7,
    /// 3.2.9).
    pub expunged: bool,
}

impl Done {
    pub fn ok(text: impl Into<String>) -> Self {
        Done {
            code: None,
            text: text.into(),
            expunged: false,
        }
    }
    pub fn code(code: impl Into<String>, text: impl Into<String>) -> Self {
        Done {
            code: Some(code.into()),
            text: text.into(),
            expunged: false,
        }
    }
    pub fn expunged(mut self) -> Self {
        self.expunged = true;
        self
    }
}

pub(crate) type CmdResult = Result<Done, CmdError>;

/// Deltas chained from modseq `from` as one change, as `changes_since(from)`
/// would report it: a message's last state, expunged ones only as expunged.
/// (Applied one by one they would each announce, e.g. EXISTS twice.) No
/// deltas: no change, at `from`.
pub(crate) fn merge_deltas(
    from: pillarbox_store::ModSeq,
    deltas: &[std::sync::Arc<pillarbox_store::Delta>],
) -> pillarbox_store::MailboxChanges {
    let mut out = pillarbox_store::MailboxChanges {
        uidvalidity: 0,
        uidnext: 0,
        highest_modseq: from,
        changed: Vec::new(),
        expunged: Vec::new(),
    };
    for d in deltas {
        let c = &d.changes;
        out.changed = c.apply_to(&out.changed);
        out.expunged.extend_from_slice(&c.expunged);
        out.uidvalidity = c.uidvalidity;
        out.uidnext = out.uidnext.max(c.uidnext);
        out.highest_modseq = out.highest_modseq.max(c.highest_modseq);
    }
    out.expunged.sort_unstable();
    out.expunged.dedup();
    out
}

/// `(flags)` of a message as a session shows them: with `\Recent` last
/// when the message is recent in that session (IMAP4rev1).
pub(crate) fn flag_list(out: &mut Vec<u8>, flags: &[String], recent: bool) {
    respond::flag_list(out, flags);
    if recent {
        out.pop();
        if !flags.is_empty() {
            out.push(b' ');
        }
        out.extend_from_slice(b"\\Recent)");
    }
}

/// The start of an untagged FETCH response: `* seq FETCH (`.
pub(crate) fn fetch_start(out: &mut Vec<u8>, seq: u32) {
    out.extend_from_slice(b"* ");
    respond::number(out, u64::from(seq));
    out.extend_from_slice(b" FETCH (");
}

/// The FETCH response item `UID n`.
pub(crate) fn uid_item(out: &mut Vec<u8>, uid: u32) {
    out.extend_from_slice(b"UID ");
    respond::number(out, u64::from(uid));
}

/// The FETCH response item `MODSEQ (n)` (RFC 7162 3.1.4.1).
pub(crate) fn modseq_item(out: &mut Vec<u8>, modseq: u64) {
    out.extend_from_slice(b"MODSEQ (");
    respond::number(out, modseq);
    out.push(b')');
}

/// A store read of one mailbox, None if the mailbox does not exist (any
/// more).
fn if_exists<T>(r: pillarbox_store::Result<T>) -> pillarbox_store::Result<Option<T>> {
    match r {
        Err(StoreError::NoSuchMailbox) => Ok(None),
        r => r.map(Some),
    }
}

/// See [`Session::read_mailbox`].
pub(crate) struct MailboxRead {
    pub info: pillarbox_store::MailboxInfo,
    /// Shared with the process's snapshot of the mailbox (and with the
    /// views that took it unchanged): see `SelectedMailbox::messages`.
    pub messages: std::sync::Arc<Vec<pillarbox_store::MessageMeta>>,
    /// For `SelectedMailbox::seen_version`.
    pub version: u64,
    /// For `SelectedMailbox::checked_at`.
    pub at: std::time::Instant,
    /// For `SelectedMailbox::foreign`.
    pub foreign: Option<u64>,
}

/// How long a session trusts "no change was published" before reading the
/// store again anyway (changes by other processes are not published here).
pub(crate) const RECHECK: std::time::Duration = std::time::Duration::from_millis(100);

fn command_name(c: &Command) -> &'static str {
    match c {
        Command::Capability => "CAPABILITY",
        Command::Noop => "NOOP",
        Command::Logout => "LOGOUT",
        Command::StartTls => "STARTTLS",
        Command::Authenticate { .. } => "AUTHENTICATE",
        Command::Login { .. } => "LOGIN",
        Command::Enable(_) => "ENABLE",
        Command::Id(_) => "ID",
        Command::Namespace => "NAMESPACE",
        Command::Select { .. } => "SELECT",
        Command::Examine { .. } => "EXAMINE",
        Command::Create { .. } => "CREATE",
        Command::Delete(_) => "DELETE",
        Command::Rename { .. } => "RENAME",
        Command::Subscribe(_) => "SUBSCRIBE",
        Command::Unsubscribe(_) => "UNSUBSCRIBE",
        Command::List(_) => "LIST",
        Command::Lsub { .. } => "LSUB",
        Command::Status { .. } => "STATUS",
        Command::Append { .. } => "APPEND",
        Command::Idle => "IDLE",
        Command::Check => "CHECK",
        Command::Close => "CLOSE",
        Command::Unselect => "UNSELECT",
        Command::Expunge => "EXPUNGE",
        Command::UidExpunge(_) => "UID EXPUNGE",
        Command::Search { .. } => "SEARCH",
        Command::Sort { .. } => "SORT",
        Command::Thread { .. } => "THREAD",
        Command::Fetch { .. } => "FETCH",
        Command::Store { .. } => "STORE",
        Command::Copy { .. } => "COPY",
        Command::Move { .. } => "MOVE",
        Command::Notify(_) => "NOTIFY",
    }
}

enum Needs {
    Any,
    NotAuth,
    Auth,
    Selected,
}

fn needs(c: &Command) -> Needs {
    match c {
        Command::Capability | Command::Noop | Command::Logout | Command::Id(_) => Needs::Any,
        Command::StartTls | Command::Authenticate { .. } | Command::Login { .. } => Needs::NotAuth,
        Command::Check
        | Command::Close
        | Command::Unselect
        | Command::Expunge
        | Command::UidExpunge(_)
        | Command::Search { .. }
        | Command::Sort { .. }
        | Command::Thread { .. }
        | Command::Fetch { .. }
        | Command::Store { .. }
        | Command::Copy { .. }
        | Command::Move { .. } => Needs::Selected,
        _ => Needs::Auth,
    }
}

impl Session {
    /// Executes one request and writes its responses; false when the
    /// connection must be closed.
    pub(crate) async fn execute(&mut self, req: Request) -> bool {
        let Request { tag, command } = req;
        let name = command_name(&command);
        let started = std::time::Instant::now();
        let keep = self.execute_inner(&tag, command, name).await;
        let status = self.last_status;
        let m = &self.shared.metrics;
        m.commands
            .get_or_create(&crate::metrics::CommandLabels {
                command: name,
                status,
            })
            .inc();
        m.command_duration
            .get_or_create(&crate::metrics::CommandName { command: name })
            .observe(started.elapsed().as_secs_f64());
        keep
    }

    async fn execute_inner(&mut self, tag: &str, command: Command, name: &'static str) -> bool {
        // Counted as such when the command ends without a tagged response
        // (the client left during IDLE, the server ended the session).
        self.last_status = "none";
        let tag = tag.to_string();
        let allowed = match needs(&command) {
            Needs::Any => Ok(()),
            Needs::NotAuth if self.state == State::NotAuthenticated => Ok(()),
            Needs::NotAuth => Err("Already authenticated"),
            Needs::Auth if self.state == State::NotAuthenticated => Err("Not authenticated"),
            Needs::Auth => Ok(()),
            Needs::Selected if self.state == State::Selected => Ok(()),
            Needs::Selected if self.state == State::NotAuthenticated => Err("Not authenticated"),
            Needs::Selected => Err("No mailbox selected"),
        };
        if let Err(text) = allowed {
            self.tagged(&tag, "BAD", None, &format!("{name}: {text}"));
            return true;
        }
        // EXPUNGE responses are not allowed while answering FETCH, STORE or
        // SEARCH by sequence number (RFC 9051 7.5.1); UID variants may carry them.
        let allow_expunge = !matches!(
            command,
            Command::Fetch { uid: false, .. }
                | Command::Store { uid: false, .. }
                | Command::Search { uid: false, .. }
                | Command::Sort { uid: false, .. }
                | Command::Thread { uid: false, .. }
        );
        // Each command's future is boxed: the session task then stays small
        // (the size of the largest command is paid only while it runs), which
        // matters for thousands of idle sessions.
        let result = match command {
            Command::Capability => self.cmd_capability(),
            // "NOOP completed" (an empty text says "<command> completed").
            Command::Noop | Command::Check => Ok(Done::ok(String::new())),
            Command::Logout => {
                self.out.extend_from_slice(b"* BYE Logging out\r\n");
                self.tagged(&tag, "OK", None, "Logout completed");
                self.state = State::Logout;
                return false;
            }
            Command::StartTls => return Box::pin(self.cmd_starttls(&tag)).await,
            Command::Login { username, password } => {
                Box::pin(self.cmd_login(&username, &password)).await
            }
            Command::Authenticate {
                mechanism,
                initial_response,
            } => Box::pin(self.cmd_authenticate(&tag, &mechanism, initial_response)).await,
            Command::Enable(caps) => self.cmd_enable(&caps),
            Command::Id(_) => self.cmd_id(),
            Command::Namespace => self.cmd_namespace(),
            Command::Select { mailbox, params } => {
                Box::pin(self.cmd_select(&mailbox, &params, false)).await
            }
            Command::Examine { mailbox, params } => {
                Box::pin(self.cmd_select(&mailbox, &params, true)).await
            }
            Command::Create {
                mailbox,
                special_use,
            } => Box::pin(self.cmd_create(&mailbox, &special_use)).await,
            Command::Delete(m) => Box::pin(self.cmd_delete(&m)).await,
            Command::Rename { from, to } => Box::pin(self.cmd_rename(&from, &to)).await,
            Command::Subscribe(m) => Box::pin(self.cmd_subscribe(&m, true)).await,
            Command::Unsubscribe(m) => Box::pin(self.cmd_subscribe(&m, false)).await,
            Command::List(l) => Box::pin(self.cmd_list(&l)).await,
            Command::Lsub { reference, pattern } => {
                Box::pin(self.cmd_lsub(&reference, &pattern)).await
            }
            Command::Status { mailbox, items } => Box::pin(self.cmd_status(&mailbox, &items)).await,
            Command::Append { mailbox, messages } => {
                Box::pin(self.cmd_append(&mailbox, messages)).await
            }
            Command::Idle => return Box::pin(self.cmd_idle(&tag)).await,
            Command::Close => Box::pin(self.cmd_close(true)).await,
            Command::Unselect => Box::pin(self.cmd_close(false)).await,
            Command::Expunge => Box::pin(self.cmd_expunge(None)).await,
            Command::UidExpunge(set) => Box::pin(self.cmd_expunge(Some(&set))).await,
            Command::Search { uid, search } => Box::pin(self.cmd_search(&tag, uid, &search)).await,
            Command::Sort {
                uid,
                criteria,
                search,
            } => Box::pin(self.cmd_sort(&tag, uid, &criteria, &search)).await,
            Command::Thread {
                uid,
                algorithm,
                search,
            } => Box::pin(self.cmd_thread(uid, algorithm, &search)).await,
            Command::Fetch {
                uid,
                set,
                attrs,
                modifiers,
            } => Box::pin(self.cmd_fetch(uid, &set, &attrs, &modifiers)).await,
            Command::Store {
                uid,
                set,
                mode,
                silent,
                flags,
                unchanged_since,
            } => Box::pin(self.cmd_store(uid, &set, mode, silent, &flags, unchanged_since)).await,
            Command::Copy { uid, set, mailbox } => {
                Box::pin(self.cmd_copy(uid, &set, &mailbox, false)).await
            }
            Command::Move { uid, set, mailbox } => {
                Box::pin(self.cmd_copy(uid, &set, &mailbox, true)).await
            }
            Command::Notify(set) => Box::pin(self.cmd_notify(set.as_ref())).await,
        };
        let close = match &result {
            Err(e) => e.close,
            Ok(_) => false,
        };
        let sync_ok = match &result {
            Ok(_) => true,
            Err(e) => !e.bad,
        };
        if sync_ok && self.state == State::Selected {
            if let Err(e) = self.sync(allow_expunge).await {
                tracing::warn!("sync failed: {}", e.text);
            }
            self.write_pending_floor();
        }
        if self.end_reason.is_some() {
            // Ended by the server (`selected_gone`): BYE only.
            return false;
        }
        match result {
            Ok(mut done) => {
                if done.expunged && self.qresync && done.code.is_none() {
                    done.code = self
                        .selected
                        .as_ref()
                        .map(|s| format!("HIGHESTMODSEQ {}", s.announced_modseq()));
                }
                if done.text.is_empty() {
                    self.tagged_parts(&tag, "OK", done.code.as_deref(), &[name, " completed"]);
                } else {
                    self.tagged(&tag, "OK", done.code.as_deref(), &done.text);
                }
            }
            Err(e) => {
                let word = if e.bad { "BAD" } else { "NO" };
                self.tagged(&tag, word, e.code.as_deref(), &e.text);
            }
        }
        !close
    }

    pub(crate) fn tagged(&mut self, tag: &str, word: &str, code: Option<&str>, text: &str) {
        self.tagged_parts(tag, word, code, &[text]);
    }

    /// [`Session::tagged`] with a text made of `parts`, written one after
    /// the other (no string is put together first).
    pub(crate) fn tagged_parts(
        &mut self,
        tag: &str,
        word: &str,
        code: Option<&str>,
        parts: &[&str],
    ) {
        self.last_status = match word {
            "OK" => "OK",
            "NO" => "NO",
            _ => "BAD",
        };
        if self.last_status == "BAD" && self.state == State::NotAuthenticated {
            self.preauth_bad += 1;
        }
        self.out.extend_from_slice(tag.as_bytes());
        self.out.push(b' ');
        self.out.extend_from_slice(word.as_bytes());
        self.out.push(b' ');
        if let Some(c) = code {
            self.out.push(b'[');
            self.out.extend_from_slice(c.as_bytes());
            self.out.extend_from_slice(b"] ");
        }
        for p in parts {
            self.out.extend_from_slice(p.as_bytes());
        }
        self.out.extend_from_slice(b"\r\n");
    }

    /// The whole mailbox as the store has it now (through the process's
    /// snapshot cache, `snapshots.rs`), with what a sync records of its store
    /// read: the publish version, taken before the read (a change published
    /// after it is seen by the next sync), and when the read was made; not
    /// older than modseq `at_least`. None if the mailbox does not exist (any
    /// more).
    pub(crate) async fn read_mailbox(
        &self,
        id: pillarbox_store::MailboxId,
        small: bool,
        at_least: pillarbox_store::ModSeq,
    ) -> Result<Option<MailboxRead>, CmdError> {
        let shared = self.shared.clone();
        self.db_read(small, move |s| {
            if_exists(
                shared
                    .snapshots
                    .current(s, &shared.published, id, RECHECK, at_least),
            )
        })
        .await
    }

    /// Brings the selected mailbox view up to date with the store and writes
    /// the untagged EXPUNGE / EXISTS / FETCH responses.
    pub(crate) async fn sync(&mut self, allow_expunge: bool) -> Result<(), CmdError> {
        self.sync_view(allow_expunge, false).await
    }

    /// [`Session::sync`], and with `exact` it also takes in what other
    /// processes committed, however recently the view was checked (the end
    /// of IDLE, which may announce what happened during it).
    pub(crate) async fn sync_view(
        &mut self,
        allow_expunge: bool,
        exact: bool,
    ) -> Result<(), CmdError> {
        let Some(sel) = &self.selected else {
            return Ok(());
        };
        let (id, since) = (sel.id, sel.known_modseq);
        // Skip the store when nothing was published for this mailbox since the
        // last look, and that look is recent. Changes from other processes are
        // not published here, so the store is still read at least every
        // RECHECK: a change is delayed by at most that much, never lost; and
        // at once when `exact` and the store says another process has
        // committed since the view's last read.
        let version = self.shared.published.version(id);
        // Taken before any read: a commit by another process after it
        // changes it again.
        let foreign = exact.then(|| self.shared.store.foreign_version());
        let recent = sel.checked_at.is_some_and(|t| t.elapsed() < RECHECK)
            && foreign.is_none_or(|f| f.is_some() && f == sel.foreign);
        if recent && sel.seen_version == version {
            // Expunges learnt before, held back from a command that could
            // not announce them: this one may.
            if allow_expunge && !sel.pending_expunge.is_empty() {
                if let Some(sel) = self.selected.as_mut() {
                    let (seqs, uids) = sel.take_pending();
                    self.write_expunged(&seqs, &uids);
                }
            }
            return Ok(());
        }
        // Only changes published here since the last look, and their
        // contents chain from the view's modseq: apply them without reading
        // the store. The store is still read at least every RECHECK (other
        // processes publish nothing here), so `checked_at` stays.
        if recent {
            if let Some(deltas) =
                self.shared
                    .published
                    .between(id, sel.seen_version, version, since)
            {
                self.apply_changes(merge_deltas(since, &deltas), allow_expunge);
                if let Some(sel) = self.selected.as_mut() {
                    sel.seen_version = version;
                }
                return Ok(());
            }
        }
        let foreign = foreign.unwrap_or_else(|| self.shared.store.foreign_version());
        let ch = self.db_quick(|s| if_exists(s.changes_since(id, since)))?;
        let ch = self.of_selected(ch, |c| c.uidvalidity)?;
        if let Some(sel) = self.selected.as_mut() {
            sel.seen_version = version;
            sel.checked_at = Some(std::time::Instant::now());
            sel.foreign = foreign;
        }
        self.apply_changes(ch, allow_expunge);
        Ok(())
    }

    /// `read` (of the selected mailbox's id) if it is of the selected
    /// mailbox: it exists, with the UIDVALIDITY it had when selected.
    /// Otherwise the mailbox is gone ([`Session::selected_gone`]).
    pub(crate) fn of_selected<T>(
        &mut self,
        read: Option<T>,
        uidvalidity: impl FnOnce(&T) -> u32,
    ) -> Result<T, CmdError> {
        match (read, &self.selected) {
            (Some(r), Some(sel)) if uidvalidity(&r) == sel.uidvalidity => Ok(r),
            _ => Err(self.selected_gone()),
        }
    }

    /// The selected mailbox was deleted (by another session or process; ids
    /// are never reused, and a store read with another UIDVALIDITY is not of
    /// it either). Like Dovecot, the session ends: `* BYE`, no tagged
    /// response, the connection is closed (`execute` and the IDLE and NOTIFY
    /// paths see `end_reason`). The client reconnects and finds the mailbox
    /// gone from LIST.
    pub(crate) fn selected_gone(&mut self) -> CmdError {
        if self.state != State::Logout {
            self.out
                .extend_from_slice(b"* BYE Selected mailbox was deleted, have to disconnect.\r\n");
            self.selected = None;
            self.state = State::Logout;
            self.end_reason = Some("mailbox_deleted");
        }
        let mut e = CmdError::no_code("NONEXISTENT", "Selected mailbox was deleted");
        e.close = true;
        e
    }

    /// Applies a published delta if it starts exactly where this session's view
    /// is; otherwise (or if the view moved on) reads the store. True if applied.
    pub(crate) fn apply_delta(
        &mut self,
        delta: &pillarbox_store::Delta,
        allow_expunge: bool,
    ) -> bool {
        let Some(sel) = self.selected.as_ref() else {
            return false;
        };
        if sel.known_modseq != delta.from_modseq {
            return false;
        }
        self.apply_changes(delta.changes.clone(), allow_expunge);
        true
    }

    /// Merges changes into the view and writes the untagged responses.
    fn apply_changes(&mut self, ch: pillarbox_store::MailboxChanges, allow_expunge: bool) {
        let condstore = self.condstore;
        let Some(sel) = self.selected.as_mut() else {
            return;
        };
        // A keyword no message of the view had: the client learns the new
        // FLAGS list before the FETCH that shows it (as Dovecot does).
        // A few distinct keywords are each looked for in the view (a search
        // that stops at the first message with it); more, through one pass
        // collecting the view's keywords.
        let changed_keywords = crate::view::keywords(ch.changed.iter().map(|m| &m.flags));
        let new_keyword = if changed_keywords.len() <= 4 {
            changed_keywords.iter().any(|k| !sel.has_keyword(k))
        } else {
            let have: std::collections::HashSet<String> = sel
                .keywords()
                .into_iter()
                .map(str::to_ascii_lowercase)
                .collect();
            changed_keywords
                .iter()
                .any(|k| !have.contains(&k.to_ascii_lowercase()))
        };
        let first_new = sel.max_uid() + 1;
        let out = sel.apply(ch, allow_expunge, condstore);
        if new_keyword {
            self.write_flags_list();
        }
        self.write_expunged(&out.expunged_seqs, &out.expunged_uids);
        if let Some(n) = out.exists {
            self.out
                .extend_from_slice(format!("* {n} EXISTS\r\n").as_bytes());
            if !self.rev2 {
                self.take_recent(first_new);
            }
        }
        for (seq, uid) in out.flag_change_seqs.into_iter().zip(out.flag_changes) {
            self.write_change_fetch_at(seq, uid, true, true);
        }
    }

    /// IMAP4rev1, after EXISTS: the new messages (UIDs from `from` on) that
    /// this session is the first to learn of are \Recent in it (RFC 3501
    /// 2.3.2, as Dovecot does for a session that has the mailbox open
    /// read-write), and RECENT follows when that changes its count (7.3.2).
    /// Taking them is a write: here at once when the writer is free, else
    /// at the next flush ([`Session::claim_pending_recent`]), in order, so
    /// an earlier range is never skipped by a later one. Not tried when this
    /// process knows they are taken (`PublishLog::recent_taken`): with many
    /// sessions notified, one of them writes.
    fn take_recent(&mut self, from: Uid) {
        let Some(sel) = self.selected.as_mut() else {
            return;
        };
        let to = sel.max_uid() + 1;
        let taken = self.shared.published.recent_taken(sel.id);
        if !sel.read_only && from < to && taken < to {
            if let Some((f, _)) = sel.recent_pending {
                sel.recent_pending = Some((f, to));
                return;
            }
            let id = sel.id;
            match self.shared.store.try_claim_recent_range(id, from, to) {
                Some(Ok(claimed)) => self.took_recent(id, claimed, to),
                Some(Err(e)) => tracing::warn!("claiming \\Recent failed: {e}"),
                None => {
                    sel.recent_pending = Some((from, to));
                    return;
                }
            }
        }
        self.write_recent();
    }

    /// A \Recent claim in `mailbox` up to `to` was made, and gave this
    /// session `claimed`: this process knows it (`PublishLog::recent_taken`),
    /// and the view, if that mailbox is still selected.
    pub(crate) fn took_recent(&mut self, mailbox: i64, claimed: (Uid, Uid), to: Uid) {
        self.shared.published.took_recent(mailbox, to);
        self.view_took_recent(mailbox, claimed);
    }

    /// The view's part of [`Session::took_recent`] (for APPEND, whose
    /// committing thread tells the process).
    pub(crate) fn view_took_recent(&mut self, mailbox: i64, claimed: (Uid, Uid)) {
        if let Some(sel) = self.selected.as_mut().filter(|s| s.id == mailbox) {
            sel.add_recent(claimed.0, claimed.1);
        }
    }

    /// `* n RECENT` if n changed since the last one (as Dovecot does: a
    /// session that got none of the new mail hears only EXISTS).
    fn write_recent(&mut self) {
        let Some(sel) = self.selected.as_mut() else {
            return;
        };
        let n = u32::try_from(sel.recent_count()).unwrap_or(u32::MAX);
        if n != sel.recent_sent {
            sel.recent_sent = n;
            self.out
                .extend_from_slice(format!("* {n} RECENT\r\n").as_bytes());
        }
    }

    /// The \Recent claim [`Session::take_recent`] left for later, on the
    /// blocking pool, and the RECENT it owes.
    pub(crate) async fn claim_pending_recent(&mut self) {
        let Some((id, (from, to))) = self
            .selected
            .as_mut()
            .and_then(|s| s.recent_pending.take().map(|p| (s.id, p)))
        else {
            return;
        };
        match self.db(move |s| s.claim_recent_range(id, from, to)).await {
            Ok(claimed) => self.took_recent(id, claimed, to),
            Err(e) => tracing::warn!("claiming \\Recent failed: {}", e.text),
        }
        if self.selected.as_ref().is_some_and(|s| s.id == id) {
            self.write_recent();
        }
    }

    /// Under CONDSTORE, while expunges wait for a command that may announce
    /// them, `* OK [HIGHESTMODSEQ n]` below them: the MODSEQs this command
    /// sent may be higher, and a client that resynchronised from those later
    /// would miss the expunges (RFC 7162).
    fn write_pending_floor(&mut self) {
        let Some(sel) = self.selected.as_ref() else {
            return;
        };
        if !self.condstore || sel.pending_expunge.is_empty() {
            return;
        }
        let line = format!(
            "* OK [HIGHESTMODSEQ {}] Expunges not reported yet\r\n",
            sel.announced_modseq()
        );
        self.out.extend_from_slice(line.as_bytes());
    }

    /// `* seq FETCH (UID u FLAGS (...) [MODSEQ (m)])` for a message of the view.
    /// The UID is there when asked for (UID commands, unsolicited changes) and
    /// always once CONDSTORE is enabled: a server that offers QRESYNC must
    /// then include UID and MODSEQ in every untagged FETCH, whether the
    /// client enabled QRESYNC or only CONDSTORE (RFC 7162 3.2.4).
    pub(crate) fn write_flags_fetch(&mut self, uid: u32, with_uid: bool) {
        self.write_change_fetch(uid, with_uid, true);
    }

    /// `* seq FETCH ([UID u] MODSEQ (m))`: a flag change made by STORE
    /// .SILENT, which still reports the new modseq under CONDSTORE (RFC 7162
    /// 3.1.3).
    pub(crate) fn write_modseq_fetch(&mut self, uid: u32, with_uid: bool) {
        self.write_change_fetch(uid, with_uid, false);
    }

    fn write_change_fetch(&mut self, uid: u32, with_uid: bool, with_flags: bool) {
        let Some(seq) = self.selected.as_ref().and_then(|sel| sel.seq_of(uid)) else {
            return;
        };
        self.write_change_fetch_at(seq, uid, with_uid, with_flags);
    }

    /// `write_change_fetch` for the message at `seq`, UID `uid`.
    fn write_change_fetch_at(&mut self, seq: u32, uid: u32, with_uid: bool, with_flags: bool) {
        let Some(sel) = &self.selected else { return };
        let Some((flags, modseq)) = sel.flags_modseq(seq) else {
            return;
        };
        let line = &mut self.out;
        fetch_start(line, seq);
        let mut sep: &[u8] = b"";
        if with_uid || self.condstore {
            uid_item(line, uid);
            sep = b" ";
        }
        if with_flags {
            line.extend_from_slice(sep);
            line.extend_from_slice(b"FLAGS ");
            flag_list(line, flags, sel.is_recent(uid));
            sep = b" ";
        }
        if self.condstore {
            line.extend_from_slice(sep);
            modseq_item(line, modseq);
        }
        line.extend_from_slice(b")\r\n");
    }
}

#[cfg(test)]
mod merge_tests {
    use std::sync::Arc;

    use pillarbox_store::{Delta, MailboxChanges, MessageMeta};

    use crate::test_util::meta;

    fn delta(from: u64, changed: Vec<MessageMeta>, expunged: Vec<u32>, uidnext: u32) -> Arc<Delta> {
        Arc::new(Delta {
            from_modseq: from,
            changes: MailboxChanges {
                uidvalidity: 0,
                uidnext,
                highest_modseq: from + 1,
                changed,
                expunged,
            },
        })
    }

    #[test]
    fn merged_deltas_report_each_message_once_in_its_last_state() {
        let ds = [
            // 5 appended, 2 flagged.
            delta(10, vec![meta(2, "a", 11), meta(5, "new", 11)], vec![], 6),
            // 2 flagged again, 3 expunged.
            delta(11, vec![meta(2, "b", 12)], vec![3], 6),
            // 5 expunged right after it was appended; 6 appended.
            delta(12, vec![meta(6, "x", 13)], vec![5], 7),
        ];
        let m = super::merge_deltas(10, &ds);
        assert_eq!(m.highest_modseq, 13);
        let none = super::merge_deltas(10, &[]);
        assert_eq!((none.highest_modseq, none.changed.len()), (10, 0));
        assert_eq!(m.uidnext, 7);
        assert_eq!(m.expunged, [3, 5]);
        let changed: Vec<(u32, String, u64)> = m
            .changed
            .iter()
            .map(|c| (c.uid, c.flags[0].clone(), c.modseq))
            .collect();
        assert_eq!(
            changed,
            [(2, "b".to_string(), 12), (6, "x".to_string(), 13)]
        );
    }
}
