#!/usr/bin/env python3
# A strict checker of the Prometheus text exposition format (0.0.4), for
# the plugin's metrics= files: what `promtool check metrics` and
# node_exporter's textfile collector refuse, without their 100 MB
# package.  Usage: prom-check.py FILE...  With several files they are
# checked as node_exporter's textfile collector merges them: one family
# may appear in several files (same TYPE and HELP), one series in only one.
# Exit 0, or 1 with one line per problem.
import math
import re
import sys

NAME = re.compile(r'[a-zA-Z_:][a-zA-Z0-9_:]*$')
LABEL = re.compile(r'[a-zA-Z_][a-zA-Z0-9_]*$')
TYPES = {'counter', 'gauge', 'histogram', 'summary', 'untyped'}

problems = []


def bad(where, msg):
    problems.append('%s: %s' % (where, msg))


def parse_labels(s, where):
    """s is the text between { and }: a list of (name, value)."""
    out = []
    i = 0
    while i < len(s):
        m = re.match(r'([a-zA-Z_][a-zA-Z0-9_]*)="', s[i:])
        if not m:
            bad(where, 'bad label at %r' % s[i:])
            return None
        name = m.group(1)
        i += m.end()
        val = []
        while True:
            if i >= len(s):
                bad(where, 'unterminated label value')
                return None
            c = s[i]
            if c == '\\':
                if i + 1 >= len(s) or s[i + 1] not in '\\"n':
                    bad(where, 'bad escape in label %s' % name)
                    return None
                val.append({'\\': '\\', '"': '"', 'n': '\n'}[s[i + 1]])
                i += 2
            elif c == '"':
                i += 1
                break
            elif c == '\n':
                bad(where, 'newline in label %s' % name)
                return None
            else:
                val.append(c)
                i += 1
        if name.startswith('__'):
            bad(where, 'reserved label name %s' % name)
        if name in [n for n, _ in out]:
            bad(where, 'label %s twice' % name)
        out.append((name, ''.join(val)))
        if i < len(s):
            if s[i] != ',':
                bad(where, 'expected , after label %s' % name)
                return None
            i += 1
    return out


def check(files):
    families = {}           # name -> (type, help)
    series = {}             # (name, labels) -> where
    for path in files:
        seen_here = []      # families in this file, in order
        typed = set()
        with open(path, encoding='utf-8') as f:
            text = f.read()
        if text and not text.endswith('\n'):
            bad(path, 'does not end with a newline')
        for n, line in enumerate(text.split('\n')[:-1], 1):
            where = '%s:%d' % (path, n)
            if line.strip() == '':
                bad(where, 'empty line')
                continue
            if line.startswith('#'):
                m = re.match(r'# (HELP|TYPE) (\S+) ?(.*)$', line)
                if not m:
                    if line.startswith('# HELP') or line.startswith('# TYPE'):
                        bad(where, 'malformed %s' % line[:6])
                    continue
                kind, name, rest = m.groups()
                if not NAME.match(name):
                    bad(where, 'bad metric name %r' % name)
                fam = families.setdefault(name, [None, None])
                if kind == 'TYPE':
                    if rest not in TYPES:
                        bad(where, 'unknown type %r' % rest)
                    if name in typed:
                        bad(where, 'second TYPE for %s' % name)
                    if name in [s[0] for s in series if s[2] == path]:
                        bad(where, 'TYPE for %s after its samples' % name)
                    typed.add(name)
                    if fam[0] is not None and fam[0] != rest:
                        bad(where, '%s is %s here, %s before' %
                            (name, rest, fam[0]))
                    fam[0] = rest
                    if rest == 'counter' and not name.endswith('_total'):
                        bad(where, 'counter %s does not end in _total' % name)
                else:
                    if fam[1] is not None and fam[1] != rest:
                        bad(where, 'HELP for %s differs' % name)
                    fam[1] = rest
                if seen_here and seen_here[-1] == name:
                    continue
                if name in seen_here:
                    bad(where, 'family %s is not contiguous' % name)
                seen_here.append(name)
                continue
            m = re.match(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)'
                         r'( -?[0-9]+)?$', line)
            if not m:
                bad(where, 'malformed sample %r' % line)
                continue
            name, _, lab, value, _ts = m.groups()
            labels = parse_labels(lab, where) if lab else []
            if labels is None:
                continue
            try:
                v = float(value)
            except ValueError:
                bad(where, 'bad value %r' % value)
                continue
            if value.lower() in ('nan', 'inf', '+inf', '-inf') and \
                    value not in ('NaN', '+Inf', '-Inf'):
                bad(where, 'value %r not spelt NaN/+Inf/-Inf' % value)
            if name not in families or families[name][0] is None:
                bad(where, 'sample of %s without a TYPE' % name)
            elif families[name][1] is None:
                bad(where, 'sample of %s without a HELP' % name)
            elif families[name][0] == 'counter' and \
                    not (v >= 0 or math.isnan(v)):
                bad(where, 'counter %s is negative' % name)
            if seen_here and seen_here[-1] != name:
                if name in seen_here:
                    bad(where, 'family %s is not contiguous' % name)
                seen_here.append(name)
            key = (name, tuple(sorted(labels)), path)
            dup = [s for s in series if s[:2] == key[:2]]
            if dup:
                bad(where, 'series %s%s collected before (%s)' %
                    (name, dict(labels), series[dup[0]]))
            series[key] = where
    return series


if __name__ == '__main__':
    if len(sys.argv) < 2:
        sys.exit('usage: prom-check.py FILE...')
    check(sys.argv[1:])
    for p in problems:
        print(p)
    sys.exit(1 if problems else 0)
