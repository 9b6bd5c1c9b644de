# The two commands a newcomer runs:  make demo   and   make test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test unit bench lesson-load compose-e2e down clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,load]'
	touch $(STAMP)

setup: $(STAMP)  ## create .venv and install minimesh with its test tools

# `make demo PORT=8081` when 8080 is taken. `minimesh doctor` checks the machine
# first and stops here with its advice. The trap that stops the stack when the
# TUI quits is set only once *this* run has started the stack: a stack the
# learner already runs is refused by `up` and left alone.
PORT ?= 8080
demo: setup  ## lesson 1 (the shop behind sidecars) watched in the TUI; q or Ctrl-C stops everything
	@$(BIN)/minimesh doctor --port $(PORT) || exit 1; \
	$(BIN)/minimesh up lessons/01-hello-mesh --detach --port $(PORT) || exit 1; \
	trap '$(BIN)/minimesh down >/dev/null 2>&1 || true' EXIT INT TERM; \
	$(BIN)/minimesh tui --traffic

test: setup  ## every test: unit, integration (real sockets, processes), end-to-end lessons
	$(BIN)/python -m pytest --durations=30

unit: setup
	$(BIN)/python -m pytest tests/unit

bench: setup  ## direct vs HAProxy pair vs sidecar pairs, side by side (~3 min; bench/README.md)
	sh bench/setup.sh
	$(BIN)/python -m bench

# A lesson's locustfile at each of its steps, on a stack of its own (a fresh home, any
# free port): the CSVs stay in /tmp/minimesh-load-<lesson>-stepN_*.csv and the table
# goes to lessons/<lesson>/RESULTS.md. `make lesson-load LESSON=02-retries STEP_TIME=30s`
LESSON ?= 07-resilience
STEP_TIME ?= 15s
lesson-load: setup  ## a lesson's crowd at every step; the table in lessons/<LESSON>/RESULTS.md (~2 min)
	@home=$$(mktemp -d); \
	trap 'MINIMESH_HOME=$$home $(BIN)/minimesh down >/dev/null 2>&1; rm -rf $$home' EXIT INT TERM; \
	MINIMESH_HOME=$$home $(BIN)/minimesh up lessons/$(LESSON) --detach --port 0 --fresh || exit 1; \
	MINIMESH_HOME=$$home $(BIN)/minimesh load $(LESSON) --each-step -t $(STEP_TIME) --row /api/checkout \
	  --row Aggregated --csv /tmp/minimesh-load-$(LESSON) --results lessons/$(LESSON)/RESULTS.md

# Every lesson as a Docker Compose stack: build the image, then per lesson up,
# every step's checks from the host, down -v. Offline: compose/make-base-image.sh
# and MINIMESH_BASE_IMAGE=minimesh-base:bookworm (what .ci/run does).
MINIMESH_BASE_IMAGE ?= python:3.11-slim
compose-e2e: setup  ## every lesson's compose stack: up, lesson checks through the gateway, down (needs Docker)
	docker build --quiet --network host --build-arg BASE_IMAGE=$(MINIMESH_BASE_IMAGE) -f compose/Dockerfile -t minimesh:local .
	MINIMESH_COMPOSE_E2E=1 $(BIN)/python -m pytest -v -s tests/e2e/test_compose_stacks.py tests/e2e/test_compose_walkthrough.py

down:
	-$(BIN)/minimesh down

clean: down
	rm -rf $(VENV) .pytest_cache
