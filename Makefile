# make demo   - a local throwaway VPS serving the sample app on http://127.0.0.1:8080
# make test   - lint, syntax check, the app's unit tests and every Molecule scenario
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PYTHONDONTWRITEBYTECODE := 1
# Molecule wraps its output to the terminal's width: wide, so a log's lines stay whole.
export COLUMNS := 200
# Every directory under molecule/ with a molecule.yml (molecule/common holds helpers).
SCENARIOS := $(notdir $(patsubst %/molecule.yml,%,$(wildcard molecule/*/molecule.yml)))

.PHONY: help venv engine images demo demo-down deploy rollback run test docs lint syntax unit molecule $(addprefix molecule-,$(SCENARIOS)) clean

help:
	@echo "make demo       start a local VPS (container) and serve the sample app on http://127.0.0.1:8080"
	@echo "make demo-down  remove the demo VPS"
	@echo "make deploy     deploy app/ (or SRC=dir) to the demo VPS; make rollback [TO=release]"
	@echo "make run        run CMD as APP runs on the demo VPS, e.g. make run APP=hello CMD='flask --app hello routes'"
	@echo "make docs       write the README's variable tables from each role's meta/argument_specs.yml"
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

# Deploy app/ (or SRC=path) to the demo VPS as a new release, health-checked first.
deploy: venv
	ansible-playbook playbooks/deploy.yml -i inventory/demo $(if $(SRC),-e flaskapp_src=$(abspath $(SRC)))

# Switch the demo VPS back to the previous release (or TO=<release id>).
rollback: venv
	ansible-playbook playbooks/rollback.yml -i inventory/demo $(if $(TO),-e flaskapp_rollback=$(TO))

# Run a one-off command in an app's environment on the demo VPS (make passes APP and
# CMD through the environment, so CMD needs no quoting beyond the shell's).
run: export FLASKAPP_RUN_APP = $(APP)
run: export FLASKAPP_RUN_COMMAND = $(CMD)
run: venv
	ansible-playbook playbooks/run.yml -i inventory/demo

test: lint syntax unit molecule

# The README's variable tables from each role's meta/argument_specs.yml; lint checks
# that the README, the specs and defaults/main.yml agree.
docs: venv
	python scripts/docs.py

lint: venv
	python scripts/docs.py --check
	yamllint --strict .
	ansible-lint --profile production

syntax: venv
	ansible-playbook --syntax-check site.yml playbooks/*.yml

unit: venv
	cd app && python -m pytest -q -p no:cacheprovider tests

# MOLECULE_JOBS scenarios at a time (2, as the CI machine has 2 cores), longest first,
# so that both queues end about together. Each scenario's whole output goes to
# .cache/molecule/<scenario>.log; the terminal gets its steps as they end (timed), its test
# summary, and the whole log if it fails, then (last, so that a CI log cut to its
# end still shows them) the failed tests and their assertion lines.
MOLECULE_JOBS ?= 2
MOLECULE_ORDER := cluster apps deploy reliability default acme bench
MOLECULE_QUEUE := $(filter $(SCENARIOS),$(MOLECULE_ORDER)) $(filter-out $(MOLECULE_ORDER),$(SCENARIOS))

molecule: venv images
	$(MAKE) --no-print-directory -j$(MOLECULE_JOBS) $(addprefix molecule-,$(MOLECULE_QUEUE))

$(addprefix molecule-,$(SCENARIOS)): molecule-%: venv images
	@mkdir -p .cache/molecule
	@echo "== molecule $*: started at $$(date +%T)"
	@if molecule test --scenario-name $* 2>&1 | tee .cache/molecule/$*.log \
	    | grep --text --line-buffered -E 'Executed: |=+ [0-9]+ (passed|failed)' \
	    | while IFS= read -r line; do echo "$$(date +%T) $$line"; done; then \
	  echo "== molecule $*: passed at $$(date +%T)"; \
	else \
	  cat .cache/molecule/$*.log; echo "== molecule $*: failed tests and assertions:"; \
	  sed 's/\x1b\[[0-9;]*m//g' .cache/molecule/$*.log | grep -E '│ (FAILED +tests/|FAILED$$|E  |  tests/)' \
	    | grep -v RETRYING | tail -80 || true; \
	  echo "== molecule $*: FAILED at $$(date +%T)"; exit 1; \
	fi

clean: demo-down
	rm -rf $(VENV) .cache

# make bench        - benchmark the demo VPS: our stack against the alternatives, in one
#                     run on one host (bench/results/: latest.json, summary.md, chart.png)
# make bench-smoke  - the same code path, every server once and briefly; checks only that
#                     the results are produced and well formed (bench/results/smoke/)
.PHONY: bench bench-smoke
bench: venv engine
	@docker container inspect -f '{{.State.Running}}' flask-vps-demo 2>/dev/null | grep -qx true \
	  || $(MAKE) demo
	python bench/bench.py

bench-smoke: demo
	python bench/bench.py --smoke
