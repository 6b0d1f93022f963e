# Every target bootstraps its own virtual environment in .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 90

.PHONY: demo test bench reliability lint venv fast-reader clean

# The optional fast shop reader (mysqlclient, a C build): its build's output goes to a log; a failed build
# is one line, as the shop is then read with pymysql
FAST_READER_LOG := $(VENV)/fast-reader.log
FAST_READER := $(BIN)/python -m pip install --quiet -e '.[fast]' >$(FAST_READER_LOG) 2>&1 \
	|| echo "note: the optional fast reader (mysqlclient) was not built, so the shop is read with pymysql; it needs libmariadb-dev (or libmysqlclient-dev) and pkg-config, then make fast-reader (why: $(FAST_READER_LOG))"

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is needed, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@$(FAST_READER)
	touch $(STAMP)

venv: $(STAMP)

# mysqlclient again, once its build headers are there (a venv made before they were installed lacks it)
fast-reader: $(STAMP)
	@$(BIN)/python -c 'import MySQLdb' 2>/dev/null || ! { pkg-config --exists libmariadb || pkg-config --exists mysqlclient; } 2>/dev/null \
		|| $(FAST_READER)

## demo: seed a demo shop, start the SeQura sandbox, run the delivery-report flow end to end
demo: $(STAMP)
	PREFECT_HOME=$(CURDIR)/.demo/prefect $(BIN)/sequra-etl demo

## test: lint, then the whole suite (MariaDB at TEST_MYSQL_URL, the sandbox, real Prefect runs)
test: $(STAMP) fast-reader
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	PREFECT_HOME=$(CURDIR)/.pytest_prefect $(BIN)/python -m pytest

## bench: the pipeline against its floor on generated MariaDB shops (N = 100,000; BENCH_1M=1 adds 1,000,000),
## then backfills of 30 and 365 daily windows through the deployments and a worker, the Prefect server's database
## on the PostgreSQL of 127.0.0.1:5432 (benchmarks/backfill.json),
## then the payout check on state stores of 100,000 and 1,000,000 reported orders, SQLite and MariaDB
## (benchmarks/payouts.json)
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m benchmarks.run --orders 100000 $(if $(BENCH_1M),--orders 1000000) --backfill-orders 30000 \
		--payout-orders 100000 --payout-orders 1000000

## reliability: 2,000 random sequences of shop events, runs and faults; 50 runs killed at random moments;
## 1,000 random hostile inputs for every parser and boundary
reliability: $(STAMP)
	PROPERTY_SEQUENCES=2000 CRASH_TRIALS=50 PREFECT_HOME=$(CURDIR)/.pytest_prefect $(BIN)/python -m pytest \
		-p no:cacheprovider -s tests/tasks/delivery/test_order_updates_property.py tests/flows/test_crash_recovery.py \
		tests/tasks/delivery/test_exactly_once.py --hypothesis-show-statistics
	HOSTILE_EXAMPLES=1000 PREFECT_HOME=$(CURDIR)/.pytest_prefect $(BIN)/python -m pytest -p no:cacheprovider -m hostile \
		tests --hypothesis-show-statistics

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .demo .pytest_prefect .sequra-etl .pytest_cache .ruff_cache
