# fhir-intake: `make run` starts the product locally, `make test` runs every test.
# Needs only Python 3.11+ and Node.js 20; everything else is installed here.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
IAC    := .venv-iac
THO    := .cache/tho/package
# The console's browser tests drive Debian's Chromium (Playwright's own browser download
# reaches a site this network does not); installed here when missing.
CHROMIUM ?= $(shell command -v chromium || command -v chromium-browser || echo /usr/bin/chromium)
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup run demo test lint infra-check chaos bench bench-ops bench-latency bench-pipeline bench-http bench-mllp bench-convert bench-ccda bench-batch bench-consent bench-store bench-export bench-notify bench-console bench-telemetry fuzz clean

setup: $(STAMP) node_modules/.bin/azurite $(THO)/package.json local.settings.json

$(STAMP): pyproject.toml requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11 or newer is needed (found $$($(PYTHON) --version))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

# checkov gets a virtual environment of its own: it pins libraries the app uses too.
$(IAC)/.installed: infra/requirements-checkov.txt
	$(PYTHON) -m venv $(IAC)
	$(IAC)/bin/python -m pip install --quiet --upgrade pip
	$(IAC)/bin/python -m pip install --quiet -r infra/requirements-checkov.txt
	@touch $@

node_modules/.bin/azurite: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# terminology.hl7.org's package, which tests/unit/normalize/test_tho_tables.py checks the
# converter's tables against; `npm install` cannot take it (it names a core package the
# npm registry does not have), so it is unpacked as it is published.
$(THO)/package.json:
	mkdir -p .cache/tho
	cd .cache/tho && npm pack --silent hl7.terminology.r4@7.0.1 >/dev/null && tar xzf hl7.terminology.r4-7.0.1.tgz && rm hl7.terminology.r4-7.0.1.tgz
	@touch $@

local.settings.json: | $(STAMP)
	$(BIN)/intake init

run: setup
	$(BIN)/intake run

# The whole flow once, on its own fresh Azurite and ports; exits 0 when everything matched.
demo: setup
	$(BIN)/intake demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

$(CHROMIUM):
	@command -v apt-get >/dev/null || { echo "the browser tests need Chromium: install it, or set CHROMIUM=/path/to/chromium"; exit 1; }
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium >/dev/null

test: setup $(IAC)/.installed $(CHROMIUM) lint
	CHROMIUM=$(CHROMIUM) $(BIN)/pytest

# The Bicep checks alone (syntax, structure, consistency with the code, checkov): offline.
infra-check: setup $(IAC)/.installed
	$(BIN)/pytest tests/infra

bench-convert: setup
	$(BIN)/python -m bench.bench_convert --json bench/convert.json

# C-CDA: documents/s and resources/s over the 22 samples, against the library alone.
bench-ccda: setup
	$(BIN)/python -m bench.bench_ccda --json bench/ccda.json

bench-batch: setup
	$(BIN)/python -m bench.bench_batch --size-mb 1024 --json bench/batch.json

bench-consent: setup
	$(BIN)/python -m bench.bench_consent --json bench/consent.json

bench-store: setup
	$(BIN)/python -m bench.bench_store --json bench/store.json

bench-export: setup
	$(BIN)/python -m bench.bench_export --json bench/export.json

# The fault tests at length: 20 SIGKILLs of the host during a 5,000-record drop and 300 posts.
chaos: setup
	CHAOS_KILLS=20 CHAOS_RECORDS=5000 CHAOS_POSTS=300 $(BIN)/pytest tests/e2e/test_chaos.py tests/e2e/test_outage.py -p no:cacheprovider

# The fuzz tests at length: the HTTP API, and HL7 v2 conversion (about 20 minutes).
fuzz: setup
	FUZZ_EXAMPLES=300 INTAKE_FUZZ_EXAMPLES=6000 $(BIN)/pytest tests/e2e/test_openapi_fuzz.py tests/unit/normalize -p no:cacheprovider

bench-notify: setup
	$(BIN)/python -m bench.bench_notify --json bench/notify.json

# What telemetry costs: the pipeline with telemetry off and with OTLP, alternating.
bench-telemetry: setup
	$(BIN)/python -m bench.bench_telemetry --json bench/telemetry.json

# The console's searches over 20,000 journey rows, against one partner's last day.
bench-console: setup
	$(BIN)/python -m bench.bench_console --json bench/console.json

# Storage requests and bytes per message, by function, through a counting proxy.
bench-ops: setup
	$(BIN)/python -m bench.bench_ops --messages 1000 --json bench/ops.json

# One ADT A01 at a time: POST to stored and to webhook, median of 20.
bench-latency: setup
	$(BIN)/python -m bench.bench_latency --messages 20 --json bench/latency.json

bench-pipeline: setup
	$(BIN)/python -m bench.bench_pipeline --messages 10000 --json bench/pipeline.json

bench-http: setup
	$(BIN)/python -m bench.bench_http --json bench/http.json

# MLLP to stored over 1, 8 and 32 connections, against the same messages over HTTP.
bench-mllp: setup
	$(BIN)/python -m bench.bench_mllp --json bench/mllp.json

# Every benchmark, one after another (they share the machine; never run two at once).
bench: bench-convert bench-ccda bench-batch bench-consent bench-store bench-export bench-notify bench-console bench-telemetry bench-ops bench-latency bench-pipeline bench-http bench-mllp

clean:
	rm -rf $(VENV) $(IAC) .cache node_modules .azurite .intake .pytest_cache .mypy_cache .ruff_cache
