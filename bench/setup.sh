#!/bin/sh
# The bench's own tools (Debian/Ubuntu packages): haproxy, the native-proxy
# anchor, and wrk, the closed-loop load generator. Both are optional — without
# them the bench says "not measured" for HAProxy and uses its Python client —
# so a failed install is a note, not an error. Not part of CI.
missing=""
command -v haproxy >/dev/null 2>&1 || missing="$missing haproxy"
command -v wrk >/dev/null 2>&1 || missing="$missing wrk"
[ -z "$missing" ] && exit 0
if command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo -n"
    echo "bench: installing$missing (apt-get)"
    $SUDO apt-get install -y -qq $missing >/dev/null 2>&1 || \
        echo "bench: could not install$missing; continuing without (see bench/README.md)"
else
    echo "bench: no apt-get here; install$missing yourself for the full comparison"
fi
exit 0
