#!/usr/bin/env python3
"""Write test messages, one file each, LF line ends (as Dovecot stores them).

  gen_messages.py awkward DIR [--no-20mb]
        the awkward set: lone ".", "..", "From " / ">From ", 8-bit UTF-8,
        NULs, a 2,000-char header line, exactly 20 MB, no final newline,
        an empty body, ...
  gen_messages.py realistic DIR N TOTAL [--seed S] [--prefix P]
        N realistic messages (typical headers, text, base64 attachments,
        varied sizes) adding up to about TOTAL bytes (k/M/G suffixes)
  gen_messages.py big DIR SIZE [--name NAME]
        one message of exactly SIZE bytes

Every message gets a unique Message-ID. Python 3 standard library only.
"""
import base64
import os
import random
import sys
import time
import uuid

B64_LINE = 57  # raw bytes per 76-char base64 line


def size_arg(s):
    s = s.strip()
    mult = {"k": 1024, "K": 1024, "m": 1 << 20, "M": 1 << 20, "g": 1 << 30, "G": 1 << 30}
    if s and s[-1] in mult:
        return int(float(s[:-1]) * mult[s[-1]])
    return int(s)


def msgid(tag):
    return "<%s.%s@mailpull.test>" % (tag, uuid.uuid4().hex)


def date_hdr(t=None):
    return time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(t or time.time()))


def headers(tag, subject, extra=b""):
    h = ("Return-Path: <sender@example.org>\n"
         "Received: from mx.example.org (mx.example.org [192.0.2.1])\n"
         "\tby mail.example.net with ESMTPS id %s\n"
         "\tfor <alice@example.net>; %s\n"
         "From: Sender <sender@example.org>\n"
         "To: Alice <alice@example.net>\n"
         "Subject: %s\n"
         "Date: %s\n"
         "Message-ID: %s\n"
         "MIME-Version: 1.0\n") % (uuid.uuid4().hex[:12], date_hdr(), subject, date_hdr(), msgid(tag))
    return h.encode() + extra


def write(d, name, data):
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def b64_lines(rng, nbytes):
    """About nbytes of base64 text in 76-char lines, each ending in LF."""
    raw = rng.randbytes(max(1, (nbytes * 3) // 4))
    return base64.encodebytes(raw)


def exact_message(tag, subject, size, rng):
    """A message of exactly size bytes: headers, a base64 body, filler."""
    head = headers(tag, subject, b"Content-Type: application/octet-stream\n"
                   b"Content-Transfer-Encoding: base64\n\n")
    if size < len(head) + 2:
        raise SystemExit("size %d too small" % size)
    room = size - len(head)
    chunks = [head]
    left = room
    block = 77 * 8192  # whole 76+LF lines
    while left > block + 200:
        chunks.append(base64.encodebytes(rng.randbytes(B64_LINE * 8192)))
        left -= block
    # finish: whole lines, then one shorter line to land exactly
    while left > 77 + 1:
        chunks.append(base64.encodebytes(rng.randbytes(B64_LINE)))
        left -= 77
    chunks.append(b"A" * (left - 1) + b"\n")
    data = b"".join(chunks)
    assert len(data) == size, (len(data), size)
    return data


def awkward(d, with_20mb=True):
    rng = random.Random(1939)
    ct = b"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
    m = {}
    m["01-lone-dot"] = headers("lone-dot", "a line that is a lone dot", ct) + \
        b"before\n.\nafter\n.\n\n.\nlast\n"
    m["02-dotdot"] = headers("dotdot", "lines starting with two dots", ct) + \
        b"..\n..two dots\n...three\n. dot space\n.\r.\n.x\nend\n"
    m["03-from-lines"] = headers("from", "From lines", ct) + \
        b"From the start\n>From quoted\n>>From twice\nFrom: not a header\n\nFrom \nend\n"
    m["04-utf8"] = headers("utf8", "Grüße — 日本語 📧 8-bit",
                           b"X-Name: J\xc3\xbcrgen M\xc3\xbcller\n" + ct) + \
        "Ünïcödé body — ça marche. 日本語のテキスト. Emoji: 📧✉️\nΑλφάβητο Кириллица\n".encode()
    m["05-nul"] = headers("nul", "NUL bytes", b"Content-Type: application/octet-stream\n\n") + \
        b"NUL here:\x00:and\x00\x00two\n\x00\nline\x00end\n\x00"  + b"\n"
    m["06-long-header"] = headers("longhdr", "a 2000-char header line",
                                  b"X-Long: " + b"x" * (2000 - len("X-Long: ")) + b"\n" + ct) + \
        b"body after a long header\n"
    m["07-no-final-newline"] = headers("nofinal", "body without a final newline", ct) + \
        b"first line\nlast line without newline"
    m["08-empty-body"] = headers("empty", "empty body")
    m["08-empty-body"] += b"\n"
    m["09-dots-everywhere"] = headers("dots", "many dot lines", ct) + b"".join(
        b"." * (i % 7) + b"x" * rng.randrange(0, 300) + b"\n" for i in range(20000)) + b".\n"
    m["10-long-body-line"] = headers("longline", "a 100000-char body line", ct) + \
        b"y" * 100000 + b"\n.\n"
    m["11-8bit-binary"] = headers("binary", "all byte values except CR",
                                  b"Content-Type: application/octet-stream\n\n") + \
        bytes(b for b in range(256) if b not in (10, 13)) * 40 + b"\n"
    m["12-tiny"] = b"Message-ID: " + msgid("tiny").encode() + b"\n\nx\n"
    if with_20mb:
        m["13-exactly-20MB"] = exact_message("20mb", "exactly 20 MB", 20 * 1024 * 1024, rng)
    for k, v in m.items():
        write(d, "awk-%s.eml" % k, v)
    return len(m)


def realistic_one(rng, tag, size):
    """A plausible message of about size bytes."""
    boundary = "=_" + uuid.uuid4().hex
    words = ("the of and to in is that for it as was with be by on not he this are "
             "or his from at which but have an they you were her she there been one "
             "all we their has would when if so no will more can out about up who "
             "report meeting budget quarterly attached please review thanks regards").split()
    text_len = rng.randrange(200, 4000)
    para = []
    n = 0
    while n < text_len:
        line = " ".join(rng.choice(words) for _ in range(rng.randrange(6, 14)))
        para.append(line)
        n += len(line) + 1
    text = "\n".join(para) + "\n"
    extra = ("In-Reply-To: %s\nReferences: %s\nX-Mailer: Example Mail 4.2\n"
             "DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=sel;\n"
             "\tbh=%s;\n\tb=%s\n" % (msgid("ref"), msgid("ref"),
                                     base64.b64encode(rng.randbytes(32)).decode(),
                                     base64.b64encode(rng.randbytes(180)).decode()))
    subject = "Re: %s %d" % (rng.choice(words), rng.randrange(100000))
    head = headers(tag, subject, extra.encode())
    att = max(0, size - len(head) - len(text) - 600)
    if att < 1000:
        body = ("Content-Type: text/plain; charset=us-ascii\n\n" + text).encode()
        return head + body
    body = ("Content-Type: multipart/mixed; boundary=\"%s\"\n\n"
            "This is a multi-part message in MIME format.\n\n"
            "--%s\nContent-Type: text/plain; charset=utf-8\n"
            "Content-Transfer-Encoding: 8bit\n\n%s\n"
            "--%s\nContent-Type: application/pdf; name=\"doc%d.pdf\"\n"
            "Content-Transfer-Encoding: base64\n"
            "Content-Disposition: attachment; filename=\"doc%d.pdf\"\n\n"
            % (boundary, boundary, text, boundary, rng.randrange(1000), rng.randrange(1000))).encode()
    return head + body + b64_lines(rng, att) + ("\n--%s--\n" % boundary).encode()


def realistic(d, n, total, seed=2449, prefix="msg"):
    rng = random.Random(seed)
    avg = total / n
    # log-normal sizes (many small, a few large), rescaled to the total
    raw = [rng.lognormvariate(0, 1.1) for _ in range(n)]
    scale = total / sum(raw)
    for _ in range(5):  # the 1200-byte floor adds bytes: rescale the rest
        sizes = [max(1200, int(r * scale)) for r in raw]
        big = sum(s for s in sizes if s > 1200)
        if big == 0:
            break
        scale *= (total - (sum(sizes) - big)) / big
    width = len(str(n))
    for i, r in enumerate(raw):
        size = max(1200, int(r * scale))
        write(d, "%s-%0*d.eml" % (prefix, width, i + 1), realistic_one(rng, "%s%d" % (prefix, i), size))
    return n


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    kind, d = argv[1], argv[2]
    os.makedirs(d, exist_ok=True)
    rest = argv[3:]

    def opt(name, default):
        if name in rest:
            i = rest.index(name)
            v = rest[i + 1]
            del rest[i:i + 2]
            return v
        return default

    if kind == "awkward":
        n = awkward(d, "--no-20mb" not in rest)
    elif kind == "realistic":
        seed = int(opt("--seed", "2449"))
        prefix = opt("--prefix", "msg")
        if len(rest) != 2:
            sys.exit(__doc__)
        n = realistic(d, int(rest[0]), size_arg(rest[1]), seed, prefix)
    elif kind == "big":
        name = opt("--name", "big")
        if len(rest) != 1:
            sys.exit(__doc__)
        size = size_arg(rest[0])
        write(d, name + ".eml", exact_message(name, "a big message", size, random.Random(size)))
        n = 1
    else:
        sys.exit(__doc__)
    print("wrote %d message(s) to %s" % (n, d))


if __name__ == "__main__":
    main(sys.argv)
