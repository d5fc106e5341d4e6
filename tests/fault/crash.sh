#!/bin/sh
# kill -9 at random instants during POP3 polls with keep = no, then a run to
# completion: every message ends up in the Maildir exactly once (by content
# hash), none is lost at any point, the server ends empty.
# Environment: CRASH_ITER (default 40), CRASH_SEED (default: random; printed).
set -eu
. "$MP_LIB"

ITER=${CRASH_ITER:-40}
SEED=${CRASH_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
note "seed $SEED, $ITER kills"

# a pool of unique small-to-medium messages; 300 on the server, topped up
# from the pool before each kill so that every kill finds work to interrupt
"$MP_PY" "$TESTS/integration/gen_messages.py" realistic "$T/pool" 4000 40M --seed "$SEED" --prefix crash >/dev/null
mkdir -p "$T/added" "$T/batch"
SRV=$(dc_maildir "$DC_DIR" "$MP_USER")
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

check() { # MODE: during | final
	"$MP_PY" - "$T/added" "$SRV" "$T/Maildir" "$1" <<'PY'
import hashlib, os, sys
added, srv, md, mode = sys.argv[1:]
import time
def names(d, subs):
    return sorted(os.path.join(s, f) for s in subs if os.path.isdir(os.path.join(d, s))
                  for f in os.listdir(os.path.join(d, s)))
def hashes(d, subs):
    # the server's session for a killed client may still be moving files
    # (new/ -> cur/, expunges): read until two listings agree and every file
    # could be read
    for attempt in range(100):
        a = names(d, subs)
        out = {}
        try:
            for f in a:
                h = hashlib.sha256(open(os.path.join(d, f), "rb").read()).hexdigest()
                out.setdefault(h, []).append(f)
        except FileNotFoundError:
            time.sleep(0.05); continue
        if names(d, subs) == a:
            return out
        time.sleep(0.05)
    raise SystemExit("%s kept changing" % d)
want = hashes(added, ["."])
on_srv = hashes(srv, ["cur", "new"])
got = hashes(md, ["new", "cur"])
bad = []
for h, fs in got.items():
    if h not in want: bad.append("a file in the Maildir matches no message (partial?): %s" % fs[0])
    elif len(fs) > 1: bad.append("%s delivered %d times: %s" % (want[h][0], len(fs), ", ".join(fs)))
for h, fs in want.items():
    if h not in on_srv and h not in got: bad.append("LOST: %s is neither on the server nor in the Maildir" % fs[0])
if mode == "final":
    for h, fs in want.items():
        if h not in got: bad.append("%s not delivered after the final run" % fs[0])
    if on_srv: bad.append("%d message(s) still on the server after the final run" % sum(map(len, on_srv.values())))
for b in bad[:10]: print(b)
if len(bad) > 10: print("... %d problems in all" % len(bad))
print("STATS added=%d server=%d maildir=%d" % (len(want), sum(map(len, on_srv.values())), sum(map(len, got.values()))), file=sys.stderr)
sys.exit(1 if bad else 0)
PY
}

topup 300
mkconf "$T/c.ini" keep=no

# how long a whole poll of 300 takes (keep, into a scratch Maildir)
{ conf_general "state=$T/s-cal.db"; conf_account test "deliver=maildir:$T/M-cal"; } >"$T/cal.ini"
chmod 600 "$T/cal.ini"
t0=$("$MP_PY" -c 'import time; print(time.time())')
run_mp -q -c "$T/cal.ini"
expect_rc 0 "calibration run (keep = yes)"
full_ms=$("$MP_PY" -c "import time; print(int((time.time() - $t0) * 1000))")
[ "$(md_count "$T/M-cal")" -eq 300 ] || fail "calibration run delivered $(md_count "$T/M-cal") of 300"
rm -rf "$T/M-cal"
note "a full poll of 300 takes $full_ms ms; kills spread over 0..$((full_ms * 11 / 10)) ms"

delays=$("$MP_PY" -c "
import random; r = random.Random($SEED); n = $ITER; top = max(50, $full_ms * 1.1)
print(' '.join('%.3f' % (r.uniform(0, top) / 1000) for _ in range(n)))")

pid=""
trap 'if [ -n "$pid" ]; then kill -9 "$pid" 2>/dev/null || true; fi' EXIT
i=0 finished=0
for d in $delays; do
	i=$((i + 1))
	have=$(server_count)
	if [ "$have" -lt 300 ]; then topup $((300 - have)); fi
	"$BIN" -q -c "$T/c.ini" >>"$T/mp.out" 2>>"$T/mp.err" &
	pid=$!
	sleep "$d"
	if kill -9 "$pid" 2>/dev/null; then :; else finished=$((finished + 1)); fi
	wait "$pid" 2>/dev/null || true
	if ! check during >"$T/check" 2>"$T/stats"; then
		cat "$T/check" >&2
		fail "after kill $i (at ${d}s): $(head -1 "$T/check")"
	fi
	note "kill $i at ${d}s: $(cat "$T/stats")"
done

run_mp -q -c "$T/c.ini"
expect_rc 0 "final run after $ITER kills"
run_mp -q -c "$T/c.ini"
expect_rc 0 "run after the final run"
if ! check final >"$T/check" 2>"$T/stats"; then
	cat "$T/check" >&2
	fail "after the final run: $(head -1 "$T/check")"
fi
tmpn=$(count_files "$T/Maildir/tmp")
note "final: $(cat "$T/stats"); $tmpn file(s) left in tmp/"
echo "RESULT: $ITER kill -9s ($finished runs finished first), $(ls "$T/added" | wc -l) messages each delivered once, server empty; tmp/ leftovers: $tmpn"
