#!/bin/sh
# kill -9 at random instants during IMAP polls (IMAPS, INBOX, keep = no:
# BODY.PEEK[] streamed to the Maildir, then UID STORE +FLAGS.SILENT (\Deleted)
# and UID EXPUNGE), then a run to completion. After every kill: no message
# lost (each is still on the server or in the Maildir), none twice in the
# Maildir, no partial file in new/ or cur/. After the final run: every
# message in the Maildir exactly once, byte for byte; none left on the
# server; the Maildir's tmp/ empty.
# The server is topped up to 300 messages before each kill (unique messages:
# a small pool, each copy given its own first header line), so that every
# kill finds work; the kill moments are spread over the time a keep = no
# poll of 300 really takes (measured first).
# Environment: CRASH_ITER (default 40, at least 30), CRASH_SEED (default:
# random; printed), CRASH_N (messages on the server per round, default 300).
set -eu
. "$MP_LIB"

ITER=${CRASH_ITER:-40}
N=${CRASH_N:-300}
SEED=${CRASH_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
[ "$ITER" -ge 30 ] || fail "CRASH_ITER must be at least 30"
note "seed $SEED, $ITER kills, $N messages a round"

"$MP_PY" "$TESTS/integration/gen_messages.py" realistic "$T/pool" "$N" "$((N * 12))k" --seed "$SEED" --prefix crashimap >/dev/null
mkdir -p "$T/added"
SRV=$(dc_maildir "$DC_DIR" "$MP_USER")
echo 0 >"$T/serial"

# topup K - K new unique messages onto the server (and into $T/added)
topup() {
	"$MP_PY" - "$T/pool" "$T/added" "$SRV" "$DC_MAIL_USER" "$T/serial" "$1" <<'PY' || fail "topup failed"
import os, pwd, sys, time
pool, added, srv, user, serial_f, k = sys.argv[1:]
k = int(k)
pw = pwd.getpwnam(user)
serial = int(open(serial_f).read())
names = sorted(os.listdir(pool))
for i in range(k):
    s = serial + i
    data = b"X-Crash-Copy: %d\n" % s + open(os.path.join(pool, names[s % len(names)]), "rb").read()
    with open(os.path.join(added, "m%06d" % s), "wb") as o:
        o.write(data)
    name = "%d.M%dP%d_%d.crash,S=%d" % (int(time.time()), time.time_ns() % 1000000, os.getpid(), i, len(data))
    tmp = os.path.join(srv, "tmp", name)
    with open(tmp, "wb") as o:
        o.write(data)
    os.chown(tmp, pw.pw_uid, pw.pw_gid)
    os.chmod(tmp, 0o600)
    os.rename(tmp, os.path.join(srv, "new", name))
open(serial_f, "w").write(str(serial + k))
PY
}

check() { # MODE: during | final
	"$MP_PY" - "$T/added" "$SRV" "$T/Maildir" "$1" "$T/hcache" <<'PY'
import hashlib, os, pickle, sys, time
added, srv, md, mode, cache_f = sys.argv[1:]
try:
    cache = pickle.load(open(cache_f, "rb"))
except Exception:
    cache = {}
def names(d, subs):
    return sorted(os.path.join(s, f) for s in subs if os.path.isdir(os.path.join(d, s))
                  for f in os.listdir(os.path.join(d, s)))
def digest(p, cacheable):
    st = os.stat(p)
    key = (p, st.st_size, st.st_mtime_ns, st.st_ino)
    if cacheable and key in cache:
        return cache[key]
    h = hashlib.sha256(open(p, "rb").read()).hexdigest()
    if cacheable:
        cache[key] = h
    return h
def hashes(d, subs, cacheable):
    # the server's session for a killed client may still be moving files
    # (new/ -> cur/, expunges): read until two listings agree and every file
    # could be read
    for attempt in range(100):
        a = names(d, subs)
        out = {}
        try:
            for f in a:
                out.setdefault(digest(os.path.join(d, f), cacheable), []).append(f)
        except FileNotFoundError:
            time.sleep(0.05); continue
        if names(d, subs) == a:
            return out
        time.sleep(0.05)
    raise SystemExit("%s kept changing" % d)
want = hashes(added, ["."], True)
on_srv = hashes(srv, ["cur", "new"], False)
got = hashes(md, ["new", "cur"], True)
pickle.dump(cache, open(cache_f, "wb"))
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
print("added=%d server=%d maildir=%d" % (len(want), sum(map(len, on_srv.values())), sum(map(len, got.values()))), file=sys.stderr)
sys.exit(1 if bad else 0)
PY
}

now_ms() { "$MP_PY" -c 'import time; print(int(time.time() * 1000))'; }

mkconf "$T/c.ini" protocol=imap "port=$DC_IMAPS" folders=INBOX keep=no

# calibration: two whole keep = no polls of N (the first also makes the
# state database and Dovecot's index); the second one's time is the window
full_ms=0
for r in 1 2; do
	topup "$N"
	t0=$(now_ms)
	run_mp -q -c "$T/c.ini"
	expect_rc 0 "calibration poll $r (keep = no)"
	full_ms=$(($(now_ms) - t0))
	check during >"$T/check" 2>"$T/stats" || { cat "$T/check" >&2; fail "calibration poll $r: $(head -1 "$T/check")"; }
	[ "$(server_count)" -eq 0 ] || fail "calibration poll $r left $(server_count) message(s) on the server"
done
note "a keep = no poll of $N takes $full_ms ms; kills spread over 0..$full_ms ms"

delays=$("$MP_PY" -c "
import random; r = random.Random($SEED); top = max(30, $full_ms)
print(' '.join('%.3f' % (r.uniform(0, top) / 1000) for _ in range($ITER)))")

pid=""
trap 'if [ -n "$pid" ]; then kill -9 "$pid" 2>/dev/null || true; fi' EXIT
i=0 finished=0 cut=0
for d in $delays; do
	i=$((i + 1))
	have=$(server_count)
	if [ "$have" -lt "$N" ]; then topup $((N - have)); fi
	before=$(md_count "$T/Maildir")
	"$BIN" -q -c "$T/c.ini" >>"$T/mp.out" 2>>"$T/mp.err" &
	pid=$!
	sleep "$d"
	if kill -9 "$pid" 2>/dev/null; then :; else finished=$((finished + 1)); fi
	wait "$pid" 2>/dev/null || true
	pid=""
	if ! check during >"$T/check" 2>"$T/stats"; then
		cat "$T/check" >&2
		fail "after kill $i (at ${d}s, seed $SEED): $(head -1 "$T/check")"
	fi
	after=$(md_count "$T/Maildir")
	left=$(server_count)
	# a kill that came after some delivery and before the last expunge
	if [ "$after" -gt "$before" ] && [ "$left" -gt 0 ]; then cut=$((cut + 1)); fi
	note "kill $i at ${d}s: $(cat "$T/stats"); delivered this round $((after - before))"
done

run_mp -q -c "$T/c.ini"
expect_rc 0 "final run after $ITER kills"
run_mp -q -c "$T/c.ini"
expect_rc 0 "run after the final run"
if ! check final >"$T/check" 2>"$T/stats"; then
	cat "$T/check" >&2
	fail "after the final run (seed $SEED): $(head -1 "$T/check")"
fi
tmpn=$(count_files "$T/Maildir/tmp")
note "final: $(cat "$T/stats"); $tmpn file(s) left in tmp/"
[ "$tmpn" -eq 0 ] || fail "after the final run $tmpn file(s) are left in the Maildir's tmp/: $(ls "$T/Maildir/tmp" | head -3 | tr '\n' ' ')"
others=$(find "$T/Maildir" -mindepth 1 -maxdepth 1 ! -name cur ! -name new ! -name tmp | head -3)
[ -z "$others" ] || fail "unexpected entries in the Maildir: $others"
[ -z "$(cat "$T/mp.err")" ] || note "stderr of the killed runs: $(sort "$T/mp.err" | uniq -c | sort -rn | head -3 | tr '\n' '|')"
echo "RESULT: $ITER kill -9s ($finished runs finished first, $cut cut between delivery and expunge), $(ls "$T/added" | wc -l) messages each delivered once over IMAP, server empty, tmp/ empty"
