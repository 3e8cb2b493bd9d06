//! FETCH PREVIEW (RFC 8970) over sockets: the first text part (text/plain
//! preferred, else text/html without markup), decoded, whitespace collapsed,
//! at most 256 characters; an empty string when there is no text
//! (RFC 8970 section 3: "MUST return a zero-length string").

mod common;

use common::TestServer;

#[tokio::test]
async fn preview_of_plain_html_and_empty_messages() {
    let s = TestServer::start().await;
    let mut c = s.login().await;
    let caps = c.ok("CAPABILITY").await;
    assert!(caps.has(" PREVIEW"), "{}", caps.text());
    let plain = b"Subject: a\r\n\r\nHello   there,\r\n\r\n\tsecond  line.\r\n".to_vec();
    let alt = b"Subject: b\r\nContent-Type: multipart/alternative; boundary=\"xx\"\r\n\r\n\
--xx\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
<html><head><title>T</title><style>p{}</style></head><body><p>Caf&eacute; &amp; <b>bold</b></p></body></html>\r\n\
--xx\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
Caf=C3=A9 plain wins\r\n--xx--\r\n"
        .to_vec();
    let html = b"Subject: c\r\nContent-Type: text/html\r\n\r\n\
<html><head><title>Title</title></head><body><p>Only&nbsp;<i>html</i></p><!-- note --><p>here &#x41;</p></body></html>\r\n"
        .to_vec();
    let none = b"Subject: d\r\nContent-Type: multipart/mixed; boundary=\"yy\"\r\n\r\n\
--yy\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nAAAA\r\n--yy--\r\n"
        .to_vec();
    let long = format!("Subject: e\r\n\r\n{}\r\n", "word ".repeat(100)).into_bytes();
    for m in [&plain, &alt, &html, &none, &long] {
        c.append("INBOX", "", m).await;
    }
    c.select_settled("INBOX").await;
    let r = c.ok("FETCH 1:4 (PREVIEW)").await;
    let t = r.text();
    assert!(
        t.contains("* 1 FETCH (PREVIEW \"Hello there, second line.\")"),
        "{t}"
    );
    // The text/plain alternative wins over the HTML one; é is UTF-8 (literal).
    assert!(
        t.contains("* 2 FETCH (PREVIEW {16}\r\nCafé plain wins)"),
        "{t}"
    );
    assert!(
        t.contains("* 3 FETCH (PREVIEW \"Only html here A\")"),
        "{t}"
    );
    assert!(t.contains("* 4 FETCH (PREVIEW \"\")"), "{t}");
    // At most 256 characters.
    let r = c.ok("UID FETCH 5 (PREVIEW (LAZY))").await;
    let expect = "word ".repeat(100)[..256].to_string();
    assert!(
        r.text()
            .contains(&format!("* 5 FETCH (UID 5 PREVIEW \"{expect}\")")),
        "{}",
        r.text()
    );
    // With other items, and without setting \Seen.
    let r = c.ok("FETCH 1 (FLAGS PREVIEW)").await;
    assert!(
        r.text()
            .contains("* 1 FETCH (FLAGS () PREVIEW \"Hello there, second line.\")"),
        "{}",
        r.text()
    );
    s.stop().await;
}
