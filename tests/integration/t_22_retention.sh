#!/bin/sh
# (22) Retention: keep = 2 (days), over POP3 and over IMAP, with the clock
# moved by faketime (the delivery time is what mailpull recorded, so the
# faked clock moves both "delivered at" and "now").
#   - a run right after delivery, and the next one, delete nothing;
#   - the local Maildir is then changed as a user would: one message is
#     removed (rm), one moved out of the Maildir, one moved into a Maildir++
#     subfolder, one renamed by a "mail reader" (new/ -> cur/ with :2,S);
#   - a later run 1.5 days on takes new mail and still deletes nothing;
#   - 3 days on, -k deletes nothing; the dry run (--json) names exactly the
#     messages a real run then deletes ("why" says taken before);
#   - 3 days on, the real run deletes on the server what was delivered more
#     than 2 days before and is still present locally (the renamed one
#     counts as present); the removed and moved ones stay on the server and
#     are not downloaded again; those delivered 1.5 days on stay;
#   - 5 days on, those go too.
# The server is checked by Message-ID in the user's server-side Maildir.
set -eu
. "$MP_LIB"

command -v faketime >/dev/null || fail "faketime is not on PATH (tests/servers/deps.sh installs it)"
now=$(date +%s)
faked=$(faketime -f '+3d' date +%s) || fail "faketime -f +3d date does not work"
[ $((faked - now)) -ge $((3 * 86400 - 60)) ] && [ $((faked - now)) -le $((3 * 86400 + 60)) ] ||
	fail "faketime -f +3d moved the clock by $((faked - now)) s, not 3 days"

# run_at OFFSET ARGS... - run_mp with the clock moved by OFFSET (faketime -f)
REALBIN=$BIN
printf '#!/bin/sh\nexec faketime -f "$MP_FAKED" "$MP_REALBIN" "$@"\n' >"$T/faked"
chmod 755 "$T/faked"
run_at() {
	MP_FAKED=$1 MP_REALBIN=$REALBIN
	export MP_FAKED MP_REALBIN
	shift
	BIN=$T/faked
	run_mp "$@"
	BIN=$REALBIN
}

# the messages: set A is taken at once, set B 1.5 days later
mkdir -p "$T/srcA" "$T/srcB"
msg() { # SET NAME
	{
		printf 'Return-Path: <sender@example.org>\nFrom: Alice <alice@example.org>\n'
		printf 'To: bob@example.net\nSubject: %s retention\n' "$2"
		printf 'Message-ID: <%s.t22@example.org>\n\nBody of %s.\n' "$2" "$2"
	} >"$T/src$1/$2.eml"
}
for m in untouched1 untouched2 read removed movedout archived; do msg A "$m"; done
for m in later1 later2; do msg B "$m"; done
ALL="untouched1 untouched2 read removed movedout archived later1 later2"

# on_server USER NAME - is NAME's Message-ID in USER's server-side Maildir?
on_server() {
	srv=$(dc_maildir "$DC_DIR" "$1")
	grep -rlF "<$2.t22@" "$srv/cur" "$srv/new" >/dev/null 2>&1
}
# server_has WHAT USER NAME... / server_lacks WHAT USER NAME...
server_has() {
	what=$1 u=$2; shift 2
	for m in "$@"; do on_server "$u" "$m" || fail "$what: $m is gone from the server"; done
}
server_lacks() {
	what=$1 u=$2; shift 2
	for m in "$@"; do ! on_server "$u" "$m" || fail "$what: $m is still on the server"; done
}
# local_file MAILDIR NAME - the file holding NAME in new/ or cur/
local_file() {
	grep -lF "<$2.t22@" "$1"/new/* "$1"/cur/* 2>/dev/null | head -1
}
# deletes PROTO - how many delete commands the -vv trace in $T/err holds
deletes() {
	if [ "$1" = pop3 ]; then
		grep -c ': > DELE ' "$T/err" || true
	else
		grep -Ec ': > [^ ]+ UID (STORE .*Deleted|EXPUNGE)' "$T/err" || true
	fi
}

# local_present MAILDIR N WHAT - N messages in MAILDIR (new/ + cur/)
local_present() {
	[ "$(md_count "$1")" -eq "$2" ] || fail "$3: $(md_count "$1") messages in $1, expected $2"
}

retention() { # PROTO USER PASS PORT
	P=$1 U=$2
	MD="$T/Maildir-$P"
	{ conf_general "state=$T/$P.db"
	  conf_account test "protocol=$P" "port=$4" "user=$U" "password=$3" \
		keep=2 "deliver=maildir:$MD"; } >"$T/$P.ini"
	chmod 600 "$T/$P.ini"
	dc_add_dir "$DC_DIR" "$U" "$T/srcA"

	# ---- right away: everything arrives, nothing is deleted (twice)
	run_mp -vv -c "$T/$P.ini"
	expect_rc 0 "$P: first run, keep = 2"
	[ "$(deletes "$P")" -eq 0 ] || fail "$P: the first run sent $(deletes "$P") delete command(s)"
	assert_maildir "$T/srcA" "$MD" "$P: first run"
	run_mp -vv -c "$T/$P.ini"
	expect_rc 0 "$P: second run right away"
	[ "$(deletes "$P")" -eq 0 ] || fail "$P: the second run right away sent $(deletes "$P") delete command(s)"
	server_has "$P: right away" "$U" untouched1 untouched2 read removed movedout archived

	# ---- the user at work on the local Maildir
	f=$(local_file "$MD" removed); [ -n "$f" ] || fail "$P: removed.eml not in $MD"
	rm "$f"
	f=$(local_file "$MD" movedout); [ -n "$f" ] || fail "$P: movedout.eml not in $MD"
	mkdir -p "$T/elsewhere-$P"
	mv "$f" "$T/elsewhere-$P/"
	f=$(local_file "$MD" archived); [ -n "$f" ] || fail "$P: archived.eml not in $MD"
	mkdir -p "$MD/.Archive/cur" "$MD/.Archive/new" "$MD/.Archive/tmp"
	mv "$f" "$MD/.Archive/cur/$(basename "$f"):2,S"
	f=$(local_file "$MD" read); [ -n "$f" ] || fail "$P: read.eml not in $MD"
	case "$f" in */new/*) ;; *) fail "$P: read.eml delivered to $f, not new/" ;; esac
	mv "$f" "$MD/cur/$(basename "$f"):2,S"
	local_present "$MD" 3 "$P: after the user's changes"
	left=$(md_count "$MD")

	# ---- 1.5 days on: set B arrives, nothing is deleted yet
	dc_add_dir "$DC_DIR" "$U" "$T/srcB"
	run_at '+36h' -vv -c "$T/$P.ini"
	expect_rc 0 "$P: run 1.5 days on"
	[ "$(deletes "$P")" -eq 0 ] || fail "$P: 1.5 days on (keep = 2): $(deletes "$P") delete command(s) sent"
	server_has "$P: 1.5 days on" "$U" $ALL
	local_present "$MD" $((left + 2)) "$P: 1.5 days on (what is left of set A + later1, later2)"
	for m in later1 later2; do
		[ -n "$(local_file "$MD" $m)" ] || fail "$P: 1.5 days on: $m did not arrive"
	done

	# ---- 3 days on, -k: nothing deleted
	run_at '+3d' -vv -k -c "$T/$P.ini"
	expect_rc 0 "$P: -k 3 days on"
	[ "$(deletes "$P")" -eq 0 ] || fail "$P: -k 3 days on sent $(deletes "$P") delete command(s)"
	server_has "$P: -k 3 days on" "$U" $ALL

	# ---- 3 days on, dry run: names exactly what the real run will delete
	run_at '+3d' -n --json -c "$T/$P.ini"
	expect_rc 0 "$P: dry run 3 days on"
	cp "$T/out" "$T/dry-$P.json"
	server_has "$P: dry run 3 days on" "$U" $ALL
	DRY_BAD=$("$MP_PY" - "$T/dry-$P.json" <<'PY'
import json, sys
dele, bad = set(), []
for l in open(sys.argv[1]).read().splitlines():
    try:
        o = json.loads(l)
    except ValueError:
        bad.append("not JSON: %r" % l[:80]); continue
    if o.get("decision") == "delete":
        dele.add(o.get("uid"))
        if "taken before" not in (o.get("why") or ""):
            bad.append("why for a retention delete: %r" % o.get("why"))
    else:
        bad.append("unexpected decision %r for uid %s" % (o.get("decision"), o.get("uid")))
if len(dele) != 3:
    bad.append("%d would-be deletions reported, expected 3 (untouched1, untouched2, read)" % len(dele))
print("; ".join(bad[:4]))
PY
)

	# ---- 3 days on: set A's present ones go; removed/moved and set B stay
	run_at '+3d' -vv -c "$T/$P.ini"
	expect_rc 0 "$P: run 3 days on"
	cp "$T/err" "$T/trace3d-$P"
	[ "$(deletes "$P")" -gt 0 ] || fail "$P: 3 days on: no delete command sent"
	server_lacks "$P: 3 days on, delivered 3 days ago, local copy present" "$U" untouched1 untouched2
	server_lacks "$P: 3 days on, renamed by a mail reader (new/ -> cur/ :2,S)" "$U" read
	server_has "$P: 3 days on, local copy removed" "$U" removed
	server_has "$P: 3 days on, local copy moved out of the Maildir" "$U" movedout
	server_has "$P: 3 days on, local copy moved into .Archive" "$U" archived
	server_has "$P: 3 days on, delivered 1.5 days before" "$U" later1 later2
	[ "$(dc_count "$DC_DIR" "$U")" -eq 5 ] ||
		fail "$P: 3 days on: $(dc_count "$DC_DIR" "$U") messages on the server, expected 5"
	local_present "$MD" $((left + 2)) "$P: 3 days on (nothing downloaded again, nothing removed locally)"
	[ -z "$(local_file "$MD" removed)" ] || fail "$P: 3 days on: the removed message was downloaded again"
	[ -n "$(local_file "$MD" read)" ] || fail "$P: 3 days on: the read message is gone locally"

	# ---- 5 days on: set B (delivered 3.5 days before) goes too
	run_at '+5d' -vv -c "$T/$P.ini"
	expect_rc 0 "$P: run 5 days on"
	server_lacks "$P: 5 days on, delivered 3.5 days before" "$U" later1 later2
	server_has "$P: 5 days on, local copy removed or moved" "$U" removed movedout archived
	[ "$(dc_count "$DC_DIR" "$U")" -eq 3 ] ||
		fail "$P: 5 days on: $(dc_count "$DC_DIR" "$U") messages on the server, expected 3"
	local_present "$MD" $((left + 2)) "$P: 5 days on"

	# the dry run's report is judged at the end, so that a wrong one does
	# not hide what the real runs do (over both protocols)
	[ -z "$DRY_BAD" ] || DRY_FAIL="${DRY_FAIL:+$DRY_FAIL; }$P: $DRY_BAD"
}

DRY_FAIL=""
retention pop3 "$MP_USER" "$MP_PASS" "$DC_POP3S"
retention imap "$MP_RCPT" "pw-r-t_22_retention-S3cret" "$DC_IMAPS"
[ -z "$DRY_FAIL" ] || fail "dry run 3 days on (keep = 2) does not report what the real run then deletes: $DRY_FAIL"
echo "RESULT: keep = 2 over POP3 and IMAP: nothing deleted at once, at +1.5 d or with -k; at +3 d the 3 present ones deleted, removed/moved ones and later ones kept; at +5 d the later ones deleted; dry run = real run"
