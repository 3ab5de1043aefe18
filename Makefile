# The two commands of the README: `make run` and `make test`. Both build .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: install install-dev run test bench teams-package clean

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	touch $@

$(VENV)/.installed: $(VENV)/.created pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

run: install
	$(BIN)/insightbot serve

test: install-dev
	$(BIN)/python -m pytest -q

# The Teams app package (manifest + icons); stdlib only, so no .venv is needed.
teams-package:
	$(PYTHON) bot/teams/package.py --source teams --out dist/insightbot-teams.zip

bench: install-dev
	$(BIN)/python -m bench.run_all

clean:
	rm -rf $(VENV) build *.egg-info
