# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
FLASK := $(BIN)/flask --app wsgi
PORT ?= 8000
WORKERS ?= 3

.PHONY: run test serve worker migrate demo spec lint bench load soak faults clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/pip install --quiet -e '.[test,load]'
	touch $(STAMP)

install: $(STAMP)

migrate: $(STAMP)
	mkdir -p instance
	$(FLASK) db upgrade

demo: migrate
	$(FLASK) demo load

# gunicorn and the job worker side by side (jobs queue: instance/jobs.db, or
# GUIDEAPP_JOBS_URL / GUIDEAPP_REDIS_URL); Ctrl-C stops both, and so does either one exiting.
run: demo
	@$(FLASK) demo logins
	@echo "Serving on http://127.0.0.1:$(PORT)  (API docs: http://127.0.0.1:$(PORT)/docs)"
	@echo "Landing page of the demo LBS code: http://127.0.0.1:$(PORT)/s/stride-lbs"
	exec $(BIN)/python scripts/supervise.py \
		"$(BIN)/gunicorn --config gunicorn.conf.py --bind 0.0.0.0:$(PORT) --workers $(WORKERS) --access-logfile - wsgi:app" \
		"$(FLASK) jobs worker"

serve: demo
	$(BIN)/gunicorn --config gunicorn.conf.py --bind 0.0.0.0:$(PORT) --workers $(WORKERS) --access-logfile - wsgi:app

worker: migrate
	$(FLASK) jobs worker

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

spec: $(STAMP)
	$(FLASK) openapi write --format=json api_spec/openapi.json
	@echo "api_spec/openapi.json regenerated"

lint: $(STAMP)
	$(BIN)/ruff check guideapp tests bench migrations/env.py
	$(BIN)/ruff format --check guideapp tests bench migrations/env.py
	$(BIN)/lint-imports
	$(BIN)/mypy

bench: $(STAMP)
	@command -v wrk >/dev/null || apt-get install -y wrk >/dev/null 2>&1 || \
		echo "wrk unavailable: load benchmarks fall back to Python threads"
	$(BIN)/python -m bench.run_all $(BENCH_ARGS)

# A day in the life under locust: two gunicorn instances on a scratch PostgreSQL database,
# the job worker on Redis db 7; writes its section of bench/RESULTS.md (bench/README.md).
# LOAD_ARGS: --seconds N, --scale F, --users N, --soak; `make soak` is the 10-minute soak.
load: $(STAMP)
	$(BIN)/python -m bench.load $(LOAD_ARGS)

soak: $(STAMP)
	$(BIN)/python -m bench.load --soak $(LOAD_ARGS)

# Kills, restarts, dropped answers and a full disk, each a PASS/FAIL line (bench/faults.py):
# its own PostgreSQL (8250), Redis (8260) and gunicorn (8200), a few minutes, root for the
# tmpfs. FAULTS_ARGS="--only disk_full --no-record" runs one and leaves RESULTS.md alone.
faults: $(STAMP)
	$(BIN)/python -m bench.faults $(FAULTS_ARGS)

clean:
	rm -rf $(VENV) instance/*.db instance/*.db-*
