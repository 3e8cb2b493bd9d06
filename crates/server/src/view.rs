//! `SelectedMailbox`: the mailbox as this session has announced it to its
//! client. Sequence numbers are positions in `messages`; they change only when
//! the session itself sends EXPUNGE (or VANISHED), never behind the client's back.
//!
//! A session in IDLE *hibernates* its view (after `idle_hibernate_ms`): only
//! UIDs, modseqs and an index into a table of distinct flag sets are kept (12
//! bytes a message instead of a full `MessageMeta` with its heap strings),
//! which is all that pushing EXISTS / EXPUNGE / FETCH FLAGS needs. Leaving IDLE
//! rehydrates the rest from the mailbox's snapshot (`snapshots.rs`), keeping
//! the flags and modseqs as announced; when they are the snapshot's, the view
//! shares the snapshot again.
//!
//! The full view's message list is shared, copy-on-write, with the snapshot
//! it was read from and the other views that took it unchanged: SELECT copies
//! nothing, and a view that has not hibernated yet costs little memory until
//! a change reaches it.

use std::collections::HashMap;
use std::sync::Arc;

use pillarbox_proto::types::SequenceSet;
use pillarbox_store::{Flags, MailboxChanges, MailboxId, MailboxInfo, MessageMeta, ModSeq, Uid};

/// A mailbox whose UIDNEXT is at most this is read whole (SELECT, the end
/// of a hibernated IDLE) on the session's own thread: such a read takes less
/// than the hand-off to the blocking pool. Larger ones go to the pool.
pub(crate) const SMALL_SNAPSHOT: u32 = 2000;

pub(crate) struct SelectedMailbox {
    pub id: MailboxId,
    /// The mailbox's UIDVALIDITY when selected: a store read that shows
    /// another one is not of this mailbox (see `Session::sync`).
    pub uidvalidity: u32,
    pub read_only: bool,
    pub uidnext: Uid,
    /// Messages in sequence order (ascending UID). Shared, until the view
    /// changes, with the process's snapshot of the mailbox it was read from
    /// (`snapshots.rs`) and the other views that took it: SELECT and the end
    /// of a hibernated IDLE copy nothing, and a view costs memory of its own
    /// only once it differs (`Arc::make_mut`).
    pub messages: Arc<Vec<MessageMeta>>,
    /// The modseq up to which the store's changes have been merged into this view.
    pub known_modseq: ModSeq,
    /// UIDs expunged in the store but not yet announced (an EXPUNGE may not be
    /// sent during FETCH/STORE/SEARCH by sequence number).
    pub pending_expunge: Vec<Uid>,
    /// While `pending_expunge` is not empty: the view's modseq before the
    /// first of them was learnt, below every pending expunge's modseq. The
    /// client is in sync up to there, not further: RFC 7162 has a server
    /// that delays an EXPUNGE but sends higher MODSEQs send a HIGHESTMODSEQ
    /// below the expunge's.
    pub pending_floor: ModSeq,
    /// \Recent in this session (IMAP4rev1, RFC 3501 2.3.2; empty for
    /// IMAP4rev2).
    pub recent: RecentUids,
    /// New messages `[from, to)` whose \Recent claim waits for the writer
    /// (`Session::take_recent`).
    pub recent_pending: Option<(Uid, Uid)>,
    /// The count the last RECENT response gave (sent again when it changes).
    pub recent_sent: u32,
    /// How many messages of the view are in `recent`, kept as messages and
    /// ranges come and go (a recount costs a walk per range, and a session
    /// among several appending devices gathers many ranges): change `recent`
    /// through [`SelectedMailbox::add_recent`] and `set_recent`.
    pub recent_n: u32,
    /// Set while hibernated (then `messages` is empty).
    pub hibernated: Option<Hibernated>,
    /// The mailbox's publish counter when the store was last read, and when.
    pub seen_version: u64,
    pub checked_at: Option<std::time::Instant>,
    /// `MetaStore::foreign_version` before the last store read the view
    /// took in (None: unknown): while it stays the same, no other process
    /// has committed since, and what this one published is all there is.
    pub foreign: Option<u64>,
}

/// The UIDs \Recent in one session: sorted, disjoint ranges `[from, to)`.
/// One range usually (what SELECT took, grown by the new mail this session
/// was the first to learn of); more when other sessions were first for some
/// messages in between.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecentUids(Vec<(Uid, Uid)>);

impl RecentUids {
    pub fn from_range(from: Uid, to: Uid) -> RecentUids {
        let mut r = RecentUids::default();
        r.add(from, to);
        r
    }

    pub fn contains(&self, uid: Uid) -> bool {
        let i = self.0.partition_point(|&(_, to)| to <= uid);
        self.0.get(i).is_some_and(|&(from, _)| from <= uid)
    }

    /// Adds `[from, to)`, merging it with the ranges it touches.
    pub fn add(&mut self, from: Uid, to: Uid) {
        if from >= to {
            return;
        }
        let i = self.0.partition_point(|&(_, t)| t < from);
        let j = self.0.partition_point(|&(f, _)| f <= to);
        let (mut lo, mut hi) = (from, to);
        if i < j {
            lo = lo.min(self.0[i].0);
            hi = hi.max(self.0[j - 1].1);
        }
        self.0.splice(i..j, [(lo, hi)]);
    }

    pub fn ranges(&self) -> &[(Uid, Uid)] {
        &self.0
    }

    /// Forgets the ranges that end at or below `uid`.
    fn drop_below(&mut self, uid: Uid) {
        let n = self.0.partition_point(|&(_, to)| to <= uid);
        self.0.drain(..n);
    }
}

/// The compact view of a hibernated session: runs of consecutive UIDs, and
/// per message one byte naming its flag set in a table of the distinct sets
/// (four bytes each once a mailbox has more than 256 distinct sets), so a
/// mailbox of a few hundred messages needs a few hundred bytes whatever its
/// flags look like. Modseqs are kept (8 bytes a message) only when the
/// session uses CONDSTORE, the one case where a change of modseq alone must
/// be announced.
#[derive(Debug, Default)]
pub(crate) struct Hibernated {
    runs: Vec<Run>,
    count: usize,
    set_of: SetIds,
    modseqs: Option<Vec<ModSeq>>,
    sets: Vec<Flags>,
    /// `sets.len()` after the last [`Hibernated::compact_sets`].
    compacted_len: usize,
}

/// A run of consecutive UIDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    first: Uid,
    len: u32,
}

/// Per message (in sequence order), the index of its flag set.
#[derive(Debug)]
enum SetIds {
    Small(Vec<u8>),
    Large(Vec<u32>),
}

impl Default for SetIds {
    fn default() -> Self {
        SetIds::Small(Vec::new())
    }
}

impl SetIds {
    fn get(&self, pos: usize) -> Option<u32> {
        match self {
            SetIds::Small(v) => v.get(pos).map(|&x| u32::from(x)),
            SetIds::Large(v) => v.get(pos).copied(),
        }
    }

    /// Makes room for set index `id` (widening to four bytes if needed).
    fn fit(&mut self, id: u32) {
        if let SetIds::Small(v) = self {
            if id > u32::from(u8::MAX) {
                *self = SetIds::Large(v.iter().map(|&x| u32::from(x)).collect());
            }
        }
    }

    fn push(&mut self, id: u32) {
        self.fit(id);
        match self {
            SetIds::Small(v) => v.push(id as u8),
            SetIds::Large(v) => v.push(id),
        }
    }

    fn set(&mut self, pos: usize, id: u32) {
        self.fit(id);
        match self {
            SetIds::Small(v) => v[pos] = id as u8,
            SetIds::Large(v) => v[pos] = id,
        }
    }

    fn remove_at(&mut self, pos: &[usize]) {
        match self {
            SetIds::Small(v) => remove_at(v, pos),
            SetIds::Large(v) => remove_at(v, pos),
        }
    }

    fn shrink_to_fit(&mut self) {
        match self {
            SetIds::Small(v) => v.shrink_to_fit(),
            SetIds::Large(v) => v.shrink_to_fit(),
        }
    }
}

/// Removes the elements at `pos` (ascending, distinct, in bounds), moving
/// each kept stretch once.
fn remove_at<T: Copy>(v: &mut Vec<T>, pos: &[usize]) {
    let Some(&first) = pos.first() else {
        return;
    };
    let mut write = first;
    for (k, &p) in pos.iter().enumerate() {
        let end = pos.get(k + 1).copied().unwrap_or(v.len());
        v.copy_within(p + 1..end, write);
        write += end - p - 1;
    }
    v.truncate(write);
}

impl Hibernated {
    /// Distinct flag sets searched in place by `intern`.
    const SCAN_SETS: usize = 16;

    fn new(keep_modseqs: bool) -> Self {
        Hibernated {
            modseqs: keep_modseqs.then(Vec::new),
            ..Default::default()
        }
    }

    /// The index of `flags` in the table of distinct sets, added if new.
    /// A few sets are searched in place; past [`Hibernated::SCAN_SETS`],
    /// through `lookup`, a map by content built on first need and kept by
    /// the caller for one operation (a hibernation, one batch of changes):
    /// a mailbox with thousands of distinct keyword combinations would
    /// otherwise cost a scan of them all per message. An idle session does
    /// not keep the map.
    fn intern(&mut self, flags: &Flags, lookup: &mut Option<HashMap<Flags, u32>>) -> u32 {
        if lookup.is_none() && self.sets.len() <= Self::SCAN_SETS {
            // Messages read together share their lists: look for the same
            // list first, and compare contents only if none is.
            if let Some(i) = self
                .sets
                .iter()
                .position(|s| std::sync::Arc::ptr_eq(s, flags))
                .or_else(|| self.sets.iter().position(|s| **s == **flags))
            {
                return i as u32;
            }
            self.sets.push(flags.clone());
            return (self.sets.len() - 1) as u32;
        }
        let sets = &self.sets;
        let map = lookup.get_or_insert_with(|| {
            sets.iter()
                .enumerate()
                .map(|(i, s)| (s.clone(), i as u32))
                .collect()
        });
        if let Some(&i) = map.get(flags) {
            return i;
        }
        self.sets.push(flags.clone());
        let i = (self.sets.len() - 1) as u32;
        map.insert(flags.clone(), i);
        i
    }

    /// Drops the flag sets no message uses any more, once the table has
    /// doubled since the last time: a long IDLE through many flag changes
    /// would otherwise keep every set ever seen (and `intern` would search
    /// them). Amortized, it costs a pass over the view per doubling.
    fn compact_sets(&mut self) {
        if self.sets.len() <= Self::SCAN_SETS.max(2 * self.compacted_len) {
            return;
        }
        let mut new_id = vec![u32::MAX; self.sets.len()];
        let mut sets = Vec::new();
        for pos in 0..self.count {
            let Some(old) = self.set_of.get(pos) else {
                continue;
            };
            let id = &mut new_id[old as usize];
            if *id == u32::MAX {
                *id = sets.len() as u32;
                sets.push(self.sets[old as usize].clone());
            }
            let id = *id;
            self.set_of.set(pos, id);
        }
        self.sets = sets;
        self.compacted_len = self.sets.len();
    }

    /// (run index, offset in run, position in sequence order) of a UID.
    fn find(&self, uid: Uid) -> Option<(usize, u32, usize)> {
        let mut pos = 0usize;
        for (r, run) in self.runs.iter().enumerate() {
            if uid >= run.first && uid - run.first < run.len {
                let off = uid - run.first;
                return Some((r, off, pos + off as usize));
            }
            if run.first > uid {
                return None;
            }
            pos += run.len as usize;
        }
        None
    }

    fn position(&self, uid: Uid) -> Option<usize> {
        self.find(uid).map(|(_, _, p)| p)
    }

    fn max_uid(&self) -> Uid {
        self.runs.last().map(|r| r.first + r.len - 1).unwrap_or(0)
    }

    fn modseq_at(&self, pos: usize) -> ModSeq {
        self.modseqs
            .as_ref()
            .and_then(|m| m.get(pos).copied())
            .unwrap_or(0)
    }

    /// Appends a message (UIDs only grow).
    fn push(
        &mut self,
        uid: Uid,
        flags: &Flags,
        modseq: ModSeq,
        lookup: &mut Option<HashMap<Flags, u32>>,
    ) {
        let f = self.intern(flags, lookup);
        match self.runs.last_mut() {
            Some(last) if last.first + last.len == uid => last.len += 1,
            _ => self.runs.push(Run { first: uid, len: 1 }),
        }
        self.set_of.push(f);
        self.count += 1;
        if let Some(m) = self.modseqs.as_mut() {
            m.push(modseq);
        }
    }

    /// Sets a message's flags and modseq; returns whether either changed as
    /// far as the client can see.
    fn set_at(
        &mut self,
        pos: usize,
        flags: &Flags,
        modseq: ModSeq,
        announce_modseq: bool,
        lookup: &mut Option<HashMap<Flags, u32>>,
    ) -> bool {
        let f = self.intern(flags, lookup);
        let old_modseq = self.modseq_at(pos);
        if let Some(m) = self.modseqs.as_mut() {
            m[pos] = modseq;
        }
        let modseq_changed = announce_modseq && old_modseq != modseq;
        if self.set_of.get(pos) == Some(f) {
            return modseq_changed;
        }
        self.set_of.set(pos, f);
        true
    }

    /// Position (sequence order) and UID of each of `uids` (ascending,
    /// distinct) the view holds: one walk over the runs.
    fn locate(&self, uids: &[Uid]) -> Vec<(usize, Uid)> {
        let mut out = Vec::new();
        let mut rest = uids;
        let mut base = 0usize;
        for run in &self.runs {
            let end = u64::from(run.first) + u64::from(run.len);
            while let Some((&u, tail)) = rest.split_first() {
                if u64::from(u) >= end {
                    break;
                }
                if u >= run.first {
                    out.push((base + (u - run.first) as usize, u));
                }
                rest = tail;
            }
            if rest.is_empty() {
                break;
            }
            base += run.len as usize;
        }
        out
    }

    /// Removes the messages `locate` found, in one pass over each table.
    fn remove_located(&mut self, gone: &[(usize, Uid)]) {
        if gone.is_empty() {
            return;
        }
        let mut runs = Vec::with_capacity(self.runs.len() + gone.len());
        let mut g = gone.iter().map(|&(_, u)| u).peekable();
        for run in &self.runs {
            let end = run.first + run.len;
            let mut start = run.first;
            while let Some(u) = g.next_if(|&u| u < end) {
                if u > start {
                    runs.push(Run {
                        first: start,
                        len: u - start,
                    });
                }
                start = u + 1;
            }
            if start < end {
                runs.push(Run {
                    first: start,
                    len: end - start,
                });
            }
        }
        self.runs = runs;
        let pos: Vec<usize> = gone.iter().map(|&(p, _)| p).collect();
        self.set_of.remove_at(&pos);
        if let Some(m) = self.modseqs.as_mut() {
            remove_at(m, &pos);
        }
        self.count -= gone.len();
    }

    /// UID and flag set (`None` only if the tables disagree, which they
    /// cannot) of every message in sequence order.
    fn iter(&self) -> impl Iterator<Item = (Uid, Option<&Flags>)> + '_ {
        self.runs
            .iter()
            .flat_map(|r| (0..r.len).map(move |k| r.first + k))
            .enumerate()
            .map(move |(pos, uid)| {
                let set = self.set_of.get(pos).and_then(|f| self.sets.get(f as usize));
                (uid, set)
            })
    }
}

/// The untagged responses a sync produces, in order.
#[derive(Debug, Default)]
pub(crate) struct SyncOutput {
    /// Sequence numbers to announce as `* n EXPUNGE`, each relative to the state
    /// after the previous one (so they can be written as they are).
    pub expunged_seqs: Vec<u32>,
    pub expunged_uids: Vec<Uid>,
    /// New EXISTS count if messages were added.
    pub exists: Option<u32>,
    /// UIDs whose flags (or modseq) changed, to announce as FETCH, ascending.
    pub flag_changes: Vec<Uid>,
    /// Their sequence numbers once the expunges above are announced.
    pub flag_change_seqs: Vec<u32>,
}

/// `uids` ascending and without repeats (borrowed when already so).
fn sorted_distinct(uids: &[Uid]) -> std::borrow::Cow<'_, [Uid]> {
    if uids.windows(2).all(|w| w[0] < w[1]) {
        return std::borrow::Cow::Borrowed(uids);
    }
    let mut v = uids.to_vec();
    v.sort_unstable();
    v.dedup();
    std::borrow::Cow::Owned(v)
}

/// An empty message list, shared by every view that holds none (a
/// hibernated view): no allocation per idle session.
fn no_messages() -> Arc<Vec<MessageMeta>> {
    static EMPTY: std::sync::OnceLock<Arc<Vec<MessageMeta>>> = std::sync::OnceLock::new();
    Arc::clone(EMPTY.get_or_init(|| Arc::new(Vec::new())))
}

/// The keywords in these flag lists (of messages), sorted, each once (as
/// stored, keywords are deduplicated case-insensitively keeping the first
/// spelling).
pub(crate) fn keywords<'a>(lists: impl Iterator<Item = &'a Flags>) -> Vec<&'a str> {
    // Messages share their flag lists (the store decodes each distinct list
    // of a read once, and lists of system flags only are shared by the whole
    // process, `share_flags`): a list seen a moment ago is not looked at
    // again.
    let mut recent: [Option<&Flags>; 4] = [None; 4];
    let mut next = 0;
    let mut kws: Vec<&str> = Vec::new();
    for list in lists {
        if recent.iter().flatten().any(|r| Arc::ptr_eq(r, list)) {
            continue;
        }
        recent[next] = Some(list);
        next = (next + 1) % recent.len();
        kws.extend(
            list.iter()
                .filter(|f| !f.starts_with('\\'))
                .map(String::as_str),
        );
    }
    kws.sort_unstable();
    kws.dedup();
    kws
}

impl SelectedMailbox {
    /// Every flag of every message, repeated (hibernated: of each distinct
    /// set once).
    fn all_flags(&self) -> Box<dyn Iterator<Item = &String> + '_> {
        match &self.hibernated {
            Some(h) => Box::new(h.sets.iter().flat_map(|s| s.iter())),
            None => Box::new(self.messages.iter().flat_map(|m| m.flags.iter())),
        }
    }

    /// Whether the message is \Recent in this session.
    pub fn is_recent(&self, uid: Uid) -> bool {
        self.recent.contains(uid)
    }

    /// How many messages of the view are \Recent in this session (the
    /// RECENT response).
    pub fn recent_count(&self) -> usize {
        self.recent_n as usize
    }

    /// Sets the session's \Recent UIDs, counting them in the view.
    #[cfg(test)]
    pub fn set_recent(&mut self, recent: RecentUids) {
        self.recent = recent;
        self.recent_n = self.recount_recent() as u32;
    }

    /// Adds `[from, to)` to the session's \Recent UIDs.
    pub fn add_recent(&mut self, from: Uid, to: Uid) {
        if from >= to {
            return;
        }
        // The messages of the view in the parts of the range not in
        // `recent` already.
        let ranges = self.recent.ranges();
        let first = ranges.partition_point(|&(_, b)| b <= from);
        let mut start = from;
        let mut newly = 0;
        for &(a, b) in ranges[first..].iter().take_while(|&&(a, _)| a < to) {
            if a > start {
                newly += self.count_in(start, a);
            }
            start = start.max(b);
        }
        if start < to {
            newly += self.count_in(start, to);
        }
        self.recent.add(from, to);
        self.recent_n += newly as u32;
    }

    /// The count of `recent_n` done from scratch.
    #[cfg(test)]
    fn recount_recent(&self) -> usize {
        self.recent
            .ranges()
            .iter()
            .map(|&(from, to)| self.count_in(from, to))
            .sum()
    }

    /// How many messages of the view have a UID in `[from, to)`.
    fn count_in(&self, from: Uid, to: Uid) -> usize {
        self.count_below(to) - self.count_below(from)
    }

    /// How many messages of the view have a UID below `uid`.
    fn count_below(&self, uid: Uid) -> usize {
        match &self.hibernated {
            Some(h) => h
                .runs
                .iter()
                .map(|r| uid.saturating_sub(r.first).min(r.len) as usize)
                .sum(),
            None => self.messages.partition_point(|m| m.uid < uid),
        }
    }

    /// The keywords the view's messages use.
    pub fn keywords(&self) -> Vec<&str> {
        match &self.hibernated {
            Some(h) => keywords(h.sets.iter()),
            None => keywords(self.messages.iter().map(|m| &m.flags)),
        }
    }

    /// Whether any message of the view has keyword `k`.
    pub fn has_keyword(&self, k: &str) -> bool {
        self.all_flags().any(|f| f.eq_ignore_ascii_case(k))
    }

    pub fn seq_of(&self, uid: Uid) -> Option<u32> {
        let i = match &self.hibernated {
            Some(h) => h.position(uid),
            None => self.messages.binary_search_by_key(&uid, |m| m.uid).ok(),
        };
        i.map(|i| i as u32 + 1)
    }

    pub fn max_uid(&self) -> Uid {
        match &self.hibernated {
            Some(h) => h.max_uid(),
            None => self.messages.last().map(|m| m.uid).unwrap_or(0),
        }
    }

    /// What `current` (the store's messages of this mailbox in UID order, read
    /// together with `info`) holds that this view has not taken in: messages
    /// with a modseq past the view's (changed or new), and the view's
    /// messages it lacks (expunged).
    pub fn changes_in(&self, info: &MailboxInfo, current: &[MessageMeta]) -> MailboxChanges {
        let present = |u: &Uid| current.binary_search_by_key(u, |m| m.uid).is_ok();
        let expunged = match &self.hibernated {
            Some(h) => h.iter().map(|(u, _)| u).filter(|u| !present(u)).collect(),
            None => self
                .messages
                .iter()
                .map(|m| m.uid)
                .filter(|u| !present(u))
                .collect(),
        };
        MailboxChanges {
            uidvalidity: info.uidvalidity,
            uidnext: info.uidnext,
            highest_modseq: info.highest_modseq,
            changed: current
                .iter()
                .filter(|m| m.modseq > self.known_modseq)
                .cloned()
                .collect(),
            expunged,
        }
    }

    /// Number of messages (the EXISTS the client knows).
    pub fn len(&self) -> usize {
        match &self.hibernated {
            Some(h) => h.count,
            None => self.messages.len(),
        }
    }

    /// Flags and modseq of a message by sequence number, as announced.
    pub fn flags_modseq(&self, seq: u32) -> Option<(&[String], ModSeq)> {
        let i = (seq as usize).checked_sub(1)?;
        match &self.hibernated {
            Some(h) => {
                let f = h.set_of.get(i)?;
                Some((h.sets.get(f as usize)?.as_slice(), h.modseq_at(i)))
            }
            None => self.messages.get(i).map(|m| (m.flags.as_slice(), m.modseq)),
        }
    }

    /// Whether the view's message list is shared (with the mailbox's snapshot
    /// or another view): a change would copy it.
    pub fn shares_messages(&self) -> bool {
        self.hibernated.is_none() && Arc::strong_count(&self.messages) > 1
    }

    /// Records the flags and modseq this session's own change gave message
    /// `uid` (the view is not hibernated while a command runs); false if the
    /// view does not hold it.
    pub fn set_flags(&mut self, uid: Uid, flags: &[String], modseq: ModSeq) -> bool {
        let Ok(i) = self.messages.binary_search_by_key(&uid, |m| m.uid) else {
            return false;
        };
        let m = &mut Arc::make_mut(&mut self.messages)[i];
        m.flags = pillarbox_store::share_flags(flags);
        m.modseq = modseq;
        true
    }

    /// Drops everything but what IDLE needs (see the module docs).
    /// `keep_modseqs`: the session uses CONDSTORE.
    pub fn hibernate(&mut self, keep_modseqs: bool) {
        if self.hibernated.is_some() {
            return;
        }
        crate::memory_released();
        let mut h = Hibernated::new(keep_modseqs);
        let mut lookup = None;
        for m in std::mem::replace(&mut self.messages, no_messages()).iter() {
            h.push(m.uid, &m.flags, m.modseq, &mut lookup);
        }
        h.runs.shrink_to_fit();
        h.set_of.shrink_to_fit();
        if let Some(m) = h.modseqs.as_mut() {
            m.shrink_to_fit();
        }
        self.pending_expunge.shrink_to_fit();
        self.hibernated = Some(h);
    }

    /// Restores full metadata from `current` (the store's messages of this
    /// mailbox, ascending UID), keeping the flags and modseqs as announced so
    /// that the next sync still reports what changed. A message the store no
    /// longer has (expunged, not yet announced) keeps a placeholder.
    pub fn rehydrate(&mut self, current: Arc<Vec<MessageMeta>>) {
        let Some(h) = self.hibernated.take() else {
            return;
        };
        // Usually nothing changed while idle (or the changes were pushed and
        // so are in both): the view takes the read as it is, shared.
        let same = h.count == current.len()
            && h.iter()
                .zip(current.iter())
                .enumerate()
                .all(|(pos, ((uid, flags), m))| {
                    uid == m.uid
                        && flags.is_some_and(|f| Arc::ptr_eq(f, &m.flags) || **f == *m.flags)
                        && h.modseqs
                            .as_ref()
                            .is_none_or(|_| h.modseq_at(pos) == m.modseq)
                });
        if same {
            self.messages = current;
            return;
        }
        let mut store = current.iter().cloned().peekable();
        let mut out = Vec::with_capacity(h.count);
        let mut gone = Vec::new();
        for (pos, (uid, flags)) in h.iter().enumerate() {
            let flags = flags.cloned().unwrap_or_default();
            while store.peek().is_some_and(|m| m.uid < uid) {
                store.next();
            }
            let modseq = h.modseqs.as_ref().map(|_| h.modseq_at(pos));
            let meta = match store.next_if(|m| m.uid == uid) {
                Some(mut m) => {
                    m.flags = flags;
                    if let Some(ms) = modseq {
                        m.modseq = ms;
                    }
                    m
                }
                None => {
                    // Already expunged in the store: announce it at the next
                    // opportunity.
                    gone.push(uid);
                    MessageMeta {
                        uid,
                        modseq: modseq.unwrap_or(0),
                        flags,
                        internal_date: 0,
                        date_offset_minutes: 0,
                        size: 0,
                        blob: pillarbox_store::BlobId::empty(),
                    }
                }
            };
            out.push(meta);
        }
        self.messages = Arc::new(out);
        self.hold(gone);
    }

    /// Merges store changes. Expunges are applied only when `allow_expunge`,
    /// otherwise remembered for later.
    pub fn apply(
        &mut self,
        ch: MailboxChanges,
        allow_expunge: bool,
        announce_modseq: bool,
    ) -> SyncOutput {
        let mut out = SyncOutput::default();
        self.hold_expunges(ch.expunged);
        let max = self.max_uid();
        let mut added = false;
        let mut changed = ch.changed;
        // In UID order, each message once (the later of two changes to it),
        // so that the view finds them in one walk.
        if !changed.windows(2).all(|w| w[0].uid < w[1].uid) {
            changed.sort_by_key(|m| m.uid);
            changed.reverse();
            changed.dedup_by_key(|m| m.uid);
            changed.reverse();
        }
        match self.hibernated.as_mut() {
            Some(h) => {
                let known: Vec<Uid> = changed
                    .iter()
                    .map(|m| m.uid)
                    .take_while(|&u| u <= max)
                    .collect();
                let mut at = h.locate(&known).into_iter().peekable();
                let mut lookup = None;
                for m in changed {
                    if m.uid > max {
                        h.push(m.uid, &m.flags, m.modseq, &mut lookup);
                        self.recent_n += u32::from(self.recent.contains(m.uid));
                        added = true;
                        continue;
                    }
                    while at.next_if(|&(_, u)| u < m.uid).is_some() {}
                    if let Some(&(pos, _)) = at.peek().filter(|&&(_, u)| u == m.uid) {
                        if h.set_at(pos, &m.flags, m.modseq, announce_modseq, &mut lookup) {
                            out.flag_changes.push(m.uid);
                        }
                    }
                }
                h.compact_sets();
            }
            None if changed.is_empty() => {}
            None => {
                let messages = Arc::make_mut(&mut self.messages);
                for m in changed {
                    if m.uid > max {
                        self.recent_n += u32::from(self.recent.contains(m.uid));
                        messages.push(m);
                        added = true;
                    } else if let Ok(i) = messages.binary_search_by_key(&m.uid, |x| x.uid) {
                        let cur = &mut messages[i];
                        let show =
                            cur.flags != m.flags || (announce_modseq && cur.modseq != m.modseq);
                        *cur = m;
                        if show {
                            out.flag_changes.push(cur.uid);
                        }
                    }
                }
            }
        }
        self.uidnext = self.uidnext.max(ch.uidnext);
        self.known_modseq = self.known_modseq.max(ch.highest_modseq);
        if allow_expunge {
            let (seqs, uids) = self.take_pending();
            out.expunged_seqs = seqs;
            out.expunged_uids = uids;
            // Ascending.
            let gone = &out.expunged_uids;
            out.flag_changes.retain(|u| gone.binary_search(u).is_err());
        }
        // Counted after the expunges above: EXISTS is written after them.
        if added {
            out.exists = Some(self.len() as u32);
        }
        // Ascending and distinct, as `changed` is: one walk of the view finds
        // them all (a hibernated view finds a UID by walking its runs).
        (out.flag_change_seqs, out.flag_changes) = self
            .locate(&out.flag_changes)
            .into_iter()
            .map(|(pos, uid)| (pos as u32 + 1, uid))
            .unzip();
        out
    }

    /// Removes the pending expunged messages; returns their sequence numbers
    /// (each relative to the state after the previous removal) and UIDs.
    pub fn take_pending(&mut self) -> (Vec<u32>, Vec<Uid>) {
        let uids = std::mem::take(&mut self.pending_expunge);
        self.remove_uids(&uids)
    }

    /// Removes messages by UID; returns sequence numbers as `* n EXPUNGE`
    /// needs them (highest first, so that each is valid as sent) and the
    /// UIDs removed, ascending. Linear in the view and the UIDs: another
    /// device expunging half of a large mailbox must not stall this one.
    pub fn remove_uids(&mut self, uids: &[Uid]) -> (Vec<u32>, Vec<Uid>) {
        let uids = sorted_distinct(uids);
        let found = self.locate(&uids);
        let seqs = found.iter().rev().map(|&(p, _)| p as u32 + 1).collect();
        let removed: Vec<Uid> = found.iter().map(|&(_, u)| u).collect();
        let recent_gone = removed.iter().filter(|&&u| self.recent.contains(u)).count();
        self.recent_n -= recent_gone as u32;
        match self.hibernated.as_mut() {
            Some(h) => h.remove_located(&found),
            None if found.is_empty() => {}
            None => {
                let mut gone = found.iter().map(|&(p, _)| p).peekable();
                let mut pos = 0usize;
                Arc::make_mut(&mut self.messages).retain(|_| {
                    let keep = gone.next_if_eq(&pos).is_none();
                    pos += 1;
                    keep
                });
            }
        }
        self.pending_expunge
            .retain(|u| uids.binary_search(u).is_err());
        if self.pending_expunge.is_empty() {
            self.pending_floor = 0;
        }
        // \Recent ranges below the view's first message hold nothing any
        // more (new mail comes above the last): a long session among several
        // devices keeps only the ranges that still count.
        let first = match &self.hibernated {
            Some(h) => h.runs.first().map(|r| r.first),
            None => self.messages.first().map(|m| m.uid),
        };
        if let Some(first) = first {
            self.recent.drop_below(first);
        }
        (seqs, removed)
    }

    /// Position (sequence order) and UID of each of `uids` (ascending,
    /// distinct) the view holds.
    fn locate(&self, uids: &[Uid]) -> Vec<(usize, Uid)> {
        match &self.hibernated {
            Some(h) => h.locate(uids),
            None => uids
                .iter()
                .filter_map(|&u| {
                    self.messages
                        .binary_search_by_key(&u, |m| m.uid)
                        .ok()
                        .map(|i| (i, u))
                })
                .collect(),
        }
    }

    /// Remembers, to announce later, the expunge of each of `uids` the view
    /// holds.
    fn hold_expunges(&mut self, uids: Vec<Uid>) {
        let uids = sorted_distinct(&uids);
        let held = self.locate(&uids).into_iter().map(|(_, u)| u).collect();
        self.hold(held);
    }

    /// Remembers expunges of messages of the view to announce later, before
    /// the view's modseq moves past them. `pending_expunge` stays ascending
    /// and distinct.
    fn hold(&mut self, held: Vec<Uid>) {
        if held.is_empty() {
            return;
        }
        if self.pending_expunge.is_empty() {
            self.pending_floor = self.known_modseq;
        }
        self.pending_expunge.extend(held);
        self.pending_expunge.sort_unstable();
        self.pending_expunge.dedup();
    }

    /// The modseq up to which the client has been told everything: the
    /// view's, or below the first expunge not announced yet.
    pub fn announced_modseq(&self) -> ModSeq {
        if self.pending_expunge.is_empty() {
            self.known_modseq
        } else {
            self.pending_floor
        }
    }

    /// Resolves a sequence set (by sequence number) to indexes into `messages`.
    pub fn resolve_seqs(
        &self,
        set: &SequenceSet,
        saved: Option<&[Uid]>,
    ) -> Result<Vec<usize>, String> {
        let n = self.messages.len() as u32;
        match set {
            SequenceSet::Saved => Ok(self.saved_indexes(saved)),
            SequenceSet::Ranges(_) => {
                // Sorted and merged first: each message once, however many
                // times the client named it.
                let ranges = set.normalized(n);
                let (Some(first), Some(last)) = (ranges.first(), ranges.last()) else {
                    return Ok(Vec::new());
                };
                if n == 0 || first.0 == 0 || last.1 > n {
                    return Err("Invalid messageset".into());
                }
                Ok(ranges
                    .iter()
                    .flat_map(|&(lo, hi)| (lo..=hi).map(|s| s as usize - 1))
                    .collect())
            }
        }
    }

    /// Resolves a UID set to indexes of existing messages (non-existent UIDs are ignored).
    pub fn resolve_uids(&self, set: &SequenceSet, saved: Option<&[Uid]>) -> Vec<usize> {
        match set {
            SequenceSet::Saved => self.saved_indexes(saved),
            SequenceSet::Ranges(_) => {
                // Disjoint and ascending: so are the indexes.
                let mut out = Vec::new();
                for (lo, hi) in set.normalized(self.max_uid()) {
                    let start = self.messages.partition_point(|m| m.uid < lo);
                    let end = self.messages.partition_point(|m| m.uid <= hi);
                    out.extend(start..end);
                }
                out
            }
        }
    }

    fn saved_indexes(&self, saved: Option<&[Uid]>) -> Vec<usize> {
        saved
            .unwrap_or(&[])
            .iter()
            .filter_map(|u| self.seq_of(*u).map(|s| s as usize - 1))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pillarbox_store::BlobId;

    fn meta(uid: u32, flags: &[&str], modseq: u64) -> MessageMeta {
        MessageMeta {
            uid,
            modseq,
            flags: Flags::new(flags.iter().map(|s| s.to_string()).collect()),
            internal_date: 0,
            date_offset_minutes: 0,
            size: 10,
            blob: BlobId::empty(),
        }
    }

    #[test]
    fn recent_uids_merge_touching_ranges_and_keep_gaps() {
        let mut r = RecentUids::from_range(5, 8);
        r.add(8, 10);
        assert_eq!(r.ranges(), &[(5, 10)]);
        r.add(12, 13);
        r.add(1, 2);
        assert_eq!(r.ranges(), &[(1, 2), (5, 10), (12, 13)]);
        assert!(r.contains(1) && !r.contains(2) && r.contains(9) && !r.contains(10));
        assert!(!r.contains(11) && r.contains(12) && !r.contains(13) && !r.contains(0));
        // Bridging two ranges, and an empty range, which adds nothing.
        r.add(9, 12);
        r.add(20, 20);
        assert_eq!(r.ranges(), &[(1, 2), (5, 13)]);
        r.add(0, 30);
        assert_eq!(r.ranges(), &[(0, 30)]);
        assert!(RecentUids::from_range(3, 3).ranges().is_empty());
    }

    #[test]
    fn recent_count_follows_claims_arrivals_and_expunges() {
        for hibernated in [false, true] {
            let mut v = view(&[1, 2, 3, 7, 8, 9, 12]);
            if hibernated {
                v.hibernate(false);
            }
            v.set_recent(RecentUids::from_range(2, 4));
            assert_eq!(v.recent_count(), 2);
            v.add_recent(8, 20);
            assert_eq!(v.recent_count(), 5);
            // Overlapping what it has: only the new part counts.
            v.add_recent(1, 9);
            assert_eq!(v.recent_count(), 7);
            v.add_recent(0, 1);
            assert_eq!(v.recent_count(), 7);
            // Claimed before the view learns of them (SELECT's claim, an
            // APPEND's): counted when they arrive.
            v.add_recent(30, 32);
            assert_eq!(v.recent_count(), 7);
            let new = vec![meta(30, &[], 5), meta(31, &[], 5), meta(33, &[], 5)];
            v.apply(changes(new, vec![], 34), true, false);
            assert_eq!(v.recent_count(), 9);
            v.apply(changes(vec![], vec![2, 9, 33], 34), true, false);
            assert_eq!(v.recent_count(), 7);
            assert_eq!(v.recent_count(), v.recount_recent());
            // Ranges below the first message are forgotten.
            v.add_recent(40, 41);
            v.apply(changes(vec![], vec![1, 3, 7, 8, 12], 35), true, false);
            assert_eq!(v.recent_count(), 2);
            assert_eq!(v.recent.ranges(), &[(30, 32), (40, 41)]);
            // A range the first message is in stays.
            v.apply(changes(vec![], vec![30], 36), true, false);
            assert_eq!(v.recent.ranges(), &[(30, 32), (40, 41)]);
            assert_eq!(v.recent_count(), 1);
            assert_eq!(v.recent_count(), v.recount_recent());
        }
    }

    fn view(uids: &[u32]) -> SelectedMailbox {
        SelectedMailbox {
            id: 1,
            uidvalidity: 1,
            read_only: false,
            uidnext: uids.last().copied().unwrap_or(0) + 1,
            messages: Arc::new(uids.iter().map(|u| meta(*u, &[], 1)).collect()),
            known_modseq: 1,
            pending_expunge: vec![],
            pending_floor: 0,
            recent: RecentUids::default(),
            recent_pending: None,
            recent_sent: 0,
            recent_n: 0,
            hibernated: None,
            seen_version: 0,
            checked_at: None,
            foreign: None,
        }
    }

    fn changes(changed: Vec<MessageMeta>, expunged: Vec<u32>, modseq: u64) -> MailboxChanges {
        MailboxChanges {
            uidvalidity: 1,
            uidnext: 100,
            highest_modseq: modseq,
            changed,
            expunged,
        }
    }

    /// Random batches of expunges and flag changes (unsorted, repeated,
    /// naming UIDs the view does not hold) applied to a full view and to a
    /// hibernated one give the same responses and states, and the EXPUNGE
    /// sequence numbers, applied in order, remove exactly the UIDs reported.
    #[test]
    fn bulk_changes_match_between_full_and_hibernated_views() {
        use rand::{Rng, SeedableRng};
        // More distinct sets than `intern` scans in place: its map is used.
        let sets: Vec<Flags> = [&[][..], &["\\Seen"], &["\\Seen", "$k"], &["\\Flagged"]]
            .iter()
            .map(|f| Flags::new(f.iter().map(|s| s.to_string()).collect()))
            .chain((0..40).map(|k| Flags::new(vec![format!("$k{k}")])))
            .collect();
        for seed in 0..40u64 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let uids: Vec<u32> = (1..=300).filter(|_| rng.gen_bool(0.6)).collect();
            let mut full = view(&uids);
            let mut hib = view(&uids);
            hib.hibernate(true);
            let mut model: Vec<u32> = uids.clone();
            let mut modseq = 2;
            for _ in 0..15 {
                modseq += 1;
                let max = model.last().copied().unwrap_or(0) + 3;
                let expunged: Vec<u32> = (0..rng.gen_range(0..40))
                    .map(|_| rng.gen_range(1..=max))
                    .collect();
                let mut changed: Vec<MessageMeta> = (0..rng.gen_range(0..60))
                    .map(|_| MessageMeta {
                        flags: sets[rng.gen_range(0..sets.len())].clone(),
                        ..meta(rng.gen_range(1..=max), &[], modseq)
                    })
                    .collect();
                // New messages only above everything the views hold.
                let top = full.max_uid();
                changed.retain(|m| m.uid <= top || m.uid > max - 3);
                let allow = rng.gen_bool(0.7);
                let ch = changes(changed, expunged, modseq);
                let a = full.apply(ch.clone(), allow, true);
                let b = hib.apply(ch, allow, true);
                assert_eq!(a.expunged_seqs, b.expunged_seqs, "seed {seed}");
                assert_eq!(a.expunged_uids, b.expunged_uids, "seed {seed}");
                assert_eq!(a.exists, b.exists, "seed {seed}");
                assert_eq!(a.flag_changes, b.flag_changes, "seed {seed}");
                assert_eq!(a.flag_change_seqs, b.flag_change_seqs, "seed {seed}");
                for &seq in &a.expunged_seqs {
                    model.remove(seq as usize - 1);
                }
                model.extend(
                    (full.len() > model.len())
                        .then(|| full.messages[model.len()..].iter().map(|m| m.uid))
                        .into_iter()
                        .flatten(),
                );
                assert_eq!(
                    full.messages.iter().map(|m| m.uid).collect::<Vec<_>>(),
                    model
                );
                assert_eq!(full.len(), hib.len());
                for (i, &uid) in model.iter().enumerate() {
                    let seq = i as u32 + 1;
                    assert_eq!(hib.seq_of(uid), Some(seq), "seed {seed}");
                    assert_eq!(full.flags_modseq(seq), hib.flags_modseq(seq), "seed {seed}");
                }
                for (&seq, &uid) in a.flag_change_seqs.iter().zip(&a.flag_changes) {
                    assert_eq!(full.seq_of(uid), Some(seq));
                }
                assert_eq!(full.pending_expunge, hib.pending_expunge, "seed {seed}");
                assert!(full.pending_expunge.windows(2).all(|w| w[0] < w[1]));
            }
        }
    }

    /// A hibernated view's table of flag sets keeps only what its messages
    /// use, within a factor of two, through many batches of changes.
    #[test]
    fn hibernated_flag_sets_are_compacted() {
        let uids: Vec<u32> = (1..=200).collect();
        let mut v = view(&uids);
        v.hibernate(false);
        for batch in 0..50u64 {
            let changed = uids
                .iter()
                .map(|&u| meta(u, &[&format!("b{batch}k{}", u % 30)], batch + 2))
                .collect();
            let out = v.apply(changes(changed, vec![], batch + 2), true, false);
            assert_eq!(out.flag_changes.len(), 200);
            let h = v.hibernated.as_ref().unwrap();
            assert!(
                h.sets.len() <= 2 * 30 + 30,
                "batch {batch}: {} sets",
                h.sets.len()
            );
        }
        for (seq, &u) in (1..).zip(&uids) {
            let (flags, _) = v.flags_modseq(seq).unwrap();
            assert_eq!(flags, [format!("b49k{}", u % 30)]);
        }
    }

    #[test]
    fn expunge_seqs_are_valid_as_sent() {
        let mut v = view(&[1, 2, 3, 4, 5]);
        let (seqs, uids) = v.remove_uids(&[2, 4]);
        // Removing uid 4 (seq 4) first, then uid 2 (seq 2): both valid in order.
        assert_eq!(seqs, vec![4, 2]);
        assert_eq!(uids, vec![2, 4]);
        assert_eq!(
            v.messages.iter().map(|m| m.uid).collect::<Vec<_>>(),
            vec![1, 3, 5]
        );
    }

    #[test]
    fn expunge_deferred_when_not_allowed() {
        let mut v = view(&[1, 2, 3]);
        let out = v.apply(changes(vec![meta(4, &[], 5)], vec![2], 5), false, false);
        assert!(out.expunged_seqs.is_empty());
        assert_eq!(out.exists, Some(4));
        assert_eq!(v.messages.len(), 4);
        assert_eq!(v.pending_expunge, vec![2]);
        let out = v.apply(changes(vec![], vec![], 5), true, false);
        assert_eq!(out.expunged_seqs, vec![2]);
        assert_eq!(v.messages.len(), 3);
    }

    #[test]
    fn hibernated_view_syncs_like_the_full_one() {
        let mut full = view(&[1, 2, 3, 4]);
        let mut hib = view(&[1, 2, 3, 4]);
        hib.hibernate(true);
        assert!(hib.messages.is_empty());
        let ch = || {
            changes(
                vec![meta(2, &["\\Seen"], 6), meta(5, &["$x"], 6)],
                vec![3],
                6,
            )
        };
        let a = full.apply(ch(), true, true);
        let b = hib.apply(ch(), true, true);
        assert_eq!(
            (a.expunged_seqs, a.exists, a.flag_changes),
            (b.expunged_seqs, b.exists, b.flag_changes)
        );
        assert_eq!(hib.len(), 4);
        assert_eq!(hib.seq_of(5), Some(4));
        assert_eq!(hib.flags_modseq(2).unwrap().0, ["\\Seen".to_string()]);
        // Rehydrating keeps the announced flags even if the store moved on.
        let store: Vec<MessageMeta> = vec![
            meta(1, &[], 1),
            meta(2, &["\\Seen", "\\Flagged"], 9),
            meta(5, &["$x"], 6),
        ];
        hib.rehydrate(Arc::new(store));
        assert!(hib.hibernated.is_none());
        let uids: Vec<u32> = hib.messages.iter().map(|m| m.uid).collect();
        assert_eq!(uids, vec![1, 2, 4, 5]);
        assert_eq!(*hib.messages[1].flags, vec!["\\Seen".to_string()]);
        assert_eq!(
            hib.messages[1].size, 10,
            "other metadata comes from the store"
        );
        assert_eq!(
            hib.messages[2].size, 0,
            "uid 4 is gone from the store: placeholder"
        );
    }

    /// Views taken from one read share its list until they change; a change
    /// copies it for that view only. Rehydrating from a read that holds the
    /// flags and modseqs the view announced shares that read again; one that
    /// differs gives the view a list of its own, with the announced flags.
    #[test]
    fn views_share_their_read_until_they_change() {
        let read = Arc::new(vec![
            meta(1, &[], 1),
            meta(2, &["\\Seen"], 2),
            meta(3, &[], 3),
        ]);
        let mut a = view(&[]);
        let mut b = view(&[]);
        a.messages = Arc::clone(&read);
        b.messages = Arc::clone(&read);
        let out = a.apply(
            changes(vec![meta(1, &["\\Flagged"], 4)], vec![], 4),
            true,
            false,
        );
        assert_eq!(out.flag_changes, vec![1]);
        assert!(!Arc::ptr_eq(&a.messages, &read), "a has a copy");
        assert!(Arc::ptr_eq(&b.messages, &read), "b still shares the read");
        assert!(read[0].flags.is_empty(), "the read is unchanged");
        assert_eq!(*a.messages[0].flags, vec!["\\Flagged".to_string()]);
        // A session's own STORE, and nothing at all.
        assert!(b.set_flags(3, &["$x".to_string()], 5));
        assert!(!b.set_flags(9, &[], 5));
        assert!(read[2].flags.is_empty());
        let mut c = view(&[]);
        c.messages = Arc::clone(&read);
        c.apply(changes(vec![], vec![], 5), true, false);
        c.remove_uids(&[7]);
        assert!(Arc::ptr_eq(&c.messages, &read), "no change, no copy");
        // Hibernated, then back: the same read is shared again.
        for keep_modseqs in [false, true] {
            c.hibernate(keep_modseqs);
            c.rehydrate(Arc::clone(&read));
            assert!(Arc::ptr_eq(&c.messages, &read));
        }
        // The store moved on (2 lost \Seen, unannounced): a list of c's own,
        // with the flags c announced.
        c.hibernate(true);
        let later = Arc::new(vec![meta(1, &[], 1), meta(2, &[], 6), meta(3, &[], 3)]);
        c.rehydrate(Arc::clone(&later));
        assert!(!Arc::ptr_eq(&c.messages, &later));
        assert_eq!(*c.messages[1].flags, vec!["\\Seen".to_string()]);
        assert_eq!(c.messages[1].modseq, 2);
        assert!(later[1].flags.is_empty());
    }

    /// Keywords of many messages, most sharing a few lists: each keyword
    /// once, sorted, system flags left out, whether a list is shared or an
    /// equal copy, and however far apart its messages are.
    #[test]
    fn keywords_of_shared_and_copied_lists() {
        let list = |f: &[&str]| Arc::new(f.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let seen = list(&["\\Seen"]);
        let work = list(&["$Work", "\\Flagged"]);
        let mut lists = vec![Arc::clone(&work), Arc::clone(&seen), Arc::clone(&seen)];
        for i in 0..6 {
            lists.push(list(&[&format!("k{i}")]));
        }
        lists.push(Arc::clone(&work));
        lists.push(list(&["$Work", "Zed", "\\Answered"]));
        let got = keywords(lists.iter());
        assert_eq!(got, ["$Work", "Zed", "k0", "k1", "k2", "k3", "k4", "k5"]);
        assert!(keywords([seen].iter()).is_empty());
    }

    #[test]
    fn hibernated_runs_split_and_shrink() {
        let mut v = view(&[1, 2, 3, 4, 5, 7, 8]);
        v.hibernate(false);
        let h = v.hibernated.as_ref().unwrap();
        assert_eq!(h.runs.len(), 2, "two runs of consecutive UIDs");
        assert!(matches!(&h.set_of, SetIds::Small(ids) if ids.len() == 7));
        assert!(h.modseqs.is_none());
        // A flag change keeps the runs and adds a set.
        let out = v.apply(
            changes(vec![meta(3, &["\\Flagged"], 4)], vec![], 4),
            true,
            false,
        );
        assert_eq!(out.flag_changes, vec![3]);
        assert_eq!(v.hibernated.as_ref().unwrap().runs.len(), 2);
        assert_eq!(v.hibernated.as_ref().unwrap().sets.len(), 2);
        assert_eq!(v.flags_modseq(3).unwrap().0, ["\\Flagged".to_string()]);
        assert_eq!(v.flags_modseq(2).unwrap().0, [] as [String; 0]);
        // Removing from the middle, the end and the start.
        let out = v.apply(
            changes(vec![meta(9, &[], 5)], vec![4, 8, 1], 5),
            true,
            false,
        );
        assert_eq!(out.expunged_seqs, vec![7, 4, 1]);
        assert_eq!(out.exists, Some(5));
        assert_eq!(
            v.hibernated
                .as_ref()
                .unwrap()
                .iter()
                .map(|(uid, _)| uid)
                .collect::<Vec<_>>(),
            vec![2, 3, 5, 7, 9]
        );
        assert_eq!(v.seq_of(7), Some(4));
        assert_eq!(v.seq_of(8), None);
        assert_eq!(v.max_uid(), 9);
        // Same flags again: not announced.
        let out = v.apply(
            changes(vec![meta(3, &["\\Flagged"], 6)], vec![], 6),
            true,
            false,
        );
        assert!(out.flag_changes.is_empty());
    }

    /// More than 256 distinct flag sets: the per-message ids widen, and
    /// every message keeps its own flags through changes and expunges.
    #[test]
    fn hibernated_sets_widen_past_256() {
        let uids: Vec<u32> = (1..=300).collect();
        let mut v = view(&uids);
        for m in Arc::make_mut(&mut v.messages).iter_mut() {
            m.flags = Flags::new(vec![format!("k{}", m.uid)]);
        }
        v.hibernate(false);
        assert!(matches!(
            &v.hibernated.as_ref().unwrap().set_of,
            SetIds::Large(ids) if ids.len() == 300
        ));
        let out = v.apply(
            changes(vec![meta(7, &["\\Seen"], 2)], vec![1, 150], 2),
            true,
            false,
        );
        assert_eq!(out.flag_changes, vec![7]);
        assert_eq!(out.expunged_seqs, vec![150, 1]);
        assert_eq!(v.flags_modseq(6).unwrap().0, ["\\Seen".to_string()]);
        for seq in 1..=298u32 {
            let uid = if seq < 149 { seq + 1 } else { seq + 2 };
            assert_eq!(v.seq_of(uid), Some(seq));
            if uid != 7 {
                assert_eq!(v.flags_modseq(seq).unwrap().0, [format!("k{uid}")]);
            }
        }
    }

    #[test]
    fn exists_counts_after_expunges_in_the_same_sync() {
        let mut v = view(&[1, 2, 3]);
        let out = v.apply(changes(vec![meta(4, &[], 5)], vec![2], 5), true, false);
        assert_eq!(out.expunged_seqs, vec![2]);
        // EXPUNGE is written first, so EXISTS must already exclude it.
        assert_eq!(out.exists, Some(3));
    }

    #[test]
    fn flag_change_announced_once() {
        let mut v = view(&[1, 2]);
        let out = v.apply(
            changes(vec![meta(2, &["\\Seen"], 3)], vec![], 3),
            true,
            false,
        );
        assert_eq!(out.flag_changes, vec![2u32]);
        let out = v.apply(
            changes(vec![meta(2, &["\\Seen"], 3)], vec![], 3),
            true,
            false,
        );
        assert!(out.flag_changes.is_empty());
    }

    #[test]
    fn sequence_resolution() {
        use pillarbox_proto::types::SeqNum;
        let v = view(&[10, 20, 30]);
        let set = SequenceSet::Ranges(vec![(SeqNum::Value(2), SeqNum::Star)]);
        assert_eq!(v.resolve_seqs(&set, None).unwrap(), vec![1, 2]);
        let bad = SequenceSet::Ranges(vec![(SeqNum::Value(4), SeqNum::Value(4))]);
        assert!(v.resolve_seqs(&bad, None).is_err());
        let uids = SequenceSet::Ranges(vec![(SeqNum::Value(15), SeqNum::Star)]);
        assert_eq!(v.resolve_uids(&uids, None), vec![1, 2]);
        // `n:*` with n above the highest UID still matches the last message (RFC 9051 6.4.9).
        let above = SequenceSet::Ranges(vec![(SeqNum::Value(99), SeqNum::Star)]);
        assert_eq!(v.resolve_uids(&above, None), vec![2]);
        // Repeated, overlapping and reversed ranges name each message once,
        // in order (and cost no more than one range).
        let many = SequenceSet::Ranges(
            std::iter::repeat_n((SeqNum::Value(1), SeqNum::Star), 1000)
                .chain([
                    (SeqNum::Value(3), SeqNum::Value(2)),
                    (SeqNum::Value(1), SeqNum::Value(1)),
                ])
                .collect(),
        );
        assert_eq!(v.resolve_seqs(&many, None).unwrap(), vec![0, 1, 2]);
        assert_eq!(v.resolve_uids(&many, None), vec![0, 1, 2]);
        let two = SequenceSet::Ranges(vec![
            (SeqNum::Value(30), SeqNum::Value(30)),
            (SeqNum::Value(10), SeqNum::Value(10)),
        ]);
        assert_eq!(v.resolve_uids(&two, None), vec![0, 2]);
        let mixed = SequenceSet::Ranges(vec![
            (SeqNum::Value(1), SeqNum::Value(1)),
            (SeqNum::Value(4), SeqNum::Value(4)),
        ]);
        assert!(v.resolve_seqs(&mixed, None).is_err());
        let zero = SequenceSet::Ranges(vec![(SeqNum::Value(0), SeqNum::Value(1))]);
        assert!(v.resolve_seqs(&zero, None).is_err());
    }
}
