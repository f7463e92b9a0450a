"""MOUNT/.hf-cache/: the repos hubfs knows in huggingface_hub's cache layout.

One stack and one daemon.  Repos are touched through the main tree first;
the view is then checked with os functions and real programs against the
emulator's manifest (hub-api.md section 8: refs without a newline,
relative snapshot links into blobs/, blobs named by etag).
"""
import errno
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import unittest

from mountlib import Mount, files_at, hubstack

VIEW = ".hf-cache"


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def etag_of(f):
    """The blob name huggingface_hub gives a file: sha256 for LFS/xet."""
    return f["sha256"] if f["lfs"] or f["xet"] else f["oid"]


def snapshot_links(top):
    """{path: link target} of the entries below a snapshot folder."""
    out = {}
    for d, dirs, names in os.walk(top):
        for n in names:
            p = os.path.join(d, n)
            out[os.path.relpath(p, top)] = os.readlink(p)
    return out


class HfCacheViewTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="hubfs-hfc-")
        os.chmod(cls.tmp, 0o755)
        cls.stack = hubstack.Stack(os.path.join(cls.tmp, "stack"),
                                   page_size=3)
        cls.stack.__enter__()
        cls.m = Mount(cls.tmp, cls.stack.endpoint).start()
        # Touch some repos and revisions through the main tree.
        for p in (("acme", "tiny-model"), ("acme", "tiny-model@v1.0"),
                  ("acme", "tiny-model@refs%2Fpr%2F1"),
                  ("datasets", "acme", "tiny-dataset"),
                  ("acme", "old-name"), ("gpt2",)):
            os.listdir(cls.m.path(*p))

    @classmethod
    def tearDownClass(cls):
        cls.m.stop()
        cls.stack.__exit__(None, None, None)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def view(self, *parts):
        return self.m.path(VIEW, *parts)

    def refs(self, rtype, rid):
        return self.stack.repo(rid, rtype)["refs"]

    def assert_snapshot(self, folder, rtype, rid, commit):
        """Every file of the commit, linked right, with the right bytes."""
        files, _ = files_at(self.stack.manifest, rtype, rid, commit)
        top = os.path.join(folder, "snapshots", commit)
        links = snapshot_links(top)
        self.assertEqual(sorted(links), sorted(files), top)
        for rel, f in files.items():
            depth = rel.count("/")
            self.assertEqual(links[rel],
                             "../" * (depth + 2) + "blobs/" + etag_of(f), rel)
            p = os.path.join(top, rel)
            self.assertTrue(os.path.islink(p))
            self.assertEqual(os.path.realpath(p),
                             os.path.join(os.path.realpath(folder), "blobs",
                                          etag_of(f)))
            self.assertEqual(os.stat(p).st_size, f["size"], rel)
            self.assertEqual(sha256_of(p), f["sha256"], rel)

    def assert_ref(self, folder, name, commit):
        with open(os.path.join(folder, "refs", name), "rb") as f:
            self.assertEqual(f.read(), commit.encode())  # no newline
        self.assertEqual(os.stat(os.path.join(folder, "refs", name)).st_size,
                         40)

    # --- the root ----------------------------------------------------------

    def test_hidden_dot_entry_costing_no_request(self):
        before = len(self.stack.hub_log())
        self.assertIn(VIEW, os.listdir(self.m.mnt))  # ls -a shows it
        ls = subprocess.run(["ls", self.m.mnt], capture_output=True,
                            text=True, check=True).stdout.split()
        self.assertNotIn(VIEW, ls)
        self.assertIn(VIEW, subprocess.run(
            ["ls", "-a", self.m.mnt], capture_output=True, text=True,
            check=True).stdout.split())
        self.assertTrue(os.path.isdir(self.view()))
        names = os.listdir(self.view())
        self.assertEqual(len(self.stack.hub_log()), before)
        for n in ("models--acme--tiny-model", "datasets--acme--tiny-dataset",
                  "models--acme--new-name"):
            self.assertIn(n, names)
        # An old id the store was asked for is listed, as a link to its
        # repo (the folder a client filling a cache under that id makes),
        # not as a second copy of it; readdir types it as a link.
        types = {e.name: (e.is_symlink(), e.is_dir(follow_symlinks=False))
                 for e in os.scandir(self.view())}
        for old, new in (("models--acme--old-name", "models--acme--new-name"),
                         ("models--gpt2", "models--openai-community--gpt2")):
            self.assertIn(old, names)
            self.assertEqual(types[old], (True, False), old)
            self.assertEqual(types[new], (False, True), new)
            self.assertEqual(os.readlink(self.view(old)), new)
        commit = self.refs("model", "openai-community/gpt2")["main"]
        self.assert_ref(self.view("models--gpt2"), "main", commit)

    # --- refs, snapshots, blobs --------------------------------------------

    def test_model_layout(self):
        folder = self.view("models--acme--tiny-model")
        refs = self.refs("model", "acme/tiny-model")
        self.assertEqual(sorted(os.listdir(folder)),
                         ["blobs", "refs", "snapshots", "trees"])
        self.assertEqual(sorted(os.listdir(os.path.join(folder, "refs"))),
                         ["main", "refs", "v1.0"])
        self.assertEqual(os.listdir(os.path.join(folder, "refs", "refs")),
                         ["pr"])
        self.assertEqual(os.listdir(os.path.join(folder, "refs", "refs",
                                                 "pr")), ["1"])
        for name in ("main", "v1.0", "refs/pr/1"):
            self.assert_ref(folder, name, refs[name])
        want = {refs["main"], refs["v1.0"], refs["refs/pr/1"]}
        self.assertEqual(set(os.listdir(os.path.join(folder, "snapshots"))),
                         want)
        for commit in want:
            self.assert_snapshot(folder, "model", "acme/tiny-model", commit)
        # blobs/ holds every file's blob of those commits, sizes exact.
        blobs = {}
        for commit in want:
            files, _ = files_at(self.stack.manifest, "model",
                                "acme/tiny-model", commit)
            for f in files.values():
                blobs[etag_of(f)] = f["size"]
        self.assertEqual(sorted(os.listdir(os.path.join(folder, "blobs"))),
                         sorted(blobs))
        for etag, size in blobs.items():
            st = os.lstat(os.path.join(folder, "blobs", etag))
            self.assertEqual(st.st_size, size)
            self.assertEqual(st.st_mode & 0o777, 0o444)

    def test_trees_json(self):
        """trees/<commit>.json as hub-api.md section 8.6 describes it."""
        for rtype, rid in (("model", "acme/tiny-model"),
                           ("dataset", "acme/tiny-dataset")):
            folder = self.view(rtype + "s--" + rid.replace("/", "--"))
            commits = os.listdir(os.path.join(folder, "snapshots"))
            self.assertEqual(
                sorted(os.listdir(os.path.join(folder, "trees"))),
                sorted(c + ".json" for c in commits))
            for commit in commits:
                files, _ = files_at(self.stack.manifest, rtype, rid, commit)
                p = os.path.join(folder, "trees", commit + ".json")
                with open(p, "rb") as f:
                    raw = f.read()
                self.assertEqual(os.stat(p).st_size, len(raw))
                doc = json.loads(raw)
                self.assertEqual(doc["format_version"], 1)
                self.assertEqual(sorted(doc["files"]), sorted(files))
                for path, f in files.items():
                    want = {"size": f["size"], "blob_id": f["oid"]}
                    if f["lfs"] or f["xet"]:
                        want["lfs_sha256"] = f["sha256"]
                        want["lfs_size"] = f["size"]
                    if f["xet"]:
                        want["xet_hash"] = f["xetHash"]
                    self.assertEqual(doc["files"][path], want, path)
        self.assertTrue(any(f["xet"] for f in files_at(
            self.stack.manifest, "model", "acme/tiny-model", "main")[0]
            .values()), "the fixture lost its xet file")
        folder = self.view("models--acme--tiny-model")
        for bad in ("x.json", "0" * 40 + ".json", "0" * 40,
                    self.refs("model", "acme/tiny-model")["main"] + ".jso"):
            self.assertFalse(os.path.exists(os.path.join(folder, "trees",
                                                         bad)), bad)

    def test_sha256sum_through_the_view(self):
        folder = self.view("models--acme--tiny-model")
        commit = self.refs("model", "acme/tiny-model")["main"]
        files, _ = files_at(self.stack.manifest, "model", "acme/tiny-model",
                            commit)
        for rel in ("model.safetensors", "weights/xet-model.bin",
                    "nested/a/b/c/deep.txt"):
            out = subprocess.run(
                ["sha256sum", os.path.join(folder, "snapshots", commit, rel)],
                capture_output=True, text=True, check=True).stdout
            self.assertEqual(out.split()[0], files[rel]["sha256"], rel)

    def test_dataset(self):
        folder = self.view("datasets--acme--tiny-dataset")
        commit = self.refs("dataset", "acme/tiny-dataset")["main"]
        self.assert_ref(folder, "main", commit)
        self.assertEqual(os.listdir(os.path.join(folder, "snapshots")),
                         [commit])
        self.assert_snapshot(folder, "dataset", "acme/tiny-dataset", commit)

    def test_stable_inodes(self):
        folder = self.view("models--acme--tiny-model")
        commit = self.refs("model", "acme/tiny-model")["main"]
        paths = [folder, os.path.join(folder, "refs", "main"),
                 os.path.join(folder, "snapshots", commit),
                 os.path.join(folder, "snapshots", commit, "config.json"),
                 os.path.join(folder, "snapshots", commit,
                              "model.safetensors")]
        first = [os.lstat(p).st_ino for p in paths]
        first.append(os.stat(paths[-1]).st_ino)
        subprocess.run(["sync"])
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("2")  # forget dentries and inodes: new lookups
        again = [os.lstat(p).st_ino for p in paths]
        again.append(os.stat(paths[-1]).st_ino)
        self.assertEqual(first, again)
        self.assertEqual(len(set(first)), len(first))

    # --- what hubfs does not know yet ----------------------------------------

    def test_unknown_repo_resolves(self):
        folder = self.view("datasets--bob--bob-data")
        self.assertNotIn("datasets--bob--bob-data", os.listdir(self.view()))
        self.assertTrue(os.path.isdir(folder))
        commit = self.refs("dataset", "bob/bob-data")["main"]
        self.assert_ref(folder, "main", commit)
        self.assert_snapshot(folder, "dataset", "bob/bob-data", commit)
        self.assertIn("datasets--bob--bob-data", os.listdir(self.view()))
        space = self.view("spaces--acme--demo-space")
        commit = self.refs("space", "acme/demo-space")["main"]
        self.assert_ref(space, "main", commit)
        self.assert_snapshot(space, "space", "acme/demo-space", commit)
        for name in ("models--acme--no-such-repo", "models--acme",
                     "kernels--acme--tiny-model", "models--acme--tiny-model--x",
                     "not-a-repo"):
            self.assertFalse(os.path.exists(self.view(name)), name)

    def test_unknown_revision_and_commit_resolve(self):
        folder = self.view("models--acme--tiny-model")
        refs = self.refs("model", "acme/tiny-model")
        self.assertNotIn("dev", os.listdir(os.path.join(folder, "refs")))
        self.assert_ref(folder, "dev", refs["dev"])
        self.assertIn("dev", os.listdir(os.path.join(folder, "refs")))
        self.assertIn(refs["dev"],
                      os.listdir(os.path.join(folder, "snapshots")))
        self.assert_snapshot(folder, "model", "acme/tiny-model", refs["dev"])
        # A commit no revision points at.
        repo = self.stack.repo("acme/tiny-model")
        first = sorted(set(repo["commits"]) - set(refs.values()))[0]
        self.assertNotIn(first, os.listdir(os.path.join(folder,
                                                        "snapshots")))
        self.assert_snapshot(folder, "model", "acme/tiny-model", first)
        for bad in (("refs", "no-such-branch"), ("snapshots", "0" * 40),
                    ("snapshots", "main"), ("blobs", "0" * 64),
                    ("blobs", "x"), ("nothing",)):
            self.assertFalse(os.path.exists(os.path.join(folder, *bad)), bad)

    def test_offline_mount_of_the_same_store(self):
        """What HF_HUB_OFFLINE=1 programs see: the store, no Hub at all."""
        rid = "acme/tiny-model"
        commit = self.refs("model", rid)["main"]
        files, _ = files_at(self.stack.manifest, "model", rid, commit)
        rel = "model.safetensors"
        online = self.view("models--acme--tiny-model", "snapshots", commit,
                           rel)
        self.assertEqual(sha256_of(online), files[rel]["sha256"])
        with Mount(self.tmp, "http://127.0.0.1:9", name="off",
                   args=("--offline",), store=self.m.store) as off:
            folder = off.path(VIEW, "models--acme--tiny-model")
            self.assertIn("models--acme--tiny-model",
                          os.listdir(off.path(VIEW)))
            self.assert_ref(folder, "main", commit)
            self.assertIn(commit, os.listdir(os.path.join(folder,
                                                          "snapshots")))
            p = os.path.join(folder, "snapshots", commit, rel)
            self.assertEqual(sha256_of(p), files[rel]["sha256"])
            self.assertFalse(os.path.exists(off.path(
                VIEW, "models--acme--never-seen")))

    # --- read-only ----------------------------------------------------------

    def test_read_only(self):
        folder = self.view("models--acme--tiny-model")
        commit = self.refs("model", "acme/tiny-model")["main"]
        snap = os.path.join(folder, "snapshots", commit)
        blob = os.path.join(folder, "blobs", os.listdir(
            os.path.join(folder, "blobs"))[0])
        ref = os.path.join(folder, "refs", "main")
        attempts = (
            (open, (ref, "w")), (open, (ref, "a")), (open, (blob, "r+")),
            (open, (os.path.join(snap, "config.json"), "w")),
            (open, (os.path.join(folder, "refs", "new"), "w")),
            (os.mkdir, (self.view("new-folder"),)),
            (os.mkdir, (os.path.join(folder, ".no_exist"),)),
            (open, (os.path.join(folder, "trees", commit + ".json"), "w")),
            (os.unlink, (ref,)), (os.unlink, (os.path.join(snap,
                                                           "config.json"),)),
            (os.rmdir, (snap,)),
            (os.symlink, ("../../blobs/x", os.path.join(snap, "new"))),
            (os.rename, (ref, ref + ".tmp")),
            (os.chmod, (blob, 0o644)),
            (os.utime, (self.view(), None)),
        )
        for fn, args in attempts:
            with self.assertRaises(OSError, msg=(fn, args)) as cm:
                fn(*args)
            self.assertEqual(cm.exception.errno, errno.EROFS, (fn, args))
        for p in (self.view(), folder, ref, snap, blob):
            self.assertFalse(os.access(p, os.W_OK), p)


if __name__ == "__main__":
    unittest.main(verbosity=2)
