#!/usr/bin/env bash
# The corruption matrix: every object of a small volume on the directory
# store (several segments, two checkpoints, a snapshot, leases, the
# descriptor), damaged every way we can think of, one case at a time:
# a flipped byte in the header, the extent table, the block CRC table,
# the B+tree nodes and the data; the object truncated; deleted; swapped
# with the object of the same name of another volume.  For each case the
# volume is read whole through the plugin (nbdkit -r, nbdcopy) at the
# head and at the snapshot, and `hyperfile fsck` runs.  What must hold:
#   - a read gives exactly the intact volume's bytes, or fails (EIO) with
#     the object named in the log, or the server refuses to open it with
#     the object named; never other bytes;
#   - fsck reports damage naming the object (leases excepted: they are
#     not volume data and a missing one is normal);
#   - nothing hangs (every command runs under a timeout).
# Cases that fail today for a reason tracked elsewhere are listed in
# KNOWN_FAILURES with the issue: they are printed as KNOWN FAILURE, do
# not fail the test, and one that passes fails it (so the list is kept
# honest).  HF_MATRIX_ONLY=REGEX runs only the matching cases.
set -e
. "$abs_srcdir/nbd-functions.sh"
requires nbdkit --version
requires nbdsh --version
requires nbdcopy --version
requires python3 -c 'import nbd'
requires timeout --version
: "${HYPERFILE:?HYPERFILE must point at the hyperfile command}"
hf_tmpdir
H="$HYPERFILE"
T=60                            # seconds any one command may take
srv_pid=                        # the read server running, if any
srv_env=()                      # NAME=VALUE for it (see the shim below)
cleanup_fn '[ -n "$srv_pid" ] && kill -9 "$srv_pid" 2>/dev/null'

# CASE-ID (object class:mutation, see case_id) -> why it fails today.
# (None today: a deleted or truncated newest segment whose writer was
# killed before a renewal is caught since each commit is recorded in
# the lease.)
declare -A KNOWN_FAILURES=(
)

# build DIR SEED: the test volume.  Segments 1-4 hold data (flushed one
# by one), the snapshot "snap1" names a point, `hyperfile gc` commits a
# checkpoint, then a data segment and the checkpoint its writer leaves
# at close, and last a data segment whose writer was killed: the newest
# segment carries data that no older point has.  SEED changes every byte written (the second volume,
# whose objects are swapped in, has the same names and other contents).
build ()
{
  local dir="$1" seed="$2"
  timeout $T nbdkit -U "$(hf_usock)" "$PLUGIN" "$dir" size=1M segment-size=64K \
    --run "nbdsh -u \"\$uri\" -c '
for i in range(4):
    h.pwrite(bytes([($seed + 65 + i) % 256]) * 65536, i * 131072)
    h.flush()
'"
  timeout $T "$H" snapshot create "$dir" snap1 > /dev/null
  timeout $T "$H" gc "$dir" --retain=1000d > /dev/null
  timeout $T nbdkit -U "$(hf_usock)" "$PLUGIN" "$dir" \
    --run "nbdsh -u \"\$uri\" -c '
h.pwrite(bytes([($seed + 90) % 256]) * 8192, 4096)
h.flush()
'"
  # The newest segment: data flushed, then the server killed, so that no
  # checkpoint follows it (with wal=off a flush has committed it).
  sock="$tmp/build.sock" log="$tmp/build.log"
  hf_start "$dir"
  timeout $T nbdsh -u "$uri" -c "
h.pwrite(bytes([($seed + 89) % 256]) * 4096, 600000)
h.flush()
"
  hf_stop KILL
}

# read_vol DIR OUT LOG [PARAMS]: read the whole volume through the
# plugin (a server of its own, read-only) into OUT.  Prints refused (the
# server exited without serving), eio, hang or ok.  (Not nbdkit --run:
# when the volume fails to open in .after_fork, nbdkit 1.32 has already
# started the --run command, which then waits for ever on the socket.)
# The client starts when nbdkit has written its pidfile, which it does
# after listen(2) and before .after_fork: a connection made then waits
# for the volume to open, or sees the server exit having logged why.
# (The socket file appears at bind(2), before listen: a client started
# then was refused, and the server killed before it could say why.)
read_vol ()
{
  local dir="$1" out="$2" log="$3" r=0 pid i
  shift 3
  rm -f "$out" "$tmp/m.sock" "$tmp/m.pid"
  : > "$log"                    # both append: neither overwrites the other
  env "${srv_env[@]}" nbdkit -f -r -U "$tmp/m.sock" -P "$tmp/m.pid" \
    "$PLUGIN" "$dir" "$@" >> "$log" 2>&1 &
  pid=$!
  srv_pid=$pid
  for i in $(seq 1 $((T * 10))); do
    [ -s "$tmp/m.pid" ] && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.1
  done
  if ! [ -s "$tmp/m.pid" ] && ! kill -0 $pid 2>/dev/null; then
    wait $pid 2>/dev/null || :   # exited without serving
    srv_pid=
    echo refused
    return
  fi
  if ! [ -s "$tmp/m.pid" ]; then
    kill -9 $pid; wait $pid 2>/dev/null || :; srv_pid=
    echo hang                   # neither serving nor gone
    return
  fi
  timeout -k 5 $T nbdcopy "nbd+unix:///?socket=$tmp/m.sock" "$out" \
    >> "$log" 2>&1 || r=$?
  kill $pid 2>/dev/null || :
  for i in $(seq 1 $((T * 10))); do
    kill -0 $pid 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 $pid 2>/dev/null; then
    kill -9 $pid; wait $pid 2>/dev/null || :; srv_pid=
    echo hang; return              # the server did not stop
  fi
  wait $pid 2>/dev/null || :
  srv_pid=
  if [ "$r" -eq 124 ] || [ "$r" -eq 137 ]; then echo hang
  elif [ "$r" -eq 0 ]; then echo ok
  elif kill -0 $pid 2>/dev/null || grep -q 'error' "$log"; then echo eio
  else echo refused
  fi
}

# The on-disk file of a key ("seg/x" is DIR/seg%/x).
key_path () { echo "$1/${2//\//%/}"; }

# mutate FILE WHAT: damage FILE.  Segments are parsed for the offsets of
# their areas (hyperfile-format(5)); "-" means the area is empty.
mutate ()
{
  python3 - "$1" "$2" <<'EOF'
import os, struct, sys
path, what = sys.argv[1], sys.argv[2]
data = bytearray(open(path, 'rb').read())
def flip(off):
    if off < 0 or off >= len(data):
        print('-'); sys.exit(0)
    data[off] ^= 0x5a
    open(path, 'wb').write(data)
    print(off)
if what == 'trunc':
    os.truncate(path, len(data) // 2); print(len(data) // 2)
elif what == 'flip':
    flip(20)
else:
    n_ext, n_data, n_nodes, ext_off = struct.unpack_from('<IIII', data, 72)
    crc_off, node_off, data_off = struct.unpack_from('<QQQ', data, 88)
    if what == 'hdr':
        flip(33)                         # sh_seq
    elif what == 'ext':
        flip(ext_off if n_ext else -1)
    elif what == 'crc':
        flip(crc_off if n_data else -1)
    elif what == 'node':
        flip(node_off + 32 + 8 if n_nodes else -1)   # first entry's seq
    elif what == 'data':
        flip(data_off + 100 if n_data else -1)
    else:
        sys.exit('unknown mutation ' + what)
EOF
}

# Does LOG name KEY?  The key itself, the file the directory store
# keeps it in, or what the messages call it: "segment SEQ" for a
# segment (its key holds ~SEQ), "snapshot NAME" for snap/NAME.
names ()
{
  local log="$1" key="$2" alt=
  case "$key" in
    seg/*) alt="segment $(( ~16#${key#seg/} ))" ;;
    snap/*) alt="snapshot ${key#snap/}" ;;
  esac
  grep -qF -e "$key" -e "${key//\//%/}" "$log" && return 0
  [ -n "$alt" ] && grep -qE "${alt}([^0-9a-zA-Z._-]|\$)" "$log"
}

mkdir "$tmp/A" "$tmp/B"
build "$tmp/A/v" 0
build "$tmp/B/v" 100
timeout $T "$H" fsck "$tmp/A/v" > "$tmp/fsck.out" 2>&1 ||
  { cat "$tmp/fsck.out"; echo "$0: the intact volume fails fsck"; exit 1; }
# The reference reads run with nbdkit's listen(2) delayed 1 s by the
# shim (tests/shim/delay.c): its socket file exists a second
# before anyone can connect, which a busy machine does for a moment, and
# read_vol must wait for a listening server all the same.
shim="$abs_builddir/shim/.libs/hf-delay.so"
[ -f "$shim" ] || { echo "$0: $shim is not built"; exit 1; }
srv_env=(LD_PRELOAD="$shim${LD_PRELOAD:+:$LD_PRELOAD}" HF_LISTEN_DELAY_MS=1000)
[ "$(read_vol "$tmp/A/v" "$tmp/ref-head" "$tmp/log")" = ok ] ||
  { cat "$tmp/log"; exit 1; }
[ "$(read_vol "$tmp/A/v" "$tmp/ref-snap" "$tmp/log" at=snap1)" = ok ] ||
  { cat "$tmp/log"; exit 1; }
# And a server that refuses to open the volume (in .after_fork, after
# listen) names what it lacks instead of being killed unheard.
rm -rf "$tmp/work"; cp -a "$tmp/A" "$tmp/work"
rm "$(key_path "$tmp/work/v" snap/snap1)"
res="$(read_vol "$tmp/work/v" "$tmp/out" "$tmp/log" at=snap1)"
case "$res" in refused|eio) names "$tmp/log" snap/snap1 ;; *) false ;; esac ||
  { cat "$tmp/log"; echo "$0: at=snap1 without snap1: $res"; exit 1; }
srv_env=()
cmp -s "$tmp/ref-head" "$tmp/ref-snap" &&
  { echo "$0: head and snapshot should differ"; exit 1; }

# The objects, and their classes for the case ids: the descriptor, each
# segment by its place (seg1 is the oldest; newest is the head), the
# snapshot, and leases.
mapfile -t keys < <(cd "$tmp/A/v" && find . -type f | sed 's|^\./||; s|%/|/|' | sort)
mapfile -t segs < <(printf '%s\n' "${keys[@]}" | grep '^seg/' | sort -r)
class_of ()
{
  local k="$1" i
  case "$k" in
    volume) echo volume ;;
    snap/*) echo snapshot ;;
    lease/*) echo lease ;;
    seg/*)
      for i in "${!segs[@]}"; do
        if [ "${segs[$i]}" = "$k" ]; then
          if [ "$i" -eq $((${#segs[@]} - 1)) ]; then echo newest
          else echo "seg$((i + 1))"
          fi
        fi
      done ;;
    *) echo other ;;
  esac
}
echo "objects: ${keys[*]}"
[ "${#segs[@]}" -ge 6 ] || { echo "$0: expected at least 6 segments"; exit 1; }

cases=0 failed=0 known=0
failures=()
for key in "${keys[@]}"; do
  cls="$(class_of "$key")"
  case "$cls" in
    volume|snapshot|lease) whats="flip trunc delete swap" ;;
    *) whats="hdr ext crc node data trunc delete swap" ;;
  esac
  for what in $whats; do
    id="$cls:$what"
    if [ -n "${HF_MATRIX_ONLY-}" ] && ! [[ "$id" =~ $HF_MATRIX_ONLY ]]; then
      continue
    fi
    w="$tmp/work"
    rm -rf "$w"
    cp -a "$tmp/A" "$w"
    f="$(key_path "$w/v" "$key")"
    case "$what" in
      delete) rm "$f"; at=- ;;
      swap)   cp "$(key_path "$tmp/B/v" "$key")" "$f"; at=- ;;
      *)      at="$(mutate "$f" "$what")" ;;
    esac
    [ "$at" = "-" ] && [ "$what" != delete ] && [ "$what" != swap ] &&
      continue                  # the object has no such area
    cases=$((cases + 1))
    bad=()
    # Reads: at the head, and at the snapshot.
    for point in head snap; do
      if [ $point = head ]; then
        res="$(read_vol "$w/v" "$tmp/out" "$tmp/log")"
      else
        res="$(read_vol "$w/v" "$tmp/out" "$tmp/log" at=snap1)"
      fi
      case "$res" in
        ok) cmp -s "$tmp/out" "$tmp/ref-$point" ||
              bad+=("$point read returned WRONG DATA") ;;
        eio|refused)
          names "$tmp/log" "$key" ||
            bad+=("$point read: $res without naming $key") ;;
        hang) bad+=("$point read HUNG (> $T s)") ;;
      esac
      cp "$tmp/log" "$tmp/log-$point"
    done
    # fsck.
    r=0
    timeout -k 5 $T "$H" fsck "$w/v" > "$tmp/fsck.out" 2>&1 || r=$?
    if [ "$r" -eq 124 ] || [ "$r" -eq 137 ]; then
      bad+=("fsck HUNG")
    elif [ "$cls" = snapshot ] && [ "$what" = delete ]; then
      :                         # deleting a snapshot is no damage
    elif [ "$cls" != lease ]; then
      if [ "$r" -eq 0 ]; then bad+=("fsck found nothing")
      elif ! names "$tmp/fsck.out" "$key"; then bad+=("fsck did not name $key")
      fi
    fi
    line="$id ($key $what${at:+ @$at})"
    if [ "${#bad[@]}" -eq 0 ]; then
      if [ -n "${KNOWN_FAILURES[$id]-}" ]; then
        echo "FIXED: $line passes but is listed in KNOWN_FAILURES"
        failures+=("$id: listed as a known failure but passes")
        failed=$((failed + 1))
      else
        echo "ok: $line"
      fi
    elif [ -n "${KNOWN_FAILURES[$id]-}" ]; then
      echo "KNOWN FAILURE: $line: ${bad[*]} [${KNOWN_FAILURES[$id]//$'\n'/ }]"
      known=$((known + 1))
    else
      echo "FAIL: $line: ${bad[*]}"
      echo "  to reproduce: HF_MATRIX_ONLY='^$id\$' make check TESTS=$(basename "$0")"
      echo "  --- head read log:"; sed 's/^/  | /' "$tmp/log-head" | tail -5
      echo "  --- at=snap1 read log:"; sed 's/^/  | /' "$tmp/log-snap" | tail -5
      echo "  --- fsck:"; sed 's/^/  | /' "$tmp/fsck.out" | tail -5
      failures+=("$id: ${bad[*]}")
      failed=$((failed + 1))
    fi
  done
done

echo "$cases cases: $((cases - failed - known)) ok, $known known failures, $failed failed"
if [ "$failed" -gt 0 ]; then
  printf '  %s\n' "${failures[@]}"
  exit 1
fi
