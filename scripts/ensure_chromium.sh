#!/bin/sh
# Make sure a Chromium for the dashboard's browser tests (tests/test_dashboard.py) is on this machine.
#
# - SIGMA_CHROMIUM_PATH set: it must be an executable file; nothing is installed.
# - Otherwise a Chromium already installed is used (Debian's real binary first: /usr/bin/chromium is
#   only a wrapper script around /usr/lib/chromium/chromium).
# - Otherwise, as root with apt-get (CI, a fresh Debian machine): Debian's `chromium` package is
#   installed, quietly and non-interactively.
# - Otherwise: exit 1 with what to do.
#
# Prints the browser's path on success. Playwright's own browser download (`playwright install`) is
# never used: it cannot work on machines that reach only the package registries.
set -eu

say() { printf 'ensure_chromium: %s\n' "$*" >&2; }

if [ -n "${SIGMA_CHROMIUM_PATH:-}" ]; then
    if [ -f "$SIGMA_CHROMIUM_PATH" ] && [ -x "$SIGMA_CHROMIUM_PATH" ]; then
        printf '%s\n' "$SIGMA_CHROMIUM_PATH"
        exit 0
    fi
    say "SIGMA_CHROMIUM_PATH=$SIGMA_CHROMIUM_PATH is not an executable file"
    exit 1
fi

find_chromium() {
    for candidate in /usr/lib/chromium/chromium /usr/lib/chromium-browser/chromium-browser; do
        if [ -f "$candidate" ] && [ -x "$candidate" ]; then
            printf '%s\n' "$candidate"
            return 0
        fi
    done
    for name in chromium chromium-browser google-chrome-stable google-chrome; do
        if found=$(command -v "$name" 2>/dev/null); then
            printf '%s\n' "$found"
            return 0
        fi
    done
    return 1
}

if find_chromium; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    say "no Chromium found, needed by the dashboard's browser tests (tests/test_dashboard.py)."
    say "Install Debian's package as root (apt-get install chromium), or set SIGMA_CHROMIUM_PATH"
    say "to a Chromium or Chrome binary. (Not 'playwright install': its browser download is not used.)"
    exit 1
fi

say "installing Debian's chromium package with apt-get (once per machine)..."
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium; } >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    say "apt-get could not install chromium (see above)"
    exit 1
fi
rm -f "$log"

if find_chromium; then
    exit 0
fi
say "the chromium package was installed but no Chromium binary was found"
exit 1
