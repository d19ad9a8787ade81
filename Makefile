# The two commands of the README:
#   make lab    set everything up and open the labs in JupyterLab
#   make test   run the whole test suite (what CI runs)
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
LABKIT := $(VENV)/bin/labkit
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)
JUPYTER_PORT ?= 8888

.PHONY: lab test venv setup up lint clean

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
	@echo "JupyterLab on http://127.0.0.1:$(JUPYTER_PORT)/ (the token is in the URL printed below)"
	cd notebooks && ../$(VENV)/bin/jupyter lab --ServerApp.ip=127.0.0.1 --ServerApp.port=$(JUPYTER_PORT) \
		--ServerApp.open_browser=True $(ROOT_FLAG) start.ipynb

lint: venv
	$(VENV)/bin/ruff check labkit tests bench

test: setup lint
	$(VENV)/bin/pytest -ra

clean: venv
	$(LABKIT) down
