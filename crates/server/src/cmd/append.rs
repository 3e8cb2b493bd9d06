//! APPEND (MULTIAPPEND, LITERAL+, literal8). The OK is sent only after the
//! blobs are fsynced and the metadata transaction has committed and is
//! durable.

use pillarbox_mime::Summary;
use pillarbox_proto::respond;
use pillarbox_proto::types::{AppendMessage, LiteralData, MailboxName};
use pillarbox_store::{NewMessage, SearchDoc};

use super::message::flag_strings;
use super::{CmdError, CmdResult, Done};
use crate::session::Session;

impl Session {
    pub(crate) async fn cmd_append(
        &mut self,
        m: &MailboxName,
        messages: Vec<AppendMessage>,
    ) -> CmdResult {
        let spools: Vec<std::path::PathBuf> = messages
            .iter()
            .filter_map(|m| match &m.data {
                LiteralData::Spooled { path, .. } => Some(path.clone()),
                LiteralData::Memory(_) => None,
            })
            .collect();
        let r = self.append_inner(m, messages).await;
        for p in spools {
            let _ = std::fs::remove_file(p);
        }
        r
    }

    async fn append_inner(&mut self, m: &MailboxName, messages: Vec<AppendMessage>) -> CmdResult {
        let name = self.decode_name(m)?;
        let info = self.find_target(&name).await?;
        for msg in &messages {
            if msg.data.is_empty() {
                return Err(CmdError::no("Can't save a zero byte message"));
            }
            if !msg.binary {
                if let LiteralData::Memory(v) = &msg.data {
                    if crate::has_nul(v) {
                        return Err(CmdError::no(
                            "NUL bytes are only allowed in a literal8 (~{n}) APPEND",
                        ));
                    }
                }
            }
        }
        let shared = self.shared.clone();
        let id = info.id;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        // A blob file this APPEND finds already stored (same content) must not
        // be deleted before the commit that references it: the gate is held
        // from storing to committing, unless every message is certainly kept
        // in the database (a literal8 grows when its binary parts are
        // re-encoded as base64).
        let files = messages.iter().any(|m| {
            matches!(m.data, LiteralData::Spooled { .. })
                || shared.blobs.may_stage_file(if m.binary {
                    m.data.len().saturating_mul(2)
                } else {
                    m.data.len()
                })
        });
        // Appending to its own selected mailbox (IMAP4rev1, read-write), the
        // session is the first to learn of the new mail: it takes \Recent in
        // the APPEND's transaction, not in a write of its own afterwards.
        let recent_from = self
            .selected
            .as_ref()
            .filter(|s| s.id == id && !s.read_only && !self.rev2)
            .map(|s| s.max_uid() + 1);
        let to = Target {
            id,
            account: self.account.as_ref().map(|a| a.id),
            origin: self.id,
            recent_from,
        };
        let small = messages.iter().map(|m| m.data.len()).sum::<u64>() <= INLINE_APPEND_BYTES;
        let running = Running::start(&self.shared.appending);
        let (res, bytes, published) = if small && !files && running.alone {
            self.append_here(to, messages, now).await?
        } else {
            // One trip to the blocking pool: store the blobs, flush them,
            // then commit the metadata (grouped with concurrent APPENDs).
            tokio::task::spawn_blocking(move || {
                let _gate = files.then(|| shared.blobs.gate().shared());
                to.store(&shared, Prepared::new(&shared, messages, now)?)
            })
            .await
            .map_err(|_| CmdError::no_code("SERVERBUG", "Internal error"))??
        };
        drop(running);
        if recent_from.is_some() {
            self.view_took_recent(id, res.recent);
        }
        self.shared.metrics.appended_bytes.inc_by(bytes);
        self.shared
            .metrics
            .appended_messages
            .inc_by(res.uids.len() as u64);
        // Appended to the selected mailbox: the session's own view takes
        // the new messages from the delta (EXISTS) instead of the store.
        if let Some((Some(delta), version)) = published {
            if self.selected.as_ref().is_some_and(|s| s.id == id) {
                self.apply_own_delta(&delta, version);
            }
        }
        let mut code = format!("APPENDUID {} ", res.uidvalidity).into_bytes();
        let mut uids = res.uids.clone();
        uids.sort_unstable();
        respond::sequence_set(&mut code, &uids);
        Ok(Done::code(
            String::from_utf8_lossy(&code).into_owned(),
            "Append completed",
        ))
    }
}

/// An APPEND of at most this many bytes (all its messages), none of them
/// kept as a file, is prepared (parsing, search text, compression: roughly
/// 20 µs of CPU per KiB on the benchmark machine) and committed on the
/// session's own thread when the writer is free and no other APPEND is
/// being stored, as a small STORE or EXPUNGE is: the hand-off to the
/// blocking pool and back, and the pool's thread competing with the
/// sessions for the CPUs, cost more (10-client load mix: 5% less CPU per
/// command). Concurrent APPENDs go to the pool, where they are prepared in
/// parallel and committed together (10 clients appending: on the session's
/// thread they queued behind each other, p99 up to 28 ms instead of 22).
/// The fsync is always made on the pool.
const INLINE_APPEND_BYTES: u64 = 32 << 10;

/// Counts an APPEND as being stored while it lives; `alone` if no other was.
struct Running<'a> {
    count: &'a std::sync::atomic::AtomicUsize,
    alone: bool,
}

impl<'a> Running<'a> {
    fn start(count: &'a std::sync::atomic::AtomicUsize) -> Running<'a> {
        let before = count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Running {
            count,
            alone: before == 0,
        }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.count
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Where an APPEND goes, and what announcing it needs.
#[derive(Clone, Copy)]
struct Target {
    id: i64,
    account: Option<i64>,
    origin: u64,
    recent_from: Option<u32>,
}

/// The messages of an APPEND ready for the store.
struct Prepared {
    messages: Vec<NewMessage>,
    docs: Vec<SearchDoc>,
    described: Vec<Described>,
}

impl Prepared {
    fn new(
        shared: &crate::Shared,
        messages: Vec<AppendMessage>,
        now: i64,
    ) -> Result<Prepared, CmdError> {
        let (messages, docs) = prepare(&*shared.blobs, messages, now).map_err(|e| {
            tracing::error!("storing message failed: {e}");
            CmdError::no_code("UNAVAILABLE", "Can't store the message; try again later")
        })?;
        let described = describe(&messages);
        Ok(Prepared {
            messages,
            docs,
            described,
        })
    }
}

/// What an APPEND reports: the store's answer, the bytes stored, and the
/// delta published with its publish version (None without an account).
type Appended = (
    pillarbox_store::AppendResult,
    u64,
    Option<(Option<pillarbox_store::Delta>, u64)>,
);

impl Target {
    /// Commits (grouped with concurrent APPENDs, durable on return) and
    /// announces: the whole store part on a thread that may block.
    fn store(self, shared: &crate::Shared, ready: Prepared) -> Result<Appended, CmdError> {
        let res = shared
            .store
            .append_indexed_recent(self.id, &ready.messages, &ready.docs, self.recent_from)
            .map_err(CmdError::from_store)?;
        Ok(self.announce(shared, res, ready))
    }

    /// Publishes a durable APPEND's change with its content for the other
    /// sessions (and this one's view), right where it became durable: other
    /// sessions keep committing meanwhile, and a change published after
    /// later ones is a gap in their chain of published changes until it
    /// arrives (they read the store instead).
    fn announce(
        self,
        shared: &crate::Shared,
        res: pillarbox_store::AppendResult,
        ready: Prepared,
    ) -> Appended {
        // Before the new mail is announced: the other sessions need not
        // try to claim it as \Recent.
        if let (Some(_), Some(&last)) = (self.recent_from, res.uids.iter().max()) {
            shared.published.took_recent(self.id, last + 1);
        }
        let bytes: u64 = ready.described.iter().map(|m| m.1).sum();
        let delta = appended_delta(&res, ready.described);
        let published = self.account.map(|account| {
            let version = shared.publish(
                account,
                self.id,
                res.modseq,
                pillarbox_store::ChangeKind::Messages,
                delta.clone().map(std::sync::Arc::new),
                self.origin,
            );
            (delta, version)
        });
        (res, bytes, published)
    }
}

impl Session {
    /// A small APPEND (see [`INLINE_APPEND_BYTES`]): prepared here, and
    /// committed here if the writer is free, else on the blocking pool; made
    /// durable and announced on the pool.
    async fn append_here(
        &self,
        to: Target,
        messages: Vec<AppendMessage>,
        now: i64,
    ) -> Result<Appended, CmdError> {
        let shared = self.shared.clone();
        let ready = Prepared::new(&shared, messages, now)?;
        let committed = shared.store.try_append_indexed_recent(
            to.id,
            &ready.messages,
            &ready.docs,
            to.recent_from,
        );
        tokio::task::spawn_blocking(move || match committed {
            Some(r) => {
                let res = r
                    .and_then(|res| shared.store.make_durable().map(|()| res))
                    .map_err(CmdError::from_store)?;
                Ok(to.announce(&shared, res, ready))
            }
            None => to.store(&shared, ready),
        })
        .await
        .map_err(|_| CmdError::no_code("SERVERBUG", "Internal error"))?
    }
}

/// What a stored message will look like in the store, for the delta
/// published to idle sessions: blob, size, internal date, zone, flags.
type Described = (pillarbox_store::BlobId, u64, i64, i32, Vec<String>);

/// The change an APPEND committed, as the other sessions apply it; None if
/// the store's answer does not match the messages (then they read the store).
fn appended_delta(
    res: &pillarbox_store::AppendResult,
    described: Vec<Described>,
) -> Option<pillarbox_store::Delta> {
    if res.uids.is_empty() || res.uids.len() != described.len() {
        return None;
    }
    let changed = res
        .uids
        .iter()
        .zip(described)
        .map(
            |(&uid, (blob, size, internal_date, date_offset_minutes, flags))| {
                pillarbox_store::MessageMeta {
                    uid,
                    modseq: res.modseq,
                    flags: pillarbox_store::share_flags(&flags),
                    internal_date,
                    date_offset_minutes,
                    size,
                    blob,
                }
            },
        )
        .collect();
    Some(pillarbox_store::Delta {
        from_modseq: res.modseq.saturating_sub(1),
        changes: pillarbox_store::MailboxChanges {
            uidvalidity: res.uidvalidity,
            uidnext: res.uids.iter().max().map(|u| u + 1).unwrap_or(0),
            highest_modseq: res.modseq,
            changed,
            expunged: Vec::new(),
        },
    })
}

fn describe(prepared: &[NewMessage]) -> Vec<Described> {
    prepared
        .iter()
        .map(|m| {
            let flags = pillarbox_store::sqlite::normalize_flags(&m.flags).unwrap_or_default();
            (
                m.blob,
                m.size,
                m.internal_date,
                m.date_offset_minutes,
                flags,
            )
        })
        .collect()
}

/// Stores the messages' blobs (durably: one coalesced flush) and computes
/// their summaries and search documents, at ingest.
fn prepare(
    blobs: &dyn pillarbox_store::BlobStore,
    messages: Vec<AppendMessage>,
    now: i64,
) -> Result<(Vec<NewMessage>, Vec<SearchDoc>), String> {
    let mut out = Vec::new();
    let mut docs = Vec::new();
    let mut to_flush = false;
    for msg in messages {
        // A literal8 message is stored with its binary parts
        // re-encoded as base64 (see pillarbox_mime::convert_binary_append).
        // A small message goes into the metadata commit (`inline`), anything
        // else into the blob store, flushed below before that commit.
        let mut put = |data: &[u8]| {
            let (id, inline) = blobs.stage(data)?;
            to_flush |= inline.is_none();
            Ok::<_, pillarbox_store::StoreError>((id, inline))
        };
        let ((blob, inline), bytes) = match &msg.data {
            LiteralData::Memory(v) => {
                match pillarbox_mime::convert_binary_append(v).filter(|_| msg.binary) {
                    Some(c) => (put(&c).map_err(|e| e.to_string())?, Some(c)),
                    None => (put(v).map_err(|e| e.to_string())?, None),
                }
            }
            LiteralData::Spooled { path, .. } => {
                let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
                let converted = if msg.binary {
                    pillarbox_mime::convert_binary_append(&bytes)
                } else {
                    None
                };
                match converted {
                    Some(c) => (put(&c).map_err(|e| e.to_string())?, Some(c)),
                    None => {
                        to_flush = true;
                        let id = blobs.put_file_unsynced(path).map_err(|e| e.to_string())?;
                        ((id, None), Some(bytes))
                    }
                }
            }
        };
        let raw: &[u8] = match (&msg.data, &bytes) {
            (_, Some(b)) => b,
            (LiteralData::Memory(v), None) => v,
            _ => &[],
        };
        // Each message's search document is computed here, at ingest, and
        // stored in the same transaction as the message.
        let summary = Summary::parse(raw).to_bytes();
        docs.push(crate::search::make_doc(raw));
        let (date, offset) = match msg.date {
            Some(d) => (d.unix, d.offset_minutes),
            None => (now, 0),
        };
        out.push(NewMessage {
            blob,
            size: raw.len() as u64,
            internal_date: date,
            date_offset_minutes: offset,
            flags: flag_strings(&msg.flags),
            summary,
            inline,
        });
    }
    // One flush for the blob files of this and any concurrent APPENDs; the
    // metadata commit (itself grouped) follows, so nothing is acknowledged
    // before both are durable.
    if to_flush {
        blobs.sync_all().map_err(|e| e.to_string())?;
    }
    Ok((out, docs))
}

#[cfg(test)]
mod tests {
    use super::Running;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Only an APPEND that starts while no other is being stored runs on
    /// the session's thread; each one is uncounted when it ends, also when
    /// it fails (the guard drops).
    #[test]
    fn only_a_lone_append_is_alone() {
        let count = AtomicUsize::new(0);
        let first = Running::start(&count);
        assert!(first.alone);
        let second = Running::start(&count);
        assert!(!second.alone);
        drop(first);
        assert!(!Running::start(&count).alone, "the second is still running");
        drop(second);
        assert_eq!(count.load(Ordering::Relaxed), 0);
        assert!(Running::start(&count).alone);
    }
}
