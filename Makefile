# The two commands a newcomer needs: `make run` and `make test`. Both build
# the virtualenv first, from nothing, so they work on a fresh clone.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
LISTEN ?= tcp:8080:interface=127.0.0.1
STAMP := $(VENV)/.installed

.PHONY: run test unit integration venv wheel lint deb clean

venv: $(STAMP)

# Editable in "compat" mode puts the checkout itself on sys.path, so twistd
# finds twisted/plugins/llmedge_plugin.py here, as it will in site-packages.
$(STAMP): pyproject.toml setup.py
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "llmedge needs Python >= 3.11")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --config-settings editable_mode=compat -e '.[test,otel]'
	touch $@

# A development key, so the daemon runs with authentication on, as in
# production; an API_KEYS already in the environment is used instead.
DEV_KEY ?= dev-key

run: $(STAMP)
	@echo "llmedge: the OpenAI API on $(LISTEN), answered by the mock provider (Ctrl-C stops)"
	@echo "llmedge: API key: $${API_KEYS:-$(DEV_KEY)}   e.g. curl -H 'Authorization: Bearer $${API_KEYS:-$(DEV_KEY)}' ..."
	API_KEYS="$${API_KEYS:-$(DEV_KEY)}" $(VENV)/bin/twistd --nodaemon --pidfile= llmedge --listen $(LISTEN)

test: $(STAMP) test-tools
	$(PY) -m pytest

unit: $(STAMP) test-tools
	$(PY) -m pytest tests/unit

integration: $(STAMP) test-tools
	$(PY) -m pytest tests/integration

# Tests start a private redis-server (for the redis rate-limit backend) on a
# free port; as root, Debian's package is installed when missing. Without it
# those tests skip, unless LLMEDGE_REQUIRE_TOOLS=1 (CI), where they fail.
.PHONY: test-tools
test-tools:
	@if ! command -v redis-server >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "make: redis-server missing; apt-get install -y redis-server (Debian package)"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -qq --no-install-recommends redis-server >/dev/null 2>&1 || \
	    { apt-get update -qq && apt-get install -y -qq --no-install-recommends redis-server >/dev/null; }; \
	fi

# The oldest Twisted llmedge supports (security fixes from 24.7 on): the unit
# tests and the TLS and HTTP/2 integration tests again, in a second
# virtualenv holding Twisted 24.7.0 (CI runs it). Twisted before 26.4 sets up
# ALPN in a way pyOpenSSL 26.2 and newer refuse (llmedge says so at start-up),
# so this virtualenv has an older pyOpenSSL, as such a deployment must.
FLOOR_VENV ?= .venv-floor
FLOOR_STAMP := $(FLOOR_VENV)/.installed
$(FLOOR_STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(FLOOR_VENV)
	$(FLOOR_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(FLOOR_VENV)/bin/python -m pip install --quiet --config-settings editable_mode=compat \
	    -e '.[test]' 'twisted[tls,http2]==24.7.0' 'pyopenssl<26.2'
	touch $@

.PHONY: test-floor
test-floor: $(FLOOR_STAMP)
	$(FLOOR_VENV)/bin/python -m pytest -p no:cacheprovider tests/unit \
	    tests/integration/test_listeners.py tests/integration/test_http2.py \
	    tests/integration/test_upstream_tls.py

lint: $(STAMP)
	$(PY) -m pip install --quiet pyflakes
	$(PY) -m pyflakes llmedge tests twisted

# Load benchmarks (bench/README.md): wrk against the fake upstream, llmedge
# and its mock, side by side; as root it apt-get installs wrk when missing.
# e.g. make bench BENCH_ARGS="--duration 5 --only proxy"
.PHONY: bench
bench: $(STAMP)
	$(PY) bench/run.py $(BENCH_ARGS)

wheel: $(STAMP)
	$(PY) -m pip wheel --quiet --no-deps -w dist .

# The Debian package, dist/llmedge_<version>_<arch>.deb (packaging/deb/): a
# bundled virtualenv made with Debian's /usr/bin/python3, not $(PYTHON).
# build-deps.sh apt-get installs what the build lacks (as root).
deb:
	bash packaging/deb/build-deps.sh
	bash packaging/deb/build.sh

clean:
	rm -rf $(VENV) $(FLOOR_VENV) build dist *.egg-info twisted/plugins/dropin.cache
