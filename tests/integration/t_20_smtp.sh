#!/bin/sh
# (20) deliver = smtp://HOST:PORT?tls=starttls&ca_file=... with smtp_user /
# smtp_password, against a real Postfix (tests/servers/postfix.sh: private,
# loopback only, STARTTLS with the test CA, AUTH only after STARTTLS, mail
# only from an authenticated client, delivering to a Maildir we read).
#  (a) messages taken over POP3 arrive byte-exact after the headers Postfix
#      prepends (Return-Path, X-Original-To, Delivered-To, Received ... with
#      ESMTPSA: TLS and AUTH were used); keep = no empties the source; new
#      mail is relayed alone; a run with nothing new relays nothing
#  (b) a wrong smtp_password: nothing delivered, all kept on the source,
#      exit 77 naming the refused login, no form of it in the -vv trace
#  (c) the wrong CA: STARTTLS verification fails, nothing sent, all kept
#  (d) a recipient Postfix refuses (550 unknown user): recorded as rejected,
#      kept on the source, not retried unless -a
set -eu
. "$MP_LIB"
. "$TESTS/servers/postfix.sh"

# run.sh's cleanup also stops any $DIR/*/pf-* left behind
PF="$T/pf-smtp"
trap 'pf_stop "$PF"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP
PF_HERE="$TESTS/servers" pf_start "$PF" || fail "could not start the test Postfix (see above)"
. "$PF/smtp.env"
note "Postfix on 127.0.0.1:$PF_PORT, log $PF_LOG"
MD=$PF_MAILDIR
URL="smtp://127.0.0.1:$PF_PORT?tls=starttls&ca_file=$PF_CA"
# the source logs in with USER/PASS (auth = user): every "> AUTH" and
# "> STARTTLS" in a -vv trace is then the SMTP side's (POP3 says STLS)

# delivered - messages in the recipient's Maildir, once Postfix's queue is
# empty (its 250 means queued: virtual(8) delivers a moment later)
delivered() {
	pf_wait_queue "$PF" ||
		fail "Postfix's queue did not empty within 10 s: $(tail -3 "$PF_LOG" | tr '\n' '|')"
	md_count "$MD"
}

# check_relayed SRCDIR - every file of SRCDIR is in the Maildir exactly once:
# the file is Postfix's four prepended headers (the Received one saying
# ESMTPSA, the Return-Path the source's own, else <>) followed by the
# source's bytes, unchanged; nothing else is in the Maildir
check_relayed() {
	"$MP_PY" - "$1" "$MD" "$PF_RCPT" <<'PY' >"$T/cmp" 2>&1 ||
import os, re, sys
src, md, rcpt = sys.argv[1:4]
want = {n: open(os.path.join(src, n), "rb").read() for n in os.listdir(src)}
got = []
for sub in ("new", "cur"):
    d = os.path.join(md, sub)
    got += [(n, open(os.path.join(d, n), "rb").read()) for n in sorted(os.listdir(d))]
bad, left = [], dict(want)
for name, data in got:
    # exactly what Postfix prepends, in this order
    m = re.match(rb"Return-Path: (<[^>\n]*>)\n"
                 rb"X-Original-To: (\S+)\n"
                 rb"Delivered-To: (\S+)\n"
                 rb"(Received: [^\n]*\n(?:[ \t][^\n]*\n)*)", data)
    if not m:
        bad.append("%s does not start with Postfix's four headers: %r" % (name, data[:200]))
        continue
    body = data[m.end():]
    if m.group(2).decode() != rcpt or m.group(3).decode() != rcpt:
        bad.append("%s: delivered to %r/%r, not %s" % (name, m.group(2), m.group(3), rcpt))
    if not re.search(rb"by smtp\.mailpull\.test \(Postfix\) with ESMTPSA id ", m.group(4)):
        bad.append("%s: not received with ESMTPSA (TLS + AUTH): %r" % (name, m.group(4)))
    hit = [k for k, v in left.items() if v == body]
    if len(hit) != 1:
        near = [k for k, v in want.items() if body[:300] == v[:300]]
        bad.append("%s matches %d source messages byte for byte%s" % (
            name, len(hit), " (it looks like %s: %d bytes sent, %d arrived)" % (
                near[0], len(want[near[0]]), len(body)) if near else ""))
        continue
    rp = re.match(rb"Return-Path: (<[^>\n]*>)\n", body)
    sender = rp.group(1) if rp else b"<>"
    if m.group(1) != sender:
        bad.append("%s: envelope sender %r, expected %r (the source's Return-Path)" % (hit[0], m.group(1), sender))
    del left[hit[0]]
for k in sorted(left):
    bad.append("%s did not arrive" % k)
if len(got) != len(want):
    bad.append("%d delivered, %d sent" % (len(got), len(want)))
for b in bad[:6]:
    print(b)
sys.exit(1 if bad else 0)
PY
	{ cat "$T/cmp" >&2; fail "relayed messages differ: $(head -1 "$T/cmp")"; }
}

# no_secret WHAT PASSWORD - no form of PASSWORD (clear, PLAIN, LOGIN) in the
# output of the last run
no_secret() {
	cat "$T/out" "$T/err" >"$T/trace"
	"$MP_PY" - "$PF_USER" "$2" <<'PY' | while IFS= read -r s; do
import base64, sys
u, p = sys.argv[1].encode(), sys.argv[2].encode()
for s in (p, base64.b64encode(p), base64.b64encode(b"\0" + u + b"\0" + p),
          base64.b64encode(u + b"\0" + u + b"\0" + p)):
    print(s.decode())
PY
		if grep -qF -- "$s" "$T/trace"; then
			echo "FAIL: $1: the output contains the password (as '$s'): $(grep -F -- "$s" "$T/trace" | head -1 | cut -c1-200)" >&2
			exit 1
		fi
	done || exit 1
}

# ---- (a) relay over STARTTLS + AUTH, byte-exact; keep = no
mkdir -p "$T/src"
for f in "$MSGS"/small/*.eml "$MSGS"/awk/*.eml; do
	case "$(basename "$f")" in
	*nul*|*binary*|*no-final-newline*|*20mb*|*20MB*) continue ;;   # not SMTP-safe / over Postfix's 10 MB
	esac
	cp "$f" "$T/src/"
done
put_dir "$T/src"
n=$(count_files "$T/src")
[ "$n" -ge 20 ] || fail "test premise: only $n messages to relay"

mkconf "$T/c.ini" auth=user keep=no "deliver=$URL" "smtp_to=$PF_RCPT" \
	"smtp_user=$PF_USER" "smtp_password=$PF_PASS"
run_mp -vv -c "$T/c.ini"
expect_rc 0 "relay over SMTP with STARTTLS and AUTH"
grep -q ': > STARTTLS' "$T/err" || fail "no STARTTLS in the -vv trace"
grep -q ': > AUTH ' "$T/err" || fail "no AUTH in the -vv trace"
conns=$(grep -c ': > STARTTLS' "$T/err" || true)
[ "$conns" -eq 1 ] || fail "expected one SMTP connection for the whole poll, saw $conns STARTTLS"
no_secret "relay with -vv" "$PF_PASS"
# deleted on the source only after Postfix took it: the k-th DELE comes
# after at least k replies "250 ... queued" to the end of DATA
bad=$(awk '/: < 250 .*[Qq]ueued/ { q++ }
	/: > DELE / { d++; if (d > q) { print "DELE number " d " after only " q " queued message(s)"; exit } }
	END { if (d != '"$n"') print d + 0 " DELE(s), expected '"$n"'" }' "$T/err")
[ -z "$bad" ] || fail "keep = no: $bad"
[ "$(server_count)" -eq 0 ] || fail "keep = no left $(server_count) message(s) on the source"
got=$(delivered)
[ "$got" -eq "$n" ] || fail "$got of $n messages delivered by Postfix"
check_relayed "$T/src"
grep -Eq "sasl_method=(PLAIN|LOGIN), sasl_username=$PF_USER\$" "$PF_LOG" ||
	fail "Postfix's log shows no AUTH PLAIN/LOGIN as $PF_USER"

# new mail alone, kept on the source this time; then nothing new: nothing relayed
mkdir -p "$T/src2"
cp "$MSGS/small/small-01.eml" "$MSGS/small/small-02.eml" "$T/src2/"
put_dir "$T/src2"
mkconf "$T/c.ini" auth=user keep=yes "deliver=$URL" "smtp_to=$PF_RCPT" \
	"smtp_user=$PF_USER" "smtp_password=$PF_PASS"
run_mp -vv -c "$T/c.ini"
expect_rc 0 "second run, two new messages"
got=$(delivered)
[ "$got" -eq $((n + 2)) ] || fail "second run: $((got - n)) relayed, expected the 2 new ones"
[ "$(server_count)" -eq 2 ] || fail "keep = yes: $(server_count) left on the source, expected 2"
run_mp -vv -c "$T/c.ini"
expect_rc 0 "third run, nothing new"
grep -q ': > MAIL FROM' "$T/err" && fail "a run with nothing new sent MAIL FROM"
got=$(delivered)
[ "$got" -eq $((n + 2)) ] || fail "a run with nothing new delivered $((got - n - 2)) message(s)"
before=$got

# ---- (b) a wrong smtp_password: exit 77, nothing delivered, all kept
{ conf_general "state=$T/s-badpw.db"
  conf_account test auth=user keep=no "deliver=$URL" "smtp_to=$PF_RCPT" \
	"smtp_user=$PF_USER" "smtp_password=Wr0ng-$PF_PASS"; } >"$T/b.ini"
chmod 600 "$T/b.ini"
run_mp -vv -c "$T/b.ini"
expect_rc 77 "wrong smtp_password"
grep -v ': [<>] ' "$T/err" | grep -q "^mailpull: test: smtp://127.0.0.1:$PF_PORT: .*AUTH refused: 535 " ||
	fail "wrong smtp_password: no error naming the account, the relay and the refused AUTH (535): $(grep -v ': [<>] ' "$T/err" | tail -2 | tr '\n' '|')"
grep -q ': > MAIL FROM' "$T/err" && fail "wrong smtp_password: MAIL FROM sent after the refused AUTH"
no_secret "wrong smtp_password with -vv" "Wr0ng-$PF_PASS"
[ "$(server_count)" -eq 2 ] || fail "wrong smtp_password: $(server_count) left on the source, expected 2"
got=$(delivered)
[ "$got" -eq "$before" ] || fail "wrong smtp_password: $((got - before)) message(s) delivered"
# the password from smtp_passcmd, wrong too: the same
printf 'Wr0ng2-%s\n' "$PF_PASS" >"$T/pw"
{ conf_general "state=$T/s-badpw.db"
  conf_account test auth=user keep=no "deliver=$URL" "smtp_to=$PF_RCPT" \
	"smtp_user=$PF_USER" "smtp_passcmd=cat $T/pw"; } >"$T/b.ini"
run_mp -vv -c "$T/b.ini"
expect_rc 77 "wrong password from smtp_passcmd"
no_secret "wrong smtp_passcmd password with -vv" "Wr0ng2-$PF_PASS"
[ "$(server_count)" -eq 2 ] || fail "wrong smtp_passcmd password: the source lost messages"

# ---- (c) STARTTLS with a CA that did not sign the server's certificate
{ conf_general "state=$T/s-ca.db"
  conf_account test auth=user keep=no "deliver=smtp://127.0.0.1:$PF_PORT?tls=starttls&ca_file=$PF_OTHER_CA" \
	"smtp_to=$PF_RCPT" "smtp_user=$PF_USER" "smtp_password=$PF_PASS"; } >"$T/ca.ini"
chmod 600 "$T/ca.ini"
run_mp -vv -c "$T/ca.ini"
[ "$MP_RC" -ne 0 ] || fail "an unverifiable certificate was accepted (exit 0)"
grep -v ': [<>] ' "$T/err" | grep "smtp://127.0.0.1:$PF_PORT: " | grep -qi 'certificate\|verif' ||
	fail "wrong CA: no error about the certificate: $(grep -v ': [<>] ' "$T/err" | tail -2 | tr '\n' '|')"
grep -q ': > AUTH ' "$T/err" && fail "wrong CA: AUTH sent over an unverified connection"
no_secret "wrong CA with -vv" "$PF_PASS"
[ "$(server_count)" -eq 2 ] || fail "wrong CA: $(server_count) left on the source, expected 2"
got=$(delivered)
[ "$got" -eq "$before" ] || fail "wrong CA: $((got - before)) message(s) delivered"

# ---- (d) a recipient Postfix refuses (550 User unknown): rejected, kept,
# not retried without -a
{ conf_general "state=$T/s-rej.db"
  conf_account test auth=user keep=no "deliver=$URL" "smtp_to=$PF_NOUSER" \
	"smtp_user=$PF_USER" "smtp_password=$PF_PASS"; } >"$T/r.ini"
chmod 600 "$T/r.ini"
run_mp -vv -c "$T/r.ini"
expect_rc 73 "SMTP recipient refused (550)"
grep -v ': [<>] ' "$T/err" | grep -q 'refused for good: .*550' ||
	fail "no warning naming the 550: $(grep -v ': [<>] ' "$T/err" | tail -2 | tr '\n' '|')"
[ "$(server_count)" -eq 2 ] || fail "keep = no with every message refused: $(server_count) left on the source, expected 2"
got=$(delivered)
[ "$got" -eq "$before" ] || fail "refused recipient: $((got - before)) message(s) delivered"
run_mp -vv -c "$T/r.ini"
expect_rc 0 "second run after the refusals"
grep -q ': > RCPT TO' "$T/err" && fail "the second run tried the refused messages again"
run_mp -vv -a -c "$T/r.ini"
grep -q ': > RCPT TO' "$T/err" || fail "-a did not try the refused messages again"
[ "$(server_count)" -eq 2 ] || fail "-a: the refused messages were deleted"

echo "RESULT: $n messages relayed to Postfix over STARTTLS + AUTH byte-exact (after Postfix's 4 prepended headers); keep = no emptied the source; new mail relayed alone, nothing twice; a wrong password (77) or CA delivers nothing and keeps all; a 550 is recorded, kept, not retried unless -a"
