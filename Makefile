.PHONY: install test test-all check format bench

install:
	pip install -e '.[dev]'

test: install
	python -m pytest

test-all: install
	python -m pytest -m "slow or not slow"

check:
	ruff check icrm_sgl tests bench devtools examples scripts
	ruff format --check icrm_sgl tests bench devtools examples scripts
	python -m mypy icrm_sgl

format:
	ruff format icrm_sgl tests bench devtools examples scripts
	ruff check --fix icrm_sgl tests bench devtools examples scripts

bench:
	python bench/bench_local.py
