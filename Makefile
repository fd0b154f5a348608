# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# Debian packages the demo and the end-to-end tests drive: a real registry, real clients, and a browser
# that draws the reports' Mermaid diagrams (with mermaid.js packed from the npm registry, never a CDN).
APT_PACKAGES := docker-registry skopeo buildah podman chromium npm
APT_COMMANDS := docker-registry skopeo buildah podman chromium npm
MERMAID_VERSION := 11.17.2
MERMAID_JS := .cache/mermaid/package/dist/mermaid.min.js

.PHONY: test demo venv system-deps lint bench clean diagrams

$(VENV)/.installed: pyproject.toml
	@python=$$(bin/find-python) || exit 1; \
	  echo "Using $$python ($$($$python --version))"; \
	  rm -rf $(VENV) && $$python -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $@

venv: $(VENV)/.installed

# Installs what is missing only; needs root (or sudo) the first time.
system-deps:
	@missing=""; for c in $(APT_COMMANDS); do command -v $$c >/dev/null || missing="$$missing $$c"; done; \
	command -v docker >/dev/null || missing="$$missing docker"; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages for:$$missing"; \
	  pkgs="$(APT_PACKAGES)"; command -v docker >/dev/null || pkgs="$$pkgs docker.io"; \
	  sudo=""; [ "$$(id -u)" = 0 ] || sudo="sudo"; \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$pkgs >/dev/null \
	    || { echo "Could not install$$missing: run 'apt-get install $$pkgs' as root." >&2; exit 1; }; \
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

bench: venv system-deps
	$(PY) bench/classify_bench.py
	$(PY) bench/proxy_bench.py

clean:
	rm -rf $(VENV) .cache .pytest_cache .ruff_cache *.egg-info
