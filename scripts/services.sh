#!/usr/bin/env bash
# Start or stop the real services the tests use, on loopback ports, without Docker.
#
#   scripts/services.sh start [postgres] [mariadb] [redis]   (default: all)
#   scripts/services.sh stop
#   scripts/services.sh env        # print the export lines tests read
#
# Data lives under $AGGREGATOR_SERVICES_DIR (default /tmp/aggregator-services); starting is
# idempotent (a running service is left alone). Missing server packages are installed with
# apt-get. Readiness is checked by asking each service, never by sleeping a fixed time.
set -euo pipefail

DIR="${AGGREGATOR_SERVICES_DIR:-/tmp/aggregator-services}"
PG_PORT="${AGGREGATOR_PG_PORT:-55432}"
MYSQL_PORT="${AGGREGATOR_MYSQL_PORT:-53306}"
REDIS_PORT="${AGGREGATOR_REDIS_PORT:-56379}"
PGBIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
APT_UPDATED=""

log() { echo "[services] $*" >&2; }

apt_install() {
  if [ -z "$APT_UPDATED" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

wait_for() {  # wait_for NAME SECONDS COMMAND...
  local name=$1 seconds=$2; shift 2
  for _ in $(seq 1 $((seconds * 4))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.25
  done
  log "$name did not become ready in ${seconds}s"; return 1
}

start_postgres() {
  if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/initdb" ]; then
    log "installing postgresql"; apt_install postgresql
    PGBIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
  fi
  local data="$DIR/postgres/data"
  if pg_isready -h 127.0.0.1 -p "$PG_PORT" -q 2>/dev/null; then
    log "postgres already running on $PG_PORT"; pg_password_role; return
  fi
  mkdir -p "$DIR/postgres"; chown postgres:postgres "$DIR/postgres"; chmod 755 "$DIR"
  if [ ! -f "$data/PG_VERSION" ]; then
    su postgres -c "$PGBIN/initdb -D $data -A trust -U postgres --encoding=UTF8 --locale=C.UTF-8" >/dev/null
    cat >> "$data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$DIR/postgres'
wal_level = logical
max_replication_slots = 20
max_wal_senders = 20
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 256MB
CONF
  fi
  su postgres -c "$PGBIN/pg_ctl -D $data -l $DIR/postgres/server.log -w -t 60 start" >/dev/null
  wait_for postgres 60 pg_isready -h 127.0.0.1 -p "$PG_PORT"
  pg_password_role
  log "postgres ready on 127.0.0.1:$PG_PORT"
}

# Role agg_password (password agg-password) must authenticate with scram-sha-256, for the
# wrong-password tests; every other user keeps trust authentication.
pg_password_role() {
  local data="$DIR/postgres/data" url="postgresql://postgres@127.0.0.1:$PG_PORT/postgres"
  if ! grep -q '^host all agg_password ' "$data/pg_hba.conf"; then
    su postgres -c "sed -i '1i host all agg_password 127.0.0.1/32 scram-sha-256' $data/pg_hba.conf"
    su postgres -c "$PGBIN/pg_ctl -D $data reload" >/dev/null
  fi
  if [ "$(psql "$url" -qAtX -c "SELECT count(*) FROM pg_roles WHERE rolname = 'agg_password'")" = 0 ]; then
    psql "$url" -qAtX -c "SET password_encryption = 'scram-sha-256'; CREATE ROLE agg_password LOGIN PASSWORD 'agg-password'" >/dev/null
  fi
}

start_mariadb() {
  command -v mariadbd >/dev/null || { log "installing mariadb-server"; apt_install mariadb-server; }
  local d="$DIR/mariadb"
  if mariadb-admin --socket="$d/sock" ping >/dev/null 2>&1; then log "mariadb already running on $MYSQL_PORT"; return; fi
  mkdir -p "$d"; chown mysql:mysql "$d"
  if [ ! -d "$d/data/mysql" ]; then
    mariadb-install-db --user=mysql --datadir="$d/data" >"$d/install.log" 2>&1
  fi
  mariadbd --user=mysql --datadir="$d/data" --port="$MYSQL_PORT" --bind-address=127.0.0.1 \
    --socket="$d/sock" --pid-file="$d/pid" --log-bin=mysql-bin --binlog-format=ROW \
    --server-id=1 --innodb-flush-log-at-trx-commit=2 >"$d/server.log" 2>&1 &
  wait_for mariadb 60 mariadb-admin --socket="$d/sock" ping
  mariadb --socket="$d/sock" -uroot -e "CREATE USER IF NOT EXISTS 'agg'@'127.0.0.1' IDENTIFIED BY 'agg';
    GRANT ALL PRIVILEGES ON *.* TO 'agg'@'127.0.0.1' WITH GRANT OPTION; FLUSH PRIVILEGES;"
  log "mariadb ready on 127.0.0.1:$MYSQL_PORT"
}

start_redis() {
  command -v redis-server >/dev/null || { log "installing redis-server"; apt_install redis-server; }
  local d="$DIR/redis"
  if redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then log "redis already running on $REDIS_PORT"; return; fi
  mkdir -p "$d"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
    --pidfile "$d/redis.pid" --dir "$d" --logfile "$d/redis.log"
  wait_for redis 30 redis-cli -p "$REDIS_PORT" ping
  log "redis ready on 127.0.0.1:$REDIS_PORT"
}

stop_all() {
  if [ -n "$PGBIN" ] && [ -f "$DIR/postgres/data/postmaster.pid" ]; then
    su postgres -c "$PGBIN/pg_ctl -D $DIR/postgres/data -m fast stop" >/dev/null 2>&1 || true
  fi
  [ -f "$DIR/mariadb/pid" ] && kill "$(cat "$DIR/mariadb/pid")" 2>/dev/null || true
  [ -f "$DIR/redis/redis.pid" ] && kill "$(cat "$DIR/redis/redis.pid")" 2>/dev/null || true
  log "stopped"
}

print_env() {
  echo "export AGGREGATOR_TEST_PG_URL=postgresql://postgres@127.0.0.1:$PG_PORT/postgres"
  echo "export AGGREGATOR_TEST_MYSQL_URL=mysql://agg:agg@127.0.0.1:$MYSQL_PORT/"
  echo "export AGGREGATOR_TEST_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0"
}

cmd="${1:-start}"; shift || true
case "$cmd" in
  start)
    mkdir -p "$DIR"
    services=("$@"); [ ${#services[@]} -eq 0 ] && services=(postgres mariadb redis)
    for s in "${services[@]}"; do "start_$s"; done
    print_env > "$DIR/env"
    ;;
  stop) stop_all ;;
  env) print_env ;;
  *) echo "usage: $0 start [postgres] [mariadb] [redis] | stop | env" >&2; exit 2 ;;
esac
