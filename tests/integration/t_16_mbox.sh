#!/bin/sh
# (16) deliver = mbox:PATH over POP3: the small set (plus two messages with
# "From " lines to quote) arrives; Python's mailbox.mbox reads exactly those
# messages back byte-exact after mboxrd unquoting; a second run adds
# nothing; then kill -9 at random moments during keep = no polls: every
# message ends up in the mbox exactly once, none is lost on the way, and the
# file parses.
# Environment: MBOX_CRASH_ITER (default 15), CRASH_SEED (default: random).
set -eu
. "$MP_LIB"

ITER=${MBOX_CRASH_ITER:-15}
SEED=${CRASH_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}

# check.py MBOX SRCDIR MODE [SERVER_MAILDIR]
#   exact:  the mbox holds every SRCDIR message once and nothing else
#   during: nothing lost (each message on the server or in the mbox); a
#           message no longer on the server is in the mbox exactly once
#   final:  exact, and the server is empty
cat >"$T/check.py" <<'PY'
import hashlib, mailbox, os, re, sys, time
mbox, src, mode = sys.argv[1:4]
srv = sys.argv[4] if len(sys.argv) > 4 else None
FROM_RE = re.compile(rb"^From \S+ (Mon|Tue|Wed|Thu|Fri|Sat|Sun) "
                     rb"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
                     rb"[ \d]\d \d\d:\d\d:\d\d \d{4}$")
def h(b): return hashlib.sha256(b).hexdigest()
def norm(b): return b if b.endswith(b"\n") else b + b"\n"
want = {}
for f in sorted(os.listdir(src)):
    want.setdefault(h(norm(open(os.path.join(src, f), "rb").read())), []).append(f)
def server_hashes():
    if srv is None: return set()
    for _ in range(100):   # a killed client's session may still move files
        try:
            out = set()
            for sub in ("new", "cur"):
                d = os.path.join(srv, sub)
                for f in os.listdir(d) if os.path.isdir(d) else []:
                    out.add(h(norm(open(os.path.join(d, f), "rb").read())))
            return out
        except FileNotFoundError:
            time.sleep(0.05)
    raise SystemExit("server maildir kept changing")
on_srv = server_hashes()
bad = []
got = {}
raw = open(mbox, "rb").read() if os.path.exists(mbox) else b""
if mode != "during":
    # the file as a whole: separators, a blank line after each message
    for line in raw.split(b"\n"):
        if line.startswith(b"From ") and not FROM_RE.match(line):
            bad.append("bad separator line %r" % line[:80])
    if raw and not raw.endswith(b"\n\n"):
        bad.append("the file does not end with a blank line")
mb = mailbox.mbox(mbox, create=False) if raw else {}
for k in (mb.keys() if raw else []):
    body = re.sub(rb"(?m)^>(>*From )", rb"\1", mb.get_bytes(k))
    got.setdefault(h(body), []).append(k)
for hh, ks in got.items():
    if hh not in want:
        if mode != "during":
            bad.append("message #%d in the mbox matches no source message" % ks[0])
    elif len(ks) > 1 and (mode != "during" or hh not in on_srv):
        bad.append("%s is in the mbox %d times" % (want[hh][0], len(ks)))
for hh, fs in want.items():
    if hh not in got and (mode != "during" or hh not in on_srv):
        bad.append(("LOST: %s is neither on the server nor in the mbox" if mode == "during"
                    else "%s is not in the mbox") % fs[0])
if mode == "final" and on_srv:
    bad.append("%d message(s) still on the server" % len(on_srv))
for b in bad[:10]: print(b)
print("STATS source=%d mbox=%d server=%d" % (len(want), sum(map(len, got.values())),
      len(on_srv)), file=sys.stderr)
sys.exit(1 if bad else 0)
PY
check() { "$MP_PY" "$T/check.py" "$@" >"$T/check" 2>"$T/stats"; }

# ---- the small set, byte-exact, and a second run ----------------------

mkdir -p "$T/src"
cp "$MSGS/small"/* "$T/src/"
printf 'Return-Path: <quoting@example.org>\nFrom: q@example.org\nSubject: quoting\nMessage-ID: <q1@example.org>\n\nFrom the start of a line\n>From quoted once\n>>From quoted twice\nFrom\nFromage\n From indented\n' >"$T/src/zz-quote1.eml"
printf 'From: q@example.org\nSubject: no final newline\nMessage-ID: <q2@example.org>\n\nFrom here it ends without a newline' >"$T/src/zz-quote2.eml"
put_dir "$T/src"
n=$(count_files "$T/src")
[ "$(server_count)" -eq "$n" ] || fail "setup: server holds $(server_count), expected $n"

MB=$T/inbox.mbox
mkconf "$T/c.ini" "deliver=mbox:$MB"
run_mp -c "$T/c.ini"
expect_rc 0 "first run"
[ -f "$MB" ] || fail "no mbox at $MB; stderr: $(head -c 300 "$T/err")"
[ "$(stat -c %a "$MB")" = 600 ] || fail "the mbox was made $(stat -c %a "$MB"), expected 600"
check "$MB" "$T/src" exact || fail "first run: $(head -1 "$T/check")"
grep -q '^From quoting@example.org ' "$MB" || fail "no separator with the Return-Path sender"
grep -q '^>>>From quoted twice$' "$MB" || fail ">>From was not quoted to >>>From"
[ ! -e "$MB.lock" ] || fail "the dotlock $MB.lock was left behind"
sum1=$(sha256sum <"$MB")

run_mp -c "$T/c.ini"
expect_rc 0 "second run"
[ "$(sha256sum <"$MB")" = "$sum1" ] || fail "the second run changed the mbox"
[ "$(server_count)" -eq "$n" ] || fail "keep = yes but the server holds $(server_count) of $n"
note "small set: $(cat "$T/stats")"

# ---- kill -9 at random moments, keep = no ------------------------------

note "crash loop: seed $SEED, $ITER kills"
dc_empty "$DC_DIR" "$MP_USER"
SRV=$(dc_maildir "$DC_DIR" "$MP_USER")
"$MP_PY" "$TESTS/integration/gen_messages.py" realistic "$T/pool" 1200 60M --seed "$SEED" --prefix mbxcrash >/dev/null
mkdir -p "$T/added" "$T/batch"
next=1
topup() { # N: add the next N pool messages
	rm -f "$T/batch"/*
	j=0
	for f in $(ls "$T/pool" | sed -n "${next},$((next + $1 - 1))p"); do
		cp "$T/pool/$f" "$T/batch/"
		ln "$T/pool/$f" "$T/added/$f"
		j=$((j + 1))
	done
	next=$((next + j))
	[ $j -gt 0 ] && put_dir "$T/batch"
	return 0
}
FILL=80
topup $FILL
CB=$T/crash.mbox
{ conf_general "state=$T/k.db"; conf_account test keep=no "deliver=mbox:$CB"; } >"$T/k.ini"
chmod 600 "$T/k.ini"

# how long a whole poll takes (keep = yes, a scratch mbox and state)
{ conf_general "state=$T/cal.db"; conf_account test "deliver=mbox:$T/cal.mbox"; } >"$T/cal.ini"
chmod 600 "$T/cal.ini"
t0=$("$MP_PY" -c 'import time; print(time.time())')
run_mp -q -c "$T/cal.ini"
expect_rc 0 "calibration run"
full_ms=$("$MP_PY" -c "import time; print(int((time.time() - $t0) * 1000))")
rm -f "$T/cal.mbox"
note "a full poll of $FILL takes $full_ms ms"
delays=$("$MP_PY" -c "
import random; r = random.Random($SEED); top = max(50, $full_ms * 1.1)
print(' '.join('%.3f' % (r.uniform(0, top) / 1000) for _ in range($ITER)))")

pid=""
trap 'if [ -n "$pid" ]; then kill -9 "$pid" 2>/dev/null || true; fi' EXIT
i=0 finished=0
for d in $delays; do
	i=$((i + 1))
	have=$(server_count)
	if [ "$have" -lt $FILL ]; then topup $((FILL - have)); fi
	"$BIN" -v -c "$T/k.ini" >>"$T/mp.out" 2>>"$T/mp.err" &
	pid=$!
	sleep "$d"
	if kill -9 "$pid" 2>/dev/null; then :; else finished=$((finished + 1)); fi
	wait "$pid" 2>/dev/null || true
	pid=""
	if ! check "$CB" "$T/added" during "$SRV"; then
		cat "$T/check" >&2
		fail "after kill $i (at ${d}s): $(head -1 "$T/check")"
	fi
	note "kill $i at ${d}s: $(cat "$T/stats")"
done

run_mp -q -c "$T/k.ini"
expect_rc 0 "final run after $ITER kills"
run_mp -q -c "$T/k.ini"
expect_rc 0 "run after the final run"
check "$CB" "$T/added" final "$SRV" || { cat "$T/check" >&2; fail "after the final run: $(head -1 "$T/check")"; }
[ ! -e "$CB.lock" ] || fail "the dotlock $CB.lock was left behind"
saved=$(find "$T" -maxdepth 1 -name 'crash.mbox.mailpull-unrecorded*' | wc -l | tr -d ' ')
cuts=$(grep -c 'cut an unrecorded delivery off' "$T/mp.err" || true)
note "final: $(cat "$T/stats"); $cuts interrupted batches cut off at start-up; $saved unrecorded tail(s) kept aside"
if grep -q 'rewritten since a delivery' "$T/mp.err"; then
	fail "settle took our own mbox for rewritten: $(grep -m1 'rewritten since' "$T/mp.err")"
fi
# ---- a concurrent writer: another program holds the fcntl lock and the
# dotlock for 2 s while it appends; mailpull waits for it, then appends
# after it; both messages are intact and the file parses.
CW="$T/conc.mbox"
printf 'From: w@example.org\nSubject: conc\nMessage-ID: <conc.t16@x>\n\nfrom mailpull\n' >"$T/conc.eml"
put_msgs "$T/conc.eml"
{ conf_general "state=$T/conc.db"; conf_account test keep=yes "deliver=mbox:$CW"; } >"$T/cw.ini"
chmod 600 "$T/cw.ini"
"$MP_PY" - "$CW" >"$T/writer.out" 2>&1 <<'PY' &
import fcntl, os, sys, time
path = sys.argv[1]
fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
fcntl.lockf(fd, fcntl.LOCK_EX)
lk = os.open(path + ".lock", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
os.write(lk, b"%d\n" % os.getpid())
print("locked", flush=True)
time.sleep(2)
os.write(fd, b"From other@example.org Mon Jan  1 00:00:00 2024\nFrom: other\nSubject: other writer\n\nwritten while locked\n\n")
os.fsync(fd)
os.unlink(path + ".lock")
fcntl.lockf(fd, fcntl.LOCK_UN)
print("done", flush=True)
PY
WPID=$!
i=0
while ! grep -q locked "$T/writer.out" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
t0=$(date +%s.%N)
run_mp -c "$T/cw.ini"
expect_rc 0 "mbox while another program holds its locks for 2 s"
wait $WPID || fail "the other writer failed: $(cat "$T/writer.out")"
waited=$("$MP_PY" -c "import sys; print('%.1f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$t0" "$(date +%s.%N)")
"$MP_PY" - "$CW" <<'PY' || fail "the mbox written by two programs is wrong (see above)"
import mailbox, sys
subs = [m["Subject"] for m in mailbox.mbox(sys.argv[1])]
if subs != ["other writer", "conc"]:
    print("subjects in the mbox: %r (expected the other writer's, then ours)" % subs)
    sys.exit(1)
PY
[ ! -e "$CW.lock" ] || fail "the dotlock was left behind after the concurrent write"
note "waited ${waited}s for the other writer's locks"

echo "RESULT: $n messages byte-exact via Python's mailbox; $ITER kill -9s ($finished runs finished first, $cuts batches cut back), $(ls "$T/added" | wc -l) messages each once in the mbox; $saved tail(s) kept aside; waited ${waited}s behind a concurrent writer's locks"
