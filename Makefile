# tagrelay: the two quickstart targets. `make run` sets up and runs the main job; `make test`
# sets up and runs every check. Both start from nothing on a fresh Debian machine.
.PHONY: setup run test bench clean

VENV ?= .venv
# The main job's speed (simulated seconds per real second) and where its output goes. At 12
# cross-dock's 30 simulated minutes take under 3 minutes and the run agrees with the scenario's
# ground truth on every class (docs/demo.md); faster, a busy machine's gateways fall behind
# the world and decide the trailer's last moments late.
DEMO_SPEED ?= 12
DEMO_OUT ?= demo-out

setup:
	VENV=$(VENV) scripts/bootstrap

run: setup
	$(VENV)/bin/tagrelay demo cross-dock --speed $(DEMO_SPEED) --out $(DEMO_OUT)

test: setup
	VENV=$(VENV) scripts/check

bench: setup
	for b in bench/[!_]*.py; do echo "== $$b"; $(VENV)/bin/python $$b || exit 1; done

clean:
	rm -rf $(VENV) $(DEMO_OUT) .mypy_cache .ruff_cache .pytest_cache .hypothesis
