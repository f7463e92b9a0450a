"""Reuse of what is already downloaded: a huggingface_hub cache written by
the official @huggingface/hub npm client (snapshotDownload against the
emulator), a local-dir download, a git clone and a plain folder.

Every read is checked against the fixtures, and "no transfer" against the
CDN's access log.  The user's files are checked never to change (stat and
hash before and after), and never to count in, or be removed by, the
store's size limit.
"""
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

from mountlib import HUBFS, Mount, files_at, hubstack, walk_files

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "..", "fixtures", "large", "reuse.json")
REPO = "acme/reuse"


def ensure_js_client():
    """Install the pinned npm client as tests/js/run.sh does, if needed."""
    js = os.path.join(HERE, "..", "js")
    stamp = os.path.join(js, "node_modules", ".hubfs-lock.sha256")
    want = sha256_file(os.path.join(js, "package-lock.json"))
    try:
        with open(stamp) as f:
            if f.read().strip() == want:
                return
    except OSError:
        pass
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund",
                    "--loglevel=error"], cwd=js, check=True, timeout=300)
    with open(stamp, "w") as f:
        f.write(want + "\n")


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def snapshot_state(top):
    """Stat and hash of every file below top (symlinks as links)."""
    out = {}
    for rel, p in walk_files(top).items():
        st = os.lstat(p)
        digest = None if os.path.islink(p) else sha256_file(p)
        out[rel] = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_mode,
                    digest, os.readlink(p) if os.path.islink(p) else None)
    return out


class ReuseTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="hubfs-reuse-")
        os.chmod(cls.tmp, 0o755)
        cls.stack = hubstack.Stack(os.path.join(cls.tmp, "stack"),
                                   fixtures=[FIXTURE])
        cls.stack.__enter__()
        m = cls.stack.manifest
        cls.main, cls.main_sha = files_at(m, "model", REPO, "main")
        cls.v1, cls.v1_sha = files_at(m, "model", REPO, "v1")
        cls.data, cls.data_sha = files_at(m, "dataset", "acme/reuse-data",
                                          "main")
        # The cache, as the JS client writes it.
        ensure_js_client()
        cls.cache = os.path.join(cls.tmp, "hf-cache")
        for kind, rid, rev in (("model", REPO, "main"), ("model", REPO, "v1"),
                               ("dataset", "acme/reuse-data", "main")):
            subprocess.run(["node", os.path.join(HERE, "hfcache.mjs"),
                            cls.stack.endpoint, cls.cache, kind, rid, rev],
                           check=True, capture_output=True, timeout=120)
        cls.cache_state = snapshot_state(cls.cache)
        cls.n = 0

    @classmethod
    def tearDownClass(cls):
        cls.stack.__exit__(None, None, None)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        type(self).n += 1
        self.name = "t%d" % self.n
        self.store = os.path.join(self.tmp, self.name + "-store")
        self.home = os.path.join(self.tmp, self.name + "-home")
        os.makedirs(self.home, exist_ok=True)

    def tearDown(self):
        # Whatever a test did, the user's cache is exactly as it was.
        self.assertEqual(snapshot_state(self.cache), self.cache_state)

    def hubfs(self, *args, check=True):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
               "HOME": self.home, "LANG": "C.UTF-8"}
        r = subprocess.run([HUBFS, *args, "--cache-dir", self.store,
                            "--endpoint", self.stack.endpoint],
                           env=env, capture_output=True, text=True,
                           timeout=120)
        if check and r.returncode != 0:
            self.fail("hubfs %s: %d\n%s%s" % (" ".join(args), r.returncode,
                                               r.stdout, r.stderr))
        return r

    def mount(self, *args, name=None):
        m = Mount(self.tmp, self.stack.endpoint, name=name or self.name,
                  store=self.store, args=args)
        m.start()
        self.addCleanup(m.stop)
        return m

    def read_all(self, m, files, *prefix):
        for path, f in files.items():
            got = sha256_file(m.path(*prefix, *path.split("/")))
            self.assertEqual(got, f["sha256"], path)

    def mark(self):
        return len(self.stack.cdn_log()), len(self.stack.hub_log())

    def transfers(self, mark):
        """Content sent since mark: CDN requests (LFS files) and the Hub's
        /resolve answers (the others are served by the Hub itself)."""
        return self.stack.cdn_log()[mark[0]:] + [
            e for e in self.stack.hub_log()[mark[1]:]
            if "/resolve/" in e["path"]]

    def store_files(self):
        """Files the store holds of its own (complete or partial)."""
        return {k: v for k, v in walk_files(self.store).items()
                if k.startswith(("blobs/", "partial/"))}

    def status(self):
        r = self.hubfs("status", "--json")
        return json.loads(r.stdout)

    # ---- the cache, used where it lies ---------------------------------

    def test_mount_reads_hf_cache_with_no_transfer(self):
        before = self.mark()
        m = self.mount("--hf-cache", self.cache)
        self.read_all(m, self.main, "acme", "reuse")
        self.read_all(m, self.v1, "acme", "reuse@v1")
        self.read_all(m, self.data, "datasets", "acme", "reuse-data")
        self.assertEqual(self.transfers(before), [])
        self.assertIn("verified, used in place", m.read_log())
        # Nothing was copied into the store, nothing counts in its size.
        self.assertEqual(self.store_files(), {})
        st = self.status()
        self.assertEqual(st["used"], 0)
        read = {f["sha256"]: f["size"] for files in
                (self.main, self.v1, self.data) for f in files.values()}
        self.assertEqual(st["blobs"]["external_bytes"], sum(read.values()))
        self.assertEqual(st["blobs"]["external"], len(read))
        # A size limit and gc leave the user's files alone (tearDown).
        self.hubfs("gc", "--max-cache", "1")
        m.stop()
        self.hubfs("forget", REPO)
        self.hubfs("gc", "--max-cache", "1")
        # The verdict is kept: a second mount reads with no transfer and
        # no hashing.
        again = self.mount("--hf-cache", self.cache, name=self.name + "b")
        self.read_all(again, self.main, "acme", "reuse")
        self.assertEqual(self.transfers(before), [])
        self.assertNotIn("verified, used in place", again.read_log())

    def test_env_and_no_hf_cache(self):
        r = self.hubfs("where", "--json")
        self.assertEqual(json.loads(r.stdout)["hf_cache"],
                         os.path.join(self.home, ".cache", "huggingface",
                                      "hub"))
        before = self.mark()
        m = Mount(self.tmp, self.stack.endpoint, name=self.name,
                  store=self.store, env={"HF_HUB_CACHE": self.cache})
        m.start()
        self.addCleanup(m.stop)
        self.read_all(m, {"config.json": self.main["config.json"],
                          "weights.safetensors":
                              self.main["weights.safetensors"]},
                      "acme", "reuse")
        self.assertEqual(self.transfers(before), [])
        m.stop()
        # --no-hf-cache: fetched, even with HF_HUB_CACHE set.
        m = Mount(self.tmp, self.stack.endpoint, name=self.name + "b",
                  store=self.store + "b", env={"HF_HUB_CACHE": self.cache},
                  args=("--no-hf-cache",))
        m.start()
        self.addCleanup(m.stop)
        self.read_all(m, {"sub/plain.bin": self.main["sub/plain.bin"]},
                      "acme", "reuse")
        self.assertNotEqual(self.transfers(before), [])

    def test_corrupt_blob_is_fetched_never_served(self):
        bad = os.path.join(self.tmp, self.name + "-bad-cache")
        shutil.copytree(self.cache, bad, symlinks=True)
        f = self.main["weights.safetensors"]
        blob = os.path.join(bad, "models--acme--reuse", "blobs", f["sha256"])
        with open(blob, "r+b") as fh:  # same size, one byte flipped
            fh.seek(12345)
            b = fh.read(1)
            fh.seek(12345)
            fh.write(bytes([b[0] ^ 0xff]))
        before = self.mark()
        m = self.mount("--hf-cache", bad)
        self.read_all(m, {"weights.safetensors": f}, "acme", "reuse")
        fetched = sum(e.get("bytes", 0)
                      for e in self.stack.cdn_log()[before[0]:]
                      if f["sha256"] in e.get("uri", ""))
        self.assertEqual(fetched, f["size"])
        self.assertIn("does not hold", m.read_log())
        # The good files of that cache are still used in place.
        before = self.mark()
        self.read_all(m, {"extra.safetensors": self.main["extra.safetensors"]},
                      "acme", "reuse")
        self.assertEqual(self.transfers(before), [])
        # import says so too, and does not count it.
        r = self.hubfs("import", bad)
        self.assertRegex(r.stdout, r"skipped .*weights\.safetensors: content "
                         r"does not match")

    def test_cache_inside_the_mount_is_ignored(self):
        # Named inside the mount point: left out before mounting.
        mnt = os.path.join(self.tmp, self.name + "-mnt")
        m = self.mount("--hf-cache", os.path.join(mnt, ".hf-cache"))
        before = self.mark()
        self.read_all(m, {"config.json": self.main["config.json"]},
                      "acme", "reuse")
        self.assertNotEqual(self.transfers(before), [])
        m.stop()
        # Reaching into the mount through a symlink made once it runs
        # (the daemon compares devices): ignored too, and said so.
        link = os.path.join(self.tmp, self.name + "-link")
        m = self.mount("--hf-cache", link, name=self.name + "b")
        os.symlink(m.path("acme"), link)
        before = self.mark()
        self.read_all(m, {"sub/plain.bin": self.main["sub/plain.bin"]},
                      "acme", "reuse")
        self.assertNotEqual(self.transfers(before), [])
        self.assertIn("inside a hubfs mount: not used", m.read_log())

    # ---- import ----------------------------------------------------------

    def test_import_cache_then_offline(self):
        r = self.hubfs("import", "--hf-cache", self.cache)
        self.assertIn("found     huggingface_hub cache", r.stdout)
        self.assertIn("ref       acme/reuse v1 -> %s" % self.v1_sha[:12],
                      r.stdout)
        self.assertRegex(r.stdout, r"summary   7 verified .*, 3 known before")
        r = self.hubfs("import", "--hf-cache", self.cache)
        self.assertRegex(r.stdout, r"summary   0 verified .*, 10 known before")
        # ls counts what is used in place as held locally.
        r = self.hubfs("ls", "--json", "acme/reuse")
        files = {f["path"]: f for f in json.loads(r.stdout)["files"]}
        self.assertEqual(set(files), set(self.main))
        for path, f in files.items():
            self.assertEqual(f["local_bytes"], f["size"], path)
            self.assertEqual(f["in_place"], f["size"] > 0, path)
        self.assertIn("(used in place)", self.hubfs("ls", "acme/reuse").stdout)
        before = self.mark()
        m = self.mount("--offline", "--no-hf-cache")
        self.assertEqual(sorted(os.listdir(m.path("acme"))), ["reuse"])
        self.assertEqual(sorted(walk_files(m.path("acme", "reuse"))),
                         sorted(self.main))
        self.read_all(m, self.main, "acme", "reuse")
        self.read_all(m, self.v1, "acme", "reuse@v1")
        self.read_all(m, self.data, "datasets", "acme", "reuse-data")
        self.assertEqual(self.transfers(before), [])
        self.assertEqual(self.store_files(), {})

    def test_offline_from_the_cache_alone(self):
        """No import, a fresh store, --offline: a cache with refs and
        trees/<commit>.json (hub-api.md 8.6) is enough to list and read."""
        cache = os.path.join(self.tmp, self.name + "-cache")
        shutil.copytree(self.cache, cache, symlinks=True)
        folder = os.path.join(cache, "models--acme--reuse")
        for sha, files in ((self.main_sha, self.main), (self.v1_sha, self.v1)):
            tree = {p: {"size": f["size"], "blob_id": f["oid"]}
                    for p, f in files.items()}
            for p, f in files.items():
                if f["lfs"]:
                    tree[p].update(lfs_sha256=f["sha256"],
                                   lfs_size=f["size"])
            os.makedirs(os.path.join(folder, "trees"), exist_ok=True)
            with open(os.path.join(folder, "trees", sha + ".json"), "w") as fh:
                json.dump({"format_version": 1, "files": tree}, fh)
        before = self.mark()
        m = self.mount("--offline", "--hf-cache", cache)
        self.assertEqual(sorted(walk_files(m.path("acme", "reuse"))),
                         sorted(self.main))
        self.read_all(m, self.main, "acme", "reuse")
        self.read_all(m, self.v1, "acme", "reuse@" + self.v1_sha)
        self.read_all(m, self.v1, "acme", "reuse@v1")
        self.assertEqual(self.transfers(before), [])
        self.assertEqual(len(self.stack.hub_log()), before[1])
        self.assertEqual(self.store_files(), {})
        # Without the file lists, offline knows nothing of the repo.
        shutil.rmtree(os.path.join(folder, "trees"))
        self.store = os.path.join(self.tmp, self.name + "-store2")
        m2 = self.mount("--offline", "--hf-cache", cache, name=self.name + "b")
        with self.assertRaises(OSError):
            os.listdir(m2.path("acme", "reuse"))

    def test_import_local_dir(self):
        local = os.path.join(self.tmp, self.name + "-local")
        meta = os.path.join(local, ".cache", "huggingface", "download")
        for path, f in self.main.items():
            dst = os.path.join(local, path)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copyfile(f["content"], dst)
            os.makedirs(os.path.dirname(os.path.join(meta, path)),
                        exist_ok=True)
            etag = f["sha256"] if f["lfs"] else f["oid"]
            with open(os.path.join(meta, path + ".metadata"), "w") as fh:
                fh.write("%s\n%s\n%f\n" % (self.main_sha, etag, time.time()))
        with open(os.path.join(local, "big.bin.incomplete"), "wb") as fh:
            fh.write(b"partial")
        before_state = snapshot_state(local)
        r = self.hubfs("import", local, "--repo", REPO)
        self.assertIn("found     local-dir download", r.stdout)
        self.assertIn("big.bin.incomplete: incomplete download", r.stdout)
        self.assertRegex(r.stdout, r"summary   %d verified" % len(self.main))
        before = self.mark()
        m = self.mount("--no-hf-cache")
        self.read_all(m, self.main, "acme", "reuse")
        self.assertEqual(self.transfers(before), [])
        self.assertEqual(snapshot_state(local), before_state)

    def test_import_plain_folder_and_git_clone(self):
        plain = os.path.join(self.tmp, self.name + "-plain")
        os.makedirs(os.path.join(plain, "sub"))
        for path in ("config.json", "weights.safetensors", "sub/plain.bin"):
            shutil.copyfile(self.v1[path]["content"],
                            os.path.join(plain, path))
        with open(os.path.join(plain, "README.md"), "w") as fh:
            fh.write("not the hub's readme, longer than it\n")
        os.symlink("nowhere", os.path.join(plain, "gone.bin"))
        r = self.hubfs("import", plain, "--repo", REPO + "@v1")
        self.assertIn("README.md: not a file of acme/reuse@%s"
                      % self.v1_sha[:12], r.stdout)
        self.assertIn("gone.bin: dangling link", r.stdout)
        self.assertRegex(r.stdout, r"summary   3 verified")

        # A clone: remote and HEAD name repo and commit; the LFS file was
        # never pulled (a pointer), and one file differs in size.
        clone = os.path.join(self.tmp, self.name + "-clone")
        os.makedirs(os.path.join(clone, ".git", "refs", "heads"))
        with open(os.path.join(clone, ".git", "config"), "w") as fh:
            fh.write('[core]\n\tbare = false\n[remote "origin"]\n'
                     '\turl = %s/%s\n\tfetch = +refs/heads/*:refs/remotes/'
                     'origin/*\n' % (self.stack.endpoint, REPO))
        with open(os.path.join(clone, ".git", "HEAD"), "w") as fh:
            fh.write("ref: refs/heads/main\n")
        with open(os.path.join(clone, ".git", "refs", "heads", "main"),
                  "w") as fh:
            fh.write(self.main_sha + "\n")
        for path, f in self.main.items():
            dst = os.path.join(clone, path)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            if f["lfs"] and path == "extra.safetensors":
                with open(dst, "w") as fh:
                    fh.write("version https://git-lfs.github.com/spec/v1\n"
                             "oid sha256:%s\nsize %d\n"
                             % (f["sha256"], f["size"]))
            else:
                shutil.copyfile(f["content"], dst)
        r = self.hubfs("import", clone)
        self.assertIn("found     git clone", r.stdout)
        self.assertIn("extra.safetensors: a git-lfs pointer file, never "
                      "pulled", r.stdout)
        before = self.mark()
        m = self.mount("--no-hf-cache")
        self.read_all(m, {p: f for p, f in self.v1.items()
                          if p != "README.md"}, "acme", "reuse@v1")
        self.read_all(m, {p: f for p, f in self.main.items()
                          if p != "extra.safetensors"}, "acme", "reuse")
        self.assertEqual(self.transfers(before), [])
        # The pointer's file is fetched, not served from the clone.
        self.read_all(m, {"extra.safetensors":
                          self.main["extra.safetensors"]}, "acme", "reuse")
        self.assertNotEqual(self.transfers(before), [])

    def test_changed_file_falls_back_to_the_store(self):
        copy = os.path.join(self.tmp, self.name + "-copy")
        os.makedirs(copy)
        f = self.main["sub/plain.bin"]
        os.makedirs(os.path.join(copy, "sub"))
        shutil.copyfile(f["content"], os.path.join(copy, "sub", "plain.bin"))
        self.hubfs("import", copy, "--repo", REPO)
        # Rewritten in place (same bytes, new mtime): no longer vouched for.
        time.sleep(0.01)
        with open(os.path.join(copy, "sub", "plain.bin"), "r+b") as fh:
            data = fh.read()
            fh.seek(0)
            fh.write(data)
        before = self.mark()
        m = self.mount("--no-hf-cache")
        self.read_all(m, {"sub/plain.bin": f}, "acme", "reuse")
        self.assertNotEqual(self.transfers(before), [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
