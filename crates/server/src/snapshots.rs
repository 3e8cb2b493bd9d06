//! The last full read of recently selected mailboxes, shared by the sessions
//! of this process: SELECT (and the end of a hibernated IDLE) reads only what
//! changed since that read (`changes_since`, by modseq) and merges it, instead
//! of decoding every message again. Other devices of the same user, or the
//! same session a little later, select the same mailboxes.
//!
//! Exact by construction: a read at highest modseq M holds every message as
//! of M; every later change (new message, flag change, expunge) has a modseq
//! above M and is in `changes_since(M)` (expunges as tombstones), whoever made
//! it, this process or another. A mailbox id that now names another mailbox
//! (deleted, then one created) has another UIDVALIDITY: such an entry, or one
//! ahead of the store, is not used.
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use pillarbox_store::{MailboxId, MailboxInfo, MessageMeta, MetaStore};

/// Messages kept over all entries (about 110 bytes each).
const MAX_MESSAGES: usize = 200_000;

struct Snapshot {
    info: MailboxInfo,
    messages: Vec<MessageMeta>,
}

#[derive(Default)]
pub(crate) struct Snapshots {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    map: HashMap<MailboxId, Arc<Snapshot>>,
    messages: usize,
}

impl Snapshots {
    fn get(&self, id: MailboxId) -> Option<Arc<Snapshot>> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.map.get(&id).cloned()
    }

    fn put(&self, snap: Snapshot) {
        let n = snap.messages.len();
        if n > MAX_MESSAGES / 4 {
            return;
        }
        let id = snap.info.id;
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(old) = inner.map.insert(id, Arc::new(snap)) {
            inner.messages -= old.messages.len();
        }
        inner.messages += n;
        // Over budget: drop other entries (in the map's arbitrary order).
        while inner.messages > MAX_MESSAGES {
            let Some(&victim) = inner.map.keys().find(|&&k| k != id) else {
                break;
            };
            if let Some(old) = inner.map.remove(&victim) {
                inner.messages -= old.messages.len();
            }
        }
    }

    /// The mailbox's state and messages (ascending UID) as the store has
    /// them now. The returned info's name and special-use are those of the
    /// read the entry came from (a rename keeps the id); its numbers are
    /// current.
    pub(crate) fn current(
        &self,
        store: &dyn MetaStore,
        id: MailboxId,
    ) -> pillarbox_store::Result<(MailboxInfo, Vec<MessageMeta>)> {
        if let Some(c) = self.get(id) {
            let ch = store.changes_since(id, c.info.highest_modseq)?;
            if ch.uidvalidity == c.info.uidvalidity && ch.highest_modseq >= c.info.highest_modseq {
                let info = MailboxInfo {
                    uidvalidity: ch.uidvalidity,
                    uidnext: ch.uidnext,
                    highest_modseq: ch.highest_modseq,
                    ..c.info.clone()
                };
                if ch.highest_modseq == c.info.highest_modseq {
                    return Ok((info, c.messages.clone()));
                }
                let messages = ch.apply_to(&c.messages);
                self.put(Snapshot {
                    info: info.clone(),
                    messages: messages.clone(),
                });
                return Ok((info, messages));
            }
        }
        let (info, messages) = store.snapshot(id)?;
        self.put(Snapshot {
            info: info.clone(),
            messages: messages.clone(),
        });
        Ok((info, messages))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::meta;
    use pillarbox_store::MailboxChanges;

    #[test]
    fn merge_applies_changes_and_expunges_in_uid_order() {
        let old = vec![
            meta(1, "a", 1),
            meta(3, "a", 1),
            meta(5, "a", 1),
            meta(7, "a", 1),
        ];
        let ch = MailboxChanges {
            uidvalidity: 1,
            uidnext: 10,
            highest_modseq: 4,
            // 2 never seen (appended and still there), 5 flagged, 9 new.
            changed: vec![meta(2, "b", 2), meta(5, "c", 3), meta(9, "d", 4)],
            // 3 and 7 expunged; 8 appended and expunged since.
            expunged: vec![3, 7, 8],
        };
        let got: Vec<(u32, String)> = ch
            .apply_to(&old)
            .iter()
            .map(|m| (m.uid, m.flags[0].clone()))
            .collect();
        let want: Vec<(u32, String)> = [(1, "a"), (2, "b"), (5, "c"), (9, "d")]
            .iter()
            .map(|(u, f)| (*u, f.to_string()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn budget_is_kept() {
        let s = Snapshots::default();
        let msgs: Vec<MessageMeta> = (1..=MAX_MESSAGES as u32 / 8)
            .map(|u| meta(u, "a", 1))
            .collect();
        for id in 0..20 {
            s.put(Snapshot {
                info: MailboxInfo {
                    id,
                    account: 1,
                    name: "INBOX".into(),
                    uidvalidity: 1,
                    uidnext: 1,
                    highest_modseq: 1,
                    special_use: None,
                },
                messages: msgs.clone(),
            });
        }
        let inner = s.inner.lock().unwrap();
        assert!(inner.messages <= MAX_MESSAGES);
        assert_eq!(
            inner.messages,
            inner.map.values().map(|s| s.messages.len()).sum::<usize>()
        );
        assert!(inner.map.contains_key(&19), "the newest entry is kept");
    }
}
