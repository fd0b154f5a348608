# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# Debian packages the demo and the end-to-end tests drive: a real registry and real clients.
APT_PACKAGES := docker-registry skopeo buildah
APT_COMMANDS := docker-registry skopeo buildah

.PHONY: test demo venv system-deps lint bench clean

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

lint: venv
	$(VENV)/bin/ruff check .

test: venv system-deps lint
	$(VENV)/bin/pytest -q

demo: venv system-deps
	$(VENV)/bin/ocitrace demo

bench: venv system-deps
	$(PY) bench/classify_bench.py
	$(PY) bench/proxy_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
