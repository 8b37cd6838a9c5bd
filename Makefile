# Local entry points. Nothing needs installing by hand: the first run creates .venv and installs
# the pinned lock file; later runs reinstall only when a lock file (or pyproject) changed,
# tracked by stamp files inside .venv.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check --no-input
RUNTIME_STAMP := $(VENV)/.installed-runtime
TEST_STAMP := $(VENV)/.installed-test
UV_VERSION ?= 0.13.9
UV := $(VENV)/uv-tool/bin/uv
PYTEST_ARGS ?=

.PHONY: up down status test lock chromium

# `make up REPLICAS=2` runs two instances of each service (ports 8001/8011, 8002/8012, ...).
up: $(RUNTIME_STAMP)
	$(VENV)/bin/mentorship up

down: $(RUNTIME_STAMP)
	$(VENV)/bin/mentorship down

status: $(RUNTIME_STAMP)
	$(VENV)/bin/mentorship status

# The dependency audit (pip-audit over both lock files, allow-list in .pip-audit-ignore) runs
# first: a known vulnerability fails the build before any test runs.
test: $(TEST_STAMP) chromium
	$(PY) -m ops.dependency_audit
	$(PY) -m pytest $(PYTEST_ARGS)

# The dashboard's browser test drives Debian's Chromium with Playwright (executable_path), so
# no browser is downloaded by Playwright. Installed with apt only when it is missing.
CHROMIUM ?= /usr/bin/chromium
chromium:
	@test -x $(CHROMIUM) || { \
		echo "installing Debian's chromium for the dashboard test"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -q && $$SUDO apt-get install -y -q --no-install-recommends chromium; }

$(PY):
	$(PYTHON) -m venv $(VENV)

# The lock files carry hashes, so pip installs exactly the files that were locked.
$(RUNTIME_STAMP): requirements.lock pyproject.toml | $(PY)
	$(PIP) install -r requirements.lock
	$(PIP) install -e . --no-deps
	@rm -f $(TEST_STAMP)
	touch $@

$(TEST_STAMP): requirements-test.lock pyproject.toml | $(PY)
	$(PIP) install -r requirements-test.lock
	$(PIP) install -e . --no-deps
	touch $@ $(RUNTIME_STAMP)

# Regenerate both lock files from pyproject.toml; the test lock is constrained to the runtime
# pins so both environments share every version.
lock: | $(PY)
	test -x $(UV) || $(PIP) install --target $(VENV)/uv-tool "uv==$(UV_VERSION)"
	$(UV) pip compile pyproject.toml --python-version 3.11 --universal --generate-hashes \
		--custom-compile-command "make lock" -o requirements.lock
	$(UV) pip compile pyproject.toml --extra test --python-version 3.11 --universal \
		--generate-hashes -c requirements.lock --custom-compile-command "make lock" \
		-o requirements-test.lock
