"""`hubfs status` and the socket each mount answers on.

Numbers are checked against what the test itself read through the mount;
the socket's place and modes, the clean-up of a socket left by a daemon
killed with -9, a client that connects and says nothing, a store path too
long for sun_path, and the "refresh" request that makes a branch folder
follow its branch before the revision TTL would.
"""
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
import unittest

from mountlib import Mount, daemon_pids, files_at, hubstack, mounted
from mountlib import HUBFS as _HUBFS

HUBFS = os.path.abspath(_HUBFS)


def ask(store, pid, request):
    """Send request to the mount's socket; its JSON answer."""
    path = os.path.join(store, "mounts", "%d.sock" % pid)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(path)
        s.sendall(request.encode() + b"\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data)


class StatusTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="hubfs-status-")
        os.chmod(cls.tmp, 0o755)
        cls.stack = hubstack.Stack(os.path.join(cls.tmp, "stack"))
        cls.stack.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.stack.__exit__(None, None, None)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def mount(self, name, **kw):
        m = Mount(self.tmp, self.stack.endpoint, name=name, **kw).start()
        self.addCleanup(m.stop)
        return m

    def status(self, store, *args, env=None):
        r = subprocess.run([HUBFS, "status", "--cache-dir", store, *args],
                           capture_output=True, text=True, timeout=60,
                           env=env or {"PATH": "/usr/bin:/bin",
                                       "HOME": self.tmp})
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout) if "--json" in args else r.stdout

    def mine(self, report, m):
        found = [x for x in report["mounts"]
                 if x.get("mountpoint") == m.mnt]
        self.assertEqual(len(found), 1, report)
        return found[0]

    def test_a_store_that_does_not_exist(self):
        store = os.path.join(self.tmp, "never", "store")
        text = self.status(store)
        self.assertIn("does not exist yet", text)
        self.assertIn("none running", text)
        j = self.status(store, "--json")
        self.assertFalse(j["store_exists"])
        self.assertEqual(j["mounts"], [])
        self.assertFalse(os.path.exists(store), "status created the store")

    def test_counts_what_was_read(self):
        m = self.mount("count")
        files, _ = files_at(self.stack.manifest, "model", "acme/tiny-model",
                            "main")
        size = files["model.safetensors"]["size"]
        path = m.path("acme", "tiny-model", "model.safetensors")
        with open(files["model.safetensors"]["content"], "rb") as f:
            want = f.read()

        # The socket: 0600, in a 0700 folder of the store.
        pid = daemon_pids(m.mnt)[0]
        sock = os.path.join(m.store, "mounts", "%d.sock" % pid)
        st = os.stat(sock)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        self.assertEqual(
            stat.S_IMODE(os.stat(os.path.dirname(sock)).st_mode), 0o700)

        before = self.mine(self.status(m.store, "--json"), m)
        self.assertEqual(before["pid"], pid)
        self.assertEqual(before["reads"], 0)
        self.assertIsNone(before["hit_rate"])

        with open(path, "rb") as f:  # cold: from the network
            self.assertEqual(f.read(), want)
        cold = self.status(m.store, "--json")
        c = self.mine(cold, m)
        self.assertGreaterEqual(c["bytes_served"], size)
        self.assertGreaterEqual(c["bytes_fetched"], size)
        self.assertGreater(c["reads"], 0)
        self.assertLess(c["reads_local"], c["reads"])
        self.assertEqual(c["endpoint"], self.stack.endpoint)
        self.assertEqual(c["store"], os.path.realpath(m.store))
        self.assertGreaterEqual(c["uptime"], 0)
        # The read that completes a blob is answered once its hash checks;
        # the index records it complete just after, so give that a moment.
        deadline = time.monotonic() + 10
        while cold["blobs"]["complete"] < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
            cold = self.status(m.store, "--json")
        self.assertGreaterEqual(cold["blobs"]["complete"], 1)
        self.assertGreaterEqual(cold["used"], size)
        self.assertIsNone(cold["limit"])

        # Again, with the kernel's copy dropped: every read is local.
        with open(path, "rb") as f:
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            self.assertEqual(f.read(), want)
        w = self.mine(self.status(m.store, "--json"), m)
        self.assertGreater(w["reads"], c["reads"])
        self.assertEqual(w["reads"] - c["reads"],
                         w["reads_local"] - c["reads_local"])
        self.assertGreaterEqual(w["bytes_served"] - c["bytes_served"], size)
        self.assertEqual(w["bytes_fetched"], c["bytes_fetched"])
        self.assertGreater(w["hit_rate"], c["hit_rate"])
        self.assertEqual(w["transfers_in_flight"], 0)

        text = self.status(m.store)
        self.assertIn(m.mnt, text)
        self.assertIn("pid         %d" % pid, text)
        self.assertIn("hit rate", text)
        self.assertIn("1 running", text)
        self.assertIn("(no limit)", text)

        m.stop()
        self.assertFalse(os.path.exists(sock), "socket left after unmount")
        self.assertIn("none running", self.status(m.store))

    def test_dead_daemon_socket_is_removed(self):
        m = self.mount("dead")
        pid = daemon_pids(m.mnt)[0]
        sock = os.path.join(m.store, "mounts", "%d.sock" % pid)
        self.assertTrue(os.path.exists(sock))
        os.kill(pid, signal.SIGKILL)
        for _ in range(100):
            if not os.path.exists("/proc/%d" % pid):
                break
            time.sleep(0.05)
        subprocess.run(["fusermount3", "-uz", m.mnt], capture_output=True)
        self.assertTrue(os.path.exists(sock))  # what -9 leaves behind
        j = self.status(m.store, "--json")
        self.assertEqual(j["mounts"], [])
        self.assertFalse(os.path.exists(sock), "stale socket not removed")

    def test_last_errors_also_after_the_mount_died(self):
        """A lookup the Hub fails (HTTP 500): the mount's status lists the
        error; after kill -9 the store still says what that mount's last
        errors were."""
        m = self.mount("errs")
        pid = daemon_pids(m.mnt)[0]
        rule = self.stack.fault(kind="status", status=500,
                                path="/api/models/acme/tiny-model/revision/")
        self.addCleanup(self.stack.control, "DELETE",
                        "/_emu/faults/%d" % rule["id"])
        with self.assertRaises(OSError):
            os.listdir(m.path("acme", "tiny-model@v1.0"))
        got = self.mine(self.status(m.store, "--json"), m)
        msgs = [e["message"] for e in got["last_errors"]]
        self.assertTrue(any("HTTP 500" in x for x in msgs), got)
        self.assertIn("HTTP 500", self.status(m.store))

        os.kill(pid, signal.SIGKILL)
        for _ in range(100):
            if not os.path.exists("/proc/%d" % pid):
                break
            time.sleep(0.05)
        subprocess.run(["fusermount3", "-uz", m.mnt], capture_output=True)
        j = self.status(m.store, "--json")
        ended = [x for x in j["ended_mounts"] if x["pid"] == pid]
        self.assertEqual(len(ended), 1, j)
        self.assertEqual(ended[0]["mountpoint"], m.mnt)
        self.assertTrue(any("HTTP 500" in e["message"]
                            for e in ended[0]["last_errors"]), ended)
        self.assertIn("no longer running", self.status(m.store))

    @unittest.skipIf(os.path.exists("/dev/log"),
                     "this machine has syslog: the daemon logs there")
    def test_daemon_without_syslog_logs_into_the_store(self):
        """A daemon without --log on a machine without syslog leaves its
        log in the store (hubfs.log, 0600), errors included."""
        store = os.path.join(self.tmp, "nolog-store")
        mnt = os.path.join(self.tmp, "nolog-mnt")
        os.makedirs(mnt)
        env = {"PATH": "/usr/bin:/bin", "HOME": self.tmp}
        r = subprocess.run([HUBFS, "mount", "--endpoint",
                            self.stack.endpoint, "--cache-dir", store, mnt],
                           capture_output=True, text=True, timeout=60,
                           env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.addCleanup(subprocess.run, ["fusermount3", "-u", mnt],
                        capture_output=True)
        rule = self.stack.fault(kind="status", status=500,
                                path="/api/models/acme/tiny-model/revision/")
        self.addCleanup(self.stack.control, "DELETE",
                        "/_emu/faults/%d" % rule["id"])
        with self.assertRaises(OSError):
            os.listdir(os.path.join(mnt, "acme", "tiny-model@v1.0"))
        log = os.path.join(store, "hubfs.log")
        self.assertEqual(stat.S_IMODE(os.stat(log).st_mode), 0o600)
        with open(log) as f:
            text = f.read()
        self.assertIn("mounted " + mnt, text)
        self.assertIn("HTTP 500", text)

    def test_silent_client_does_not_wedge_the_mount(self):
        m = self.mount("silent")
        pid = daemon_pids(m.mnt)[0]
        silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(silent.close)
        silent.connect(os.path.join(m.store, "mounts", "%d.sock" % pid))
        got = self.mine(self.status(m.store, "--json"), m)
        self.assertTrue(got["answered"])
        # The silent client is dropped without an answer.
        silent.settimeout(10)
        self.assertEqual(silent.recv(100), b"")
        self.assertIn("error", ask(m.store, pid, "nonsense"))

    def test_store_path_longer_than_sun_path(self):
        deep = os.path.join(self.tmp, "d" * 60, "e" * 60)
        os.makedirs(deep)
        store = os.path.join(deep, "store")
        self.assertGreater(len(store) + len("/mounts/1234567.sock"), 108)
        m = self.mount("long", store=store)
        with open(m.path("acme", "tiny-model", "config.json"), "rb") as f:
            n = len(f.read())
        got = self.mine(self.status(store, "--json"), m)
        self.assertGreaterEqual(got["bytes_served"], n)
        pid = daemon_pids(m.mnt)[0]
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(
            store, "mounts", "%d.sock" % pid)).st_mode), 0o600)

    def test_above_the_limit_because_of_pins(self):
        store = os.path.join(self.tmp, "pinned-store")
        env = {"PATH": "/usr/bin:/bin", "HOME": self.tmp}
        common = ["--cache-dir", store, "--endpoint", self.stack.endpoint]
        r = subprocess.run([HUBFS, "pull", *common, "acme/tiny-model"],
                           capture_output=True, text=True, timeout=120,
                           env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = subprocess.run([HUBFS, "gc", *common, "--max-cache", "1K"],
                           capture_output=True, text=True, timeout=60,
                           env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        j = self.status(store, "--json")
        self.assertEqual(j["limit"], 1024)
        self.assertGreater(j["used"], 1024)
        self.assertTrue(j["over_limit"])
        self.assertTrue(j["over_limit_pinned"])
        self.assertGreater(j["pinned"]["files"], 0)
        self.assertEqual(j["pinned"]["fetched_bytes"], j["pinned"]["bytes"])
        text = self.status(store)
        self.assertIn("above its limit because of pinned files", text)
        self.assertIn("of 1.0 KiB (limit)", text)


class RefreshTest(unittest.TestCase):
    """Own stack: it moves a branch."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="hubfs-refresh-")
        os.chmod(self.tmp, 0o755)
        self.stack = hubstack.Stack(os.path.join(self.tmp, "stack"))
        self.stack.__enter__()
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.addCleanup(self.stack.__exit__, None, None, None)

    def test_refresh_follows_the_branch_before_the_ttl(self):
        m = Mount(self.tmp, self.stack.endpoint, name="r",
                  args=("--revision-ttl", "3600", "--xattr")).start()
        self.addCleanup(m.stop)
        files, old_sha = files_at(self.stack.manifest, "dataset",
                                  "bob/bob-data", "main")
        top = m.path("datasets", "bob", "bob-data")
        data = os.path.join(top, "data.jsonl")
        with open(files["data.jsonl"]["content"], "rb") as f:
            old = f.read()
        with open(data, "rb") as f:
            self.assertEqual(f.read(), old)
        pinned = m.path("datasets", "bob", "bob-data@" + old_sha)
        os.listdir(pinned)

        new_sha = self.stack.commit("bob/bob-data", rtype="dataset",
                                    files={"data.jsonl": "{\"x\": 9}\n"})
        self.assertNotEqual(new_sha, old_sha)
        # Within the TTL the folder stays on the commit it resolved to.
        with open(data, "rb") as f:
            self.assertEqual(f.read(), old)

        pid = daemon_pids(m.mnt)[0]
        got = ask(m.store, pid, "refresh")
        self.assertEqual(got["pid"], pid)
        self.assertEqual(got["mountpoint"], m.mnt)
        self.assertGreaterEqual(got["invalidated"], 1, got)
        with open(data, "rb") as f:
            self.assertEqual(f.read(), b"{\"x\": 9}\n")
        self.assertEqual(os.getxattr(top, "user.hubfs.commit").decode(),
                         new_sha)
        # A commit folder does not move.
        with open(os.path.join(pinned, "data.jsonl"), "rb") as f:
            self.assertEqual(f.read(), old)
        self.assertTrue(mounted(m.mnt))


if __name__ == "__main__":
    unittest.main(verbosity=2)
