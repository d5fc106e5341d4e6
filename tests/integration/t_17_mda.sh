#!/bin/sh
# (17) deliver = mda:COMMAND over POP3S. Every message reaches the command
# byte-exact with LF line ends (the awkward set and 20 MB); keep = no deletes
# on the server only what the MDA took (exit 0). An MDA that exits 75 for
# one message leaves it on the server and mailpull exits 75; a later run
# with a working MDA delivers it, once. %F hands the Return-Path to the
# command as one literal word: header text never runs.
set -eu
. "$MP_LIB"

# mda.sh BOX SENDER: store stdin as BOX/new/NAME (via BOX/tmp/), append
# SENDER to BOX.senders; exit 75 for a message holding TEMPFAIL-ME unless
# BOX.fixed exists.
cat >"$T/mda.sh" <<'EOF'
box=$1
mkdir -p "$box/tmp" "$box/new" "$box/cur"
f=$(mktemp "$box/tmp/m.XXXXXX") || exit 75
cat >"$f" || exit 75
if grep -q TEMPFAIL-ME "$f" && [ ! -e "$box.fixed" ]; then
	rm -f "$f"
	echo "mda.sh: not today" >&2
	exit 75
fi
printf '%s\n' "$2" >>"$box.senders"
mv "$f" "$box/new/${f##*/}"
EOF

# ---- 1: the awkward set, byte-exact, deleted after the MDA took it
put_dir "$MSGS/awk"
n=$(count_files "$MSGS/awk")
[ "$(server_count)" -eq "$n" ] || fail "setup: server holds $(server_count), expected $n"
mkconf "$T/c1.ini" keep=no "deliver=mda:sh $T/mda.sh $T/box1 %F"
run_mp -c "$T/c1.ini"
expect_rc 0 "awkward set through the MDA"
assert_maildir "$MSGS/awk" "$T/box1" "awkward set through the MDA"
[ "$(server_count)" -eq 0 ] || fail "keep = no left $(server_count) of $n on the server"
# %F: the Return-Path, or MAILER-DAEMON for the one message without one
[ "$(sort "$T/box1.senders" | uniq -c | awk '{ print $1 " " $2 }' | tr '\n' '|')" = \
    "1 MAILER-DAEMON|$((n - 1)) sender@example.org|" ] ||
	fail "%F was not the Return-Path: $(sort "$T/box1.senders" | uniq -c | tr '\n' '|')"

# ---- 2: exit 75 for one message; a hostile Return-Path
mkdir -p "$T/src2"
cp "$MSGS/small"/* "$T/src2/"
hostile="\$(touch $T/pwned1)\`touch $T/pwned2\`'\$(touch $T/pwned3)'\";touch $T/pwned4;\"@evil.example"
printf 'Return-Path: <%s>\nFrom: %s\nSubject: %s\nMessage-ID: <tempfail.%s@t17>\n\nTEMPFAIL-ME\n' \
	"$hostile" "$hostile" "$hostile" "$$" >"$T/src2/zz-tempfail.eml"
put_dir "$MSGS/small"
put_msgs "$T/src2/zz-tempfail.eml"
n2=$(count_files "$T/src2")
mkconf "$T/c2.ini" keep=no "deliver=mda:sh $T/mda.sh $T/box2 %F"
run_mp -c "$T/c2.ini"
expect_rc 75 "MDA exiting 75 for one message"
grep -q 'exited 75 (temporary failure)' "$T/err" ||
	fail "no clear message for exit 75: $(head -3 "$T/err" | tr '\n' '|')"
grep -q 'mda: mda.sh: not today' "$T/err" ||
	fail "the MDA's stderr is not in our log: $(head -3 "$T/err" | tr '\n' '|')"
# The fetch stops at the failure: every message is in the box (once) or
# still on the server, and the refused one is on the server only.
srv=$(dc_maildir "$DC_DIR" "$MP_USER")
for f in "$T/src2"/*; do
	mid=$(grep -m1 -i '^Message-ID:' "$f")
	if grep -rqF "$mid" "$T/box2/new"; then
		[ "$(grep -rlF "$mid" "$T/box2/new" | wc -l)" -eq 1 ] ||
			fail "$(basename "$f") arrived twice"
	else
		grep -rqF "$mid" "$srv" || fail "$(basename "$f") is lost: not delivered, not on the server"
	fi
done
! grep -rqF TEMPFAIL-ME "$T/box2/new" || fail "the message the MDA refused (75) was delivered"
grep -rqF TEMPFAIL-ME "$srv" || fail "the message the MDA refused (75) was deleted on the server"
got1=$(md_count "$T/box2")

touch "$T/box2.fixed"
run_mp -c "$T/c2.ini"
expect_rc 0 "a later run with the MDA fixed"
assert_maildir "$T/src2" "$T/box2" "after the retry"
[ "$(server_count)" -eq 0 ] || fail "keep = no left $(server_count) of $n2 on the server"
for i in 1 2 3 4; do
	[ ! -e "$T/pwned$i" ] || fail "header text from Return-Path ran as a command (pwned$i)"
done
grep -qxF "$hostile" "$T/box2.senders" ||
	fail "%F did not arrive as one literal word: $(tail -1 "$T/box2.senders")"
echo "RESULT: $n awkward messages byte-exact through an MDA; exit 75 kept ($got1 of $n2 delivered first) and retried; %F literal"
