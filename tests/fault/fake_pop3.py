#!/usr/bin/env python3
"""fake_pop3.py - a scripted POP3 server for mailpull's fault tests.

  fake_pop3.py --port-file F --log F --msgs DIR [--conn MODE[=ARG]]...
               [--time-limit SECS] [--user U] [--pass P]

Listens on 127.0.0.1, on a free port it writes (atomically) to the port
file, serves one connection per --conn (in order; default one "normal"),
then exits. A hard time limit (default 30 s) ends it whatever happens.

The mailbox is the files of DIR in name order; a file's name is its UID;
files are stored with LF line ends and served with CRLF (LIST sizes are the
CRLF sizes) and dot-stuffed. Deletions made in one connection and
committed by QUIT are gone in the next one; messages are renumbered 1..n
each session, as a real server does.

Modes, one per connection:
  normal                  behave
  refuse-retr=UID         -ERR to RETR of that message
  refuse-dele=UID         -ERR to DELE of that message
  short=UID               RETR sends only the first half of its lines (fewer
                          bytes than LIST announced), then a proper "."
  cut=UID                 RETR sends "+OK" and about half the body, then
                          closes the connection
  stall-after=COMMAND     after receiving COMMAND (e.g. RETR, UIDL, USER;
                          GREETING = before the greeting) answer nothing more
  long-line               a 100 KB line in the UIDL listing
  bad-uidl                a malformed UIDL line ("2 bad uid")
  nul-uidl                a NUL byte inside a UIDL line
  dup-uid                 two messages with the same UID in UIDL
  bad-greeting            a greeting that is neither +OK nor -ERR
  no-top                  CAPA without TOP; TOP answered -ERR (a server
                          without TOP that says so)
  no-capa                 CAPA and TOP both answered -ERR (an old server:
                          the client learns of the missing TOP by trying)

The log (one line per event, flushed at once):
  "C <conn> <command line>"  every command received, bytes that are not
                             printable shown as \\xNN; for RETR/DELE/TOP/LIST
                             with a valid number " [UID]" is appended
  "# <conn> ..."             events: connect, close, cut, stall, quit
                             (with the UIDs deleted and the count left)
Python 3 standard library only.
"""
import argparse
import os
import signal
import socket
import sys
import time


def esc(b):
    out = []
    for ch in b:
        if 0x20 <= ch < 0x7f and ch != 0x5c:
            out.append(chr(ch))
        else:
            out.append("\\x%02x" % ch)
    return "".join(out)


class Log:
    def __init__(self, path):
        self.f = open(path, "a", buffering=1, encoding="ascii", errors="backslashreplace")

    def w(self, line):
        self.f.write(line + "\n")
        self.f.flush()


class Cut(Exception):
    pass


class Conn:
    def __init__(self, sock, n, mode, arg, box, log, args):
        self.s, self.n, self.mode, self.arg = sock, n, mode, arg
        self.box, self.log, self.args = box, log, args
        self.buf = b""
        self.deleted = set()
        # this session's view: [(uid, data_crlf)], numbered from 1
        self.msgs = [(u, box[u]) for u in sorted(box)]
        self.stalled = False

    def send(self, data):
        self.s.sendall(data)

    def line(self, text):
        if isinstance(text, str):
            text = text.encode("latin-1")
        self.send(text + b"\r\n")

    def readline(self):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                ln, self.buf = self.buf[:i], self.buf[i + 1:]
                return ln[:-1] if ln.endswith(b"\r") else ln
            d = self.s.recv(65536)
            if not d:
                return None
            self.buf += d

    def msg(self, arg):
        try:
            i = int(arg)
        except (TypeError, ValueError):
            return None
        if 1 <= i <= len(self.msgs) and i not in self.deleted:
            return i
        return None

    def stall(self, why):
        self.log.w("# %d stall %s" % (self.n, why))
        self.stalled = True
        # answer nothing; keep reading (and logging) until the client goes
        while True:
            ln = self.readline()
            if ln is None:
                return
            self.log.w("C %d %s" % (self.n, esc(ln)))

    def cut(self, why):
        self.log.w("# %d cut %s" % (self.n, why))
        try:
            self.s.shutdown(socket.SHUT_WR)     # FIN after what was sent
            self.s.settimeout(3)
            # what the client still sends (it should send nothing more:
            # no DELE, no QUIT) is logged like any command
            while True:
                ln = self.readline()
                if ln is None:
                    break
                self.log.w("C %d %s" % (self.n, esc(ln)))
        except OSError:
            pass
        raise Cut()

    def stuffed(self, data):
        out = []
        for ln in data.split(b"\r\n"):
            out.append(b"." + ln if ln.startswith(b".") else ln)
        return b"\r\n".join(out)

    def serve(self):
        if self.mode == "stall-after" and self.arg.upper() == "GREETING":
            return self.stall("before the greeting")
        if self.mode == "bad-greeting":
            self.line("HELLO this is not POP3")
        else:
            self.line("+OK fake POP3 ready")
        while True:
            ln = self.readline()
            if ln is None:
                self.log.w("# %d client closed" % self.n)
                return
            words = ln.split(b" ", 1)
            verb = words[0].upper().decode("latin-1")
            arg = words[1].decode("latin-1") if len(words) > 1 else None
            shown = esc(ln)
            i = self.msg(arg) if verb in ("RETR", "DELE", "TOP", "LIST") else None
            if i is not None:
                shown += " [%s]" % self.msgs[i - 1][0]
            self.log.w("C %d %s" % (self.n, shown))
            if self.mode == "stall-after" and verb == self.arg.upper():
                return self.stall("after " + verb)
            if not self.command(verb, arg, i):
                return

    def command(self, verb, arg, i):
        live = [k for k in range(1, len(self.msgs) + 1) if k not in self.deleted]
        if verb == "CAPA" and self.mode == "no-capa":
            self.line("-ERR unknown command")
        elif verb == "CAPA":
            top = b"" if self.mode == "no-top" else b"TOP\r\n"
            self.send(b"+OK capabilities\r\nUSER\r\nPIPELINING\r\nUIDL\r\n" + top + b".\r\n")
        elif verb == "USER":
            self.line("+OK send PASS")
        elif verb == "PASS":
            if self.args.passwd is not None and arg != self.args.passwd:
                self.line("-ERR [AUTH] wrong password")
            else:
                self.line("+OK logged in")
        elif verb == "NOOP":
            self.line("+OK")
        elif verb == "STAT":
            self.line("+OK %d %d" % (len(live), sum(len(self.msgs[k - 1][1]) for k in live)))
        elif verb == "UIDL" and arg is None:
            out = [b"+OK unique-id listing"]
            for k in live:
                uid = self.msgs[k - 1][0].encode()
                if self.mode == "dup-uid" and k == 2 and live:
                    uid = self.msgs[live[0] - 1][0].encode()
                if self.mode == "bad-uidl" and k == 2:
                    out.append(b"2 bad uid")
                    continue
                if self.mode == "nul-uidl" and k == 2:
                    uid = uid[:2] + b"\x00" + uid[2:]
                out.append(b"%d %s" % (k, uid))
            if self.mode == "long-line":
                out.insert(2, b"2 " + b"L" * 100000)
                del out[3:4]
            self.send(b"\r\n".join(out) + b"\r\n.\r\n")
        elif verb == "UIDL":
            if i is None:
                self.line("-ERR no such message")
            else:
                self.line("+OK %d %s" % (i, self.msgs[i - 1][0]))
        elif verb == "LIST" and arg is None:
            out = [b"+OK scan listing"]
            for k in live:
                out.append(b"%d %d" % (k, len(self.msgs[k - 1][1])))
            self.send(b"\r\n".join(out) + b"\r\n.\r\n")
        elif verb == "LIST":
            if i is None:
                self.line("-ERR no such message")
            else:
                self.line("+OK %d %d" % (i, len(self.msgs[i - 1][1])))
        elif verb == "RETR":
            if i is None:
                self.line("-ERR no such message")
                return True
            uid, data = self.msgs[i - 1]
            if self.mode == "refuse-retr" and uid == self.arg:
                self.line("-ERR [SYS/TEMP] cannot read this message now")
                return True
            if self.mode == "cut" and uid == self.arg:
                self.line("+OK %d octets" % len(data))
                body = self.stuffed(data)
                self.send(body[:len(body) // 2])
                self.cut("in RETR %d [%s] after %d of %d bytes" % (i, uid, len(body) // 2, len(body)))
            if self.mode == "short" and uid == self.arg:
                lines = data.split(b"\r\n")[:-1]
                data = b"".join(ln + b"\r\n" for ln in lines[:max(1, len(lines) // 2)])
                self.log.w("# %d short %s: %d of %d bytes" % (self.n, uid, len(data), len(self.msgs[i - 1][1])))
            self.line("+OK %d octets" % len(self.msgs[i - 1][1]))
            self.send(self.stuffed(data) + b".\r\n")
        elif verb == "TOP" and self.mode in ("no-top", "no-capa"):
            self.line("-ERR unknown command")
        elif verb == "TOP":
            parts = (arg or "").split()
            i = self.msg(parts[0]) if parts else None
            if i is None or len(parts) != 2 or not parts[1].isdigit():
                self.line("-ERR usage: TOP msg n")
                return True
            data = self.msgs[i - 1][1]
            head, sep, body = data.partition(b"\r\n\r\n")
            keep = body.split(b"\r\n")[:int(parts[1])] if sep else []
            out = head + b"\r\n\r\n" + b"".join(ln + b"\r\n" for ln in keep) if sep else data
            self.line("+OK top of message follows")
            self.send(self.stuffed(out) + b".\r\n")
        elif verb == "DELE":
            if i is None:
                self.line("-ERR no such message")
            elif self.mode == "refuse-dele" and self.msgs[i - 1][0] == self.arg:
                self.line("-ERR message is locked")
            else:
                self.deleted.add(i)
                self.line("+OK message %d deleted" % i)
        elif verb == "RSET":
            self.deleted.clear()
            self.line("+OK")
        elif verb == "QUIT":
            gone = [self.msgs[k - 1][0] for k in sorted(self.deleted)]
            for u in gone:
                del self.box[u]
            self.log.w("# %d quit: deleted %s; %d left" % (self.n, " ".join(gone) or "-", len(self.box)))
            self.line("+OK bye")
            return False
        else:
            self.line("-ERR unknown command")
        return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--msgs", required=True)
    ap.add_argument("--conn", action="append", default=[])
    ap.add_argument("--time-limit", type=float, default=30)
    ap.add_argument("--pass", dest="passwd", default=None)
    args = ap.parse_args()

    log = Log(args.log)

    def out_of_time(*_):
        log.w("# time limit reached")
        os._exit(3)
    signal.signal(signal.SIGALRM, out_of_time)
    signal.setitimer(signal.ITIMER_REAL, args.time_limit)

    box = {}
    for name in sorted(os.listdir(args.msgs)):
        data = open(os.path.join(args.msgs, name), "rb").read()
        box[name] = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")

    modes = []
    for c in args.conn or ["normal"]:
        m, _, a = c.partition("=")
        modes.append((m, a))

    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(8)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % ls.getsockname()[1])
    os.rename(tmp, args.port_file)

    for n, (m, a) in enumerate(modes, 1):
        s, peer = ls.accept()
        log.w("# %d connect mode=%s%s" % (n, m, "=" + a if a else ""))
        c = Conn(s, n, m, a, box, log, args)
        try:
            c.serve()
        except Cut:
            pass
        except OSError as e:
            log.w("# %d socket error: %s" % (n, e))
        finally:
            s.close()
        log.w("# %d closed" % n)
    log.w("# done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
