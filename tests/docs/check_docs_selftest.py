#!/usr/bin/env python3
"""check_docs_selftest.py - make sure check_docs.py can fail.

Usage: python3 tests/docs/check_docs_selftest.py [--root DIR] [--bin PATH]

Copies src/, include/, man/ and sample.ini to a temporary tree, runs
check_docs.py on it once as it is (the baseline: the tree may have real
mismatches of its own), then once per mutation below (a made-up key in the
code, the man page or sample.ini; a key in the wrong section; a key removed
from the docs; a made-up option; a roff warning) and asserts that the
checker exits 1 and prints the expected new mismatch.  The built binary is
the real one, so a key added to the copied source is also reported as one
the binary does not take (which is the point: such a key is red either way).
Prints one line per mutation the checker missed (or that no longer applies
because the file it edits changed shape); exits 1 if any.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKER = os.path.join(HERE, 'check_docs.py')


def edit(path, old, new, count=1, regex=False):
    with open(path) as f:
        s = f.read()
    s2 = re.sub(old, new, s, count=count, flags=re.M) if regex else \
        s.replace(old, new, count)
    if s2 == s:
        raise LookupError('%s: %r not found' % (os.path.basename(path), old))
    with open(path, 'w') as f:
        f.write(s2)


# (name, [(file, old, new, regex)], [regexes of expected new mismatch lines])
MUTATIONS = [
    ('a made-up [general] key in config.c',
     [('src/config.c', r'(static const struct key general_keys\[\] = \{\n)',
       r'\1\t{ "zz_fake_general", 0, NULL },\n', True)],
     [r'^man/mailpull\.ini\.5: \[general\] key zz_fake_general .*not documented',
      r'^sample\.ini: \[general\] key zz_fake_general ',
      r'zz_fake_general .*says unknown key']),
    ('a made-up [account] key in config.c',
     [('src/config.c', r'(static const struct key account_keys\[\] = \{\n)',
       r'\1\t{ "zz_fake_account", K_REPEAT, NULL },\n', True)],
     [r'^man/mailpull\.ini\.5: \[account NAME\] key zz_fake_account ',
      r'^sample\.ini: \[account NAME\] key zz_fake_account ']),
    ('a made-up [filter] key in filter.c',
     [('src/filter.c', r'^(\tif \(strcmp\(key, "match"\) == 0\))',
       r'\tif (strcmp(key, "zz_fake_filter") == 0)\n\t\treturn 0;\n\1', True)],
     [r'^man/mailpull\.ini\.5: \[filter NAME\] key zz_fake_filter ',
      r'^sample\.ini: \[filter NAME\] key zz_fake_filter ']),
    ('a key table the checker does not know',
     [('src/config.c', r'^(static const struct key general_keys)',
       r'static const struct key zz_keys[] = { { "x", 0, NULL } };\n\1',
       True)],
     [r'^check_docs: error: .*zz_keys']),
    ('a made-up key documented under [general]',
     [('man/mailpull.ini.5', r'^(\.SH \[general\]\n)',
       r'\1.TP\n.B zz_doc_only\nNothing.\n', True)],
     [r'^man/mailpull\.ini\.5:\d+: documents key zz_doc_only under \[general\]']),
    ('a made-up filter key among two in one tag',
     [('man/mailpull.ini.5', r'^(\.SH \[filter NAME\]\n)',
       r'\1.TP\n.BI match " WORD\\fR, " zz_second " SIZE"\nTwo.\n', True)],
     [r'^man/mailpull\.ini\.5:\d+: documents key zz_second under \[filter NAME\]',
      r'^man/mailpull\.ini\.5:\d+: key match documented twice']),
    ('an [account] key documented under [general]',
     [('man/mailpull.ini.5', r'^(\.SH \[general\]\n)',
       r'\1.TP\n.B host\nWrong section.\n', True)],
     [r'^man/mailpull\.ini\.5:\d+: documents key host under \[general\], which']),
    ('a key no longer documented',
     [('man/mailpull.ini.5', r'^\.TP\n\.B timeout\n', r'.PP\ntimeout\n', True)],
     [r'^man/mailpull\.ini\.5: \[general\] key timeout .*not documented']),
    ('a nested .TP (inside .RS/.RE) does not document a key',
     [('man/mailpull.ini.5', r'^\.TP\n\.B timeout\n',
       r'.RS\n.TP\n.B timeout\n.RE\n.PP\n', True)],
     [r'^man/mailpull\.ini\.5: \[general\] key timeout .*not documented']),
    ('a made-up key set in sample.ini',
     [('sample.ini', r'^(\[general\]\n)', r'\1zz_sample_set = 1\n', True)],
     [r'^sample\.ini:\d+: key zz_sample_set in a \[general\] section',
      r'^sample\.ini: the parser rejects it: .*zz_sample_set']),
    ('a made-up key in a sample.ini comment',
     [('sample.ini', r'^(\[account [^\]]*\]\n)', r'\1; zz_sample_comment = 1\n',
       True)],
     [r'^sample\.ini:\d+: key zz_sample_comment in a \[account NAME\] section']),
    ('a key missing from sample.ini',
     [('sample.ini', r'^timeout\s*=.*\n', '', True)],
     [r'^sample\.ini: \[general\] key timeout .*neither set nor in a comment']),
    ('a filter key used in an [account] of sample.ini',
     [('sample.ini', r'^(\[account [^\]]*\]\n)', r'\1; action = skip\n', True)],
     [r'^sample\.ini:\d+: key action in a \[account NAME\] section']),
    ('a made-up option in mailpull.1',
     [('man/mailpull.1', r'^(\.SH OPTIONS\n)',
       r'\1.TP\n.BR \\-Z ", " \\-\\-zz\\-opt\nNothing.\n', True)],
     [r'^man/mailpull\.1:\d+: documents option --zz-opt',
      r'^man/mailpull\.1:\d+: documents option -Z']),
    ('a made-up option in the SYNOPSIS',
     [('man/mailpull.1', r'^(\.SH SYNOPSIS\n\.B mailpull\n)',
       r'\1.RB [ \\-\\-zz\\-syn ]\n', True)],
     [r'^man/mailpull\.1:\d+: SYNOPSIS names option --zz-syn']),
    ('an option missing from mailpull.1',
     [('man/mailpull.1', r'^\.B \\-\\-exit\\-1\\-if\\-none\n',
       r'.B \\-\\-exit\\-one\n', True)],
     [r'^man/mailpull\.1: option --exit-1-if-none .*not a \.TP item',
      r'^man/mailpull\.1:\d+: documents option --exit-one']),
    ('a made-up option in main.c (not in the man page, not in --help)',
     [('src/main.c', r'(\{ "help", )', r'{ "zz-long", no_argument, NULL, 1 },\n\t\t\1',
       True)],
     [r'^man/mailpull\.1: option --zz-long .*not a \.TP item',
      r'^mailpull --help: option --zz-long .*missing']),
    ('a roff warning in mailpull.ini.5',
     [('man/mailpull.ini.5', r'^(\.SH NAME\n)', r'\1.zzmacro\n', True)],
     [r'^man/mailpull\.ini\.5: groff .*zzmacro']),
    ('a roff warning in mailpull.1',
     [('man/mailpull.1', r'^(\.SH NAME\n)', r'\1\\fQ\n', True)],
     [r'^man/mailpull\.1: groff .*font']),
    ('the EXAMPLE in mailpull.ini.5 is rejected by the parser',
     [('man/mailpull.ini.5', r'^(\.EX\n)', r'\1[general]\ntimeout = 0\n', True)],
     [r'^man/mailpull\.ini\.5: the parser rejects the EXAMPLE: .*timeout']),
]

COPY = ['src', 'include', 'man', 'sample.ini']


def run(root, binary):
    r = subprocess.run([sys.executable, CHECKER, '--root', root, '--bin',
                        binary], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=300)
    return r.returncode, r.stdout.decode('utf-8', 'replace').splitlines()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--root', default=os.path.dirname(os.path.dirname(HERE)))
    ap.add_argument('--bin')
    a = ap.parse_args()
    root = os.path.abspath(a.root)
    binary = os.path.abspath(a.bin or os.path.join(root, 'build', 'mailpull'))
    missed = 0
    with tempfile.TemporaryDirectory(prefix='check_docs_selftest.') as tmp:
        base = os.path.join(tmp, 'base')
        os.mkdir(base)
        for c in COPY:
            src = os.path.join(root, c)
            (shutil.copytree if os.path.isdir(src) else shutil.copy2)(
                src, os.path.join(base, c))
        rc0, out0 = run(base, binary)
        if rc0 not in (0, 1):
            print('selftest: check_docs.py fails on the tree itself (status '
                  '%d): %s' % (rc0, ' | '.join(out0[-3:])))
            return 1
        baseline = set(out0)
        for name, edits, expect in MUTATIONS:
            t = os.path.join(tmp, 't')
            shutil.rmtree(t, ignore_errors=True)
            shutil.copytree(base, t)
            try:
                for f, old, new, rx in edits:
                    edit(os.path.join(t, f), old, new, regex=rx)
            except LookupError as e:
                print('selftest: mutation "%s" no longer applies to the tree '
                      '(update check_docs_selftest.py): %s' % (name, e))
                missed += 1
                continue
            rc, out = run(t, binary)
            new_lines = [l for l in out if l not in baseline]
            if rc == 0:
                print('selftest: MISSED %s: check_docs.py passed' % name)
                missed += 1
                continue
            for e in expect:
                if not any(re.search(e, l) for l in new_lines):
                    print('selftest: MISSED %s: no line like /%s/ (new lines: '
                          '%s)' % (name, e, ' | '.join(new_lines)[:600]))
                    missed += 1
    print('check_docs selftest: %d mutations, %d missed' %
          (len(MUTATIONS), missed))
    return 1 if missed else 0


if __name__ == '__main__':
    sys.exit(main())
