//! Pillarbox's IMAP server: listeners, TLS, sessions and command handlers.
//!
//! [`Server::start`] binds the configured listeners and returns a handle; the
//! binary and the integration tests both start the server this way.

pub mod auth;
mod blob_cache;
mod cmd;
pub mod config;
mod conn;
mod fetch;
mod foreign;
mod metrics;
mod names;
mod publish_log;
mod search;
mod session;
mod snapshots;
mod tls;
mod view;

#[cfg(test)]
pub(crate) mod test_util {
    use pillarbox_store::{BlobId, Flags, MessageMeta};

    /// What sessions share, over the store of `dir`, with the default
    /// configuration and no TLS.
    pub(crate) fn shared(dir: &std::path::Path) -> super::Shared {
        let stores = super::open_store(dir).expect("store");
        let (_, shutdown) = tokio::sync::watch::channel(false);
        super::Shared::new(super::Config::default(), stores, None, shutdown)
    }

    /// A message with one flag, for view and sync tests.
    pub(crate) fn meta(uid: u32, flag: &str, modseq: u64) -> MessageMeta {
        MessageMeta {
            uid,
            modseq,
            flags: Flags::new(vec![flag.to_string()]),
            internal_date: 0,
            date_offset_minutes: 0,
            size: u64::from(uid),
            blob: BlobId::of(&uid.to_le_bytes()),
        }
    }
}

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use pillarbox_store::{BlobStore, ChangeBus, FsBlobStore, MetaStore, SqliteStore, TieredBlobStore};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use config::Config;
pub use search::reindex;

/// Views hibernated and sessions ended so far (process-wide): each frees
/// memory in the middle of the heap. The binary watches it to hand that
/// memory back to the operating system (see `src/main.rs`).
pub static MEMORY_RELEASES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Counts a release of memory in [`MEMORY_RELEASES`].
pub(crate) fn memory_released() {
    MEMORY_RELEASES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// Whether `bytes` hold a NUL: APPEND looks for one in every message that
/// is not a literal8, FETCH in every literal it sends. `memchr` compares 32
/// bytes at a time; `<[u8]>::contains` one word (FETCH of 10 KB bodies:
/// 3.5% of the CPU per command with the latter).
pub(crate) fn has_nul(bytes: &[u8]) -> bool {
    memchr::memchr(0, bytes).is_some()
}

/// Everything sessions share.
pub(crate) struct Shared {
    pub config: Config,
    pub store: Arc<dyn MetaStore>,
    pub blobs: Arc<dyn BlobStore>,
    pub bus: ChangeBus,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub shutdown: watch::Receiver<bool>,
    pub conns: Mutex<ConnCounts>,
    pub metrics: Arc<metrics::Metrics>,
    pub verifier: auth::Verifier,
    /// Per mailbox, how many changes were published in this process, and
    /// the most recent ones (see `Session::sync`).
    pub published: publish_log::PublishLog,
    /// Decoded summaries of recently fetched messages.
    pub summaries: blob_cache::BlobCache<pillarbox_mime::Summary>,
    /// Bodies of recently fetched messages.
    pub bodies: blob_cache::BlobCache<[u8]>,
    /// The last full read of recently selected mailboxes.
    pub snapshots: snapshots::Snapshots,
    /// APPENDs being stored (see `cmd::append`).
    pub appending: std::sync::atomic::AtomicUsize,
}

impl Shared {
    fn new(
        config: Config,
        (store, blobs): Stores,
        tls: Option<tokio_rustls::TlsAcceptor>,
        shutdown: watch::Receiver<bool>,
    ) -> Shared {
        let mib = |n: u64| n.saturating_mul(1 << 20);
        let metrics = metrics::Metrics::new();
        let summaries =
            blob_cache::BlobCache::new(mib(config.summary_cache_mib), 2048, "summary", &metrics);
        let bodies = blob_cache::BlobCache::new(mib(config.body_cache_mib), 8192, "body", &metrics);
        Shared {
            config,
            store,
            blobs,
            bus: ChangeBus::new(1024),
            tls,
            shutdown,
            conns: Mutex::new(ConnCounts::default()),
            metrics,
            verifier: auth::Verifier::new(),
            published: Default::default(),
            summaries,
            bodies,
            snapshots: Default::default(),
            appending: Default::default(),
        }
    }

    /// Counts a committed change of `account`'s `mailbox` in the publish log
    /// and tells the sessions (a hint: they re-read the store unless `delta`
    /// lets them apply it). `origin`: the session that made it (0: none).
    /// Returns the mailbox's new publish version.
    pub(crate) fn publish(
        &self,
        account: pillarbox_store::AccountId,
        mailbox: pillarbox_store::MailboxId,
        modseq: pillarbox_store::ModSeq,
        kind: pillarbox_store::ChangeKind,
        delta: Option<Arc<pillarbox_store::Delta>>,
        origin: u64,
    ) -> u64 {
        let version = self
            .published
            .bump_to(mailbox, account, modseq, delta.clone());
        self.bus.publish(pillarbox_store::ChangeEvent {
            account,
            mailbox,
            modseq,
            committed_at: std::time::Instant::now(),
            origin,
            kind,
            delta,
        });
        version
    }
}

#[derive(Default)]
pub(crate) struct ConnCounts {
    pub total: usize,
    pub per_ip: HashMap<IpAddr, usize>,
    pub per_user: HashMap<String, usize>,
    /// Recent authentication failures per client address, and the time of
    /// the last one (see [`Shared::note_auth_failure`]).
    pub auth_failures: HashMap<IpAddr, (u32, std::time::Instant)>,
}

/// Failures from one address count together for this long after the last.
const AUTH_PENALTY_WINDOW: std::time::Duration = std::time::Duration::from_secs(15 * 60);
/// Addresses remembered at most (past it, those outside the window go; if
/// all are inside it, all go: the memory stays bounded).
const AUTH_PENALTY_ADDRESSES: usize = 65_536;

impl Shared {
    /// Counts an authentication failure from `ip` and returns how many
    /// there were from it, across all its connections, since failures began
    /// less than [`AUTH_PENALTY_WINDOW`] apart (as Dovecot's per-address
    /// penalty): the delay of a failure grows with that, so that many
    /// connections from one address do not each start over.
    pub(crate) fn note_auth_failure(&self, ip: IpAddr) -> u32 {
        let now = std::time::Instant::now();
        let mut c = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        let map = &mut c.auth_failures;
        if map.len() >= AUTH_PENALTY_ADDRESSES && !map.contains_key(&ip) {
            map.retain(|_, (_, at)| now.duration_since(*at) < AUTH_PENALTY_WINDOW);
            if map.len() >= AUTH_PENALTY_ADDRESSES {
                map.clear();
            }
        }
        let (n, at) = map.entry(ip).or_insert((0, now));
        if now.duration_since(*at) >= AUTH_PENALTY_WINDOW {
            *n = 0;
        }
        *n = n.saturating_add(1);
        *at = now;
        *n
    }
}

/// The metadata and blob stores of a data directory.
pub type Stores = (Arc<dyn MetaStore>, Arc<dyn BlobStore>);

/// Opens the store of a data directory with the defaults of what
/// [`Config`] sets (see [`open_store_for`]).
pub fn open_store(data_dir: &std::path::Path) -> Result<Stores, String> {
    open_store_with(data_dir, pillarbox_store::sqlite::DEFAULT_EXPUNGE_HISTORY)
}

/// Opens the store of `config`'s data directory, as `config` sets it up
/// (used by the server and the CLI).
pub fn open_store_for(config: &Config) -> Result<Stores, String> {
    open_store_with(&config.data_dir, config.expunge_history)
}

fn open_store_with(data_dir: &std::path::Path, expunge_history: u32) -> Result<Stores, String> {
    std::fs::create_dir_all(data_dir)
        .map_err(|e| format!("cannot create data directory {}: {e}", data_dir.display()))?;
    let store = SqliteStore::open(&data_dir.join("meta.sqlite3")).map_err(|e| {
        format!(
            "cannot open the metadata store in {}: {e}",
            data_dir.display()
        )
    })?;
    let files = FsBlobStore::open(data_dir.join("blobs"))
        .map_err(|e| format!("cannot open the blob store in {}: {e}", data_dir.display()))?;
    store.set_expunge_history(expunge_history);
    // Small messages live in the database, written with their rows.
    let store = Arc::new(store);
    let blobs = TieredBlobStore::new(store.clone(), files);
    Ok((store, Arc::new(blobs)))
}

/// A running server.
pub struct Server {
    pub imap_addr: Option<SocketAddr>,
    pub imaps_addr: Option<SocketAddr>,
    pub metrics_addr: Option<SocketAddr>,
    shutdown_tx: watch::Sender<bool>,
    tasks: JoinSet<()>,
    shared: Arc<Shared>,
}

impl Server {
    /// Binds the listeners and starts accepting. Errors name the flag to change.
    pub async fn start(config: Config) -> Result<Server, String> {
        let (store, blobs) = open_store_for(&config)?;
        // Texts a previous run queued for the search index but did not
        // write: those messages are indexed again in the background.
        match store.requeue_pending_texts() {
            Ok(0) => {}
            Ok(n) => tracing::info!(documents = n, "search texts left unwritten: indexing again"),
            Err(e) => return Err(format!("cannot open the search index: {e}")),
        }
        // Modseqs handed out by commits a crash may have lost are not
        // handed out again.
        if let Err(e) = store.skip_unsynced_modseqs() {
            return Err(format!("cannot open the store: {e}"));
        }
        let imap = Config::parse_addr("--listen-imap", &config.listen_imap)?;
        let imaps = Config::parse_addr("--listen-imaps", &config.listen_imaps)?;
        let metrics_at = Config::parse_addr("--listen-metrics", &config.listen_metrics)?;
        let tls = Some(tls::acceptor(&config)?);
        let imap_l = match imap {
            Some(a) => Some(bind(a, "--listen-imap").await?),
            None => None,
        };
        let imaps_l = match imaps {
            Some(a) => Some(bind(a, "--listen-imaps").await?),
            None => None,
        };
        let metrics_l = match metrics_at {
            Some(a) => Some(bind(a, "--listen-metrics").await?),
            None => None,
        };
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let shared = Arc::new(Shared::new(config, (store, blobs), tls, shutdown_rx));
        let mut tasks = JoinSet::new();
        let imap_addr = imap_l.as_ref().and_then(|l| l.local_addr().ok());
        let imaps_addr = imaps_l.as_ref().and_then(|l| l.local_addr().ok());
        let metrics_addr = metrics_l.as_ref().and_then(|l| l.local_addr().ok());
        if let Some(l) = metrics_l {
            tracing::info!(addr = ?metrics_addr, "metrics listening");
            tasks.spawn(metrics::serve(
                l,
                shared.metrics.clone(),
                shared.shutdown.clone(),
            ));
        }
        tasks.spawn(index_in_background(shared.clone()));
        tasks.spawn(foreign::watch(shared.clone()));
        if let Some(l) = imap_l {
            tracing::info!(addr = ?imap_addr, "IMAP (STARTTLS) listening");
            tasks.spawn(session::accept_loop(l, shared.clone(), false));
        }
        if let Some(l) = imaps_l {
            tracing::info!(addr = ?imaps_addr, "IMAPS (implicit TLS) listening");
            tasks.spawn(session::accept_loop(l, shared.clone(), true));
        }
        Ok(Server {
            imap_addr,
            imaps_addr,
            metrics_addr,
            shutdown_tx,
            tasks,
            shared,
        })
    }

    /// The metadata store this server's sessions use. A change made through
    /// it commits like theirs but is published to no session: they learn of
    /// it as of a change by another process, from the store.
    pub fn store(&self) -> Arc<dyn MetaStore> {
        self.shared.store.clone()
    }

    /// Graceful shutdown: stop accepting, send BYE to every session between
    /// commands (in-flight commands finish first), wait for them, close the store.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown_tx.send(true);
        while self.tasks.join_next().await.is_some() {}
        // Wait for sessions (they hold clones of `shared`).
        for _ in 0..200 {
            if Arc::strong_count(&self.shared) == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
    }
}

/// Indexes the messages that have no search document yet (a migration that
/// rebuilt the index leaves every message so), on a blocking thread, giving
/// up at shutdown.
async fn index_in_background(shared: Arc<Shared>) {
    let (store, blobs) = (shared.store.clone(), shared.blobs.clone());
    let stop = shared.shutdown.clone();
    let t0 = std::time::Instant::now();
    let r = tokio::task::spawn_blocking(move || {
        search::index_unindexed(&*store, &*blobs, &|| *stop.borrow())
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    match r {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            documents = n,
            seconds = t0.elapsed().as_secs_f64(),
            "indexed messages that had no search document"
        ),
        Err(e) => tracing::warn!("background indexing failed: {e}"),
    }
}

async fn bind(addr: SocketAddr, flag: &str) -> Result<TcpListener, String> {
    TcpListener::bind(addr).await.map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::AddrInUse => "the address is already in use".to_string(),
            std::io::ErrorKind::PermissionDenied => {
                "permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)".to_string()
            }
            _ => e.to_string(),
        };
        format!("cannot listen on {addr}: {why}; choose another address with {flag} ADDR:PORT")
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn has_nul_finds_one_anywhere() {
        assert!(!super::has_nul(b""));
        assert!(!super::has_nul(&[b'x'; 100]));
        assert!(super::has_nul(b"\0"));
        for at in [0, 1, 31, 32, 33, 63, 64, 99] {
            let mut v = vec![0xffu8; 100];
            v[at] = 0;
            assert!(super::has_nul(&v), "NUL at {at}");
        }
    }
}
