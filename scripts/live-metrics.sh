#!/usr/bin/env bash
# Print a live /metrics answer of the real daemon, with the AWS request series present, for
# `promtool check metrics` under `make lint`. No AWS involved: the daemon runs with a clean environment (dummy
# credentials, no profile, no instance metadata) and its only endpoint is a closed port on 127.0.0.1, so each
# request fails to connect. It waits for the first (failed) pass and its retries, prints /metrics and stops it.
#
# Usage: scripts/live-metrics.sh [EXECROLE_BIN]   (default: `cargo build` and its target/debug/execrole)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${1:-}"
if [[ -z "$bin" ]]; then
  (cd "$root" && cargo build --quiet --locked --bin execrole)
  target_dir="${CARGO_TARGET_DIR:-target}"
  [[ "$target_dir" == /* ]] || target_dir="$root/$target_dir"
  bin="$target_dir/debug/execrole"
fi

state="$(mktemp -d)"
pid=""
cleanup() {
  local rc=$?
  if [[ -n "$pid" ]] && kill -TERM "$pid" 2>/dev/null; then
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$state"
  exit "$rc"
}
trap cleanup EXIT

# Two free loopback ports: one for /metrics, one left closed as the AWS endpoint.
read -r listen_port closed_port < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
cat >"$state/config.yaml" <<'YAML'
mode: dry-run
targets:
  - account: "123456789012"
    regions: [us-east-1]
backoff:
  initial_interval: 10ms
  max_interval: 20ms
  max_elapsed: 100ms
logging:
  format: text
  level: error
YAML

env -i PATH="$PATH" HOME="$state" AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null \
  AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
  AWS_REGION=us-east-1 AWS_ENDPOINT_URL="http://127.0.0.1:$closed_port" NO_PROXY='*' \
  "$bin" run --config "$state/config.yaml" --listen "127.0.0.1:$listen_port" 2>"$state/daemon.log" &
pid=$!

get_metrics() {
  python3 - "http://127.0.0.1:$listen_port/metrics" <<'PY'
import sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
with opener.open(sys.argv[1], timeout=5) as r:
    sys.stdout.write(r.read().decode())
PY
}

# The metrics once the first pass has failed and a request has been retried, or nothing after 30s.
wait_for_failed_pass() {
  local metrics
  for _ in $(seq 1 300); do
    if metrics="$(get_metrics 2>/dev/null)" && grep -q '^execrole_passes_total{result="failure"} [1-9]' <<<"$metrics" \
      && grep -q '^execrole_aws_retries_total' <<<"$metrics"; then
      printf '%s\n' "$metrics"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "live-metrics: no failed pass with a retried request on /metrics (the daemon exited, or 30s passed); its log:" >&2
  cat "$state/daemon.log" >&2
  return 1
}

wait_for_failed_pass
