#!/bin/sh
# (10) Config errors and command-line options through the binary: unknown
# key (78, FILE:LINE:), unknown section (78), a password in a group/world-
# readable file (78), missing host (78), missing file (78), bad option (64),
# -n, -k with keep = no, -a, and two accounts where the first is down (the
# second still gets its mail; exit 69). Each part runs on its own, so that
# one failure does not hide the others.
set -eu
. "$MP_LIB"

put_msgs "$MSGS/small/small-06.eml" "$MSGS/small/small-07.eml"

part_unknown_key() {
	{ conf_general; conf_account test; } >"$T/c.ini"
	line=$(($(wc -l <"$T/c.ini") + 1))
	echo "colour          = blue" >>"$T/c.ini"
	chmod 600 "$T/c.ini"
	run_mp -c "$T/c.ini"
	expect_rc 78 "unknown key"
	grep -qF "$T/c.ini:$line:" "$T/err" || fail "unknown key: stderr lacks '$T/c.ini:$line:': $(head -2 "$T/err")"
	[ "$(md_count "$T/Maildir")" -eq 0 ] || fail "unknown key: mail delivered anyway"
}

part_unknown_section() {
	{ conf_general; conf_account test "deliver=maildir:$T/M-sect"; echo "[acount typo]"; } >"$T/c.ini"
	chmod 600 "$T/c.ini"
	line=$(wc -l <"$T/c.ini")
	run_mp -c "$T/c.ini"
	expect_rc 78 "unknown section [acount typo]"
	grep -qF "$T/c.ini:$line:" "$T/err" || fail "unknown section: stderr lacks '$T/c.ini:$line:': $(head -2 "$T/err")"
}

part_modes() {
	for mode in 640 604 644; do
		mkconf "$T/c.ini" "deliver=maildir:$T/M-mode"
		chmod $mode "$T/c.ini"
		run_mp -c "$T/c.ini"
		expect_rc 78 "config with a password, mode $mode"
		[ "$(md_count "$T/M-mode")" -eq 0 ] || fail "mode $mode: mail delivered anyway"
	done
}

part_missing_host() {
	mkconf "$T/c.ini" host=- "deliver=maildir:$T/M-nohost"
	run_mp -c "$T/c.ini"
	expect_rc 78 "account without host"
	grep -q "test" "$T/err" || fail "missing host: the error does not name the account: $(cat "$T/err")"
}

part_missing_file() {
	run_mp -c "$T/no-such.ini"
	expect_rc 78 "missing config file"
}

part_bad_option() {
	mkconf "$T/c.ini" "deliver=maildir:$T/M-opt"
	run_mp -c "$T/c.ini" --no-such-option
	expect_rc 64 "unknown option --no-such-option"
	[ "$(md_count "$T/M-opt")" -eq 0 ] || fail "unknown option: mail delivered anyway"
}

part_n_k_a() {
	# -n: logs in and lists, but delivers, records and deletes nothing
	{ conf_general "state=$T/s-nka.db"; conf_account test keep=no; } >"$T/c.ini"
	chmod 600 "$T/c.ini"
	run_mp -n -c "$T/c.ini"
	expect_rc 0 "-n"
	[ "$(md_count "$T/Maildir")" -eq 0 ] || fail "-n delivered mail"
	[ "$(server_count)" -eq 2 ] || fail "-n deleted mail on the server"
	# -k with keep = no: delivers, deletes nothing
	run_mp -k -c "$T/c.ini"
	expect_rc 0 "-k with keep = no"
	[ "$(md_count "$T/Maildir")" -eq 2 ] || fail "-k after -n: $(md_count "$T/Maildir") of 2 delivered (did -n record them?)"
	[ "$(server_count)" -eq 2 ] || fail "-k with keep = no deleted $((2 - $(server_count))) message(s) on the server"
	# a plain run takes nothing again; -a takes the seen ones again
	{ conf_general "state=$T/s-nka.db"; conf_account test; } >"$T/c.ini"
	chmod 600 "$T/c.ini"
	run_mp -c "$T/c.ini"
	expect_rc 0 "plain run after -k"
	[ "$(md_count "$T/Maildir")" -eq 2 ] || fail "run after -k took seen messages again"
	run_mp -a -c "$T/c.ini"
	expect_rc 0 "-a"
	[ "$(md_count "$T/Maildir")" -eq 4 ] || fail "-a: Maildir holds $(md_count "$T/Maildir"), expected 4 (2 + 2 again)"
}

part_first_down() {
	closed=$(free_port)
	{
		conf_general "state=$T/s-two.db"
		conf_account down host=127.0.0.1 "port=$closed" "deliver=maildir:$T/M-down"
		conf_account up "deliver=maildir:$T/M-up"
	} >"$T/c.ini"
	chmod 600 "$T/c.ini"
	run_mp -q -c "$T/c.ini"
	expect_rc 69 "two accounts, first one down"
	[ "$(md_count "$T/M-up")" -eq 2 ] || fail "first account down: the second got $(md_count "$T/M-up") of 2"
	grep -q "^mailpull: down: " "$T/err" || fail "first account down: no 'mailpull: down: ...' line: $(cat "$T/err")"
	lines=$(wc -l <"$T/err" | tr -d ' ')
	[ "$lines" -eq 1 ] || fail "first account down: $lines stderr lines with -q, expected 1"
	# naming one account polls only that one
	run_mp -a -c "$T/c.ini" up
	expect_rc 0 "polling only the named account 'up'"
	[ "$(md_count "$T/M-up")" -eq 4 ] || fail "naming 'up' with -a: M-up holds $(md_count "$T/M-up"), expected 4"
}

nfail=0 first=""
for p in unknown_key unknown_section modes missing_host missing_file bad_option n_k_a first_down; do
	if ( "part_$p" ) 2>"$T/part.err"; then
		note "ok: $p"
	else
		nfail=$((nfail + 1))
		why=$(sed -n 's/^FAIL: //p' "$T/part.err" | tail -1)
		cat "$T/part.err"
		note "FAILED: $p: $why"
		[ -n "$first" ] || first="$p: $why"
	fi
done
[ "$nfail" -eq 0 ] || fail "$nfail of 8 parts failed; first: $first"
echo "RESULT: config errors 78 (with file:line), usage 64, -n -k -a and per-account failure behave"
