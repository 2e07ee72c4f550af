# The two commands of the README's Quick start. Both do every setup step themselves.
BUILD_DIR ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
LISTEN ?= 127.0.0.1:36789
DATA_DIR ?= $(CURDIR)/data

.PHONY: deps configure build run test sanitize fuzz bench demo bank-bench kv-bench kv-cluster kv-stop clean

deps:
	bash scripts/install-deps.sh

configure: deps
	cmake -S . -B $(BUILD_DIR) -G Ninja $(CMAKE_FLAGS)

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

# dtxd on the embedded store, in the foreground.
run: build
	$(BUILD_DIR)/src/server/dtxd --listen $(LISTEN) --data-dir $(DATA_DIR)

test: build
	bash scripts/test.sh $(BUILD_DIR)

# The unit and simulation tests under AddressSanitizer + UndefinedBehaviorSanitizer.
sanitize:
	$(MAKE) test BUILD_DIR=build-asan CMAKE_FLAGS="-DDTX_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug"

bench: build
	$(BUILD_DIR)/tools/dtxbench/dtxbench saga

# The bank example: PostgreSQL, MariaDB, dtxd and two account services on loopback; transfers in
# every mode through failures; balances printed and checked. Leaves its logs in ./demo-data.
demo: build
	bash scripts/demo.sh $(BUILD_DIR) $(CURDIR)/demo-data

# The two-database transfer with and without dtx (docs/benchmarks.md).
bank-bench: build
	bash scripts/bank-bench.sh $(BUILD_DIR)

# dtxkv beside a 3-member etcd 3.4 cluster: writes/s, p50/p99, failover, RSS (docs/benchmarks.md).
# A local 3-node dtxkv cluster on loopback (scripts/kv-cluster.sh; data and logs in ./kv-data).
kv-cluster: build
	bash scripts/kv-cluster.sh start $(BUILD_DIR) $(CURDIR)/kv-data

kv-stop:
	bash scripts/kv-cluster.sh stop $(CURDIR)/kv-data

kv-bench: build
	bash scripts/kv-bench.sh $(BUILD_DIR)

clean:
	rm -rf $(BUILD_DIR) build-asan build-fuzz demo-data kv-data
