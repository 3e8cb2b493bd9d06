//! An independent Rust IMAP client, `async-imap` (which parses with the
//! `imap-proto` crate), drives the server: login, list, select, append,
//! search, fetch, store, copy, UID MOVE, expunge, IDLE with an EXISTS pushed
//! by a second connection, logout. The assertions are on the values the crate
//! parsed, so a response it misreads fails here even if the command "worked".

mod common;

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;

use async_imap::extensions::idle::IdleResponse;
use async_imap::imap_proto::{MailboxDatum, Response, Status};
use async_imap::types::{Fetch, Flag, NameAttribute};
use async_imap::{Client, Session};
use common::*;
use futures_util::TryStreamExt;
use tokio::net::TcpStream;

/// Every network step is bounded in time.
async fn within<F: Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(TIMEOUT, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: timed out"))
}

async fn connect(addr: SocketAddr) -> Session<TcpStream> {
    let tcp = within("connect", TcpStream::connect(addr))
        .await
        .expect("connect");
    let mut client = Client::new(tcp);
    let greeting = within("greeting", client.read_response())
        .await
        .expect("read greeting")
        .expect("greeting before EOF");
    assert!(
        matches!(
            greeting.parsed(),
            Response::Data {
                status: Status::Ok,
                ..
            }
        ),
        "{:?}",
        greeting.parsed()
    );
    within("login", client.login(USER, PASS))
        .await
        .map_err(|(e, _)| e)
        .expect("login")
}

async fn fetch(s: &mut Session<TcpStream>, set: &str, items: &str) -> Vec<Fetch> {
    let stream = within("fetch", s.fetch(set, items)).await.expect("fetch");
    let mut v: Vec<Fetch> = within("fetch stream", stream.try_collect())
        .await
        .expect("fetch responses");
    v.sort_by_key(|f| f.message);
    v
}

fn flags(f: &Fetch) -> Vec<Flag<'_>> {
    f.flags().collect()
}

#[tokio::test]
async fn async_imap_client_round_trip() {
    let srv = TestServer::start().await;
    let mut s = connect(srv.addr).await;

    let caps = within("capabilities", s.capabilities())
        .await
        .expect("capabilities");
    for c in ["IMAP4rev1", "IDLE", "MOVE", "UIDPLUS"] {
        assert!(caps.has_str(c), "capability {c} missing");
    }

    // LIST: the default mailboxes with their special-use attributes.
    within("create", s.create("Work")).await.expect("create");
    let names: Vec<_> = within(
        "list",
        within("list", s.list(Some(""), Some("*")))
            .await
            .expect("list")
            .try_collect::<Vec<_>>(),
    )
    .await
    .expect("list responses");
    let by_name = |n: &str| names.iter().find(|x| x.name() == n);
    for n in [
        "INBOX", "Drafts", "Sent", "Trash", "Junk", "Archive", "Work",
    ] {
        let m = by_name(n).unwrap_or_else(|| panic!("{n} not listed"));
        assert_eq!(m.delimiter(), Some("/"), "{n}");
    }
    assert!(by_name("Sent")
        .unwrap()
        .attributes()
        .contains(&NameAttribute::Sent));
    assert!(by_name("Trash")
        .unwrap()
        .attributes()
        .contains(&NameAttribute::Trash));

    // APPEND two messages, one \Seen.
    let hello = message("hello", "first body");
    let second = message("second", "second body");
    within(
        "append 1",
        s.append("INBOX", Some("(\\Seen)"), None, &hello),
    )
    .await
    .expect("append 1");
    within("append 2", s.append("INBOX", None, None, &second))
        .await
        .expect("append 2");

    // SELECT: the parsed mailbox state.
    let mb = within("select", s.select("INBOX")).await.expect("select");
    assert_eq!(mb.exists, 2);
    // The first SELECT after new mail: both are \Recent here (RFC 3501).
    assert_eq!(mb.recent, 2);
    assert_eq!(mb.uid_next, Some(3));
    assert!(mb.uid_validity.is_some());
    assert!(mb.flags.contains(&Flag::Seen) && mb.flags.contains(&Flag::Deleted));
    assert!(mb.permanent_flags.contains(&Flag::MayCreate));

    // SEARCH / UID SEARCH.
    let hits = within("search", s.search("SUBJECT hello"))
        .await
        .expect("search");
    assert_eq!(hits, HashSet::from([1]));
    let hits = within("search", s.search("UNSEEN")).await.expect("search");
    assert_eq!(hits, HashSet::from([2]));
    let hits = within("search", s.search("NEW")).await.expect("search");
    assert_eq!(hits, HashSet::from([2]));
    let hits = within("search", s.search("OLD")).await.expect("search");
    assert!(hits.is_empty(), "{hits:?}");
    let hits = within("uid search", s.uid_search("ALL"))
        .await
        .expect("uid search");
    assert_eq!(hits, HashSet::from([1, 2]));

    // FETCH without setting \Seen: header, size, UID, envelope, flags.
    let f = fetch(
        &mut s,
        "2",
        "(BODY.PEEK[HEADER] FLAGS UID RFC822.SIZE ENVELOPE INTERNALDATE)",
    )
    .await;
    assert_eq!(f.len(), 1);
    let f = &f[0];
    assert_eq!(f.message, 2);
    assert_eq!(f.uid, Some(2));
    assert_eq!(f.size, Some(second.len() as u32));
    assert_eq!(flags(f), vec![Flag::Recent]);
    let header = f.header().expect("BODY[HEADER]");
    let split = second
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end")
        + 4;
    assert_eq!(header, &second[..split]);
    let env = f.envelope().expect("ENVELOPE");
    assert_eq!(env.subject.as_deref(), Some(&b"second"[..]));
    assert_eq!(
        env.message_id.as_deref(),
        Some(&b"<second@example.org>"[..])
    );
    let from = &env.from.as_ref().expect("from")[0];
    assert_eq!(from.name.as_deref(), Some(&b"Alice"[..]));
    assert_eq!(from.mailbox.as_deref(), Some(&b"alice"[..]));
    assert_eq!(from.host.as_deref(), Some(&b"example.org"[..]));
    assert!(f.internal_date().is_some());

    // FETCH RFC822 + FLAGS: the full message; message 1 was appended \Seen.
    let f = fetch(&mut s, "1:2", "(RFC822 FLAGS)").await;
    assert_eq!(f.len(), 2);
    assert_eq!(f[0].body(), Some(&hello[..]));
    assert_eq!(f[1].body(), Some(&second[..]));
    assert!(flags(&f[0]).contains(&Flag::Seen));

    // STORE: the FETCH FLAGS it returns.
    let stored: Vec<Fetch> = within(
        "store",
        within("store", s.store("1", "+FLAGS (\\Flagged $Work)"))
            .await
            .expect("store")
            .try_collect::<Vec<_>>(),
    )
    .await
    .expect("store responses");
    assert_eq!(stored.len(), 1);
    let fl = flags(&stored[0]);
    assert!(
        fl.contains(&Flag::Flagged) && fl.contains(&Flag::Seen),
        "{fl:?}"
    );
    assert!(fl.contains(&Flag::Custom("$Work".into())), "{fl:?}");

    // COPY, then UID MOVE; STATUS of the target counts both.
    within("copy", s.copy("1", "Work")).await.expect("copy");
    within("uid move", s.uid_mv("2", "Work"))
        .await
        .expect("uid move");
    let st = within("status", s.status("Work", "(MESSAGES UIDNEXT)"))
        .await
        .expect("status");
    assert_eq!(st.exists, 2);
    assert_eq!(st.uid_next, Some(3));

    // EXPUNGE: the sequence numbers it reports.
    within("store deleted", async {
        s.store("1", "+FLAGS.SILENT (\\Deleted)")
            .await
            .expect("store")
            .try_collect::<Vec<_>>()
            .await
            .expect("store responses")
    })
    .await;
    let expunged: Vec<u32> = within("expunge", async {
        s.expunge()
            .await
            .expect("expunge")
            .try_collect::<Vec<_>>()
            .await
            .expect("expunge responses")
    })
    .await;
    assert_eq!(expunged, vec![1]);
    let mb = within("select", s.select("INBOX")).await.expect("select");
    assert_eq!(mb.exists, 0);

    // The copies in Work kept their content and flags.
    let mb = within("examine", s.examine("Work")).await.expect("examine");
    assert_eq!(mb.exists, 2);
    let f = fetch(&mut s, "1:2", "(UID FLAGS BODY.PEEK[])").await;
    assert_eq!(f[0].body(), Some(&hello[..]));
    assert!(flags(&f[0]).contains(&Flag::Flagged));
    assert_eq!(f[1].body(), Some(&second[..]));
    assert_eq!((f[0].uid, f[1].uid), (Some(1), Some(2)));
    within("select", s.select("INBOX")).await.expect("select");

    // IDLE: a second connection appends; the EXISTS arrives while idling.
    let mut other = connect(srv.addr).await;
    let mut idle = s.idle();
    within("idle init", idle.init()).await.expect("IDLE");
    let pushed = message("pushed", "while idling");
    let (wait, _stop) = idle.wait_with_timeout(TIMEOUT);
    let (res, ()) = tokio::join!(wait, async {
        within(
            "append during idle",
            other.append("INBOX", None, None, &pushed),
        )
        .await
        .expect("append during idle");
    });
    match res.expect("idle wait") {
        IdleResponse::NewData(d) => assert!(
            matches!(d.parsed(), Response::MailboxData(MailboxDatum::Exists(1))),
            "{:?}",
            d.parsed()
        ),
        other => panic!("no EXISTS during IDLE: {other:?}"),
    }
    let mut s = within("idle done", idle.done()).await.expect("DONE");
    let f = fetch(&mut s, "1", "(UID ENVELOPE)").await;
    assert_eq!(f.len(), 1);
    assert_eq!(
        f[0].envelope().and_then(|e| e.subject.as_deref()),
        Some(&b"pushed"[..])
    );
    assert_eq!(f[0].uid, Some(3));

    within("logout", other.logout()).await.expect("logout");
    within("logout", s.logout()).await.expect("logout");
    srv.stop().await;
}
