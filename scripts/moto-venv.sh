#!/usr/bin/env bash
# Create (once) the pinned moto[server] virtualenv inside the ignored build area and print its path.
# Re-creates it when the pin changes. Idempotent and quiet on the second run.
set -euo pipefail
MOTO_VERSION="5.2.5"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${EXECROLE_MOTO_VENV:-$root/target/moto-venv}"
exec "$root/scripts/pinned-venv.sh" "$venv" "moto[server]==$MOTO_VERSION"
