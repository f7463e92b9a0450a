#!/usr/bin/python3
"""profile.py -- where the hubfs daemon's CPU goes during one cold 1 GiB read.

    /usr/bin/python3 tests/bench/profile.py [--rate 100m] [--keep-data FILE]
    /usr/bin/python3 tests/bench/profile.py --report FILE     (an earlier one)

Starts the bench's stack (emulator + nginx CDN, `--rate` per connection,
`none` for uncapped), mounts hubfs on a fresh store, drops the page cache
like the bench's cold case, then reads the 1 GiB fixture through the mount
under `perf record -e cpu-clock -g -p DAEMON` (this VM has no hardware
counters: cpu-clock samples) and `perf stat` of the syscalls that matter.
It prints the daemon's samples by what they were doing (from each sample's
call chain: hashing, page-cache writes, socket receive, FUSE replies, ...),
per thread, and the syscall counts.  The buckets are matched on kernel and
library symbols; user stacks without frame pointers stop early, so a
sample in plain libc memmove is counted as "memcpy" whatever called it.

Needs root (drop_caches, perf on another process) and perf (Debian:
linux-perf).  Standard library only; HUBFS_BIN selects the binary.
"""

import argparse
import collections
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

# (bucket, substrings of a sample's call chain), the first match wins.
BUCKETS = [
    ("fdatasync", ["ext4_sync_file", "fdatasync", "file_write_and_wait"]),
    ("sqlite", ["libsqlite3", "sqlite3_"]),
    ("hash (sha256/sha1)", ["libcrypto", "EVP_Digest", "db_hash_update"]),
    ("pread (hash read-back, libfuse copies)", ["__x64_sys_pread64"]),
    ("pwrite (page cache)", ["__x64_sys_pwrite64"]),
    ("recv (socket copy)", ["tcp_recvmsg", "__x64_sys_recvfrom"]),
    ("FUSE replies and requests", ["splice", "fuse_dev", "fuse_reply",
                                   "fuse_session", "fuse_buf_copy"]),
    ("page faults, malloc", ["asm_exc_page_fault", "malloc", "calloc", "cfree",
                             "__munmap", "__mmap"]),
    ("memcpy", ["__memmove", "__memcpy"]),
    ("poll (wake-ups)", ["do_sys_poll", "__x64_sys_poll", "curl_multi_poll"]),
    ("futex (locks, queues)", ["futex", "pthread_mutex", "pthread_cond"]),
    ("libcurl (other)", ["libcurl"]),
    ("send (requests)", ["tcp_sendmsg"]),
]
SYSCALLS = ["splice", "read", "writev", "pwrite64", "pread64", "recvfrom", "poll",
            "futex", "fdatasync", "mmap", "munmap"]


def samples(data):
    """(tid, seconds, [symbols leaf first]) of every sample in data."""
    out = subprocess.run(["perf", "script", "-i", data, "-F", "tid,period,ip,sym,dso"],
                         capture_output=True, text=True, check=True).stdout
    for block in out.split("\n\n"):
        lines = block.splitlines()
        if not lines or lines[0].startswith("\t"):
            continue
        head = lines[0].split()
        chain = [" ".join(line.split()[1:]) for line in lines[1:]
                 if line.startswith("\t")]
        yield head[0], int(head[1]) / 1e9, chain


def report(data):
    total = collections.Counter()
    per_thread = collections.Counter()
    thread_bucket = collections.Counter()
    for tid, secs, chain in samples(data):
        text = " ".join(chain)
        name = next((n for n, keys in BUCKETS if any(k in text for k in keys)), "other")
        total[name] += secs
        per_thread[tid] += secs
        thread_bucket[(tid, name)] += secs
    whole = sum(total.values()) or 1
    print("daemon samples: %.2f s of CPU" % whole)
    for name, secs in total.most_common():
        print("  %5.1f%%  %5.2f s  %s" % (100 * secs / whole, secs, name))
    print("busiest threads:")
    for tid, secs in per_thread.most_common(4):
        parts = ", ".join("%s %.2f" % (n, s) for (t, n), s in thread_bucket.most_common()
                          if t == tid and s >= 0.01)
        print("  %s: %.2f s (%s)" % (tid, secs, parts))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", default="100m", help="nginx limit_rate per connection "
                    "(none: uncapped)")
    ap.add_argument("--keep-data", help="keep perf's data in this file")
    ap.add_argument("--report", help="only print the buckets of this perf data file")
    args = ap.parse_args()
    if args.report:
        report(args.report)
        return 0
    if not shutil.which("perf"):
        raise SystemExit("profile.py: no perf (apt-get install linux-perf)")
    b = bench.Bench(bench.parse_args(["--cases", "cold"]))
    b.work = tempfile.mkdtemp(prefix="hubfs-profile-")
    os.chmod(b.work, 0o755)
    data = args.keep_data or os.path.join(b.work, "perf.data")
    rate = None if args.rate == "none" else args.rate
    stack = bench.hubstack.Stack(None, fixtures=[bench.BIG_FIXTURE], cdn_rate=rate)
    stack.start()
    try:
        ctx = bench.StackCtx(args.rate, args.rate, stack)
        b.watch = [stack._nginx.pid]
        store = b.fresh("store")
        b.cold_prep(ctx, [ctx.big["sha256"]])
        m = b.hubfs_mount(ctx, "profile", store)
        try:
            path = m.path(bench.BIG_REPO, bench.BIG_FILE)
            b.stat_size(path)
            pid = str(m.bench_pid)
            stat_out = os.path.join(b.work, "perf.stat")
            events = ",".join("syscalls:sys_enter_" + s for s in SYSCALLS)
            perfs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
                     for cmd in (["perf", "record", "-e", "cpu-clock", "-F", "4000", "-g",
                                  "-p", pid, "-o", data],
                                 ["perf", "stat", "-e", events, "-p", pid,
                                  "-o", stat_out])]
            time.sleep(1.0)
            cpu0 = bench.proc_cpu(m.bench_pid)
            r = b.read_all(path, ctx.big["size"])
            cpu = bench.proc_cpu(m.bench_pid) - cpu0
            for p in perfs:
                p.send_signal(signal.SIGINT)
                p.wait()
        finally:
            b.hubfs_unmount(m)
        print("cold read of 1 GiB, CDN %s: %.2f s, %.0f MiB/s; daemon %.2f CPU s; "
              "machine %.2f, own processes %.2f CPU s; load %s"
              % (args.rate, r["seconds"], r["bytes"] / r["seconds"] / bench.MiB, cpu,
                 r["cpu"], r["own_cpu"], bench.load_avg()))
        report(data)
        print("syscalls of the daemon during the read:")
        with open(stat_out) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[1].startswith("syscalls:"):
                    print("  %8s  %s" % (parts[0], parts[1].split("sys_enter_")[1]))
    finally:
        b.cleanup()
        stack.stop()
        shutil.rmtree(b.work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
