#!/usr/bin/env bash
# libhyperfile as a user gets it: `make install DESTDIR=` into a temp
# tree, then, with pkg-config pointed at that tree only:
#   - only hyperfile.h is installed as a header, and it compiles alone
#     as C99 (pedantic) and C++;
#   - libhyperfile.so has its soname and exports exactly the hf_file_*
#     calls hyperfile.h declares (nm -D), each with a HYPERFILE_ version,
#     each documented with its prototype in the installed libhyperfile(3);
#   - tests/libhyperfile-api.c, compiled with `pkg-config --cflags
#     --libs hyperfile`, passes against the directory store and against
#     s3rver (S3 settings through the options struct, never logged);
#   - the programs in contrib/examples/, built the same way, import
#     sparse images, read their snapshots back and write and read a log,
#     on both stores;
#   - README's example compiles and does what it says.
set -e
. "$abs_srcdir/functions.sh"
requires pkg-config --version
requires nm --version
requires readelf --version
requires cc --version
: "${abs_top_builddir:?abs_top_builddir must point at the build tree}"

tmp="$(mktemp -d --tmpdir hf-libtest.XXXXXX)"
cleanup_add "rm -rf '$tmp'"
dest="$tmp/inst"

# Install the library, its header and pkg-config file, and the man pages.
# (Not from make's own job server: this is a make of its own.)
for d in libhyperfile man; do
  env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL \
    make -s -C "$abs_top_builddir/$d" install DESTDIR="$dest" \
    > "$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; exit 1; }
done

pc="$(find "$dest" -name hyperfile.pc)"
test -n "$pc" || { echo "$0: hyperfile.pc not installed"; exit 1; }
export PKG_CONFIG_PATH="$(dirname "$pc")" PKG_CONFIG_LIBDIR="$(dirname "$pc")"
export PKG_CONFIG_SYSROOT_DIR="$dest"
cflags="$(pkg-config --cflags hyperfile)"
libs="$(pkg-config --libs hyperfile)"
# pkgconf applies the sysroot to --variable, freedesktop's pkg-config
# does not.
pcvar ()
{
  local v
  v="$(pkg-config --variable="$1" hyperfile)"
  case "$v" in "$dest"/*) echo "$v" ;; *) echo "$dest$v" ;; esac
}
libdir="$(pcvar libdir)"
includedir="$(pcvar includedir)"
echo "pkg-config: $cflags $libs"
case "$cflags $libs" in
  *"$dest"*) ;;
  *) echo "$0: pkg-config flags do not point into $dest"; exit 1 ;;
esac

# The one public header, self-contained and standard.
headers="$(cd "$dest" && find . -name '*.h' | sort)"
test "$headers" = "./${includedir#"$dest"/}/hyperfile.h" || {
  echo "$0: installed headers: $headers (expected only hyperfile.h)"
  exit 1
}
echo '#include <hyperfile.h>' |
  cc $cflags -std=c99 -pedantic-errors -Wall -Wextra -Werror \
     -fsyntax-only -x c -
if c++ --version > /dev/null 2>&1; then
  echo '#include <hyperfile.h>
int main () { struct hf_file_options o; hf_file_options_init (&o); }' |
    c++ $cflags -Wall -Werror -fsyntax-only -x c++ -
fi

# The shared object: soname, and exactly the declared calls exported.
so="$libdir/libhyperfile.so"
test -L "$so" && test -f "$libdir/libhyperfile.so.0"
readelf -d "$so" | grep -q 'SONAME.*\[libhyperfile\.so\.0\]'
sed -n 's/^extern .*[ *]\(hf_file_[a-z_]*\) (.*/\1/p' \
  "$includedir/hyperfile.h" | sort > "$tmp/declared"
test "$(wc -l < "$tmp/declared")" -ge 15
# nm -D prints NAME@@VERSION; the version node itself is an A symbol.
nm -D --defined-only "$so" | awk '$2 ~ /^[TDBRVWGSi]$/ { print $3 }' |
  sort > "$tmp/exported"
if grep -v '@@HYPERFILE_[0-9]*\.[0-9]*$' "$tmp/exported"; then
  echo "$0: symbols above exported without a HYPERFILE_ version"
  exit 1
fi
# The first calls stay at the first version for ever.
for f in hf_file_open hf_file_pread hf_file_pwrite hf_file_close; do
  grep -qx "$f@@HYPERFILE_0\.1" "$tmp/exported" || {
    echo "$0: $f moved from version HYPERFILE_0.1 (an ABI break)"
    exit 1
  }
done
sed -i 's/@.*//' "$tmp/exported"
if ! diff -u "$tmp/declared" "$tmp/exported"; then
  echo "$0: the library exports other symbols than hyperfile.h declares"
  exit 1
fi

# Each call is documented in the installed libhyperfile(3) with the
# prototype the header declares.
man3="$(find "$dest" -name libhyperfile.3)"
test -n "$man3" || { echo "$0: libhyperfile.3 not installed"; exit 1; }
awk '/^extern [a-z]/ { d = $0; while (d !~ /;/) { getline l; d = d " " l }
                       print d }' "$includedir/hyperfile.h" |
  sed 's/^extern //; s/[[:space:]]\+/ /g' | sort > "$tmp/h-protos"
sed -n 's/^\.IX Item "\(.*hf_file_[a-z_]* (.*;\)"$/\1/p' "$man3" |
  sed 's/[[:space:]]\+/ /g' | sort > "$tmp/man-protos"
test "$(wc -l < "$tmp/h-protos")" -eq "$(wc -l < "$tmp/declared")"
if ! diff -u "$tmp/h-protos" "$tmp/man-protos"; then
  echo "$0: libhyperfile(3) and hyperfile.h disagree (above)"
  exit 1
fi

# The API test, built only from what was installed.
cc $cflags -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter \
   -o "$tmp/api" "$abs_srcdir/libhyperfile-api.c" $libs -pthread
export LD_LIBRARY_PATH="$libdir"
ldd "$tmp/api" | grep -q "libhyperfile.so.0 => $libdir/" || {
  ldd "$tmp/api"
  echo "$0: the test does not load the installed library"
  exit 1
}

# The examples, built the same way.
for e in hf-import hf-logwriter hf-snapread; do
  cc $cflags -std=gnu11 -Wall -Wextra -Werror \
     -o "$tmp/$e" "$abs_top_srcdir/contrib/examples/$e.c" $libs
done

# Two sparse images of 10 MiB: different data, holes where the other has
# data (so importing the second over the first must trim).
rnd () { head -c "$1" /dev/urandom; }
put () { dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }
truncate -s 10M "$tmp/img1" "$tmp/img2"
rnd 65536 | put "$tmp/img1" 0
rnd 102400 | put "$tmp/img1" $((3 * 1048576 + 123))
rnd 1048576 | put "$tmp/img1" $((9 * 1048576))
rnd 8192 | put "$tmp/img2" 4096
rnd 200000 | put "$tmp/img2" $((5 * 1048576))
# Log records of ~300 bytes: 4000 of them outgrow the 1 MiB first size.
awk 'BEGIN { for (i = 1; i <= 4000; i++) {
               printf "record %d", i
               for (j = 0; j < 30; j++) printf " %09d", i * j
               print "" } }' > "$tmp/records"

# run_examples URL URL2 TAG: import both images with a snapshot each,
# read both snapshots back; append the records in two runs and read
# them back.
run_examples ()
{
  local url=$1 url2=$2 t=$3 out
  out="$("$tmp/hf-import" "$tmp/img1" "$url" first)"
  echo "$out"
  # Only the data was read and sent: 64 KiB + 100 KiB + 1 MiB, in file
  # system blocks.
  echo "$out" | awk '/^imported/ { exit !($3 < 1400000 && $9 > 8800000) }'
  "$tmp/hf-import" "$tmp/img2" "$url" second
  "$tmp/hf-snapread" "$url" > "$tmp/list-$t"
  cat "$tmp/list-$t"
  grep -q '^first ' "$tmp/list-$t" && grep -q '^second ' "$tmp/list-$t"
  "$tmp/hf-snapread" "$url" first "$tmp/out1-$t"
  "$tmp/hf-snapread" "$url" second "$tmp/out2-$t"
  cmp "$tmp/img1" "$tmp/out1-$t"
  cmp "$tmp/img2" "$tmp/out2-$t"
  # The copy kept the holes: well under the 10 MiB it spans.
  test "$(du -k "$tmp/out1-$t" | cut -f1)" -lt 2048

  mkdir -p "$tmp/lwal-$t"
  head -n 1500 "$tmp/records" | "$tmp/hf-logwriter" "$url2" 100 "$tmp/lwal-$t"
  tail -n +1501 "$tmp/records" | "$tmp/hf-logwriter" "$url2" 7
  "$tmp/hf-logwriter" "$url2" --cat > "$tmp/cat-$t"
  cmp "$tmp/records" "$tmp/cat-$t"
}

# README's example, verbatim: it writes "hello" at 12345 and commits it.
awk '/^```c$/ { on = 1; next } /^```$/ { if (on) exit } on' \
  "$abs_top_srcdir/README.md" > "$tmp/demo.c"
grep -q hf_file_open "$tmp/demo.c"
cc $cflags -std=gnu11 -Wall -Wextra -Werror -o "$tmp/demo" "$tmp/demo.c" $libs
"$tmp/demo" "$tmp/demo-vol"
"$tmp/hf-snapread" "$tmp/demo-vol" 1 "$tmp/demo-out"
test "$(dd if="$tmp/demo-out" bs=1 skip=12345 count=6 status=none | od -An -c |
        tr -d ' ')" = 'hello\0'

mkdir "$tmp/w-dir"
"$tmp/api" "$tmp/vol" "$tmp/w-dir"
run_examples "$tmp/ex-vol" "$tmp/ex-log" dir

start_s3rver
mkdir "$tmp/w-s3"
# Options beat the environment: its credentials are wrong on purpose.
HF_API_ENDPOINT="$S3_ENDPOINT" HF_API_ACCESS_KEY="$S3_TEST_ACCESS_KEY" \
HF_API_SECRET_KEY="$S3_TEST_SECRET_KEY" \
AWS_ACCESS_KEY_ID=AKIDWRONG AWS_SECRET_ACCESS_KEY=wrong-secret \
  "$tmp/api" "s3://$S3_BUCKET/api/vol" "$tmp/w-s3" > "$tmp/s3.out" 2>&1 || {
  cat "$tmp/s3.out"
  exit 1
}
cat "$tmp/s3.out"
if grep -F -- "$S3_TEST_SECRET_KEY" "$tmp/s3.out"; then
  echo "$0: the secret key appears in the library's output"
  exit 1
fi
# Every request the server got was signed with the options' key.
grep -q "$S3_TEST_ACCESS_KEY" "$S3RVER_REQLOG"
if grep -q AKIDWRONG "$S3RVER_REQLOG"; then
  echo "$0: the environment's key was used"
  exit 1
fi

# The examples take S3 settings from the environment.
AWS_ENDPOINT_URL="$S3_ENDPOINT" \
  run_examples "s3://$S3_BUCKET/ex/vol" "s3://$S3_BUCKET/ex/log" s3

# A directory bucket: the S3 Express One Zone emulation (tests/s3rver,
# shims 10-11; AWS itself was not reachable) with HF_FILE_EXPRESS set.
kill_s3rver
HF_TEST_S3_EXPRESS=1 start_s3rver
mkdir "$tmp/w-x"
HF_API_EXPRESS=1 HF_API_ENDPOINT="$S3_ENDPOINT" \
HF_API_ACCESS_KEY="$S3_TEST_ACCESS_KEY" HF_API_SECRET_KEY="$S3_TEST_SECRET_KEY" \
  "$tmp/api" "s3://$S3_BUCKET/api/vol" "$tmp/w-x" > "$tmp/x.out" 2>&1 || {
  cat "$tmp/x.out"
  exit 1
}
tail -3 "$tmp/x.out"
# Sessions were made, and every other request was signed with one.
grep -q '^[^ ]* [^ ]* /?session ' "$S3RVER_REQLOG"
if grep -v '/?session \|^EXPIRED' "$S3RVER_REQLOG" | grep -q 's3session=no'; then
  echo "$0: a request to the directory bucket was not signed with a session"
  exit 1
fi
