//! FETCH and UID FETCH. ENVELOPE, BODY and BODYSTRUCTURE come from the summary
//! stored at ingest; sections and BINARY are slices of (or decoded from) the
//! stored bytes. Non-PEEK body fetches set \Seen first (one store call), and
//! the new FLAGS go out with the data.

use std::borrow::Cow;
use std::sync::Arc;

use pillarbox_mime::{BinaryError, Summary};
use pillarbox_proto::respond;
use pillarbox_proto::types::{FetchAttr, FetchModifier, Section, SectionText, SequenceSet};
use pillarbox_store::{FlagOp, MessageMeta};

use crate::cmd::{CmdError, CmdResult, Done};
use crate::session::Session;
use crate::Shared;

fn needs_raw(a: &FetchAttr) -> bool {
    match a {
        // The header sections of the whole message (what clients fetch to
        // list a mailbox) come from the summary, without the message bytes.
        FetchAttr::BodySection { section, .. } => !Summary::head_answers(section),
        FetchAttr::Rfc822
        | FetchAttr::Rfc822Header
        | FetchAttr::Rfc822Text
        | FetchAttr::Binary { .. } => true,
        _ => false,
    }
}

fn needs_summary(a: &FetchAttr) -> bool {
    needs_raw(a)
        || matches!(a, FetchAttr::BodySection { .. })
        || matches!(
            a,
            FetchAttr::Envelope
                | FetchAttr::Body
                | FetchAttr::BodyStructure
                | FetchAttr::BinarySize { .. }
        )
}

fn sets_seen(a: &FetchAttr) -> bool {
    match a {
        FetchAttr::Rfc822 | FetchAttr::Rfc822Text => true,
        FetchAttr::BodySection { peek, .. } | FetchAttr::Binary { peek, .. } => !peek,
        _ => false,
    }
}

/// `1.2.HEADER.FIELDS (FROM TO)` as echoed in the response item name.
fn section_name(s: &Section) -> String {
    let mut out: String = s
        .part
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(".");
    let text = match &s.text {
        None => return out,
        Some(SectionText::Header) => "HEADER".to_string(),
        Some(SectionText::Text) => "TEXT".to_string(),
        Some(SectionText::Mime) => "MIME".to_string(),
        Some(SectionText::HeaderFields(f)) => format!("HEADER.FIELDS ({})", upper_list(f)),
        Some(SectionText::HeaderFieldsNot(f)) => format!("HEADER.FIELDS.NOT ({})", upper_list(f)),
    };
    if !out.is_empty() {
        out.push('.');
    }
    out.push_str(&text);
    out
}

/// The field names of HEADER.FIELDS(.NOT), upper-cased as Dovecot echoes
/// them, each an astring (RFC 9051 9, `header-fld-name`): quoted, or a
/// literal, when it is not an atom.
fn upper_list(f: &[String]) -> String {
    let mut out = Vec::new();
    for (i, name) in f.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        respond::astring(&mut out, name.to_ascii_uppercase().as_bytes());
    }
    // The names are UTF-8, and what quoting adds is ASCII.
    String::from_utf8_lossy(&out).into_owned()
}

fn part_name(p: &[u32]) -> String {
    p.iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(".")
}

fn apply_partial(data: &[u8], partial: Option<(u32, u32)>) -> &[u8] {
    match partial {
        None => data,
        Some((off, len)) => {
            let start = (off as usize).min(data.len());
            let end = start.saturating_add(len as usize).min(data.len());
            &data[start..end]
        }
    }
}

/// `BODY[name]<origin> ` / `BINARY[name]<origin> `: the item name as echoed
/// (only the origin of a partial, RFC 3501 7.4.2), then the space before the data.
fn item_name(line: &mut Vec<u8>, kind: &str, name: &str, partial: Option<(u32, u32)>) {
    line.extend_from_slice(kind.as_bytes());
    line.push(b'[');
    line.extend_from_slice(name.as_bytes());
    line.push(b']');
    if let Some((off, _)) = partial {
        line.push(b'<');
        respond::number(line, u64::from(off));
        line.push(b'>');
    }
    line.push(b' ');
}

/// Starts the next item of a FETCH response: a space unless it is the first.
fn sep(line: &mut Vec<u8>, first: &mut bool) {
    if !std::mem::replace(first, false) {
        line.push(b' ');
    }
}

/// After a streamed item started at `at` (the response's length and `first`
/// before it): unless it was `sent`, takes it back (its message's bytes
/// turned out to be gone) and notes that in `gone`.
fn keep_if_sent(
    line: &mut Vec<u8>,
    first: &mut bool,
    at: (usize, bool),
    sent: bool,
    gone: &mut bool,
) {
    if !sent {
        line.truncate(at.0);
        *first = at.1;
        *gone = true;
    }
}

/// A store error as I/O, keeping "not found" recognisable.
fn io_error(e: pillarbox_store::StoreError) -> std::io::Error {
    match e {
        pillarbox_store::StoreError::Io(e) => e,
        e => std::io::Error::other(e),
    }
}

/// BINARY data: a literal, or a literal8 when it holds NUL (RFC 3516 4.2).
fn binary_literal(out: &mut Vec<u8>, data: &[u8]) {
    if crate::has_nul(data) {
        respond::literal8(out, data);
    } else {
        respond::literal(out, data);
    }
}

/// What a NUL in a message is sent as in BODY[...] and RFC822 data, which
/// are `nstring` (RFC 9051 9): a literal cannot hold NUL, and literal8 is
/// for BINARY only. As Dovecot does; the length does not change.
const NUL_STANDIN: u8 = 0x80;

/// BODY[...] / RFC822 data: a literal, with any NUL sent as [`NUL_STANDIN`].
fn data_literal(out: &mut Vec<u8>, data: &[u8]) {
    respond::literal(out, data);
    if crate::has_nul(data) {
        let start = out.len() - data.len();
        replace_nul(&mut out[start..]);
    }
}

fn replace_nul(data: &mut [u8]) {
    for b in data.iter_mut().filter(|b| **b == 0) {
        *b = NUL_STANDIN;
    }
}

/// Messages loaded per trip to the blocking pool...
const LOAD_BATCH: usize = 32;
/// ...and at most this many message bytes per batch.
const LOAD_BATCH_BYTES: u64 = 8 << 20;
/// Messages larger than this are not loaded into memory for BODY[...] and
/// RFC822*: their sections are streamed from storage to the socket.
const STREAM_THRESHOLD: u64 = 4 << 20;
/// Chunk size when streaming.
const STREAM_CHUNK: usize = 256 << 10;

type BlobReader = Box<dyn std::io::Read + Send>;

/// Reads the next `n` bytes on the blocking pool (the reader goes there and back).
async fn read_chunk(mut reader: BlobReader, n: usize) -> std::io::Result<(BlobReader, Vec<u8>)> {
    tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; n];
        std::io::Read::read_exact(&mut reader, &mut buf)?;
        Ok((reader, buf))
    })
    .await
    .map_err(std::io::Error::other)?
}

/// A batch of at most this many messages, holding at most this many message
/// bytes, is loaded on the session's own thread (see `load_batch`).
const INLINE_LOAD_MESSAGES: usize = 32;
const INLINE_LOAD_BYTES: u64 = 256 << 10;

/// Reads what FETCH needs of `metas` (see `Session::load_batch`): the
/// summaries in one store transaction, the bytes from the blob store.
/// Bodies larger than this are not kept in the body cache: a few would
/// push out many of the usual size.
const BODY_CACHE_MAX: usize = 1 << 20;

fn load_messages(
    shared: &Shared,
    mailbox: i64,
    metas: Vec<MessageMeta>,
    raw: Option<Option<u64>>,
    summary: bool,
) -> Result<Vec<(u32, Loaded)>, String> {
    if raw.is_none() && !summary {
        return Ok(metas.iter().map(|m| (m.uid, Loaded::default())).collect());
    }
    // Expunged by another session before this one could know more than its
    // UID and flags (see `view::rehydrate`): nothing to load.
    let (store, blobs, cache) = (&*shared.store, &*shared.blobs, &shared.summaries);
    let present = |m: &MessageMeta| !m.blob.is_empty();
    let too_large = |m: &MessageMeta| matches!(raw, Some(Some(limit)) if m.size > limit);
    // Summaries from the cache, then the store for the others (None: not
    // wanted, Some(None): wanted, not cached).
    let cached: Vec<Option<Option<Arc<Summary>>>> = metas
        .iter()
        .map(|m| (present(m) && (summary || too_large(m))).then(|| cache.get(&m.blob)))
        .collect();
    let summary_uids: Vec<u32> = metas
        .iter()
        .zip(&cached)
        .filter(|(_, c)| matches!(c, Some(None)))
        .map(|(m, _)| m.uid)
        .collect();
    let mut summaries = if summary_uids.is_empty() {
        Vec::new()
    } else {
        store
            .summaries(mailbox, &summary_uids)
            .map_err(|e| format!("messages of mailbox {mailbox}: {e}"))?
    }
    .into_iter();
    let mut out = Vec::with_capacity(metas.len());
    for (meta, cached) in metas.into_iter().zip(cached) {
        let uid = meta.uid;
        if !present(&meta) {
            out.push((uid, Loaded::default()));
            continue;
        }
        // Taken in order whether or not this message turns out to be gone.
        let stored = match cached {
            Some(None) => summaries.next().flatten(),
            _ => None,
        };
        // Expunged by another session after this one learnt of the message,
        // and its bytes freed with the last reference: nothing to send.
        let gone = || Loaded {
            gone: true,
            ..Loaded::default()
        };
        let get = |what: &str| {
            if let Some(b) = shared.bodies.get(&meta.blob) {
                return Ok(Some(b));
            }
            match blobs.get(&meta.blob) {
                Ok(b) => {
                    let b: Arc<[u8]> = b.into();
                    if b.len() <= BODY_CACHE_MAX {
                        shared.bodies.insert(meta.blob, b.clone());
                    }
                    Ok(Some(b))
                }
                Err(e) if e.is_not_found() => Ok(None),
                Err(e) => Err(format!("{what} {uid}: {e}")),
            }
        };
        let streamed = too_large(&meta);
        let raw_bytes = if raw.is_some() && !streamed {
            match get("message")? {
                Some(b) => Some(b),
                None => {
                    out.push((uid, gone()));
                    continue;
                }
            }
        } else {
            None
        };
        let summary = match cached {
            None => None,
            Some(Some(s)) => Some(s),
            Some(None) => {
                let s = match stored.as_deref().and_then(Summary::from_bytes) {
                    Some(s) => s,
                    // A summary that cannot be read (written by an older version, or
                    // lost) is rebuilt from the message rather than failing the FETCH.
                    None => {
                        let raw = match &raw_bytes {
                            Some(r) => r.clone(),
                            None => match get("summary of message")? {
                                Some(b) => b,
                                None => {
                                    out.push((uid, gone()));
                                    continue;
                                }
                            },
                        };
                        Summary::parse(&raw)
                    }
                };
                let s = Arc::new(s);
                cache.insert(meta.blob, s.clone());
                Some(s)
            }
        };
        out.push((
            uid,
            Loaded {
                raw: raw_bytes,
                summary,
                streamed,
                gone: false,
            },
        ));
    }
    Ok(out)
}

#[derive(Default)]
struct Loaded {
    /// The message was too large to load: its sections are streamed.
    streamed: bool,
    /// Its stored bytes are gone (see `load_messages`).
    gone: bool,
    raw: Option<Arc<[u8]>>,
    summary: Option<Arc<Summary>>,
}

impl Session {
    pub(crate) async fn cmd_fetch(
        &mut self,
        uid: bool,
        set: &SequenceSet,
        attrs: &[FetchAttr],
        modifiers: &[FetchModifier],
    ) -> CmdResult {
        let mut attrs: Vec<FetchAttr> = attrs.to_vec();
        let mut changed_since = None;
        let mut vanished = false;
        for m in modifiers {
            match m {
                FetchModifier::ChangedSince(n) => changed_since = Some(*n),
                FetchModifier::Vanished if !self.qresync => {
                    return Err(CmdError::bad("VANISHED requires ENABLE QRESYNC"))
                }
                FetchModifier::Vanished if !uid => {
                    return Err(CmdError::bad("VANISHED is only allowed in UID FETCH"))
                }
                FetchModifier::Vanished => vanished = true,
            }
        }
        if let (true, Some(since)) = (vanished, changed_since) {
            self.write_vanished_earlier(set, since).await?;
        }
        if changed_since.is_some() || attrs.contains(&FetchAttr::ModSeq) {
            self.enable_condstore();
            if !attrs.contains(&FetchAttr::ModSeq) {
                attrs.push(FetchAttr::ModSeq);
            }
        }
        for a in &attrs {
            if matches!(a, FetchAttr::EmailId | FetchAttr::ThreadId) {
                return Err(CmdError::bad("FETCH item not supported"));
            }
        }
        let mut idxs = self.resolve(uid, set)?;
        let sel = self
            .selected
            .as_ref()
            .ok_or_else(|| CmdError::bad("No mailbox selected"))?;
        if let Some(cs) = changed_since {
            idxs.retain(|i| sel.messages[*i].modseq > cs);
        }
        let mailbox = sel.id;
        let read_only = sel.read_only;

        // Non-PEEK body fetches set \Seen before the data goes out.
        let mut flags_changed = std::collections::HashSet::new();
        if !read_only && attrs.iter().any(sets_seen) {
            let unseen: Vec<u32> = idxs
                .iter()
                .map(|i| &sel.messages[*i])
                .filter(|m| !m.flags.iter().any(|f| f == "\\Seen"))
                .map(|m| m.uid)
                .collect();
            if !unseen.is_empty() {
                let seen = vec!["\\Seen".to_string()];
                let res = self
                    .store_flags(mailbox, unseen, FlagOp::Add, seen, None)
                    .await?;
                if let Some(sel) = self.selected.as_mut() {
                    for (u, f, ms) in &res.updated {
                        if sel.set_flags(*u, f, *ms) {
                            flags_changed.insert(*u);
                        }
                    }
                }
                if !res.updated.is_empty() {
                    self.publish(mailbox, res.highest_modseq);
                }
            }
        }

        // RFC 8970: previews stored at ingest, read in one store call.
        let previews = match self
            .selected
            .as_ref()
            .filter(|_| attrs.iter().any(|a| matches!(a, FetchAttr::Preview { .. })))
        {
            Some(sel) => {
                let lazy = attrs
                    .iter()
                    .all(|a| !matches!(a, FetchAttr::Preview { lazy: false }));
                let uids = idxs
                    .iter()
                    .filter_map(|&i| sel.messages.get(i).map(|m| m.uid))
                    .collect();
                self.fetch_previews(mailbox, uids, lazy).await?
            }
            None => Default::default(),
        };
        let want_raw = attrs.iter().any(needs_raw);
        let want_summary = attrs.iter().any(needs_summary);
        // Large messages are streamed: sections as slices of storage, BINARY
        // of a leaf part through an incremental decoder.
        let raw_limit = Some(STREAM_THRESHOLD);
        let mut failure: Option<BinaryError> = None;
        let mut gone = false;
        // Bodies and summaries are loaded in batches: one trip to the
        // blocking pool per batch instead of one per message.
        let mut batch: std::collections::VecDeque<(u32, Loaded)> = Default::default();
        // Section names as echoed, computed once per command, not per message.
        let names: Vec<String> = attrs
            .iter()
            .map(|a| match a {
                FetchAttr::BodySection { section, .. } => section_name(section),
                FetchAttr::Binary { part, .. } | FetchAttr::BinarySize { part } => part_name(part),
                _ => String::new(),
            })
            .collect();
        for (n, &i) in idxs.iter().enumerate() {
            let Some(sel) = self.selected.as_ref() else {
                break;
            };
            let Some(meta) = sel.messages.get(i).cloned() else {
                continue;
            };
            // \Recent in this session (IMAP4rev1): shown with the flags.
            let recent = sel.is_recent(meta.uid);
            let seq = i as u32 + 1;
            gone |= (want_raw || want_summary) && meta.blob.is_empty();
            if batch.is_empty() && (want_raw || want_summary) {
                let mut bytes = 0u64;
                let metas: Vec<MessageMeta> = idxs[n..(n + LOAD_BATCH).min(idxs.len())]
                    .iter()
                    .filter_map(|&j| sel.messages.get(j).cloned())
                    .enumerate()
                    .take_while(|(k, m)| {
                        bytes += m.size;
                        *k == 0 || !want_raw || bytes <= LOAD_BATCH_BYTES
                    })
                    .map(|(_, m)| m)
                    .collect();
                batch = self
                    .load_batch(mailbox, metas, want_raw.then_some(raw_limit), want_summary)
                    .await?
                    .into();
            }
            let mut loaded = match batch.pop_front() {
                Some((u, l)) if u == meta.uid => l,
                _ => self
                    .load_batch(
                        mailbox,
                        vec![meta.clone()],
                        want_raw.then_some(raw_limit),
                        want_summary,
                    )
                    .await?
                    .pop()
                    .map(|x| x.1)
                    .unwrap_or_default(),
            };
            gone |= loaded.gone;
            // Written straight into the output buffer: a large section is
            // copied once, from the stored bytes to the socket buffer.
            let mut line = std::mem::take(&mut self.out);
            let line_start = line.len();
            crate::cmd::fetch_start(&mut line, seq);
            let mut first = true;
            if uid {
                sep(&mut line, &mut first);
                crate::cmd::uid_item(&mut line, meta.uid);
            }
            let mut flags_sent = false;
            for (a, name) in attrs.iter().zip(&names) {
                match a {
                    FetchAttr::Uid => {
                        if !uid {
                            sep(&mut line, &mut first);
                            crate::cmd::uid_item(&mut line, meta.uid);
                        }
                    }
                    FetchAttr::Flags => {
                        sep(&mut line, &mut first);
                        line.extend_from_slice(b"FLAGS ");
                        crate::cmd::flag_list(&mut line, &meta.flags, recent);
                        flags_sent = true;
                    }
                    FetchAttr::InternalDate => {
                        sep(&mut line, &mut first);
                        line.extend_from_slice(b"INTERNALDATE ");
                        respond::date_time(&mut line, meta.internal_date, meta.date_offset_minutes);
                    }
                    FetchAttr::Rfc822Size => {
                        sep(&mut line, &mut first);
                        line.extend_from_slice(b"RFC822.SIZE ");
                        respond::number(&mut line, meta.size);
                    }
                    FetchAttr::ModSeq => {
                        sep(&mut line, &mut first);
                        crate::cmd::modseq_item(&mut line, meta.modseq);
                    }
                    FetchAttr::Envelope | FetchAttr::Body | FetchAttr::BodyStructure => {
                        let Some(s) = &loaded.summary else { continue };
                        sep(&mut line, &mut first);
                        let (name, v) = match a {
                            FetchAttr::Envelope => ("ENVELOPE ", s.envelope()),
                            FetchAttr::Body => ("BODY ", s.body()),
                            _ => ("BODYSTRUCTURE ", s.bodystructure()),
                        };
                        line.extend_from_slice(name.as_bytes());
                        line.extend_from_slice(v);
                    }
                    FetchAttr::Rfc822 | FetchAttr::Rfc822Header | FetchAttr::Rfc822Text => {
                        let (name, text) = match a {
                            FetchAttr::Rfc822 => ("RFC822", None),
                            FetchAttr::Rfc822Header => ("RFC822.HEADER", Some(SectionText::Header)),
                            _ => ("RFC822.TEXT", Some(SectionText::Text)),
                        };
                        if let (None, Some(s)) = (&loaded.raw, &loaded.summary) {
                            if loaded.streamed {
                                let sec = Section { part: vec![], text };
                                let at = (line.len(), first);
                                sep(&mut line, &mut first);
                                line.extend_from_slice(name.as_bytes());
                                line.push(b' ');
                                let sent;
                                (line, sent) =
                                    self.stream_section(line, &meta, s, &sec, None).await?;
                                keep_if_sent(&mut line, &mut first, at, sent, &mut gone);
                            }
                            continue;
                        }
                        let (Some(raw), Some(s)) = (&loaded.raw, &loaded.summary) else {
                            continue;
                        };
                        let data: Cow<[u8]> = match text {
                            None => Cow::Borrowed(&raw[..]),
                            Some(t) => s.section(
                                raw,
                                &Section {
                                    part: vec![],
                                    text: Some(t),
                                },
                            ),
                        };
                        sep(&mut line, &mut first);
                        line.extend_from_slice(name.as_bytes());
                        line.push(b' ');
                        data_literal(&mut line, &data);
                    }
                    FetchAttr::BodySection {
                        section, partial, ..
                    } => {
                        let Some(s) = &loaded.summary else {
                            continue;
                        };
                        if loaded.raw.is_none()
                            && loaded.streamed
                            && !Summary::head_answers(section)
                        {
                            let at = (line.len(), first);
                            sep(&mut line, &mut first);
                            item_name(&mut line, "BODY", name, *partial);
                            let sent;
                            (line, sent) = self
                                .stream_section(line, &meta, s, section, *partial)
                                .await?;
                            keep_if_sent(&mut line, &mut first, at, sent, &mut gone);
                            continue;
                        }
                        let data = if Summary::head_answers(section) {
                            s.section_from_head(section)
                        } else {
                            let Some(raw) = &loaded.raw else {
                                continue;
                            };
                            if section.part.is_empty() && section.text.is_none() {
                                Cow::Borrowed(&raw[..])
                            } else {
                                s.section(raw, section)
                            }
                        };
                        sep(&mut line, &mut first);
                        item_name(&mut line, "BODY", name, *partial);
                        data_literal(&mut line, apply_partial(&data, *partial));
                    }
                    FetchAttr::Binary { part, partial, .. } => {
                        let Some(s) = &loaded.summary else {
                            continue;
                        };
                        if loaded.raw.is_none() && loaded.streamed {
                            if let Some(plan) = s.binary_stream(part) {
                                let at = (line.len(), first);
                                sep(&mut line, &mut first);
                                item_name(&mut line, "BINARY", name, *partial);
                                let sent;
                                (line, sent) =
                                    self.stream_binary(line, &meta, plan, *partial).await?;
                                keep_if_sent(&mut line, &mut first, at, sent, &mut gone);
                                continue;
                            }
                            // Composite or undecodable: decode in memory.
                            match self.read_blob(&meta).await {
                                Ok(bytes) => loaded.raw = Some(bytes.into()),
                                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                                    gone = true;
                                    continue;
                                }
                                Err(_) => {
                                    return Err(CmdError::no_code(
                                        "UNAVAILABLE",
                                        "Can't read the message; try again later",
                                    ))
                                }
                            }
                        }
                        let (Some(raw), Some(s)) = (&loaded.raw, &loaded.summary) else {
                            continue;
                        };
                        match s.binary(raw, part) {
                            Ok(data) => {
                                sep(&mut line, &mut first);
                                item_name(&mut line, "BINARY", name, *partial);
                                binary_literal(&mut line, apply_partial(&data, *partial));
                            }
                            Err(e) => failure = Some(e),
                        }
                    }
                    FetchAttr::BinarySize { part } => {
                        let Some(s) = &loaded.summary else {
                            continue;
                        };
                        match s.binary_size(part) {
                            Ok(n) => {
                                sep(&mut line, &mut first);
                                line.extend_from_slice(
                                    format!("BINARY.SIZE[{name}] {n}").as_bytes(),
                                );
                            }
                            Err(e) => failure = Some(e),
                        }
                    }
                    FetchAttr::Preview { .. } => {
                        sep(&mut line, &mut first);
                        line.extend_from_slice(b"PREVIEW ");
                        let p = previews.get(&meta.uid).and_then(|p| p.as_deref());
                        respond::nstring(&mut line, p.map(str::as_bytes));
                    }
                    FetchAttr::EmailId | FetchAttr::ThreadId => {}
                }
            }
            if flags_changed.contains(&meta.uid) {
                // Setting \Seen changed the message's flags and modseq: the
                // FETCH carries them as any flag change does, with the
                // modseq and the UID under CONDSTORE (RFC 7162 3.1.4, 3.2.4:
                // a QRESYNC server includes both once CONDSTORE is enabled).
                if !flags_sent {
                    sep(&mut line, &mut first);
                    line.extend_from_slice(b"FLAGS ");
                    crate::cmd::flag_list(&mut line, &meta.flags, recent);
                }
                if self.condstore && !attrs.contains(&FetchAttr::ModSeq) {
                    sep(&mut line, &mut first);
                    crate::cmd::modseq_item(&mut line, meta.modseq);
                }
                if self.condstore && !uid && !attrs.contains(&FetchAttr::Uid) {
                    sep(&mut line, &mut first);
                    crate::cmd::uid_item(&mut line, meta.uid);
                }
            }
            if first {
                // Nothing to say about it (a message gone meanwhile, asked
                // only for its contents): no response at all, as a FETCH
                // response holds at least one item (RFC 9051 7.5.2).
                line.truncate(line_start);
            } else {
                line.extend_from_slice(b")\r\n");
            }
            self.shared
                .metrics
                .fetch_bytes
                .inc_by(line.len().saturating_sub(line_start) as u64);
            self.out = line;
            if self.out.len() > 256 * 1024 {
                self.flush().await.map_err(|_| CmdError {
                    close: true,
                    ..CmdError::no("Connection lost")
                })?;
            }
        }
        match failure {
            Some(BinaryError::UnknownCte) => Err(CmdError::no_code(
                "UNKNOWN-CTE",
                "Unknown Content-Transfer-Encoding",
            )),
            Some(BinaryError::Parse) => {
                Err(CmdError::no_code("PARSE", "Invalid data in MIME part"))
            }
            // RFC 5530 EXPUNGEISSUED: data of a message expunged meanwhile
            // could not be returned.
            None if gone => Err(CmdError::no_code(
                "EXPUNGEISSUED",
                "Some of the requested messages no longer exist",
            )),
            None => Ok(Done::ok("Fetch completed")),
        }
    }

    /// Loads the stored bytes and/or summaries of several messages. `raw`:
    /// None = no bytes; Some(None) = always; Some(Some(n)) = only for messages
    /// of at most n bytes (larger ones are streamed). A small batch (summaries
    /// only, or little message data) is read on the current thread: a trip to
    /// the blocking pool costs more than those reads (two thread wake-ups);
    /// anything larger goes to the blocking pool.
    async fn load_batch(
        &self,
        mailbox: i64,
        metas: Vec<MessageMeta>,
        raw: Option<Option<u64>>,
        summary: bool,
    ) -> Result<Vec<(u32, Loaded)>, CmdError> {
        let raw_bytes: u64 = match raw {
            None => 0,
            Some(limit) => metas
                .iter()
                .filter(|m| limit.is_none_or(|l| m.size <= l))
                .map(|m| m.size)
                .sum(),
        };
        let inline = metas.len() <= INLINE_LOAD_MESSAGES && raw_bytes <= INLINE_LOAD_BYTES;
        let shared = self.shared.clone();
        let load = move || load_messages(&shared, mailbox, metas, raw, summary);
        let r = if inline {
            load()
        } else {
            tokio::task::spawn_blocking(load)
                .await
                .map_err(|_| CmdError::no_code("SERVERBUG", "Internal error"))?
        };
        r.map_err(|e| {
            tracing::error!("cannot load messages: {e}");
            CmdError::no_code("UNAVAILABLE", "Can't read the message; try again later")
        })
    }

    /// A message's stored bytes, read on the blocking pool.
    async fn read_blob(&self, meta: &MessageMeta) -> std::io::Result<Vec<u8>> {
        let blobs = self.shared.blobs.clone();
        let id = meta.blob;
        tokio::task::spawn_blocking(move || blobs.get(&id).map_err(io_error))
            .await
            .map_err(std::io::Error::other)?
    }

    /// Opens the message's stored bytes at `start`, then sends `line` ending
    /// in the header of a literal (or a literal8) of `total` bytes.
    /// None, with nothing sent, if the bytes are gone (the message was
    /// expunged meanwhile); an error after the header was sent ends the
    /// connection (the caller's `lost`).
    async fn start_stream(
        &mut self,
        line: &mut Vec<u8>,
        literal8: bool,
        total: u64,
        meta: &MessageMeta,
        start: usize,
    ) -> std::io::Result<Option<BlobReader>> {
        let reader = match self.open_at(meta, start).await {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                tracing::error!("streaming message {}: {e}", meta.uid);
                return Err(e);
            }
        };
        respond::literal_header(line, total, literal8);
        self.shared.metrics.fetch_bytes.inc_by(total);
        self.conn.write_all(line).await?;
        line.clear();
        Ok(Some(reader))
    }

    /// A reader over a message's stored bytes, positioned at `start`.
    async fn open_at(&self, meta: &MessageMeta, start: usize) -> std::io::Result<BlobReader> {
        let blobs = self.shared.blobs.clone();
        let id = meta.blob;
        tokio::task::spawn_blocking(move || -> std::io::Result<BlobReader> {
            let mut r = blobs.open(&id).map_err(io_error)?;
            std::io::copy(
                &mut std::io::Read::take(&mut r, start as u64),
                &mut std::io::sink(),
            )?;
            Ok(r)
        })
        .await
        .map_err(std::io::Error::other)?
    }

    /// Writes `line`, then `BINARY[part]` of a large message as a literal8
    /// (decoded data may hold NUL), decoding the part's stored body chunk by
    /// chunk. The length comes from the sizes recorded at ingest; if the
    /// decoder ever disagrees the connection is closed rather than sending a
    /// literal of the wrong length.
    async fn stream_binary(
        &mut self,
        mut line: Vec<u8>,
        meta: &MessageMeta,
        plan: (usize, usize, u64, pillarbox_mime::StreamDecoder),
        partial: Option<(u32, u32)>,
    ) -> Result<(Vec<u8>, bool), CmdError> {
        let lost = || CmdError {
            close: true,
            ..CmdError::no("Connection lost")
        };
        let (start, end, size, mut dec) = plan;
        let (skip, total) = match partial {
            None => (0, size),
            Some((off, len)) => {
                let s = u64::from(off).min(size);
                (s, u64::from(len).min(size - s))
            }
        };
        let Some(mut reader) = self
            .start_stream(&mut line, true, total, meta, start)
            .await
            .map_err(|_| lost())?
        else {
            return Ok((line, false));
        };
        let mut encoded_left = end.saturating_sub(start);
        let mut decoded_pos: u64 = 0;
        let mut written: u64 = 0;
        let mut out = Vec::with_capacity(STREAM_CHUNK);
        while encoded_left > 0 && written < total {
            let n = encoded_left.min(STREAM_CHUNK);
            let (r, buf) = read_chunk(reader, n).await.map_err(|e| {
                tracing::error!("streaming message {}: {e}", meta.uid);
                lost()
            })?;
            reader = r;
            encoded_left -= n;
            out.clear();
            dec.feed(&buf, &mut out);
            if encoded_left == 0 {
                dec.finish(&mut out);
            }
            // The window [skip, skip + total) of the decoded stream.
            let chunk_start = decoded_pos;
            decoded_pos += out.len() as u64;
            let from = skip.saturating_sub(chunk_start).min(out.len() as u64) as usize;
            let until = (skip + total)
                .saturating_sub(chunk_start)
                .min(out.len() as u64) as usize;
            if from < until {
                self.conn
                    .write_all(&out[from..until])
                    .await
                    .map_err(|_| lost())?;
                written += (until - from) as u64;
            }
        }
        if written != total {
            tracing::error!(
                "BINARY stream of message {} produced {written} bytes, expected {total}",
                meta.uid
            );
            return Err(lost());
        }
        Ok((line, true))
    }

    /// Writes `line` (the response so far), then the literal of `section` of
    /// a large message straight from storage in chunks, and returns the
    /// emptied buffer to continue the response in. Header sections come from
    /// the summary. Once the literal's length is sent the bytes must follow:
    /// a storage error then closes the connection.
    async fn stream_section(
        &mut self,
        mut line: Vec<u8>,
        meta: &MessageMeta,
        summary: &Summary,
        section: &Section,
        partial: Option<(u32, u32)>,
    ) -> Result<(Vec<u8>, bool), CmdError> {
        let lost = || CmdError {
            close: true,
            ..CmdError::no("Connection lost")
        };
        let Some((a, b)) = summary.section_range(section, meta.size as usize) else {
            // HEADER.FIELDS(.NOT) of an inner message: small, load the message.
            let raw = match self.read_blob(meta).await {
                Ok(raw) => raw,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((line, false)),
                Err(_) => return Err(lost()),
            };
            let data = summary.section(&raw, section);
            data_literal(&mut line, apply_partial(&data, partial));
            return Ok((line, true));
        };
        let (start, end) = match partial {
            None => (a, b),
            Some((off, len)) => {
                let s = a.saturating_add(off as usize).min(b);
                (s, s.saturating_add(len as usize).min(b))
            }
        };
        let total = end - start;
        let Some(mut reader) = self
            .start_stream(&mut line, false, total as u64, meta, start)
            .await
            .map_err(|_| lost())?
        else {
            return Ok((line, false));
        };
        let mut left = total;
        while left > 0 {
            let n = left.min(STREAM_CHUNK);
            let (r, mut buf) = read_chunk(reader, n).await.map_err(|e| {
                tracing::error!("streaming message {}: {e}", meta.uid);
                lost()
            })?;
            replace_nul(&mut buf);
            self.conn.write_all(&buf).await.map_err(|_| lost())?;
            reader = r;
            left -= n;
        }
        Ok((line, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn section_names_echo_like_dovecot() {
        let s = Section {
            part: vec![1, 2],
            text: Some(SectionText::Mime),
        };
        assert_eq!(section_name(&s), "1.2.MIME");
        let s = Section {
            part: vec![],
            text: Some(SectionText::HeaderFields(vec!["From".into(), "to".into()])),
        };
        assert_eq!(section_name(&s), "HEADER.FIELDS (FROM TO)");
        // Each name an astring (RFC 9051 9): quoted when not an atom.
        let s = Section {
            part: vec![2],
            text: Some(SectionText::HeaderFieldsNot(
                ["X Dup", "A\"B", "C(D", "nil", "x]y", "ok"]
                    .map(String::from)
                    .to_vec(),
            )),
        };
        assert_eq!(
            section_name(&s),
            r#"2.HEADER.FIELDS.NOT ("X DUP" "A\"B" "C(D" "NIL" "X]Y" OK)"#
        );
        let s = Section {
            part: vec![3],
            text: None,
        };
        assert_eq!(section_name(&s), "3");
    }

    #[test]
    fn partial_ranges() {
        assert_eq!(apply_partial(b"hello", Some((1, 3))), b"ell");
        assert_eq!(apply_partial(b"hello", Some((4, 10))), b"o");
        assert_eq!(apply_partial(b"hello", Some((10, 3))), b"");
        assert_eq!(apply_partial(b"hello", None), b"hello");
    }
}
