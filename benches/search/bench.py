#!/usr/bin/env python3
"""Search benchmark client: loads the generated maildir into Pillarbox over
loopback (MULTIAPPEND with LITERAL+, INTERNALDATEs kept, so UIDs equal the
Dovecot uidlist), then times the same queries on both servers, checks the
answers are identical and prints each figure and the ratio.

usage: bench.py load PORT MAILDIR
       bench.py query PB_PORT DC_PORT USER PASS RUNS
"""
import os
import re
import socket
import statistics
import sys
import time


class Imap:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.f = self.s.makefile("rb")
        self.n = 0
        self.f.readline()

    def cmd(self, text, payload=b""):
        self.n += 1
        tag = f"b{self.n}"
        self.s.sendall(f"{tag} {text}".encode() + payload + b"\r\n")
        lines = []
        while True:
            line = self.f.readline()
            if not line:
                raise RuntimeError("connection closed")
            if line.startswith(tag.encode() + b" "):
                if not line.startswith(tag.encode() + b" OK"):
                    raise RuntimeError(f"{text[:60]!r}: {line!r}")
                return lines
            m = re.search(rb"\{(\d+)\}\r\n$", line)
            if m:
                line += self.f.read(int(m.group(1))) + self.f.readline()
            lines.append(line)

    def login(self, user, pw):
        self.cmd(f'LOGIN "{user}" "{pw}"')


def load(port, maildir, user, pw):
    dates = open(os.path.join(maildir, "dates.txt")).read().split("\n")
    names = {}
    for line in open(os.path.join(maildir, "dovecot-uidlist")).read().split("\n")[1:]:
        if line:
            uid, name = line.split(" :", 1)
            names[int(uid)] = name
    files = {f.split(":2,")[0]: f for f in os.listdir(os.path.join(maildir, "cur"))}
    c = Imap(port)
    c.login(user, pw)
    batch, size = [], 0
    t0 = time.time()
    n = len(names)

    def flush():
        nonlocal batch, size
        if not batch:
            return
        # One MULTIAPPEND: APPEND INBOX (date {n+} msg) (date {n+} msg) ...
        parts = []
        for d, raw in batch:
            parts.append(f' "{d}" {{{len(raw)}+}}\r\n'.encode() + raw)
        c.s.sendall(b"l APPEND INBOX" + b"".join(parts) + b"\r\n")
        while True:
            line = c.f.readline()
            if line.startswith(b"l "):
                if not line.startswith(b"l OK"):
                    raise RuntimeError(line)
                break
        batch, size = [], 0

    for uid in range(1, n + 1):
        raw = open(os.path.join(maildir, "cur", files[names[uid]]), "rb").read()
        batch.append((dates[uid - 1], raw))
        size += len(raw)
        if len(batch) >= 500 or size > 8_000_000:
            flush()
        if uid % 10000 == 0:
            print(f"  loaded {uid} ({uid / (time.time() - t0):.0f} msg/s)", flush=True)
    flush()
    print(f"loaded {n} messages into Pillarbox in {time.time() - t0:.1f} s")


QUERIES = [
    ("SEARCH TEXT (rare)", "UID SEARCH TEXT quokkafish"),
    ("SEARCH BODY (rare)", "UID SEARCH BODY zebracorn"),
    ("SEARCH FROM", "UID SEARCH FROM ursula.quill"),
    ("SEARCH SUBJECT", "UID SEARCH SUBJECT invoice"),
    ("SORT (DATE)", "UID SORT (DATE) UTF-8 ALL"),
    ("THREAD REFERENCES", "UID THREAD REFERENCES UTF-8 ALL"),
]
GOALS = {"SEARCH TEXT (rare)": 50, "SEARCH BODY (rare)": 50, "SEARCH FROM": 30,
         "SEARCH SUBJECT": 30, "SORT (DATE)": 50, "THREAD REFERENCES": 200}


def answer(lines):
    # Untagged OK lines are progress notes (Dovecot: "* OK Searched 60% ..."), not answers.
    return b"".join(l for l in lines if l.startswith(b"* ") and not l.startswith(b"* OK")).strip()


def numbers(a):
    return sorted(int(x) for x in re.findall(rb"\d+", a.split(b" ", 2)[2] if a.count(b" ") >= 2 else b""))


def measure(port, user, pw, runs):
    c = Imap(port)
    c.login(user, pw)
    t = time.time()
    c.cmd("SELECT INBOX")
    out = {"SELECT": (time.time() - t) * 1000}
    answers = {}
    for label, q in QUERIES:
        t = time.time()
        lines = c.cmd(q)  # first (cold) run
        cold = (time.time() - t) * 1000
        times = []
        for _ in range(runs):
            t = time.time()
            c.cmd(q)
            times.append((time.time() - t) * 1000)
        out[label] = (cold, statistics.median(times))
        answers[label] = answer(lines)
    return out, answers


def query(pb_port, dc_port, user, pw, runs):
    print(f"timing: first run (cold) and median of {runs} warm runs, milliseconds")
    dc, dca = measure(dc_port, user, pw, runs)
    pb, pba = measure(pb_port, user, pw, runs)
    print(f"SELECT INBOX: Pillarbox {pb['SELECT']:.0f} ms, Dovecot {dc['SELECT']:.0f} ms")
    print(f"{'query':<20} {'Pillarbox':>16} {'Dovecot':>16} {'ratio':>8} {'goal':>7}  answers")
    ok = True
    for label, _ in QUERIES:
        pc, pw_ = pb[label]
        dcc, dw = dc[label]
        same = pba[label] == dca[label]
        how = "identical" if same else (
            "same set, other order" if numbers(pba[label]) == numbers(dca[label]) else "DIFFERENT")
        ok &= same
        nums = len(numbers(pba[label]))
        print(f"{label:<20} {pc:7.1f}/{pw_:7.1f} {dcc:7.1f}/{dw:7.1f} {pw_ / max(dw, 0.001):8.3f} "
              f"{GOALS[label]:>5}ms  {how} ({nums} messages)")
        if not same:
            for name, a in (("pillarbox", pba[label]), ("dovecot", dca[label])):
                print(f"    {name}: {a[:300]!r}{'...' if len(a) > 300 else ''}")
    return ok


if __name__ == "__main__":
    if sys.argv[1] == "load":
        load(int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5])
    else:
        query(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], int(sys.argv[6]))
