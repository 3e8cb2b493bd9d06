//! Helpers for tests that run the `pillarbox` binary itself.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_pillarbox");

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `pillarbox --data-dir DATA serve` on 127.0.0.1:PORT (no IMAPS) and
/// waits (at most 20 s) until it accepts connections.
pub fn spawn_serve(data: &Path, port: u16, stderr: Stdio) -> Child {
    let child = Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .args([
            "serve",
            "--listen-imap",
            &format!("127.0.0.1:{port}"),
            "--listen-imaps",
            "",
        ])
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "server did not start"
        );
        std::thread::sleep(Duration::from_millis(30));
    }
    child
}
