#!/usr/bin/python3
"""xet_read.py -- a cold whole-file read of a Xet file: the CAS path vs the bridge.

    /usr/bin/python3 tests/bench/xet_read.py [--file model.bin] [--rounds 1]
        [--bin LABEL=PATH ...]

Starts the emulator, its CAS and the nginx CDN (tests/harness/hubstack.py)
with tests/fixtures/large/xet.json (a 256 MiB Xet file of random bytes,
zeros, text and floats), then for each hubfs binary (default: $HUBFS_BIN,
else build/hubfs) mounts on a cold store, once by default (the CAS) and once
with --no-xet (the bridge), in turns, and reads the file whole with cat.
Prints per run: seconds, MB/s, the daemon's CPU seconds per GiB, CAS reconstruction calls (and per GiB), xorb
requests and bytes (nginx's log), bridge bytes (the CDN path of the file's
sha256), resolves, and whether the store recorded the blob verified; then
the load average, and per binary and route the medians over the rounds.
Never asserts a time.  Standard library only.
"""
import argparse
import os
import statistics
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import mountlib  # noqa: E402  (path set above; it brings hubstack too)

FIXTURE = os.path.join(ROOT, "tests", "fixtures", "large", "xet.json")
REPO = "acme/xet-revisions"
GiB = 1 << 30
CLK_TCK = os.sysconf("SC_CLK_TCK")


def daemon_cpu(mnt):
    """CPU seconds (user + system, all threads) of mnt's daemon, or 0."""
    for pid in mountlib.daemon_pids(mnt):
        try:
            with open("/proc/%d/stat" % pid) as fh:
                v = fh.read().rsplit(")", 1)[1].split()
            return (int(v[11]) + int(v[12])) / CLK_TCK
        except (OSError, ValueError, IndexError):
            pass
    return 0.0


def one_read(stack, tmp, hubfs, label, mode, f, commit, n):
    mountlib.HUBFS = hubfs
    args = ["--no-xet"] if mode == "bridge" else []
    m = mountlib.Mount(tmp, stack.endpoint, name="%s-%s-%d" % (label, mode, n),
                       args=args)
    m.start()
    try:
        path = m.path("acme", "xet-revisions@" + commit, f["path"])
        os.stat(path)  # the lookup is not part of the read
        stack.clear_logs()
        cpu0 = daemon_cpu(m.mnt)
        t0 = time.monotonic()
        with open(path, "rb") as fh:
            while fh.read(1 << 20):
                pass
        secs = time.monotonic() - t0
        cpu = daemon_cpu(m.mnt) - cpu0
        hub = stack.hub_log()
        cdn = stack.cdn_log()
        blob = os.path.join(m.store, "blobs", f["sha256"])
        for _ in range(100):
            if os.path.exists(blob):
                break
            time.sleep(0.05)
        recons = sum(1 for e in hub if e["bucket"] == "cas"
                     and "/reconstructions/" in e["path"])
        xorbs = [e for e in cdn if "/xorbs/" in e["uri"]]
        bridge = sum(max(e["bytes"], 0) for e in cdn
                     if e["uri"].split("?")[0].endswith("/" + f["sha256"]))
        resolves = sum(1 for e in hub if "/resolve/" in e["path"])
        return {"label": label, "mode": mode, "secs": secs,
                "mbps": f["size"] / secs / 1e6,
                "cpu_gib": cpu * GiB / f["size"], "recons": recons,
                "per_gib": recons * GiB / f["size"], "xorb_req": len(xorbs),
                "xorb_bytes": sum(max(e["bytes"], 0) for e in xorbs),
                "bridge": bridge, "resolves": resolves,
                "verified": os.path.exists(blob)}
    finally:
        m.stop()
        shutil.rmtree(m.store, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--file", default="model.bin")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--bin", action="append", default=[],
                    metavar="LABEL=PATH")
    a = ap.parse_args()
    bins = [b.split("=", 1) for b in a.bin] or [[
        "hubfs", os.environ.get("HUBFS_BIN")
        or os.path.join(ROOT, "build", "hubfs")]]
    tmp = tempfile.mkdtemp(prefix="hubfs-xetread-")
    os.chmod(tmp, 0o755)
    rows = []
    try:
        with mountlib.hubstack.Stack(os.path.join(tmp, "stack"),
                                     fixtures=[FIXTURE]) as stack:
            if not stack.xet_built:
                print("no Xet objects (no test venv): nothing to measure")
                return 0
            files, commit = mountlib.files_at(stack.manifest, "model", REPO,
                                              "v1")
            f = dict(files[a.file], path=a.file)
            for n in range(a.rounds):
                for label, path in bins:
                    for mode in ("cas", "bridge"):
                        rows.append(one_read(stack, tmp, os.path.abspath(path),
                                             label, mode, f, commit, n))
                        r = rows[-1]
                        print("%-8s %-6s %6.2f s %7.1f MB/s  CPU %5.2f s/GiB  "
                              "CAS calls %3d "
                              "(%4.0f/GiB)  xorb %4d req %10d B  bridge %10d "
                              "B  resolves %3d  verified %s" % (
                                  r["label"], r["mode"], r["secs"], r["mbps"],
                                  r["cpu_gib"], r["recons"], r["per_gib"], r["xorb_req"],
                                  r["xorb_bytes"], r["bridge"], r["resolves"],
                                  r["verified"]), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for label, _ in bins:
        for mode in ("cas", "bridge"):
            mine = [r for r in rows if r["label"] == label and r["mode"] == mode]
            if mine:
                print("median of %d: %-8s %-6s %6.2f s  CPU %5.2f s/GiB" % (
                    len(mine), label, mode,
                    statistics.median(r["secs"] for r in mine),
                    statistics.median(r["cpu_gib"] for r in mine)))
    print("file %s, %d bytes; load average %s" % (
        a.file, f["size"], " ".join(open("/proc/loadavg").read().split()[:3])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
