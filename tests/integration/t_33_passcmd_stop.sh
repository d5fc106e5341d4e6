#!/bin/sh
# (33) A daemon whose passcmd never answers (a prompt with nobody there)
# still stops at once on SIGTERM: the command and its children are killed,
# nothing is left running.
set -eu
. "$MP_LIB"

{ conf_general; conf_account test password=- "passcmd=sleep 3$$; echo x"; } >"$T/c.ini"
chmod 600 "$T/c.ini"
"$BIN" -d -c "$T/c.ini" >"$T/d.out" 2>"$T/d.err" &
DPID=$!
trap 'kill -9 $DPID 2>/dev/null || true; pkill -f "sleep 3$$" 2>/dev/null || true' EXIT
i=0
while ! pgrep -f "sleep 3$$" >/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
pgrep -f "sleep 3$$" >/dev/null || fail "test premise: the passcmd never started"
kill -TERM $DPID
i=0
while kill -0 $DPID 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
kill -0 $DPID 2>/dev/null && fail "the daemon did not stop within 5 s of SIGTERM while its passcmd hung"
sleep 0.2
! pgrep -f "sleep 3$$" >/dev/null || fail "the passcmd (or its sleep) was left running: $(pgrep -af "sleep 3$$" | head -2 | tr '\n' '|')"
echo "RESULT: SIGTERM stopped a daemon waiting on a passcmd in $((i / 10)).$((i % 10)) s; nothing left running"
