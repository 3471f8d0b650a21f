#!/usr/bin/env python3
"""A fake of the AWS credential endpoints, for tests/test-s3-creds.sh and
tests/test-nbd-creds-expiry.sh.

    aws-creds-server.py DIR LIFETIME [CLAIMED]

Listens on 127.0.0.1 (a free port; prints "PORT n" on stdout first) and
serves, each handing out fresh temporary credentials on every call:

  PUT  /latest/api/token              IMDSv2 session token (needs the
                                      X-aws-ec2-metadata-token-ttl-seconds
                                      header)
  GET  /latest/meta-data/iam/security-credentials/       the role name
  GET  /latest/meta-data/iam/security-credentials/ROLE   credentials JSON
       (both need X-aws-ec2-metadata-token with a session token: 401
       otherwise, as IMDS does when IMDSv1 is off)
  GET  /container/credentials         container credentials JSON; needs
                                      Authorization equal to the content
                                      of DIR/container-token
  POST /sts/                          STS AssumeRoleWithWebIdentity (form
                                      body); WebIdentityToken must equal
                                      the content of DIR/web-token
  any  /hf-moved/...                  an S3 bucket in another region: 301
                                      PermanentRedirect with
                                      x-amz-bucket-region: eu-west-1

Credentials are valid for LIFETIME seconds; their Expiration says CLAIMED
seconds (default LIFETIME): a CLAIMED longer than LIFETIME plays a server
that calls credentials expired before the client expects it.  Each set
is written to DIR/creds/KEYID.json ({"secret", "token", "expires"}) for
the S3 test server (tests/s3rver/server.js, HF_S3RVER_CREDS_DIR), which
accepts it until "expires" and then answers 400 ExpiredToken.  Each one
handed out is reported on stdout as "ISSUE SOURCE KEYID" (never the
secret), each refusal as "REFUSE WHAT".  Runs until killed or its parent
process exits.
"""

import datetime
import http.server
import json
import os
import secrets
import sys
import threading
import time
from urllib.parse import parse_qsl

DIR, LIFETIME = sys.argv[1], float(sys.argv[2])
CLAIMED = float(sys.argv[3]) if len(sys.argv) > 3 else LIFETIME
ROLE = 'hf-test-role'
lock = threading.Lock()
imds_tokens = set()
counter = [0]


def read(name):
    try:
        with open(os.path.join(DIR, name)) as f:
            return f.read().strip()
    except OSError:
        return None


def issue(source):
    with lock:
        counter[0] += 1
        n = counter[0]
    key = 'ASIAHFTEST%06d%s' % (n, secrets.token_hex(3).upper())
    secret = 'hf-fake-secret/' + secrets.token_urlsafe(24)
    token = 'hf-fake-token/' + secrets.token_urlsafe(48)
    now = time.time()
    expires = now + LIFETIME
    os.makedirs(os.path.join(DIR, 'creds'), exist_ok=True)
    path = os.path.join(DIR, 'creds', key + '.json')
    with open(path + '.tmp', 'w') as f:
        json.dump({'secret': secret, 'token': token, 'expires': expires}, f)
    os.rename(path + '.tmp', path)
    claimed = datetime.datetime.fromtimestamp(
        now + CLAIMED, datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')
    print('ISSUE %s %s' % (source, key), flush=True)
    return key, secret, token, claimed


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, body, ctype='text/plain', headers=()):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header('Content-Type', ctype)
        for h, v in headers:
            self.send_header(h, v)
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        if self.command != 'HEAD':
            self.wfile.write(data)

    def refuse(self, status, what):
        print('REFUSE %s' % what, flush=True)
        self.reply(status, what + '\n')

    def body(self):
        n = int(self.headers.get('Content-Length') or 0)
        return self.rfile.read(n) if n else b''

    def moved(self):
        self.body()
        self.reply(301, '<?xml version="1.0" encoding="UTF-8"?>\n<Error>'
                   '<Code>PermanentRedirect</Code><Message>The bucket you '
                   'are attempting to access must be addressed using the '
                   'specified endpoint.</Message><Bucket>hf-moved</Bucket>'
                   '<Endpoint>hf-moved.s3.eu-west-1.amazonaws.com</Endpoint>'
                   '</Error>', 'application/xml',
                   [('x-amz-bucket-region', 'eu-west-1')])

    def creds_json(self, source):
        key, secret, token, claimed = issue(source)
        self.reply(200, json.dumps({
            'Code': 'Success', 'Type': 'AWS-HMAC',
            'LastUpdated': time.strftime('%Y-%m-%dT%H:%M:%SZ',
                                         time.gmtime()),
            'AccessKeyId': key, 'SecretAccessKey': secret, 'Token': token,
            'Expiration': claimed}), 'application/json')

    def do_PUT(self):
        self.body()
        if self.path.startswith('/hf-moved'):
            return self.moved()
        if self.path != '/latest/api/token':
            return self.refuse(404, 'no such path')
        ttl = self.headers.get('X-aws-ec2-metadata-token-ttl-seconds', '')
        if not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
            return self.refuse(400, 'imds token without a valid ttl')
        tok = 'imds-session-' + secrets.token_urlsafe(16)
        with lock:
            imds_tokens.add(tok)
        self.reply(200, tok)

    def do_HEAD(self):
        if self.path.startswith('/hf-moved'):
            return self.moved()
        self.refuse(404, 'no such path')

    def do_GET(self):
        p = self.path
        if p.startswith('/hf-moved'):
            return self.moved()
        base = '/latest/meta-data/iam/security-credentials/'
        if p.startswith(base):
            with lock:
                ok = self.headers.get('X-aws-ec2-metadata-token') in \
                    imds_tokens
            if not ok:
                return self.refuse(401, 'imds request without a session '
                                   'token')
            if p == base:
                return self.reply(200, ROLE)
            if p == base + ROLE:
                return self.creds_json('imds')
            return self.refuse(404, 'no such role')
        if p == '/container/credentials':
            want = read('container-token')
            if want is not None and self.headers.get('Authorization') != want:
                return self.refuse(403, 'container request with a wrong '
                                   'authorization token')
            return self.creds_json('container')
        self.refuse(404, 'no such path')

    def do_POST(self):
        body = self.body().decode(errors='replace')
        if self.path.startswith('/hf-moved'):
            return self.moved()
        if self.path.rstrip('/') != '/sts':
            return self.refuse(404, 'no such path')
        form = dict(parse_qsl(body, keep_blank_values=True))
        if (form.get('Action') != 'AssumeRoleWithWebIdentity' or
                form.get('Version') != '2011-06-15' or
                not form.get('RoleArn') or not form.get('RoleSessionName')):
            return self.refuse(400, 'sts request without Action, Version, '
                               'RoleArn or RoleSessionName')
        if form.get('WebIdentityToken') != read('web-token'):
            print('REFUSE sts wrong web identity token', flush=True)
            return self.reply(
                400, '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/'
                '2011-06-15/"><Error><Type>Sender</Type><Code>'
                'InvalidIdentityToken</Code><Message>The web identity token '
                'that was passed could not be validated</Message></Error>'
                '</ErrorResponse>', 'text/xml')
        key, secret, token, claimed = issue('sts')
        print('STS role=%s session=%s' % (form['RoleArn'],
                                           form['RoleSessionName']),
              flush=True)
        self.reply(
            200, '<AssumeRoleWithWebIdentityResponse xmlns="https://sts.'
            'amazonaws.com/doc/2011-06-15/"><AssumeRoleWithWebIdentityResult>'
            '<Credentials><AccessKeyId>%s</AccessKeyId><SecretAccessKey>%s'
            '</SecretAccessKey><SessionToken>%s</SessionToken><Expiration>%s'
            '</Expiration></Credentials></AssumeRoleWithWebIdentityResult>'
            '</AssumeRoleWithWebIdentityResponse>'
            % (key, secret, token, claimed), 'text/xml')


def watch_parent():
    parent = os.getppid()
    while True:
        time.sleep(1)
        if os.getppid() != parent:
            os._exit(0)


def main():
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    srv.daemon_threads = True
    threading.Thread(target=watch_parent, daemon=True).start()
    print('PORT %d' % srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == '__main__':
    main()
