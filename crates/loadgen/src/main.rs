//! `pillarbox-loadgen`: drives any IMAP server on loopback with concurrent
//! clients and reports throughput, latency percentiles, the server's CPU
//! seconds per 1000 commands, push latency and memory per idle session.
//!
//! Every mode prints a human-readable report and one `RESULT key=value ...`
//! line that `benches/sync/run.sh` parses to compute ratios between servers.

mod bulk;
mod client;
mod modes;
mod msg;
mod procfs;
mod stats;

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

use crate::client::Target;

#[derive(Parser, Debug)]
#[command(
    name = "pillarbox-loadgen",
    about = "IMAP load generator (loopback only)"
)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Server host; must resolve to a loopback address.
    #[arg(long, global = true, default_value = "127.0.0.1")]
    host: String,
    /// Plaintext IMAP port (LOGIN is sent in clear: loopback only).
    #[arg(long, global = true, default_value_t = 143)]
    port: u16,
    /// Implicit-TLS IMAP port (used by `idle-mem --tls`).
    #[arg(long, global = true)]
    tls_port: Option<u16>,
    /// PEM CA to verify the server's certificate; default: accept any.
    #[arg(long, global = true)]
    ca_file: Option<String>,
    /// Accounts as `user:password,user:password`.
    #[arg(long, global = true)]
    users: Option<String>,
    /// File with one `user password` (or `user:password`) per line.
    #[arg(long, global = true)]
    user_file: Option<String>,
    /// Server process to measure (CPU, memory): the PID and its descendants.
    #[arg(long, global = true)]
    server_pid: Option<u32>,
    /// File holding the server PID (alternative to --server-pid).
    #[arg(long, global = true)]
    server_pidfile: Option<String>,
    /// Name printed in the RESULT line (e.g. pillarbox, dovecot).
    #[arg(long, global = true, default_value = "server")]
    label: String,
    /// Stop opening new sessions when the machine's MemAvailable drops below
    /// this (protects a shared machine from a server that uses too much
    /// memory per session).
    #[arg(long, global = true, default_value_t = 8192)]
    min_available_mib: u64,
    /// Seed for generated messages and the random command choice.
    #[arg(long, global = true, default_value_t = 1)]
    seed: u64,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// APPEND generated messages to every user's INBOX (test data).
    Populate(modes::PopulateArgs),
    /// N clients doing a realistic command mix.
    Mix(modes::MixArgs),
    /// K clients appending to one mailbox as fast as possible.
    Append(modes::AppendArgs),
    /// One writer, M IDLE connections: commit-to-push latency.
    Push(modes::PushArgs),
    /// Open N IDLE sessions and report server memory per session.
    IdleMem(modes::IdleMemArgs),
    /// Expunge half of a large mailbox that two other sessions have selected.
    Bulk(bulk::BulkArgs),
}

/// Everything a mode needs to reach and measure the server.
pub struct Env {
    pub plain: Target,
    pub tls_addr: Option<SocketAddr>,
    pub ca_file: Option<String>,
    pub users: Vec<(String, String)>,
    pub server_pid: Option<u32>,
    pub label: String,
    pub seed: u64,
}

/// Set once MemAvailable fell below the floor: no more sessions are opened.
pub static MEMORY_LOW: AtomicBool = AtomicBool::new(false);

/// Watch /proc/meminfo and trip [`MEMORY_LOW`].
async fn memory_guard(min_available_kib: u64) {
    loop {
        let avail = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| procfs::parse_kb(&s, "MemAvailable"));
        if let Some(a) = avail {
            if a < min_available_kib && !MEMORY_LOW.swap(true, Ordering::Relaxed) {
                eprintln!(
                    "memory guard: MemAvailable {} MiB < {} MiB, no more sessions will be opened",
                    a / 1024,
                    min_available_kib / 1024
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn loopback_addr(host: &str, port: u16) -> Result<SocketAddr> {
    let addr = (host, port)
        .to_socket_addrs()
        .with_context(|| format!("resolve {host}"))?
        .next()
        .with_context(|| format!("{host} has no address"))?;
    if !addr.ip().is_loopback() {
        bail!("{host} is not a loopback address: this tool sends passwords in clear and only runs on loopback");
    }
    Ok(addr)
}

/// `user:pw,user:pw` or lines of `user pw` / `user:pw`.
pub fn parse_users(text: &str) -> Vec<(String, String)> {
    text.split([',', '\n'])
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let (u, p) = l
                .split_once(':')
                .or_else(|| l.split_once(char::is_whitespace))?;
            Some((u.trim().to_string(), p.trim().to_string()))
        })
        .collect()
}

fn env(c: &Common) -> Result<Env> {
    let mut users = Vec::new();
    if let Some(u) = &c.users {
        users.extend(parse_users(u));
    }
    if let Some(f) = &c.user_file {
        users.extend(parse_users(
            &std::fs::read_to_string(f).with_context(|| format!("read {f}"))?,
        ));
    }
    if users.is_empty() {
        bail!("no accounts: give --users or --user-file");
    }
    let server_pid = match (&c.server_pid, &c.server_pidfile) {
        (Some(p), _) => Some(*p),
        (None, Some(f)) => Some(procfs::read_pidfile(f)?),
        (None, None) => None,
    };
    Ok(Env {
        plain: Target {
            addr: loopback_addr(&c.host, c.port)?,
            tls: None,
        },
        tls_addr: c.tls_port.map(|p| loopback_addr(&c.host, p)).transpose()?,
        ca_file: c.ca_file.clone(),
        users,
        server_pid,
        label: c.label.clone(),
        seed: c.seed,
    })
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let env = env(&cli.common)?;
    procfs::raise_nofile(65_536);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let min_avail = cli.common.min_available_mib * 1024;
    rt.block_on(async move {
        tokio::spawn(memory_guard(min_avail));
        match cli.mode {
            Mode::Populate(a) => modes::populate(&env, a).await,
            Mode::Mix(a) => modes::mix(&env, a).await,
            Mode::Append(a) => modes::append(&env, a).await,
            Mode::Push(a) => modes::push(&env, a).await,
            Mode::IdleMem(a) => modes::idle_mem(&env, a).await,
            Mode::Bulk(a) => bulk::bulk(&env, a).await,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_parse() {
        assert_eq!(
            parse_users("a:x, b:y:z\n# c d\nc d\n\n"),
            vec![
                ("a".into(), "x".into()),
                ("b".into(), "y:z".into()),
                ("c".into(), "d".into())
            ]
        );
    }

    #[test]
    fn only_loopback() {
        assert!(loopback_addr("127.0.0.1", 1).is_ok());
        assert!(loopback_addr("::1", 1).is_ok());
        assert!(loopback_addr("192.0.2.1", 1).is_err());
    }
}
