# Shared helpers for the scripts: the pinned Python tools in ./.venv and ministack.
# Source it; it does nothing on its own.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
LOCAL="$ROOT/.local"           # runtime state: pids, logs, ministack's temp files (git-ignored)
MINISTACK_PORT="${MINISTACK_PORT:-4566}"
export AWS_ENDPOINT_URL="${AWS_ENDPOINT_URL:-http://127.0.0.1:$MINISTACK_PORT}"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
export AWS_REGION="${AWS_REGION:-us-east-1}"
export AWS_DEFAULT_REGION="$AWS_REGION"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Creates ./.venv and installs the pinned tools (.ci/requirements.txt) if they are not there yet.
ensure_venv() {
  local stamp="$VENV/.requirements.sha"
  local want; want="$(sha256sum "$ROOT/.ci/requirements.txt" | cut -d' ' -f1)"
  if [ -x "$VENV/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then return 0; fi
  log "installing pinned Python tools into .venv"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$ROOT/.ci/requirements.txt"
  echo "$want" > "$stamp"
}

# Creates ./.venv-checkov with the pinned checkov (its dependencies clash with the tools' venv).
ensure_checkov() {
  local venv="$ROOT/.venv-checkov" stamp="$ROOT/.venv-checkov/.requirements.sha"
  local want; want="$(sha256sum "$ROOT/.ci/requirements-checkov.txt" | cut -d' ' -f1)"
  if [ -x "$venv/bin/checkov" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then return 0; fi
  log "installing pinned checkov into .venv-checkov"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$ROOT/.ci/requirements-checkov.txt"
  echo "$want" > "$stamp"
}

# Starts ministack on 127.0.0.1:$MINISTACK_PORT unless it already answers; waits for health.
start_ministack() {
  mkdir -p "$LOCAL/ministack-tmp"
  if curl -fsS "$AWS_ENDPOINT_URL/_ministack/health" >/dev/null 2>&1; then
    log "ministack already up at $AWS_ENDPOINT_URL"; return 0
  fi
  log "starting ministack on 127.0.0.1:$MINISTACK_PORT"
  # BIND_HOST=127.0.0.1: it listens on every interface otherwise.
  # AWS_ENDPOINT_URL in ministack's own environment is what it gives the Lambda functions it
  # runs; MINISTACK_FUNCTIONS_ENDPOINT points them elsewhere (the local run's counting proxy).
  AWS_ENDPOINT_URL="${MINISTACK_FUNCTIONS_ENDPOINT:-$AWS_ENDPOINT_URL}" \
  BIND_HOST=127.0.0.1 GATEWAY_PORT="$MINISTACK_PORT" TMPDIR="$LOCAL/ministack-tmp" \
    nohup "$VENV/bin/ministack" >"$LOCAL/ministack.log" 2>&1 &
  echo $! > "$LOCAL/ministack.pid"
  for _ in $(seq 1 100); do
    if curl -fsS "$AWS_ENDPOINT_URL/_ministack/health" >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$(cat "$LOCAL/ministack.pid")" 2>/dev/null; then
      cat "$LOCAL/ministack.log" >&2; echo "ministack exited" >&2; return 1
    fi
    sleep 0.2
  done
  echo "ministack did not become healthy; log: $LOCAL/ministack.log" >&2; return 1
}

# Stops the ministack this checkout started (by PID), and the bootstraps it keeps as children.
stop_ministack() {
  local pidfile="$LOCAL/ministack.pid"
  [ -f "$pidfile" ] || return 0
  local pid; pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping ministack (pid $pid)"
    pkill -TERM -P "$pid" 2>/dev/null || true
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}
