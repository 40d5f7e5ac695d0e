.PHONY: run test bench lint fmt

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
