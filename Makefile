# dproxy — `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/dproxy/dproxy/internal/commands.Version=$(VERSION)

GOTESTSUM_VERSION := v1.13.0
STATICCHECK_VERSION := v0.8.2

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  %-10s %s\n", $$1, $$2}'

.PHONY: build
build: ## Build bin/dproxy
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/dproxy ./cmd/dproxy

.PHONY: run
run: build ## Run dproxy on its embedded default (SQLite + a blob folder in ./dproxy-data)
	$(BIN)/dproxy serve

.PHONY: test
test: $(BIN)/gotestsum ## Run every test with the race detector
	$(BIN)/gotestsum --format pkgname-and-test-fails --format-hide-empty-pkg -- -race -shuffle=on -count=1 -timeout 20m ./...

.PHONY: lint
lint: $(BIN)/staticcheck ## gofmt, go vet, staticcheck, go mod tidy check
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(BIN)/staticcheck ./...
	$(GO) mod tidy -diff

DISTRIBUTION_VERSION := v3.1.2
BENCH_FLAGS ?=

.PHONY: bench
bench: bench-go bench-e2e ## Run the Go benchmarks and the end-to-end bench (writes docs/performance.md)

.PHONY: bench-go
bench-go: ## Run the Go benchmarks (hot paths with allocations, cached blob throughput)
	$(GO) test -run '^$$' -bench . -benchmem -count 3 ./...

.PHONY: bench-e2e
bench-e2e: build $(BIN)/registry $(BIN)/dproxy-bench ## dproxy vs CNCF Distribution vs nginx on loopback; table into docs/performance.md
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || apt-get install -y nginx-light
	$(BIN)/dproxy-bench -dproxy $(BIN)/dproxy -registry $(BIN)/registry -nginx $$(command -v nginx || echo /usr/sbin/nginx) $(BENCH_FLAGS)

.PHONY: $(BIN)/dproxy-bench
$(BIN)/dproxy-bench:
	$(GO) build -o $@ ./cmd/dproxy-bench

$(BIN)/registry:
	GOBIN=$(BIN) $(GO) install github.com/distribution/distribution/v3/cmd/registry@$(DISTRIBUTION_VERSION)

.PHONY: generate
generate: ## Regenerate generated code (GraphQL server, CLI docs, completions)
	cd internal/server/graphql && $(GO) tool gqlgen generate --config gqlgen.yml
	$(GO) run ./internal/commands/gen -docs docs/cli -completions completions

GENERATED := internal/server/graphql/generated docs/cli completions

.PHONY: check-generate
check-generate: generate ## Fail when generated code is not current
	@git diff --exit-code -- $(GENERATED) || { echo "generated code is stale: run make generate and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- $(GENERATED))" || { echo "untracked generated files: run make generate and commit"; exit 1; }

.PHONY: e2e
e2e: ## End-to-end: docker, podman, skopeo, containerd, crane, regctl pull through dproxy (root; installs what is missing)
	bash e2e/run.sh

.PHONY: ci
ci: lint check-generate test e2e ## What CI runs: lint, the generated-code check, the tests and the end-to-end suite

$(BIN)/gotestsum:
	GOBIN=$(BIN) $(GO) install gotest.tools/gotestsum@$(GOTESTSUM_VERSION)

$(BIN)/staticcheck:
	GOBIN=$(BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
