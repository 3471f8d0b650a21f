#!/usr/bin/env python3
"""hyperfile bench: records, tables and plots for bench/run.

  report.py machine --plugin SO          machine description (JSON)
  report.py record --system S --workload W --status ST [--fio F]
            [--s3-before A --s3-end B --s3-after C] [--cpu-s X] ...
                                         one run's record (JSON)
  report.py calibration --bytes N --put-s X --get-s Y
  report.py scale SCALE.txt              parse writeamp -o / -m output
  report.py report OUTDIR                results.json, results.md, plots

Every figure of a run is also given as a ratio to `nbdkit memory` from the
same run (absolute numbers on a shared machine are noisy).  Python 3
standard library only; plots with gnuplot when it is installed.
"""
import argparse
import glob
import json
import os
import platform
import re
import shutil
import subprocess
import sys

GIB = 1 << 30
MIB = 1 << 20
# A one-object-per-block design puts one object per 4 KiB block written.
OOPB_PUTS_PER_GIB = GIB // 4096
PUT_KINDS = ("PutObject", "UploadPart", "CreateMultipartUpload",
             "CompleteMultipartUpload")
WRITE_WORKLOADS = ("seqwrite", "randwrite-qd1", "randwrite-qd32", "randrw",
                   "slow-seqwrite", "slow-randwrite-qd32", "slow-readlat")
WORKLOADS = ("seqwrite", "randread-cold", "seqread", "randread-warm",
             "randwrite-qd1", "randwrite-qd32", "randrw", "slow-seqwrite",
             "slow-randwrite-qd32", "slow-readlat")
# Workloads whose figure of merit is the writes (the others: reads).
WRITE_SIDE = ("seqwrite", "randwrite-qd1", "randwrite-qd32",
              "slow-seqwrite", "slow-randwrite-qd32")
# Workloads that both read and write: the table shows the writes'
# latency too.
MIXED = ("randrw", "slow-readlat")
# The data-set workloads: an ext4 image of real files written onto a
# fresh device (no fio), for the S3 bytes stored per byte written.
DATASETS = ("fs-usrshare", "fs-binary")
WORKLOAD_TEXT = {
    "seqwrite": "1 MiB sequential write, QD8",
    "seqread": "1 MiB sequential read (cold), QD8",
    "randread-cold": "4 KiB random read, cold, QD32",
    "randread-warm": "4 KiB random read, warm, QD32",
    "randwrite-qd1": "4 KiB random write, QD1",
    "randwrite-qd32": "4 KiB random write, QD32",
    "randrw": "4 KiB random 70% read / 30% write, QD32",
    "slow-seqwrite": "1 MiB sequential write, QD8, slow store (SEQ), "
                     "default dirty-limit",
    "slow-randwrite-qd32": "4 KiB random write, QD32, slow store (RAND), "
                           "default dirty-limit",
    "slow-readlat": "4 KiB random read, QD1, beside 4 KiB random "
                    "writes at QD32 with checkpoints (segment-size=2M), "
                    "slow store (RAND)",
}
SYSTEMS = ("memory", "file", "hf-s3-wal-cache", "hf-s3-wal", "hf-s3-nowal",
           "hf-dir-wal-cache", "hf-dir-wal", "hf-dir-nowal", "nbdkit-s3-4k",
           "nbdkit-s3-1m", "s3backer")
SYSTEM_TEXT = {
    "memory": "nbdkit memory",
    "file": "nbdkit file",
    "hf-s3-wal-cache": "hyperfile S3, WAL + cache",
    "hf-s3-wal": "hyperfile S3, WAL only",
    "hf-s3-nowal": "hyperfile S3, wal=off + cache",
    "hf-dir-wal-cache": "hyperfile dir, WAL + cache",
    "hf-dir-wal": "hyperfile dir, WAL only",
    "hf-dir-nowal": "hyperfile dir, wal=off + cache",
    "nbdkit-s3-4k": "nbdkit S3 object-size=4096",
    "nbdkit-s3-1m": "nbdkit S3 object-size=1M",
    "s3backer": "s3backer 1.5.4 (FUSE, 4 KiB blocks)",
}


def load_json(path):
    """fio prints "fio: connected to NBD server" before its JSON."""
    with open(path) as f:
        text = f.read()
    return json.loads(text[text.index("{"):])


def s3_delta(a, b):
    out = {}
    for what in ("requests", "bytes_in", "bytes_out"):
        kinds = set(a.get(what, {})) | set(b.get(what, {}))
        d = {k: b.get(what, {}).get(k, 0) - a.get(what, {}).get(k, 0)
             for k in sorted(kinds)}
        out[what] = {k: v for k, v in d.items() if v}
    return out


def fio_side(side):
    pct = side.get("clat_ns", {}).get("percentile", {})
    return {
        "iops": side.get("iops", 0.0),
        "bw_bytes": side.get("bw_bytes", 0),
        "io_bytes": side.get("io_bytes", 0),
        "ios": side.get("total_ios", 0),
        "p50_us": pct.get("50.000000", 0) / 1000.0,
        "p99_us": pct.get("99.000000", 0) / 1000.0,
        "p999_us": pct.get("99.900000", 0) / 1000.0,
    }


def pct_of(v, p):
    """fio's percentile: the value at rank ceil(p * n) of the sorted v."""
    k = -(-int(p * 1000000) * len(v) // 1000000)
    return v[max(0, min(len(v), k) - 1)]


def clat_from_logs(prefix):
    """Completion latencies (ns) by direction (0 read, 1 write) from
    fio's per-I/O logs PREFIX_clat.N.log (one per job), and how many
    each side lost: the I/Os in flight when a job ended.  fio reaps
    those in one final wait and stamps them all with the time of the
    last one to complete, so they are the log's last lines, sharing its
    last timestamp; their own completion times are unknown."""
    lat = {0: [], 1: []}
    dropped = {0: 0, 1: 0}
    paths = sorted(glob.glob(glob.escape(prefix) + "_clat.*.log"))
    for path in paths:
        rows = []
        with open(path) as f:
            for line in f:
                x = line.split(",")
                if len(x) >= 3:
                    rows.append((int(x[0]), int(x[1]), int(x[2])))
        if not rows:
            continue
        end = rows[-1][0]
        n = 0
        while n < len(rows) and rows[-1 - n][0] == end:
            n += 1
        if n > 1:
            for t, v, d in rows[-n:]:
                dropped[d] = dropped.get(d, 0) + 1
            rows = rows[:-n]
        for t, v, d in rows:
            if d in lat:
                lat[d].append(v)
    return (lat, dropped) if paths else (None, None)


def cmd_record(a):
    r = {"system": a.system, "workload": a.workload, "status": a.status}
    if a.fio and os.path.exists(a.fio) and a.status == "ok":
        try:
            # One job, or (slow-readlat) a writer and a reader: each
            # side from the job that did most of it.
            jobs = load_json(a.fio)["jobs"]
            for side in ("read", "write"):
                job = max(jobs, key=lambda j: j[side].get("total_ios", 0))
                r[side] = fio_side(job[side])
            r["runtime_s"] = max(j.get("job_runtime", 0)
                                 for j in jobs) / 1000.0
            r["iops"] = r["read"]["iops"] + r["write"]["iops"]
            r["bw_bytes"] = r["read"]["bw_bytes"] + r["write"]["bw_bytes"]
            for job in jobs:
                if job.get("error"):
                    r["status"] = "failed: fio error %d" % job["error"]
            lat, dropped = (clat_from_logs(a.clat_logs) if a.clat_logs
                            else (None, None))
            for d, side in ((0, "read"), (1, "write")):
                v = sorted(lat[d]) if lat else []
                if not v:
                    continue
                r[side]["p50_us"] = pct_of(v, 0.50) / 1000.0
                r[side]["p99_us"] = pct_of(v, 0.99) / 1000.0
                r[side]["p999_us"] = pct_of(v, 0.999) / 1000.0
                r[side]["pct_from_log"] = len(v)
                r[side]["end_batch_dropped"] = dropped.get(d, 0)
        except (ValueError, KeyError, IndexError, OSError) as e:
            r["status"] = "failed: unreadable fio output (%s)" % e
    if a.s3_before and a.s3_end and a.s3_after:
        s0, s1, s2 = (load_json(p) for p in
                      (a.s3_before, a.s3_end, a.s3_after))
    else:
        s0 = s1 = s2 = {}
    # An external server without request accounting ({}): no S3 figures.
    if s0 or s1 or s2:
        r["s3_run"] = s3_delta(s0, s1)
        r["s3_total"] = s3_delta(s0, s2)     # run + drain
        r["s3_drain"] = s3_delta(s1, s2)
    for k in ("cpu_s", "s3server_cpu_s", "flush_s", "drain_s", "drain_cpu_s",
              "drain_s3server_cpu_s", "fs_mkfs_s", "fs_unpack_s"):
        v = getattr(a, k)
        if v is not None:
            r[k] = float(v)
    for k in ("rss_kib", "drain_rss_kib", "fs_files", "fs_bytes"):
        v = getattr(a, k)
        if v is not None:
            r[k] = int(v)
    # A data-set run: what the image holds and what the client wrote.
    if a.dataset and a.ds_run and a.status == "ok":
        try:
            r["dataset"] = load_json(a.dataset)
            r["dataset"].update(load_json(a.ds_run))
        except (OSError, ValueError) as e:
            r["status"] = "failed: unreadable data-set record (%s)" % e
    json.dump(r, sys.stdout, indent=1, sort_keys=True)
    print()


def cmd_machine(a):
    def run(*c):
        try:
            return subprocess.run(c, capture_output=True, text=True,
                                  timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"^model name\s*:\s*(.*)$", f.read(), re.M)
            cpu = m.group(1) if m else ""
        with open("/proc/meminfo") as f:
            mem_kib = int(re.search(r"MemTotal:\s*(\d+)", f.read()).group(1))
    except (OSError, AttributeError):
        mem_kib = 0
    deb = ""
    if os.path.exists("/etc/debian_version"):
        with open("/etc/debian_version") as f:
            deb = f.read().strip()
    fs = run("df", "-T", "/tmp").splitlines()
    m = {
        "cpu": cpu, "cpus": os.cpu_count(), "mem_gib": round(mem_kib / 2**20, 1),
        "kernel": platform.release(), "debian": deb,
        "tmp_fs": fs[-1].split()[1] if len(fs) > 1 else "",
        "nbdkit": run("nbdkit", "--version"),
        "fio": run("fio", "--version"),
        "node": run("node", "--version"),
        "s3backer": (run("s3backer", "--version").splitlines() or [""])[0],
        "git": run("git", "-C", os.path.dirname(os.path.abspath(a.plugin)),
                   "rev-parse", "--short", "HEAD")
               or run("git", "-C", os.path.dirname(__file__), "rev-parse",
                      "--short", "HEAD"),
        "date": run("date", "-u", "+%Y-%m-%d %H:%M UTC"),
        "loadavg": open("/proc/loadavg").read().split()[:3],
    }
    json.dump(m, sys.stdout, indent=1)
    print()


def cmd_calibration(a):
    json.dump({"bytes": a.bytes, "object_mib": a.object_mib,
               "server": a.server,
               "put_s": a.put_s, "get_s": a.get_s,
               "put_bw_bytes": a.bytes / a.put_s if a.put_s else 0,
               "get_bw_bytes": a.bytes / a.get_s if a.get_s else 0},
              sys.stdout, indent=1)
    print()


def cmd_scale(a):
    opens, mem, amp = [], [], {}
    blocks = None
    with open(a.file) as f:
        for line in f:
            m = re.match(r"open (\w+) segments (\d+) head (\d+) checkpoint "
                         r"(\d+) seconds ([\d.]+) get (\d+) head_req (\d+) "
                         r"put (\d+) list (\d+) delete (\d+)", line)
            if m:
                kind, segs, head, ck, sec, g, h, p, l, d = m.groups()
                opens.append({"kind": kind, "segments": int(segs),
                              "head": int(head), "checkpoint": int(ck),
                              "seconds": float(sec),
                              "requests": {"get": int(g), "head": int(h),
                                           "put": int(p), "list": int(l),
                                           "delete": int(d)}})
                continue
            m = re.match(r"store PUT requests: (\d+) = ([\d.]+) per GiB.*"
                         r"ratio 1/(\d+)", line)
            if m:
                amp.update(puts=int(m.group(1)),
                           puts_per_gib=float(m.group(2)),
                           vs_oopb=1.0 / max(1, int(m.group(3))))
                continue
            m = re.match(r"store bytes written: (\d+) = ([\d.]+) bytes per "
                         r"byte", line)
            if m:
                amp.update(bytes=int(m.group(1)),
                           bytes_per_byte=float(m.group(2)))
                continue
            m = re.match(r"random 4 KiB writes: ([\d.]+) GiB .* segment "
                         r"(\d+) MiB", line)
            if m:
                amp.update(gib=float(m.group(1)), segment_mib=int(m.group(2)))
                continue
            m = re.match(r"volume data bytes uploaded (\d+), metadata bytes "
                         r"(\d+)", line)
            if m:
                amp.update(data_bytes=int(m.group(1)),
                           meta_bytes=int(m.group(2)))
                continue
            m = re.match(r"# blocks (\d+)", line)
            if m:
                blocks = int(m.group(1))
                mem.append({"blocks": blocks})
                continue
            m = re.match(r"mapped (\d+) blocks .* in ([\d.]+) s; peak RSS "
                         r"after writing (\d+) KiB", line)
            if m and mem:
                mem[-1].update(mapped=int(m.group(1)),
                               write_s=float(m.group(2)),
                               write_rss_kib=int(m.group(3)))
                continue
            # Only a reopen in a process of its own (writeamp -x) gives
            # the reopen's peak RSS; after a write phase it is that one's.
            m = re.match(r"reopened with node_cache=(\d+): (\d+) random 4 KiB "
                         r"reads in ([\d.]+) s \(([\d.]+)/s\), (\d+) nodes "
                         r"cached, peak RSS (\d+) KiB; reopen alone .*RSS "
                         r"before the open (\d+) KiB", line)
            if m and mem:
                mem[-1].update(node_cache=int(m.group(1)),
                               reads=int(m.group(2)),
                               reads_per_s=float(m.group(4)),
                               nodes_cached=int(m.group(5)),
                               read_rss_kib=int(m.group(6)),
                               read_base_rss_kib=int(m.group(7)))
    json.dump({"open": opens, "memory": mem, "writeamp": amp}, sys.stdout,
              indent=1)
    print()


# ---- the report ----

def fmt(v, nd=0):
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    if abs(v) >= 1e6:
        return "%.3g" % v
    return ("{:,.%df}" % nd).format(v)


def ratio(v, ref):
    if v is None or not ref:
        return None
    return v / ref


def fmt_ratio(r):
    return "-" if r is None else ("%.2f" % r if r >= 0.01 else "%.4f" % r)


def put_requests(delta):
    return sum(delta.get("requests", {}).get(k, 0) for k in PUT_KINDS)


def derive(r, calib):
    """Per-run derived figures (cost, drain, sustained rate)."""
    d = {}
    if r.get("status") != "ok":
        return d
    w = r.get("write", {})
    written = w.get("io_bytes", 0)
    if "s3_total" in r and written:
        tot = r["s3_total"]
        puts = put_requests(tot)
        gib = written / GIB
        d["written_bytes"] = written
        d["s3_puts"] = puts
        d["s3_puts_per_gib"] = puts / gib
        d["s3_vs_oopb"] = (puts / gib) / OOPB_PUTS_PER_GIB
        d["s3_bytes_per_byte"] = sum(tot.get("bytes_in", {}).values()) / written
    if "drain_s" in r and written and r.get("runtime_s"):
        d["sustained_write_iops"] = w.get("ios", 0) / (r["runtime_s"] +
                                                      r["drain_s"])
        drain_bytes = sum(r.get("s3_drain", {}).get("bytes_in", {}).values())
        d["drain_bytes"] = drain_bytes
        if r["drain_s"] > 0:
            d["drain_bw_bytes"] = drain_bytes / r["drain_s"]
            if calib.get("put_bw_bytes"):
                d["drain_vs_put_bw"] = d["drain_bw_bytes"] / \
                    calib["put_bw_bytes"]
    if r["workload"] == "fs" and "s3_total" in r:
        d["s3_puts"] = put_requests(r["s3_total"])
        d["s3_bytes_in"] = sum(r["s3_total"].get("bytes_in", {}).values())
    ds = r.get("dataset")
    if ds and ds.get("written_bytes"):
        written = ds["written_bytes"]
        d["written_bytes"] = written
        if ds.get("write_s"):
            d["write_bw_bytes"] = written / ds["write_s"]
        if "s3_total" in r:
            d["s3_puts"] = put_requests(r["s3_total"])
            d["s3_bytes_in"] = sum(r["s3_total"].get("bytes_in",
                                                     {}).values())
            # The directory store makes no S3 requests: no figure.
            if d["s3_bytes_in"]:
                d["s3_bytes_per_byte"] = d["s3_bytes_in"] / written
    return d


VARIANT = re.compile(r"^(hf-.*?)((?:-zstd(?:fast)?\d*|-enc)+)$")


def variant_of(s):
    """hf-s3-wal-cache-zstd3-enc -> hf-s3-wal-cache; None for a base."""
    m = VARIANT.match(s)
    return m.group(1) if m else None


def natural(s):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def gnuplot(script, outdir):
    if not shutil.which("gnuplot"):
        return False
    p = subprocess.run(["gnuplot"], input=script, text=True, cwd=outdir,
                       capture_output=True)
    if p.returncode != 0:
        sys.stderr.write("report: gnuplot failed: %s\n" % p.stderr)
        return False
    return True


def plots(outdir, runs, systems, workloads, scale):
    made = []
    pdir = os.path.join(outdir, "plots")
    os.makedirs(pdir, exist_ok=True)
    mem = {w: runs.get(("memory", w)) for w in workloads}
    cols = [s for s in systems if s != "memory"]

    def write_dat(name, value):
        with open(os.path.join(pdir, name), "w") as f:
            f.write("workload " + " ".join(cols) + "\n")
            for w in workloads:
                vals = []
                for s in cols:
                    v = value(runs.get((s, w)), mem[w])
                    vals.append("%g" % v if v else "NaN")
                f.write(w + " " + " ".join(vals) + "\n")

    def iops_ratio(r, m):
        if not r or r.get("status") != "ok" or not m or \
           m.get("status") != "ok" or not m.get("iops"):
            return None
        return r["iops"] / m["iops"]

    def p99(r, m):
        if not r or r.get("status") != "ok":
            return None
        side = "write" if r["workload"] in WRITE_SIDE else "read"
        return r[side]["p99_us"] or None

    write_dat("ratio.dat", iops_ratio)
    write_dat("p99.dat", p99)
    hist = """set terminal png size 1400,650 font ",10"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set key outside right top
set xtics rotate by -25
set grid ytics
set datafile missing "NaN"
"""
    n = len(cols)
    if gnuplot(hist + """set output "ratio.png"
set title "IOPS as a fraction of nbdkit memory, same run (log scale)"
set logscale y
set yrange [0.0001:*]
plot for [i=2:%d] "ratio.dat" using i:xtic(1) title columnheader(i)
""" % (n + 1), pdir):
        made.append("plots/ratio.png")
    if gnuplot(hist + """set output "p99.png"
set title "p99 completion latency, microseconds (log scale)"
set logscale y
plot for [i=2:%d] "p99.dat" using i:xtic(1) title columnheader(i)
""" % (n + 1), pdir):
        made.append("plots/p99.png")
    # S3 PUTs per GiB written, 4 KiB random writes at QD32.
    rows = []
    for s in systems:
        r = runs.get((s, "randwrite-qd32"))
        if r and r.get("derived", {}).get("s3_puts_per_gib"):
            rows.append((s, r["derived"]["s3_puts_per_gib"]))
    if rows:
        with open(os.path.join(pdir, "s3cost.dat"), "w") as f:
            for s, v in rows:
                f.write("%s %g\n" % (s, v))
        if gnuplot("""set terminal png size 1000,500 font ",10"
set output "s3cost.png"
set title "S3 PUT requests per GiB of 4 KiB random writes (QD32, incl. drain; log)"
set style fill solid 0.8 border -1
set logscale y
set boxwidth 0.6
set xtics rotate by -25
set grid ytics
set arrow from graph 0, first %g to graph 1, first %g nohead dt 2 lc rgb "red"
set label "one object per block / 500" at graph 0.02, first %g offset 0,0.7
plot "s3cost.dat" using 0:2:xtic(1) with boxes notitle
""" % ((OOPB_PUTS_PER_GIB / 500,) * 3), pdir):
            made.append("plots/s3cost.png")
    if scale and scale.get("open"):
        with open(os.path.join(pdir, "open.dat"), "w") as f:
            for kind in ("clean", "crash"):
                for o in scale["open"]:
                    if o["kind"] == kind:
                        f.write("%d %g %d\n" % (
                            o["segments"], o["seconds"],
                            sum(o["requests"].values())))
                f.write("\n\n")
        if gnuplot("""set terminal png size 900,450 font ",10"
set output "open.png"
set title "Opening a volume (S3 store): time against segments"
set logscale x
set xlabel "segments"
set ylabel "seconds"
set y2label "S3 requests"
set y2tics
set grid
plot "open.dat" index 0 using 1:2 with linespoints title "time, after close", \
     "open.dat" index 1 using 1:2 with linespoints title "time, after crash", \
     "open.dat" index 0 using 1:3 axes x1y2 with linespoints dt 2 title "requests, after close", \
     "open.dat" index 1 using 1:3 axes x1y2 with linespoints dt 2 title "requests, after crash"
""", pdir):
            made.append("plots/open.png")
    if scale and [m for m in scale.get("memory", []) if "read_rss_kib" in m]:
        with open(os.path.join(pdir, "memory.dat"), "w") as f:
            for m in scale["memory"]:
                if "read_rss_kib" in m and "write_rss_kib" in m:
                    f.write("%d %g %g\n" % (m["blocks"],
                                            m["read_rss_kib"] / 1024.0,
                                            m["write_rss_kib"] / 1024.0))
        if gnuplot("""set terminal png size 900,450 font ",10"
set output "memory.png"
set termoption noenhanced
set key top left
set title "Peak RSS against mapped 4 KiB blocks (directory store)"
set logscale x
set xlabel "mapped blocks"
set ylabel "MiB"
set grid
plot "memory.dat" using 1:2 with linespoints title "reopen + random reads, node_cache=256 (own process)", \
     "memory.dat" using 1:3 with linespoints title "write phase (default node cache)"
""", pdir):
            made.append("plots/memory.png")
    return made


def bar(runs, calib, scale):
    """BRIEF section 6, for each hyperfile configuration with the WAL."""
    rows = []
    for s in ("hf-s3-wal-cache", "hf-s3-wal", "hf-s3-nowal",
              "hf-dir-wal-cache"):
        def get(w):
            return runs.get((s, w)), runs.get(("memory", w))
        r, m = get("randwrite-qd32")
        if r is None:
            continue
        if r.get("status") != "ok":
            rows.append((s, "all", r.get("status"), "", ""))
            continue

        def add(name, value, target, ok, fmtv):
            rows.append((s, name, fmtv(value) if value is not None else "-",
                         target, "-" if ok is None else
                         ("meets" if ok else "misses")))
        q = ratio(r.get("iops"), m and m.get("iops"))
        add("4 KiB randwrite QD32 / memory", q, ">= 0.70",
            None if q is None else q >= 0.7, fmt_ratio)
        rw, mw = get("randread-warm")
        q = ratio(rw and rw.get("iops"), mw and mw.get("iops"))
        add("4 KiB randread warm / memory", q, ">= 0.70",
            None if q is None else q >= 0.7, fmt_ratio)
        sr, _ = get("seqread")
        q = ratio(sr and sr.get("bw_bytes"), calib.get("get_bw_bytes"))
        add("cold 1 MiB seq read / parallel ranged GETs", q, ">= 0.80",
            None if q is None else q >= 0.8, fmt_ratio)
        for w in ("seqwrite", "randwrite-qd32"):
            rr, _ = get(w)
            q = rr and rr.get("derived", {}).get("drain_vs_put_bw")
            add("drain after %s / large-PUT bandwidth" % w, q, ">= 0.80",
                None if q is None else q >= 0.8, fmt_ratio)
        d = r.get("derived", {})
        q = d.get("s3_vs_oopb")
        add("S3 PUTs per GiB / one-object-per-block", q, "<= 0.002",
            None if q is None else q <= 1 / 500,
            lambda v: "1/%.0f" % (1 / v) if v else "0")
        q = d.get("s3_bytes_per_byte")
        add("S3 bytes per byte written (randwrite QD32)", q, "<= 1.15",
            None if q is None else q <= 1.15, lambda v: "%.3f" % v)
        # Issue #20: no cliffs when the store is slower than the writes.
        for w, side, lim in (("slow-seqwrite", "write", 100000),
                             ("slow-randwrite-qd32", "write", 20000),
                             ("slow-readlat", "read", None)):
            rr, _ = get(w)
            if rr is None or rr.get("status") != "ok":
                continue
            q = rr[side]["p99_us"]
            add("%s p99 (%s)" % (side, w), q,
                "<= %d ms" % (lim // 1000) if lim else "-",
                None if lim is None else q <= lim,
                lambda v: "%.1f ms" % (v / 1000.0))
    amp = (scale or {}).get("writeamp", {})
    if amp.get("bytes_per_byte") is not None:
        rows.append(("writeamp (S3)", "S3 bytes per byte, random 4 KiB over "
                     "16 GiB", "%.4f" % amp["bytes_per_byte"], "<= 1.15",
                     "meets" if amp["bytes_per_byte"] <= 1.15 else "misses"))
        rows.append(("writeamp (S3)", "S3 PUTs per GiB / one object per "
                     "block", "1/%.0f" % (1 / amp["vs_oopb"]), "<= 1/500",
                     "meets" if amp["vs_oopb"] <= 1 / 500 else "misses"))
        if amp.get("data_bytes"):
            f = amp.get("meta_bytes", 0) / amp["data_bytes"]
            rows.append(("writeamp (S3)", "S3 metadata bytes / data bytes",
                         "%.3f%%" % (100 * f), "<= 0.5%",
                         "meets" if f <= 0.005 else "misses"))
    mems = [m for m in (scale or {}).get("memory", [])
            if "read_rss_kib" in m and "mapped" in m]
    if mems:
        # Index memory: what the open and the reads added to the
        # process's RSS (its baseline is libraries and the store handle).
        m = mems[-1]
        f = (m["read_rss_kib"] - m["read_base_rss_kib"]) * 1024.0 / \
            (m["mapped"] * 4096)
        rows.append(("writeamp (dir)", "index memory of a reopened volume "
                     "(peak RSS - RSS before the open) / data, %d mapped "
                     "blocks, node_cache=256" % m["mapped"],
                     "%.3f%%" % (100 * f), "<= 0.5%",
                     "meets" if f <= 0.005 else "misses"))
    for o in (scale or {}).get("open", []):
        if o["segments"] >= 10000:
            n = sum(o["requests"].values())
            rows.append(("open (writeamp)", "open with %d segments (%s)"
                         % (o["segments"], o["kind"]),
                         "%.3f s, %d requests" % (o["seconds"], n),
                         "< 1 s, a handful",
                         "meets" if o["seconds"] < 1 and n <= 10
                         else "misses"))
    return rows


def dataset_tables(runs, systems):
    """The data-set workloads: S3 bytes stored per byte written."""
    L = []
    for w in DATASETS:
        rows = [(s, runs[(s, w)]) for s in systems if (s, w) in runs]
        if not rows:
            continue
        L.append("### Data set `%s`: an ext4 image of real files written "
                 "onto a fresh device (S3 bytes of run + drain)" % w)
        L.append("")
        ds = next((r["dataset"] for s, r in rows if r.get("dataset")), None)
        if ds:
            L.append("%d files (%.1f MiB) of %s (the first in the order of "
                     "the CRC-32 of their paths), in "
                     "an ext4 image of %.0f MiB (mkfs.ext4 -d) of which "
                     "%.1f MiB are not zeros and written, in %d requests "
                     "of up to 1 MiB, 8 in flight." % (
                         ds["files"], ds["file_bytes"] / MIB, ds["source"],
                         ds["image_bytes"] / MIB, ds["written_bytes"] / MIB,
                         ds["requests"]))
            L.append("")
        L.append("| system | MiB written | write + flush MiB/s | drain s | "
                 "S3 PUT-type requests | S3 MiB in | S3 bytes per byte | "
                 "server CPU s |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|")
        for s, r in rows:
            if r.get("status") != "ok":
                L.append("| %s | %s |  |  |  |  |  |  |" % (s, r["status"]))
                continue
            d = r["derived"]
            L.append("| %s | %.1f | %s | %.2f | %s | %s | %s | %s |" % (
                s, d["written_bytes"] / MIB,
                fmt(d.get("write_bw_bytes", 0) / MIB, 1), r["drain_s"],
                fmt(d.get("s3_puts")),
                fmt(d["s3_bytes_in"] / MIB, 1) if "s3_bytes_in" in d
                else "-",
                "%.3f" % d["s3_bytes_per_byte"]
                if "s3_bytes_per_byte" in d else "-",
                fmt(r.get("cpu_s", 0) + r.get("drain_cpu_s", 0), 1)))
        L.append("")
    return L


def variant_table(runs, systems, workloads):
    """Each compressed or encrypted system (SYS-zstdN, SYS-zstdfastN,
    SYS-enc) against
    SYS in the same run: the cost as ratios."""
    L = []
    for v in systems:
        b = variant_of(v)
        if b is None or b not in systems:
            continue
        for w in list(workloads) + list(DATASETS):
            r, r0 = runs.get((v, w)), runs.get((b, w))
            if not r or not r0 or r.get("status") != "ok" or \
               r0.get("status") != "ok":
                continue
            d, d0 = r["derived"], r0["derived"]
            if w in DATASETS:
                rate = ratio(d.get("write_bw_bytes"), d0.get("write_bw_bytes"))
                ios, ios0 = d.get("written_bytes"), d0.get("written_bytes")
                unit = 1 << 20              # CPU per MiB written
            else:
                rate = ratio(r.get("iops"), r0.get("iops"))
                ios = r["read"]["ios"] + r["write"]["ios"]
                ios0 = r0["read"]["ios"] + r0["write"]["ios"]
                unit = 1

            def cpu_per(x, n):
                if not n:
                    return None
                return 1e6 * (x.get("cpu_s", 0) + x.get("drain_cpu_s", 0)) \
                    / (n / unit)
            c, c0 = cpu_per(r, ios), cpu_per(r0, ios0)
            bpb, bpb0 = d.get("s3_bytes_per_byte"), d0.get("s3_bytes_per_byte")
            if not L:
                L.append("### Compression and encryption: each against the "
                         "same configuration without, same run")
                L.append("")
                L.append("Rate: IOPS (data sets: MiB/s of write + flush); "
                         "server CPU per I/O (data sets: per MiB written), "
                         "run + drain.")
                L.append("")
                L.append("| system | against | workload | rate ratio | "
                         "server CPU µs per I/O (or MiB) | S3 bytes per "
                         "byte |")
                L.append("|---|---|---|---:|---|---|")
            L.append("| %s | %s | %s | %s | %s | %s |" % (
                v, b, w, fmt_ratio(rate),
                "%s / %s" % (fmt(c, 1 if c < 100 else 0),
                             fmt(c0, 1 if c0 < 100 else 0))
                if c is not None and c0 is not None else "-",
                "%.3f / %.3f (%s)" % (bpb, bpb0, fmt_ratio(ratio(bpb, bpb0)))
                if bpb is not None and bpb0 else "-"))
    if L:
        L.append("")
    return L


def cmd_report(a):
    outdir = a.outdir
    recs = []
    for p in sorted(glob.glob(os.path.join(outdir, "raw", "*.json"))):
        if p.endswith((".fio.json", ".ds.json")) or re.search(r"\.s3-\d\.json$", p):
            continue
        base = os.path.basename(p)
        if base in ("calibration.json", "scale.json"):
            continue
        with open(p) as f:
            recs.append(json.load(f))

    def opt(name):
        p = os.path.join(outdir, "raw", name)
        if os.path.exists(p):
            with open(p) as f:
                return json.load(f)
        return {}
    calib, scale = opt("calibration.json"), opt("scale.json")
    machine = {}
    if os.path.exists(os.path.join(outdir, "machine.json")):
        with open(os.path.join(outdir, "machine.json")) as f:
            machine = json.load(f)
    command = ""
    if os.path.exists(os.path.join(outdir, "command.txt")):
        with open(os.path.join(outdir, "command.txt")) as f:
            command = f.read().strip()

    runs = {}
    for r in recs:
        r["derived"] = derive(r, calib)
        runs[(r["system"], r["workload"])] = r
    systems = [s for s in SYSTEMS if any(k[0] == s for k in runs)]
    systems += sorted({k[0] for k in runs} - set(systems), key=natural)
    # A baseline (SYS-base, bench/run --base-plugin) right above SYS.
    bases = [s for s in systems if s.endswith("-base") and s[:-5] in systems]
    systems = [s for s in systems if s not in bases]
    for b in bases:
        systems.insert(systems.index(b[:-5]), b)
    workloads = [w for w in WORKLOADS if any(k[1] == w for k in runs)]
    for r in recs:
        m = runs.get(("memory", r["workload"]))
        if m and m.get("status") == "ok" and r.get("status") == "ok":
            if m.get("iops"):
                r["derived"]["iops_vs_memory"] = r["iops"] / m["iops"]
            if m.get("bw_bytes"):
                r["derived"]["bw_vs_memory"] = r["bw_bytes"] / m["bw_bytes"]
            if r["workload"] == "fs" and m.get("fs_unpack_s"):
                r["derived"]["unpack_time_vs_memory"] = \
                    r["fs_unpack_s"] / m["fs_unpack_s"]

    made = plots(outdir, runs, systems, workloads, scale)
    bar_rows = bar(runs, calib, scale)
    results = {"machine": machine, "command": command,
               "calibration": calib, "scale": scale,
               "runs": recs, "bar": [dict(zip(("system", "figure", "value",
                                               "target", "verdict"), b))
                                     for b in bar_rows],
               "plots": made}
    with open(os.path.join(outdir, "results.json"), "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)

    L = []
    L.append("Command: `%s`  " % command)
    if machine:
        L.append("Machine: %s, %s CPUs, %s GiB RAM, kernel %s, Debian %s, "
                 "/tmp on %s; %s; hyperfile %s; %s; load average at start "
                 "%s.  " % (machine.get("cpu"), machine.get("cpus"),
                            machine.get("mem_gib"), machine.get("kernel"),
                            machine.get("debian"), machine.get("tmp_fs"),
                            machine.get("nbdkit"), machine.get("git"),
                            machine.get("date"),
                            " ".join(machine.get("loadavg", []))))
    if calib:
        L.append("S3 server (%s) calibration: large PUTs "
                 "%.0f MiB/s (%.0f MiB in objects of %s MiB, 4 parallel "
                 "curl), ranged 1 MiB GETs %.0f MiB/s (8 parallel)." % (
                     calib.get("server", "s3rver on loopback"),
                     calib["put_bw_bytes"] / MIB, calib["bytes"] / MIB,
                     calib.get("object_mib", "?"),
                     calib["get_bw_bytes"] / MIB))
    L.append("")
    L.append("### Throughput and latency (ratio = IOPS / nbdkit memory's "
             "IOPS in the same run)")
    L.append("")
    for w in workloads:
        L.append("**%s** (`%s`)" % (WORKLOAD_TEXT.get(w, w), w))
        L.append("")
        side = "write" if w in WRITE_SIDE else "read"
        mixed = w in MIXED
        L.append("| system | IOPS | MiB/s | ratio | %sp50 µs | p99 µs | "
                 "p99.9 µs | %sserver CPU s | peak RSS MiB | S3 requests "
                 "(run + drain) | drain s |" % (
                     "read " if mixed else "",
                     "write p99 / p99.9 µs | " if mixed else ""))
        L.append("|---|---:|---:|---:|---:|---:|---:|%s---:|---:|---|---:|"
                 % ("---:|" if mixed else ""))
        for s in systems:
            r = runs.get((s, w))
            if r is None:
                continue
            if r.get("status") != "ok":
                L.append("| %s | %s |  |  |  |  |  |%s  |  |  |  |" % (
                    s, r.get("status"), "  |" if mixed else ""))
                continue
            cpu = r.get("cpu_s", 0) + r.get("drain_cpu_s", 0)
            rss = max(r.get("rss_kib", 0), r.get("drain_rss_kib", 0))
            reqs = r.get("s3_total", {}).get("requests", {})
            L.append("| %s | %s | %s | %s | %s | %s | %s | %s%s | %s | %s "
                     "| %s |" % (
                s, fmt(r["iops"]), fmt(r["bw_bytes"] / MIB, 1),
                fmt_ratio(r["derived"].get("iops_vs_memory")),
                fmt(r[side]["p50_us"]), fmt(r[side]["p99_us"]),
                fmt(r[side].get("p999_us")),
                ("%s / %s | " % (fmt(r["write"]["p99_us"]),
                                 fmt(r["write"].get("p999_us"))))
                if mixed else "",
                fmt(cpu, 1), fmt(rss / 1024.0, 0),
                ", ".join("%s %s" % (k, fmt(v)) for k, v in reqs.items())
                or "0",
                fmt(r.get("drain_s"), 2) if "drain_s" in r else ""))
        logged = [(s, r) for s in systems
                  for r in [runs.get((s, w))]
                  if r and r.get("status") == "ok"
                  and r[side].get("pct_from_log")]
        if logged:
            L.append("")
            L.append("Percentiles from fio's log of every completion, "
                     "without the I/Os in flight when the run ended (fio "
                     "stamps them all with the last one's completion "
                     "time): %s." % ", ".join(
                         "%s %s of %s" % (
                             s, fmt(r[side].get("end_batch_dropped", 0)),
                             fmt(r[side]["pct_from_log"] +
                                 r[side].get("end_batch_dropped", 0)))
                         for s, r in logged))
        L.append("")
    L.append("### S3 cost of writes (run + drain)")
    L.append("")
    L.append("| system | workload | GiB written | PUT-type requests | "
             "PUTs per GiB | vs one object per block | S3 bytes per byte | "
             "drain s | drain MiB/s | drain / large-PUT bw | sustained "
             "write IOPS (incl. drain) |")
    L.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for w in WRITE_WORKLOADS:
        for s in systems:
            r = runs.get((s, w))
            if not r or r.get("status") != "ok":
                continue
            d = r["derived"]
            if "written_bytes" not in d:
                continue
            L.append("| %s | %s | %.3f | %s | %s | %s | %s | %s | %s | %s "
                     "| %s |" % (
                         s, w, d["written_bytes"] / GIB, fmt(d["s3_puts"]),
                         fmt(d["s3_puts_per_gib"]),
                         ("1/%.0f" % (1 / d["s3_vs_oopb"]))
                         if d["s3_vs_oopb"] else "0",
                         "%.3f" % d["s3_bytes_per_byte"],
                         fmt(r.get("drain_s"), 2),
                         fmt(d.get("drain_bw_bytes", 0) / MIB, 1),
                         fmt_ratio(d.get("drain_vs_put_bw")),
                         fmt(d.get("sustained_write_iops"))))
    L.append("")
    fs = [(s, runs.get((s, "fs"))) for s in systems if (s, "fs") in runs]
    if fs:
        L.append("### File system: ext4 via nbdfuse + loop, unpack a tree "
                 "of small files, sync")
        L.append("")
        L.append("| system | mkfs s | unpack + sync s | ratio to memory "
                 "(time) | drain s | S3 PUT-type requests | S3 bytes in | "
                 "server CPU s |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|")
        for s, r in fs:
            if r.get("status") != "ok":
                L.append("| %s | %s |  |  |  |  |  |  |" % (s, r["status"]))
                continue
            d = r["derived"]
            L.append("| %s | %.2f | %.2f | %s | %.2f | %s | %s | %s |" % (
                s, r["fs_mkfs_s"], r["fs_unpack_s"],
                fmt_ratio(d.get("unpack_time_vs_memory")), r["drain_s"],
                fmt(d.get("s3_puts")), fmt(d.get("s3_bytes_in")),
                fmt(r.get("cpu_s", 0) + r.get("drain_cpu_s", 0), 1)))
        r0 = fs[0][1]
        if r0.get("fs_files"):
            L.append("")
            L.append("Tree: %d files, tar of %.1f MiB." % (
                r0["fs_files"], r0["fs_bytes"] / MIB))
        L.append("")
    L += dataset_tables(runs, systems)
    L += variant_table(runs, systems, workloads)
    if scale.get("open"):
        L.append("### Open time against segments (S3 store, writeamp -o)")
        L.append("")
        L.append("| segments | open after | seconds | GET | LIST | PUT | "
                 "HEAD | DELETE | newest checkpoint / head |")
        L.append("|---:|---|---:|---:|---:|---:|---:|---:|---|")
        for o in scale["open"]:
            q = o["requests"]
            L.append("| %d | %s | %.4f | %d | %d | %d | %d | %d | %d / %d |"
                     % (o["segments"], o["kind"], o["seconds"], q["get"],
                        q["list"], q["put"], q["head"], q["delete"],
                        o["checkpoint"], o["head"]))
        L.append("")
    amp = scale.get("writeamp", {})
    if amp.get("bytes_per_byte") is not None:
        L.append("### Write amplification (S3 store, writeamp: random 4 KiB "
                 "writes over a 16 GiB volume, few overwrites)")
        L.append("")
        L.append("%.3f GiB written, segment %s MiB: %d PUT requests = %.1f "
                 "per GiB (one object per block: %d per GiB, ratio 1/%.0f); "
                 "%.4f S3 bytes per byte written; metadata %.3f%% of data."
                 % (amp.get("gib", 0), amp.get("segment_mib", "?"),
                    amp.get("puts", 0), amp.get("puts_per_gib", 0),
                    OOPB_PUTS_PER_GIB, 1 / amp["vs_oopb"]
                    if amp.get("vs_oopb") else 0, amp["bytes_per_byte"],
                    100.0 * amp.get("meta_bytes", 0) /
                    max(1, amp.get("data_bytes", 1))))
        L.append("")
    if scale.get("memory"):
        L.append("### Memory against mapped blocks (directory store, "
                 "writeamp -m)")
        L.append("")
        L.append("Two processes per row: the first maps the blocks (its "
                 "peak RSS is the write phase's, default node cache); the "
                 "second (`writeamp -x`) reopens that volume read-only with "
                 "`node_cache=256` and does 20,000 random 4 KiB reads, so "
                 "its peak RSS is the reopened volume's alone.  \"Before "
                 "open\" is that process's RSS just before the open "
                 "(libraries, store handle): the index's share is the "
                 "difference.")
        L.append("")
        L.append("| mapped blocks | GiB | write s | write phase: peak RSS "
                 "MiB | reopen + reads: peak RSS MiB | reopen: RSS before "
                 "open MiB | reads/s |")
        L.append("|---:|---:|---:|---:|---:|---:|---:|")
        for m in scale["memory"]:
            if "write_rss_kib" not in m:
                L.append("| %d | failed |  |  |  |  |  |" % m["blocks"])
                continue
            row = "| %d | %.1f | %.1f | %.1f |" % (
                m["mapped"], m["mapped"] * 4096 / GIB, m["write_s"],
                m["write_rss_kib"] / 1024.0)
            if "read_rss_kib" not in m:
                L.append(row + " reopen failed |  |  |")
                continue
            L.append(row + " %.1f | %.1f | %.0f |" % (
                m["read_rss_kib"] / 1024.0,
                m["read_base_rss_kib"] / 1024.0, m["reads_per_s"]))
        L.append("")
    if bar_rows:
        L.append("### The bar (BRIEF section 6)")
        L.append("")
        L.append("| system | figure | value | target | verdict |")
        L.append("|---|---|---|---|---|")
        for b in bar_rows:
            L.append("| %s |" % " | ".join(str(x) for x in b))
        L.append("")
    if made:
        L.append("### Plots")
        L.append("")
        for p in made:
            L.append("![%s](%s)" % (os.path.basename(p), p))
        L.append("")
    with open(os.path.join(outdir, "results.md"), "w") as f:
        f.write("\n".join(L))
    print("report: %d runs, %d plots -> %s" % (
        len(recs), len(made), os.path.join(outdir, "results.md")))


def main():
    ap = argparse.ArgumentParser(prog="report.py")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("machine")
    p.add_argument("--plugin", default=".")
    p = sub.add_parser("record")
    for k in ("system", "workload", "status"):
        p.add_argument("--" + k, required=True)
    for k in ("fio", "s3-before", "s3-end", "s3-after", "cpu-s",
              "s3server-cpu-s", "flush-s", "drain-s", "drain-cpu-s",
              "drain-s3server-cpu-s", "fs-mkfs-s", "fs-unpack-s", "rss-kib",
              "drain-rss-kib", "fs-files", "fs-bytes", "dataset", "ds-run",
              "clat-logs"):
        p.add_argument("--" + k)
    p = sub.add_parser("calibration")
    p.add_argument("--bytes", type=int, required=True)
    p.add_argument("--object-mib", type=int, required=True)
    p.add_argument("--put-s", type=float, required=True)
    p.add_argument("--get-s", type=float, required=True)
    p.add_argument("--server", default="s3rver on loopback")
    p = sub.add_parser("scale")
    p.add_argument("file")
    p = sub.add_parser("report")
    p.add_argument("outdir")
    a = ap.parse_args()
    {"machine": cmd_machine, "record": cmd_record,
     "calibration": cmd_calibration, "scale": cmd_scale,
     "report": cmd_report}[a.cmd](a)


if __name__ == "__main__":
    main()
