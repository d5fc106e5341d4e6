#!/bin/sh
# (1) The awkward set and a 20 MB message over POP3S arrive byte-exact,
# once each, in new/, and nothing else lands in the Maildir.
set -eu
. "$MP_LIB"

put_dir "$MSGS/awk"
n=$(count_files "$MSGS/awk")
[ "$(server_count)" -eq "$n" ] || fail "setup: server holds $(server_count), expected $n"

mkconf "$T/c.ini"
run_mp -c "$T/c.ini"
expect_rc 0 "first run"
assert_maildir "$MSGS/awk" "$T/Maildir" "awkward set"
[ "$(server_count)" -eq "$n" ] || fail "keep = yes but the server now holds $(server_count) of $n"
echo "RESULT: $n awkward messages (incl. exactly 20 MB) byte-exact"
