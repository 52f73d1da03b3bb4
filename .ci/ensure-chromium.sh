#!/usr/bin/env bash
# Install Debian's chromium if it is missing (used by the browser tests).
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then exit 0; fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "wslbench: chromium is missing and apt-get is not available; install Debian's chromium" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
echo "wslbench: installing Debian chromium for the browser tests..."
$SUDO apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
command -v chromium >/dev/null
