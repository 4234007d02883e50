#!/bin/sh
# As the official image: a redis-server started without a config file listens on every
# interface of the container without protected mode (the network is the compose network).
set -eu
if [ "$1" = redis-server ]; then
  case "${2:-}" in
    *.conf) ;;
    *) shift; set -- redis-server --protected-mode no "$@" ;;
  esac
fi
exec "$@"
