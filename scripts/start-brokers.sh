#!/usr/bin/env bash
# start-brokers.sh — start throw-away brokers for the integration tests:
# tansu (Kafka API, SQLite storage), nats-server (JetStream) and noida-db (a
# second Kafka-API broker, with transactions), each on a free 127.0.0.1 port,
# with all state and logs in one directory.
#
# usage: scripts/start-brokers.sh [--dir DIR] [--owner-pid PID] [--only kafka|nats|kafka-txn]
#
#   --dir DIR        state directory (default: a new `mktemp -d`)
#   --owner-pid PID  also start a watchdog that stops the brokers and removes
#                    DIR once PID has exited (even if it was SIGKILLed)
#   --only WHICH     start only the Kafka (tansu), the NATS or the transactional
#                    Kafka (noida-db) broker
#
# On success prints (and writes to DIR/env) only these lines on stdout:
#   KAFKA_BOOTSTRAP=127.0.0.1:PORT
#   NATS_URL=nats://127.0.0.1:PORT
#   KAFKA_TXN_BOOTSTRAP=127.0.0.1:PORT
#   BROKERS_DIR=DIR
# and exits 0, leaving the brokers running detached (logs DIR/tansu.log and
# DIR/nats.log, DIR/noida.log; pids DIR/<name>.pid). Diagnostics go to stderr.
# Stop them with scripts/stop-brokers.sh DIR. Binaries are taken from
# $DFT_CACHE/bin (see scripts/install-brokers.sh), then from PATH.
# DFT_BROKER_START_TIMEOUT (default 30 s) bounds the wait for each broker;
# DFT_TANSU_LOG (default error) is tansu's log filter (RUST_LOG syntax).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
DFT_CACHE=${DFT_CACHE:-$HOME/.cache/datafusion-topics}
START_TIMEOUT=${DFT_BROKER_START_TIMEOUT:-30}
PORT_ATTEMPTS=3

log() { printf 'start-brokers: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
    sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}" >&2
    exit "${1:-2}"
}

DIR=
OWNER_PID=
ONLY=
while [[ $# -gt 0 ]]; do
    case $1 in
        --dir) [[ $# -ge 2 ]] || usage; DIR=$2; shift 2 ;;
        --dir=*) DIR=${1#*=}; shift ;;
        --owner-pid) [[ $# -ge 2 ]] || usage; OWNER_PID=$2; shift 2 ;;
        --owner-pid=*) OWNER_PID=${1#*=}; shift ;;
        --only) [[ $# -ge 2 ]] || usage; ONLY=$2; shift 2 ;;
        --only=*) ONLY=${1#*=}; shift ;;
        -h | --help) usage 0 ;;
        *) log "unknown argument: $1"; usage ;;
    esac
done

case $ONLY in
    '' | kafka | nats | kafka-txn) ;;
    *) die "--only must be 'kafka', 'nats' or 'kafka-txn', not '$ONLY'" ;;
esac
want() { [[ -z $ONLY || $ONLY == "$1" ]]; }

if [[ -n $OWNER_PID ]]; then
    [[ $OWNER_PID =~ ^[0-9]+$ ]] || die "--owner-pid must be a process id, not '$OWNER_PID'"
    kill -0 "$OWNER_PID" 2>/dev/null || die "--owner-pid $OWNER_PID is not a running process"
fi

command -v python3 >/dev/null 2>&1 || die "python3 is required (free ports, readiness checks)"

find_bin() {
    local name=$1 path
    if [[ -x $DFT_CACHE/bin/$name ]]; then
        printf '%s\n' "$DFT_CACHE/bin/$name"
    elif path=$(command -v "$name" 2>/dev/null); then
        printf '%s\n' "$path"
    else
        die "$name not found in $DFT_CACHE/bin or on PATH; run scripts/install-brokers.sh first"
    fi
}

TANSU_BIN=
NATS_BIN=
if want kafka; then TANSU_BIN=$(find_bin tansu); fi
if want nats; then NATS_BIN=$(find_bin nats-server); fi
NOIDA_BIN=
if want kafka-txn; then NOIDA_BIN=$(find_bin noida-db); fi

# --- state directory ----------------------------------------------------------
if [[ -z $DIR ]]; then
    DIR=$(mktemp -d "${TMPDIR:-/tmp}/dft-brokers.XXXXXX")
else
    mkdir -p -- "$DIR"
fi
DIR=$(cd "$DIR" && pwd -P)
# The path ends up in a sqlite:// URL: keep it free of characters URLs encode.
[[ $DIR =~ ^[A-Za-z0-9._/+-]+$ ]] || die "state directory '$DIR' must match [A-Za-z0-9._/+-]"

pid_running() { # pid_running PID — alive and not a zombie
    local stat
    if { stat=$(<"/proc/$1/stat"); } 2>/dev/null; then
        stat=${stat##*) }
        [[ ${stat%% *} != Z ]]
    else
        kill -0 "$1" 2>/dev/null
    fi
}

for name in tansu nats noida watchdog; do
    if [[ -f $DIR/$name.pid ]] && pid_running "$(<"$DIR/$name.pid")"; then
        die "$DIR already has a running $name (pid $(<"$DIR/$name.pid")); use scripts/stop-brokers.sh $DIR"
    fi
done
: >"$DIR/.dft-brokers" # marks the directory as ours for stop-brokers.sh
# tansu loads a .env from its working directory or the nearest parent; an empty
# one here keeps whatever lies above DIR from configuring it.
: >"$DIR/.env"

STARTED_PIDS=()
SUCCESS=0
cleanup_on_failure() {
    [[ $SUCCESS -eq 1 ]] && return
    local pid
    for pid in "${STARTED_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    if [[ ${#STARTED_PIDS[@]} -gt 0 ]]; then
        sleep 1
        for pid in "${STARTED_PIDS[@]}"; do
            kill -KILL "$pid" 2>/dev/null || true
        done
    fi
    rm -f -- "$DIR/tansu.pid" "$DIR/nats.pid"
    log "brokers stopped; logs kept in $DIR (remove with scripts/stop-brokers.sh $DIR)"
}
trap cleanup_on_failure EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# wait_ready PID PORT TIMEOUT: exit 0 once PID itself listens on 127.0.0.1:PORT
# and a TCP connect succeeds, 2 if PID died first, 1 on timeout. Checking that
# the listening socket belongs to PID keeps a parallel instance that happened to
# grab the same port from being mistaken for ours.
wait_ready() {
    python3 - "$@" <<'PY'
import os, socket, sys, time

pid, port, timeout = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
local = "0100007F:%04X" % port


def alive():
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        try:
            os.kill(pid, 0)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:
            return True


def listening():
    try:
        with open("/proc/net/tcp") as f:
            rows = [line.split() for line in f.read().splitlines()[1:]]
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return True  # no /proc: rely on the connect below
    inodes = {r[9] for r in rows if r[1] == local and r[3] == "0A"}
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:[") and link[8:-1] in inodes:
            return True
    return False


deadline = time.monotonic() + timeout
while time.monotonic() < deadline:
    if not alive():
        sys.exit(2)
    if listening():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            sys.exit(0)
        except OSError:
            pass
    time.sleep(0.1)
sys.exit(1)
PY
}

# launch NAME PORT CMD...: start CMD detached (own session, no terminal, cwd
# DIR), wait for it to listen on PORT. Sets LAUNCH_RC: 0 ready, 1 timeout,
# 2 exited.
launch() {
    local name=$1 port=$2 pid
    shift 2
    (cd "$DIR" && exec setsid nohup "$@" >"$DIR/$name.log" 2>&1 </dev/null) &
    pid=$!
    STARTED_PIDS+=("$pid")
    printf '%s\n' "$pid" >"$DIR/$name.pid"
    LAUNCH_RC=0
    wait_ready "$pid" "$port" "$START_TIMEOUT" || LAUNCH_RC=$?
}

# start_broker NAME LABEL CMD-BUILDER: pick a port, launch, retry on a port clash.
PORT=
start_broker() {
    local name=$1 label=$2 builder=$3 attempt reason
    for ((attempt = 1; attempt <= PORT_ATTEMPTS; attempt++)); do
        PORT=$(free_port)
        "$builder" "$PORT"
        launch "$name" "$PORT" "${CMD[@]}"
        case $LAUNCH_RC in
            0) return 0 ;;
            2)
                if grep -qiE 'address (already )?in use|AddrInUse' "$DIR/$name.log" \
                    && [[ $attempt -lt $PORT_ATTEMPTS ]]; then
                    log "$label: port $PORT was taken meanwhile; retrying on another port"
                    continue
                fi
                reason="exited during startup"
                ;;
            *) reason="did not accept connections on 127.0.0.1:$PORT within ${START_TIMEOUT}s" ;;
        esac
        log "$label $reason; log: $DIR/$name.log"
        tail -n 20 "$DIR/$name.log" 2>/dev/null | sed 's/^/    /' >&2 || true
        exit 1
    done
}

CMD=()
tansu_cmd() {
    # Unset every variable tansu 0.6.0 reads for its options, so that nothing in
    # the caller's environment can point it at a schema registry, data lake or
    # OTLP collector elsewhere: the broker talks to 127.0.0.1 and its SQLite file.
    CMD=(env -u CLUSTER_ID -u LISTENER_URL -u ADVERTISED_LISTENER_URL -u STORAGE_ENGINE
        -u SCHEMA_REGISTRY -u OTEL_EXPORTER_OTLP_ENDPOINT -u DATA_LAKE -u ICEBERG_CATALOG
        -u ICEBERG_NAMESPACE -u ICEBERG_WAREHOUSE -u DELTA_DATABASE
        # plain-text log; the caller's RUST_LOG is for the tests, not for tansu
        NO_COLOR=1 RUST_LOG="${DFT_TANSU_LOG:-error}"
        "$TANSU_BIN" broker
        --listener-url "tcp://127.0.0.1:$1"
        --advertised-listener-url "tcp://127.0.0.1:$1"
        # four slashes: sqlite:// + an absolute path (three would be relative)
        --storage-engine "sqlite:///$DIR/kafka.db")
}

nats_cmd() {
    # Client port only: monitoring (-m), cluster, gateway, leafnode and
    # websocket listeners are all off unless configured, so none is opened.
    CMD=("$NATS_BIN" -js -a 127.0.0.1 -p "$1" -sd "$DIR/nats" --name "dft-$$-$1")
}

noida_cmd() {
    # Only the Kafka service, bound to loopback; data in DIR/noida.
    CMD=("$NOIDA_BIN" start --only kafka --host 127.0.0.1 --kafka-port "$1"
        --data-dir "$DIR/noida")
}

ENV_LINES=()
if want kafka; then
    start_broker tansu "tansu (Kafka)" tansu_cmd
    ENV_LINES+=("KAFKA_BOOTSTRAP=127.0.0.1:$PORT")
fi
if want nats; then
    start_broker nats "nats-server (NATS JetStream)" nats_cmd
    ENV_LINES+=("NATS_URL=nats://127.0.0.1:$PORT")
fi
if want kafka-txn; then
    start_broker noida "noida-db (Kafka with transactions)" noida_cmd
    ENV_LINES+=("KAFKA_TXN_BOOTSTRAP=127.0.0.1:$PORT")
fi
ENV_LINES+=("BROKERS_DIR=$DIR")

# --- watchdog -----------------------------------------------------------------
if [[ -n $OWNER_PID ]]; then
    # shellcheck disable=SC2016 # expanded by the watchdog's own bash
    watchdog='
owner=$1 dir=$2 stop=$3
owner_alive() {
    local stat
    if { stat=$(<"/proc/$owner/stat"); } 2>/dev/null; then
        stat=${stat##*) }
        [[ ${stat%% *} != Z ]]
    else
        kill -0 "$owner" 2>/dev/null
    fi
}
while [[ -d $dir ]] && owner_alive; do sleep 1; done
[[ -d $dir ]] || exit 0
echo "owner $owner gone; stopping brokers in $dir"
exec bash "$stop" "$dir"
'
    (cd / && exec setsid nohup bash -c "$watchdog" dft-brokers-watchdog \
        "$OWNER_PID" "$DIR" "$SCRIPT_DIR/stop-brokers.sh" >"$DIR/watchdog.log" 2>&1 </dev/null) &
    printf '%s\n' "$!" >"$DIR/watchdog.pid"
fi

printf '%s\n' "${ENV_LINES[@]}" >"$DIR/env.tmp"
mv -f -- "$DIR/env.tmp" "$DIR/env"
SUCCESS=1
printf '%s\n' "${ENV_LINES[@]}"
