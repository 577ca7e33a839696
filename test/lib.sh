# test/lib.sh: shared by test/run, test/demo and bench/run (sourced, not run).
# shellcheck shell=bash
#
# Installs the Debian packages a command needs when they are missing, builds
# and installs the extension, and starts a private throwaway cluster (Unix
# socket only, choreograph preloaded).  It never touches a server it did
# not start.
#
# It works from a clone anywhere, also one the cluster owner (postgres, when
# run as root) cannot enter: whatever runs as the owner runs in the run's
# own temporary directory, never in the clone, and reads nothing there.
#
# Several runs may go on at once, from one clone or several:
# - each run keeps everything in its own directory, $RUN_DIR
#   (/tmp/choreograph-run.XXXXXX), which its traps remove, with every
#   cluster in it stopped, however the run ends; a run killed so hard that
#   its traps could not run (SIGKILL) is cleaned up by the next run;
# - the port of each cluster is reserved in a directory shared by all runs
#   ($PORT_DIR, also given to PostgreSQL's TAP modules);
# - building and installing, and installing packages, are serialised with
#   flock(1): two builds in one tree would race on the object files;
# - every wait has a bound and says what it waited for when it gives up.

set -euo pipefail
# the make calls below are not part of the `make test` or `make demo` that
# runs this script: they must not inherit its flags (or its jobserver)
unset MAKEFLAGS MFLAGS MAKELEVEL

# PGBIN may point at another installation (a private, relocated copy): the
# major version is then its pg_config's; PG_MAJOR alone picks Debian's
if [ -z "${PG_MAJOR:-}" ] && [ -n "${PGBIN:-}" ] && [ -x "$PGBIN/pg_config" ]; then
    PG_MAJOR=$("$PGBIN/pg_config" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
fi
PG_MAJOR=${PG_MAJOR:-15}
PGBIN=${PGBIN:-/usr/lib/postgresql/$PG_MAJOR/bin}
export PATH="$PGBIN:$PATH"
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# lock files and temporary directories shared by all runs on the machine
SHARED_TMP=/tmp

log() { printf '\n== %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# as_root CMD...: runs a command as root (directly, or through sudo)
as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# The clusters' owner: initdb refuses root, so root hands them to postgres
if [ "$(id -u)" = 0 ]; then CLUSTER_OWNER=postgres; else CLUSTER_OWNER=$(id -un); fi

# as_cluster_owner [-C DIR] CMD...: runs a command as the owner of the
# clusters, in DIR (by default the run's directory): never in the caller's
# working directory, which may be in a clone the owner cannot enter
as_cluster_owner() {
    local dir=${RUN_DIR:-/}
    if [ "${1:-}" = -C ]; then dir=$2; shift 2; fi
    if [ "$(id -u)" = 0 ]; then
        (cd "$dir" && exec runuser -u "$CLUSTER_OWNER" -- "$@")
    else
        (cd "$dir" && exec "$@")
    fi
}

# give_to_owner PATH...: hands files made by root to the clusters' owner
give_to_owner() {
    if [ "$(id -u)" = 0 ]; then chown -R "$CLUSTER_OWNER": "$@"; fi
}

# with_lock NAME SECONDS WHAT CMD...: runs CMD holding the lock NAME, shared
# by every run on the machine, waiting at most SECONDS for WHAT to finish.
# CMD does not inherit the lock's descriptor, so a daemon it may start
# (a package's postinst) cannot keep the lock.
with_lock() {
    local name=$1 seconds=$2 what=$3 file fd
    shift 3
    file=$SHARED_TMP/choreograph-$name.lock
    [ -e "$file" ] || (umask 022 && : >>"$file")
    exec {fd}<"$file"
    if ! flock -n "$fd"; then
        log "waiting (at most ${seconds}s) for $what to finish (lock $file)"
        flock -w "$seconds" "$fd" \
            || die "gave up after ${seconds}s waiting for $what to finish (lock $file)"
    fi
    "$@" {fd}<&-
    exec {fd}<&-
}

# missing_packages PKG...: prints the Debian packages that are not installed
missing_packages() {
    local pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || echo "$pkg"
    done
}

# need_packages PKG...: installs the Debian packages that are missing, one
# run at a time
need_packages() {
    [ -z "$(missing_packages "$@")" ] && return 0
    with_lock apt 1200 "another run's package installation" install_packages "$@"
}

# want_packages PACKAGE...: installs them if it can (from the package lists
# as they are, then once more after one update), and says so if not
want_packages() {
    [ -z "$(missing_packages "$@")" ] && return 0
    (with_lock apt 1200 "another run's package installation" try_install_packages "$@") \
        || log "could not install $*: the tests that need them are skipped"
}
try_install_packages() {
    local install=(as_root env DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTIONS[@]}" install
        -y -qq -o Dpkg::Options::=--force-confold)
    [ -z "$(missing_packages "$@")" ] && return 0
    log "installing $* (optional)"
    "${install[@]}" "$@" >/dev/null 2>&1 && return 0
    as_root apt-get "${APT_OPTIONS[@]}" update -qq >/dev/null 2>&1 || return 1
    "${install[@]}" "$@" >/dev/null 2>&1
}

APT_OPTIONS=(-o DPkg::Lock::Timeout=600)
install_packages() {
    local missing try
    # another run may have installed them while this one waited
    mapfile -t missing < <(missing_packages "$@")
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing ${missing[*]}"
    # DPkg::Lock::Timeout waits for dpkg's lock, but apt-get update fails at
    # once when another apt (not one of these runs) holds the lists' lock
    for try in 1 2 3 4 5 6 7 8 9 10 11 12; do
        as_root apt-get "${APT_OPTIONS[@]}" update -qq && break
        [ $try = 12 ] && die "gave up: apt-get update failed 12 times (the last errors are above)"
        log "apt-get update failed (try $try of 12; another apt may hold its lock): again in 10s"
        sleep 10
    done
    as_root env DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTIONS[@]}" install -y -qq \
        -o Dpkg::Options::=--force-confold "${missing[@]}" >/dev/null
}

# build_and_install: builds with warnings as errors, installs into
# PostgreSQL; one run at a time on the machine
build_and_install() {
    log "building and installing choreograph"
    with_lock build 600 "another run's build and install" build_and_install_locked
}
build_and_install_locked() {
    make -C "$REPO" -s -j2 PG_CONFIG="$PGBIN/pg_config" all
    as_root make -C "$REPO" -s PG_CONFIG="$PGBIN/pg_config" install
}

# The run's directory ---------------------------------------------------

# stop_clusters_in DIR: stops every cluster under DIR (this run's own, and
# those its TAP tests left running when it was interrupted)
stop_clusters_in() {
    local pidfile
    find "$1" -name postmaster.pid 2>/dev/null | while read -r pidfile; do
        as_cluster_owner -C / "$PGBIN/pg_ctl" -D "$(dirname "$pidfile")" -m immediate -w -t 30 \
            stop >/dev/null 2>&1 || true
    done
}

# remove_run_dir DIR: stops the clusters in a run's directory and removes it
remove_run_dir() {
    stop_clusters_in "$1"
    rm -rf "$1"
}

cleanup() {
    set +e
    # a second signal (CI often sends more than one; test/in_root passes its
    # own on) must not cut the cleanup short, leaving clusters running
    trap '' HUP INT TERM
    [ -n "${RESERVED_PORT_FILE:-}" ] && rm -f "$RESERVED_PORT_FILE"
    [ -n "${RUN_DIR:-}" ] && remove_run_dir "$RUN_DIR"
}

# reap_dead_runs: removes what runs killed with SIGKILL (their traps never
# ran) left behind: directories whose run is gone, and their clusters
reap_dead_runs() {
    local dir pid
    for dir in "$SHARED_TMP"/choreograph-run.*; do
        [ -O "$dir" ] || [ "$(id -u)" = 0 ] || continue
        [ -f "$dir/run.pid" ] || continue   # a run that is just starting
        pid=$(cat "$dir/run.pid" 2>/dev/null) || continue
        [ -n "$pid" ] && [ -d "/proc/$pid" ] && continue
        log "removing $dir, left by a run that was killed (pid $pid)"
        remove_run_dir "$dir"
    done
}

# make_run_dir: creates this run's directory and the traps that remove it
make_run_dir() {
    reap_dead_runs
    RUN_DIR=$(mktemp -d "$SHARED_TMP/choreograph-run.XXXXXX")
    trap cleanup EXIT
    trap 'exit 129' HUP
    trap 'exit 130' INT
    trap 'exit 143' TERM
    chmod 755 "$RUN_DIR"
    give_to_owner "$RUN_DIR"
    echo $$ >"$RUN_DIR/run.pid"
}
make_run_dir

# Ports -----------------------------------------------------------------

# Reservations of ports, shared by all runs: PostgreSQL's TAP modules keep
# theirs here (PG_TEST_PORT_DIR, one file per port naming the process that
# holds it, under flock), between 10200 and 32767; the private clusters of
# start_cluster take theirs here too, between 40000 and 49999, where the TAP
# modules never look: those check a holder with kill(pid, 0), which fails
# for a root-owned holder when the tests run as postgres.
PORT_DIR=$SHARED_TMP/choreograph-ports.$CLUSTER_OWNER
mkdir -p "$PORT_DIR"
[ "$(stat -c %U "$PORT_DIR")" = "$CLUSTER_OWNER" ] || give_to_owner "$PORT_DIR"
[ "$(stat -c %U "$PORT_DIR")" = "$CLUSTER_OWNER" ] \
    || die "$PORT_DIR belongs to $(stat -c %U "$PORT_DIR"), not to $CLUSTER_OWNER"

# reserve_port: sets PGPORT to a port no other run holds, held until this
# run exits; nothing may listen on it over TCP either
reserve_port() {
    with_lock ports 60 "another run's port reservation" reserve_port_locked
}
reserve_port_locked() {
    local try port file holder
    for try in $(seq 500); do
        port=$((40000 + RANDOM % 10000))
        file=$PORT_DIR/$port.rsv
        holder=$({ tr -dc 0-9 <"$file"; } 2>/dev/null || true)
        [ -n "$holder" ] && [ -d "/proc/$holder" ] && continue
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && continue
        printf '%10d\n' $$ >"$file"
        RESERVED_PORT_FILE=$file
        PGPORT=$port
        return 0
    done
    die "found no free port between 40000 and 49999 in 500 tries (reservations: $PORT_DIR)"
}

# The cluster -----------------------------------------------------------

# start_cluster [SETTING...]: starts a private cluster in $CLUSTER_DIR and
# points libpq at it (PGHOST, PGPORT, PGUSER); extra settings are lines for
# postgresql.conf
start_cluster() {
    CLUSTER_DIR=$RUN_DIR/cluster
    mkdir "$CLUSTER_DIR"
    give_to_owner "$CLUSTER_DIR"
    reserve_port
    export PGHOST=$CLUSTER_DIR PGPORT PGUSER=postgres PGDATABASE=postgres
    log "starting a private cluster in $CLUSTER_DIR (port $PGPORT)"
    as_cluster_owner "$PGBIN/initdb" -D "$CLUSTER_DIR/data" -U postgres -A trust \
        --no-sync >"$RUN_DIR/initdb.log" 2>&1 || { cat "$RUN_DIR/initdb.log"; return 1; }
    {
        echo "listen_addresses = ''"
        echo "unix_socket_directories = '$CLUSTER_DIR'"
        echo "port = $PGPORT"
        echo "shared_preload_libraries = 'choreograph'"
        echo "max_prepared_transactions = 10"
        for setting in "$@"; do echo "$setting"; done
    } >>"$CLUSTER_DIR/data/postgresql.conf"
    # pg_ctl -w waits at most 60 seconds for the server to accept connections
    as_cluster_owner "$PGBIN/pg_ctl" -D "$CLUSTER_DIR/data" -l "$CLUSTER_DIR/server.log" \
        -w -t 60 start >/dev/null || { cat "$CLUSTER_DIR/server.log"; return 1; }
}
