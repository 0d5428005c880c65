# Makefile - the newcomer's entry points; the build itself is CMake.
#   make run     install what is missing, build, serve the shipped models on 127.0.0.1:8080
#   make test    install what is missing, build, run every test (ctest) but the fresh-system one
#   make asan    the unit and end-to-end tests under AddressSanitizer + UndefinedBehaviorSanitizer
#   make fuzz    each libFuzzer harness for FUZZ_SECONDS (clang)
#   make fresh   README's two commands in a clean Debian 12 container (ctest -L fresh; root, podman)
# Every Debian package comes from tools/install-deps.sh (run, test, container), the one list.
BUILD ?= build
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CTEST_ARGS ?=

FUZZ_SECONDS ?= 60

.PHONY: all build run test asan fuzz fresh deps test-deps container-deps clean

all: build

deps:
	tools/install-deps.sh run

test-deps:
	tools/install-deps.sh test
	@# The browser test's npm packages (pinned by tests/browser/package-lock.json); without them
	@# that one test skips, so a failure here only warns.
	@[ -d tests/browser/node_modules/playwright-core ] || (cd tests/browser && npm ci --no-audit --no-fund) || \
		echo "make: warning: npm ci in tests/browser failed: the browser test will be skipped"

container-deps:
	tools/install-deps.sh container

# Tests configure when cmocka is there (GRU_TESTS=AUTO): `make run` installs no test packages.
build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(BUILD) -j$(JOBS)

run: build
	$(BUILD)/server/gru-serve $(ARGS)

# Every test but the fresh-system one (label fresh: `make fresh`, run by .ci/run).
test: test-deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGRU_TESTS=ON
	cmake --build $(BUILD) -j$(JOBS)
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS) -LE fresh $(CTEST_ARGS)

asan: test-deps
	cmake -S . -B $(BUILD)-asan -DCMAKE_BUILD_TYPE=Debug -DGRU_SANITIZE=ON -DGRU_TESTS=ON
	cmake --build $(BUILD)-asan -j$(JOBS)
	cd $(BUILD)-asan && ctest --output-on-failure -j$(JOBS) -L 'unit|e2e' $(CTEST_ARGS)

fuzz: test-deps
	CC=clang cmake -S . -B $(BUILD)-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGRU_FUZZ=ON -DGRU_FUZZ_SECONDS=$(FUZZ_SECONDS) -DGRU_TESTS=ON
	cmake --build $(BUILD)-fuzz -j$(JOBS)
	cd $(BUILD)-fuzz && ctest --output-on-failure -L fuzz $(CTEST_ARGS)

# -V: the fresh test's phases and their times in the log, passed or not.
fresh: test-deps container-deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGRU_TESTS=ON
	cd $(BUILD) && ctest -V -L fresh $(CTEST_ARGS)

clean:
	rm -rf $(BUILD) $(BUILD)-asan $(BUILD)-fuzz
