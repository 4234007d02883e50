#!/bin/sh
# `docker compose` (v2) where installed, else `docker-compose` (v1, Debian bookworm's package),
# on infra/docker-compose.yml with infra/.env. Extra `-f` files may come first:
#   infra/containers/compose.sh ps | logs -f gateway-a | -f infra/containers/local-bases.yml up -d
set -eu
infra="$(cd "$(dirname "$0")/.." && pwd)"
# The compose file first: it makes infra/ the project directory (its build context `..`).
set -- -f "$infra/docker-compose.yml" "$@"
if [ -f "$infra/.env" ]; then set -- --env-file "$infra/.env" "$@"; fi
if docker compose version >/dev/null 2>&1; then
  exec docker compose "$@"
elif command -v docker-compose >/dev/null 2>&1; then
  exec docker-compose "$@"
fi
echo "neither 'docker compose' nor 'docker-compose' is installed" >&2
exit 1
