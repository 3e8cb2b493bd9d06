//! LIST (with LIST-EXTENDED selection and return options, SPECIAL-USE,
//! CHILDREN, LIST-STATUS) and LSUB.

use std::collections::{BTreeMap, BTreeSet};

use pillarbox_proto::respond;
use pillarbox_proto::types::{ListCommand, ListReturnOpt, ListSelectOpt, MailboxName, StatusItem};
use pillarbox_store::MailboxInfo;

use super::{CmdError, CmdResult, Done};
use crate::names;
use crate::session::Session;

struct Entry<'a> {
    info: Option<&'a MailboxInfo>,
    subscribed: bool,
    has_children: bool,
    /// Has a subscribed descendant (RECURSIVEMATCH CHILDINFO).
    subscribed_child: bool,
}

impl Session {
    pub(crate) async fn cmd_list(&mut self, l: &ListCommand) -> CmdResult {
        let reference = self.decode_name(&l.reference)?;
        let mut patterns = Vec::new();
        for p in &l.patterns {
            patterns.push(names::decode(&p.0, self.utf8).map_err(CmdError::bad)?);
        }
        let sel_subscribed = l.select_opts.contains(&ListSelectOpt::Subscribed);
        let sel_special = l.select_opts.contains(&ListSelectOpt::SpecialUse);
        let recursive = l.select_opts.contains(&ListSelectOpt::RecursiveMatch);
        if recursive && !sel_subscribed && !sel_special {
            return Err(CmdError::bad(
                "RECURSIVEMATCH requires another selection option",
            ));
        }
        let ret_subscribed = sel_subscribed || l.return_opts.contains(&ListReturnOpt::Subscribed);
        let status_items: Option<Vec<StatusItem>> = l.return_opts.iter().find_map(|o| match o {
            ListReturnOpt::Status(items) => Some(items.clone()),
            _ => None,
        });

        // `LIST "" ""`: the hierarchy delimiter and root name.
        if patterns.len() == 1 && patterns[0].is_empty() && !l.extended {
            self.out
                .extend_from_slice(b"* LIST (\\Noselect) \"/\" \"\"\r\n");
            return Ok(Done::ok("List completed"));
        }

        let acc = self.account_id()?;
        let (mailboxes, subs) = self
            .db(move |s| Ok((s.list_mailboxes(acc)?, s.subscriptions(acc)?)))
            .await?;
        let subs: BTreeSet<String> = subs.into_iter().collect();
        let entries = build_entries(&mailboxes, &subs);
        let full_patterns: Vec<String> = patterns
            .iter()
            .map(|p| names::join_reference(&reference, p))
            .collect();

        let mut lines: Vec<(Vec<u8>, Option<MailboxInfo>)> = Vec::new();
        for (name, e) in &entries {
            if !full_patterns.iter().any(|p| names::matches(p, name)) {
                continue;
            }
            let mut childinfo = false;
            if sel_subscribed && !e.subscribed {
                if recursive && e.subscribed_child {
                    childinfo = true;
                } else {
                    continue;
                }
            }
            if sel_special && e.info.and_then(|i| i.special_use.as_ref()).is_none() {
                continue;
            }
            if !sel_subscribed && e.info.is_none() && !e.has_children {
                continue; // subscribed but non-existent: only shown with SUBSCRIBED
            }
            let mut attrs: Vec<&str> = Vec::new();
            if e.info.is_none() {
                if e.has_children && !e.subscribed {
                    attrs.push("\\Noselect");
                } else {
                    attrs.push("\\NonExistent");
                }
            }
            attrs.push(if e.has_children {
                "\\HasChildren"
            } else {
                "\\HasNoChildren"
            });
            if ret_subscribed && e.subscribed {
                attrs.push("\\Subscribed");
            }
            if let Some(su) = e.info.and_then(|i| i.special_use.as_deref()) {
                attrs.push(su);
            }
            let mut line = b"* LIST (".to_vec();
            line.extend_from_slice(attrs.join(" ").as_bytes());
            line.extend_from_slice(b") \"/\" ");
            respond::mailbox(&mut line, name, self.utf8);
            if childinfo {
                line.extend_from_slice(b" (\"CHILDINFO\" (\"SUBSCRIBED\"))");
            }
            line.extend_from_slice(b"\r\n");
            lines.push((line, e.info.cloned()));
        }
        for (line, info) in lines {
            self.out.extend_from_slice(&line);
            if let (Some(items), Some(info)) = (&status_items, info) {
                let st = self.status_line(&info, items).await?;
                self.out.extend_from_slice(&st);
            }
        }
        Ok(Done::ok("List completed"))
    }

    pub(crate) async fn cmd_lsub(
        &mut self,
        reference: &MailboxName,
        pattern: &MailboxName,
    ) -> CmdResult {
        let reference = self.decode_name(reference)?;
        let pattern = names::decode(&pattern.0, self.utf8).map_err(CmdError::bad)?;
        if pattern.is_empty() {
            self.out
                .extend_from_slice(b"* LSUB (\\Noselect) \"/\" \"\"\r\n");
            return Ok(Done::ok("Lsub completed"));
        }
        let acc = self.account_id()?;
        let (mailboxes, subs) = self
            .db(move |s| Ok((s.list_mailboxes(acc)?, s.subscriptions(acc)?)))
            .await?;
        let existing: BTreeSet<&str> = mailboxes.iter().map(|m| m.name.as_str()).collect();
        let subscribed: BTreeSet<&str> = subs.iter().map(String::as_str).collect();
        let full = names::join_reference(&reference, &pattern);
        // Each matching subscription (\Noselect if its mailbox does not
        // exist), and for one that does not match, its unsubscribed
        // ancestors that do, flagged \Noselect: `%` stops above a
        // subscribed `foo/bar` at `foo`, which "must return foo ... flagged
        // with the \Noselect attribute" (RFC 3501 6.3.9), so a client that
        // walks its subscriptions level by level finds them.
        let mut found: BTreeMap<&str, bool> = BTreeMap::new();
        for &name in &subscribed {
            if names::matches(&full, name) {
                found.insert(name, !existing.contains(name));
                continue;
            }
            for parent in names::parents(name) {
                if !subscribed.contains(parent) && names::matches(&full, parent) {
                    found.insert(parent, true);
                }
            }
        }
        let mut names_sorted: Vec<(&str, bool)> = found.into_iter().collect();
        names_sorted.sort_by(|a, b| sort_key(a.0).cmp(&sort_key(b.0)));
        for (name, noselect) in names_sorted {
            let mut line = b"* LSUB (".to_vec();
            if noselect {
                line.extend_from_slice(b"\\Noselect");
            }
            line.extend_from_slice(b") \"/\" ");
            respond::mailbox(&mut line, name, self.utf8);
            line.extend_from_slice(b"\r\n");
            self.out.extend_from_slice(&line);
        }
        Ok(Done::ok("Lsub completed"))
    }
}

/// INBOX first, then by name.
fn sort_key(name: &str) -> (bool, &str) {
    (!(name == "INBOX" || name.starts_with("INBOX/")), name)
}

fn build_entries<'a>(
    mailboxes: &'a [MailboxInfo],
    subs: &BTreeSet<String>,
) -> Vec<(String, Entry<'a>)> {
    let mut map: BTreeMap<String, Entry<'a>> = BTreeMap::new();
    let blank = || Entry {
        info: None,
        subscribed: false,
        has_children: false,
        subscribed_child: false,
    };
    for m in mailboxes {
        map.entry(m.name.clone()).or_insert_with(blank).info = Some(m);
        for p in names::parents(&m.name) {
            map.entry(p.to_string()).or_insert_with(blank).has_children = true;
        }
    }
    for s in subs {
        map.entry(s.clone()).or_insert_with(blank).subscribed = true;
        for p in names::parents(s) {
            map.entry(p.to_string())
                .or_insert_with(blank)
                .subscribed_child = true;
        }
    }
    let mut v: Vec<(String, Entry<'a>)> = map.into_iter().collect();
    v.sort_by(|a, b| sort_key(&a.0).cmp(&sort_key(&b.0)));
    v
}
