/* hyperfile tests: start the S3 test server (@20minutes/s3rver).
 *
 * Usage: node --openssl-legacy-provider server.js DATADIR PORT BUCKET
 *
 * Serves a real S3 API (SigV4-verified with the fixed credentials
 * S3RVER / S3RVER; a wrong secret gets 403 SignatureDoesNotMatch) on
 * 127.0.0.1:PORT (0 = pick a free port), storing objects under DATADIR,
 * with BUCKET created.  Prints "PORT <n>" on stdout once listening, then
 * runs until killed.
 *
 * --openssl-legacy-provider: s3rver encrypts ListObjectsV2 continuation
 * tokens with single DES, which OpenSSL 3 only offers from its legacy
 * provider; without it every truncated listing answers 500.
 *
 * ---------------------------------------------------------------------
 * HYPERFILE TEST SHIM (not part of s3rver): conditional writes.
 *
 * s3rver ignores "If-None-Match: *".  hyperfile's commit protocol depends
 * on it, so the middleware below, inserted in front of s3rver's own, adds
 * it the way AWS S3 behaves:
 *   - PUT /BUCKET/KEY with If-None-Match: * (not an UploadPart) and
 *   - POST /BUCKET/KEY?uploadId=... (CompleteMultipartUpload) with
 *     If-None-Match: *
 * answer 412 PreconditionFailed (S3's XML error) when KEY exists.  The
 * check and the write are serialised per key (a promise chain), so of two
 * racing conditional writes exactly one succeeds.  Unconditional writes
 * racing a conditional one are not serialised (hyperfile never does that).
 * Only path-style requests are understood by the shim.
 *
 * A second shim (listKeyEscapeShim) undoes s3rver's double escaping of
 * keys in ListObjects answers.
 *
 * Known s3rver gaps NOT shimmed (tests must not rely on them):
 *   - overwrites are not atomic: a GET racing a PUT of the same key can
 *     see a truncated or empty object;
 *   - listing order is directory-walk order, not byte order, so with
 *     keys "p/l-before" and "p/l/x" the '-' key comes after the "l/"
 *     keys and a continuation across that boundary can skip it.
 * ---------------------------------------------------------------------
 */
'use strict';

const S3rver = require('@20minutes/s3rver');

const [dir, portArg, bucket] = process.argv.slice(2);
if (!dir || portArg === undefined || !bucket) {
  process.stderr.write('usage: server.js DATADIR PORT BUCKET\n');
  process.exit(2);
}

/* Per-key tail of the chain of conditional writes (shim). */
const keyLocks = new Map();

async function withKeyLock(id, fn) {
  const prev = keyLocks.get(id) || Promise.resolve();
  let release;
  const mine = new Promise((resolve) => {
    release = resolve;
  });
  const tail = prev.then(() => mine);
  keyLocks.set(id, tail);
  await prev;
  try {
    return await fn();
  } finally {
    release();
    if (keyLocks.get(id) === tail) keyLocks.delete(id);
  }
}

/* HYPERFILE TEST SHIM: If-None-Match: * for PUT and multipart Complete. */
async function ifNoneMatchShim(ctx, next) {
  const inm = ctx.get('if-none-match');
  const q = ctx.query;
  const isPut = ctx.method === 'PUT' && q.partNumber === undefined;
  const isComplete = ctx.method === 'POST' && q.uploadId !== undefined;
  if (inm !== '*' || !(isPut || isComplete)) return next();

  const m = /^\/([^/]+)\/(.+)$/.exec(ctx.path);
  if (!m) return next();
  const b = m[1];
  let key;
  try {
    key = decodeURIComponent(m[2]);
  } catch (e) {
    return next();
  }

  return withKeyLock(b + '/' + key, async () => {
    if (await ctx.app.store.existsObject(b, key)) {
      ctx.status = 412;
      ctx.type = 'application/xml';
      ctx.body =
        '<?xml version="1.0" encoding="UTF-8"?>\n' +
        '<Error><Code>PreconditionFailed</Code>' +
        '<Message>At least one of the pre-conditions you specified ' +
        'did not hold (hyperfile test shim)</Message>' +
        '<Condition>If-None-Match</Condition></Error>';
      return;
    }
    await next();
  });
}

/* HYPERFILE TEST SHIM: s3rver escapes keys twice in list answers
 * ("a&b" arrives as <Key>a&amp;amp;b</Key>).  Undo the outer level
 * inside <Key> elements of ListObjects answers. */
async function listKeyEscapeShim(ctx, next) {
  await next();
  if (ctx.method !== 'GET' || typeof ctx.body !== 'string' ||
      !ctx.body.includes('<ListBucketResult')) return;
  ctx.body = ctx.body.replace(/<Key>([^<]*)<\/Key>/g,
    (all, k) => '<Key>' + k.replace(/&amp;/g, '&') + '</Key>');
}

async function main() {
  const server = new S3rver({
    address: '127.0.0.1',
    port: Number(portArg),
    silent: true,
    directory: dir,
    configureBuckets: [{ name: bucket }],
    vhostBuckets: false,
  });
  /* Run before s3rver's own middleware (Koa composes at listen time). */
  server.middleware.unshift(ifNoneMatchShim, listKeyEscapeShim);
  const addr = await server.run();
  process.stdout.write('PORT ' + addr.port + '\n');
}

main().catch((err) => {
  process.stderr.write('s3rver: ' + (err && err.stack ? err.stack : err) +
                       '\n');
  process.exit(1);
});
