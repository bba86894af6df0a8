#!/usr/bin/env bash
# Installs what `make deb` and packaging/deb/test.sh need on Debian (as root).
# Idempotent: packages already installed are left as they are, and apt's
# index is refreshed only when it has never been fetched.
#
#   python3, python3-venv  Debian's own interpreter: the bundled virtualenv is
#                          made with /usr/bin/python3 (not whatever python3 is
#                          first on PATH), so it runs on the target machine
#   dpkg-dev               dpkg-deb, dpkg-shlibdeps (shared-library dependencies)
#   binutils               strip, for the extension modules of the wheels
#   lintian                the package checks
#   systemd                systemd-analyze verify (no systemd needs to run)
#   adduser, init-system-helpers, passwd
#                          what the maintainer scripts call when test.sh
#                          installs the package (normally present already)
#   ca-certificates        pip's HTTPS to the package index
#   util-linux             setpriv, to run the daemon as llmedge
#   iproute2               ss, to see what the daemon listens on
#   man-db                 man, with which systemd-analyze verify checks the
#                          unit's Documentation=man:llmedge(1)
#
# Every wheel llmedge depends on exists prebuilt for CPython 3.11 on amd64
# and arm64, so no compiler or python3-dev is needed.
set -euo pipefail

packages=(python3 python3-venv dpkg-dev binutils lintian systemd adduser init-system-helpers
          passwd ca-certificates util-linux man-db iproute2)

missing=()
for p in "${packages[@]}"; do
    if [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" != installed ]; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "build-deps.sh: missing ${missing[*]}: run me as root (I call apt-get)" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -print -quit)" ]; then
    apt-get update -qq
fi
echo "build-deps.sh: installing ${missing[*]}"
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || {
    # An index too old to find the current versions: refresh once and retry.
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
