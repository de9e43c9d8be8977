#!/usr/bin/env bash
# Create (once) a Python virtualenv holding one pinned requirement and print its path:
#   scripts/pinned-venv.sh VENV_DIR 'package==version'
# Re-creates it when the pin changes (a stamp file names the requirement). Idempotent and quiet on the second run.
# scripts/moto-venv.sh and scripts/lint-tools.sh use it for moto[server] and cfn-lint.
set -euo pipefail
venv="$1"
requirement="$2"
stamp="$venv/.execrole-pinned-${requirement//[^A-Za-z0-9.=_-]/_}"
if [[ ! -f "$stamp" ]]; then
  echo "pinned-venv: installing $requirement into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "$requirement" >&2
  touch "$stamp"
fi
echo "$venv"
