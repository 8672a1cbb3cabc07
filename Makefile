# tagrelay: the two quickstart targets. `make run` sets up and runs the main job; `make test`
# sets up and runs every check. Both start from nothing on a fresh Debian machine.
.PHONY: setup run test bench clean

VENV ?= .venv
# The main job's speed (simulated seconds per real second) and where its output goes. 5 keeps
# every tag's 1 s advertising interval in the simulator (faster thins the adverts until its
# tick is finer); cross-dock's 30 simulated minutes then take about 6 minutes. At 15 they take
# about two.
DEMO_SPEED ?= 5
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
