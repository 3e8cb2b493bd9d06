#!/usr/bin/env python3
"""Compare `cargo run -p pillarbox-mime --example golden -- CORPUS` output with
the corpus goldens, item by item, using the corpus's own diff_check.py rules.

usage: golden_compare.py CORPUS_DIR OUR_JSONL [--verbose] [--max-show N] [--only C1,C5]
       [--skip-deliberate]

--skip-deliberate leaves out the records where we differ from Dovecot on
purpose (BINARY.SIZE/BINARY quirks tagged in the goldens, see the crate docs).
"""
import json
import os
import sys


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    flags = [a for a in sys.argv[1:] if a.startswith("--")]
    if len(args) < 2:
        print(__doc__)
        return 2
    corpus, ours = args[0], args[1]
    sys.path.insert(0, os.path.abspath(corpus))
    import diff_check as d  # noqa: E402
    d.set_corpus(corpus)
    verbose = "--verbose" in flags
    skip = "--skip-deliberate" in flags
    max_show = 5
    only = None
    argv = sys.argv[1:]
    for i, a in enumerate(argv):
        if a == "--max-show" and i + 1 < len(argv):
            max_show = int(argv[i + 1])
        if a.startswith("--only="):
            only = set(a.split("=", 1)[1].split(","))
        if a.startswith("--max-show="):
            max_show = int(a.split("=", 1)[1])
    gold = {(r["file"], r["cmd_id"]): r for r in d.load_jsonl(os.path.join(d.GOLDEN_DIR, "fetch.jsonl"))}
    mine = d.load_jsonl(ours)
    per = {}
    passed = failed = 0
    shown = {}
    for m in mine:
        key = (m["file"], m["cmd_id"])
        if only and m["cmd_id"] not in only:
            continue
        g = gold.get(key)
        cmd = m["cmd_id"]
        st = per.setdefault(cmd, [0, 0])
        if g is None:
            continue
        if skip and g.get("quirks"):
            continue
        st[0] += 1
        problems = []
        mt = d.unl1(m["tagged"])
        if g["status"] == "DISCONNECTED":
            if d.status_word(b"* " + mt) == "OK":
                problems.append("golden is a Dovecot disconnect, got OK")
        else:
            if d.status_code(b"* " + mt) != d.status_code(b"* " + d.unl1(g["tagged"])):
                problems.append("status %s vs golden %s" % (d.status_code(b"* " + mt),
                                                            d.status_code(b"* " + d.unl1(g["tagged"]))))
            try:
                a, _ = d.fetch_items(d.split_responses(d.unl1(m["response"])))
                b, _ = d.fetch_items(d.split_responses(d.unl1(g["response"])))
                if a != b:
                    names = sorted(set(a) | set(b))
                    diff = [n for n in names if a.get(n) != b.get(n)]
                    problems.append("items differ: %s" % ", ".join(diff))
                    if verbose or shown.get(cmd, 0) < max_show:
                        for n in diff:
                            problems.append("\n   %s\n     got:    %.400r\n     golden: %.400r" % (n, a.get(n), b.get(n)))
            except ValueError as e:
                problems.append("unparsable: %s" % e)
        if problems:
            failed += 1
            st[1] += 1
            if verbose or shown.get(cmd, 0) < max_show:
                shown[cmd] = shown.get(cmd, 0) + 1
                print("MISMATCH %s %s: %s" % (cmd, m["file"], "; ".join(problems)))
        else:
            passed += 1
    print()
    print("%-8s %7s %9s" % ("command", "checks", "mismatch"))
    for k in sorted(per):
        print("%-8s %7d %9d" % (k, per[k][0], per[k][1]))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
