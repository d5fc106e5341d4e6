#!/bin/sh
# (3) Mail added after a run arrives alone on the next run.
set -eu
. "$MP_LIB"

mkdir -p "$T/first" "$T/later" "$T/all"
i=0
for f in "$MSGS/small"/*; do
	i=$((i + 1))
	if [ $i -le 15 ]; then cp "$f" "$T/first/"; else cp "$f" "$T/later/"; fi
	cp "$f" "$T/all/"
done
put_dir "$T/first"
mkconf "$T/c.ini" "deliver=maildir:$T/Maildir"
run_mp -c "$T/c.ini"
expect_rc 0 "first run"
assert_maildir "$T/first" "$T/Maildir" "first run"

# the newcomers go to a second Maildir, so that exactly they can be checked
put_dir "$T/later"
mkconf "$T/c.ini" "deliver=maildir:$T/Maildir2"
run_mp -c "$T/c.ini"
expect_rc 0 "run after new mail"
assert_maildir "$T/later" "$T/Maildir2" "the new mail alone"
echo "RESULT: 5 new messages arrived alone after 15 old ones"
