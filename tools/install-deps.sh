#!/bin/sh
# Install what memrec/memana need on Debian 12 (bookworm). Idempotent; prints
# nothing and runs no apt when every package is already installed. With
# --bench, also heaptrack (the benchmark's reference). chromium: the tests
# open memana's HTML report in headless Chromium (tests/tools/browser_check.py).
# This is the single place that knows the project's dependencies.
set -eu

PKGS="gcc g++ make pkg-config libc6-dev
libzstd-dev libunwind-dev libsqlite3-dev libdw-dev libelf-dev
libcmocka-dev sqlite3 python3 perl
chromium"
# --bench: also what `make bench` compares against.
[ "${1:-}" = "--bench" ] && PKGS="$PKGS heaptrack"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

echo "install-deps: installing:$missing" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
