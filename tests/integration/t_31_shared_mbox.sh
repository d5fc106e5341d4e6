#!/bin/sh
# (31) Two accounts polled side by side (parallel = 2) deliver into one mbox:
# they take turns instead of one timing out on the other's lock while a
# slow batch holds it (account a also feeds an MDA that takes 12 s).
set -eu
. "$MP_LIB"

printf 'From: a@example.org\nSubject: for a\nMessage-ID: <a.t31@x>\n\nfor a\n' >"$T/a.eml"
printf 'From: b@example.org\nSubject: for b\nMessage-ID: <b.t31@x>\n\nfor b\n' >"$T/b.eml"
put_msgs "$T/a.eml"
dc_add "$DC_DIR" "$MP_RCPT" "$T/b.eml"
cat >"$T/slow.sh" <<'EOS'
cat >/dev/null
sleep 12
EOS
{ conf_general parallel=2
  conf_account a "deliver=mbox:$T/shared.mbox"
  echo "deliver         = mda:sh $T/slow.sh"
  echo
  # b starts a second later (its passcmd sleeps), so that a holds the lock
  conf_account b "user=$MP_RCPT" password=- "passcmd=sleep 1; echo pw-r-t_31_shared_mbox-S3cret" \
	"deliver=mbox:$T/shared.mbox"; } >"$T/c.ini"
chmod 600 "$T/c.ini"
run_mp -c "$T/c.ini"
expect_rc 0 "two accounts into one mbox, side by side"
! grep -q 'locked by another program' "$T/err" || fail "one account timed out on the other's lock: $(grep locked "$T/err" | head -1)"
"$MP_PY" - "$T/shared.mbox" <<'PY' || fail "the shared mbox is wrong (see above)"
import mailbox, sys
subs = sorted(m["Subject"] for m in mailbox.mbox(sys.argv[1]))
if subs != ["for a", "for b"]:
    print("subjects: %r" % subs); sys.exit(1)
PY
echo "RESULT: two accounts sharing an mbox took turns (no lock time-out), both messages in it once"
