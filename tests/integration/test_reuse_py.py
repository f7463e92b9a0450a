"""Reuse of what huggingface_hub downloaded: caches and local-dir folders
made by the pinned Python client itself (`hf download`, snapshot_download)
against the emulator, used in place by a mount and by `hubfs import`.

Like test_reuse.py (which does this for caches the npm client made), every
read is checked against the fixtures, "no transfer" against the CDN's and
the Hub's logs, and the user's files are checked never to change.

Xet-backed files: the caches here are made with HF_HUB_DISABLE_XET=1 (the
client follows the resolve 302, the Hub's LFS-compatible bridge), and the
cache-wide shared blob store (`<cache>/blobs/<xx>/<xet_hash>`, linked from
`models--.../blobs/<etag>`) is laid out from them as huggingface_hub 2.4
lays it out (utils/_shared_blobs.py: relative symlinks), and with hard
links.  The caches hf_xet itself makes from the emulator's Xet CAS, shared
blobs on and off, are XetNativeTest.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from mountlib import HUBFS, Mount, files_at, hubstack, walk_files
from test_reuse import sha256_file, snapshot_state

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
FIXTURES = [os.path.join(HERE, "..", "fixtures", "large", name)
            for name in ("reuse.json", "reuse-xet.json")]
# (type, id, revision) of everything the caches hold; None: the default branch
HELD = (("model", "acme/reuse", None), ("model", "acme/reuse", "v1"),
        ("dataset", "acme/reuse-data", None), ("model", "acme/reuse-xet", None),
        ("model", "acme/reuse-xet", "v1"), ("model", "acme/reuse-xet-copy", None))
XET_REPOS = ("acme/reuse-xet", "acme/reuse-xet-copy")


def venv_python():
    py = os.environ.get("HUBFS_TEST_PYTHON")
    if not py:
        venv = subprocess.run([os.path.join(ROOT, ".ci", "install-venv"), "--path"],
                              capture_output=True, text=True, check=True).stdout.strip()
        py = os.path.join(venv, "bin", "python")
    return py


def mount_parts(rtype, rid, rev):
    """Where a repo at a revision appears under the mount point."""
    owner, name = rid.split("/")
    parts = ([] if rtype == "model" else [rtype + "s"]) + [owner, name]
    if rev:
        parts[-1] += "@" + rev
    return parts


def folder_name(rtype, rid):
    return "%ss--%s" % (rtype, rid.replace("/", "--"))


class Env:
    """The stack and the client-made caches, shared by every test."""
    tmp = stack = python = hf = cache = local = None
    files = {}
    cache_state = local_state = None


def setUpModule():
    Env.tmp = tempfile.mkdtemp(prefix="hubfs-reuse-py-")
    os.chmod(Env.tmp, 0o755)
    try:
        make_caches()
    except BaseException:
        tearDownModule()  # unittest does not, when this fails
        raise


def make_caches():
    stack = hubstack.Stack(os.path.join(Env.tmp, "stack"), fixtures=FIXTURES)
    Env.stack = stack.__enter__()
    Env.python = venv_python()
    Env.hf = os.path.join(os.path.dirname(Env.python), "hf")
    for rtype, rid, rev in HELD:
        Env.files[(rtype, rid, rev)] = files_at(Env.stack.manifest, rtype, rid, rev or "main")[0]
    # The cache, as `hf download` and snapshot_download write it.
    Env.cache = os.path.join(Env.tmp, "hf-cache")
    for rtype, rid, rev in HELD:
        if rtype == "dataset":
            CacheCase.client("python", "-c", "import sys; from huggingface_hub import "
                             "snapshot_download as s; s(sys.argv[1], repo_type='dataset', "
                             "cache_dir=sys.argv[2])", rid, Env.cache)
            continue
        CacheCase.client("hf", "download", rid, "--cache-dir", Env.cache,
                         *(("--revision", rev) if rev else ()))
    # A local-dir download of acme/reuse at main.
    Env.local = os.path.join(Env.tmp, "local")
    CacheCase.client("hf", "download", "acme/reuse", "--local-dir", Env.local)
    Env.cache_state = snapshot_state(Env.cache)
    Env.local_state = snapshot_state(Env.local)


def tearDownModule():
    if Env.stack:
        Env.stack.__exit__(None, None, None)
    if Env.tmp:
        shutil.rmtree(Env.tmp, ignore_errors=True)


class CacheCase(unittest.TestCase):
    """Helpers: the client, hubfs, mounts, transfers."""
    n = 0

    @classmethod
    def setUpClass(cls):
        for k in ("tmp", "stack", "python", "hf", "cache", "local", "files",
                  "cache_state", "local_state"):
            setattr(cls, k, getattr(Env, k))

    @staticmethod
    def client(tool, *args, **env):
        """Run the Python client as a user would, pointed at the emulator."""
        full = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
                "HOME": os.path.join(Env.tmp, "client-home"),
                "HF_ENDPOINT": Env.stack.endpoint, "HF_HUB_DISABLE_TELEMETRY": "1",
                "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_HUB_DISABLE_XET": "1"}
        full.update(env)
        full = {k: v for k, v in full.items() if v is not None}
        cmd = [Env.hf if tool == "hf" else Env.python, *args]
        r = subprocess.run(cmd, env=full, capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            raise AssertionError("%s: %d\n%s%s" % (" ".join(cmd), r.returncode,
                                                   r.stdout, r.stderr))
        return r.stdout

    def setUp(self):
        CacheCase.n += 1
        self.name = "t%d" % CacheCase.n
        self.store = os.path.join(self.tmp, self.name + "-store")
        self.home = os.path.join(self.tmp, self.name + "-home")
        os.makedirs(self.home, exist_ok=True)

    def tearDown(self):
        # Whatever a test did, the user's cache and folder are as they were.
        self.assertEqual(snapshot_state(self.cache), self.cache_state)
        self.assertEqual(snapshot_state(self.local), self.local_state)

    def hubfs(self, *args):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
               "HOME": self.home, "LANG": "C.UTF-8"}
        r = subprocess.run([HUBFS, *args, "--cache-dir", self.store,
                            "--endpoint", self.stack.endpoint],
                           env=env, capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            self.fail("hubfs %s: %d\n%s%s" % (" ".join(args), r.returncode,
                                               r.stdout, r.stderr))
        return r.stdout

    def mount(self, *args, name=None):
        m = Mount(self.tmp, self.stack.endpoint, name=name or self.name,
                  store=self.store, args=args)
        m.start()
        self.addCleanup(m.stop)
        return m

    def mark(self):
        return len(self.stack.cdn_log()), len(self.stack.hub_log())

    def transfers(self, mark):
        """Content sent since mark: anything the CDN sent, and every Hub
        answer but the metadata API's (resolve, resolve-cache, Xet CAS)."""
        return self.stack.cdn_log()[mark[0]:] + [
            e for e in self.stack.hub_log()[mark[1]:]
            if not e["path"].startswith("/api/") or
            e["path"].startswith("/api/resolve-cache/")]

    def read_all(self, m, held=HELD):
        n = 0
        for key in held:
            for path, f in self.files[key].items():
                got = sha256_file(m.path(*mount_parts(*key), *path.split("/")))
                self.assertEqual(got, f["sha256"], "%s %s" % (key, path))
                n += 1
        return n

    def store_files(self):
        return {k: v for k, v in walk_files(self.store).items()
                if k.startswith(("blobs/", "partial/"))}

    def distinct(self, held=HELD, per_repo=False):
        """(etag, size) of every file held: what a mount verifies once each;
        per_repo: what import verifies, once for each repo's blobs/<etag>."""
        out = set()
        for key in held:
            for f in self.files[key].values():
                etag = f["sha256"] if f["lfs"] else f["oid"]
                out.add((key[:2] if per_repo else None, etag, f["size"]))
        return out


class PyReuseTest(CacheCase):
    # ---- the layout the client wrote -------------------------------------

    def test_the_cache_is_what_the_client_writes(self):
        """The premise: a symlinked cache with refs and trees/<commit>.json,
        and a local-dir folder with its metadata."""
        for (rtype, rid, rev), files in self.files.items():
            folder = os.path.join(self.cache, folder_name(rtype, rid))
            with open(os.path.join(folder, "refs", rev or "main")) as fh:
                sha = fh.read()
            self.assertTrue(os.path.exists(os.path.join(folder, "trees", sha + ".json")))
            for path, f in files.items():
                link = os.path.join(folder, "snapshots", sha, path)
                self.assertTrue(os.path.islink(link), link)
                etag = f["sha256"] if f["lfs"] else f["oid"]
                self.assertEqual(os.path.realpath(link),
                                 os.path.realpath(os.path.join(folder, "blobs", etag)))
        main = self.files[("model", "acme/reuse", None)]
        self.assertEqual(sorted(p for p in walk_files(self.local)
                                if not p.startswith(".cache/")), sorted(main))
        for path in main:
            self.assertTrue(os.path.exists(os.path.join(
                self.local, ".cache", "huggingface", "download", path + ".metadata")))

    # ---- the cache, used where it lies ------------------------------------

    def test_mount_reads_the_cache_in_place(self):
        before = self.mark()
        m = self.mount("--hf-cache", self.cache)
        self.read_all(m)
        self.assertEqual(self.transfers(before), [])
        self.assertIn("verified, used in place", m.read_log())
        self.assertEqual(self.store_files(), {})
        st = json.loads(self.hubfs("status", "--json"))
        self.assertEqual(st["used"], 0)
        want = {}
        for _, etag, size in self.distinct():
            want[etag] = size
        self.assertEqual(st["blobs"]["external"], len(want))
        self.assertEqual(st["blobs"]["external_bytes"], sum(want.values()))

    def test_offline_mount_from_the_cache_alone(self):
        """A fresh store, --offline: the cache's refs and trees/<commit>.json
        (written by the client itself) are enough to list and read."""
        before = self.mark()
        m = self.mount("--offline", "--hf-cache", self.cache)
        for key in HELD:
            top = m.path(*mount_parts(*key))
            self.assertEqual(sorted(walk_files(top)), sorted(self.files[key]), key)
        self.read_all(m)
        self.assertEqual(self.transfers(before), [])
        self.assertEqual(len(self.stack.hub_log()), before[1])
        self.assertEqual(self.store_files(), {})

    # ---- import -------------------------------------------------------------

    def test_import_cache_then_offline(self):
        n = len(self.distinct(per_repo=True))
        out = self.hubfs("import", "--hf-cache", self.cache)
        self.assertIn("found     huggingface_hub cache", out)
        self.assertNotRegex(out, r"(?m)^skipped")
        self.assertRegex(out, r"summary   %d verified " % n)
        out = self.hubfs("import", "--hf-cache", self.cache)
        self.assertRegex(out, r"summary   0 verified .*, \d+ known before")
        before = self.mark()
        m = self.mount("--offline", "--no-hf-cache")
        self.read_all(m)
        self.assertEqual(self.transfers(before), [])
        self.assertEqual(self.store_files(), {})

    def test_import_local_dir(self):
        main = self.files[("model", "acme/reuse", None)]
        # The folder does not name its repo (hub-api.md 8.7): the user does.
        out = self.hubfs("import", self.local, "--repo", "acme/reuse")
        self.assertIn("found     local-dir download", out)
        self.assertNotRegex(out, r"(?m)^skipped")
        self.assertRegex(out, r"summary   %d verified" % len(main))
        before = self.mark()
        m = self.mount("--no-hf-cache")
        self.read_all(m, [("model", "acme/reuse", None)])
        self.assertEqual(self.transfers(before), [])
        self.assertEqual(self.store_files(), {})

    # ---- the shared blob store ------------------------------------------

    def shared_cache(self, link):
        """A copy of the cache whose Xet files live once in the cache-wide
        store, <cache>/blobs/<xx>/<xet_hash>, each repo's blobs/<etag>
        linked to it: link is "symlink" (huggingface_hub 2.4: relative) or
        "hardlink"."""
        cache = os.path.join(self.tmp, self.name + "-shared-" + link)
        shutil.copytree(self.cache, cache, symlinks=True)
        store = os.path.join(cache, "blobs")
        os.makedirs(store)
        with open(os.path.join(store, ".huggingface-shared-blobs"), "w") as fh:
            fh.write("1\n")
        for rid in XET_REPOS:
            for rev in (None, "v1"):
                if ("model", rid, rev) not in self.files:
                    continue
                for f in self.files[("model", rid, rev)].values():
                    if not f["xet"]:
                        continue
                    blob = os.path.join(cache, folder_name("model", rid), "blobs",
                                        f["sha256"])
                    shared = os.path.join(store, f["xetHash"][:2], f["xetHash"])
                    if os.path.islink(blob):
                        continue  # done for another revision
                    os.makedirs(os.path.dirname(shared), exist_ok=True)
                    if os.path.exists(shared):
                        os.unlink(blob)
                    else:
                        os.rename(blob, shared)
                    if link == "symlink":
                        os.symlink(os.path.relpath(shared, os.path.dirname(blob)), blob)
                    else:
                        os.link(shared, blob)
        # the two repos share one copy of their common file
        common = self.files[("model", "acme/reuse-xet-copy", None)]["model.safetensors"]
        a, b = (os.path.join(cache, folder_name("model", rid), "blobs", common["sha256"])
                for rid in XET_REPOS)
        self.assertEqual(os.stat(a).st_ino, os.stat(b).st_ino)
        return cache

    def check_shared(self, link):
        cache = self.shared_cache(link)
        state = snapshot_state(cache)
        xet = [k for k in HELD if k[1] in XET_REPOS]
        before = self.mark()
        m = self.mount("--hf-cache", cache)
        self.read_all(m, xet)
        self.assertEqual(self.transfers(before), [])
        self.assertEqual(self.store_files(), {})
        m.stop()
        self.store = os.path.join(self.tmp, self.name + "-store2")
        out = self.hubfs("import", "--hf-cache", cache)
        self.assertNotRegex(out, r"(?m)^skipped")
        # The file both repos link to is hashed once, for the first.
        self.assertRegex(out, r"(?m)^known     acme/reuse-xet-copy@\w+ model.safetensors ")
        self.assertRegex(out, r"summary   %d verified " % (len(self.distinct(per_repo=True)) - 1))
        before = self.mark()
        m = self.mount("--offline", "--no-hf-cache", name=self.name + "b")
        self.read_all(m, xet)
        self.assertEqual(self.transfers(before), [])
        self.assertEqual(snapshot_state(cache), state)

    def test_shared_blobs_symlinked(self):
        self.check_shared("symlink")

    def test_shared_blobs_hard_linked(self):
        self.check_shared("hardlink")


class XetNativeTest(CacheCase):
    """The caches and local-dir folders hf_xet fills itself from the
    emulator's Xet CAS, shared blob store on and off."""

    def xet_cache(self, shared):
        cache = os.path.join(self.tmp, self.name + "-xet-cache")
        env = {"HF_HUB_DISABLE_XET": None,
               "HF_HUB_DISABLE_SHARED_BLOBS": None if shared else "1"}
        # One download thread: huggingface_hub 2.4.0's first use of a fresh
        # shared store races between its own threads (one removes the
        # other's marker temp as abandoned, and that file silently stays
        # unshared), so the layout the test expects is made without it.
        for rid in XET_REPOS:
            self.client("hf", "download", rid, "--cache-dir", cache,
                        "--max-workers", "1", **env)
        self.client("hf", "download", "acme/reuse-xet", "--revision", "v1",
                    "--cache-dir", cache, "--max-workers", "1", **env)
        return cache

    def check_native(self, shared):
        cache = self.xet_cache(shared)
        xet = [k for k in HELD if k[1] in XET_REPOS]
        for key in xet:
            for f in self.files[key].values():
                if not f["xet"]:
                    continue
                blob = os.path.join(cache, folder_name("model", key[1]), "blobs", f["sha256"])
                shared_path = os.path.join(cache, "blobs", f["xetHash"][:2], f["xetHash"])
                self.assertEqual(os.path.islink(blob), shared)
                self.assertEqual(os.path.exists(shared_path), shared)
        state = snapshot_state(cache)
        before = self.mark()
        m = self.mount("--hf-cache", cache)
        self.read_all(m, xet)
        self.assertEqual(self.transfers(before), [])
        m.stop()
        self.store = os.path.join(self.tmp, self.name + "-store2")
        out = self.hubfs("import", "--hf-cache", cache)
        self.assertNotRegex(out, r"(?m)^skipped")
        # One file in the shared store, linked from both repos: hashed once.
        self.assertRegex(out, r"(?m)^%s acme/reuse-xet-copy@\w+ model.safetensors "
                         % ("known    " if shared else "verified "))
        before = self.mark()
        m = self.mount("--offline", "--no-hf-cache", name=self.name + "b")
        self.read_all(m, xet)
        self.assertEqual(self.transfers(before), [])
        self.assertEqual(snapshot_state(cache), state)

    def test_hf_xet_cache_shared_blobs(self):
        self.check_native(True)

    def test_hf_xet_cache_no_shared_blobs(self):
        self.check_native(False)

    def test_hf_xet_local_dir(self):
        local = os.path.join(self.tmp, self.name + "-xet-local")
        self.client("hf", "download", "acme/reuse-xet", "--local-dir", local,
                    HF_HUB_DISABLE_XET=None)
        state = snapshot_state(local)
        files = self.files[("model", "acme/reuse-xet", None)]
        out = self.hubfs("import", local, "--repo", "acme/reuse-xet")
        self.assertIn("found     local-dir download", out)
        self.assertRegex(out, r"summary   %d verified" % len(files))
        before = self.mark()
        m = self.mount("--no-hf-cache")
        self.read_all(m, [("model", "acme/reuse-xet", None)])
        self.assertEqual(self.transfers(before), [])
        self.assertEqual(snapshot_state(local), state)


if __name__ == "__main__":
    unittest.main(verbosity=2)
