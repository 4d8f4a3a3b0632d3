.PHONY: install test test-all check format bench

install:
	pip install -e '.[dev]'

test: install
	python -m pytest

test-all: install
	python -m pytest -m "slow or not slow"

check:
	ruff check icrm_sgl tests bench
	ruff format --check icrm_sgl tests bench

format:
	ruff format icrm_sgl tests bench
	ruff check --fix icrm_sgl tests bench

bench:
	python bench/bench_local.py
