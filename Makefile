# Switchboard: `make run` runs it, `make test` runs the tests. Both install what they need first.
SHELL := /bin/bash
NPM_STAMP := node_modules/.package-lock.json
APT_PACKAGES := iproute2 iputils-arping ndisc6 tcpdump g++ make python3 nftables iptables conntrack

.PHONY: run test test-unit test-e2e test-chaos test-dataplane test-kind bench bench-compare build deploy undeploy image lint deps system-deps controlplane clean

run: deps build
	node dist/cmd/switchboard.js up

test: deps
	npm test

test-unit: deps
	npm run build && npm run test:unit

test-e2e: deps
	npm run test:integration

# The fault suites in full (make test runs them with few trials): e2e/chaos/, and the speakers' SIGKILL/SIGSTOP
# trials in network namespaces (30 and 20 with heartbeats; as root).
test-chaos: deps
	npm run build
	SWITCHBOARD_CHAOS=full NODE_OPTIONS=--experimental-vm-modules npx jest --selectProjects integration --testPathPatterns 'e2e/chaos|controllers/speaker/(l2-network|heartbeat)\.int'

# The traffic suite in full (make test runs it short): real packets through kube-proxy, CoreDNS and the speakers
# in network namespaces (e2e/dataplane/). Needs root; skipped, saying why, otherwise.
test-dataplane: deps
	npm run build
	SWITCHBOARD_DATAPLANE=full NODE_OPTIONS=--experimental-vm-modules npx jest --selectProjects integration --testPathPatterns e2e/dataplane

bench: deps build
	npm run build:test
	node dist-test/bench/run.js $(BENCH_ARGS)

# kube-controller-manager's endpoint controllers against Switchboard's, side by side (bench/compare/): e.g.
# make bench-compare BENCH_ARGS="--preset one-big-service"; --preset small runs in about a minute per side.
bench-compare: deps build
	npm run build:test
	node dist-test/bench/compare/main.js $(BENCH_ARGS)

# The API load and failover time of 100 L2 speakers against one kube-apiserver: all fast, two paces, heartbeats
# (bench/speakers.ts); a few minutes a phase: e.g. make bench-speakers BENCH_ARGS="--speakers 100 --phases after,heartbeats".
.PHONY: bench-speakers
bench-speakers: deps build
	npm run build:test
	node dist-test/bench/speakers.js $(BENCH_ARGS)

build: deps
	npm run build

lint: deps
	npm run typecheck
	@command -v duplicates >/dev/null && duplicates --most 20 || true

deploy:
	kubectl apply -k config/default

# The operator owns its webhook configurations (config/webhook/operator-managed/README.md): remove them first.
undeploy:
	kubectl delete mutatingwebhookconfiguration,validatingwebhookconfiguration switchboard-service-allocation --ignore-not-found
	kubectl delete validatingwebhookconfiguration switchboard-lb-validation --ignore-not-found
	kubectl delete -k config/default --ignore-not-found

image:
	docker build -t switchboard:dev .

# Needs Docker and kind; cannot run on this project's machines (CI validates its parts instead).
test-kind: deps
	e2e/kind/run.sh

controlplane: deps build
	node dist/cmd/up/controlplane/cli.js start

deps: system-deps $(NPM_STAMP)

$(NPM_STAMP): package.json package-lock.json
	@# npm ci refuses this lock file (npm 11 drops optional platform bindings of unrs-resolver from it); install keeps its pins.
	npm install --no-audit --no-fund
	@touch $(NPM_STAMP)

# The network tests need these Debian packages; install them when missing and we may (root).
system-deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "Missing Debian packages (network tests will be skipped): $$missing"; fi; \
	fi
	@command -v go >/dev/null || { echo "Go 1.24+ is needed to build the local control plane (etcd, kube-apiserver): https://go.dev/doc/install or apt-get install golang-go"; exit 1; }
	@command -v node >/dev/null || { echo "Node.js 20+ is needed"; exit 1; }

clean:
	rm -rf dist controllers/speaker/native/build
