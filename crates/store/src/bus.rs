//! In-process change notifications. A hint only: receivers re-read
//! `changes_since`, so a lagged or lost event delays but never loses an update.
use crate::{AccountId, MailboxId, ModSeq};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeEvent {
    pub account: AccountId,
    pub mailbox: MailboxId,
    pub modseq: ModSeq,
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
