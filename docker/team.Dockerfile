# One image per team, built from this recipe with --build-arg TEAM=<team>. The team's code
# server, its Celery workers and its run containers all run this image, so a worker imports
# the team's code from the same absolute path the code server loaded it from.
#
# A team kept in its own repository builds the same recipe with TEAM_DIR pointing at its
# folder (inside the build context, beside packages/), tags the image, and registers it with
# a code_locations/<team>/team.toml naming that image.
FROM python:3.11-slim

ARG TEAM
ARG TEAM_DIR=code_locations/${TEAM}
ARG UV_VERSION=0.13.9
RUN test -n "${TEAM}" || (echo "Build with --build-arg TEAM=<folder under code_locations/>" >&2; exit 1)

ENV PYTHONUNBUFFERED=1 \
    UV_PROJECT_ENVIRONMENT=/opt/dagster/venv \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_NO_CACHE=1 \
    PATH=/opt/dagster/venv/bin:$PATH \
    DAGSTER_TEAM=${TEAM}

RUN pip install --no-cache-dir "uv==${UV_VERSION}" \
    && useradd --uid 1000 --create-home --shell /usr/sbin/nologin dagster \
    && mkdir -p /opt/dagster/artifact-cache /opt/dagster/shared \
    && chown dagster:dagster /opt/dagster/artifact-cache /opt/dagster/shared

# Third-party dependencies first: this layer is rebuilt only when the team's lock or the
# platform packages (path dependencies of the lock) change, not when the team's code does.
COPY packages /opt/dagster/app/packages
WORKDIR /opt/dagster/app/code_locations/${TEAM}
COPY ${TEAM_DIR}/pyproject.toml ${TEAM_DIR}/uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project

COPY ${TEAM_DIR} ./
RUN uv sync --frozen --no-dev && python -c "import ${TEAM}.definitions"

USER dagster
