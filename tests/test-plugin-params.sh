#!/usr/bin/env bash
# The plugin's parameter table (plugin/hyperfile.c, hyperfile_params)
# is what `nbdkit hyperfile --help` prints and what the man page's
# PARAMETERS section documents: every key of the table is in both, and
# every parameter the man page documents is in the table.
set -e
. "$abs_srcdir/nbd-functions.sh"
requires nbdkit --version
hf_tmpdir

fail ()
{
  echo "$0: FAIL: $*" >&2
  exit 1
}

src="$abs_top_srcdir/plugin/hyperfile.c"
pod="$abs_top_srcdir/man/nbdkit-hyperfile-plugin.pod"

# The table's keys: the first argument of each P_KIND ("key", ...) row
# between the table's opening and its closing brace.
sed -n '/^static const struct hyperfile_param hyperfile_params\[\] = {$/,/^};$/p' \
  "$src" | grep -oE '^ *P_[A-Z_]+ \("[a-z0-9-]+"' |
  sed -E 's/.*"([a-z0-9-]+)"/\1/' > "$tmp/table"
n=$(wc -l < "$tmp/table")
[ "$n" -ge 20 ] || fail "only $n keys found in the table of $src"

nbdkit "$PLUGIN" --help > "$tmp/help"
# The man page's PARAMETERS section: the key of each =item B<key=...>.
sed -n '/^=head1 PARAMETERS$/,/^=head1 /p' "$pod" |
  grep -oE '^=item \[?B<[a-z0-9-]+=' | sed -E 's/^=item \[?B<//; s/=$//' |
  sort -u > "$tmp/pod"

missing=0
while read -r key; do
  if ! grep -qE "^(\\[$key=\\]|$key=)" "$tmp/help"; then
    echo "$key: not in nbdkit hyperfile --help"; missing=1
  fi
  if ! grep -qxF "$key" "$tmp/pod"; then
    echo "$key: not under PARAMETERS in $(basename "$pod")"; missing=1
  fi
done < "$tmp/table"
while read -r key; do
  if ! grep -qxF "$key" "$tmp/table"; then
    echo "$key: in $(basename "$pod") but not a parameter"; missing=1
  fi
done < "$tmp/pod"
if [ "$missing" = 1 ]; then
  cat "$tmp/help"
  fail "the table, --help and the man page disagree"
fi
echo "$0: $n parameters in the table, --help and the man page"
