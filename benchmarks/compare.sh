#!/bin/sh
# compare.sh - Stampede against RabbitMQ's STOMP plugin on this machine, with
# the same generator (stampede-bench), the same frames and the same CPU split.
# The work is done by compare.py next to this file; see its --help and
# benchmarks/README.md. Uses Debian's /usr/bin/python3 (standard library only).
exec /usr/bin/python3 "$(dirname "$0")/compare.py" "$@"
