# cnet: the two commands are `make demo` and `make test` (both need root).
GO ?= go
export PATH := $(PATH):/usr/local/go/bin

.PHONY: build demo test test-unprivileged fuzz bench pictures clean

# Static binaries: no dynamic loader at start-up, which a command that runs
# for milliseconds notices.
export CGO_ENABLED := 0

build:
	$(GO) build -trimpath -o bin/cnet ./cmd/cnet
	$(GO) build -trimpath -o bin/echo-server ./cmd/echo-server

# The seed walkthrough through cnet, in a throwaway sandbox.
demo: build
	scripts/demo.sh bin

# Every test. As root, privileged tests run inside private network and
# mount namespaces; as a regular user they skip and say so. The race
# detector needs cgo (gcc), whatever the binaries are built with.
test:
	$(GO) vet ./...
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 15m ./...

# Every fuzz target for FUZZTIME each (default 5s; CI runs 2s). Inputs
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

# Redraw the examples' pictures in docs/examples (needs graphviz for svg).
pictures: build
	for f in examples/*.yaml; do n=$$(basename $$f .yaml); \
		bin/cnet graph -f $$f > docs/examples/$$n.txt && \
		bin/cnet graph -f $$f --format svg > docs/examples/$$n.svg || exit 1; done

clean:
	rm -rf bin
