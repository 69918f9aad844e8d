# The two commands of the README, plus a few more for developers. Every target installs what it needs.
.PHONY: bootstrap example lint test e2e bench

PY := .venv/bin/python
FEDGEN := .venv/bin/fedgen

bootstrap:
	@bash scripts/bootstrap.sh

# Render the bundled example into this repository, build every sync root with kubectl kustomize
# (as Config Sync does), and validate the result (the PR check). A fresh clone has no state (it is never
# committed): the demo then starts its own root CA, which render only does when told (--new-root-ca).
# It needs no kube-apiserver, so bootstrap does not build one for it.
example:
	@bash scripts/bootstrap.sh --without-api-server
	@if [ -e .fedgen/state/example_project/state.json ]; then \
		echo "$(FEDGEN) render examples/federation.yaml --repo ."; \
		$(FEDGEN) render examples/federation.yaml --repo .; \
	else \
		echo "no state yet (a fresh clone): $(FEDGEN) render examples/federation.yaml --repo . --new-root-ca --yes"; \
		$(FEDGEN) render examples/federation.yaml --repo . --new-root-ca --yes; \
	fi
	@for root in clusters/*/; do \
		echo "kubectl kustomize $$root"; \
		kubectl kustomize --load-restrictor=LoadRestrictionsNone "$$root" > /dev/null || exit 1; \
	done
	$(FEDGEN) validate --repo .

# Static checks, run by `make test` before the tests: ruff (lint, import order and formatting: `ruff format`
# fixes what `--check` reports), mypy, and the import contracts of pyproject.toml (lint-imports: layers
# cli -> api -> features -> core -> spec -> errors, no cycles, nvflare imported in one place).
LINT_PATHS := generator tests bench tools
lint: bootstrap
	.venv/bin/ruff check $(LINT_PATHS)
	.venv/bin/ruff format --check $(LINT_PATHS)
	.venv/bin/mypy
	.venv/bin/lint-imports --no-logo --no-cache

# The whole test suite (what CI runs: .ci/run), after the static checks.
test: bootstrap lint
	$(PY) -m pytest -q

bench: bootstrap
	@for b in bench/bench_*.py; do $(PY) "$$b" || exit 1; done

# Only the end-to-end federation test: renders a spec, runs the server from the built manifests and the sites
# from their bundles in network namespaces, runs a job (needs root, ip, unshare; see tests/e2e/).
e2e: bootstrap
	$(PY) -m pytest -q -m e2e tests/e2e
