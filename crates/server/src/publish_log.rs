//! What this process published per mailbox: a version counter (how many
//! changes, see `Session::sync`) and the contents of the most recent changes,
//! so that a session that looked at the store a moment ago can apply them
//! without reading the store again.
//!
//! The contents are only worth keeping for a short while: a session uses them
//! only within `RECHECK` of its last store read (`cmd/mod.rs`), and a delta
//! that is gone makes it read the store, which is always correct. So the
//! deltas of a mailbox without a change for [`MailboxLog::QUIET`] are
//! dropped (by a sweep at most every `QUIET`, done by whoever publishes).
//! Without that, every mailbox ever changed kept up to [`MailboxLog::KEEP`]
//! deltas (kilobytes each) for the life of the process. The counters stay:
//! a counter that restarted could come back to a version a session already
//! saw, and that session would then miss the changes in between.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pillarbox_store::{AccountId, Delta, MailboxId, ModSeq, Uid};

#[derive(Default)]
pub(crate) struct PublishLog {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    mailboxes: HashMap<MailboxId, MailboxLog>,
    last_sweep: Option<Instant>,
}

/// What this process published for one mailbox.
struct MailboxLog {
    version: u64,
    /// The deltas of the last [`MailboxLog::KEEP`] versions (up to
    /// `version`), None where published without content or too large.
    recent: VecDeque<Option<Arc<Delta>>>,
    /// When the last change was published.
    at: Instant,
    /// The highest modseq published (see [`PublishLog::modseq`]).
    modseq: ModSeq,
    /// The mailbox's account.
    account: AccountId,
    /// IMAP4rev1 \Recent: UIDs below this were given out (to a session of
    /// this process, or another one first), as far as this process knows.
    recent_taken: Uid,
}

impl MailboxLog {
    const KEEP: usize = 32;
    /// Deltas of a mailbox without a change for this long are dropped.
    const QUIET: Duration = Duration::from_secs(10);
    /// Larger deltas are not kept (they are read from the store).
    const MAX_CHANGES: usize = 64;
}

impl PublishLog {
    /// How many changes were published for `mailbox` (0: none).
    pub(crate) fn version(&self, mailbox: MailboxId) -> u64 {
        self.lock().mailboxes.get(&mailbox).map_or(0, |l| l.version)
    }

    /// The highest modseq this process published for `mailbox` (0: none):
    /// a store modseq above it is a change by another process, or one not
    /// published yet.
    pub(crate) fn modseq(&self, mailbox: MailboxId) -> ModSeq {
        self.lock().mailboxes.get(&mailbox).map_or(0, |l| l.modseq)
    }

    /// UIDs of `mailbox` below this are \Recent in some session already
    /// (0: not known), so a session that learns of them need not try to
    /// take them: one write per new message, not one per session notified.
    pub(crate) fn recent_taken(&self, mailbox: MailboxId) -> Uid {
        self.lock()
            .mailboxes
            .get(&mailbox)
            .map_or(0, |l| l.recent_taken)
    }

    /// A claim of \Recent in `mailbox` up to `to` was made (whoever got
    /// them). Only for a mailbox something was published for: new mail that
    /// was not is found by a claim in the store, and noted then.
    pub(crate) fn took_recent(&self, mailbox: MailboxId, to: Uid) {
        if let Some(l) = self.lock().mailboxes.get_mut(&mailbox) {
            l.recent_taken = l.recent_taken.max(to);
        }
    }

    /// Every mailbox something was published for, with its account.
    pub(crate) fn mailboxes(&self) -> Vec<(MailboxId, AccountId)> {
        let st = self.lock();
        st.mailboxes
            .iter()
            .map(|(&id, l)| (id, l.account))
            .collect()
    }

    /// Counts a published change (with its content, if known); returns the
    /// mailbox's new version.
    #[cfg(test)]
    pub(crate) fn bump(&self, mailbox: MailboxId, delta: Option<Arc<Delta>>) -> u64 {
        self.bump_to(mailbox, 0, 0, delta)
    }

    /// `bump` for a change that brought `account`'s `mailbox` to `modseq`.
    pub(crate) fn bump_to(
        &self,
        mailbox: MailboxId,
        account: AccountId,
        modseq: ModSeq,
        delta: Option<Arc<Delta>>,
    ) -> u64 {
        self.bump_at(mailbox, account, modseq, delta, Instant::now())
    }

    fn bump_at(
        &self,
        mailbox: MailboxId,
        account: AccountId,
        modseq: ModSeq,
        delta: Option<Arc<Delta>>,
        now: Instant,
    ) -> u64 {
        let mut st = self.lock();
        if st
            .last_sweep
            .is_none_or(|t| now.saturating_duration_since(t) >= MailboxLog::QUIET)
        {
            st.last_sweep = Some(now);
            for log in st.mailboxes.values_mut() {
                if now.saturating_duration_since(log.at) >= MailboxLog::QUIET {
                    log.recent = VecDeque::new();
                }
            }
        }
        let log = st.mailboxes.entry(mailbox).or_insert_with(|| MailboxLog {
            version: 0,
            recent: VecDeque::new(),
            at: now,
            modseq: 0,
            account,
            recent_taken: 0,
        });
        log.version += 1;
        log.at = now;
        log.modseq = log.modseq.max(modseq);
        let delta = delta.filter(|d| {
            d.changes.changed.len() + d.changes.expunged.len() <= MailboxLog::MAX_CHANGES
        });
        log.recent.push_back(delta);
        if log.recent.len() > MailboxLog::KEEP {
            log.recent.pop_front();
        }
        log.version
    }

    /// The contents of the changes published as versions `after + 1 ..=
    /// upto`, ordered so that each starts where the previous ends, starting
    /// at `from_modseq`; None if one is not known (not kept, or published
    /// without content) or they do not chain up. Those that end at or below
    /// `from_modseq` are left out: the caller has them already. (A commit
    /// made on another thread, such as an APPEND's, may be published after
    /// later ones: a session that read the store in between has it, and
    /// needs only the others.)
    pub(crate) fn between(
        &self,
        mailbox: MailboxId,
        after: u64,
        upto: u64,
        from_modseq: ModSeq,
    ) -> Option<Vec<Arc<Delta>>> {
        let st = self.lock();
        let log = st.mailboxes.get(&mailbox)?;
        // `recent` ends at `log.version`.
        let first = log.version + 1 - log.recent.len() as u64;
        if after < first.saturating_sub(1) || upto > log.version {
            return None;
        }
        let mut deltas: Vec<Arc<Delta>> = (after + 1..=upto)
            .map(|n| log.recent[(n - first) as usize].clone())
            .collect::<Option<_>>()?;
        drop(st);
        // Publication order is not commit order: chain them by modseq.
        deltas.retain(|d| d.changes.highest_modseq > from_modseq);
        deltas.sort_by_key(|d| d.from_modseq);
        let mut at = from_modseq;
        for d in &deltas {
            if d.from_modseq != at {
                return None;
            }
            at = d.changes.highest_modseq;
        }
        Some(deltas)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pillarbox_store::MailboxChanges;

    fn delta(from: ModSeq, to: ModSeq) -> Option<Arc<Delta>> {
        Some(Arc::new(Delta {
            from_modseq: from,
            changes: MailboxChanges {
                uidvalidity: 1,
                uidnext: 2,
                highest_modseq: to,
                changed: vec![crate::test_util::meta(1, "\\Seen", to)],
                expunged: Vec::new(),
            },
        }))
    }

    #[test]
    fn deltas_chain_by_modseq_and_gaps_fall_back_to_the_store() {
        let log = PublishLog::default();
        assert_eq!(log.version(7), 0);
        assert_eq!(log.bump(7, delta(11, 12)), 1);
        assert_eq!(log.bump(7, delta(10, 11)), 2);
        assert_eq!(log.bump(7, None), 3);
        let got = log.between(7, 0, 2, 10).expect("both known");
        assert_eq!(
            got.iter().map(|d| d.from_modseq).collect::<Vec<_>>(),
            [10, 11]
        );
        // Starting at the end of one: the other.
        let got = log.between(7, 0, 2, 11).expect("the later one");
        assert_eq!(got.iter().map(|d| d.from_modseq).collect::<Vec<_>>(), [11]);
        assert_eq!(log.between(7, 0, 2, 12).map(|d| d.len()), Some(0));
        // Starting elsewhere, or a change published without content: None.
        assert!(log.between(7, 0, 2, 9).is_none());
        assert!(log.between(7, 0, 3, 10).is_none());
        assert!(log.between(8, 0, 1, 10).is_none());
    }

    #[test]
    fn only_the_last_deltas_are_kept() {
        let log = PublishLog::default();
        for m in 0..(MailboxLog::KEEP as u64 + 5) {
            log.bump(1, delta(m, m + 1));
        }
        let v = log.version(1);
        assert!(log.between(1, 0, v, 0).is_none());
        let first_kept = v - MailboxLog::KEEP as u64;
        assert_eq!(
            log.between(1, first_kept, v, first_kept).map(|d| d.len()),
            Some(MailboxLog::KEEP)
        );
    }

    #[test]
    fn quiet_mailboxes_lose_their_deltas_but_keep_their_version() {
        let log = PublishLog::default();
        let t0 = Instant::now();
        log.bump_at(1, 0, 0, delta(1, 2), t0);
        log.bump_at(2, 0, 0, delta(1, 2), t0);
        let later = t0 + MailboxLog::QUIET / 2;
        log.bump_at(2, 0, 0, delta(2, 3), later);
        // Mailbox 1 has been quiet for QUIET when another publication sweeps.
        log.bump_at(3, 0, 0, delta(1, 2), t0 + MailboxLog::QUIET);
        assert!(log.between(1, 0, 1, 1).is_none());
        assert_eq!(log.version(1), 1);
        assert_eq!(log.between(2, 0, 2, 1).map(|d| d.len()), Some(2));
        // The next change of mailbox 1 counts on from where it was.
        assert_eq!(log.bump_at(1, 0, 0, delta(2, 3), t0 + MailboxLog::QUIET), 2);
        assert_eq!(log.between(1, 1, 2, 2).map(|d| d.len()), Some(1));
        // Before QUIET has passed since the last sweep, none runs.
        log.bump_at(3, 0, 0, None, t0 + MailboxLog::QUIET * 3 / 2);
        assert_eq!(log.between(2, 0, 2, 1).map(|d| d.len()), Some(2));
        // Once it has passed, mailbox 2 (quiet since QUIET / 2) is swept too.
        log.bump_at(3, 0, 0, None, t0 + MailboxLog::QUIET * 2);
        assert!(log.between(2, 0, 2, 1).is_none());
        assert_eq!(log.version(2), 2);
    }
}
