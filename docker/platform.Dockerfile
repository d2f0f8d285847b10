# The platform image: the webserver, the daemon, the one-shot instance migration, and Flower.
# Team code never goes in here; it lives in each team's image (docker/team.Dockerfile).
FROM python:3.11-slim

ARG UV_VERSION=0.13.9
ENV PYTHONUNBUFFERED=1 \
    UV_PROJECT_ENVIRONMENT=/opt/dagster/venv \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_NO_CACHE=1 \
    PATH=/opt/dagster/venv/bin:$PATH \
    DAGSTER_HOME=/opt/dagster/home

RUN pip install --no-cache-dir "uv==${UV_VERSION}" \
    && useradd --uid 1000 --create-home --shell /usr/sbin/nologin dagster \
    && mkdir -p /opt/dagster/home /opt/dagster/shared /opt/dagster/artifact-cache \
    && chown dagster:dagster /opt/dagster/shared /opt/dagster/artifact-cache

WORKDIR /opt/dagster/platform
# The platform's own packages (run launcher, executor loop; the platform code location's
# cache eviction) are path dependencies of the lock.
# Third-party dependencies first, from the lock and the packages' metadata alone: this slow
# layer is rebuilt when a lock changes, not on every change to the platform packages' code.
COPY pyproject.toml uv.lock ./
COPY packages/dagster-team-celery/pyproject.toml packages/dagster-team-celery/
COPY packages/dagster-wandb-io/pyproject.toml packages/dagster-wandb-io/
RUN uv sync --frozen --no-dev --no-install-project \
    --no-install-package dagster-team-celery --no-install-package dagster-wandb-io
# ---- end of the shared layers ----

COPY packages/dagster-team-celery packages/dagster-team-celery
COPY packages/dagster-wandb-io packages/dagster-wandb-io
RUN uv sync --frozen --no-dev --no-install-project

# Only the instance config: workspace.yaml, the team list, is mounted by docker-compose.yml,
# so adding a team needs no new platform image.
COPY dagster.yaml /opt/dagster/home/

# The init service checks both files with it before migrating (devstack runs it too).
COPY devstack/config_check.py /opt/dagster/platform/
# The daemon and the webserver run as dagster (uid 1000) and may keep state in DAGSTER_HOME.
RUN chown dagster:dagster /opt/dagster/home

# Every service keeps this user; only container runs (docker-compose.container-runs.yml) give the
# webserver and the daemon root, for the engine socket.
USER dagster
