#!/bin/sh
# (14) IMAP keep = no and mark_seen.
#  - keep = no: what was delivered (INBOX and Archive) is gone from the
#    server afterwards, through UID STORE +FLAGS.SILENT (\Deleted) and
#    UID EXPUNGE (never a plain EXPUNGE); a message that another client
#    flagged \Deleted before our run is still on the server afterwards.
#  - mark_seen = yes: every delivered message carries \Seen on the server;
#    default (mark_seen unset): no message gains \Seen (BODY.PEEK), and one
#    that was \Seen before stays \Seen.
# Server state is read with doveadm fetch.
set -eu
. "$MP_LIB"

ADM="doveadm -c $DC_DIR/dovecot.conf"
S=$MSGS/small

put() { # BOX FILE... - copy into BOX's Maildir (new/), then resync
	local box path
	box=$1; shift
	path=$($ADM mailbox path -u "$MP_USER" "$box") || fail "doveadm mailbox path $box"
	"$MP_PY" - "$path" "$DC_MAIL_USER" "$@" <<'PY' || fail "could not add messages to $box"
import os, pwd, sys, time
path, user, files = sys.argv[1], sys.argv[2], sys.argv[3:]
pw = pwd.getpwnam(user)
for i, f in enumerate(files):
    data = open(f, "rb").read()
    name = "%d.M%dP%d_%d.t14,S=%d" % (int(time.time()), time.time_ns() % 1000000, os.getpid(), i, len(data))
    tmp = os.path.join(path, "tmp", name)
    with open(tmp, "wb") as o:
        o.write(data)
    os.chown(tmp, pw.pw_uid, pw.pw_gid)
    os.rename(tmp, os.path.join(path, "new", name))
PY
	$ADM force-resync -u "$MP_USER" "$box" || fail "doveadm force-resync $box"
}

mid() { sed -n 's/^Message-ID:[[:space:]]*\(<[^>]*>\).*/\1/Ip' "$1" | head -1; }

# server BOX - "message-id<TAB>flags" per message on the server, sorted
server() {
	$ADM -f tab fetch -u "$MP_USER" 'hdr.message-id flags' mailbox "$1" all >"$T/srv.raw" 2>"$T/srv.err" ||
		fail "doveadm fetch $1: $(head -1 "$T/srv.err")"
	tail -n +2 "$T/srv.raw" | sed 's/^[[:space:]]*//' | sort
}

# has_local FILE MAILDIR - how many copies of FILE's bytes are in new/ + cur/
copies() {
	"$MP_PY" - "$1" "$2" <<'PY'
import os, sys
want = open(sys.argv[1], "rb").read()
n = 0
for sub in ("new", "cur"):
    d = os.path.join(sys.argv[2], sub)
    for f in (os.listdir(d) if os.path.isdir(d) else []):
        if open(os.path.join(d, f), "rb").read() == want:
            n += 1
print(n)
PY
}

# ======== keep = no
$ADM mailbox create -u "$MP_USER" Archive MS NS || fail "doveadm mailbox create"
put INBOX "$S/small-01.eml" "$S/small-02.eml" "$S/small-03.eml" "$S/small-04.eml" "$S/small-05.eml" "$S/small-06.eml"
put Archive "$S/small-07.eml" "$S/small-08.eml" "$S/small-09.eml"
# "another client" marks small-06 \Deleted without expunging it
other=$(mid "$S/small-06.eml")
$ADM flags add -u "$MP_USER" '\Deleted' mailbox INBOX header Message-ID "$other" || fail "doveadm flags add \\Deleted"
server INBOX >"$T/before"
grep -F "$other" "$T/before" | grep -q 'Deleted' || fail "test premise: small-06 is not \\Deleted on the server: $(tr '\n' '|' <"$T/before")"
[ "$(wc -l <"$T/before")" -eq 6 ] || fail "test premise: INBOX holds $(wc -l <"$T/before") messages, not 6"

mkconf "$T/c.ini" protocol=imap "port=$DC_IMAPS" "folders=INBOX, Archive" keep=no
run_mp -vv -c "$T/c.ini"
expect_rc 0 "keep = no"
cp "$T/err" "$T/trace-keep"
for i in 01 02 03 04 05; do
	[ "$(copies "$S/small-$i.eml" "$T/Maildir")" -eq 1 ] || fail "keep = no: small-$i.eml is in the Maildir $(copies "$S/small-$i.eml" "$T/Maildir") times"
done
for i in 07 08 09; do
	[ "$(copies "$S/small-$i.eml" "$T/Maildir/.Archive")" -eq 1 ] || fail "keep = no: small-$i.eml is in .Archive $(copies "$S/small-$i.eml" "$T/Maildir/.Archive") times"
done
server INBOX >"$T/after-inbox"
server Archive >"$T/after-archive"
[ ! -s "$T/after-archive" ] || fail "keep = no left in Archive: $(tr '\n' '|' <"$T/after-archive")"
# (recorded, and the test fails at the end, so that the checks below still run)
late=""
if grep -qF "$other" "$T/after-inbox"; then
	grep -F "$other" "$T/after-inbox" | grep -q 'Deleted' || fail "small-06 lost its \\Deleted flag"
	survived=yes
else
	survived=no
	late="keep = no expunged small-06, which another client had flagged \\Deleted before our run (it should survive; it was delivered locally $(copies "$S/small-06.eml" "$T/Maildir") time(s) as $(cd "$T/Maildir" && ls cur new | grep ':2,.*T' | head -1))"
	echo "LATE FAIL: $late" >&2
fi
grep -vF "$other" "$T/after-inbox" >"$T/after-left" || true
[ ! -s "$T/after-left" ] || fail "keep = no left $(wc -l <"$T/after-left" | tr -d ' ') delivered message(s) in INBOX: $(head -2 "$T/after-left" | tr '\n' '|')"
# the protocol: UID STORE +FLAGS.SILENT (\Deleted), UID EXPUNGE, no plain EXPUNGE
grep -qE ': > [^ ]+ UID STORE [^ ]+ \+FLAGS\.SILENT \(\\Deleted\)' "$T/err" ||
	grep -qE ': > [^ ]+ UID STORE [^ ]+ \+FLAGS\.SILENT \(\\Deleted\)' "$T/err" ||
	fail "keep = no: no UID STORE ... +FLAGS.SILENT (\\Deleted) in the trace"
grep -qE ': > [^ ]+ UID EXPUNGE ' "$T/err" || fail "keep = no: no UID EXPUNGE in the trace"
if grep -E ': > [^ ]+ EXPUNGE' "$T/err" >"$T/plain"; then
	fail "keep = no sent a plain EXPUNGE: $(head -1 "$T/plain")"
fi
took6=$(copies "$S/small-06.eml" "$T/Maildir")
note "the other client's \\Deleted message: still on the server: $survived; copies delivered locally: $took6"
note "trace: $(grep -E ': > [^ ]+ UID (STORE|EXPUNGE)' "$T/err" | sed 's/^.*: > //' | tr '\n' '|')"
run_mp -c "$T/c.ini"
expect_rc 0 "keep = no, second run"
server INBOX >"$T/after2"
if [ "$survived" = yes ] && ! grep -qF "$other" "$T/after2"; then
	fail "the second keep = no run expunged the other client's \\Deleted message"
fi

# ======== mark_seen
put MS "$S/small-10.eml" "$S/small-11.eml" "$S/small-12.eml"
put NS "$S/small-13.eml" "$S/small-14.eml" "$S/small-15.eml"
seen_before=$(mid "$S/small-15.eml")
$ADM flags add -u "$MP_USER" '\Seen' mailbox NS header Message-ID "$seen_before" || fail "doveadm flags add \\Seen"

{ conf_general "state=$T/s-ms.db"
  conf_account test protocol=imap "port=$DC_IMAPS" folders=MS mark_seen=yes "deliver=maildir:$T/M-ms"; } >"$T/ms.ini"
chmod 600 "$T/ms.ini"
run_mp -vv -c "$T/ms.ini"
expect_rc 0 "mark_seen = yes"
[ "$(md_count "$T/M-ms/.MS")" -eq 3 ] || fail "mark_seen = yes: $(md_count "$T/M-ms/.MS") of 3 delivered"
server MS >"$T/ms"
[ "$(wc -l <"$T/ms")" -eq 3 ] || fail "mark_seen = yes: MS holds $(wc -l <"$T/ms") messages, not 3"
if grep -v 'Seen' "$T/ms" >"$T/ms-unseen"; then
	fail "mark_seen = yes: $(wc -l <"$T/ms-unseen" | tr -d ' ') message(s) without \\Seen on the server: $(head -1 "$T/ms-unseen")"
fi

{ conf_general "state=$T/s-ns.db"
  conf_account test protocol=imap "port=$DC_IMAPS" folders=NS "deliver=maildir:$T/M-ns"; } >"$T/ns.ini"
chmod 600 "$T/ns.ini"
run_mp -vv -c "$T/ns.ini"
expect_rc 0 "mark_seen default"
[ "$(md_count "$T/M-ns/.NS")" -eq 3 ] || fail "mark_seen default: $(md_count "$T/M-ns/.NS") of 3 delivered"
server NS >"$T/ns"
[ "$(wc -l <"$T/ns")" -eq 3 ] || fail "mark_seen default: NS holds $(wc -l <"$T/ns") messages, not 3"
if grep -vF "$seen_before" "$T/ns" | grep 'Seen' >"$T/ns-seen"; then
	fail "mark_seen default set \\Seen on the server: $(head -1 "$T/ns-seen")"
fi
grep -F "$seen_before" "$T/ns" | grep -q 'Seen' || fail "mark_seen default: the message that was \\Seen lost it"
if grep -E ': > [^ ]+ UID STORE' "$T/err" >"$T/ns-store"; then
	fail "mark_seen default stored flags: $(head -1 "$T/ns-store")"
fi
if grep -E ': > [^ ]+ (UID )?FETCH .*BODY\[' "$T/err" >"$T/ns-body"; then
	fail "mark_seen default fetched without PEEK: $(head -1 "$T/ns-body")"
fi

[ -z "$late" ] || fail "$late"
echo "RESULT: keep = no emptied INBOX and Archive by UID STORE/UID EXPUNGE, the other client's \\Deleted message survived (delivered locally: $took6); mark_seen = yes sets \\Seen, default leaves it"
