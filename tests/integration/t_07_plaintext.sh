#!/bin/sh
# (7) No password over an unencrypted connection unless allow_plaintext:
# tls = none is refused (77) before any USER/PASS/AUTH (Dovecot's log and
# the -vv trace agree); with allow_plaintext = yes it works; tls = starttls
# works and logs in over TLS.
set -eu
. "$MP_LIB"

put_dir "$MSGS/small"
n=$(count_files "$MSGS/small")

log_mark
mkconf "$T/c.ini" "port=$DC_POP3" tls=none "deliver=maildir:$T/M-refused"
run_mp -vv -c "$T/c.ini"
expect_rc 77 "tls = none without allow_plaintext"
[ "$(md_count "$T/M-refused")" -eq 0 ] || fail "tls = none: mail delivered"
grep -q "$MP_PASS" "$T/out" "$T/err" && fail "tls = none: the password is in the output"
grep -Eiq '> *(PASS|AUTH|APOP)' "$T/out" "$T/err" && fail "tls = none: the -vv trace shows a PASS/AUTH/APOP command: $(grep -Ei '> *(PASS|AUTH|APOP)' "$T/out" "$T/err" | head -1)"
sleep 0.3
if log_since | grep -q "user=<$MP_USER>"; then
	fail "tls = none: Dovecot saw a login attempt: $(log_since | grep "user=<$MP_USER>" | head -1)"
fi
log_since | grep -q "no auth attempts" || fail "tls = none: Dovecot logged no unauthenticated disconnect (did the client connect at all?)"

{ conf_general "state=$T/s-plain.db"; conf_account test "port=$DC_POP3" tls=none allow_plaintext=yes "deliver=maildir:$T/M-plain"; } >"$T/c.ini"
chmod 600 "$T/c.ini"
run_mp -c "$T/c.ini"
expect_rc 0 "tls = none with allow_plaintext = yes"
assert_maildir "$MSGS/small" "$T/M-plain" "allow_plaintext = yes"

log_mark
{ conf_general "state=$T/s-stls.db"; conf_account test "port=$DC_POP3" tls=starttls "deliver=maildir:$T/M-stls"; } >"$T/c.ini"
chmod 600 "$T/c.ini"
run_mp -c "$T/c.ini"
expect_rc 0 "tls = starttls"
assert_maildir "$MSGS/small" "$T/M-stls" "STLS"
sleep 0.3
log_since | grep "Login: user=<$MP_USER>" | grep -q ", TLS" ||
	fail "tls = starttls: Dovecot did not log a TLS login: $(log_since | grep "user=<$MP_USER>" | head -1)"
echo "RESULT: plaintext refused before login; allow_plaintext and STLS work"
