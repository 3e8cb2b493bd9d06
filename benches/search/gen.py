#!/usr/bin/env python3
"""Generates a deterministic mailbox for the search benchmark.

Writes N messages (CRLF line ends) as a Dovecot maildir with a dovecot-uidlist
so that message i gets UID i+1 on Dovecot, exactly as APPENDing them in order
gives on Pillarbox; file mtimes are the INTERNALDATEs. Also writes
`dates.txt` (one INTERNALDATE per message, IMAP date-time) for the loader.

Mail is varied: ~2000 senders, threads with References/In-Reply-To and
Re:/Fwd: subjects, mailing-list tags, several time zones, plain, quoted-
printable and base64 text, multipart/alternative with HTML, and ~5% with a
base64 attachment; sizes from a few hundred bytes to ~80 KB.

Planted terms (for the queries): `zebracorn` in the body of 3 messages;
`quokkafish` in 2 bodies and 1 subject; sender `ursula.quill@` on ~0.02%;
the subject word `invoice` on ~1%.
"""
import base64
import os
import random
import sys
import time

N = int(sys.argv[1])
OUT = sys.argv[2]
SEED = 20240601
rnd = random.Random(SEED)

SYL = ["ka", "lo", "mi", "ne", "ru", "ta", "shi", "po", "ve", "den", "mar", "tos", "ing",
       "er", "al", "qu", "ix", "or", "an", "el", "st", "pr", "gr", "on", "us", "ly"]
VOCAB = sorted({"".join(rnd.choice(SYL) for _ in range(rnd.randint(1, 4))) for _ in range(8000)})
COMMON = ["the", "and", "meeting", "project", "report", "please", "thanks", "update", "review",
          "schedule", "budget", "team", "deadline", "draft", "customer", "release", "notes"]
FIRST = ["anna", "ben", "carla", "dmitri", "elena", "farid", "greta", "hiro", "ines", "jamal",
         "kofi", "lena", "marco", "nadia", "oscar", "priya", "quentin", "rosa", "sven", "tomoko"]
LAST = ["adams", "berg", "costa", "dubois", "eriksen", "fischer", "garcia", "hansen", "ivanov",
        "jensen", "kowalski", "lopez", "muller", "novak", "olsen", "petrov", "rossi", "schmidt"]
DOMAINS = ["example.com", "example.org", "example.net", "mail.example", "corp.example"]
SENDERS = []
for i in range(2000):
    f, l = rnd.choice(FIRST), rnd.choice(LAST)
    SENDERS.append((f"{f.title()} {l.title()}", f"{f}.{l}{i % 97}@{rnd.choice(DOMAINS)}"))
LISTS = ["[dev]", "[announce]", "[ops]", "[users]"]
ZONES = ["+0000", "-0500", "+0100", "+0200", "-0800", "+0530", "+0900"]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


def words(n):
    return " ".join(rnd.choice(COMMON) if rnd.random() < 0.3 else rnd.choice(VOCAB) for _ in range(n))


def paragraph():
    return words(rnd.randint(20, 90)).capitalize() + "."


def wrap(text, width=72):
    out, line = [], ""
    for w in text.split(" "):
        if len(line) + len(w) + 1 > width:
            out.append(line)
            line = w
        else:
            line = f"{line} {w}" if line else w
    out.append(line)
    return "\r\n".join(out)


def qp(text):
    out = []
    for ch in text:
        b = ch.encode("utf-8")
        if ch in "=\r\n" or any(x > 126 for x in b):
            out.append("".join(f"={x:02X}" for x in b))
        else:
            out.append(ch)
    s = "".join(out)
    lines = []
    while len(s) > 74:
        cut = 74
        while s[cut - 1] == "=" or s[cut - 2] == "=":
            cut -= 1
        lines.append(s[:cut] + "=")
        s = s[cut:]
    lines.append(s)
    return "\r\n".join(lines)


def b64lines(data):
    enc = base64.b64encode(data).decode()
    return "\r\n".join(enc[i:i + 76] for i in range(0, len(enc), 76))


START = 1514764800  # 2018-01-01
SPAN = 5 * 365 * 86400
plant_body = set(rnd.sample(range(N), 3))
plant_text_body = set(rnd.sample(sorted(set(range(N)) - plant_body), 2))
plant_text_subj = rnd.choice(sorted(set(range(N)) - plant_body - plant_text_body))

cur = os.path.join(OUT, "cur")
os.makedirs(cur, exist_ok=True)
os.makedirs(os.path.join(OUT, "new"), exist_ok=True)
os.makedirs(os.path.join(OUT, "tmp"), exist_ok=True)
uidlist = [f"3 V1700000000 N{N + 1} G0123456789abcdef0123456789abcdef"]
dates = []
threads = []  # (message-id, subject, references)
total = 0
for i in range(N):
    t = START + SPAN * i // N + rnd.randint(0, 3000)
    zone = rnd.choice(ZONES)
    sign = 1 if zone[0] == "+" else -1
    off = sign * (int(zone[1:3]) * 3600 + int(zone[3:5]) * 60)
    lt = time.gmtime(t + off)
    date = (f"{DAYS[lt.tm_wday]}, {lt.tm_mday} {MONTHS[lt.tm_mon - 1]} {lt.tm_year} "
            f"{lt.tm_hour:02d}:{lt.tm_min:02d}:{lt.tm_sec:02d} {zone}")
    name, addr = rnd.choice(SENDERS)
    if rnd.random() < 0.0002 or i == N // 2:
        name, addr = "Ursula Quill", "ursula.quill@example.org"
    mid = f"<{i}.{rnd.getrandbits(40):x}@bench.example>"
    refs = ""
    if threads and rnd.random() < 0.35:
        pm, psubj, prefs = threads[-rnd.randint(1, min(len(threads), 200))]
        subject = ("Re: " if rnd.random() < 0.85 else "Fwd: ") + psubj
        refs = (prefs + " " + pm).strip()
        refs = " ".join(refs.split()[-10:])
    else:
        subject = words(rnd.randint(2, 7)).capitalize()
        if rnd.random() < 0.01:
            subject = f"Invoice {rnd.randint(1000, 99999)} " + subject
        if rnd.random() < 0.15:
            subject = rnd.choice(LISTS) + " " + subject
    if i == plant_text_subj:
        subject += " quokkafish"
    base_subj = subject
    while base_subj.startswith(("Re: ", "Fwd: ")):
        base_subj = base_subj.split(": ", 1)[1]
    threads.append((mid, base_subj, refs))
    if len(threads) > 5000:
        threads = threads[-2000:]
    to_name, to_addr = rnd.choice(SENDERS)
    h = [f"Return-Path: <{addr}>",
         f"Received: from mx{rnd.randint(1, 9)}.example by imap.example with ESMTP id {rnd.getrandbits(48):x}; {date}",
         f"Date: {date}",
         f"From: \"{name}\" <{addr}>",
         f"To: {to_name} <{to_addr}>"]
    if rnd.random() < 0.3:
        cc = ", ".join(f"{n} <{a}>" for n, a in rnd.sample(SENDERS, rnd.randint(1, 4)))
        h.append(f"Cc: {cc}")
    if rnd.random() < 0.1 and subject.isascii():
        enc = base64.b64encode(subject.encode()).decode()
        h.append(f"Subject: =?UTF-8?B?{enc}?=")
    else:
        h.append(f"Subject: {subject}")
    h.append(f"Message-ID: {mid}")
    if refs:
        h.append(f"In-Reply-To: {refs.split()[-1]}")
        h.append(f"References: {refs}")
    h.append("MIME-Version: 1.0")
    paras = [paragraph() for _ in range(max(1, int(rnd.expovariate(1 / 4))))]
    if i in plant_body:
        paras.insert(rnd.randint(0, len(paras)), "Remember the zebracorn project.")
    if i in plant_text_body:
        paras.insert(rnd.randint(0, len(paras)), "Quokkafish sightings reported.")
    text = "\r\n\r\n".join(wrap(p) for p in paras)
    kind = rnd.random()
    attach = rnd.random() < 0.05
    if attach or kind < 0.2:
        b = f"b{i}x{rnd.getrandbits(32):x}"
        h.append(f"Content-Type: multipart/{'mixed' if attach else 'alternative'}; boundary=\"{b}\"")
        parts = [f"--{b}\r\nContent-Type: text/plain; charset=utf-8\r\n"
                 f"Content-Transfer-Encoding: quoted-printable\r\n\r\n{qp(text)}\r\n"]
        if not attach:
            html = "<html><body>" + "".join(f"<p>{p}</p>" for p in paras) + "</body></html>"
            parts.append(f"--{b}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{wrap(html)}\r\n")
        else:
            blob = rnd.randbytes(rnd.randint(8_000, 60_000))
            parts.append(f"--{b}\r\nContent-Type: application/octet-stream; name=\"f{i}.bin\"\r\n"
                         f"Content-Disposition: attachment; filename=\"f{i}.bin\"\r\n"
                         f"Content-Transfer-Encoding: base64\r\n\r\n{b64lines(blob)}\r\n")
        body = "".join(parts) + f"--{b}--\r\n"
    elif kind < 0.3:
        h.append("Content-Type: text/plain; charset=utf-8")
        h.append("Content-Transfer-Encoding: base64")
        body = b64lines(text.encode()) + "\r\n"
    else:
        h.append("Content-Type: text/plain; charset=us-ascii")
        body = text + "\r\n"
    raw = ("\r\n".join(h) + "\r\n\r\n" + body).encode()
    total += len(raw)
    base = f"{1500000000 + i}.M{i}P1.bench"
    path = os.path.join(cur, f"{base},S={len(raw)}:2,")
    with open(path, "wb") as f:
        f.write(raw)
    idate = t + 60
    os.utime(path, (idate, idate))
    uidlist.append(f"{i + 1} :{base},S={len(raw)}")
    it = time.gmtime(idate)
    dates.append(f"{it.tm_mday:02d}-{MONTHS[it.tm_mon - 1]}-{it.tm_year} "
                 f"{it.tm_hour:02d}:{it.tm_min:02d}:{it.tm_sec:02d} +0000")
with open(os.path.join(OUT, "dovecot-uidlist"), "w") as f:
    f.write("\n".join(uidlist) + "\n")
with open(os.path.join(OUT, "dates.txt"), "w") as f:
    f.write("\n".join(dates) + "\n")
print(f"generated {N} messages, {total} bytes ({total / N:.0f} bytes on average)")
