#!/usr/bin/env bash
# Compressed volumes end to end (hyperfile-format(5), Compressed
# segments), through the plugin and the admin command, on the directory
# store and on the S3 test server: five volumes with the same writes
# (plain, compress=zstd, zstd's fast level -5 made by hyperfile create,
# encrypted, encrypted and compressed) read back every byte through the
# plugin and through export, fsck clean; the compressed ones take less
# than 0.7 of the store bytes of the others for text; info reports each
# level; a fast level made by the plugin is reported as such; levels out
# of range are refused with the range named; compress= that disagrees
# with the volume is refused; the
# encrypted+compressed volume survives a SIGKILL with its log (flushed
# writes kept), GC and a snapshot read with at=.  On the directory store
# also: a clone of a compressed volume, and a flipped byte inside a
# compressed frame is EIO naming the object (fsck exit 7).
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

openssl rand -hex 32 > "$tmp/k1"
chmod 600 "$tmp/k1"

cat > "$tmp/write.py" <<'PY'
import sys, nbd, random
uri, model_path, tag = sys.argv[1:4]
h = nbd.NBD()
h.connect_uri(uri)
bs = 4096
rnd = random.Random(11 + len(tag))
try:
    model = bytearray(open(model_path, "rb").read())
except FileNotFoundError:
    model = bytearray(h.get_size())
# Mostly text that compresses, some random data that does not, and
# zeros (holes).
for i in range(600):
    words = " ".join("%s-%d-%d" % (tag, i, rnd.randrange(50))
                     for _ in range(600))
    blk = words.encode()[:bs].ljust(bs, b" ")
    off = rnd.randrange(0, len(model) // bs) * bs
    h.pwrite(blk, off)
    model[off:off + bs] = blk
data = bytes(rnd.getrandbits(8) for _ in range(100000))
h.pwrite(data, 1000003)
model[1000003:1000003 + len(data)] = data
h.pwrite(bytes(3 * bs), 5 * bs)
model[5 * bs:8 * bs] = bytes(3 * bs)
h.flush()
open(model_path, "wb").write(model)
print("ok write")
PY

# Segment bytes in the store, as fsck counts them.
store_bytes ()
{
  "$HYPERFILE" "${TOOLOPTS[@]}" fsck "$@" |
    sed -n 's/.* segments (\([0-9]*\) bytes.*/\1/p'
}

# run_store BASE-URL TOOL-OPTIONS...: the four volumes under BASE-URL.
run_store ()
{
  local base="$1" cfg v
  local -A bytes
  shift
  TOOLOPTS=("$@")
  local -a T=("$HYPERFILE" "$@")

  for cfg in off zstd fast enc both; do
    v="$base-$cfg"
    rm -f "$tmp/model"
    case $cfg in
      off)  hf_start "$v" size=8M segment-size=256K compress=off \
              ${S3OPTS[@]+"${S3OPTS[@]}"} ;;
      zstd) hf_start "$v" size=8M segment-size=256K compress=zstd \
              ${S3OPTS[@]+"${S3OPTS[@]}"} ;;
      fast) "${T[@]}" create "$v" --size 8M --compress zstd:-5
            hf_start "$v" segment-size=256K compress=zstd:-5 \
              ${S3OPTS[@]+"${S3OPTS[@]}"} ;;
      enc)  "${T[@]}" create "$v" --size 8M --key-file "$tmp/k1"
            hf_start "$v" segment-size=256K key-file="$tmp/k1" \
              ${S3OPTS[@]+"${S3OPTS[@]}"} ;;
      both) "${T[@]}" create "$v" --size 8M --compress zstd:3 \
              --key-file "$tmp/k1"
            hf_start "$v" segment-size=256K key-file="$tmp/k1" \
              compress=zstd:3 ${S3OPTS[@]+"${S3OPTS[@]}"} ;;
    esac
    python3 "$tmp/write.py" "$uri" "$tmp/model" "$cfg"
    hf_stop TERM
    local -a K=()
    case $cfg in enc|both) K=(--key-file "$tmp/k1") ;; esac
    local -a PK=()
    case $cfg in enc|both) PK=(key-file="$tmp/k1") ;; esac
    hf_start "$v" "${PK[@]}" ${S3OPTS[@]+"${S3OPTS[@]}"}
    hf_image_check "$uri" "$tmp/model"
    hf_stop TERM
    "${T[@]}" fsck "$v" "${K[@]}"
    "${T[@]}" export "$v" "$tmp/img" --force "${K[@]}"
    cmp "$tmp/img" "$tmp/model"
    "${T[@]}" info "$v" "${K[@]}" > "$tmp/out"
    case $cfg in
      zstd) grep -q "compression: *zstd level 1" "$tmp/out" ||
              fail "info: no compression" ;;
      fast) grep -q "compression: *zstd level -5 " "$tmp/out" ||
              fail "info: no fast level" ;;
      both) grep -q "compression: *zstd level 3" "$tmp/out" ||
              fail "info: no compression" ;;
      *)    ! grep -q "compression" "$tmp/out" ||
              fail "info: compression on a plain volume" ;;
    esac
    bytes[$cfg]=$(store_bytes "$v" "${K[@]}")
    cp "$tmp/model" "$tmp/model-$cfg"
  done
  echo "store bytes: off ${bytes[off]} zstd ${bytes[zstd]}" \
       "fast ${bytes[fast]} enc ${bytes[enc]} both ${bytes[both]}"
  [ $(( bytes[zstd] * 10 )) -lt $(( bytes[off] * 7 )) ] ||
    fail "compressed volume not smaller: ${bytes[zstd]} vs ${bytes[off]}"
  [ $(( bytes[fast] * 10 )) -lt $(( bytes[off] * 7 )) ] ||
    fail "zstd:-5 volume not smaller: ${bytes[fast]} vs ${bytes[off]}"
  [ $(( bytes[both] * 10 )) -lt $(( bytes[enc] * 7 )) ] ||
    fail "encrypted+compressed not smaller: ${bytes[both]} vs ${bytes[enc]}"

  # compress= must agree with the volume; a bad value is refused.
  : > "$log"
  if hf_start "$base-zstd" compress=off ${S3OPTS[@]+"${S3OPTS[@]}"} \
       2>/dev/null; then
    hf_stop TERM
    fail "compress=off started on a compressed volume"
  fi
  grep -q "disagrees with the existing volume's compression (zstd:1" \
    "$log" || { cat "$log"; fail "no disagreement in the log"; }
  r=0; nbdkit -U "$(hf_usock)" "$PLUGIN" "$base-zstd" compress=lz4 --run true \
    > "$tmp/out" 2>&1 || r=$?
  [ "$r" != 0 ] && grep -q "compress=lz4: zstd, zstd:LEVEL" "$tmp/out" ||
    fail "compress=lz4 accepted"
  r=0; "${T[@]}" create "$base-bad" --size 1M --compress zstd:20 \
    > "$tmp/out" 2>&1 || r=$?
  [ "$r" = 2 ] || fail "--compress zstd:20: exit $r"
  r=0; "${T[@]}" create "$base-bad" --size 1M --compress zstd:-11 \
    > "$tmp/out" 2>&1 || r=$?
  [ "$r" = 2 ] && grep -q "zstd:-11: .*-1 to -10" "$tmp/out" ||
    { cat "$tmp/out"; fail "--compress zstd:-11: exit $r"; }
  : > "$log"
  if hf_start "$base-bad" size=1M compress=zstd:-11 \
       ${S3OPTS[@]+"${S3OPTS[@]}"} 2>/dev/null; then
    hf_stop TERM
    fail "compress=zstd:-11 accepted"
  fi
  grep -q "compress=zstd:-11: .*-1 to -10" "$log" ||
    { cat "$log"; fail "compress=zstd:-11: no range in the log"; }
  "${T[@]}" info "$base-bad" > /dev/null 2>&1 &&
    fail "a refused level made a volume"
  # A fast level chosen through the plugin; the level must match too.
  hf_start "$base-fast1" size=1M compress=zstd:-1 ${S3OPTS[@]+"${S3OPTS[@]}"}
  hf_stop TERM
  "${T[@]}" info "$base-fast1" --json > "$tmp/out"
  grep -q '"compression_level": *-1\b' "$tmp/out" ||
    { cat "$tmp/out"; fail "info --json: no level -1"; }
  : > "$log"
  if hf_start "$base-fast" compress=zstd:5 ${S3OPTS[@]+"${S3OPTS[@]}"} \
       2>/dev/null; then
    hf_stop TERM
    fail "compress=zstd:5 started on a zstd:-5 volume"
  fi
  grep -q "disagrees with the existing volume's compression (zstd:-5" \
    "$log" || { cat "$log"; fail "no disagreement for zstd:-5"; }

  # Encrypted and compressed: a snapshot, more writes with the log on,
  # SIGKILL, then everything flushed is there; GC; the snapshot reads.
  v="$base-both"
  "${T[@]}" snapshot create "$v" s1 --key-file "$tmp/k1"
  cp "$tmp/model-both" "$tmp/model-s1"
  cp "$tmp/model-both" "$tmp/model"
  hf_start "$v" key-file="$tmp/k1" wal="$tmp/wal-${#S3OPTS[@]}" \
    ${S3OPTS[@]+"${S3OPTS[@]}"}
  python3 "$tmp/write.py" "$uri" "$tmp/model" "crash"
  hf_stop KILL
  hf_start "$v" key-file="$tmp/k1" wal="$tmp/wal-${#S3OPTS[@]}" \
    ${S3OPTS[@]+"${S3OPTS[@]}"}
  hf_image_check "$uri" "$tmp/model"
  hf_stop TERM
  "${T[@]}" gc "$v" --retain=0s --grace=0s --key-file "$tmp/k1"
  "${T[@]}" fsck "$v" --key-file "$tmp/k1"
  hf_start "$v" key-file="$tmp/k1" at=s1 ${S3OPTS[@]+"${S3OPTS[@]}"}
  hf_image_check "$uri" "$tmp/model-s1"
  hf_stop TERM
  hf_start "$v" key-file="$tmp/k1" ${S3OPTS[@]+"${S3OPTS[@]}"}
  hf_image_check "$uri" "$tmp/model"
  hf_stop TERM
}

if hf_dir_half; then
  S3OPTS=()
  run_store "$tmp/vol"

  # A clone of a compressed volume compresses too and reads its parent.
  "$HYPERFILE" clone "$tmp/vol-zstd" "$tmp/clone"
  "$HYPERFILE" info "$tmp/clone" | grep -q "compression: *zstd level 1"
  cp "$tmp/model-zstd" "$tmp/model"
  hf_start "$tmp/clone"
  hf_image_check "$uri" "$tmp/model"
  python3 "$tmp/write.py" "$uri" "$tmp/model" "clone"
  hf_stop TERM
  hf_start "$tmp/clone"
  hf_image_check "$uri" "$tmp/model"
  hf_stop TERM
  "$HYPERFILE" fsck "$tmp/clone"

  # A flipped byte inside a compressed frame: EIO naming the object.
  cp -a "$tmp/vol-zstd" "$tmp/flip"
  seg=$(python3 - "$tmp/flip/seg%" <<'PY'
import sys, os, struct
d = sys.argv[1]
for name in sorted(os.listdir(d)):
    p = os.path.join(d, name)
    o = bytearray(open(p, "rb").read())
    if struct.unpack_from("<H", o, 4)[0] != 2:
        continue
    n_frames, frame_off = struct.unpack_from("<IQ", o, 196)
    data_off = struct.unpack_from("<Q", o, 104)[0]
    pos = data_off
    for i in range(n_frames):
        ln, crc, fl = struct.unpack_from("<IIH", o, frame_off + 16 * i)
        if not fl & 1:
            o[pos + ln // 2] ^= 0x10
            open(p, "wb").write(o)
            print(name)
            sys.exit(0)
        pos += ln
sys.exit("no compressed frame found")
PY
)
  : > "$log"
  hf_start "$tmp/flip"
  hf_image_check "$uri" --eio
  hf_stop TERM
  grep -q "seg/$seg: corrupt at byte offset [0-9]*: frame [0-9]* CRC" \
    "$log" || { cat "$log"; fail "the damaged frame is not named"; }
  r=0; "$HYPERFILE" fsck "$tmp/flip" > "$tmp/out" 2>&1 || r=$?
  cat "$tmp/out"
  [ "$r" = 7 ] || fail "fsck of a flipped byte: exit $r, want 7"
  grep -q "frame [0-9]* CRC mismatch" "$tmp/out" || fail "fsck: no frame"
fi

if hf_s3rver_start; then
  S3OPTS=(endpoint="$S3_ENDPOINT")
  run_store "s3://$S3_BUCKET/z" --endpoint "$S3_ENDPOINT"
fi
echo "$0: ok"
