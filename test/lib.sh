# test/lib.sh: shared by test/run, test/demo and bench/run (sourced, not run).
#
# Installs the Debian packages a command needs when they are missing, builds
# and installs the extension, and starts a private throwaway cluster (its own
# temporary directory, Unix socket only, choreograph preloaded) that is
# stopped and removed when the calling script exits.  It never touches a
# server it did not start.

set -euo pipefail

PG_MAJOR=${PG_MAJOR:-15}
# PGBIN may point at another installation (a private, relocated copy)
PGBIN=${PGBIN:-/usr/lib/postgresql/$PG_MAJOR/bin}
export PATH="$PGBIN:$PATH"
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() { printf '\n== %s\n' "$*" >&2; }

# as_root CMD...: runs a command as root (directly, or through sudo)
as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# need_packages PKG...: installs the Debian packages that are missing
need_packages() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        -o Dpkg::Options::=--force-confold "${missing[@]}" >/dev/null
}

# build_and_install: builds with warnings as errors, installs into PostgreSQL
build_and_install() {
    log "building and installing choreograph"
    make -C "$REPO" -s PG_CONFIG="$PGBIN/pg_config" all
    as_root make -C "$REPO" -s PG_CONFIG="$PGBIN/pg_config" install
}

# as_cluster_owner CMD...: runs a command as the owner of the cluster
# (initdb refuses root, so root hands the cluster to the postgres user)
as_cluster_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

stop_cluster() {
    if [ -n "${CLUSTER_DIR:-}" ] && [ -d "$CLUSTER_DIR" ]; then
        as_cluster_owner pg_ctl -D "$CLUSTER_DIR/data" -m immediate stop >/dev/null 2>&1 || true
        rm -rf "$CLUSTER_DIR"
    fi
}

# start_cluster [SETTING...]: starts a private cluster and points libpq at it
# (PGHOST, PGPORT, PGUSER); extra settings are lines for postgresql.conf
start_cluster() {
    CLUSTER_DIR=$(mktemp -d /tmp/choreograph.XXXXXX)
    chmod 755 "$CLUSTER_DIR"
    [ "$(id -u)" = 0 ] && chown postgres: "$CLUSTER_DIR"
    trap stop_cluster EXIT
    export PGHOST=$CLUSTER_DIR PGPORT=${CHOREO_PORT:-54329} PGUSER=postgres PGDATABASE=postgres
    log "starting a private cluster in $CLUSTER_DIR"
    as_cluster_owner initdb -D "$CLUSTER_DIR/data" -U postgres -A trust \
        --no-sync >"$CLUSTER_DIR/initdb.log" 2>&1 || { cat "$CLUSTER_DIR/initdb.log"; return 1; }
    {
        echo "listen_addresses = ''"
        echo "unix_socket_directories = '$CLUSTER_DIR'"
        echo "port = $PGPORT"
        echo "shared_preload_libraries = 'choreograph'"
        echo "max_prepared_transactions = 10"
        for setting in "$@"; do echo "$setting"; done
    } >>"$CLUSTER_DIR/data/postgresql.conf"
    as_cluster_owner pg_ctl -D "$CLUSTER_DIR/data" -l "$CLUSTER_DIR/server.log" -w start >/dev/null \
        || { cat "$CLUSTER_DIR/server.log"; return 1; }
}
