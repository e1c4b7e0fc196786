# cnet: the two commands are `make demo` and `make test` (both need root).
GO ?= go
export PATH := $(PATH):/usr/local/go/bin

.PHONY: deps build demo test check-tree lint test-unprivileged fuzz bench bench-lab pictures clean

# Static binaries: no dynamic loader at start-up, which a command that runs
# for milliseconds notices.
export CGO_ENABLED := 0

# The Debian packages that build, demo and test need (as root). The README
# and .ci/run install the same list.
deps:
	apt-get install -y $$(sed 's/#.*//' scripts/deps.txt)

# cnet --version: the tag git describe finds, else the module version Go
# stamps from the commit (-buildvcs, which a GOFLAGS=-buildvcs=false in the
# environment would turn off).
VERSION ?= $(shell git describe --tags --dirty 2>/dev/null)

build:
	$(GO) build -trimpath -buildvcs=auto -ldflags "-X main.version=$(VERSION)" -o bin/cnet ./cmd/cnet
	$(GO) build -trimpath -o bin/echo-server ./cmd/echo-server

# The seed walkthrough through cnet, in a throwaway sandbox.
demo: build
	scripts/demo.sh bin

# Every test. As root, privileged tests run inside private network and
# mount namespaces; as a regular user they skip and say so. The race
# detector needs cgo (gcc), whatever the binaries are built with.
# bench/ (the benchmark harness and the floor) is a module of its own,
# bench/go.mod, which ./... at the root does not reach: it is vetted and
# tested in its directory.
test: check-tree lint
	$(GO) vet ./...
	cd bench && $(GO) vet ./...
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 15m ./...
	cd bench && CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 15m ./...

# The tree holds sources only: go.mod and go.sum as `go mod tidy` leaves
# them, gofmt'd Go, and no tracked file over 1 MB (a built binary).
check-tree:
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy"; exit 1; }
	@cd bench && $(GO) mod tidy -diff || { echo "bench/go.mod/go.sum are not tidy: run cd bench && go mod tidy"; exit 1; }
	@f=$$(gofmt -l $$(git ls-files '*.go')); [ -z "$$f" ] || { echo "not gofmt'd: $$f"; exit 1; }
	@big=$$(git ls-files -z | xargs -0 -r stat -c '%s %n' 2>/dev/null | awk '$$1 > 1000000 {print $$2}'); \
		[ -z "$$big" ] || { echo "tracked files over 1 MB (build outputs belong in .gitignore): $$big"; exit 1; }

# golangci-lint with .golangci.yml (errcheck, forbidigo, govet, staticcheck,
# ineffassign, unused). The pinned version is installed into bin/ on first
# use, so a fresh machine needs only Go.
GOLANGCI_LINT_VERSION := v2.15.0
GOLANGCI_LINT := $(CURDIR)/bin/golangci-lint-$(GOLANGCI_LINT_VERSION)
lint: $(GOLANGCI_LINT)
	$(GOLANGCI_LINT) run ./...
	cd bench && $(GOLANGCI_LINT) run --config $(CURDIR)/.golangci.yml ./...

$(GOLANGCI_LINT):
	mkdir -p bin
	GOBIN=$(CURDIR)/bin/.golangci-lint-$(GOLANGCI_LINT_VERSION) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv bin/.golangci-lint-$(GOLANGCI_LINT_VERSION)/golangci-lint $@
	rmdir bin/.golangci-lint-$(GOLANGCI_LINT_VERSION)

# Every fuzz target for FUZZTIME each (default 5s; CI runs 3000x, a count,
# since a duration can end in go1.26's spurious "context deadline exceeded"). Inputs
# that crash one are written to the package's testdata/fuzz/FUZZNAME/,
# where plain `go test` replays them from then on: commit them with the
# fix. For a longer hunt: make fuzz FUZZTIME=5m.
FUZZTIME ?= 5s
FUZZ_TARGETS := \
	internal/ports:FuzzParse \
	internal/dns:FuzzAnswer \
	internal/ipam:FuzzParseSubnet internal/ipam:FuzzParseAddr internal/ipam:FuzzCheckHost \
	internal/names:FuzzCheckName internal/names:FuzzCheckIfName internal/names:FuzzParseMark \
	internal/cni:FuzzConfig \
	internal/state:FuzzCheckPages \
	lab:FuzzParse
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "fuzz $$fn in ./$$pkg for $(FUZZTIME)"; \
		$(GO) test -run='^$$' -fuzz="^$$fn\$$" -fuzztime=$(FUZZTIME) ./$$pkg; \
	done

# cnet against the seed's ip commands, the CNI bridge plugin, netavark and a
# netlink-only floor, in a throwaway sandbox (needs root; installs the peers
# if missing). Prints the report, writes bench/results/results.md and
# docs/benchmarks-setup.svg. BENCH_FLAGS=-quick for a short pass.
bench:
	scripts/bench.sh $(BENCH_FLAGS)
	$(MAKE) --no-print-directory bench-lab

# cnet diff of a lab of 1,000 and 3,000 networks (and as many containers),
# three runs each (Go benchmark, in the tests' own sandbox; needs root).
bench-lab:
	$(GO) test -run '^$$' -bench '^BenchmarkLabDiff$$' -benchtime 1x -count 3 ./lab

# Redraw the examples' pictures in docs/examples (needs graphviz for svg).
pictures: build
	for f in examples/*.yaml; do n=$$(basename $$f .yaml); \
		bin/cnet graph -f $$f > docs/examples/$$n.txt && \
		bin/cnet graph -f $$f --format svg > docs/examples/$$n.svg || exit 1; done

clean:
	rm -rf bin
