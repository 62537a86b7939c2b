# Rempart — `make help` lists the targets. The two a newcomer needs: `make demo`, `make test`.
.DEFAULT_GOAL := help
SHELL := /bin/bash
UV := uv run --frozen

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[1m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: setup
setup: ## Install what is missing (Debian packages when root, uv, the locked venv)
	@scripts/bootstrap.sh --system

.PHONY: demo
demo: setup ## Seed a demo database (SQLite, ./var) and serve the portal on http://localhost:8000
	$(UV) rempart demo --export-fixtures var/fixtures --export-canaries var/fixtures/canaries.csv

.PHONY: test
test: setup ## Every check: ruff, mypy, import contracts, pytest (PostgreSQL started by the tests)
	$(UV) ruff check src tests bench examples
	$(UV) ruff format --check src tests bench examples
	$(UV) mypy
	$(UV) lint-imports
	$(UV) pytest --doctest-modules src/rempart/domain tests --cov --cov-report=term:skip-covered -p no:cacheprovider

.PHONY: lint
lint: ## ruff (fixing what it can) and mypy
	$(UV) ruff check --fix src tests bench examples
	$(UV) ruff format src tests bench examples
	$(UV) mypy

.PHONY: bench
bench: setup ## Benchmarks (minutes): demo seeding and beneficiary import at scale, on SQLite and PostgreSQL
	$(UV) python bench/seed_import.py

.PHONY: bench-import
bench-import: setup ## Beneficiary import alone: 1,000,000 rows, first import and no-op re-import, SQLite and PostgreSQL
	$(UV) python bench/import_file.py

.PHONY: bench-rights
bench-rights: setup ## Rights checks on PostgreSQL with 1,000,000 beneficiaries (wrk, c = 1, 8, 32, 64)
	$(UV) python bench/rights_check.py

.PHONY: bench-claims
bench-claims: setup ## Invoice intake (batches of 100) and adjudication throughput on PostgreSQL
	$(UV) python bench/claims_throughput.py

.PHONY: bench-audit
bench-audit: setup ## rempart audit verify over 10,000,000 sealed audit rows on PostgreSQL (~10 min)
	$(UV) python bench/audit_verify.py

.PHONY: bench-claims-crash
bench-claims-crash: setup ## kill -9 of intake server and workers, 100 trials on PostgreSQL (~15 min)
	$(UV) python bench/claims_crash.py --trials 100


.PHONY: bench-payments-crash
bench-payments-crash: setup ## kill -9 during pay run and pay export, 100 trials on PostgreSQL (~15 min)
	$(UV) python bench/payments_crash.py

.PHONY: bench-payment-run
bench-payment-run: setup ## pay run, approve, export of 1,000,000 invoices across 50,000 PS on PostgreSQL (~6 min)
	$(UV) python bench/payment_run.py

.PHONY: bench-compare
bench-compare: setup ## The bare-service ceiling then Rempart, same machine, and their ratio (~15 min)
	bench/compare.sh

.PHONY: clean
clean: ## Remove the local data dir and caches
	rm -rf var .pytest_cache .mypy_cache .ruff_cache .coverage
