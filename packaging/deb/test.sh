#!/usr/bin/env bash
# The Debian package, end to end, on this machine (as root; run by .ci/run
# after `make test`): build it, lint it, install it, run the daemon as its
# unit would, upgrade, remove, purge, and check that nothing is left.
#
# No systemd runs here (nor in CI), so the daemon is started as the unit's
# ExecStart= says, with the unit's environment files and user, through
# setpriv (which execs, so the process and its exit status are the
# daemon's own, and drops capabilities and sets no_new_privs as the unit
# does).  Idempotent: a leftover llmedge package is purged first.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)

if [ "$(id -u)" != 0 ]; then
    echo "test.sh: run as root (it installs and purges the package)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive

VENV=/opt/venvs/llmedge
UNIT=/lib/systemd/system/llmedge.service
PY=$root/.venv/bin/python          # the project's test venv: the openai SDK
work=$(mktemp -d "${TMPDIR:-/tmp}/llmedge-deb-test.XXXXXX")
daemon=
failures=0

cleanup() {
    if [ -n "$daemon" ] && kill -0 "$daemon" 2>/dev/null; then
        kill "$daemon" 2>/dev/null || true
        wait "$daemon" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

started=$(date +%s.%N)
phase_start=$started
elapsed() { awk -v what="$1" -v a="$2" -v b="$3" 'BEGIN { printf "deb-test: %-46s %6.1fs\n", what, b - a }'; }
phase() {
    local now
    now=$(date +%s.%N)
    if [ -n "${phase_name:-}" ]; then
        elapsed "$phase_name" "$phase_start" "$now"
    fi
    phase_name=$1
    phase_start=$now
    printf '\n=== %s\n' "$1"
}
ok() { printf 'ok    %s\n' "$*"; }
fail() { printf 'FAIL  %s\n' "$*"; failures=$((failures + 1)); }
check() {  # check DESCRIPTION COMMAND...: one assertion
    local what=$1; shift
    if "$@" >/dev/null 2>&1; then ok "$what"; else fail "$what"; fi
}
absent() { [ ! -e "$1" ] && [ ! -L "$1" ]; }
mode_of() { stat -c '%a %U:%G' "$1"; }
abort() { fail "$*"; exit 1; }

# Start the daemon exactly as the unit's ExecStart= would: the unit's
# environment files only (systemd passes no other environment), its user,
# group and working directory, no capabilities, no_new_privs.
start_daemon() {
    local log=$1 execstart
    execstart=$(sed -n 's/^ExecStart=//p' "$UNIT")
    (
        cd /var/lib/llmedge
        exec env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
            bash -c 'set -a; . /etc/default/llmedge; . /etc/llmedge/api-keys.env; set +a
                     exec setpriv --reuid=llmedge --regid=llmedge --init-groups \
                         --inh-caps=-all --bounding-set=-all --no-new-privs -- '"$execstart"
    ) > "$log" 2>&1 &
    daemon=$!
}

wait_healthy() {  # bounded: 30 s
    for _ in $(seq 1 300); do
        if ! kill -0 "$daemon" 2>/dev/null; then return 1; fi
        if "$PY" -c 'import urllib.request, sys
with urllib.request.urlopen("http://127.0.0.1:8080/health", timeout=1) as r:
    sys.exit(r.status != 200)' 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    return 1
}

stop_daemon() {  # SIGTERM, then sets $status to the exit status (bounded: 15 s)
    kill -TERM "$daemon"
    for _ in $(seq 1 150); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$daemon" 2>/dev/null && kill -KILL "$daemon"
    status=0
    { wait "$daemon"; } 2>/dev/null || status=$?
    daemon=
}

installed() { [ "$(dpkg-query -W -f='${db:Status-Status}' llmedge 2>/dev/null)" = installed ]; }

# ---------------------------------------------------------------------------
phase "build dependencies"
bash packaging/deb/build-deps.sh
make --no-print-directory venv >/dev/null      # the SDK used below; made by `make test`

phase "purge of a leftover install"
if dpkg-query -W llmedge >/dev/null 2>&1; then
    apt-get purge -y -qq llmedge >/dev/null
    ok "purged a leftover llmedge"
else
    ok "nothing to purge"
fi
if ss -Hltn 'sport = :8080' 2>/dev/null | grep -q .; then
    abort "something already listens on port 8080; the test needs it"
fi

phase "make deb"
rm -f dist/llmedge_*.deb
make --no-print-directory deb 2> >(grep -v "^WARNING: Location 'file:" >&2)
version=$(sed -n 's/^__version__ = "\([^"]*\)"$/\1/p' llmedge/__init__.py)
arch=$(dpkg --print-architecture)
deb=dist/llmedge_${version}_${arch}.deb
[ -f "$deb" ] || abort "make deb made no $deb"
ok "built $deb ($(du -h "$deb" | cut -f1))"
dpkg-deb -c "$deb" > "$work/contents"
check "no bytecode in the package" bash -c "! grep -E '__pycache__|\\.py[co]\$' '$work/contents'"
check "no dropin.cache in the package" bash -c "! grep -F dropin.cache '$work/contents'"
check "no pip in the venv" bash -c "! grep -E 'site-packages/pip/' '$work/contents'"
check "no test or otel extras" bash -c "! grep -E 'site-packages/(pytest|openai|treq|opentelemetry)' '$work/contents'"
depends=$(dpkg-deb -f "$deb" Depends)
pyver=$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
echo "Depends: $depends"
check "Depends pins python3 to $pyver" grep -qF "python3 (>= $pyver), python3 (<< " <<< "$depends"
check "Depends on adduser, procps (/bin/kill) and libc6" \
    bash -c "grep -q 'adduser' <<< '$depends' && grep -q 'procps' <<< '$depends' && grep -q 'libc6' <<< '$depends'"

phase "lintian"
# Errors and warnings fail (an overridden one does not: each override is
# justified in packaging/deb/lintian-overrides); info and pedantic tags show.
lintian_status=0
lintian --pedantic --display-info --fail-on error,warning "$deb" > "$work/lintian" 2>&1 ||
    lintian_status=$?
grep -v '^running with root privileges' "$work/lintian" || true
check "lintian: no error or warning (status $lintian_status)" test "$lintian_status" = 0

phase "apt-get install"
(cd dist && apt-get install -y -qq "./$(basename "$deb")") > "$work/install.log" 2>&1 ||
    { cat "$work/install.log"; abort "apt-get install ./$(basename "$deb")"; }
grep '^llmedge:' "$work/install.log" || true
check "dpkg says installed" installed
check "/usr/bin/llmedge -> the venv's script" test "$(readlink /usr/bin/llmedge)" = "$VENV/bin/llmedge"
check "the venv's python is Debian's" test "$(readlink "$VENV/bin/python3")" = /usr/bin/python3
check "llmedge user: system, nologin, home /var/lib/llmedge" \
    bash -c '[ "$(getent passwd llmedge | cut -d: -f6,7)" = /var/lib/llmedge:/usr/sbin/nologin ] &&
             [ "$(id -u llmedge)" -lt 1000 ] && [ "$(id -gn llmedge)" = llmedge ]'
check "/var/lib/llmedge is llmedge's, 0750" test "$(mode_of /var/lib/llmedge)" = "750 llmedge:llmedge"
check "api-keys.env: 0640 root:llmedge" test "$(mode_of /etc/llmedge/api-keys.env)" = "640 root:llmedge"
check "initial-api-key: 0600 root:root" test "$(mode_of /etc/llmedge/initial-api-key)" = "600 root:root"
check "api-keys.env holds only the stored form" \
    bash -c 'grep -qE "^API_KEYS=sha256:[0-9a-f]{64}$" /etc/llmedge/api-keys.env &&
             ! grep -qF "$(cat /etc/llmedge/initial-api-key)" /etc/llmedge/api-keys.env'
check "the plain key hashes to the stored one" \
    bash -c '[ "API_KEYS=$(llmedge hash-key < /etc/llmedge/initial-api-key)" = "$(grep ^API_KEYS= /etc/llmedge/api-keys.env)" ]'
conffiles=$(dpkg-query -W -f='${Conffiles}' llmedge)
check "conffiles: llmedge.toml and /etc/default/llmedge" \
    bash -c "grep -q ' /etc/llmedge/llmedge.toml ' <<< '$conffiles' && grep -q ' /etc/default/llmedge ' <<< '$conffiles'"
check "key files are not conffiles" bash -c "! grep -q 'api-keys\\|initial-api-key' <<< '$conffiles'"
check "bytecode compiled at install" test -d "$VENV/lib/python$pyver/site-packages/llmedge/__pycache__"
cache=$(echo "$VENV"/lib/python*/site-packages/twisted/plugins/dropin.cache)
check "Twisted's plugin cache built at install" test -f "$cache"
check "llmedge.service enabled (symlink, for when systemd runs)" \
    test -L /etc/systemd/system/multi-user.target.wants/llmedge.service
check "llmedge.socket not enabled" absent /etc/systemd/system/sockets.target.wants/llmedge.socket

phase "systemd-analyze verify"
if systemd-analyze verify "$UNIT" /lib/systemd/system/llmedge.socket; then
    ok "systemd-analyze verify llmedge.service llmedge.socket"
else
    fail "systemd-analyze verify"
fi
# The drop-in for socket activation, applied to a copy of the unit.
mkdir -p "$work/units/llmedge.service.d"
cp "$UNIT" /lib/systemd/system/llmedge.socket "$work/units/"
cp /usr/share/doc/llmedge/examples/socket-activation.conf "$work/units/llmedge.service.d/"
check "systemd-analyze verify, with the socket-activation drop-in" \
    systemd-analyze verify "$work/units/llmedge.service"
systemd-analyze security --offline=true "$UNIT" 2>/dev/null | tail -1 || true

phase "the venv, as the llmedge user"
as_llmedge() { setpriv --reuid=llmedge --regid=llmedge --init-groups -- "$@"; }
touch -d '-1 second' "$work/marker"
if (cd / && as_llmedge "$VENV/bin/twistd" --help) > "$work/twistd-help" 2>&1 &&
        grep -qE '^ +llmedge +An edge proxy' "$work/twistd-help"; then
    ok "twistd --help lists llmedge"
else
    cat "$work/twistd-help"; fail "twistd --help lists llmedge"
fi
writable=$(cd / && as_llmedge find "$VENV" /etc/llmedge /etc/default/llmedge -writable -print 2>/dev/null | head)
check "nothing in the venv or the configuration is writable by llmedge${writable:+: $writable}" test -z "$writable"
check "llmedge can read api-keys.env, not initial-api-key" \
    bash -c "cd / && setpriv --reuid=llmedge --regid=llmedge --init-groups -- cat /etc/llmedge/api-keys.env &&
             ! setpriv --reuid=llmedge --regid=llmedge --init-groups -- cat /etc/llmedge/initial-api-key"
check_config() {
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin bash -c 'set -a; . /etc/default/llmedge;
        . /etc/llmedge/api-keys.env; set +a; cd / &&
        setpriv --reuid=llmedge --regid=llmedge --init-groups -- llmedge check-config -c /etc/llmedge/llmedge.toml'
}
if check_config > "$work/check-config" 2>&1; then
    ok "llmedge check-config -c /etc/llmedge/llmedge.toml exits 0"
else
    cat "$work/check-config"; fail "llmedge check-config -c /etc/llmedge/llmedge.toml"
fi

phase "the daemon, as its unit runs it"
start_daemon "$work/daemon.log"
if wait_healthy; then
    ok "/health answers on 127.0.0.1:8080"
else
    cat "$work/daemon.log"; abort "the daemon did not answer /health within 30 s"
fi
check "the daemon runs as llmedge:llmedge" test "$(ps -o user=,group= -p "$daemon" | xargs)" = "llmedge llmedge"
check "... with no capabilities" grep -q '^CapEff:[[:space:]]*0000000000000000$' "/proc/$daemon/status"
check "... listening on loopback only" bash -c "ss -Hltn 'sport = :8080' | awk '{print \$4}' | grep -qx '127.0.0.1:8080'"
if LLMEDGE_KEY=$(cat /etc/llmedge/initial-api-key) "$PY" - <<'EOF'
import os
import openai

key = os.environ["LLMEDGE_KEY"]
client = openai.OpenAI(base_url="http://127.0.0.1:8080/v1", api_key=key, max_retries=0)
reply = client.chat.completions.create(
    model="mock", messages=[{"role": "user", "content": "hi from the deb test"}])
assert reply.choices[0].message.content == "You said: hi from the deb test", reply
text = "".join(chunk.choices[0].delta.content or "" for chunk in client.chat.completions.create(
    model="mock", messages=[{"role": "user", "content": "stream"}], stream=True) if chunk.choices)
assert text == "You said: stream", text
assert [m.id for m in client.models.list()] == ["mock"]
try:
    openai.OpenAI(base_url="http://127.0.0.1:8080/v1", api_key="wrong", max_retries=0).models.list()
except openai.AuthenticationError:
    pass
else:
    raise AssertionError("a wrong key was accepted")
print("openai SDK: chat, stream, models with the generated key; wrong key refused")
EOF
then
    ok "chat completion with the official openai SDK and the generated key"
else
    fail "chat completion with the official openai SDK and the generated key"
fi
check "logs are JSON lines on stdout, with the listener" "$PY" -c '
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert any(l["msg"] == "llmedge listening on tcp:127.0.0.1:8080" for l in lines)
assert any(l.get("logger") == "llmedge.access" and l.get("status") == 200 for l in lines)
' "$work/daemon.log"
check "no error in the log (plugin cache, tracebacks)" \
    bash -c "! grep -qiE 'Traceback|plugin cache|\"level\": \"(error|critical)\"' '$work/daemon.log'"
stop_daemon
check "SIGTERM stops it: drained, exit status 0 (status $status)" test "$status" = 0
changed=$(find "$VENV" -newer "$work/marker" ! -path '*/__pycache__' | head)
check "nothing in the venv changed at run time${changed:+: $changed}" test -z "$changed"

# `systemctl reload` sends SIGHUP: the daemon must take it and keep serving.
start_daemon "$work/daemon-hup.log"
wait_healthy || abort "the daemon did not come up again"
{ kill -HUP "$daemon"; sleep 1; } 2>/dev/null   # (quiet: bash reports a job ended by a signal)
if kill -0 "$daemon" 2>/dev/null && wait_healthy; then
    ok "SIGHUP (systemctl reload): the daemon keeps serving"
    stop_daemon
else
    status=0; { wait "$daemon"; } 2>/dev/null || status=$?; daemon=
    abort "SIGHUP (systemctl reload) ended the daemon (status $status)"
fi

# WORKERS=2 in /etc/default/llmedge: a supervisor and two workers, all as llmedge.
cp /etc/default/llmedge "$work/default.saved"
echo "WORKERS=2" >> /etc/default/llmedge
start_daemon "$work/daemon-workers.log"
wait_healthy || { cat "$work/daemon-workers.log"; abort "the daemon with WORKERS=2 did not answer /health"; }
for _ in $(seq 1 100); do
    [ "$(pgrep -u llmedge -f 'llmedge[.]worker' | wc -l)" = 2 ] && break; sleep 0.1
done
check "WORKERS=2: two worker processes, as llmedge" test "$(pgrep -u llmedge -f 'llmedge[.]worker' | wc -l)" = 2
if LLMEDGE_KEY=$(cat /etc/llmedge/initial-api-key) "$PY" - <<'EOF'
import os
import openai

client = openai.OpenAI(base_url="http://127.0.0.1:8080/v1",
                       api_key=os.environ["LLMEDGE_KEY"], max_retries=0)
for _ in range(20):
    reply = client.chat.completions.create(
        model="mock", messages=[{"role": "user", "content": "workers"}])
    assert reply.choices[0].message.content == "You said: workers", reply
EOF
then
    ok "WORKERS=2: 20 chat completions with the openai SDK"
else
    fail "WORKERS=2: 20 chat completions with the openai SDK"
fi
stop_daemon
check "WORKERS=2: SIGTERM stops supervisor and workers (status $status)" \
    bash -c "[ '$status' = 0 ] && ! pgrep -u llmedge -f 'llmedge[.]worker'"
check "WORKERS=2: no error in the log" \
    bash -c "! grep -qiE 'Traceback|\"level\": \"(error|critical)\"' '$work/daemon-workers.log'"
cp "$work/default.saved" /etc/default/llmedge

phase "upgrade: reinstall, then a newer version"
key_before=$(sha256sum /etc/llmedge/api-keys.env /etc/llmedge/initial-api-key)
echo "# changed by the admin (deb test)" >> /etc/llmedge/llmedge.toml
(cd dist && apt-get install -y -qq --reinstall "./$(basename "$deb")") > "$work/reinstall.log" 2>&1 ||
    { cat "$work/reinstall.log"; abort "apt-get install --reinstall"; }
check "reinstall: installed" installed
check "reinstall: no new key generated" bash -c "! grep -q 'generated an API key' '$work/reinstall.log'"
check "reinstall: the key files unchanged" test "$(sha256sum /etc/llmedge/api-keys.env /etc/llmedge/initial-api-key)" = "$key_before"
check "reinstall: the admin's change to llmedge.toml kept" grep -q "changed by the admin" /etc/llmedge/llmedge.toml
check "reinstall: plugin cache and bytecode rebuilt" \
    bash -c "[ -f '$cache' ] && [ -d '$VENV/lib/python$pyver/site-packages/llmedge/__pycache__' ]"
# A newer version: the same package under version $version+deb.test.
dpkg-deb -R "$deb" "$work/newer"
sed -i "s/^Version: .*/Version: ${version}+deb.test/" "$work/newer/DEBIAN/control"
dpkg-deb --root-owner-group -Zgzip -z1 -b "$work/newer" "$work/llmedge_newer_${arch}.deb" >/dev/null
apt-get install -y -qq "$work/llmedge_newer_${arch}.deb" > "$work/upgrade.log" 2>&1 ||
    { cat "$work/upgrade.log"; abort "upgrade to ${version}+deb.test"; }
check "upgrade: version ${version}+deb.test installed" \
    test "$(dpkg-query -W -f='${Version} ${db:Status-Status}' llmedge)" = "${version}+deb.test installed"
check "upgrade: the key files unchanged" test "$(sha256sum /etc/llmedge/api-keys.env /etc/llmedge/initial-api-key)" = "$key_before"
check "upgrade: the admin's change to llmedge.toml kept, no .dpkg-new" \
    bash -c "grep -q 'changed by the admin' /etc/llmedge/llmedge.toml && ! ls /etc/llmedge/*.dpkg-* 2>/dev/null"
if check_config >/dev/null 2>&1; then ok "upgrade: check-config still passes"; else fail "upgrade: check-config"; fi
# Back to the built version (a downgrade: the same scripts run).
(cd dist && apt-get install -y -qq --allow-downgrades "./$(basename "$deb")") > "$work/downgrade.log" 2>&1 ||
    { cat "$work/downgrade.log"; abort "back to $version"; }
check "back at $version" test "$(dpkg-query -W -f='${Version}' llmedge)" = "$version"

phase "apt-get remove (keeps the configuration)"
apt-get remove -y -qq llmedge > "$work/remove.log" 2>&1 || { cat "$work/remove.log"; abort "apt-get remove"; }
check "remove: state config-files" test "$(dpkg-query -W -f='${db:Status-Status}' llmedge)" = config-files
check "remove: /etc/llmedge kept, with the keys and the admin's change" \
    bash -c "[ -f /etc/llmedge/api-keys.env ] && [ -f /etc/llmedge/initial-api-key ] &&
             grep -q 'changed by the admin' /etc/llmedge/llmedge.toml && [ -f /etc/default/llmedge ]"
check "remove: the venv is gone" absent "$VENV"
check "remove: /usr/bin/llmedge is gone" absent /usr/bin/llmedge
check "remove: the unit is gone" absent "$UNIT"
check "remove: the user is kept" getent passwd llmedge
(cd dist && apt-get install -y -qq "./$(basename "$deb")") > "$work/reinstall2.log" 2>&1 ||
    { cat "$work/reinstall2.log"; abort "install after remove"; }
check "install after remove: the kept key is used, no new one" \
    bash -c "! grep -q 'generated an API key' '$work/reinstall2.log' &&
             [ \"\$(sha256sum /etc/llmedge/api-keys.env /etc/llmedge/initial-api-key)\" = '$key_before' ]"
check "install after remove: the unit is unmasked and enabled" \
    bash -c "! [ -L /etc/systemd/system/llmedge.service ] &&
             [ -L /etc/systemd/system/multi-user.target.wants/llmedge.service ]"

phase "apt-get purge (removes everything)"
apt-get purge -y -qq llmedge > "$work/purge.log" 2>&1 || { cat "$work/purge.log"; abort "apt-get purge"; }
for path in "$VENV" /opt/venvs /etc/llmedge /etc/default/llmedge /var/lib/llmedge /usr/bin/llmedge \
            "$UNIT" /lib/systemd/system/llmedge.socket /etc/systemd/system/llmedge.service \
            /etc/systemd/system/llmedge.socket \
            /etc/systemd/system/multi-user.target.wants/llmedge.service \
            /usr/share/doc/llmedge /usr/share/man/man1/llmedge.1.gz; do
    check "purge: no $path" absent "$path"
done
check "purge: no deb-systemd-helper state" \
    bash -c "! find /var/lib/systemd/deb-systemd-helper-enabled /var/lib/systemd/deb-systemd-helper-masked \
                 -name '*llmedge*' 2>/dev/null | grep -q ."
check "purge: no llmedge user" bash -c "! getent passwd llmedge"
check "purge: no llmedge group" bash -c "! getent group llmedge"
check "purge: dpkg knows no llmedge" \
    bash -c "! dpkg-query -W -f='\${db:Status-Status}' llmedge 2>/dev/null | grep -qv '^not-installed\$'"

phase_end=$(date +%s.%N)
elapsed "$phase_name" "$phase_start" "$phase_end"
elapsed total "$started" "$phase_end"
if [ "$failures" -ne 0 ]; then
    echo "deb-test: $failures check(s) failed"
    exit 1
fi
echo "deb-test: every check passed"
