//! IDLE (RFC 2177 / RFC 9051 6.3.13): push changes as soon as they are
//! committed (woken by the change bus, then re-reading the change log), and a
//! keepalive at a configurable interval so NATs keep the connection.

use std::time::Duration;

use crate::conn::Line;

/// Read buffer while idling: `DONE` and a little slack.
const IDLE_READ_CAPACITY: usize = 64;
use crate::session::Session;

impl Session {
    pub(crate) async fn cmd_idle(&mut self, tag: &str) -> bool {
        // With NOTIFY in effect, its receiver holds the events not handled
        // yet; without, changes from now on (the sync below reports the
        // earlier ones), subscribed to before that sync so none is missed.
        let mut rx = match self.changes.take() {
            Some(rx) if self.notify.is_some() => rx,
            _ => {
                // IDLE is only accepted once authenticated.
                let Ok(account) = self.account_id() else {
                    return false;
                };
                self.shared.bus.subscribe(account)
            }
        };
        self.out.extend_from_slice(b"+ idling\r\n");
        // RFC 5465 4: with NOTIFY, IDLE sends exactly the events asked for
        // (sent as they happened); what else changed is reported at DONE.
        let synced = if self.notify.is_none() {
            self.sync(true).await
        } else {
            Ok(())
        };
        if synced.is_err() || self.flush().await.is_err() {
            self.keep_notify_events(rx);
            return false;
        }
        let every = Duration::from_secs(self.shared.config.idle_keepalive_secs.max(1));
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        let mut shutdown = self.shared.shutdown.clone();
        let max = self.shared.config.limits.max_line_length;
        // An IDLE that lasts `idle_hibernate_ms` hibernates the session (see
        // the `view` module docs): a hibernated view is rebuilt from the
        // mailbox's snapshot at DONE; a full one costs memory of its own once
        // a change reaches it.
        let nap = tokio::time::sleep(Duration::from_millis(self.shared.config.idle_hibernate_ms));
        tokio::pin!(nap);
        // The buffers go at once: an idle session writes only pushes, and
        // reads only DONE.
        self.out = Vec::new();
        self.conn.set_read_capacity(IDLE_READ_CAPACITY);
        let mut asleep = false;
        // The tagged response that ends IDLE, once the client ended it.
        let ending = loop {
            tokio::select! {
                () = &mut nap, if !asleep => {
                    // Idle sessions keep only what pushing changes needs.
                    asleep = true;
                    self.hibernate_view();
                }
                line = self.conn.read_line(max) => match line {
                    Ok(Line::Text(l)) if l.eq_ignore_ascii_case(b"DONE") => {
                        break Some(("OK", "Idle completed"));
                    }
                    Ok(Line::Text(_)) | Ok(Line::TooLong { .. }) => {
                        break Some(("BAD", "Expected DONE to end IDLE"));
                    }
                    Ok(Line::Eof) => {
                        self.end_reason = Some("eof");
                        break None;
                    }
                    Err(_) => break None,
                },
                ev = rx.recv() => {
                    // A change to the selected mailbox would give a view that
                    // still shares the mailbox's snapshot a copy of its own
                    // (every idle session of that mailbox at once): it
                    // hibernates instead, which costs about as much and keeps
                    // a few bytes a message.
                    if let (false, Ok(e), Some(sel)) = (asleep, &ev, self.selected.as_ref()) {
                        if e.mailbox == sel.id && sel.shares_messages() {
                            asleep = true;
                            self.hibernate_view();
                        }
                    }
                    if self.notify_event(ev, true).await.is_err() || self.flush().await.is_err() {
                        break None;
                    }
                }
                _ = ticker.tick() => {
                    self.out.extend_from_slice(b"* OK Still here\r\n");
                    if self.flush().await.is_err() {
                        break None;
                    }
                }
                _ = shutdown.changed() => {
                    self.bye("Server shutting down").await;
                    self.end_reason = Some("shutdown");
                    break None;
                }
            }
        };
        self.keep_notify_events(rx);
        self.conn.set_read_capacity(crate::conn::READ_CAPACITY);
        let Some((status, text)) = ending else {
            return false;
        };
        // Still inside IDLE, so expunges may be announced too: bring the view
        // up to date (rebuilding it, if it hibernated, from one read of the
        // store), with what other processes committed meanwhile (they
        // publish nothing here): the store is read unless the view's last
        // read is recent and the store says none has committed since.
        let synced = match self.selected.as_ref() {
            Some(sel) if sel.hibernated.is_none() => self.sync_view(true, true).await,
            _ => self.rehydrate(true).await,
        };
        if synced.is_err() {
            return false;
        }
        self.tagged(tag, status, None, text);
        true
    }

    /// After IDLE: NOTIFY's receiver goes back to the session (its events
    /// are still wanted between commands); IDLE's own is dropped, as nothing
    /// reads it until the next IDLE, which subscribes anew.
    fn keep_notify_events(&mut self, rx: pillarbox_store::ChangeReceiver) {
        if self.notify.is_some() {
            self.changes = Some(rx);
        }
    }

    /// Hibernates the selected mailbox's view, if any (see the `view` module
    /// docs).
    pub(crate) fn hibernate_view(&mut self) {
        if let Some(sel) = self.selected.as_mut() {
            sel.hibernate(self.condstore);
        }
    }

    /// Restores the full view after IDLE (see `view` module docs) from one
    /// read of the store, first announcing what that read shows changed since
    /// the last push (expunges only when `allow_expunge`). Both come from the
    /// same read: a message expunged meanwhile (by another session, or by
    /// another process, which publishes nothing here) is announced, never
    /// left in the view without its data for a FETCH to fail on.
    pub(crate) async fn rehydrate(&mut self, allow_expunge: bool) -> Result<(), super::CmdError> {
        let Some(sel) = self.selected.as_ref() else {
            return Ok(());
        };
        if sel.hibernated.is_none() {
            return Ok(());
        }
        let (id, known) = (sel.id, sel.known_modseq);
        let small = sel.uidnext <= crate::view::SMALL_SNAPSHOT;
        // Not older than the view: a sync during IDLE may have read the
        // store, which had a commit its session has not published yet, and
        // every message a read lacks would look expunged.
        let read = self.read_mailbox(id, small, known).await?;
        let read = self.of_selected(read, |r| r.info.uidvalidity)?;
        let changes = match self.selected.as_ref() {
            Some(sel) if sel.id == id => sel.changes_in(&read.info, &read.messages),
            _ => return Ok(()),
        };
        self.apply_changes(changes, allow_expunge);
        if let Some(sel) = self.selected.as_mut() {
            sel.seen_version = read.version;
            sel.checked_at = Some(read.at);
            sel.foreign = read.foreign;
            sel.rehydrate(read.messages);
        }
        Ok(())
    }
}
