#!/bin/bash
# stampede-healthcheck - the image's HEALTHCHECK: healthy when the broker accepts
# a TCP connection on its first stomp:// listener (from STAMPEDE_LISTEN; default
# port 61613), probed on loopback when it binds a wildcard address.
#
# TODO(issue 4): once the WebSocket listener serves GET /healthz, check that
# instead (HTTP 200 from the ws:// listener, default port 15674).
set -u
host=127.0.0.1 port=61613
IFS=, read -r -a urls <<<"${STAMPEDE_LISTEN:-}"
for url in "${urls[@]}"; do
    url=${url// /}
    case "$url" in
    stomp://*)
        hostport=${url#stomp://}
        hostport=${hostport%%/*}
        port=${hostport##*:}
        h=${hostport%:*}
        h=${h#[}
        h=${h%]}
        case "$h" in
        "" | 0.0.0.0 | :: | "$hostport") ;;
        *) host=$h ;;
        esac
        break
        ;;
    esac
done
# Port 0 means "any free port": there is nothing fixed to probe.
[ "$port" != 0 ] || exit 0
exec 3<>"/dev/tcp/$host/$port" || exit 1
exec 3>&-
exit 0
