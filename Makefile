# make            build both binaries into bin/
# make test       the project's test command (see scripts/test.sh)
# make demo       run beatwatch demo: a watcher and example agents, no Redis needed
# make bench      run every benchmark the README and BENCHMARKS.md quote

GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/beatwrap/beatwrap/internal/version.Version=$(VERSION)

.PHONY: build test demo bench clean
build:
	@echo "building bin/beatwrap and bin/beatwatch (a first build on a cold Go cache fetches and compiles the dependencies: a minute or two)"
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ ./cmd/beatwrap ./cmd/beatwatch

test:
	./scripts/test.sh

# make demo LISTEN=127.0.0.1:7071 (or BEATWATCH_LISTEN=…) runs it on another port.
LISTEN ?= $(or $(BEATWATCH_LISTEN),127.0.0.1:7070)
demo: build
	./bin/beatwatch demo --listen $(LISTEN)

bench:
	./deploy/bench.sh

clean:
	rm -rf bin
