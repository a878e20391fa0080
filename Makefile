# The two commands: `make run` and `make test`. Everything else they need is installed here.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_WORKERS ?= 2
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint fmt pytest migrate openapi deps ffmpeg web chromium web-dist worker bench clean

# Debian's python3 ships venv/ensurepip separately (python3-venv).
$(BIN)/python:
	@if ! $(PYTHON) -c "import ensurepip" >/dev/null 2>&1; then \
		echo "installing python3-venv (Debian package)"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends python3-venv; \
	fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

deps: $(STAMP) ffmpeg web

# The web app's npm libraries (hls.js), as web/package-lock.json pins them; node and npm from
# Debian when missing. Nothing is vendored: web/node_modules is git-ignored.
WEB_MODULES := web/node_modules/.package-lock.json
web: $(WEB_MODULES)
$(WEB_MODULES): web/package.json web/package-lock.json
	@if ! command -v npm >/dev/null; then \
		echo "installing nodejs and npm (Debian packages)"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends nodejs npm; \
	fi
	cd web && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Debian's chromium for the browser tests (tests/web), driven by Playwright through its
# executable path: Playwright never downloads a browser of its own.
chromium:
	@if ! test -x /usr/bin/chromium; then \
		echo "installing chromium (Debian package, for tests/web)"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends chromium; \
	fi

# The web app as static files for another origin: API=https://api.example.com make web-dist
API ?=
web-dist: web
	rm -rf var/web-dist && mkdir -p var/web-dist/assets/vendor
	cp -r web/assets/. var/web-dist/assets/
	cp web/node_modules/hls.js/dist/hls.min.mjs var/web-dist/assets/vendor/hls.mjs
	sed -e 's|{{ASSETS}}|assets|g' -e 's|name="peerpitch-api" content=""|name="peerpitch-api" content="$(API)"|' \
		web/index.html > var/web-dist/index.html
	@echo "var/web-dist: serve it from any static host; allow its origin with PEERPITCH_CORS_ORIGINS"

# Debian's ffmpeg provides both ffmpeg and ffprobe; jq reads JSON in docs/tour.sh (the API
# tour, which tests/test_tour.py runs); espeak-ng and sox speak known text for the speech tests.
ffmpeg:
	@if ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null; then \
		echo "installing ffmpeg (Debian package)"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends ffmpeg; \
	fi
	@if ! command -v jq >/dev/null; then \
		echo "installing jq (Debian package)"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends jq; \
	fi
	@if ! command -v espeak-ng >/dev/null || ! command -v sox >/dev/null; then \
		echo "installing espeak-ng and sox (Debian packages; speech for tests and bench/speech.py)"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends espeak-ng sox; \
	fi

migrate: deps
	$(BIN)/peerpitch migrate

run: migrate
	$(BIN)/peerpitch seed-demo --if-empty
	@echo "peerpitch is serving on http://$(HOST):$(PORT) (the web app; API docs: http://$(HOST):$(PORT)/docs)"
	$(BIN)/peerpitch serve --host $(HOST) --port $(PORT)

worker: migrate
	$(BIN)/peerpitch worker

lint: deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo --no-cache

fmt: deps
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

pytest: deps chromium
	$(BIN)/pytest -n $(PYTEST_WORKERS) -q

test: lint pytest

openapi: deps
	$(BIN)/python -m app.openapi_export > openapi/openapi.json

bench: deps
	$(BIN)/python bench/upload.py
	$(BIN)/python bench/queue.py
	$(BIN)/python bench/transcode.py
	$(BIN)/python bench/playback.py
	$(BIN)/python bench/feedback.py
	$(BIN)/python bench/prep.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .import_linter_cache web/node_modules
