#!/usr/bin/env bash
# Side-by-side load benchmark: Pillarbox vs Dovecot (Debian's dovecot-imapd),
# both on loopback, same accounts, same pre-loaded mail, same load generator
# (crates/loadgen, binary pillarbox-loadgen). Prints every figure and the
# ratio Pillarbox/Dovecot. Needs root (apt-get, Dovecot's privilege drop).
#
# Usage: benches/sync/run.sh            (knobs below via environment)
#
# Dovecot settings (everything else is Dovecot's built-in default, which is
# what Debian ships: Debian's conf.d files only set mail_location, the
# snakeoil certificate and the inbox namespace):
#   protocols = imap, listen on 127.0.0.1 high ports only, own base_dir and
#     state_dir in a temp dir, log to a file there
#   passdb passwd-file with {PLAIN} passwords, userdb static (uid nobody),
#     mail_location = maildir in the temp dir
#   disable_plaintext_auth = no (Dovecot allows plaintext on loopback anyway)
#   ssl = yes with a generated self-signed certificate (for the TLS memory
#     figure; plaintext connections do not touch TLS)
#   process/client limits and mail_max_userip_connections raised so that the
#     session counts below are possible at all (defaults: 100 processes, 10
#     connections per user and IP)
#   mail_fsync left at its default (optimized); imap_hibernate off (default)
# Pillarbox: defaults, plus limits raised for the same reason
#   (max_connections, per IP, per user).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
USERS=${USERS:-20}                  # accounts on each server
MSGS=${MSGS:-300}                   # messages pre-loaded into each INBOX
DURATION=${DURATION:-20}            # seconds per mix / append run
MIX_CLIENTS=${MIX_CLIENTS:-"10 50"}
# Each mix run (10 and 50 clients, multi-device, no-wait) is repeated this
# many times, Pillarbox and Dovecot alternately. The machine's speed drifts
# by 10-20% over minutes; a ratio taken from adjacent runs cancels most of
# that. The summary gives the medians of each server's figures and the
# median of the per-pair ratios.
MIX_REPEAT=${MIX_REPEAT:-1}
# The multi-device mix: MIX_DEVICE_CLIENTS clients, MIX_DEVICES per account
# (a user's laptop, phone and webmail), so that an IDLE ends when another
# device's change is pushed. In the plain mix, 10 clients have an account
# each and every IDLE waits its full 50 ms; 50 clients share the USERS
# accounts (2 or 3 each), so they see each other's changes, and a FETCH of a
# message another client expunged meanwhile is answered NO [EXPUNGEISSUED]
# (RFC 5530), counted as an error (0: skip the multi-device runs).
MIX_DEVICES=${MIX_DEVICES:-3}
MIX_DEVICE_CLIENTS=${MIX_DEVICE_CLIENTS:-10}
# How long an IDLE of the mix waits for a change before DONE (ms).
MIX_IDLE_MS=${MIX_IDLE_MS:-50}
# Seconds of the same load before each measured mix run (loadgen --warmup),
# on the same connections and counted in nothing, so that every run measures
# servers whose caches are as full as after the runs before it: the first
# run after Pillarbox starts otherwise pays for filling its message caches
# (about 20% more CPU per command in its first 10 s). 0: no warm-up.
MIX_WARMUP=${MIX_WARMUP:-3}
# The same mix with clients that end each IDLE as soon as the server has
# confirmed it (--idle-ms 0), so that no client waits between commands: what
# the server can do rather than what the clients ask of it. With 50 ms IDLEs
# (5% of the operations) 10 clients cannot send more than about 4000
# commands/s to any server. Empty: skip these runs.
NOWAIT_CLIENTS=${NOWAIT_CLIENTS:-10}
# One client doing one kind of operation at a time, on both servers: the
# CPU per command of each operation, which is where the mix ratio comes from
# (one client keeps the server idle between commands, as in the 10-client
# mix). Each entry is a --mix; expunge needs appends to go on.
OP_MIXES=${OP_MIXES:-"noop=100 fetch_headers=100 fetch_body=100 store=100 select=100 append=100 expunge=50,append=50 login=100"}
OP_DURATION=${OP_DURATION:-5}
APPEND_CLIENTS=${APPEND_CLIENTS:-10}
PUSH_IDLERS=${PUSH_IDLERS:-100}
PUSH_OPS=${PUSH_OPS:-150}
IDLE_SESSIONS=${IDLE_SESSIONS:-1000}        # idle-mem, both servers
PB_IDLE_SESSIONS=${PB_IDLE_SESSIONS:-10000} # idle-mem, Pillarbox only
PB_PUSH_BIG=${PB_PUSH_BIG:-10000}           # push with this many idlers, Pillarbox only (0: skip)
# A mailbox of this many messages loses its lower half in one EXPUNGE while
# two other sessions have it selected (0: skip).
BULK_MESSAGES=${BULK_MESSAGES:-50000}
PB_PORT=${PB_PORT:-21143}
PB_TLS_PORT=${PB_TLS_PORT:-21993}
DC_PORT=${DC_PORT:-22143}
DC_TLS_PORT=${DC_TLS_PORT:-22993}

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET_DIR/release

say() { printf '\n=== %s\n' "$*"; }

say "build (release)"
(cd "$ROOT" && cargo build --release -p pillarbox -p pillarbox-loadgen)
LOADGEN=$BIN/pillarbox-loadgen
PILLARBOX=$BIN/pillarbox

# shellcheck source=../common.sh
. "$ROOT/benches/common.sh"
ulimit -n "$(ulimit -Hn)" || true

# Accounts: same names and passwords on both servers.
USERFILE=$WORK/users.txt
for i in $(seq 1 "$USERS"); do echo "bench$i pw-bench-$i"; done >"$USERFILE"

# ---------------------------------------------------------------- Pillarbox
PB_DIR=$WORK/pillarbox
mkdir -p "$PB_DIR"
cat >"$PB_DIR/pillarbox.toml" <<EOF
[limits]
max_connections = 30000
max_connections_per_ip = 30000
max_sessions_per_user = 30000
EOF
while read -r u p; do
    echo "$p" | "$PILLARBOX" --data-dir "$PB_DIR" user add "$u" --password-stdin >/dev/null
done <"$USERFILE"

start_pb() {
    port_free "$PB_PORT"
    port_free "$PB_TLS_PORT"
    "$PILLARBOX" --data-dir "$PB_DIR" serve --listen-imap "127.0.0.1:$PB_PORT" \
        --listen-imaps "127.0.0.1:$PB_TLS_PORT" >>"$PB_DIR/server.log" 2>&1 &
    PB_PID=$!
    wait_port "$PB_PORT"
    wait_port "$PB_TLS_PORT"
}
stop_pb() {
    kill "$PB_PID"
    wait "$PB_PID" || true
    PB_PID=""
}
start_pb

# ---------------------------------------------------------------- Dovecot
DC_DIR=$WORK/dovecot
mkdir -p "$DC_DIR/run" "$DC_DIR/state" "$DC_DIR/mail"
chown nobody:nogroup "$DC_DIR/mail"
while read -r u p; do echo "$u:{PLAIN}$p"; done <"$USERFILE" >"$DC_DIR/passwd"
chmod 644 "$DC_DIR/passwd"
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -days 2 \
    -keyout "$DC_DIR/key.pem" -out "$DC_DIR/cert.pem" 2>/dev/null
NOBODY_UID=$(id -u nobody)
NOGROUP_GID=$(id -g nobody)
LIMIT=$((PB_IDLE_SESSIONS > IDLE_SESSIONS ? PB_IDLE_SESSIONS : IDLE_SESSIONS))
LIMIT=$((LIMIT + 500))
cat >"$DC_DIR/dovecot.conf" <<EOF
instance_name = pillarbox-bench-dovecot
base_dir = $DC_DIR/run
state_dir = $DC_DIR/state
log_path = $DC_DIR/dovecot.log
protocols = imap
listen = 127.0.0.1
disable_plaintext_auth = no
ssl = yes
ssl_cert = <$DC_DIR/cert.pem
ssl_key = <$DC_DIR/key.pem
ssl_dh = </usr/share/dovecot/dh.pem
mail_location = maildir:$DC_DIR/mail/%u
namespace inbox {
  inbox = yes
}
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $DC_DIR/passwd
}
userdb {
  driver = static
  args = uid=$NOBODY_UID gid=$NOGROUP_GID home=$DC_DIR/mail/%u
}
default_process_limit = $LIMIT
default_client_limit = 15000
protocol imap {
  mail_max_userip_connections = 30000
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $DC_PORT
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $DC_TLS_PORT
    ssl = yes
  }
  process_limit = $LIMIT
}
service imap {
  process_limit = $LIMIT
}
EOF
port_free "$DC_PORT"
port_free "$DC_TLS_PORT"
"$DOVECOT" -F -c "$DC_DIR/dovecot.conf" &
DC_PID=$!
wait_port "$DC_PORT"
wait_port "$DC_TLS_PORT"

RESULTS=$WORK/results.txt
: >"$RESULTS"
# lg LABEL PORT TLSPORT PID MODE ARGS...
lg() {
    local label=$1 port=$2 tlsport=$3 pid=$4
    shift 4
    "$LOADGEN" --label "$label" --port "$port" --tls-port "$tlsport" --server-pid "$pid" \
        --user-file "$USERFILE" "$@" 2>&1 | tee -a "$RESULTS" ||
        echo "($label: loadgen $1 failed, exit status above)"
}
pb() { lg pillarbox "$PB_PORT" "$PB_TLS_PORT" "$PB_PID" "$@"; }
dc() { lg dovecot "$DC_PORT" "$DC_TLS_PORT" "$DC_PID" "$@"; }

say "servers: pillarbox $("$PILLARBOX" --version 2>/dev/null || echo '?') pid $PB_PID; $("$DOVECOT" --version | head -1 | sed 's/^/dovecot /') pid $DC_PID"
say "machine: $(nproc) cores, $(uname -sr)"
say "populate: $USERS users x $MSGS messages each (identical bytes on both servers)"
pb populate --count "$MSGS"
dc populate --count "$MSGS"

# Memory per idle session first, while every INBOX holds the $MSGS messages
# just populated on both servers: the load runs below add mail, and more of
# it to the server that runs more commands in the same time, and an idle
# session's memory grows with its mailbox (a byte or so per message).
say "idle-mem, $IDLE_SESSIONS sessions (Pillarbox restarted before each run for a clean baseline)"
# Pillarbox is restarted around its own runs so that memory it still holds
# does not count against Dovecot's runs (the loadgen stops opening sessions
# when the machine's MemAvailable falls below --min-available-mib).
stop_pb
start_pb
pb idle-mem --sessions "$IDLE_SESSIONS"
stop_pb
start_pb
dc idle-mem --sessions "$IDLE_SESSIONS"
pb idle-mem --sessions "$IDLE_SESSIONS" --tls
stop_pb
start_pb
dc idle-mem --sessions "$IDLE_SESSIONS" --tls

if [ "$PB_IDLE_SESSIONS" -gt 0 ]; then
    say "idle-mem, Pillarbox only, $PB_IDLE_SESSIONS sessions"
    stop_pb
    start_pb
    pb idle-mem --sessions "$PB_IDLE_SESSIONS"
    stop_pb
    start_pb
    pb idle-mem --sessions "$PB_IDLE_SESSIONS" --tls
fi

# both_mix ARGS...: the mix on both servers, MIX_REPEAT times, alternately.
both_mix() {
    for _ in $(seq 1 "$MIX_REPEAT"); do
        pb mix --warmup "$MIX_WARMUP" "$@"
        dc mix --warmup "$MIX_WARMUP" "$@"
    done
}
for n in $MIX_CLIENTS; do
    say "mix, $n clients, ${DURATION}s (x$MIX_REPEAT)"
    both_mix --clients "$n" --duration "$DURATION" --idle-ms "$MIX_IDLE_MS"
done
if [ "$MIX_DEVICES" -gt 1 ]; then
    n=$MIX_DEVICE_CLIENTS
    say "mix, $n clients, $MIX_DEVICES per account, ${DURATION}s (x$MIX_REPEAT)"
    both_mix --clients "$n" --devices "$MIX_DEVICES" --duration "$DURATION" --idle-ms "$MIX_IDLE_MS"
fi
for n in $NOWAIT_CLIENTS; do
    say "mix, $n clients, no IDLE wait (--idle-ms 0), ${DURATION}s (x$MIX_REPEAT)"
    both_mix --clients "$n" --duration "$DURATION" --idle-ms 0
done

for m in $OP_MIXES; do
    say "one client, --mix $m, ${OP_DURATION}s"
    pb mix --clients 1 --duration "$OP_DURATION" --mix "$m" --idle-ms "$MIX_IDLE_MS"
    dc mix --clients 1 --duration "$OP_DURATION" --mix "$m" --idle-ms "$MIX_IDLE_MS"
done

say "append, $APPEND_CLIENTS clients into one mailbox, ${DURATION}s"
pb append --clients "$APPEND_CLIENTS" --duration "$DURATION"
dc append --clients "$APPEND_CLIENTS" --duration "$DURATION"

say "push, $PUSH_IDLERS IDLE sessions"
pb push --idlers "$PUSH_IDLERS" --ops "$PUSH_OPS"
dc push --idlers "$PUSH_IDLERS" --ops "$PUSH_OPS"

if [ "$BULK_MESSAGES" -gt 0 ]; then
    say "bulk: expunge half of a $BULK_MESSAGES-message mailbox, two other sessions watching"
    pb bulk --messages "$BULK_MESSAGES"
    dc bulk --messages "$BULK_MESSAGES"
fi

if [ "$PB_PUSH_BIG" -gt 0 ]; then
    say "push, Pillarbox only, $PB_PUSH_BIG IDLE sessions"
    stop_pb
    start_pb
    pb push --idlers "$PB_PUSH_BIG" --ops 30 --timeout-ms 20000 --connect-concurrency 64
fi

# ---------------------------------------------------------------- summary
say "summary (ratio = Pillarbox / Dovecot)"
# get LABEL MODE SELECTOR KEY: value of KEY in the RESULT line for LABEL and
# MODE whose text also contains SELECTOR (e.g. clients=10).
get() {
    grep "^RESULT label=$1 mode=$2 " "$RESULTS" | grep -- " $3" | head -1 |
        tr ' ' '\n' | sed -n "s/^$4=//p"
}
line() { # name pillarbox dovecot ratio goal: one line of the summary
    printf '%-54s %14s %14s %9s   %s\n' "$1" "${2:--}" "${3:--}" "${4:--}" "$5"
}
row() { # name pillarbox dovecot goal
    local r=""
    if [ -n "$2" ] && [ -n "$3" ]; then
        r=$(awk -v a="$2" -v b="$3" 'BEGIN { if (b + 0 != 0) printf "%.3f", a / b }')
    fi
    line "$1" "$2" "$3" "$r" "$4"
}
line "figure" "pillarbox" "dovecot" "ratio" "goal"
# all LABEL MODE SELECTOR KEY: the values of KEY in every such RESULT line,
# one per line, in the order of the runs.
all() {
    grep "^RESULT label=$1 mode=$2 " "$RESULTS" | grep -- " $3" |
        tr ' ' '\n' | sed -n "s/^$4=//p"
}
median() { # of the numbers on stdin
    sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) exit; if (NR % 2) print v[(NR + 1) / 2]; else printf "%.5g\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# mix_row NAME SELECTOR KEY GOAL: medians of both servers' figures, and as
# the ratio the median of the ratios of the runs made one after the other.
mix_row() {
    local pb dc r
    pb=$(all pillarbox mix "$2" "$3")
    dc=$(all dovecot mix "$2" "$3")
    r=$(paste <(echo "$pb") <(echo "$dc") |
        awk '$1 != "" && $2 + 0 != 0 { printf "%.5f\n", $1 / $2 }' | median)
    if [ -n "$r" ]; then
        r=$(printf '%.3f' "$r")
    fi
    line "$1" "$(median <<<"$pb")" "$(median <<<"$dc")" "$r" "$4"
}
mix_rows() { # clients devices idle_ms name
    local sel="clients=$1 devices=$2 idle_ms=$3 " name=$4
    if [ "$MIX_REPEAT" -gt 1 ]; then
        name="$name (median of $MIX_REPEAT)"
    fi
    mix_row "$name: commands/s" "$sel" cmds_per_s "ratio >= 3"
    mix_row "$name: server CPU s / 1000 cmds" "$sel" cpu_s_per_1k "ratio <= 0.15"
    mix_row "$name: p99 ms" "$sel" p99_ms ""
    # CPU time the hypervisor gave other guests during the runs (steal): it
    # slows whichever server runs meanwhile, and explains a row that moves
    # from one benchmark run to the next.
    line "$name: machine CPU stolen %" "$(all pillarbox mix "$sel" steal_pct | median)" \
        "$(all dovecot mix "$sel" steal_pct | median)" "" ""
}
for n in $MIX_CLIENTS; do
    mix_rows "$n" 1 "$MIX_IDLE_MS" "mix $n clients"
done
if [ "$MIX_DEVICES" -gt 1 ]; then
    mix_rows "$MIX_DEVICE_CLIENTS" "$MIX_DEVICES" "$MIX_IDLE_MS" "mix $MIX_DEVICE_CLIENTS clients $MIX_DEVICES/account"
fi
for n in $NOWAIT_CLIENTS; do
    mix_rows "$n" 1 0 "mix $n clients, no IDLE wait"
done
for m in $OP_MIXES; do
    sel="clients=1 devices=1 idle_ms=$MIX_IDLE_MS mix=$m "
    row "op $m (1 client): CPU s / 1000 cmds" "$(get pillarbox mix "$sel" cpu_s_per_1k)" \
        "$(get dovecot mix "$sel" cpu_s_per_1k)" ""
done
row "append $APPEND_CLIENTS clients: msg/s" "$(get pillarbox append clients= msgs_per_s)" \
    "$(get dovecot append clients= msgs_per_s)" "ratio >= 2"
row "append $APPEND_CLIENTS clients: p99 ms" "$(get pillarbox append clients= p99_ms)" \
    "$(get dovecot append clients= p99_ms)" "pillarbox <= 20"
row "push $PUSH_IDLERS idlers: p50 ms" "$(get pillarbox push idlers=$PUSH_IDLERS p50_ms)" \
    "$(get dovecot push idlers=$PUSH_IDLERS p50_ms)" ""
row "push $PUSH_IDLERS idlers: p99 ms" "$(get pillarbox push idlers=$PUSH_IDLERS p99_ms)" \
    "$(get dovecot push idlers=$PUSH_IDLERS p99_ms)" "pillarbox <= 3"
row "idle-mem plain $IDLE_SESSIONS: RSS KiB/session" \
    "$(get pillarbox idle-mem "transport=plain requested=$IDLE_SESSIONS" rss_kib_per_session)" \
    "$(get dovecot idle-mem "transport=plain requested=$IDLE_SESSIONS" rss_kib_per_session)" "pillarbox <= 8"
row "idle-mem plain $IDLE_SESSIONS: PSS KiB/session" \
    "$(get pillarbox idle-mem "transport=plain requested=$IDLE_SESSIONS" pss_kib_per_session)" \
    "$(get dovecot idle-mem "transport=plain requested=$IDLE_SESSIONS" pss_kib_per_session)" ""
row "idle-mem plain $IDLE_SESSIONS: messages per INBOX" \
    "$(get pillarbox idle-mem "transport=plain requested=$IDLE_SESSIONS" inbox_msgs_avg)" \
    "$(get dovecot idle-mem "transport=plain requested=$IDLE_SESSIONS" inbox_msgs_avg)" ""
row "idle-mem tls $IDLE_SESSIONS: RSS KiB/session" \
    "$(get pillarbox idle-mem "transport=tls requested=$IDLE_SESSIONS" rss_kib_per_session)" \
    "$(get dovecot idle-mem "transport=tls requested=$IDLE_SESSIONS" rss_kib_per_session)" ""
row "idle-mem tls $IDLE_SESSIONS: PSS KiB/session" \
    "$(get pillarbox idle-mem "transport=tls requested=$IDLE_SESSIONS" pss_kib_per_session)" \
    "$(get dovecot idle-mem "transport=tls requested=$IDLE_SESSIONS" pss_kib_per_session)" ""
if [ "$BULK_MESSAGES" -gt 0 ]; then
    for k in repeat_ms ranges_ms saved_ms expunge_ms noop_ms idle_ms server_cpu_s; do
        row "bulk expunge of $((BULK_MESSAGES / 2)) of $BULK_MESSAGES: $k" \
            "$(get pillarbox bulk messages=$BULK_MESSAGES $k)" "$(get dovecot bulk messages=$BULK_MESSAGES $k)" ""
    done
fi
if [ "$PB_IDLE_SESSIONS" -gt 0 ]; then
    row "idle-mem plain $PB_IDLE_SESSIONS: RSS KiB/session" \
        "$(get pillarbox idle-mem "transport=plain requested=$PB_IDLE_SESSIONS" rss_kib_per_session)" "" "pillarbox <= 8"
    row "idle-mem plain $PB_IDLE_SESSIONS: marginal RSS KiB/session" \
        "$(get pillarbox idle-mem "transport=plain requested=$PB_IDLE_SESSIONS" rss_kib_marginal)" "" "pillarbox <= 8"
    row "idle-mem plain $PB_IDLE_SESSIONS: sessions actually opened" \
        "$(get pillarbox idle-mem "transport=plain requested=$PB_IDLE_SESSIONS" sessions)" "" ""
    row "idle-mem tls $PB_IDLE_SESSIONS: RSS KiB/session" \
        "$(get pillarbox idle-mem "transport=tls requested=$PB_IDLE_SESSIONS" rss_kib_per_session)" "" ""
    row "idle-mem tls $PB_IDLE_SESSIONS: marginal RSS KiB/session" \
        "$(get pillarbox idle-mem "transport=tls requested=$PB_IDLE_SESSIONS" rss_kib_marginal)" "" ""
fi
if [ "$PB_PUSH_BIG" -gt 0 ]; then
    row "push $PB_PUSH_BIG idlers: p50 ms" "$(get pillarbox push idlers=$PB_PUSH_BIG p50_ms)" "" ""
    row "push $PB_PUSH_BIG idlers: p99 ms" "$(get pillarbox push idlers=$PB_PUSH_BIG p99_ms)" "" ""
fi
if grep -q "Fatal\|Panic" "$DC_DIR/dovecot.log" 2>/dev/null; then
    say "dovecot log errors"
    grep "Fatal\|Panic" "$DC_DIR/dovecot.log" | sort | uniq -c | head
fi
if grep -qi "panic\|ERROR" "$PB_DIR/server.log" 2>/dev/null; then
    say "pillarbox log errors"
    grep -i "panic\|ERROR" "$PB_DIR/server.log" | head
fi
