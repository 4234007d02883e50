#!/bin/sh
# Writes the compose stack's env file (default infra/.env, git-ignored) unless it exists: the
# project name and a random 32-byte JWT_SECRET, mode 600. An existing file is left as it is, so
# the secret (and the tokens it signed) survive restarts. Never prints the secret.
#   infra/containers/ensure-env.sh [file]
set -eu
file="${1:-$(cd "$(dirname "$0")/.." && pwd)/.env}"
if [ -f "$file" ]; then exit 0; fi
umask 077
secret="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
printf 'COMPOSE_PROJECT_NAME=chat-cluster\nJWT_SECRET=%s\n' "$secret" > "$file"
echo "wrote $file (a new random JWT_SECRET)"
