#!/bin/sh
# check_install.sh - `make install` and `make uninstall` put in and take out
# exactly the files they should.
#
# Usage: [BUILD=DIR] sh tests/docs/check_install.sh    (from anywhere)
#   BUILD is the build directory the Makefile uses (default build); $MAKE is
#   used if set.  Variables a calling make passes down (PREFIX=, MANDIR=,
#   DESTDIR=, ... on its command line, in MAKEFLAGS and the environment) are
#   dropped, so they cannot redirect the install out of the scratch directory.
#
# In a scratch directory: `make install DESTDIR=$tmp PREFIX=/usr` must
# create exactly
#   usr/bin/mailpull                          (mode 755, runs --version)
#   usr/share/man/man1/mailpull.1             (644, same bytes as man/)
#   usr/share/man/man5/mailpull.ini.5         (644)
#   usr/share/doc/mailpull/sample.ini         (644)
#   usr/share/doc/mailpull/README.md          (644)
#   usr/share/doc/mailpull/contrib/FILE       (644, for every file in contrib/)
# and nothing else; files already there (another program's) are left alone.
# `make uninstall` with the same variables must remove exactly those files
# and the doc directory, and leave the other files.  The same again with
# PREFIX=/opt/mp MANDIR=/opt/mp/man, so the variables are honoured.
# The installed systemd units are checked with `systemd-analyze verify
# --user` when that works here (it needs a runtime directory; skipped with
# a note otherwise).
# Prints one line per problem; exits 1 if any.
set -u

root=$(cd "$(dirname "$0")/../.." && pwd)
make=${MAKE:-make}
build_var=${BUILD:+BUILD=$BUILD}
unset MAKEFLAGS MFLAGS MAKEOVERRIDES MAKELEVEL PREFIX BINDIR MANDIR DOCDIR DESTDIR
tmp=$(mktemp -d "${TMPDIR:-/tmp}/check_install.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'rm -rf "$tmp"; exit 130' INT TERM
fails=0
fail() { echo "check_install: $*"; fails=$((fails + 1)); }

# The files of a tree, relative, sorted, one a line.
list() { (cd "$1" && find . -type f | sed 's|^\./||' | LC_ALL=C sort); }

# One round: $1 = prefix, $2 = man dir, both as seen inside DESTDIR.
round() {
	prefix=$1 mandir=$2
	dest=$tmp/dest
	rm -rf "$dest"
	mkdir -p "$dest$prefix/bin" "$dest$mandir/man1"
	# Another program's files, which neither target may touch.
	echo other >"$dest$prefix/bin/other"
	echo other >"$dest$mandir/man1/other.1"
	before=$(list "$dest")

	docdir=${prefix#/}/share/doc/mailpull
	m=${mandir#/}
	{
		echo "${prefix#/}/bin/mailpull"
		echo "$m/man1/mailpull.1"
		echo "$m/man5/mailpull.ini.5"
		echo "$docdir/sample.ini"
		echo "$docdir/README.md"
		for f in "$root"/contrib/*; do
			[ -f "$f" ] && echo "$docdir/contrib/${f##*/}"
		done
		printf '%s\n' "$before"
	} | LC_ALL=C sort >"$tmp/want"

	vars="$build_var DESTDIR=$dest PREFIX=$prefix"
	[ "$mandir" = "$prefix/share/man" ] || vars="$vars MANDIR=$mandir"
	# shellcheck disable=SC2086
	if ! $make -C "$root" --no-print-directory install $vars \
	    >"$tmp/log" 2>&1; then
		fail "make install $vars failed:"
		sed 's/^/  /' "$tmp/log"
		return
	fi
	list "$dest" >"$tmp/got"
	if ! cmp -s "$tmp/want" "$tmp/got"; then
		fail "make install $vars: installed files differ (- expected, + got):"
		diff -u "$tmp/want" "$tmp/got" | sed -n 's/^\([-+][^-+]\)/  \1/p'
	fi
	for pair in "bin/mailpull:755" "share/doc/mailpull/sample.ini:644" \
	    "share/doc/mailpull/README.md:644"; do
		f=$dest$prefix/${pair%:*}
		[ -f "$f" ] || continue
		mode=$(stat -c %a "$f")
		[ "$mode" = "${pair#*:}" ] || fail "$f: mode $mode, not ${pair#*:}"
	done
	for src in man/mailpull.1:man1/mailpull.1 \
	    man/mailpull.ini.5:man5/mailpull.ini.5; do
		f=$dest$mandir/${src#*:}
		[ -f "$f" ] || continue
		cmp -s "$root/${src%%:*}" "$f" || fail "$f differs from ${src%%:*}"
		mode=$(stat -c %a "$f")
		[ "$mode" = 644 ] || fail "$f: mode $mode, not 644"
	done
	for f in "$root"/contrib/*; do
		[ -f "$f" ] || continue
		g=$dest$prefix/share/doc/mailpull/contrib/${f##*/}
		[ -f "$g" ] || continue
		cmp -s "$f" "$g" || fail "$g differs from contrib/${f##*/}"
		mode=$(stat -c %a "$g")
		[ "$mode" = 644 ] || fail "$g: mode $mode, not 644"
	done
	if [ -x "$dest$prefix/bin/mailpull" ] &&
	    ! "$dest$prefix/bin/mailpull" --version >/dev/null 2>&1; then
		fail "$dest$prefix/bin/mailpull --version failed"
	fi
	[ "$prefix" = /usr ] && verify_units "$dest" "$prefix" "$mandir"

	# shellcheck disable=SC2086
	if ! $make -C "$root" --no-print-directory uninstall $vars \
	    >"$tmp/log" 2>&1; then
		fail "make uninstall $vars failed:"
		sed 's/^/  /' "$tmp/log"
		return
	fi
	after=$(list "$dest")
	if [ "$after" != "$before" ]; then
		fail "make uninstall $vars: files left or removed (- expected, + got):"
		printf '%s\n' "$before" >"$tmp/want"
		printf '%s\n' "$after" >"$tmp/got"
		diff -u "$tmp/want" "$tmp/got" | sed -n 's/^\([-+][^-+]\)/  \1/p'
	fi
	[ -d "$dest$prefix/share/doc/mailpull" ] &&
		fail "make uninstall $vars: $prefix/share/doc/mailpull is still there"
}

# systemd-analyze verify on the installed units, with ExecStart pointed at
# the installed binary (systemd would find it in /usr/bin) and man pages
# looked up in the installed man dir.
verify_units() {
	dest=$1 prefix=$2 mandir=$3
	units=$(cd "$dest$prefix/share/doc/mailpull/contrib" 2>/dev/null &&
		ls ./*.service ./*.timer 2>/dev/null)
	[ -n "$units" ] || { fail "no systemd units installed in contrib/"; return; }
	if ! command -v systemd-analyze >/dev/null 2>&1; then
		echo "check_install: systemd-analyze not installed, units not verified"
		return
	fi
	u=$tmp/units
	rm -rf "$u"
	mkdir -p "$u" "$tmp/run"
	chmod 700 "$tmp/run"
	for f in $units; do
		sed "s|^\(Exec[A-Za-z]*=\)mailpull |\1$dest$prefix/bin/mailpull |" \
			"$dest$prefix/share/doc/mailpull/contrib/$f" >"$u/$f"
	done
	# shellcheck disable=SC2086 # $units: one word per unit file
	out=$(cd "$u" && XDG_RUNTIME_DIR=$tmp/run MANPATH=$dest$mandir \
		systemd-analyze verify --user $units 2>&1)
	rc=$?
	case $out in
	*"Failed to initialize manager"* | *"Failed to lookup RuntimeDirectory"*)
		echo "check_install: systemd-analyze cannot run here, units not" \
			"verified: $(echo "$out" | head -n 1)"
		return ;;
	esac
	if [ $rc -ne 0 ] || [ -n "$out" ]; then
		fail "systemd-analyze verify --user:"
		echo "$out" | sed 's/^/  /'
	fi
}

round /usr /usr/share/man
round /opt/mp /opt/mp/man

if [ "$fails" -ne 0 ]; then
	echo "check_install: $fails problem(s)"
	exit 1
fi
echo "check_install: make install and make uninstall install and remove" \
	"exactly their files"
