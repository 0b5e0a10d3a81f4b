# gracefulinit: build, test, benchmark, package.
GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse --short HEAD 2>/dev/null)
LDFLAGS   := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
GOBUILD   := CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)'
# gracefulinit enters through a stub that records the signal mask and the
# ignored signals before the Go runtime changes them, so the app inherits
# them exactly, as with tini (internal/signals/entry.go; the Dockerfile and
# internal/testkit/testbin link it the same way, a test checks all three).
ENTRY_LDFLAGS := -E _gracefulinit_rt0
GOBUILD_INIT := CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS) $(ENTRY_LDFLAGS)'
STATICCHECK  := honnef.co/go/tools/cmd/staticcheck@v0.8.2
CACHE     ?= $(or $(GI_CACHE),$(HOME)/.cache/gracefulinit)
TEST_TIMEOUT ?= 75m

CONTAINER_CLI ?= $(shell command -v docker 2>/dev/null || command -v podman 2>/dev/null)
IMAGE     ?= gracefulinit:$(VERSION)
PLATFORMS ?= linux/amd64 linux/arm64

.PHONY: all build test test-product test-tools fuzz test-short bench soak lint demo rollout jars polaris deps image test-container release clean

all: build

# bin/gracefulinit is PID 1 for every mode; bin/gracefulinit-nacos is the
# helper that runs the Nacos SDK for --nacos-mode register, found next to it.
build:
	$(GOBUILD_INIT) -o bin/gracefulinit ./cmd/gracefulinit
	$(GOBUILD) -o bin/gracefulinit-nacos ./cmd/gracefulinit-nacos

# Installs what the tests use (Debian packages, a cached Polaris build), then runs every
# test of the product and of the tools module (fuzz targets run their seed corpora
# there) and fuzzes each target briefly, the three side by side: most tests wait
# (timers, JVMs, Polaris, podman), so they overlap well even on 2 cores. The run's test
# processes share each binary testbin builds (GI_TEST_RUN_DIR, removed after).
test: deps
	@run=$$(mktemp -d "$${TMPDIR:-/tmp}/gracefulinit-test-run.XXXXXX") && trap 'rm -rf "$$run"' EXIT && \
	GI_TEST_RUN_DIR=$$run $(MAKE) --no-print-directory -j3 --output-sync=line test-product test-tools fuzz

test-product:
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

test-tools:
	$(GO) -C tools test -count=1 -timeout $(TEST_TIMEOUT) ./...

# Each fuzz target for FUZZTIME, FUZZ_JOBS at a time with one worker each
# (scripts/fuzz.sh; -fuzz takes one target per run). New failing inputs land in
# the package's testdata/fuzz, where they become seed cases of the plain test run.
FUZZTIME ?= 5s
FUZZ_JOBS ?= 3
FUZZ_TARGETS := ./internal/config:FuzzParse ./internal/redact:FuzzText ./internal/redact:FuzzURL \
	./internal/config:FuzzEnv ./internal/redact:FuzzJSON ./internal/registry/httphook:FuzzParse \
	./internal/registry/nacos:FuzzMarkAnswers ./internal/registry/nacos:FuzzHelperOutput ./internal/registry/eureka:FuzzParseInstance \
	./internal/registry/nacos:FuzzAppEnv
fuzz:
	@GO=$(GO) ./scripts/fuzz.sh $(FUZZTIME) $(FUZZ_JOBS) $(FUZZ_TARGETS)

test-short:
	$(GO) test -count=1 -short ./...
	$(GO) -C tools test -count=1 -short ./...

# tools/ is a module of its own (the benchmark and the rollout harness).
bench: deps build
	$(GO) -C tools run ./bench/cmd/bench

# The Nacos helper soak (issue 20), not part of make test: SOAK_DURATION of a crash-looping
# and a flooding helper, each under gracefulinit as PID 1; gracefulinit's CPU and RSS
# sampled every second, the app checked untouched (tools/soak).
SOAK_DURATION ?= 10m
soak: build
	$(GO) -C tools run ./soak -bin $(CURDIR)/bin/gracefulinit -duration $(SOAK_DURATION)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change: $$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) -C tools vet ./...
	$(GO) run $(STATICCHECK) ./...
	$(GO) -C tools run $(STATICCHECK) ./...

# Test and benchmark dependencies, idempotent: peer inits, load tools, container runtime.
deps:
	@./scripts/deps.sh

polaris:
	@./scripts/build-polaris.sh

# The main job, end to end: Polaris, two Java pods under tini and under gracefulinit, a rollout under load.
demo: deps build
	$(GO) -C tools run ./rollout -preset demo -v

# The rolling-update harness. The quick preset runs every consumer class (issue 19) and the
# start of every new pod (issue 21), tini, today's rule and this build, Nacos and Eureka
# (make test runs it scaled down as -preset test); ROLLOUT_FLAGS="-preset full" for the
# 5 x 3 pods at 200 req/s run of one consumer.
ROLLOUT_FLAGS ?= -preset quick
rollout: deps build
	$(GO) -C tools run ./rollout $(ROLLOUT_FLAGS)

jars:
	$(GO) run ./internal/testkit/javatest/cmd/buildjar testdata/java bin/testapp.jar
	$(GO) run ./internal/testkit/javatest/cmd/buildjar examples/javaapp bin/javaapp.jar

# The FROM-scratch distribution image (users COPY --from it).
image:
	$(CONTAINER_CLI) build --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) -t $(IMAGE) .

# Real containers under podman (part of make test too).
test-container: deps
	$(GO) test -count=1 -v -timeout 20m ./test/container/ ./examples/kubernetes/

# Static release binaries with checksums, in dist/: gracefulinit for every
# mode, gracefulinit-nacos beside it only for --nacos-mode register, the
# LICENSE, and THIRD_PARTY_LICENSES: the license files of every module the
# binaries link, read from their build information (it fails when one has
# none).
release:
	rm -rf dist && mkdir -p dist
	set -e; for p in $(PLATFORMS); do \
	  os=$${p%/*}; arch=$${p#*/}; \
	  GOOS=$$os GOARCH=$$arch $(GOBUILD_INIT) -o dist/gracefulinit-$$os-$$arch ./cmd/gracefulinit; \
	  GOOS=$$os GOARCH=$$arch $(GOBUILD) -o dist/gracefulinit-nacos-$$os-$$arch ./cmd/gracefulinit-nacos; \
	done
	cp LICENSE dist/LICENSE
	$(GO) run ./internal/thirdparty/cmd/thirdparty-licenses -o dist/THIRD_PARTY_LICENSES dist/gracefulinit-*
	cd dist && sha256sum gracefulinit-* LICENSE THIRD_PARTY_LICENSES > SHA256SUMS

clean:
	rm -rf bin dist
