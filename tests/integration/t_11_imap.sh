#!/bin/sh
# (11) IMAP: the awkward set over IMAPS arrives byte-exact (IMAP gives the
# exact size, so even the message without a final newline must match), a
# second run takes nothing, and STARTTLS on the plain port works.
# A NUL byte cannot travel in an IMAP4rev1 literal (RFC 3501 CHAR8); Dovecot
# sends 0x80 in its place, so that is what is expected for those bytes.
set -eu
. "$MP_LIB"

put_dir "$MSGS/awk"
n=$(count_files "$MSGS/awk")
"$MP_PY" - "$MSGS/awk" "$T/want" <<'PY'
import os, sys
src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst, exist_ok=True)
for name in os.listdir(src):
    with open(os.path.join(src, name), "rb") as f:
        data = f.read()
    with open(os.path.join(dst, name), "wb") as f:
        f.write(data.replace(b"\0", b"\x80"))
PY
mkconf "$T/c.ini" protocol=imap "port=$DC_IMAPS"
run_mp -c "$T/c.ini"
expect_rc 0 "IMAPS first run"
assert_maildir "$T/want" "$T/Maildir" "IMAP awkward set"
run_mp -c "$T/c.ini"
expect_rc 0 "IMAPS second run"
[ "$(md_count "$T/Maildir")" -eq "$n" ] || fail "IMAP second run took $(($(md_count "$T/Maildir") - n)) again"

{ conf_general "state=$T/s-stls.db"; conf_account test protocol=imap "port=$DC_IMAP" tls=starttls "deliver=maildir:$T/M-stls"; } >"$T/c.ini"
chmod 600 "$T/c.ini"
run_mp -c "$T/c.ini"
expect_rc 0 "IMAP STARTTLS"
assert_maildir "$T/want" "$T/M-stls" "IMAP STARTTLS"
echo "RESULT: $n awkward messages byte-exact over IMAP"
