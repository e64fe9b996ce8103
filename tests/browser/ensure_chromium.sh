#!/usr/bin/env bash
# Make Debian's Chromium (/usr/bin/chromium) and a Korean font available for the browser tests.
# Installs from Debian's packages only (apt-get); never downloads a browser build of its own.
# Exit 0 when /usr/bin/chromium is there afterwards, non-zero (with the reason on stderr) if not.
set -uo pipefail

have_korean_font() { command -v fc-list >/dev/null && fc-list :lang=ko 2>/dev/null | grep -q "Noto Sans CJK"; }

if [ -x /usr/bin/chromium ] && have_korean_font; then
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "ensure_chromium: apt-get is not available; install Debian's 'chromium' package by hand" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
        echo "ensure_chromium: not root and no password-less sudo: cannot apt-get install chromium" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
log="$(mktemp)"
echo "ensure_chromium: installing Debian's chromium (and a Korean font) with apt-get …" >&2
$SUDO apt-get update -qq >"$log" 2>&1 || { cat "$log" >&2; echo "ensure_chromium: apt-get update failed" >&2; exit 1; }
if [ ! -x /usr/bin/chromium ]; then
    $SUDO apt-get install -y -qq chromium >>"$log" 2>&1 \
        || { tail -20 "$log" >&2; echo "ensure_chromium: apt-get install chromium failed" >&2; exit 1; }
fi
# Noto CJK: the Linux font of the pages' font stack (Korean renders as boxes without a CJK font)
have_korean_font || $SUDO apt-get install -y -qq fonts-noto-cjk >>"$log" 2>&1 || echo "ensure_chromium: no Korean font" >&2
rm -f "$log"
[ -x /usr/bin/chromium ]
