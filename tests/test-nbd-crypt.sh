#!/usr/bin/env bash
# Client-side encryption end to end (hyperfile-format(5), ENCRYPTION),
# through the plugin and the admin command, on the directory store and
# on the S3 test server: a volume created with a key holds no plaintext
# in the store (a marker the client wrote is nowhere); without its key,
# with a wrong one or with the wrong kind, the open fails with a line
# naming the volume and writes nothing; the right key reads back every
# byte, after a SIGKILL too (flushed writes kept); fsck, export, a
# snapshot read with at=, gc and rekey work; the old key stops working
# after rekey.  On the directory store also: a clone of an encrypted
# volume reads its parent's data, a flipped byte in a segment is EIO
# naming the object, and a segment copied from another volume (same key
# file, so only the volume binding differs) is refused.
set -e
. "$abs_srcdir/nbd-functions.sh"
requires nbdkit --version
requires nbdsh --version
requires python3 -c 'import nbd'
requires openssl version
hf_tmpdir

fail ()
{
  echo "$0: FAIL: $*" >&2
  exit 1
}

# Cheap passphrase KDF for the test (the descriptor records it).
export HF_CRYPT_SCRYPT_LOG2N=10
openssl rand -hex 32 > "$tmp/k1"
openssl rand -hex 32 > "$tmp/k2"
chmod 600 "$tmp/k1" "$tmp/k2"
echo "pass phrase one" > "$tmp/pw"
MARK="HF-PLAINTEXT-MARKER-4f1c"

cat > "$tmp/write.py" <<'PY'
import sys, nbd, random
uri, model_path, mark = sys.argv[1:4]
h = nbd.NBD()
h.connect_uri(uri)
bs = 4096
rnd = random.Random(7)
model = bytearray(h.get_size())
# Text that compresses and a marker the store must never show.
for i in range(300):
    blk = (mark + " block %d " % i).encode() * (bs // 48)
    blk = blk[:bs].ljust(bs, b".")
    off = rnd.randrange(0, len(model) // bs) * bs
    h.pwrite(blk, off)
    model[off:off + bs] = blk
data = bytes(rnd.getrandbits(8) for _ in range(200000))
h.pwrite(data, 1000003)
model[1000003:1000003 + len(data)] = data
h.flush()
open(model_path, "wb").write(model)
print("ok write")
PY

# The store's files, for "nothing written".
store_state ()
{
  find "$1" -type f -printf '%P %s\n' | sort | md5sum
}

# expect_refused DIR PATTERN PARAMS...: the plugin must not start, its
# log must say PATTERN, and DIR must be unchanged.
expect_refused ()
{
  local dir="$1" pat="$2" before
  shift 2
  before=$(store_state "$dir")
  : > "$log"
  if hf_start "$@" 2>/dev/null; then
    hf_stop TERM
    fail "started with $*"
  fi
  grep -q -- "$pat" "$log" || { cat "$log"; fail "no '$pat' in the log"; }
  [ "$(store_state "$dir")" = "$before" ] || fail "refused open wrote"
}

run_store ()
{
  local url="$1" sdir="$2"; shift 2
  local -a T=("$HYPERFILE" "$@")   # tool with the store options

  hf_start "$url" size=8M segment-size=256K key-file="$tmp/k1" \
    ${S3OPTS[@]+"${S3OPTS[@]}"}
  python3 "$tmp/write.py" "$uri" "$tmp/model" "$MARK"
  hf_stop TERM
  if [ -d "$sdir" ] && grep -r -q -a -- "$MARK" "$sdir"; then
    fail "plaintext marker found in the store"
  fi

  expect_refused "$sdir" "is encrypted: give its key" "$url" \
    ${S3OPTS[@]+"${S3OPTS[@]}"}
  expect_refused "$sdir" "wrong key for volume" "$url" key-file="$tmp/k2" \
    ${S3OPTS[@]+"${S3OPTS[@]}"}
  expect_refused "$sdir" "encrypted with a key file" "$url" key=+"$tmp/pw" \
    ${S3OPTS[@]+"${S3OPTS[@]}"}

  # A snapshot, then more writes and a SIGKILL with the log on.
  "${T[@]}" snapshot create "$url" s1 --key-file "$tmp/k1"
  cp "$tmp/model" "$tmp/model-s1"
  hf_start "$url" key-file="$tmp/k1" wal="$tmp/wal" \
    ${S3OPTS[@]+"${S3OPTS[@]}"}
  python3 "$tmp/write.py" "$uri" "$tmp/model" "$MARK-2"
  hf_stop KILL
  hf_start "$url" key-file="$tmp/k1" wal="$tmp/wal" \
    ${S3OPTS[@]+"${S3OPTS[@]}"}
  hf_image_check "$uri" "$tmp/model"
  hf_stop TERM
  hf_start "$url" key-file="$tmp/k1" at=s1 ${S3OPTS[@]+"${S3OPTS[@]}"}
  hf_image_check "$uri" "$tmp/model-s1"
  hf_stop TERM

  # The admin command: fsck, export, gc, rekey.
  "${T[@]}" fsck "$url" --key-file "$tmp/k1"
  "${T[@]}" export "$url" "$tmp/img" --force --key-file "$tmp/k1"
  cmp "$tmp/img" "$tmp/model"
  "${T[@]}" gc "$url" --retain=0s --grace=0s --key-file "$tmp/k1"
  "${T[@]}" info "$url" --key-file "$tmp/k1" | grep -q "AES-256-GCM"
  r=0; "${T[@]}" info "$url" > "$tmp/out" 2>&1 || r=$?
  [ "$r" = 1 ] && grep -q "is encrypted" "$tmp/out" || fail "info without key"
  "${T[@]}" rekey "$url" --key-file "$tmp/k1" --new-key +"$tmp/pw"
  expect_refused "$sdir" "encrypted with a passphrase" "$url" \
    key-file="$tmp/k1" ${S3OPTS[@]+"${S3OPTS[@]}"}
  hf_start "$url" key=+"$tmp/pw" ${S3OPTS[@]+"${S3OPTS[@]}"}
  hf_image_check "$uri" "$tmp/model"
  hf_stop TERM
  "${T[@]}" fsck "$url" --key +"$tmp/pw"
  if [ -d "$sdir" ] && grep -r -q -a -- "$MARK" "$sdir"; then
    fail "plaintext marker found in the store"
  fi
}

if hf_dir_half; then
  S3OPTS=()
  run_store "$tmp/vol" "$tmp/vol"

  # A clone shares the data key, wrapped with its own key.
  "$HYPERFILE" clone "$tmp/vol@s1" "$tmp/clone" --key +"$tmp/pw"
  "$HYPERFILE" info "$tmp/clone" --key +"$tmp/pw" | grep -q "AES-256-GCM"
  hf_start "$tmp/clone" key=+"$tmp/pw"
  hf_image_check "$uri" "$tmp/model-s1"
  hf_stop TERM

  # A flipped byte in the data of a segment: EIO, naming the object.
  cp -a "$tmp/vol" "$tmp/flip"
  seg=$(ls -S "$tmp/flip/seg%/"* | head -1)
  python3 - "$seg" <<'PY'
import sys
f = open(sys.argv[1], "r+b")
f.seek(0, 2)
n = f.tell() // 2
f.seek(n); b = f.read(1); f.seek(n); f.write(bytes([b[0] ^ 1]))
PY
  : > "$log"
  hf_start "$tmp/flip" key=+"$tmp/pw"
  hf_image_check "$uri" --eio
  hf_stop TERM
  grep -q "seg/$(basename "$seg").*authentication failed" "$log" ||
    fail "the damaged object is not named"
  r=0; "$HYPERFILE" fsck "$tmp/flip" --key +"$tmp/pw" > "$tmp/out" 2>&1 ||
    r=$?
  cat "$tmp/out"
  [ "$r" = 7 ] || fail "fsck of a flipped byte: exit $r, want 7"

  # A segment of another volume under the same key file, copied over
  # one of ours with its name: refused (bound to the volume's uuid).
  "$HYPERFILE" create "$tmp/other" --size 8M --key-file "$tmp/k1"
  hf_start "$tmp/other" key-file="$tmp/k1" segment-size=256K
  python3 "$tmp/write.py" "$uri" "$tmp/model-other" "OTHER"
  hf_stop TERM
  cp -a "$tmp/vol" "$tmp/swap"
  for f in "$tmp/other/seg%/"*; do
    if [ -f "$tmp/swap/seg%/$(basename "$f")" ]; then
      cp "$f" "$tmp/swap/seg%/$(basename "$f")"
    fi
  done
  r=0; "$HYPERFILE" fsck "$tmp/swap" --key +"$tmp/pw" > "$tmp/out" 2>&1 ||
    r=$?
  cat "$tmp/out"
  [ "$r" = 7 ] || fail "fsck of a foreign segment: exit $r, want 7"
  grep -q "authentication failed" "$tmp/out" || fail "foreign segment"
fi

if hf_s3rver_start; then
  S3OPTS=(endpoint="$S3_ENDPOINT")
  rm -rf "$tmp/wal"
  run_store "s3://$S3_BUCKET/crypt" "${S3RVER_DIR:-$tmp/none}/data" \
    --endpoint "$S3_ENDPOINT"
fi
echo "$0: ok"
