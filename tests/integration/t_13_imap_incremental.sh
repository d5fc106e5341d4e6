#!/bin/sh
# (13) IMAP incremental polls: an unchanged account costs no FETCH (checked
# in the -vv protocol trace); new mail in one folder arrives alone and only
# that folder is fetched, from its last UIDNEXT; a folder of 5,000 messages
# is taken completely and exactly once; after a UIDVALIDITY reset (folder
# deleted and made again server-side, same messages) nothing is taken again:
# the messages are matched by Message-ID and size, only the never-taken one
# is fetched, and the next poll sends no FETCH.
set -eu
. "$MP_LIB"

ADM="doveadm -c $DC_DIR/dovecot.conf"
NBIG=${T13_NBIG:-5000}
MD="$T/Maildir"

# gen DIR N PREFIX - N small unique messages (one Message-ID each)
gen() {
	"$MP_PY" - "$@" <<'PY'
import os, sys
d, n, prefix = sys.argv[1], int(sys.argv[2]), sys.argv[3]
os.makedirs(d, exist_ok=True)
for i in range(n):
    with open(os.path.join(d, "%s-%05d.eml" % (prefix, i)), "wb") as f:
        f.write(("From: Sender %d <s%d@example.org>\nTo: u@mailpull.test\n"
                 "Subject: %s message %d\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n"
                 "Message-ID: <%s.%d@mailpull.test>\n\nBody of %s %d.\n%s\n"
                 % (i, i, prefix, i, prefix, i, prefix, i, "x" * (i % 97))).encode())
PY
}

# put BOX FILE... - copy the files into BOX's Maildir on the server (new/)
put() {
	local box path
	box=$1; shift
	path=$($ADM mailbox path -u "$MP_USER" "$box") || fail "doveadm mailbox path $box"
	"$MP_PY" - "$path" "$DC_MAIL_USER" "$@" <<'PY' || fail "could not add messages to $box"
import os, pwd, sys, time
path, user, files = sys.argv[1], sys.argv[2], sys.argv[3:]
pw = pwd.getpwnam(user)
for i, f in enumerate(files):
    data = open(f, "rb").read()
    name = "%d.M%dP%d_%d.t13,S=%d" % (int(time.time()), time.time_ns() % 1000000, os.getpid(), i, len(data))
    tmp = os.path.join(path, "tmp", name)
    with open(tmp, "wb") as o:
        o.write(data)
    os.chown(tmp, pw.pw_uid, pw.pw_gid)
    os.rename(tmp, os.path.join(path, "new", name))
PY
	$ADM force-resync -u "$MP_USER" "$box" || fail "doveadm force-resync $box"
}

status() { # BOX FIELD
	$ADM -f tab mailbox status -u "$MP_USER" "$2" "$1" | tail -1 | awk -F"\t" "{ print \$NF }"
}

# check SRCDIR LOCALDIR WHAT - every message of SRCDIR exactly once, byte
# for byte, in LOCALDIR's new/+cur/; nothing else there; tmp/ empty
check() {
	if ! "$MP_PY" - "$1" "$2" >"$T/check" 2>&1 <<'PY'; then
import hashlib, os, sys
src, md = sys.argv[1:]
h = lambda p: hashlib.sha256(open(p, "rb").read()).hexdigest()
want = {h(os.path.join(src, f)): f for f in os.listdir(src)}
got = {}
for sub in ("new", "cur"):
    d = os.path.join(md, sub)
    for f in (os.listdir(d) if os.path.isdir(d) else []):
        got.setdefault(h(os.path.join(d, f)), []).append(os.path.join(sub, f))
bad = []
for k, fs in got.items():
    if k not in want:
        bad.append("%s matches no message sent to this folder" % fs[0])
    elif len(fs) > 1:
        bad.append("%s arrived %d times" % (want[k], len(fs)))
missing = [f for k, f in want.items() if k not in got]
if missing:
    bad.append("%d of %d never arrived, e.g. %s" % (len(missing), len(want), sorted(missing)[0]))
tmp = os.path.join(md, "tmp")
if os.path.isdir(tmp) and os.listdir(tmp):
    bad.append("%d file(s) left in tmp/" % len(os.listdir(tmp)))
for b in bad:
    print(b)
sys.exit(1 if bad else 0)
PY
		cat "$T/check" >&2
		fail "$3: $(head -1 "$T/check")"
	fi
}

# fetches - the folder selected at each FETCH command of the -vv trace in
# $T/err, one "FOLDER<TAB>command" a line
fetches() {
	"$MP_PY" - "$T/err" <<'PY'
import re, sys
cur = None
for l in open(sys.argv[1], encoding="utf-8", errors="replace"):
    m = re.search(r": > \S+ (SELECT|EXAMINE) (.*)$", l)
    if m:
        cur = m.group(2).strip().strip('"')
        continue
    m = re.search(r": > \S+ ((UID )?FETCH .*)$", l)
    if m:
        print("%s\t%s" % (cur, m.group(1).rstrip()))
PY
}

# ---- the server: INBOX (5), Archive (5), Big (NBIG)
$ADM mailbox create -u "$MP_USER" Archive Big || fail "doveadm mailbox create"
mkdir -p "$T/src/INBOX" "$T/src/Archive"
for i in 01 02 03 04 05; do cp "$MSGS/small/small-$i.eml" "$T/src/INBOX/"; done
for i in 06 07 08 09 10; do cp "$MSGS/small/small-$i.eml" "$T/src/Archive/"; done
gen "$T/src/Big" "$NBIG" big
put INBOX "$T/src/INBOX"/*
put Archive "$T/src/Archive"/*
t0=$(date +%s)
put Big "$T/src/Big"/*
[ "$(status Big messages)" -eq "$NBIG" ] || fail "the server holds $(status Big messages) in Big, not $NBIG"
note "$NBIG messages put into Big in $(($(date +%s) - t0)) s"

mkconf "$T/c.ini" protocol=imap "port=$DC_IMAPS" "folders=*"

# ---- first poll: everything, once
run_mp -v -c "$T/c.ini"
expect_rc 0 "first poll"
check "$T/src/INBOX" "$MD" "first poll, INBOX"
check "$T/src/Archive" "$MD/.Archive" "first poll, Archive"
check "$T/src/Big" "$MD/.Big" "first poll, Big ($NBIG)"
total=$(find "$MD" -type f | wc -l)
[ "$total" -eq $((NBIG + 10)) ] || fail "first poll: $total files in the Maildir, expected $((NBIG + 10))"

# ---- second poll of the unchanged account: no FETCH at all
run_mp -vv -c "$T/c.ini"
expect_rc 0 "second poll (unchanged)"
cp "$T/err" "$T/trace2"
grep -q ': > [^ ]* SELECT' "$T/err" || fail "second poll: no SELECT in the -vv trace (is there a trace?)"
fetches >"$T/f2"
[ ! -s "$T/f2" ] || fail "second poll of an unchanged account sent FETCH: $(head -3 "$T/f2" | tr '\n' '|')"
[ "$(find "$MD" -type f | wc -l)" -eq "$total" ] || fail "second poll changed the Maildir"

# ---- new mail in Archive only: it arrives alone, only Archive is fetched,
# from Archive's last UIDNEXT
next=$(status Archive uidnext)
mkdir -p "$T/new"
cp "$MSGS/small/small-11.eml" "$MSGS/small/small-12.eml" "$T/new/"
put Archive "$T/new"/*
cp "$T/new"/* "$T/src/Archive/"
run_mp -vv -c "$T/c.ini"
expect_rc 0 "poll after new mail in Archive"
cp "$T/err" "$T/trace3"
check "$T/src/Archive" "$MD/.Archive" "new mail in Archive"
check "$T/src/INBOX" "$MD" "INBOX after new mail in Archive"
[ "$(find "$MD" -type f | wc -l)" -eq $((total + 2)) ] ||
	fail "new mail: $(($(find "$MD" -type f | wc -l) - total)) files arrived, expected 2"
fetches >"$T/f3"
[ -s "$T/f3" ] || fail "new mail in Archive: no FETCH in the trace"
awk -F'\t' '$1 != "Archive"' "$T/f3" >"$T/f3-other"
[ ! -s "$T/f3-other" ] || fail "new mail in Archive only, but other folders were fetched: $(head -2 "$T/f3-other" | tr '\n' '|')"
first=$(head -1 "$T/f3" | cut -f2)
case "$first" in
"UID FETCH $next:"*|"UID FETCH $next "*) ;;
*) fail "new mail in Archive: first FETCH is \"$first\", expected UID FETCH from the last UIDNEXT $next" ;;
esac
note "new mail: $(wc -l <"$T/f3" | tr -d ' ') FETCH(es), all in Archive, first: $first"

# ---- UIDVALIDITY reset: Archive deleted and made again with the same 7
# messages plus one that was never taken (small-13)
uv_old=$(status Archive uidvalidity)
$ADM mailbox delete -u "$MP_USER" Archive || fail "doveadm mailbox delete Archive"
$ADM mailbox create -u "$MP_USER" Archive || fail "doveadm mailbox create Archive (again)"
put Archive "$T/src/Archive"/* "$MSGS/small/small-13.eml"
uv_new=$(status Archive uidvalidity)
[ "$uv_old" != "$uv_new" ] || fail "test premise: Archive's UIDVALIDITY did not change ($uv_old)"
[ "$(status Archive messages)" -eq 8 ] || fail "test premise: Archive holds $(status Archive messages), not 8"
run_mp -vv -c "$T/c.ini"
cp "$T/err" "$T/trace4"
grep -v ': [<>] ' "$T/err" | grep 'UIDVALIDITY changed' >"$T/warn" ||
	fail "UIDVALIDITY reset: no log line \"UIDVALIDITY changed\" (exit $MP_RC); stderr: $(grep -v ': [<>] ' "$T/err" | head -3 | tr '\n' '|')"
grep -q 'Archive' "$T/warn" || fail "the UIDVALIDITY line does not name the folder: $(head -1 "$T/warn")"
note "UIDVALIDITY $uv_old -> $uv_new, exit $MP_RC: $(head -1 "$T/warn")"
fetches >"$T/f4"
# in every case: none of the 7 messages taken before is taken again
grep '	UID FETCH .*BODY\.PEEK\[\]' "$T/f4" >"$T/f4-bodies" || true
	# the issue's behaviour: messages matched by Message-ID and size are
	# recorded under their new UIDs, only the unmatched one is taken
reset_mode="matched by Message-ID, only the new message taken (exit $MP_RC)"
	expect_rc 0 "poll after a UIDVALIDITY reset (matching by Message-ID)"
	grep -q ' 7 of 8 ' "$T/warn" || fail "UIDVALIDITY reset: expected 7 of 8 matched: $(head -1 "$T/warn")"
	cp "$MSGS/small/small-13.eml" "$T/src/Archive/"
	check "$T/src/Archive" "$MD/.Archive" "after the UIDVALIDITY reset (only small-13 new)"
	[ "$(find "$MD" -type f | wc -l)" -eq $((total + 3)) ] ||
		fail "UIDVALIDITY reset: $(($(find "$MD" -type f | wc -l) - total - 2)) files arrived, expected 1 (small-13)"
	# exactly one body fetched: one FETCH of one UID
	[ "$(wc -l <"$T/f4-bodies")" -eq 1 ] && grep -qE '	UID FETCH [0-9]+ ' "$T/f4-bodies" ||
		fail "UIDVALIDITY reset: expected one body FETCH of one UID, got: $(tr '\n' '|' <"$T/f4-bodies")"
	# and the folder is unchanged from now on: no FETCH at all
	run_mp -vv -c "$T/c.ini"
	expect_rc 0 "poll after the UIDVALIDITY reset was settled"
	fetches >"$T/f5"
	[ ! -s "$T/f5" ] || fail "the poll after the settled UIDVALIDITY reset sent FETCH: $(head -2 "$T/f5" | tr '\n' '|')"
	[ "$(find "$MD" -type f | wc -l)" -eq $((total + 3)) ] || fail "the poll after the UIDVALIDITY reset added files"

echo "RESULT: $NBIG-message folder taken once; unchanged poll without FETCH; new mail fetched alone from UIDNEXT $next; UIDVALIDITY reset: nothing re-downloaded, $reset_mode"
