//! THREAD and UID THREAD (RFC 5256): ORDEREDSUBJECT, REFERENCES, and REFS
//! (Dovecot's variant from the INTHREAD draft: REFERENCES without merging
//! threads by subject, threads ordered by their newest message).
//!
//! The keys (Message-ID, References, In-Reply-To, base subject, sent date) come
//! from the values stored at ingest, so threading never loads message blobs.
//! Message-IDs and base subjects are interned to integers once per cached
//! [`MailboxKeys`] ([`ThreadIndex`]), so a THREAD command hashes no strings:
//! every table of the algorithms is a vector indexed by those integers.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use pillarbox_proto::types::{SearchCommand, ThreadAlgorithm};

use super::{CmdError, CmdResult, Done};
use crate::search::MailboxKeys;
use crate::search::Searched;
use crate::session::Session;

/// "No value" for an interned id (empty Message-ID, empty base subject) and
/// "no node" in the id → node tables.
const NONE: u32 = u32::MAX;

/// FxHash (rustc's): interning hashes each distinct string once per cache
/// fill; SipHash's DoS resistance buys nothing for a table that lives for
/// one pass over the mailbox's own keys.
#[derive(Default, Clone, Copy)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes(c.try_into().unwrap_or_default());
            self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// Interns strings to dense integers `0..len`.
#[derive(Default)]
struct Interner<'a> {
    map: FxMap<&'a str, u32>,
}

impl<'a> Interner<'a> {
    fn id(&mut self, s: &'a str) -> u32 {
        if s.is_empty() {
            return NONE;
        }
        let next = self.map.len() as u32;
        *self.map.entry(s).or_insert(next)
    }
    fn len(&self) -> usize {
        self.map.len()
    }
}

/// The THREAD keys of every row of one [`MailboxKeys`] (same order), interned:
/// built once per cache entry, shared by the commands that thread it.
pub(crate) struct ThreadIndex {
    /// Interned Message-ID (ids shared with `refs`), or `NONE`.
    msg_id: Vec<u32>,
    /// Interned base subject, or `NONE` when empty.
    subject: Vec<u32>,
    /// Row `i`'s references are `refs[refs_at[i]..refs_at[i + 1]]`.
    refs_at: Vec<u32>,
    refs: Vec<u32>,
    n_ids: usize,
    n_subjects: usize,
}

impl ThreadIndex {
    fn build(keys: &MailboxKeys) -> ThreadIndex {
        let rows = keys.rows();
        let mut ids = Interner::default();
        let mut subjects = Interner::default();
        let mut t = ThreadIndex {
            msg_id: Vec::with_capacity(rows.len()),
            subject: Vec::with_capacity(rows.len()),
            refs_at: Vec::with_capacity(rows.len() + 1),
            refs: Vec::with_capacity(rows.len() * 2),
            n_ids: 0,
            n_subjects: 0,
        };
        t.refs_at.push(0);
        for r in rows {
            t.refs.extend(r.refs.split_whitespace().map(|x| ids.id(x)));
            t.refs_at.push(t.refs.len() as u32);
            t.msg_id.push(ids.id(&r.message_id));
            t.subject.push(subjects.id(&r.base_subject));
        }
        t.n_ids = ids.len();
        t.n_subjects = subjects.len();
        t
    }

    /// The index of `keys`, from a small process-wide cache keyed by the
    /// cache entry itself (a new entry, e.g. after an APPEND, gets a new index).
    fn of(keys: &Arc<MailboxKeys>) -> Arc<ThreadIndex> {
        type Entries = Vec<(Weak<MailboxKeys>, Arc<ThreadIndex>)>;
        static CACHE: Mutex<Entries> = Mutex::new(Vec::new());
        const MAX: usize = 8;
        let weak = Arc::downgrade(keys);
        {
            let mut c = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
            c.retain(|(w, _)| w.strong_count() > 0);
            if let Some(pos) = c.iter().position(|(w, _)| w.ptr_eq(&weak)) {
                let e = c.remove(pos);
                let t = e.1.clone();
                c.push(e); // most recently used last
                return t;
            }
        }
        let t = Arc::new(ThreadIndex::build(keys));
        let mut c = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
        if !c.iter().any(|(w, _)| w.ptr_eq(&weak)) {
            if c.len() >= MAX {
                c.remove(0);
            }
            c.push((weak, t.clone()));
        }
        t
    }
}

/// Builds the THREAD index of a key cache entry ahead of a THREAD command.
pub(crate) fn warm_index(keys: &Arc<MailboxKeys>) {
    ThreadIndex::of(keys);
}

/// One message to thread: what the algorithms need of it (borrowed from
/// the cached [`ThreadIndex`], so threading 100,000 messages allocates little).
#[derive(Debug, Clone)]
pub(crate) struct ThreadMsg<'a> {
    /// Number to print (sequence number or UID).
    pub num: u32,
    /// Sent date (INTERNALDATE when missing), then position, for ordering.
    pub date: i64,
    pub seq: usize,
    /// Interned Message-ID (`NONE` when empty).
    pub id: u32,
    /// Interned References (or the first In-Reply-To id when there are none).
    pub refs: &'a [u32],
    /// Interned RFC 5256 base subject (`NONE` when empty).
    pub subject: u32,
    pub reply: bool,
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
        // Taken out while sorting: a child's key never looks at its parent.
        let mut kids = std::mem::take(&mut self.nodes[n].children);
        for &c in &kids {
            self.sort_children(c);
        }
        kids.sort_by_key(|&c| self.key(c));
        self.nodes[n].children = kids;
    }

    /// RFC 5256 REFERENCES step 4: prunes dummies below `list` (a sibling list),
    /// returning the new list. `root` tells whether these are root-set nodes.
    fn prune(&mut self, list: Vec<usize>, root: bool) -> Vec<usize> {
        let mut out = Vec::with_capacity(list.len());
        for n in list {
            let kids = std::mem::take(&mut self.nodes[n].children);
            let kids = if kids.is_empty() {
                kids
            } else {
                self.prune(kids, false)
            };
            for &k in &kids {
                self.nodes[k].parent = Some(n);
            }
            if self.nodes[n].msg.is_some() {
                self.nodes[n].children = kids;
                out.push(n);
                continue;
            }
            if kids.is_empty() {
                continue; // A: dummy without children disappears.
            }
            if root && kids.len() > 1 {
                self.nodes[n].children = kids;
                out.push(n); // B: kept to hold several root-level children.
                continue;
            }
            // B: children promoted to this level (the dummy keeps none).
            for k in kids {
                self.nodes[k].parent = self.nodes[n].parent;
                out.push(k);
            }
        }
        out
    }

    fn write(&self, n: usize, out: &mut String) {
        let node = &self.nodes[n];
        let mut wrote = false;
        if let Some(m) = node.msg {
            let _ = write!(out, "{}", self.msgs[m].num);
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
        let mut out = String::with_capacity(self.msgs.len() * 8);
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
        (msgs[a].subject, msgs[a].date, msgs[a].seq).cmp(&(
            msgs[b].subject,
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
        while j < order.len() && msgs[order[j]].subject == msgs[order[i]].subject {
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
/// threads ordered by their newest message). Message ids are below `n_ids`,
/// subject ids below `n_subjects`.
pub(crate) fn references(
    msgs: &[ThreadMsg<'_>],
    n_ids: usize,
    n_subjects: usize,
    refs: bool,
) -> String {
    let mut f = Forest {
        msgs,
        nodes: Vec::with_capacity(msgs.len() * 3 / 2),
    };
    // Message id → its node (`NONE`: none yet).
    let mut ids: Vec<u32> = vec![NONE; n_ids];
    // Step 1.
    for (i, m) in msgs.iter().enumerate() {
        // A: link the references chain, unless already linked or looping.
        let mut prev: Option<usize> = None;
        for &r in m.refs {
            let c = match ids[r as usize] {
                NONE => {
                    let c = f.new_node(None);
                    ids[r as usize] = c as u32;
                    c
                }
                c => c as usize,
            };
            if let Some(p) = prev {
                if f.nodes[c].parent.is_none() && !f.is_ancestor(c, p) {
                    f.link(p, c);
                }
            }
            prev = Some(c);
        }
        // B: this message's container (a duplicate or missing id gets a new one).
        let own = if m.id == NONE {
            f.new_node(Some(i))
        } else {
            match ids[m.id as usize] {
                NONE => {
                    let c = f.new_node(Some(i));
                    ids[m.id as usize] = c as u32;
                    c
                }
                c if f.nodes[c as usize].msg.is_none() => {
                    f.nodes[c as usize].msg = Some(i);
                    c as usize
                }
                _ => f.new_node(Some(i)),
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
    fn subject_of(f: &Forest<'_, '_>, n: usize) -> Option<(usize, bool)> {
        let m = match f.nodes[n].msg {
            Some(m) => m,
            None => f.nodes[n].children.first().and_then(|&c| f.nodes[c].msg)?,
        };
        let s = f.msgs[m].subject;
        (s != NONE).then_some((s as usize, f.msgs[m].reply))
    }
    // Subject id → the root standing for it (`NONE`: none).
    let mut table: Vec<u32> = vec![NONE; n_subjects];
    for &r in &roots {
        let Some((s, reply)) = subject_of(&f, r) else {
            continue;
        };
        match table[s] {
            NONE => table[s] = r as u32,
            t => {
                let t = t as usize;
                let t_dummy = f.nodes[t].msg.is_none();
                let r_dummy = f.nodes[r].msg.is_none();
                let t_reply = f.nodes[t].msg.is_some_and(|m| f.msgs[m].reply);
                if (!t_dummy && r_dummy) || (t_reply && !reply && !r_dummy) {
                    table[s] = r as u32;
                }
            }
        }
    }
    // C: merge each root into the table's thread for its subject. `holder`
    // is what currently stands in the root set for a table entry (by node;
    // nodes added below are never table entries).
    let mut holder: Vec<u32> = vec![NONE; f.nodes.len()];
    let mut merged_away: Vec<bool> = vec![false; f.nodes.len()];
    for &r in &roots {
        let Some((s, reply)) = subject_of(&f, r) else {
            continue;
        };
        let t = match table[s] {
            NONE => continue,
            t => t as usize,
        };
        if t == r {
            continue;
        }
        let h = match holder[t] {
            NONE => t,
            h => h as usize,
        };
        let h_dummy = f.nodes[h].msg.is_none();
        let r_dummy = f.nodes[r].msg.is_none();
        let h_reply = f.nodes[h].msg.is_some_and(|m| f.msgs[m].reply);
        if h_dummy && r_dummy {
            // Both dummies: the children of this one join the table's.
            for c in std::mem::take(&mut f.nodes[r].children) {
                f.nodes[c].parent = None;
                f.link(h, c);
            }
            merged_away[r] = true;
        } else if h_dummy {
            f.link(h, r);
            merged_away[r] = true;
        } else if r_dummy {
            // The message goes under the dummy, which stands for the thread.
            f.link(r, h);
            merged_away[t] = true;
            holder[t] = r as u32;
        } else if !h_reply && reply {
            f.link(h, r);
            merged_away[r] = true;
        } else {
            let d = f.new_node(None);
            f.link(d, h);
            f.link(d, r);
            merged_away[r] = true;
            holder[t] = d as u32;
        }
    }
    let out_roots: Vec<usize> = roots
        .iter()
        .filter(|&&r| !merged_away[r])
        .map(|&r| match holder[r] {
            NONE => r,
            h => h as usize,
        })
        .collect();
    // Step 6: sort siblings everywhere; the root set keeps step 4's order.
    for &r in &out_roots {
        f.sort_children(r);
    }
    f.render(&out_roots)
}

impl Session {
    pub(crate) async fn cmd_thread(
        &mut self,
        uid: bool,
        algorithm: ThreadAlgorithm,
        cmd: &SearchCommand,
    ) -> CmdResult {
        let line = self
            .search_then(cmd, move |found| -> Result<String, CmdError> {
                let Searched {
                    store,
                    blobs,
                    mailbox,
                    uids,
                    idxs,
                } = found;
                let keys = crate::cmd::sort::shared_keys(&store, &*blobs, mailbox, uids.len())?;
                let index = ThreadIndex::of(&keys);
                let rows = keys.rows();
                // The view's UIDs ascend, like the rows: walk both, searching
                // ahead only past rows the view does not have.
                let mut at = 0usize;
                let msgs: Vec<ThreadMsg> = idxs
                    .iter()
                    .map(|&i| {
                        let u = uids[i];
                        let num = if uid { u } else { i as u32 + 1 };
                        match crate::search::row_of(rows, &mut at, u, |r| r.uid) {
                            Some(j) => {
                                let refs = &index.refs
                                    [index.refs_at[j] as usize..index.refs_at[j + 1] as usize];
                                ThreadMsg {
                                    num,
                                    date: rows[j].date,
                                    seq: i,
                                    id: index.msg_id[j],
                                    refs,
                                    subject: index.subject[j],
                                    reply: rows[j].reply,
                                }
                            }
                            // No longer in the store: an empty row.
                            None => ThreadMsg {
                                num,
                                date: 0,
                                seq: i,
                                id: NONE,
                                refs: &[],
                                subject: NONE,
                                reply: false,
                            },
                        }
                    })
                    .collect();
                Ok(match algorithm {
                    ThreadAlgorithm::OrderedSubject => ordered_subject(&msgs),
                    ThreadAlgorithm::References => {
                        references(&msgs, index.n_ids, index.n_subjects, false)
                    }
                    ThreadAlgorithm::Refs => references(&msgs, index.n_ids, index.n_subjects, true),
                })
            })
            .await?;
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

    type Spec<'a> = (u32, i64, &'a str, &'a [&'a str], &'a str);

    /// Messages from (num, date, Message-ID, references, subject), interned
    /// like [`ThreadIndex::build`]; also the numbers of ids and subjects.
    fn msgs(specs: &[Spec<'_>]) -> (Vec<ThreadMsg<'static>>, usize, usize) {
        let mut ids = Interner::default();
        let mut subjects = Interner::default();
        let mut out = Vec::new();
        for &(num, date, id, refs, subject) in specs {
            let (base, reply) = crate::cmd::sort::base_subject(subject);
            let base = base.to_uppercase();
            // Leaked: test data only.
            let refs: &'static [u32] = Vec::leak(refs.iter().map(|r| ids.id(r)).collect());
            let id = ids.id(id);
            let subject = subjects.id(Box::leak(base.into_boxed_str()));
            out.push(ThreadMsg {
                num,
                date,
                seq: num as usize,
                id,
                refs,
                subject,
                reply,
            });
        }
        (out, ids.len(), subjects.len())
    }

    #[test]
    fn ordered_subject_groups() {
        // Expected from RFC 5256: group by base subject, first (by date) is parent.
        let (msgs, _, _) = msgs(&[
            (1, 10, "<1>", &[], "Hello"),
            (2, 20, "<2>", &[], "Other"),
            (3, 30, "<3>", &[], "Re: Hello"),
            (4, 5, "<4>", &[], "Re: other"),
            (5, 40, "<5>", &[], "Hello"),
        ]);
        assert_eq!(ordered_subject(&msgs), "(4 2)(1 (3)(5))");
    }

    #[test]
    fn references_chains() {
        let (msgs, n, s) = msgs(&[
            (1, 10, "<a>", &[], "Topic"),
            (2, 20, "<b>", &["<a>"], "Re: Topic"),
            (3, 30, "<c>", &["<a>", "<b>"], "Re: Topic"),
            (4, 25, "<d>", &["<a>"], "Re: Topic"),
            // Parent never seen: a dummy with one child is promoted.
            (5, 5, "<e>", &["<missing>"], "Unrelated"),
            // Same base subject as 1 and not a reply: merged under a dummy.
            (6, 50, "<f>", &[], "Topic"),
        ]);
        // Roots by date: 5 (5), 1 (10), 6 (50). 6 joins 1's thread: neither is a
        // reply, so both go under a new dummy which takes 1's place.
        assert_eq!(references(&msgs, n, s, false), "(5)((1 (2 3)(4))(6))");
        // REFS: no subject merge; ordered by newest message: 5, 1's (30), 6.
        assert_eq!(references(&msgs, n, s, true), "(5)(1 (2 3)(4))(6)");
    }

    #[test]
    fn references_loops_and_duplicates() {
        let (msgs, n, s) = msgs(&[
            (1, 10, "<a>", &["<b>"], "x"),
            (2, 20, "<b>", &["<a>"], "y"),
            (3, 30, "<a>", &[], "z"),
        ]);
        // 1 is child of dummy <b>; 2 fills <b> but linking it under <a> (its
        // own child) would loop, so it stays the parent; 3 is a duplicate id.
        assert_eq!(references(&msgs, n, s, false), "(2 1)(3)");
    }
}
