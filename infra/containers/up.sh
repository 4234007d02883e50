#!/bin/sh
# Starts the compose stack (infra/docker-compose.yml) and builds its images.
#   infra/containers/up.sh [compose up arguments…]     e.g. `postgres redis`, `--profile observability`
# First run: writes infra/.env (git-ignored, mode 600) with a random JWT_SECRET and the project
# name, so no secret is ever in the repository and tokens stay valid across restarts.
# CHAT_LOCAL_BASES=1: use the local base images of test/containers/local-bases.ts (no registry).
set -eu
infra="$(cd "$(dirname "$0")/.." && pwd)"
"$infra/containers/ensure-env.sh"
set -- up -d --build "$@"
if [ "${CHAT_LOCAL_BASES:-}" = 1 ]; then
  (cd "$infra/.." && pnpm exec tsx test/containers/local-bases.ts)
  set -- -f "$infra/containers/local-bases.yml" "$@"
fi
exec "$(dirname "$0")/compose.sh" "$@"
