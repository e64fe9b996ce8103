#!/usr/bin/env bash
# The production profile on one machine: PostgreSQL metadata DB, CeleryExecutor with Redis,
# api-server, scheduler, dag-processor, triggerer and N Celery workers — the same components an
# operator runs on several hosts.
#   deploy/stack.sh start    migrate the DB, create the solver pool, start every component
#   deploy/stack.sh stop     stop them all (TERM, then KILL after 30 s)
#   deploy/stack.sh status   which components run
#   deploy/stack.sh rotate-passwords   new PostgreSQL/Redis passwords (then stop + start)
#   deploy/stack.sh env      print the environment (source it: eval "$(deploy/stack.sh env)")
# State (logs, pids, secrets, runs, published rounds) lives in $VOUCHER_STACK_HOME
# (default <project>/airflow-prod, git-ignored).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
export AIRFLOW_HOME="${VOUCHER_STACK_HOME:-$ROOT/airflow-prod}"
export AIRFLOW_CONFIG="$ROOT/airflow.cfg"
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags"   # AIRFLOW_HOME may live anywhere
STATE="$AIRFLOW_HOME/stack"

load_env() {
    mkdir -p "$AIRFLOW_HOME/secrets" "$STATE"
    chmod 700 "$AIRFLOW_HOME/secrets"
    set -a
    # shellcheck disable=SC1091
    source "$ROOT/deploy/production.env"
    set +a
    "$VENV/bin/python" "$ROOT/deploy/make_secrets.py" "$AIRFLOW_HOME"
    AIRFLOW__CORE__FERNET_KEY="$(cat "$AIRFLOW_HOME/secrets/fernet_key")"
    AIRFLOW__API_AUTH__JWT_SECRET="$(cat "$AIRFLOW_HOME/secrets/jwt_secret")"
    AIRFLOW__API__SECRET_KEY="$(cat "$AIRFLOW_HOME/secrets/api_secret_key")"
    export AIRFLOW__CORE__FERNET_KEY AIRFLOW__API_AUTH__JWT_SECRET AIRFLOW__API__SECRET_KEY
    VOUCHER_PG_PASSWORD="$(cat "$AIRFLOW_HOME/secrets/pg_password")"
    VOUCHER_REDIS_PASSWORD="$(cat "$AIRFLOW_HOME/secrets/redis_password")"
    local pg="$VOUCHER_PG_USER:$VOUCHER_PG_PASSWORD@$VOUCHER_PG_HOST:5432/$VOUCHER_PG_DB"
    export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="postgresql+psycopg2://$pg"
    export AIRFLOW__CELERY__RESULT_BACKEND="db+postgresql://$pg"
    export AIRFLOW__CELERY__BROKER_URL="redis://$VOUCHER_REDIS_USER:$VOUCHER_REDIS_PASSWORD@$VOUCHER_REDIS_HOST/0"
    export VOUCHER_SIGNING_KEY="${VOUCHER_SIGNING_KEY:-$AIRFLOW_HOME/secrets/signing_key.pem}"   # signs manifests
    export VOUCHER_RUNS_ROOT="${VOUCHER_RUNS_ROOT:-$AIRFLOW_HOME/runs}"
    export VOUCHER_PUBLISH_ROOT="${VOUCHER_PUBLISH_ROOT:-$AIRFLOW_HOME/published}"
    export AIRFLOW__CORE__PLUGINS_FOLDER="$ROOT/deploy/plugins"   # voucher_guard (only admins set states), voucher_rounds (the view, failure notes)
    VOUCHER_API_TLS_ARGS=""
    if [ -n "${VOUCHER_API_SSL_CERT:-}" ]; then   # TLS: see README "Production profile"
        VOUCHER_API_TLS_ARGS="--ssl-cert $VOUCHER_API_SSL_CERT --ssl-key $VOUCHER_API_SSL_KEY"
    fi
}

ensure_database() {  # a role of its own with the generated password, owning the database
    psql -h "$VOUCHER_PG_HOST" -U postgres -v ON_ERROR_STOP=1 -q \
        -v user="$VOUCHER_PG_USER" -v pass="$VOUCHER_PG_PASSWORD" >/dev/null <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'user') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'user') \gexec
SELECT format('ALTER ROLE %I WITH LOGIN PASSWORD %L', :'user', :'pass') \gexec
SQL
    if ! psql -h "$VOUCHER_PG_HOST" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='$VOUCHER_PG_DB'" \
        | grep -q 1; then
        echo "==> creating PostgreSQL database $VOUCHER_PG_DB (owner $VOUCHER_PG_USER)"
        psql -h "$VOUCHER_PG_HOST" -U postgres -qc "CREATE DATABASE \"$VOUCHER_PG_DB\" OWNER \"$VOUCHER_PG_USER\""
    fi
    # the Celery broker's Redis ACL user (the server's default user is the operator's to lock)
    "$VENV/bin/python" - "$VOUCHER_REDIS_HOST" "$VOUCHER_REDIS_USER" "$VOUCHER_REDIS_PASSWORD" <<'PYEOF'
import sys, redis
host, port = sys.argv[1].rsplit(":", 1)
redis.Redis(host=host, port=int(port)).acl_setuser(sys.argv[2], enabled=True, reset_passwords=True,
    passwords=["+" + sys.argv[3]], keys=["*"], channels=["*"], commands=["+@all"])
PYEOF
}

rotate() {  # new PostgreSQL and Redis passwords, applied; restart the components afterwards
    "$VENV/bin/python" "$ROOT/deploy/make_secrets.py" "$AIRFLOW_HOME" --rotate-db-passwords
    load_env
    ensure_database
    echo "==> PostgreSQL role $VOUCHER_PG_USER and Redis user $VOUCHER_REDIS_USER have new passwords; restart: $0 stop && $0 start"
}

start_component() {  # name, then the airflow arguments; each in its own process group
    local name="$1"; shift
    if [ -f "$STATE/$name.pid" ] && kill -0 "$(cat "$STATE/$name.pid")" 2>/dev/null; then
        echo "    $name already running (pid $(cat "$STATE/$name.pid"))"; return
    fi
    setsid "$VENV/bin/airflow" "$@" >"$STATE/$name.log" 2>&1 < /dev/null &
    echo $! > "$STATE/$name.pid"
    echo "    $name started (pid $!, log $STATE/$name.log)"
}

wait_for_api() {
    for _ in $(seq 1 120); do
        if "$VENV/bin/python" -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$VOUCHER_API_PORT/api/v2/monitor/health', timeout=2)" 2>/dev/null; then
            return 0
        fi
        sleep 1
    done
    echo "api-server did not answer on port $VOUCHER_API_PORT; see $STATE/api-server.log" >&2
    return 1
}

create_users() {  # one named account per role; passwords in $AIRFLOW_HOME/passwords.json.generated
    "$VENV/bin/python" - "$AIRFLOW_HOME/passwords.json.generated" <<'PYEOF' | while read -r user role password; do
import json, sys
roles = {"officer": "officer", "approver": "approver", "operator": "operator", "admin": "Admin"}
for user, password in json.load(open(sys.argv[1])).items():
    print(user, roles.get(user, "Viewer"), password)
PYEOF
        if ! "$VENV/bin/airflow" users list -o plain 2>/dev/null | awk '{print $2}' | grep -qx "$user"; then
            "$VENV/bin/airflow" users create --username "$user" --role "$role" --firstname "$user" \
                --lastname "voucher" --email "$user@voucher.invalid" --password "$password" >>"$STATE/fab-setup.log" 2>&1 \
                || { cat "$STATE/fab-setup.log"; exit 1; }
        fi
    done
}

start() {
    load_env
    ensure_database
    echo "==> airflow db migrate ($VOUCHER_PG_DB on $VOUCHER_PG_HOST)"
    "$VENV/bin/airflow" db migrate >"$STATE/db-migrate.log" 2>&1 || { cat "$STATE/db-migrate.log"; exit 1; }
    "$VENV/bin/airflow" pools set solver "$VOUCHER_WORKERS" \
        "Allocation solver: one slot per Celery worker" >/dev/null
    echo "==> FAB auth manager: tables, permissions, roles (deploy/roles.json), named users"
    { "$VENV/bin/airflow" fab-db migrate && "$VENV/bin/airflow" sync-perm \
        && "$VENV/bin/airflow" roles import "$ROOT/deploy/roles.json"; } >"$STATE/fab-setup.log" 2>&1 \
        || { cat "$STATE/fab-setup.log"; exit 1; }
    create_users
    echo "==> starting components"
    start_component api-server api-server --host "$VOUCHER_API_HOST" --port "$VOUCHER_API_PORT" $VOUCHER_API_TLS_ARGS
    start_component scheduler scheduler
    start_component dag-processor dag-processor
    start_component triggerer triggerer
    for i in $(seq 1 "$VOUCHER_WORKERS"); do
        AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=$((8793 + i)) \
            start_component "worker$i" celery worker --celery-hostname "worker$i@%h"
    done
    wait_for_api
    echo "==> stack up: http://127.0.0.1:$VOUCHER_API_PORT (logins in $AIRFLOW_HOME/passwords.json.generated)"
}

stop() {
    shopt -s nullglob
    local pids=()
    for f in "$STATE"/*.pid; do
        pid="$(cat "$f")"
        if kill -0 "$pid" 2>/dev/null; then kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; pids+=("$pid"); fi
    done
    for _ in $(seq 1 30); do
        alive=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 1
    done
    for pid in "${pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
    rm -f "$STATE"/*.pid
    echo "==> stack stopped"
}

status() {
    shopt -s nullglob
    for f in "$STATE"/*.pid; do
        name="$(basename "$f" .pid)"; pid="$(cat "$f")"
        if kill -0 "$pid" 2>/dev/null; then echo "$name running (pid $pid)"; else echo "$name DEAD (pid $pid)"; fi
    done
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    rotate-passwords) rotate ;;
    env) load_env >/dev/null; env | grep -E '^(AIRFLOW|VOUCHER)_' | sed 's/^/export /' ;;
    *) sed -n '2,11p' "$0"; exit 2 ;;
esac
