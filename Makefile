# Aliases for dev.py, which needs nothing but Python 3.11+ (see README).
PYTHON ?= python3
.PHONY: run test lint bench
run:
	$(PYTHON) dev.py run
test:
	$(PYTHON) dev.py test
lint:
	$(PYTHON) dev.py lint
bench:
	$(PYTHON) dev.py bench
