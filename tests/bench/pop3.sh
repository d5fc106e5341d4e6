#!/bin/sh
# pop3.sh BIN - `make bench`: POP3 throughput of mailpull against mpop and
# against a bare pipelined POP3 stream, on a private Dovecot over loopback.
#
#  1. full fetch: 2,000 realistic messages (~336 MB), each tool 3 times
#     (fresh state / uidls file and fresh Maildir every time), median
#  2. incremental: a 20,000-message mailbox already taken once by each tool;
#     10 new messages arrive; time taking just those 10 (3 rounds, median)
#
# Not a test: prints figures; exits 0 unless a tool failed.
#   BENCH_DIR=path   work directory (default: a new one under /var/tmp, which
#                    is normal disk; /tmp may be tmpfs)
#   BENCH_RUNS=3     runs per tool
#   BENCH_KEEP=1     keep the work directory
set -eu
[ $# -eq 1 ] || { echo "usage: pop3.sh /abs/path/to/mailpull" >&2; exit 64; }
BIN=$1
TESTS=$(cd "$(dirname "$0")/.." && pwd)
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
RUNS=${BENCH_RUNS:-3}

if [ "$(id -u)" -ne 0 ]; then
	echo "bench: needs root (a private Dovecot switching to a mail user)" >&2
	exit 1
fi
sh "$TESTS/servers/deps.sh" mpop
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
dc_start "$W/dc"
. "$W/dc/ports.env"
echo "bench: Dovecot on 127.0.0.1:$DC_POP3 (POP3, no TLS: the tools are compared on protocol and delivery)"

echo "bench: making 2,000 realistic messages (~336 MB) ..."
"$PY" "$TESTS/integration/gen_messages.py" realistic "$W/msgs-big" 2000 336000000 --prefix big >/dev/null
dc_add_dir "$W/dc" big "$W/msgs-big"
BIG_BYTES=$(du -sb "$W/msgs-big" | cut -f1)
BIG_N=$(dc_count "$W/dc" big)
echo "bench: mailbox 'big': $BIG_N messages, $BIG_BYTES bytes"

now() { "$PY" -c 'import time; print("%.6f" % time.time())'; }
since() { "$PY" -c "import time; print('%.3f' % (time.time() - $1))"; }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# a bare pipelined stream: RETR 1..N all sent at once, replies to /dev/null
raw_stream() { # USER PASS N
	"$PY" - "$DC_POP3" "$1" "$2" "$3" <<'PY'
import socket, sys, threading
port, user, pw, n = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
s = socket.create_connection(("127.0.0.1", port))
f = s.makefile("rb")
def line():
    l = f.readline()
    if not l.startswith(b"+OK"): sys.exit("raw: %r" % l)
line()
s.sendall(b"USER %s\r\nPASS %s\r\n" % (user.encode(), pw.encode())); line(); line()
def send():
    s.sendall(b"".join(b"RETR %d\r\n" % i for i in range(1, n + 1)))
threading.Thread(target=send, daemon=True).start()
seen, tail, total = 0, b"", 0
with open("/dev/null", "wb") as out:
    while seen < n:
        b = f.read1(1 << 20)
        if not b: sys.exit("raw: connection closed after %d messages" % seen)
        total += len(b)
        out.write(b)
        seen += (tail + b).count(b"\r\n.\r\n")
        tail = b[-4:]
s.sendall(b"QUIT\r\n")
s.close()
PY
}

mpop_conf() { # FILE USER PASS MAILDIR UIDLS
	cat >"$1" <<EOF
defaults
tls off
auth user
keep on
received_header off
account bench
host 127.0.0.1
port $DC_POP3
user $2
password $3
delivery maildir $4
uidls_file $5
EOF
	chmod 600 "$1"
}

mp_conf() { # FILE USER PASS MAILDIR STATE
	cat >"$1" <<EOF
[general]
state   = $5
timeout = 60

[account bench]
protocol        = pop3
host            = 127.0.0.1
port            = $DC_POP3
tls             = none
allow_plaintext = yes
user            = $2
password        = $3
auth            = user
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
raw_stream big big-Pa55 "$BIG_N"

echo
echo "== full fetch: $BIG_N messages, $((BIG_BYTES / 1000000)) MB, $RUNS runs each"
raw_t="" mpop_t="" mp_t=""
i=0
while [ $i -lt "$RUNS" ]; do
	i=$((i + 1))
	t=$(run_tool raw raw_stream big big-Pa55 "$BIG_N"); raw_t="$raw_t $t"

	fresh_md "$W/md-mpop"; rm -f "$W/uidls-mpop"
	mpop_conf "$W/mpoprc" big big-Pa55 "$W/md-mpop" "$W/uidls-mpop"
	t=$(run_tool mpop mpop -q -C "$W/mpoprc" bench); mpop_t="$mpop_t $t"
	got=$(ls "$W/md-mpop/new" | wc -l)
	[ "$got" -eq "$BIG_N" ] || { echo "bench: mpop delivered $got of $BIG_N" >&2; mpop_t="$mpop_t FAIL"; }

	fresh_md "$W/md-mp"; rm -f "$W/state-mp.db"*
	mp_conf "$W/mp.ini" big big-Pa55 "$W/md-mp" "$W/state-mp.db"
	t=$(run_tool mailpull "$BIN" -q -c "$W/mp.ini"); mp_t="$mp_t $t"
	got=$(($(ls "$W/md-mp/new" | wc -l) + $(ls "$W/md-mp/cur" | wc -l)))
	[ "$got" -eq "$BIG_N" ] || { echo "bench: mailpull delivered $got of $BIG_N" >&2; mp_t="$mp_t FAIL"; }
	echo "   run $i: raw stream $(echo $raw_t | awk '{print $NF}') s, mpop $(echo $mpop_t | awk '{print $NF}') s, mailpull $(echo $mp_t | awk '{print $NF}') s"
done
rm -rf "$W/md-mpop" "$W/md-mp"
case "$raw_t $mpop_t $mp_t" in *FAIL*) failed=1 ;; esac

report() { # LABEL TIMES...
	label=$1; shift
	m=$(median "$@")
	rate=$("$PY" -c "print('%.1f' % ($BIG_BYTES / 1e6 / max($m, 1e-6)))")
	printf '   %-22s median %7.3f s  %7s MB/s   (runs:%s)\n' "$label" "$m" "$rate" " $*"
}
if [ $failed -eq 0 ]; then
	report "bare pipelined stream" $raw_t
	report "mpop" $mpop_t
	report "mailpull" $mp_t
	ratio=$("$PY" -c "print('%.2f' % ($(median $mp_t) / $(median $mpop_t)))")
	echo "   mailpull / mpop = $ratio (below 1: mailpull is faster)"
fi

echo
echo "== incremental: 20,000-message mailbox already taken; 10 new arrive"
"$PY" "$TESTS/integration/gen_messages.py" realistic "$W/msgs-many" 20000 80M --prefix many >/dev/null
dc_add_dir "$W/dc" many "$W/msgs-many"
MANY_N=$(dc_count "$W/dc" many)
"$PY" "$TESTS/integration/gen_messages.py" realistic "$W/msgs-new" $((10 * RUNS)) 500k --prefix new --seed 77 >/dev/null
raw_stream many many-Pa55 1 >/dev/null   # let Dovecot index the mailbox

fresh_md "$W/md-mpop"; fresh_md "$W/md-mp"
rm -f "$W/uidls-mpop" "$W/state-mp.db"*
mpop_conf "$W/mpoprc" many many-Pa55 "$W/md-mpop" "$W/uidls-mpop"
mp_conf "$W/mp.ini" many many-Pa55 "$W/md-mp" "$W/state-mp.db"
t1=$(run_tool mpop mpop -q -C "$W/mpoprc" bench)
t2=$(run_tool mailpull "$BIN" -q -c "$W/mp.ini")
echo "   first take of $MANY_N messages: mpop $t1 s, mailpull $t2 s"
case "$t1 $t2" in *FAIL*) failed=1 ;; esac

inc_mpop="" inc_mp=""
i=0
while [ $failed -eq 0 ] && [ $i -lt "$RUNS" ]; do
	mkdir -p "$W/batch"; rm -f "$W/batch"/*
	for f in $(ls "$W/msgs-new" | sed -n "$((i * 10 + 1)),$((i * 10 + 10))p"); do
		cp "$W/msgs-new/$f" "$W/batch/"
	done
	i=$((i + 1))
	dc_add_dir "$W/dc" many "$W/batch"
	# let Dovecot take in the new files first, so that neither tool pays
	# for the server's own indexing of them
	raw_stream many many-Pa55 1 >/dev/null
	before_mpop=$(ls "$W/md-mpop/new" | wc -l)
	before_mp=$(($(ls "$W/md-mp/new" | wc -l) + $(ls "$W/md-mp/cur" | wc -l)))
	t=$(run_tool mpop mpop -q -C "$W/mpoprc" bench); inc_mpop="$inc_mpop $t"
	t=$(run_tool mailpull "$BIN" -q -c "$W/mp.ini"); inc_mp="$inc_mp $t"
	a=$(($(ls "$W/md-mpop/new" | wc -l) - before_mpop))
	b=$(($(ls "$W/md-mp/new" | wc -l) + $(ls "$W/md-mp/cur" | wc -l) - before_mp))
	echo "   round $i: mpop $(echo $inc_mpop | awk '{print $NF}') s ($a new), mailpull $(echo $inc_mp | awk '{print $NF}') s ($b new)"
	[ "$a" -eq 10 ] || { echo "bench: mpop took $a, not 10" >&2; failed=1; }
	[ "$b" -eq 10 ] || { echo "bench: mailpull took $b, not 10" >&2; failed=1; }
done
case "$inc_mpop $inc_mp" in *FAIL*) failed=1 ;; esac
if [ $failed -eq 0 ]; then
	m1=$(median $inc_mpop) m2=$(median $inc_mp)
	printf '   %-22s median %7.3f s   (runs:%s)\n' "mpop" "$m1" "$inc_mpop"
	printf '   %-22s median %7.3f s   (runs:%s)\n' "mailpull" "$m2" "$inc_mp"
	echo "   mailpull / mpop = $("$PY" -c "print('%.2f' % ($m2 / max($m1, 1e-6)))") (below 1: mailpull is faster)"
fi
echo
[ $failed -eq 0 ] || { echo "bench: a tool failed (see above)"; exit 1; }
echo "bench: done"
