#!/usr/bin/env python3
"""check_docs.py - keep the man pages, sample.ini and --help in step with the code.

Usage: python3 tests/docs/check_docs.py [--root DIR] [--bin PATH]

  --root DIR   the source tree (default: two levels above this script)
  --bin PATH   the built mailpull (default: ROOT/build/mailpull)

Prints one line per mismatch and exits 1 if there is any; exits 2 when it
cannot read the sources at all (a checker that finds nothing must not pass).
Python standard library only.

What "the parser knows" means, and how it is read
-------------------------------------------------
[general] and [account NAME] keys come from src/config.c: every array
declared `struct key NAME[] = { ... }` is a key table; general_keys holds the
[general] keys, account_keys the [account NAME] keys (a table with another
name is an error here until this script is told its section).  Each entry
must be `{ "name", flags, handler }` (a `{ NULL, ... }` end marker is
allowed); C comments are removed first (string literals are respected), and
an entry whose first member is not a string literal is reported, not skipped.

[filter NAME] keys come from src/filter.c: the function filter_set() and
every function of that file it calls, directly or through others, are
searched for `strcmp(key, "name")` / `strcasecmp(key, "name")` (the key
parameter is called `key` there).

Both readings are then checked against the real parser: build/mailpull is
run on throwaway config files holding every candidate key (from the code,
the man page and sample.ini) plus a made-up one, each file made invalid on
purpose (an unknown section) so that nothing is ever polled; a key the
binary reports as "unknown key 'K'" is unknown.  A key on which the source
reading and the binary disagree is a mismatch too (so a key handled outside
the tables, or a checker that no longer reads the source right, shows up).

What is checked
---------------
mailpull.ini.5: every key is the tag of a .TP (or .TQ) item, at the top
level (not inside .RS/.RE), of its section: .SH [general], .SH [account
NAME] or .SH [filter NAME].  In such a tag every bold word (.B, .BI, .BR,
.IB, .RB, \\fB...) that looks like a key (lower case, digits, _) is taken as
a documented key, e.g. `.BI larger_than " SIZE\\fR, " smaller_than " SIZE"`
documents two.  Every documented key must be one the parser knows in that
section, and every key the parser knows must be documented in its section.
The EXAMPLE's .EX/.EE block must be accepted by the parser.

sample.ini: every key the parser knows appears in a section of its kind,
set (`key = value`) or commented out (`; key = value`, `# key = value`: a
comment line that is nothing but key = value).  Every key set or commented
out must be known in that section.  The file as shipped must be accepted by
the parser.

mailpull(1) and --help: every long option of src/main.c's `struct option
NAME[] = { { "name", ... }, ... }` table, and every letter of getopt_long's
option string, is the tag of a top-level .TP item of .SH OPTIONS and appears
in `mailpull --help`; every --option or -x in those tags, in the SYNOPSIS and
in the --help text is one the code knows.

Both man pages: `groff -ww -man -z PAGE` and, where man-db is installed,
`man --warnings -l PAGE` print nothing.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

PROBLEMS = []


def problem(msg):
    PROBLEMS.append(msg)
    print(msg)


class CheckerError(Exception):
    """The sources could not be read as expected."""


# --- C source -------------------------------------------------------------

def strip_c_comments(text):
    """Blank out /* */ and // comments, keeping string and char literals and
    newlines (so that offsets and line numbers stay right)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in '"\'':
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == '\\' else 1
            out.append(text[i:j + 1])
            i = j + 1
        elif text.startswith('/*', i):
            j = text.find('*/', i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r'[^\n]', ' ', text[i:j]))
            i = j
        elif text.startswith('//', i):
            j = text.find('\n', i)
            j = n if j < 0 else j
            out.append(' ' * (j - i))
            i = j
        else:
            out.append(c)
            i += 1
    return ''.join(out)


def match_close(text, i):
    """text[i] is ( [ or {: the index of its partner (literals skipped)."""
    pairs = {'(': ')', '[': ']', '{': '}'}
    stack = []
    n = len(text)
    while i < n:
        c = text[i]
        if c in '"\'':
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == '\\' else 1
            i = j + 1
            continue
        if c in pairs:
            stack.append(pairs[c])
        elif c in ')]}':
            if not stack or stack.pop() != c:
                raise CheckerError('unbalanced %r at offset %d' % (c, i))
            if not stack:
                return i
        i += 1
    raise CheckerError('unclosed bracket')


def split_top(body, sep=','):
    """Split at sep outside any brackets and literals."""
    parts, depth, cur, i, n = [], 0, [], 0, len(body)
    while i < n:
        c = body[i]
        if c in '"\'':
            j = i + 1
            while j < n and body[j] != c:
                j += 2 if body[j] == '\\' else 1
            cur.append(body[i:j + 1])
            i = j + 1
            continue
        if c in '([{':
            depth += 1
        elif c in ')]}':
            depth -= 1
        if c == sep and depth == 0:
            parts.append(''.join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    parts.append(''.join(cur))
    return [p.strip() for p in parts]


def line_of(text, off):
    return text.count('\n', 0, off) + 1


def struct_tables(text, struct, path):
    """{table name: [(entry's first string, line)]} of every
    `struct STRUCT NAME[] = { ... }` array in text (comments stripped)."""
    tables = {}
    pat = re.compile(r'\bstruct\s+' + struct + r'\s+(\w+)\s*\[\s*\w*\s*\]\s*=\s*\{')
    for m in pat.finditer(text):
        open_i = m.end() - 1
        close_i = match_close(text, open_i)
        body = text[open_i + 1:close_i]
        entries = []
        for part in split_top(body):
            if part == '':
                continue
            line = line_of(text, open_i + 1 + body.find(part))
            if not (part.startswith('{') and part.endswith('}')):
                raise CheckerError('%s:%d: cannot read entry %r of %s[]' %
                                   (path, line, part[:60], m.group(1)))
            first = split_top(part[1:-1])[0]
            if first in ('NULL', '0'):
                continue
            sm = re.fullmatch(r'"((?:[^"\\]|\\.)*)"', first)
            if sm is None:
                raise CheckerError('%s:%d: entry %r of %s[] does not start '
                                   'with a string literal' %
                                   (path, line, part[:60], m.group(1)))
            entries.append((sm.group(1), line))
        tables[m.group(1)] = entries
    return tables


def c_functions(text):
    """{name: body} of the function definitions in text (comments stripped):
    an identifier at the start of a line, its parameter list, then '{'."""
    funcs = {}
    for m in re.finditer(r'^([A-Za-z_]\w*)\s*\(', text, re.M):
        try:
            close_p = match_close(text, m.end() - 1)
        except CheckerError:
            continue
        k = close_p + 1
        while k < len(text) and text[k].isspace():
            k += 1
        if k < len(text) and text[k] == '{':
            funcs[m.group(1)] = text[k:match_close(text, k) + 1]
    return funcs


SECTION_OF_TABLE = {'general_keys': 'general', 'account_keys': 'account'}
SECTION_TITLE = {'general': '[general]', 'account': '[account NAME]',
                 'filter': '[filter NAME]'}
KEY_RE = r'[a-z][a-z0-9_]*'


def parser_keys_from_source(root):
    """{'general': {key: where}, 'account': ..., 'filter': ...}"""
    keys = {'general': {}, 'account': {}, 'filter': {}}
    path = 'src/config.c'
    text = strip_c_comments(read(root, path))
    tables = struct_tables(text, 'key', path)
    for name, entries in tables.items():
        sec = SECTION_OF_TABLE.get(name)
        if sec is None:
            raise CheckerError('%s: key table %s[] is new to check_docs.py: '
                               'add it to SECTION_OF_TABLE' % (path, name))
        for key, line in entries:
            keys[sec][key] = '%s:%d' % (path, line)
    for name in SECTION_OF_TABLE:
        if not tables.get(name):
            raise CheckerError('%s: no entries found in %s[]' % (path, name))

    path = 'src/filter.c'
    text = strip_c_comments(read(root, path))
    funcs = c_functions(text)
    if 'filter_set' not in funcs:
        raise CheckerError('%s: filter_set() not found' % path)
    todo, seen = ['filter_set'], set()
    while todo:
        f = todo.pop()
        if f in seen:
            continue
        seen.add(f)
        body = funcs[f]
        for cm in re.finditer(r'\b(\w+)\s*\(', body):
            if cm.group(1) in funcs and cm.group(1) not in seen:
                todo.append(cm.group(1))
        start = text.find(body)
        for km in re.finditer(r'\bstr(?:case)?cmp\s*\(\s*key\s*,\s*"([^"]*)"\s*\)',
                              body):
            keys['filter'].setdefault(
                km.group(1), '%s:%d' % (path, line_of(text, start + km.start())))
    if not keys['filter']:
        raise CheckerError('%s: no strcmp(key, "...") reached from '
                           'filter_set()' % path)
    return keys


def options_from_source(root):
    """({long option: where}, {short letter: where})"""
    path = 'src/main.c'
    raw = read(root, path)
    text = strip_c_comments(raw)
    tables = struct_tables(text, 'option', path)
    if len(tables) != 1:
        raise CheckerError('%s: expected one struct option table, found %d' %
                           (path, len(tables)))
    longs = {}
    for name, line in list(tables.values())[0]:
        longs[name] = '%s:%d' % (path, line)
    m = re.search(r'\bgetopt_long\s*\(', text)
    if m is None:
        raise CheckerError('%s: no getopt_long() call' % path)
    args = split_top(text[m.end():match_close(text, m.end() - 1)])
    sm = re.fullmatch(r'"([^"]*)"', args[2]) if len(args) > 2 else None
    if sm is None:
        raise CheckerError('%s: getopt_long()\'s option string is not a '
                           'literal' % path)
    shorts = {}
    line = line_of(text, m.start())
    for ch in sm.group(1).lstrip('+-:'):
        if ch != ':':
            shorts[ch] = '%s:%d' % (path, line)
    return longs, shorts


# --- roff -------------------------------------------------------------------

def roff_args(s):
    """Split a macro's arguments as roff does ("" is a quote inside quotes)."""
    args, i, n = [], 0, len(s)
    while i < n:
        while i < n and s[i] in ' \t':
            i += 1
        if i >= n:
            break
        if s[i] == '"':
            i += 1
            cur = []
            while i < n:
                if s[i] == '"':
                    if i + 1 < n and s[i + 1] == '"':
                        cur.append('"')
                        i += 2
                        continue
                    i += 1
                    break
                cur.append(s[i])
                i += 1
            args.append(''.join(cur))
        else:
            j = i
            while j < n and s[j] not in ' \t':
                j += 2 if s[j] == '\\' else 1
            args.append(s[i:j])
            i = j
    return args


FONT_MACROS = {'B': 'B', 'I': 'I', 'R': 'R', 'SB': 'B', 'SM': 'R',
               'BI': 'BI', 'IB': 'IB', 'BR': 'BR', 'RB': 'RB', 'IR': 'IR',
               'RI': 'RI'}


SPECIAL = {'ha': '^', 'ti': '~', 'aq': "'", 'dq': '"', 'rs': '\\',
           'hy': '-', 'mi': '-', 'en': '-', 'em': '-', 'lq': '"', 'rq': '"',
           'oq': "'", 'cq': "'", 'ga': '`', 'bu': '*', 'ba': '|', 'or': '|',
           'at': '@', 'sh': '#', 'Do': '$', 'sl': '/', 'lB': '[', 'rB': ']',
           'lC': '{', 'rC': '}', 'la': '<', 'ra': '>', 'eq': '=', 'pl': '+',
           'ps': '%'}


def roff_text(s, font='R'):
    """[(font, text)] of a run of roff text with \\f escapes."""
    out, i, n = [], 0, len(s)
    prev = font
    while i < n:
        c = s[i]
        if c != '\\' or i + 1 >= n:
            out.append((font, c))
            i += 1
            continue
        e = s[i + 1]
        if e == 'f':
            if s.startswith('(', i + 2):
                f, i = s[i + 3:i + 5], i + 5
            elif s.startswith('[', i + 2):
                j = s.find(']', i + 3)
                f, i = s[i + 3:j], j + 1
            else:
                f, i = s[i + 2:i + 3], i + 3
            f = {'P': prev, '': 'R', '1': 'R', '2': 'I', '3': 'B',
                 'CW': 'R', 'CR': 'R', 'CB': 'B', 'BI': 'B'}.get(f, f)
            prev, font = font, f
            continue
        if e == '(':                    # \(xx: a special character
            out.append((font, SPECIAL.get(s[i + 2:i + 4], '?')))
            i += 4
            continue
        if e == '[':                    # \[name]
            j = s.find(']', i + 2)
            out.append((font, SPECIAL.get(s[i + 2:j], '?')))
            i = n if j < 0 else j + 1
            continue
        if e in '-':
            out.append((font, '-'))
        elif e == 'e':
            out.append((font, '\\'))
        elif e in ' ~0':
            out.append((font, ' '))
        elif e in '&|^,/:"':
            pass
        else:
            out.append((font, e))
        i += 2
    return out


def roff_line(line):
    """[(font, char)] of one input line, a font macro or plain text."""
    if line.startswith(('.', "'")):
        m = re.match(r"[.']\s*(\w+)\s*(.*)", line)
        if m is None or m.group(1) not in FONT_MACROS:
            return []
        fonts = FONT_MACROS[m.group(1)]
        args = roff_args(m.group(2))
        if len(fonts) == 1:
            return roff_text(' '.join(args), fonts)
        out = []
        for k, a in enumerate(args):
            out += roff_text(a, fonts[k % 2])
        return out
    return roff_text(line)


def plain(runs):
    return ''.join(t for _, t in runs)


def bold_words(runs):
    words, cur = [], []
    for f, t in runs + [('R', ' ')]:
        if f == 'B' and not t.isspace() and t not in ',=:;()[]':
            cur.append(t)
        elif cur:
            words.append(''.join(cur))
            cur = []
    return words


def man_sections(text):
    """[(title, [(lineno, line)])] of a man page, by .SH."""
    secs, cur = [], ('', [])
    for no, line in enumerate(text.split('\n'), 1):
        if re.match(r'[.\']\s*SH\b', line):
            cur = (' '.join(roff_args(line.split(None, 1)[1] if ' ' in line
                                      else '')), [])
            secs.append(cur)
        else:
            cur[1].append((no, line))
    return secs


def man_tags(lines):
    """[(lineno, runs)] of the tags of the top-level .TP/.TQ items."""
    tags, depth, want = [], 0, False
    for no, line in lines:
        if re.match(r'[.\']\s*\\"', line) or line.strip() in ('.', "'"):
            continue
        if re.match(r'[.\']\s*RS\b', line):
            depth += 1
            continue
        if re.match(r'[.\']\s*RE\b', line):
            depth = max(0, depth - 1)
            continue
        if re.match(r'[.\']\s*(TP|TQ)\b', line):
            want = depth == 0
            continue
        if want:
            if re.match(r'[.\']\s*PD\b', line):
                continue
            tags.append((no, roff_line(line)))
            want = False
    return tags


# --- the parser, for real ---------------------------------------------------

class Binary:
    def __init__(self, path, tmp):
        self.path = path
        self.tmp = tmp
        self.n = 0

    def load(self, ini_text):
        """Run the parser on ini_text made invalid on purpose (an unknown
        section at the end); return (stderr lines, the added section's line)."""
        self.n += 1
        cfg = os.path.join(self.tmp, 'probe%d.ini' % self.n)
        if not ini_text.endswith('\n'):
            ini_text += '\n'
        bad_line = ini_text.count('\n') + 2
        with open(cfg, 'w') as f:
            f.write(ini_text + '\n[zz-check-docs-never-a-section]\n')
        os.chmod(cfg, 0o600)
        home = os.path.join(self.tmp, 'home')
        os.makedirs(home, exist_ok=True)
        env = {'HOME': home, 'PATH': '/usr/bin:/bin', 'LC_ALL': 'C'}
        r = subprocess.run([self.path, '-c', cfg], env=env, cwd=self.tmp,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        lines = r.stderr.decode('utf-8', 'replace').splitlines()
        if r.returncode == 0 or not any(
                ':%d:' % bad_line in l and 'unknown section' in l
                for l in lines):
            raise CheckerError('%s did not reject a config with an unknown '
                               'section (status %d): cannot use it to check '
                               'keys' % (self.path, r.returncode))
        others = [l for l in lines
                  if not (':%d:' % bad_line in l and 'unknown section' in l)]
        return others

    def known(self, section, candidates):
        """The candidates the parser takes in a section of that kind."""
        fake = 'zz_check_docs_no_such_key'
        header = {'general': '[general]', 'account': '[account probe]',
                  'filter': '[filter probe]'}[section]
        keys = sorted(set(candidates))
        text = header + '\n' + ''.join('%s = 1\n' % k for k in keys + [fake])
        lines = self.load(text)
        unknown = set()
        for l in lines:
            m = re.search(r"unknown key '([^']*)'", l)
            if m:
                unknown.add(m.group(1))
        if fake not in unknown:
            raise CheckerError('%s took the made-up key %s in %s: cannot use '
                               'it to check keys' % (self.path, fake, header))
        return set(keys) - unknown


# --- checks -------------------------------------------------------------------

def read(root, rel):
    try:
        with open(os.path.join(root, rel), encoding='utf-8') as f:
            return f.read()
    except OSError as e:
        raise CheckerError('cannot read %s: %s' % (rel, e))


def section_kind(title):
    m = re.match(r'\s*\[\s*(general|account|filter)\b', title)
    return m.group(1) if m else None


def man5_keys(root):
    """({section: {key: line}}, example text or None)"""
    rel = 'man/mailpull.ini.5'
    doc = {'general': {}, 'account': {}, 'filter': {}}
    example = None
    found = set()
    for title, lines in man_sections(read(root, rel)):
        kind = section_kind(title)
        if kind is not None:
            found.add(kind)
            for no, runs in man_tags(lines):
                words = bold_words(runs)
                keys = [w for w in words if re.fullmatch(KEY_RE, w)]
                if not keys:
                    problem('%s:%d: a .TP item of %s with no key in bold: %r'
                            % (rel, no, title, plain(runs)))
                for k in keys:
                    if k in doc[kind]:
                        problem('%s:%d: key %s documented twice under %s '
                                '(also line %d)' % (rel, no, k, title,
                                                    doc[kind][k]))
                    doc[kind].setdefault(k, no)
        elif title.strip().upper() in ('EXAMPLE', 'EXAMPLES'):
            ex, inside = [], False
            for no, line in lines:
                if re.match(r'[.\']\s*(EX|nf)\b', line):
                    inside = True
                elif re.match(r'[.\']\s*(EE|fi)\b', line):
                    inside = False
                elif inside:
                    ex.append(plain(roff_text(line)))
            if ex:
                example = '\n'.join(ex)
    for kind in doc:
        if kind not in found:
            problem('%s: no .SH %s section' % (rel, SECTION_TITLE[kind]))
    return doc, example


# A key named in a comment: "key = ..." (not "?to=" or "&to=" of a URL).
MENTION_RE = re.compile(r'(?<![\w?&./:$%-])(' + KEY_RE + r')\s*=(?!=)')


def sample_keys(root):
    """{section: {key: first line}} of the keys set, and of those named as
    "key = ..." in a comment, section by section."""
    rel = 'sample.ini'
    used = {'general': {}, 'account': {}, 'filter': {}}
    kind = None

    def note(key, no):
        if kind is None:
            problem('%s:%d: key %s outside a known section' % (rel, no, key))
        else:
            used[kind].setdefault(key, no)

    for no, line in enumerate(read(root, rel).split('\n'), 1):
        s = line.strip()
        if s.startswith('['):
            m = re.match(r'\[([^\]]*)\]', s)
            kind = section_kind(m.group(0)) if m else None
            if kind is None:
                problem('%s:%d: not a [general], [account NAME] or [filter '
                        'NAME] section: %s' % (rel, no, s))
            continue
        if s and s[0] in ';#':
            comment = s
        else:
            m = re.match(r'([^=:\s]+)\s*[=:]', s) if s else None
            if s and m is None:
                problem('%s:%d: not key = value: %s' % (rel, no, s))
                continue
            if m is not None:
                note(m.group(1), no)
            c = re.search(r'\s[;#]', s)
            comment = s[c.end():] if c else ''
        for k in MENTION_RE.findall(comment):
            note(k, no)
    return used


def check_keys(root, binary):
    src = parser_keys_from_source(root)
    doc, example = man5_keys(root)
    sample = sample_keys(root)

    for sec in ('general', 'account', 'filter'):
        title = SECTION_TITLE[sec]
        cand = set(src[sec]) | set(doc[sec]) | set(sample[sec])
        taken = binary.known(sec, cand)
        for k in sorted(cand):
            if (k in src[sec]) != (k in taken):
                if k in taken:
                    problem('%s: key %s is taken by %s but check_docs.py did '
                            'not find it in the source (a key outside the '
                            'tables?)' % (title, k, binary.path))
                else:
                    problem('%s: key %s is in %s but %s says unknown key '
                            '(stale build?)' % (title, k, src[sec][k],
                                                binary.path))
        # Either reading counts as known here: a disagreement is reported
        # above, and the docs are held to both.
        known = set(src[sec]) | taken
        for k in sorted(known):
            where = src[sec].get(k, binary.path)
            if k not in doc[sec]:
                elsewhere = [SECTION_TITLE[o] for o in doc if k in doc[o]]
                problem('man/mailpull.ini.5: %s key %s (%s) is not documented '
                        'under .SH %s%s' % (title, k, where, title,
                                            ' (only under %s)' %
                                            ', '.join(elsewhere)
                                            if elsewhere else ''))
            if k not in sample[sec]:
                problem('sample.ini: %s key %s (%s) is neither set nor in a '
                        'comment in a %s section' % (title, k, where, title))
        for k in sorted(set(doc[sec]) - known):
            problem('man/mailpull.ini.5:%d: documents key %s under %s, which '
                    'the parser does not know there' % (doc[sec][k], k, title))
        for k in sorted(set(sample[sec]) - known):
            problem('sample.ini:%d: key %s in a %s section, which the parser '
                    'does not know there' % (sample[sec][k], k, title))

    for l in binary.load(read(root, 'sample.ini')):
        problem('sample.ini: the parser rejects it: %s' % l)
    if example is None:
        problem('man/mailpull.ini.5: no EXAMPLE section with an .EX block')
    else:
        for l in binary.load(example):
            problem('man/mailpull.ini.5: the parser rejects the EXAMPLE: %s'
                    % l)


LONG_RE = re.compile(r'(?<![\w-])--([A-Za-z0-9][\w-]*)')
SHORT_RE = re.compile(r'(?<![\w-])-([A-Za-z0-9])(?![\w-])')


def check_options(root, binary_path):
    longs, shorts = options_from_source(root)
    rel = 'man/mailpull.1'
    tagged_l, tagged_s, mentioned = {}, {}, []
    have_options = False
    for title, lines in man_sections(read(root, rel)):
        t = title.strip().upper()
        if t == 'OPTIONS':
            have_options = True
            for no, runs in man_tags(lines):
                txt = plain(runs)
                for o in LONG_RE.findall(txt):
                    tagged_l.setdefault(o, no)
                for o in SHORT_RE.findall(txt):
                    tagged_s.setdefault(o, no)
        elif t == 'SYNOPSIS':
            for no, line in lines:
                txt = plain(roff_line(line))
                mentioned += [(no, '--' + o, o in longs)
                              for o in LONG_RE.findall(txt)]
                mentioned += [(no, '-' + o, o in shorts)
                              for o in SHORT_RE.findall(txt)]
    if not have_options:
        problem('%s: no .SH OPTIONS section' % rel)

    r = subprocess.run([binary_path, '--help'], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=30)
    helptext = r.stdout.decode('utf-8', 'replace')
    if r.returncode != 0 or not helptext.strip():
        problem('%s --help: exit status %d, %d bytes on stdout' %
                (binary_path, r.returncode, len(helptext)))
    help_l = set(LONG_RE.findall(helptext))
    help_s = set(SHORT_RE.findall(helptext))

    for o, where in sorted(longs.items()):
        if o not in tagged_l:
            problem('%s: option --%s (%s) is not a .TP item under .SH OPTIONS'
                    % (rel, o, where))
        if o not in help_l:
            problem('mailpull --help: option --%s (%s) is missing' % (o, where))
    for o, where in sorted(shorts.items()):
        if o not in tagged_s:
            problem('%s: option -%s (%s) is not a .TP item under .SH OPTIONS'
                    % (rel, o, where))
        if o not in help_s:
            problem('mailpull --help: option -%s (%s) is missing' % (o, where))
    for o, no in sorted(tagged_l.items()):
        if o not in longs:
            problem('%s:%d: documents option --%s, which src/main.c does not '
                    'know' % (rel, no, o))
    for o, no in sorted(tagged_s.items()):
        if o not in shorts:
            problem('%s:%d: documents option -%s, which src/main.c does not '
                    'know' % (rel, no, o))
    for no, o, ok in mentioned:
        if not ok:
            problem('%s:%d: SYNOPSIS names option %s, which src/main.c does '
                    'not know' % (rel, no, o))
    for o in sorted(help_l - set(longs)):
        problem('mailpull --help: names option --%s, which src/main.c does '
                'not know' % o)
    for o in sorted(help_s - set(shorts)):
        problem('mailpull --help: names option -%s, which src/main.c does '
                'not know' % o)


def check_render(root):
    pages = ['man/mailpull.1', 'man/mailpull.ini.5']
    if shutil.which('groff') is None:
        problem('groff is not installed: cannot check that the man pages '
                'render without warnings')
    man = shutil.which('man')
    for rel in pages:
        path = os.path.join(root, rel)
        runs = []
        if shutil.which('groff'):
            runs.append((['groff', '-ww', '-man', '-z', path], {}, True))
        if man:
            runs.append(([man, '--warnings', '-l', path],
                         {'MANPAGER': 'cat', 'PAGER': 'cat', 'MANWIDTH': '80',
                          }, False))
        for cmd, extra, keep_stdout in runs:
            env = dict(os.environ)
            env.update(extra)
            r = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=60)
            out = (r.stdout if keep_stdout else b'') + r.stderr
            name = ' '.join(os.path.basename(c) if c == path or c == man
                            else c for c in cmd)
            for l in out.decode('utf-8', 'replace').splitlines():
                problem('%s: %s: %s' % (rel, name, l))
            if r.returncode != 0:
                problem('%s: %s: exit status %d' % (rel, name, r.returncode))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--root', default=os.path.dirname(os.path.dirname(here)))
    ap.add_argument('--bin')
    a = ap.parse_args()
    root = os.path.abspath(a.root)
    bin_path = os.path.abspath(a.bin or os.path.join(root, 'build', 'mailpull'))
    try:
        if not os.access(bin_path, os.X_OK):
            raise CheckerError('%s: not built (run make)' % bin_path)
        with tempfile.TemporaryDirectory(prefix='check_docs.') as tmp:
            check_keys(root, Binary(bin_path, tmp))
        check_options(root, bin_path)
        check_render(root)
    except (CheckerError, subprocess.TimeoutExpired) as e:
        print('check_docs: error: %s' % e)
        return 2
    if PROBLEMS:
        print('check_docs: %d mismatch(es) between the code and the docs'
              % len(PROBLEMS))
        return 1
    print('check_docs: man pages, sample.ini and --help in step with the code')
    return 0


if __name__ == '__main__':
    sys.exit(main())
