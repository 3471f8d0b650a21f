#!/usr/bin/env bash
# hyperfile clone: an exit code for each way it fails, nothing left
# behind.  hyperfile children URL lists the clones registered on a
# volume and marks those whose descriptor is gone (orphans); --prune
# removes only the orphans' registrations.  gc and du say what keeps space (the
# retain window, each snapshot, each clone by URL); gc and fsck warn
# about an orphan registration (fsck still exits 0: it is no damage).
set -e
. "$abs_srcdir/nbd-functions.sh"
requires python3 --version
hf_tmpdir

hf_tool_test

b="$tmp/base"
run 0 create "$b" --size 8M
head -c 2097152 /dev/urandom > "$tmp/a.img"
head -c 2097152 /dev/urandom > "$tmp/b.img"
head -c 2097152 /dev/urandom > "$tmp/c.img"
run 0 import "$tmp/a.img" "$b"
run 0 snapshot create "$b" first
run 0 import "$tmp/b.img" "$b"
run 0 clone "$b" "$tmp/c1"
run 0 import "$tmp/c.img" "$b"
run 0 clone "$b@first" "$tmp/c2"

# clone (hf_file_clone's implementation): each place it can stop has its
# exit code and leaves nothing behind.
mkdir "$tmp/empty"
run 3 clone "$tmp/empty" "$tmp/x1"
grep -q "clone: no volume at $tmp/empty" "$tmp/out" || fail "no volume"
run 3 clone "$tmp/absent" "$tmp/x1"
run 6 clone "$b@nosuch" "$tmp/x1"
run 6 clone "$b@99999" "$tmp/x1"
run 0 create "$tmp/fresh" --size 1M
run 6 clone "$tmp/fresh" "$tmp/x1"
grep -q "no point in time yet" "$tmp/out" || fail "a fresh volume cloned"
run 2 clone "$b@2026-13-45T00:00:00Z" "$tmp/x1"
run 2 clone "$b" "$b"
grep -q "source and destination are the same volume" "$tmp/out" ||
  fail "same volume not said"
run 2 clone "$b" "$tmp/x
1"
run 4 clone "$b" "$tmp/c1"
run 1 clone "$b" "/proc/hf-no-such-dir-$$/c"
[ ! -e "$tmp/x1" ] || fail "a failed clone left its directory"
run 0 clone --json "$b@first" "$tmp/deep/er/c3"
python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
assert d["clone"] == "file://" + sys.argv[2] + "/deep/er/c3", d
assert d["base_seq"] > 0, d' "$tmp/out" "$(cd "$tmp" && pwd -P)" ||
  fail "clone --json"
run 0 delete "$tmp/deep/er/c3"

run 0 children "$b"
grep -q "$tmp/c1" "$tmp/out" && grep -q "$tmp/c2" "$tmp/out" ||
  fail "a clone is missing"
grep -q orphan "$tmp/out" && fail "a live clone called an orphan"
run 0 children "$b" --json
python3 - "$tmp/out" "$tmp" <<'PY' || fail "children --json"
import json, sys
d = json.load(open(sys.argv[1]))
cl = sorted(d["clones"], key=lambda c: c["url"])
assert [c["url"] for c in cl] == ["file://%s/c1" % sys.argv[2],
                                  "file://%s/c2" % sys.argv[2]], d
assert all(c["state"] == "ok" for c in cl), d
assert cl[0]["base_seq"] > cl[1]["base_seq"] > 0, d
PY
run 0 children "$tmp/c1"
grep -q "no clones" "$tmp/out"
run 3 children "$tmp/none"

# What keeps space: the snapshot keeps a.img's blocks, c1 keeps b.img's.
run 0 gc "$b" --retain 0s --grace 0s --dry-run
grep -qE "kept by snapshot first \(segment [0-9]+\): [1-9][0-9]* bytes" \
  "$tmp/out" || fail "gc does not say what the snapshot keeps"
grep -qE "kept by clone file://$tmp/c1 \(base segment [0-9]+\): [1-9][0-9]* bytes" \
  "$tmp/out" || fail "gc does not say what the clone keeps"
run 0 gc "$b" --grace 0s --dry-run
grep -qE "kept by the retain window \(points since .*Z\): [1-9][0-9]* bytes" \
  "$tmp/out" || fail "gc does not say what the window keeps"
run 0 du "$b" --retain 0s --grace 0s --json
python3 - "$tmp/out" "$tmp" <<'PY' || fail "du --json pins"
import json, sys
d = json.load(open(sys.argv[1]))
k = {(p["kind"], p["name"]): p for p in d["kept_by"]}
assert k[("snapshot", "first")]["bytes"] >= 2 << 20, d
assert k[("clone", "file://%s/c1" % sys.argv[2])]["bytes"] >= 2 << 20, d
assert not any(p["orphan"] for p in d["kept_by"]), d
PY

# c1 removed by hand: an orphan registration, still keeping space.
rm -rf "$tmp/c1"
run 0 children "$b"
grep -qE "^orphan .*$tmp/c1 \(gone" "$tmp/out" || fail "orphan not shown"
run 0 gc "$b" --retain 0s --grace 0s --dry-run
grep -q "warning: .*clone registration.*$tmp/c1.*gone.*--prune" "$tmp/out" ||
  fail "gc does not warn about the orphan"
grep -qE "kept by clone file://$tmp/c1 .*orphan" "$tmp/out"
run 0 fsck "$b"
grep -q "warning: .*clone registration.*$tmp/c1.*gone" "$tmp/out" ||
  fail "fsck does not warn about the orphan"
run 0 fsck "$b" --json
python3 - "$tmp/out" <<'PY' || fail "fsck --json orphan_clones"
import json, sys
d = json.loads(open(sys.argv[1]).read().splitlines()[-1])
assert d["orphan_clones"] == 1 and d["ok"], d
PY
# --prune removes only the orphan; c2 stays registered and readable.
run 0 children "$b" --prune
grep -q "$tmp/c1 (pruned" "$tmp/out"
run 0 children "$b" --json
python3 - "$tmp/out" "$tmp" <<'PY' || fail "after --prune"
import json, sys
d = json.load(open(sys.argv[1]))
assert [c["url"] for c in d["clones"]] == ["file://%s/c2" % sys.argv[2]], d
PY
run 0 gc "$b" --retain 0s --grace 0s
grep -q "warning" "$tmp/out" && fail "a warning left after --prune"
run 0 export "$tmp/c2" "$tmp/c2.img"
cmp -n 2097152 "$tmp/a.img" "$tmp/c2.img" || fail "c2 lost its base"
run 0 fsck "$b"
echo "$0: ok"
