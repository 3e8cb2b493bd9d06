#!/usr/bin/env bash
# Search benchmark: Pillarbox vs Dovecot (Debian's dovecot-imapd) on the same
# generated mailbox, both on loopback, in the same run. Prints SEARCH TEXT/BODY
# (rare term), FROM, SUBJECT, SORT (DATE) and THREAD REFERENCES latency on
# both, the ratio, whether the answers are identical, and the size of
# Pillarbox's search index against the mail.
#
# Usage: benches/search/run.sh [N]      (default N=100000 messages; RUNS=5)
# Needs root (apt-get, Dovecot's privilege drop). Not a test: it prints.
#
# Dovecot: built-in defaults (no fts plugin, as Debian ships it) plus a private
# instance: own base_dir/state_dir in a temp dir, IMAP on a loopback port,
# passwd-file user, maildir written directly by the generator with a
# dovecot-uidlist (UID i+1 for message i), ssl = no.
# Pillarbox: defaults; mail loaded through APPEND (MULTIAPPEND batches) over
# loopback, so every message goes through the normal ingest path (and index).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
N=${1:-100000}
RUNS=${RUNS:-5}
PB_PORT=${PB_PORT:-31143}
DC_PORT=${DC_PORT:-32143}
USER_NAME=bench
PASS=pw-bench
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

say() { printf '\n=== %s\n' "$*"; }

say "build (release)"
(cd "$ROOT" && cargo build --release -p pillarbox)
PILLARBOX=$TARGET_DIR/release/pillarbox

# shellcheck source=../common.sh
. "$ROOT/benches/common.sh"

for port in "$PB_PORT" "$DC_PORT"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "port $port is in use; choose others with PB_PORT=... DC_PORT=..." >&2
        exit 1
    fi
done

say "generate $N messages (deterministic seed)"
MAILDIR=$WORK/dovecot/mail/$USER_NAME/Maildir
mkdir -p "$MAILDIR"
python3 "$ROOT/benches/search/gen.py" "$N" "$MAILDIR"
MAIL_BYTES=$(du -sb "$MAILDIR/cur" | cut -f1)

say "start Dovecot ($("$DOVECOT" --version | head -1))"
DC_DIR=$WORK/dovecot
mkdir -p "$DC_DIR/run" "$DC_DIR/state"
chown -R nobody:nogroup "$DC_DIR/mail"
echo "$USER_NAME:{PLAIN}$PASS" >"$DC_DIR/passwd"
chmod 644 "$DC_DIR/passwd"
cat >"$DC_DIR/dovecot.conf" <<EOF
instance_name = pillarbox-search-bench
base_dir = $DC_DIR/run
state_dir = $DC_DIR/state
log_path = $DC_DIR/dovecot.log
protocols = imap
listen = 127.0.0.1
disable_plaintext_auth = no
ssl = no
mail_location = maildir:$DC_DIR/mail/%u/Maildir
namespace inbox {
  inbox = yes
}
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $DC_DIR/passwd
}
userdb {
  driver = static
  args = uid=$(id -u nobody) gid=$(id -g nobody) home=$DC_DIR/mail/%u
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $DC_PORT
  }
  inet_listener imaps {
    port = 0
  }
}
EOF
port_free "$DC_PORT"
"$DOVECOT" -F -c "$DC_DIR/dovecot.conf" &
DC_PID=$!
wait_port "$DC_PORT"

say "start Pillarbox and load the same mail over loopback"
PB_DIR=$WORK/pillarbox
mkdir -p "$PB_DIR"
echo "$PASS" | "$PILLARBOX" --data-dir "$PB_DIR" user add "$USER_NAME" --password-stdin >/dev/null
port_free "$PB_PORT"
"$PILLARBOX" --data-dir "$PB_DIR" serve --listen-imap "127.0.0.1:$PB_PORT" --listen-imaps "" \
    >>"$PB_DIR/server.log" 2>&1 &
PB_PID=$!
wait_port "$PB_PORT"
python3 "$ROOT/benches/search/bench.py" load "$PB_PORT" "$MAILDIR" "$USER_NAME" "$PASS"

say "queries ($N messages)"
python3 "$ROOT/benches/search/bench.py" query "$PB_PORT" "$DC_PORT" "$USER_NAME" "$PASS" "$RUNS"

say "index size"
kill "$PB_PID"
wait "$PB_PID" || true
PB_PID=""
"$PILLARBOX" --data-dir "$PB_DIR" reindex | tee "$WORK/reindex.txt"
FTS=$(sed -n 's/.*full-text index \([0-9]*\) bytes.*/\1/p' "$WORK/reindex.txt")
FIELDS=$(sed -n 's/.*header fields \([0-9]*\) bytes.*/\1/p' "$WORK/reindex.txt")
BLOBS=$(du -sb "$PB_DIR/blobs" | cut -f1)
python3 - "$MAIL_BYTES" "$FTS" "$FIELDS" "$BLOBS" <<'EOF'
import sys
mail, fts, fields, blobs = map(int, sys.argv[1:])
print(f"mail (raw maildir): {mail / 1e6:.1f} MB; Pillarbox blobs (zstd): {blobs / 1e6:.1f} MB")
print(f"full-text index: {fts / 1e6:.1f} MB = {fts / mail:.3f} x mail; "
      f"with header/sort table: {(fts + fields) / 1e6:.1f} MB = {(fts + fields) / mail:.3f} x mail")
EOF
