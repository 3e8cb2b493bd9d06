//! Mailbox commands: CREATE, DELETE, RENAME, SUBSCRIBE, LIST (LIST-EXTENDED,
//! SPECIAL-USE, LIST-STATUS), LSUB, STATUS, SELECT/EXAMINE, mailbox name encodings.

mod common;

use common::*;

fn names(r: &Response) -> Vec<String> {
    r.lines_starting("* LIST")
        .iter()
        .map(|l| {
            l.trim_end()
                .rsplit_once(" \"/\" ")
                .map(|x| x.1.to_string())
                .unwrap_or_default()
        })
        .collect()
}

#[tokio::test]
async fn new_account_has_special_use_mailboxes() {
    let s = TestServer::start().await;
    let mut c = s.login().await;
    let r = c.ok("LIST \"\" \"*\"").await;
    let t = r.text();
    for (name, attr) in [
        ("Drafts", "\\Drafts"),
        ("Sent", "\\Sent"),
        ("Trash", "\\Trash"),
        ("Junk", "\\Junk"),
        ("Archive", "\\Archive"),
    ] {
        assert!(
            t.contains(&format!("{attr}) \"/\" {name}\r\n")),
            "{name}: {t}"
        );
    }
    assert!(t.contains("* LIST (\\HasNoChildren) \"/\" INBOX\r\n"));
    let r = c.ok("LIST (SPECIAL-USE) \"\" \"*\"").await;
    assert_eq!(names(&r).len(), 5);
    assert!(!names(&r).contains(&"INBOX".to_string()));
    let r = c.ok("LIST \"\" \"\"").await;
    assert!(r.has("* LIST (\\Noselect) \"/\" \"\""));
    s.stop().await;
}

#[tokio::test]
async fn create_with_parents_delete_rename() {
    let s = TestServer::start().await;
    let mut c = s.login().await;
    c.ok("CREATE a/b/c").await;
    let r = c.ok("LIST \"\" \"a*\"").await;
    assert_eq!(names(&r), vec!["a", "a/b", "a/b/c"]);
    assert!(r.has("(\\HasChildren) \"/\" a\r\n"));
    assert!(r.has("(\\HasNoChildren) \"/\" a/b/c\r\n"));
    let r = c.ok("LIST \"\" \"a/%\"").await;
    assert_eq!(names(&r), vec!["a/b"]);
    let r = c.ok("LIST \"a\" \"%\"").await;
    assert_eq!(names(&r), vec!["a/b"]);
    let r = c.no("CREATE a/b").await;
    assert!(r.tagged.contains("[ALREADYEXISTS]"));
    c.no("CREATE INBOX").await;
    c.ok("CREATE trailing/").await;
    // A mailbox with inferiors is not deleted: NO [HASCHILDREN] (RFC 9051
    // 6.3.5), not INUSE, which would have the client retry.
    let r = c.no("DELETE a").await;
    assert!(r.tagged.contains("[HASCHILDREN]"), "{}", r.tagged);
    let r = c.no("DELETE nosuch").await;
    assert!(r.tagged.contains("[NONEXISTENT]"));
    c.no("DELETE INBOX").await;
    c.ok("RENAME a x").await;
    let r = c.ok("LIST \"\" \"*\"").await;
    let n = names(&r);
    assert!(
        n.contains(&"x/b/c".to_string()) && !n.iter().any(|m| m.starts_with("a")),
        "{n:?}"
    );
    let r = c.no("RENAME nosuch y").await;
    assert!(r.tagged.contains("[NONEXISTENT]"));
    let r = c.no("RENAME x trailing").await;
    assert!(r.tagged.contains("[ALREADYEXISTS]"));
    c.no("RENAME x x/y").await;
    c.ok("DELETE x/b/c").await;
    c.ok("DELETE x/b").await;
    c.ok("DELETE x").await;
    c.bad("CREATE").await;
    c.no("CREATE \"bad*name\"").await;
    s.stop().await;
}

#[tokio::test]
async fn rename_inbox_moves_messages_and_keeps_inbox() {
    let s = TestServer::start().await;
    let mut c = s.login().await;
    c.append("INBOX", "", &message("one", "body")).await;
    c.append("INBOX", "", &message("two", "body")).await;
    c.ok("RENAME INBOX old-inbox").await;
    let r = c.ok("STATUS INBOX (MESSAGES)").await;
    assert!(r.has("(MESSAGES 0)"), "{}", r.text());
    let r = c.ok("STATUS old-inbox (MESSAGES)").await;
    assert!(r.has("(MESSAGES 2)"), "{}", r.text());
    s.stop().await;
}

#[tokio::test]
async fn uidvalidity_changes_when_a_mailbox_is_recreated() {
    let s = TestServer::start().await;
    let mut c = s.login().await;
    c.ok("CREATE box").await;
    let r = c.ok("STATUS box (UIDVALIDITY UIDNEXT)").await;
    let first = r.text();
    c.ok("DELETE box").await;
    c.ok("CREATE box").await;
    let r = c.ok("STATUS box (UIDVALIDITY UIDNEXT)").await;
    assert_ne!(first, r.text());
    s.stop().await;
}

#[tokio::test]
async fn subscriptions_lsub_and_list_extended() {
    let s = TestServer::start().await;
    let mut c = s.login().await;
    c.ok("CREATE work/projects").await;
    c.ok("UNSUBSCRIBE Junk").await;
    c.ok("SUBSCRIBE work/projects").await;
    c.ok("SUBSCRIBE gone").await;
    let r = c.ok("LSUB \"\" \"*\"").await;
    let t = r.text();
    assert!(t.contains("* LSUB () \"/\" work/projects\r\n"), "{t}");
    assert!(t.contains("* LSUB (\\Noselect) \"/\" gone\r\n"), "{t}");
    assert!(!t.contains("Junk"));
    // `%` stops above a subscribed inferior at its unsubscribed parent,
    // flagged \Noselect (RFC 3501 6.3.9), for a mailbox that exists and for
    // a subscription whose mailboxes do not.
    c.ok("CREATE p/q/r").await;
    c.ok("SUBSCRIBE p/q/r").await;
    c.ok("SUBSCRIBE nope/child").await;
    let r = c.ok("LSUB \"\" \"%\"").await;
    let t = r.text();
    assert!(t.contains("* LSUB (\\Noselect) \"/\" p\r\n"), "{t}");
    assert!(t.contains("* LSUB (\\Noselect) \"/\" nope\r\n"), "{t}");
    assert!(t.contains("* LSUB (\\Noselect) \"/\" work\r\n"), "{t}");
    assert!(t.contains("* LSUB () \"/\" INBOX\r\n"), "{t}");
    assert!(!t.contains("p/q") && !t.contains("nope/child"), "{t}");
    let r = c.ok("LSUB \"\" \"p/%\"").await;
    assert_eq!(r.text(), "* LSUB (\\Noselect) \"/\" p/q\r\n");
    let r = c.ok("LSUB \"p/\" \"%\"").await;
    assert_eq!(r.text(), "* LSUB (\\Noselect) \"/\" p/q\r\n");
    // A subscribed parent is listed as itself, once.
    c.ok("SUBSCRIBE p").await;
    let r = c.ok("LSUB \"\" \"p\"").await;
    assert_eq!(r.text(), "* LSUB () \"/\" p\r\n");
    // With `*` only the subscriptions themselves.
    let r = c.ok("LSUB \"\" \"p*\"").await;
    assert_eq!(r.text(), "* LSUB () \"/\" p\r\n* LSUB () \"/\" p/q/r\r\n");
    c.ok("UNSUBSCRIBE p").await;
    c.ok("UNSUBSCRIBE p/q/r").await;
    c.ok("UNSUBSCRIBE nope/child").await;
    let r = c.ok("LIST (SUBSCRIBED) \"\" \"*\"").await;
    let t = r.text();
    assert!(
        t.contains("\\NonExistent") && t.contains(" gone\r\n"),
        "{t}"
    );
    assert!(t.contains("\\Subscribed") && !t.contains("Junk"), "{t}");
    let r = c.ok("LIST (SUBSCRIBED RECURSIVEMATCH) \"\" \"%\"").await;
    assert!(
        r.has("\"/\" work (\"CHILDINFO\" (\"SUBSCRIBED\"))"),
        "{}",
        r.text()
    );
    c.bad("LIST (RECURSIVEMATCH) \"\" \"%\"").await;
    let r = c.ok("LIST \"\" \"*\" RETURN (SUBSCRIBED CHILDREN)").await;
    assert!(
        r.has("(\\HasNoChildren \\Subscribed) \"/\" INBOX"),
        "{}",
        r.text()
    );
    let r = c
        .ok("LIST \"\" (INBOX Sent) RETURN (STATUS (MESSAGES UIDNEXT))")
        .await;
    assert_eq!(names(&r), vec!["INBOX", "Sent"]);
    assert_eq!(r.lines_starting("* STATUS").len(), 2, "{}", r.text());
    assert!(
        r.has("* STATUS INBOX (MESSAGES 0 UIDNEXT 1)"),
        "{}",
        r.text()
    );
    s.stop().await;
}

#[tokio::test]
async fn status_items() {
    let s = TestServer::start().await;
    let mut c = s.login().await;
    c.append("INBOX", "\\Seen", &message("a", "x")).await;
    c.append("INBOX", "\\Deleted", &message("b", "y")).await;
    let size: usize = message("a", "x").len() + message("b", "y").len();
    let r = c
        .ok("STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE HIGHESTMODSEQ RECENT)")
        .await;
    let t = r.text();
    assert!(t.contains("MESSAGES 2 "), "{t}");
    assert!(t.contains("UIDNEXT 3 "), "{t}");
    assert!(t.contains("UNSEEN 1 "), "{t}");
    assert!(t.contains("DELETED 1 "), "{t}");
    assert!(t.contains(&format!("SIZE {size} ")), "{t}");
    assert!(t.contains("HIGHESTMODSEQ "), "{t}");
    let r = c.no("STATUS nosuch (MESSAGES)").await;
    assert!(r.tagged.contains("[NONEXISTENT]"));
    c.bad("STATUS INBOX (BOGUS)").await;
    s.stop().await;
}

#[tokio::test]
async fn select_and_examine_responses() {
    let s = TestServer::start().await;
    let mut c = s.login().await;
    c.append("INBOX", "\\Seen", &message("a", "x")).await;
    c.append("INBOX", "$Label1", &message("b", "y")).await;
    let r = c.ok("SELECT INBOX").await;
    let t = r.text();
    assert!(
        t.contains("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1)"),
        "{t}"
    );
    assert!(
        t.contains(
            "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1 \\*)]"
        ),
        "{t}"
    );
    assert!(t.contains("* 2 EXISTS"));
    // The first SELECT after new mail takes its \Recent (RFC 3501 2.3.2).
    assert!(t.contains("* 2 RECENT"), "{t}");
    assert!(t.contains("* OK [UNSEEN 2]"));
    assert!(t.contains("* OK [UIDVALIDITY "));
    assert!(t.contains("* OK [UIDNEXT 3]"));
    assert!(t.contains("* OK [HIGHESTMODSEQ "));
    assert!(r.tagged.starts_with("OK [READ-WRITE]"));
    let r = c.ok("EXAMINE INBOX").await;
    assert!(r.has("* OK [CLOSED]"));
    assert!(r.tagged.starts_with("OK [READ-ONLY]"));
    let r = c.no("STORE 1 +FLAGS (\\Flagged)").await;
    assert!(r.tagged.contains("[READ-ONLY]"));
    // Non-PEEK fetch in EXAMINE does not set \Seen.
    c.ok("FETCH 2 BODY[]").await;
    let r = c.ok("FETCH 2 FLAGS").await;
    assert!(!r.has("\\Seen"));
    let r = c.no("SELECT nosuch").await;
    assert!(r.tagged.contains("[NONEXISTENT]"));
    // A failed SELECT leaves no mailbox selected.
    c.bad("FETCH 1 FLAGS").await;
    let r = c.ok("SELECT INBOX").await;
    assert!(!r.has("* LIST"), "{}", r.text());
    c.ok("UNSELECT").await;
    c.bad("FETCH 1 FLAGS").await;
    // IMAP4rev2 (RFC 9051 6.3.2): LIST is a required SELECT response, and
    // RECENT and UNSEEN are gone.
    c.ok("ENABLE IMAP4rev2").await;
    let r = c.ok("SELECT inbox").await;
    assert!(r.has("* LIST () \"/\" INBOX\r\n"), "{}", r.text());
    assert!(!r.has("RECENT") && !r.has("[UNSEEN"), "{}", r.text());
    let r = c.ok("EXAMINE Sent").await;
    assert!(r.has("* LIST (\\Sent) \"/\" Sent\r\n"), "{}", r.text());
    s.stop().await;
}

#[tokio::test]
async fn international_names_mutf7_and_utf8() {
    let s = TestServer::start().await;
    let mut c = s.login().await;
    // "Entwürfe" in modified UTF-7 from an IMAP4rev1 client.
    c.ok("CREATE Entw&APw-rfe").await;
    let r = c.ok("LIST \"\" \"Entw*\"").await;
    assert!(r.has("\"/\" Entw&APw-rfe\r\n"), "{}", r.text());
    c.bad("CREATE \"Entw&Bad\"").await;
    // After ENABLE IMAP4rev2 names are UTF-8 on the wire.
    c.ok("ENABLE IMAP4rev2").await;
    let r = c.ok("LIST \"\" \"Entw*\"").await;
    assert!(r.has("\"/\" \"Entwürfe\"\r\n"), "{}", r.text());
    c.ok("CREATE \"日本語\"").await;
    c.ok("SELECT \"日本語\"").await;
    let mut c2 = s.login().await;
    let r = c2.ok("LIST \"\" \"*\"").await;
    assert!(r.has("\"/\" &ZeVnLIqe-\r\n"), "{}", r.text());
    s.stop().await;
}

/// IMAP4rev1 \Recent (RFC 3501 2.3.2): new mail is recent in the first
/// session notified of it, and in no other: the appending session if it has
/// the mailbox selected, a session that has it selected (in IDLE, or at its
/// next command), or else the next one to SELECT it; RECENT follows EXISTS
/// when the session's count changes (7.3.2; as Dovecot). EXAMINE shows it as
/// recent but takes nothing ("EXAMINE MUST NOT cause messages to lose the
/// \Recent flag", 6.3.2); STATUS RECENT counts what no session took.
/// SEARCH RECENT, NEW (recent and unseen) and OLD follow. IMAP4rev2 has no
/// \Recent (RFC 9051 drops it).
#[tokio::test]
async fn recent_goes_to_the_first_session_that_selects() {
    let s = TestServer::start().await;
    let mut a = s.login().await;
    let mut b = s.login().await;
    a.append("INBOX", "\\Seen", &message("one", "x")).await;
    a.append("INBOX", "", &message("two", "y")).await;
    let r = b.ok("STATUS INBOX (RECENT MESSAGES)").await;
    assert!(r.has("RECENT 2 MESSAGES 2"), "{}", r.text());
    let r = b.ok("EXAMINE INBOX").await;
    assert!(r.has("* 2 RECENT\r\n"), "{}", r.text());
    let r = b.ok("FETCH 2 (FLAGS)").await;
    assert!(r.has("* 2 FETCH (FLAGS (\\Recent))"), "{}", r.text());
    b.ok("CLOSE").await;
    let r = a.ok("SELECT INBOX").await;
    assert!(r.has("* 2 RECENT\r\n"), "{}", r.text());
    let r = a.ok("FETCH 1:2 (FLAGS)").await;
    assert!(r.has("* 1 FETCH (FLAGS (\\Seen \\Recent))"), "{}", r.text());
    assert!(r.has("* 2 FETCH (FLAGS (\\Recent))"), "{}", r.text());
    let r = a.ok("SEARCH RECENT").await;
    assert!(r.has("* SEARCH 1 2\r\n"), "{}", r.text());
    // STATUS of the selected mailbox counts the session's own \Recent.
    let r = a.ok("STATUS INBOX (RECENT)").await;
    assert!(r.has("RECENT 2"), "{}", r.text());
    let r = a.ok("SEARCH NEW").await;
    assert!(r.has("* SEARCH 2\r\n"), "{}", r.text());
    let r = a.ok("SEARCH OLD").await;
    assert!(r.has("* SEARCH\r\n"), "{}", r.text());
    // \Recent cannot be stored, and the session keeps it across STORE.
    let r = a.ok("STORE 2 +FLAGS (\\Flagged)").await;
    assert!(
        r.has("* 2 FETCH (FLAGS (\\Flagged \\Recent))"),
        "{}",
        r.text()
    );
    // Taken: nobody else sees them as recent.
    let r = b.ok("STATUS INBOX (RECENT)").await;
    assert!(r.has("RECENT 0"), "{}", r.text());
    let r = b.ok("SELECT INBOX").await;
    assert!(r.has("* 0 RECENT\r\n"), "{}", r.text());
    let r = b.ok("FETCH 1:2 (FLAGS)").await;
    assert!(!r.has("\\Recent"), "{}", r.text());
    // New mail that the appending session has selected is its own; the
    // other session hears EXISTS only (its count stays 0).
    let r = a.append("INBOX", "", &message("three", "z")).await;
    assert_eq!(r.text(), "* 3 EXISTS\r\n* 3 RECENT\r\n");
    let r = b.ok("NOOP").await;
    assert_eq!(r.text(), "* 3 EXISTS\r\n");
    // Pushed to a session in IDLE, appended by one without it selected: the
    // idle session is the first notified.
    let mut c = s.login().await;
    b.send_raw(b"i1 IDLE\r\n").await;
    let wait = std::time::Duration::from_secs(5);
    assert!(b.read_line_timeout(wait).await.unwrap().starts_with("+ "));
    c.append("INBOX", "", &message("four", "w")).await;
    assert_eq!(b.read_line_timeout(wait).await.unwrap(), "* 4 EXISTS\r\n");
    assert_eq!(b.read_line_timeout(wait).await.unwrap(), "* 1 RECENT\r\n");
    b.send_raw(b"DONE\r\n").await;
    assert!(b
        .read_line_timeout(wait)
        .await
        .unwrap()
        .starts_with("i1 OK"));
    let r = b.ok("SEARCH RECENT").await;
    assert!(r.has("* SEARCH 4\r\n"), "{}", r.text());
    let r = a.ok("NOOP").await;
    assert_eq!(r.text(), "* 4 EXISTS\r\n");
    let r = a.ok("SEARCH RECENT").await;
    assert!(r.has("* SEARCH 1 2 3\r\n"), "{}", r.text());
    // Mail that arrives while no session has the mailbox selected goes to
    // the next SELECT.
    a.ok("CLOSE").await;
    b.ok("CLOSE").await;
    c.append("INBOX", "", &message("five", "v")).await;
    let r = b.ok("SELECT INBOX").await;
    assert!(r.has("* 1 RECENT\r\n"), "{}", r.text());
    let r = b.ok("SEARCH RECENT").await;
    assert!(r.has("* SEARCH 5\r\n"), "{}", r.text());
    b.ok("CLOSE").await;
    // IMAP4rev2: no RECENT response, no \Recent flag.
    let mut d = s.login().await;
    c.append("INBOX", "", &message("six", "u")).await;
    d.ok("ENABLE IMAP4rev2").await;
    let r = d.ok("SELECT INBOX").await;
    assert!(!r.has("RECENT"), "{}", r.text());
    let r = d.ok("FETCH 6 (FLAGS)").await;
    assert!(!r.has("\\Recent"), "{}", r.text());
    // Nor does it take any when it learns of new mail.
    c.append("INBOX", "", &message("seven", "t")).await;
    let r = d.ok("NOOP").await;
    assert_eq!(r.text(), "* 7 EXISTS\r\n");
    // It took nothing: messages 6 and 7 are still recent for a rev1 session.
    let r = a.ok("SELECT INBOX").await;
    assert!(r.has("* 2 RECENT\r\n"), "{}", r.text());
    s.stop().await;
}

/// A notified session whose \Recent claim finds the write lock taken (here
/// by another process's transaction) answers without waiting for it:
/// EXISTS and the tagged OK go out, and the claim is made once the lock is
/// free, RECENT following then, unsolicited (RFC 3501 2.3.2, 7.3.2).
#[tokio::test]
async fn recent_claim_waits_for_a_busy_writer_after_the_response() {
    let s = TestServer::start().await;
    let mut a = s.login().await;
    let mut b = s.login().await;
    a.ok("SELECT INBOX").await;
    b.append("INBOX", "", &message("one", "x")).await;
    let other = rusqlite::Connection::open(s.dir.path().join("meta.sqlite3")).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let r = a.ok("NOOP").await;
    assert_eq!(r.text(), "* 1 EXISTS\r\n");
    let wait = std::time::Duration::from_secs(5);
    assert!(
        a.read_line_timeout(std::time::Duration::from_millis(200))
            .await
            .is_none(),
        "nothing before the lock is free"
    );
    other.execute_batch("ROLLBACK").unwrap();
    assert_eq!(a.read_line_timeout(wait).await.unwrap(), "* 1 RECENT\r\n");
    let r = a.ok("FETCH 1 (FLAGS)").await;
    assert!(r.has("* 1 FETCH (FLAGS (\\Recent))"), "{}", r.text());
    let r = b.ok("SELECT INBOX").await;
    assert!(r.has("* 0 RECENT\r\n"), "{}", r.text());
    s.stop().await;
}

/// SELECT's LIST response (IMAP4rev2) names the mailbox as it is called now:
/// after a rename by another session, not as the shared snapshot of the
/// mailbox first read it (a rename keeps the mailbox, and its snapshot).
#[tokio::test]
async fn rev2_select_after_a_rename_lists_the_new_name() {
    let s = TestServer::start().await;
    let mut a = s.login().await;
    let mut b = s.login().await;
    a.ok("ENABLE IMAP4rev2").await;
    a.ok("CREATE Work").await;
    a.ok("SELECT Work").await;
    a.ok("UNSELECT").await;
    b.ok("RENAME Work Play").await;
    let r = a.ok("SELECT Play").await;
    assert!(r.has("* LIST () \"/\" Play\r\n"), "{}", r.text());
    let r = a.ok("EXAMINE Archive").await;
    assert!(
        r.has("* LIST (\\Archive) \"/\" Archive\r\n"),
        "{}",
        r.text()
    );
    s.stop().await;
}
