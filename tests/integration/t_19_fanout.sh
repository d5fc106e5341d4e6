#!/bin/sh
# (19) Fan-out: four `deliver` lines at once — a Maildir, an mbox, Dovecot's
# LMTP and an MDA. The MDA fails temporarily (exit 75) from the 6th message
# on: the other targets go on, a message is deleted on the server (keep =
# no) only once every target has it, and the next run delivers to the MDA
# alone — no target gets a message twice. Then an unchanged mailbox brings
# nothing, and -n shows the fan-out without writing.
set -eu
. "$MP_LIB"

mkdir -p "$T/src"
for f in "$MSGS"/small/*.eml; do cp "$f" "$T/src/"; done
printf 'Return-Path: <a@example.org>\nFrom: a@example.org\nSubject: From lines\nMessage-ID: <fanout.from@t19>\n\nFrom here on\n>From quoted\n' \
	>"$T/src/zz-from.eml"
put_dir "$T/src"
n=$(count_files "$T/src")
[ "$n" -ge 10 ] || fail "test premise: only $n messages"

# mda.sh BOX: store stdin as BOX/new/NAME; exit 75 from the 6th message on
# unless BOX.fixed exists
cat >"$T/mda.sh" <<'EOF'
box=$1
mkdir -p "$box/tmp" "$box/new" "$box/cur"
if [ ! -e "$box.fixed" ] && [ "$(ls "$box/new" | wc -l)" -ge 5 ]; then
	cat >/dev/null
	echo "mda.sh: full for today" >&2
	exit 75
fi
f=$(mktemp "$box/tmp/m.XXXXXX") || exit 75
cat >"$f" || exit 75
mv "$f" "$box/new/${f##*/}"
EOF

{
	conf_general
	conf_account test keep=no deliver=-
	echo "deliver         = maildir:$T/md"
	echo "deliver         = mbox:$T/box.mbox"
	echo "deliver         = lmtp://127.0.0.1:$DC_LMTP"
	echo "smtp_to         = $MP_RCPT"
	echo "deliver         = mda:sh $T/mda.sh $T/mdabox"
} >"$T/c.ini"
chmod 600 "$T/c.ini"

# check.py: every source message is in each target exactly once
cat >"$T/check.py" <<'PY'
import mailbox, os, re, sys
src, md, mbox, lmtp, mda, final = sys.argv[1:7]
def norm(b): return b if b.endswith(b"\n") else b + b"\n"
want = {f: open(os.path.join(src, f), "rb").read() for f in os.listdir(src)}
def maildir(d):
    out = []
    for sub in ("new", "cur"):
        p = os.path.join(d, sub)
        for f in sorted(os.listdir(p)) if os.path.isdir(p) else []:
            out.append(open(os.path.join(p, f), "rb").read())
    return out
bad = []
def once(name, got, match):
    left = dict(want)
    for data in got:
        hit = [k for k, v in want.items() if match(data, v)]
        if len(hit) != 1:
            bad.append("%s: a message matches %d sources: %r" % (name, len(hit), data[:80]))
        elif hit[0] not in left:
            bad.append("%s: %s arrived twice" % (name, hit[0]))
        else:
            del left[hit[0]]
    return left
exact = lambda d, v: d == v
left = once("maildir", maildir(md), exact)
if final == "all" and left:
    bad.append("maildir: %d never arrived (%s)" % (len(left), sorted(left)[0]))
box = mailbox.mbox(mbox)
mb = [re.sub(rb"(?m)^>(>*From )", rb"\1", box.get_bytes(k)) for k in box.keys()]
left = once("mbox", mb, lambda d, v: d == norm(v))
if final == "all" and left:
    bad.append("mbox: %d never arrived" % len(left))
left = once("lmtp", maildir(lmtp), lambda d, v: d.endswith(v) and d.startswith(b"Return-Path:"))
if final == "all" and left:
    bad.append("lmtp: %d never arrived" % len(left))
got = maildir(mda)
left = once("mda", got, exact)
if final == "all" and left:
    bad.append("mda: %d never arrived" % len(left))
if final != "all" and len(got) != int(final):
    bad.append("mda: %d messages, expected %s" % (len(got), final))
for b in bad[:8]:
    print(b)
sys.exit(1 if bad else 0)
PY
LMTPBOX=$(dc_maildir "$DC_DIR" "$MP_RCPT")
check() { # WHAT MDA-COUNT|all
	"$MP_PY" "$T/check.py" "$T/src" "$T/md" "$T/box.mbox" "$LMTPBOX" \
		"$T/mdabox" "$2" >"$T/cmp" 2>&1 ||
		{ cat "$T/cmp" >&2; fail "$1: $(head -1 "$T/cmp")"; }
}

# ---- 1: the MDA takes 5, then fails temporarily; the rest goes on
run_mp -c "$T/c.ini"
expect_rc 75 "one of four targets failing temporarily"
grep -q 'exited 75' "$T/err" || fail "no line for the MDA's exit 75: $(head -2 "$T/err" | tr '\n' '|')"
grep -q 'the other targets go on' "$T/err" ||
	fail "no line saying the other targets go on: $(head -3 "$T/err" | tr '\n' '|')"
check "after the first run" 5
[ "$(server_count)" -eq $((n - 5)) ] ||
	fail "keep = no: $(server_count) left on the server, expected $((n - 5)) (deleted only what every target has)"

# ---- 2: the MDA works again: only it gets the rest
touch "$T/mdabox.fixed"
run_mp -vv -c "$T/c.ini"
expect_rc 0 "the retry"
check "after the retry" all
[ "$(server_count)" -eq 0 ] || fail "keep = no left $(server_count) on the server"
lhlo=$(grep -c ': > LHLO ' "$T/err" || true)
[ "$lhlo" -eq 0 ] || fail "the retry spoke to the LMTP target ($lhlo LHLO), which had every message"

# ---- 3: nothing new: nothing anywhere; -n writes nothing
put_msgs "$MSGS/small/$(ls "$MSGS/small" | head -1)"
run_mp -n -c "$T/c.ini"
expect_rc 0 "dry run"
check "after the dry run" all
run_mp -c "$T/c.ini"
expect_rc 0 "one more message"
[ "$(count_files "$T/mdabox/new")" -eq $((n + 1)) ] || fail "the new message did not reach the MDA"
[ "$(count_files "$T/md/new")" -eq $((n + 1)) ] || fail "the new message did not reach the Maildir"
echo "RESULT: $n messages into Maildir + mbox + LMTP + MDA; MDA out after 5 (exit 75), the others went on; the retry went to the MDA alone; each target holds each message once"
