#!/bin/sh
# (8) The -vv protocol trace shows the protocol ("> UIDL" ...) but never the
# password, in clear or base64 (PLAIN / LOGIN), whatever the auth method,
# also when it comes from passcmd.
set -eu
. "$MP_LIB"

put_msgs "$MSGS/small/small-01.eml" "$MSGS/small/small-02.eml"
# every form the password could leak in
forms=$("$MP_PY" - "$MP_USER" "$MP_PASS" <<'PY'
import base64, sys
u, p = sys.argv[1].encode(), sys.argv[2].encode()
for s in (p, base64.b64encode(p), base64.b64encode(b"\0" + u + b"\0" + p),
          base64.b64encode(u + b"\0" + u + b"\0" + p)):
    print(s.decode())
PY
)
printf '%s\n' "$MP_PASS" >"$T/pw"
chmod 600 "$T/pw"

check_trace() { # WHAT
	cat "$T/out" "$T/err" >"$T/trace"
	echo "$forms" | while IFS= read -r s; do
		[ -n "$s" ] || continue
		if grep -qF -- "$s" "$T/trace"; then
			echo "FAIL: $1: the -vv trace contains the password (as '$s'): $(grep -F -- "$s" "$T/trace" | head -1)" >&2
			exit 1
		fi
	done || exit 1
	grep -q '> UIDL' "$T/trace" || fail "$1: the -vv trace has no '> UIDL' line"
}

for auth in user plain login scram-sha-256 apop auto; do
	{ conf_general "state=$T/s-$auth.db"; conf_account test "auth=$auth" "deliver=maildir:$T/M-$auth"; } >"$T/c.ini"
	chmod 600 "$T/c.ini"
	run_mp -vv -c "$T/c.ini"
	expect_rc 0 "auth = $auth with -vv"
	[ "$(md_count "$T/M-$auth")" -eq 2 ] || fail "auth = $auth: $(md_count "$T/M-$auth") of 2 delivered"
	check_trace "auth = $auth"
	cp "$T/trace" "$T/trace-$auth"
done

for auth in plain user; do
	{ conf_general "state=$T/s-cmd-$auth.db"; conf_account test "auth=$auth" password=- "passcmd=cat $T/pw" "deliver=maildir:$T/M-cmd-$auth"; } >"$T/c.ini"
	chmod 644 "$T/c.ini"   # no password in it: may be world-readable
	run_mp -vv -c "$T/c.ini"
	expect_rc 0 "passcmd, auth = $auth, -vv"
	[ "$(md_count "$T/M-cmd-$auth")" -eq 2 ] || fail "passcmd: $(md_count "$T/M-cmd-$auth") of 2 delivered"
	check_trace "passcmd, auth = $auth"
done

# a refused login must not leak the (wrong) password either
{ conf_general; conf_account test "password=Wr0ng-$MP_PASS" "deliver=maildir:$T/M-bad"; } >"$T/c.ini"
chmod 600 "$T/c.ini"
run_mp -vv -c "$T/c.ini"
expect_rc 77 "wrong password with -vv"
grep -qF "Wr0ng-$MP_PASS" "$T/out" "$T/err" && fail "wrong password: the -vv trace contains it"
echo "RESULT: no secret in -vv traces for user, plain, login, scram-sha-256, apop, auto, passcmd"
