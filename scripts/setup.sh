#!/usr/bin/env bash
# Installs what the tests, the demo and the benchmarks need, on a bare Debian
# machine with Rust and Python 3: SecantusDB (a MongoDB wire-protocol server)
# in ./.venv, Prometheus (with promtool), Alertmanager (with amtool), wrk,
# mtail and (where the machine has none) Node.js with npm from Debian. With
# --tests (scripts/test.sh), also what only the test suite uses: Chromium (the
# browser tests) and systemd (systemd-analyze) from Debian, cargo-deb (pinned)
# with cargo, and the mongoose test app's packages (tests/mongoose, pinned by
# its package-lock).
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

SECANTUS="SecantusDB==0.7.0b3"

need=()
# Debian's python3 makes virtualenvs only with python3-venv installed.
python3 -c 'import ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
# The same package ships the Alertmanager and amtool (the alert tests use both).
{ command -v prometheus-alertmanager && command -v amtool; } >/dev/null 2>&1 || need+=(prometheus-alertmanager)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v mtail >/dev/null 2>&1 || need+=(mtail)
{ command -v node && command -v npm; } >/dev/null 2>&1 || need+=(nodejs npm)
tests=false
[ "${1:-}" = "--tests" ] && tests=true
if $tests; then
  # The browser tests (tests/browser.rs) open the pages in a headless Chromium.
  # Large (some 300 MB installed), so only for the tests, and only when missing.
  { command -v chromium || command -v chromium-browser; } >/dev/null 2>&1 || need+=(chromium)
  # systemd-analyze verifies packaging/uniqwatch.service (tests/packaging.rs).
  command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]} from Debian"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # The packages start services where systemd runs; the tests start their own.
  for svc in prometheus prometheus-alertmanager prometheus-node-exporter mtail; do
    "${sudo_cmd[@]}" systemctl disable --now "$svc" >/dev/null 2>&1 || true
  done
fi

# cargo deb builds the Debian package that tests/packaging.rs installs.
CARGO_DEB_VERSION=3.8.0
if $tests && ! cargo deb --version >/dev/null 2>&1; then
  echo "setup: installing cargo-deb $CARGO_DEB_VERSION with cargo"
  cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked --quiet
fi

if [ ! -x .venv/bin/secantusd-py ]; then
  echo "setup: installing $SECANTUS into .venv"
  rm -rf .venv
  python3 -m venv .venv
  if ! .venv/bin/pip install --quiet --disable-pip-version-check "$SECANTUS"; then
    rm -rf .venv
    echo "setup: pip install $SECANTUS failed" >&2
    exit 1
  fi
fi

if $tests && [ ! -d tests/mongoose/node_modules/mongoose ]; then
  echo "setup: installing the mongoose test app's packages (npm ci in tests/mongoose)"
  if ! npm ci --prefix tests/mongoose --no-audit --no-fund --loglevel=error >/dev/null; then
    echo "setup: npm ci in tests/mongoose failed" >&2
    exit 1
  fi
fi
