#!/usr/bin/env bash
# bench/run --smoke end to end: the S3 test server with its accounting
# shim, a few systems, every workload for about a second, the scale
# runs, results.json, results.md and (with gnuplot) the plots.  Checks
# that the scripts ran and recorded what they measured; nothing here
# depends on how fast anything was.
set -e
. "$abs_srcdir/nbd-functions.sh"
requires nbdkit --version
requires fio --version
requires nbdsh --version
requires curl --version
requires node --version
requires test -d "$abs_top_srcdir/node_modules/@20minutes/s3rver"
hf_tmpdir

WRITEAMP="$abs_builddir/writeamp" \
  "$abs_top_srcdir/bench/run" --smoke --out "$tmp/out" > "$tmp/run.log" 2>&1 ||
  { cat "$tmp/run.log"; exit 1; }
cat "$tmp/run.log"

test -s "$tmp/out/results.md"
grep -q '^| memory |' "$tmp/out/results.md"
python3 - "$tmp/out/results.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
runs = {(x["system"], x["workload"]): x for x in r["runs"]}
def need(cond, what):
    if not cond:
        sys.exit("test-bench-smoke: " + what)
for s in ("memory", "hf-s3-nowal", "hf-dir-nowal"):
    for w in ("seqwrite", "randread-cold", "seqread", "randread-warm",
              "randwrite-qd1", "randwrite-qd32", "randrw"):
        x = runs.get((s, w))
        need(x is not None, "no record for %s %s" % (s, w))
        need(x["status"] == "ok", "%s %s: %s" % (s, w, x["status"]))
        need(x["iops"] > 0 and x["bw_bytes"] > 0, "%s %s: no I/O" % (s, w))
        need("iops_vs_memory" in x["derived"], "%s %s: no ratio" % (s, w))
# The slow-store workloads (hyperfile only) record tail latencies; the
# read-latency one both its reader and its writer.
for s in ("hf-s3-nowal", "hf-dir-nowal"):
    for w in ("slow-seqwrite", "slow-randwrite-qd32", "slow-readlat"):
        x = runs.get((s, w))
        need(x is not None and x["status"] == "ok",
             "%s %s: %s" % (s, w, x and x["status"]))
        need(x["write"]["ios"] > 0 and x["write"]["p999_us"] > 0,
             "%s %s: no write tail latency" % (s, w))
        # Their percentiles come from fio's per-I/O log: every write is
        # in it, either counted or left out as in flight at the end.
        y = x["write"]
        need(y.get("pct_from_log", 0) > 0 and
             y["pct_from_log"] + y["end_batch_dropped"] == y["ios"],
             "%s %s: percentiles not from the whole log (%s of %d)" % (
                 s, w, y.get("pct_from_log"), y["ios"]))
        need(y["p50_us"] <= y["p99_us"] <= y["p999_us"],
             "%s %s: percentiles out of order" % (s, w))
    need(runs[(s, "slow-readlat")]["read"]["p999_us"] > 0,
         "%s slow-readlat: no read latency" % s)
need(("memory", "slow-seqwrite") not in runs, "slow store run on memory")
# The data sets (hyperfile only): an image written whole, and on S3 at
# least its bytes stored (uncompressed); the directory store makes no
# S3 requests and gets no figure.
for s in ("hf-s3-nowal", "hf-dir-nowal"):
    for w in ("fs-usrshare", "fs-binary"):
        x = runs.get((s, w))
        need(x is not None and x["status"] == "ok",
             "%s %s: %s" % (s, w, x and x["status"]))
        ds = x["dataset"]
        need(ds["files"] > 0 and ds["written_bytes"] > 0 and
             ds["written_bytes"] <= ds["image_bytes"],
             "%s %s: nothing written" % (s, w))
need(runs[("hf-s3-nowal", "fs-usrshare")]["derived"]["s3_bytes_per_byte"]
     >= 1.0, "fs-usrshare: S3 bytes below data")
need("s3_bytes_per_byte" not in runs[("hf-dir-nowal", "fs-binary")]["derived"],
     "fs-binary: S3 bytes per byte on the directory store")
need(("memory", "fs-usrshare") not in runs, "data set run on memory")
md = open(sys.argv[1].replace("results.json", "results.md")).read()
need("p99.9" in md, "no p99.9 column")
need("Percentiles from fio's log" in md, "no note on the slow runs' percentiles")
# The shim counted hyperfile's segment uploads, and none for the dir store.
x = runs[("hf-s3-nowal", "seqwrite")]
need(x["s3_total"]["requests"].get("PutObject", 0) > 0, "no PUTs counted")
need(x["derived"]["s3_bytes_per_byte"] >= 1.0, "S3 bytes below data")
need(not runs[("hf-dir-nowal", "seqwrite")]["s3_total"]["requests"],
     "dir store made S3 requests")
# A WAL configuration either ran or says why not, with no numbers.
x = runs[("hf-s3-wal-cache", "randwrite-qd32")]
need(x["status"] == "ok" and x["iops"] > 0 or
     x["status"].startswith("not available: ") and "iops" not in x,
     "wal row: %s" % x["status"])
need([o for o in r["scale"]["open"] if o["kind"] == "crash"], "no open scale")
# Write phase and reopen measured, the reopen in a process of its own.
need(r["scale"]["memory"] and "read_rss_kib" in r["scale"]["memory"][0] and
     "write_rss_kib" in r["scale"]["memory"][0] and
     "read_base_rss_kib" in r["scale"]["memory"][0], "no memory scale")
need(r["scale"]["writeamp"].get("puts", 0) > 0, "no writeamp figures")
need(r["calibration"]["put_bw_bytes"] > 0, "no calibration")
print("test-bench-smoke: results.json complete")
PY

# A compression level and encryption named in the system
# (-zstdLEVEL-enc), against the same system without, on a data set:
# the volume is created with that level and a key, stores fewer bytes
# than the data, and the report gives the ratios.
"$abs_top_srcdir/bench/run" --smoke --out "$tmp/out2" --no-fs --no-scale \
  --systems hf-s3-nowal,hf-s3-nowal-zstd3-enc \
  --workloads fs-usrshare,randwrite-qd32 > "$tmp/run2.log" 2>&1 ||
  { cat "$tmp/run2.log"; exit 1; }
grep -q ' compress=zstd:3 key-file=' "$tmp/out2/raw/hf-s3-nowal-zstd3-enc.args"
if grep -q 'compress=' "$tmp/out2/raw/hf-s3-nowal.args"; then
  echo "$0: hf-s3-nowal started compressed" >&2
  exit 1
fi
python3 - "$tmp/out2/results.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
runs = {(x["system"], x["workload"]): x for x in r["runs"]}
def need(cond, what):
    if not cond:
        sys.exit("test-bench-smoke: " + what)
for w in ("fs-usrshare", "randwrite-qd32"):
    for s in ("hf-s3-nowal", "hf-s3-nowal-zstd3-enc"):
        need(runs[(s, w)]["status"] == "ok",
             "%s %s: %s" % (s, w, runs[(s, w)]["status"]))
z = runs[("hf-s3-nowal-zstd3-enc", "fs-usrshare")]["derived"]
need(z["s3_bytes_per_byte"] < 1.0,
     "fs-usrshare at zstd 3: %.3f S3 bytes per byte" % z["s3_bytes_per_byte"])
md = open(sys.argv[1].replace("results.json", "results.md")).read()
for w in ("fs-usrshare", "randwrite-qd32"):
    need("| hf-s3-nowal-zstd3-enc | hf-s3-nowal | %s |" % w in md,
         "no cost row for %s" % w)
print("test-bench-smoke: levels and ratios complete")
PY
if command -v gnuplot >/dev/null; then
  for p in ratio p99 s3cost open memory; do
    test -s "$tmp/out/plots/$p.png"
  done
fi
echo "$0: ok"
