#!/usr/bin/env bash
# `make airflow`: a local Airflow UI for the nightly DAG, login required.
#
#   scripts/airflow_local.sh [start]   set up, start webserver + scheduler + triggerer, stay in the
#                                      foreground (Ctrl-C stops all three)
#   scripts/airflow_local.sh start --detach   the same, but return once the UI answers
#   scripts/airflow_local.sh stop      stop what a detached start left running
#   scripts/airflow_local.sh status    which of the three are running
#
# Same environment as `emerald run` (pipeline_src.orchestration.night.airflow_environment): AIRFLOW_HOME
# under EMERALD_HOME, this checkout's dags/ and plugins/, no example DAGs, SQLite,
# SequentialExecutor. Set up on every start, idempotently: DB migration, the admin user,
# the connections (google_cloud_default, smtp_default, slack_webhook_default), demo photos
# in paths.source when it is empty.
#
# Settings (environment):
#   AIRFLOW_PORT                 webserver port (8080)
#   AIRFLOW_LOG_SERVER_PORT      scheduler's task-log server (8793)
#   AIRFLOW_TRIGGER_LOG_PORT     triggerer's log server (8794)
#   AIRFLOW_ADMIN_USER           admin login (admin)
#   AIRFLOW_ADMIN_PASSWORD       admin password; default: generated once, kept in
#                                $AIRFLOW_HOME/admin-password (mode 600)
#   AIRFLOW_HEALTH_TIMEOUT       seconds to wait for the UI and scheduler (240)
#   EMERALD_HOME, EMERALD_SOURCE, EMERALD_CONFIG as everywhere else.
#   AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE defaults to False here: the 02:00 schedule would
#   otherwise start a run for last night as soon as the DAG is unpaused (its sensor waits
#   up to 6 h for photos that a laptop never gets, and SequentialExecutor runs one task at
#   a time). Runs you trigger (Trigger DAG w/ config) always run. Export it as True to
#   get the nightly schedule.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$(pwd)"
PY="$REPO/.venv/bin/python"
AIRFLOW=("$PY" -m airflow)
# The executor launches each task as `airflow tasks run ...`: it must find this venv's airflow.
export PATH="$REPO/.venv/bin:$PATH"
[[ -x "$PY" ]] || { echo "airflow_local: $PY missing: run 'make install' first" >&2; exit 1; }

ACTION="${1:-start}"
DETACH="${AIRFLOW_DETACH:-0}"
[[ "${2:-}" == "--detach" || "${1:-}" == "--detach" ]] && DETACH=1
[[ "$ACTION" == "--detach" ]] && ACTION=start

# The same Airflow environment as pipeline_src.orchestration.night (values already exported win), plus the
# Emerald paths this script needs.
eval "$("$PY" - <<'EOF'
import os, shlex
from pipeline_src.config import load_config
from pipeline_src.orchestration.night import airflow_environment
config = load_config()
for key, value in airflow_environment(config).items():
    print(f"export {key}={shlex.quote(os.environ.get(key) or value)}")
print(f"EMERALD_SOURCE_DIR={shlex.quote(str(config.paths.source))}")
print(f"EMERALD_REPORTS_DIR={shlex.quote(str(config.paths.reports))}")
print(f"EMERALD_DAG_ID={shlex.quote(config.dag.dag_id)}")
EOF
)"

PORT="${AIRFLOW_PORT:-8080}"
RUN_DIR="$AIRFLOW_HOME/run"
LOG_DIR="$AIRFLOW_HOME/logs"
PROCS=(webserver scheduler triggerer)

export AIRFLOW__CORE__EXECUTOR="${AIRFLOW__CORE__EXECUTOR:-SequentialExecutor}"
export AIRFLOW__WEBSERVER__WEB_SERVER_PORT="$PORT"
export AIRFLOW__WEBSERVER__BASE_URL="${AIRFLOW__WEBSERVER__BASE_URL:-http://localhost:$PORT}"
export AIRFLOW__WEBSERVER__WORKERS="${AIRFLOW__WEBSERVER__WORKERS:-2}"
export AIRFLOW__WEBSERVER__EXPOSE_CONFIG="${AIRFLOW__WEBSERVER__EXPOSE_CONFIG:-False}"
export AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT="${AIRFLOW_LOG_SERVER_PORT:-8793}"
export AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT="${AIRFLOW_TRIGGER_LOG_PORT:-8794}"
export AIRFLOW__API__AUTH_BACKENDS="${AIRFLOW__API__AUTH_BACKENDS:-airflow.api.auth.backend.basic_auth,airflow.api.auth.backend.session}"
export AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE="${AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE:-False}"
# SequentialExecutor runs each task inside the scheduler's loop, so the scheduler does not
# heartbeat while a TFX node runs (minutes for Trainer): don't call it unhealthy for that.
export AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD="${AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD:-900}"
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="${AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION:-True}"

pid_alive() { [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null; }

stop_all() {
  local name pid
  for name in "${PROCS[@]}"; do
    [[ -f "$RUN_DIR/$name.pid" ]] || continue
    pid="$(cat "$RUN_DIR/$name.pid")"
    # Each process was started as the leader of its own process group (setsid): the
    # group holds gunicorn's workers, the log servers and running task processes.
    if pid_alive "$pid"; then kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; fi
  done
  for _ in $(seq 1 30); do
    local alive=0
    for name in "${PROCS[@]}"; do
      [[ -f "$RUN_DIR/$name.pid" ]] && pid_alive "$(cat "$RUN_DIR/$name.pid")" && alive=1
    done
    [[ $alive == 0 ]] && break
    sleep 1
  done
  for name in "${PROCS[@]}"; do
    [[ -f "$RUN_DIR/$name.pid" ]] || continue
    pid="$(cat "$RUN_DIR/$name.pid")"
    pid_alive "$pid" && { kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true; }
    rm -f "$RUN_DIR/$name.pid"
  done
}

case "$ACTION" in
  stop) stop_all; echo "airflow_local: stopped"; exit 0 ;;
  status)
    for name in "${PROCS[@]}"; do
      pid="$(cat "$RUN_DIR/$name.pid" 2>/dev/null || true)"
      if pid_alive "$pid"; then echo "$name running (pid $pid)"; else echo "$name stopped"; fi
    done
    exit 0 ;;
  start) ;;
  *) echo "usage: $0 [start [--detach]|stop|status]" >&2; exit 2 ;;
esac

for name in "${PROCS[@]}"; do
  if pid_alive "$(cat "$RUN_DIR/$name.pid" 2>/dev/null || true)"; then
    echo "airflow_local: $name is already running for $AIRFLOW_HOME ($0 stop first)" >&2
    exit 1
  fi
done
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
  echo "airflow_local: port $PORT is taken: set AIRFLOW_PORT" >&2
  exit 1
fi

mkdir -p "$AIRFLOW_HOME" "$RUN_DIR" "$LOG_DIR"
umask 077
# Secrets kept with this Airflow home: the webserver and the log servers must share the
# secret key (task logs are fetched with a signed token); the Fernet key encrypts
# connection passwords in the DB.
if [[ -z "${AIRFLOW__WEBSERVER__SECRET_KEY:-}" ]]; then
  [[ -s "$AIRFLOW_HOME/secret-key" ]] || "$PY" -c 'import secrets; print(secrets.token_hex(32))' > "$AIRFLOW_HOME/secret-key"
  export AIRFLOW__WEBSERVER__SECRET_KEY="$(cat "$AIRFLOW_HOME/secret-key")"
fi
if [[ -z "${AIRFLOW__CORE__FERNET_KEY:-}" ]]; then
  [[ -s "$AIRFLOW_HOME/fernet-key" ]] || "$PY" -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())' > "$AIRFLOW_HOME/fernet-key"
  export AIRFLOW__CORE__FERNET_KEY="$(cat "$AIRFLOW_HOME/fernet-key")"
fi
ADMIN_USER="${AIRFLOW_ADMIN_USER:-admin}"
if [[ -n "${AIRFLOW_ADMIN_PASSWORD:-}" ]]; then
  ADMIN_PASSWORD="$AIRFLOW_ADMIN_PASSWORD"
else
  [[ -s "$AIRFLOW_HOME/admin-password" ]] || "$PY" -c 'import secrets; print(secrets.token_urlsafe(12))' > "$AIRFLOW_HOME/admin-password"
  ADMIN_PASSWORD="$(cat "$AIRFLOW_HOME/admin-password")"
fi
umask 022

echo "airflow_local: AIRFLOW_HOME=$AIRFLOW_HOME"
echo "airflow_local: migrating the database"
"${AIRFLOW[@]}" db migrate > "$LOG_DIR/setup.log" 2>&1 || { cat "$LOG_DIR/setup.log" >&2; exit 1; }

# Login is required: refuse a webserver_config.py that lets anonymous users in as Admin.
if [[ -f "$AIRFLOW_HOME/webserver_config.py" ]] && \
   grep -Eq '^[[:space:]]*AUTH_ROLE_PUBLIC[[:space:]]*=[[:space:]]*.Admin' "$AIRFLOW_HOME/webserver_config.py"; then
  echo "airflow_local: $AIRFLOW_HOME/webserver_config.py sets AUTH_ROLE_PUBLIC = Admin (anonymous admin): remove it" >&2
  exit 1
fi

echo "airflow_local: admin user '$ADMIN_USER'"
created="$("${AIRFLOW[@]}" users create --username "$ADMIN_USER" --password "$ADMIN_PASSWORD" \
      --firstname Emerald --lastname Admin --role Admin --email "$ADMIN_USER@localhost" 2>&1)" \
  || { echo "$created" | tail -20 >&2; exit 1; }
echo "$created" >> "$LOG_DIR/setup.log"
# A known user keeps its password (it may have been changed in the UI), unless one is given.
if grep -q "already exist" <<<"$created" && [[ -n "${AIRFLOW_ADMIN_PASSWORD:-}" ]]; then
  "${AIRFLOW[@]}" users reset-password --username "$ADMIN_USER" --password "$ADMIN_PASSWORD" \
      >> "$LOG_DIR/setup.log" 2>&1 || { tail -20 "$LOG_DIR/setup.log" >&2; exit 1; }
fi

# Connections the DAG and its alerts use; added when missing, never overwritten (edit them
# in Admin > Connections). GCS: the emulator is picked up from STORAGE_EMULATOR_HOST by
# EmeraldGCSHook; SMTP: a local debugging server (e.g. `python -m aiosmtpd -n -l localhost:1025`);
# Slack: a local webhook URL.
existing="$("${AIRFLOW[@]}" connections list -o plain 2>/dev/null | awk 'NR > 1 {print $2}' || true)"
add_conn() {
  local conn_id="$1"; shift
  if grep -qx "$conn_id" <<<"$existing"; then return; fi
  "${AIRFLOW[@]}" connections add "$conn_id" "$@" >> "$LOG_DIR/setup.log" 2>&1 \
    || { echo "airflow_local: could not add connection $conn_id" >&2; tail -5 "$LOG_DIR/setup.log" >&2; exit 1; }
  echo "airflow_local: connection $conn_id added"
}
add_conn google_cloud_default --conn-type google_cloud_platform \
  --conn-extra '{"project": "emerald-emulator"}'
add_conn smtp_default --conn-type smtp --conn-host localhost --conn-port "${SMTP_PORT:-1025}" \
  --conn-extra '{"disable_ssl": true, "disable_tls": true, "from_email": "emerald@localhost"}'
add_conn slack_webhook_default --conn-type slackwebhook \
  --conn-password "${SLACK_WEBHOOK_URL:-http://localhost:8099/slack-webhook}"

# Demo photos where the DAG looks for them, unless something is there already.
if [[ "$EMERALD_SOURCE_DIR" == *"://"* ]]; then
  echo "airflow_local: source is $EMERALD_SOURCE_DIR (not synthesising demo data)"
elif [[ -z "$(ls -A "$EMERALD_SOURCE_DIR" 2>/dev/null || true)" ]]; then
  echo "airflow_local: synthesising demo photos into $EMERALD_SOURCE_DIR"
  "$REPO/.venv/bin/emerald" synth --out "$EMERALD_SOURCE_DIR" --nights 2 --start-date 2026-01-02 \
    | sed 's/^/  /'
fi

# Put the DAG in the database now, so the UI lists it before the scheduler's first parse
# (and so an import error shows up here rather than as a missing DAG).
"${AIRFLOW[@]}" dags reserialize >> "$LOG_DIR/setup.log" 2>&1 || { tail -20 "$LOG_DIR/setup.log" >&2; exit 1; }
import_errors="$("${AIRFLOW[@]}" dags list-import-errors -o plain 2>/dev/null | grep -v "^No data found" || true)"
if [[ -n "$import_errors" ]]; then
  echo "airflow_local: WARNING: DAG import errors (the UI lists them too):" >&2
  echo "$import_errors" >&2
fi

start_proc() {
  local name="$1"; shift
  setsid "${AIRFLOW[@]}" "$@" > "$LOG_DIR/$name.out" 2>&1 < /dev/null &
  echo $! > "$RUN_DIR/$name.pid"
}
# Until the UI is up (and, in the foreground, until the end) any exit stops all three.
trap 'echo; echo "airflow_local: stopping"; stop_all; exit 0' INT TERM
trap 'stop_all' EXIT
start_proc scheduler scheduler
start_proc triggerer triggerer
start_proc webserver webserver --port "$PORT"

echo "airflow_local: waiting for http://localhost:$PORT/health"
deadline=$(( $(date +%s) + ${AIRFLOW_HEALTH_TIMEOUT:-240} ))
until "$PY" - "$PORT" <<'EOF' 2>/dev/null
import json, sys, urllib.request
health = json.load(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/health", timeout=5))
sys.exit(0 if health["metadatabase"]["status"] == "healthy"
         and health["scheduler"]["status"] == "healthy" else 1)
EOF
do
  for name in "${PROCS[@]}"; do
    if ! pid_alive "$(cat "$RUN_DIR/$name.pid")"; then
      echo "airflow_local: $name exited; its log ($LOG_DIR/$name.out):" >&2
      tail -30 "$LOG_DIR/$name.out" >&2
      exit 1
    fi
  done
  if (( $(date +%s) > deadline )); then
    echo "airflow_local: Airflow did not become healthy; logs in $LOG_DIR" >&2
    exit 1
  fi
  sleep 2
done

cat <<EOF

  Airflow is up:  http://localhost:$PORT
  Log in as:      $ADMIN_USER / $ADMIN_PASSWORD
  DAG:            $EMERALD_DAG_ID (paused until you trigger it; Trigger DAG w/ config takes
                  {"night": "2026-01-02", "corpus_only": false}; the demo photos hold
                  the nights 2026-01-02 and 2026-01-03, run 2026-01-01 with corpus_only first)
  Reports:        Emerald > Emerald reports  ($EMERALD_REPORTS_DIR)
  REST API:       curl -u $ADMIN_USER:<password> http://localhost:$PORT/api/v1/dags
  Logs:           $LOG_DIR/{webserver,scheduler,triggerer}.out

EOF
if [[ "$DETACH" == 1 ]]; then
  trap - INT TERM EXIT
  echo "airflow_local: running in the background; stop with: $0 stop"
  exit 0
fi
echo "airflow_local: Ctrl-C stops Airflow"
# Stay up while all three run; if one dies, stop the rest.
while :; do
  for name in "${PROCS[@]}"; do
    if ! pid_alive "$(cat "$RUN_DIR/$name.pid" 2>/dev/null || true)"; then
      echo "airflow_local: $name exited (log: $LOG_DIR/$name.out); stopping" >&2
      exit 1
    fi
  done
  sleep 5
done
