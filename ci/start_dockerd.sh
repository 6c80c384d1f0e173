#!/usr/bin/env bash
# Make a Docker engine answer on /var/run/docker.sock for the tests marked `docker`.
#
# Idempotent: an engine that already answers (a CI runner's, or one this script started) is
# left alone. Otherwise installs Debian's docker.io (the daemon; /usr/local/bin/docker may be a
# client only) and busybox-static (the static busybox the tests build their image from), then
# starts dockerd in the background: overlay2 first, the vfs storage driver if that fails.
# Exits non-zero with the reason (and the daemon's last log lines) if no engine answers in time.
set -uo pipefail

SOCK=/var/run/docker.sock
LOG=${SFLOWLAB_DOCKERD_LOG:-/var/log/sflowlab-dockerd.log}
WAIT_S=${SFLOWLAB_DOCKERD_WAIT_S:-30}
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

fail() { echo "start_dockerd: $*" >&2; exit 1; }

answers() {  # the engine answers a ping on the socket
  [ -S "$SOCK" ] && $SUDO curl -sf --max-time 2 --unix-socket "$SOCK" http://localhost/_ping \
    >/dev/null 2>&1
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
missing=()
for p in busybox-static curl; do installed "$p" || missing+=("$p"); done
if ! command -v dockerd >/dev/null 2>&1 && ! { installed curl && answers; }; then
  missing+=(docker.io)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "start_dockerd: installing ${missing[*]}"
  $SUDO apt-get update -qq || fail "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null || fail "could not install ${missing[*]}"
fi
if answers; then
  echo "start_dockerd: a Docker engine already answers on $SOCK"
  exit 0
fi
command -v dockerd >/dev/null 2>&1 || fail "no dockerd after installing docker.io"

# start dockerd with the given options; succeed once it answers, fail if it exits or times out
try_start() {
  echo "start_dockerd: starting dockerd $* (log: $LOG)"
  $SUDO sh -c "setsid dockerd $* >>'$LOG' 2>&1 </dev/null & echo \$! >/var/run/sflowlab-dockerd.pid"
  local pid; pid=$($SUDO cat /var/run/sflowlab-dockerd.pid)
  for _ in $(seq 1 $((WAIT_S * 5))); do
    answers && { echo "start_dockerd: dockerd (pid $pid) answers on $SOCK"; return 0; }
    $SUDO kill -0 "$pid" 2>/dev/null || { echo "start_dockerd: dockerd $* exited" >&2; return 1; }
    sleep 0.2
  done
  echo "start_dockerd: dockerd $* did not answer within ${WAIT_S}s; stopping it" >&2
  $SUDO kill "$pid" 2>/dev/null
  return 1
}

try_start || try_start --storage-driver=vfs || {
  echo "start_dockerd: last lines of $LOG:" >&2
  $SUDO tail -n 15 "$LOG" >&2
  fail "no Docker engine: the docker tests will be skipped"
}
