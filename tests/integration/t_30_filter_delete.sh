#!/bin/sh
# (30) A filter's delete that was recorded but not yet applied is examined
# again when the filters change (review fix 9d8b10b). A filter that wrongly
# matches real mail (header = Subject: m, action = delete) over three
# messages whose Subjects all hold an "m"; mailpull -k records them as
# deleted and deletes nothing. The filter is then fixed (Subject: ^never$)
# and mailpull runs again without -k (keep = yes): all three are delivered
# to the Maildir, byte for byte, and none is deleted on the server unread.
# (Before the fix the second run deleted all three, unread, under the old
# filter's verdict.) POP3 against $MP_USER, then IMAP against $MP_RCPT.
set -eu
. "$MP_LIB"

mkdir -p "$T/src"
for m in "memo 1:monday" "meeting at noon:tuesday" "lunch menu:wednesday"; do
	subj=${m%%:*} day=${m#*:}
	cat >"$T/src/$day.eml" <<EOF
Return-Path: <alice@example.org>
From: Alice <alice@example.org>
To: bob@example.net
Subject: $subj
Message-ID: <$day.t30@example.org>
Date: Mon, 2 Nov 2026 10:00:00 +0000

Real mail for $day, not to be thrown away.
EOF
done
total=3

# conf FILE STATE MAILDIR SUBJECT-REGEX [key=value...]
conf() {
	f=$1 st=$2 md=$3 re=$4
	shift 4
	{ conf_general "state=$st"
	  conf_account test keep=yes "deliver=maildir:$md" filter=f "$@"
	  printf '[filter f]\nheader = Subject: %s\naction = delete\n' "$re"; } >"$f"
	chmod 600 "$f"
}

# ---- POP3
put_dir "$T/src"
conf "$T/bad.ini" "$T/pop.db" "$T/Maildir" 'm' auth=user
conf "$T/good.ini" "$T/pop.db" "$T/Maildir" '^never$' auth=user

run_mp -k -v -c "$T/bad.ini"
expect_rc 0 "POP3: -k with the wrong filter"
[ "$(md_count "$T/Maildir")" -eq 0 ] ||
	fail "POP3: the wrong filter let $(md_count "$T/Maildir") message(s) through (test premise)"
[ "$(server_count)" -eq $total ] ||
	fail "POP3: -k: $(server_count) message(s) on the server, expected $total (-k deletes nothing)"
n=$(grep -c 'deleted unread: filter f' "$T/err" || true)
[ "$n" -eq $total ] ||
	fail "POP3: -k: $n message(s) said deleted unread by filter f, expected $total (test premise): $(tr '\n' '|' <"$T/err" | cut -c1-400)"

run_mp -v -c "$T/good.ini"
expect_rc 0 "POP3: poll after the filter was fixed"
[ "$(server_count)" -eq $total ] ||
	fail "POP3: after the filter was fixed $(server_count) of $total message(s) are on the server: the old filter's delete was applied (keep = yes)"
assert_maildir "$T/src" "$T/Maildir" "POP3: after the filter was fixed"

run_mp -v -c "$T/good.ini"
expect_rc 0 "POP3: third poll"
[ "$(server_count)" -eq $total ] || fail "POP3: third poll: $(server_count) on the server, expected $total"
assert_maildir "$T/src" "$T/Maildir" "POP3: third poll (nothing twice)"

# ---- IMAP: the same against $MP_RCPT's INBOX
dc_add "$DC_DIR" "$MP_RCPT" "$T/src"/*.eml
icount() { dc_count "$DC_DIR" "$MP_RCPT"; }
[ "$(icount)" -eq $total ] || fail "IMAP: $(icount) message(s) in the mailbox, expected $total (setup)"
set -- protocol=imap "port=$DC_IMAPS" "user=$MP_RCPT" "password=pw-r-t_30_filter_delete-S3cret"
conf "$T/ibad.ini" "$T/imap.db" "$T/imapmd" 'm' "$@"
conf "$T/igood.ini" "$T/imap.db" "$T/imapmd" '^never$' "$@"

run_mp -k -v -c "$T/ibad.ini"
expect_rc 0 "IMAP: -k with the wrong filter"
[ "$(md_count "$T/imapmd")" -eq 0 ] ||
	fail "IMAP: the wrong filter let $(md_count "$T/imapmd") message(s) through (test premise)"
[ "$(icount)" -eq $total ] ||
	fail "IMAP: -k: $(icount) message(s) on the server, expected $total (-k deletes nothing)"
n=$(grep -c 'deleted unread: filter f' "$T/err" || true)
[ "$n" -eq $total ] ||
	fail "IMAP: -k: $n message(s) said deleted unread by filter f, expected $total (test premise): $(tr '\n' '|' <"$T/err" | cut -c1-400)"

run_mp -v -c "$T/igood.ini"
expect_rc 0 "IMAP: poll after the filter was fixed"
[ "$(icount)" -eq $total ] ||
	fail "IMAP: after the filter was fixed $(icount) of $total message(s) are on the server: the old filter's delete was applied (keep = yes)"
assert_maildir "$T/src" "$T/imapmd" "IMAP: after the filter was fixed"

run_mp -v -c "$T/igood.ini"
expect_rc 0 "IMAP: third poll"
[ "$(icount)" -eq $total ] || fail "IMAP: third poll: $(icount) on the server, expected $total"
assert_maildir "$T/src" "$T/imapmd" "IMAP: third poll (nothing twice)"

echo "RESULT: POP3 and IMAP: $total messages a wrong delete filter matched under -k; after the fix all delivered, none deleted"
