#!/usr/bin/python3
"""mirror_clients.py -- machines reading one file at once through a cold mirror.

    /usr/bin/python3 tests/bench/mirror_clients.py [--machines 3] [--ranges 8]
        [--run-mib 16] [--rate 100m] [--rounds 1]
        [--setting NAME=ARG,ARG ...]

Starts the emulator and the nginx CDN (tests/harness/hubstack.py) with the
1 GiB LFS fixture (tests/fixtures/large/big-file.json), then for each
--setting (a name and the hubfs-mirror arguments it adds, comma-separated;
default: the mirror's defaults) starts a fresh contrib/mirror/hubfs-mirror
with --log-slices, and has --machines clients, each with --ranges
connections asking for the file in ranges of --run-mib MiB in order (as
hubfs reads ahead through a mirror, without its store), read the whole file
at once.  Prints per run: seconds, the CDN's bytes beyond one copy of the
file (a slice fetched again: a waiter whose --lock-wait ran out), and the
lock waits (slice lines of the mirror's log that were a HIT after 50 ms or
more: a wait for a slice another request was fetching) with their total
time; then the load average.  It isolates the mirror's behaviour from
hubfs's (no FUSE, no store, no hashing).  Never asserts a time.  Standard
library only.
"""
import argparse
import http.client
import json
import os
import shutil
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "harness"))

import hubmirror  # noqa: E402  (path set above)
import hubstack  # noqa: E402

FIXTURE = os.path.join(ROOT, "tests", "fixtures", "large", "big-file.json")
REPO, FILE = "acme/big-model", "model-1g.safetensors"
MiB = 1 << 20
WAIT = 0.05     # a HIT slice that took this long waited for another request


def machine(url, path, size, ranges, run):
    """The threads of one client: ranges connections over one offset list."""
    u = url.split("//", 1)[1]
    host, port = u.rsplit(":", 1)
    offsets = list(range(0, size, run))
    lock = threading.Lock()
    errors = []

    def reader():
        conn = http.client.HTTPConnection(host, int(port), timeout=120)
        try:
            while True:
                with lock:
                    if not offsets:
                        return
                    off = offsets.pop(0)
                last = min(size, off + run) - 1
                conn.request("GET", path, headers={"Range": "bytes=%d-%d" % (off, last)})
                resp = conn.getresponse()
                got = 0
                while True:
                    chunk = resp.read(MiB)
                    if not chunk:
                        break
                    got += len(chunk)
                if resp.status != 206 or got != last - off + 1:
                    raise RuntimeError("range %d-%d: %d, %d bytes" % (off, last, resp.status,
                                                                     got))
        except Exception as e:  # noqa: BLE001 -- reported by the caller
            errors.append(e)
        finally:
            conn.close()

    return [threading.Thread(target=reader) for _ in range(ranges)], errors


def cdn_bytes(stack, mark):
    time.sleep(0.3)     # nginx logs a request when it ends
    total = 0
    with open(stack.cdn_log_path, "rb") as f:
        f.seek(mark)
        for line in f:
            try:
                total += max(0, int(json.loads(line).get("bytes", 0)))
            except ValueError:
                continue
    return total


def one_run(stack, tmp, name, extra, args, size, path):
    cache = os.path.join(tmp, "mirror-" + name)
    os.makedirs(cache)
    os.chmod(cache, 0o755)      # the workers run as nobody under root
    mirror = hubmirror.Mirror(stack.endpoint, cache, extra + ["--log-slices"])
    mirror.start()
    try:
        mark = os.path.getsize(stack.cdn_log_path)
        load = os.getloadavg()[0]
        threads, errors = [], []
        for _ in range(args.machines):
            t, e = machine(mirror.url, path, size, args.ranges, args.run_mib * MiB)
            threads += t
            errors.append(e)
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        secs = time.monotonic() - t0
        extra_bytes = cdn_bytes(stack, mark) - size
        waits = [e for e in mirror.log() if e.get("slice") and e.get("cache") == "HIT"
                 and e.get("seconds", 0) >= WAIT]
    finally:
        mirror.stop()
        shutil.rmtree(cache, ignore_errors=True)
    failed = [e for errs in errors for e in errs]
    if failed:
        print("%-14s failed: %s" % (name, failed[0]), flush=True)
        return
    print("%-14s %6.2f s  CDN beyond one copy %7.1f MiB  lock waits %4d (%.1f s)  "
          "load %.1f" % (name, secs, extra_bytes / MiB, len(waits),
                         sum(e["seconds"] for e in waits), load), flush=True)


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--machines", type=int, default=3)
    ap.add_argument("--ranges", type=int, default=8, help="connections per machine (8)")
    ap.add_argument("--run-mib", type=int, default=16, help="MiB per range (16)")
    ap.add_argument("--rate", default="100m", help="the CDN's limit_rate; none: uncapped")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--setting", action="append", default=[], metavar="NAME=ARGS",
                    help="e.g. wait200=--lock-wait,200ms (repeatable)")
    return ap.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    settings = [("default", [])]
    if args.setting:
        settings = []
        for s in args.setting:
            name, _, rest = s.partition("=")
            settings.append((name, [a for a in rest.split(",") if a]))
    rate = None if args.rate == "none" else args.rate
    tmp = tempfile.mkdtemp(prefix="hubfs-mirror-clients-")
    os.chmod(tmp, 0o755)
    try:
        with hubstack.Stack(fixtures=[FIXTURE], cdn_rate=rate) as stack:
            r = stack.repo(REPO)
            f = r["commits"][r["refs"]["main"]]["files"][FILE]
            path = "/%s/resolve/main/%s" % (REPO, FILE)
            print("%d machines x %d ranges of %d MiB, CDN %s" % (
                args.machines, args.ranges, args.run_mib, rate or "uncapped"), flush=True)
            for _ in range(args.rounds):
                for name, extra in settings:
                    one_run(stack, tmp, name, extra, args, f["size"], path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
