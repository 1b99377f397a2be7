# onecard — build, test and benchmark.
#
#   make test    unit, integration and end-to-end tests (installs deps first)
#   make bench   benchmarks -> docs/benchmarks.md, docs/scaling.svg
#   make soak    soak and fault campaign (DURATION=10m)
#   make fuzz    a short pass over every fuzz target
#   make lint    gofmt, go vet, staticcheck
#   make deps    install the Debian packages the project needs (idempotent)
#   make build   build bin/onecard
#   make demo    hub, agent and a virtual card end to end; pages up until Ctrl-C
#   make dll     build the national reader interface library (sscard/)

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

.PHONY: all build test bench fuzz lint deps clean dll

all: build

deps:
	@./scripts/deps.sh

build: deps
	$(GO) build -o bin/onecard ./cmd/onecard

# The whole story on this machine (README "Demo"): a hub, an enrolled
# agent and a virtual card behind pcscd; then the kiosk page and the hub's
# admin page stay up until Ctrl-C.
.PHONY: demo
demo: build
	./bin/onecard demo

# The drop-in national reader interface library (sscard/; README
# "Replacing SSCardDriver.dll"): bin/libsscard.so, and SSCardDriver.dll
# for windows/386 (__stdcall, undecorated names through the .def file)
# and windows/amd64, with the C header. sscard/ctest's tests build and
# check the same way.
dll: deps
	CGO_ENABLED=1 $(GO) build -buildmode=c-shared -o bin/libsscard.so ./sscard
	CGO_ENABLED=1 GOOS=windows GOARCH=386 CC=i686-w64-mingw32-gcc $(GO) build -buildmode=c-shared \
		-ldflags "-extldflags=$(CURDIR)/sscard/sscard_386.def" -o bin/windows-386/SSCardDriver.dll ./sscard
	CGO_ENABLED=1 GOOS=windows GOARCH=amd64 CC=x86_64-w64-mingw32-gcc $(GO) build -buildmode=c-shared \
		-ldflags "-extldflags=$(CURDIR)/sscard/sscard_amd64.def" -o bin/windows-amd64/SSCardDriver.dll ./sscard
	rm -f bin/libsscard.h bin/windows-386/SSCardDriver.h bin/windows-amd64/SSCardDriver.h
	cp sscard/sscard.h bin/sscard.h

test: deps lint
	$(GO) test $(TESTFLAGS) $(PKGS)

# Every benchmark, then docs/benchmarks.md and docs/scaling.svg from the
# output (internal/benchreport; the run is echoed as it goes).
bench: deps
	@mkdir -p bin
	( $(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -timeout 60m $(PKGS); echo $$? > bin/bench.rc ) 2>&1 | tee bin/bench.txt
	$(GO) run ./internal/benchreport/cmd -echo=false -md docs/benchmarks.md -svg docs/scaling.svg < bin/bench.txt
	@exit $$(cat bin/bench.rc)

# The soak and fault campaign (soak/): agents as processes, hub kills,
# connection cuts, torn and pulled cards, then the three-way reconciliation.
# The short variant runs inside make test.
DURATION ?= 10m
.PHONY: soak
soak: deps
	ONECARD_SOAK_DURATION=$(DURATION) $(GO) test -count=1 -run '^TestSoak$$' -v -timeout 0 ./soak/

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
