#!/bin/sh
# (11) IMAP: the awkward set over IMAPS arrives byte-exact (IMAP gives the
# exact size, so even the message without a final newline must match), a
# second run takes nothing, and STARTTLS on the plain port works.
set -eu
. "$MP_LIB"

put_dir "$MSGS/awk"
n=$(count_files "$MSGS/awk")
mkconf "$T/c.ini" protocol=imap "port=$DC_IMAPS"
run_mp -c "$T/c.ini"
expect_rc 0 "IMAPS first run"
assert_maildir "$MSGS/awk" "$T/Maildir" "IMAP awkward set"
run_mp -c "$T/c.ini"
expect_rc 0 "IMAPS second run"
[ "$(md_count "$T/Maildir")" -eq "$n" ] || fail "IMAP second run took $(($(md_count "$T/Maildir") - n)) again"

{ conf_general "state=$T/s-stls.db"; conf_account test protocol=imap "port=$DC_IMAP" tls=starttls "deliver=maildir:$T/M-stls"; } >"$T/c.ini"
chmod 600 "$T/c.ini"
run_mp -c "$T/c.ini"
expect_rc 0 "IMAP STARTTLS"
assert_maildir "$MSGS/awk" "$T/M-stls" "IMAP STARTTLS"
echo "RESULT: $n awkward messages byte-exact over IMAP"
