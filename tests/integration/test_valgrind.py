"""The daemon under valgrind's memcheck: no invalid access, no definite leak.

`hubfs mount -f` runs under

    valgrind --leak-check=full --errors-for-leak-kinds=definite
             --error-exitcode=99

while real programs use the mount: ls -lR of repos, a legacy-id symlink,
names that do not exist, extended attributes, files read whole (LFS from
the CDN, xet, regular from the Hub, empty) and in part (header, middle,
past the end, several threads on one descriptor), a tag.  Every byte is
compared with the fixtures.  Then it is unmounted, and the same store is
mounted again under valgrind and read warm, and once more with a size
limit that makes it evict what was read.  Each daemon must exit 0:
memcheck turns any error (invalid read or write, use of uninitialised
memory, bad free, definite leak) into status 99, and its report is
printed.

Not part of `make test` (valgrind slows the daemon twentyfold): `make
valgrind` runs it.  By hand:

    HUBFS_BIN=build/hubfs /usr/bin/python3 tests/integration/test_valgrind.py
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from mountlib import HUBFS, files_at, hubstack, mounted

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "large",
                       "reads.json")
MiB = 1 << 20
VALGRIND_ERROR = 99
START_DEADLINE = 120  # seconds for the mount to appear under valgrind
EXIT_DEADLINE = 120   # ... and for the daemon to exit after fusermount3 -u


def say(msg):
    print(msg, file=sys.stderr, flush=True)


class ValgrindMount:
    """`hubfs mount -f` under memcheck, in the foreground of a child."""

    def __init__(self, root, endpoint, name, store, args=()):
        self.mnt = os.path.join(root, name + "-mnt")
        self.home = os.path.join(root, name + "-home")
        self.log = os.path.join(root, name + ".log")
        self.vglog = os.path.join(root, name + ".valgrind")
        self.store = store
        for d in (self.mnt, self.home):
            os.makedirs(d, exist_ok=True)
        self.cmd = ["valgrind", "--tool=memcheck", "--leak-check=full",
                    "--errors-for-leak-kinds=definite",
                    "--show-leak-kinds=definite",
                    "--error-exitcode=%d" % VALGRIND_ERROR,
                    "--num-callers=30", "--log-file=" + self.vglog,
                    HUBFS, "mount", "-f", "--endpoint", endpoint,
                    "--cache-dir", store, "--log", self.log, *args,
                    self.mnt]
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                    "HOME": self.home, "LANG": "C.UTF-8"}
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(self.cmd, env=self.env,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + START_DEADLINE
        while not mounted(self.mnt):
            if self.proc.poll() is not None:
                raise AssertionError("hubfs under valgrind exited %d before "
                                     "mounting:\n%s\n%s" % (
                                         self.proc.returncode, self.report(),
                                         self.read(self.log)))
            if time.monotonic() > deadline:
                self.proc.kill()
                raise AssertionError("not mounted after %d s"
                                     % START_DEADLINE)
            time.sleep(0.2)
        return self

    def stop(self):
        """Unmount and wait for the daemon: its exit status."""
        if self.proc is None:
            return None
        if mounted(self.mnt):
            subprocess.run(["fusermount3", "-u", self.mnt], check=False)
        try:
            rc = self.proc.wait(EXIT_DEADLINE)
        except subprocess.TimeoutExpired:
            subprocess.run(["fusermount3", "-uz", self.mnt], check=False)
            self.proc.kill()
            self.proc.wait()
            rc = None
        self.proc = None
        return rc

    @staticmethod
    def read(path):
        try:
            with open(path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def report(self):
        return self.read(self.vglog)

    def summary(self):
        """ERROR SUMMARY and the leak summary lines of the report."""
        text = self.report()
        wanted = (r"ERROR SUMMARY|in use at exit|All heap|definitely lost:|"
                  r"indirectly lost:|possibly lost:")
        lines = [re.sub(r"^==\d+== ", "", ln) for ln in text.splitlines()
                 if re.search(wanted, ln)]
        return "; ".join(ln.strip() for ln in lines)


class ValgrindTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not shutil.which("valgrind"):
            raise unittest.SkipTest("valgrind is not installed "
                                    "(.ci/install-deps test)")
        cls.tmp = tempfile.mkdtemp(prefix="hubfs-valgrind-")
        os.chmod(cls.tmp, 0o755)
        cls.stack = hubstack.Stack(os.path.join(cls.tmp, "stack"),
                                   fixtures=[FIXTURE], page_size=3)
        cls.stack.__enter__()
        man = cls.stack.manifest
        cls.tiny, _ = files_at(man, "model", "acme/tiny-model", "main")
        cls.reads, _ = files_at(man, "model", "acme/reads", "main")
        cls.store = os.path.join(cls.tmp, "store")

    @classmethod
    def tearDownClass(cls):
        cls.stack.__exit__(None, None, None)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def run_under_valgrind(self, name, actions, args=()):
        m = ValgrindMount(self.tmp, self.stack.endpoint, name, self.store,
                          args)
        m.start()
        try:
            actions(m)
        finally:
            rc = m.stop()
        say("\nvalgrind %s: exit %s; %s" % (name, rc, m.summary()))
        if rc != 0:
            self.fail("hubfs under valgrind exited %s (%d: memcheck found "
                      "errors):\n%s\ndaemon log:\n%s" % (
                          rc, VALGRIND_ERROR, m.report(), m.read(m.log)))
        return m

    @staticmethod
    def content(f):
        with open(f["content"], "rb") as fh:
            return fh.read()

    def ls_lr(self, path):
        r = subprocess.run(["ls", "-lR", path], capture_output=True,
                           text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def read_whole(self, path, f):
        with open(path, "rb") as fh:
            self.assertEqual(fh.read(), self.content(f), path)

    def read_parts(self, path, f):
        want = self.content(f)
        fd = os.open(path, os.O_RDONLY)
        try:
            for off, n in ((0, 8), (len(want) // 2 + 1, 70000),
                           (len(want) - 5, 4096), (len(want), 10),
                           (3 * MiB - 7, MiB)):
                self.assertEqual(os.pread(fd, n, off), want[off:off + n],
                                 "%s %d+%d" % (path, off, n))
            # Several threads on one descriptor, each its own quarter.
            got, q = {}, len(want) // 4 + 1

            def quarter(i):
                got[i] = os.pread(fd, q, i * q)
            ts = [threading.Thread(target=quarter, args=(i,))
                  for i in range(4)]
            for t in ts:
                t.start()
            for t in ts:
                t.join(300)
            self.assertEqual(b"".join(got[i] for i in range(4)), want)
        finally:
            os.close(fd)

    def test_cold_warm_evict(self):
        def cold(m):
            tiny = os.path.join(m.mnt, "acme", "tiny-model")
            out = self.ls_lr(tiny)
            for path in self.tiny:
                self.assertIn(os.path.basename(path), out)
            self.ls_lr(os.path.join(m.mnt, "acme", "tiny-model@v1.0"))
            self.assertIn("tiny-model", os.listdir(os.path.join(m.mnt,
                                                                "acme")))
            self.assertEqual(os.readlink(os.path.join(m.mnt, "gpt2")),
                             "openai-community/gpt2")
            for missing in ("acme/no-such-model", "acme/tiny-model/nope",
                            ".hidden", "acme/tiny-model@no-such-rev"):
                self.assertFalse(os.path.exists(os.path.join(m.mnt,
                                                             missing)))
            for name, f in self.tiny.items():
                self.read_whole(os.path.join(tiny, name), f)
            reads = os.path.join(m.mnt, "acme", "reads")
            self.ls_lr(reads)
            self.read_whole(os.path.join(reads, "plain.bin"),
                            self.reads["plain.bin"])
            self.read_parts(os.path.join(reads, "other.safetensors"),
                            self.reads["other.safetensors"])
            self.assertEqual(
                os.getxattr(os.path.join(reads, "plain.bin"),
                            "user.hubfs.etag").decode(),
                self.reads["plain.bin"]["oid"])
            with self.assertRaises(OSError):
                open(os.path.join(reads, "new-file"), "w")

        def warm(m):
            reads = os.path.join(m.mnt, "acme", "reads")
            self.ls_lr(os.path.join(m.mnt, "acme", "tiny-model"))
            self.read_whole(os.path.join(reads, "plain.bin"),
                            self.reads["plain.bin"])
            self.read_parts(os.path.join(reads, "other.safetensors"),
                            self.reads["other.safetensors"])
            self.assertEqual(int(os.getxattr(
                os.path.join(reads, "plain.bin"), "user.hubfs.cached")),
                self.reads["plain.bin"]["size"])

        def evict(m):
            # Within 4 MiB, the store must give up the files read above.
            reads = os.path.join(m.mnt, "acme", "reads")
            self.read_parts(os.path.join(reads, "plain.bin"),
                            self.reads["plain.bin"])
            self.assertLess(int(os.getxattr(
                os.path.join(reads, "other.safetensors"),
                "user.hubfs.cached")), self.reads["other.safetensors"]["size"])

        self.run_under_valgrind("cold", cold, ["-o", "xattr"])
        self.run_under_valgrind("warm", warm, ["--xattr"])
        m = self.run_under_valgrind("evict", evict,
                                    ["--max-cache", "4M", "--xattr"])
        self.assertIn("evicted", m.read(m.log))


if __name__ == "__main__":
    unittest.main(verbosity=2)
