.PHONY: run test test-loaded test-scale bench bench-all load lint fmt fuzz soak

run:
	go run .

test:
	scripts/test.sh

# The whole suite beside a CPU hog on every core (tools/cpuhog, started
# and stopped by scripts/test.sh): it must hold on a loaded machine.
test-loaded:
	CI_LOADED=1 scripts/test.sh

# Graceful shutdown of the real binary with saturated clients alone (make
# test runs it with 5,000; E2E_SCALE_CLIENTS sets another count).
test-scale:
	E2E_SCALE_CLIENTS=$${E2E_SCALE_CLIENTS:-5000} go test -count=1 -run '^TestSIGTERMAtScaleUnderSaturation$$' -v -timeout 20m ./e2e

# The hot-path micro-benchmarks: match, enqueue, fan-out to 1k/10k
# recipients, encode (BENCHMARKS.md).
bench:
	go test -run='^$$' -bench='^Benchmark(Match|MatchDeliver|Enqueue|FanOut1k|FanOut10k|FanOut10kInline|FanOut10kParallel|Encode|AppendData)$$' -benchmem ./subscription ./pool ./dispatch ./compat

bench-all:
	go test -run='^$$' -bench=. -benchmem ./...

# A short side-by-side load run of the naive baseline and wsproxy
# (BENCHMARKS.md has the big ones).
load:
	go run ./tools/wsload -conns 2000 -rate 20 -duration 10s

fmt:
	gofmt -w .

lint:
	test -z "$$(gofmt -l .)"
	go vet ./...

# Every fuzz target for FUZZTIME each (default 5s; CI runs it from test.sh).
fuzz:
	scripts/fuzz.sh

# The soak test at full length: churning clients for SOAK (default 5m),
# then goroutines and heap must return to their baseline.
soak:
	WSPROXY_SOAK=$${SOAK:-5m} go test -count=1 -run '^TestSoak$$' -v -timeout 30m ./proxy
