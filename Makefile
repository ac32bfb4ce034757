# telegate: `make run` starts a working local system, `make test` installs
# what the tests need and runs every test.

GO        ?= go
BIN       := bin/telegate
CLIENT_BIN := bin/telegate-client
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS   := -s -w -X main.version=$(VERSION) -X main.revision=$(REVISION)
FUZZTIME  ?= 10s
# Keeps a new input's minimization (60s by default) inside FUZZTIME.
FUZZMINIMIZETIME ?= 1s

.PHONY: all build run test test-deps unit e2e fuzz bench vet fmt lint clean thanos prometheus3 rules vmagent compare

all: build

## build: bin/telegate (every command) and bin/telegate-client (the lean
## client alone: no TSDB, PromQL, Kubernetes or cloud SDKs).
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/telegate
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(CLIENT_BIN) ./cmd/telegate-client

## run: the gateway on its built-in config (= examples/gateway.yaml: embedded
## storage, query API on 127.0.0.1:9004) plus a demo cluster Prometheus and a
## telegate client sending to it.
run: build
	./scripts/run-local.sh $(BIN)

## test: everything CI runs. Installs Prometheus (Debian package) if missing.
test: test-deps vet rules unit e2e fuzz

test-deps:
	./scripts/install-test-deps.sh

vet:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

## rules: check the Prometheus rules in deploy/monitoring and run their
## unit tests (promtool from the Debian prometheus package).
PROMTOOL ?= promtool
rules: test-deps
	$(PROMTOOL) check rules deploy/monitoring/rules/*.rules.yaml
	$(PROMTOOL) test rules deploy/monitoring/rules/tests/*.test.yaml

unit:
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /test/e2e)

e2e: test-deps thanos prometheus3
	$(GO) test -count=1 -timeout 35m ./test/e2e/...

## thanos: bin/thanos (Receive and Query for the e2e tests), built from the
## module proxy at the version test/tools/go.mod pins. Rebuilt only when the
## pin changes (the stamp file names the version). Thanos needs a newer Go
## than ours: GOTOOLCHAIN=auto fetches it through the proxy.
THANOS_VERSION := $(shell awk '$$1=="require" && $$2=="github.com/thanos-io/thanos" {print $$3} $$1=="github.com/thanos-io/thanos" {print $$2}' test/tools/go.mod)
THANOS_STAMP   := bin/.thanos-$(THANOS_VERSION)

thanos: $(THANOS_STAMP)

$(THANOS_STAMP): test/tools/go.mod test/tools/go.sum
	@mkdir -p bin
	cd test/tools && GOTOOLCHAIN=auto CGO_ENABLED=0 $(GO) build -trimpath -tags netgo,slicelabels \
	  -o ../../bin/thanos github.com/thanos-io/thanos/cmd/thanos
	@rm -f bin/.thanos-*
	touch $@

## prometheus3: bin/prometheus3 (a stock Prometheus 3, the sender of the
## native-histogram and remote write 2.0 e2e tests; Debian's 2.42 knows
## neither), built from the module proxy at the version
## test/tools/prometheus3/go.mod pins (module v0.316.0 = Prometheus 3.16.0;
## its own module, so Thanos' pins in test/tools do not move). Without the
## builtinassets tag the React UI is not embedded; the API works. Rebuilt
## only when the pin changes.
PROMETHEUS3_VERSION := $(shell awk '$$1=="require" && $$2=="github.com/prometheus/prometheus" {print $$3} $$1=="github.com/prometheus/prometheus" {print $$2}' test/tools/prometheus3/go.mod)
PROMETHEUS3_STAMP   := bin/.prometheus3-$(PROMETHEUS3_VERSION)
# v0.316.0 -> 3.16.0, stamped like the release build does (prometheus_build_info).
PROMETHEUS3_RELEASE := $(shell echo $(PROMETHEUS3_VERSION) | awk -F. '{printf "%d.%d.%s", $$2/100, $$2%100, $$3}')

prometheus3: $(PROMETHEUS3_STAMP)

$(PROMETHEUS3_STAMP): test/tools/prometheus3/go.mod test/tools/prometheus3/go.sum
	@mkdir -p bin
	cd test/tools/prometheus3 && GOTOOLCHAIN=auto CGO_ENABLED=0 $(GO) build -trimpath \
	  -ldflags '-X github.com/prometheus/common/version.Version=$(PROMETHEUS3_RELEASE) -X github.com/prometheus/common/version.Revision=$(PROMETHEUS3_VERSION)' \
	  -o ../../../bin/prometheus3 github.com/prometheus/prometheus/cmd/prometheus
	@rm -f bin/.prometheus3-*
	touch $@

## vmagent: bin/vmagent (VictoriaMetrics' vmagent, the reference of `make
## compare`), built from the module proxy at the version
## test/tools/vmagent/go.mod pins (its own module, so Thanos' pins in
## test/tools do not move). Rebuilt only when the pin changes.
VMAGENT_VERSION := $(shell awk '$$1=="require" && $$2=="github.com/VictoriaMetrics/VictoriaMetrics" {print $$3} $$1=="github.com/VictoriaMetrics/VictoriaMetrics" {print $$2}' test/tools/vmagent/go.mod)
VMAGENT_STAMP   := bin/.vmagent-$(VMAGENT_VERSION)

vmagent: $(VMAGENT_STAMP)

$(VMAGENT_STAMP): test/tools/vmagent/go.mod test/tools/vmagent/go.sum
	@mkdir -p bin
	cd test/tools/vmagent && GOTOOLCHAIN=auto CGO_ENABLED=0 $(GO) build -trimpath \
	  -ldflags '-X github.com/VictoriaMetrics/VictoriaMetrics/lib/buildinfo.Version=vmagent-$(VMAGENT_VERSION)' \
	  -o ../../../bin/vmagent github.com/VictoriaMetrics/VictoriaMetrics/app/vmagent
	@rm -f bin/.vmagent-*
	touch $@

## compare: the gateway and vmagent side by side on 127.0.0.1, same payload,
## same load, same decode-only downstream, one after the other; prints each
## one's samples per CPU-second of its own process, p99 and every ratio
## (scripts/compare.sh; MODE=rate at RATE=100 requests/s by default,
## MODE=saturate keeps CONCURRENCY=8 requests in flight, MODE=serial sends
## one at a time; DURATION=30s, ROUNDS=2; PROFILE=FILE profiles the gateway).
## PEER=telemeter-server TELEMETER_SERVER=/path/to/telemeter-server compares
## /upload against OpenShift's telemeter-server instead (scripts/compare-upload.sh,
## MODE=saturate by default; its header says how to build telemeter-server).
PEER ?= vmagent
compare: build $(if $(filter telemeter-server,$(PEER)),,vmagent)
ifeq ($(PEER),telemeter-server)
	TELEMETER_SERVER=$(TELEMETER_SERVER) ./scripts/compare-upload.sh
else ifeq ($(PEER),vmagent)
	./scripts/compare.sh
else
	@echo "PEER must be vmagent or telemeter-server, got '$(PEER)'" >&2; exit 2
endif

## fuzz: each fuzz target for FUZZTIME (the corpus under testdata/fuzz also
## runs as plain tests in `unit`); scripts/fuzz.sh reruns a target that hit
## only Go 1.26's fuzz-deadline race (go.dev/issue/75804), never a finding.
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) FUZZMINIMIZETIME=$(FUZZMINIMIZETIME) ./scripts/fuzz.sh

## bench: every benchmark (benchstat-friendly, also saved to bin/bench.txt),
## then the ingest path's samples per CPU-second and its ratio to the naive
## gogo decode+encode floor measured in the same run, and remote write 2.0's
## samples per CPU-second over 1.0's on the same series (decode, receive,
## 2.0 in and out), medians over BENCHCOUNT. BENCHCOUNT=6 for benchstat.
BENCHCOUNT ?= 1
bench:
	@mkdir -p bin
	$(GO) test -run='^$$' -bench=. -benchmem -count=$(BENCHCOUNT) ./... > bin/bench.txt 2>&1 || { cat bin/bench.txt; exit 1; }
	@cat bin/bench.txt
	@echo; echo "ingest path vs the naive floor (same run; targets: receive >= 4x, upload >= 3x):"
	@awk '/^Benchmark(NaiveFloor|Receive|Upload)/ { r = ""; s = ""; a = ""; \
	  for (i = 1; i < NF; i++) { if ($$(i+1) == "x-naive") r = $$i; if ($$(i+1) == "samples/cpu-s") s = $$i; if ($$(i+1) == "allocs/series") a = $$i } \
	  printf "  %-40s %12.0f samples/cpu-s  %8.4f allocs/series  %s\n", $$1, s, a, (r == "" ? "(floor)" : r "x naive") }' bin/bench.txt
	@echo; ./scripts/bench-ratios.sh bin/bench.txt

clean:
	rm -rf bin data
