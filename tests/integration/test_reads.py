"""The lazy read path on a real mount: only the bytes read are fetched,
shared between readers, verified before a whole-file read succeeds, kept
for the next mount, and correct under mmap and concurrent preads.

Every case checks bytes against the fixtures and fetched bytes against
the CDN's access log.
"""
import errno
import hashlib
import mmap
import os
import random
import shutil
import tempfile
import threading
import unittest

from mountlib import Mount, files_at, hubstack

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "large",
                       "reads.json")
REPO = "acme/reads"
MiB = 1 << 20


def content(f, off=0, size=None):
    with open(f["content"], "rb") as fh:
        fh.seek(off)
        return fh.read(f["size"] if size is None else size)


class ReadTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="hubfs-reads-")
        os.chmod(cls.tmp, 0o755)
        cls.stack = hubstack.Stack(os.path.join(cls.tmp, "stack"),
                                   fixtures=[FIXTURE])
        cls.stack.__enter__()
        cls.files, _ = files_at(cls.stack.manifest, "model", REPO, "main")
        cls.n = 0

    @classmethod
    def tearDownClass(cls):
        cls.stack.__exit__(None, None, None)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def mount(self, **kw):
        """A fresh mount with a fresh store (so nothing is cached)."""
        type(self).n += 1
        m = Mount(self.tmp, self.stack.endpoint, name="r%d" % self.n, **kw)
        m.start()
        self.addCleanup(m.stop)
        return m

    def cdn_bytes(self, sha, since=0):
        return sum(e.get("bytes", 0) for e in self.stack.cdn_log()[since:]
                   if sha in e.get("uri", ""))

    def path(self, m, name):
        return m.path("acme", "reads", name)

    def test_header_read_fetches_little(self):
        m = self.mount(args=("--xattr",))
        f = self.files["weights.safetensors"]
        before = len(self.stack.cdn_log())
        with open(self.path(m, "weights.safetensors"), "rb") as fh:
            head = fh.read(8)
            n = int.from_bytes(head, "little") % MiB  # a header length
            body = fh.read(n)
        self.assertEqual(head + body, content(f, 0, 8 + n))
        fetched = self.cdn_bytes(f["sha256"], before)
        self.assertGreater(fetched, 0)
        self.assertLessEqual(fetched, 16 * MiB, "fetched %d bytes" % fetched)
        cached = int(os.getxattr(self.path(m, "weights.safetensors"),
                                 "user.hubfs.cached"))
        self.assertLess(cached, f["size"])

    def test_full_read_is_verified_and_kept(self):
        m = self.mount(args=("-o", "xattr"))
        for name in ("weights.safetensors", "plain.bin"):
            f = self.files[name]
            h = hashlib.sha256()
            with open(self.path(m, name), "rb") as fh:
                for block in iter(lambda: fh.read(1 << 17), b""):
                    h.update(block)
            self.assertEqual(h.hexdigest(), f["sha256"], name)
            self.assertEqual(int(os.getxattr(self.path(m, name),
                                             "user.hubfs.cached")),
                             f["size"])
        m.stop()
        # The next mount of the store reads it all with no transfer.
        before_cdn, before_hub = len(self.stack.cdn_log()), \
            len(self.stack.hub_log())
        again = Mount(self.tmp, self.stack.endpoint, name="again",
                      store=m.store).start()
        self.addCleanup(again.stop)
        for name in ("weights.safetensors", "plain.bin"):
            with open(self.path(again, name), "rb") as fh:
                self.assertEqual(hashlib.sha256(fh.read()).hexdigest(),
                                 self.files[name]["sha256"])
        self.assertEqual(self.stack.cdn_log()[before_cdn:], [])
        self.assertEqual([e for e in self.stack.hub_log()[before_hub:]
                          if "/resolve" in e["path"]], [])

    def test_readers_of_one_block_share_one_transfer(self):
        m = self.mount()
        f = self.files["other.safetensors"]
        off = 7 * MiB + 12345
        want = content(f, off, 4096)
        before = len(self.stack.cdn_log())
        results, barrier = [], threading.Barrier(8)

        def reader():
            fd = os.open(self.path(m, "other.safetensors"), os.O_RDONLY)
            try:
                barrier.wait()
                results.append(os.pread(fd, 4096, off))
            finally:
                os.close(fd)
        threads = [threading.Thread(target=reader) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(results, [want] * 8)
        fetched = self.cdn_bytes(f["sha256"], before)
        self.assertLessEqual(fetched, MiB, "fetched %d bytes" % fetched)

    def test_random_reads_fetch_only_their_blocks(self):
        m = self.mount()
        f = self.files["weights.safetensors"]
        rng = random.Random(5)
        before = len(self.stack.cdn_log())
        offsets = [rng.randrange(1, f["size"] - 4096) for _ in range(20)]
        fd = os.open(self.path(m, "weights.safetensors"), os.O_RDONLY)
        try:
            for off in offsets:
                self.assertEqual(os.pread(fd, 4096, off),
                                 content(f, off, 4096))
        finally:
            os.close(fd)
        blocks = {o // MiB for o in offsets} | \
            {(o + 4095) // MiB for o in offsets}
        fetched = self.cdn_bytes(f["sha256"], before)
        self.assertLessEqual(fetched, len(blocks) * MiB,
                             "fetched %d bytes for %d blocks"
                             % (fetched, len(blocks)))

    def test_mmap_and_parallel_preads_match(self):
        m = self.mount()
        f = self.files["other.safetensors"]
        want = content(f)
        with open(self.path(m, "other.safetensors"), "rb") as fh:
            mm = mmap.mmap(fh.fileno(), 0, prot=mmap.PROT_READ)
            self.assertEqual(mm[:100], want[:100])
            self.assertEqual(mm[9 * MiB:9 * MiB + 5000],
                             want[9 * MiB:9 * MiB + 5000])
            self.assertEqual(mm[-77:], want[-77:])
            mm.close()
        fd = os.open(self.path(m, "other.safetensors"), os.O_RDONLY)
        chunk, errors = len(want) // 8 + 1, []

        def part(i):
            got = bytearray()
            off = i * chunk
            while off < min(len(want), (i + 1) * chunk):
                b = os.pread(fd, min(256 << 10, (i + 1) * chunk - off), off)
                if not b:
                    break
                got += b
                off += len(b)
            if bytes(got) != want[i * chunk:(i + 1) * chunk]:
                errors.append(i)
        threads = [threading.Thread(target=part, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        os.close(fd)
        self.assertEqual(errors, [])

    def test_two_mounts_of_one_store_fetch_once(self):
        a = self.mount()
        b = Mount(self.tmp, self.stack.endpoint, name="r%d-b" % self.n,
                  store=a.store).start()
        self.addCleanup(b.stop)
        f = self.files["weights.safetensors"]
        before = len(self.stack.cdn_log())
        digests, barrier = {}, threading.Barrier(2)

        def read(m):
            barrier.wait()
            with open(self.path(m, "weights.safetensors"), "rb") as fh:
                digests[m.mnt] = hashlib.sha256(fh.read()).hexdigest()
        threads = [threading.Thread(target=read, args=(m,)) for m in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(list(digests.values()), [f["sha256"]] * 2)
        fetched = self.cdn_bytes(f["sha256"], before)
        # Each block is fetched by one of the two; the other waits for it.
        self.assertLess(fetched, 1.3 * f["size"],
                        "fetched %d bytes for a %d-byte file"
                        % (fetched, f["size"]))

    def test_size_limit_evicts_least_recently_used_unheld(self):
        import sqlite3
        m = self.mount(args=("--max-cache", "40M"))
        db = sqlite3.connect(os.path.join(m.store, "index.db"))
        self.assertEqual(db.execute("SELECT value FROM settings WHERE key ="
                                    " 'max_cache'").fetchall(),
                         [(40 * MiB,)])  # kept for later mounts
        db.close()
        names = ("other.safetensors", "plain.bin", "weights.safetensors")
        held = open(self.path(m, "other.safetensors"), "rb")
        for name in names:
            with open(self.path(m, name), "rb") as fh:
                self.assertEqual(hashlib.sha256(fh.read()).hexdigest(),
                                 self.files[name]["sha256"])
        # weights (48 MiB) alone passes the limit: plain.bin, unheld and
        # least recently used, goes; other.safetensors is open, so stays.
        held.close()
        m.stop()
        blobs = os.listdir(os.path.join(m.store, "blobs"))
        self.assertIn(self.files["other.safetensors"]["sha256"], blobs)
        self.assertNotIn(self.files["plain.bin"]["oid"], blobs)  # git sha1
        self.assertIn("evicted", m.read_log())

    def test_gc_removes_least_recently_used_and_dry_run_nothing(self):
        import subprocess
        import mountlib
        m = self.mount()
        for name in ("plain.bin", "other.safetensors"):  # plain is older
            with open(self.path(m, name), "rb") as fh:
                fh.read()
        m.stop()
        blobs = os.path.join(m.store, "blobs")
        plain = self.files["plain.bin"]["oid"]  # not LFS: the git sha1
        other = self.files["other.safetensors"]["sha256"]
        self.assertEqual(sorted(os.listdir(blobs)), sorted([plain, other]))
        gc = [mountlib.HUBFS, "gc", "--cache-dir", m.store,
              "--max-cache", "25M"]
        r = subprocess.run(gc + ["--dry-run"], capture_output=True,
                           text=True, timeout=60, env=m.env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("would remove", r.stdout)
        self.assertIn(plain, r.stdout)
        self.assertEqual(sorted(os.listdir(blobs)), sorted([plain, other]))
        r = subprocess.run(gc, capture_output=True, text=True, timeout=60,
                           env=m.env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(os.listdir(blobs), [other])
        # The limit stays with the store: a plain 'gc' uses it.
        r = subprocess.run(gc[:4], capture_output=True, text=True,
                           timeout=60, env=m.env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("freed 0 B", r.stdout)

    def test_corrupt_bytes_never_pass_a_whole_read(self):
        m = self.mount()
        f = self.files["other.safetensors"]
        self.stack.fault(kind="wrong_bytes", target="cdn", path=f["sha256"],
                         after=1000, count=1)
        try:
            with self.assertRaises(OSError) as cm:
                with open(self.path(m, "other.safetensors"), "rb") as fh:
                    while fh.read(1 << 20):
                        pass
            self.assertEqual(cm.exception.errno, errno.EIO)
        finally:
            self.stack.clear_faults()
        self.assertIn("does not match its hash", m.read_log())
        blob = os.path.join(m.store, "blobs", f["sha256"])
        self.assertFalse(os.path.exists(blob), "a corrupt blob was kept")
        # Fetched again on the next read, and right this time.
        with open(self.path(m, "other.safetensors"), "rb") as fh:
            self.assertEqual(hashlib.sha256(fh.read()).hexdigest(),
                             f["sha256"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
