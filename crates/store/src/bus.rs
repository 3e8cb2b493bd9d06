//! In-process change notifications. A hint only: receivers re-read
//! `changes_since`, so a lagged or lost event delays but never loses an update.
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

/// Wraps a `tokio::sync::broadcast` channel.
#[derive(Clone)]
pub struct ChangeBus {
    tx: tokio::sync::broadcast::Sender<ChangeEvent>,
}

impl ChangeBus {
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = tokio::sync::broadcast::channel(capacity);
        ChangeBus { tx }
    }
    /// Publishes after commit; never blocks, never fails (no receivers is fine).
    pub fn publish(&self, ev: ChangeEvent) {
        let _ = self.tx.send(ev);
    }
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<ChangeEvent> {
        self.tx.subscribe()
    }
}
