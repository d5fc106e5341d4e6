#!/bin/sh
# (7) No password over an unencrypted connection unless allow_plaintext:
# with tls = none, auth = user, plain and login are refused (77) before any
# USER/PASS/AUTH (Dovecot's log and the -vv trace agree); auth = auto uses
# SCRAM-SHA-256 when the server offers it (the password never crosses the
# wire) and is refused the same way by a server that offers only PLAIN and
# LOGIN. With allow_plaintext = yes it works; tls = starttls works and logs
# in over TLS.
set -eu
. "$MP_LIB"

put_dir "$MSGS/small"
n=$(count_files "$MSGS/small")

plain_refused() { # AUTH [PORT LOG]
	port=${2:-$DC_POP3} dlog=${3:-$DC_LOG}
	mark=$(wc -c <"$dlog")
	{ conf_general "state=$T/s-none-$1.db"; conf_account test "port=$port" tls=none ca_file=- "auth=$1" "deliver=maildir:$T/M-none-$1"; } >"$T/c.ini"
	chmod 600 "$T/c.ini"
	rm -rf "$T/M-none-$1"
	run_mp -vv -c "$T/c.ini" >&2
	cp "$T/err" "$T/trace-none-$1"
	sleep 0.3
	tried=$(tail -c +$((mark + 1)) "$dlog" | grep "user=<$MP_USER>" | head -1)
	sent=$(grep -Ei '(^|[: ])> ?(USER|PASS|AUTH|APOP)( |$)' "$T/out" "$T/err" | head -1)
	if [ "$MP_RC" -ne 77 ] || [ -n "$tried" ] || [ -n "$sent" ] || [ "$(md_count "$T/M-none-$1")" -ne 0 ]; then
		echo "tls = none, auth = $1, no allow_plaintext: exit $MP_RC (expected 77); $(md_count "$T/M-none-$1") delivered; trace: ${sent:-no login command}; Dovecot: ${tried:-no login attempt}"
		return 1
	fi
	grep -q "$MP_PASS" "$T/out" "$T/err" && { echo "tls = none, auth = $1: the password is in the output"; return 1; }
	return 0
}

bad=""
for a in user plain login; do
	why=$(plain_refused $a) || bad="${bad:+$bad; }$why"
done
[ -z "$bad" ] || fail "$bad"

# auto over tls = none: SCRAM-SHA-256, and nothing that carries the password
log_mark
{ conf_general "state=$T/s-none-auto.db"; conf_account test "port=$DC_POP3" tls=none ca_file=- auth=auto "deliver=maildir:$T/M-none-auto"; } >"$T/c.ini"
chmod 600 "$T/c.ini"
run_mp -vv -c "$T/c.ini" >&2
expect_rc 0 "tls = none, auth = auto, server offers SCRAM-SHA-256"
assert_maildir "$MSGS/small" "$T/M-none-auto" "auto over SCRAM-SHA-256"
sent=$(grep -Ei '> ?(USER|PASS|APOP|AUTH (PLAIN|LOGIN))( |$)' "$T/out" "$T/err" | head -1)
[ -z "$sent" ] || fail "auto over tls = none sent: $sent"
grep -q '> AUTH SCRAM-SHA-256' "$T/err" || fail "auto over tls = none did not use SCRAM-SHA-256"
grep -q "$MP_PASS" "$T/out" "$T/err" && fail "auto over tls = none: the password is in the output"
sleep 0.3
log_since | grep "Login: user=<$MP_USER>" | grep -q "method=SCRAM-SHA-256" ||
	fail "Dovecot did not log a SCRAM-SHA-256 login: $(log_since | grep "user=<$MP_USER>" | head -1)"

# auto against a server offering only PLAIN and LOGIN: refused, nothing sent
P="$T/dc-plainonly"
trap 'dc_stop "$P"' EXIT
dc_add_user "$P" "$MP_USER" "$MP_PASS" >/dev/null 2>&1 || true
DC_MECHS="plain login" dc_start "$P" >/dev/null || fail "could not start the PLAIN/LOGIN-only Dovecot"
PPOP3=$(sed -n 's/^DC_POP3=//p' "$P/ports.env")
why=$(plain_refused auto "$PPOP3" "$P/dovecot.log") || fail "server without SCRAM: $why"

{ conf_general "state=$T/s-plain.db"; conf_account test "port=$DC_POP3" tls=none ca_file=- allow_plaintext=yes "deliver=maildir:$T/M-plain"; } >"$T/c.ini"
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
echo "RESULT: user, plain, login refused before login without TLS; auto uses SCRAM-SHA-256 or is refused; allow_plaintext and STLS work"
