# shellcheck shell=bash
# Shared bash helpers for Stoker's scripts. Source it; do not run it.
#   . "$(dirname "$0")/lib.sh"
# Callers set SCRIPT_NAME (used as the message prefix) before sourcing, or
# get the name of the calling script.

SCRIPT_NAME="${SCRIPT_NAME:-$(basename "$0")}"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC2034  # used by the scripts that source this file
DEV_DIR="$REPO_ROOT/.dev"

say()  { printf '%s: %s\n' "$SCRIPT_NAME" "$*"; }
warn() { printf '%s: warning: %s\n' "$SCRIPT_NAME" "$*" >&2; }
die()  { printf '%s: error: %s\n' "$SCRIPT_NAME" "$*" >&2; exit 1; }

have() { command -v "$1" >/dev/null 2>&1; }

# tcp_open HOST PORT: true if something accepts a TCP connection there.
tcp_open() {
  timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" >/dev/null 2>&1
}
tcp_closed() { ! tcp_open "$@"; }

# as_root CMD...: run CMD as root (directly, or through sudo).
as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif have sudo; then
    sudo "$@"
  else
    die "need root to run: $* (run as root, or install sudo)"
  fi
}

# apt_install PKG...: install Debian packages; 'apt-get update' runs once,
# before the first install of this script's run.
_APT_UPDATED=0
apt_install() {
  have apt-get || die "apt-get not found: install these packages by hand: $*"
  if [ "$_APT_UPDATED" -eq 0 ]; then
    say "apt-get update"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
      || die "apt-get update failed"
    _APT_UPDATED=1
  fi
  say "apt-get install -y $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    -o Dpkg::Use-Pty=0 "$@" </dev/null \
    || die "apt-get install $* failed"
}

# pid_alive FILE: true if FILE holds the pid of a live process.
pid_alive() {
  local pid
  [ -s "$1" ] || return 1
  pid="$(tr -dc '0-9' <"$1")"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# wait_until SECONDS CMD...: retry CMD every 0.5 s until it succeeds; false
# after SECONDS.
wait_until() {
  local secs="$1"; shift
  local deadline=$((SECONDS + secs))
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.5
  done
}
