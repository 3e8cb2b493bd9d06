//! NOTIFY (RFC 5465): which events the client wants about which mailboxes,
//! and turning change-bus events into untagged responses at any time (not
//! only during IDLE): STATUS for other mailboxes, EXISTS/FETCH/EXPUNGE for the
//! selected one, LIST for mailbox name and subscription changes.

use std::collections::BTreeSet;

use pillarbox_proto::respond;
use pillarbox_proto::types::{
    FetchAttr, NotifyEvent, NotifyFilter, NotifySet, SeqNum, SequenceSet, StatusItem,
};
use pillarbox_store::{ChangeEvent, ChangeKind};
use tokio::sync::broadcast::error::RecvError;

use super::{CmdError, CmdResult, Done};
use crate::names;
use crate::session::Session;

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
                _ => {}
            }
        }
        e
    }
    fn messages(&self) -> bool {
        self.message_new || self.message_expunge || self.flag_change
    }
}

/// The active NOTIFY settings of a session.
#[derive(Debug, Clone)]
pub(crate) struct NotifyState {
    /// Events for the selected mailbox, and whether expunges may wait
    /// (SELECTED-DELAYED).
    selected: Option<(Events, bool)>,
    others: Vec<(Filter, Events)>,
}

impl Session {
    pub(crate) async fn cmd_notify(&mut self, set: Option<&NotifySet>) -> CmdResult {
        let Some(set) = set else {
            self.notify = None;
            return Ok(Done::ok("NOTIFY completed"));
        };
        let mut state = NotifyState {
            selected: None,
            others: Vec::new(),
        };
        for g in &set.groups {
            let ev = Events::from(&g.events);
            // RFC 5465 3: MessageNew and MessageExpunge go together, and
            // FlagChange needs both.
            if (ev.message_new != ev.message_expunge) || (ev.flag_change && !ev.message_new) {
                return Err(CmdError::bad("MessageNew and MessageExpunge must be used together (FlagChange requires both)"));
            }
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
        if self.changes.is_none() {
            self.changes = Some(self.shared.bus.subscribe());
        }
        self.notify = Some(state);
        if set.status {
            let acc = self.account_id()?;
            let (mailboxes, subs) = self
                .db(move |s| Ok((s.list_mailboxes(acc)?, s.subscriptions(acc)?)))
                .await?;
            let subs: BTreeSet<String> = subs.into_iter().collect();
            let selected = self.selected.as_ref().map(|s| s.id);
            for mb in mailboxes {
                if Some(mb.id) == selected {
                    continue;
                }
                if self.watching(&mb.name, &subs).is_some_and(|e| e.messages()) {
                    let line = self.status_line(&mb, &self.notify_status_items()).await?;
                    self.out.extend_from_slice(&line);
                }
            }
        }
        Ok(Done::ok("NOTIFY completed"))
    }

    fn notify_status_items(&self) -> Vec<StatusItem> {
        let mut items = vec![
            StatusItem::Messages,
            StatusItem::UidNext,
            StatusItem::UidValidity,
            StatusItem::Unseen,
        ];
        if self.condstore {
            items.push(StatusItem::HighestModSeq);
        }
        items
    }

    /// The events the client wants for a non-selected mailbox, if any.
    fn watching(&self, name: &str, subs: &BTreeSet<String>) -> Option<Events> {
        let state = self.notify.as_ref()?;
        state
            .others
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
            .map(|(_, e)| e.clone())
    }

    /// Handles one change-bus event: brings the selected mailbox up to date
    /// (always during IDLE, otherwise only if NOTIFY asks for it) and sends the
    /// NOTIFY responses for other mailboxes.
    pub(crate) async fn notify_event(
        &mut self,
        ev: Result<ChangeEvent, RecvError>,
        in_idle: bool,
    ) -> Result<(), CmdError> {
        let ev = match ev {
            Ok(ev) => ev,
            // Missed events: re-read the selected mailbox; other mailboxes'
            // state is refreshed at the next event.
            Err(RecvError::Lagged(_)) => return self.sync(true).await,
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
            let notify_sel = self.notify.as_ref().and_then(|n| n.selected.clone());
            if in_idle || notify_sel.is_some() {
                let allow_expunge =
                    in_idle || !notify_sel.as_ref().is_some_and(|(_, delayed)| *delayed);
                let before = self.out.len();
                let old_max = self.selected.as_ref().map(|s| s.max_uid()).unwrap_or(0);
                let applied = ev
                    .delta
                    .as_ref()
                    .is_some_and(|d| self.apply_delta(d, allow_expunge));
                if !applied {
                    self.sync(allow_expunge).await?;
                }
                if let Some((events, _)) = &notify_sel {
                    if events.message_new && !events.new_attrs.is_empty() {
                        let set =
                            SequenceSet::Ranges(vec![(SeqNum::Value(old_max + 1), SeqNum::Star)]);
                        let attrs = events.new_attrs.clone();
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
                            self.cmd_fetch(true, &set, &attrs, &[]).await?;
                            if hibernated {
                                if let Some(sel) = self.selected.as_mut() {
                                    sel.hibernate(self.condstore);
                                }
                            }
                        }
                    }
                }
                if self.out.len() > before {
                    self.shared
                        .metrics
                        .push_delay
                        .observe(ev.committed_at.elapsed().as_secs_f64());
                }
            }
            return Ok(());
        }
        if self.notify.is_none() || ev.origin == self.id {
            return Ok(());
        }
        let subs: BTreeSet<String> = if self.notify.as_ref().is_some_and(|n| {
            n.others
                .iter()
                .any(|(f, _)| matches!(f, Filter::Subscribed))
        }) {
            let acc2 = acc;
            self.db(move |s| s.subscriptions(acc2))
                .await?
                .into_iter()
                .collect()
        } else {
            BTreeSet::new()
        };
        match &ev.kind {
            ChangeKind::Messages => {
                let id = ev.mailbox;
                let mailboxes = self.db(move |s| s.list_mailboxes(acc)).await?;
                let Some(mb) = mailboxes.into_iter().find(|m| m.id == id) else {
                    return Ok(());
                };
                if self.watching(&mb.name, &subs).is_some_and(|e| e.messages()) {
                    let line = self.status_line(&mb, &self.notify_status_items()).await?;
                    self.out.extend_from_slice(&line);
                    self.shared
                        .metrics
                        .push_delay
                        .observe(ev.committed_at.elapsed().as_secs_f64());
                }
            }
            ChangeKind::MailboxCreated { name } => {
                if self.watching(name, &subs).is_some_and(|e| e.mailbox_name) {
                    self.write_list_event("", name, None);
                }
            }
            ChangeKind::MailboxDeleted { name } => {
                if self.watching(name, &subs).is_some_and(|e| e.mailbox_name) {
                    self.write_list_event("\\NonExistent", name, None);
                }
            }
            ChangeKind::MailboxRenamed { from, to } => {
                if self
                    .watching(to, &subs)
                    .or_else(|| self.watching(from, &subs))
                    .is_some_and(|e| e.mailbox_name)
                {
                    self.write_list_event("", to, Some(from));
                }
            }
            ChangeKind::Subscription { name, subscribed } => {
                if self.watching(name, &subs).is_some_and(|e| e.subscription) {
                    self.write_list_event(
                        if *subscribed { "\\Subscribed" } else { "" },
                        name,
                        None,
                    );
                }
            }
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
