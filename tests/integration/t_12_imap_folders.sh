#!/bin/sh
# (12) IMAP folders -> Maildir++, flags -> info part, INTERNALDATE -> mtime.
#
# Two servers:
#  - a private Dovecot (started here, in $T/dc-slash) whose hierarchy
#    delimiter is '/' (namespace separator = /, LAYOUT=fs), so that server
#    names can be "Archive/2024" and can hold a literal '.' ("a.b", "x.y/z");
#  - the suite's Dovecot (Maildir++ layout, delimiter '.'), where the nested
#    folder is "Archive.2024".
# Mailboxes are made with doveadm; messages are put into each mailbox's own
# Maildir (found with `doveadm mailbox path`) with chosen flags (info part)
# and chosen mtimes (= Dovecot's INTERNALDATE), and one more with `doveadm
# save` + `doveadm flags add`. What the server then reports (doveadm fetch
# flags / date.received.unixtime) is the expectation:
#   folder -> MAILDIR (INBOX) or MAILDIR/.<name, delimiter -> '.', a literal
#             '.' or '/' -> '_', UTF-8>
#   no flags -> new/NAME,S=SIZE ; flags -> cur/NAME,S=SIZE:2,<DFRST subset>
#   mtime = INTERNALDATE ; bytes = the stored message ; nothing else anywhere.
set -eu
. "$MP_LIB"

SL="$T/dc-slash"
trap 'dc_stop "$SL"' EXIT

# ---- the '/' Dovecot: same CA tooling, own ports, own copy of this user
dc_add_user "$SL" "$MP_USER" "$MP_PASS"
dc_start "$SL" >"$T/dc-slash.out" 2>&1 || { cat "$T/dc-slash.out" >&2; fail "could not start the '/' Dovecot"; }
dc_stop "$SL"
sed -i 's|^\(mail_location = .*\)$|\1:LAYOUT=fs|' "$SL/dovecot.conf"
cat >>"$SL/dovecot.conf" <<'CONF'
namespace inbox {
  inbox = yes
  separator = /
}
CONF
dovecot -c "$SL/dovecot.conf" 2>>"$T/dc-slash.out" || fail "could not restart the '/' Dovecot"
SL_IMAPS=$(. "$SL/ports.env"; echo "$DC_IMAPS")
SL_CA=$(. "$SL/ports.env"; echo "$DC_CA")
_dc_wait_port "$SL_IMAPS" || fail "the '/' Dovecot does not listen on $SL_IMAPS"

ADM_SL="doveadm -c $SL/dovecot.conf"
ADM="doveadm -c $DC_DIR/dovecot.conf"

# place ADM MAILBOX SRC FLAGS MTIME - put SRC into MAILBOX's Maildir directly:
# FLAGS "-" -> new/, else cur/NAME:2,FLAGS; MTIME (epoch) becomes the date
place() {
	local adm box path
	adm=$1 box=$2
	path=$($adm mailbox path -u "$MP_USER" "$box") || fail "doveadm mailbox path $box"
	"$MP_PY" - "$path" "$DC_MAIL_USER" "$3" "$4" "$5" <<'PY' || fail "could not place $3 in $box"
import os, pwd, sys, time
path, user, src, flags, mtime = sys.argv[1:]
pw = pwd.getpwnam(user)
data = open(src, "rb").read()
name = "%d.M%dP%d.t12,S=%d" % (int(time.time()), time.time_ns() % 1000000, os.getpid(), len(data))
sub = "new"
if flags != "-":
    sub, name = "cur", name + ":2," + flags
tmp = os.path.join(path, "tmp", name)
with open(tmp, "wb") as o:
    o.write(data)
os.chown(tmp, pw.pw_uid, pw.pw_gid)
os.chmod(tmp, 0o600)
os.utime(tmp, (int(mtime), int(mtime)))
os.rename(tmp, os.path.join(path, sub, name))
PY
}

S=$MSGS/small
# fixed, distinct dates (UTC): an mtime that is not INTERNALDATE cannot pass
D1=1583020800   # 2020-03-01 00:00:00
D2=1609459199   # 2020-12-31 23:59:59
D3=1700000000   # 2023-11-14 22:13:20
D4=1234567890   # 2009-02-13 23:31:30
D5=1420070400   # 2015-01-01 00:00:00
D6=1000000000   # 2001-09-09 01:46:40

# ---- the '/' server: mailboxes and messages
$ADM_SL mailbox create -u "$MP_USER" Archive Archive/2024 "Entwürfe" a.b x.y/z Leer ||
	fail "doveadm mailbox create on the '/' server"
place "$ADM_SL" INBOX "$S/small-01.eml" - "$D1"
place "$ADM_SL" INBOX "$S/small-02.eml" S "$D2"
$ADM_SL save -u "$MP_USER" -m Archive <"$S/small-03.eml" || fail "doveadm save into Archive"
$ADM_SL flags add -u "$MP_USER" '\Seen \Flagged' mailbox Archive all || fail "doveadm flags add"
place "$ADM_SL" Archive/2024 "$S/small-04.eml" DFRST "$D3"
place "$ADM_SL" Archive/2024 "$S/small-05.eml" - "$D4"
place "$ADM_SL" "Entwürfe" "$S/small-06.eml" D "$D5"
place "$ADM_SL" a.b "$S/small-07.eml" R "$D6"
place "$ADM_SL" x.y/z "$S/small-08.eml" FS "$D1"
$ADM_SL mailbox list -u "$MP_USER" >"$T/list-slash" 2>&1
note "'/' server mailboxes: $(tr '\n' ' ' <"$T/list-slash")"
grep -qx 'Archive/2024' "$T/list-slash" || fail "'/' server has no Archive/2024 (doveadm: $(tr '\n' ' ' <"$T/list-slash"))"

# the plan: server mailbox | message | flags we set | date we set | local dir
# (local dir "" = the Maildir itself). "now" = saved by doveadm, date unknown.
cat >"$T/plan-slash" <<EOF
INBOX	small-01.eml	-	$D1	
INBOX	small-02.eml	S	$D2	
Archive	small-03.eml	FS	now	.Archive
Archive/2024	small-04.eml	DFRST	$D3	.Archive.2024
Archive/2024	small-05.eml	-	$D4	.Archive.2024
Entwürfe	small-06.eml	D	$D5	.Entwürfe
a.b	small-07.eml	R	$D6	.a_b
x.y/z	small-08.eml	FS	$D1	.x_y.z
EOF

# expect ADM PLAN OUT - check the server reports what the plan set, write
# the expectation (localdir, src, letters, mtime) from what the server says
expect() {
	$1 -f tab fetch -u "$MP_USER" 'mailbox uid flags date.received.unixtime hdr.message-id' all \
		>"$T/fetch" 2>"$T/fetch.err" || fail "doveadm fetch: $(head -1 "$T/fetch.err")"
	"$MP_PY" - "$2" "$T/fetch" "$S" "$3" <<'PY' || fail "the server does not hold what the test put there: $(tail -1 "$T/expect.err")"
import os, re, sys
plan, fetch, src, out = sys.argv[1:]
letter = {"\\Draft": "D", "\\Flagged": "F", "\\Answered": "R", "\\Seen": "S", "\\Deleted": "T"}
srv = {}
lines = open(fetch, encoding="utf-8").read().splitlines()
for l in lines[1:]:
    box, uid, flags, date, mid = l.split("\t")
    fl = "".join(sorted(letter[x] for x in flags.split() if x in letter))
    srv[mid.strip()] = (box, fl, int(date))
rows = []
for l in open(plan, encoding="utf-8").read().splitlines():
    box, name, flags, date, local = l.split("\t")
    data = open(os.path.join(src, name), "rb").read()
    mid = re.search(rb"^Message-ID:\s*(<[^>\n]*>)", data, re.M | re.I).group(1).decode()
    if mid not in srv:
        sys.exit("%s (%s) not on the server" % (name, mid))
    sbox, sfl, sdate = srv.pop(mid)
    want_fl = "" if flags == "-" else "".join(sorted(flags))
    if sbox != box or sfl != want_fl or (date != "now" and int(date) != sdate):
        sys.exit("%s: server says %r flags %r date %d; the test set %r %r %s"
                 % (name, sbox, sfl, sdate, box, want_fl, date))
    rows.append("%s\t%s\t%s\t%d" % (local, name, sfl, sdate))
if srv:
    sys.exit("unplanned messages on the server: %r" % srv)
open(out, "w", encoding="utf-8").write("\n".join(rows) + "\n")
PY
}

# verify MAILDIR EXPECT WHAT - every expected message exactly once, byte-exact,
# in the right folder, new/ or cur/ with the right info and S=, with the
# right mtime; no other file anywhere under MAILDIR; tmp/ empty
verify() {
	if ! "$MP_PY" - "$1" "$2" "$S" >"$T/verify" 2>&1 <<'PY'; then
import os, re, sys
md, exp, src = sys.argv[1:]
want = {}   # (localdir, bytes) -> [letters, mtime, name, count]
for l in open(exp, encoding="utf-8").read().splitlines():
    local, name, letters, mtime = l.split("\t")
    data = open(os.path.join(src, name), "rb").read()
    want[(local, data)] = [letters, int(mtime), name, 0]
dirs = {k[0] for k in want}
bad = []
if not os.path.isdir(md):
    print("no Maildir at %s" % md); sys.exit(1)
for root, ds, fs in os.walk(md):
    rel = os.path.relpath(root, md)
    parts = [] if rel == "." else rel.split(os.sep)
    for f in fs:
        p = os.path.join(root, f)
        shown = os.path.join(rel, f)
        if len(parts) == 1 and parts[0].startswith(".") and f == "maildirfolder" and os.path.getsize(p) == 0:
            continue
        if len(parts) == 1 and parts[0] in ("new", "cur", "tmp"):
            local, sub = "", parts[0]
        elif len(parts) == 2 and parts[0].startswith(".") and parts[1] in ("new", "cur", "tmp"):
            local, sub = parts[0], parts[1]
        else:
            bad.append("unexpected file %s" % shown); continue
        if sub == "tmp":
            bad.append("file left in tmp/: %s" % shown); continue
        data = open(p, "rb").read()
        key = (local, data)
        if key not in want:
            other = [k[0] or "(INBOX)" for k in want if k[1] == data]
            bad.append("%s matches no message of folder %s%s" % (shown, local or "(INBOX)",
                       "; it is the message of %s" % other[0] if other else " (bytes differ from every message)"))
            continue
        letters, mtime, name, _ = want[key]
        want[key][3] += 1
        m = re.fullmatch(r"([^:/]+),S=(\d+)(?::2,([A-Za-z]*))?", f)
        if not m:
            bad.append("%s (%s): name not NAME,S=SIZE[:2,FLAGS]" % (shown, name)); continue
        if int(m.group(2)) != len(data):
            bad.append("%s (%s): S=%s but the file has %d bytes" % (shown, name, m.group(2), len(data)))
        if letters:
            if sub != "cur" or m.group(3) != letters:
                bad.append("%s (%s): expected cur/...:2,%s" % (shown, name, letters))
        elif sub != "new" or m.group(3) is not None:
            bad.append("%s (%s): has no flags on the server, expected new/NAME,S=SIZE" % (shown, name))
        mt = int(os.stat(p).st_mtime)
        if mt != mtime:
            bad.append("%s (%s): mtime %d, INTERNALDATE %d (off by %d s)" % (shown, name, mt, mtime, mt - mtime))
for k, (letters, mtime, name, n) in want.items():
    if n != 1:
        bad.append("%s arrived %d times in %s" % (name, n, os.path.join(md, k[0] or "")))
for b in bad:
    print(b)
sys.exit(1 if bad else 0)
PY
		cat "$T/verify" >&2
		fail "$3: $(wc -l <"$T/verify" | tr -d ' ') problem(s); first: $(head -1 "$T/verify")"
	fi
}

# ---- folders = * on the '/' server
expect "$ADM_SL" "$T/plan-slash" "$T/exp-slash"
{ conf_general "state=$T/s1.db"
  conf_account test protocol=imap "port=$SL_IMAPS" "ca_file=$SL_CA" "folders=*" "deliver=maildir:$T/M1"; } >"$T/c1.ini"
chmod 600 "$T/c1.ini"
run_mp -c "$T/c1.ini"
expect_rc 0 "folders = * ('/' delimiter)"
verify "$T/M1" "$T/exp-slash" "folders = * ('/' delimiter)"
ls -a "$T/M1" >"$T/m1-dirs"
note "local folders: $(tr '\n' ' ' <"$T/m1-dirs")"
# no Maildir++ folder for a name the server does not have (x.y is \Noselect)
for d in $(ls -a "$T/M1" | grep '^\.[^.]'); do
	case "$d" in
	.Archive|.Archive.2024|.Entwürfe|.a_b|.x_y.z|.Leer) ;;
	*) fail "folders = *: unexpected local folder $d" ;;
	esac
done
run_mp -c "$T/c1.ini"
expect_rc 0 "folders = * second run"
verify "$T/M1" "$T/exp-slash" "folders = * second run (nothing twice)"
# --status names the folders as the mail client does (UTF-8, not mUTF-7)
run_mp -s -c "$T/c1.ini"
expect_rc 0 "--status after folders = *"
grep -q '^  Entwürfe: [0-9]* taken' "$T/out" || fail "--status: no line for Entwürfe: $(tr '\n' '|' <"$T/out")"
grep -q '^  Archive/2024: [0-9]* taken' "$T/out" || fail "--status: no line for Archive/2024: $(tr '\n' '|' <"$T/out")"

# ---- folders = INBOX, Archive/2024 takes only those two
awk -F'\t' '$1 == "" || $1 == ".Archive.2024"' "$T/exp-slash" >"$T/exp-two"
[ "$(wc -l <"$T/exp-two")" -eq 4 ] || fail "test bug: expected 4 messages in INBOX + Archive/2024"
{ conf_general "state=$T/s2.db"
  conf_account test protocol=imap "port=$SL_IMAPS" "ca_file=$SL_CA" "folders=INBOX, Archive/2024" "deliver=maildir:$T/M2"; } >"$T/c2.ini"
chmod 600 "$T/c2.ini"
run_mp -c "$T/c2.ini"
expect_rc 0 "folders = INBOX, Archive/2024"
verify "$T/M2" "$T/exp-two" "folders = INBOX, Archive/2024"

# ---- a folder that does not exist: an error that names it
{ conf_general "state=$T/s3.db"
  conf_account test protocol=imap "port=$SL_IMAPS" "ca_file=$SL_CA" "folders=INBOX, Nope/Nada" "deliver=maildir:$T/M3"; } >"$T/c3.ini"
chmod 600 "$T/c3.ini"
run_mp -c "$T/c3.ini"
[ "$MP_RC" -ne 0 ] || fail "folders = INBOX, Nope/Nada: exit 0 for a folder the server does not have"
grep -q 'Nope/Nada' "$T/err" || fail "folders = INBOX, Nope/Nada: no error naming the folder; stderr: $(head -3 "$T/err" | tr '\n' '|')"
note "missing folder: exit $MP_RC, $(grep 'Nope/Nada' "$T/err" | head -1); INBOX messages taken anyway: $(md_count "$T/M3")"

# ---- the suite's Dovecot: delimiter '.', Maildir++ on the server too
$ADM mailbox create -u "$MP_USER" Archive Archive.2024 "Entwürfe" || fail "doveadm mailbox create (suite Dovecot)"
place "$ADM" INBOX "$S/small-09.eml" - "$D2"
place "$ADM" Archive "$S/small-10.eml" RS "$D3"
place "$ADM" Archive.2024 "$S/small-11.eml" F "$D4"
place "$ADM" "Entwürfe" "$S/small-12.eml" - "$D5"
place "$ADM" "Entwürfe" "$S/small-13.eml" DS "$D6"
cat >"$T/plan-dot" <<EOF
INBOX	small-09.eml	-	$D2	
Archive	small-10.eml	RS	$D3	.Archive
Archive.2024	small-11.eml	F	$D4	.Archive.2024
Entwürfe	small-12.eml	-	$D5	.Entwürfe
Entwürfe	small-13.eml	DS	$D6	.Entwürfe
EOF
expect "$ADM" "$T/plan-dot" "$T/exp-dot"
{ conf_general "state=$T/s4.db"
  conf_account test protocol=imap "port=$DC_IMAPS" "folders=*" "deliver=maildir:$T/M4"; } >"$T/c4.ini"
chmod 600 "$T/c4.ini"
run_mp -c "$T/c4.ini"
expect_rc 0 "folders = * ('.' delimiter)"
verify "$T/M4" "$T/exp-dot" "folders = * ('.' delimiter)"

echo "RESULT: 8 folders on a '/' server and 4 on a '.' server mapped to Maildir++, flags and INTERNALDATE kept, byte-exact; folder list and missing-folder error checked"
