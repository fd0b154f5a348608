# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# Debian packages the demo and the end-to-end tests drive: a real registry, real clients, and a browser
# that draws the reports' Mermaid diagrams (with mermaid.js packed from the npm registry, never a CDN).
# command:package pairs: only the packages of missing commands are installed (a machine's own Node.js, say,
# already provides npm, and Debian's npm package would conflict with it).
APT_NEEDS := docker-registry:docker-registry skopeo:skopeo buildah:buildah podman:podman chromium:chromium \
	npm:npm docker:docker.io
MERMAID_VERSION := 11.17.2
MERMAID_JS := .cache/mermaid/package/dist/mermaid.min.js

.PHONY: test demo venv system-deps lint bench bench-load clean diagrams

$(VENV)/.installed: pyproject.toml
	@python=$$(bin/find-python) || exit 1; \
	  echo "Using $$python ($$($$python --version))"; \
	  rm -rf $(VENV) && $$python -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@# compiled as a regular install is: under PYTHONDONTWRITEBYTECODE each command compiled them again (0.1 s)
	$(PY) -m compileall -q ocitrace addons analyzers
	@touch $@

venv: $(VENV)/.installed

# Installs what is missing only; needs root (or sudo) the first time.
system-deps:
	@pkgs=""; for need in $(APT_NEEDS); do \
	  command -v $${need%%:*} >/dev/null || pkgs="$$pkgs $${need#*:}"; done; \
	if [ -n "$$pkgs" ]; then \
	  echo "Installing Debian packages:$$pkgs"; \
	  sudo=""; [ "$$(id -u)" = 0 ] || sudo="sudo"; \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$pkgs >/dev/null \
	    || { echo "Could not install$$pkgs: run 'apt-get install$$pkgs' as root." >&2; exit 1; }; \
	fi

$(MERMAID_JS): | system-deps
	@mkdir -p .cache/mermaid
	cd .cache/mermaid && npm pack --silent mermaid@$(MERMAID_VERSION) >/dev/null && \
	  tar xzf mermaid-$(MERMAID_VERSION).tgz package/dist/mermaid.min.js && rm mermaid-$(MERMAID_VERSION).tgz

# Draw every diagram of the committed reports in headless Chromium; fails on any Mermaid error.
diagrams: venv system-deps $(MERMAID_JS)
	$(PY) -m ocitrace.mermaid check captures/*/*.md captures/*/*/*.md

lint: venv
	$(VENV)/bin/ruff check .

test: venv system-deps lint $(MERMAID_JS)
	$(VENV)/bin/pytest -q

demo: venv system-deps $(MERMAID_JS)
	$(VENV)/bin/ocitrace demo

# Every figure issue 9 asks for, each a ratio measured side by side in one run (about 4 minutes here); the
# noisy ones take the best of three rounds in turns.
bench: venv system-deps
	$(PY) bench/classify_bench.py
	$(PY) bench/reader_bench.py --flows 30000 --rounds 3
	$(PY) bench/proxy_bench.py --size-mib 512 --rounds 4
	$(PY) bench/latency_bench.py --calls 2000

# 16 real clients at once through each proxy, two rounds in turns (about 3 minutes here).
bench-load: venv system-deps
	$(PY) bench/load_bench.py --rounds 2

clean:
	rm -rf $(VENV) .cache .pytest_cache .ruff_cache *.egg-info
