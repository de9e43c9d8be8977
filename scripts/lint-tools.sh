#!/usr/bin/env bash
# Install (once) the format linters `make lint` runs, and print the path of the cfn-lint virtualenv.
# The linters shellcheck and promtool come from Debian (packages `shellcheck` and `prometheus`) when they are not
# on PATH; cfn-lint is pinned in a virtualenv inside the ignored build area, re-created when the pin changes.
# Fails, naming the package, when a tool is missing and cannot be installed: it never skips a linter.
set -euo pipefail
CFN_LINT_VERSION="1.58.0"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${EXECROLE_CFN_LINT_VENV:-$root/target/cfn-lint-venv}"

# apt_install PACKAGE: install a Debian package without its recommendations (refreshing the lists if needed).
apt_install() {
  local package="$1"
  if ! apt-get install -y -qq --no-install-recommends "$package" >&2; then
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "$package" >&2
  fi
}

# ensure_debian COMMAND PACKAGE: make COMMAND available, installing the Debian PACKAGE that provides it.
ensure_debian() {
  local command="$1" package="$2"
  command -v "$command" >/dev/null 2>&1 && return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "lint-tools: $command is not on PATH and apt-get is not available:" \
      "install $command (Debian/Ubuntu package \`$package\`) and run make lint again" >&2
    exit 1
  fi
  if [[ "$(id -u)" -ne 0 ]]; then
    echo "lint-tools: $command is not on PATH: run \`sudo apt-get install --no-install-recommends $package\`" \
      "(or run this script as root) and run make lint again" >&2
    exit 1
  fi
  echo "lint-tools: installing the Debian package $package for $command" >&2
  apt_install "$package"
}

ensure_debian shellcheck shellcheck
ensure_debian promtool prometheus

"$root/scripts/pinned-venv.sh" "$venv" "cfn-lint==$CFN_LINT_VERSION"
