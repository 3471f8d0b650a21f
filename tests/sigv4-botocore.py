#!/usr/bin/env python3
"""Compare lib/sigv4 with botocore's S3 signer on random S3 requests.

Generates S3-shaped requests (keys with spaces, '+', '~', '%', '=',
UTF-8, nested and trailing '/', list/multipart/delete query strings,
all methods, empty and large bodies, session tokens, UNSIGNED-PAYLOAD)
from a fixed seed, signs each with botocore.auth.S3SigV4Auth at a fixed
timestamp, and with `check-sigv4 --sign-stdin` (the line format is
documented in tests/unit/check-sigv4.c), and compares the Authorization
values.  Exits 1 on any mismatch, printing both canonical requests.

    sigv4-botocore.py [--count N] [--seed S] SIGNER
    sigv4-botocore.py --emit-c-cases      # the table in check-sigv4.c
"""

import argparse
import datetime
import hashlib
import random
import re
import subprocess
import sys
import threading
import types
from urllib.parse import quote, unquote_to_bytes

import botocore.auth
import botocore.awsrequest
import botocore.credentials

UNRESERVED = '-_.~'


# botocore reads the clock itself when it signs: get_current_datetime()
# in recent releases, datetime.datetime.utcnow() in older ones (Debian
# 12's 1.29).  Both are pointed at a per-thread time that sign() sets, so
# a request is signed at its own x-amz-date whatever the wall clock says
# and whatever other thread signs meanwhile (s3-botocore-server.py
# verifies, on its own threads, requests signed a moment before, maybe in
# the previous second).
_clock = threading.local()


class _SigningDatetime(datetime.datetime):
    @classmethod
    def utcnow(cls):
        return _clock.time


botocore.auth.datetime = types.SimpleNamespace(
    **{k: getattr(datetime, k) for k in dir(datetime)
       if not k.startswith('__')})
botocore.auth.datetime.datetime = _SigningDatetime
if hasattr(botocore.auth, 'get_current_datetime'):
    botocore.auth.get_current_datetime = lambda: _clock.time


class CapturingAuth(botocore.auth.S3SigV4Auth):
    """S3SigV4Auth that keeps its canonical request for diagnostics."""

    last_creq = None

    def canonical_request(self, request):
        self.last_creq = super().canonical_request(request)
        return self.last_creq


class S3Config:
    def __init__(self, sign_payload):
        self.s3 = {'payload_signing_enabled': sign_payload}


def esc(s):
    return (s.replace('\\', '\\\\').replace('\t', '\\t')
            .replace('\n', '\\n').replace('\r', '\\r'))


def unesc(s):
    out, i = [], 0
    while i < len(s):
        if s[i] == '\\' and i + 1 < len(s):
            i += 1
            out.append({'t': '\t', 'n': '\n', 'r': '\r'}.get(s[i], s[i]))
        else:
            out.append(s[i])
        i += 1
    return ''.join(out)


def decode_query(wire):
    """Wire query -> [(key, value)] decoded as S3 does ('+' literal)."""
    params = []
    for part in wire.split('&'):
        if not part:
            continue
        k, _, v = part.partition('=')
        params.append((unquote_to_bytes(k).decode('utf-8'),
                       unquote_to_bytes(v).decode('utf-8')))
    return params


def sign(req):
    """Sign req with botocore; returns (authorization, creq, headers)."""
    creds = botocore.credentials.Credentials(req['access'], req['secret'],
                                             req['token'] or None)
    auth = CapturingAuth(creds, 's3', req['region'])
    url = 'https://' + req['host'] + req['path']
    r = botocore.awsrequest.AWSRequest(method=req['method'], url=url,
                                       data=req['body'],
                                       params=decode_query(req['query']))
    for name, value in req['headers']:
        r.headers[name] = value  # HTTPHeaders appends: duplicates kept
    r.context['client_config'] = S3Config(not req['unsigned'])
    _clock.time = req['time']
    auth.add_auth(r)
    want_date = req['time'].strftime('%Y%m%dT%H%M%SZ')
    if r.headers['X-Amz-Date'] != want_date:
        raise RuntimeError('botocore %s signed at %s, not at %s: its clock '
                           'was not replaced' % (botocore.__version__,
                                                 r.headers['X-Amz-Date'],
                                                 want_date))
    headers = [(k, v) for k, v in r.headers.items()
               if k.lower() != 'authorization']
    return r.headers['Authorization'], auth.last_creq, headers


def c_line(req, headers):
    if req['unsigned']:
        payload = 'U'
    elif req.get('send_hash'):
        payload = 'H:' + hashlib.sha256(req['body']).hexdigest()
    else:
        payload = 'B:' + req['body'].hex()
    amz_date = dict((k.lower(), v) for k, v in headers)['x-amz-date']
    fields = [req['method'], req['rawpath'], req['path'], req['query'],
              payload, req['access'], req['secret'], req['token'],
              req['region'], 's3', amz_date]
    fields += ['%s:%s' % (k, v) for k, v in headers]
    return '\t'.join(esc(f) for f in fields)


# ---------------------------------------------------------------------
# Random requests.

KEY_CHARS = (list('abcdefghijklmnopqrstuvwxyz'
                  'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789')
             + list(" +~%=&?#!*'(),;:@$[]^`{}|\"<>-_.")
             + ['\u00e9', '\u00fc', '\u65e5\u672c', '\U0001f642', '\u00a0',
                '\u0416'])
TOKEN_CHARS = ('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'
               '0123456789+/=')


def rand_str(rng, chars, lo, hi):
    return ''.join(rng.choice(chars) for _ in range(rng.randint(lo, hi)))


def rand_key(rng):
    segs = []
    for _ in range(rng.randint(1, 5)):
        r = rng.random()
        if r < 0.05:
            segs.append('')           # "//"
        elif r < 0.10:
            segs.append(rng.choice(['.', '..']))
        else:
            segs.append(rand_str(rng, KEY_CHARS, 1, 12))
    key = '/'.join(segs)
    if rng.random() < 0.15:
        key += '/'
    return key


def encode_wire(rng, params):
    """Encode params the way some client might put them on the wire."""
    style = rng.randrange(4)
    parts = []
    for k, v in params:
        if style == 0:
            e = lambda s: quote(s, safe=UNRESERVED)
        elif style == 1:
            e = lambda s: quote(s, safe="/:,@!$'()*")
        elif style == 2:
            # Lowercase hex digits in the escapes.
            e = lambda s: re.sub(r'%[0-9A-F]{2}', lambda m: m.group(0).lower(),
                                 quote(s, safe=UNRESERVED))
        else:
            # Unreserved characters needlessly escaped.
            e = lambda s: ''.join('%%%02X' % ord(c) if c in UNRESERVED else c
                                  for c in quote(s, safe=UNRESERVED))
        if v == '' and rng.random() < 0.5:
            parts.append(e(k))
        else:
            parts.append(e(k) + '=' + e(v))
    rng.shuffle(parts)
    return '&'.join(parts)


def rand_query(rng, method, key):
    r = rng.random()
    if method == 'GET' and r < 0.35:
        p = [('list-type', '2')] if rng.random() < 0.8 else []
        for name, val in [('prefix', lambda: rand_key(rng)),
                          ('continuation-token',
                           lambda: rand_str(rng, TOKEN_CHARS, 10, 80)),
                          ('start-after', lambda: rand_key(rng)),
                          ('marker', lambda: rand_key(rng)),
                          ('delimiter', lambda: '/'),
                          ('max-keys', lambda: str(rng.randint(1, 1000))),
                          ('encoding-type', lambda: 'url')]:
            if rng.random() < 0.5:
                p.append((name, val()))
        return p
    if method == 'POST' and r < 0.5:
        return [('uploads', '')] if rng.random() < 0.5 else [('delete', '')]
    if method in ('PUT', 'GET', 'HEAD') and r < 0.55:
        return [('partNumber', str(rng.randint(1, 10000))),
                ('uploadId', rand_str(rng, TOKEN_CHARS + '.-_~', 20, 60))]
    if method in ('DELETE', 'POST') and r < 0.75:
        return [('uploadId', rand_str(rng, TOKEN_CHARS + '.-_~', 20, 60))]
    if r < 0.8:
        return [('versionId', rand_str(rng, TOKEN_CHARS, 5, 32))]
    return []


def rand_request(rng):
    method = rng.choice(['GET', 'GET', 'PUT', 'PUT', 'HEAD', 'DELETE', 'POST'])
    bucket = rng.choice(['bucket', 'my.bucket-1', 'hf'])
    key = rand_key(rng)
    region = rng.choice(['us-east-1', 'eu-west-3', 'ap-southeast-2',
                         'garage'])
    if rng.random() < 0.3:
        host = '%s.s3.%s.amazonaws.com' % (bucket, region)
        raw = '/' + key
    else:
        host = rng.choice(['s3.%s.amazonaws.com' % region, 'localhost:9000',
                           '127.0.0.1:8333', 'minio.example.com'])
        raw = '/%s/%s' % (bucket, key)
    if rng.random() < 0.15:
        # A key whose '/' is data: encoded as %2F, cannot be re-derived
        # from a raw path, so the C side does not check its encoder.
        path = '/' + quote(raw[1:], safe='~')
        rawpath = ''
    else:
        path = quote(raw, safe='/~')
        rawpath = raw

    params = rand_query(rng, method, key)
    body = b''
    if method in ('PUT', 'POST') and rng.random() < 0.8:
        n = rng.choice([0, 1, 100, 4096, 65536, rng.randint(1, 300000)])
        if rng.random() < 0.02:
            n = rng.randint(1 << 20, 4 << 20)
        body = rng.randbytes(n)

    headers = [('Host', host)]
    if body or method == 'PUT':
        headers.append((rng.choice(['Content-Length', 'content-length']),
                        str(len(body))))
    if method == 'PUT' and rng.random() < 0.5:
        headers.append(('Content-Type', 'application/octet-stream'))
    if method == 'PUT' and rng.random() < 0.3:
        headers.append(('If-None-Match', '*'))
    if method in ('GET', 'HEAD') and rng.random() < 0.4:
        a = rng.randrange(0, 1 << 30)
        headers.append(('Range', 'bytes=%d-%d' % (a, a + rng.randrange(4096))))
    if rng.random() < 0.2:
        headers.append(('If-Match', '"%s"' % rng.randbytes(16).hex()))
    if rng.random() < 0.25:
        # Whitespace that must be trimmed and folded.
        headers.append(('X-Amz-Meta-Note', rng.choice(
            ['  a   b  ', 'x\t y', 'plain', ' lead', 'trail ', 'a  \t  b'])))
    if rng.random() < 0.1:
        headers.append(('x-amz-meta-dup', 'one'))
        headers.append(('X-Amz-Meta-Dup', ' two  2 '))
    if rng.random() < 0.1:
        headers.append(('Content-MD5', 'rL0Y20zC+Fzt72VPzMSk2A=='))

    token = rand_str(rng, TOKEN_CHARS, 100, 400) if rng.random() < 0.3 else ''
    epoch = rng.randint(946684800, 2145916800)
    return {
        'method': method, 'host': host, 'path': path, 'rawpath': rawpath,
        'query': encode_wire(rng, params), 'body': body, 'headers': headers,
        'unsigned': rng.random() < 0.2, 'send_hash': rng.random() < 0.3,
        'token': token, 'region': region,
        'access': 'AKID' + rand_str(rng, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567',
                                    16, 16),
        'secret': rand_str(rng, TOKEN_CHARS, 40, 40),
        'time': datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)
                .replace(tzinfo=None),
    }


# ---------------------------------------------------------------------
# Hand-picked cases whose botocore answers are frozen in check-sigv4.c.

def fixed_cases():
    base = {
        'access': 'AKIDEXAMPLE',
        'secret': 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
        'region': 'us-east-1', 'unsigned': False, 'token': '',
        'host': 's3.us-east-1.amazonaws.com', 'body': b'', 'rawpath': '',
        'time': datetime.datetime(2024, 5, 17, 8, 30, 0),
    }
    tok = 'FwoGZXIvYXdzEJr//////////wEaDOy+Token/With=Chars'
    cases = [
        dict(method='GET', path='/bucket/a//b%2Fc/file%20name.txt', query=''),
        dict(method='GET', path='/bucket',
             query='list-type=2&prefix=vol%2Fseg%2F&continuation-token='
                   '1%2BabC%3D%3D&start-after=seg/0001'),
        dict(method='PUT', path='/bucket/vol/seg/0000000000000001',
             query='', body=b'hello', token=tok,
             headers=[('If-None-Match', '*'), ('Content-Length', '5')]),
        dict(method='POST', path='/bucket/key%20with%20space', query='uploads',
             unsigned=True),
        dict(method='DELETE', path='/bucket/a/./b/../c',
             query='uploadId=abc.def-ghi_jkl~mno'),
        dict(method='HEAD',
             path='/bucket/%E6%97%A5%E6%9C%AC/%F0%9F%99%82~%2B%3D%25/',
             query='versionId=3%2fL4kqtJl%7e'),
        dict(method='GET', path='/bucket/obj', query='partNumber=2&uploadId=x',
             headers=[('Range', 'bytes=0-4095'),
                      ('X-Amz-Meta-Note', '  a   b  '),
                      ('x-amz-meta-dup', 'one'), ('X-Amz-Meta-Dup', 'two')]),
    ]
    out = []
    for c in cases:
        req = dict(base)
        req.update(c)
        req['headers'] = [('Host', req['host'])] + c.get('headers', [])
        out.append(req)
    return out


def cstr(s, indent=4, width=76):
    """s as C string literal(s), split to fit width after indent."""
    if s == EMPTY_SHA256:
        return 'EMPTY_SHA256'
    pieces, cur = [], ''
    for ch in s:
        b = ch.encode('utf-8')
        if ch in '"\\':
            e = '\\' + ch
        elif ch == '\n':
            e = '\\n'
        elif len(b) == 1 and 32 <= b[0] < 127:
            e = ch
        else:
            e = ''.join('\\%03o' % x for x in b)
        if len(cur) + len(e) + 2 > width - indent:
            pieces.append(cur)
            cur = ''
        cur += e
        if ch == '\n':
            pieces.append(cur)
            cur = ''
    if cur or not pieces:
        pieces.append(cur)
    return ('\n' + ' ' * indent).join('"%s"' % p for p in pieces)


EMPTY_SHA256 = hashlib.sha256(b'').hexdigest()


def emit_c_cases():
    print('/* Generated by tests/sigv4-botocore.py --emit-c-cases '
          '(botocore %s). */' % botocore.__version__)
    print('static const struct s3_case s3_cases[] = {')
    for req in fixed_cases():
        authz, creq, headers = sign(req)
        if req['unsigned']:
            payload = 'UNSIGNED-PAYLOAD'
        else:
            payload = hashlib.sha256(req['body']).hexdigest()
        amz = dict((k.lower(), v) for k, v in headers)['x-amz-date']
        print('  { %s, %s,' % (cstr(req['method']), cstr(req['path'])))
        print('    %s,' % cstr(req['query']))
        print('    %s,\n    %s,' % (cstr(payload), cstr(amz)))
        print('    %s,' % (cstr(req['token']) if req['token'] else 'NULL'))
        print('    {')
        for k, v in headers:
            one = '      { %s, %s },' % (cstr(k, 8), cstr(v, 8))
            if len(one) > 78 or '\n' in one:
                one = '      { %s,\n        %s },' % (cstr(k, 8), cstr(v, 8))
            print(one)
        print('    },')
        print('    %s,' % cstr(creq))
        print('    %s },' % cstr(authz))
    print('};')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--count', type=int, default=500)
    ap.add_argument('--seed', type=int, default=20240517)
    ap.add_argument('--emit-c-cases', action='store_true')
    ap.add_argument('signer', nargs='?')
    args = ap.parse_args()
    if args.emit_c_cases:
        emit_c_cases()
        return 0
    if not args.signer:
        ap.error('SIGNER (the check-sigv4 binary) is required')

    print('sigv4-botocore: seed %d, %d requests, botocore %s'
          % (args.seed, args.count, botocore.__version__))
    rng = random.Random(args.seed)
    reqs, expected, lines = [], [], []
    for _ in range(args.count):
        req = rand_request(rng)
        authz, creq, headers = sign(req)
        reqs.append(req)
        expected.append((authz, creq))
        lines.append(c_line(req, headers))
    for req in fixed_cases():
        authz, creq, headers = sign(req)
        reqs.append(req)
        expected.append((authz, creq))
        lines.append(c_line(req, headers))

    res = subprocess.run([args.signer, '--sign-stdin'],
                         input=('\n'.join(lines) + '\n').encode('utf-8'),
                         stdout=subprocess.PIPE, check=True)
    out = res.stdout.decode('utf-8').split('\n')
    if out and out[-1] == '':
        out.pop()
    if len(out) != len(lines):
        print('FAIL: %d requests, %d answers' % (len(lines), len(out)))
        return 1

    bad = 0
    for i, (line, (authz, creq)) in enumerate(zip(out, expected)):
        f = line.split('\t')
        if f[0] == 'OK' and len(f) == 3 and f[1] == authz:
            continue
        bad += 1
        print('MISMATCH in request %d: %s %s?%s' % (
            i, reqs[i]['method'], reqs[i]['path'], reqs[i]['query']))
        print('  botocore: %s' % authz)
        print('  C:        %s' % (f[1] if f[0] == 'OK' else line))
        print('--- botocore canonical request:\n%s' % creq)
        if f[0] == 'OK' and len(f) == 3:
            print('--- C canonical request:\n%s' % unesc(f[2]))
        print('---')
    feats = {
        'query': sum(bool(r['query']) for r in reqs),
        'token': sum(bool(r['token']) for r in reqs),
        'unsigned': sum(r['unsigned'] for r in reqs),
        'body>1MiB': sum(len(r['body']) > (1 << 20) for r in reqs),
        'non-ascii key': sum(any(ord(c) > 127 for c in r['rawpath'] or
                                 r['path']) or '%C' in r['path'] or
                             '%E' in r['path'] or '%F' in r['path']
                             for r in reqs),
        '%2F in key': sum(not r['rawpath'] for r in reqs),
        'dup header': sum(len(r['headers']) != len(
            set(k.lower() for k, _ in r['headers'])) for r in reqs),
    }
    print('sigv4-botocore: covered: %s' % ', '.join(
        '%s %d' % kv for kv in feats.items()))
    print('sigv4-botocore: %d compared, %d mismatches' % (len(lines), bad))
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
