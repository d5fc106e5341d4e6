#!/bin/sh
# (18) deliver = lmtp://HOST:PORT?to=ADDR: messages taken over POP3 are
# relayed to Dovecot's own LMTP service, one connection for the whole poll,
# and land in the recipient's mailbox exactly (Dovecot prepends its
# Return-Path/Delivered-To/Received; what follows must be the message as the
# source mailbox held it, dot-stuffing undone); keep = no deletes on the
# source only after the 250; a second run relays nothing.
set -eu
. "$MP_LIB"

# the recipient must exist before Dovecot starts (it caches its passwd
# file): bob is made at start and used by no other test
RCPT=$DC_USER2
mkdir -p "$T/src"
for f in "$MSGS"/small/*.eml "$MSGS"/awk/*.eml; do
	case "$(basename "$f")" in
	*nul*|*binary*|*no-final-newline*|*20mb*|*20MB*) continue ;;   # not SMTP-safe / slow
	esac
	cp "$f" "$T/src/"
done
put_dir "$T/src"
n=$(count_files "$T/src")
[ "$n" -ge 20 ] || fail "test premise: only $n messages to relay"

mkconf "$T/c.ini" keep=no "deliver=lmtp://127.0.0.1:$DC_LMTP" "smtp_to=$RCPT"
run_mp -vv -c "$T/c.ini"
expect_rc 0 "relay over LMTP"
conns=$(grep -c ': > LHLO ' "$T/err" || true)
[ "$conns" -eq 1 ] || fail "expected one LMTP connection for the whole poll, saw $conns LHLO"
[ "$(server_count)" -eq 0 ] || fail "keep = no left $(server_count) message(s) on the source"

MD=$(dc_maildir "$DC_DIR" "$RCPT")
"$MP_PY" - "$T/src" "$MD" <<'PY' || fail "relayed messages differ (see above)"
import os, sys
src, md = sys.argv[1], sys.argv[2]
want = {}
for name in os.listdir(src):
    want[name] = open(os.path.join(src, name), "rb").read()
got = []
for sub in ("new", "cur"):
    d = os.path.join(md, sub)
    for name in (os.listdir(d) if os.path.isdir(d) else []):
        got.append(open(os.path.join(d, name), "rb").read())
bad = []
left = dict(want)
for data in got:
    hit = [k for k, v in left.items() if data.endswith(v) and
           data[:len(data) - len(v)].startswith(b"Return-Path:")]
    if len(hit) != 1:
        bad.append("a delivered message matches %d sources: %r" % (len(hit), data[:120]))
        continue
    del left[hit[0]]
for k in left:
    bad.append("%s did not arrive" % k)
if len(got) != len(want):
    bad.append("%d delivered, %d sent" % (len(got), len(want)))
for b in bad[:5]:
    print(b)
sys.exit(1 if bad else 0)
PY
before=$(find "$MD/new" "$MD/cur" -type f | wc -l)
put_msgs "$MSGS/small/small-01.eml"
run_mp -c "$T/c.ini"
expect_rc 0 "second run"
after=$(find "$MD/new" "$MD/cur" -type f | wc -l)
[ "$after" -eq $((before + 1)) ] || fail "second run relayed $((after - before)) messages, expected 1 (the new one)"
# ---- a permanent refusal (550 for an unknown recipient): each message is
# recorded as rejected with the reply, stays on the server even with
# keep = no, is not tried again, and -a tries it again
put_msgs "$MSGS/small/small-02.eml" "$MSGS/small/small-03.eml"
{ conf_general "state=$T/s-rej.db"
  conf_account test keep=no "deliver=lmtp://127.0.0.1:$DC_LMTP?to=nosuchuser"; } >"$T/r.ini"
chmod 600 "$T/r.ini"
run_mp -vv -c "$T/r.ini"
expect_rc 73 "LMTP recipient refused (550)"
grep -v ': [<>] ' "$T/err" | grep -q 'refused for good: .*550' ||
	fail "no warning naming the 550: $(grep -v ': [<>] ' "$T/err" | tail -2 | tr '\n' '|')"
left=$(server_count)
[ "$left" -eq 2 ] || fail "keep = no with every message refused: $left left on the server, expected 2"
run_mp -vv -c "$T/r.ini"
expect_rc 0 "second run after the refusals"
grep -q ': > RCPT TO' "$T/err" && fail "the second run tried the refused messages again"
run_mp -vv -a -c "$T/r.ini"
grep -q ': > RCPT TO' "$T/err" || fail "-a did not try the refused messages again"
[ "$(server_count)" -eq 2 ] || fail "-a: the refused messages were deleted"
echo "RESULT: $n messages relayed over LMTP byte-exact on one connection; keep = no emptied the source; a second run relayed only the new one; a 550 is recorded, kept on the server, not retried unless -a"
