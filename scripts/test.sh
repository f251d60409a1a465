#!/usr/bin/env bash
# The test command (README, .ci/run): installs what the tests need, makes sure PostgreSQL
# is running, then lint, types and tests. Exit code is non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]"

# promtool, for the alert-rule tests (`promtool check rules` / `test rules`): only that one
# binary (48 MB) is taken from Debian's prometheus package, nothing is installed or started.
if ! command -v promtool >/dev/null 2>&1 && [ ! -x .venv/bin/promtool ] \
    && command -v apt-get >/dev/null 2>&1; then
  tmp=$(mktemp -d)
  if (cd "$tmp" && apt-get download -q prometheus >/dev/null 2>&1); then
    dpkg-deb --fsys-tarfile "$tmp"/prometheus_*.deb | tar -x -C "$tmp" ./usr/bin/promtool
    mv "$tmp/usr/bin/promtool" .venv/bin/promtool
  else
    echo "cannot download Debian's prometheus package: the promtool test is skipped" >&2
  fi
  rm -rf "$tmp"
fi

# Debian's chromium, for tests/report/test_chromium.py (the HTML report in a real browser,
# headless): installed where missing and apt-get can.
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 \
    && [ "$(id -u)" = 0 ]; then
  apt-get install -y -q --no-install-recommends chromium >/dev/null \
    || echo "cannot install Debian's chromium: tests/report/test_chromium.py will fail" >&2
fi

# PostgreSQL on 127.0.0.1:5432 (trust auth, user postgres): install or start it if needed.
pg_ready() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
if ! pg_ready; then
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "PostgreSQL is not installed; installing it" >&2
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql
  fi
  ver=$(ls /etc/postgresql 2>/dev/null | sort -n | tail -1)
  echo "starting PostgreSQL $ver" >&2
  pg_ctlcluster --skip-systemctl-redirect "$ver" main start || pg_ctlcluster "$ver" main start
  for _ in $(seq 1 30); do pg_ready && break; sleep 1; done
  pg_ready || { echo "PostgreSQL did not start on 127.0.0.1:5432" >&2; exit 1; }
fi

echo "== ruff"
.venv/bin/ruff check reconciler tests bench
.venv/bin/ruff format --check reconciler tests bench
echo "== mypy --strict"
.venv/bin/mypy --strict reconciler
echo "== pytest"
set +e
# Tests are hermetic (own databases, free ports, temporary folders), so they run on
# every core (about 5 minutes on a quiet 2-core machine, December 2026).
.venv/bin/pytest -n "${FLUX_TEST_WORKERS:-auto}" "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit "$rc"
