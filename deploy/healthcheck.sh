#!/bin/bash
# gru-healthcheck - the image's HEALTHCHECK: GET /healthz on the local gru-serve, exit 0 on a 200.
# Uses bash's /dev/tcp, so the runtime image needs no curl. The port is GRU_SERVE_PORT (the
# image sets 8080), or the first argument. Set the port by the environment variable, not by
# --port, or this check and the server disagree.
port=${1:-${GRU_SERVE_PORT:-8080}}
exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
printf 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
read -r -t 3 _ status _ <&3 || exit 1
[ "$status" = 200 ]
