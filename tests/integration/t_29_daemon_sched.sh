#!/bin/sh
# (29) The daemon's schedule: a slow poll of one account (an MDA that takes
# 20 s) does not hold up the others: new mail for a second account arrives
# at that account's interval (10 s) while the slow poll is still running.
set -eu
. "$MP_LIB"

printf 'From: a@example.org\nSubject: slow\nMessage-ID: <slow.t29@x>\n\nslow\n' >"$T/slow.eml"
dc_add "$DC_DIR" "$MP_RCPT" "$T/slow.eml"
cat >"$T/mda.sh" <<'EOS'
cat >/dev/null
sleep 20
touch "$1"
EOS
{ conf_general parallel=2
  conf_account fast
  conf_account slow "user=$MP_RCPT" "password=pw-r-t_29_daemon_sched-S3cret" \
	"deliver=mda:sh $T/mda.sh $T/slow.done"; } >"$T/c.ini"
chmod 600 "$T/c.ini"
"$BIN" -d -i 10 -c "$T/c.ini" >"$T/d.out" 2>"$T/d.err" &
DPID=$!
trap 'kill -9 $DPID 2>/dev/null || true' EXIT
sleep 1
printf 'From: a@example.org\nSubject: fast\nMessage-ID: <fast.t29@x>\n\nfast\n' >"$T/fast.eml"
put_msgs "$T/fast.eml"
i=0
while [ "$(md_count "$T/Maildir")" -lt 1 ] && [ $i -lt 110 ]; do sleep 0.1; i=$((i + 1)); done
[ "$(md_count "$T/Maildir")" -ge 1 ] || fail "fast's mail did not arrive within its interval while slow was polled"
[ ! -e "$T/slow.done" ] || fail "test premise: the slow poll ended before fast's second poll"
kill -0 $DPID || fail "the daemon died"
# SIGHUP while the slow poll runs: re-read at once (the slow poll keeps
# the old configuration), and the fast account goes on being polled
kill -HUP $DPID
sleep 1
grep -q 'configuration re-read' "$T/d.err" || fail "SIGHUP waited for the slow poll to end"
printf 'From: a@example.org\nSubject: fast2\nMessage-ID: <fast2.t29@x>\n\nfast2\n' >"$T/fast2.eml"
put_msgs "$T/fast2.eml"
kill -USR1 $DPID
i=0
while [ "$(md_count "$T/Maildir")" -lt 2 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
[ "$(md_count "$T/Maildir")" -ge 2 ] || fail "after SIGHUP the fast account was not polled while the slow poll ran"
[ ! -e "$T/slow.done" ] || fail "test premise: the slow poll ended before the SIGHUP checks"
i=0
while [ ! -e "$T/slow.done" ] && [ $i -lt 250 ]; do sleep 0.1; i=$((i + 1)); done
[ -e "$T/slow.done" ] || fail "the slow MDA never finished"
kill -TERM $DPID
i=0
while kill -0 $DPID 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
kill -0 $DPID 2>/dev/null && fail "the daemon did not stop"
echo "RESULT: a 20 s poll of one account did not delay the other's 10 s schedule, nor a SIGHUP re-read"
