#!/usr/bin/env python3
"""fake_imap.py - a scripted IMAP server for mailpull's fault tests.

  fake_imap.py --port-file F --log F --msgs DIR --box FOLDER=SPEC...
               [--conn ACTIONS]... [--caps CAPS] [--uidvalidity N]
               [--time-limit SECS] [--pass P]

Listens on 127.0.0.1, on a free port it writes (atomically) to the port
file, serves one connection per --conn (in order; default one "normal"),
then exits. A hard time limit (default 30 s) ends it whatever happens.

The server holds the folders given by --box, in that order (LIST shows
them so). SPEC is a comma-separated list of message file names from DIR,
each optionally followed by "/" and flag letters (D \\Deleted, S \\Seen,
F \\Flagged, A \\Answered), e.g. --box 'INBOX=m01,m02/D,m03'. The messages
get UIDs 1, 2, ... in that order; every folder starts with UIDVALIDITY
--uidvalidity (default 1000). Files are stored with LF line ends and
served with CRLF (RFC822.SIZE and literal sizes are CRLF sizes). The same
file may appear more than once (identical copies).

State - messages, UIDs, flags, UIDVALIDITY, UIDNEXT - lives as long as the
process: what one connection flags or expunges the next one sees.

ACTIONS for one connection: "normal", or space-separated words; those that
change the mailbox happen when the connection is accepted:
  caps=CAP,CAP,...     capabilities for this connection (greeting and
                       CAPABILITY); default --caps, which defaults to
                       IMAP4rev1,AUTH=PLAIN,UIDPLUS
  esearch              UID SEARCH is answered with an RFC 4731 ESEARCH
                       ("* ESEARCH (TAG "t") UID [ALL set]"), not SEARCH
  select-no=FOLDER     NO to SELECT/EXAMINE of FOLDER
  fetch-no=NAME,...    a UID FETCH of bodies (BODY[]/BODY.PEEK[]) sends
                       everything else but nothing for these messages, and
                       ends "NO Some messages could not be FETCHed"
  uv=FOLDER:N          FOLDER's UIDVALIDITY becomes N
  reset=FOLDER:SPEC    FOLDER's messages are replaced by SPEC, with UIDs
                       1, 2, ... and UIDNEXT one past the last (a server
                       restored from a backup, or a folder recreated)
  add=FOLDER:SPEC      SPEC appended to FOLDER with new UIDs (new mail)
  uidnext=FOLDER:N     SELECT announces UIDNEXT N instead of the true one
  exists=FOLDER:N      SELECT announces N EXISTS instead of the true count

UID EXPUNGE is refused (BAD) unless the connection's capabilities list
UIDPLUS or IMAP4rev2, as a server without them does.

The log (one line per event, flushed at once):
  "C <conn> <command>"   every command received (literals inline; bytes
                         that are not printable shown as \\xNN); for UID
                         FETCH/STORE/EXPUNGE " [names]" is appended: the
                         messages of the selected folder the UID set named
  "# <conn> ..."         events: connect (with the actions), select,
                         fetch-no, search, expunged, logout, close, and
                         after each connection one line per folder:
                         "# <conn> box FOLDER uidvalidity=V uidnext=N:
                         UID:NAME[/FLAGS] ..."
Python 3 standard library only.
"""
import argparse
import os
import re
import signal
import socket
import sys

FLAG_LETTERS = {"D": "\\Deleted", "S": "\\Seen", "F": "\\Flagged",
                "A": "\\Answered"}
LETTER_OF = {v.upper(): k for k, v in FLAG_LETTERS.items()}
DATE = '"02-Jan-2024 10:00:00 +0000"'


def esc(b):
    out = []
    for ch in b:
        if 0x20 <= ch < 0x7f and ch != 0x5c:
            out.append(chr(ch))
        elif ch == 0x5c:
            out.append("\\")
        else:
            out.append("\\x%02x" % ch)
    return "".join(out)


class Log:
    def __init__(self, path):
        self.f = open(path, "a", buffering=1, encoding="ascii",
                      errors="backslashreplace")

    def w(self, line):
        self.f.write(line + "\n")
        self.f.flush()


class Msg:
    def __init__(self, uid, name, data, flags):
        self.uid, self.name, self.data, self.flags = uid, name, data, flags

    def shown(self):
        letters = "".join(LETTER_OF.get(f.upper(), "?") for f in self.flags)
        return "%d:%s%s" % (self.uid, self.name, "/" + letters if letters else "")


class Folder:
    def __init__(self, name, uidvalidity):
        self.name = name
        self.uidvalidity = uidvalidity
        self.uidnext = 1
        self.msgs = []

    def add(self, name, data, flags):
        self.msgs.append(Msg(self.uidnext, name, data, flags))
        self.uidnext += 1


class Bad(Exception):
    pass


def tokenize(parts):
    """parts: a list of bytes (command text) and ("lit", bytes) pieces.
    Returns a list of tokens: str for atoms / quoted strings / paren
    lists (raw, parens kept), bytes for literals."""
    toks = []
    for p in parts:
        if isinstance(p, tuple):
            toks.append(p[1])
            continue
        s = p.decode("latin-1")
        i = 0
        while i < len(s):
            c = s[i]
            if c == " ":
                i += 1
            elif c == '"':
                j, out = i + 1, []
                while j < len(s) and s[j] != '"':
                    if s[j] == "\\" and j + 1 < len(s):
                        j += 1
                    out.append(s[j])
                    j += 1
                if j >= len(s):
                    raise Bad("unterminated quoted string")
                toks.append("".join(out))
                i = j + 1
            elif c == "(":
                depth, j = 0, i
                while j < len(s):
                    if s[j] in "([":
                        depth += 1
                    elif s[j] in ")]":
                        depth -= 1
                        if depth == 0:
                            break
                    j += 1
                toks.append(s[i:j + 1])
                i = j + 1
            else:
                j, depth = i, 0
                while j < len(s) and (s[j] != " " or depth > 0):
                    if s[j] == "[":
                        depth += 1
                    elif s[j] == "]":
                        depth -= 1
                    j += 1
                toks.append(s[i:j])
                i = j
    return toks


def parse_set(spec, folder):
    """The messages of folder a UID set names, in UID order."""
    uids = [m.uid for m in folder.msgs]
    top = max(uids) if uids else 0
    want = set()
    for part in spec.split(","):
        ends = part.split(":")
        if len(ends) > 2 or not all(e == "*" or e.isdigit() for e in ends):
            raise Bad("bad UID set " + spec)
        nums = [top if e == "*" else int(e) for e in ends]
        lo, hi = min(nums), max(nums)
        want |= {u for u in uids if lo <= u <= hi}
    return [m for m in folder.msgs if m.uid in want]


def pattern_re(pat):
    out = []
    for c in pat:
        out.append(".*" if c == "*" else "[^/]*" if c == "%" else re.escape(c))
    return re.compile("^" + "".join(out) + "$")


class Conn:
    def __init__(self, sock, n, acts, srv):
        self.s, self.n, self.a, self.srv = sock, n, acts, srv
        self.log = srv.log
        self.buf = b""
        self.sel = None

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.s.sendall(data)

    def line(self, text):
        self.send(text + "\r\n")

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

    def readn(self, n):
        while len(self.buf) < n:
            d = self.s.recv(65536)
            if not d:
                return None
            self.buf += d
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_command(self):
        """One command, literals and all: (raw bytes for the log, parts)."""
        parts, raw = [], b""
        while True:
            ln = self.readline()
            if ln is None:
                return None, None
            raw += ln
            m = re.search(rb"\{(\d+)(\+?)\}$", ln)
            if not m:
                parts.append(ln)
                return raw, parts
            parts.append(ln[:m.start()])
            if not m.group(2):
                self.line("+ go ahead")
            data = self.readn(int(m.group(1)))
            if data is None:
                return None, None
            parts.append(("lit", data))
            raw += b"\r\n" + data

    def caps(self):
        return self.a["caps"]

    def has_cap(self, c):
        return any(x.upper() == c.upper() for x in self.caps())

    def serve(self):
        self.line("* OK [CAPABILITY %s] fake IMAP ready" % " ".join(self.caps()))
        while True:
            raw, parts = self.read_command()
            if raw is None:
                self.log.w("# %d client closed" % self.n)
                return
            try:
                toks = tokenize(parts)
            except Bad as e:
                self.log.w("C %d %s" % (self.n, esc(raw)))
                self.line("* BAD %s" % e)
                continue
            if len(toks) < 2 or not isinstance(toks[0], str):
                self.log.w("C %d %s" % (self.n, esc(raw)))
                self.line("* BAD no tag or command")
                continue
            tag, verb, args = toks[0], toks[1].upper(), toks[2:]
            if verb == "UID" and args and isinstance(args[0], str):
                verb, args = "UID " + args[0].upper(), args[1:]
            shown = esc(raw)
            if verb in ("UID FETCH", "UID STORE", "UID EXPUNGE") and \
                    self.sel is not None and args:
                try:
                    shown += " [%s]" % " ".join(
                        m.name for m in parse_set(args[0], self.sel))
                except Bad:
                    pass
            self.log.w("C %d %s" % (self.n, shown))
            try:
                if not self.command(tag, verb, args):
                    return
            except Bad as e:
                self.line("%s BAD %s" % (tag, e))

    def need_sel(self):
        if self.sel is None:
            raise Bad("no folder selected")
        return self.sel

    def expunge(self, tag, victims):
        f = self.sel
        gone = []
        for m in sorted(victims, key=lambda m: -f.msgs.index(m)):
            seq = f.msgs.index(m) + 1
            f.msgs.remove(m)
            gone.append(m)
            self.line("* %d EXPUNGE" % seq)
        self.log.w("# %d expunged %s: %s" % (
            self.n, f.name, " ".join(m.shown() for m in reversed(gone)) or "-"))
        self.line("%s OK expunged" % tag)

    def command(self, tag, verb, args):
        srv = self.srv
        if verb == "CAPABILITY":
            self.line("* CAPABILITY %s" % " ".join(self.caps()))
            self.line("%s OK capability done" % tag)
        elif verb == "NOOP":
            self.line("%s OK noop" % tag)
        elif verb == "LOGIN":
            if len(args) != 2:
                raise Bad("LOGIN user password")
            pw = args[1] if isinstance(args[1], str) else args[1].decode("latin-1")
            if srv.args.passwd is not None and pw != srv.args.passwd:
                self.line("%s NO [AUTHENTICATIONFAILED] wrong password" % tag)
            else:
                self.line("%s OK logged in" % tag)
        elif verb == "LIST":
            if len(args) != 2:
                raise Bad("LIST reference pattern")
            pat = args[1] if isinstance(args[1], str) else args[1].decode("latin-1")
            rx = pattern_re(pat)
            for name in srv.order:
                if rx.match(name) or (name == "INBOX" and pat.upper() == "INBOX"):
                    self.line('* LIST (\\HasNoChildren) "/" "%s"' % name)
            self.line("%s OK list done" % tag)
        elif verb in ("SELECT", "EXAMINE"):
            if len(args) != 1:
                raise Bad("SELECT folder")
            name = args[0] if isinstance(args[0], str) else args[0].decode("latin-1")
            if name.upper() == "INBOX":
                name = "INBOX"
            self.sel = None
            if name in self.a["select-no"]:
                self.log.w("# %d select-no %s" % (self.n, name))
                self.line("%s NO [SERVERBUG] cannot open %s now" % (tag, name))
                return True
            f = srv.box.get(name)
            if f is None:
                self.line("%s NO [NONEXISTENT] no such folder" % tag)
                return True
            exists = self.a["exists"].get(name, len(f.msgs))
            uidnext = self.a["uidnext"].get(name, f.uidnext)
            self.log.w("# %d select %s uidvalidity=%d uidnext=%d exists=%d" % (
                self.n, name, f.uidvalidity, uidnext, exists))
            self.line("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)")
            self.line("* %d EXISTS" % exists)
            self.line("* 0 RECENT")
            self.line("* OK [UIDVALIDITY %d] UIDs valid" % f.uidvalidity)
            self.line("* OK [UIDNEXT %d] predicted next UID" % uidnext)
            self.sel = f
            self.line("%s OK [%s] %s done" % (
                tag, "READ-ONLY" if verb == "EXAMINE" else "READ-WRITE", verb))
        elif verb == "UID FETCH":
            self.fetch(tag, args)
        elif verb == "UID STORE":
            f = self.need_sel()
            if len(args) != 3:
                raise Bad("UID STORE set op flags")
            msgs = parse_set(args[0], f)
            op = args[1].upper()
            silent = op.endswith(".SILENT")
            op = op[:-7] if silent else op
            if op not in ("FLAGS", "+FLAGS", "-FLAGS"):
                raise Bad("bad STORE operation")
            flags = args[2].strip("()").split()
            for m in msgs:
                have = {x.upper(): x for x in m.flags}
                if op == "FLAGS":
                    m.flags = list(flags)
                elif op == "+FLAGS":
                    m.flags += [x for x in flags if x.upper() not in have]
                else:
                    drop = {x.upper() for x in flags}
                    m.flags = [x for x in m.flags if x.upper() not in drop]
                if not silent:
                    self.line("* %d FETCH (UID %d FLAGS (%s))" % (
                        f.msgs.index(m) + 1, m.uid, " ".join(m.flags)))
            self.line("%s OK store done" % tag)
        elif verb == "UID SEARCH":
            f = self.need_sel()
            crit = " ".join(a for a in args if isinstance(a, str)).upper()
            if crit == "DELETED":
                hits = [m for m in f.msgs if "\\DELETED" in (x.upper() for x in m.flags)]
            elif crit == "UNDELETED":
                hits = [m for m in f.msgs if "\\DELETED" not in (x.upper() for x in m.flags)]
            elif crit == "ALL":
                hits = list(f.msgs)
            else:
                raise Bad("search criteria not supported by the fake")
            self.log.w("# %d search %s: %s" % (
                self.n, "esearch" if self.a["esearch"] else "search",
                " ".join(m.shown() for m in hits) or "-"))
            if self.a["esearch"]:
                self.line('* ESEARCH (TAG "%s") UID%s' % (
                    tag, " ALL " + ",".join(str(m.uid) for m in hits) if hits else ""))
            else:
                self.line("* SEARCH%s" % "".join(" %d" % m.uid for m in hits))
            self.line("%s OK search done" % tag)
        elif verb == "UID EXPUNGE":
            f = self.need_sel()
            if not (self.has_cap("UIDPLUS") or self.has_cap("IMAP4rev2")):
                raise Bad("unknown command UID EXPUNGE (no UIDPLUS)")
            if len(args) != 1:
                raise Bad("UID EXPUNGE set")
            named = parse_set(args[0], f)
            self.expunge(tag, [m for m in named if "\\DELETED" in
                               (x.upper() for x in m.flags)])
        elif verb == "EXPUNGE":
            f = self.need_sel()
            self.expunge(tag, [m for m in f.msgs if "\\DELETED" in
                               (x.upper() for x in m.flags)])
        elif verb == "CLOSE":
            self.need_sel()
            self.sel = None
            self.line("%s OK closed" % tag)
        elif verb == "LOGOUT":
            self.log.w("# %d logout" % self.n)
            self.line("* BYE logging out")
            self.line("%s OK logout done" % tag)
            return False
        else:
            raise Bad("unknown command " + verb)
        return True

    def fetch(self, tag, args):
        f = self.need_sel()
        if len(args) != 2:
            raise Bad("UID FETCH set items")
        msgs = parse_set(args[0], f)
        items = args[1].strip("()").upper().split()
        known = {"UID", "RFC822.SIZE", "FLAGS", "INTERNALDATE", "BODY[]",
                 "BODY.PEEK[]", "BODY[HEADER]", "BODY.PEEK[HEADER]"}
        for it in items:
            if it not in known:
                raise Bad("fetch item not supported by the fake: " + it)
        body = "BODY[]" in items or "BODY.PEEK[]" in items
        refused = []
        for m in msgs:
            if body and m.name in self.a["fetch-no"]:
                refused.append(m)
                continue
            seq = f.msgs.index(m) + 1
            if "BODY[]" in items or "BODY[HEADER]" in items:
                if "\\SEEN" not in (x.upper() for x in m.flags):
                    m.flags.append("\\Seen")
            out = [b"UID %d" % m.uid]
            for it in items:
                if it == "RFC822.SIZE":
                    out.append(b"RFC822.SIZE %d" % len(m.data))
                elif it == "FLAGS":
                    out.append(("FLAGS (%s)" % " ".join(m.flags)).encode())
                elif it == "INTERNALDATE":
                    out.append(("INTERNALDATE %s" % DATE).encode())
                elif it in ("BODY[]", "BODY.PEEK[]"):
                    out.append(b"BODY[] {%d}\r\n" % len(m.data) + m.data)
                elif it in ("BODY[HEADER]", "BODY.PEEK[HEADER]"):
                    i = m.data.find(b"\r\n\r\n")
                    h = m.data[:i + 4] if i >= 0 else m.data
                    out.append(b"BODY[HEADER] {%d}\r\n" % len(h) + h)
            self.send(b"* %d FETCH (" % seq + b" ".join(out) + b")\r\n")
        if refused:
            self.log.w("# %d fetch-no %s: %s" % (
                self.n, f.name, " ".join(m.shown() for m in refused)))
            self.line("%s NO Some messages could not be FETCHed (Failure)" % tag)
        else:
            self.line("%s OK fetch done" % tag)


class Server:
    def __init__(self, args, log):
        self.args, self.log = args, log
        self.box, self.order = {}, []
        for b in args.box:
            name, _, spec = b.partition("=")
            f = Folder(name, args.uidvalidity)
            self.box[name] = f
            self.order.append(name)
            self.put(f, spec)

    def put(self, f, spec):
        for item in filter(None, spec.split(",")):
            name, _, letters = item.partition("/")
            path = os.path.join(self.args.msgs, name)
            data = open(path, "rb").read().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            f.add(name, data, [FLAG_LETTERS[c] for c in letters])

    def folder(self, name):
        if name not in self.box:
            raise SystemExit("fake_imap: no folder %s for an action" % name)
        return self.box[name]

    def actions(self, n, text):
        acts = {"caps": self.args.caps.split(","), "esearch": False,
                "select-no": set(), "fetch-no": set(), "uidnext": {},
                "exists": {}}
        for w in text.split():
            if w == "normal":
                continue
            k, _, v = w.partition("=")
            if k == "caps":
                acts["caps"] = v.split(",")
            elif k == "esearch":
                acts["esearch"] = True
            elif k == "select-no":
                acts["select-no"].add(v)
            elif k == "fetch-no":
                acts["fetch-no"] |= set(v.split(","))
            elif k in ("uv", "uidnext", "exists"):
                fn, _, num = v.rpartition(":")
                f = self.folder(fn)
                if k == "uv":
                    f.uidvalidity = int(num)
                else:
                    acts[k][fn] = int(num)
            elif k == "reset":
                fn, _, spec = v.partition(":")
                f = self.folder(fn)
                f.msgs, f.uidnext = [], 1
                self.put(f, spec)
            elif k == "add":
                fn, _, spec = v.partition(":")
                self.put(self.folder(fn), spec)
            else:
                raise SystemExit("fake_imap: unknown action " + w)
        return acts

    def dump(self, n):
        for name in self.order:
            f = self.box[name]
            self.log.w("# %d box %s uidvalidity=%d uidnext=%d: %s" % (
                n, name, f.uidvalidity, f.uidnext,
                " ".join(m.shown() for m in f.msgs) or "-"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--msgs", required=True)
    ap.add_argument("--box", action="append", default=[])
    ap.add_argument("--conn", action="append", default=[])
    ap.add_argument("--caps", default="IMAP4rev1,AUTH=PLAIN,UIDPLUS")
    ap.add_argument("--uidvalidity", type=int, default=1000)
    ap.add_argument("--time-limit", type=float, default=30)
    ap.add_argument("--pass", dest="passwd", default=None)
    args = ap.parse_args()
    if not args.box:
        args.box = ["INBOX="]

    log = Log(args.log)

    def out_of_time(*_):
        log.w("# time limit reached")
        os._exit(3)
    signal.signal(signal.SIGALRM, out_of_time)
    signal.setitimer(signal.ITIMER_REAL, args.time_limit)

    srv = Server(args, log)
    srv.dump(0)

    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(8)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % ls.getsockname()[1])
    os.rename(tmp, args.port_file)

    for n, text in enumerate(args.conn or ["normal"], 1):
        s, peer = ls.accept()
        log.w("# %d connect %s" % (n, text))
        acts = srv.actions(n, text)
        c = Conn(s, n, acts, srv)
        try:
            c.serve()
        except OSError as e:
            log.w("# %d socket error: %s" % (n, e))
        finally:
            s.close()
        log.w("# %d closed" % n)
        srv.dump(n)
    log.w("# done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
