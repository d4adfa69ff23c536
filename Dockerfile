# One image for every gistsync process; the command picks the service:
#   docker run gistsync python -m gateway | github_poller | pipedrive_writer | sandbox
# No setting is baked in: tokens and URLs come from the environment at run time. Plain
# Dockerfile syntax, no BuildKit-only feature: the classic builder builds it too.
#
# The base is the official Python 3.11 image on Debian 12, pinned by the digest of its
# multi-platform index so that every build starts from the same bytes. To move to a newer
# one, read the current digest and replace it below:
#   docker buildx imagetools inspect python:3.11-slim-bookworm    # the "Digest:" line
# Any Debian 12 base with python3 and python3-venv builds it as well (the build only calls
# python3): tests/deploy/compose builds it from a debootstrapped Debian, with no registry.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
# The locks first: a code change then reuses the cached dependency layer. Both carry hashes;
# the build backend gets a venv of its own, so it never reaches the image.
COPY requirements.lock requirements-build.lock ./
RUN python3 -m venv /venv && /venv/bin/pip install --require-hashes -r requirements.lock \
 && python3 -m venv /build && /build/bin/pip install --require-hashes -r requirements-build.lock
COPY pyproject.toml README.md ./
COPY libs ./libs
COPY services ./services
# The wheel is built by the locked hatchling, not by whatever an isolated build would fetch;
# --no-deps: everything the code needs is already pinned by the lock.
RUN /build/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /wheels . \
 && /venv/bin/pip install --no-deps /wheels/*.whl && /venv/bin/pip check

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 gistsync \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin gistsync
COPY --from=build /venv /venv
# /venv/bin/python is the base's own interpreter, whichever base it is.
ENV PATH=/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
# Each service answers /healthz on its ops port (the gateway's GATEWAY_OPS_PORT, 9100, the
# default command's); docker-compose.yml sets HEALTH_PORT per service.
ENV HEALTH_PORT=9100
# Numeric, so that orchestrators can verify runAsNonRoot without reading /etc/passwd.
USER 10001:10001
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ['HEALTH_PORT']}/healthz\", timeout=2)"]
CMD ["python", "-m", "gateway"]

# What the image is (OCI annotations), given by the release build, e.g.
#   docker build --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" \
#     --build-arg SOURCE=https://github.com/OWNER/gistsync .
# Last, so that a new revision rebuilds no layer.
ARG VERSION=dev
ARG REVISION=unknown
ARG SOURCE=unknown
# The services' gistsync_build_info metric says which revision runs (no layer: ENV is metadata).
ENV GISTSYNC_REVISION=${REVISION}
LABEL org.opencontainers.image.title="gistsync" \
      org.opencontainers.image.description="Keeps Pipedrive in step with the public gists of tracked GitHub users." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}"
