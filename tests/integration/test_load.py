"""Many readers at once on a real mount, every byte they get checked.

One mount with a fresh store, read cold by:

  32 threads over the 8 files of acme/load (tests/fixtures/large/load.json:
     LFS from the CDN, xet, and regular files from the Hub, odd sizes):
       8 sequential whole-file readers, one per file, each its own
         descriptor and its own chunk size;
      16 random preaders, two per file, random offsets and sizes from
         1 byte to 2 MiB (some crossing the end of the file);
       8 threads sharing ONE descriptor of the largest file: four read it
         whole in interleaved stripes, four read at random;
   4 mmap readers (Python mmap over the mount): random slices, then the
     whole file page by page in 1 MiB steps;
   fio --readonly at the same time: sequential and random-read jobs
     (its own processes; fio cannot verify data it did not write, so its
     part is the access pattern and its error count, and correctness is
     the job of the readers above, which compare every read to the
     fixture's bytes).

Then: no read failed, every byte matched, no block of an LFS file was
fetched twice (readers of a block share its transfer), and the daemon's
peak RSS (VmHWM) stayed bounded, which fails on a leak or on buffering
whole files in memory.  One summary line goes to stderr.

`make tsan` runs it too, with the daemon built with ThreadSanitizer.

Run: /usr/bin/python3 tests/integration/test_load.py [-v]  (HUBFS_BIN
selects the binary; ctest passes it).
"""
import json
import mmap
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from mountlib import Mount, daemon_pids, files_at, hubstack

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "large",
                       "load.json")
REPO = "acme/load"
MiB = 1 << 20
# Seconds the readers may take together: they take 2 s with a plain
# build, 5 s under TSan.
DEADLINE = 240
# The daemon keeps blocks in the store, not in memory, so its RSS should
# not grow with what is read: about 20-80 MB whatever the load.  The bound
# is far above that, and far below what keeping the files read (~95 MiB,
# read several times over) would take.  A sanitizer build has shadow
# memory and, for ASan, a 256 MB quarantine of freed blocks, so it gets a
# bound of its own (ASan peaks near 160 MiB here, TSan near 80 MiB).
RSS_LIMIT = 256 * MiB
RSS_LIMIT_SANITIZED = 768 * MiB

FILES = ["model-00001-of-00002.safetensors",
         "model-00002-of-00002.safetensors", "weights.gguf",
         "data/train.parquet", "data/test.parquet", "vocab.bin",
         "tokenizer.bin", "extra.bin"]
N_SEQ, N_RANDOM, N_SHARED, N_MMAP, RANDOM_READS = 8, 16, 8, 4, 200
CHUNKS = [4096, 65536, 131072 + 13, MiB, 3 * MiB + 5, 32768, 200000, 2 * MiB]


def say(msg):
    print(msg, file=sys.stderr, flush=True)


class Tally:
    """Reads verified and failures, from every reader thread."""

    def __init__(self):
        self.lock = threading.Lock()
        self.reads = self.bytes = 0
        self.errors = []

    def check(self, got, want, what):
        """Count one read; a mismatch is recorded with where it was."""
        with self.lock:
            if got != want:
                first = next((i for i, (a, b) in enumerate(zip(got, want))
                              if a != b), min(len(got), len(want)))
                self.errors.append("%s: %d bytes, want %d, first "
                                   "difference at +%d" % (what, len(got),
                                                          len(want), first))
                return False
            self.reads += 1
            self.bytes += len(got)
            return True

    def fail(self, what):
        with self.lock:
            self.errors.append(what)


def sanitized(pid):
    """Whether the daemon runs with a sanitizer runtime."""
    with open("/proc/%d/maps" % pid) as f:
        maps = f.read()
    return any(lib in maps for lib in ("libasan", "libtsan", "libubsan"))


def vm_hwm(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/%d/status" % pid)


class LoadTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="hubfs-load-")
        os.chmod(cls.tmp, 0o755)
        cls.stack = hubstack.Stack(os.path.join(cls.tmp, "stack"),
                                   fixtures=[FIXTURE])
        cls.stack.__enter__()
        cls.files, _ = files_at(cls.stack.manifest, "model", REPO, "main")
        cls.want = {}
        for name in FILES:
            with open(cls.files[name]["content"], "rb") as f:
                cls.want[name] = f.read()
            assert len(cls.want[name]) == cls.files[name]["size"]

    @classmethod
    def tearDownClass(cls):
        cls.stack.__exit__(None, None, None)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def path(self, name):
        return self.m.path("acme", "load", name)

    # ------------------------------------------------------------ readers
    def sequential(self, i, name):
        """The whole file from 0 to EOF in chunks of one size."""
        want, chunk = self.want[name], CHUNKS[i % len(CHUNKS)]
        fd = os.open(self.path(name), os.O_RDONLY)
        try:
            self.barrier.wait(60)
            off = 0
            while True:
                b = os.pread(fd, chunk, off)
                if not self.tally.check(b, want[off:off + chunk],
                                        "%s seq pread %d+%d" % (name, off,
                                                                chunk)):
                    return
                if not b:
                    break
                off += len(b)
            if off != len(want):
                self.tally.fail("%s seq: EOF at %d" % (name, off))
        finally:
            os.close(fd)

    def random_preads(self, seed, name, fd=None):
        """Random offsets, sizes from 1 byte to 2 MiB, log-uniform so that
        small reads are as common as large ones; one read in ten near EOF."""
        want, rng = self.want[name], random.Random(seed)
        own = fd is None
        if own:
            fd = os.open(self.path(name), os.O_RDONLY)
        try:
            self.barrier.wait(60)
            for _ in range(RANDOM_READS):
                n = int(2 ** rng.uniform(0, 21))
                if rng.random() < 0.1:
                    off = max(0, len(want) - rng.randrange(1, 2 * n + 2))
                else:
                    off = rng.randrange(len(want))
                if not self.tally.check(os.pread(fd, n, off),
                                        want[off:off + n],
                                        "%s random pread %d+%d" % (name, off,
                                                                   n)):
                    return
        finally:
            if own:
                os.close(fd)

    def stripes(self, k, n, name, fd):
        """Stripe k of n over one shared descriptor: together the stripe
        readers read the whole file, like a parallel downloader."""
        want, chunk = self.want[name], 384 << 10
        self.barrier.wait(60)
        for off in range(k * chunk, len(want), n * chunk):
            if not self.tally.check(os.pread(fd, chunk, off),
                                    want[off:off + chunk],
                                    "%s shared stripe %d+%d" % (name, off,
                                                                chunk)):
                return

    def mapped(self, seed, name):
        want, rng = self.want[name], random.Random(seed)
        with open(self.path(name), "rb") as fh:
            mm = mmap.mmap(fh.fileno(), 0, prot=mmap.PROT_READ)
            try:
                self.assertEqual(len(mm), len(want))
                self.barrier.wait(60)
                for _ in range(RANDOM_READS):
                    off = rng.randrange(len(want))
                    n = rng.choice((1, 4096, 5000, 70000))
                    if not self.tally.check(mm[off:off + n],
                                            want[off:off + n],
                                            "%s mmap %d+%d" % (name, off, n)):
                        return
                for off in range(0, len(want), MiB):
                    if not self.tally.check(mm[off:off + MiB],
                                            want[off:off + MiB],
                                            "%s mmap sweep %d" % (name, off)):
                        return
            finally:
                mm.close()

    def fio_command(self):
        """Sequential jobs over the largest file, random 4 KiB reads over
        the next ones; --readonly makes fio refuse any write."""
        seq, rand = FILES[0], FILES[1:3]
        cmd = ["fio", "--readonly", "--output-format=json",
               "--ioengine=psync", "--invalidate=0", "--fadvise_hint=0",
               "--name=seq", "--rw=read", "--bs=1M",
               "--numjobs=2",
               "--filename=" + self.path(seq)]
        for j, name in enumerate(rand):
            cmd += ["--name=rand%d" % j, "--rw=randread", "--bs=4k",
                    "--numjobs=2",
                    "--io_size=16M",
                    "--filename=" + self.path(name)]
        return cmd

    def fio_result(self, proc):
        try:
            out, err = proc.communicate(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            self.fail("fio still running after %d s" % DEADLINE)
        self.assertEqual(proc.returncode, 0, "fio failed: %s" % err)
        jobs = json.loads(out[out.index("{"):])["jobs"]
        for job in jobs:
            self.assertEqual(job["error"], 0, "fio job %s" % job["jobname"])
            self.assertGreater(job["read"]["io_bytes"], 0, job["jobname"])
            self.assertEqual(job["write"]["io_bytes"], 0, job["jobname"])
        for job in jobs:
            if job["jobname"] == "seq":
                # fio reads whole blocks: the file less its odd tail.
                self.assertEqual(job["read"]["io_bytes"],
                                 len(self.want[FILES[0]]) // MiB * MiB)
        return jobs

    # ------------------------------------------------------------ the test
    def test_many_readers_at_once(self):
        self.m = Mount(self.tmp, self.stack.endpoint, name="load").start()
        self.addCleanup(self.m.stop)
        for name in FILES:
            self.assertEqual(os.stat(self.path(name)).st_size,
                             len(self.want[name]))
        n_cdn = len(self.stack.cdn_log())
        self.tally = Tally()
        shared_name = FILES[0]
        shared_fd = os.open(self.path(shared_name), os.O_RDONLY)
        self.addCleanup(os.close, shared_fd)

        jobs = []
        for i in range(N_SEQ):
            jobs.append((self.sequential, i, FILES[i % len(FILES)]))
        for i in range(N_RANDOM):
            jobs.append((self.random_preads, i, FILES[i % len(FILES)]))
        half = N_SHARED // 2
        for k in range(half):
            jobs.append((self.stripes, k, half, shared_name, shared_fd))
        for k in range(N_SHARED - half):
            jobs.append((self.random_preads, 1000 + k, shared_name,
                         shared_fd))
        threads_n = len(jobs)
        for i in range(N_MMAP):
            jobs.append((self.mapped, 2000 + i,
                         FILES[(2 * i + 1) % len(FILES)]))
        self.barrier = threading.Barrier(len(jobs) + 1)

        def guarded(fn, *a):
            try:
                fn(*a)
            except Exception as e:  # noqa: B902 - every failure counts
                self.tally.fail("%s%r: %r" % (fn.__name__, a[:2], e))
                self.barrier.abort()
        threads = [threading.Thread(target=guarded, args=j, daemon=True)
                   for j in jobs]
        for th in threads:
            th.start()
        try:
            self.barrier.wait(60)
        except threading.BrokenBarrierError:
            pass  # a reader failed before the start: in tally.errors
        t0 = time.monotonic()
        fio = subprocess.Popen(self.fio_command(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        for th in threads:
            th.join(max(1, DEADLINE - (time.monotonic() - t0)))
        fio_jobs = self.fio_result(fio)
        secs = time.monotonic() - t0
        self.assertFalse([th for th in threads if th.is_alive()],
                         "readers still running after %d s" % DEADLINE)
        self.assertEqual(self.tally.errors, [])

        pid = daemon_pids(self.m.mnt)[0]
        hwm, limit = vm_hwm(pid), RSS_LIMIT
        if sanitized(pid):
            limit = RSS_LIMIT_SANITIZED
        # Readers of one block share its transfer: no LFS file came from
        # the CDN more than once (the slack is one block on each side of
        # a transfer cut short by EOF).
        log = self.stack.cdn_log()[n_cdn:]
        xet = [n for n in FILES if self.files[n].get("xetBuilt")]
        for name in FILES:
            f = self.files[name]
            if not f["lfs"] or name in xet:
                continue
            got = sum(e["bytes"] for e in log if f["sha256"] in e["uri"])
            self.assertGreater(got, 0, name)
            self.assertLessEqual(got, f["size"] + 2 * MiB,
                                 "%s: %d bytes fetched" % (name, got))
        # The Xet files come through the CAS, as xorb ranges named by xorb,
        # not file: together, once.  A run may also fetch the chunks that
        # straddle its two ends (up to 128 KiB each), which the next run
        # fetches again.
        if xet:
            size = sum(self.files[n]["size"] for n in xet)
            got = sum(e["bytes"] for e in log if "/xorbs/" in e["uri"])
            self.assertEqual([e["uri"] for e in log if any(
                self.files[n]["sha256"] in e["uri"] for n in xet)], [])
            say("\nxet files: %d xorb bytes for %d bytes" % (got, size))
            self.assertGreater(got, 0)
            self.assertLessEqual(got, size + 2 * MiB + (
                size // MiB + len(xet)) * 256 * 1024)
        fio_bytes = sum(j["read"]["io_bytes"] for j in fio_jobs)
        say("\nload: %d readers (%d threads + %d mmap) and %d fio jobs over "
            "%d files (%.1f MiB) in %.1f s: %d reads verified, %.1f MiB "
            "verified, fio read %.1f MiB; daemon peak RSS (VmHWM) %.1f MiB "
            "(limit %d MiB)" % (
                len(jobs), threads_n, N_MMAP, len(fio_jobs), len(FILES),
                sum(map(len, self.want.values())) / MiB, secs,
                self.tally.reads, self.tally.bytes / MiB, fio_bytes / MiB,
                hwm / MiB, limit // MiB))
        self.assertLess(hwm, limit, "daemon peak RSS %d bytes" % hwm)


if __name__ == "__main__":
    unittest.main(verbosity=2)
