# dproxy — `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
BUILD_DATE ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null)
PKG := github.com/dproxy/dproxy/internal/commands
LDFLAGS := -s -w -X $(PKG).Version=$(VERSION) -X $(PKG).Commit=$(COMMIT) -X $(PKG).BuildDate=$(BUILD_DATE)

GOTESTSUM_VERSION := v1.13.0
STATICCHECK_VERSION := v0.8.2

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  %-10s %s\n", $$1, $$2}'

.PHONY: build
build: ## Build bin/dproxy
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/dproxy ./cmd/dproxy

.PHONY: run
run: build ## Run dproxy on its embedded default (SQLite + a blob folder in ./dproxy-data)
	$(BIN)/dproxy serve

# -race needs cgo, and cgo a C compiler: without one, go env CGO_ENABLED
# says 0 and the tests run without the race detector, with a note saying so.
RACE = $(if $(filter 1,$(shell $(GO) env CGO_ENABLED 2>/dev/null)),-race)

.PHONY: test
test: $(BIN)/gotestsum ## Run every test (with the race detector when a C compiler is installed)
	@if [ -z "$(RACE)" ]; then echo "note: cgo is off (go env CGO_ENABLED is 0, as without a C compiler): running the tests without the race detector; for it, install gcc (Debian/Ubuntu: apt-get install gcc libc6-dev)"; fi
	@if [ -z "$$DPROXY_TEST_POSTGRES" ] || [ -z "$$DPROXY_TEST_S3" ]; then echo "note: DPROXY_TEST_POSTGRES or DPROXY_TEST_S3 is not set: the PostgreSQL and S3 tests skip (with CI=true, fail) and the summary says how to run them; bash .ci/run (as root) starts both servers and runs every test"; fi
	$(BIN)/gotestsum --format pkgname-and-test-fails --format-hide-empty-pkg -- $(RACE) -shuffle=on -count=1 -timeout 30m ./...

.PHONY: lint
lint: $(BIN)/staticcheck ## gofmt, go vet, staticcheck, go mod tidy check
	@files=$$(git ls-files '*.go') && [ -n "$$files" ] || { echo "lint: git ls-files lists no Go files: lint needs git and a git checkout"; exit 1; }; \
	out=$$(gofmt -l $$files); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(BIN)/staticcheck ./...
	$(GO) mod tidy -diff

DISTRIBUTION_VERSION := v3.1.2
BENCH_FLAGS ?=
S9_FLAGS ?=

.PHONY: bench
bench: bench-go bench-e2e ## Run the Go benchmarks and the end-to-end bench (writes docs/performance.md)

.PHONY: bench-go
bench-go: ## Run the Go benchmarks (hot paths with allocations, cached blob throughput)
	$(GO) test -run '^$$' -bench . -benchmem -count 3 ./...

.PHONY: bench-e2e
bench-e2e: build $(BIN)/registry $(BIN)/dproxy-bench ## dproxy vs CNCF Distribution vs nginx on loopback; table into docs/performance.md
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || apt-get install -y nginx-light
	$(BIN)/dproxy-bench -dproxy $(BIN)/dproxy -registry $(BIN)/registry -nginx $$(command -v nginx || echo /usr/sbin/nginx) $(BENCH_FLAGS)

.PHONY: bench-s9
bench-s9: build $(BIN)/dproxy-bench ## S9: cost against store size (SQLite; PostgreSQL too with DPROXY_BENCH_POSTGRES); prints its tables
	$(BIN)/dproxy-bench -s9 - -dproxy $(BIN)/dproxy $(S9_FLAGS)

.PHONY: $(BIN)/dproxy-bench
$(BIN)/dproxy-bench:
	$(GO) build -o $@ ./cmd/dproxy-bench

$(BIN)/registry:
	@$(call go-install,$@,github.com/distribution/distribution/v3/cmd/registry,github.com/distribution/distribution/v3,$(DISTRIBUTION_VERSION))

.PHONY: generate
generate: ## Regenerate generated code (GraphQL server, CLI docs, completions)
	cd internal/server/graphql && $(GO) tool gqlgen generate --config gqlgen.yml
	$(GO) run ./internal/commands/gen -docs docs/cli -completions completions

GENERATED := internal/server/graphql/generated docs/cli completions

.PHONY: check-generate
check-generate: generate ## Fail when generated code is not current
	@git rev-parse --is-inside-work-tree >/dev/null || { echo "check-generate needs git and a git checkout"; exit 1; }
	@git diff --exit-code -- $(GENERATED) || { echo "generated code is stale: run make generate and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- $(GENERATED))" || { echo "untracked generated files: run make generate and commit"; exit 1; }

.PHONY: e2e
e2e: ## End-to-end: docker, podman, skopeo, containerd, crane, regctl pull through dproxy (root; installs what is missing)
	bash e2e/run.sh

DISTRIBUTION_SPEC ?=

.PHONY: conformance
conformance: ## OCI distribution-spec conformance (pull) through dproxy: make conformance DISTRIBUTION_SPEC="[label=]checkout ..."
	@test -n "$(DISTRIBUTION_SPEC)" || { echo "set DISTRIBUTION_SPEC to one or more checkouts of github.com/opencontainers/distribution-spec (see docs/conformance.md)"; exit 2; }
	bash scripts/conformance.sh $(DISTRIBUTION_SPEC)

.PHONY: ci
ci: lint check-generate test e2e ## What CI runs: lint, the generated-code check, the tests and the end-to-end suite

# Go tools in bin/, each pinned above. Their targets run on every use and
# (re)install a tool when bin/ lacks it or holds a build of another version:
# go version -m reads the module version built into the binary.
# $(call go-install,BINARY,PACKAGE,MODULE,VERSION)
go-install = $(GO) version -m $(1) 2>/dev/null | awk '$$1 == "mod" && $$2 == "$(3)" && $$3 == "$(4)" { ok = 1 } END { exit !ok }' || \
	{ echo "installing $(2)@$(4) into bin/"; GOBIN=$(BIN) $(GO) install $(2)@$(4); }

.PHONY: $(BIN)/gotestsum $(BIN)/staticcheck $(BIN)/registry
$(BIN)/gotestsum:
	@$(call go-install,$@,gotest.tools/gotestsum,gotest.tools/gotestsum,$(GOTESTSUM_VERSION))

$(BIN)/staticcheck:
	@$(call go-install,$@,honnef.co/go/tools/cmd/staticcheck,honnef.co/go/tools,$(STATICCHECK_VERSION))
