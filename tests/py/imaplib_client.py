"""Drives a running Pillarbox with Python's standard imaplib (a client we did
not write). Usage: imaplib_client.py HOST PORT TLS_PORT CAFILE USER PASS
Exits non-zero with a message on the first unexpected answer."""
import email
import email.message
import imaplib
import ssl
import sys
import time

host, port, tls_port, cafile, user, password = sys.argv[1:7]
port, tls_port = int(port), int(tls_port)


def check(cond, what):
    if not cond:
        print("FAILED:", what)
        sys.exit(1)


def ok(res, what):
    typ, data = res
    check(typ == "OK", "%s -> %s %r" % (what, typ, data))
    return data


ctx = ssl.create_default_context(cafile=cafile)
ctx.check_hostname = True

# STARTTLS on the plain port, then login.
c = imaplib.IMAP4(host, port, timeout=20)
check("STARTTLS" in c.capabilities, "STARTTLS advertised")
ok(c.starttls(ssl_context=ctx), "starttls")
ok(c.login(user, password), "login")
caps = ok(c.capability(), "capability")[0].decode().split()
check("IDLE" in caps and "UIDPLUS" in caps, "post-login capabilities %r" % (caps,))

data = ok(c.list(), "list")
names = [l.decode().rsplit(' "/" ', 1)[1] for l in data]
for n in ["INBOX", "Drafts", "Sent", "Trash", "Junk", "Archive"]:
    check(n in names, "default mailbox %s in %r" % (n, names))
ok(c.create("Projects/2026"), "create nested")
data = ok(c.list("Projects"), "list reference")

msg = email.message.EmailMessage()
msg["From"] = "Alice <alice@example.org>"
msg["To"] = "bob@example.net"
msg["Subject"] = "imaplib round trip"
msg.set_content("Hello from imaplib.\nSecond line with zanzibar.\n")
raw = msg.as_bytes()
data = ok(c.append("INBOX", r"(\Flagged)", imaplib.Time2Internaldate(time.time()), raw), "append")
check(b"APPENDUID" in data[0], "APPENDUID in %r" % data)
ok(c.append("INBOX", None, None, raw.replace(b"round trip", b"second")), "append 2")

data = ok(c.select("INBOX"), "select")
check(data[0] == b"2", "EXISTS 2, got %r" % data)
data = ok(c.search(None, "FLAGGED"), "search flagged")
check(data[0] == b"1", "search flagged %r" % data)
data = ok(c.search(None, '(BODY "zanzibar" SUBJECT "second")'), "search body")
check(data[0] == b"2", "search body %r" % data)
data = ok(c.uid("SEARCH", None, "ALL"), "uid search")
check(data[0] == b"1 2", "uid search %r" % data)

typ, data = c.fetch("1", "(RFC822)")
check(typ == "OK", "fetch rfc822")
got = data[0][1]
check(email.message_from_bytes(got)["Subject"] == "imaplib round trip", "fetched subject")
check(got.replace(b"\r\n", b"\n") == raw.replace(b"\r\n", b"\n"), "fetched bytes equal appended bytes")
typ, data = c.fetch("1", "(FLAGS)")
check(b"\\Seen" in data[0] and b"\\Flagged" in data[0], "RFC822 fetch set \\Seen: %r" % data)
typ, data = c.fetch("2", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
check(data[0][1] == b"Subject: imaplib second\r\n\r\n", "header fields %r" % data)

ok(c.store("2", "+FLAGS", "(\\Answered $Work)"), "store")
typ, data = c.fetch("2", "(FLAGS)")
check(b"$Work" in data[0] and b"\\Answered" in data[0], "keyword stored %r" % data)

data = ok(c.copy("1", "Archive"), "copy")
data = ok(c.uid("MOVE", "2", "Projects/2026"), "uid move")
data = ok(c.status("Projects/2026", "(MESSAGES UIDNEXT)"), "status")
check(b"MESSAGES 1" in data[0], "status after move %r" % data)
ok(c.store("1", "+FLAGS", "\\Deleted"), "delete flag")
data = ok(c.expunge(), "expunge")
# imaplib accumulates untagged EXPUNGEs, including the one from UID MOVE.
check(data == [b"2", b"1"], "expunge responses %r" % data)
ok(c.close(), "close")
ok(c.rename("Projects", "Work"), "rename")
ok(c.subscribe("Work/2026"), "subscribe")
data = ok(c.lsub(), "lsub")
check(any(b"Work/2026" in l for l in data), "lsub %r" % data)
check(c.logout()[0] == "BYE", "logout")

# Implicit TLS port.
c = imaplib.IMAP4_SSL(host, tls_port, ssl_context=ctx, timeout=20)
ok(c.login(user, password), "login over implicit TLS")
data = ok(c.select("Work/2026", readonly=True), "examine")
check(data[0] == b"1", "message moved earlier is there: %r" % data)
c.logout()

# Wrong password.
c = imaplib.IMAP4_SSL(host, tls_port, ssl_context=ctx, timeout=20)
try:
    c.login(user, "wrong")
    check(False, "wrong password accepted")
except imaplib.IMAP4.error:
    pass
print("imaplib: all checks passed")
