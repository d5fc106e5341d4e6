#!/bin/sh
# (27) mailpull -d with idle = yes: an IMAP account keeps an IDLE connection
# on INBOX; a message added to the real Dovecot arrives in under 5 s although
# the poll interval is 10 minutes, and again for a second one (IDLE goes on
# after each arrival); with idle_folders, one saved into another folder
# (doveadm save) arrives in that folder's Maildir++ subfolder. SIGTERM
# stops the daemon and its IDLE threads at once.
set -eu
. "$MP_LIB"

ADM="doveadm -c $DC_DIR/dovecot.conf"
$ADM mailbox create -u "$MP_USER" Lists || fail "doveadm mailbox create Lists"
{ conf_general; conf_account test protocol=imap "port=$DC_IMAPS" idle=yes \
	"folders=INBOX, Lists" "idle_folders=INBOX, Lists"; } >"$T/c.ini"
chmod 600 "$T/c.ini"
"$BIN" -d -i 600 -v -c "$T/c.ini" >"$T/d.out" 2>"$T/d.err" &
DPID=$!
trap 'kill -9 $DPID 2>/dev/null || true' EXIT
i=0
while ! { grep -q 'IDLE on INBOX' "$T/d.err" && grep -q 'IDLE on Lists' "$T/d.err"; } && [ $i -lt 100 ]; do
	sleep 0.1; i=$((i + 1))
done
grep -q 'IDLE on INBOX' "$T/d.err" || fail "no IDLE connection on INBOX after 10 s: $(tail -3 "$T/d.err" | tr '\n' '|')"
grep -q 'IDLE on Lists' "$T/d.err" || fail "no IDLE connection on Lists after 10 s: $(tail -3 "$T/d.err" | tr '\n' '|')"
sleep 0.5

arrive() { # N NAME: add a message, expect N in the Maildir within 5 s
	printf 'From: a@example.org\nSubject: %s\nMessage-ID: <%s.t27@x>\n\n%s\n' "$2" "$2" "$2" >"$T/$2.eml"
	t0=$(date +%s.%N)
	put_msgs "$T/$2.eml"
	i=0
	while [ "$(md_count "$T/Maildir")" -lt "$1" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
	[ "$(md_count "$T/Maildir")" -ge "$1" ] ||
		fail "$2 did not arrive within 5 s with IDLE: $(tail -3 "$T/d.err" | tr '\n' '|')"
	"$MP_PY" -c "import sys; print('%.1f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$t0" "$(date +%s.%N)"
}
s1=$(arrive 1 first)
s2=$(arrive 2 second)
grep -q 'new mail (IDLE)' "$T/d.err" || fail "no line saying IDLE saw new mail"
printf 'From: a@example.org\nSubject: list\nMessage-ID: <list.t27@x>\n\nlist\n' >"$T/list.eml"
t0=$(date +%s.%N)
$ADM save -u "$MP_USER" -m Lists <"$T/list.eml" || fail "doveadm save into Lists"
i=0
while [ "$(md_count "$T/Maildir/.Lists" 2>/dev/null || echo 0)" -lt 1 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
[ "$(md_count "$T/Maildir/.Lists")" -ge 1 ] || fail "a message in Lists did not arrive within 5 s (idle_folders)"
s3=$("$MP_PY" -c "import sys; print('%.1f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$t0" "$(date +%s.%N)")
t0=$(date +%s)
kill -TERM $DPID
i=0
while kill -0 $DPID 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
kill -0 $DPID 2>/dev/null && fail "the daemon with an IDLE thread did not stop within 5 s of SIGTERM"
rc=0
wait $DPID || rc=$?
[ "$rc" -eq 0 ] || fail "exit $rc after SIGTERM"
echo "RESULT: IDLE: new mail arrived in ${s1} s and ${s2} s (interval 600 s), in Lists in ${s3} s (idle_folders); SIGTERM stopped the daemon and its IDLE threads"
