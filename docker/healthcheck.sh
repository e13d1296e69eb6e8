#!/bin/bash
# stampede-healthcheck - the image's HEALTHCHECK, in bash alone (/dev/tcp).
#
# Healthy when the broker answers GET /healthz with 200 on its first ws://
# listener; with no ws:// listener, when its first stomp:// (or else TLS)
# listener accepts a TCP connection. The listeners come from STAMPEDE_LISTEN;
# when it is unset (the broker's defaults), /healthz is asked on port 15674 and,
# where nothing listens there, port 61613 must accept.
# Wildcard addresses are probed on loopback. Docker's --timeout bounds it.
set -u

tcp_open() { # tcp_open HOST PORT
    exec 3<>"/dev/tcp/$1/$2" || return 1
    exec 3>&-
}

healthz() { # healthz HOST PORT: GET /healthz answers 200
    local status
    exec 3<>"/dev/tcp/$1/$2" || return 2
    printf 'GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
    read -r -t 2 status <&3 || status=
    exec 3>&-
    [[ $status == HTTP/1.?" 200"* ]]
}

# Splits URL into scheme, host and port (wildcards become loopback).
split_url() { # split_url URL
    local rest=${1#*://} h
    scheme=${1%%://*}
    rest=${rest%%/*}
    port=${rest##*:}
    h=${rest%:*}
    h=${h#[}
    h=${h%]}
    case "$h" in
    "" | 0.0.0.0 | :: | "$rest") host=127.0.0.1 ;;
    *) host=$h ;;
    esac
}

main() {
    local url first_tcp="" scheme host port
    if [ -z "${STAMPEDE_LISTEN:-}" ]; then
        healthz 127.0.0.1 15674
        case $? in
        0) return 0 ;;
        2) tcp_open 127.0.0.1 61613 ;; # no ws:// listener
        *) return 1 ;;
        esac
        return
    fi
    local urls
    IFS=, read -r -a urls <<<"$STAMPEDE_LISTEN"
    for url in "${urls[@]}"; do
        url=${url// /}
        split_url "$url"
        [ "$port" != 0 ] || continue # any free port: nothing fixed to probe
        case "$scheme" in
        ws)
            healthz "$host" "$port" # exit 2 is reserved by docker: 0 or 1 only
            return
            ;;
        stomp) [ -n "$first_tcp" ] && [ "${first_tcp%% *}" = stomp ] ||
            first_tcp="stomp $host $port" ;;
        *) [ -n "$first_tcp" ] || first_tcp="$scheme $host $port" ;;
        esac
    done
    [ -n "$first_tcp" ] || return 0
    read -r scheme host port <<<"$first_tcp"
    tcp_open "$host" "$port"
}

main && exit 0
exit 1
