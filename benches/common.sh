# Shared by the benchmark scripts (sourced, not run): Debian's dovecot-imapd
# installed on demand, a work directory removed on exit together with the
# servers the script started (PB_PID, DC_PID), and a port wait.
# Expects `say` to be defined by the caller.

if ! command -v dovecot >/dev/null 2>&1 && [ ! -x /usr/sbin/dovecot ]; then
    say "installing dovecot-imapd"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y dovecot-imapd
fi
DOVECOT=$(command -v dovecot || echo /usr/sbin/dovecot)

WORK=$(mktemp -d)
chmod 755 "$WORK" # Dovecot's unprivileged processes need to traverse it
PB_PID=""
DC_PID=""
cleanup() {
    set +e
    if [ -n "$PB_PID" ]; then kill "$PB_PID" 2>/dev/null; wait "$PB_PID" 2>/dev/null; fi
    if [ -n "$DC_PID" ]; then kill "$DC_PID" 2>/dev/null; wait "$DC_PID" 2>/dev/null; fi
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

# Fails if something already listens on port $1: a server left over from an
# earlier run would otherwise be measured in place of the one started here.
port_free() {
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
        echo "port $1 is already in use (a server left from an earlier run?); stop it or choose other ports" >&2
        return 1
    fi
}

wait_port() {
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "port $1 did not open" >&2
    return 1
}
