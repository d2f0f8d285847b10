# One image per team, built from this recipe with --build-arg TEAM=<team>. The team's code
# server, its Celery workers and its run containers all run this image, so a worker imports
# the team's code from the same absolute path the code server loaded it from.
#
# A team kept in its own repository builds the same recipe with TEAM_DIR pointing at its
# folder (inside the build context, beside packages/), tags the image, and registers it with
# a code_locations/<team>/team.toml naming that image.
FROM python:3.11-slim

# ---- shared with docker/platform.Dockerfile, line for line (tests/test_consistency.py) ----
# Every team image starts from the platform image's own layers: Dagster, Celery, wandb and every
# other third-party dependency at the platform lock's versions, installed once and stored once.
# A new team's build then installs only what its own lock adds, and no team argument appears
# before this point, so these layers are the same for every team. No source code is copied
# before this point either: a change to the platform packages' code rebuilds only the small
# layers that copy code.
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
# Third-party dependencies first, from the lock and the packages' metadata alone: this slow
# layer is rebuilt when a lock changes, not on every change to the platform packages' code.
COPY pyproject.toml uv.lock ./
COPY packages/dagster-team-celery/pyproject.toml packages/dagster-team-celery/
COPY packages/dagster-wandb-io/pyproject.toml packages/dagster-wandb-io/
RUN uv sync --frozen --no-dev --no-install-project \
    --no-install-package dagster-team-celery --no-install-package dagster-wandb-io
# ---- end of the shared layers ----

ARG TEAM
ARG TEAM_DIR=code_locations/${TEAM}
RUN test -n "${TEAM}" || (echo "Build with --build-arg TEAM=<folder under code_locations/>" >&2; exit 1)
ENV DAGSTER_TEAM=${TEAM}
# The team's processes run as dagster and write DAGSTER_HOME's run history; the platform image
# keeps its home root-owned, since it holds the instance config.
RUN chown dagster:dagster /opt/dagster/home

# The team's third-party dependencies: `uv sync` keeps what the shared layers installed at the
# same versions, adds the team's own libraries and removes the platform-only ones (webserver,
# Flower). Rebuilt when the team's lock changes, not its code or the platform packages'; those
# (path dependencies of the team's lock) are copied and installed after it.
WORKDIR /opt/dagster/app/code_locations/${TEAM}
COPY ${TEAM_DIR}/pyproject.toml ${TEAM_DIR}/uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project \
    --no-install-package dagster-team-celery --no-install-package dagster-wandb-io
COPY packages /opt/dagster/app/packages

COPY ${TEAM_DIR} ./
RUN uv sync --frozen --no-dev && python -c "import ${TEAM}.definitions"

USER dagster
