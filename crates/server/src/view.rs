//! `SelectedMailbox`: the mailbox as this session has announced it to its
//! client. Sequence numbers are positions in `messages`; they change only when
//! the session itself sends EXPUNGE (or VANISHED), never behind the client's back.

use pillarbox_proto::types::{SeqNum, SequenceSet};
use pillarbox_store::{MailboxChanges, MailboxId, MessageMeta, ModSeq, Uid};

pub(crate) struct SelectedMailbox {
    pub id: MailboxId,
    pub read_only: bool,
    pub uidnext: Uid,
    /// Messages in sequence order (ascending UID).
    pub messages: Vec<MessageMeta>,
    /// The modseq up to which the store's changes have been merged into this view.
    pub known_modseq: ModSeq,
    /// UIDs expunged in the store but not yet announced (an EXPUNGE may not be
    /// sent during FETCH/STORE/SEARCH by sequence number).
    pub pending_expunge: Vec<Uid>,
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
    /// UIDs whose flags (or modseq) changed, to announce as FETCH.
    pub flag_changes: Vec<Uid>,
}

impl SelectedMailbox {
    pub fn seq_of(&self, uid: Uid) -> Option<u32> {
        self.messages
            .binary_search_by_key(&uid, |m| m.uid)
            .ok()
            .map(|i| i as u32 + 1)
    }

    pub fn max_uid(&self) -> Uid {
        self.messages.last().map(|m| m.uid).unwrap_or(0)
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
        for uid in ch.expunged {
            if self.seq_of(uid).is_some() && !self.pending_expunge.contains(&uid) {
                self.pending_expunge.push(uid);
            }
        }
        let max = self.max_uid();
        let mut added = false;
        for m in ch.changed {
            if m.uid > max {
                self.messages.push(m);
                added = true;
            } else if let Some(seq) = self.seq_of(m.uid) {
                let cur = &mut self.messages[seq as usize - 1];
                let show = cur.flags != m.flags || (announce_modseq && cur.modseq != m.modseq);
                *cur = m;
                if show {
                    out.flag_changes.push(cur.uid);
                }
            }
        }
        self.uidnext = self.uidnext.max(ch.uidnext);
        self.known_modseq = self.known_modseq.max(ch.highest_modseq);
        if allow_expunge {
            let (seqs, uids) = self.take_pending();
            out.expunged_seqs = seqs;
            out.expunged_uids = uids;
            let gone = &out.expunged_uids;
            out.flag_changes.retain(|u| !gone.contains(u));
        }
        // Counted after the expunges above: EXISTS is written after them.
        if added {
            out.exists = Some(self.messages.len() as u32);
        }
        out
    }

    /// Removes the pending expunged messages; returns their sequence numbers
    /// (each relative to the state after the previous removal) and UIDs.
    pub fn take_pending(&mut self) -> (Vec<u32>, Vec<Uid>) {
        let mut uids = std::mem::take(&mut self.pending_expunge);
        uids.sort_unstable();
        self.remove_uids(&uids)
    }

    /// Removes messages by UID; returns sequence numbers as `* n EXPUNGE` needs them.
    pub fn remove_uids(&mut self, uids: &[Uid]) -> (Vec<u32>, Vec<Uid>) {
        let mut seqs = Vec::new();
        let mut removed = Vec::new();
        // Highest first: each sequence number is then valid as sent.
        for &uid in uids.iter().rev() {
            if let Some(seq) = self.seq_of(uid) {
                self.messages.remove(seq as usize - 1);
                seqs.push(seq);
                removed.push(uid);
            }
        }
        removed.reverse();
        self.pending_expunge.retain(|u| !uids.contains(u));
        (seqs, removed)
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
            SequenceSet::Ranges(ranges) => {
                let mut out = Vec::new();
                for &(a, b) in ranges {
                    let a = match a {
                        SeqNum::Value(v) => v,
                        SeqNum::Star => n,
                    };
                    let b = match b {
                        SeqNum::Value(v) => v,
                        SeqNum::Star => n,
                    };
                    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
                    if n == 0 || hi > n || lo == 0 {
                        return Err("Invalid messageset".into());
                    }
                    out.extend((lo..=hi).map(|s| s as usize - 1));
                }
                out.sort_unstable();
                out.dedup();
                Ok(out)
            }
        }
    }

    /// Resolves a UID set to indexes of existing messages (non-existent UIDs are ignored).
    pub fn resolve_uids(&self, set: &SequenceSet, saved: Option<&[Uid]>) -> Vec<usize> {
        match set {
            SequenceSet::Saved => self.saved_indexes(saved),
            SequenceSet::Ranges(ranges) => {
                let max = self.max_uid();
                let mut out = Vec::new();
                for &(a, b) in ranges {
                    let a = match a {
                        SeqNum::Value(v) => v,
                        SeqNum::Star => max,
                    };
                    let b = match b {
                        SeqNum::Value(v) => v,
                        SeqNum::Star => max,
                    };
                    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
                    let start = self.messages.partition_point(|m| m.uid < lo);
                    let end = self.messages.partition_point(|m| m.uid <= hi);
                    out.extend(start..end);
                }
                out.sort_unstable();
                out.dedup();
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
            flags: flags.iter().map(|s| s.to_string()).collect(),
            internal_date: 0,
            date_offset_minutes: 0,
            size: 10,
            blob: BlobId(String::new()),
        }
    }

    fn view(uids: &[u32]) -> SelectedMailbox {
        SelectedMailbox {
            id: 1,
            read_only: false,
            uidnext: uids.last().copied().unwrap_or(0) + 1,
            messages: uids.iter().map(|u| meta(*u, &[], 1)).collect(),
            known_modseq: 1,
            pending_expunge: vec![],
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
    }
}
