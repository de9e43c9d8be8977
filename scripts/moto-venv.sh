#!/usr/bin/env bash
# Create (once) the pinned moto[server] virtualenv inside the ignored build area and print its path.
# Re-creates it when the pin changes. Idempotent and quiet on the second run.
set -euo pipefail
MOTO_VERSION="5.2.5"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${EXECROLE_MOTO_VENV:-$root/target/moto-venv}"
stamp="$venv/.execrole-moto-$MOTO_VERSION"
if [[ ! -f "$stamp" ]]; then
  echo "moto-venv: installing moto[server]==$MOTO_VERSION into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" >&2
  touch "$stamp"
fi
echo "$venv"
