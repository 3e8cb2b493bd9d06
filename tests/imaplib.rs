//! Python's imaplib (a client we did not write) against a real server:
//! STARTTLS with certificate verification, implicit TLS, and the everyday
//! mail-client command flow.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;

#[tokio::test]
async fn python_imaplib_client() {
    let s = TestServer::start_with(|c| c.auth.trust_loopback = false).await;
    let cert = s.dir.path().join("tls/cert.pem");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/imaplib_client.py");
    let child = tokio::process::Command::new("python3")
        .arg(script)
        .arg("localhost")
        .arg(s.addr.port().to_string())
        .arg(s.tls_addr.port().to_string())
        .arg(&cert)
        .arg(USER)
        .arg(PASS)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 must be installed to run this test");
    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("imaplib script timed out")
        .expect("imaplib script ran");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "imaplib script failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
    s.stop().await;
}
