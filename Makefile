.PHONY: run test bench lint fmt fuzz soak

run:
	go run .

test:
	scripts/test.sh

bench:
	go test -run='^$$' -bench=. -benchmem ./...

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
