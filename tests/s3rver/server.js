/* hyperfile tests: start the S3 test server (@20minutes/s3rver).
 *
 * Usage: node --openssl-legacy-provider server.js DATADIR PORT BUCKET
 *                                                 [TLS-KEY TLS-CERT]
 *
 * Serves a real S3 API (SigV4-verified; a wrong secret gets 403
 * SignatureDoesNotMatch) on 127.0.0.1:PORT (0 = pick a free port),
 * storing objects under DATADIR, with BUCKET created.  With TLS-KEY and
 * TLS-CERT (PEM files) it speaks https instead of http.  Prints
 * "PORT <n>" on stdout once listening, then runs until killed.
 *
 * Credentials: s3rver's fixed S3RVER / S3RVER, plus key pairs from the
 * environment (tests/functions.sh sets them):
 *   HF_S3RVER_KEY, HF_S3RVER_SECRET      another ordinary key pair, so
 *       that tests can look for a secret that is not also the key id;
 *   HF_S3RVER_TEMP_KEY, HF_S3RVER_TEMP_SECRET, HF_S3RVER_TEMP_TOKEN
 *       temporary credentials: like AWS STS ones, every request made
 *       with this key must carry x-amz-security-token with exactly this
 *       token AND sign it, else 403 InvalidToken (shim 6 below).
 *
 *   HF_S3RVER_CREDS_DIR      rotating temporary credentials, as the
 *       fake credential endpoints (tests/aws-creds-server.py) hand them
 *       out: a request whose key id is DIR/creds/KEYID.json is checked
 *       against it (shim 6b below).
 *
 * Addressing: path-style on 127.0.0.1 / localhost, virtual-host style
 * for Host BUCKET.s3.localhost (curl resolves every *.localhost name to
 * the loopback address itself, so no resolver setup is needed).
 *
 * HF_S3RVER_REQLOG=FILE appends one line per request to FILE:
 *   METHOD HOST URL ak=KEYID scope=DATE/REGION/SERVICE signed=H1;H2...
 *   token=yes|no s3session=yes|no sse=VALUE|- kms=yes|no class=VALUE|-
 * (never a signature, secret or token value; sse, kms and class are the
 * server-side encryption, KMS key id and storage class headers), and
 * "EXPIRED ak=KEYID" for each request shim 6b refused as expired so that tests can check
 * what the client really sent: virtual-host Host headers, the region in
 * the credential scope, a signed session token.
 *
 * --openssl-legacy-provider: s3rver encrypts ListObjectsV2 continuation
 * tokens with single DES, which OpenSSL 3 only offers from its legacy
 * provider; without it every truncated listing answers 500.
 *
 * =====================================================================
 * HYPERFILE TEST SHIMS (not part of s3rver).
 *
 * A. Deviation fixes: s3rver differs from AWS S3 here, and hyperfile's
 *    tests rely on S3's behaviour, so these make s3rver behave like S3.
 *
 *  0. accountingShim (for bench/run): counts every request by kind
 *     (PutObject, UploadPart, CreateMultipartUpload,
 *     CompleteMultipartUpload, GetObject, HeadObject, DeleteObject,
 *     DeleteObjects, ListObjects, Other) with the bytes received (request
 *     Content-Length) and sent.  s3rver keeps no such counts.  An
 *     unauthenticated GET /__hyperfile_stats answers them as JSON (not a
 *     possible bucket name: S3 bucket names have no '_'); it is not
 *     counted.
 *  1. ifNoneMatchShim: s3rver ignores "If-None-Match: *".  PUT (not an
 *     UploadPart) and CompleteMultipartUpload with If-None-Match: *
 *     answer 412 PreconditionFailed when the key exists; the check and
 *     the write are serialised per key, so of two racing conditional
 *     writes exactly one succeeds.
 *
 *  2. listKeyEscapeShim: s3rver escapes keys twice in ListObjects
 *     answers ("a&b" arrives as <Key>a&amp;amp;b</Key>); undo one level.
 *
 *  3. byteOrderListing: s3rver lists keys in directory-walk order, so
 *     "p/l-before" comes after the "p/l/..." keys and a continuation
 *     token (the last key of a page) skips keys across such boundaries.
 *     S3 lists in UTF-8 byte order; this lists every matching key, sorts
 *     by bytes, then applies start-after and max-keys.
 *
 *  4. atomicObjects: s3rver writes an object in place, so a GET racing
 *     a PUT of the same key sees a truncated or empty object, and a GET
 *     can stat one version and stream another.  S3 replaces objects
 *     atomically.  Here an object (content, md5, metadata) is written to
 *     a staging directory next to DATADIR and renamed into place, and
 *     per object, opening it for GET/HEAD (stat + open), the renames of
 *     a PUT and a DELETE are serialised; the bytes then stream without
 *     the lock.  DELETE leaves empty directories (they hold no keys)
 *     instead of removing them under a PUT renaming into one.  Also: a
 *     ranged GET of an empty object answers 416 InvalidRange as S3 does
 *     (s3rver promises one byte and sends none; the client then waits
 *     for it until the connection times out).
 *
 *  5. vhostSignatureFix: for a virtual-host request s3rver verifies the
 *     SigV4 signature over "/BUCKET/KEY", but the canonical URI that S3
 *     (and botocore) sign is the path as sent, "/KEY".  The string to
 *     sign is computed with the bucket taken off again.
 *
 * B. Emulation: AWS behaviour s3rver lacks.
 *
 *  6. tempCredentialsShim: temporary credentials need a session token
 *     (see HF_S3RVER_TEMP_* above); s3rver has no notion of tokens.
 *  6b. rotatingCredentialsShim (HF_S3RVER_CREDS_DIR): a key id that
 *     DIR/creds/KEYID.json names is registered with its secret on first
 *     use; its requests must carry and sign that token (else 403
 *     InvalidToken) and arrive before "expires" (else 400 ExpiredToken,
 *     as S3 answers once STS credentials have expired).
 *
 * E. EMULATION of S3 Express One Zone (directory buckets), on when the
 *    environment has HF_S3RVER_EXPRESS=1.  AWS itself was not reachable
 *    where this was written: this follows AWS's API reference (checked
 *    against botocore's service model and endpoint rule set) and is
 *    what hyperfile's Express support is tested against, no more.
 *
 * 10. expressShim: every request must be virtual-host style (BUCKET.
 *     s3.localhost), signed for service "s3express"; GET /?session on
 *     the bucket (CreateSession, signed with an account key) answers
 *     <CreateSessionResult><Credentials> with a new key pair and token
 *     that expire after HF_S3RVER_EXPRESS_TTL seconds (default 300, as
 *     AWS); every other request must be signed with such a key pair and
 *     carry its token in a signed x-amz-s3session-token header (else
 *     403 AccessDenied / InvalidToken), and a session past its expiry
 *     gets 400 ExpiredToken.  ListObjectsV2 refuses start-after and a
 *     prefix that does not end in '/' (400 InvalidArgument), and
 *     delimiters other than '/'.
 * 11. unorderedListing (replaces shim 3): keys are listed in an order
 *     that is not the keys' (sorted by an MD5 of a per-server salt and
 *     the key), at most HF_S3RVER_EXPRESS_PAGE keys a page (default
 *     1000), and continuation tokens continue in that order.
 *     HF_S3RVER_EXPRESS_REFUSE=N also refuses the first request of
 *     each of the first N sessions with 400 ExpiredToken although it
 *     has not expired (a server that drops sessions early: the client
 *     must retry with a new one).
 *
 * C. Fault injection for tests, triggered only by key names that
 *    contain the path segment named here (ordinary keys never do):
 *
 *  7. "hf-shim-lost-reply-ours/": the first conditional write of each
 *     such key is stored, then the connection is dropped before the
 *     reply (the write landed, its answer was lost).
 *     "hf-shim-lost-reply-theirs/": the first conditional write of each
 *     such key is NOT stored; instead another writer's object
 *     (THEIRS_CONTENT) is, and the connection is dropped.
 *  8. "hf-shim-status-503/": every request answers 503 SlowDown.
 *     "hf-shim-status-500-once/": the first request for each such key
 *     answers 500 InternalError, later ones are served.
 *  9. "hf-shim-complete-ignores-inm/" (or every key when the
 *     environment has HF_S3RVER_COMPLETE_IGNORES_INM=1): a
 *     CompleteMultipartUpload ignores "If-None-Match: *" and replaces
 *     the object, as Ceph RGW 16.2 does (it honours the condition on a
 *     plain PUT only).  Fencing must not depend on it.
 * 10. "hf-shim-stall-body/": the first plain PUT of each such key KEY
 *     stalls: the server reads none of its body (the client's upload
 *     stops once the socket buffers are full), stores the object
 *     KEY.stalled (empty) to say so, and waits until an object KEY.go
 *     exists; then s3rver serves the PUT as usual.  A writer stalled
 *     mid-upload, deterministically (s3-errtest cancel: the client
 *     calls the PUT off meanwhile, and what s3rver then holds under KEY
 *     is checked).  Runs inside shim 1's per-key lock.
 * =====================================================================
 */
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const S3rver = require('@20minutes/s3rver');
const AWSAccount = require('@20minutes/s3rver/lib/models/account');
const S3Object = require('@20minutes/s3rver/lib/models/object');
const bucketCtrl = require('@20minutes/s3rver/lib/controllers/bucket');
const FilesystemStore = require('@20minutes/s3rver/lib/stores/filesystem');
const v4 = require('@20minutes/s3rver/lib/signature/v4');
const { ensureDir } = require('@20minutes/s3rver/lib/utils');

const [dir, portArg, bucket, tlsKey, tlsCert] = process.argv.slice(2);
if (!dir || portArg === undefined || !bucket ||
    (tlsKey !== undefined && tlsCert === undefined)) {
  process.stderr.write('usage: server.js DATADIR PORT BUCKET ' +
                       '[TLS-KEY TLS-CERT]\n');
  process.exit(2);
}
const env = process.env;
const reqlog = env.HF_S3RVER_REQLOG;
const THEIRS_CONTENT = 'written by another writer (hyperfile test shim 7)';

if (env.HF_S3RVER_KEY && env.HF_S3RVER_SECRET)
  AWSAccount.DUMMY_ACCOUNT.createKeyPair(env.HF_S3RVER_KEY,
                                         env.HF_S3RVER_SECRET);
if (env.HF_S3RVER_TEMP_KEY && env.HF_S3RVER_TEMP_SECRET &&
    env.HF_S3RVER_TEMP_TOKEN)
  AWSAccount.DUMMY_ACCOUNT.createKeyPair(env.HF_S3RVER_TEMP_KEY,
                                         env.HF_S3RVER_TEMP_SECRET);

/* A promise-chain mutex: run fn after every earlier holder of the same
 * chain has finished. */
function makeLock() {
  let tail = Promise.resolve();
  return function withLock(fn) {
    const run = tail.then(() => fn());
    tail = run.catch(() => {});
    return run;
  };
}

/* A table of per-key promise-chain mutexes: withKeyLock(id, fn) runs
 * fn after every earlier holder of id has finished. */
function makeKeyLocks() {
  const locks = new Map();
  return function withKeyLock(id, fn) {
    let l = locks.get(id);
    if (!l) {
      l = { lock: makeLock(), users: 0 };
      locks.set(id, l);
    }
    l.users++;
    return l.lock(fn).finally(() => {
      if (--l.users === 0) locks.delete(id);
    });
  };
}

/* Shim 1's locks (held across the whole conditional write). */
const withKeyLock = makeKeyLocks();

/* The same virtual-host pattern s3rver's vhost middleware uses, with
 * serviceEndpoint "localhost". */
const VHOST_RE = /^(?:(.+)\.)?s3(-website)?([-.].+)?\.localhost$/;

/* {bucket, key} of an object request, path-style or virtual-host, or
 * null for bucket and service requests. */
function objectOf(ctx) {
  const vm = VHOST_RE.exec(ctx.hostname);
  let b, rest;
  if (vm && vm[1]) {
    b = vm[1];
    rest = ctx.path.slice(1);
  } else {
    const m = /^\/([^/]+)\/(.+)$/.exec(ctx.path);
    if (!m) return null;
    b = m[1];
    rest = m[2];
  }
  if (!rest) return null;
  try {
    return { bucket: b, key: decodeURIComponent(rest) };
  } catch (e) {
    return null;
  }
}

function s3error(ctx, status, code, message, extra = '') {
  ctx.status = status;
  ctx.type = 'application/xml';
  ctx.body =
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
    `<Error><Code>${code}</Code><Message>${message}</Message>${extra}` +
    '</Error>';
}

/* Authorization header fields (no signature). */
function authFields(ctx) {
  const a = ctx.get('authorization');
  const cred = /Credential=([^/,\s]+)\/([^,\s]+)/.exec(a) || [];
  const signed = /SignedHeaders=([^,\s]+)/.exec(a) || [];
  return { ak: cred[1] || '-', scope: cred[2] || '-',
           signed: signed[1] || '-' };
}

/* HF_S3RVER_REQLOG: one line per request, no secrets. */
async function requestLog(ctx, next) {
  const f = authFields(ctx);
  fs.appendFileSync(reqlog,
    `${ctx.method} ${ctx.host} ${ctx.originalUrl} ak=${f.ak} ` +
    `scope=${f.scope} signed=${f.signed} ` +
    `token=${ctx.get('x-amz-security-token') ? 'yes' : 'no'} ` +
    `s3session=${ctx.get('x-amz-s3session-token') ? 'yes' : 'no'} ` +
    `sse=${ctx.get('x-amz-server-side-encryption') || '-'} ` +
    `kms=${ctx.get('x-amz-server-side-encryption-aws-kms-key-id') ? 'yes' : 'no'} ` +
    `class=${ctx.get('x-amz-storage-class') || '-'}\n`);
  return next();
}

/* HYPERFILE TEST SHIM 6b: rotating temporary credentials. */
const rotatingKnown = new Set();
async function rotatingCredentialsShim(ctx, next) {
  const f = authFields(ctx);
  if (!/^[A-Z0-9]+$/.test(f.ak)) return next();
  let c;
  try {
    c = JSON.parse(fs.readFileSync(
      path.join(env.HF_S3RVER_CREDS_DIR, 'creds', f.ak + '.json'), 'utf8'));
  } catch (e) {
    return next();
  }
  if (!rotatingKnown.has(f.ak)) {
    AWSAccount.DUMMY_ACCOUNT.createKeyPair(f.ak, c.secret);
    rotatingKnown.add(f.ak);
  }
  if (ctx.get('x-amz-security-token') !== c.token ||
      !f.signed.split(';').includes('x-amz-security-token')) {
    s3error(ctx, 403, 'InvalidToken',
            'The provided token is malformed or otherwise invalid ' +
            '(hyperfile test shim 6b)');
    return;
  }
  if (Date.now() / 1000 >= c.expires) {
    if (reqlog) fs.appendFileSync(reqlog, `EXPIRED ak=${f.ak}\n`);
    s3error(ctx, 400, 'ExpiredToken',
            'The provided token has expired. (hyperfile test shim 6b)');
    return;
  }
  return next();
}

/* EMULATION 10: S3 Express One Zone sessions and request rules. */
const express = env.HF_S3RVER_EXPRESS === '1';
const expressTtl = Number(env.HF_S3RVER_EXPRESS_TTL || 300);
const expressPage = Number(env.HF_S3RVER_EXPRESS_PAGE || 1000);
const expressRefuse = Number(env.HF_S3RVER_EXPRESS_REFUSE || 0);
const expressSalt = crypto.randomBytes(8).toString('hex');
const sessions = new Map();     /* access key id -> {token, expires, refuse} */
const expressStats = { sessions: 0, expired: 0, refused: 0 };

function expressError(ctx, status, code, why) {
  s3error(ctx, status, code,
          `${why} (hyperfile S3 Express emulation, shim 10)`);
}

async function expressShim(ctx, next) {
  const vm = VHOST_RE.exec(ctx.hostname);
  if (!vm || !vm[1] || vm[1] !== bucket)
    return expressError(ctx, 400, 'InvalidRequest',
                        'directory buckets take virtual-host requests only');
  const f = authFields(ctx);
  const scope = f.scope.split('/');
  if (scope[2] !== 's3express')
    return expressError(ctx, 400, 'AuthorizationHeaderMalformed',
                        `the credential scope names service '${scope[2]}', ` +
                        'not s3express');
  const createSession = ctx.method === 'GET' && ctx.path === '/' &&
    ctx.query.session !== undefined;
  const ss = sessions.get(f.ak);
  if (createSession) {
    if (ss)
      return expressError(ctx, 403, 'AccessDenied',
                          'CreateSession takes an account key, not a ' +
                          'session\'s');
    return next();    /* s3rver checks the signature; getBucket answers */
  }
  if (!ss)
    return expressError(ctx, 403, 'AccessDenied',
                        'zonal requests need session credentials from ' +
                        'CreateSession');
  if (ctx.get('x-amz-s3session-token') !== ss.token ||
      !f.signed.split(';').includes('x-amz-s3session-token'))
    return expressError(ctx, 403, 'InvalidToken',
                        'missing, wrong or unsigned x-amz-s3session-token');
  if (Date.now() >= ss.expires) {
    expressStats.expired++;
    return expressError(ctx, 400, 'ExpiredToken',
                        'The provided token has expired.');
  }
  if (ss.refuse > 0) {
    ss.refuse--;
    expressStats.refused++;
    return expressError(ctx, 400, 'ExpiredToken',
                        'The provided token has expired. (refused early: ' +
                        'HF_S3RVER_EXPRESS_REFUSE)');
  }
  if (ctx.method === 'GET' && ctx.path === '/' &&
      ctx.query['list-type'] === '2') {
    if (ctx.query['start-after'] !== undefined)
      return expressError(ctx, 400, 'InvalidArgument',
                          'StartAfter is not supported for directory buckets');
    const p = ctx.query.prefix || '';
    if (p && !p.endsWith('/'))
      return expressError(ctx, 400, 'InvalidArgument',
                          'directory buckets take only prefixes that end ' +
                          'in /');
    if (ctx.query.delimiter !== undefined && ctx.query.delimiter !== '/')
      return expressError(ctx, 400, 'InvalidArgument',
                          '/ is the only delimiter of directory buckets');
  }
  return next();
}

/* CreateSession itself, after s3rver verified the signature. */
function createSession(ctx) {
  const ak = 'HFXS' + crypto.randomBytes(8).toString('hex').toUpperCase();
  const secret = crypto.randomBytes(30).toString('base64');
  const token = crypto.randomBytes(48).toString('base64');
  const expires = Date.now() + expressTtl * 1000;
  AWSAccount.DUMMY_ACCOUNT.createKeyPair(ak, secret);
  sessions.set(ak, { token, expires,
                    refuse: expressStats.sessions < expressRefuse ? 1 : 0 });
  expressStats.sessions++;
  ctx.status = 200;
  ctx.type = 'application/xml';
  ctx.body =
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
    '<CreateSessionResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' +
    `<Credentials><SessionToken>${token}</SessionToken>` +
    `<SecretAccessKey>${secret}</SecretAccessKey>` +
    `<AccessKeyId>${ak}</AccessKeyId>` +
    `<Expiration>${new Date(expires).toISOString()}</Expiration>` +
    '</Credentials></CreateSessionResult>';
}

/* HYPERFILE TEST SHIM 6: temporary credentials need their token. */
async function tempCredentialsShim(ctx, next) {
  const f = authFields(ctx);
  if (!env.HF_S3RVER_TEMP_KEY || f.ak !== env.HF_S3RVER_TEMP_KEY)
    return next();
  if (ctx.get('x-amz-security-token') !== env.HF_S3RVER_TEMP_TOKEN ||
      !f.signed.split(';').includes('x-amz-security-token')) {
    s3error(ctx, 403, 'InvalidToken',
            'The provided token is malformed or otherwise invalid ' +
            '(hyperfile test shim 6: missing, wrong or unsigned ' +
            'x-amz-security-token)');
    return;
  }
  return next();
}

/* HYPERFILE TEST SHIM 8: server errors on demand. */
const failedOnce = new Set();
async function statusShim(ctx, next) {
  const o = objectOf(ctx);
  if (!o) return next();
  if (o.key.includes('hf-shim-status-503/')) {
    s3error(ctx, 503, 'SlowDown',
            'Please reduce your request rate (hyperfile test shim 8)');
    return;
  }
  const id = ctx.method + ' ' + o.bucket + '/' + o.key;
  if (o.key.includes('hf-shim-status-500-once/') && !failedOnce.has(id)) {
    failedOnce.add(id);
    s3error(ctx, 500, 'InternalError',
            'We encountered an internal error (hyperfile test shim 8)');
    return;
  }
  return next();
}

/* HYPERFILE TEST SHIM 7: lost replies of conditional writes.  Runs
 * inside shim 1's per-key lock (it comes after it in the chain). */
const lostOnce = new Set();
async function lostReplyShim(ctx, next) {
  const o = objectOf(ctx);
  const conditional = ctx.get('if-none-match') === '*' &&
    ((ctx.method === 'PUT' && ctx.query.partNumber === undefined) ||
     (ctx.method === 'POST' && ctx.query.uploadId !== undefined));
  if (!o || !conditional) return next();
  const ours = o.key.includes('hf-shim-lost-reply-ours/');
  const theirs = o.key.includes('hf-shim-lost-reply-theirs/');
  const id = o.bucket + '/' + o.key;
  if ((!ours && !theirs) || lostOnce.has(id)) return next();
  lostOnce.add(id);
  if (ours)
    await next();
  else
    await ctx.app.store.putObject(
      new S3Object(o.bucket, o.key, Buffer.from(THEIRS_CONTENT), {}));
  ctx.respond = false;
  ctx.req.socket.destroy();
}

/* HYPERFILE TEST SHIM 10: a stalled upload, until KEY.go exists. */
const stalledOnce = new Set();
async function stallBodyShim(ctx, next) {
  const o = objectOf(ctx);
  if (!o || ctx.method !== 'PUT' || ctx.query.partNumber !== undefined ||
      !o.key.includes('hf-shim-stall-body/') ||
      o.key.endsWith('.stalled') || o.key.endsWith('.go'))
    return next();
  const id = o.bucket + '/' + o.key;
  if (stalledOnce.has(id)) return next();
  stalledOnce.add(id);
  /* Nothing reads ctx.req until next(): Node stops reading the socket
   * once its small buffer is full. */
  await ctx.app.store.putObject(
    new S3Object(o.bucket, o.key + '.stalled', Buffer.alloc(0), {}));
  for (let i = 0; i < 1200; i++) {           /* at most 60 s */
    if (await ctx.app.store.existsObject(o.bucket, o.key + '.go')) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return next();
}

/* HYPERFILE TEST SHIM 1: If-None-Match: * for PUT and multipart Complete. */
async function ifNoneMatchShim(ctx, next) {
  const inm = ctx.get('if-none-match');
  const q = ctx.query;
  const isPut = ctx.method === 'PUT' && q.partNumber === undefined;
  const isComplete = ctx.method === 'POST' && q.uploadId !== undefined;
  if (inm !== '*' || !(isPut || isComplete)) return next();
  const o = objectOf(ctx);
  if (!o) return next();
  /* Shim 9: like RGW 16.2, no condition on a multipart Complete. */
  if (isComplete && (env.HF_S3RVER_COMPLETE_IGNORES_INM === '1' ||
                     o.key.includes('hf-shim-complete-ignores-inm/')))
    return next();

  return withKeyLock(o.bucket + '/' + o.key, async () => {
    if (await ctx.app.store.existsObject(o.bucket, o.key)) {
      s3error(ctx, 412, 'PreconditionFailed',
              'At least one of the pre-conditions you specified did not ' +
              'hold (hyperfile test shim 1)',
              '<Condition>If-None-Match</Condition>');
      return;
    }
    await next();
  });
}

/* HYPERFILE TEST SHIM 2: s3rver escapes keys twice in list answers. */
async function listKeyEscapeShim(ctx, next) {
  await next();
  if (ctx.method !== 'GET' || typeof ctx.body !== 'string' ||
      !ctx.body.includes('<ListBucketResult')) return;
  ctx.body = ctx.body.replace(/<Key>([^<]*)<\/Key>/g,
    (all, k) => '<Key>' + k.replace(/&amp;/g, '&') + '</Key>');
}

/* Every file under dir, descending only into directories for which
 * recurse(path) is true.  Entries removed while we walk (a concurrent
 * DELETE prunes empty directories) are skipped, not errors. */
function* walkFiles(dir, recurse) {
  let names;
  try {
    names = fs.readdirSync(dir);
  } catch (err) {
    if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return;
    throw err;
  }
  for (const name of names) {
    const p = path.posix.join(dir, name);
    let st;
    try {
      st = fs.statSync(p);
    } catch (err) {
      if (err.code === 'ENOENT') continue;
      throw err;
    }
    if (!st.isDirectory()) yield p;
    else if (recurse(p)) yield* walkFiles(p, recurse);
  }
}

/* HYPERFILE TEST SHIM 3: list in byte order (replaces listObjects). */
function byteOrderListing(store) {
  const OBJECT_SUFFIX = '._S3rver_object';
  const byteCmp = (a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b));

  store.listObjects = async function (bucketName, options) {
    const { delimiter = '', startAfter = '', prefix = '' } = options;
    let maxKeys = options.maxKeys === undefined ? Infinity
      : options.maxKeys;
    if (express) maxKeys = Math.min(maxKeys, expressPage);
    const bucketPath = this.getBucketPath(bucketName);
    const prefixPath = bucketPath + '/' +
      FilesystemStore.encodeKeyPath(prefix);
    /* Only directories that can hold keys with the prefix. */
    const it = walkFiles(bucketPath, (dirPath) =>
      dirPath.startsWith(prefixPath) || prefixPath.startsWith(dirPath + '/'));

    /* EMULATION 11 (express): an order that is not the keys', by an
     * MD5 of a salt and the key; a continuation token's key (startAfter:
     * never the client's, shim 10 refuses start-after) continues in it. */
    const rank = (k) => express
      ? crypto.createHash('md5').update(expressSalt).update(k)
        .digest('hex') + '\0' + k
      : k;
    const after = startAfter ? rank(startAfter) : null;
    let keys = [];
    for (const keyPath of it) {
      if (!keyPath.endsWith(OBJECT_SUFFIX)) continue;
      const key = FilesystemStore.decodeKeyPath(
        keyPath.slice(bucketPath.length + 1, -OBJECT_SUFFIX.length));
      if (!key.startsWith(prefix)) continue;
      const r = rank(key);
      if (after === null || byteCmp(r, after) > 0) keys.push([r, key]);
    }
    keys.sort((a, b) => byteCmp(a[0], b[0]));
    keys = keys.map(([, k]) => k);

    /* Roll keys up into common prefixes, in order, up to maxKeys
     * entries (S3 counts both against max-keys). */
    const page = [];
    const commonPrefixes = [];
    let isTruncated = false;
    for (const key of keys) {
      let cp = null;
      if (delimiter) {
        const i = key.slice(prefix.length).indexOf(delimiter);
        if (i !== -1) cp = key.slice(0, prefix.length + i + delimiter.length);
      }
      if (cp !== null && commonPrefixes[commonPrefixes.length - 1] === cp)
        continue;
      if (page.length + commonPrefixes.length >= maxKeys) {
        isTruncated = true;
        break;
      }
      if (cp !== null) commonPrefixes.push(cp);
      else page.push(key);
    }

    const metadata = await Promise.all(page.map((key) =>
      this.getMetadata(bucketName, key).catch((err) => {
        if (err.code === 'ENOENT') return undefined;   /* deleted since */
        throw err;
      })));
    return {
      objects: page
        .map((key, i) => [key, metadata[i]])
        .filter(([, m]) => m !== undefined)
        .map(([key, m]) => new S3Object(bucketName, key, null, m)),
      commonPrefixes,
      isTruncated,
    };
  };
}

/* HYPERFILE TEST SHIM 5: the canonical URI of virtual-host requests. */
function vhostSignatureFix() {
  const origStringToSign = v4.getStringToSign;
  v4.getStringToSign = function (canonicalRequest, signature) {
    const host = String(canonicalRequest.headers.host || '')
      .replace(/:\d+$/, '');
    const m = VHOST_RE.exec(host);
    const bucketPart = m && m[1] ? '/' + encodeURIComponent(m[1]) : null;
    let cr = canonicalRequest;
    if (bucketPart && (cr.uri === bucketPart ||
                       cr.uri.startsWith(bucketPart + '/')))
      cr = { ...cr, uri: cr.uri.slice(bucketPart.length) || '/' };
    return origStringToSign.call(this, cr, signature);
  };
}

/* HYPERFILE TEST SHIM 4: atomic object replacement. */
function atomicObjects(store, stagingDir) {
  /* Per object; shim 1's locks are separate (it holds one while the
   * write it admitted reaches putObject). */
  const withObjectLock = makeKeyLocks();
  const orig = {
    getMetadata: store.getMetadata,
    getObject: store.getObject,
    putMetadata: store.putMetadata,
  };
  let seq = 0;

  fs.mkdirSync(stagingDir, { recursive: true });

  /* Unlocked view of the store for the original methods, which call
   * this.getMetadata themselves while the lock is held. */
  const unlocked = Object.create(store);
  unlocked.getMetadata = orig.getMetadata;

  store.getMetadata = function (b, k) {
    return withObjectLock(b + '/' + k, () =>
      orig.getMetadata.call(unlocked, b, k));
  };
  /* Stat and open under the lock; the open stream keeps reading the
   * version it opened even when a PUT renames a new one over it. */
  store.getObject = async function (b, k, options) {
    const object = await withObjectLock(b + '/' + k, () =>
      orig.getObject.call(unlocked, b, k, options));
    /* s3rver serves a range of an empty object as 206 "bytes 0-0/0"
     * with a Content-Length of 1 and no body, so the client waits for
     * the byte until the connection times out.  S3 answers 416
     * InvalidRange, which s3rver's controller sends for a ranged object
     * without content. */
    if (object && object.range && object.size === 0 && object.content) {
      object.content.destroy();
      object.content = null;
    }
    return object;
  };
  /* s3rver's deleteObject also removes directories it leaves empty,
   * which races with a PUT renaming a new object into one of them (and
   * lists the directory after every delete: quadratic).  Empty
   * directories hold no keys, so they are simply left. */
  store.deleteObject = function (b, k) {
    return withObjectLock(b + '/' + k, async () => {
      for (const r of ['object', 'object.md5', 'metadata.json'])
        await fs.promises.unlink(this.getResourcePath(b, k, r))
          .catch((err) => { if (err.code !== 'ENOENT') throw err; });
    });
  };

  store.putObject = async function (object) {
    const id = `${process.pid}-${++seq}`;
    const staged = (resource) => path.join(stagingDir, `${id}.${resource}`);
    /* putMetadata writes through getResourcePath: point it at staging. */
    const stager = Object.create(store);
    stager.getResourcePath = (b, k, resource) => staged(resource);
    let size, md5;

    try {
      if (Buffer.isBuffer(object.content)) {
        /* (s3rver's putContent does not wait for a Buffer's write.) */
        await fs.promises.writeFile(staged('object'), object.content);
        size = object.content.length;
        md5 = crypto.createHash('md5').update(object.content).digest('hex');
      } else {
        [size, md5] = await this.putContent(staged('object'),
                                            object.content);
      }
      await orig.putMetadata.call(stager, object.bucket, object.key,
                                  object.metadata, md5);
      const final = (r) => this.getResourcePath(object.bucket, object.key, r);
      await ensureDir(path.dirname(final('object')));
      await withObjectLock(object.bucket + '/' + object.key, async () => {
        /* The object last: once it is there, so are its md5 and
         * metadata. */
        for (const r of ['object.md5', 'metadata.json', 'object'])
          await fs.promises.rename(staged(r), final(r));
      });
    } catch (err) {
      for (const r of ['object', 'object.md5', 'metadata.json'])
        await fs.promises.unlink(staged(r)).catch(() => {});
      throw err;
    }
    return { size, md5 };
  };
}

/* HYPERFILE BENCH SHIM: request and byte accounting by kind. */
const stats = { requests: {}, bytes_in: {}, bytes_out: {} };

function requestKind(ctx) {
  const q = ctx.query;
  const m = ctx.method;
  /* Path-style /BUCKET/KEY, or virtual-host /KEY. */
  const vhost = !/^(127\.0\.0\.1|localhost|s3\.localhost)(:|$)/.test(ctx.get('host'));
  const hasKey = vhost ? ctx.path.length > 1 : /^\/[^/]+\/.+/.test(ctx.path);
  if (m === 'PUT' && hasKey)
    return q.partNumber !== undefined ? 'UploadPart' : 'PutObject';
  if (m === 'POST' && q.uploads !== undefined) return 'CreateMultipartUpload';
  if (m === 'POST' && q.uploadId !== undefined)
    return 'CompleteMultipartUpload';
  if (m === 'POST' && q.delete !== undefined) return 'DeleteObjects';
  if (m === 'GET' && !hasKey && q.session !== undefined)
    return 'CreateSession';
  if (m === 'GET' && hasKey) return 'GetObject';
  if (m === 'GET') return 'ListObjects';
  if (m === 'HEAD' && hasKey) return 'HeadObject';
  if (m === 'DELETE' && hasKey) return 'DeleteObject';
  return 'Other';
}

async function accountingShim(ctx, next) {
  if (ctx.method === 'GET' && ctx.path === '/__hyperfile_stats') {
    ctx.type = 'application/json';
    ctx.body = JSON.stringify(express ? { ...stats, express: expressStats }
                              : stats);
    return;
  }
  const kind = requestKind(ctx);
  const add = (what, n) => {
    stats[what][kind] = (stats[what][kind] || 0) + n;
  };
  add('requests', 1);
  add('bytes_in', Number(ctx.get('content-length')) || 0);
  try {
    await next();
  } finally {
    /* Koa sets ctx.length from the body or the Content-Length header. */
    add('bytes_out', Number(ctx.length) || 0);
  }
}


async function main() {
  const server = new S3rver({
    address: '127.0.0.1',
    port: Number(portArg),
    silent: true,
    directory: dir,
    configureBuckets: [{ name: bucket }],
    /* BUCKET.s3.localhost is virtual-host style; 127.0.0.1, localhost
     * and s3.localhost are path-style. */
    vhostBuckets: true,
    serviceEndpoint: 'localhost',
    ...(tlsKey ? { key: fs.readFileSync(tlsKey),
                   cert: fs.readFileSync(tlsCert) } : {}),
  });
  if (express) {
    if (!/^[a-z0-9-]+--[a-z0-9-]+--x-s3$/.test(bucket))
      throw new Error(`HF_S3RVER_EXPRESS: bucket ${bucket} is not named ` +
                      'like a directory bucket, NAME--ZONEID--x-s3');
    const getBucket = bucketCtrl.getBucket;
    bucketCtrl.getBucket = function (ctx) {
      return ctx.query.session !== undefined ? createSession(ctx)
        : getBucket.call(this, ctx);
    };
  }
  byteOrderListing(server.store);
  vhostSignatureFix();
  atomicObjects(server.store, path.resolve(dir) + '.hf-staging');

  /* In front of s3rver's own middleware (Koa composes at listen time),
   * in this order. */
  const shims = [tempCredentialsShim, statusShim, ifNoneMatchShim,
                 lostReplyShim, stallBodyShim, listKeyEscapeShim];
  if (env.HF_S3RVER_CREDS_DIR) shims.unshift(rotatingCredentialsShim);
  if (express) shims.unshift(expressShim);
  if (reqlog) shims.unshift(requestLog);
  shims.unshift(accountingShim);        /* counts everything, bench/run */
  server.middleware.unshift(...shims);
  const addr = await server.run();
  process.stdout.write('PORT ' + addr.port + '\n');
}

main().catch((err) => {
  process.stderr.write('s3rver: ' + (err && err.stack ? err.stack : err) +
                       '\n');
  process.exit(1);
});
