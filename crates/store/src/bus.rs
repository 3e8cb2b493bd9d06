//! In-process change notifications. A hint only: receivers re-read
//! `changes_since`, so a lagged or lost event delays but never loses an update.
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

pub use tokio::sync::broadcast::error::RecvError;
use tokio::sync::Notify;

use crate::{AccountId, MailboxId, ModSeq};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeEvent {
    pub account: AccountId,
    pub mailbox: MailboxId,
    pub modseq: ModSeq,
    /// When the change was committed (for commit-to-push latency metrics).
    pub committed_at: std::time::Instant,
    /// Which session made the change (0 = not a session, e.g. delivery), so a
    /// session can skip notifications about its own commands (RFC 5465 5).
    pub origin: u64,
    pub kind: ChangeKind,
    /// The change itself when the publisher knows it exactly: what
    /// `changes_since(from_modseq)` would return if nothing else happened in
    /// between. A receiver whose view is at exactly `from_modseq` may apply it
    /// without reading the store; any other receiver reads the store.
    pub delta: Option<std::sync::Arc<Delta>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delta {
    pub from_modseq: ModSeq,
    pub changes: crate::MailboxChanges,
}

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeKind {
    /// Messages were added, changed or expunged: re-read `changes_since`.
    Messages,
    MailboxCreated {
        name: String,
    },
    MailboxDeleted {
        name: String,
    },
    MailboxRenamed {
        from: String,
        to: String,
    },
    Subscription {
        name: String,
        subscribed: bool,
    },
}

/// The change bus of a process: events are kept and delivered per account.
///
/// A session only follows its own account, so it only wakes for its own
/// account's changes (one broadcast channel for the whole server woke every
/// IDLE session for every change of every user, to drop all but a few: an
/// IDLE of the 10-client load mix was polled for about 75 foreign events).
/// An account's events are kept only while it has receivers, and only until
/// every receiver has taken them, at most the last `capacity` of them (a
/// receiver further behind is told it lagged, as with a broadcast channel).
#[derive(Clone)]
pub struct ChangeBus {
    inner: Arc<BusInner>,
}

struct BusInner {
    capacity: usize,
    accounts: Mutex<HashMap<AccountId, AccountQueue>>,
}

/// One account's events and receivers.
struct AccountQueue {
    /// Events not yet taken by every receiver, oldest first, each with the
    /// number of receivers yet to take it; the first is at position
    /// `next - events.len()`.
    events: VecDeque<(ChangeEvent, usize)>,
    /// Position of the next event published.
    next: u64,
    receivers: usize,
    /// Woken when an event is published.
    notify: Arc<Notify>,
}

impl AccountQueue {
    fn first(&self) -> u64 {
        self.next - self.events.len() as u64
    }

    /// A receiver at `pos` will not take the event there (it took it, or
    /// it went away); events every receiver is done with go.
    fn done_with(&mut self, pos: u64) {
        if let Some(slot) = pos
            .checked_sub(self.first())
            .and_then(|i| self.events.get_mut(i as usize))
        {
            slot.1 = slot.1.saturating_sub(1);
        }
        while self.events.front().is_some_and(|e| e.1 == 0) {
            self.events.pop_front();
        }
    }
}

impl ChangeBus {
    /// A bus that keeps at most `capacity` untaken events per account.
    pub fn new(capacity: usize) -> Self {
        ChangeBus {
            inner: Arc::new(BusInner {
                capacity: capacity.max(1),
                accounts: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Publishes after commit; never blocks, never fails (no receivers is fine).
    pub fn publish(&self, ev: ChangeEvent) {
        let mut accounts = self.inner.lock();
        let Some(q) = accounts.get_mut(&ev.account) else {
            return;
        };
        q.events.push_back((ev, q.receivers));
        q.next += 1;
        if q.events.len() > self.inner.capacity {
            q.events.pop_front();
        }
        q.notify.notify_waiters();
    }

    /// A receiver of `account`'s events published from now on.
    pub fn subscribe(&self, account: AccountId) -> ChangeReceiver {
        let mut accounts = self.inner.lock();
        let q = accounts.entry(account).or_insert_with(|| AccountQueue {
            events: VecDeque::new(),
            next: 0,
            receivers: 0,
            notify: Arc::new(Notify::new()),
        });
        q.receivers += 1;
        ChangeReceiver {
            bus: self.inner.clone(),
            account,
            pos: q.next,
            notify: q.notify.clone(),
        }
    }

    /// Accounts with receivers (for tests).
    #[cfg(test)]
    fn accounts(&self) -> usize {
        self.inner.lock().len()
    }
}

impl BusInner {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<AccountId, AccountQueue>> {
        self.accounts.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Receives one account's events ([`ChangeBus::subscribe`]).
pub struct ChangeReceiver {
    bus: Arc<BusInner>,
    account: AccountId,
    /// Position of the next event to take.
    pos: u64,
    notify: Arc<Notify>,
}

impl ChangeReceiver {
    /// The next event, waiting for one; `Lagged(n)` when `n` events were
    /// dropped before this receiver took them (it goes on after them).
    pub async fn recv(&mut self) -> Result<ChangeEvent, RecvError> {
        let notify = Arc::clone(&self.notify);
        loop {
            // Registered before looking, so a publish after the look wakes it.
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(r) = self.take() {
                return r;
            }
            notified.await;
        }
    }

    /// The next event if there is one.
    fn take(&mut self) -> Option<Result<ChangeEvent, RecvError>> {
        let mut accounts = self.bus.lock();
        let q = accounts.get_mut(&self.account)?;
        let first = q.first();
        if self.pos < first {
            let lost = first - self.pos;
            self.pos = first;
            return Some(Err(RecvError::Lagged(lost)));
        }
        let ev = q.events.get((self.pos - first) as usize)?.0.clone();
        q.done_with(self.pos);
        self.pos += 1;
        Some(Ok(ev))
    }
}

impl Drop for ChangeReceiver {
    fn drop(&mut self) {
        let mut accounts = self.bus.lock();
        let Some(q) = accounts.get_mut(&self.account) else {
            return;
        };
        q.receivers -= 1;
        if q.receivers == 0 {
            accounts.remove(&self.account);
            return;
        }
        for pos in self.pos.max(q.first())..q.next {
            q.done_with(pos);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn event(account: AccountId, modseq: ModSeq) -> ChangeEvent {
        ChangeEvent {
            account,
            mailbox: 1,
            modseq,
            committed_at: std::time::Instant::now(),
            origin: 0,
            kind: ChangeKind::Messages,
            delta: None,
        }
    }

    async fn next(rx: &mut ChangeReceiver) -> Result<ChangeEvent, RecvError> {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("an event")
    }

    #[tokio::test]
    async fn a_receiver_gets_its_accounts_events_in_order_and_only_those() {
        let bus = ChangeBus::new(16);
        let mut a = bus.subscribe(1);
        let mut b = bus.subscribe(2);
        bus.publish(event(1, 10));
        bus.publish(event(2, 20));
        bus.publish(event(1, 11));
        assert_eq!(next(&mut a).await.unwrap().modseq, 10);
        assert_eq!(next(&mut a).await.unwrap().modseq, 11);
        assert_eq!(next(&mut b).await.unwrap().modseq, 20);
        // Nothing else for either.
        assert!(tokio::time::timeout(Duration::from_millis(50), a.recv())
            .await
            .is_err());
        // Events published before subscribing are not delivered.
        let mut late = bus.subscribe(1);
        bus.publish(event(1, 12));
        assert_eq!(next(&mut late).await.unwrap().modseq, 12);
        assert_eq!(next(&mut a).await.unwrap().modseq, 12);
    }

    #[tokio::test]
    async fn a_waiting_receiver_wakes_only_for_its_account() {
        let bus = ChangeBus::new(16);
        let mut a = bus.subscribe(1);
        let waiter = tokio::spawn(async move {
            let ev = a.recv().await;
            (ev, a)
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        bus.publish(event(2, 5));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "woken by another account's event");
        bus.publish(event(1, 6));
        let (ev, _a) = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ev.unwrap().modseq, 6);
    }

    #[tokio::test]
    async fn a_receiver_too_far_behind_is_told_how_many_it_lost() {
        let bus = ChangeBus::new(4);
        let mut slow = bus.subscribe(7);
        for m in 1..=10 {
            bus.publish(event(7, m));
        }
        assert_eq!(next(&mut slow).await.unwrap_err(), RecvError::Lagged(6));
        for m in 7..=10 {
            assert_eq!(next(&mut slow).await.unwrap().modseq, m);
        }
    }

    #[test]
    fn events_go_once_taken_and_accounts_once_unwatched() {
        let bus = ChangeBus::new(64);
        let mut a = bus.subscribe(1);
        let mut b = bus.subscribe(1);
        bus.publish(event(1, 1));
        bus.publish(event(1, 2));
        // No receiver for account 3: nothing kept.
        bus.publish(event(3, 1));
        let held = |bus: &ChangeBus| bus.inner.lock().get(&1).map(|q| q.events.len());
        assert_eq!(held(&bus), Some(2));
        assert!(a.take().unwrap().is_ok());
        assert!(a.take().unwrap().is_ok());
        assert!(a.take().is_none());
        assert_eq!(held(&bus), Some(2), "b has taken neither");
        assert!(b.take().unwrap().is_ok());
        assert_eq!(held(&bus), Some(1));
        drop(b);
        assert_eq!(held(&bus), Some(0), "a has taken both");
        assert_eq!(bus.accounts(), 1);
        drop(a);
        assert_eq!(bus.accounts(), 0);
    }
}
