#!/bin/sh
# (4) keep = no delivers everything and empties the server.
set -eu
. "$MP_LIB"

put_dir "$MSGS/small"
n=$(count_files "$MSGS/small")
mkconf "$T/c.ini" keep=no
run_mp -c "$T/c.ini"
expect_rc 0 "run with keep = no"
assert_maildir "$MSGS/small" "$T/Maildir" "keep = no"
left=$(server_count)
[ "$left" -eq 0 ] || fail "keep = no left $left of $n messages on the server"
run_mp -c "$T/c.ini"
expect_rc 0 "second run on an empty mailbox"
[ "$(md_count "$T/Maildir")" -eq "$n" ] || fail "second run changed the Maildir"
echo "RESULT: $n delivered, server empty"
