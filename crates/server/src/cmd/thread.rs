//! THREAD and UID THREAD (RFC 5256): ORDEREDSUBJECT, REFERENCES, and REFS
//! (Dovecot's variant from the INTHREAD draft: REFERENCES without merging
//! threads by subject, threads ordered by their newest message).
//!
//! The keys (Message-ID, References, In-Reply-To, base subject, sent date) come
//! from the values stored at ingest, so threading never loads message blobs.

use std::collections::HashMap;
use std::sync::Arc;

use pillarbox_proto::types::{SearchCommand, ThreadAlgorithm};
use pillarbox_store::{BlobStore, MetaStore, Uid};

use super::{CmdError, CmdResult, Done};
use crate::search::{mailbox_keys, KeyRow, Scope};
use crate::session::Session;

/// One message to thread: what the algorithms need of it (borrowed from
/// the cached `KeyRow`, so threading 100,000 messages allocates little).
#[derive(Debug, Clone)]
pub(crate) struct ThreadMsg<'a> {
    /// Number to print (sequence number or UID).
    pub num: u32,
    /// Sent date (INTERNALDATE when missing), then position, for ordering.
    pub date: i64,
    pub seq: usize,
    pub message_id: &'a str,
    /// References (or the first In-Reply-To id when there are none).
    pub refs: Vec<&'a str>,
    pub base_subject: &'a str,
    pub reply: bool,
}

impl<'a> ThreadMsg<'a> {
    pub(crate) fn new(num: u32, seq: usize, k: &'a KeyRow) -> Self {
        ThreadMsg {
            num,
            date: k.date,
            seq,
            message_id: &k.message_id,
            refs: k.refs.split_whitespace().collect(),
            base_subject: &k.base_subject,
            reply: k.reply,
        }
    }
}

/// A thread tree node: a message or a dummy (`msg == None`).
#[derive(Debug, Clone, Default)]
struct Node {
    msg: Option<usize>,
    parent: Option<usize>,
    children: Vec<usize>,
}

struct Forest<'a, 'm> {
    msgs: &'a [ThreadMsg<'m>],
    nodes: Vec<Node>,
}

impl Forest<'_, '_> {
    fn new_node(&mut self, msg: Option<usize>) -> usize {
        self.nodes.push(Node {
            msg,
            ..Node::default()
        });
        self.nodes.len() - 1
    }

    /// Whether `a` is `b` or one of its ancestors.
    fn is_ancestor(&self, a: usize, b: usize) -> bool {
        let mut cur = Some(b);
        while let Some(c) = cur {
            if c == a {
                return true;
            }
            cur = self.nodes[c].parent;
        }
        false
    }

    fn unlink(&mut self, child: usize) {
        if let Some(p) = self.nodes[child].parent.take() {
            self.nodes[p].children.retain(|&c| c != child);
        }
    }

    fn link(&mut self, parent: usize, child: usize) {
        self.unlink(child);
        self.nodes[child].parent = Some(parent);
        self.nodes[parent].children.push(child);
    }

    /// Sort key of a node: its message, or for a dummy its first child's.
    fn key(&self, n: usize) -> (i64, usize) {
        let mut cur = n;
        loop {
            if let Some(m) = self.nodes[cur].msg {
                return (self.msgs[m].date, self.msgs[m].seq);
            }
            match self.nodes[cur].children.first() {
                Some(&c) => cur = c,
                None => return (i64::MIN, 0),
            }
        }
    }

    /// The newest message date in a subtree (REFS ordering).
    fn newest(&self, n: usize) -> (i64, usize) {
        let mut best = self.nodes[n]
            .msg
            .map(|m| (self.msgs[m].date, self.msgs[m].seq))
            .unwrap_or((i64::MIN, 0));
        for &c in &self.nodes[n].children {
            best = best.max(self.newest(c));
        }
        best
    }

    /// Sorts every set of siblings below `n` by sent date, youngest sets first.
    fn sort_children(&mut self, n: usize) {
        let kids = self.nodes[n].children.clone();
        for &c in &kids {
            self.sort_children(c);
        }
        let mut kids = kids;
        kids.sort_by_key(|&c| self.key(c));
        self.nodes[n].children = kids;
    }

    /// RFC 5256 REFERENCES step 4: prunes dummies below `list` (a sibling list),
    /// returning the new list. `root` tells whether these are root-set nodes.
    fn prune(&mut self, list: Vec<usize>, root: bool) -> Vec<usize> {
        let mut out = Vec::new();
        for n in list {
            let kids = std::mem::take(&mut self.nodes[n].children);
            let kids = self.prune(kids, false);
            for &k in &kids {
                self.nodes[k].parent = Some(n);
            }
            self.nodes[n].children = kids;
            if self.nodes[n].msg.is_some() {
                out.push(n);
                continue;
            }
            let kids = self.nodes[n].children.clone();
            if kids.is_empty() {
                continue; // A: dummy without children disappears.
            }
            if root && kids.len() > 1 {
                out.push(n); // B: kept to hold several root-level children.
                continue;
            }
            // B: children promoted to this level.
            for k in kids {
                self.nodes[k].parent = self.nodes[n].parent;
                out.push(k);
            }
            self.nodes[n].children.clear();
        }
        out
    }

    fn write(&self, n: usize, out: &mut String) {
        let node = &self.nodes[n];
        let mut wrote = false;
        if let Some(m) = node.msg {
            out.push_str(&self.msgs[m].num.to_string());
            wrote = true;
        }
        match node.children.len() {
            0 => {}
            1 if wrote => {
                out.push(' ');
                self.write(node.children[0], out);
            }
            _ => {
                if wrote {
                    out.push(' ');
                }
                for &c in &node.children {
                    out.push('(');
                    self.write(c, out);
                    out.push(')');
                }
            }
        }
    }

    fn render(&self, roots: &[usize]) -> String {
        let mut out = String::new();
        for &r in roots {
            out.push('(');
            self.write(r, &mut out);
            out.push(')');
        }
        out
    }
}

/// ORDEREDSUBJECT (RFC 5256 section 3): groups by base subject; within a group
/// sorted by sent date, the first is the parent of all others; groups ordered
/// by the sent date of their first message.
pub(crate) fn ordered_subject(msgs: &[ThreadMsg<'_>]) -> String {
    let mut order: Vec<usize> = (0..msgs.len()).collect();
    order.sort_by(|&a, &b| {
        (msgs[a].base_subject, msgs[a].date, msgs[a].seq).cmp(&(
            msgs[b].base_subject,
            msgs[b].date,
            msgs[b].seq,
        ))
    });
    let mut f = Forest {
        msgs,
        nodes: Vec::new(),
    };
    let mut roots = Vec::new();
    let mut i = 0;
    while i < order.len() {
        let root = f.new_node(Some(order[i]));
        let mut j = i + 1;
        while j < order.len() && msgs[order[j]].base_subject == msgs[order[i]].base_subject {
            let c = f.new_node(Some(order[j]));
            f.link(root, c);
            j += 1;
        }
        roots.push(root);
        i = j;
    }
    roots.sort_by_key(|&r| f.key(r));
    f.render(&roots)
}

/// REFERENCES (RFC 5256 section 3), or REFS when `refs` (no subject merging,
/// threads ordered by their newest message).
pub(crate) fn references(msgs: &[ThreadMsg<'_>], refs: bool) -> String {
    let mut f = Forest {
        msgs,
        nodes: Vec::new(),
    };
    let mut ids: HashMap<&str, usize> = HashMap::new();
    // Step 1.
    for (i, m) in msgs.iter().enumerate() {
        // A: link the references chain, unless already linked or looping.
        let mut prev: Option<usize> = None;
        for r in &m.refs {
            let c = match ids.get(r) {
                Some(&c) => c,
                None => {
                    let c = f.new_node(None);
                    ids.insert(r, c);
                    c
                }
            };
            if let Some(p) = prev {
                if f.nodes[c].parent.is_none() && !f.is_ancestor(c, p) {
                    f.link(p, c);
                }
            }
            prev = Some(c);
        }
        // B: this message's container (a duplicate or missing id gets a new one).
        let own = match ids.get(m.message_id) {
            Some(&c) if !m.message_id.is_empty() && f.nodes[c].msg.is_none() => {
                f.nodes[c].msg = Some(i);
                c
            }
            Some(_) => f.new_node(Some(i)),
            None => {
                let c = f.new_node(Some(i));
                if !m.message_id.is_empty() {
                    ids.insert(m.message_id, c);
                }
                c
            }
        };
        // C: the last reference becomes the parent (more definitive than a
        // parent presumed from another message's references), unless looping.
        match prev {
            Some(p) if !f.is_ancestor(own, p) => f.link(p, own),
            Some(_) => {}
            None => f.unlink(own),
        }
    }
    // Step 2: the root set.
    let roots: Vec<usize> = (0..f.nodes.len())
        .filter(|&n| f.nodes[n].parent.is_none())
        .collect();
    // Step 4: prune dummies; sort each sibling set (needed for dummy dates).
    let mut roots = f.prune(roots, true);
    for &r in &roots {
        f.sort_children(r);
    }
    if refs {
        roots.sort_by_key(|&r| f.newest(r));
        return f.render(&roots);
    }
    roots.sort_by_key(|&r| f.key(r));
    // Step 5: merge threads by base subject.
    fn subject_of<'m>(f: &Forest<'_, 'm>, n: usize) -> Option<(&'m str, bool)> {
        let m = match f.nodes[n].msg {
            Some(m) => m,
            None => f.nodes[n].children.first().and_then(|&c| f.nodes[c].msg)?,
        };
        let s = f.msgs[m].base_subject;
        (!s.is_empty()).then_some((s, f.msgs[m].reply))
    }
    let mut table: HashMap<&str, usize> = HashMap::new();
    for &r in &roots {
        let Some((s, reply)) = subject_of(&f, r) else {
            continue;
        };
        match table.get(s) {
            None => {
                table.insert(s, r);
            }
            Some(&t) => {
                let t_dummy = f.nodes[t].msg.is_none();
                let r_dummy = f.nodes[r].msg.is_none();
                let t_reply = f.nodes[t].msg.is_some_and(|m| f.msgs[m].reply);
                if (!t_dummy && r_dummy) || (t_reply && !reply && !r_dummy) {
                    table.insert(s, r);
                }
            }
        }
    }
    // C: merge each root into the table's thread for its subject. `holder`
    // is what currently stands in the root set for a table entry.
    let mut holder: HashMap<usize, usize> = HashMap::new();
    let mut merged_away: std::collections::HashSet<usize> = Default::default();
    for &r in &roots {
        let Some((s, reply)) = subject_of(&f, r) else {
            continue;
        };
        let Some(&t) = table.get(s) else {
            continue;
        };
        if t == r {
            continue;
        }
        let h = *holder.get(&t).unwrap_or(&t);
        let h_dummy = f.nodes[h].msg.is_none();
        let r_dummy = f.nodes[r].msg.is_none();
        let h_reply = f.nodes[h].msg.is_some_and(|m| f.msgs[m].reply);
        if h_dummy && r_dummy {
            // Both dummies: the children of this one join the table's.
            for c in std::mem::take(&mut f.nodes[r].children) {
                f.nodes[c].parent = None;
                f.link(h, c);
            }
            merged_away.insert(r);
        } else if h_dummy {
            f.link(h, r);
            merged_away.insert(r);
        } else if r_dummy {
            // The message goes under the dummy, which stands for the thread.
            f.link(r, h);
            merged_away.insert(t);
            holder.insert(t, r);
        } else if !h_reply && reply {
            f.link(h, r);
            merged_away.insert(r);
        } else {
            let d = f.new_node(None);
            f.link(d, h);
            f.link(d, r);
            merged_away.insert(r);
            holder.insert(t, d);
        }
    }
    let out_roots: Vec<usize> = roots
        .iter()
        .filter(|r| !merged_away.contains(r))
        .map(|r| *holder.get(r).unwrap_or(r))
        .collect();
    // Step 6: sort siblings everywhere; the root set keeps step 4's order.
    for &r in &out_roots {
        f.sort_children(r);
    }
    f.render(&out_roots)
}

/// The sequence-ordered UIDs of the selected mailbox: all THREAD takes from
/// the session's view (keys are read from the store by UID).
fn view_uids(sel: &crate::view::SelectedMailbox) -> Vec<Uid> {
    sel.messages.iter().map(|m| m.uid).collect()
}

impl Session {
    pub(crate) async fn cmd_thread(
        &mut self,
        uid: bool,
        algorithm: ThreadAlgorithm,
        cmd: &SearchCommand,
    ) -> CmdResult {
        let sel = self
            .selected
            .as_ref()
            .ok_or_else(|| CmdError::bad("No mailbox selected"))?;
        let uids = view_uids(sel);
        let mailbox = sel.id;
        let saved = self.saved_search.clone();
        let blobs: Arc<dyn BlobStore> = self.shared.blobs.clone();
        let store: Arc<dyn MetaStore> = self.shared.store.clone();
        let key = cmd.key.clone();
        let charset = cmd.charset.clone();
        let line = tokio::task::spawn_blocking(move || -> Result<String, CmdError> {
            let scope = Scope {
                store: &*store,
                blobs: &*blobs,
                mailbox,
                index: true,
            };
            let idxs =
                crate::search::run(&uids, &key, charset.as_deref(), saved.as_deref(), &scope)?;
            let keys = mailbox_keys(&store, &*blobs, mailbox, uids.len())?;
            let msgs: Vec<ThreadMsg> = idxs
                .iter()
                .map(|&i| {
                    let num = if uid { uids[i] } else { i as u32 + 1 };
                    ThreadMsg::new(num, i, keys.get(uids[i]))
                })
                .collect();
            Ok(match algorithm {
                ThreadAlgorithm::OrderedSubject => ordered_subject(&msgs),
                ThreadAlgorithm::References => references(&msgs, false),
                ThreadAlgorithm::Refs => references(&msgs, true),
            })
        })
        .await
        .map_err(|_| CmdError::no_code("SERVERBUG", "Internal error"))??;
        let mut out = b"* THREAD".to_vec();
        if !line.is_empty() {
            out.push(b' ');
            out.extend_from_slice(line.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        self.out.extend_from_slice(&out);
        Ok(Done::ok("Thread completed"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m<'a>(num: u32, date: i64, id: &'a str, refs: &[&'a str], subject: &str) -> ThreadMsg<'a> {
        let (base, reply) = crate::cmd::sort::base_subject(subject);
        // Leaked: test data only.
        let base: &'a str = Box::leak(base.to_uppercase().into_boxed_str());
        ThreadMsg {
            num,
            date,
            seq: num as usize,
            message_id: id,
            refs: refs.to_vec(),
            base_subject: base,
            reply,
        }
    }

    #[test]
    fn ordered_subject_groups() {
        // Expected from RFC 5256: group by base subject, first (by date) is parent.
        let msgs = [
            m(1, 10, "<1>", &[], "Hello"),
            m(2, 20, "<2>", &[], "Other"),
            m(3, 30, "<3>", &[], "Re: Hello"),
            m(4, 5, "<4>", &[], "Re: other"),
            m(5, 40, "<5>", &[], "Hello"),
        ];
        assert_eq!(ordered_subject(&msgs), "(4 2)(1 (3)(5))");
    }

    #[test]
    fn references_chains() {
        let msgs = [
            m(1, 10, "<a>", &[], "Topic"),
            m(2, 20, "<b>", &["<a>"], "Re: Topic"),
            m(3, 30, "<c>", &["<a>", "<b>"], "Re: Topic"),
            m(4, 25, "<d>", &["<a>"], "Re: Topic"),
            // Parent never seen: a dummy with one child is promoted.
            m(5, 5, "<e>", &["<missing>"], "Unrelated"),
            // Same base subject as 1 and not a reply: merged under a dummy.
            m(6, 50, "<f>", &[], "Topic"),
        ];
        // Roots by date: 5 (5), 1 (10), 6 (50). 6 joins 1's thread: neither is a
        // reply, so both go under a new dummy which takes 1's place.
        assert_eq!(references(&msgs, false), "(5)((1 (2 3)(4))(6))");
        // REFS: no subject merge; ordered by newest message: 5, 1's (30), 6.
        assert_eq!(references(&msgs, true), "(5)(1 (2 3)(4))(6)");
    }

    #[test]
    fn references_loops_and_duplicates() {
        let msgs = [
            m(1, 10, "<a>", &["<b>"], "x"),
            m(2, 20, "<b>", &["<a>"], "y"),
            m(3, 30, "<a>", &[], "z"),
        ];
        // 1 is child of dummy <b>; 2 fills <b> but linking it under <a> (its
        // own child) would loop, so it stays the parent; 3 is a duplicate id.
        assert_eq!(references(&msgs, false), "(2 1)(3)");
    }
}
