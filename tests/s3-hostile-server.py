#!/usr/bin/env python3
"""An S3 endpoint that misbehaves on purpose, for tests/test-s3-hostile.sh.

    s3-hostile-server.py

Listens on 127.0.0.1 (a free port; prints "PORT n" on stdout first) and
answers path-style requests (/BUCKET/KEY?QUERY) without checking
signatures.  The bucket name picks the misbehaviour:

  flood      every answer is 200 with an endless body (no Content-Length,
             the connection closes when the client gives up)
  bigclen    200 announcing a 16 GiB Content-Length, then an endless body
  rangeflood ranged GETs answer 206 and send far more than the range
  errflood   404 with an endless error body
  drip       200 announcing 60000 bytes, sent at 2 bytes per second
  loop       ListObjectsV2: IsTruncated=true, new keys, the same token
  emptytrunc ListObjectsV2: IsTruncated=true, no keys, fresh tokens
  endless    ListObjectsV2: IsTruncated=true, one new key per page and a
             fresh token, for ever
  foreign    ListObjectsV2: keys outside the requested prefix and out of
             order beside the right ones (one page, not truncated)
  ok         a well-behaved in-memory bucket (PUT, GET, HEAD, DELETE),
             to show the same client works
  readonly   the ok bucket's objects through credentials that may only
             read: GET, HEAD and listing work, PUT, POST and DELETE
             answer 403 AccessDenied

Each request is reported on stdout as "REQ METHOD PATH".  Runs until
killed or its parent process exits.
"""

import http.server
import os
import sys
import threading
import time
from urllib.parse import parse_qsl, unquote, urlsplit
from xml.sax.saxutils import escape

CHUNK = b'x' * 65536
objects = {}                    # ok bucket: key -> bytes
objects_lock = threading.Lock()


def list_xml(keys, truncated, token):
    body = ['<?xml version="1.0" encoding="UTF-8"?>'
            '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/'
            '2006-03-01/"><Name>b</Name>']
    for k in keys:
        body.append('<Contents><Key>%s</Key><Size>1</Size></Contents>'
                    % escape(k))
    body.append('<IsTruncated>%s</IsTruncated>'
                % ('true' if truncated else 'false'))
    if token is not None:
        body.append('<NextContinuationToken>%s</NextContinuationToken>'
                    % escape(token))
    body.append('</ListBucketResult>')
    return ''.join(body).encode()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, fmt, *args):
        pass

    def parse(self):
        u = urlsplit(self.path)
        parts = u.path.lstrip('/').split('/', 1)
        bucket = parts[0]
        key = unquote(parts[1]) if len(parts) > 1 else ''
        q = dict(parse_qsl(u.query, keep_blank_values=True))
        n = int(self.headers.get('Content-Length') or 0)
        body = self.rfile.read(n) if n else b''
        print('REQ %s %s' % (self.command, self.path), flush=True)
        return bucket, key, q, body

    def answer(self, status, body=b'', headers=()):
        self.send_response(status)
        for h, v in headers:
            self.send_header(h, v)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        if self.command != 'HEAD':
            self.wfile.write(body)

    def endless(self, status, clen=None):
        """Send an endless body until the client hangs up."""
        self.send_response(status)
        if clen is not None:
            self.send_header('Content-Length', str(clen))
        self.send_header('Connection', 'close')
        self.end_headers()
        self.close_connection = True
        try:
            while True:
                self.wfile.write(CHUNK)
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass

    def drip(self):
        self.send_response(200)
        self.send_header('Content-Length', '60000')
        self.end_headers()
        self.close_connection = True
        try:
            while True:
                self.wfile.write(b'd')
                self.wfile.flush()
                time.sleep(0.5)
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass

    def list_page(self, bucket, q):
        prefix = q.get('prefix', '')
        token = q.get('continuation-token')
        page = int(token.split('-')[-1]) + 1 if token else 0
        if bucket == 'loop':
            keys = ['%sk%06d' % (prefix, page)]
            return self.answer(200, list_xml(keys, True, 'again-0'))
        if bucket == 'emptytrunc':
            return self.answer(200, list_xml([], True, 'tok-%d' % page))
        if bucket == 'endless':
            keys = ['%sk%09d' % (prefix, page)]
            return self.answer(200, list_xml(keys, True, 'tok-%d' % page))
        if bucket == 'foreign':
            keys = ['%sa' % prefix, 'aaa-outside', '%sb' % prefix,
                    '%sa' % prefix, 'zzz-outside', '%sc' % prefix]
            return self.answer(200, list_xml(keys, False, None))
        with objects_lock:
            keys = sorted(k for k in objects if k.startswith(prefix))
        return self.answer(200, list_xml(keys, False, None))

    def serve(self):
        bucket, key, q, body = self.parse()
        if bucket in ('flood', 'bigclen', 'errflood', 'drip'):
            if self.command == 'HEAD':
                return self.answer(200, b'', [('ETag', '"x"')])
            if bucket == 'drip':
                return self.drip()
            return self.endless(404 if bucket == 'errflood' else 200,
                                16 << 30 if bucket == 'bigclen' else None)
        if bucket == 'rangeflood':
            if self.command == 'GET' and 'Range' in self.headers:
                self.send_response(206)
                self.send_header('Content-Range', 'bytes 0-4095/1048576')
                self.send_header('Connection', 'close')
                self.end_headers()
                self.close_connection = True
                try:
                    while True:
                        self.wfile.write(CHUNK)
                except (BrokenPipeError, ConnectionResetError, OSError):
                    pass
                return
            return self.answer(200, b'')
        if self.command == 'GET' and key == '' and q.get('list-type') == '2':
            return self.list_page(bucket, q)
        if bucket == 'readonly' and self.command not in ('GET', 'HEAD'):
            return self.answer(403, b'<Error><Code>AccessDenied</Code>'
                               b'<Message>Access Denied</Message></Error>')
        if self.command == 'PUT':
            with objects_lock:
                objects[key] = body
            return self.answer(200, b'', [('ETag', '"e"')])
        if self.command in ('GET', 'HEAD'):
            with objects_lock:
                data = objects.get(key)
            if data is None:
                return self.answer(404, b'<Error><Code>NoSuchKey</Code>'
                                   b'<Message>no</Message></Error>')
            return self.answer(200, data, [('ETag', '"e"')])
        if self.command == 'DELETE':
            with objects_lock:
                objects.pop(key, None)
            return self.answer(204)
        return self.answer(405)

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = serve


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


def main():
    srv = Server(('127.0.0.1', 0), Handler)
    print('PORT %d' % srv.server_address[1], flush=True)
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(0)
    threading.Thread(target=watch, daemon=True).start()
    srv.serve_forever()


if __name__ == '__main__':
    sys.exit(main())
