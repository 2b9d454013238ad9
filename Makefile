# cairn — see README.md. `make test` is the test command CI runs.
GO ?= go
BIN := bin/cairn
FUZZTIME ?= 5s
PKGS := ./...

.PHONY: image deps build run test test-unit fuzz bench proto cluster cluster-stop ci vet clean sim sim-long robustness robustness-long

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) ./cmd/cairn

# A single-node database in ./cairn-data, on 127.0.0.1 only.
run: build
	./$(BIN) server

vet:
	$(GO) vet $(PKGS)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1)

# Debian packages the tests need (installed when missing and root).
deps:
	scripts/deps.sh

# Every fuzz target briefly, then unit, golden, property and end-to-end
# tests (real processes) with the race detector.
test: deps vet
	$(MAKE) fuzz
	$(GO) test -race -count=1 -timeout 30m $(PKGS)

test-unit:
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /tests/)

# Run each fuzz target for FUZZTIME (longer: make fuzz FUZZTIME=10m).
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

# Deterministic simulation: SEEDS seeds (CI runs the default sweep inside
# make test). Replay one: go test ./internal/sim -run TestSim -seed=N -v
SEEDS ?= 10000
sim:
	$(GO) test -count=1 -run 'TestSim$$' ./internal/sim/ -v

sim-long:
	$(GO) test -count=1 -timeout 0 -run 'TestSim$$' ./internal/sim/ -seeds=$(SEEDS)

# Real processes under injected faults (needs root, iptables, iproute2).
RUNS ?= 20
robustness:
	$(GO) test -count=1 ./tests/robustness/ -v

robustness-long:
	$(GO) test -count=1 -timeout 0 ./tests/robustness/ -v -runs=$(RUNS)

# Hot-path micro benchmarks (apply, storage). Compare runs with benchstat.
bench:
	$(GO) test -run='^$$' -bench=. -benchmem ./internal/storage/ ./internal/replica/

# Regenerate api/cairnpb from the .proto files (needs protoc).
proto:
	$(GO) build -o bin/ google.golang.org/protobuf/cmd/protoc-gen-go google.golang.org/grpc/cmd/protoc-gen-go-grpc
	cd api/cairnpb && $(GO) generate ./...

# A local 3-node cluster in the background.
cluster:
	scripts/cluster.sh start

# The container image (FROM scratch, the static binary only), tagged
# cairn:dev; then: docker-compose -f deploy/docker/compose.yaml up -d
image: build
	mkdir -p bin/image
	cp $(BIN) deploy/docker/Dockerfile bin/image/
	docker build -t cairn:dev bin/image

cluster-stop:
	scripts/cluster.sh stop

ci: test

clean:
	rm -rf bin .cluster
