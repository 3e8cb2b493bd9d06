//! Changes by another process sharing the data directory (the command-line
//! tools, a second server on the same files) are published nowhere in this
//! one. A session between commands reads the store at least every
//! `RECHECK`, so it sees them at its next command; a session in IDLE, or
//! waiting under NOTIFY, waits for events and would only see them when it
//! next sends a command.
//!
//! This watcher turns them into events. Every [`POLL`] it asks the store
//! whether another process committed (`MetaStore::foreign_version`, one
//! pragma on a connection it only takes if free); only then does it read
//! every mailbox's modseq, and for each one ahead of both its last reading
//! and what this process published, it publishes a change without content:
//! its sessions read the store, as after any change they cannot apply.
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use pillarbox_store::{AccountId, ChangeKind, MailboxId, ModSeq};

use crate::Shared;

/// How often the store is asked whether another process committed.
pub(crate) const POLL: Duration = Duration::from_secs(1);
/// How soon it is asked again when this process was committing.
const RETRY: Duration = Duration::from_millis(10);

/// Runs until shutdown.
pub(crate) async fn watch(shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.clone();
    // What is there when the server starts.
    let mut seen = shared.store.foreign_version();
    let mut known: HashMap<MailboxId, (AccountId, ModSeq)> = modseqs(&shared)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|(a, id, m)| (id, (a, m)))
        .collect();
    let mut deleted = HashSet::new();
    loop {
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            _ = shutdown.changed() => return,
        }
        // The pragma runs on the writer connection, taken only if free: while
        // this process commits, ask again shortly (a poll skipped whenever
        // the writer was busy left other processes' changes unannounced for
        // seconds under load).
        let version = loop {
            if let Some(v) = shared.store.foreign_version() {
                break v;
            }
            tokio::select! {
                () = tokio::time::sleep(RETRY) => {}
                _ = shutdown.changed() => return,
            }
        };
        if seen == Some(version) {
            continue;
        }
        let Some(rows) = modseqs(&shared).await else {
            continue;
        };
        seen = Some(version);
        publish_changed(&shared, &mut known, &mut deleted, rows);
    }
}

async fn modseqs(shared: &Shared) -> Option<Vec<(AccountId, MailboxId, ModSeq)>> {
    let store = shared.store.clone();
    match tokio::task::spawn_blocking(move || store.mailbox_modseqs()).await {
        Ok(Ok(rows)) => Some(rows),
        Ok(Err(e)) => {
            tracing::warn!("reading the mailboxes' modseqs: {e}");
            None
        }
        Err(_) => None,
    }
}

/// Publishes a change for each mailbox of `rows` ahead of `known` and of
/// what this process published, and for each mailbox gone from `rows` that
/// `known` had or this process published for (its sessions find it
/// deleted, once: `deleted` remembers it); `known` becomes `rows`.
fn publish_changed(
    shared: &Shared,
    known: &mut HashMap<MailboxId, (AccountId, ModSeq)>,
    deleted: &mut HashSet<MailboxId>,
    rows: Vec<(AccountId, MailboxId, ModSeq)>,
) {
    let mut gone = std::mem::take(known);
    for (id, account) in shared.published.mailboxes() {
        gone.entry(id).or_insert((account, 0));
    }
    for (account, id, modseq) in rows {
        let before = gone.remove(&id).map_or(0, |(_, m)| m);
        known.insert(id, (account, modseq));
        if modseq > before.max(shared.published.modseq(id)) {
            publish(shared, account, id, modseq);
        }
    }
    for (id, (account, modseq)) in gone {
        // Once: a mailbox id is never used again.
        if deleted.insert(id) {
            publish(shared, account, id, modseq);
        }
    }
}

fn publish(shared: &Shared, account: AccountId, mailbox: MailboxId, modseq: ModSeq) {
    shared.publish(account, mailbox, modseq, ChangeKind::Messages, None, 0);
}
