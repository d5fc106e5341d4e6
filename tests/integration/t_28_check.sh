#!/bin/sh
# (28) mailpull --check: the config is read, each account logs in (and out)
# and each target is opened; nothing is taken. A good account says so and
# exits 0; a wrong password is 77 with the server named; a target that
# cannot be made is 73; an unreachable server 69; a broken config 78.
set -eu
. "$MP_LIB"

put_dir "$MSGS/small"
n=$(count_files "$MSGS/small")
mkconf "$T/good.ini"
run_mp --check -c "$T/good.ini"
expect_rc 0 "--check of a good account"
grep -q 'test: localhost:[0-9]*: login ok' "$T/err" || fail "no 'login ok' line: $(cat "$T/err" | tr '\n' '|')"
grep -q 'test: 1 target ready' "$T/err" || fail "no 'target ready' line: $(cat "$T/err" | tr '\n' '|')"
[ "$(server_count)" -eq "$n" ] || fail "--check changed the server"
[ ! -e "$T/state.db" ] || [ "$(sqlite3 "$T/state.db" 'select count(*) from seen' 2>/dev/null || echo 0)" -eq 0 ] ||
	fail "--check recorded messages"

mkconf "$T/pw.ini" "password=wrong-$MP_PASS"
run_mp --check -c "$T/pw.ini"
expect_rc 77 "--check with a wrong password"
grep -q 'test: localhost:[0-9]*: .*\(refused\|failed\)' "$T/err" || fail "no line naming the refused login: $(cat "$T/err" | tr '\n' '|')"

touch "$T/notadir"
mkconf "$T/tg.ini" "deliver=maildir:$T/notadir/Mail"
run_mp --check -c "$T/tg.ini"
expect_rc 73 "--check with a target that cannot be made"
grep -q "notadir" "$T/err" || fail "the target's problem is not named: $(cat "$T/err" | tr '\n' '|')"

mkconf "$T/down.ini" "port=$(free_port)"
run_mp --check -c "$T/down.ini"
expect_rc 69 "--check with nobody listening"

printf '[account x\n' >"$T/bad.ini"
chmod 600 "$T/bad.ini"
run_mp --check -c "$T/bad.ini"
expect_rc 78 "--check with a broken config"
echo "RESULT: --check: 0 with login ok and target ready, 77 wrong password, 73 target, 69 down, 78 config; nothing taken"
