#!/usr/bin/env bash
# Builds dist/llmedge_<version>_<arch>.deb from this checkout (`make deb`).
#
# No debhelper: a tree is staged and packed with `dpkg-deb --build
# --root-owner-group`, so the build needs no root and no fakeroot.  The
# build dependencies come from packaging/deb/build-deps.sh.
#
# The virtualenv.  Virtualenvs are not relocatable (scripts carry the
# interpreter's absolute path in their #! line, pyvenv.cfg and the activate
# scripts name the venv), so this one is made with Debian's /usr/bin/python3
# (never a python3 that happens to be first on PATH) in the staging tree,
# at STAGE/opt/venvs/llmedge, then every text file naming STAGE is rewritten
# to name /opt/venvs/llmedge, as dh-virtualenv does; the build fails if any
# file, text or binary, still names the build directory.  This needs no
# root and cannot touch an llmedge installed on the build machine, which
# building in place at /opt/venvs/llmedge would.  bin/python is a symlink
# to /usr/bin/python3, hence the dependency on python3 of the same minor
# version.
#
# What goes in: the llmedge wheel built from a clean copy of the checkout
# (no stale build/ or egg-info, no editable install) and its runtime
# dependencies from the package index, neither the test nor the otel
# extras.  pip and setuptools are then removed from the venv: the package
# is its only installer (dpkg would not know of anything pip added).
# No bytecode is shipped (postinst compiles it, prerm removes it).
set -euo pipefail
umask 022

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${DEB_OUT:-$root/dist}
PYTHON=/usr/bin/python3
VENV=/opt/venvs/llmedge

step() { printf 'deb: %s\n' "$*" >&2; }

version=$(sed -n 's/^__version__ = "\([^"]*\)"$/\1/p' "$root/llmedge/__init__.py")
arch=$(dpkg --print-architecture)
[ -n "$version" ] || { echo "deb: no __version__ in llmedge/__init__.py" >&2; exit 1; }
changelog_version=$(sed -n '1s/^llmedge (\([^)]*\)).*/\1/p' "$here/changelog")
if [ "$changelog_version" != "$version" ]; then
    echo "deb: packaging/deb/changelog starts at $changelog_version but llmedge is $version:" \
         "add an entry for $version at its top" >&2
    exit 1
fi
[ -x "$PYTHON" ] || { echo "deb: $PYTHON missing: run packaging/deb/build-deps.sh" >&2; exit 1; }
pyver=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
pynext=$("$PYTHON" -c 'import sys; print("%d.%d" % (sys.version_info[0], sys.version_info[1] + 1))')

work=$(mktemp -d "${TMPDIR:-/tmp}/llmedge-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
# debian/llmedge/ is where dpkg-shlibdeps expects a package's files.
stage=$work/debian/llmedge
venv=$stage$VENV

step "clean copy of the checkout"
mkdir -p "$work/src"
(cd "$root" && tar --exclude=./.git --exclude=./.venv --exclude=./build --exclude=./dist \
     --exclude='*.egg-info' --exclude=./.pytest_cache --exclude=__pycache__ \
     --exclude=dropin.cache --exclude='*.deb' --exclude=./bench -cf - .) | tar -C "$work/src" -xf -

step "virtualenv with $PYTHON ($pyver)"
"$PYTHON" -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check --no-input)
"${pip[@]}" wheel --quiet --no-deps -w "$work/wheel" "$work/src"
wheel=$(ls "$work"/wheel/llmedge-"$version"-*.whl)
"${pip[@]}" install --quiet --no-compile --no-warn-script-location "$wheel"
"${pip[@]}" check >/dev/null
"${pip[@]}" list --format=freeze --exclude pip --exclude setuptools > "$work/bundled.txt"
"${pip[@]}" uninstall --quiet --yes pip setuptools

step "relocating the venv to $VENV"
rm -f "$venv"/lib/python*/site-packages/llmedge-*.dist-info/direct_url.json
grep -rlIF "$stage" "$venv" | while IFS= read -r f; do
    sed -i "s|$stage$VENV|$VENV|g" "$f"
done
find "$venv" -depth -type d -name __pycache__ -exec rm -rf {} +
find "$venv" -type f -name '*.py[co]' -delete
# As dh_strip does: the wheels' extension modules come with their symbols.
find "$venv" -type f -name '*.so*' -exec strip --remove-section=.comment \
    --remove-section=.note --strip-unneeded {} +
# Left over from how upstream packs: VCS files, the empty include/ of a venv.
find "$venv" -type f -name .gitignore -delete
find "$venv" -depth -type d -empty -delete
if grep -rlF "$work" "$stage"; then
    echo "deb: the files above still name the build directory $work" >&2
    exit 1
fi
[ "$(readlink "$venv/bin/python3")" = "$PYTHON" ] || {
    echo "deb: $VENV/bin/python3 is not a link to $PYTHON" >&2; exit 1; }

step "files"
install -d "$stage/usr/bin" "$stage/etc/llmedge" "$stage/etc/default" \
    "$stage/lib/systemd/system" "$stage/usr/share/doc/llmedge/examples" \
    "$stage/usr/share/man/man1" "$stage/usr/share/lintian/overrides"
ln -s "$VENV/bin/llmedge" "$stage/usr/bin/llmedge"
install -m 644 "$here/llmedge.toml" "$stage/etc/llmedge/llmedge.toml"
install -m 644 "$here/llmedge.default" "$stage/etc/default/llmedge"
install -m 644 "$here/llmedge.service" "$here/llmedge.socket" "$stage/lib/systemd/system/"
install -m 644 "$here/socket-activation.conf" "$stage/usr/share/doc/llmedge/examples/"
install -m 644 "$here/lintian-overrides" "$stage/usr/share/lintian/overrides/llmedge"
gzip -9n < "$here/llmedge.1" > "$stage/usr/share/man/man1/llmedge.1.gz"
gzip -9n < "$here/changelog" > "$stage/usr/share/doc/llmedge/changelog.gz"
gzip -9n < "$root/README.md" > "$stage/usr/share/doc/llmedge/README.md.gz"
"$venv/bin/python" - "$venv/lib/python$pyver/site-packages" "$work/bundled.txt" <<'EOF' > "$work/licenses.txt"
# One line per bundled distribution: " name version: license", from its metadata.
import sys
from importlib.metadata import distributions
site, listed = sys.argv[1], open(sys.argv[2]).read().split()
wanted = {line.split("==")[0].lower().replace("_", "-") for line in listed}
for dist in sorted(distributions(path=[site]), key=lambda d: d.metadata["Name"].lower()):
    name = dist.metadata["Name"]
    if name.lower().replace("_", "-") not in wanted or name == "llmedge":
        continue
    meta = dist.metadata
    lic = meta.get("License-Expression") or ", ".join(
        c.split(" :: ")[-1] for c in meta.get_all("Classifier") or [] if c.startswith("License ::"))
    if not lic:
        lines = (meta.get("License") or "").strip().splitlines()
        lic = lines[0] if lines else "see its dist-info directory"
    print(f" {name} {dist.version}: {lic.strip()}")
EOF
sed -e "s|@PYVER@|$pyver|g" -e "/@BUNDLED@/{r $work/licenses.txt" -e "d}" \
    "$here/copyright.in" > "$stage/usr/share/doc/llmedge/copyright"
chmod 644 "$stage/usr/share/doc/llmedge/copyright"

step "control"
install -d "$stage/DEBIAN"
install -m 755 "$here/postinst" "$here/prerm" "$here/postrm" "$stage/DEBIAN/"
printf '/etc/default/llmedge\n/etc/llmedge/llmedge.toml\n' > "$stage/DEBIAN/conffiles"
# The shared libraries of the bundled extension modules (the wheels link
# OpenSSL and libffi in statically): their dependencies, as ${shlibs:Depends}.
printf 'Source: llmedge\n\nPackage: llmedge\nArchitecture: any\n' > "$work/debian/control"
mapfile -t elves < <(find "$venv" -type f -name '*.so*')
shlibs=$(cd "$work" && dpkg-shlibdeps -O --warnings=0 "${elves[@]}" | sed -n 's/^shlibs:Depends=//p')
# procps: /bin/kill, which the unit's ExecReload= runs.
depends="python3 (>= $pyver), python3 (<< $pynext), adduser, procps${shlibs:+, $shlibs}"
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s|@VERSION@|$version|" -e "s|@ARCH@|$arch|" -e "s|@SIZE@|$size|" \
    -e "s|@DEPENDS@|$depends|" "$here/control.in" > "$stage/DEBIAN/control"
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z |
     xargs -0 md5sum) > "$stage/DEBIAN/md5sums"
chmod 644 "$stage/DEBIAN/md5sums" "$stage/DEBIAN/conffiles" "$stage/DEBIAN/control"

step "packing"
mkdir -p "$out"
deb=$out/llmedge_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "$deb"
