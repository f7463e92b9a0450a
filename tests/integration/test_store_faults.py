"""The store damaged under a mounted hubfs, against the real daemon: a
damaged SQLite index, blob files changed on disk, a store on a small
filesystem that fills up, unmounting with a reader stuck, and a daemon
killed under its mount.

Whatever happens, a reader gets the fixture's exact bytes (sha256) or a
clear errno, never wrong bytes.  (kill -9 in the middle of a read is
test_faults.py's.)

Run: /usr/bin/python3 tests/integration/test_store_faults.py [-v]
(HUBFS_BIN selects the binary; ctest passes it).  Needs root for the
tmpfs of the small-filesystem case.
"""
import errno
import glob
import hashlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from mountlib import (HUBFS, Mount, blob_recorded, daemon_pids, files_at, hubstack,
                      mounted)

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "large",
                       "reads.json")
MiB = 1 << 20
REPO = "acme/reads"
FIGURES = []


def say(msg):
    print(msg, file=sys.stderr, flush=True)


def sha256_file(path, size=None):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(MiB), b""):
            h.update(b)
    return h.hexdigest()


def run(*args, env=None, timeout=30):
    return subprocess.run([HUBFS, *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


class StoreFaultTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="hubfs-store-faults-")
        os.chmod(cls.tmp, 0o755)
        cls.t0 = time.monotonic()
        cls.stack = hubstack.Stack(os.path.join(cls.tmp, "stack"),
                                   fixtures=[FIXTURE])
        cls.stack.__enter__()
        cls.files, _ = files_at(cls.stack.manifest, "model", REPO, "main")
        cls.n = 0

    @classmethod
    def tearDownClass(cls):
        cls.stack.__exit__(None, None, None)
        shutil.rmtree(cls.tmp, ignore_errors=True)
        for line in FIGURES:
            say(line)
        say("whole run: %.1f s" % (time.monotonic() - cls.t0))

    def setUp(self):
        self.addCleanup(self.stack.control, "POST", "/_emu/reset")

    # ------------------------------------------------------------ helpers
    def mount(self, store=None, args=(), name=None):
        type(self).n += 1
        m = Mount(self.tmp, self.stack.endpoint, name=name or "s%d" % self.n,
                  args=args, store=store)
        m.start()
        self.addCleanup(m.stop)
        return m

    def path(self, m, name):
        return m.path(*REPO.split("/"), name)

    def etag(self, name):
        f = self.files[name]
        return f["sha256"] if f["lfs"] else f["oid"]

    def blob(self, store, name):
        return os.path.join(store, "blobs", self.etag(name))

    def recorded(self, store, *names):
        """Wait until the index records each blob complete."""
        for name in names:
            self.assertTrue(blob_recorded(store, self.etag(name)),
                            "%s never recorded complete" % name)

    def check(self, m, name):
        """Read the whole file through the mount: its sha256 must be the
        fixture's."""
        self.assertEqual(sha256_file(self.path(m, name)),
                         self.files[name]["sha256"], name)

    def fetched(self, name, since):
        """Body bytes of name sent by the CDN or the Hub since marks."""
        cdn_n, hub_seq = since
        f = self.files[name]
        if f["lfs"]:
            return sum(e["bytes"] for e in self.stack.cdn_log()[cdn_n:]
                       if f["sha256"] in e["uri"] and e["bytes"] > 0)
        return sum(e["bytes"] for e in self.stack.hub_log(hub_seq)
                   if e["path"].endswith("/" + name) and e["bytes"] > 0
                   and e["method"] == "GET")

    def marks(self):
        log = self.stack.hub_log()
        return len(self.stack.cdn_log()), log[-1]["seq"] if log else 0

    def env(self):
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "HOME": self.tmp, "LANG": "C.UTF-8"}

    # ------------------------------------------------------------ the index
    def damage_index(self, kind, store, wal_copy):
        index = os.path.join(store, "index.db")
        if kind == "garbage":
            size = os.path.getsize(index)
            with open(index, "r+b") as f:
                f.seek(size // 2 // 4096 * 4096)
                f.write(b"\x5a" * 8192)
        elif kind == "half":
            os.truncate(index, os.path.getsize(index) // 2)
        elif kind == "empty":
            os.truncate(index, 0)
        elif kind == "stale-wal":
            for sfx in ("-wal", "-shm"):
                shutil.copyfile(wal_copy + sfx, index + sfx)

    def test_damaged_index(self):
        """Each kind of damage to index.db, met by one command first (a
        mount, hubfs ls, hubfs gc): one line naming the file, the index
        rebuilt, and the mount serves the right bytes, fetched again."""
        plan = [("garbage", "ls"), ("half", "gc"), ("empty", "mount"),
                ("stale-wal", "mount")]
        names = ("config.json", "plain.bin")
        for kind, first in plan:
            with self.subTest(kind=kind, first=first):
                m = self.mount()
                store = m.store
                wal_copy = os.path.join(self.tmp, "wal-copy-%d" % self.n)
                self.check(m, "config.json")
                if kind == "stale-wal":
                    # The WAL as it was before plain.bin came: later
                    # put back beside the index that has moved on.
                    con = sqlite3.connect(os.path.join(store, "index.db"))
                    con.execute("PRAGMA wal_checkpoint(PASSIVE)")
                    con.close()
                    for sfx in ("-wal", "-shm"):
                        shutil.copyfile(os.path.join(store, "index.db" + sfx),
                                        wal_copy + sfx)
                self.check(m, "plain.bin")
                self.recorded(store, "plain.bin")
                m.stop()
                self.assertTrue(os.path.exists(self.blob(store, "plain.bin")))
                self.damage_index(kind, store, wal_copy)
                where = run("where", "--cache-dir", store, env=self.env())
                self.assertEqual(where.returncode, 0, where.stderr)
                if kind in ("half", "empty"):
                    self.assertIn("damaged", where.stdout)
                if first == "ls":
                    r = run("ls", "--cache-dir", store, env=self.env())
                elif first == "gc":
                    r = run("gc", "--cache-dir", store, "--max-cache", "1G",
                            "--dry-run", env=self.env())
                marks = self.marks()
                again = self.mount(store=store)
                if first != "mount":
                    self.assertEqual(r.returncode, 0, r.stderr)
                    msg = r.stderr
                else:
                    msg = again.read_log()
                aside = glob.glob(os.path.join(store, "index.db.corrupt-*"))
                if kind == "stale-wal" and not aside:
                    # A WAL of this very index may replay into a
                    # consistent older state: then nothing is damaged.
                    FIGURES.append("stale -wal/-shm: replayed, the index "
                                   "passed quick_check")
                else:
                    self.assertEqual(len(aside), 1, os.listdir(store))
                    lines = [ln for ln in msg.splitlines()
                             if "damaged" in ln]
                    self.assertEqual(len(lines), 1, msg)
                    self.assertIn(os.path.join(store, "index.db"), lines[0])
                    self.assertIn(aside[0], lines[0])
                    FIGURES.append("%s (%s first): %s" % (
                        kind, first, lines[0].split("index.db ", 1)[1]))
                for name in names:
                    self.check(again, name)
                if aside:
                    self.assertGreater(self.fetched("plain.bin", marks), 0,
                                       "plain.bin not fetched again")
                con = sqlite3.connect(os.path.join(store, "index.db"))
                self.assertEqual(con.execute("PRAGMA quick_check")
                                 .fetchall(), [("ok",)])
                con.close()
                again.stop()

    # ------------------------------------------------------------ the blobs
    def test_blob_changed_on_disk(self):
        """A complete blob with bytes flipped (new mtime), truncated or
        deleted: the next mount reads the right bytes, fetched again, and
        the blob file is right again."""
        names = ("other.safetensors", "plain.bin", "config.json")
        m = self.mount()
        for name in names:
            self.check(m, name)
        self.recorded(m.store, *names)
        m.stop()
        store = m.store
        with open(self.blob(store, "other.safetensors"), "r+b") as f:
            f.seek(5 * MiB)
            f.write(bytes(b ^ 0xFF for b in f.read(64)[:64]))
        st = os.stat(self.blob(store, "other.safetensors"))
        os.utime(self.blob(store, "other.safetensors"),
                 ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        os.truncate(self.blob(store, "plain.bin"),
                    self.files["plain.bin"]["size"] // 2)
        os.unlink(self.blob(store, "config.json"))
        marks = self.marks()
        again = self.mount(store=store)
        for name in names:
            self.check(again, name)
            self.assertGreater(self.fetched(name, marks), 0,
                               "%s not fetched again" % name)
        self.recorded(store, *names)
        for name in names:
            self.assertEqual(sha256_file(self.blob(store, name)),
                             self.files[name]["sha256"], name)

    # The limit of the cheap check (db/blobs.c): size, inode and mtime kept,
    # the flipped bytes go unnoticed until the blob is hashed again, which
    # is what `hubfs verify` (being written elsewhere) is for.
    @unittest.expectedFailure
    def test_blob_flipped_with_mtime_kept(self):
        """A bit flipped in a complete blob, its mtime put back: the mount
        still reads the right bytes."""
        m = self.mount()
        self.check(m, "plain.bin")
        self.recorded(m.store, "plain.bin")
        m.stop()
        p = self.blob(m.store, "plain.bin")
        st = os.stat(p)
        with open(p, "r+b") as f:
            f.seek(1000)
            b = f.read(1)
            f.seek(1000)
            f.write(bytes([b[0] ^ 1]))
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
        self.check(self.mount(store=m.store), "plain.bin")

    # ------------------------------------------------------------ disk full
    def test_small_filesystem(self):
        """A store on a 64 MiB tmpfs: with 29 MiB of blobs held open, a
        48 MiB file gets ENOSPC, never wrong bytes; the held blobs stay
        intact and the mount keeps answering; once they are closed,
        eviction makes room and the big file reads right."""
        self.fill_small()

    # After a read met ENOSPC, the run that failed had delivered blocks a
    # reader got and the kernel cached; they were never marked, so the
    # blob never became whole.  Fixed: job_finish() marks what arrived.
    def test_small_filesystem_records_the_blob(self):
        """After the full disk is relieved, the verified big blob lands in
        blobs/."""
        store, big = self.fill_small()
        for _ in range(50):  # moved into blobs/ by the sync thread
            if os.path.exists(self.blob(store, big)):
                break
            time.sleep(0.1)
        self.assertEqual(sha256_file(self.blob(store, big)),
                         self.files[big]["sha256"])

    def fill_small(self):
        type(self).n += 1
        small = os.path.join(self.tmp, "small%d" % self.n)
        os.makedirs(small)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m,mode=0755",
                        "tmpfs", small], check=True)
        self.addCleanup(subprocess.run, ["umount", "-l", small])
        store = os.path.join(small, "store")
        m = self.mount(store=store)
        self.check(m, "config.json")
        held = {}
        for name in ("plain.bin", "other.safetensors"):
            self.check(m, name)
            held[name] = os.open(self.path(m, name), os.O_RDONLY)
        time.sleep(0.5)
        big = "weights.safetensors"
        with open(self.files[big]["content"], "rb") as f:
            want = f.read()
        got, err = 0, None
        try:
            with open(self.path(m, big), "rb", buffering=0) as f:
                for b in iter(lambda: f.read(MiB), b""):
                    self.assertEqual(b, want[got:got + len(b)],
                                     "wrong bytes at %d" % got)
                    got += len(b)
        except OSError as e:
            err = e
        self.assertIsNotNone(err, "read %d bytes of a file that cannot "
                             "fit" % got)
        self.assertEqual(err.errno, errno.ENOSPC, repr(err))
        FIGURES.append("64 MiB tmpfs, 29 MiB held: ENOSPC after %d MiB of "
                       "the 48 MiB file" % (got // MiB))
        # Still answering, and what was stored is intact.  (config.json
        # itself may have been evicted to make room: nothing held it.)
        self.assertIn("config.json", os.listdir(m.path(*REPO.split("/"))))
        os.stat(self.path(m, big))
        os.stat(self.path(m, "config.json"))
        for name in held:
            self.assertEqual(sha256_file(self.blob(store, name)),
                             self.files[name]["sha256"], name)
            self.check(m, name)
        for fd in held.values():
            os.close(fd)
        # FUSE's release is asynchronous: the blobs stay held (and cannot
        # be evicted to make room) until the daemon has seen it.
        for attempt in range(20):
            try:
                self.check(m, big)
                break
            except OSError as e:
                if e.errno != errno.ENOSPC or attempt == 19:
                    raise
                time.sleep(0.25)
        return store, big

    # ------------------------------------------------------------ unmounting
    def test_umount_with_a_stuck_reader(self):
        """hubfs umount while a read waits on a stalled CDN: the command
        answers at once (busy), the mount keeps working, and once the
        reader is gone the unmount succeeds and the daemon exits."""
        name = "other.safetensors"
        m = self.mount(args=["--read-timeout", "3"])
        os.stat(self.path(m, name))
        rule = self.stack.fault(kind="stall", target="cdn", after=0,
                                seconds=20, path=self.files[name]["sha256"])
        out = {}

        def reader():
            try:
                out["r"] = sha256_file(self.path(m, name))
            except OSError as e:
                out["e"] = e
        t = threading.Thread(target=reader, daemon=True)
        t.start()
        for _ in range(100):
            hits = [r["hits"] for r in self.stack.control(
                "GET", "/_emu/faults") if r["id"] == rule["id"]]
            if hits and hits[0]:
                break
            time.sleep(0.05)
        self.assertTrue(hits and hits[0], "the stall never fired")
        t0 = time.monotonic()
        r = run("umount", m.mnt, timeout=20)
        secs = time.monotonic() - t0
        FIGURES.append("hubfs umount with a stuck reader: exit %d in %.1f s:"
                       " %s" % (r.returncode, secs, r.stderr.strip()))
        self.assertNotEqual(r.returncode, 0)
        self.assertTrue(mounted(m.mnt))
        self.check(m, "config.json")
        self.stack.clear_faults()
        t.join(30)
        self.assertFalse(t.is_alive(), "the reader never came back")
        if "r" in out:
            self.assertEqual(out["r"], self.files[name]["sha256"])
        else:
            self.assertEqual(out["e"].errno, errno.EIO, repr(out["e"]))
        r = run("umount", m.mnt)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertFalse(mounted(m.mnt))
        for _ in range(100):
            if not daemon_pids(m.mnt):
                break
            time.sleep(0.05)
        self.assertEqual(daemon_pids(m.mnt), [])

    def test_umount_of_a_killed_daemon(self):
        """kill -9 of the daemon: the folder answers ENOTCONN; hubfs
        umount cleans it up, even with a file of it still open, and a new
        mount on the same folder works."""
        m = self.mount()
        self.check(m, "config.json")
        fd = os.open(self.path(m, "config.json"), os.O_RDONLY)
        pids = daemon_pids(m.mnt)
        self.assertEqual(len(pids), 1, pids)
        os.kill(pids[0], signal.SIGKILL)
        for _ in range(100):
            if not daemon_pids(m.mnt):
                break
            time.sleep(0.05)
        with self.assertRaises(OSError) as cm:
            os.listdir(m.mnt)
        # ECONNABORTED while the kernel is still tearing it down.
        self.assertIn(cm.exception.errno, (errno.ENOTCONN,
                                           errno.ECONNABORTED))
        r = run("umount", m.mnt)
        FIGURES.append("hubfs umount of a dead mount with a file open: "
                       "exit %d %s" % (r.returncode, r.stderr.strip()))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertFalse(mounted(m.mnt))
        os.close(fd)
        again = self.mount(store=m.store, name=os.path.basename(
            m.mnt)[:-len("-mnt")])
        self.assertEqual(again.mnt, m.mnt)
        self.check(again, "config.json")
        self.check(again, "plain.bin")


if __name__ == "__main__":
    unittest.main(verbosity=2)
