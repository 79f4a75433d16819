# orderhook — run `make help` for the targets.
SHELL := bash
PG_URL ?= postgres://postgres@127.0.0.1:5432/test?sslmode=disable

.PHONY: help
help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

.PHONY: build
build: ## Build ./bin/orderhook
	go build -o bin/orderhook ./cmd/orderhook

.PHONY: run
run: ## Serve on the embedded SQLite default (./orderhook.db)
	go run ./cmd/orderhook serve --log-format console

.PHONY: test
test: ## Run the tests with the race detector (SQLite; PostgreSQL too when ORDERHOOK_TEST_DATABASE_URL is set)
	go test -race ./...

.PHONY: test-pg
test-pg: ## Run the tests against the local PostgreSQL (PG_URL)
	ORDERHOOK_TEST_DATABASE_URL='$(PG_URL)' go test -race ./...

.PHONY: test-full
test-full: ## The suite on PostgreSQL, then the permutation property at full size (200 orders) on both engines
	ORDERHOOK_TEST_DATABASE_URL='$(PG_URL)' go test -race ./...
	ORDERHOOK_PERMUTATIONS=200 ORDERHOOK_TEST_DATABASE_URL='$(PG_URL)' go test -count=1 -timeout 30m -run Permutation ./reconcile/

.PHONY: reliability
reliability: ## The black-box reliability suite at full size, against PG_URL (RELIABILITY.md)
	ORDERHOOK_RELIABILITY_SIZE=full ORDERHOOK_TEST_DATABASE_URL='$(PG_URL)' go test -race -tags reliability -count=1 -timeout 30m -v ./reliability/

.PHONY: ci
ci: ## Run what CI runs (.ci/run)
	bash .ci/run

.PHONY: lint
lint: ## gofmt, go vet, staticcheck (pinned) and shellcheck
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	go vet ./...
	go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
	shellcheck .ci/run scripts/*.sh

.PHONY: fuzz
fuzz: ## Fuzz the signature header, the whole delivery and the envelope parser (FUZZTIME each, default 2m)
	go test ./webhook -run '^$$' -fuzz '^FuzzSignatureHeader$$' -fuzztime $${FUZZTIME:-2m}
	go test ./webhook -run '^$$' -fuzz '^FuzzDelivery$$' -fuzztime $${FUZZTIME:-2m}
	go test ./internal/stripeevent -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $${FUZZTIME:-2m}

.PHONY: bench
bench: ## Run the Go benchmarks of the hot paths
	ORDERHOOK_TEST_DATABASE_URL='$(PG_URL)' go test -run '^$$' -bench . -benchmem ./...

.PHONY: bench-runs
bench-runs: build ## BENCHMARKS.md's billing-run bench, once per seed (SEEDS="1 2 3"; BENCH_FLAGS, BENCH_DB: scripts/bench-runs.sh)
	scripts/bench-runs.sh $(SEEDS)

.PHONY: bench-drain
bench-drain: build ## The reconciler alone draining a stored billing run, once per tag (TAGS="a b c"; SERVE_FLAGS: scripts/bench-drain.sh)
	scripts/bench-drain.sh $(TAGS)

.PHONY: compose-config
compose-config: ## Validate docker-compose.yml
	STRIPE_WEBHOOK_SECRET=whsec_check docker-compose -f docker-compose.yml config -q

.PHONY: rules
rules: ## Validate and unit-test the Prometheus alert rules (promtool, from Debian's prometheus package)
	promtool check rules deploy/prometheus/orderhook.rules.yml
	promtool test rules deploy/prometheus/orderhook.rules.test.yml

.PHONY: docker
docker: ## Build the container image
	docker build -t orderhook .
