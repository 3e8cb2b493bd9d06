//! The `pillarbox` binary: `serve` runs the IMAP server; `user` manages accounts.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use pillarbox_server::{auth, open_store_for, Config, Server};

mod log_writer;

/// Memory per idle session is dominated by the allocator, not by our data:
/// glibc's malloc keeps one arena per thread (and the blocking pool has many
/// threads), and after a large block such as argon2's 19 MiB working memory is
/// freed it raises its mmap threshold so the next ones stay resident. A fixed
/// 1 MiB mmap threshold keeps the resident set close to what is live
/// (measured: about 6.5 KiB per idle session, against 16 KiB with mimalloc
/// and megabytes with glibc's defaults). Eight arenas rather than glibc's 16
/// (on 2 cores): the same idle figure as with two, while two made the busy
/// threads queue on the arena locks (50-client mix: 5% more CPU per command).
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 8);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// Idle sessions free most of their memory when they hibernate (a while into
/// IDLE, `idle_hibernate_ms`), and all of it when they end, but glibc keeps
/// freed memory that is not at the top of the heap. When sessions have
/// hibernated or ended since the last look, this returns the free pages to
/// the system (`malloc_trim`), at most once a second.
fn spawn_memory_trimmer() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::sync::atomic::Ordering;
        let _ = std::thread::Builder::new()
            .name("memory-trim".into())
            .spawn(|| {
                let mut seen = 0;
                loop {
                    std::thread::sleep(std::time::Duration::from_secs(1));
                    let now = pillarbox_server::MEMORY_RELEASES.load(Ordering::Relaxed);
                    if now != seen {
                        seen = now;
                        // SAFETY: malloc_trim only releases free memory; it
                        // is thread-safe (takes each arena's lock).
                        unsafe { libc::malloc_trim(0) };
                    }
                }
            });
    }
}

#[derive(Parser)]
#[command(name = "pillarbox", version, about = "Pillarbox IMAP server")]
struct Cli {
    /// Data directory (database, message blobs, generated TLS certificate).
    /// Overrides `data_dir` from the config file. Default: ./data
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// TOML configuration file (see docs/config.md). Default: <data-dir>/pillarbox.toml if it exists.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the IMAP server.
    Serve(ServeArgs),
    /// Manage user accounts.
    #[command(subcommand)]
    User(UserCmd),
    /// Rebuild the full-text search index from the stored messages (run with the server stopped
    /// or running; searches stay correct meanwhile, only slower).
    Reindex,
}

#[derive(Args)]
struct ServeArgs {
    /// IMAP (STARTTLS) listen address, e.g. 127.0.0.1:1143; empty to disable. Default 0.0.0.0:143
    #[arg(long, value_name = "ADDR:PORT")]
    listen_imap: Option<String>,
    /// IMAPS (implicit TLS) listen address; empty to disable. Default 0.0.0.0:993
    #[arg(long, value_name = "ADDR:PORT")]
    listen_imaps: Option<String>,
    /// Prometheus/OpenMetrics endpoint (GET /metrics), e.g. 127.0.0.1:9143. Default: disabled
    #[arg(long, value_name = "ADDR:PORT")]
    listen_metrics: Option<String>,
}

#[derive(Subcommand)]
enum UserCmd {
    /// Create an account (with INBOX, Drafts, Sent, Trash, Junk, Archive).
    Add {
        name: String,
        /// Read the password from standard input (first line).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Change an account's password.
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Delete an account and all its mail.
    Delete { name: String },
    /// List accounts.
    List,
}

fn load_config(cli: &Cli) -> Result<Config> {
    let data_dir = cli.data_dir.clone();
    let path = match &cli.config {
        Some(p) => Some(p.clone()),
        None => {
            let p = data_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("./data"))
                .join("pillarbox.toml");
            p.exists().then_some(p)
        }
    };
    let mut config = match path {
        Some(p) => Config::from_file(&p).map_err(|e| anyhow!(e))?,
        None => Config::default(),
    };
    if let Some(d) = data_dir {
        config.data_dir = d;
    }
    Ok(config)
}

fn read_password(from_stdin: bool) -> Result<String> {
    if !from_stdin {
        bail!("pass --password-stdin and write the password to standard input");
    }
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .context("reading the password from stdin")?;
    let pw = s.lines().next().unwrap_or("").to_string();
    if pw.is_empty() {
        bail!("empty password on standard input");
    }
    Ok(pw)
}

fn user_command(config: &Config, cmd: UserCmd) -> Result<()> {
    let (store, blobs) = open_store_for(config).map_err(|e| anyhow!(e))?;
    match cmd {
        UserCmd::Add {
            name,
            password_stdin,
        } => {
            if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c.is_control()) {
                bail!("invalid user name {name:?}");
            }
            let hash =
                auth::hash_password(&read_password(password_stdin)?).map_err(|e| anyhow!(e))?;
            store
                .create_account(&name, &hash)
                .with_context(|| format!("cannot add user {name}"))?;
            println!("user {name} added");
        }
        UserCmd::Passwd {
            name,
            password_stdin,
        } => {
            let hash =
                auth::hash_password(&read_password(password_stdin)?).map_err(|e| anyhow!(e))?;
            store
                .set_password(&name, &hash)
                .with_context(|| format!("cannot change the password of {name}"))?;
            println!("password of {name} changed");
        }
        UserCmd::Delete { name } => {
            let freed = store
                .delete_account(&name)
                .with_context(|| format!("cannot delete user {name}"))?;
            // Under the gate, as the server deletes files: a server running
            // meanwhile may have committed identical content relying on them.
            let deleted = pillarbox_store::gate::free_files(&*store, &*blobs, &freed);
            if deleted < freed.len() {
                eprintln!(
                    "note: {} of {} message files were kept (referenced again, or not deletable)",
                    freed.len() - deleted,
                    freed.len()
                );
            }
            println!("user {name} deleted with all their mail");
        }
        UserCmd::List => {
            for name in store.list_accounts()? {
                println!("{name}");
            }
        }
    }
    Ok(())
}

fn reindex_command(config: &Config) -> Result<()> {
    let (store, blobs) = open_store_for(config).map_err(|e| anyhow!(e))?;
    let (docs, size) = pillarbox_server::reindex(&*store, &*blobs).map_err(|e| anyhow!(e))?;
    println!(
        "indexed {docs} message contents; full-text index {} bytes, header fields {} bytes",
        size.fulltext, size.fields
    );
    Ok(())
}

async fn serve(mut config: Config, args: ServeArgs) -> Result<()> {
    spawn_memory_trimmer();
    if let Some(a) = args.listen_imap {
        config.listen_imap = a;
    }
    if let Some(a) = args.listen_imaps {
        config.listen_imaps = a;
    }
    if let Some(a) = args.listen_metrics {
        config.listen_metrics = a;
    }
    let server = Server::start(config).await.map_err(|e| anyhow!(e))?;
    tracing::info!("Pillarbox started");
    wait_for_signal().await;
    tracing::info!("shutting down");
    server.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn main() {
    tune_allocator();
    // Log lines reach stderr from a thread of their own (see `log_writer`):
    // when whatever reads stderr stops reading (a full pipe), sessions
    // would otherwise stop at their next log line.
    let (log_writer, log_guard) = match log_writer::spawn(std::io::stderr()) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("pillarbox: error: cannot start the log writer: {e}");
            std::process::exit(1);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(log_writer)
        .init();
    let cli = Cli::parse();
    let result = load_config(&cli).and_then(|config| match cli.command {
        Cmd::User(cmd) => user_command(&config, cmd),
        Cmd::Reindex => reindex_command(&config),
        Cmd::Serve(args) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(
                config.session_threads(std::thread::available_parallelism().map_or(1, |n| n.get())),
            )
            .enable_all()
            // Store calls run on blocking threads; a bounded pool keeps memory
            // and SQLite connections bounded under connection storms.
            .max_blocking_threads(64)
            .build()
            .context("starting the runtime")
            .and_then(|rt| rt.block_on(serve(config, args))),
    });
    // What was logged is written out before the process ends.
    drop(log_guard);
    if let Err(e) = result {
        eprintln!("pillarbox: error: {e:#}");
        std::process::exit(1);
    }
}
