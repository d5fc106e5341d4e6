#!/bin/sh
# (25) The progress line: on a terminal (a pty from script(1)) mailpull
# draws "ACCOUNT: n/total messages, bytes, rate[, ETA]" and clears it at
# the end; with stdout not a terminal, or with -q, it prints nothing there.
set -eu
. "$MP_LIB"
command -v script >/dev/null || fail "script(1) (bsdutils) is missing"

put_dir "$MSGS/small"
n=$(count_files "$MSGS/small")
mkconf "$T/c.ini"
# not a terminal: nothing on stdout
run_mp -c "$T/c.ini"
expect_rc 0 "a poll with stdout to a file"
[ ! -s "$T/out" ] || fail "stdout is not a terminal, yet it got: $(head -c 200 "$T/out")"

# a terminal: the progress line, redrawn in place, its last state (n/n) kept
mk() { { conf_general "state=$2"; conf_account test "deliver=maildir:$3"; } >"$1"; chmod 600 "$1"; }
mk "$T/c2.ini" "$T/state2.db" "$T/md2"
TERM=dumb timeout 60 script -qec "$BIN -c $T/c2.ini" "$T/tty.log" >/dev/null 2>&1 ||
	fail "the poll on a pty failed: $(tail -c 300 "$T/tty.log")"
grep -aq "test: [0-9]*/$n messages, [0-9.]* [kMG]*B, [0-9.]* [kMG]*B/s" "$T/tty.log" ||
	fail "no progress line on the terminal: $(tr '\r' '\n' <"$T/tty.log" | head -3 | tr '\n' '|')"
grep -aq "test: $n/$n messages" "$T/tty.log" || fail "the progress line never reached $n/$n"
grep -aq "$(printf '\r\033\\[K')" "$T/tty.log" || fail "the progress line is not redrawn in place"
[ "$(md_count "$T/md2")" -eq "$n" ] || fail "the poll on a pty did not deliver everything"

# -q on a terminal: no progress line
mk "$T/c3.ini" "$T/state3.db" "$T/md3"
TERM=dumb timeout 60 script -qec "$BIN -q -c $T/c3.ini" "$T/tty3.log" >/dev/null 2>&1 || true
! grep -aq "messages, " "$T/tty3.log" || fail "-q still drew the progress line"
[ "$(md_count "$T/md3")" -eq "$n" ] || fail "the -q poll on a pty did not deliver everything"
echo "RESULT: progress line on a pty (redrawn in place, ends at $n/$n); none to a file or with -q"
