"""Things that change while mounted: a branch moves, the user logs in.

Own stack (it pushes commits) and mounts with a short --revision-ttl.
"""
import calendar
import os
import shutil
import subprocess
import tempfile
import time
import unittest

import mountlib
from mountlib import Mount, files_at, hubstack


def iso_to_unix(s):
    return calendar.timegm(time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S"))


class RevisionTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="hubfs-rev-")
        os.chmod(self.tmp, 0o755)
        self.stack = hubstack.Stack(os.path.join(self.tmp, "stack"))
        self.stack.__enter__()
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.addCleanup(self.stack.__exit__, None, None, None)

    def mount(self, name="m", **kw):
        m = Mount(self.tmp, self.stack.endpoint, name=name, **kw).start()
        self.addCleanup(m.stop)
        return m

    def test_branch_moves_after_ttl_open_files_do_not(self):
        m = self.mount(args=("--revision-ttl", "2", "-o", "xattr"))
        top = m.path("datasets", "bob", "bob-data")
        files, old_sha = files_at(self.stack.manifest, "dataset",
                                  "bob/bob-data", "main")
        with open(files["data.jsonl"]["content"], "rb") as f:
            old = f.read()
        with open(os.path.join(top, "data.jsonl"), "rb") as f:
            self.assertEqual(f.read(), old)
        held = open(os.path.join(top, "data.jsonl"), "rb")
        self.addCleanup(held.close)
        pinned = m.path("datasets", "bob", "bob-data@" + old_sha)
        self.assertEqual(sorted(os.listdir(pinned)), sorted(files))

        new_sha = self.stack.commit("bob/bob-data", rtype="dataset",
                                    files={"data.jsonl": "{\"x\": 3}\n",
                                           "added.txt": "new file\n"})
        self.assertNotEqual(new_sha, old_sha)
        time.sleep(3)
        self.assertIn("added.txt", os.listdir(top))
        with open(os.path.join(top, "data.jsonl"), "rb") as f:
            self.assertEqual(f.read(), b"{\"x\": 3}\n")
        self.assertEqual(os.getxattr(top, "user.hubfs.commit").decode(),
                         new_sha)
        # What was open stays bound to the blob it was opened on, and a
        # commit folder never changes.
        held.seek(0)
        self.assertEqual(held.read(), old)
        self.assertEqual(sorted(os.listdir(pinned)), sorted(files))

    def test_two_mounts_on_one_store_follow_the_branch(self):
        a = self.mount(name="a", args=("--revision-ttl", "2"))
        b = self.mount(name="b", store=a.store,
                       args=("--revision-ttl", "2"))
        tops = [m.path("datasets", "bob", "bob-data") for m in (a, b)]
        for top in tops:
            os.listdir(top)
        self.stack.commit("bob/bob-data", rtype="dataset",
                          files={"both.txt": "seen by both\n"})
        seen = [False, False]
        deadline = time.monotonic() + 20
        while not all(seen) and time.monotonic() < deadline:
            for i, top in enumerate(tops):
                seen[i] = seen[i] or "both.txt" in os.listdir(top)
            time.sleep(0.3)
        self.assertEqual(seen, [True, True])

    def test_relative_paths_are_taken_from_where_hubfs_started(self):
        m = Mount(self.tmp, self.stack.endpoint, name="rel")
        with open(os.path.join(self.tmp, "rel.token"), "w") as f:
            f.write(self.stack.tokens["users"]["alice"]["token"])
        r = subprocess.run(
            [mountlib.HUBFS, "mount", "--endpoint", self.stack.endpoint,
             "--cache-dir", "rel-store", "--token-file", "rel.token",
             "--log", m.log, m.mnt], cwd=self.tmp, env=m.env,
            capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.addCleanup(m.stop)
        with open(m.path("acme", "secret-model", "config.json")) as f:
            self.assertIn("secret", f.read())
        self.assertTrue(os.path.exists(os.path.join(self.tmp, "rel-store",
                                                    "index.db")))

    def test_store_inside_the_mount_through_a_link_is_refused(self):
        inner = Mount(self.tmp, self.stack.endpoint, name="viasym")
        link = os.path.join(self.tmp, "link-to-mnt")
        os.symlink(inner.mnt, link)
        inner.store = os.path.join(link, "store")
        with self.assertRaises(RuntimeError) as cm:
            inner.start()
        self.assertIn("inside", str(cm.exception))

    def test_branch_within_ttl_costs_no_request(self):
        m = self.mount(args=("--revision-ttl", "600"))
        top = m.path("acme", "tiny-model")
        os.listdir(top)
        before = len(self.stack.hub_log())
        for _ in range(3):
            os.listdir(top)
            os.stat(os.path.join(top, "config.json"))
        self.assertEqual(len(self.stack.hub_log()), before)

    def test_login_while_mounted(self):
        tokfile = os.path.join(self.tmp, "token")
        m = self.mount(env={"HF_TOKEN_PATH": tokfile})
        secret = m.path("acme", "secret-model", "config.json")
        with self.assertRaises(PermissionError):
            open(secret).close()
        self.assertNotIn("alice", os.listdir(m.mnt))
        with open(tokfile, "w") as f:
            f.write(self.stack.tokens["users"]["alice"]["token"])
        with open(secret) as f:
            self.assertIn("secret", f.read())
        # Signed in, the root shows the user's namespace and orgs.
        names = os.listdir(m.mnt)
        self.assertIn("alice", names)
        self.assertIn("acme", names)

    def test_remount_asks_nothing_for_a_commit(self):
        files, sha = files_at(self.stack.manifest, "model", "acme/tiny-model",
                              "v1.0")
        m = self.mount()
        pinned = m.path("acme", "tiny-model@" + sha)
        listing = sorted(os.listdir(pinned))
        with open(os.path.join(pinned, "config.json"), "rb") as f:
            config = f.read()
        m.stop()
        for env in ({}, {"HF_HUB_OFFLINE": "1"}):
            self.stack.clear_logs()
            again = self.mount(name="again", store=m.store, env=env)
            pinned = again.path("acme", "tiny-model@" + sha)
            self.assertEqual(sorted(os.listdir(pinned)), listing)
            with open(os.path.join(pinned, "config.json"), "rb") as f:
                self.assertEqual(f.read(), config)
            self.assertEqual(self.stack.hub_log(), [], env)
            again.stop()

    def test_mtime_is_the_commit_time(self):
        m = self.mount()
        for rev, name in (("main", "tiny-model"), ("v1.0", "tiny-model@v1.0")):
            _, sha = files_at(self.stack.manifest, "model", "acme/tiny-model",
                              rev)
            repo = [r for r in self.stack.manifest["repos"]
                    if r["id"] == "acme/tiny-model"][0]
            want = iso_to_unix(repo["commits"][sha]["date"])
            st = os.stat(m.path("acme", name, "config.json"))
            self.assertEqual(int(st.st_mtime), want, rev)

    def test_store_inside_its_own_mount_is_refused(self):
        inner = Mount(self.tmp, self.stack.endpoint, name="inner")
        inner.store = os.path.join(inner.mnt, "store")
        with self.assertRaises(RuntimeError) as cm:
            inner.start()
        self.assertIn("inside", str(cm.exception))


if __name__ == "__main__":
    unittest.main(verbosity=2)
