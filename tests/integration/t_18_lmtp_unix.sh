#!/bin/sh
# (18, unix) deliver = lmtp:/PATH: messages taken over POP3 are relayed to
# Dovecot's LMTP service through its unix socket (DC_LMTP_SOCK), LHLO and
# no STARTTLS, one connection for the poll; they land in the recipient's
# mailbox exactly; keep = no empties the source. A socket that is not there
# is a failure naming the path, and nothing is deleted; a relative path is
# refused.
set -eu
. "$MP_LIB"

RCPT=${MP_RCPT:-$DC_USER2}
[ -S "$DC_LMTP_SOCK" ] || fail "test premise: no LMTP socket at $DC_LMTP_SOCK"
mkdir -p "$T/src"
cp "$MSGS"/small/small-0[1-8].eml "$T/src/"
cp "$MSGS"/awk/*dot*.eml "$T/src/" 2>/dev/null || true
put_dir "$T/src"
n=$(count_files "$T/src")
[ "$n" -ge 8 ] || fail "test premise: only $n messages to relay"
MD=$(dc_maildir "$DC_DIR" "$RCPT")
find "$MD/new" "$MD/cur" -type f 2>/dev/null | sort >"$T/before"

mkconf "$T/c.ini" keep=no "deliver=lmtp:$DC_LMTP_SOCK" "smtp_to=$RCPT"
run_mp -vv -c "$T/c.ini"
expect_rc 0 "relay over LMTP on a unix socket"
conns=$(grep -c ': > LHLO ' "$T/err" || true)
[ "$conns" -eq 1 ] || fail "expected one LMTP connection for the whole poll, saw $conns LHLO"
grep -q ': > STARTTLS' "$T/err" && fail "STARTTLS was tried over a unix socket"
[ "$(server_count)" -eq 0 ] || fail "keep = no left $(server_count) message(s) on the source"

find "$MD/new" "$MD/cur" -type f | sort >"$T/after"
comm -13 "$T/before" "$T/after" >"$T/new"
"$MP_PY" - "$T/src" "$T/new" <<'PY' || fail "relayed messages differ (see above)"
import os, sys
src, newlist = sys.argv[1], sys.argv[2]
left = {n: open(os.path.join(src, n), "rb").read() for n in os.listdir(src)}
got = [open(p.strip(), "rb").read() for p in open(newlist) if p.strip()]
bad = []
for data in got:
    hit = [k for k, v in left.items() if data.endswith(v) and
           data[:len(data) - len(v)].startswith(b"Return-Path:")]
    if len(hit) != 1:
        bad.append("a delivered message matches %d sources: %r" % (len(hit), data[:120]))
        continue
    del left[hit[0]]
bad += ["%s did not arrive" % k for k in left]
if len(got) != len(os.listdir(src)):
    bad.append("%d delivered, %d sent" % (len(got), len(os.listdir(src))))
for b in bad[:5]:
    print(b)
sys.exit(1 if bad else 0)
PY

# ---- no socket at the path: the run fails naming it; nothing is deleted
put_msgs "$MSGS/small/small-09.eml"
{ conf_general "state=$T/s-missing.db"
  conf_account test keep=no "deliver=lmtp:$T/no-such-socket" "smtp_to=$RCPT"; } >"$T/m.ini"
chmod 600 "$T/m.ini"
run_mp -c "$T/m.ini"
[ "$MP_RC" -ne 0 ] || fail "relaying to a missing socket succeeded"
grep -q "connect to unix socket $T/no-such-socket: No such file or directory" "$T/err" ||
	fail "no error naming the socket path: $(tail -2 "$T/err" | tr '\n' '|')"
[ "$(server_count)" -eq 1 ] || fail "the message was deleted although the relay failed"

# ---- a relative path is refused
{ conf_general "state=$T/s-rel.db"
  conf_account test keep=no "deliver=lmtp:run/lmtp" "smtp_to=$RCPT"; } >"$T/r.ini"
chmod 600 "$T/r.ini"
run_mp -c "$T/r.ini"
[ "$MP_RC" -ne 0 ] || fail "a relative socket path was accepted"
grep -q "absolute socket path" "$T/err" ||
	fail "no clear error for a relative socket path: $(tail -2 "$T/err" | tr '\n' '|')"
[ "$(server_count)" -eq 1 ] || fail "the message was deleted although the target was refused"
echo "RESULT: $n messages relayed over LMTP on a unix socket, byte-exact, one connection, no STARTTLS; a missing socket is named and keeps the mail; a relative path is refused"
