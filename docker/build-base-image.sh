#!/usr/bin/env bash
# build-base-image.sh - make a local stand-in for debian:bookworm-slim where no
# image registry is reachable, so docker/Dockerfile builds unchanged.
#
#   docker/build-base-image.sh [TAG]        TAG defaults to debian:bookworm-slim
#
# Does nothing when TAG already exists in the local docker daemon. Otherwise it
# imports a cached root file system tarball, or first makes one with
# `debootstrap --variant=minbase bookworm` from the Debian mirror apt on this
# machine already uses, trimmed the way the official -slim images are (no
# manuals, docs, locales or apt lists; dpkg told to keep them out later too).
#
# Environment:
#   STAMPEDE_DOCKER_CACHE  where the tarball is kept (default ~/.cache/stampede)
#   DEBIAN_MIRROR          override the mirror (default: taken from apt's sources)
#   DEBIAN_SECURITY_MIRROR override the security mirror
#   DOCKER                 the docker client to use (default: docker)
# Needs root (debootstrap), debootstrap, and a running docker daemon.
set -euo pipefail

tag=${1:-debian:bookworm-slim}
suite=bookworm
docker=${DOCKER:-docker}
cache_dir=${STAMPEDE_DOCKER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/stampede}
tarball=$cache_dir/debian-$suite-minbase-slim.tar

log() { echo "build-base-image: $*" >&2; }

# Prints the first URI apt's sources use for SUITE (deb822 and one-line formats).
apt_mirror_for() { # apt_mirror_for SUITE
    local files=()
    [ -f /etc/apt/sources.list ] && files+=(/etc/apt/sources.list)
    local f
    for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] && files+=("$f")
    done
    [ ${#files[@]} -gt 0 ] || return 0
    awk -v want="$1" '
        function flush() {
            if (types ~ /(^| )deb( |$)/ && enabled != "no")
                for (i = 1; i <= ns; i++) if (s[i] == want && !found) { print uri; found = 1 }
            types = ""; uri = ""; ns = 0; enabled = ""
        }
        FNR == 1 { flush() }
        FILENAME ~ /\.sources$/ {
            if ($0 ~ /^[ \t]*$/) { flush(); next }
            if ($0 ~ /^#/) next
            key = tolower($1)
            if (key == "types:") { $1 = ""; types = $0 " " }
            else if (key == "uris:") uri = $2
            else if (key == "suites:") { ns = 0; for (i = 2; i <= NF; i++) s[++ns] = $i }
            else if (key == "enabled:") enabled = tolower($2)
            next
        }
        $1 == "deb" {
            i = 2
            if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
            if ($(i + 1) == want && !found) { print $i; found = 1 }
        }
        END { flush() }
    ' "${files[@]}" | head -n 1
}

image_exists() { "$docker" image inspect "$tag" >/dev/null 2>&1; }

# Trims ROOT the way Debian's -slim images are trimmed and points apt at MIRROR.
slimify() { # slimify ROOT MIRROR SECURITY_MIRROR
    local root=$1 mirror=$2 security=$3
    mkdir -p "$root/etc/dpkg/dpkg.cfg.d"
    cat >"$root/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
# Keep documentation, manuals and translations out of this image.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
EOF
    find "$root/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete
    find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
    rm -rf "$root"/usr/share/{man,groff,info,lintian,linda,locale}/*
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin \
        "$root"/var/cache/apt/archives/*.deb "$root"/var/log/*.log "$root"/tmp/* \
        "$root"/var/cache/debconf/*-old
    cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
# Images carry no downloaded packages.
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    rm -f "$root/etc/apt/sources.list"
    cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    # docker bind-mounts its own copies over these.
    : >"$root/etc/resolv.conf"
    : >"$root/etc/hostname"
}

make_tarball() {
    local mirror security work
    mirror=${DEBIAN_MIRROR:-$(apt_mirror_for "$suite")}
    mirror=${mirror:-http://deb.debian.org/debian}
    security=${DEBIAN_SECURITY_MIRROR:-$(apt_mirror_for "$suite-security")}
    security=${security:-http://deb.debian.org/debian-security}
    command -v debootstrap >/dev/null || { log "debootstrap is not installed"; return 1; }
    work=$(mktemp -d /var/tmp/stampede-base.XXXXXX)
    # shellcheck disable=SC2064
    trap "rm -rf '$work'" RETURN
    log "debootstrap --variant=minbase $suite from $mirror (about 30 s)"
    if ! debootstrap --variant=minbase "$suite" "$work/root" "$mirror" >"$work/debootstrap.log" 2>&1; then
        tail -n 20 "$work/debootstrap.log" >&2
        return 1
    fi
    slimify "$work/root" "$mirror" "$security"
    mkdir -p "$cache_dir"
    tar --numeric-owner -C "$work/root" -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    log "cached $tarball ($(du -h "$tarball" | cut -f1))"
}

main() {
    if image_exists; then
        log "$tag is present"
        return 0
    fi
    mkdir -p "$cache_dir"
    # One builder at a time per cache directory.
    exec 9>"$cache_dir/.lock"
    flock 9
    if image_exists; then
        return 0
    fi
    [ -s "$tarball" ] || make_tarball
    log "importing $tarball as $tag"
    "$docker" import --change 'CMD ["bash"]' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        "$tarball" "$tag" >/dev/null
}

main
