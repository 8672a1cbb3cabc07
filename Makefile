# tagrelay: the two quickstart targets. `make run` sets up and runs the main job; `make test`
# sets up and runs every check. Both start from nothing on a fresh Debian machine.
.PHONY: setup run test bench clean

VENV ?= .venv

setup:
	VENV=$(VENV) scripts/bootstrap

run: setup
	$(VENV)/bin/tagrelay demo

test: setup
	VENV=$(VENV) scripts/check

bench: setup
	for b in bench/[!_]*.py; do echo "== $$b"; $(VENV)/bin/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
