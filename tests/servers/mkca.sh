#!/bin/sh
# mkca.sh DIR - a throwaway test PKI in DIR:
#   ca.pem / ca.key            test CA
#   server.pem / server.key    server cert signed by it, SAN localhost, 127.0.0.1, ::1
#   other-ca.pem / .key        an unrelated CA (for "unknown CA" tests)
#   wrong.pem / wrong.key      signed by the test CA, valid only for wrong.example
#   server.fp                  sha256 fingerprint of server.pem (AB:CD:... form)
# EC P-256 keys: fast. Idempotent: keeps an existing set.
set -eu
[ $# -eq 1 ] || { echo "usage: mkca.sh DIR" >&2; exit 64; }
D=$1
mkdir -p "$D"
[ -s "$D/server.fp" ] && [ -s "$D/wrong.pem" ] && exit 0

cd "$D"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

mkca() { # name cn
	key "$1.key"
	openssl req -x509 -new -key "$1.key" -sha256 -days 3650 -subj "/CN=$2" \
		-addext basicConstraints=critical,CA:TRUE \
		-addext keyUsage=critical,keyCertSign,cRLSign \
		-out "$1.pem" 2>/dev/null
}

mkleaf() { # name cn san
	key "$1.key"
	openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr" 2>/dev/null
	printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=%s\n' \
		"$3" >"$1.ext"
	openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
		-sha256 -days 3650 -extfile "$1.ext" -out "$1.pem" 2>/dev/null
	rm -f "$1.csr" "$1.ext"
}

mkca ca "mailpull test CA"
mkca other-ca "unrelated test CA"
mkleaf server localhost "DNS:localhost,IP:127.0.0.1,IP:::1"
mkleaf wrong wrong.example "DNS:wrong.example"
chmod 644 ./*.pem
chmod 640 ./*.key
openssl x509 -in server.pem -noout -fingerprint -sha256 | sed 's/^.*=//' >server.fp
