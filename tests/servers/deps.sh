#!/bin/sh
# deps.sh [PKG...] - make sure the Debian packages the build and tests need
# are installed. Default list: the build and test suite's packages.
# Quiet and fast when nothing is missing. As root: installs what is missing
# without letting any packaged service start, and creates the test mail user.
# Not root: prints the one `sudo apt-get install` line and exits 1.
set -eu

TEST_USER=mailpull-test

if [ $# -gt 0 ]; then
	PKGS="$*"
else
	PKGS="gcc make pkg-config libssl-dev libsqlite3-dev libinih-dev check
	      openssl python3 time dovecot-core dovecot-pop3d dovecot-imapd
	      dovecot-lmtpd postfix faketime groff-base bsdutils gdb"
fi

missing=""
for p in $PKGS; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$st" in
	*" installed") ;;
	*) missing="$missing $p" ;;
	esac
done
missing=${missing# }

is_root() { [ "$(id -u)" -eq 0 ]; }

ensure_user() {
	is_root || return 0
	getent passwd "$TEST_USER" >/dev/null 2>&1 && return 0
	echo "deps: creating system user $TEST_USER for test mail"
	useradd --system --no-create-home --home-dir /nonexistent \
		--shell /usr/sbin/nologin --user-group "$TEST_USER"
}

if [ -z "$missing" ]; then
	ensure_user
	exit 0
fi

if ! is_root; then
	echo "deps: missing packages: $missing" >&2
	echo "sudo apt-get install $missing"
	exit 1
fi

echo "deps: installing $missing"

# Keep packaged services from starting while we install.
POLICY=/usr/sbin/policy-rc.d
made_policy=0
cleanup() {
	if [ "$made_policy" -eq 1 ]; then rm -f "$POLICY"; fi
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM
if [ ! -e "$POLICY" ]; then
	printf '#!/bin/sh\nexit 101\n' >"$POLICY"
	chmod 755 "$POLICY"
	made_policy=1
fi

export DEBIAN_FRONTEND=noninteractive
# Postfix: "No configuration" - no /etc/postfix/main.cf, so the packaged
# instance cannot run; the tests start their own (tests/servers/postfix.sh).
case " $missing " in
*" postfix "*)
	echo "postfix postfix/main_mailer_type select No configuration" |
		debconf-set-selections
	;;
esac
apt_install() {
	# shellcheck disable=SC2086
	apt-get install -y -q -o Dpkg::Options::=--force-confdef \
		-o Dpkg::Options::=--force-confold $missing
}
if ! apt_install; then
	echo "deps: install failed; running apt-get update and retrying"
	apt-get update -q
	apt_install
fi

# A packaged Dovecot must not hold the system ports or run at all.
case " $missing " in
*" dovecot-"*)
	if command -v systemctl >/dev/null 2>&1; then
		systemctl disable dovecot.service dovecot.socket >/dev/null 2>&1 || true
	fi
	;;
esac
pidf=/run/dovecot/master.pid
if [ -f "$pidf" ]; then
	pid=$(cat "$pidf" 2>/dev/null || true)
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		echo "deps: stopping the packaged dovecot (pid $pid)"
		kill "$pid" 2>/dev/null || true
		i=0
		while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do
			sleep 0.1; i=$((i + 1))
		done
		kill -9 "$pid" 2>/dev/null || true
	fi
fi

# Nor a packaged Postfix.
case " $missing " in
*" postfix "*)
	if command -v systemctl >/dev/null 2>&1; then
		systemctl disable postfix.service >/dev/null 2>&1 || true
	fi
	;;
esac
pidf=/var/spool/postfix/pid/master.pid
if [ -f "$pidf" ]; then
	pid=$(tr -d ' ' <"$pidf" 2>/dev/null || true)
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		echo "deps: stopping the packaged postfix (pid $pid)"
		kill "$pid" 2>/dev/null || true
		i=0
		while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do
			sleep 0.1; i=$((i + 1))
		done
		kill -9 "$pid" 2>/dev/null || true
	fi
fi

ensure_user
echo "deps: done"
