#!/bin/sh
# imap.sh BIN - `make bench`: IMAP throughput of mailpull against mbsync
# (isync) and against a bare `UID FETCH 1:* BODY.PEEK[]`, on a private
# Dovecot over loopback, IMAP without TLS (the tools are compared on protocol
# and delivery). The targets are those of issue 3, "Speed".
#
#  1. full fetch: 2,000 realistic messages (~336 MB) in INBOX, each tool
#     BENCH_RUNS times (fresh state and fresh Maildir every time), median;
#     target: mailpull / mbsync <= 0.5
#  2. unchanged folder: a 20,000-message INBOX already taken once by each
#     tool; time a poll with nothing new; mailpull must send no FETCH
#     (checked in one -vv protocol trace)
#  3. incremental: 10 new messages in that folder; time taking just those 10
#     (BENCH_RUNS rounds, median); target: mailpull / mbsync <= 0.5
#  4. peak RSS (GNU time -v) taking one 60 MB message; target: <= 6 MB
#
# Not a test: prints figures; exits 0 unless a tool failed.
#   BENCH_DIR=path   work directory (default: a new one under /var/tmp, which
#                    is normal disk; /tmp may be tmpfs)
#   BENCH_RUNS=3     runs per tool
#   BENCH_KEEP=1     keep the work directory
set -eu
[ $# -eq 1 ] || { echo "usage: imap.sh /abs/path/to/mailpull" >&2; exit 64; }
BIN=$1
TESTS=$(cd "$(dirname "$0")/.." && pwd)
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
RUNS=${BENCH_RUNS:-3}
GNUTIME=/usr/bin/time

if [ "$(id -u)" -ne 0 ]; then
	echo "bench: needs root (a private Dovecot switching to a mail user)" >&2
	exit 1
fi
sh "$TESTS/servers/deps.sh" isync time
[ -x "$BIN" ] || { echo "bench: $BIN is not an executable" >&2; exit 1; }

W=${BENCH_DIR:-$(mktemp -d /var/tmp/mailpull-bench.XXXXXX)}
mkdir -p "$W"
chmod 755 "$W"
DC_HERE="$TESTS/servers"
. "$TESTS/servers/dovecot.sh"
cleanup() {
	dc_stop "$W/dc"
	if [ "${BENCH_KEEP:-}" = 1 ]; then echo "bench: kept $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

echo "bench: work directory $W ($(df -PT "$W" | awk 'NR==2 {print $2}'))"
dc_add_user "$W/dc" big big-Pa55
dc_add_user "$W/dc" many many-Pa55
dc_add_user "$W/dc" huge huge-Pa55
dc_start "$W/dc"
. "$W/dc/ports.env"
echo "bench: Dovecot on 127.0.0.1:$DC_IMAP (IMAP, no TLS: the tools are compared on protocol and delivery)"

echo "bench: making 2,000 realistic messages (~336 MB) ..."
"$PY" "$TESTS/integration/gen_messages.py" realistic "$W/msgs-big" 2000 336000000 --prefix big >/dev/null
dc_add_dir "$W/dc" big "$W/msgs-big"
BIG_BYTES=$(du -sb "$W/msgs-big" | cut -f1)
BIG_N=$(dc_count "$W/dc" big)
rm -rf "$W/msgs-big"
echo "bench: mailbox 'big': $BIG_N messages, $BIG_BYTES bytes"

now() { "$PY" -c 'import time; print("%.6f" % time.time())'; }
since() { "$PY" -c "import time; print('%.3f' % (time.time() - $1))"; }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { "$PY" -c "print('%.2f' % ($1 / max($2, 1e-6)))"; }
# count_md DIR - messages in a Maildir (new/ + cur/; 0 if missing)
count_md() { find "$1/new" "$1/cur" -maxdepth 1 -type f 2>/dev/null | wc -l; }

# a bare IMAP client: LOGIN, SELECT INBOX, then (fetch) one
# `UID FETCH 1:* BODY.PEEK[]` with every literal read to /dev/null, or
# (select) nothing more - enough to make Dovecot index new mail; LOGOUT.
# Prints how many FETCH responses came back.
raw_imap() { # USER PASS fetch|select
	"$PY" - "$DC_IMAP" "$1" "$2" "$3" <<'PY'
import re, socket, sys
port, user, pw, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
s = socket.create_connection(("127.0.0.1", port))
f = s.makefile("rb", buffering=1 << 20)
lit = re.compile(rb"\{(\d+)\}\r\n$")
out = open("/dev/null", "wb")
def quote(x):
    return b'"' + x.encode().replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
def cmd(tag, c):
    s.sendall(tag + b" " + c + b"\r\n")
    n = 0
    while True:
        l = f.readline()
        if not l:
            sys.exit("raw: connection closed during %r" % c[:40])
        m = lit.search(l)
        while m:        # a literal, then the rest of the response line
            left = int(m.group(1))
            while left:
                b = f.read(min(left, 1 << 20))
                if not b:
                    sys.exit("raw: connection closed in a literal")
                out.write(b)
                left -= len(b)
            l = f.readline()
            m = lit.search(l)
            n += 1
        if l.startswith(tag + b" "):
            if not l.startswith(tag + b" OK"):
                sys.exit("raw: %r" % l)
            return n
if not f.readline().startswith(b"* OK"):
    sys.exit("raw: no greeting")
cmd(b"a1", b"LOGIN " + quote(user) + b" " + quote(pw))
cmd(b"a2", b"SELECT INBOX")
n = cmd(b"a3", b"UID FETCH 1:* BODY.PEEK[]") if mode == "fetch" else 0
cmd(b"a4", b"LOGOUT")
print(n)
PY
}

mbsync_conf() { # FILE USER PASS MAILDIR
	cat >"$1" <<EOF
IMAPAccount bench
Host 127.0.0.1
Port $DC_IMAP
User $2
Pass $3
SSLType None
AuthMechs LOGIN

IMAPStore bench-far
Account bench

MaildirStore bench-near
Inbox $4

Channel bench
Far :bench-far:
Near :bench-near:
Patterns INBOX
Sync Pull
Create Near
Expunge None
SyncState *
EOF
	chmod 600 "$1"
}

mp_conf() { # FILE USER PASS MAILDIR STATE
	cat >"$1" <<EOF
[general]
state   = $5
timeout = 60

[account bench]
protocol        = imap
host            = 127.0.0.1
port            = $DC_IMAP
tls             = none
allow_plaintext = yes
user            = $2
password        = $3
auth            = user
folders         = INBOX
keep            = yes
deliver         = maildir:$4
EOF
	chmod 600 "$1"
}

fresh_md() { rm -rf "$1"; mkdir -p "$1/cur" "$1/new" "$1/tmp"; }

failed=0
run_tool() { # NAME CMD... ; prints seconds, or FAIL
	tool=$1; shift
	# Start each run with nothing dirty in the page cache, so that no tool
	# pays for writing out what the one before it left behind.
	sync
	t0=$(now)
	if "$@" >"$W/tool.out" 2>&1; then
		since "$t0"
	else
		echo "bench: $tool failed (exit $?): $(head -3 "$W/tool.out" | tr '\n' '|')" >&2
		echo FAIL
	fi
}

# warm Dovecot's index and the page cache once, untimed
got=$(raw_imap big big-Pa55 fetch)
[ "$got" -eq "$BIG_N" ] || { echo "bench: the bare client got $got of $BIG_N" >&2; exit 1; }

echo
echo "== full fetch: $BIG_N messages, $((BIG_BYTES / 1000000)) MB, $RUNS runs each"
raw_t="" mbs_t="" mp_t=""
i=0
while [ $i -lt "$RUNS" ]; do
	i=$((i + 1))
	t=$(run_tool raw raw_imap big big-Pa55 fetch); raw_t="$raw_t $t"

	# mbsync makes the Maildir itself (Create Near); its state lives in it
	rm -rf "$W/md-mbs"
	mbsync_conf "$W/mbsyncrc" big big-Pa55 "$W/md-mbs"
	t=$(run_tool mbsync mbsync -q -c "$W/mbsyncrc" bench); mbs_t="$mbs_t $t"
	got=$(count_md "$W/md-mbs")
	[ "$got" -eq "$BIG_N" ] || { echo "bench: mbsync delivered $got of $BIG_N" >&2; mbs_t="$mbs_t FAIL"; }

	fresh_md "$W/md-mp"; rm -f "$W/state-mp.db"*
	mp_conf "$W/mp.ini" big big-Pa55 "$W/md-mp" "$W/state-mp.db"
	t=$(run_tool mailpull "$BIN" -q -c "$W/mp.ini"); mp_t="$mp_t $t"
	got=$(count_md "$W/md-mp")
	[ "$got" -eq "$BIG_N" ] || { echo "bench: mailpull delivered $got of $BIG_N" >&2; mp_t="$mp_t FAIL"; }
	echo "   run $i: bare UID FETCH $(echo $raw_t | awk '{print $NF}') s, mbsync $(echo $mbs_t | awk '{print $NF}') s, mailpull $(echo $mp_t | awk '{print $NF}') s"
done
rm -rf "$W/md-mbs" "$W/md-mp"
case "$raw_t $mbs_t $mp_t" in *FAIL*) failed=1 ;; esac

report() { # LABEL TIMES...
	label=$1; shift
	m=$(median "$@")
	rate=$("$PY" -c "print('%.1f' % ($BIG_BYTES / 1e6 / max($m, 1e-6)))")
	printf '   %-22s median %7.3f s  %7s MB/s   (runs:%s)\n' "$label" "$m" "$rate" " $*"
}
if [ $failed -eq 0 ]; then
	report "bare UID FETCH" $raw_t
	report "mbsync" $mbs_t
	report "mailpull" $mp_t
	echo "   mailpull / mbsync = $(ratio "$(median $mp_t)" "$(median $mbs_t)") (target: at most 0.5)"
fi

echo
echo "== unchanged folder: 20,000-message INBOX already taken; nothing new"
"$PY" "$TESTS/integration/gen_messages.py" realistic "$W/msgs-many" 20000 80M --prefix many >/dev/null
dc_add_dir "$W/dc" many "$W/msgs-many"
MANY_N=$(dc_count "$W/dc" many)
rm -rf "$W/msgs-many"
"$PY" "$TESTS/integration/gen_messages.py" realistic "$W/msgs-new" $((10 * RUNS)) 500k --prefix new --seed 77 >/dev/null
raw_imap many many-Pa55 select >/dev/null   # let Dovecot index the mailbox

rm -rf "$W/md-mbs"; fresh_md "$W/md-mp"; rm -f "$W/state-mp.db"*
mbsync_conf "$W/mbsyncrc" many many-Pa55 "$W/md-mbs"
mp_conf "$W/mp.ini" many many-Pa55 "$W/md-mp" "$W/state-mp.db"
t1=$(run_tool mbsync mbsync -q -c "$W/mbsyncrc" bench)
t2=$(run_tool mailpull "$BIN" -q -c "$W/mp.ini")
a=$(count_md "$W/md-mbs") b=$(count_md "$W/md-mp")
echo "   first take of $MANY_N messages: mbsync $t1 s ($a), mailpull $t2 s ($b)"
case "$t1 $t2" in *FAIL*) failed=1 ;; esac
[ "$a" -eq "$MANY_N" ] || { echo "bench: mbsync took $a of $MANY_N" >&2; failed=1; }
[ "$b" -eq "$MANY_N" ] || { echo "bench: mailpull took $b of $MANY_N" >&2; failed=1; }

if [ $failed -eq 0 ]; then
	# one untraced-by-time poll with the protocol trace: no FETCH allowed
	if "$BIN" -vv -c "$W/mp.ini" >"$W/trace.out" 2>"$W/trace.err"; then
		if ! grep -q ' SELECT ' "$W/trace.err"; then
			echo "   mailpull -vv: no SELECT in the trace (is there a trace?)"
		elif grep ' FETCH ' "$W/trace.err" >"$W/trace.fetch"; then
			echo "   mailpull sent FETCH on an unchanged folder (target: none): $(wc -l <"$W/trace.fetch") line(s), first: $(head -1 "$W/trace.fetch")"
		else
			echo "   mailpull -vv trace of the unchanged poll: no FETCH (target met)"
		fi
	else
		echo "bench: mailpull -vv failed (exit $?): $(grep -v ': [<>] ' "$W/trace.err" | head -3 | tr '\n' '|')" >&2
		failed=1
	fi
fi

unc_mbs="" unc_mp=""
i=0
while [ $failed -eq 0 ] && [ $i -lt "$RUNS" ]; do
	i=$((i + 1))
	t=$(run_tool mbsync mbsync -q -c "$W/mbsyncrc" bench); unc_mbs="$unc_mbs $t"
	t=$(run_tool mailpull "$BIN" -q -c "$W/mp.ini"); unc_mp="$unc_mp $t"
done
case "$unc_mbs $unc_mp" in *FAIL*) failed=1 ;; esac
a=$(count_md "$W/md-mbs") b=$(count_md "$W/md-mp")
[ "$a" -eq "$MANY_N" ] || { echo "bench: mbsync has $a, not $MANY_N, after polls with nothing new" >&2; failed=1; }
[ "$b" -eq "$MANY_N" ] || { echo "bench: mailpull has $b, not $MANY_N, after polls with nothing new" >&2; failed=1; }
if [ $failed -eq 0 ]; then
	m1=$(median $unc_mbs) m2=$(median $unc_mp)
	printf '   %-22s median %7.3f s   (runs:%s)\n' "mbsync" "$m1" "$unc_mbs"
	printf '   %-22s median %7.3f s   (runs:%s)\n' "mailpull" "$m2" "$unc_mp"
	echo "   mailpull / mbsync = $(ratio "$m2" "$m1")"
fi

echo
echo "== incremental: 10 new messages in that 20,000-message INBOX"
inc_mbs="" inc_mp=""
i=0
while [ $failed -eq 0 ] && [ $i -lt "$RUNS" ]; do
	mkdir -p "$W/batch"; rm -f "$W/batch"/*
	for f in $(ls "$W/msgs-new" | sed -n "$((i * 10 + 1)),$((i * 10 + 10))p"); do
		cp "$W/msgs-new/$f" "$W/batch/"
	done
	i=$((i + 1))
	# mbsync sleeps 1 s when its Maildir changed within the current second
	# (its guard against mtime granularity); real polls are minutes apart,
	# so keep it out of the figures: at least 1 s since its last delivery
	[ $i -eq 1 ] || sleep 1
	dc_add_dir "$W/dc" many "$W/batch"
	# let Dovecot take in the new files first, so that neither tool pays
	# for the server's own indexing of them
	raw_imap many many-Pa55 select >/dev/null
	before_mbs=$(count_md "$W/md-mbs") before_mp=$(count_md "$W/md-mp")
	t=$(run_tool mbsync mbsync -q -c "$W/mbsyncrc" bench); inc_mbs="$inc_mbs $t"
	t=$(run_tool mailpull "$BIN" -q -c "$W/mp.ini"); inc_mp="$inc_mp $t"
	a=$(($(count_md "$W/md-mbs") - before_mbs))
	b=$(($(count_md "$W/md-mp") - before_mp))
	echo "   round $i: mbsync $(echo $inc_mbs | awk '{print $NF}') s ($a new), mailpull $(echo $inc_mp | awk '{print $NF}') s ($b new)"
	[ "$a" -eq 10 ] || { echo "bench: mbsync took $a, not 10" >&2; failed=1; }
	[ "$b" -eq 10 ] || { echo "bench: mailpull took $b, not 10" >&2; failed=1; }
done
case "$inc_mbs $inc_mp" in *FAIL*) failed=1 ;; esac
if [ $failed -eq 0 ]; then
	m1=$(median $inc_mbs) m2=$(median $inc_mp)
	printf '   %-22s median %7.3f s   (runs:%s)\n' "mbsync" "$m1" "$inc_mbs"
	printf '   %-22s median %7.3f s   (runs:%s)\n' "mailpull" "$m2" "$inc_mp"
	echo "   mailpull / mbsync = $(ratio "$m2" "$m1") (target: at most 0.5)"
fi
rm -rf "$W/md-mbs" "$W/md-mp" "$W/msgs-new" "$W/batch"

echo
echo "== peak RSS: one 60 MB message"
"$PY" "$TESTS/integration/gen_messages.py" big "$W/msgs-huge" 60M --name huge >/dev/null
dc_add_dir "$W/dc" huge "$W/msgs-huge"
HUGE_BYTES=$(stat -c %s "$W/msgs-huge/huge.eml")
raw_imap huge huge-Pa55 fetch >/dev/null   # index it and warm the cache
# rss NAME CMD... - peak RSS in kB (GNU time -v), or FAIL
rss() {
	tool=$1; shift
	sync
	if "$GNUTIME" -v -o "$W/time.out" "$@" >"$W/tool.out" 2>&1; then
		awk -F': ' '/Maximum resident set size/ {print $2}' "$W/time.out"
	else
		echo "bench: $tool failed: $(head -3 "$W/tool.out" | tr '\n' '|')" >&2
		echo FAIL
	fi
}
rm -rf "$W/md-mbs"
mbsync_conf "$W/mbsyncrc" huge huge-Pa55 "$W/md-mbs"
r1=$(rss mbsync mbsync -q -c "$W/mbsyncrc" bench)
fresh_md "$W/md-mp"; rm -f "$W/state-mp.db"*
mp_conf "$W/mp.ini" huge huge-Pa55 "$W/md-mp" "$W/state-mp.db"
r2=$(rss mailpull "$BIN" -q -c "$W/mp.ini")
case "$r1 $r2" in *FAIL*) failed=1 ;; esac
for t in mbs mp; do
	n=$(count_md "$W/md-$t")
	[ "$n" -eq 1 ] || { echo "bench: md-$t holds $n messages, not 1" >&2; failed=1; }
done
if [ $failed -eq 0 ]; then
	sz=$(find "$W/md-mp/new" "$W/md-mp/cur" -type f -exec stat -c %s {} +)
	[ "$sz" -eq "$HUGE_BYTES" ] || echo "   mailpull wrote $sz bytes for a $HUGE_BYTES-byte message"
	printf '   %-22s peak RSS %8s kB  (%.1f MB)\n' "mbsync" "$r1" "$(echo "$r1" | awk '{print $1 / 1024}')"
	printf '   %-22s peak RSS %8s kB  (%.1f MB; target: at most 6 MB)\n' "mailpull" "$r2" "$(echo "$r2" | awk '{print $1 / 1024}')"
fi
echo
[ $failed -eq 0 ] || { echo "bench: a tool failed (see above)"; exit 1; }
echo "bench: done"
