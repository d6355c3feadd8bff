#!/usr/bin/env bash
# stop-brokers.sh — stop the brokers that scripts/start-brokers.sh started in
# DIR (SIGTERM, then SIGKILL after 5 s), stop its watchdog if any, and remove
# DIR. Safe to call twice: a missing DIR is not an error.
#
# usage: scripts/stop-brokers.sh DIR
set -euo pipefail

log() { printf 'stop-brokers: %s\n' "$*" >&2; }

if [[ $# -ne 1 || -z $1 ]]; then
    log "usage: $0 DIR"
    exit 2
fi
[[ -d $1 ]] || exit 0
DIR=$(cd "$1" && pwd -P)

pid_running() { # alive and not a zombie
    local stat
    if { stat=$(<"/proc/$1/stat"); } 2>/dev/null; then
        stat=${stat##*) }
        [[ ${stat%% *} != Z ]]
    else
        kill -0 "$1" 2>/dev/null
    fi
}

# Only signal a recorded pid while it is still one of ours: every process that
# start-brokers.sh starts has DIR on its command line, so a pid reused by an
# unrelated process since then is left alone.
ours() {
    local cmdline
    pid_running "$1" || return 1
    [[ -r /proc/$1/cmdline ]] || return 0
    cmdline=$(tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline") || return 1
    [[ $cmdline == *"$DIR/"* || $cmdline == *" $DIR "* ]]
}

PIDS=()
# The watchdog first, so it cannot start a second stop; when the watchdog
# itself runs this script (it execs it), its pid is ours ($$) and is skipped.
for name in watchdog tansu nats noida; do
    pidfile=$DIR/$name.pid
    [[ -f $pidfile ]] || continue
    pid=$(<"$pidfile")
    [[ $pid =~ ^[0-9]+$ ]] || continue
    [[ $pid -eq $$ ]] && continue
    if ours "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        PIDS+=("$pid")
    fi
done

if [[ ${#PIDS[@]} -gt 0 ]]; then
    for ((i = 0; i < 50; i++)); do
        alive=0
        for pid in "${PIDS[@]}"; do
            if pid_running "$pid"; then alive=1; fi
        done
        [[ $alive -eq 0 ]] && break
        sleep 0.1
    done
    for pid in "${PIDS[@]}"; do
        if pid_running "$pid"; then
            log "pid $pid did not stop within 5 s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
fi

if [[ -f $DIR/.dft-brokers ]]; then
    rm -rf -- "$DIR"
else
    log "$DIR was not created by start-brokers.sh (no .dft-brokers marker); not removing it"
fi
