#!/usr/bin/env bash
# The watcher service's packaging files: the systemd unit as systemd reads it (systemd-analyze
# verify, on the unit rewritten to the build tree's program), the sysusers.d file, the default
# config, and the Debian maintainer scripts: valid sh, and run through install, upgrade, remove
# and purge with the system tools stubbed and no systemd running (they must not fail there).
#   test_packaging.sh PACKAGING_DIR BUILD_TREE_UNIT FIRESIGHT_WATCH
set -euo pipefail
pkg=$(cd "$1" && pwd)
unit=$2
program=$3
fail() { echo "FAIL: $*" >&2; exit 1; }

# ---- the unit ------------------------------------------------------------------------------
grep -q '^ExecReload=/bin/kill -HUP \$MAINPID$' "$pkg/systemd/firesight-watch.service" || fail "ExecReload does not send SIGHUP"
for key in User=firesight Restart=on-failure StateDirectory=firesight NoNewPrivileges=yes ProtectSystem=strict \
           ProtectHome=yes PrivateTmp=yes SupplementaryGroups=video RestartPreventExitStatus=78; do
  grep -qx "$key" "$pkg/systemd/firesight-watch.service" || fail "the unit lacks $key"
done
if command -v systemd-analyze >/dev/null; then
  # verify needs the unit's name and its ExecStart program to exist: the build tree's copy.
  out=$(systemd-analyze verify "$unit" 2>&1) || fail "systemd-analyze verify: $out"
  # It reports some problems without failing; none may name our unit.
  if printf '%s\n' "$out" | grep -i 'firesight-watch.service' | grep -v -i 'Failed to create /init.scope\|dbus'; then
    fail "systemd-analyze verify complains about the unit"
  fi
  echo "systemd-analyze verify: ok"
  # The hardening, as systemd scores it (0 safe .. 10 exposed): 2.1 when written; above 3 means
  # a protection was dropped.
  if systemd-analyze security --help 2>/dev/null | grep -q -- '--offline'; then
    systemd-analyze security --offline=true --threshold=30 "$unit" >/dev/null 2>&1 ||
      fail "systemd-analyze security: exposure above 3.0: $(systemd-analyze security --offline=true "$unit" 2>&1 | tail -n 1)"
    echo "systemd-analyze security: $(systemd-analyze security --offline=true "$unit" 2>&1 | tail -n 1)"
  fi
else
  echo "systemd-analyze not installed (package systemd): unit not verified"
fi

# ---- sysusers.d and config ---------------------------------------------------------------
grep -q '^u firesight ' "$pkg/sysusers.d/firesight.conf" || fail "sysusers.d: no user firesight"
if command -v systemd-sysusers >/dev/null; then
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  mkdir -p "$root/etc"
  printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
  printf 'root:x:0:\nvideo:x:44:\n' >"$root/etc/group"
  systemd-sysusers --root="$root" "$pkg/sysusers.d/firesight.conf" >/dev/null 2>&1 || fail "systemd-sysusers refuses the file"
  grep -q '^firesight:' "$root/etc/passwd" || fail "systemd-sysusers did not create the user"
  grep -q '^video:x:44:firesight' "$root/etc/group" || fail "systemd-sysusers did not add firesight to video"
  echo "systemd-sysusers: ok"
fi

# The default config parses: what stops the program is the engine it names, not yet copied
# (exit 78, EX_CONFIG, which the unit does not restart).
set +e
# An arm64 build runs the program under qemu: $FIRESIGHT_TEST_EMULATOR (build-arm64-watch/run-arm64).
out=$(${FIRESIGHT_TEST_EMULATOR:+"$FIRESIGHT_TEST_EMULATOR"} "$program" --config "$pkg/watch.toml" 2>&1)
rc=$?
set -e
[ $rc -eq 78 ] || fail "firesight-watch with the default config: exit $rc, expected 78: $out"
printf '%s\n' "$out" | grep -q '/var/lib/firesight/model.fse: no such file or directory' || fail "default config: $out"
echo "default config: ok"

# ---- maintainer scripts ------------------------------------------------------------------
for s in postinst prerm postrm; do
  f="$pkg/deb/watch/$s"
  [ -x "$f" ] || fail "$s is not executable"
  sh -n "$f" || fail "$s: syntax"
  if command -v checkbashisms >/dev/null; then checkbashisms "$f" || fail "$s: bashisms"; fi
done
grep -qx /etc/firesight/watch.toml "$pkg/deb/watch/conffiles" || fail "the config is not a conffile"

# Stubs for every system tool the scripts call; each call is logged.
stubs=$(mktemp -d)
root=$(mktemp -d)
trap 'rm -rf "$stubs" "$root"' EXIT
for tool in adduser getent id systemd-sysusers deb-systemd-helper deb-systemd-invoke systemctl chown; do
  printf '#!/bin/sh\necho "%s $*" >>"%s/calls"\n' "$tool" "$stubs" >"$stubs/$tool"
  chmod +x "$stubs/$tool"
done
# getent: no such user yet (adduser creates it), the group video exists.
printf '#!/bin/sh\necho "getent $*" >>"%s/calls"\n[ "$1 $2" = "group video" ]\n' "$stubs" >"$stubs/getent"
run() {  # run SCRIPT ARGS...: under DPKG_ROOT, with the stubs first on PATH
  DPKG_ROOT=$root PATH="$stubs:$PATH" sh "$pkg/deb/watch/$1" "${@:2}" || fail "$1 $* exited with $?"
}
run postinst configure
grep -q '^adduser --system --group --home /var/lib/firesight' "$stubs/calls" || grep -q '^systemd-sysusers' "$stubs/calls" ||
  fail "postinst did not create the user: $(cat "$stubs/calls")"
[ -d "$root/var/lib/firesight" ] || fail "postinst did not make /var/lib/firesight"
grep -q '^deb-systemd-helper enable firesight-watch.service' "$stubs/calls" || fail "postinst did not enable the unit"
! grep -q '^deb-systemd-invoke' "$stubs/calls" || fail "postinst started the unit without systemd running"
run postinst configure 0.1.0      # upgrade
run prerm upgrade 0.1.0
run prerm remove
run postrm remove
grep -q '^deb-systemd-helper mask firesight-watch.service' "$stubs/calls" || fail "postrm remove did not mask the unit"
touch "$root/var/lib/firesight/events.db"
run postrm purge
[ ! -e "$root/var/lib/firesight" ] || fail "postrm purge left /var/lib/firesight"
grep -q '^deb-systemd-helper purge firesight-watch.service' "$stubs/calls" || fail "postrm purge did not purge the unit"
echo "maintainer scripts: ok"
