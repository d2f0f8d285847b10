# The platform's commands. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
.ONESHELL:
.SHELLFLAGS := -euo pipefail -c

PYTHON := .venv/bin/python
# Docker Compose v2 when present, else docker-compose 1.29.
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)
# The team folders under code_locations/ are the one list of teams (registry/__init__.py);
# BUILT_TEAMS leaves out teams deployed from a prebuilt image of their own repository.
TEAMS = $(shell python3 -m registry list)
BUILT_TEAMS = $(shell python3 -m registry list --built-here)
export UV_PYTHON_DOWNLOADS := never
# Every Python command's output reaches a pipe or a log file as it is printed, not at its end.
export PYTHONUNBUFFERED := 1

.PHONY: help doctor env build up down clean ps logs venvs dev lock lint format test test-fast test-static \
	test-teams test-local test-faults test-ui test-container new-team remove-team redeploy bench \
	dev-stop generate platform-venv user audit swarm-up swarm-down swarm-ps swarm-config test-swarm

help: ## List the commands
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

env: platform-venv ## Create .env with random secrets and team keys (an existing .env is kept)
	@$(PYTHON) -m scripts.make_env

user: platform-venv ## A person's UI login and role: make user NAME=alice [TEAMS=bakery] [ROLE=viewer|member|admin] [REMOVE=1]
	@$(PYTHON) -m scripts.make_user "$(NAME)" $(if $(TEAMS),--teams "$(TEAMS)") $(if $(ROLE),--role "$(ROLE)") $(if $(PASSWORD),--password "$(PASSWORD)") $(if $(REMOVE),--remove)

audit: ## The UI's audit log: who asked for which change, allowed or refused (newest first)
	@$(PYTHON) -m scripts.webserver audit $(if $(LIMIT),--limit $(LIMIT))

build: generate ## Build the platform image and one image per team
	# One image at a time, the platform's first: every team image starts with its layers.
	# Images built in parallel from a cold cache leave layers that a later build does not
	# reuse (podman's builder), so it makes a new image ID and compose recreates that team's
	# containers; seen when adding a team. (One service per image: <team>-code.)
	services=($$(python3 -m registry build-order)); began=$$SECONDS
	for i in "$${!services[@]}"; do
		echo "[build $$((i + 1))/$${#services[@]}] $${services[$$i]} (at $$((SECONDS - began))s)"
		$(COMPOSE) build "$${services[$$i]}"
	done
	echo "[build] $${#services[@]} images in $$((SECONDS - began))s"

# Each command that needs tools from the machine checks for them first, before it creates
# anything, and names what is missing with the command that installs it (scripts/preflight.py).
preflight-%:
	@command -v python3 >/dev/null || { echo "make $*: python3 is missing: apt-get install python3 (macOS: brew install python@3.11)" >&2; exit 1; }
	@python3 -m scripts.preflight $*

doctor: ## Check this machine for what up, dev, test and bench need, and say how to get it
	@python3 -m scripts.preflight all

up: preflight-up env build ## Build and start the platform in containers; wait until every service is healthy
	# A running Redis rereads its users first, so a new team's services can log in.
	$(COMPOSE) exec -T redis redis-cli ACL LOAD >/dev/null 2>&1 || true
	# Only what changed is recreated; --remove-orphans takes away a removed team's services.
	$(COMPOSE) up -d --remove-orphans
	python3 -m scripts.wait_healthy --compose "$(COMPOSE)" --reload-workspace

generate: platform-venv ## Regenerate workspace.yaml and the compose team services from code_locations/
	$(PYTHON) -m registry generate

down: ## Stop the platform (volumes are kept)
	python3 -m scripts.remove_run_containers
	$(COMPOSE) down

clean: ## Stop the platform and delete its volumes (instance DB, artifact cache)
	python3 -m scripts.remove_run_containers
	$(COMPOSE) down -v

ps: ## Show each container's state and health
	python3 -m scripts.wait_healthy --compose "$(COMPOSE)" --once

logs: ## Follow every service's logs
	$(COMPOSE) logs -f --tail=100

platform-venv:
	command -v uv >/dev/null || pip install "uv==0.13.9"
	uv sync --frozen --quiet

venvs: platform-venv ## Create .venv (platform and tools) and code_locations/<team>/.venv from the locks
	for team in $(BUILT_TEAMS); do uv sync --frozen --quiet --project code_locations/$$team || exit 1; done

dev: preflight-dev venvs ## Run the same platform as local processes; Ctrl-C stops everything
	$(PYTHON) -m devstack $${ARGS-}

dev-stop: ## Stop a `make dev` stack whose terminal is gone (ARGS="--name <state folder>")
	$(PYTHON) -m devstack stop $${ARGS-}

lock: ## Re-resolve the platform's and every team's lock file
	uv lock
	for team in $(BUILT_TEAMS); do (cd code_locations/$$team && uv lock) || exit 1; done

lint: venvs ## ruff check and format check
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

format: venvs ## Format with ruff
	$(PYTHON) -m ruff format .
	$(PYTHON) -m ruff check --fix .

test: preflight-test venvs ## Everything, in five lanes at once; writes test-results/ci-costs.{json,md} (ONLY="step ..." runs some)
	$(PYTHON) -m tests.ci.suites $${ONLY:+--only $$ONLY}

test-fast: venvs ## Static checks and every test that starts no stack, worker or engine (about 2 minutes)
	$(PYTHON) -m tests.ci.suites --fast

test-static: venvs ## Fast checks of the compose file, configs and locks
	$(PYTHON) -m pytest tests/test_compose_static.py tests/test_consistency.py -q

test-local: venvs ## The local process stack end to end
	$(PYTHON) -m pytest tests -m local_stack -v

test-faults: venvs ## Fault injection: killed workers, restarted Redis/Postgres, dead code servers
	$(PYTHON) -m pytest tests -m faults -v

test-ui: venvs ## The Dagster UI and Flower in a real (headless) Chromium
	$(PYTHON) -m pytest tests -m ui -v

test-container: venvs ## Build the images and run the compose stack end to end
	$(PYTHON) -m pytest tests -m container -v

test-swarm: venvs ## A two-node Docker Swarm in network namespaces (root, docker.io), end to end
	$(PYTHON) -m pytest tests -m swarm -v

# NAME, TEAM, IMAGE, MODE and ARGS reach the recipes as environment variables (${NAME-}), never
# pasted into the shell text: a value with backquotes or $(...) is a string, not a command.
new-team: venvs ## Scaffold a team from templates/team and register it: make new-team NAME=<identifier>
	$(PYTHON) -m registry new "$${NAME-}"
	if [ -f .env ]; then $(PYTHON) -m scripts.make_env; fi

remove-team: platform-venv ## Delete a team's folder and unregister it: make remove-team NAME=<team>
	$(PYTHON) -m registry remove "$${NAME-}"
	if [ -f .env ]; then $(PYTHON) -m scripts.make_env; fi

redeploy: ## Restart one team only: make redeploy TEAM=<team> [IMAGE=<ref>] [MODE=local]
	if [ "$${MODE-}" = local ]; then $(PYTHON) -m scripts.redeploy --local "$${TEAM-}"; exit; fi
	# IMAGE= is for a team kept in its own repository: its manifest moves to the new tag.
	if [ -n "$${IMAGE-}" ]; then $(MAKE) --no-print-directory platform-venv; \
		$(PYTHON) -m registry set-image "$${TEAM-}" "$${IMAGE-}"; fi
	python3 -m scripts.redeploy --compose "$(COMPOSE)" "$${TEAM-}"

# Docker Swarm (README, "Several hosts"): DOCKER_HOST, or the local engine, is a manager, and
# every node already has the images (`make build`, then your registry or `docker load`).
swarm-up: env ## Deploy the stack to a Docker Swarm; wait until every service is healthy
	$(PYTHON) -m scripts.swarm up

swarm-down: platform-venv ## Remove the stack from the swarm (each node's volumes are kept)
	$(PYTHON) -m scripts.swarm down

swarm-ps: platform-venv ## Each swarm service's replicas, and why any is not running
	$(PYTHON) -m scripts.swarm ps

swarm-config: platform-venv ## Print the stack file swarm-up deploys (secrets are not in it)
	$(PYTHON) -m scripts.swarm config

bench: preflight-bench venvs ## Benchmarks against vanilla Dagster + dagster-celery (writes bench/results/)
	$(PYTHON) -m bench
