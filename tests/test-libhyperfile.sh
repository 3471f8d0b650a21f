#!/usr/bin/env bash
# libhyperfile as a user gets it: `make install DESTDIR=` into a temp
# tree, then, with pkg-config pointed at that tree only:
#   - only hyperfile.h is installed as a header, and it compiles alone
#     as C99 (pedantic) and C++;
#   - libhyperfile.so has its soname and exports exactly the hf_file_*
#     calls hyperfile.h declares (nm -D), all at version HYPERFILE_0.1;
#   - tests/libhyperfile-api.c, compiled with `pkg-config --cflags
#     --libs hyperfile`, passes against the directory store and against
#     s3rver (S3 settings through the options struct, never logged).
set -e
. "$abs_srcdir/functions.sh"
requires pkg-config --version
requires nm --version
requires readelf --version
requires cc --version
: "${abs_top_builddir:?abs_top_builddir must point at the build tree}"

tmp="$(mktemp -d /tmp/hf-libtest.XXXXXX)"
cleanup_add "rm -rf '$tmp'"
dest="$tmp/inst"

# Install the library, its header and pkg-config file.  (Not from make's
# own job server: this is a make of its own.)
for d in libhyperfile; do
  env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL \
    make -s -C "$abs_top_builddir/$d" install DESTDIR="$dest" 2>&1 |
    { grep -v 'libtool --finish\|^libtool: warning: remember' || :; }
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
if grep -v '@@HYPERFILE_0\.1$' "$tmp/exported"; then
  echo "$0: symbols above exported without the version HYPERFILE_0.1"
  exit 1
fi
sed -i 's/@.*//' "$tmp/exported"
if ! diff -u "$tmp/declared" "$tmp/exported"; then
  echo "$0: the library exports other symbols than hyperfile.h declares"
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

mkdir "$tmp/w-dir"
"$tmp/api" "$tmp/vol" "$tmp/w-dir"

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
