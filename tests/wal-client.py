#!/usr/bin/env python3
# A client for the WAL crash and outage tests: writes stamped blocks over
# a small region (writes overlap), flushes now and then, and keeps a
# journal of what the server acknowledged, so that "verify" can tell
# after a crash whether every acknowledged write is there and no block
# is torn.
#
#   wal-client.py write URI JOURNAL NBLOCKS SEED [SECONDS [MAX_S [RATE]]]
#       write until the connection fails (the server was killed) or
#       SECONDS pass; with MAX_S, fail if a write or flush takes longer
#       (the outage test: nothing may wait for S3); RATE caps writes per
#       second; WAL_CLIENT_NO_READS=1 in the environment: only write;
#       WAL_CLIENT_READY=FILE: create FILE once connected (the crash
#       test starts its kill delay from there, not from the launch)
#   wal-client.py verify URI JOURNAL NBLOCKS [flushed]
#       check the volume against the journal; "flushed" accepts the
#       loss of writes after the last completed flush (a wal=off server)
#
# Block b written by write number g holds struct.pack("<QQ", b, g)
# repeated: a torn block shows two different g (or a wrong b).
# Journal lines: "P g first n" before a write is sent, "A g" once it is
# acknowledged, "F" once a flush completed, "E errno" when a write failed
# with an error that is a clear refusal (ENOSPC) rather than a crash;
# verify settles writes left in flight with "A g" (it landed) or "X g",
# then rewrites the journal as what the volume holds: "S b g" per block
# (block b holds write g), "M g" (the last write number used) and "F".
# So the journal stays about NBLOCKS lines however many rounds a crash
# loop runs, and a writer starts fast.

import os
import random
import struct
import sys
import time

import nbd

BS = 4096


def block(b, g):
    return struct.pack("<QQ", b, g) * (BS // 16)


def journal_state(path):
    """Per block: last acknowledged gen (0 = never written, zeros), and
    the set of gens of writes sent but not acknowledged."""
    acked = {}
    pending = {}
    flushed = {}          # per block: last gen acked before a flush
    cur = {}              # acked since start, as flushed snapshot source
    maxg = 0
    if os.path.exists(path):
        with open(path) as f:
            lines = f.read().splitlines()
    else:
        lines = []
    for line in lines:
        p = line.split()
        if not p:
            continue
        if p[0] == "P" and len(p) == 4:
            g, first, n = int(p[1]), int(p[2]), int(p[3])
            pending[g] = (first, n)
            maxg = max(maxg, g)
        elif p[0] == "A" and len(p) == 2:
            g = int(p[1])
            first, n = pending.pop(g)
            for b in range(first, first + n):
                acked[b] = g
                cur[b] = g
        elif p[0] == "X" and len(p) == 2:
            pending.pop(int(p[1]), None)
        elif p[0] == "S" and len(p) == 3:
            b, g = int(p[1]), int(p[2])
            acked[b] = g
            cur[b] = g
        elif p[0] == "M" and len(p) == 2:
            maxg = max(maxg, int(p[1]))
        elif p[0] == "F":
            flushed = dict(cur)
    return acked, pending, flushed, maxg


def do_write(uri, jpath, nblocks, seed, seconds, op_max, rate):
    _, _, _, maxg = journal_state(jpath)
    # Reads of blocks not in memory or the cache need the store.
    reads = os.environ.get("WAL_CLIENT_NO_READS") is None
    rng = random.Random(seed)
    h = nbd.NBD()
    h.connect_uri(uri)
    j = os.open(jpath, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    ready = os.environ.get("WAL_CLIENT_READY")
    if ready:
        os.close(os.open(ready, os.O_WRONLY | os.O_CREAT, 0o600))
    g = maxg
    end = time.time() + seconds if seconds else None
    nwrites = nflush = 0
    worst = 0.0
    start = time.time()
    while end is None or time.time() < end:
        if rate:
            ahead = start + nwrites / rate - time.time()
            if ahead > 0:
                time.sleep(ahead)
        g += 1
        n = rng.randint(1, 16)
        first = rng.randrange(0, nblocks - n + 1)
        data = b"".join(block(b, g) for b in range(first, first + n))
        os.write(j, b"P %d %d %d\n" % (g, first, n))
        flags = nbd.CMD_FLAG_FUA if rng.random() < 0.02 else 0
        t0 = time.time()
        try:
            h.pwrite(data, first * BS, flags)
        except nbd.Error as e:
            if e.errno == "ENOSPC":             # refused: say so
                os.write(j, b"E ENOSPC\n")
                print("write %d: ENOSPC" % g, flush=True)
                sys.exit(28)
            print("write %d: %s (server gone?)" % (g, e), flush=True)
            break
        worst = max(worst, time.time() - t0)
        if op_max and time.time() - t0 > op_max:
            print("write %d took %.1f s (limit %.1f s)" %
                  (g, time.time() - t0, op_max), flush=True)
            sys.exit(1)
        os.write(j, b"A %d\n" % g)
        if flags:
            os.write(j, b"F\n")
        nwrites += 1
        if rng.random() < 0.08:
            t0 = time.time()
            try:
                h.flush()
            except nbd.Error as e:
                print("flush: %s (server gone?)" % e, flush=True)
                break
            dt = time.time() - t0
            worst = max(worst, dt)
            if op_max and dt > op_max:
                print("flush took %.1f s (limit %.1f s)" % (dt, op_max),
                      flush=True)
                sys.exit(1)
            os.write(j, b"F\n")
            nflush += 1
        if reads and rng.random() < 0.05:       # reads fill the cache
            off = rng.randrange(0, nblocks) * BS
            try:
                h.pread(BS, off)
            except nbd.Error:
                break
    print("wrote %d, flushed %d times, slowest write or flush %.3f s" %
          (nwrites, nflush, worst), flush=True)
    os.close(j)
    try:
        h.shutdown()
    except nbd.Error:
        pass


def do_verify(uri, jpath, nblocks, flushed_only):
    acked, pending, flushed, _ = journal_state(jpath)
    h = nbd.NBD()
    h.connect_uri(uri)
    # Writes in flight at the crash: their blocks may hold them.
    maybe = {}
    for g, (first, n) in pending.items():
        for b in range(first, first + n):
            maybe.setdefault(b, set()).add(g)
    bad = 0
    chunk = 256
    for c in range(0, nblocks, chunk):
        data = h.pread(chunk * BS, c * BS)
        for i in range(chunk):
            b = c + i
            d = data[i * BS:(i + 1) * BS]
            if d == bytes(BS):
                got = 0
            else:
                sb, sg = struct.unpack("<QQ", d[:16])
                if sb != b or d != block(b, sg):
                    print("block %d is torn or misplaced" % b)
                    bad += 1
                    continue
                got = sg
            want = acked.get(b, 0)
            ok = got == want or got in maybe.get(b, ())
            if flushed_only and not ok:
                # Without a log only flushed writes are promised, plus
                # some later ones.
                ok = got >= flushed.get(b, 0)
            if not ok:
                print("block %d holds write %d, expected %d%s" %
                      (b, got, want, " (or in flight %s)" %
                       sorted(maybe[b]) if b in maybe else ""))
                bad += 1
    # What is there now is the truth the next round builds on.
    with open(jpath, "a") as j:
        for g in sorted(pending):
            first, n = pending[g]
            d = h.pread(BS, first * BS)
            if d != bytes(BS) and struct.unpack("<QQ", d[:16])[1] == g:
                j.write("A %d\n" % g)
            else:
                j.write("X %d\n" % g)
        j.write("F\n")
    compact_journal(jpath)
    if bad:
        print("verify: %d bad blocks" % bad)
        sys.exit(1)
    print("verify: %d blocks ok (%d writes acknowledged)" %
          (nblocks, len(set(acked.values()))))


def compact_journal(jpath):
    """Rewrite a settled journal (nothing in flight) as its state."""
    acked, pending, _, maxg = journal_state(jpath)
    assert not pending
    tmp = jpath + ".tmp"
    with open(tmp, "w") as j:
        for b in sorted(acked):
            j.write("S %d %d\n" % (b, acked[b]))
        j.write("M %d\nF\n" % maxg)
        j.flush()
        os.fsync(j.fileno())
    os.rename(tmp, jpath)


def main():
    a = sys.argv[1:]
    if len(a) >= 5 and a[0] == "write":
        do_write(a[1], a[2], int(a[3]), int(a[4]),
                 float(a[5]) if len(a) > 5 else 0,
                 float(a[6]) if len(a) > 6 else 0,
                 float(a[7]) if len(a) > 7 else 0)
    elif len(a) >= 4 and a[0] == "verify":
        do_verify(a[1], a[2], int(a[3]), len(a) > 4 and a[4] == "flushed")
    else:
        sys.stderr.write(__doc__ if __doc__ else "bad usage\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
