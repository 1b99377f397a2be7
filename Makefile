# onecard — build, test and benchmark.
#
#   make test    unit, integration and end-to-end tests (installs deps first)
#   make bench   benchmarks
#   make fuzz    a short pass over every fuzz target
#   make lint    gofmt, go vet, staticcheck
#   make deps    install the Debian packages the project needs (idempotent)
#   make build   build bin/onecard

GO ?= go
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
FUZZTIME ?= 10s
BENCHTIME ?= 1s
TESTFLAGS ?= -race -count=1 -timeout 25m
PKGS ?= ./...

# The GM crypto library reads these once at process start (see
# internal/safeenv): every test and benchmark runs the way the product runs.
export GODEBUG := cpu.adx=off
export FORCE_SM4BLOCK_AESNI := 1
export CGO_ENABLED := 1

.PHONY: all build test bench fuzz lint deps clean

all: build

deps:
	@./scripts/deps.sh

build: deps
	$(GO) build -o bin/onecard ./cmd/onecard

test: deps lint
	$(GO) test $(TESTFLAGS) $(PKGS)

bench: deps
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) $(PKGS)

# Every fuzz target, each for FUZZTIME (go test -fuzz takes one target per run).
fuzz:
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
		dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
		for t in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do \
			echo "fuzz $$pkg $$t"; \
			$(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

lint: deps
	@out=$$(gofmt -l . 2>/dev/null); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) run $(STATICCHECK) $(PKGS)

clean:
	rm -rf bin
