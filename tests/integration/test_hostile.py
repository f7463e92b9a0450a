"""Hostile names from the Hub, against the real daemon.

The fixture tests/fixtures/hostile/hostile.json gives model hostile/names
safe files (odd but legal names: "...", a 255-byte name, right-to-left
override, fullwidth solidus, a backslash, literal "%2e%2e", a 2 GiB + 12345
byte sparse LFS file) and, as raw tree entries the emulator sends verbatim,
61 hostile ones: "..", "../../etc/passwd", "/abs/path", "a//b", "a/./b",
"trail/", names with \\u0000 and control characters, a 256-byte name, a
4222-byte path, bytes that are not UTF-8, oids and LFS oids that are
uppercase, short, long or hold "/", sizes that are negative, fractional,
strings or past 2^53; and three that are fine (sizes 2^31+1, 2^32+7,
2^53-1).  Other repos of owner "hostile" have a listing that is not JSON,
repo info whose sha or id is a path, and ids no Hub accepts.

Checks: the listing is exactly the safe files plus the three sizes (every
hostile entry refused, and counted in the log); lookups of hostile names
are ENOENT; safe files read their exact bytes (sha256 against the fixture);
sizes past 2^31 are exact; odd repo ids and revisions fail cleanly and send
no path with a "." or ".." segment to the Hub; the daemon stays up; the log
holds no control character; the store holds only lowercase-hex blob names,
and nothing is created outside it.

Run: /usr/bin/python3 tests/integration/test_hostile.py [-v]  (HUBFS_BIN
selects the binary; ctest passes it).
"""
import errno
import hashlib
import os
import re
import shutil
import sys
import tempfile
import unittest
import urllib.parse

from mountlib import Mount, daemon_pids, files_at, hubstack

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                       "fixtures", "hostile", "hostile.json")
REPO = "hostile/names"
# Raw entries of hostile/names that are fine: listed with exact sizes.
GOOD_RAW = {"size-2g.bin": 2 ** 31 + 1, "size-4g.bin": 2 ** 32 + 7,
            "size-2p53m1.bin": 2 ** 53 - 1}
BIG = "big-sparse.bin"
HEX = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def raw_paths(fixture):
    """The hostile entries' paths that are strings (raw text ones aside)."""
    import json
    with open(fixture, encoding="utf-8") as f:
        doc = json.load(f)
    for repo in doc["repos"]:
        if repo["id"] == REPO:
            return [e["path"] for e in repo["raw_entries"]
                    if isinstance(e.get("path"), str)], len(repo["raw_entries"])
    raise KeyError(REPO)


class Hostile(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="hubfs-hostile-")
        cls.stack = hubstack.Stack(None,
                                   fixtures=[FIXTURE]).__enter__()
        cls.files, cls.commit = files_at(cls.stack.manifest, "model", REPO,
                                         "main")
        cls.m = Mount(cls.tmp, cls.stack.endpoint).start()
        cls.repo = cls.m.path(REPO)

    @classmethod
    def tearDownClass(cls):
        try:
            cls.m.stop()
        finally:
            cls.stack.__exit__(None, None, None)
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def expected_paths(self):
        want = set(self.files) | set(GOOD_RAW)
        for p in list(want):
            parts = p.split("/")
            want.update("/".join(parts[:i]) for i in range(1, len(parts)))
        return want

    # ------------------------------------------------------------ listing
    def test_listing_is_exactly_the_safe_entries(self):
        seen = set()
        for d, dirs, names in os.walk(self.repo):
            for n in dirs + names:
                self.assertNotIn("\0", n)
                self.assertNotIn(n, (".", ".."))
                self.assertLessEqual(len(n.encode()), 255)
                self.assertIsNone(re.search(r"[\x00-\x1f\x7f]", n), repr(n))
                p = os.path.join(d, n)
                # Every name stays below the repo folder.
                self.assertTrue(os.path.realpath(p).startswith(
                    os.path.realpath(self.repo) + "/"), p)
                seen.add(os.path.relpath(p, self.repo))
        self.assertEqual(seen, self.expected_paths())

    def test_refused_entries_are_counted(self):
        os.listdir(self.repo)
        _, total = raw_paths(FIXTURE)
        refused = total - len(GOOD_RAW)
        m = re.search(r"%s@%s: (\d+) entries with unsafe names" %
                      (REPO, self.commit), self.m.read_log())
        self.assertIsNotNone(m, self.m.read_log())
        self.assertEqual(int(m.group(1)), refused)

    def test_lookups_of_hostile_names(self):
        paths, _ = raw_paths(FIXTURE)
        legit = self.expected_paths()
        top = os.path.realpath(self.repo)
        checked = 0
        for p in paths:
            if "\0" in p:
                # Cut at the NUL it would name another file: "solo" must
                # not exist, "nul" must stay the real one (test below).
                head = p.split("\0")[0].rstrip("/")
                if head and head not in legit:
                    with self.assertRaises(FileNotFoundError, msg=repr(p)):
                        os.lstat(os.path.join(self.repo, head))
                    checked += 1
                continue
            full = os.path.normpath(os.path.join(self.repo, p.lstrip("/")))
            rel = os.path.relpath(full, top)
            if rel == "." or rel.startswith("..") or rel in legit:
                continue  # the kernel resolved it to somewhere legitimate
            try:
                os.lstat(full)
            except OSError as e:
                self.assertIn(e.errno, (errno.ENOENT, errno.ENAMETOOLONG),
                              repr(p))
            else:
                self.fail("hostile entry %r exists" % p)
            checked += 1
        self.assertGreater(checked, 35)

    # ------------------------------------------------------------ bytes
    def test_safe_siblings_read_their_bytes(self):
        for path, f in sorted(self.files.items()):
            if path == BIG:
                continue
            p = os.path.join(self.repo, path)
            self.assertEqual(os.stat(p).st_size, f["size"], path)
            self.assertEqual(sha256_of(p), f["sha256"], path)
        with open(os.path.join(self.repo, "nul"), "rb") as fh:
            self.assertEqual(fh.read(), b"the real nul\n")

    def test_sizes_past_2_31_are_exact(self):
        for name, size in GOOD_RAW.items():
            self.assertEqual(os.stat(os.path.join(self.repo, name)).st_size,
                             size, name)
        f = self.files[BIG]
        self.assertEqual(f["size"], 2 ** 31 + 12345)
        p = os.path.join(self.repo, BIG)
        self.assertEqual(os.stat(p).st_size, f["size"])
        fd = os.open(p, os.O_RDONLY)
        try:
            with open(f["content"], "rb") as src:
                for off in (0, 2 ** 31 - 4096, 2 ** 31 - 1, 2 ** 31 + 4096,
                            f["size"] - (1 << 20) - 10, f["size"] - 100):
                    src.seek(off)
                    want = src.read(8192)
                    self.assertEqual(os.pread(fd, 8192, off), want, off)
            self.assertEqual(os.pread(fd, 10, f["size"]), b"")
        finally:
            os.close(fd)

    # ------------------------------------------------------------ repos
    def test_odd_repos_fail_cleanly(self):
        owner = self.m.path("hostile")
        self.assertEqual(set(os.listdir(owner)),
                         {"names", "bad-json", "bad-sha", "dotdot-sha"})
        # A listing that is not JSON, repo info with a path as sha or id.
        for name in ("bad-json", "bad-sha", "dotdot-sha", "odd-id"):
            with self.assertRaises(OSError, msg=name) as cm:
                os.listdir(os.path.join(owner, name))
            self.assertEqual(cm.exception.errno, errno.EIO, name)
        # Ids no Hub accepts: refused before any request.
        for name in ("a b", "%2F", "new\nline", "l" * 200, "a%00b", "-x",
                     "x..y", "\x1b[31m"):
            with self.assertRaises(FileNotFoundError, msg=repr(name)):
                os.lstat(os.path.join(owner, name))
        with self.assertRaises(OSError) as cm:
            os.lstat(os.path.join(owner, "l" * 300))
        self.assertIn(cm.exception.errno, (errno.ENOENT, errno.ENAMETOOLONG))
        self.assertTrue(os.path.isdir(self.repo))

    def test_odd_revisions(self):
        since = self.stack.hub_log()[-1]["seq"] if self.stack.hub_log() else 0
        good = os.listdir(self.m.path(REPO + "@main"))
        self.assertIn("README.md", good)
        self.assertEqual(sorted(os.listdir(self.m.path(
            "%s@%s" % (REPO, self.commit)))), sorted(good))
        for rev in ("..", ".", "%2E%2E", "%2e", "a b", "%2F", "%00",
                    "refs%2F..%2F..%2Fx", "main%2F..%2F..", "refs%2Fpr%2F..",
                    "../x", "%", "%zz", "main%0A", "\x1b", "v" * 240,
                    "main\nx", "0" * 40, "A" * 40, "%2Fetc%2Fpasswd"):
            try:
                os.lstat(self.m.path("%s@%s" % (REPO, rev)))
            except OSError as e:
                self.assertIn(e.errno, (errno.ENOENT, errno.EINVAL,
                                        errno.ENAMETOOLONG), repr(rev))
            else:
                self.fail("revision %r exists" % rev)
        self.assertTrue(os.path.isdir(self.repo))
        # What went to the Hub: escaped (no raw control character or
        # space), no NUL, and no "." or ".." segment a server or proxy
        # would fold into a path outside the repo.
        for entry in self.stack.hub_log(since):
            raw = entry["path"]
            self.assertIsNone(re.search(r"[\x00-\x20\x7f]", raw), raw)
            segs = [urllib.parse.unquote(s) for s in raw.split("/")[1:]]
            self.assertFalse({".", ".."} & set(segs), raw)
            self.assertFalse(any("\0" in s for s in segs), raw)

    # ------------------------------------------------------------ after
    def test_zz_daemon_log_and_store(self):
        """Last (by name): after everything above has run."""
        self.assertTrue(daemon_pids(self.m.mnt), "the daemon died")
        self.assertIn("README.md", os.listdir(self.repo))
        with open(self.m.log, "rb") as f:
            log = f.read()
        self.assertIsNone(re.search(rb"[\x00-\x09\x0b-\x1f\x7f]", log),
                          "control character in the log")
        for sub in ("blobs", "partial"):
            for name in os.listdir(os.path.join(self.m.store, sub)):
                self.assertRegex(name, HEX, sub)
        for d, dirs, names in os.walk(self.m.store):
            for n in dirs + names:
                self.assertIsNone(re.search(r"passwd|escape|up\.txt|\.\.", n),
                                  os.path.join(d, n))
        # Nothing beside the mount's own folders, nothing at the paths the
        # hostile entries point at.
        self.assertEqual(sorted(os.listdir(self.tmp)),
                         ["m-home", "m-mnt", "m-store", "m.log"])
        self.assertEqual(os.listdir(self.m.home), [])
        for p in ("/abs", "/escape.txt", "/up.txt", "/dot.txt",
                  os.path.join(self.tmp, "escape.txt")):
            self.assertFalse(os.path.lexists(p), p)


if __name__ == "__main__":
    unittest.main()
