#!/usr/bin/env bash
# A throwaway PostgreSQL server on 127.0.0.1 for the store tests (what .ci/run does):
#   scripts/postgres.sh start DIR PORT   # initdb DIR, start, create database `modis`; prints the SQLAlchemy URL
#   scripts/postgres.sh stop DIR
# Installs Debian's postgresql when it is missing and apt is usable. PostgreSQL refuses to run as root, so as root
# the server runs as the `postgres` user.
set -euo pipefail
action=${1:?start|stop}; dir=${2:?data folder}; port=${3:-55432}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$bin" ] && [ "$action" = start ]; then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        apt-get install -y -q postgresql >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q postgresql >/dev/null 2>&1; }
        bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    else
        echo "postgres.sh: PostgreSQL is not installed and cannot be installed here" >&2; exit 1
    fi
fi
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
case "$action" in
start)
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    as_pg "$bin/initdb" -D "$dir" -U modis --auth=trust -E UTF8 >/dev/null
    as_pg "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off" start >/dev/null
    as_pg "$bin/createdb" -h 127.0.0.1 -p "$port" -U modis modis
    echo "postgresql+psycopg://modis@127.0.0.1:$port/modis"
    ;;
stop)
    [ -d "$dir" ] && as_pg "$bin/pg_ctl" -D "$dir" -m fast -w stop >/dev/null || true
    rm -rf "$dir"
    ;;
esac
