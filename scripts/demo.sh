#!/usr/bin/env bash
# The body of `make demo`: execrole against a local moto emulator, end to end.
#
# Starts moto on a free loopback port, seeds a small ECS account, shows the plan, enforces once, runs the daemon
# for a second pass (which must write nothing), checks the plan is clean and that foreign and out-of-scope
# policies were not touched. Nothing here can reach real AWS: every AWS setting points at 127.0.0.1.
#
# Overrides (for testing the script itself): EXECROLE_BIN (skips `cargo build`), EXECROLE_DEMO_CONFIG.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

state_dir="target/demo"
config="${EXECROLE_DEMO_CONFIG:-config/demo.yaml}"
bin="${EXECROLE_BIN:-target/debug/execrole}"
daemon_pid=""
daemon_log="$state_dir/daemon.log"

step=0
banner() {
  # banner TITLE WHY...
  step=$((step + 1))
  if [[ -t 1 ]]; then printf '\n\033[1m==== %d. %s\033[0m\n' "$step" "$1"; else printf '\n==== %d. %s\n' "$step" "$1"; fi
  shift
  local line
  for line in "$@"; do printf '     %s\n' "$line"; done
}
fail() {
  printf '\nDEMO FAILED: %s\n' "$*" >&2
  exit 1
}

cleanup() {
  local rc=$?
  if [[ -n "$daemon_pid" ]] && kill -0 "$daemon_pid" 2>/dev/null; then
    kill -TERM "$daemon_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$daemon_pid" 2>/dev/null || true
  fi
  "$root/scripts/moto-stop.sh" "$state_dir" || true
  if ((rc != 0)); then
    echo "(emulator stopped; its log is $state_dir/moto.log)" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# HTTP GET on loopback: body on stdout, non-zero on any error or non-2xx status.
if command -v curl >/dev/null 2>&1; then
  http_get() { curl -fsS --noproxy '*' --max-time 10 "$1"; }
else
  http_get() {
    "$py" - "$1" <<'PY'
import sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
with opener.open(sys.argv[1], timeout=10) as r:
    sys.stdout.write(r.read().decode())
PY
  }
fi

# ---------------------------------------------------------------------------------------------------------------
banner "Prepare: moto virtualenv, execrole binary, local AWS emulator" \
  "moto emulates ECS, IAM and STS on 127.0.0.1 so the demo needs no AWS account and cannot touch one."
venv="$("$root/scripts/moto-venv.sh")"
py="$venv/bin/python"
if [[ -z "${EXECROLE_BIN:-}" ]]; then
  command -v cargo >/dev/null 2>&1 || fail "cargo not found: install Rust to build execrole"
  echo "building execrole (cargo build --quiet)..."
  cargo build --quiet
fi
[[ -x "$bin" ]] || fail "$bin not found or not executable"
[[ -f "$config" ]] || fail "demo config $config not found"
mkdir -p "$state_dir"
"$root/scripts/moto-stop.sh" "$state_dir"  # a leftover emulator from an interrupted run
endpoint="$("$root/scripts/moto-start.sh" "$state_dir")"
echo "moto is up at $endpoint (pid $(cat "$state_dir/moto.pid"), log $state_dir/moto.log)"

# ---------------------------------------------------------------------------------------------------------------
banner "Pin every AWS setting to the emulator" \
  "Test credentials, no profile, no instance metadata, one endpoint on loopback: the SDK has nowhere else to go."
while IFS= read -r name; do unset "$name"; done < <(compgen -e | grep -E '^AWS_ENDPOINT_URL_' || true)
unset AWS_SESSION_TOKEN AWS_SECURITY_TOKEN AWS_PROFILE AWS_DEFAULT_PROFILE AWS_ROLE_ARN AWS_ROLE_SESSION_NAME \
  AWS_WEB_IDENTITY_TOKEN_FILE AWS_CONTAINER_CREDENTIALS_RELATIVE_URI AWS_CONTAINER_CREDENTIALS_FULL_URI \
  AWS_CONTAINER_AUTHORIZATION_TOKEN AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE AWS_IGNORE_CONFIGURED_ENDPOINT_URLS \
  AWS_USE_FIPS_ENDPOINT AWS_USE_DUALSTACK_ENDPOINT \
  HTTP_PROXY HTTPS_PROXY ALL_PROXY http_proxy https_proxy all_proxy
export AWS_EC2_METADATA_DISABLED=true
export AWS_ACCESS_KEY_ID=testing
export AWS_SECRET_ACCESS_KEY=testing
export AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1
export AWS_ENDPOINT_URL="$endpoint"
export AWS_CONFIG_FILE=/dev/null
export AWS_SHARED_CREDENTIALS_FILE=/dev/null
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost
env | grep -E '^AWS_' | sort | sed 's/^/     /'

# ---------------------------------------------------------------------------------------------------------------
banner "Seed the emulator with a small ECS account" \
  "Five execution roles across two Regions, each with a twist the controller must get right."
"$py" "$root/scripts/seed_demo.py" "$endpoint"

# ---------------------------------------------------------------------------------------------------------------
banner "execrole check-config $config" \
  "Validate the demo config and print the effective settings (mode enforce, legacy-* excluded)."
"$bin" check-config "$config"

# ---------------------------------------------------------------------------------------------------------------
banner "execrole plan (before): expect exit code 2, changes pending" \
  "Observe, derive and diff without writing: roles lack what their task definitions need, api-exec has a stale grant."
plan_rc=0
"$bin" plan --config "$config" || plan_rc=$?
if ((plan_rc == 2)); then
  echo "plan exit code: 2 (changes pending)"
else
  fail "plan exit code: $plan_rc, expected 2 (changes pending)"
fi

# ---------------------------------------------------------------------------------------------------------------
banner "Record the policies the controller must not touch (before)" \
  "api-exec/team-extra is someone else's policy; legacy-exec is excluded by the config. Both must stay byte-for-byte."
"$py" "$root/scripts/show_role.py" "$endpoint" api-exec team-extra
"$py" "$root/scripts/show_role.py" "$endpoint" legacy-exec execrole
foreign_before="$("$py" "$root/scripts/show_role.py" --raw "$endpoint" api-exec team-extra)"
legacy_before="$("$py" "$root/scripts/show_role.py" --raw "$endpoint" legacy-exec execrole)"

# ---------------------------------------------------------------------------------------------------------------
banner "execrole run --once: first pass in enforce mode, it writes" \
  "Each in-scope role gets its owned inline policy 'execrole' set to exactly what its task definitions need."
"$bin" run --config "$config" --once

# ---------------------------------------------------------------------------------------------------------------
banner "Second pass as a daemon: the world is unchanged, so it must write nothing" \
  "Level-triggered and idempotent: a pass over an unchanged world makes zero IAM writes."
listen_port="$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
base="http://127.0.0.1:$listen_port"
: >"$daemon_log"
"$bin" run --config "$config" --listen "127.0.0.1:$listen_port" >"$daemon_log" 2>&1 &
daemon_pid=$!
echo "daemon pid $daemon_pid listening on $base (log $daemon_log); waiting for /readyz (first full pass done)..."
deadline=$((SECONDS + 60))
until http_get "$base/readyz" >/dev/null 2>&1; do
  if ! kill -0 "$daemon_pid" 2>/dev/null; then
    cat "$daemon_log" >&2
    fail "daemon exited before becoming ready"
  fi
  if ((SECONDS >= deadline)); then
    tail -n 40 "$daemon_log" >&2
    fail "daemon not ready after 60s"
  fi
  sleep 0.25
done
echo "ready (every target swept); waiting for the work queue to reconcile every role..."
metric() { awk -v name="$1" '$1 == name { print $NF }' <<<"$2"; }
deadline=$((SECONDS + 60))
while :; do
  metrics="$(http_get "$base/metrics")" || fail "/metrics failed"
  managed="$(metric execrole_roles_managed "$metrics")"
  reconciled="$(awk '/^execrole_reconciles_total/ { s += $NF } END { printf "%d", s }' <<<"$metrics")"
  depth="$(metric execrole_work_queue_depth "$metrics")"
  in_flight="$(metric execrole_work_queue_in_flight "$metrics")"
  if [[ -n "$managed" ]] && ((managed > 0 && reconciled >= managed && depth == 0 && in_flight == 0)); then
    break
  fi
  ((SECONDS < deadline)) || { tail -n 40 "$daemon_log" >&2; fail "roles not reconciled after 60s"; }
  sleep 0.25
done
echo "reconciled $reconciled of $managed roles; queue empty."
echo "--- SIGHUP: reload the (unchanged) config without a restart ---"
kill -HUP "$daemon_pid"
deadline=$((SECONDS + 30))
until [[ "$(metric 'execrole_config_reloads_total{result="unchanged"}' "$(http_get "$base/metrics")")" == 1 ]]; do
  ((SECONDS < deadline)) || fail "SIGHUP did not reload the config"
  sleep 0.25
done
echo "config reloaded on SIGHUP: unchanged, nothing to do"
echo "--- daemon log ---"
cat "$daemon_log"
echo "--- /healthz ---"
http_get "$base/healthz" || fail "/healthz failed"
echo
echo "--- /metrics (selected) ---"
metrics="$(http_get "$base/metrics")" || fail "/metrics failed"
metric_re='^execrole_(passes_total|reconciles_total|iam_writes_total|roles_managed|roles_in_drift|aws_requests_total|task_definition_cache|last_successful_pass_timestamp_seconds|work_queue_depth|config_reloads_total)'
grep -E "$metric_re" <<<"$metrics" || echo "(no matching metric lines)"
grep -qE '^execrole_passes_total' <<<"$metrics" || fail "/metrics has no execrole_passes_total"
writes="$(awk '/^execrole_iam_writes_total/ { s += $NF } END { printf "%d", s }' <<<"$metrics")"
if ((writes != 0)); then
  fail "the second pass made $writes IAM write(s); expected 0"
fi
echo "second pass IAM writes: 0"
echo "--- SIGTERM ---"
kill -TERM "$daemon_pid"
deadline=$((SECONDS + 30))
while kill -0 "$daemon_pid" 2>/dev/null; do
  if ((SECONDS >= deadline)); then
    kill -KILL "$daemon_pid" 2>/dev/null || true
    fail "daemon did not exit within 30s of SIGTERM"
  fi
  sleep 0.1
done
daemon_rc=0
wait "$daemon_pid" || daemon_rc=$?
daemon_pid=""
echo "daemon exit code: $daemon_rc"
((daemon_rc == 0)) || { tail -n 20 "$daemon_log" >&2; fail "daemon did not exit cleanly on SIGTERM"; }

# ---------------------------------------------------------------------------------------------------------------
banner "execrole plan (after): expect exit code 0, no changes" \
  "Live IAM now matches what the task definitions need; this is what gates a pull request in CI."
plan_rc=0
"$bin" plan --config "$config" || plan_rc=$?
if ((plan_rc == 0)); then
  echo "plan exit code: 0 (no changes)"
else
  fail "plan exit code: $plan_rc, expected 0 (no changes)"
fi

# ---------------------------------------------------------------------------------------------------------------
banner "Check what was and was not touched" \
  "Ownership: only the controller's own inline policy changes; foreign and out-of-scope policies stay as they were."
"$py" "$root/scripts/show_role.py" "$endpoint" api-exec team-extra
foreign_after="$("$py" "$root/scripts/show_role.py" --raw "$endpoint" api-exec team-extra)"
if [[ "$foreign_after" == "$foreign_before" ]]; then
  echo "foreign policy team-extra unchanged"
else
  diff <(printf '%s\n' "$foreign_before") <(printf '%s\n' "$foreign_after") >&2 || true
  fail "foreign policy api-exec/team-extra changed"
fi
echo
"$py" "$root/scripts/show_role.py" "$endpoint" api-exec execrole
api_owned="$("$py" "$root/scripts/show_role.py" --raw "$endpoint" api-exec execrole)"
if grep -q 'repository/api-old' <<<"$api_owned"; then
  fail "api-exec/execrole still grants the stale repository/api-old"
fi
grep -q 'repository/shared/base' <<<"$api_owned" || fail "api-exec/execrole does not grant the shared/base pull"
echo "stale statement (repository/api-old) is gone; the cross-account shared/base pull is granted"
grep -q 'kms:Decrypt' <<<"$api_owned" || fail "api-exec/execrole lacks kms:Decrypt for the secret under a customer managed key"
grep -q 'kms:ViaService' <<<"$api_owned" || fail "kms:Decrypt on api-exec is not limited with kms:ViaService"
if grep -q ':password::' <<<"$api_owned"; then
  fail "the secret's json-key suffix leaked into the IAM resource"
fi
echo "the CMK-encrypted secret got kms:Decrypt on the key ARN, via Secrets Manager only; no json-key suffix in resources"
echo
"$py" "$root/scripts/show_role.py" "$endpoint" legacy-exec execrole
legacy_after="$("$py" "$root/scripts/show_role.py" --raw "$endpoint" legacy-exec execrole)"
if [[ "$legacy_after" == "$legacy_before" ]]; then
  echo "legacy-exec/execrole unchanged (excluded by legacy-*, out of scope)"
else
  fail "legacy-exec/execrole changed although legacy-* is excluded"
fi
echo
for role in app-exec proxy-exec report-exec; do
  "$py" "$root/scripts/show_role.py" "$endpoint" "$role" execrole
done

# ---------------------------------------------------------------------------------------------------------------
banner "Summary"
cat <<'TXT'
     - plan found pending changes (exit 2) without writing anything.
     - run --once, in enforce mode, wrote each in-scope role's owned inline policy 'execrole': scoped ECR pulls
       (by repository, including the cross-account and '/'-path ones), awslogs in the log group's own Region,
       logs:CreateLogGroup only where awslogs-create-group is set, nothing for Docker Hub or public.ecr.aws images;
       the stale api-old grant was removed; the secret under a customer managed key got kms:Decrypt on the key's
       ARN (via Secrets Manager only), the SecureString under the AWS managed key got none.
     - the daemon's pass over the unchanged world made zero IAM writes, became ready, served /healthz and /metrics,
       and exited cleanly on SIGTERM.
     - plan then reported no changes (exit 0).
     - api-exec's foreign 'team-extra' and the excluded legacy-exec were left byte-for-byte unchanged.
TXT
echo
echo "DEMO OK"
