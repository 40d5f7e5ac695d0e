#!/usr/bin/env bash
# The project's test command (README, .ci/run): sets up what the tests need
# (Go modules, Redis), then vets and runs every test with the race detector.
set -euo pipefail
cd "$(dirname "$0")/.."
go mod download
# The browser e2e test drives Debian's chromium; install it when absent.
if ! command -v chromium >/dev/null 2>&1; then
  echo "test.sh: chromium not found: installing it (apt-get install -y chromium)"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo -n"
  if ! { $sudo apt-get update -qq && $sudo apt-get install -y -qq chromium; } >/dev/null 2>&1; then
    echo "test.sh: WARNING: COULD NOT INSTALL CHROMIUM: THE BROWSER E2E TEST WILL BE SKIPPED" >&2
  fi
fi
# The NATS and JetStream tests start their own nats-server (Debian's
# package) on a free port with a temporary store; install it when absent.
if ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/sbin/nats-server ]; then
  echo "test.sh: nats-server not found: installing it (apt-get install -y nats-server)"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo -n"
  if ! { $sudo apt-get update -qq && $sudo apt-get install -y -qq nats-server; } >/dev/null 2>&1; then
    echo "test.sh: WARNING: COULD NOT INSTALL NATS-SERVER: THE NATS TESTS WILL BE SKIPPED" >&2
  fi
fi
REDIS_ADDR="$(scripts/redis.sh)"
export REDIS_ADDR
echo "test.sh: using Redis at $REDIS_ADDR"
test -z "$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
go vet ./...
# Every fuzz target for a few seconds (crashes, hangs, failing inputs).
FUZZTIME="${FUZZTIME:-5s}" scripts/fuzz.sh
# CI_LOADED=1 (make test-loaded): every test below runs beside a CPU hog, a
# busy loop on every core, started here and stopped on exit.
if [ "${CI_LOADED:-0}" = "1" ]; then
  hog="$(mktemp -d)/cpuhog"
  go build -o "$hog" ./tools/cpuhog
  "$hog" & hog_pid=$!
  trap 'kill "$hog_pid" 2>/dev/null || true; wait "$hog_pid" 2>/dev/null || true; rm -f "$hog"' EXIT
  echo "test.sh: CPU hog running on every core (pid $hog_pid)"
fi
# Allocation guards are skipped under -race (the detector allocates): run them plainly.
go test -count=1 -run 'Alloc' ./...
go test -race -shuffle=on -count=1 -timeout 20m ./...
# The deployment files (alerts, dashboard, Kubernetes manifests, Dockerfile)
# are tested in their own module, deploy/, which holds the PromQL parser and
# the Kubernetes API types so that the main module stays lean.
(cd deploy && go mod download && go vet ./... && go test -count=1 -timeout 10m ./...)
