"""The commands that steer the store: pull, unpin, add, forget, refresh,
verify and gc with pins, each against the emulator, checked by their
output, by the store they leave and by the CDN's access log.

A pull of a pattern must fetch exactly the matching files; an interrupted
pull must resume without fetching again what it had made durable; a pull
that cannot fit on the store's disk must stop before fetching anything;
the progress bar is drawn on a terminal and not in a pipe.
"""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from mountlib import HUBFS as _HUBFS
from mountlib import Mount, files_at, hubstack, mounted

HUBFS = os.path.abspath(_HUBFS)
MiB = 1 << 20

# Files of different sizes finish at different times at a limited CDN
# rate, so an interrupt can come between two of them.
FIXTURE = {
    "repos": [
        {"type": "model", "id": "acme/pull-model",
         "commits": [{"message": "weights", "files": {
             "README.md": "# pull-model\n",
             "config.json": "{\"model_type\": \"pull\"}\n",
             "tokenizer.json": "{\"vocab\": [\"a\", \"b\"]}\n",
             "model-00001-of-00002.safetensors":
                 {"size": 3 * MiB + 17, "seed": 501, "lfs": True},
             "model-00002-of-00002.safetensors":
                 {"size": 2 * MiB + 5, "seed": 502, "lfs": True},
             "onnx/model.onnx": {"size": MiB + 3, "seed": 503, "lfs": True},
             "onnx/config.json": "{\"onnx\": true}\n",
         }}]},
        {"type": "model", "id": "acme/slow-model",
         "commits": [{"message": "shards", "files": {
             "a.bin": {"size": 2 * MiB, "seed": 511, "lfs": True},
             "b.bin": {"size": 4 * MiB, "seed": 512, "lfs": True},
             "c.bin": {"size": 40 * MiB, "seed": 513, "lfs": True},
             "d.bin": {"size": 48 * MiB + 1, "seed": 514, "lfs": True},
         }}]},
    ]
}


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class CommandsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="hubfs-cmds-")
        os.chmod(cls.tmp, 0o755)
        fixture = os.path.join(cls.tmp, "fixture.json")
        with open(fixture, "w") as f:
            json.dump(FIXTURE, f)
        cls.stack = hubstack.Stack(os.path.join(cls.tmp, "stack"),
                                   fixtures=[fixture], cdn_rate="6m")
        cls.stack.__enter__()
        cls.files, cls.commit = files_at(cls.stack.manifest, "model",
                                         "acme/pull-model", "main")
        cls.slow, _ = files_at(cls.stack.manifest, "model",
                               "acme/slow-model", "main")
        cls.n = 0

    @classmethod
    def tearDownClass(cls):
        cls.stack.__exit__(None, None, None)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def new_store(self):
        type(self).n += 1
        return os.path.join(self.tmp, "store%d" % self.n)

    def env(self):
        home = os.path.join(self.tmp, "home")
        os.makedirs(home, exist_ok=True)
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "HOME": home, "LANG": "C.UTF-8"}

    def hubfs(self, store, *args, ok=True, timeout=120):
        r = subprocess.run([HUBFS, args[0], "--cache-dir", store,
                            "--endpoint", self.stack.endpoint, *args[1:]],
                           capture_output=True, text=True, env=self.env(),
                           timeout=timeout)
        if ok:
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return r

    def cdn_etags(self, since=0):
        """{etag: bytes} the CDN served since a point in its log."""
        out = {}
        for e in self.stack.cdn_log()[since:]:
            name = e.get("uri", "").rsplit("/", 1)[-1]
            out[name] = out.get(name, 0) + e.get("bytes", 0)
        return out

    def blobs(self, store):
        d = os.path.join(store, "blobs")
        return set(os.listdir(d)) if os.path.isdir(d) else set()

    def etag(self, f):
        """The blob name: the sha256 of an LFS file, else the git oid."""
        return f["sha256"] if f["lfs"] else f["oid"]

    def ls_files(self, store, repo):
        r = self.hubfs(store, "ls", "--json", repo)
        return {f["path"]: f for f in json.loads(r.stdout)["files"]}

    # --- pull --------------------------------------------------------------

    def test_pull_pattern_fetches_exactly_the_matching_files(self):
        store = self.new_store()
        before = len(self.stack.cdn_log())
        r = self.hubfs(store, "pull", "acme/pull-model", "*.safetensors",
                       "config.json")
        # config.json matches at the root only; '*' crosses '/'.
        want = {p for p in self.files
                if p.endswith(".safetensors") or p == "config.json"}
        self.assertEqual(self.blobs(store),
                         {self.etag(self.files[p]) for p in want})
        lfs = {self.etag(self.files[p]) for p in want
               if self.files[p]["lfs"]}
        self.assertEqual(set(self.cdn_etags(before)), lfs)
        for p in want:
            f = self.files[p]
            self.assertEqual(
                sha256_file(os.path.join(store, "blobs", self.etag(f))),
                sha256_file(f["content"]))
        self.assertIn("pulled acme/pull-model@%s" % self.commit[:12],
                      r.stdout)
        self.assertIn("3 files", r.stdout)
        # Not a terminal: a plain line per file, no bar.
        self.assertNotIn("\r", r.stdout + r.stderr)
        for p in want:
            self.assertIn(p, r.stdout)

        # A pattern for a folder; one that matches nothing is an error.
        r = self.hubfs(store, "pull", "acme/pull-model", "onnx/")
        self.assertIn(self.etag(self.files["onnx/model.onnx"]),
                      self.blobs(store))
        r = self.hubfs(store, "pull", "acme/pull-model", "*.gguf", ok=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("matches '*.gguf'", r.stderr)

        # Pulled files read offline, through a mount, with no transfer.
        before = len(self.stack.cdn_log())
        m = Mount(self.tmp, self.stack.endpoint, name="off%d" % self.n,
                  store=store, args=["--offline"])
        m.start()
        try:
            for p in want:
                got = sha256_file(m.path("acme", "pull-model", p))
                self.assertEqual(got, sha256_file(self.files[p]["content"]))
        finally:
            m.stop()
        self.assertEqual(len(self.stack.cdn_log()), before)

    def test_pull_errors(self):
        store = self.new_store()
        r = self.hubfs(store, "pull", "acme/no-such-model", ok=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("acme/no-such-model", r.stderr)
        r = self.hubfs(store, "pull", "acme/pull-model@no-such-branch",
                       ok=False)
        self.assertEqual(r.returncode, 1)
        r = self.hubfs(store, "pull", "not a repo", ok=False)
        self.assertEqual(r.returncode, 2)
        r = self.hubfs(store, "pull", "--offline", "acme/pull-model",
                       ok=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("offline", r.stderr)

    def test_progress_bar_on_a_terminal(self):
        store = self.new_store()
        cmd = " ".join([HUBFS, "pull", "--cache-dir", store, "--endpoint",
                        self.stack.endpoint, "acme/slow-model", "b.bin"])
        r = subprocess.run(["script", "-qefc", cmd, "/dev/null"],
                           capture_output=True, env=self.env(), timeout=120)
        out = r.stdout.decode("utf-8", "replace")  # keeps the \r
        self.assertEqual(r.returncode, 0, out + r.stderr.decode())
        self.assertIn("\r[", out)
        self.assertIn("ETA", out)
        self.assertIn("1/1 files", out)
        self.assertIn("100%", out)
        self.assertIn("pulled acme/slow-model", out)

    def test_interrupted_pull_resumes_without_refetching(self):
        store = self.new_store()
        a, b = self.etag(self.slow["a.bin"]), self.etag(self.slow["b.bin"])
        before = len(self.stack.cdn_log())
        p = subprocess.Popen([HUBFS, "pull", "--cache-dir", store,
                              "--endpoint", self.stack.endpoint,
                              "acme/slow-model"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=self.env())
        # Interrupt once the small files are complete, the large not yet.
        deadline = time.monotonic() + 60
        while not {a, b} <= self.blobs(store):
            self.assertIsNone(p.poll(), "the pull ended before the test "
                              "could interrupt it")
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)
        time.sleep(1.5)  # let the large files get some runs durable
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 130, out + err)
        self.assertIn("interrupted", out)
        self.assertIn("run the same pull again", out)
        first = self.cdn_etags(before)
        total = sum(f["size"] for f in self.slow.values())
        held = sum(f["local_bytes"]
                   for f in self.ls_files(store, "acme/slow-model").values())
        self.assertGreater(held, 6 * MiB)
        self.assertLess(held, total, "the pull was not interrupted")
        # The store is consistent: every complete blob checks out.
        r = self.hubfs(store, "verify")
        self.assertIn("0 failed", r.stdout)

        mark = len(self.stack.cdn_log())
        r = self.hubfs(store, "pull", "acme/slow-model")
        again = self.cdn_etags(mark)
        self.assertNotIn(a, again)
        self.assertNotIn(b, again)
        self.assertLessEqual(sum(again.values()), total - held,
                             "fetched again what the store held")
        for f in self.slow.values():
            self.assertEqual(
                sha256_file(os.path.join(store, "blobs", f["sha256"])),
                f["sha256"])
        self.assertGreaterEqual(sum(first.values()) + sum(again.values()),
                                total)

    def test_pull_that_cannot_fit_stops_before_fetching(self):
        root = os.path.join(self.tmp, "small-disk")
        os.makedirs(root, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs",
                        root], check=True)
        self.addCleanup(subprocess.run, ["umount", "-l", root])
        store = os.path.join(root, "store")
        before = len(self.stack.cdn_log())
        r = self.hubfs(store, "pull", "acme/slow-model", "d.bin", ok=False)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("needs 48.0 MiB", r.stderr)
        self.assertIn("nothing was fetched", r.stderr)
        self.assertEqual(self.cdn_etags(before), {})
        self.assertEqual(os.listdir(os.path.join(store, "partial"))
                         if os.path.isdir(os.path.join(store, "partial"))
                         else [], [])
        # What fits still pulls.
        self.hubfs(store, "pull", "acme/slow-model", "a.bin")
        self.assertIn(self.etag(self.slow["a.bin"]), self.blobs(store))

    # --- pins, gc, unpin ---------------------------------------------------

    def test_pins_outlive_the_limit_until_unpinned(self):
        store = self.new_store()
        self.hubfs(store, "pull", "acme/pull-model", "*.safetensors")
        pinned = {self.etag(f) for p, f in self.files.items()
                  if p.endswith(".safetensors")}
        # Read another file through a mount: not pinned.
        m = Mount(self.tmp, self.stack.endpoint, name="gc%d" % self.n,
                  store=store)
        m.start()
        with open(m.path("acme", "pull-model", "onnx", "model.onnx"),
                  "rb") as f:
            f.read()
        m.stop()
        onnx = self.etag(self.files["onnx/model.onnx"])
        self.assertIn(onnx, self.blobs(store))

        r = self.hubfs(store, "gc", "--max-cache", "1M")
        self.assertIn(onnx, r.stdout)
        self.assertEqual(self.blobs(store), pinned)
        self.assertIn("in use or pinned", r.stdout)

        r = self.hubfs(store, "unpin", "acme/pull-model@main")
        self.assertIn("nothing pinned for revision 'main'", r.stdout)
        self.assertEqual(self.blobs(store), pinned)
        r = self.hubfs(store, "unpin", "acme/pull-model")
        self.assertIn("unpinned 2 files", r.stdout)
        self.hubfs(store, "gc")
        self.assertEqual(self.blobs(store), set())

        # --no-pin: kept only while the limit allows.
        self.hubfs(store, "pull", "--no-pin", "acme/pull-model",
                   "*.safetensors")
        self.hubfs(store, "gc")
        self.assertEqual(self.blobs(store), set())

    # --- add, forget, refresh, verify ---------------------------------------

    def test_add_shows_a_repo_offline_without_reading_it(self):
        store = self.new_store()
        before = len(self.stack.cdn_log())
        r = self.hubfs(store, "add", "acme/pull-model")
        self.assertIn("added acme/pull-model@%s: 7 files" % self.commit[:12],
                      r.stdout)
        self.assertEqual(len(self.stack.cdn_log()), before)
        # "main" names the default branch, which was recorded unnamed.
        self.assertEqual(set(self.ls_files(store, "acme/pull-model@main")),
                         set(self.files))
        m = Mount(self.tmp, self.stack.endpoint, name="add%d" % self.n,
                  store=store, args=["--offline"])
        m.start()
        try:
            self.assertIn("pull-model", os.listdir(m.path("acme")))
            self.assertEqual(
                sorted(os.listdir(m.path("acme", "pull-model", "onnx"))),
                ["config.json", "model.onnx"])
            st = os.stat(m.path("acme", "pull-model", "onnx", "model.onnx"))
            self.assertEqual(st.st_size,
                             self.files["onnx/model.onnx"]["size"])
        finally:
            m.stop()
        r = self.hubfs(store, "add", "--offline", "acme/pull-model",
                       ok=False)
        self.assertEqual(r.returncode, 1)

    def test_forget_then_gc_reclaims(self):
        store = self.new_store()
        self.hubfs(store, "pull", "acme/pull-model", "onnx/*")
        self.hubfs(store, "add", "acme/slow-model")
        self.assertEqual(len(self.blobs(store)), 2)
        r = self.hubfs(store, "forget", "acme/pull-model")
        self.assertIn("forgot acme/pull-model", r.stdout)
        repos = json.loads(self.hubfs(store, "ls", "--json").stdout)
        self.assertEqual([x["id"] for x in repos], ["acme/slow-model"])
        r = self.hubfs(store, "gc", "--dry-run")
        self.assertIn("would remove", r.stdout)
        self.assertEqual(len(self.blobs(store)), 2)
        self.hubfs(store, "gc")
        self.assertEqual(self.blobs(store), set())
        r = self.hubfs(store, "forget", "acme/pull-model", ok=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("not in the store", r.stderr)

    def test_refresh_sees_a_new_commit_now(self):
        store = self.new_store()
        self.hubfs(store, "add", "acme/pull-model")
        # A mount that would keep the branch resolved for an hour.
        m = Mount(self.tmp, self.stack.endpoint, name="ref%d" % self.n,
                  store=store, args=["--revision-ttl", "3600"])
        m.start()
        self.addCleanup(m.stop)
        repo = m.path("acme", "pull-model")
        self.assertNotIn("NEW.md", os.listdir(repo))
        r = self.hubfs(store, "refresh")
        self.assertIn("acme/pull-model (default branch): %s, unchanged"
                      % self.commit[:12], r.stdout)
        sha = self.stack.commit("acme/pull-model",
                                files={"NEW.md": "new file\n"})
        self.addCleanup(self.stack.commit, "acme/pull-model",
                        delete=["NEW.md"])
        r = self.hubfs(store, "refresh", "acme/pull-model")
        self.assertIn("%s -> %s" % (self.commit[:12], sha[:12]), r.stdout)
        files = self.ls_files(store, "acme/pull-model")
        self.assertIn("NEW.md", files)
        self.assertIn("1 running mount will look the branches up again",
                      r.stdout)
        self.assertIn("NEW.md", os.listdir(repo))
        with open(os.path.join(repo, "NEW.md")) as f:
            self.assertEqual(f.read(), "new file\n")

    def test_verify_removes_a_corrupted_blob(self):
        store = self.new_store()
        self.hubfs(store, "pull", "acme/pull-model", "*.safetensors",
                   "README.md")
        r = self.hubfs(store, "verify")
        self.assertIn("3 files checked", r.stdout)
        self.assertIn("0 failed", r.stdout)
        f = self.files["model-00002-of-00002.safetensors"]
        path = os.path.join(store, "blobs", f["sha256"])
        with open(path, "r+b") as fh:
            fh.seek(12345)
            b = fh.read(1)
            fh.seek(12345)
            fh.write(bytes([b[0] ^ 0xff]))
        r = self.hubfs(store, "verify", "acme/pull-model", ok=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("FAILED", r.stdout)
        self.assertIn("model-00002-of-00002.safetensors", r.stdout)
        self.assertIn("1 failed", r.stdout)
        self.assertFalse(os.path.exists(path))
        self.assertIn("changed since it was verified", r.stdout)
        # The next pull fetches it again, right.
        self.hubfs(store, "pull", "acme/pull-model", "*.safetensors")
        self.assertEqual(sha256_file(path), f["sha256"])

        # A flip that keeps the size and the mtime: only hashing finds it.
        st = os.stat(path)
        with open(path, "r+b") as fh:
            fh.seek(777)
            b = fh.read(1)
            fh.seek(777)
            fh.write(bytes([b[0] ^ 0x01]))
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        r = self.hubfs(store, "verify", "-q", ok=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("hashing to", r.stdout)
        self.assertIn("1 failed", r.stdout)
        self.assertNotIn("ok ", r.stdout)  # -q: failures only
        self.assertFalse(os.path.exists(path))

    def test_verify_that_cannot_read_a_blob_fails(self):
        store = self.new_store()
        self.hubfs(store, "pull", "acme/pull-model", "README.md")
        f = self.files["README.md"]
        path = os.path.join(store, "blobs", self.etag(f))
        # The same file (inode, size, mtime) behind a symlink: recorded
        # as it was, but verify does not follow links into the store.
        moved = os.path.join(store, "moved-blob")
        os.rename(path, moved)
        os.symlink(moved, path)
        r = self.hubfs(store, "verify", ok=False)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("hubfs verify: %s" % self.etag(f), r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
