#!/bin/sh
# run.sh BIN - integration and fault tests against a private Dovecot.
#
# Starts one Dovecot (stopped on any exit), makes the test messages once,
# runs every tests/integration/t_*.sh and tests/fault/*.sh in turn, prints
# PASS/FAIL with the reason for each and a final "N passed, M failed" line.
# Exit status: 0 only if every test passed.
#
#   ONLY='pat...'  run only the tests whose name matches one of the globs
#                  (names: t_01_awkward ... fault_crash fault_memory)
#   KEEP_DIR=1     keep the work directory afterwards (to look at logs)
#
# This file is also the tests' library: a test does `. "$MP_LIB"` (run.sh
# exports MP_LIB=path-of-this-file and MP_LIB_ONLY=1) to get the helpers
# below. Each test gets in its environment:
#   BIN        the mailpull binary          DIR   the run's work directory
#   T          the test's own empty dir     MP_USER / MP_PASS  its own mailbox
#   MSGS       pre-made messages: $MSGS/awk (awkward set + 20 MB),
#              $MSGS/small (20 realistic), $MSGS/big (one 60 MB message)
#   DC_*       from the Dovecot's ports.env (ports, CA files, fingerprint)
#   TESTS      the tests/ directory

# ---------------------------------------------------------------- helpers

# fail REASON - end the test, failed, with one line of reason
fail() {
	echo "FAIL: $*" >&2
	exit 1
}

note() { echo "# $*"; }

# conf_general [key=value...] - the [general] section (state, timeout)
conf_general() {
	echo "[general]"
	_conf_kv "state=$T/state.db" "timeout=10" "$@"
	echo
}

# conf_account NAME [key=value...] - an account section; defaults: POP3 over
# implicit TLS as $MP_USER, keep = yes, deliver to $T/Maildir. key=- drops
# a default key.
conf_account() {
	local name
	name=$1; shift
	echo "[account $name]"
	_conf_kv protocol=pop3 host=localhost "port=$DC_POP3S" tls=implicit \
		"ca_file=$DC_CA" "user=$MP_USER" "password=$MP_PASS" auth=auto \
		allow_plaintext=no keep=yes "deliver=maildir:$T/Maildir" "$@"
	echo
}

_conf_kv() { # key=value... ; later keys override earlier; value "-" drops
	printf '%s\n' "$@" | awk -F= '
		{ k = $1; v = substr($0, length(k) + 2)
		  if (!(k in val)) order[n++] = k
		  val[k] = v }
		END { for (i = 0; i < n; i++) {
			k = order[i]
			if (val[k] != "-") printf "%-15s = %s\n", k, val[k] } }'
}

# mkconf FILE [key=value...] - [general] + [account test], mode 0600
mkconf() {
	local f
	f=$1; shift
	{ conf_general; conf_account test "$@"; } >"$f"
	chmod 600 "$f"
}

# run_mp ARGS... - run the binary (bounded); sets MP_RC, leaves
# $T/out and $T/err. Never fails itself.
run_mp() {
	MP_RC=0
	_t0=$(date +%s.%N)
	timeout -k 5 "${MP_TIMEOUT:-120}" "$BIN" "$@" >"$T/out" 2>"$T/err" || MP_RC=$?
	echo "# mailpull $*: exit $MP_RC in $(awk "BEGIN { printf \"%.2f\", $(date +%s.%N) - $_t0 }") s"
	if [ "$MP_RC" -eq 124 ] || [ "$MP_RC" -eq 137 ]; then
		fail "mailpull $* did not finish within ${MP_TIMEOUT:-120} s"
	fi
	if [ "$MP_RC" -ge 128 ]; then
		fail "mailpull $* died of signal $((MP_RC - 128)); stderr: $(head -c 300 "$T/err")"
	fi
	return 0
}

# expect_rc N WHAT - fail unless the last run_mp exited N
expect_rc() {
	[ "$MP_RC" -eq "$1" ] ||
		fail "$2: exit $MP_RC, expected $1; stderr: $(head -3 "$T/err" | tr '\n' '|' | cut -c1-400)"
}

# count_files DIR - regular files directly in DIR (0 if it is missing)
count_files() {
	if [ -d "$1" ]; then find "$1" -maxdepth 1 -type f | wc -l | tr -d ' '; else echo 0; fi
}

# md_count MAILDIR - messages delivered (new/ + cur/)
md_count() { echo $(($(count_files "$1/new") + $(count_files "$1/cur"))); }

# server_count - messages in $MP_USER's mailbox on the server
server_count() { dc_count "$DC_DIR" "$MP_USER"; }

# put_msgs FILE... / put_dir SRCDIR - add messages to $MP_USER's mailbox
put_msgs() { dc_add "$DC_DIR" "$MP_USER" "$@"; }
put_dir() { dc_add_dir "$DC_DIR" "$MP_USER" "$1"; }

# log_mark / log_since - the Dovecot log written after a mark
log_mark() { MP_LOGMARK=$(wc -c <"$DC_LOG"); }
log_since() { tail -c +$((MP_LOGMARK + 1)) "$DC_LOG"; }

# compare_maildir SRCDIR MAILDIR [--exact-only] - every source message
# arrived exactly once, byte for byte, in new/; nothing else is there; tmp/
# and cur/ are empty. Prints one line per problem; returns 1 if any.
compare_maildir() {
	"$MP_PY" - "$@" <<'PY'
import hashlib, os, re, sys
src, md = sys.argv[1], sys.argv[2]
def files(d):
    return sorted(os.path.join(d, f) for f in os.listdir(d)) if os.path.isdir(d) else []
def mid(data):
    m = re.search(rb"^Message-ID:\s*(<[^>\n]*>)", data, re.M | re.I)
    return m.group(1).decode("latin-1") if m else None
want = {}
for f in files(src):
    d = open(f, "rb").read()
    want.setdefault(hashlib.sha256(d).hexdigest(), []).append((os.path.basename(f), d))
by_mid = {mid(d): (n, d) for v in want.values() for n, d in v}
problems = []
got = {}
for f in files(os.path.join(md, "new")):
    d = open(f, "rb").read()
    got.setdefault(hashlib.sha256(d).hexdigest(), []).append((f, d))
for h, v in got.items():
    if h in want:
        if len(v) > len(want[h]):
            problems.append("%s arrived %d times" % (want[h][0][0], len(v)))
        continue
    for f, d in v:
        m = mid(d)
        if m in by_mid:
            name, s = by_mid[m]
            if d == s + b"\n":
                why = "a LF was added at the end"
            elif d.replace(b"\n", b"\r\n") == s.replace(b"\n", b"\r\n") and b"\r\n" in d:
                why = "CRLF line ends were kept"
            else:
                i = next((i for i in range(min(len(d), len(s))) if d[i] != s[i]), min(len(d), len(s)))
                why = "first difference at byte %d: stored %r, arrived %r" % (i, s[max(0, i-10):i+10], d[max(0, i-10):i+10])
            problems.append("%s differs: stored %d bytes, arrived %d bytes (%s)" % (name, len(s), len(d), why))
            got_mids = True
        else:
            problems.append("unexpected file in new/: %s (%d bytes)" % (os.path.basename(f), len(d)))
arrived_mids = {mid(d) for v in got.values() for _, d in v}
for h, v in want.items():
    if h not in got:
        for name, s in v:
            if mid(s) not in arrived_mids:
                problems.append("%s never arrived" % name)
for sub in ("cur", "tmp"):
    n = len(files(os.path.join(md, sub)))
    if n:
        problems.append("%d file(s) left in %s/" % (n, sub))
extra = [e for e in (os.listdir(md) if os.path.isdir(md) else []) if e not in ("cur", "new", "tmp")]
if not os.path.isdir(md):
    problems.append("no Maildir at %s" % md)
elif extra:
    problems.append("extra entries in the Maildir: %s" % ", ".join(extra))
for p in problems:
    print(p)
sys.exit(1 if problems else 0)
PY
}

# assert_maildir SRCDIR MAILDIR WHAT - compare_maildir or fail with the details
assert_maildir() {
	if ! compare_maildir "$1" "$2" >"$T/cmp" 2>&1; then
		cat "$T/cmp" >&2
		fail "$3: $(wc -l <"$T/cmp" | tr -d ' ') problem(s); first: $(head -1 "$T/cmp")"
	fi
}

# free_port - a TCP port on 127.0.0.1 nobody listens on
free_port() {
	"$MP_PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

if [ "${MP_LIB_ONLY:-}" = 1 ]; then
	MP_PY=${MP_PY:-/usr/bin/python3}
	. "$TESTS/servers/dovecot.sh"
	return 0 2>/dev/null || exit 0
fi

# ---------------------------------------------------------------- the run

set -u
[ $# -eq 1 ] || { echo "usage: run.sh /abs/path/to/mailpull" >&2; exit 64; }
BIN=$1
[ -x "$BIN" ] || { echo "run.sh: $BIN is not an executable" >&2; exit 1; }
TESTS=$(cd "$(dirname "$0")/.." && pwd)
MP_LIB="$TESTS/integration/run.sh"
MP_PY=/usr/bin/python3
[ -x "$MP_PY" ] || MP_PY=python3
export BIN TESTS MP_LIB MP_PY

if [ "$(id -u)" -ne 0 ]; then
	echo "run.sh: the integration tests need root (a private Dovecot switching to a mail uid)" >&2
	exit 1
fi
command -v dovecot >/dev/null || { echo "run.sh: dovecot missing: run make deps" >&2; exit 1; }

DIR=$(mktemp -d "${TMPDIR:-/tmp}/mailpull-it.XXXXXX")
chmod 755 "$DIR"
export DIR
DC_HERE="$TESTS/servers"
export DC_HERE
. "$TESTS/servers/dovecot.sh"

cleanup() {
	dc_stop "$DIR/dc"
	for extra in "$DIR"/*/dc-*; do
		[ -d "$extra" ] && dc_stop "$extra"
	done
	for extra in "$DIR"/*/pf-*; do   # a test's Postfix (tests/servers/postfix.sh)
		[ -d "$extra" ] && sh "$TESTS/servers/postfix.sh" stop "$extra"
	done
	if [ "${KEEP_DIR:-}" = 1 ]; then
		echo "work directory kept: $DIR"
	else
		rm -rf "$DIR"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

echo "integration: work directory $DIR"
started=$(date +%s)

TEST_FILES=""
for t in "$TESTS"/integration/t_*.sh "$TESTS"/fault/*.sh; do
	[ -f "$t" ] || continue
	name=$(basename "$t" .sh)
	case "$t" in */fault/*) name="fault_$name" ;; esac
	if [ -n "${ONLY:-}" ]; then
		want=0
		for pat in $ONLY; do
			case "$name" in $pat) want=1 ;; esac
		done
		[ $want -eq 1 ] || continue
	fi
	TEST_FILES="$TEST_FILES $t"
	# every test's own login, and a mailbox for what it relays (LMTP/SMTP
	# recipient, r_NAME), made before Dovecot starts
	dc_add_user "$DIR/dc" "u_$name" "pw-$name-S3cret"
	dc_add_user "$DIR/dc" "r_$name" "pw-r-$name-S3cret"
done
dc_start "$DIR/dc" || { echo "run.sh: could not start Dovecot" >&2; exit 1; }
set -a
. "$DIR/dc/ports.env"
set +a

MSGS="$DIR/msgs"
export MSGS
"$MP_PY" "$TESTS/integration/gen_messages.py" awkward "$MSGS/awk" >/dev/null &&
"$MP_PY" "$TESTS/integration/gen_messages.py" realistic "$MSGS/small" 20 600k --prefix small >/dev/null &&
"$MP_PY" "$TESTS/integration/gen_messages.py" big "$MSGS/big" 60M >/dev/null ||
	{ echo "run.sh: could not make the test messages" >&2; exit 1; }
echo "integration: Dovecot up (pop3 $DC_POP3, pop3s $DC_POP3S, imap $DC_IMAP, imaps $DC_IMAPS); messages ready"

pass=0 failed=0 failed_names=""
for t in $TEST_FILES; do
	name=$(basename "$t" .sh)
	case "$t" in */fault/*) name="fault_$name" ;; esac
	T="$DIR/$name"
	mkdir -p "$T"
	MP_USER="u_$name"
	MP_PASS="pw-$name-S3cret"
	MP_RCPT="r_$name"
	t0=$(date +%s)
	rc=0
	T=$T MP_USER=$MP_USER MP_PASS=$MP_PASS MP_RCPT=$MP_RCPT MP_LIB_ONLY=1 \
		timeout -k 10 "${TEST_TIMEOUT:-420}" sh "$t" >"$T/log" 2>&1 || rc=$?
	secs=$(($(date +%s) - t0))
	if [ "$rc" -eq 0 ]; then
		pass=$((pass + 1))
		extra=$(grep '^RESULT:' "$T/log" | tail -1 | sed 's/^RESULT: */ - /')
		echo "PASS  $name (${secs}s)$extra"
	else
		failed=$((failed + 1))
		failed_names="$failed_names $name"
		why=$(grep '^FAIL:' "$T/log" | tail -1 | sed 's/^FAIL: *//')
		[ -n "$why" ] || why=$(tail -1 "$T/log")
		[ "$rc" -eq 124 ] && why="timed out after ${TEST_TIMEOUT:-420} s; $why"
		echo "FAIL  $name (${secs}s): $why"
		if [ -n "${VERBOSE:-}" ]; then sed 's/^/      | /' "$T/log"; fi
	fi
done

echo "integration: $(($(date +%s) - started)) s in all"
echo "$pass passed, $failed failed"
[ "$failed" -eq 0 ]
