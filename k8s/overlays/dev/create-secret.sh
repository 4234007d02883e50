#!/bin/sh
# Creates Secret chat-secrets in namespace chat-dev on first run, with a random 32-byte
# JWT_SECRET; an existing Secret is left as it is. Nothing secret is in the repository.
#   DATABASE_URL='postgres://chat:…@postgres.db.svc:5432/chat' k8s/overlays/dev/create-secret.sh
# REDIS_URL defaults to the Service redis in namespace cache (redis://redis.cache.svc:6379):
# patches/networkpolicy.yaml lets the pods reach PostgreSQL in namespace db and Redis in cache
# only, so a bare name (resolved in chat-dev) would be refused. Prints no value.
set -eu
: "${DATABASE_URL:?set DATABASE_URL to the dev Postgres (with its password)}"
here="$(cd "$(dirname "$0")" && pwd)"
kubectl apply -f "$here/namespace.yaml"
if kubectl -n chat-dev get secret chat-secrets >/dev/null 2>&1; then
  echo "chat-dev/chat-secrets exists; left as it is"
  exit 0
fi
kubectl -n chat-dev create secret generic chat-secrets \
  --from-literal=DATABASE_URL="$DATABASE_URL" \
  --from-literal=REDIS_URL="${REDIS_URL:-redis://redis.cache.svc:6379}" \
  --from-literal=JWT_SECRET="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')" >/dev/null
echo "created chat-dev/chat-secrets (a new random JWT_SECRET)"
