#!/bin/sh
# (6) TLS verification: a certificate for another name is refused (69, no
# mail, no login attempted), a certificate from an unknown CA is refused, a
# pinned fingerprint works without ca_file, a wrong pin is refused; the
# right certificate works by name, by 127.0.0.1 and by ::1.
set -eu
. "$MP_LIB"

put_dir "$MSGS/small"
n=$(count_files "$MSGS/small")

# A second Dovecot serving a certificate valid only for wrong.example
W="$T/dc-wrong"
trap 'dc_stop "$W"' EXIT
DC_CERT=wrong dc_start "$W" >/dev/null || fail "could not start the wrong-name Dovecot"
WPOP3S=$(sed -n 's/^DC_POP3S=//p' "$W/ports.env")
WPOP3=$(sed -n 's/^DC_POP3=//p' "$W/ports.env")
dc_add_dir "$W" alice "$MSGS/small"
WLOG="$W/dovecot.log"

refused() { # WHAT MAILDIR
	expect_rc 69 "$1"
	[ "$(md_count "$2")" -eq 0 ] || fail "$1: mail delivered"
	lines=$(wc -l <"$T/err" | tr -d ' ')
	[ "$lines" -eq 1 ] || fail "$1: $lines stderr lines, expected 1 (with -q)"
}

mkconf "$T/c.ini" "port=$WPOP3S" user=alice password=s3cret-Pa55 "deliver=maildir:$T/M-wrong"
run_mp -q -c "$T/c.ini"
refused "certificate for wrong.example, host localhost" "$T/M-wrong"
grep -q "user=<alice>" "$WLOG" && fail "wrong name: the client logged in / tried to"

mkconf "$T/c.ini" "port=$WPOP3" tls=starttls user=alice password=s3cret-Pa55 "deliver=maildir:$T/M-wrong2"
run_mp -q -c "$T/c.ini"
refused "STLS to a certificate for wrong.example" "$T/M-wrong2"
grep -q "user=<alice>" "$WLOG" && fail "wrong name (STLS): the client tried to log in"

mkconf "$T/c.ini" "ca_file=$DC_OTHER_CA" "deliver=maildir:$T/M-ca"
run_mp -q -c "$T/c.ini"
refused "certificate from an unknown CA (ca_file = the other CA)" "$T/M-ca"

mkconf "$T/c.ini" ca_file=- "deliver=maildir:$T/M-noca"
run_mp -q -c "$T/c.ini"
refused "test CA not trusted (no ca_file, system store)" "$T/M-noca"

badfp="sha256:$(echo "$DC_FP" | sed 's/^sha256://' | tr '0-9A-F' '1-9A-F0')"
mkconf "$T/c.ini" ca_file=- "fingerprint=$badfp" "deliver=maildir:$T/M-badpin"
run_mp -q -c "$T/c.ini"
refused "wrong fingerprint pin" "$T/M-badpin"

mkconf "$T/c.ini" ca_file=- "fingerprint=$DC_FP" "deliver=maildir:$T/M-pin"
run_mp -c "$T/c.ini"
expect_rc 0 "right fingerprint pin, no ca_file"
assert_maildir "$MSGS/small" "$T/M-pin" "pinned fingerprint"

for h in localhost 127.0.0.1 ::1; do
	if [ "$h" = ::1 ] && ! "$MP_PY" -c 'import socket; socket.create_connection(("::1", '"$DC_POP3S"'), 2).close()' 2>/dev/null; then
		note "no IPv6 loopback here; ::1 skipped"; continue
	fi
	md="$T/M-$(echo "$h" | tr -c 'a-z0-9\n' _)"
	{ conf_general "state=$T/state-$h.db"; conf_account test "host=$h" "deliver=maildir:$md"; } >"$T/c.ini"
	chmod 600 "$T/c.ini"
	run_mp -c "$T/c.ini"
	expect_rc 0 "right certificate, host = $h"
	assert_maildir "$MSGS/small" "$md" "host = $h"
done
echo "RESULT: wrong name, STLS wrong name, unknown CA, no CA, wrong pin refused; pin, localhost, 127.0.0.1, ::1 accepted"
