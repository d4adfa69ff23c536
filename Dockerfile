# syntax=docker/dockerfile:1
# One image for every gistsync process; the command picks the service:
#   docker run gistsync python -m gateway | github_poller | pipedrive_writer | sandbox
# No setting is baked in: tokens and URLs come from the environment at run time.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
# The lock first: a code change then reuses the cached dependency layer.
COPY requirements.lock ./
RUN python -m venv /venv && /venv/bin/pip install -r requirements.lock
COPY pyproject.toml README.md ./
COPY libs ./libs
COPY services ./services
# --no-deps: everything the code needs is already pinned by the lock.
RUN /venv/bin/pip install --no-deps . && /venv/bin/pip check

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 gistsync \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin gistsync
COPY --from=build /venv /venv
ENV PATH=/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
# Each service answers /healthz on its own port; docker-compose.yml sets HEALTH_PORT per service.
ENV HEALTH_PORT=8080
# Numeric, so that orchestrators can verify runAsNonRoot without reading /etc/passwd.
USER 10001:10001
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ['HEALTH_PORT']}/healthz\", timeout=2)"]
CMD ["python", "-m", "gateway"]
