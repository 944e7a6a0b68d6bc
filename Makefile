# Polar TEP: `make up` starts the platform, `make test` runs the whole suite. Both install what they need first.
SHELL := /bin/bash
VENV ?= .venv
# The venv is built on the system Python so that every local user can read it (see docs/operator-guide.md).
SYSTEM_PYTHON ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || command -v python3)
PY := $(VENV)/bin/python
# The pgstac federation peer's own environment (tests and bench only; see its target below).
PGSTAC_VENV ?= .venv-pgstac
MODE ?= local
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=

.PHONY: install up down test lint format check catalogue test-deps test-images docker-engine images clean

install: $(VENV)/.installed node_modules/.installed $(VENV)/.extension $(PGSTAC_VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(SYSTEM_PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test,docker,ml]' 2> >(grep -v "is ignored: it is neither" >&2)
	touch $@

# The federation peer of the tests and the catalogue bench (stac-fastapi-pgstac, pypgstac) in its own environment:
# its pins (uvicorn==0.38.0 in the server extra, cachetools<6.1) would downgrade the platform's (README, "Catalogue").
$(PGSTAC_VENV)/.installed: tests/helpers/pgstac-requirements.txt
	test -x $(PGSTAC_VENV)/bin/python || $(SYSTEM_PYTHON) -m venv $(PGSTAC_VENV)
	$(PGSTAC_VENV)/bin/python -m pip install -q --disable-pip-version-check -r $< 2> >(grep -v "is ignored: it is neither" >&2)
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The JupyterLab extension (extensions/): plugin built from TypeScript with the JupyterLab builder from npm, packed
# with the server extension into one wheel (extensions/build.sh), installed into the venv. The images install the
# same wheel (images/build.sh).
EXTENSION_SOURCES := $(shell find extensions/src extensions/style extensions/polartep_lab extensions/jupyter-config \
	-type f -not -path '*/__pycache__/*' 2>/dev/null) $(wildcard extensions/*.json extensions/pyproject.toml extensions/build.sh)

$(VENV)/.extension: $(VENV)/.installed $(EXTENSION_SOURCES)
	PYTHON=$(PY) extensions/build.sh >/dev/null
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --force-reinstall build/extension/polartep_lab-0.1.0-py3-none-any.whl
	touch $@

# Docker mode needs the engine and the images first (both steps take a second when already done).
up: install $(if $(filter docker,$(MODE)),images)
	POLARTEP_MODE=$(MODE) $(VENV)/bin/polartep up

down:
	$(VENV)/bin/polartep down

check: install
	$(VENV)/bin/polartep check

catalogue: install
	$(VENV)/bin/polartep catalogue

# System packages the suite needs: PostgreSQL server binaries for the service's database tests, PostGIS for the
# pgstac federation peer (the same major version as the server), and Debian's Chromium with its driver for the
# browser tests (Selenium never downloads a browser or a driver).
test-deps:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		echo "Installing PostgreSQL from Debian's packages"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql >/dev/null; \
	fi
	@version=$$(ls -d /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1 | cut -d/ -f5); \
	if ! test -e /usr/share/postgresql/$$version/extension/postgis.control; then \
		echo "Installing PostGIS for PostgreSQL $$version from Debian's packages"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql-$$version-postgis-3 >/dev/null; \
	fi
	@if ! test -x /usr/bin/chromium || ! test -x /usr/bin/chromedriver; then \
		echo "Installing Chromium and chromedriver from Debian's packages"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium chromium-driver >/dev/null; \
	fi

# A Docker engine for Docker mode and its tests: Debian's docker.io, dockerd started in the background if needed.
docker-engine:
	images/ensure-docker.sh

# The single-user images (polartep/base, polartep/ml), built offline; seconds when nothing changed.
images: docker-engine
	PIP=$(VENV)/bin/pip images/build.sh

# For the suite: in CI (CI=true) a Docker engine is required; elsewhere the Docker tests skip, loudly, without one.
test-images:
	@if images/ensure-docker.sh && PIP=$(VENV)/bin/pip images/build.sh; then :; \
	elif [ "$${CI:-}" = true ]; then echo "Docker engine or images unavailable in CI: failing" >&2; exit 1; \
	else echo "WARNING: no usable Docker engine here; the Docker tests will be SKIPPED" >&2; fi

# Two workers: most of the suite waits on servers it starts, so two run at once on two cores. Each module runs
# whole on one worker (--dist loadfile), so its module- and order-dependent fixtures hold.
PYTEST_WORKERS ?= 2

test: install test-deps test-images
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format:
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) $(PGSTAC_VENV) node_modules state build extensions/node_modules extensions/lib extensions/labextension
