#!/bin/sh
# (24) mailpull -d: the first round takes what is there; mail added later
# arrives within the interval without a signal, and at once after SIGUSR1;
# SIGHUP with a broken config is reported and the daemon keeps running on
# the old one; a second account on a closed port does not hold up the good
# one and backs off; SIGTERM in the middle of a big poll stops cleanly
# (exit 0) and loses nothing: a later run finishes, every message once.
# Then --status shows the counts and the down account's last error.
set -eu
. "$MP_LIB"

DEAD_PORT=$(free_port)
mkdaemonconf() { # FILE [extra general lines]
	{ conf_general "parallel=2"
	  conf_account test keep=no
	  conf_account down "port=$DEAD_PORT" ca_file=- tls=none allow_plaintext=yes \
		"deliver=maildir:$T/down"; } >"$1"
	chmod 600 "$1"
}
mkdaemonconf "$T/c.ini"

wait_count() { # DIR N SECS
	i=0
	while [ "$(md_count "$1")" -lt "$2" ] && [ "$i" -lt $(($3 * 10)) ]; do
		sleep 0.1
		i=$((i + 1))
	done
	[ "$(md_count "$1")" -ge "$2" ]
}

put_dir "$MSGS/small"
n=$(count_files "$MSGS/small")
"$BIN" -d -i 10 -c "$T/c.ini" >"$T/d.out" 2>"$T/d.err" &
DPID=$!
trap 'kill -9 $DPID 2>/dev/null || true' EXIT
wait_count "$T/Maildir" "$n" 15 || fail "first round: $(md_count "$T/Maildir") of $n after 15 s"
kill -0 $DPID || fail "the daemon died: $(tail -3 "$T/d.err" | tr '\n' '|')"
grep -q "down: .*127.0.0.1:$DEAD_PORT\|down: .*localhost:$DEAD_PORT" "$T/d.err" ||
	fail "no error line for the down account: $(grep down "$T/d.err" | head -2 | tr '\n' '|')"

# ---- new mail within the interval (10 s), no signal
printf 'From: a@example.org\nSubject: later\nMessage-ID: <later.t24@x>\n\nlater\n' >"$T/later.eml"
put_msgs "$T/later.eml"
wait_count "$T/Maildir" $((n + 1)) 15 || fail "new mail did not arrive within the interval"

# ---- SIGUSR1 polls now
printf 'From: a@example.org\nSubject: now\nMessage-ID: <now.t24@x>\n\nnow\n' >"$T/now.eml"
put_msgs "$T/now.eml"
sleep 0.5
kill -USR1 $DPID
wait_count "$T/Maildir" $((n + 2)) 5 || fail "SIGUSR1 did not poll within 5 s"

# ---- SIGHUP with a broken config: reported, still running on the old one
cp "$T/c.ini" "$T/c.good"
printf '[account broken\n' >>"$T/c.ini"
kill -HUP $DPID
sleep 1
kill -0 $DPID || fail "a broken config on SIGHUP killed the daemon"
grep -q 'still running with the configuration read before' "$T/d.err" ||
	fail "no line saying the old configuration is kept: $(tail -3 "$T/d.err" | tr '\n' '|')"
grep -q 'section header without' "$T/d.err" || fail "the config error was not shown"
printf 'From: a@example.org\nSubject: hup\nMessage-ID: <hup.t24@x>\n\nhup\n' >"$T/hup.eml"
put_msgs "$T/hup.eml"
kill -USR1 $DPID
wait_count "$T/Maildir" $((n + 3)) 5 || fail "after a bad SIGHUP the daemon no longer polls"
# a good config again: re-read
cp "$T/c.good" "$T/c.ini"
kill -HUP $DPID
sleep 1
grep -q 'configuration re-read' "$T/d.err" || fail "a good config on SIGHUP was not re-read"
grep -q 'down: failed [0-9]* times\? in a row; next try in' "$T/d.err" ||
	fail "the down account's back-off was not said: $(grep down "$T/d.err" | tail -2 | tr '\n' '|')"

# ---- SIGTERM in the middle of a big poll
mkdir -p "$T/big"
"$MP_PY" "$TESTS/integration/gen_messages.py" realistic "$T/big" 600 50k --prefix t24big >/dev/null
BIGN=$(count_files "$T/big")
put_dir "$T/big"
before=$(md_count "$T/Maildir")
kill -USR1 $DPID
# SIGTERM as soon as the poll has begun a message (a file in tmp/)
i=0
while [ -z "$(ls -A "$T/Maildir/tmp")" ] && [ "$(md_count "$T/Maildir")" -eq "$before" ] && [ $i -lt 3000 ]; do
	i=$((i + 1))
done
kill -TERM $DPID
i=0
while kill -0 $DPID 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
kill -0 $DPID 2>/dev/null && fail "the daemon did not stop within 10 s of SIGTERM"
rc=0
wait $DPID || rc=$?
[ "$rc" -eq 0 ] || fail "the daemon exited $rc after SIGTERM (expected 0)"
grep -q 'stopped by a signal' "$T/d.err" || fail "no line saying it stopped"
got=$(md_count "$T/Maildir")
note "SIGTERM after $got of $((n + 3 + BIGN)) messages"
grep -q 'stopping (signal)' "$T/d.err" ||
	fail "test premise: the SIGTERM did not come in the middle of a poll ($got of $((n + 3 + BIGN)) delivered)"
run_mp -c "$T/c.ini" test
expect_rc 0 "a run after the SIGTERM"
mkdir -p "$T/all"
cp "$MSGS/small"/* "$T/big"/* "$T/later.eml" "$T/now.eml" "$T/hup.eml" "$T/all/"
assert_maildir "$T/all" "$T/Maildir" "after SIGTERM and a later run"
[ "$(server_count)" -eq 0 ] || fail "keep = no: $(server_count) left on the server"

# ---- --status: counts, and the down account's last error
run_mp -s -c "$T/c.ini"
expect_rc 0 "--status"
grep -q "^test: last poll [0-9-]* [0-9:]*, last success [0-9-]* [0-9:]*" "$T/out" ||
	fail "--status: no last poll line for test: $(head -2 "$T/out" | tr '\n' '|')"
grep -q "^  $((n + 3 + BIGN)) taken ([0-9]* bytes), 0 skipped, 0 deleted unread, 0 routed, 0 rejected, 0 pending" "$T/out" ||
	fail "--status: wrong counts: $(cat "$T/out" | tr '\n' '|')"
grep -q "^down: last poll .*, last success never" "$T/out" ||
	fail "--status: the down account: $(grep -A1 '^down' "$T/out" | tr '\n' '|')"
grep -q "^  last error: .*$DEAD_PORT" "$T/out" ||
	fail "--status: no last error for the down account: $(cat "$T/out" | tr '\n' '|')"
run_mp -s --json -c "$T/c.ini"
"$MP_PY" -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1])]' "$T/out" ||
	fail "--status --json is not JSON lines"
echo "RESULT: daemon: first round, new mail within the interval, SIGUSR1, bad SIGHUP kept the old config, good SIGHUP re-read, down account backed off; SIGTERM after $got of $((n + 3 + BIGN)) lost nothing; --status counts"
