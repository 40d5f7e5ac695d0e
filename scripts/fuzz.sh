#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (FUZZTIME each, default 5s) and
# prints one summary line per target: executions and the peak memory of the
# run. A crash, hang or failing input fails the script; the input is kept
# in the package's testdata/fuzz/<Target>/ for `go test -run`.
#   FUZZTIME=10m scripts/fuzz.sh          # longer local runs
#   FUZZ_TARGETS="./config:FuzzParseConfig" scripts/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME="${FUZZTIME:-5s}"
TARGETS="${FUZZ_TARGETS:-./compat:FuzzDecodeClient ./compat:FuzzAppendJSONString ./subscription:FuzzNewFilter ./dataflow:FuzzDecode ./dataflow:FuzzIngestBody ./config:FuzzParseConfig ./config:FuzzConfigEnv ./internal/wsdeflate:FuzzInflate ./internal/wsframe:FuzzReadMessage}"
summary=""
for t in $TARGETS; do
	pkg="${t%%:*}" name="${t##*:}"
	if ! grep -qs "^func ${name}(" "$pkg"/*_test.go; then
		summary+="$(printf '%-14s %-22s not present in this tree, skipped' "$pkg" "$name")"$'\n'
		continue
	fi
	log="$(mktemp)"
	# Interesting inputs are minimised for at most 1s, so that a short run
	# spends its time fuzzing.
	note=""
	if ! /usr/bin/time -f 'maxrss_kb=%M' go test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" \
		-fuzzminimizetime 1s -parallel 2 "$pkg" >"$log" 2>&1; then
		# Go 1.26's fuzz coordinator can report its own -fuzztime deadline as
		# a failure ("context deadline exceeded", no input written; Go issue
		# 75804, fixed in 1.27). Anything else, or a written input, fails.
		if grep -q 'context deadline exceeded' "$log" && ! grep -q 'Failing input written' "$log"; then
			note=" (ended by the Go 1.26 fuzztime-deadline race, not an input)"
		else
			cat "$log"
			echo "fuzz.sh: $pkg $name FAILED"
			exit 1
		fi
	fi
	# A run may end before it reports executions (a slow, loaded machine):
	# a missing count is not a failure (pipefail would make it one).
	execs="$(grep -o 'execs: [0-9]*' "$log" | tail -1 | cut -d' ' -f2 || true)"
	rss="$(grep -o 'maxrss_kb=[0-9]*' "$log" | cut -d= -f2 || true)"
	summary+="$(printf '%-14s %-22s execs=%-9s peak_rss=%sMB%s' "$pkg" "$name" "${execs:-0}" "$(( ${rss:-0} / 1024 ))" "$note")"$'\n'
	rm -f "$log"
done
echo "fuzz.sh: every target ran $FUZZTIME without failure:"
printf '%s' "$summary"
