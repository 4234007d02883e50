#!/bin/sh
# Stops and removes the compose stack of up.sh; `-v` also removes its data volumes.
set -eu
exec "$(dirname "$0")/compose.sh" down --remove-orphans "$@"
