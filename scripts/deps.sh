#!/bin/sh
# deps.sh installs, idempotently and only what is missing, the Debian
# packages onecard needs to build and test. Run as root on Debian 12 (or
# through sudo); as another user it only reports what is missing.
set -eu

# Packages by purpose:
#   build:  gcc, pkg-config and libpcsclite-dev (cgo for github.com/ebfe/scard)
#   test:   pcscd and vsmartcard-vpcd (real PC/SC stack with virtual readers),
#           pcsc-tools and opensc (standard tools the virtual card must answer),
#           socat (pty pairs), openssl (SM2/SM3/SM4 interop),
#           postgresql (the hub's shared ledger store)
#   dll:    gcc-mingw-w64-i686, gcc-mingw-w64-x86-64 (cross-compile
#           SSCardDriver.dll, `make dll`; they bring binutils-mingw-w64)
PACKAGES="${ONECARD_DEPS:-gcc pkg-config libpcsclite-dev pcscd vsmartcard-vpcd pcsc-tools opensc socat openssl ca-certificates postgresql chromium fonts-noto-cjk gcc-mingw-w64-i686 gcc-mingw-w64-x86-64}"

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done

if [ -z "$missing" ]; then
	echo "deps: all present"
	exit 0
fi

echo "deps: installing:$missing"
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		SUDO=sudo
	else
		echo "deps: not root and no sudo; install as root: apt-get install$missing" >&2
		exit 1
	fi
else
	SUDO=
fi

export DEBIAN_FRONTEND=noninteractive
# Refresh the package lists at most once per hour.
stamp=/var/lib/apt/periodic/onecard-update-stamp
if [ ! -f "$stamp" ] || [ -n "$(find "$stamp" -mmin +60 2>/dev/null)" ]; then
	$SUDO apt-get update -qq
	$SUDO mkdir -p "$(dirname "$stamp")" && $SUDO touch "$stamp"
fi
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
# The Debian package may start pcscd through its init script; tests start
# their own pcscd (internal/pcsctest), so stop a daemon we just caused.
if command -v pcscd >/dev/null 2>&1 && [ -f /run/pcscd/pcscd.pid ] && [ -n "${ONECARD_STOP_PCSCD:-1}" ]; then
	$SUDO pkill -x pcscd 2>/dev/null || true
fi
echo "deps: done"
