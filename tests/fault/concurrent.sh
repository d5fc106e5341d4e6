#!/bin/sh
# Two mailpull runs at once against the real Dovecot.
#  1. Same account, started together: exactly one delivers, the other exits
#     75 saying another mailpull is polling the account; nothing doubled.
#  2. Two accounts A and B in one config, A busy in another process: a run
#     of the whole config skips A (75, the same message) and still polls B.
set -eu
. "$MP_LIB"

PIDS=""
trap 'for p in $PIDS; do kill "$p" 2>/dev/null || true; done' EXIT

# bg NAME ARGS...: mailpull in the background (bounded); sets BGPID
bg() {
	local name
	name=$1; shift
	timeout -k 5 60 "$BIN" "$@" >"$T/$name.out" 2>"$T/$name.err" &
	BGPID=$!
	PIDS="$PIDS $BGPID"
}
# reap PID WHAT: wait for it; sets RC
reap() {
	RC=0
	wait "$1" || RC=$?
	[ "$RC" -ne 124 ] && [ "$RC" -lt 128 ] || fail "$2: exit $RC (timed out or killed by a signal)"
}
err1() { tr '\n' '|' <"$1" | cut -c1-400; }

"$MP_PY" "$TESTS/integration/gen_messages.py" realistic "$T/c200" 200 4M --prefix conc >/dev/null
N=$(count_files "$T/c200")
put_dir "$T/c200"
# account B's own login, added now: Dovecot notices a changed passwd-file
# only after a while
USER_B="u_fault_concurrent_b"
PASS_B="pw-concurrent-b-S3cret"
dc_add_user "$DC_DIR" "$USER_B" "$PASS_B"
dc_add_dir "$DC_DIR" "$USER_B" "$MSGS/small"
NB=$(count_files "$MSGS/small")

# ------------------------------------------------------------ 1: same account
note "--- same account, two runs at once ($N messages)"
mkconf "$T/c.ini"
bg r1 -c "$T/c.ini"
p1=$BGPID
bg r2 -c "$T/c.ini"
p2=$BGPID
reap "$p1" "first run"
rc1=$RC
reap "$p2" "second run"
rc2=$RC
note "exits: $rc1 $rc2; stderr 1: $(err1 "$T/r1.err"); stderr 2: $(err1 "$T/r2.err")"
if [ "$rc1" -eq 0 ] && [ "$rc2" -eq 75 ]; then
	loser=r2
elif [ "$rc1" -eq 75 ] && [ "$rc2" -eq 0 ]; then
	loser=r1
else
	fail "same account: exits $rc1 and $rc2, expected one 0 and one 75; stderr: $(err1 "$T/r1.err") / $(err1 "$T/r2.err")"
fi
n=$(grep -c "^mailpull: test: .*another mailpull is polling" "$T/$loser.err" || true)
[ "$n" -eq 1 ] || fail "same account: the run that exited 75 does not say (once) that another mailpull is polling the account: $(err1 "$T/$loser.err")"
grep -Eq "delivered|deleted" "$T/$loser.err" && fail "same account: the skipped run reports a delivery: $(err1 "$T/$loser.err")"
assert_maildir "$T/c200" "$T/Maildir" "same account, two runs at once"
run_mp -c "$T/c.ini"
expect_rc 0 "a third run afterwards"
[ "$(md_count "$T/Maildir")" -eq "$N" ] || fail "a third run changed the Maildir: $(md_count "$T/Maildir") messages, expected $N"
R1="one run delivered $N, the other ($loser) exited 75"

# ------------------------------------------------------------ 2: A locked, B polled
note "--- account A busy in another process, account B polled"
{
	conf_general "state=$T/s2.db"
	conf_account A "deliver=maildir:$T/MA"
	conf_account B "user=$USER_B" "password=$PASS_B" "deliver=maildir:$T/MB"
} >"$T/c2.ini"
chmod 600 "$T/c2.ini"
# wait (bounded) until Dovecot knows B's login
i=0
{ conf_general "state=$T/s-check.db"; conf_account B "user=$USER_B" "password=$PASS_B" "deliver=maildir:$T/M-check"; } >"$T/cb.ini"
chmod 600 "$T/cb.ini"
until timeout 10 "$BIN" -q -n -c "$T/cb.ini" >/dev/null 2>"$T/check.err"; do
	i=$((i + 1))
	[ $i -lt 50 ] || fail "account B's login never worked: $(err1 "$T/check.err")"
	sleep 0.2
done

# process 1 polls only A; wait (bounded) until it holds A's lock
bg a -c "$T/c2.ini" A
pa=$BGPID
lock="$T/s2.db.A.lock"
i=0 held=0
while [ $i -lt 400 ]; do
	if [ -f "$lock" ]; then
		ino=$(stat -c %i "$lock")
		if grep -Eq "FLOCK .*:$ino " /proc/locks; then held=1; break; fi
	fi
	kill -0 "$pa" 2>/dev/null || break
	i=$((i + 1))
	sleep 0.005
done
[ $held -eq 1 ] || fail "process 1 never held A's lock ($lock); it exited? stderr: $(err1 "$T/a.err")"
bg all -c "$T/c2.ini"
pall=$BGPID
reap "$pall" "the run of both accounts"
rcall=$RC
still=0
kill -0 "$pa" 2>/dev/null && still=1
reap "$pa" "the run of account A"
rca=$RC
note "A alone: exit $rca; both: exit $rcall (A's run still going when it ended: $still); stderr: $(err1 "$T/all.err")"
[ "$rca" -eq 0 ] || fail "the run of A alone: exit $rca: $(err1 "$T/a.err")"
[ "$rcall" -eq 75 ] || fail "the run of both accounts while A is busy: exit $rcall, expected 75: $(err1 "$T/all.err")"
n=$(grep -c "^mailpull: A: .*another mailpull is polling" "$T/all.err" || true)
[ "$n" -eq 1 ] || fail "the run of both accounts does not say (once) that another mailpull is polling A: $(err1 "$T/all.err")"
grep -q "^mailpull: B: .*another mailpull" "$T/all.err" && fail "account B reported as locked: $(err1 "$T/all.err")"
assert_maildir "$MSGS/small" "$T/MB" "account B while A is locked"
assert_maildir "$T/c200" "$T/MA" "account A (delivered by its own run only)"

echo "RESULT: $R1; with A locked by another run, B got its $NB messages and the run exited 75"
