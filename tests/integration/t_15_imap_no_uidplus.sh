#!/bin/sh
# (15) keep = no against a Dovecot that does not announce UIDPLUS: without
# UID EXPUNGE, a plain EXPUNGE would also remove what another client flagged
# \Deleted. So: with no other \Deleted message, ours are expunged (plain
# EXPUNGE after UID SEARCH DELETED shows only ours); with another client's
# \Deleted message present, nothing is expunged, ours stay flagged, a
# warning says so and the exit is 75; the other message survives.
set -eu
. "$MP_LIB"

S=$MSGS/small
N="$T/dc-nouidplus"
trap 'dc_stop "$N"' EXIT
dc_add_user "$N" "$MP_USER" "$MP_PASS" >/dev/null 2>&1 || true
DC_IMAPCAPS="IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+" \
	dc_start "$N" >/dev/null || fail "could not start the Dovecot without UIDPLUS"
NIMAP=$(sed -n 's/^DC_IMAP=//p' "$N/ports.env")
ADM="doveadm -c $N/dovecot.conf"

count() { $ADM -f tab fetch -u "$MP_USER" 'uid' mailbox "$1" all 2>/dev/null | tail -n +2 | wc -l; }
conf() { # BOX STATE MAILDIR
	{ conf_general "state=$2"
	  conf_account test protocol=imap "port=$NIMAP" tls=none ca_file=- allow_plaintext=yes \
		"folders=$1" keep=no "deliver=maildir:$3"; } >"$T/c.ini"
	chmod 600 "$T/c.ini"
}

# ---- only our messages: plain EXPUNGE after UID SEARCH DELETED
$ADM mailbox create -u "$MP_USER" Solo || fail "doveadm mailbox create Solo"
for i in 01 02 03; do
	$ADM save -u "$MP_USER" -m Solo <"$S/small-$i.eml" || fail "doveadm save small-$i"
done
conf Solo "$T/s1.db" "$T/M1"
run_mp -vv -c "$T/c.ini"
expect_rc 0 "keep = no without UIDPLUS, only ours flagged"
grep -q 'UIDPLUS' "$T/err" && grep -E ': < .*CAPABILITY' "$T/err" | grep -q 'UIDPLUS' &&
	fail "test premise: the server still announces UIDPLUS"
grep -qE ': > [^ ]+ UID EXPUNGE' "$T/err" && fail "UID EXPUNGE sent to a server without UIDPLUS"
grep -qE ': > [^ ]+ UID SEARCH DELETED' "$T/err" || fail "no UID SEARCH DELETED before the plain EXPUNGE"
grep -qE ': > [^ ]+ EXPUNGE$' "$T/err" || fail "no plain EXPUNGE although only our messages were \\Deleted"
[ "$(md_count "$T/M1/.Solo")" -eq 3 ] || fail "only ours: $(md_count "$T/M1/.Solo") of 3 delivered"
[ "$(count Solo)" -eq 0 ] || fail "only ours: $(count Solo) message(s) left on the server"

# ---- another client's \Deleted message: nothing expunged, ours flagged
$ADM mailbox create -u "$MP_USER" Shared || fail "doveadm mailbox create Shared"
for i in 04 05 06; do
	$ADM save -u "$MP_USER" -m Shared <"$S/small-$i.eml" || fail "doveadm save small-$i"
done
other=$(sed -n 's/^Message-ID:[[:space:]]*\(<[^>]*>\).*/\1/Ip' "$S/small-06.eml" | head -1)
$ADM flags add -u "$MP_USER" '\Deleted' mailbox Shared header Message-ID "$other" ||
	fail "doveadm flags add \\Deleted"
conf Shared "$T/s2.db" "$T/M2"
run_mp -vv -c "$T/c.ini"
expect_rc 75 "keep = no without UIDPLUS, another client's \\Deleted message present"
grep -qE ': > [^ ]+ EXPUNGE$' "$T/err" && fail "a plain EXPUNGE was sent while another client's message was \\Deleted"
grep -v ': [<>] ' "$T/err" | grep -q 'other messages carry \\Deleted' ||
	fail "no warning about the other \\Deleted message: $(grep -v ': [<>] ' "$T/err" | tail -3 | tr '\n' '|')"
[ "$(md_count "$T/M2/.Shared")" -eq 3 ] || fail "another's \\Deleted: $(md_count "$T/M2/.Shared") of 3 delivered"
[ "$(count Shared)" -eq 3 ] || fail "another's \\Deleted: $(count Shared) on the server, expected all 3 (nothing expunged)"
$ADM -f tab fetch -u "$MP_USER" 'flags hdr.message-id' mailbox Shared all | grep -F "$other" | grep -q Deleted ||
	fail "the other client's message lost its \\Deleted flag"
# a second run takes nothing again and still expunges nothing
run_mp -c "$T/c.ini"
[ "$(md_count "$T/M2/.Shared")" -eq 3 ] || fail "second run: $(md_count "$T/M2/.Shared") files, expected 3"
[ "$(count Shared)" -eq 3 ] || fail "second run expunged: $(count Shared) left"
echo "RESULT: without UIDPLUS: plain EXPUNGE only when every \\Deleted message is ours; with another client's, nothing expunged (exit 75)"
