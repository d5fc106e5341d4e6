#!/bin/sh
# (5) A wrong password: exit 77, one stderr line naming the account and the
# server, and nothing delivered.
set -eu
. "$MP_LIB"

put_dir "$MSGS/small"
mkconf "$T/c.ini" "password=not-the-password"
run_mp -q -c "$T/c.ini"
expect_rc 77 "wrong password (-q)"
lines=$(wc -l <"$T/err" | tr -d ' ')
[ "$lines" -eq 1 ] || fail "wrong password (-q): $lines stderr lines, expected 1: $(tr '\n' '|' <"$T/err" | cut -c1-300)"
grep -Eq "^mailpull: test: (localhost|127\.0\.0\.1|\[?::1\]?):$DC_POP3S: login refused" "$T/err" ||
	fail "wrong password: stderr line not like 'mailpull: test: HOST:$DC_POP3S: login refused: ...': $(cat "$T/err")"
grep -q "not-the-password" "$T/err" "$T/out" && fail "the (wrong) password appears in the output"
[ "$(md_count "$T/Maildir")" -eq 0 ] || fail "mail delivered despite refused login"

# without -q: still exactly one line reporting the failure
run_mp -c "$T/c.ini"
expect_rc 77 "wrong password"
n=$(grep -c "login refused" "$T/err" || true)
[ "$n" -eq 1 ] || fail "wrong password: $n 'login refused' lines on stderr, expected 1"
echo "RESULT: $(cat "$T/err")"
