"""A new revision of a Xet file costs its changed chunks, through a mount.

The 256 MiB fixture (tests/fixtures/large/xet.json) has three revisions
that overwrite a few regions each.  A mount reads revision 1 whole (its
chunks' places recorded in the store), then revision 2: only the xorb
ranges of the chunks revision 1 lacks go over the network, the rest is
copied from revision 1's blob, and the file hashes right.  A mount on a
fresh store reading revision 2 alone is the comparison.  Without the test
venv the stack has no Xet objects and the test is skipped.
"""
import hashlib
import os
import shutil
import sqlite3
import sys
import tempfile
import time
import unittest

import mountlib
from mountlib import Mount, files_at, hubstack

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "..", "fixtures", "large", "xet.json")
REPO = "acme/xet-revisions"


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                return h.hexdigest()
            h.update(b)


class XetReuseTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="hubfs-xetreuse-")
        os.chmod(cls.tmp, 0o755)
        cls.stack = hubstack.Stack(os.path.join(cls.tmp, "stack"),
                                   fixtures=[FIXTURE])
        cls.stack.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.stack.__exit__(None, None, None)
        shutil.rmtree(cls.tmp, True)

    def setUp(self):
        if not self.stack.xet_built:
            self.skipTest("no test venv: the stack has no Xet objects")

    def mount(self, name):
        m = Mount(self.tmp, self.stack.endpoint, name=name).start()
        self.addCleanup(m.stop)
        return m

    def xorb_bytes(self):
        return sum(e.get("bytes", 0) for e in self.stack.cdn_log()
                   if "/xorbs/" in (e.get("uri") or e.get("path") or ""))

    def read_rev(self, m, rev):
        """Read rev's model.bin whole through m: (its manifest entry, xorb
        bytes fetched); self.recons gets the reconstruction calls."""
        files, sha = files_at(self.stack.manifest, "model", REPO, rev)
        self.stack.clear_logs()
        path = m.path("acme", "xet-revisions@" + sha, "model.bin")
        got = sha256_of(path)
        self.assertEqual(got, files["model.bin"]["sha256"])
        self.recons = sum(1 for e in self.stack.hub_log()
                          if "/reconstructions/" in e.get("path", ""))
        return files["model.bin"], self.xorb_bytes()

    def wait_recorded(self, m, etag):
        """The store records a verified blob just after its last read: its
        chunk runs then."""
        if not mountlib.blob_recorded(m.store, etag):
            self.fail("blob %s never recorded complete" % etag)
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(m.store, "index.db"),
                             uri=True, timeout=10)
        try:
            return db.execute("SELECT count(*) FROM chunks WHERE blob = ?",
                              (etag,)).fetchone()[0]
        finally:
            db.close()

    def test_revision_2_after_revision_1(self):
        m = self.mount("a")
        f1, _ = self.read_rev(m, "v1")
        runs = self.wait_recorded(m, f1["sha256"])
        self.assertGreater(runs, 0)
        f2, with_copy = self.read_rev(m, "v2")
        recons_with = self.recons

        fresh = self.mount("b")
        _, alone = self.read_rev(fresh, "v2")
        load = os.getloadavg()[0]
        print("xet reuse: revision 2 after revision 1 fetched %d xorb "
              "bytes (%.2f %% of %d, %d reconstruction calls); alone %d "
              "(%.1f %%, %d calls); load %.1f"
              % (with_copy, 100.0 * with_copy / f2["size"], f2["size"],
                 recons_with, alone, 100.0 * alone / f2["size"],
                 self.recons, load), file=sys.stderr)
        self.assertGreater(alone, f2["size"] // 2)
        self.assertLess(with_copy, 0.03 * f2["size"])
        self.assertLess(with_copy * 20, alone)

    def test_wrong_local_copy_is_refused_then_fetched(self):
        """A source blob changed on disk with its stamp restored (size,
        inode, mtime: db_blob_get cannot tell) gives revision 2 a wrong
        chunk: its check fails, the reader gets EIO, and the next read
        fetches it again, right."""
        m = self.mount("c")
        f1, _ = self.read_rev(m, "v1")
        self.wait_recorded(m, f1["sha256"])
        blob = os.path.join(m.store, "blobs", f1["sha256"])
        st = os.stat(blob)
        with open(blob, "r+b") as f:  # inside the first random region,
            f.seek(50 << 20)           # which revision 2 keeps
            b = f.read(1)
            f.seek(50 << 20)
            f.write(bytes([b[0] ^ 0xff]))
        os.utime(blob, ns=(st.st_atime_ns, st.st_mtime_ns))
        files, sha = files_at(self.stack.manifest, "model", REPO, "v2")
        path = m.path("acme", "xet-revisions@" + sha, "model.bin")
        with self.assertRaises(OSError):
            sha256_of(path)
        self.assertIn("does not match its hash", m.read_log())
        self.assertEqual(sha256_of(path), files["model.bin"]["sha256"])


if __name__ == "__main__":
    unittest.main()
