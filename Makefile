# Everything installs into a local .venv, so a fresh machine needs only python3.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test test-dynamodb check lint typecheck demo bench lambda-zip clean test-floors

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,demo,bench]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest

# The service-level suites again, each world on a DynamoDB table in moto instead of SQLite.
test-dynamodb: $(STAMP)
	$(BIN)/python -m pytest -p tests.support.dynamodb_world tests/test_durable_actions.py \
		tests/test_alarm_responder.py tests/test_service_traffic.py tests/test_service_alarms.py \
		tests/test_soak_runner.py tests/test_watch_runner.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check bot commands handlers canary_demo

typecheck: $(STAMP)
	$(BIN)/mypy bot commands handlers canary_demo

check: lint typecheck test

demo: $(STAMP)
	$(BIN)/canary-bot demo

bench: $(STAMP)
	$(BIN)/python -m bench

# The lowest dependency versions pyproject.toml allows (floors.txt), in their own venv, on the tests that
# touch each dependency's features we rely on. Slow (a fresh install); not part of `make test`/CI.
FLOORS_VENV := .venv-floors
FLOOR_TESTS := tests/test_alarm_queue.py tests/test_sns_verify.py tests/test_http_server.py \
	tests/test_slack_flow.py tests/test_no_500.py tests/test_percentages.py tests/test_scheduler.py \
	tests/test_charts.py tests/test_judge.py tests/test_store_contract.py tests/test_traffic_contract.py

test-floors:
	rm -rf $(FLOORS_VENV)
	$(PYTHON) -m venv $(FLOORS_VENV)
	$(FLOORS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(FLOORS_VENV)/bin/python -m pip install --quiet -c floors.txt -e '.[demo]' pytest hypothesis
	$(FLOORS_VENV)/bin/python -m pip list --format=freeze | grep -iE '^(boto3|botocore|slack|pydantic|apscheduler|pyyaml|waitress|cryptography|matplotlib|scipy|moto|numpy)'
	$(FLOORS_VENV)/bin/python -m pytest $(FLOOR_TESTS)

# The alarm responder's Lambda zip (bot code + pydantic, PyYAML, slack_sdk, numpy, scipy; boto3 from the runtime).
# POLICY=path/to/policy.yaml puts the bot's policy in it.
lambda-zip: $(STAMP)
	$(BIN)/python deploy/build_lambda_zip.py --out dist/canary-bot-responder.zip $(if $(POLICY),--policy $(POLICY))

clean:
	rm -rf $(VENV) $(FLOORS_VENV) *.egg-info
