#!/bin/sh
# (32) What each target holds is found again when its deliver line is
# written another way (here maildir:DIR becomes maildir:DIR/ with a doubled
# slash): after an MDA failed next to a Maildir, the retry with the
# respelled line delivers to the MDA alone; the Maildir gets nothing twice.
set -eu
. "$MP_LIB"

mkdir -p "$T/src"
for i in 1 2 3; do
	printf 'From: a@example.org\nSubject: r%s\nMessage-ID: <r%s.t32@x>\n\nr%s\n' $i $i $i >"$T/src/r$i.eml"
done
put_dir "$T/src"
cat >"$T/mda.sh" <<'EOS'
[ -e "$1.ok" ] || { cat >/dev/null; exit 1; }
mkdir -p "$1"
cat >"$(mktemp "$1/m.XXXXXX")"
EOS
mk() { # FILE MAILDIR-SPELLING
	{ conf_general; conf_account test deliver=-
	  echo "deliver         = maildir:$2"
	  echo "deliver         = mda:sh $T/mda.sh $T/mdabox"; } >"$1"
	chmod 600 "$1"
}
mk "$T/c1.ini" "$T/md"
run_mp -c "$T/c1.ini"
expect_rc 73 "the MDA failing next to the Maildir"
[ "$(md_count "$T/md")" -eq 3 ] || fail "first run: $(md_count "$T/md") in the Maildir, expected 3"
touch "$T/mdabox.ok"
mk "$T/c2.ini" "$(dirname "$T")//$(basename "$T")/md/"
run_mp -c "$T/c2.ini"
expect_rc 0 "the retry with the Maildir line respelled"
[ "$(md_count "$T/md")" -eq 3 ] || fail "the respelled Maildir got the messages again: $(md_count "$T/md") files"
[ "$(ls "$T/mdabox" | wc -l)" -eq 3 ] || fail "the MDA got $(ls "$T/mdabox" | wc -l) of 3"
echo "RESULT: a respelled deliver line is the same target: the retry went to the MDA alone"
