//! `bulk`: operations on a large mailbox whose cost must follow its size,
//! not its size times something else. First three requests: a sequence set
//! naming every message 800 times, a UID SEARCH of thousands of ranges, and
//! SEARCH $. Then the mailbox loses half of its messages at once, as when a
//! user deletes everything older than some date, while two other sessions
//! have it selected (one idle between commands, one in IDLE): how long the
//! EXPUNGE takes, how long until the first other session has been told (its
//! next NOOP), and until the one in IDLE has seen every expunge, and the
//! server CPU the expunge took. A server that handles each expunged message
//! in time proportional to the mailbox shows it here.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::client::{quote, untagged_number, Client, Status};
use crate::Env;

#[derive(Args, Debug)]
pub struct BulkArgs {
    /// Messages in the mailbox; the lower half (by UID) is expunged.
    #[arg(long, default_value_t = 20_000)]
    messages: u32,
    /// Messages per APPEND while filling the mailbox (MULTIAPPEND, RFC 3502).
    #[arg(long, default_value_t = 500)]
    batch: u32,
    /// Mailbox used in the first user's account (deleted and created anew).
    #[arg(long, default_value = "loadgen-bulk")]
    mailbox: String,
    /// Longest wait for the IDLE session to see every expunge.
    #[arg(long, default_value_t = 120)]
    timeout_secs: u64,
}

/// A small message, distinct per `i`.
fn message(i: u32) -> Vec<u8> {
    format!(
        "From: Bulk <bulk@example.org>\r\nTo: User <user@example.com>\r\n\
         Subject: bulk message {i}\r\nMessage-ID: <bulk{i}@example.org>\r\n\
         Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\nMessage number {i}.\r\n"
    )
    .into_bytes()
}

/// One MULTIAPPEND of messages `from..to`, with non-synchronizing literals
/// (LITERAL+, which both servers of the comparison offer).
fn multiappend(mailbox: &str, from: u32, to: u32) -> Vec<u8> {
    let mut cmd = format!("APPEND {}", quote(mailbox)).into_bytes();
    for i in from..to {
        let m = message(i);
        cmd.extend_from_slice(format!(" (\\Seen) {{{}+}}\r\n", m.len()).as_bytes());
        cmd.extend_from_slice(&m);
    }
    cmd.extend_from_slice(b"\r\n");
    cmd
}

pub async fn bulk(env: &Env, a: BulkArgs) -> Result<()> {
    if a.messages < 2 || a.batch == 0 {
        bail!("--messages must be at least 2 and --batch at least 1");
    }
    let user = env.users[0].clone();
    let mut w = Client::login(&env.plain, &user.0, &user.1, None).await?;
    let _ = w.command(&format!("DELETE {}", quote(&a.mailbox))).await?;
    let (st, _) = w.command(&format!("CREATE {}", quote(&a.mailbox))).await?;
    if st != Status::Ok {
        bail!("CREATE {} failed: {st:?}", a.mailbox);
    }
    let t_fill = Instant::now();
    let mut i = 0;
    while i < a.messages {
        let to = (i + a.batch).min(a.messages);
        let (st, _) = w.command_bytes(&multiappend(&a.mailbox, i, to)).await?;
        if st != Status::Ok {
            bail!("APPEND of messages {i}..{to} failed: {st:?}");
        }
        i = to;
    }
    let fill_s = t_fill.elapsed().as_secs_f64();
    let mut selected = Client::login(&env.plain, &user.0, &user.1, Some(&a.mailbox)).await?;
    let mut idler = Client::login(&env.plain, &user.0, &user.1, Some(&a.mailbox)).await?;
    let idle_tag = idler.idle_start().await?;
    let (st, _) = w.command(&format!("SELECT {}", quote(&a.mailbox))).await?;
    if st != Status::Ok || w.exists != a.messages {
        bail!(
            "SELECT {} after filling: {st:?}, {} messages instead of {}",
            a.mailbox,
            w.exists,
            a.messages
        );
    }
    let half = a.messages / 2;
    // The IDLE session counts the expunges it is told of.
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let watcher = tokio::spawn(async move {
        let mut seen = 0u32;
        while seen < half {
            let line = idler.read_line().await?;
            match untagged_number(&line) {
                Some((_, kw)) if kw == "EXPUNGE" => seen += 1,
                _ if line.starts_with(b"* VANISHED ") => bail!("VANISHED without QRESYNC"),
                _ => {}
            }
        }
        let _ = done_tx.send(Instant::now());
        let _ = idler.idle_done(&idle_tag).await;
        Ok::<_, anyhow::Error>(())
    });

    // Requests whose cost should follow the mailbox, not the mailbox times
    // the length of the request: a set naming every message many times, a
    // UID set of thousands of ranges, and SEARCH $ (RFC 5182).
    let repeated = vec!["1:*"; 800].join(",");
    let (st, repeat_d) = w.command(&format!("FETCH {repeated} (FLAGS)")).await?;
    if st != Status::Ok {
        bail!("FETCH of a repeated set: {st:?}");
    }
    let every_other: Vec<String> = (1..=a.messages.min(10_000))
        .step_by(2)
        .map(|u| u.to_string())
        .collect();
    let (st, ranges_d) = w
        .command(&format!("UID SEARCH UID {}", every_other.join(",")))
        .await?;
    if st != Status::Ok {
        bail!("UID SEARCH of {} ranges: {st:?}", every_other.len());
    }
    let (st, _) = w.command("SEARCH RETURN (SAVE) ALL").await?;
    if st != Status::Ok {
        bail!("SEARCH RETURN (SAVE): {st:?}");
    }
    let (st, saved_d) = w.command("UID SEARCH $").await?;
    if st != Status::Ok {
        bail!("SEARCH $: {st:?}");
    }

    let cpu0 = env.server_pid.map(crate::procfs::cpu_seconds);
    let t0 = Instant::now();
    let (st, store_d) = w
        .command(&format!("UID STORE 1:{half} +FLAGS.SILENT (\\Deleted)"))
        .await?;
    if st != Status::Ok {
        bail!("STORE failed: {st:?}");
    }
    let (st, expunge_d) = w.command("EXPUNGE").await?;
    if st != Status::Ok || w.exists != a.messages - half {
        bail!("EXPUNGE: {st:?}, {} messages left", w.exists);
    }
    let expunged_at = Instant::now();
    let before = selected.exists;
    let (st, noop_d) = selected.command("NOOP").await?;
    if st != Status::Ok || before - selected.exists != half {
        bail!(
            "the selected session was told of {} expunges, not {half}",
            before - selected.exists
        );
    }
    let timeout = Duration::from_secs(a.timeout_secs);
    let idle_done = tokio::time::timeout(timeout, done_rx)
        .await
        .context("the IDLE session did not see every expunge in time")?
        .context("the IDLE session failed")?;
    watcher.await??;
    let cpu_s = cpu0
        .zip(env.server_pid.map(crate::procfs::cpu_seconds))
        .map(|(a, b)| b - a);
    let idle_ms = idle_done
        .saturating_duration_since(expunged_at)
        .as_secs_f64()
        * 1000.0;
    let all_ms = t0.elapsed().as_secs_f64() * 1000.0;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "[{}] bulk: {} messages (filled in {fill_s:.1} s), {half} expunged\n  \
         FETCH 1:* x800 {:.1} ms, UID SEARCH of {} ranges {:.1} ms, SEARCH $ {:.1} ms\n  \
         STORE {:.1} ms, EXPUNGE {:.1} ms, other session's NOOP {:.1} ms, \
         IDLE session told {:.1} ms after, all {all_ms:.1} ms, server CPU {}",
        env.label,
        a.messages,
        ms(repeat_d),
        every_other.len(),
        ms(ranges_d),
        ms(saved_d),
        ms(store_d),
        ms(expunge_d),
        ms(noop_d),
        idle_ms,
        cpu_s.map_or("not measured".into(), |c| format!("{c:.3} s")),
    );
    println!(
        "RESULT label={} mode=bulk messages={} expunged={half} repeat_ms={:.2} ranges_ms={:.2} \
         saved_ms={:.2} store_ms={:.2} expunge_ms={:.2} noop_ms={:.2} idle_ms={idle_ms:.2} \
         all_ms={all_ms:.2}{}",
        env.label,
        a.messages,
        ms(repeat_d),
        ms(ranges_d),
        ms(saved_d),
        ms(store_d),
        ms(expunge_d),
        ms(noop_d),
        cpu_s.map_or(String::new(), |c| format!(" server_cpu_s={c:.3}")),
    );
    selected.logout().await;
    let _ = w.command(&format!("DELETE {}", quote(&a.mailbox))).await;
    w.logout().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiappend_uses_one_non_synchronizing_literal_per_message() {
        let cmd = String::from_utf8(multiappend("b", 3, 5)).unwrap();
        let (m3, m4) = (message(3), message(4));
        assert_eq!(
            cmd,
            format!(
                "APPEND \"b\" (\\Seen) {{{}+}}\r\n{} (\\Seen) {{{}+}}\r\n{}\r\n",
                m3.len(),
                String::from_utf8(m3).unwrap(),
                m4.len(),
                String::from_utf8(m4).unwrap()
            )
        );
    }
}
