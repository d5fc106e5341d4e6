#!/bin/sh
# (9) Each auth mechanism logs in to Dovecot and fetches, and Dovecot logs
# the mechanism asked for.
set -eu
. "$MP_LIB"

put_msgs "$MSGS/small/small-03.eml" "$MSGS/small/small-04.eml" "$MSGS/small/small-05.eml"
for auth in user plain login scram-sha-256 apop; do
	case $auth in
	user|plain) method=PLAIN ;;
	login) method=LOGIN ;;
	scram-sha-256) method=SCRAM-SHA-256 ;;
	apop) method=APOP ;;
	esac
	log_mark
	{ conf_general "state=$T/s-$auth.db"; conf_account test "auth=$auth" "deliver=maildir:$T/M-$auth"; } >"$T/c.ini"
	chmod 600 "$T/c.ini"
	run_mp -c "$T/c.ini"
	expect_rc 0 "auth = $auth"
	got=$(md_count "$T/M-$auth")
	[ "$got" -eq 3 ] || fail "auth = $auth: $got of 3 delivered"
	sleep 0.2
	log_since | grep "Login: user=<$MP_USER>" | grep -q "method=$method," ||
		fail "auth = $auth: Dovecot logged no login with method=$method: $(log_since | grep "user=<$MP_USER>" | head -1)"
done
echo "RESULT: user, plain, login, scram-sha-256, apop all log in and fetch"
