//! Operational metrics in the Prometheus/OpenMetrics text format, served on
//! `--listen-metrics ADDR:PORT` at `/metrics`. The four families operators
//! watch: synchronisation latency across devices (commit-to-push delay),
//! storage growth (bytes and messages ingested), session duration and
//! stability (active sessions, durations, how sessions end, auth failures) and
//! retrieval performance (per-command latency, bytes served by FETCH).

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CommandLabels {
    pub command: &'static str,
    pub status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CommandName {
    pub command: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CacheLookup {
    pub cache: &'static str,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Reason {
    pub reason: String,
}

fn latency_histogram() -> Histogram {
    // 100 µs .. ~100 s
    Histogram::new(exponential_buckets(0.0001, 2.5, 16))
}

pub(crate) struct Metrics {
    registry: Registry,
    pub push_delay: Histogram,
    pub sessions_active: Gauge,
    pub sessions: Counter,
    pub session_duration: Histogram,
    pub session_end: Family<Reason, Counter>,
    pub auth_failures: Counter,
    pub commands: Family<CommandLabels, Counter>,
    pub command_duration: Family<CommandName, Histogram, fn() -> Histogram>,
    pub fetch_bytes: Counter,
    pub appended_bytes: Counter,
    pub appended_messages: Counter,
    pub cache_lookups: Family<CacheLookup, Counter>,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("pillarbox");
        let push_delay = latency_histogram();
        registry.register(
            "push_delay_seconds",
            "Commit-to-push delay: from a change's commit to its untagged response written to an IDLE session",
            push_delay.clone(),
        );
        let sessions_active = Gauge::default();
        registry.register(
            "sessions_active",
            "Connections currently open",
            sessions_active.clone(),
        );
        let sessions = Counter::default();
        registry.register("sessions", "Connections accepted", sessions.clone());
        let session_duration = Histogram::new(exponential_buckets(0.1, 3.0, 14));
        registry.register(
            "session_duration_seconds",
            "How long connections stay open",
            session_duration.clone(),
        );
        let session_end = Family::<Reason, Counter>::default();
        registry.register(
            "session_end",
            "How connections ended (logout, eof, timeout, shutdown, auth_failures, mailbox_deleted, error)",
            session_end.clone(),
        );
        let auth_failures = Counter::default();
        registry.register(
            "auth_failures",
            "Failed authentication attempts",
            auth_failures.clone(),
        );
        let commands = Family::<CommandLabels, Counter>::default();
        registry.register(
            "commands",
            "IMAP commands by name and result",
            commands.clone(),
        );
        let command_duration =
            Family::<CommandName, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        registry.register(
            "command_duration_seconds",
            "Time from a complete command to its tagged response",
            command_duration.clone(),
        );
        let fetch_bytes = Counter::default();
        registry.register(
            "fetch_bytes",
            "Bytes of FETCH responses written",
            fetch_bytes.clone(),
        );
        let appended_bytes = Counter::default();
        registry.register(
            "appended_bytes",
            "Bytes of messages stored (storage growth)",
            appended_bytes.clone(),
        );
        let appended_messages = Counter::default();
        registry.register(
            "appended_messages",
            "Messages stored",
            appended_messages.clone(),
        );
        let cache_lookups = Family::<CacheLookup, Counter>::default();
        registry.register(
            "cache_lookups",
            "Lookups in the shared caches of what FETCH derives from stored messages (summary: ENVELOPE, BODYSTRUCTURE, headers; body: decompressed bodies), by result",
            cache_lookups.clone(),
        );
        Arc::new(Metrics {
            registry,
            push_delay,
            sessions_active,
            sessions,
            session_duration,
            session_end,
            auth_failures,
            commands,
            command_duration,
            fetch_bytes,
            appended_bytes,
            appended_messages,
            cache_lookups,
        })
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    pub fn session_ended(&self, reason: &str, duration: std::time::Duration) {
        self.sessions_active.dec();
        self.session_duration.observe(duration.as_secs_f64());
        self.session_end
            .get_or_create(&Reason {
                reason: reason.to_string(),
            })
            .inc();
    }
}

/// Serves `GET /metrics` until shutdown. A deliberately tiny HTTP/1.0
/// responder: one request per connection, bounded request size and time.
pub(crate) async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            r = listener.accept() => {
                let Ok((mut sock, _)) = r else { continue };
                let metrics = metrics.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 2048];
                    let mut n = 0;
                    let read = tokio::time::timeout(std::time::Duration::from_secs(5), async {
                        while n < buf.len() {
                            match sock.read(&mut buf[n..]).await {
                                Ok(0) | Err(_) => break,
                                Ok(k) => n += k,
                            }
                            if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") || buf[..n].windows(2).any(|w| w == b"\n\n") {
                                break;
                            }
                        }
                    })
                    .await;
                    if read.is_err() {
                        return;
                    }
                    let req = String::from_utf8_lossy(&buf[..n]);
                    let first = req.lines().next().unwrap_or("");
                    let resp = if first.starts_with("GET /metrics ") || first == "GET /metrics" {
                        let body = metrics.encode();
                        format!(
                            "HTTP/1.0 200 OK\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        )
                    } else {
                        "HTTP/1.0 404 Not Found\r\nContent-Length: 10\r\n\r\nnot found\n".to_string()
                    };
                    let _ = sock.write_all(resp.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
            _ = shutdown.changed() => break,
        }
    }
}
