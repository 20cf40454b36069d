# Vaurien: `make` builds build/vaurien, `make run` starts a demo,
# `make test` runs every test from a fresh machine, `make asan` runs them
# again on an ASan+UBSan build, `make install` installs it, `make deb`
# packages it. Every target installs what it needs first through
# scripts/install-deps (the one list of packages).

PYTHON ?= /usr/bin/python3
JOBS ?= 2
BUILD ?= build
ASAN_BUILD ?= build-asan
PYTEST_FLAGS ?= -q

.PHONY: all deps build run test unit e2e ui-deps asan bench bench-quick soak fuzz fuzz-smoke clean \
	install install-python deb

# make install: PREFIX/bin/vaurien, PREFIX/share/man/man1/vaurien.1, the
# bash and zsh completions, all under DESTDIR when it is set.
PREFIX ?= /usr/local
DESTDIR ?=

all: build

deps:
	@./scripts/install-deps

# CMAKE_ARGS: more for cmake (the Containerfile: -DVAURIEN_TESTS=OFF).
build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DVAURIEN_WERROR=ON $(CMAKE_ARGS) >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

run: build
	./$(BUILD)/vaurien demo

install: build
	DESTDIR="$(DESTDIR)" cmake --install $(BUILD) --prefix "$(PREFIX)"

# The Python package (clients/python) where this python3 imports from for
# PREFIX (scripts/python-sitedir): /usr/lib/python3/dist-packages for
# /usr on Debian, /usr/local/lib/python3.X/dist-packages for /usr/local.
# Built from a copy: setuptools writes its egg-info next to the sources,
# and one in clients/python would register the pytest plugin a second time
# for the tests that put that folder on PYTHONPATH.
install-python:
	@./scripts/install-deps
	@tmp=$$(mktemp -d) && \
	cp -r clients/python/pyproject.toml clients/python/README.md \
	    clients/python/vaurien "$$tmp" && \
	$(PYTHON) -m pip install -q --no-deps --no-index --no-build-isolation \
	    --no-compile --disable-pip-version-check --root-user-action=ignore \
	    --upgrade --target "$(DESTDIR)$$($(PYTHON) scripts/python-sitedir "$(PREFIX)")" \
	    "$$tmp"; rc=$$?; rm -rf "$$tmp"; exit $$rc

# The Debian package, built by dpkg-buildpackage from debian/ in a copy of
# the tree (the files git knows, edited ones as they are), with the
# commit named since the copy has no .git: DEB_BUILD/vaurien_*.deb.
DEB_BUILD ?= build-deb
deb: deps
	./scripts/build-deb $(DEB_BUILD)

unit: build
	cd $(BUILD) && ctest --output-on-failure

# The dashboard's browser test drives Debian's chromium with playwright-core
# from the npm registry (tests/ui/package-lock.json).
ui-deps:
	@[ -d tests/ui/node_modules/playwright-core ] || \
	    (cd tests/ui && npm ci --no-audit --no-fund --loglevel=error)

# The end-to-end tests and the Python package's tests: two runs, since each
# folder has a conftest.py of its own.
e2e: build ui-deps
	VAURIEN_BIN=$(CURDIR)/$(BUILD)/vaurien $(PYTHON) -m pytest $(PYTEST_FLAGS) tests/e2e
	VAURIEN_BIN=$(CURDIR)/$(BUILD)/vaurien $(PYTHON) -m pytest $(PYTEST_FLAGS) clients/python/tests

test: unit e2e

# The same tests on an AddressSanitizer + UndefinedBehaviorSanitizer build.
# LeakSanitizer runs too: the proxy must exit without leaks.
asan: deps ui-deps
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DVAURIEN_SANITIZE=ON \
	    -DVAURIEN_WERROR=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j$(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=0 ctest --output-on-failure
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
	    VAURIEN_SANITIZED=1 VAURIEN_BIN=$(CURDIR)/$(ASAN_BUILD)/vaurien \
	    $(PYTHON) -m pytest $(PYTEST_FLAGS) tests/e2e
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
	    VAURIEN_BIN=$(CURDIR)/$(ASAN_BUILD)/vaurien $(PYTHON) -m pytest $(PYTEST_FLAGS) clients/python/tests

# Benchmarks: direct vs HAProxy vs Vaurien, medians and ratios (BENCHMARKS.md).
bench: build
	@./scripts/install-bench-deps
	VAURIEN_BIN=$(CURDIR)/$(BUILD)/vaurien $(PYTHON) bench/run.py
	VAURIEN_BIN=$(CURDIR)/$(BUILD)/vaurien $(PYTHON) bench/pipelining.py
	VAURIEN_BIN=$(CURDIR)/$(BUILD)/vaurien $(PYTHON) bench/lua.py
	VAURIEN_BIN=$(CURDIR)/$(BUILD)/vaurien $(PYTHON) bench/journal.py
	VAURIEN_BIN=$(CURDIR)/$(BUILD)/vaurien $(PYTHON) bench/targets.py
	VAURIEN_BIN=$(CURDIR)/$(BUILD)/vaurien $(PYTHON) bench/http2.py

bench-quick: build
	@./scripts/install-bench-deps
	VAURIEN_BIN=$(CURDIR)/$(BUILD)/vaurien $(PYTHON) bench/run.py --quick
	VAURIEN_BIN=$(CURDIR)/$(BUILD)/vaurien $(PYTHON) bench/pipelining.py --quick
	VAURIEN_BIN=$(CURDIR)/$(BUILD)/vaurien $(PYTHON) bench/lua.py --quick
	VAURIEN_BIN=$(CURDIR)/$(BUILD)/vaurien $(PYTHON) bench/journal.py --quick
	VAURIEN_BIN=$(CURDIR)/$(BUILD)/vaurien $(PYTHON) bench/targets.py --quick
	VAURIEN_BIN=$(CURDIR)/$(BUILD)/vaurien $(PYTHON) bench/http2.py --quick

# Soak: mixed protocols while behaviors and toxics churn (SOAK_SECONDS).
SOAK_SECONDS ?= 600
soak: build
	VAURIEN_BIN=$(CURDIR)/$(BUILD)/vaurien $(PYTHON) bench/soak.py --seconds $(SOAK_SECONDS)

# libFuzzer harnesses (clang): every framer, the API bodies, INI, the mix,
# the command line. fuzz-smoke runs each for FUZZ_SECONDS (CI: 20).
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 20

fuzz:
	@./scripts/install-fuzz-deps
	@cmake -S . -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
	    -DVAURIEN_FUZZ=ON -DVAURIEN_TESTS=OFF >/dev/null
	@cmake --build $(FUZZ_BUILD) -j$(JOBS)

fuzz-smoke: fuzz
	./scripts/fuzz-run $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD) $(DEB_BUILD)
