#!/usr/bin/env python3
"""A small S3 stand-in that checks every request's signature with botocore.

    s3-botocore-server.py BUCKET ACCESS-KEY SECRET-KEY [SESSION-TOKEN]

Listens on 127.0.0.1 (a free port; prints "PORT n" on stdout first) and
serves one bucket from memory: PUT (with If-None-Match: *), GET (with
Range), HEAD, DELETE, DeleteObjects and ListObjectsV2, path-style
(127.0.0.1:PORT/BUCKET/KEY) or virtual-host style (BUCKET.s3.localhost).

Before serving, every request is re-signed by botocore's S3SigV4Auth (an
independent implementation; tests/sigv4-botocore.py holds the glue) from
what arrived on the wire: method, Host, path and query as sent, the
headers the client listed in SignedHeaders, the body, the x-amz-date and
the credentials given here; botocore adds x-amz-date, x-amz-content-sha256
and, with SESSION-TOKEN, x-amz-security-token itself.  The request must
carry exactly that Authorization value, and with SESSION-TOKEN the token
header with that value, listed in SignedHeaders.  Otherwise the answer is
403 (SignatureDoesNotMatch, InvalidToken, InvalidAccessKeyId) and a
"MISMATCH" report with both canonical requests goes to stderr.  Each
request that passed is reported on stdout as "VERIFIED METHOD PATH
signed=HEADERS".  Runs until killed or its parent process exits.
"""

import datetime
import hashlib
import http.server
import importlib.util
import os
import re
import sys
import threading
import time
from urllib.parse import parse_qsl, unquote, urlsplit
from xml.etree import ElementTree
from xml.sax.saxutils import escape

_spec = importlib.util.spec_from_file_location(
    'sigv4_botocore',
    os.path.join(os.path.dirname(os.path.abspath(__file__)),
                 'sigv4-botocore.py'))
sigv4_botocore = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sigv4_botocore)

VHOST_RE = re.compile(r'^(.+)\.s3\.localhost(:\d+)?$')
AUTH_RE = re.compile(r'^AWS4-HMAC-SHA256 Credential=([^/,]+)/([^/,]+)/'
                     r'([^/,]+)/s3/aws4_request, ?SignedHeaders=([^, ]+), ?'
                     r'Signature=[0-9a-f]{64}$')
# Headers botocore derives itself rather than taking from the request.
BOTOCORE_ADDS = ('x-amz-date', 'x-amz-content-sha256',
                 'x-amz-security-token')


class Store:
    def __init__(self, bucket, access, secret, token):
        self.bucket, self.access, self.secret = bucket, access, secret
        self.token = token
        self.lock = threading.Lock()  # protects objects
        self.objects = {}             # key -> bytes


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'     # keep-alive, as S3
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):
        pass

    # ---- answers ----

    def answer(self, status, body=b'', headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        if self.command != 'HEAD':
            self.wfile.write(body)

    def error(self, status, code, message):
        body = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s'
                '</Code><Message>%s</Message></Error>'
                % (code, escape(message))).encode()
        self.answer(status, body, [('Content-Type', 'application/xml')])

    # ---- signature ----

    def verify(self, body):
        st = self.server.store
        auth = self.headers.get('Authorization', '')
        m = AUTH_RE.match(auth)
        if not m:
            return self.error(403, 'AccessDenied', 'no SigV4 Authorization')
        access, _, region, signed = m.groups()
        signed_list = signed.split(';')
        if access != st.access:
            return self.error(403, 'InvalidAccessKeyId', 'unknown key')
        if st.token is not None and (
                self.headers.get('x-amz-security-token') != st.token
                or 'x-amz-security-token' not in signed_list):
            return self.error(403, 'InvalidToken',
                              'missing, wrong or unsigned session token')
        amz_date = self.headers.get('x-amz-date', '')
        path, _, query = self.path.partition('?')
        headers = []
        for name in signed_list:
            if name in BOTOCORE_ADDS:
                continue
            value = self.headers.get(name)
            if value is None:
                return self.error(403, 'AccessDenied',
                                  'signed header %s not sent' % name)
            headers.append((name, value))
        req = {
            'method': self.command, 'host': self.headers.get('Host', ''),
            'path': path, 'query': query, 'body': body, 'headers': headers,
            'unsigned': self.headers.get('x-amz-content-sha256')
                        == 'UNSIGNED-PAYLOAD',
            'token': st.token or '', 'region': region,
            'access': st.access, 'secret': st.secret,
            'time': datetime.datetime.strptime(amz_date, '%Y%m%dT%H%M%SZ'),
        }
        want, creq, _ = sigv4_botocore.sign(req)
        if want != auth:
            sys.stderr.write('MISMATCH %s %s\n  sent:     %s\n  botocore: %s\n'
                             '  x-amz-date sent: %s\n'
                             '  botocore canonical request:\n%s\n'
                             % (self.command, self.path, auth, want, amz_date, creq))
            sys.stderr.flush()
            return self.error(403, 'SignatureDoesNotMatch',
                              'botocore computes another signature')
        print('VERIFIED %s %s signed=%s' % (self.command, path, signed),
              flush=True)
        return True

    # ---- requests ----

    def target(self):
        """(key or None, query dict), or None when not our bucket."""
        path, _, query = self.path.partition('?')
        vm = VHOST_RE.match(self.headers.get('Host', ''))
        if vm:
            bucket, rest = vm.group(1), path[1:]
        else:
            bucket, _, rest = path[1:].partition('/')
        if bucket != self.server.store.bucket:
            return None
        q = dict(parse_qsl(query, keep_blank_values=True))
        return (unquote(rest) if rest else None), q

    def handle_any(self):
        n = int(self.headers.get('Content-Length') or 0)
        body = self.rfile.read(n) if n else b''
        if self.verify(body) is not True:
            return
        t = self.target()
        if t is None:
            return self.error(404, 'NoSuchBucket', 'no such bucket')
        key, q = t
        st = self.server.store
        with st.lock:
            if key is None:
                return self.bucket_request(q, body)
            data = st.objects.get(key)
            if self.command == 'PUT':
                if (self.headers.get('If-None-Match') == '*'
                        and data is not None):
                    return self.error(412, 'PreconditionFailed',
                                      'key exists')
                st.objects[key] = body
                return self.answer(200, headers=[
                    ('ETag', '"%s"' % hashlib.md5(body).hexdigest())])
            if self.command == 'DELETE':
                st.objects.pop(key, None)
                return self.answer(204)
            if data is None:
                return self.error(404, 'NoSuchKey', 'no such key')
            hdrs = [('ETag', '"%s"' % hashlib.md5(data).hexdigest()),
                    ('Last-Modified', 'Wed, 25 Nov 2026 06:00:00 GMT')]
            rng = re.match(r'bytes=(\d+)-(\d*)$',
                           self.headers.get('Range', ''))
            if rng and self.command == 'GET':
                a = int(rng.group(1))
                b = min(int(rng.group(2) or len(data) - 1), len(data) - 1)
                if a >= len(data):
                    return self.error(416, 'InvalidRange', 'past the end')
                hdrs.append(('Content-Range',
                             'bytes %d-%d/%d' % (a, b, len(data))))
                return self.answer(206, data[a:b + 1], hdrs)
            if self.command == 'HEAD':
                self.send_response(200)
                for k, v in hdrs:
                    self.send_header(k, v)
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                return None
            return self.answer(200, data, hdrs)

    def bucket_request(self, q, body):
        st = self.server.store
        if self.command == 'POST' and 'delete' in q:
            root = ElementTree.fromstring(body)
            for k in root.iter():
                if k.tag.endswith('Key'):
                    st.objects.pop(k.text or '', None)
            return self.answer(200, b'<?xml version="1.0" encoding="UTF-8"?>'
                               b'<DeleteResult/>')
        if self.command != 'GET' or q.get('list-type') != '2':
            return self.error(501, 'NotImplemented', 'not in this stand-in')
        prefix = q.get('prefix', '')
        after = q.get('continuation-token') or q.get('start-after') or ''
        limit = int(q.get('max-keys', '1000'))
        keys = sorted((k for k in st.objects
                       if k.startswith(prefix) and k.encode() > after.encode()),
                      key=lambda k: k.encode())
        page, more = keys[:limit], len(keys) > limit
        out = ['<?xml version="1.0" encoding="UTF-8"?><ListBucketResult>'
               '<Name>%s</Name><KeyCount>%d</KeyCount><IsTruncated>%s'
               '</IsTruncated>' % (st.bucket, len(page),
                                   'true' if more else 'false')]
        if more:
            out.append('<NextContinuationToken>%s</NextContinuationToken>'
                       % escape(page[-1]))
        for k in page:
            out.append('<Contents><Key>%s</Key><Size>%d</Size></Contents>'
                       % (escape(k), len(st.objects[k])))
        out.append('</ListBucketResult>')
        return self.answer(200, ''.join(out).encode(),
                           [('Content-Type', 'application/xml')])

    do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = handle_any


def exit_with_parent(ppid):
    """Exit once the test that started us is gone (whatever killed it)."""
    while os.getppid() == ppid:
        time.sleep(0.5)
    os._exit(0)


def main():
    threading.Thread(target=exit_with_parent, args=(os.getppid(),),
                     daemon=True).start()
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__.split('\n\n')[1])
    store = Store(*sys.argv[1:4], sys.argv[4] if len(sys.argv) == 5 else None)
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    srv.daemon_threads = True
    srv.store = store
    print('PORT %d' % srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == '__main__':
    main()
