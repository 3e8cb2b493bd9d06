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
//!
//! Within `RECHECK` of an entry's last store read, and when no other process
//! has committed since (`MetaStore::foreign_version`), the changes this
//! process published since (`publish_log.rs`) are merged instead of reading
//! the store, as a session's sync does.
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use pillarbox_store::{MailboxChanges, MailboxId, MailboxInfo, MessageMeta, MetaStore};

use crate::cmd::{merge_deltas, MailboxRead};
use crate::publish_log::PublishLog;

/// Messages kept over all entries (about 110 bytes each).
const MAX_MESSAGES: usize = 200_000;

struct Snapshot {
    info: MailboxInfo,
    messages: Arc<Vec<MessageMeta>>,
    /// The mailbox's publish version taken before the last store read, and
    /// when that read was made (see `MailboxRead`): changes published after
    /// that version are not in the entry.
    version: u64,
    read_at: Instant,
    /// `MetaStore::foreign_version` before that read.
    foreign: Option<u64>,
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
    /// them now, with the publish version and read time a session's view
    /// records of it. The returned info's name and special-use are those of
    /// the read the entry came from (a rename keeps the id); its numbers are
    /// current. An entry read from the store less than `trust` ago (the
    /// server passes `RECHECK`) may be brought up to date from what was
    /// published, if that reaches `at_least`: a caller whose view has taken
    /// in a commit not published yet (read from the store) passes its
    /// modseq, and an entry behind it means a store read.
    pub(crate) fn current(
        &self,
        store: &dyn MetaStore,
        published: &PublishLog,
        id: MailboxId,
        trust: Duration,
        at_least: pillarbox_store::ModSeq,
    ) -> pillarbox_store::Result<MailboxRead> {
        // Taken before any read: a change published after it is seen by the
        // session's next sync.
        let version = published.version(id);
        let foreign = store.foreign_version();
        let cached = self.get(id);
        let trusted = |c: &&Arc<Snapshot>| {
            c.read_at.elapsed() < trust && foreign.is_some() && c.foreign == foreign
        };
        if let Some(c) = cached.as_ref().filter(trusted) {
            if c.version == version {
                if c.info.highest_modseq >= at_least {
                    return Ok(c.read());
                }
            } else if let Some(deltas) =
                published.between(id, c.version, version, c.info.highest_modseq)
            {
                let ch = merge_deltas(c.info.highest_modseq, &deltas);
                if ch.highest_modseq >= at_least {
                    return Ok(self.keep(c.advanced(&ch, version, c.read_at, c.foreign)));
                }
            }
        }
        let read_at = Instant::now();
        if let Some(c) = cached {
            let ch = store.changes_since(id, c.info.highest_modseq)?;
            if ch.uidvalidity == c.info.uidvalidity && ch.highest_modseq >= c.info.highest_modseq {
                return Ok(self.keep(c.advanced(&ch, version, read_at, foreign)));
            }
        }
        let (info, messages) = store.snapshot(id)?;
        Ok(self.keep(Snapshot {
            info,
            messages: Arc::new(messages),
            version,
            read_at,
            foreign,
        }))
    }

    /// Keeps `snap` as its mailbox's entry and returns what it holds.
    fn keep(&self, snap: Snapshot) -> MailboxRead {
        let read = snap.read();
        self.put(snap);
        read
    }
}

impl Snapshot {
    /// What the entry holds, as a session's read of the mailbox.
    fn read(&self) -> MailboxRead {
        MailboxRead {
            info: self.info.clone(),
            messages: Arc::clone(&self.messages),
            version: self.version,
            at: self.read_at,
            foreign: self.foreign,
        }
    }

    /// This entry with changes `ch` merged (changes since its modseq, of the
    /// same UIDVALIDITY), as of publish version `version`, store read
    /// `read_at` and foreign version `foreign`. The name and special-use
    /// stay those of the read the entry came from.
    fn advanced(
        &self,
        ch: &MailboxChanges,
        version: u64,
        read_at: Instant,
        foreign: Option<u64>,
    ) -> Snapshot {
        Snapshot {
            info: MailboxInfo {
                uidnext: self.info.uidnext.max(ch.uidnext),
                highest_modseq: ch.highest_modseq,
                ..self.info.clone()
            },
            // Nothing to merge (published changes the entry had already):
            // still shared.
            messages: if ch.changed.is_empty() && ch.expunged.is_empty() {
                Arc::clone(&self.messages)
            } else {
                Arc::new(ch.apply_to(&self.messages))
            },
            version,
            read_at,
            foreign,
        }
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

    /// Within RECHECK of the entry's store read, what this process published
    /// since is merged without the store (shown with a published change the
    /// store does not have); after it, or when a published change has no
    /// content, the store is read.
    /// Longer than any test takes: the trusted time does not run out.
    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn published_changes_are_merged_within_recheck() {
        let dir = tempfile::tempdir().unwrap();
        let shared = crate::test_util::shared(dir.path());
        let store = &*shared.store;
        let account = store.create_account("alice", "h").unwrap();
        let inbox = store.mailbox(account.id, "INBOX").unwrap().expect("INBOX");
        let msg = |n: u8| pillarbox_store::NewMessage {
            blob: pillarbox_store::BlobId::of(&[n]),
            size: 1,
            internal_date: 0,
            date_offset_minutes: 0,
            flags: Vec::new(),
            summary: Vec::new(),
            inline: None,
        };
        store.append(inbox.id, &[msg(1), msg(2)]).unwrap();
        let (snaps, log) = (&shared.snapshots, &shared.published);
        let first = snaps.current(store, log, inbox.id, HOUR, 0).unwrap();
        assert_eq!(first.messages.len(), 2);
        let hms = first.info.highest_modseq;
        let flagged = |uid: u32| pillarbox_store::Delta {
            from_modseq: hms,
            changes: MailboxChanges {
                uidvalidity: 0,
                uidnext: first.info.uidnext,
                highest_modseq: hms + 1,
                changed: vec![crate::test_util::meta(uid, "\\Flagged", hms + 1)],
                expunged: vec![1],
            },
        };
        log.bump(inbox.id, Some(Arc::new(flagged(2))));
        let merged = snaps.current(store, log, inbox.id, HOUR, 0).unwrap();
        assert_eq!(merged.at, first.at, "no store read");
        assert_eq!(merged.version, 1);
        assert_eq!(merged.info.highest_modseq, hms + 1);
        assert_eq!(merged.info.uidvalidity, first.info.uidvalidity);
        let uids: Vec<u32> = merged.messages.iter().map(|m| m.uid).collect();
        assert_eq!(uids, [2]);
        assert_eq!(merged.messages[0].flags[0], "\\Flagged");
        // Nothing published since: the same, still without a read.
        let again = snaps.current(store, log, inbox.id, HOUR, 0).unwrap();
        assert_eq!((again.at, again.messages.len()), (first.at, 1));
        // Another process commits (anything): the store is read.
        let other = rusqlite::Connection::open(dir.path().join("meta.sqlite3")).unwrap();
        other
            .execute_batch("CREATE TABLE other_process (x); DROP TABLE other_process;")
            .unwrap();
        let foreign = snaps.current(store, log, inbox.id, HOUR, 0).unwrap();
        assert!(foreign.at > first.at);
        assert_eq!(foreign.messages.len(), 2, "the store's truth");
        let first = foreign;
        log.bump(inbox.id, Some(Arc::new(flagged(2))));
        let merged = snaps.current(store, log, inbox.id, HOUR, 0).unwrap();
        assert_eq!((merged.at, merged.messages.len()), (first.at, 1));
        // A change published without content: the store, which has both
        // messages, unflagged (the published change was made up).
        log.bump(inbox.id, None);
        let read = snaps.current(store, log, inbox.id, HOUR, 0).unwrap();
        assert!(read.at > first.at);
        assert_eq!(read.version, 3);
        // The entry's modseq is ahead of the store's: read whole.
        assert_eq!(read.messages.len(), 2);
        assert!(read.messages.iter().all(|m| m.flags.is_empty()));
        // A caller whose view is ahead of the entry: the store is read.
        let ahead = snaps
            .current(store, log, inbox.id, HOUR, read.info.highest_modseq + 1)
            .unwrap();
        assert!(ahead.at > read.at);
        let read = ahead;
        // Past the trusted time the store is read even with nothing
        // published.
        let late = snaps
            .current(store, log, inbox.id, Duration::ZERO, 0)
            .unwrap();
        assert!(late.at > read.at);
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
                    recent_from: 1,
                },
                messages: Arc::new(msgs.clone()),
                version: 0,
                read_at: Instant::now(),
                foreign: None,
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
