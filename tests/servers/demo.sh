#!/bin/sh
# demo.sh BIN - `make demo`: pull a few sample messages from a throwaway
# local Dovecot into ./demo/Maildir, and show what arrived.
set -eu
[ $# -eq 1 ] || { echo "usage: demo.sh /abs/path/to/mailpull" >&2; exit 64; }
BIN=$1
HERE=$(cd "$(dirname "$0")" && pwd)
TESTS=$(cd "$HERE/.." && pwd)
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
if [ "$(id -u)" -ne 0 ]; then
	echo "demo: needs root (it runs a private Dovecot that switches to a mail user)" >&2
	exit 1
fi
DEMO=$(pwd)/demo
DC_HERE=$HERE
. "$HERE/dovecot.sh"

echo "== mailpull demo, in $DEMO"
if [ -d "$DEMO/dc/run" ]; then dc_stop "$DEMO/dc"; fi
rm -rf "$DEMO"
mkdir -p "$DEMO"
trap 'echo "== stopping Dovecot"; dc_stop "$DEMO/dc"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

echo "== starting a private Dovecot (POP3/IMAP on 127.0.0.1, TLS from a throwaway test CA)"
dc_start "$DEMO/dc"
. "$DEMO/dc/ports.env"
echo "   POP3S on localhost:$DC_POP3S, IMAPS on localhost:$DC_IMAPS; log in $DC_LOG"

echo "== putting 5 sample messages in alice's mailbox"
"$PY" "$TESTS/integration/gen_messages.py" realistic "$DEMO/samples" 5 200k --prefix sample >/dev/null
dc_add_dir "$DEMO/dc" alice "$DEMO/samples"
echo "   the server holds $(dc_count "$DEMO/dc" alice) messages"

cat >"$DEMO/config.ini" <<INI
; written by tests/servers/demo.sh
[general]
state   = $DEMO/state.db
timeout = 10

[account demo]
protocol = pop3
host     = localhost
port     = $DC_POP3S
tls      = implicit
ca_file  = $DC_CA
user     = $DC_USER
password = $DC_PASS
auth     = auto
keep     = yes
deliver  = maildir:$DEMO/Maildir
INI
chmod 600 "$DEMO/config.ini"
echo "== wrote demo/config.ini (mode 0600, it holds a password):"
sed 's/^\(password *= *\).*/\1********/' "$DEMO/config.ini" | sed 's/^/   /'

echo "== a dry run first: what would happen to each message, and why"
"$BIN" -n -c "$DEMO/config.ini" | sed 's/^/   /' || true

echo "== running: $BIN -v -c demo/config.ini"
rc=0
"$BIN" -v -c "$DEMO/config.ini" || rc=$?
echo "   exit status $rc"

echo "== what arrived in demo/Maildir/new:"
if [ -d "$DEMO/Maildir/new" ]; then
	ls -l "$DEMO/Maildir/new" | sed 's/^/   /'
	first=$(ls "$DEMO/Maildir/new" | head -1)
	if [ -n "$first" ]; then
		echo "== the headers of $first:"
		sed '/^$/q' "$DEMO/Maildir/new/$first" | cut -c1-120 | sed 's/^/   /'
	fi
else
	echo "   (nothing: no Maildir was made)"
fi

echo "== running it again: nothing new should arrive"
"$BIN" -v -c "$DEMO/config.ini" || rc=$?
echo "   demo/Maildir/new holds $(ls "$DEMO/Maildir/new" 2>/dev/null | wc -l) messages"
echo "== mailpull -s: what the state database says"
"$BIN" -s -c "$DEMO/config.ini" | sed 's/^/   /' || true
exit $rc
