#!/bin/sh
# (21) Look before downloading. A mailbox mixing X-Spam-Flag: YES,
# X-Spam-Status: Yes, RFC 2047 encoded Subjects, a spammer's From and big
# and small messages, polled over POP3 with filters:
#   - the dry run (--json) says per message what will happen, and the real
#     run then does exactly that;
#   - refused messages are never downloaded: the -vv trace has TOP for every
#     message and RETR only for the taken ones;
#   - skip leaves them on the server, delete removes them unread (with keep =
#     yes), deliver:TARGET routes them to a junk Maildir;
#   - the next poll does not examine skipped ones again (no TOP at all);
#     after the filters change, they are examined again (TOP for each) and
#     the ones no filter refuses any more are taken;
#   - the same filters over IMAP (BODY.PEEK[HEADER], then BODY.PEEK[] only
#     for the taken ones).
set -eu
. "$MP_LIB"

mkdir -p "$T/src"
n=0
msg() { # NAME HEADERS... (then a body)
	name=$1; shift
	n=$((n + 1))
	{
		printf 'Return-Path: <sender@example.org>\n'
		for h in "$@"; do printf '%s\n' "$h"; done
		printf 'Message-ID: <%s.t21@example.org>\n\nBody of %s.\n' "$name" "$name"
	} >"$T/src/$name.eml"
}
msg take1 'From: Alice <alice@example.org>' 'Subject: take1 lunch?'
msg take2 'From: Bob <bob@example.org>' 'Subject: =?UTF-8?B?dGFrZTIgR3LDvMOfZQ==?=' 'X-Spam-Flag: NO'
msg take3 'From: carol@example.org' 'Subject: take3 quarterly' 'X-Spam-Status: No, score=0.1'
msg spamflag1 'From: x@example.net' 'Subject: spamflag1 hello' 'X-Spam-Flag: YES'
msg spamflag2 'From: y@example.net' 'Subject: spamflag2' 'X-Spam-Flag:   yes  '
msg spamstatus1 'From: z@example.net' 'Subject: spamstatus1' 'X-Spam-Status: Yes, score=9.9'
msg junk1 'From: shop@example.com' 'Subject: =?ISO-8859-1?Q?junk1_Sonderangebot_f=FCr_Sie?='
msg junk2 'From: shop@example.com' 'Subject: =?utf-8?q?junk2_Sonderangebot?= =?utf-8?q?_heute?='
msg nuke1 'From: "Spammer" <bulk@spammer.example>' 'Subject: nuke1 win'
msg nuke2 'From: bulk@SPAMMER.example' 'Subject: nuke2 win'
# big: 1.5 MB, matched by the size-only filter
msg big1 'From: alice@example.org' 'Subject: big1 photos'
head -c 1500000 /dev/zero | tr '\0' 'x' | fold -w 76 >>"$T/src/big1.eml"
put_dir "$T/src"
total=$(count_files "$T/src")

cat >"$T/filters.ini" <<EOF
[filter spam]
header = X-Spam-Flag: ^yes\$
action = skip

[filter status]
header = X-Spam-Status: ^yes
action = skip

[filter nuke]
from = @spammer\\.example>?\$
action = delete

[filter huge]
larger_than = 1M
action = skip

[filter junk]
header = Subject: sonderangebot
action = deliver:maildir:$T/junk
EOF
mkfilters() { # FILE [spam-regex]
	{ conf_general; conf_account test keep=yes auth=user "filter=spam, status, nuke, huge, junk"
	  sed "s/\\^yes\\\$/${2:-^yes\$}/" "$T/filters.ini"; } >"$1"
	chmod 600 "$1"
}
mkfilters "$T/c.ini"

# ---- 1: the dry run says what will happen
run_mp -n --json -c "$T/c.ini"
expect_rc 0 "dry run with filters"
cp "$T/out" "$T/dry.json"
"$MP_PY" - "$T/dry.json" "$total" <<'PY' || fail "dry run report: see above"
import json, sys
lines = open(sys.argv[1]).read().splitlines()
want = {"take1": ("take", None), "take2": ("take", None), "take3": ("take", None),
        "spamflag1": ("skip", "spam"), "spamflag2": ("skip", "spam"),
        "spamstatus1": ("skip", "status"), "junk1": ("deliver", "junk"),
        "junk2": ("deliver", "junk"), "nuke1": ("delete", "nuke"),
        "nuke2": ("delete", "nuke"), "big1": ("skip", "huge")}
bad = []
if len(lines) != int(sys.argv[2]):
    bad.append("%d lines for %s messages" % (len(lines), sys.argv[2]))
seen = set()
for l in lines:
    o = json.loads(l)
    name = (o.get("subject") or "").split(" ")[0]
    if name not in want:
        bad.append("unexpected subject %r" % o.get("subject")); continue
    seen.add(name)
    if (o["decision"], o["filter"]) != want[name]:
        bad.append("%s: %s/%s, expected %s/%s" % ((name, o["decision"], o["filter"]) + want[name]))
    if o["account"] != "test" or not o["uid"] or not o["size"]:
        bad.append("%s: account/uid/size missing: %r" % (name, o))
    if name == "take2" and o["subject"] != "take2 Grüße":
        bad.append("take2: Subject not decoded: %r" % o["subject"])
    if o["decision"] == "deliver" and not o["target"].startswith("maildir:"):
        bad.append("%s: no target: %r" % (name, o))
for name in want:
    if name not in seen:
        bad.append("%s not reported" % name)
for b in bad[:8]:
    print(b)
sys.exit(1 if bad else 0)
PY
[ ! -e "$T/Maildir" ] && [ ! -e "$T/junk" ] || fail "the dry run created a Maildir"
[ "$(server_count)" -eq "$total" ] || fail "the dry run changed the server"

# ---- 2: the real run does what the dry run said, downloading only those
run_mp -vv -c "$T/c.ini"
expect_rc 0 "poll with filters"
tops=$(grep -c ': > TOP [0-9]* 0$' "$T/err" || true)
retrs=$(grep -c ': > RETR ' "$T/err" || true)
[ "$tops" -eq "$total" ] || fail "expected one TOP per message ($total), saw $tops"
[ "$retrs" -eq 5 ] || fail "expected RETR for the 5 taken/routed messages only, saw $retrs"
mkdir -p "$T/want" "$T/wantjunk"
cp "$T/src/take1.eml" "$T/src/take2.eml" "$T/src/take3.eml" "$T/want/"
cp "$T/src/junk1.eml" "$T/src/junk2.eml" "$T/wantjunk/"
assert_maildir "$T/want" "$T/Maildir" "taken messages"
assert_maildir "$T/wantjunk" "$T/junk" "routed messages"
[ "$(server_count)" -eq $((total - 2)) ] ||
	fail "keep = yes: $(server_count) on the server, expected $((total - 2)) (only the delete-filter ones gone)"
srv=$(dc_maildir "$DC_DIR" "$MP_USER")
for gone in nuke1 nuke2; do
	! grep -rqF "<$gone.t21@" "$srv" || fail "$gone (filter delete) is still on the server"
done
for kept in spamflag1 spamflag2 spamstatus1 big1 take1 junk1; do
	grep -rqF "<$kept.t21@" "$srv" || fail "$kept is gone from the server (keep = yes)"
done
grep -q 'filters: 4 skipped, 2 deleted unread, 2 routed' "$T/err" ||
	fail "no summary of the filters' work: $(grep -v ': [<>] ' "$T/err" | tail -2 | tr '\n' '|')"

# --status: the same counts, per filter
run_mp -s -c "$T/c.ini"
expect_rc 0 "--status after the filtered poll"
grep -q '^  5 taken ([0-9]* bytes), 4 skipped, 2 deleted unread, 2 routed, 0 rejected, 0 pending$' "$T/out" ||
	fail "--status: wrong totals: $(cat "$T/out" | tr '\n' '|')"
for want in 'filter spam: 2 skipped' 'filter status: 1 skipped' 'filter huge: 1 skipped' \
    'filter nuke: 2 deleted unread' 'filter junk: 2 routed'; do
	grep -q "^    $want\$" "$T/out" || fail "--status: no line '$want': $(cat "$T/out" | tr '\n' '|')"
done

# ---- 3: nothing is examined again while the filters stay as they are
run_mp -vv -c "$T/c.ini"
expect_rc 0 "second poll"
tops=$(grep -c ': > TOP ' "$T/err" || true)
[ "$tops" -eq 0 ] || fail "the second poll sent $tops TOP: skipped messages were examined again"

# ---- 4: the filters change: skipped ones are examined again
mkfilters "$T/c2.ini" '^never$'
run_mp -vv -c "$T/c2.ini"
expect_rc 0 "poll after the filters changed"
tops=$(grep -c ': > TOP ' "$T/err" || true)
[ "$tops" -eq 4 ] || fail "after the filters changed: expected TOP for the 4 skipped messages, saw $tops"
cp "$T/src/spamflag1.eml" "$T/src/spamflag2.eml" "$T/want/"
assert_maildir "$T/want" "$T/Maildir" "after the filters changed (X-Spam-Flag no longer refused)"

# ---- 5: IMAP: headers first, bodies only for what is taken
dc_add "$DC_DIR" "$MP_RCPT" "$T/src"/*.eml
{ conf_general "state=$T/imap.db"
  conf_account test protocol=imap "port=$DC_IMAPS" "user=$MP_RCPT" \
	"password=pw-r-t_21_filters-S3cret" keep=yes "deliver=maildir:$T/imapmd" \
	"filter=spam, status, nuke, huge, junk"
  sed "s|$T/junk|$T/imapjunk|" "$T/filters.ini"; } >"$T/i.ini"
chmod 600 "$T/i.ini"
run_mp -vv -c "$T/i.ini"
expect_rc 0 "IMAP poll with filters"
bodies=$(grep -o 'BODY\.PEEK\[\][^A-Za-z]' "$T/err" | wc -l)
grep -q 'BODY.PEEK\[HEADER\]' "$T/err" || fail "IMAP: no BODY.PEEK[HEADER] in the trace"
mkdir -p "$T/wantimap"
cp "$T/src/take1.eml" "$T/src/take2.eml" "$T/src/take3.eml" "$T/wantimap/"
assert_maildir "$T/wantimap" "$T/imapmd" "IMAP: taken messages"
assert_maildir "$T/wantjunk" "$T/imapjunk" "IMAP: routed messages"
[ "$(dc_count "$DC_DIR" "$MP_RCPT")" -eq $((total - 2)) ] ||
	fail "IMAP: $(dc_count "$DC_DIR" "$MP_RCPT") on the server, expected $((total - 2))"
# ---- 6: a filter's target that cannot be opened does not block the rest:
# the account's own target gets its messages, the routed ones stay on the
# server unrecorded (taken once the target works), exit 73
touch "$T/notadir"
{ conf_general "state=$T/broken.db"
  conf_account test keep=no auth=user "deliver=maildir:$T/md6" "filter=junk"
  printf '[filter junk]\nheader = Subject: sonderangebot\naction = deliver:maildir:%s/notadir/Junk\n' "$T"; } >"$T/b.ini"
chmod 600 "$T/b.ini"
before=$(server_count)
run_mp -c "$T/b.ini"
expect_rc 73 "a filter's target that cannot be opened"
grep -q 'notadir/Junk: cannot be opened; messages for it stay on the server' "$T/err" ||
	fail "no line naming the broken target: $(head -3 "$T/err" | tr '\n' '|')"
[ "$(md_count "$T/md6")" -eq $((before - 2)) ] ||
	fail "the account's target got $(md_count "$T/md6") of $((before - 2)) while the route target was broken"
[ "$(server_count)" -eq 2 ] || fail "keep = no: $(server_count) left on the server, expected the 2 routed ones"
rm "$T/notadir"
run_mp -c "$T/b.ini"
expect_rc 0 "once the filter's target can be made"
assert_maildir "$T/wantjunk" "$T/notadir/Junk" "routed messages after the target was fixed"
[ "$(server_count)" -eq 0 ] || fail "the routed messages were not deleted once delivered"

echo "RESULT: $total messages; dry run = real run; TOP for all, RETR for 5; 4 skipped, 2 deleted unread, 2 routed; skipped not re-examined, re-examined after the filters changed; IMAP the same; a broken route target blocks nothing"
