#!/bin/sh
# (26) log = syslog: the same lines as on stderr go to syslog, facility
# mail, tagged mailpull with the pid, each naming its account; nothing on
# stderr. The run happens in a private mount namespace whose /dev holds only
# a log socket this test listens on (the machine's own syslog, if any, is
# not touched).
set -eu
. "$MP_LIB"
command -v unshare >/dev/null || fail "unshare (util-linux) is missing"

mkdir -p "$T/dev"
"$MP_PY" - "$T/dev/log" "$T/syslog.txt" <<'PY' &
import os, socket, sys, time
path, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
os.chmod(path, 0o666)
s.settimeout(0.5)
end = time.time() + 30
with open(out, "ab") as f:
    while time.time() < end and not os.path.exists(out + ".stop"):
        try:
            f.write(s.recv(65536) + b"\n"); f.flush()
        except socket.timeout:
            pass
PY
LPID=$!
i=0
while [ ! -S "$T/dev/log" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
[ -S "$T/dev/log" ] || fail "the test's log socket did not appear"

put_dir "$MSGS/small"
n=$(count_files "$MSGS/small")
{ conf_general log=syslog; conf_account test; conf_account gone "port=$(free_port)"; } >"$T/c.ini"
chmod 600 "$T/c.ini"
rc=0
unshare -m sh -c "mount --bind '$T/dev' /dev && exec '$BIN' -c '$T/c.ini'" \
	>"$T/out" 2>"$T/err" || rc=$?
touch "$T/syslog.txt.stop"
wait $LPID || true
[ "$rc" -eq 69 ] || fail "exit $rc, expected 69 (one account down): $(cat "$T/err")"
[ ! -s "$T/err" ] || fail "log = syslog, yet stderr got: $(head -3 "$T/err" | tr '\n' '|')"
[ "$(md_count "$T/Maildir")" -eq "$n" ] || fail "the poll did not deliver"
# <PRI> with facility mail (2): info = 2*8+6 = 22, err = 19
grep -aq "^<22>.*mailpull\[[0-9]*\]: test: $n messages ([0-9]* bytes) delivered" "$T/syslog.txt" ||
	fail "no info line for test at mail.info: $(head -3 "$T/syslog.txt" | tr '\n' '|')"
grep -aq "^<19>.*mailpull\[[0-9]*\]: gone: .*Connection refused" "$T/syslog.txt" ||
	fail "no error line for gone at mail.err: $(cat "$T/syslog.txt" | tr '\n' '|')"
echo "RESULT: log = syslog: info and error lines at facility mail, tagged mailpull[pid], naming the account; stderr empty"
