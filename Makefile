# A thin wrapper: the build is CMake's, the suite is ctest's.
#
#   make run    install what is missing, build, mount at ~/models (MOUNT=...)
#   make test   install what is missing, build, run every test
#   make asan   the suite under AddressSanitizer and UBSan
#   make tsan   the threaded paths under ThreadSanitizer: the unit and stack
#               tests (the read engine's, stack/fs_engine, among them), and
#               the mount, read, load, pull, status, store-fault, reuse,
#               view and fault-mix (ratelimit) tests (TSAN_TESTS)
#   make valgrind  the daemon under valgrind's memcheck (test_valgrind.py)
#   make bench  the benchmarks (not part of make test); CASES=cold,warm runs some
#   make fuzz   build the libFuzzer targets with clang (build-fuzz), run each
#               for FUZZ_SECONDS and merge what is new into its corpus;
#               FUZZ_TARGETS=json runs some (tests/fuzz/README.md)
#   make deb    the Debian packages hubfs and hubfs-mirror, in build-deb/deb/,
#               checked by lintian
#   make test-package  install them in a clean Debian 12 root and use them
#               (tests/package/test_package.py); make test runs it too when
#               that root is cached on the machine (TEST_PACKAGE=no: never)

BUILD      ?= build
BUILD_TYPE ?= RelWithDebInfo
CMAKE_ARGS ?=
JOBS       ?= $(shell nproc)
MOUNT      ?= $(HOME)/models
CASES      ?=
TESTS      ?=
TSAN_TESTS ?= ^(unit/|stack/|integration/(mount|reads|load|commands|status|store_faults|reuse|hfcache_view|ratelimit|xet))
FUZZ_SECONDS ?= 60
TEST_VENV  ?= $(shell .ci/install-venv --path)
FUZZ_TARGETS ?= headers names url json response xet_recon xet_chunks
TEST_PACKAGE ?= cached
# The packages are built as Debian builds: dpkg-buildflags, hardening on.
DEB_FLAGS   = DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get

.PHONY: all build test asan tsan valgrind bench fuzz run format clean deb \
	test-package

all: build

build:
	@.ci/install-deps build
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_ARGS)
	cmake --build $(BUILD) -j $(JOBS)

test:
	@.ci/install-deps test
	@.ci/install-venv
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_ARGS) \
		-DHUBFS_TEST_VENV=$(TEST_VENV)
	cmake --build $(BUILD) -j $(JOBS)
	ctest --test-dir $(BUILD) --output-on-failure --no-tests=error -j $(JOBS) \
		$(if $(TESTS),-R '$(TESTS)')
	@if [ "$(TEST_PACKAGE)" != no ] && [ -z "$(TESTS)" ]; then \
		if tests/package/test_package.py --cached; then \
			$(MAKE) --no-print-directory test-package; \
		else \
			echo "test-package: skipped (it runs as root once its Debian root is cached; 'make test-package' makes one)"; \
		fi; \
	fi

asan:
	$(MAKE) test BUILD=build-asan TEST_PACKAGE=no \
		CMAKE_ARGS="-DHUBFS_SANITIZE=ON $(CMAKE_ARGS)"

# A race ends a test program at once; the daemon's reports go to a file
# that mountlib.py checks at unmount.
tsan:
	TSAN_OPTIONS=halt_on_error=1 $(MAKE) test BUILD=build-tsan \
		CMAKE_ARGS="-DHUBFS_TSAN=ON $(CMAKE_ARGS)" TESTS='$(TSAN_TESTS)'

valgrind:
	@.ci/install-deps test
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_ARGS)
	cmake --build $(BUILD) -j $(JOBS) --target hubfs
	HUBFS_BIN=$(abspath $(BUILD))/hubfs /usr/bin/python3 \
		tests/integration/test_valgrind.py

bench:
	@.ci/install-deps bench
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_ARGS)
	cmake --build $(BUILD) -j $(JOBS) --target hubfs
	HUBFS_BIN=$(abspath $(BUILD))/hubfs /usr/bin/python3 tests/bench/bench.py \
		$(if $(CASES),--cases $(CASES))

# One target at a time (-jobs is not used: the machine may be shared).  New
# inputs land in build-fuzz/new/<target>; -merge=1 then copies into the
# corpus only those that add coverage.  A crash stops make, leaving the
# reproducer (crash-*) in build-fuzz/.
fuzz:
	@.ci/install-deps test
	CC=clang cmake -S . -B build-fuzz -DHUBFS_FUZZ=ON -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_ARGS)
	cmake --build build-fuzz -j $(JOBS) --target $(addprefix fuzz_,$(FUZZ_TARGETS))
	@set -e; cd build-fuzz; for t in $(FUZZ_TARGETS); do \
		mkdir -p new/$$t; \
		echo "fuzz_$$t: $(FUZZ_SECONDS) s (log: build-fuzz/fuzz-$$t.log)"; \
		tests/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) \
			-print_final_stats=1 -dict=../tests/fuzz/$$t.dict \
			new/$$t ../tests/fuzz/corpus/$$t \
			> fuzz-$$t.log 2>&1 || { tail -40 fuzz-$$t.log; exit 1; }; \
		grep -E '^#[0-9]+.*DONE|stat::number_of_executed_units' fuzz-$$t.log; \
		tests/fuzz/fuzz_$$t -merge=1 ../tests/fuzz/corpus/$$t new/$$t \
			> merge-$$t.log 2>&1 || { tail -20 merge-$$t.log; exit 1; }; \
		grep -E 'MERGE-OUTER: [0-9]+ new files' merge-$$t.log; \
	done

run: build
	@mkdir -p $(MOUNT)
	@if mountpoint -q $(MOUNT); then \
		echo "$(MOUNT) is already mounted; 'hubfs umount $(MOUNT)' first" >&2; \
		exit 1; \
	fi
	$(BUILD)/hubfs mount $(MOUNT)
	@echo "mounted: try 'ls $(MOUNT)/openai-community/gpt2'; unmount with '$(BUILD)/hubfs umount $(MOUNT)'"

deb:
	@.ci/install-deps deb
	cmake -S . -B build-deb -DHUBFS_DEB=ON -DHUBFS_TESTS=OFF \
		-DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_BUILD_TYPE=None \
		-DCMAKE_C_FLAGS="$$($(DEB_FLAGS) CFLAGS) $$($(DEB_FLAGS) CPPFLAGS)" \
		-DCMAKE_EXE_LINKER_FLAGS="$$($(DEB_FLAGS) LDFLAGS)" $(CMAKE_ARGS)
	cmake --build build-deb -j $(JOBS)
	rm -f build-deb/deb/*.deb
	cd build-deb && cpack
	lintian --fail-on error \
		build-deb/deb/*.deb

test-package: deb
	@.ci/install-deps test-package
	/usr/bin/python3 tests/package/test_package.py build-deb/deb

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-asan build-tsan build-fuzz build-deb
