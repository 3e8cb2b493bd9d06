//! NOTIFY (RFC 5465): which events the client wants about which mailboxes,
//! and turning change-bus events into untagged responses at any time (not
//! only during IDLE): STATUS for other mailboxes, EXISTS/FETCH/EXPUNGE for the
//! selected one, LIST for mailbox name and subscription changes.
//!
//! Only the events published after the NOTIFY SET are reported (the session
//! subscribes to the change bus anew); the STATUS option is how a client
//! catches up. A session that falls too far behind the bus gets
//! `* OK [NOTIFICATIONOVERFLOW]` and is then as after NOTIFY NONE (5.8).

use std::collections::{BTreeSet, HashMap};

use pillarbox_proto::respond;
use pillarbox_proto::types::{
    FetchAttr, NotifyEvent, NotifyFilter, NotifySet, SeqNum, SequenceSet,
};
use pillarbox_store::bus::RecvError;
use pillarbox_store::{ChangeEvent, ChangeKind, MailboxId, MailboxStatus};

use super::{if_exists, CmdError, CmdResult, Done};
use crate::names;
use crate::session::Session;

/// The events this server can report, as BADEVENT lists them (RFC 5465 3.1).
const SUPPORTED_EVENTS: &str =
    "MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange";

/// A mailbox filter with names decoded.
#[derive(Debug, Clone)]
enum Filter {
    Inboxes,
    Personal,
    Subscribed,
    Subtree(Vec<String>),
    Mailboxes(Vec<String>),
}

#[derive(Debug, Clone, Default)]
struct Events {
    message_new: bool,
    new_attrs: Vec<FetchAttr>,
    message_expunge: bool,
    flag_change: bool,
    mailbox_name: bool,
    subscription: bool,
}

impl Events {
    fn from(list: &[NotifyEvent]) -> Events {
        let mut e = Events::default();
        for ev in list {
            match ev {
                NotifyEvent::MessageNew(attrs) => {
                    e.message_new = true;
                    e.new_attrs = attrs.clone();
                }
                NotifyEvent::MessageExpunge => e.message_expunge = true,
                NotifyEvent::FlagChange => e.flag_change = true,
                NotifyEvent::MailboxName => e.mailbox_name = true,
                NotifyEvent::SubscriptionChange => e.subscription = true,
                // Refused by `check` before this is called.
                _ => {}
            }
        }
        e
    }

    /// What IDLE without NOTIFY reports about the selected mailbox.
    fn all_message_events() -> Events {
        Events {
            message_new: true,
            message_expunge: true,
            flag_change: true,
            ..Events::default()
        }
    }

    fn messages(&self) -> bool {
        self.message_new || self.message_expunge || self.flag_change
    }
}

/// What MessageNew and MessageExpunge change in a mailbox's STATUS; a flag
/// change leaves it alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    messages: u32,
    uidnext: u32,
    uidvalidity: u32,
}

impl Counts {
    fn of(st: &MailboxStatus) -> Counts {
        Counts {
            messages: st.messages,
            uidnext: st.uidnext,
            uidvalidity: st.uidvalidity,
        }
    }

    /// The counts once `ch` (a change published with its content) is made:
    /// its new messages (UIDs from UIDNEXT on) join, its expunged leave.
    fn after(self, ch: &pillarbox_store::MailboxChanges) -> Counts {
        let new = ch.changed.iter().filter(|m| m.uid >= self.uidnext).count() as u32;
        let gone = ch.expunged.len() as u32;
        Counts {
            messages: (self.messages + new).saturating_sub(gone),
            uidnext: self.uidnext.max(ch.uidnext),
            uidvalidity: self.uidvalidity,
        }
    }
}

/// The active NOTIFY settings of a session.
#[derive(Debug, Clone, Default)]
pub(crate) struct NotifyState {
    /// Events for the selected mailbox, and whether expunges may wait
    /// (SELECTED-DELAYED). None: no SELECTED group, the same as SELECTED
    /// NONE (RFC 5465 3.1).
    selected: Option<(Events, bool)>,
    others: Vec<(Filter, Events)>,
    /// Per watched mailbox, its counts when last looked at: a STATUS is sent
    /// without FlagChange only when they changed.
    counts: HashMap<MailboxId, Counts>,
    /// The account's mailbox names as the events so far left them, kept
    /// while MailboxName is watched: tells which parents a CREATE or RENAME
    /// made too, and which inferiors a RENAME moved.
    names: Option<BTreeSet<String>>,
}

impl NotifyState {
    /// The events the client wants for a non-selected mailbox, if any: the
    /// first group whose filter takes the mailbox.
    fn watching(&self, name: &str, subs: &BTreeSet<String>) -> Option<&Events> {
        self.others
            .iter()
            .find(|(f, _)| match f {
                Filter::Inboxes => name == "INBOX",
                Filter::Personal => true,
                Filter::Subscribed => subs.contains(name),
                Filter::Subtree(roots) => roots
                    .iter()
                    .any(|r| name == r || name.starts_with(&format!("{r}{}", names::SEP))),
                Filter::Mailboxes(list) => list.iter().any(|n| n == name),
            })
            .map(|(_, e)| e)
    }

    fn wants_names(&self, name: &str, subs: &BTreeSet<String>) -> bool {
        self.watching(name, subs).is_some_and(|e| e.mailbox_name)
    }

    /// Follows a mailbox-name change in `names`; returns the parents it
    /// created, and for a RENAME the inferiors it moved (old, new).
    fn note_names(&mut self, kind: &ChangeKind) -> NameChanges {
        let mut out = NameChanges::default();
        let Some(known) = self.names.as_mut() else {
            return out;
        };
        match kind {
            ChangeKind::MailboxCreated { name } => out.created_parents = created(known, name),
            ChangeKind::MailboxDeleted { name } => {
                known.remove(name);
            }
            // RFC 9051 6.3.6: INBOX stays, its inferiors too; `to` is new.
            ChangeKind::MailboxRenamed { from, to } if from == "INBOX" => {
                out.created_parents = created(known, to)
            }
            ChangeKind::MailboxRenamed { from, to } => {
                let prefix = format!("{from}{}", names::SEP);
                let inferiors: Vec<String> = known
                    .iter()
                    .filter(|n| n.starts_with(&prefix))
                    .cloned()
                    .collect();
                known.remove(from);
                for old in &inferiors {
                    known.remove(old);
                }
                out.created_parents = created(known, to);
                for old in inferiors {
                    let new = format!("{to}{}", &old[from.len()..]);
                    known.insert(new.clone());
                    out.moved.push((old, new));
                }
            }
            ChangeKind::Messages | ChangeKind::Subscription { .. } => {}
        }
        out
    }
}

/// Adds `name` and its parents to `known`; returns the parents that were
/// not there (created with it).
fn created(known: &mut BTreeSet<String>, name: &str) -> Vec<String> {
    let mut made = Vec::new();
    for p in names::parents(name) {
        if known.insert(p.to_string()) {
            made.push(p.to_string());
        }
    }
    known.insert(name.to_string());
    made
}

#[derive(Debug, Default, PartialEq, Eq)]
struct NameChanges {
    created_parents: Vec<String>,
    moved: Vec<(String, String)>,
}

fn event_name(e: &NotifyEvent) -> &str {
    match e {
        NotifyEvent::MessageNew(_) => "MessageNew",
        NotifyEvent::MessageExpunge => "MessageExpunge",
        NotifyEvent::FlagChange => "FlagChange",
        NotifyEvent::AnnotationChange => "AnnotationChange",
        NotifyEvent::MailboxName => "MailboxName",
        NotifyEvent::SubscriptionChange => "SubscriptionChange",
        NotifyEvent::MailboxMetadataChange => "MailboxMetadataChange",
        NotifyEvent::ServerMetadataChange => "ServerMetadataChange",
        NotifyEvent::Other(name) => name,
    }
}

/// Refuses what RFC 5465 calls an error (tagged BAD) and events this server
/// does not support (tagged NO [BADEVENT], 3.1): ANNOTATE and METADATA are
/// not offered, and an unknown `event-ext` atom is not supported either.
fn check(set: &NotifySet) -> Result<(), CmdError> {
    let mut selected_group = false;
    for g in &set.groups {
        if matches!(
            g.filter,
            NotifyFilter::Selected | NotifyFilter::SelectedDelayed
        ) {
            // 6.1: only one of them, and only message events with them.
            if selected_group {
                return Err(CmdError::bad(
                    "Only one of SELECTED and SELECTED-DELAYED may be given",
                ));
            }
            selected_group = true;
            if let Some(e) = g.events.iter().find(|e| {
                matches!(
                    e,
                    NotifyEvent::MailboxName
                        | NotifyEvent::SubscriptionChange
                        | NotifyEvent::MailboxMetadataChange
                        | NotifyEvent::ServerMetadataChange
                )
            }) {
                return Err(CmdError::bad(format!(
                    "{} is not a message event: SELECTED and SELECTED-DELAYED take only message events",
                    event_name(e)
                )));
            }
        }
        // 5: MessageNew and MessageExpunge go together, and FlagChange and
        // AnnotationChange need both.
        let has = |f: fn(&NotifyEvent) -> bool| g.events.iter().any(f);
        let new = has(|e| matches!(e, NotifyEvent::MessageNew(_)));
        let expunge = has(|e| matches!(e, NotifyEvent::MessageExpunge));
        let flags = has(|e| matches!(e, NotifyEvent::FlagChange | NotifyEvent::AnnotationChange));
        if new != expunge || (flags && !new) {
            return Err(CmdError::bad(
                "MessageNew and MessageExpunge must be used together (FlagChange requires both)",
            ));
        }
    }
    let unsupported = set.groups.iter().flat_map(|g| &g.events).find(|e| {
        matches!(
            e,
            NotifyEvent::AnnotationChange
                | NotifyEvent::MailboxMetadataChange
                | NotifyEvent::ServerMetadataChange
                | NotifyEvent::Other(_)
        )
    });
    if let Some(e) = unsupported {
        return Err(CmdError::no_code(
            &format!("BADEVENT ({SUPPORTED_EVENTS})"),
            format!("Unsupported NOTIFY event {}", event_name(e)),
        ));
    }
    Ok(())
}

impl Session {
    pub(crate) async fn cmd_notify(&mut self, set: Option<&NotifySet>) -> CmdResult {
        let Some(set) = set else {
            self.notify = None;
            self.changes = None;
            return Ok(Done::ok("NOTIFY completed"));
        };
        check(set)?;
        let mut state = NotifyState::default();
        for g in &set.groups {
            let ev = Events::from(&g.events);
            let decode = |s: &Self,
                          list: &[pillarbox_proto::types::MailboxName]|
             -> Result<Vec<String>, CmdError> {
                list.iter().map(|m| s.decode_name(m)).collect()
            };
            match &g.filter {
                NotifyFilter::Selected => state.selected = Some((ev, false)),
                NotifyFilter::SelectedDelayed => state.selected = Some((ev, true)),
                NotifyFilter::Inboxes => state.others.push((Filter::Inboxes, ev)),
                NotifyFilter::Personal => state.others.push((Filter::Personal, ev)),
                NotifyFilter::Subscribed => state.others.push((Filter::Subscribed, ev)),
                NotifyFilter::Subtree(l) => {
                    state.others.push((Filter::Subtree(decode(self, l)?), ev))
                }
                NotifyFilter::Mailboxes(l) => {
                    state.others.push((Filter::Mailboxes(decode(self, l)?), ev))
                }
            }
        }
        // Events from now on only: earlier ones (before this command, or
        // while NOTIFY NONE was in effect) are not reported. Subscribed before
        // the reads below, so that no change after them is missed.
        let changes = self.shared.bus.subscribe(self.account_id()?);
        let counted = state.others.iter().any(|(_, e)| e.messages());
        let named = state.others.iter().any(|(_, e)| e.mailbox_name);
        let mut lines = Vec::new();
        if counted || named {
            let acc = self.account_id()?;
            let (mailboxes, subs) = self
                .db(move |s| Ok((s.list_mailboxes(acc)?, s.subscriptions(acc)?)))
                .await?;
            let subs: BTreeSet<String> = subs.into_iter().collect();
            if named {
                state.names = Some(mailboxes.iter().map(|m| m.name.clone()).collect());
            }
            let selected = self.selected.as_ref().map(|s| s.id);
            for mb in mailboxes {
                if Some(mb.id) == selected
                    || !state
                        .watching(&mb.name, &subs)
                        .is_some_and(|e| e.messages())
                {
                    continue;
                }
                let id = mb.id;
                let st = self.db_quick(|s| s.status(id))?;
                state.counts.insert(id, Counts::of(&st));
                // RFC 5465 3.1: STATUS for each watched mailbox but the
                // selected one before the tagged OK.
                if set.status {
                    lines.extend_from_slice(&self.notify_status(&mb.name, &st));
                }
            }
        }
        self.out.extend_from_slice(&lines);
        self.changes = Some(changes);
        self.notify = Some(Box::new(state));
        Ok(Done::ok("NOTIFY completed"))
    }

    /// `* STATUS name (MESSAGES UIDNEXT UIDVALIDITY UNSEEN [HIGHESTMODSEQ])`:
    /// HIGHESTMODSEQ once CONDSTORE is enabled (RFC 5465 5.1, 5.2).
    fn notify_status(&self, name: &str, st: &MailboxStatus) -> Vec<u8> {
        let mut line = b"* STATUS ".to_vec();
        respond::mailbox(&mut line, name, self.utf8);
        line.extend_from_slice(
            format!(
                " (MESSAGES {} UIDNEXT {} UIDVALIDITY {} UNSEEN {}",
                st.messages, st.uidnext, st.uidvalidity, st.unseen
            )
            .as_bytes(),
        );
        if self.condstore {
            line.extend_from_slice(format!(" HIGHESTMODSEQ {}", st.highest_modseq).as_bytes());
        }
        line.extend_from_slice(b")\r\n");
        line
    }

    /// Handles one change-bus event: brings the selected mailbox up to date
    /// (during IDLE without NOTIFY, or as NOTIFY asks) and sends the NOTIFY
    /// responses for other mailboxes.
    pub(crate) async fn notify_event(
        &mut self,
        ev: Result<ChangeEvent, RecvError>,
        in_idle: bool,
    ) -> Result<(), CmdError> {
        let ev = match ev {
            Ok(ev) => ev,
            Err(RecvError::Lagged(_)) => {
                // Events were lost. RFC 5465 5.8: say so, then behave as
                // after NOTIFY NONE. IDLE re-reads the selected mailbox (it
                // may report expunges); between commands, the next command
                // reports its changes.
                if self.notify.take().is_some() {
                    self.out.extend_from_slice(
                        b"* OK [NOTIFICATIONOVERFLOW] Too many changes to follow, NOTIFY NONE is in effect\r\n",
                    );
                }
                if in_idle {
                    return self.sync(true).await;
                }
                self.changes = None;
                return Ok(());
            }
            Err(RecvError::Closed) => return Ok(()),
        };
        let Some(acc) = self.account.as_ref().map(|a| a.id) else {
            return Ok(());
        };
        if ev.account != acc {
            return Ok(());
        }
        let selected = self.selected.as_ref().map(|s| s.id);
        // A change to the selected mailbox, its deletion included (published
        // without a delta: the sync reads the store and finds it gone).
        if matches!(
            ev.kind,
            ChangeKind::Messages | ChangeKind::MailboxDeleted { .. }
        ) && Some(ev.mailbox) == selected
        {
            return self.selected_event(&ev, in_idle).await;
        }
        let Some(state) = self.notify.as_mut() else {
            return Ok(());
        };
        // Own changes too: the names and counts follow every change.
        let name_changes = state.note_names(&ev.kind);
        if let ChangeKind::MailboxDeleted { .. } = ev.kind {
            state.counts.remove(&ev.mailbox);
        }
        if ev.origin == self.id {
            // The counts follow the session's own change, which is not
            // reported: when the store shows exactly that change. When it
            // shows more (another session's change, committed and not yet
            // seen here), or the change came without content, the counts the
            // client was told stay, and the other change's event compares
            // with them (without FlagChange a STATUS follows only a change of
            // the counts, so taking them in here would lose it).
            if let (ChangeKind::Messages, Some(&before)) = (&ev.kind, state.counts.get(&ev.mailbox))
            {
                let id = ev.mailbox;
                let expected = ev.delta.as_ref().map(|d| before.after(&d.changes));
                let st = self.db_quick(|s| s.status(id))?;
                let now = Counts::of(&st);
                if expected == Some(now) {
                    if let Some(state) = self.notify.as_mut() {
                        state.counts.insert(id, now);
                    }
                }
            }
            return Ok(());
        }
        let subs: BTreeSet<String> = if state
            .others
            .iter()
            .any(|(f, _)| matches!(f, Filter::Subscribed))
        {
            self.db(move |s| s.subscriptions(acc))
                .await?
                .into_iter()
                .collect()
        } else {
            BTreeSet::new()
        };
        let Some(state) = self.notify.as_ref() else {
            return Ok(());
        };
        let mut lists: Vec<(&str, String, Option<String>)> = Vec::new();
        // Parents made by a CREATE or RENAME come before the names in them.
        for p in name_changes.created_parents {
            if state.wants_names(&p, &subs) {
                lists.push(("", p, None));
            }
        }
        match &ev.kind {
            ChangeKind::Messages => self.other_mailbox_changed(&ev, &subs).await?,
            ChangeKind::MailboxCreated { name } => {
                if state.wants_names(name, &subs) {
                    lists.push(("", name.clone(), None));
                }
            }
            ChangeKind::MailboxDeleted { name } => {
                if state.wants_names(name, &subs) {
                    lists.push(("\\NonExistent", name.clone(), None));
                }
            }
            // RENAME INBOX moves its messages to a new mailbox; INBOX stays
            // (RFC 9051 6.3.6): a new name, and INBOX's messages changed.
            ChangeKind::MailboxRenamed { from, to } if from == "INBOX" => {
                if state.wants_names(to, &subs) {
                    lists.push(("", to.clone(), None));
                }
                self.write_lists(lists);
                lists = Vec::new();
                if Some(ev.mailbox) == selected {
                    self.selected_event(&ev, in_idle).await?;
                } else {
                    self.other_mailbox_changed(&ev, &subs).await?;
                }
            }
            // RFC 5465 5.4: a LIST with OLDNAME for each mailbox renamed,
            // its inferiors included.
            ChangeKind::MailboxRenamed { from, to } => {
                let renamed = std::iter::once((from.clone(), to.clone())).chain(name_changes.moved);
                for (old, new) in renamed {
                    if state.wants_names(&new, &subs) || state.wants_names(&old, &subs) {
                        lists.push(("", new, Some(old)));
                    }
                }
            }
            ChangeKind::Subscription { name, subscribed } => {
                if state.watching(name, &subs).is_some_and(|e| e.subscription) {
                    let attrs = if *subscribed { "\\Subscribed" } else { "" };
                    lists.push((attrs, name.clone(), None));
                }
            }
        }
        self.write_lists(lists);
        Ok(())
    }

    fn write_lists(&mut self, lists: Vec<(&str, String, Option<String>)>) {
        for (attrs, name, old) in lists {
            self.write_list_event(attrs, &name, old.as_deref());
        }
    }

    /// A change to the selected mailbox (or its deletion): reported at once
    /// as plain IDLE does, or as NOTIFY asks; otherwise left for the next
    /// command (RFC 5465 3.1, 4: during IDLE too, exactly the events asked
    /// for).
    async fn selected_event(&mut self, ev: &ChangeEvent, in_idle: bool) -> Result<(), CmdError> {
        let (events, delayed) = match &mut self.notify {
            None if in_idle => (Events::all_message_events(), false),
            None => return Ok(()),
            Some(state) => {
                // Out of date once it is selected; a STATUS is sent at its
                // first change once it is not.
                state.counts.remove(&ev.mailbox);
                match &state.selected {
                    Some((e, delayed)) if e.messages() => (e.clone(), *delayed),
                    _ => return Ok(()),
                }
            }
        };
        // SELECTED-DELAYED: expunges wait for a command that may announce
        // them, IDLE being one (RFC 5465 6.1.2).
        let allow_expunge = in_idle || !delayed;
        let before = self.out.len();
        let old_max = self.selected.as_ref().map(|s| s.max_uid()).unwrap_or(0);
        if events.flag_change {
            let applied = matches!(ev.kind, ChangeKind::Messages)
                && ev
                    .delta
                    .as_ref()
                    .is_some_and(|d| self.apply_delta(d, allow_expunge));
            if !applied {
                self.sync(allow_expunge).await?;
            }
        } else {
            self.apply_new_and_expunged(ev, allow_expunge)?;
        }
        if events.message_new && !events.new_attrs.is_empty() {
            let set = SequenceSet::Ranges(vec![(SeqNum::Value(old_max + 1), SeqNum::Star)]);
            if self
                .selected
                .as_ref()
                .is_some_and(|s| s.max_uid() > old_max)
            {
                let hibernated = self
                    .selected
                    .as_ref()
                    .is_some_and(|s| s.hibernated.is_some());
                self.rehydrate(allow_expunge).await?;
                self.cmd_fetch(true, &set, &events.new_attrs, &[]).await?;
                if hibernated {
                    self.hibernate_view();
                }
            }
        }
        if self.out.len() > before {
            self.shared
                .metrics
                .push_delay
                .observe(ev.committed_at.elapsed().as_secs_f64());
        }
        Ok(())
    }

    /// Without FlagChange: announces new and expunged messages of the
    /// selected mailbox, not flag changes. The view keeps its modseq, so the
    /// next command's sync reads the flag changes again and reports them.
    fn apply_new_and_expunged(
        &mut self,
        ev: &ChangeEvent,
        allow_expunge: bool,
    ) -> Result<(), CmdError> {
        let Some(sel) = self.selected.as_ref() else {
            return Ok(());
        };
        let (id, since, max) = (sel.id, sel.known_modseq, sel.max_uid());
        let delta = ev
            .delta
            .as_ref()
            .filter(|d| matches!(ev.kind, ChangeKind::Messages) && d.from_modseq == since);
        let mut ch = match delta {
            Some(d) => d.changes.clone(),
            None => {
                let ch = self.db_quick(|s| if_exists(s.changes_since(id, since)))?;
                self.of_selected(ch, |c| c.uidvalidity)?
            }
        };
        ch.changed.retain(|m| m.uid > max);
        ch.highest_modseq = since;
        self.apply_changes(ch, allow_expunge);
        Ok(())
    }

    /// A change to the messages of another mailbox: STATUS if it is
    /// watched, and what it changed is asked for. MessageNew and
    /// MessageExpunge show in MESSAGES, UIDNEXT and UIDVALIDITY; a flag change
    /// only is reported with FlagChange only (RFC 5465 5.1-5.3, as Dovecot).
    async fn other_mailbox_changed(
        &mut self,
        ev: &ChangeEvent,
        subs: &BTreeSet<String>,
    ) -> Result<(), CmdError> {
        let id = ev.mailbox;
        let Some(mb) = self.db_quick(|s| if_exists(s.mailbox_by_id(id)))? else {
            return Ok(());
        };
        let Some(flag_change) = self
            .notify
            .as_ref()
            .and_then(|n| n.watching(&mb.name, subs))
            .filter(|e| e.messages())
            .map(|e| e.flag_change)
        else {
            return Ok(());
        };
        let st = self.db_quick(|s| s.status(id))?;
        let now = Counts::of(&st);
        let before = self.notify.as_mut().and_then(|n| n.counts.insert(id, now));
        if before != Some(now) || flag_change {
            let line = self.notify_status(&mb.name, &st);
            self.out.extend_from_slice(&line);
            self.shared
                .metrics
                .push_delay
                .observe(ev.committed_at.elapsed().as_secs_f64());
        }
        Ok(())
    }

    /// `* LIST (attrs) "/" name [("OLDNAME" ("old"))]` (RFC 5465 5.4, RFC 5258).
    fn write_list_event(&mut self, attrs: &str, name: &str, old: Option<&str>) {
        let mut line = format!("* LIST ({attrs}) \"/\" ").into_bytes();
        respond::mailbox(&mut line, name, self.utf8);
        if let Some(old) = old {
            line.extend_from_slice(b" (\"OLDNAME\" (");
            respond::mailbox(&mut line, old, self.utf8);
            line.extend_from_slice(b"))");
        }
        line.extend_from_slice(b"\r\n");
        self.out.extend_from_slice(&line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pillarbox_proto::types::NotifyGroup;

    fn set(groups: Vec<(NotifyFilter, Vec<NotifyEvent>)>) -> NotifySet {
        NotifySet {
            status: false,
            groups: groups
                .into_iter()
                .map(|(filter, events)| NotifyGroup { filter, events })
                .collect(),
        }
    }

    fn messages() -> Vec<NotifyEvent> {
        vec![NotifyEvent::MessageNew(vec![]), NotifyEvent::MessageExpunge]
    }

    #[test]
    fn selected_groups_are_checked() {
        use NotifyFilter::*;
        // RFC 5465 6.1: one of SELECTED / SELECTED-DELAYED, message events only.
        let e = check(&set(vec![
            (Selected, messages()),
            (SelectedDelayed, messages()),
        ]))
        .unwrap_err();
        assert!(e.bad, "{}", e.text);
        let e = check(&set(vec![(Selected, vec![]), (Selected, vec![])])).unwrap_err();
        assert!(e.bad, "{}", e.text);
        for ev in [NotifyEvent::MailboxName, NotifyEvent::SubscriptionChange] {
            for f in [Selected, SelectedDelayed] {
                let e = check(&set(vec![(f, vec![ev.clone()])])).unwrap_err();
                assert!(e.bad, "{}", e.text);
            }
        }
        assert!(check(&set(vec![
            (SelectedDelayed, messages()),
            (Personal, messages())
        ]))
        .is_ok());
        assert!(check(&set(vec![(Selected, vec![]), (Inboxes, vec![])])).is_ok());
    }

    #[test]
    fn unsupported_events_are_refused_with_badevent() {
        let mut with_annotation = messages();
        with_annotation.push(NotifyEvent::AnnotationChange);
        for events in [
            with_annotation,
            vec![NotifyEvent::MailboxMetadataChange],
            vec![NotifyEvent::ServerMetadataChange],
            vec![NotifyEvent::Other("FROBNICATE".into())],
        ] {
            let e = check(&set(vec![(NotifyFilter::Personal, events)])).unwrap_err();
            assert!(!e.bad, "{}", e.text);
            assert_eq!(
                e.code.as_deref(),
                Some("BADEVENT (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange)")
            );
        }
        // A composition error is BAD even with an unsupported event.
        let e = check(&set(vec![(
            NotifyFilter::Personal,
            vec![NotifyEvent::AnnotationChange],
        )]))
        .unwrap_err();
        assert!(e.bad, "{}", e.text);
    }

    #[test]
    fn names_follow_creates_renames_and_deletes() {
        let mut st = NotifyState {
            names: Some(
                ["INBOX", "a", "a/b", "a/b/c", "ab"]
                    .map(String::from)
                    .into(),
            ),
            ..NotifyState::default()
        };
        let created = |name: &str| ChangeKind::MailboxCreated { name: name.into() };
        let renamed = |from: &str, to: &str| ChangeKind::MailboxRenamed {
            from: from.into(),
            to: to.into(),
        };
        assert_eq!(
            st.note_names(&created("x/y/z")).created_parents,
            ["x", "x/y"]
        );
        assert_eq!(st.note_names(&created("x/w")), NameChanges::default());
        let r = st.note_names(&renamed("a", "n/a"));
        assert_eq!(r.created_parents, ["n"]);
        assert_eq!(
            r.moved,
            [
                ("a/b".to_string(), "n/a/b".to_string()),
                ("a/b/c".to_string(), "n/a/b/c".to_string())
            ]
        );
        // RENAME INBOX: INBOX stays.
        let r = st.note_names(&renamed("INBOX", "old"));
        assert_eq!(r, NameChanges::default());
        st.note_names(&ChangeKind::MailboxDeleted { name: "ab".into() });
        let known: Vec<&str> = st
            .names
            .as_ref()
            .unwrap()
            .iter()
            .map(|s| s.as_str())
            .collect();
        assert_eq!(
            known,
            ["INBOX", "n", "n/a", "n/a/b", "n/a/b/c", "old", "x", "x/w", "x/y", "x/y/z"]
        );
    }
}
