#!/usr/bin/env bash
# Stop the moto emulator started by scripts/moto-start.sh STATE_DIR. Quiet if it is not running.
#
#   scripts/moto-stop.sh STATE_DIR
set -euo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 STATE_DIR" >&2
  exit 64
fi
state_dir="$1"
pid_file="$state_dir/moto.pid"
port_file="$state_dir/moto.port"

pid=""
[[ -f "$pid_file" ]] && pid="$(cat "$pid_file" 2>/dev/null || true)"

if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
  kill -TERM "$pid" 2>/dev/null || true
  # Up to ~5 s for a clean exit, then KILL.
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 1 20); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
  fi
fi

rm -f "$pid_file" "$port_file"
