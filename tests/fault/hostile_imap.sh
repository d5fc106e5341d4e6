#!/bin/sh
# Awkward and failing IMAP servers (tests/fault/fake_imap.py): a
# UIDVALIDITY change with a message another client flagged \Deleted, two
# identical copies after a UIDVALIDITY change, UIDNEXT going down under the
# same UIDVALIDITY (a server restored from a backup), no UIDPLUS with an
# ESEARCH answer, IMAP4rev2 without UIDPLUS, a NO to SELECT of one of two
# folders, a NO to the body UID FETCH.
# Each checks the exit status, stderr, the Maildir byte for byte and the
# commands the fake received ("C <conn> <command> [names]" in its log) and
# what the server holds after each connection ("# <conn> box ...").
set -eu
. "$MP_LIB"

FAKE="$TESTS/fault/fake_imap.py"
FAKE_PIDS=""
trap 'for p in $FAKE_PIDS; do kill "$p" 2>/dev/null || true; done' EXIT
trap 'exit 143' TERM INT HUP
MP_TIMEOUT=15

# ------------------------------------------------------------ the messages
# m01..m05 and n01, n02 (the "new" ones of a restored server): LF line ends
# as a mailbox stores them (the fake serves CRLF), lines starting with a
# dot, 8-bit bytes, each its own Message-ID.
mkdir -p "$T/msgs"
"$MP_PY" - "$T/msgs" <<'PY'
import os, sys
d = sys.argv[1]
for kind, n in (("m", 5), ("n", 2)):
    for i in range(1, n + 1):
        h = ("From: Sender <s@example.org>\nTo: r@example.net\n"
             "Subject: hostile imap %s%d\nMessage-ID: <imap.%s%d@mailpull.test>\n"
             "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
             "Content-Transfer-Encoding: 8bit\n\n" % (kind, i, kind, i)).encode()
        body = [b"line %d of %s%d: caf\xc3\xa9 \xe2\x82\xac" % (j, kind.encode(), i)
                for j in range(20 + 7 * i)]
        body[3:3] = [b".", b"..two dots", b")", b"* 1 FETCH (fake)"]
        body.append(b"end of %s%d" % (kind.encode(), i))
        open(os.path.join(d, "%s%02d" % (kind, i)), "wb").write(h + b"\n".join(body) + b"\n")
PY

# ------------------------------------------------------------ helpers

# scen NAME: a fresh directory $S for one scenario; no folders yet
scen() {
	S="$T/$1"
	SCEN=$1
	BOX1="" BOX2=""
	rm -rf "$S"
	mkdir -p "$S"
	note "--- $1"
}

# fake ACTIONS...: start the fake with the folders $BOX1 (and $BOX2), one
# connection per argument (its actions, see fake_imap.py); sets FPORT FPID
# FLOG (the log is $S/fake.log)
fake() {
	for c do set -- "$@" --conn "$c"; shift; done
	[ -z "$BOX2" ] || set -- --box "$BOX2" "$@"
	set -- --box "$BOX1" "$@"
	FLOG="$S/fake.log"
	rm -f "$S/port"
	"$MP_PY" "$FAKE" --port-file "$S/port" --log "$FLOG" --msgs "$T/msgs" \
		--time-limit 25 --pass fakepw "$@" >"$S/fake.out" 2>&1 &
	FPID=$!
	FAKE_PIDS="$FAKE_PIDS $FPID"
	i=0
	while [ ! -s "$S/port" ]; do
		i=$((i + 1))
		[ $i -le 100 ] || fail "$SCEN: the fake server did not start: $(cat "$S/fake.out")"
		kill -0 "$FPID" 2>/dev/null || fail "$SCEN: the fake server died: $(cat "$S/fake.out")"
		sleep 0.05
	done
	FPORT=$(cat "$S/port")
}

# fake_done: wait (bounded) until the fake has served all its connections
fake_done() {
	i=0
	while kill -0 "$FPID" 2>/dev/null; do
		i=$((i + 1))
		if [ $i -gt 100 ]; then
			kill "$FPID" 2>/dev/null || true
			fail "$SCEN: the fake server still waits for a connection 5 s after mailpull ended; its log: $(tail -3 "$FLOG" | tr '\n' '|')"
		fi
		sleep 0.05
	done
	wait "$FPID" 2>/dev/null || true
	grep -q '^# time limit' "$FLOG" && fail "$SCEN: the fake server hit its time limit"
	grep -q '^# done$' "$FLOG" || fail "$SCEN: the fake server ended badly: $(tail -3 "$S/fake.out" | tr '\n' '|')"
}

# fconf [key=value...]: $S/c.ini for the fake (keep = yes unless given)
fconf() {
	{
		conf_general "state=$S/state.db" timeout=5
		conf_account test protocol=imap host=127.0.0.1 "port=$FPORT" tls=none \
			ca_file=- user=fakeuser password=fakepw auth=user allow_plaintext=yes \
			keep=yes "deliver=maildir:$S/Maildir" "$@"
	} >"$S/c.ini"
	chmod 600 "$S/c.ini"
}

# mp TAG ARGS...: run mailpull; keep stderr as $S/err.TAG
mp() {
	local tag
	tag=$1; shift
	run_mp "$@" -c "$S/c.ini"
	cp "$T/err" "$S/err.$tag"
	ERR="$S/err.$tag"
}

show_err() { tr '\n' '|' <"$ERR" | cut -c1-700; }

# err_has ERE WHAT / err_count ERE N WHAT
err_has() { grep -Eq -- "$1" "$ERR" || fail "$SCEN: $2: no stderr line like /$1/: $(show_err)"; }
err_count() {
	n=$(grep -Ec -- "$1" "$ERR" || true)
	[ "$n" -eq "$2" ] || fail "$SCEN: $3: $n stderr line(s) like /$1/, expected $2: $(show_err)"
}

show_log() { grep -E '^(C|# [0-9]+ (box|expunged|select|fetch-no|search))' "$FLOG" | grep -v ' LOGIN ' | tr '\n' '|' | cut -c1-700; }
# log_has ERE WHAT / log_lacks ERE WHAT: the fake's log
log_has() { grep -Eq -- "$1" "$FLOG" || fail "$SCEN: $2: the fake's log has no line like /$1/: $(show_log)"; }
log_lacks() { l=$(grep -E -- "$1" "$FLOG" | head -1 || true); [ -z "$l" ] || fail "$SCEN: $2: the fake received \"$l\""; }

# names ERE: the message names in the [...] of the fake's log lines like
# ERE, sorted, each once, space-separated
names() {
	grep -E -- "$1" "$FLOG" | sed -n 's/.*\[\([^][]*\)\]$/\1/p' | tr ' ' '\n' |
		grep . | sort -u | tr '\n' ' ' | sed 's/ $//' || true
}
# body_names CONN: messages whose bodies connection CONN asked for
body_names() { names "^C $1 [^ ]+ UID FETCH [^ ]+ \\(UID BODY\\.PEEK\\[\\]\\)"; }
# store_names CONN: messages connection CONN flagged (UID STORE)
store_names() { names "^C $1 [^ ]+ UID STORE "; }
# expect_names WHAT GOT WANT
expect_names() { [ "$2" = "$3" ] || fail "$SCEN: $1: \"$2\", expected \"$3\"; fake log: $(show_log)"; }

# box CONN FOLDER: what FOLDER held after connection CONN, "name[/flags] ..."
# (UIDs dropped)
box() {
	l=$(grep -E "^# $1 box $2 " "$FLOG" | head -1)
	[ -n "$l" ] || fail "$SCEN: no box line for connection $1, folder $2 in the fake's log"
	echo "${l#*: }" | sed 's/[0-9]*://g'
}
expect_box() { got=$(box "$1" "$2"); [ "$got" = "$3" ] || fail "$SCEN: $4: $2 holds \"$got\" after connection $1, expected \"$3\""; }

# want NAME...: $S/want holds these source files (a name twice: two copies)
want() {
	rm -rf "$S/want"
	mkdir -p "$S/want"
	k=0
	for u in "$@"; do k=$((k + 1)); cp "$T/msgs/$u" "$S/want/$u.$k"; done
}

# md_exact MAILDIR WHAT: MAILDIR (new/ and cur/: a message flagged on the
# server lands in cur/) holds exactly $S/want, byte for byte; tmp/ empty
md_exact() {
	[ "$(count_files "$1/tmp")" -eq 0 ] || fail "$SCEN: $2: $(count_files "$1/tmp") file(s) left in $1/tmp"
	rm -rf "$S/flat"
	mkdir -p "$S/flat/new" "$S/flat/cur" "$S/flat/tmp"
	for sub in new cur; do
		if [ -d "$1/$sub" ]; then
			find "$1/$sub" -maxdepth 1 -type f -exec cp {} "$S/flat/new/" \;
		fi
	done
	assert_maildir "$S/want" "$S/flat" "$SCEN: $2"
	# (compare_maildir lets a second identical copy be missing)
	n=$(count_files "$S/flat/new")
	[ "$n" -eq "$(count_files "$S/want")" ] ||
		fail "$SCEN: $2: $n message(s) in the Maildir, expected $(count_files "$S/want")"
}

# result_of MESSAGE-ID: the result recorded in the state for that message
result_of() {
	"$MP_PY" -c 'import sqlite3, sys
db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
print(" ".join(r[0] for r in db.execute("SELECT result FROM seen WHERE message_id = ? ORDER BY uid", (sys.argv[2],))))' "$S/state.db" "$1"
}

SRV_RE="^mailpull: test: 127\\.0\\.0\\.1"
RESULTS=""
ok() { RESULTS="$RESULTS $SCEN"; }

# ------------------------------------------------------------ 1. UIDVALIDITY change, a \Deleted message
# Run 1 (keep = no) takes m01, m02, m03; m02 carries \Deleted from another
# client: taken, recorded "flagged-deleted", never flagged or expunged by
# us; m01 and m03 are expunged. Then the folder comes back under a new
# UIDVALIDITY (restored from a backup: the same three, new UIDs) with a
# new m04: run 2 matches the three by Message-ID and size, takes m04 only,
# and never names m02 in a STORE or EXPUNGE.
scen uidvalidity
BOX1='INBOX=m01,m02/D,m03'
fake normal 'uv=INBOX:2000 reset=INBOX:m03,m01,m02/D,m04'
fconf keep=no
mp 1
expect_rc 0 "$SCEN: run 1, m02 flagged \\Deleted by another client"
want m01 m02 m03
md_exact "$S/Maildir" "after run 1"
r=$(result_of '<imap.m2@mailpull.test>')
[ "$r" = flagged-deleted ] || fail "$SCEN: m02 recorded as \"$r\" after run 1, expected \"flagged-deleted\""
mp 2
UV_RC=$MP_RC
[ "$MP_RC" -eq 0 ] || [ "$MP_RC" -eq 75 ] || expect_rc 0 "$SCEN: run 2, after the UIDVALIDITY change"
err_count "$SRV_RE:$FPORT: folder INBOX: UIDVALIDITY changed \\(1000, now 2000\\): 3 of 4 messages matched" 1 "the rematch line"
want m01 m02 m03 m04
md_exact "$S/Maildir" "after run 2"
r=$(result_of '<imap.m2@mailpull.test>')
case "$r" in *delivered*|'') fail "$SCEN: m02 recorded as \"$r\" after run 2" ;; esac
fake_done
expect_names "messages flagged in run 1" "$(store_names 1)" "m01 m03"
log_lacks '^C 1 [^ ]+ EXPUNGE' "a plain EXPUNGE (the server has UIDPLUS)"
expect_box 1 INBOX "m02/D" "run 1 expunged m01 and m03 only"
expect_names "bodies fetched in run 2" "$(body_names 2)" "m04"
log_lacks '^C 2 [^ ]+ UID (STORE|EXPUNGE) .*\[.*m02' "a STORE/EXPUNGE naming the \\Deleted m02 in run 2"
log_lacks '^C 2 [^ ]+ EXPUNGE' "a plain EXPUNGE in run 2"
case " $(box 2 INBOX) " in *" m02/D "*) ;; *) fail "$SCEN: m02 is gone from the server after run 2: $(box 2 INBOX)" ;; esac
UV_STORED=$(store_names 2)
note "run 2: exit $UV_RC; flagged \\Deleted: ${UV_STORED:-nothing}; server holds: $(box 2 INBOX)"
ok

# ------------------------------------------------------------ 2. two copies after a UIDVALIDITY change
scen dup_copies
BOX1='INBOX=m01,m02'
fake normal 'uv=INBOX:2000 reset=INBOX:m01,m02,m01' normal
fconf
mp 1
expect_rc 0 "$SCEN: run 1"
want m01 m02
md_exact "$S/Maildir" "after run 1"
mp 2
expect_rc 0 "$SCEN: run 2, m01 twice under a new UIDVALIDITY"
err_count "$SRV_RE:$FPORT: folder INBOX: UIDVALIDITY changed \\(1000, now 2000\\): 2 of 3 messages matched" 1 "the rematch line"
want m01 m02 m01
md_exact "$S/Maildir" "after run 2 (the second copy of m01 taken)"
mp 3
expect_rc 0 "$SCEN: run 3, nothing new"
md_exact "$S/Maildir" "after run 3"
fake_done
n=$(grep -Ec '^C 2 [^ ]+ UID FETCH [^ ]+ \(UID BODY\.PEEK\[\]\)' "$FLOG" || true)
[ "$n" -eq 1 ] || fail "$SCEN: $n body fetches in run 2, expected 1: $(show_log)"
log_has '^C 2 [^ ]+ UID FETCH [0-9]+ \(UID BODY\.PEEK\[\]\) \[m01\]$' "one copy of m01 fetched in run 2"
log_lacks '^C 3 [^ ]+ UID FETCH [^ ]+ \(UID BODY' "a body fetched in run 3"
ok

# ------------------------------------------------------------ 3. UIDNEXT goes down
# Run 1 (keep = no, but -k) takes m01..m03 (UIDs 1-3, UIDNEXT 4) and
# deletes nothing. The server is restored from a backup: UIDs 1-2 now name
# n01, n02, UIDNEXT 3, the same UIDVALIDITY. Run 2 must not delete UIDs 1-2
# (they are not what it took), nor take anything; run 3 with -a takes n01
# and n02 and deletes only those.
scen uidnext_down
BOX1='INBOX=m01,m02,m03'
fake normal 'reset=INBOX:n01,n02' normal
fconf keep=no
mp 1 -k
expect_rc 0 "$SCEN: run 1 (-k)"
want m01 m02 m03
md_exact "$S/Maildir" "after run 1"
mp 2
expect_rc 75 "$SCEN: run 2, UIDNEXT down from 4 to 3"
err_count "$SRV_RE:$FPORT: folder INBOX: UIDNEXT went down \\(4, now 3\\)" 1 "the UIDNEXT warning"
md_exact "$S/Maildir" "after run 2 (nothing taken)"
mp 3 -a
expect_rc 0 "$SCEN: run 3 (-a)"
want m01 m02 m03 n01 n02
md_exact "$S/Maildir" "after run 3"
fake_done
log_lacks '^C 1 [^ ]+ (UID )?(STORE|EXPUNGE)' "a STORE/EXPUNGE with -k"
log_lacks '^C 2 [^ ]+ (UID )?(STORE|EXPUNGE)' "a STORE/EXPUNGE after UIDNEXT went down"
log_lacks '^C 2 [^ ]+ UID FETCH [^ ]+ \(UID BODY' "a body fetched after UIDNEXT went down"
expect_box 2 INBOX "n01 n02" "run 2 left the restored folder alone"
expect_names "bodies fetched in run 3 (-a)" "$(body_names 3)" "n01 n02"
expect_names "messages flagged in run 3 (-a)" "$(store_names 3)" "n01 n02"
expect_box 3 INBOX "-" "run 3 deleted what it took"
ok

# ------------------------------------------------------------ 4. no UIDPLUS, ESEARCH
# keep = no on a server without UIDPLUS that answers UID SEARCH DELETED
# with ESEARCH: mailpull cannot tell whether other messages carry
# \Deleted, so it must not send EXPUNGE. Run 2: the same. Run 3: a plain
# SEARCH answer naming only ours: now EXPUNGE.
scen esearch
BOX1='INBOX=m01,m02,m03'
fake 'caps=IMAP4rev1,AUTH=PLAIN esearch' 'caps=IMAP4rev1,AUTH=PLAIN esearch' 'caps=IMAP4rev1,AUTH=PLAIN'
fconf keep=no
mp 1
expect_rc 75 "$SCEN: run 1, ESEARCH answer, no UIDPLUS"
err_count "$SRV_RE:$FPORT: .*no SEARCH reply" 1 "the warning that nothing is expunged"
err_count "3 messages \\([0-9]+ bytes\\) delivered, 0 deleted on the server" 1 "the summary counting no deletion"
want m01 m02 m03
md_exact "$S/Maildir" "after run 1"
mp 2
expect_rc 75 "$SCEN: run 2, still ESEARCH"
md_exact "$S/Maildir" "after run 2"
mp 3
expect_rc 0 "$SCEN: run 3, a SEARCH answer"
md_exact "$S/Maildir" "after run 3"
fake_done
log_has '^C 1 [^ ]+ UID SEARCH DELETED$' "UID SEARCH DELETED in run 1"
log_lacks '^C [12] [^ ]+ (UID )?EXPUNGE' "an EXPUNGE without a SEARCH answer"
expect_box 1 INBOX "m01/D m02/D m03/D" "run 1 flagged, expunged nothing"
expect_box 2 INBOX "m01/D m02/D m03/D" "run 2 expunged nothing"
log_lacks '^C [23] [^ ]+ UID FETCH [^ ]+ \(UID BODY' "a body fetched again"
log_has '^C 3 [^ ]+ EXPUNGE$' "EXPUNGE once SEARCH shows only ours"
expect_box 3 INBOX "-" "run 3 expunged"
ok

# ------------------------------------------------------------ 5. IMAP4rev2 without UIDPLUS
scen rev2
BOX1='INBOX=m01,m02,m03'
fake 'caps=IMAP4rev2,AUTH=PLAIN'
fconf keep=no
mp 1
expect_rc 0 "$SCEN: keep = no, IMAP4rev2 without UIDPLUS"
want m01 m02 m03
md_exact "$S/Maildir" "after the run"
fake_done
expect_names "messages flagged" "$(store_names 1)" "m01 m02 m03"
expect_names "messages named by UID EXPUNGE" "$(names '^C 1 [^ ]+ UID EXPUNGE ')" "m01 m02 m03"
log_lacks '^C 1 [^ ]+ (UID SEARCH|EXPUNGE)' "SEARCH or a plain EXPUNGE with IMAP4rev2"
expect_box 1 INBOX "-" "all expunged"
ok

# ------------------------------------------------------------ 6. NO to SELECT of one folder
scen select_no
BOX1='INBOX=m01,m02'
BOX2='Archive=m03,m04'
fake 'select-no=INBOX' normal
fconf 'folders=*'
mp 1
expect_rc 75 "$SCEN: SELECT INBOX refused"
err_count "INBOX" 1 "lines naming INBOX"
err_has "$SRV_RE:$FPORT: folder INBOX: cannot select" "the error line for INBOX"
l=$(grep -Ev "INBOX|^mailpull: test: 2 messages \\([0-9]+ bytes\\) delivered, 0 deleted on the server$" "$ERR" | head -1 || true)
[ -z "$l" ] || fail "$SCEN: unexpected stderr line: $l"
want
md_exact "$S/Maildir" "INBOX after run 1"
want m03 m04
md_exact "$S/Maildir/.Archive" "Archive after run 1"
mp 2
expect_rc 0 "$SCEN: run 2, INBOX selectable"
want m01 m02
md_exact "$S/Maildir" "INBOX after run 2"
want m03 m04
md_exact "$S/Maildir/.Archive" "Archive after run 2"
fake_done
first=$(grep -E '^C 1 [^ ]+ SELECT ' "$FLOG" | head -1)
case "$first" in *'SELECT "INBOX"') ;; *) fail "$SCEN: the first SELECT is \"$first\", not INBOX: the test does not test what it says" ;; esac
log_has '^C 1 [^ ]+ SELECT "Archive"$' "SELECT of Archive after the refused INBOX"
expect_names "bodies fetched in run 1" "$(body_names 1)" "m03 m04"
expect_names "bodies fetched in run 2" "$(body_names 2)" "m01 m02"
ok

# ------------------------------------------------------------ 7. NO to the body UID FETCH
scen fetch_no
BOX1='INBOX=m01,m02,m03,m04,m05'
fake 'fetch-no=m02,m04' normal
fconf keep=no
mp 1
expect_rc 75 "$SCEN: run 1, a NO to the body fetch"
err_count "$SRV_RE:$FPORT: .*FETCH.*could not be FETCHed" 1 "the warning with the server's text"
want m01 m03 m05
md_exact "$S/Maildir" "after run 1"
mp 2
expect_rc 0 "$SCEN: run 2, the server sends m02 and m04"
want m01 m02 m03 m04 m05
md_exact "$S/Maildir" "after run 2"
fake_done
log_has '^# 1 fetch-no INBOX: 2:m02 4:m04$' "the fake refused m02 and m04"
expect_names "messages flagged in run 1" "$(store_names 1)" "m01 m03 m05"
expect_box 1 INBOX "m02 m04" "after run 1"
expect_names "bodies fetched in run 2" "$(body_names 2)" "m02 m04"
expect_names "messages flagged in run 2" "$(store_names 2)" "m02 m04"
expect_box 2 INBOX "-" "after run 2"
FNO_ERR=$(cat "$S/err.1")
note "run 1 stderr: $FNO_ERR"
ok

echo "RESULT: passed:$RESULTS (UIDVALIDITY run 2 exit $UV_RC, flagged in it: ${UV_STORED:-nothing})"
