#!/bin/sh
# Memory does not grow with message size (DESIGN 1.6), measured with GNU
# time -v (peak RSS), not a timer:
#  - plain POP3 with USER/PASS and plain IMAP with LOGIN, the way the
#    peers' figures were taken on loopback (mpop 8 MB, fdm 73 MB, getmail6
#    614 MB, mbsync 129 MB for this message): a 60 MB message takes at most
#    6144 KB;
#  - POP3S with the default login: OpenSSL 3's code and tables are a fixed
#    cost of a few MB, so here the check is that the 60 MB message costs at
#    most 1024 KB more than a one-line one.
# Both messages arrive byte-exact.
set -eu
. "$MP_LIB"

LIMIT_KB=${MEMORY_LIMIT_KB:-6144}
GROWTH_KB=${MEMORY_GROWTH_KB:-1024}
[ -x /usr/bin/time ] || fail "/usr/bin/time missing (package time)"

peak() { # WHAT -> prints KB; runs the binary under time -v
	rc=0
	timeout -k 5 300 /usr/bin/time -v -o "$T/time" "$BIN" -q -c "$T/c.ini" >"$T/out" 2>"$T/err" || rc=$?
	[ $rc -eq 0 ] || fail "$1: exit $rc; stderr: $(head -c 300 "$T/err")"
	kb=$(sed -n 's/^[[:space:]]*Maximum resident set size (kbytes): *//p' "$T/time")
	[ -n "$kb" ] || fail "no 'Maximum resident set size' in the output of time -v"
	echo "$kb"
}

# one run: MODE (plain|tls) WHAT SRCDIR -> peak KB, after checking delivery
measure() {
	dc_empty "$DC_DIR" "$MP_USER"
	put_dir "$3"
	md="$T/M-$1-$(basename "$3")"
	st="state=$T/s-$1-$(basename "$3").db"
	if [ "$1" = imap ]; then
		{ conf_general "$st"; conf_account test protocol=imap "port=$DC_IMAP" tls=none ca_file=- allow_plaintext=yes auth=user "deliver=maildir:$md"; } >"$T/c.ini"
	elif [ "$1" = plain ]; then
		{ conf_general "$st"; conf_account test "port=$DC_POP3" tls=none ca_file=- allow_plaintext=yes auth=user "deliver=maildir:$md"; } >"$T/c.ini"
	else
		{ conf_general "$st"; conf_account test "deliver=maildir:$md"; } >"$T/c.ini"
	fi
	chmod 600 "$T/c.ini"
	kb=$(peak "$2 ($1)")
	assert_maildir "$3" "$md" "$2 ($1)" >&2
	echo "$kb"
}

mkdir -p "$T/tiny"
cp "$MSGS/awk/awk-12-tiny.eml" "$T/tiny/"

# IMAP first: the mailbox is emptied behind Dovecot's back between runs,
# which its IMAP index would see as messages vanishing mid-poll.
imap_big=$(measure imap "the 60 MB message" "$MSGS/big")
note "plain IMAP, LOGIN: peak RSS $imap_big KB for 60 MB (limit $LIMIT_KB KB)"
[ "$imap_big" -le "$LIMIT_KB" ] ||
	fail "plain IMAP: peak RSS $imap_big KB for a 60 MB message, limit $LIMIT_KB KB"

plain_small=$(measure plain "a tiny message" "$T/tiny")
plain_big=$(measure plain "the 60 MB message" "$MSGS/big")
note "plain POP3, USER/PASS: peak RSS $plain_big KB for 60 MB, $plain_small KB for a tiny message (limit $LIMIT_KB KB)"
[ "$plain_big" -le "$LIMIT_KB" ] ||
	fail "plain POP3: peak RSS $plain_big KB for a 60 MB message, limit $LIMIT_KB KB"

tls_small=$(measure tls "a tiny message" "$T/tiny")
tls_big=$(measure tls "the 60 MB message" "$MSGS/big")
note "POP3S: peak RSS $tls_big KB for 60 MB, $tls_small KB for a tiny message"
[ $((tls_big - tls_small)) -le "$GROWTH_KB" ] ||
	fail "POP3S: a 60 MB message costs $((tls_big - tls_small)) KB more than a tiny one (limit $GROWTH_KB KB)"
echo "RESULT: 60 MB byte-exact; POP3 $plain_big KB, IMAP $imap_big KB (limit $LIMIT_KB), POP3S $tls_big KB vs $tls_small KB tiny"
