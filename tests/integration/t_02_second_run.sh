#!/bin/sh
# (2) A second run takes nothing (the state remembers the UIDLs).
set -eu
. "$MP_LIB"

put_dir "$MSGS/small"
n=$(count_files "$MSGS/small")
mkconf "$T/c.ini"
run_mp -c "$T/c.ini"
expect_rc 0 "first run"
[ "$(md_count "$T/Maildir")" -eq "$n" ] || fail "first run delivered $(md_count "$T/Maildir") of $n"

run_mp -c "$T/c.ini"
expect_rc 0 "second run"
got=$(md_count "$T/Maildir")
[ "$got" -eq "$n" ] || fail "second run took $((got - n)) message(s) again"
assert_maildir "$MSGS/small" "$T/Maildir" "after two runs"
[ "$(server_count)" -eq "$n" ] || fail "keep = yes but the server holds $(server_count) of $n"
echo "RESULT: second run took nothing"
