#!/usr/bin/env bash
# The Debian package on a fresh minimal system, the way a new user meets it: a Debian root made with
# debootstrap (minbase) from Debian's archive, in which, with a clean environment (env -i), it runs
# the README's apt-get line, `make deb`, `apt install ./build/deb/buildtail_*.deb`, the packaged
# `buildtail --version`, lintian on the built .deb, `check-config` on the packaged configuration, a
# short `run --dry-run` on a small Jenkins home that reports a build, then `apt remove` (which keeps the
# configuration, the token and the state) and `apt purge` (which deletes them). Prints the time each
# step took.
#
#   tools/fresh_root_test.sh bookworm|trixie
#
# Needs root and debootstrap; exits 77 (skipped) without them, non-zero on any failure. The base root
# (debootstrap's output, nothing added) is cached as a tarball in $BUILDTAIL_ROOT_CACHE
# (/var/cache/buildtail-ci) and made again when older than a week; the .debs apt downloads are kept
# there too, so a second run on the same machine skips debootstrap and the package downloads. PyPI is
# reached directly, as on a new machine: no pip configuration of this host goes into the root. The
# root only gets this host's site CAs (/usr/local/share/ca-certificates/*.crt), as provisioning
# installs them on a network that inspects TLS.
set -euo pipefail

DIST=${1:?usage: tools/fresh_root_test.sh bookworm|trixie}
REPO=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${BUILDTAIL_ROOT_CACHE:-/var/cache/buildtail-ci}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
case $DIST in
  bookworm) SUFFIX='~deb12' PY=python3.11 ;;
  trixie) SUFFIX='~deb13' PY=python3.13 ;;
  *) echo "fresh_root_test: unknown distribution $DIST (bookworm or trixie)" >&2; exit 2 ;;
esac
VERSION=$(sed -n '1s/^buildtail (\([^)]*\)).*/\1/p' "$REPO/debian/changelog")$SUFFIX

if [ "$(id -u)" -ne 0 ]; then echo "skipped: the fresh-root test needs root" >&2; exit 77; fi
if ! command -v debootstrap >/dev/null; then echo "skipped: debootstrap is not installed" >&2; exit 77; fi

# The README's install line, verbatim but for sudo (everything in the root runs as root).
APT_LINE=$(grep -m1 -E '^sudo apt-get install .*dh-virtualenv' "$REPO/README.md" | sed 's/^sudo //')
[ -n "$APT_LINE" ] || { echo "fresh_root_test: no 'sudo apt-get install ... dh-virtualenv' line in README.md" >&2; exit 1; }

mkdir -p "$CACHE/apt-$DIST"
ROOT=$(mktemp -d "/var/tmp/buildtail-root-$DIST.XXXXXX")
TIMES=()
MOUNTS=()

teardown() {
  local rc=$? m
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount "${MOUNTS[$i]}" 2>/dev/null || umount -l "${MOUNTS[$i]}"; done
  # never delete through a mount that is still there (the host's /dev)
  if findmnt -rn -o TARGET | grep -q "^$ROOT/"; then
    echo "fresh_root_test: mounts left under $ROOT; not deleting it" >&2
  elif [ -n "${KEEP_ROOT:-}" ]; then
    echo "fresh_root_test: root kept in $ROOT" >&2
  else
    rm -rf --one-file-system "$ROOT"
  fi
  echo "== $DIST: seconds per step"
  for m in "${TIMES[@]}"; do echo "  $m"; done
  [ "$rc" -eq 0 ] && echo "== $DIST: passed" || echo "== $DIST: FAILED (exit $rc)"
  exit "$rc"
}
trap teardown EXIT
trap 'exit 143' TERM INT HUP  # so that the EXIT trap unmounts and deletes the root

step() { # step NAME COMMAND...: runs it and records how long it took
  local name=$1 t0 rc=0
  shift
  echo "== $DIST: $name"
  t0=$(date +%s%N)
  "$@" || rc=$?
  local tenths=$((($(date +%s%N) - t0) / 100000000))
  TIMES+=("$(printf '%-14s %4d.%d' "$name" $((tenths / 10)) $((tenths % 10)))$([ $rc -eq 0 ] || echo "  (failed)")")
  return $rc
}

# A clean environment, as on a new machine: no variable of this host's (pip's index, proxies, venvs).
in_root() {
  env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    DEBIAN_FRONTEND=noninteractive chroot "$ROOT" /bin/sh -euc "$1"
}

base() {
  local tarball=$CACHE/$DIST-minbase.tar.gz
  if [ -n "$(find "$tarball" -mtime -7 2>/dev/null)" ]; then
    tar -C "$ROOT" --numeric-owner -xzf "$tarball"
  else
    debootstrap --variant=minbase "$DIST" "$ROOT" "$MIRROR" >"$ROOT.debootstrap.log" 2>&1 \
      || { tail -20 "$ROOT.debootstrap.log" >&2; rm -f "$ROOT.debootstrap.log"; return 1; }
    rm -f "$ROOT.debootstrap.log"
    tar -C "$ROOT" --numeric-owner -czf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
  fi
  local m
  mount -t proc proc "$ROOT/proc" && MOUNTS+=("$ROOT/proc")
  mount -t sysfs sysfs "$ROOT/sys" && MOUNTS+=("$ROOT/sys")
  mount --bind /dev "$ROOT/dev" && MOUNTS+=("$ROOT/dev")
  mount --bind /dev/pts "$ROOT/dev/pts" && MOUNTS+=("$ROOT/dev/pts")
  mount --bind "$CACHE/apt-$DIST" "$ROOT/var/cache/apt/archives" && MOUNTS+=("$ROOT/var/cache/apt/archives")
  cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
}

provision() { # what provisioning does before anyone logs in: the site's CAs
  in_root 'apt-get update -q && apt-get install -y -q --no-install-recommends ca-certificates'
  cp /usr/local/share/ca-certificates/*.crt "$ROOT/usr/local/share/ca-certificates/"
  in_root 'update-ca-certificates'
}

checkout() { # the checkout's files, as `git clone` would leave them (plus uncommitted changes)
  mkdir -p "$ROOT/root/buildtail"
  git -C "$REPO" ls-files -z --cached --others --exclude-standard \
    | (cd "$REPO" && tar --null --files-from=- --ignore-failed-read -cf -) | tar -xf - -C "$ROOT/root/buildtail"
}

installed_checks() {
  in_root "
    test \"\$(buildtail --version)\" = 'buildtail ${VERSION%%-*}'
    test \"\$(dpkg-query -W -f '\${Version}' buildtail)\" = '$VERSION'
    dpkg-query -W -f '\${Depends}\n' buildtail | tr ',' '\n' | grep -qx ' *$PY'
    test \"\$(readlink /opt/venvs/buildtail/bin/python)\" != ''
    /opt/venvs/buildtail/bin/python -c 'import sys; assert \"%d.%d\" % sys.version_info[:2] == \"${PY#python}\"'
  "
}

check_config() { # the packaged configuration passes once the token file and the Jenkins home exist
  in_root '
    cp -R /root/buildtail/examples/jenkins-home /var/lib/jenkins
    if CREDENTIALS_DIRECTORY=/etc/buildtail buildtail check-config --config /etc/buildtail/config.yaml 2>/root/cc.err; then
      echo "check-config passed without the token file" >&2; exit 1
    fi
    grep -q compass-api-token /root/cc.err || { cat /root/cc.err >&2; exit 1; }
    install -m 0600 /dev/null /etc/buildtail/compass-api-token
    echo not-a-real-token > /etc/buildtail/compass-api-token
    CREDENTIALS_DIRECTORY=/etc/buildtail buildtail check-config --config /etc/buildtail/config.yaml
  '
}

dry_run() { # the example home has two runs in progress; then a new build starts and finishes
  in_root '
    cat > /root/smoke.yaml <<EOF
host: fresh-root.example.org
state_dir: /var/lib/buildtail
metrics:
  listen: ""
sources:
  - type: jenkins
    home: /var/lib/jenkins
    stale_after: 3650d
EOF
    buildtail run --dry-run --config /root/smoke.yaml >/root/smoke.out 2>/root/smoke.err &
    pid=$!
    wait_for() { # a line matching $1 appears in the events, within 60 s
      i=0
      until grep -q "$1" /root/smoke.out; do
        i=$((i + 1))
        if [ $i -gt 600 ] || ! kill -0 $pid 2>/dev/null; then
          echo "no event matching $1" >&2; cat /root/smoke.out /root/smoke.err >&2; kill $pid || true; exit 1
        fi
        sleep 0.1
      done
    }
    wait_for "\"state\": *\"IN_PROGRESS\""
    (cd /root/buildtail && python3 -m tools.fake_jenkins --home /var/lib/jenkins build fresh-root --duration 1)
    wait_for "\"state\": *\"SUCCESSFUL\""
    kill -INT $pid
    wait $pid
    grep -c pipelineId /root/smoke.out
    test -f /var/lib/buildtail/buildtail.sqlite3
  '
}

remove() { # remove keeps the configuration, the token and the state; the program goes
  in_root '
    apt-get remove -y -q buildtail
    dpkg-query -W -f "\${db:Status-Abbrev}\n" buildtail | grep -q "^rc"
    test -f /etc/buildtail/config.yaml -a -f /etc/buildtail/compass-api-token -a -f /var/lib/buildtail/buildtail.sqlite3
    test ! -e /opt/venvs/buildtail -a ! -e /usr/bin/buildtail
  '
}

purge() { # purge deletes them too
  in_root '
    apt-get purge -y -q buildtail
    ! dpkg-query -W -f "\${db:Status-Abbrev}\n" buildtail 2>/dev/null | grep -q .
    test ! -e /etc/buildtail -a ! -e /var/lib/buildtail
  '
}

step base base
step provision provision
step checkout checkout
step apt-line in_root "$APT_LINE"
step make-deb in_root 'cd /root/buildtail && git init -q && make deb'
step install in_root 'cd /root/buildtail && apt install -y -q ./build/deb/buildtail_*.deb'
step version installed_checks
step lintian in_root 'apt-get install -y -q --no-install-recommends lintian >/dev/null &&
  lintian --pedantic --display-info --fail-on error,warning /root/buildtail/build/deb/buildtail_*.deb'
step check-config check_config
step dry-run dry_run
step remove remove
step purge purge
