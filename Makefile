# make demo   - a local throwaway VPS serving the sample app on http://127.0.0.1:8080
# make test   - lint, syntax check, the app's unit tests and every Molecule scenario
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PYTHONDONTWRITEBYTECODE := 1
SCENARIOS := $(notdir $(wildcard molecule/*))

.PHONY: help venv engine images demo demo-down test lint syntax unit molecule $(addprefix molecule-,$(SCENARIOS)) clean

help:
	@echo "make demo       start a local VPS (container) and serve the sample app on http://127.0.0.1:8080"
	@echo "make demo-down  remove the demo VPS"
	@echo "make test       lint, syntax check, app unit tests, every Molecule scenario ($(SCENARIOS))"

venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt requirements.yml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
	$(VENV)/bin/ansible-galaxy collection install -r requirements.yml >/dev/null
	touch $@

engine:
	scripts/engine.sh

images: engine
	scripts/build-image.sh bookworm
	scripts/build-image.sh trixie

demo: venv engine
	scripts/build-image.sh bookworm
	scripts/demo.sh up

demo-down:
	scripts/demo.sh down

test: lint syntax unit molecule

lint: venv
	yamllint --strict .
	ansible-lint --profile production

syntax: venv
	ansible-playbook --syntax-check site.yml

unit: venv
	cd app && python -m pytest -q -p no:cacheprovider tests

molecule: $(addprefix molecule-,$(SCENARIOS))

$(addprefix molecule-,$(SCENARIOS)): molecule-%: venv images
	molecule test --scenario-name $*

clean: demo-down
	rm -rf $(VENV) .cache
