# The two commands of the README:
#   make lab    set everything up and open the labs in JupyterLab
#   make test   run the whole test suite (what CI runs)
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
LABKIT := $(VENV)/bin/labkit
JUPYTER_PORT ?= 8888

.PHONY: lab test venv setup up lint clean browser-deps vagrant-deps notebooks

$(VENV)/.installed: requirements.txt pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

venv: $(VENV)/.installed

# Engine (installed with apt and started in the background when absent) and images.
setup: venv
	$(LABKIT) setup

up: setup
	$(LABKIT) up

lab: up
	$(LABKIT) lab --port $(JUPYTER_PORT)

# Rebuild the lab notebooks from labs/ and record their outputs on a fresh lab.
notebooks: setup
	$(PY) -m labkit.notebook_build --execute

lint: venv
	$(VENV)/bin/ruff check labkit tests bench

test: setup lint browser-deps vagrant-deps
	$(VENV)/bin/pytest -ra

clean: venv
	$(LABKIT) down

# Debian's chromium for the browser test (playwright drives it; nothing is downloaded).
browser-deps:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
		echo "chromium is missing: the browser test will say so (Debian: apt-get install chromium)"

# Debian's vagrant (and its libvirt provider plugin) to validate the Vagrantfile; no VM is started.
vagrant-deps:
	@command -v vagrant >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		vagrant vagrant-libvirt >/dev/null; } || \
		echo "vagrant is missing: the Vagrant tests will say so (Debian: apt-get install vagrant)"
