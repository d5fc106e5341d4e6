#!/bin/sh
# (23) Limits per poll: max_size and max_messages; the dry run's report.
#   - max_size = 100k: a 300 KB message is left on the server and never
#     downloaded (no RETR for its number in the -vv trace; the dry run says
#     "too big"), the small ones arrive; the next poll does not fetch it
#     either; with max_size = 1M it is taken (the skipped record is examined
#     again because the digest changed).
#   - max_messages = 3: a mailbox of 8 new messages is taken 3, 3, 2 (then
#     0) on successive runs, nothing twice, over POP3 and over IMAP (whose
#     UIDNEXT bookkeeping must keep the rest listed).
#   - -n --json prints one JSON object per line; with keep = no it reports
#     every message taken before as a would-be deletion ("why": taken
#     before), touching nothing, and the real run then deletes exactly those.
set -eu
. "$MP_LIB"

# json_check FILE - every line of FILE is a JSON object with the man page's
# keys; prints the problems
json_check() {
	"$MP_PY" - "$1" <<'PY'
import json, sys
keys = {"account", "folder", "uid", "size", "from", "subject", "decision", "filter", "target", "why"}
for n, l in enumerate(open(sys.argv[1], encoding="utf-8").read().splitlines(), 1):
    try:
        o = json.loads(l)
    except ValueError as e:
        print("line %d is not JSON (%s): %r" % (n, e, l[:100])); continue
    if not isinstance(o, dict):
        print("line %d is not an object" % n); continue
    if set(o) != keys:
        print("line %d keys %s, expected %s" % (n, sorted(o), sorted(keys)))
PY
}
# decisions FILE - "decision<TAB>why" per line of a --json report, sorted
decisions() {
	"$MP_PY" -c 'import json, sys
for l in open(sys.argv[1]):
    o = json.loads(l); print("%s\t%s" % (o["decision"], o["why"]))' "$1" | sort
}
# retrs - RETR commands in the -vv trace ($T/err)
retrs() { grep -c ': > RETR ' "$T/err" || true; }

# ================================================================ max_size
mkdir -p "$T/src"
msg() { # NAME [BYTES of body filler]
	{
		printf 'From: Alice <alice@example.org>\nTo: bob@example.net\n'
		printf 'Subject: %s limits\nMessage-ID: <%s.t23@example.org>\n\nBody of %s.\n' "$1" "$1" "$1"
		[ -z "${2:-}" ] || head -c "$2" /dev/zero | tr '\0' 'y' | fold -w 76
	} >"$T/src/$1.eml"
}
msg small1; msg small2 2000; msg small3 50000; msg small4 90000
msg big1 300000
put_dir "$T/src"
mkdir -p "$T/smalls"
cp "$T/src"/small*.eml "$T/smalls/"

mkconf "$T/c.ini" max_size=100k
run_mp -n --json -c "$T/c.ini"
expect_rc 0 "max_size = 100k, dry run"
cp "$T/out" "$T/dry-size.json"
bad=$(json_check "$T/dry-size.json")
[ -z "$bad" ] || fail "max_size dry run: --json output: $bad"
[ "$(wc -l <"$T/dry-size.json")" -eq 5 ] || fail "max_size dry run: $(wc -l <"$T/dry-size.json") lines for 5 messages"
BIG_UID=$("$MP_PY" -c 'import json, sys
for l in open(sys.argv[1]):
    o = json.loads(l)
    if o["decision"] == "too big" and o["subject"] == "big1 limits": print(o["uid"])' "$T/dry-size.json")
[ -n "$BIG_UID" ] || fail "max_size dry run: big1 not reported as \"too big\": $(grep big1 "$T/dry-size.json")"
n=$(grep -c '"decision":"take"' "$T/dry-size.json" || true)
[ "$n" -eq 4 ] || fail "max_size dry run: $n messages reported as take, expected the 4 small ones"
[ ! -e "$T/Maildir" ] || fail "max_size dry run: created the Maildir"

run_mp -vv -c "$T/c.ini"
expect_rc 0 "max_size = 100k"
cp "$T/err" "$T/trace-size"
BIG_NO=$(sed -n "s/^mailpull: test: < \\([0-9][0-9]*\\) $BIG_UID\$/\\1/p" "$T/err" | head -1)
[ -n "$BIG_NO" ] || fail "max_size: the UIDL line of big1 ($BIG_UID) is not in the -vv trace"
! grep -q ": > RETR $BIG_NO\$" "$T/err" || fail "max_size = 100k: big1 (message $BIG_NO, 300 KB) was downloaded (RETR $BIG_NO in the trace)"
[ "$(retrs)" -eq 4 ] || fail "max_size = 100k: $(retrs) RETR, expected 4 (the small ones)"
assert_maildir "$T/smalls" "$T/Maildir" "max_size = 100k"
[ "$(server_count)" -eq 5 ] || fail "max_size: $(server_count) messages on the server, expected 5 (keep = yes)"

run_mp -vv -c "$T/c.ini"
expect_rc 0 "max_size = 100k, second run"
[ "$(retrs)" -eq 0 ] || fail "max_size = 100k, second run: $(retrs) RETR, expected none"

mkconf "$T/c.ini" max_size=1M
run_mp -vv -c "$T/c.ini"
expect_rc 0 "max_size raised to 1M"
[ "$(retrs)" -eq 1 ] || fail "max_size raised to 1M: $(retrs) RETR, expected 1 (big1)"
grep -q ": > RETR $BIG_NO\$" "$T/err" || fail "max_size raised to 1M: no RETR $BIG_NO (big1)"
assert_maildir "$T/src" "$T/Maildir" "max_size raised to 1M: big1 taken"

# ============================================================ max_messages
mkdir -p "$T/eight"
for i in 01 02 03 04 05 06 07 08; do cp "$MSGS/small/small-$i.eml" "$T/eight/"; done

# DRY_FAIL collects wrong dry-run reports, judged at the end so that they
# do not hide what the real runs do
DRY_FAIL=""

limit() { # PROTO USER PASS PORT
	P=$1 U=$2 PW=$3 PORT=$4
	MD="$T/M-$P"
	cfg() { # keep=...
		{ conf_general "state=$T/$P.db"
		  conf_account test "protocol=$P" "port=$PORT" "user=$U" "password=$PW" \
			max_messages=3 "deliver=maildir:$MD" "$@"; } >"$T/$P.ini"
		chmod 600 "$T/$P.ini"
	}
	cfg keep=yes
	dc_empty "$DC_DIR" "$U"
	dc_add_dir "$DC_DIR" "$U" "$T/eight"

	# what the dry run says will be taken now: no more than a real run takes
	run_mp -n --json -c "$T/$P.ini"
	expect_rc 0 "$P: max_messages = 3, dry run"
	bad=$(json_check "$T/out")
	[ -z "$bad" ] || fail "$P: max_messages dry run: --json output: $bad"
	n=$(grep -c '"decision":"take"' "$T/out" || true)
	[ "$n" -eq 3 ] || DRY_FAIL="${DRY_FAIL:+$DRY_FAIL; }$P, max_messages = 3, 8 new: the dry run says $n will be taken, a real run takes 3"

	total=0
	for want in 3 3 2 0; do
		run_mp -vv -c "$T/$P.ini"
		expect_rc 0 "$P: max_messages = 3, run $((total + want))"
		total=$((total + want))
		[ "$(md_count "$MD")" -eq "$total" ] ||
			fail "$P: max_messages = 3: $(md_count "$MD") messages after this run, expected $total (this run should take $want)"
		if [ "$P" = pop3 ]; then
			[ "$(retrs)" -eq "$want" ] || fail "$P: max_messages = 3: $(retrs) RETR in a run, expected $want"
		fi
	done
	assert_maildir "$T/eight" "$MD" "$P: max_messages = 3, after four runs"
	[ "$(dc_count "$DC_DIR" "$U")" -eq 8 ] || fail "$P: $(dc_count "$DC_DIR" "$U") messages on the server, expected 8 (keep = yes)"

	# keep = no, dry run: the 8 taken before are reported as deletions
	cfg keep=no
	run_mp -n --json -c "$T/$P.ini"
	expect_rc 0 "$P: keep = no, dry run"
	cp "$T/out" "$T/dry-keepno-$P.json"
	bad=$(json_check "$T/out")
	[ -z "$bad" ] || fail "$P: keep = no dry run: --json output: $bad"
	[ "$(dc_count "$DC_DIR" "$U")" -eq 8 ] || fail "$P: keep = no, the dry run deleted on the server"
	got=$(decisions "$T/out" | sort | uniq -c | sed 's/^ *//' | tr '\n' '|')
	case "$got" in
	"8 delete	taken before"*) ;;
	*) DRY_FAIL="${DRY_FAIL:+$DRY_FAIL; }$P, keep = no: the dry run reported \"${got:-nothing}\", expected 8 times delete / taken before" ;;
	esac

	# the real run then deletes them
	run_mp -vv -c "$T/$P.ini"
	expect_rc 0 "$P: keep = no"
	[ "$(dc_count "$DC_DIR" "$U")" -eq 0 ] || fail "$P: keep = no: $(dc_count "$DC_DIR" "$U") messages left on the server, expected 0"
	assert_maildir "$T/eight" "$MD" "$P: keep = no (nothing taken again)"
}

limit pop3 "$MP_USER" "$MP_PASS" "$DC_POP3S"
limit imap "$MP_RCPT" "pw-r-t_23_limits-S3cret" "$DC_IMAPS"
[ -z "$DRY_FAIL" ] || fail "dry run is not what the real run then does: $DRY_FAIL"
echo "RESULT: max_size 100k: 300 KB left unread, taken at 1M; max_messages 3: 3+3+2 over POP3 and IMAP; --json lines parse; keep = no dry run reports the deletions"
