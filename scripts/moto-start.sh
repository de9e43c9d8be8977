#!/usr/bin/env bash
# Start a local moto emulator on a free loopback port and print its endpoint URL.
#
#   scripts/moto-start.sh STATE_DIR
#
# Writes STATE_DIR/moto.pid, STATE_DIR/moto.port and logs to STATE_DIR/moto.log. Stop it with
# scripts/moto-stop.sh STATE_DIR. The server binds 127.0.0.1 only; nothing here talks to real AWS.
set -euo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 STATE_DIR" >&2
  exit 64
fi
state_dir="$1"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mkdir -p "$state_dir"
state_dir="$(cd "$state_dir" && pwd)"
pid_file="$state_dir/moto.pid"
port_file="$state_dir/moto.port"
log_file="$state_dir/moto.log"

# Refuse to start a second emulator over a live one.
if [[ -f "$pid_file" ]]; then
  old_pid="$(cat "$pid_file" 2>/dev/null || true)"
  if [[ -n "$old_pid" ]] && kill -0 "$old_pid" 2>/dev/null; then
    echo "moto-start: moto already running (pid $old_pid); stop it with scripts/moto-stop.sh $state_dir" >&2
    exit 1
  fi
  rm -f "$pid_file" "$port_file"
fi

venv="$("$here/moto-venv.sh")"
py="$venv/bin/python"
moto_server="$venv/bin/moto_server"
[[ -x "$moto_server" ]] || { echo "moto-start: $moto_server not found" >&2; exit 1; }

free_port() {
  "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Returns 0 when moto answers on port $1 *and* the listening socket belongs to pid $2 (so a stranger that won the
# port race is never mistaken for our emulator). The ownership check uses /proc and is skipped where it is absent.
is_ready() {
  "$py" - "$1" "$2" <<'PY' >/dev/null 2>&1
import os, sys, urllib.request
port, pid = int(sys.argv[1]), sys.argv[2]
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only, never a proxy
with opener.open("http://127.0.0.1:%d/moto-api/data.json" % port, timeout=2) as r:
    if r.status != 200:
        sys.exit(1)
if os.path.exists("/proc/net/tcp"):
    listeners = set()
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        f = line.split()
        if f[3] == "0A" and int(f[1].split(":")[1], 16) == port:  # state LISTEN on our port
            listeners.add("socket:[%s]" % f[9])
    fd_dir = "/proc/%s/fd" % pid
    ours = set()
    for fd in os.listdir(fd_dir):
        try:
            ours.add(os.readlink(os.path.join(fd_dir, fd)))
        except OSError:
            pass
    sys.exit(0 if listeners & ours else 1)
PY
}

for attempt in 1 2 3 4 5; do
  port="$(free_port)"
  : >"$log_file"
  # The server inherits no AWS credentials of the caller; it needs none.
  env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN -u AWS_PROFILE \
    MOTO_IAM_LOAD_MANAGED_POLICIES=true \
    AWS_EC2_METADATA_DISABLED=true \
    "$moto_server" -H 127.0.0.1 -p "$port" >>"$log_file" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$pid_file"
  echo "$port" >"$port_file"

  deadline=$((SECONDS + 30))
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      # Died early: most likely the port was taken between our probe and its bind.
      if grep -qiE 'address already in use|errno 98' "$log_file"; then
        echo "moto-start: port $port taken (attempt $attempt/5), retrying" >&2
        rm -f "$pid_file" "$port_file"
        continue 2
      fi
      echo "moto-start: moto_server exited before becoming ready; log tail:" >&2
      tail -n 30 "$log_file" >&2 || true
      rm -f "$pid_file" "$port_file"
      exit 1
    fi
    if is_ready "$port" "$pid"; then
      echo "http://127.0.0.1:$port"
      exit 0
    fi
    if ((SECONDS >= deadline)); then
      echo "moto-start: moto not ready on port $port after 30s; log tail:" >&2
      tail -n 30 "$log_file" >&2 || true
      kill "$pid" 2>/dev/null || true
      rm -f "$pid_file" "$port_file"
      exit 1
    fi
    sleep 0.2
  done
done

echo "moto-start: could not bind a free port after 5 attempts; log tail:" >&2
tail -n 30 "$log_file" >&2 || true
exit 1
