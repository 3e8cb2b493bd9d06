//! The `pillarbox` binary: `serve` runs the IMAP server; `user` manages accounts.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use pillarbox_server::{auth, open_store, Config, Server};

/// Memory per idle session is dominated by the allocator, not by our data:
/// a session that hibernates (see `idle_hibernate_ms`) frees its view of the
/// mailbox, and what matters is whether those pages go back to the system.
/// glibc's malloc keeps small allocations made meanwhile scattered over the
/// freed pages: with views freed a second after IDLE starts (so that short
/// IDLEs skip re-reading the mailbox), 10,000 idle sessions took 8.6 KiB each
/// instead of 6.6 with views freed at once. jemalloc groups allocations by
/// size and returns whole free pages on its own: 7.5 KiB each with the
/// delay (`benches/sync/run.sh`, idle-mem).
#[cfg(unix)]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options (`MALLOC_CONF` syntax; the `_RJEM_MALLOC_CONF`
/// environment variable overrides them): a background thread hands pages
/// that have been free for half a second back to the system, without
/// jemalloc's second ("muzzy") stage, so the memory of sessions that went
/// idle shows up as freed within about a second (the defaults keep it for
/// ten).
#[cfg(unix)]
#[export_name = "_rjem_malloc_conf"]
static MALLOC_CONF: MallocConf =
    MallocConf(c"background_thread:true,dirty_decay_ms:500,muzzy_decay_ms:0".as_ptr());

/// A C string pointer that jemalloc reads as its `const char *malloc_conf`.
#[cfg(unix)]
#[repr(transparent)]
struct MallocConf(*const std::ffi::c_char);

// SAFETY: it points to a string literal, which is immutable and 'static.
#[cfg(unix)]
unsafe impl Sync for MallocConf {}

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
    let (store, blobs) = open_store(&config.data_dir).map_err(|e| anyhow!(e))?;
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
    let (store, blobs) = open_store(&config.data_dir).map_err(|e| anyhow!(e))?;
    let (docs, size) = pillarbox_server::reindex(&*store, &*blobs).map_err(|e| anyhow!(e))?;
    println!(
        "indexed {docs} message contents; full-text index {} bytes, header fields {} bytes",
        size.fulltext, size.fields
    );
    Ok(())
}

async fn serve(mut config: Config, args: ServeArgs) -> Result<()> {
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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
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
    if let Err(e) = result {
        eprintln!("pillarbox: error: {e:#}");
        std::process::exit(1);
    }
}
