# Philia: `make run` brings the whole bot up, `make test` proves it.
SHELL := /bin/bash
# uv from PATH, else the one pip installs as a module (installed on first use).
UV := $(shell command -v uv 2>/dev/null)
ifeq ($(UV),)
UV := python3 -m uv
endif
export UV_LINK_MODE ?= copy

.PHONY: run test lint format bench chaos check-migrations install ensure-uv clean

ensure-uv:
	@$(UV) --version >/dev/null 2>&1 || { echo "installing uv with pip"; \
	  python3 -m pip install --quiet uv || python3 -m pip install --quiet --user uv || \
	  python3 -m pip install --quiet --break-system-packages uv; }

.venv/.synced: pyproject.toml uv.lock
	@$(MAKE) --no-print-directory ensure-uv
	$(UV) sync --frozen --compile-bytecode
	@touch $@

install: .venv/.synced

run: install
	$(UV) run python -m app.cli run

test: install
	$(UV) run pytest

# The house rules a machine can check (AGENTS.md): style, types, and the import layering.
lint: install
	$(UV) run ruff check app tests bench tools
	$(UV) run ruff format --check app tests bench tools
	$(UV) run mypy --strict app tools
	$(UV) run lint-imports

format: install
	$(UV) run ruff format app tests bench tools
	$(UV) run ruff check --fix app tests bench tools

check-migrations: install
	$(UV) run python -m app.cli db check

bench: install
	$(UV) run python -m bench

# Faults (Redis/PostgreSQL restarts, worker SIGKILLs, a failing TikTok) and hostile load on
# the whole bot; figures in chaos-results/, summarised in docs/RELIABILITY.md.
chaos: install
	PHILIA_CHAOS=1 $(UV) run pytest tests/chaos -p no:cacheprovider

clean:
	rm -rf .data .pytest_cache .mypy_cache .ruff_cache
