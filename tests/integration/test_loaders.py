"""Real loaders read model files through the mount, and the results equal
those from a plain local copy of the same files.

tests/python/loader_fixtures.py (in the pinned venv) makes the files with
the venv's own libraries, deterministically, once per machine: they are
kept in the stack's blob cache (BLOB_CACHE/loaders/<key>/, the key
hashing the pins, the generator and the size) and pushed at run time to
model acme/loaders (fixtures/large/loaders.json) with s.commit(); the
emulator links them into its blob store, so the 1 GiB file exists once on
disk beside what the mount fetches.  The local copy each loader reads is
that generated file.

- safetensors.safe_open(framework="numpy") reads one 64 MiB tensor of a
  file past 1 GiB (mmap); the CDN sends at most 16 MiB more than the
  tensor (cdn_log);
- tokenizers.Tokenizer.from_file encodes sample texts to the same ids;
- gguf.GGUFReader (np.memmap) gives the same metadata and tensors;
- an onnxruntime InferenceSession gives the same outputs for one input;
- the small ones again through MOUNT/.hf-cache/models--acme--loaders.

Under a sanitizer build of the daemon (ASan/UBSan, TSan) the tensors are
2 MiB (a 32 MiB file): the byte bound is checked all the same.
"""
import glob
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

from mountlib import HUBFS, Mount, hubstack, venv_python

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.join(HERE, "..")
GENERATOR = os.path.join(TESTS, "python", "loader_fixtures.py")
REQUIREMENTS = os.path.join(TESTS, "python", "requirements.txt")
FIXTURE = os.path.join(TESTS, "fixtures", "large", "loaders.json")
MiB = 1 << 20
SLACK = 16 * MiB
STALE = 3600  # seconds
# (kind, path in the repo, stored as LFS)
FILES = (("safetensors", "model.safetensors", True),
         ("tokenizer", "tokenizer.json", True),
         ("gguf", "model.gguf", True),
         ("onnx", "model.onnx", True))


def sanitized_binary(path):
    """Whether the daemon binary runs with a sanitizer runtime."""
    out = subprocess.run(["ldd", path], capture_output=True,
                         text=True).stdout
    return any(lib in out for lib in ("libasan", "libtsan", "libubsan"))


def venv_env():
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": tempfile.gettempdir(), "LANG": "C.UTF-8",
            "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}


def fixture_files(py, blob_cache, tensor_mib):
    """The generated files' folder, made now if this machine lacks it."""
    h = hashlib.sha256()
    for p in (REQUIREMENTS, GENERATOR):
        with open(p, "rb") as f:
            h.update(f.read())
    key = "%s-%d" % (h.hexdigest()[:16], tensor_mib)
    top = os.path.join(blob_cache, "loaders")
    out = os.path.join(top, key)
    os.makedirs(top, exist_ok=True)
    drop_stale(blob_cache, top, key)
    if not os.path.exists(os.path.join(out, "DONE")):
        tmp = os.path.join(top, "tmp.%d" % os.getpid())
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run([py, GENERATOR, "make", tmp, str(tensor_mib)],
                       env=venv_env(), check=True, timeout=600)
        try:
            os.rename(tmp, out)
        except OSError:  # another run made it first
            shutil.rmtree(tmp, ignore_errors=True)
    os.utime(os.path.join(out, "DONE"))  # in use: not stale
    return out


def drop_stale(blob_cache, top, key):
    """Remove the files of other keys (older pins or generator, another
    size) unused for STALE seconds, and their links in the blob store, so
    a machine keeps one set of each size.  A worktree with other pins
    running at the same time has used its set within the hour."""
    stale = []
    for d in glob.glob(os.path.join(top, "*")):
        if os.path.basename(d) == key:
            continue
        try:
            done = os.path.join(d, "DONE")
            used = os.stat(done if os.path.exists(done) else d).st_mtime
        except OSError:
            continue
        if time.time() - used > STALE:
            stale.append(d)
    if not stale:
        return
    inodes = set()
    for d in stale:
        for name in os.listdir(d):
            st = os.stat(os.path.join(d, name))
            if st.st_size >= MiB:
                inodes.add((st.st_dev, st.st_ino))
    with os.scandir(os.path.join(blob_cache, "sha256")) as it:
        for e in it:
            if any(e.inode() == ino for _, ino in inodes):
                st = e.stat(follow_symlinks=False)
                if (st.st_dev, st.st_ino) in inodes:
                    os.unlink(e.path)
    for d in stale:
        shutil.rmtree(d, ignore_errors=True)


SANITIZED = sanitized_binary(HUBFS)



class LoadersTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.py = venv_python()
        cls.tensor_mib = 2 if SANITIZED else 64
        cls.tmp = tempfile.mkdtemp(prefix="hubfs-loaders-")
        os.chmod(cls.tmp, 0o755)
        cls.stack = hubstack.Stack(os.path.join(cls.tmp, "stack"),
                                   fixtures=[FIXTURE])
        cls.stack.__enter__()
        cls.local = fixture_files(cls.py, cls.stack.blob_cache,
                                  cls.tensor_mib)
        cls.commit = cls.stack.commit(
            "acme/loaders", message="Add model files",
            files={name: {"file": os.path.join(cls.local, name), "lfs": lfs}
                   for _, name, lfs in FILES})
        cls.m = Mount(cls.tmp, cls.stack.endpoint).start()

    @classmethod
    def tearDownClass(cls):
        cls.m.stop()
        cls.stack.__exit__(None, None, None)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def compare(self, kind, name, mount=None, path=None):
        mounted = path or (mount or self.m).path(
            "acme", "loaders@" + self.commit, name)
        local = os.path.join(self.local, name)
        self.assertEqual(os.stat(mounted).st_size, os.stat(local).st_size)
        r = subprocess.run([self.py, GENERATOR, "compare", kind, mounted,
                            local], env=venv_env(), capture_output=True,
                           text=True, timeout=600)
        self.assertEqual(r.returncode, 0, "%s\n%s\n%s" % (
            r.stdout, r.stderr[-3000:], (mount or self.m).read_log()[-2000:]))
        report = json.loads(r.stdout)
        self.assertTrue(report["ok"], report)
        return report

    def test_safetensors_one_tensor_of_a_big_file(self):
        f = self.stack.repo("acme/loaders")["commits"][self.commit][
            "files"]["model.safetensors"]
        self.assertTrue(f["lfs"])
        if not SANITIZED:
            self.assertGreaterEqual(f["size"], 1 << 30)
        report = self.compare("safetensors", "model.safetensors")
        self.assertEqual(report["nbytes"], self.tensor_mib * MiB)

    def test_safetensors_network_bytes(self):
        """A cold store: the CDN sends the tensor and at most 16 MiB more.

        The sequential readahead (fs/engine.c, plan_readahead) keeps at
        most an eighth of what a stream read ahead of it past an 8 MiB
        floor, so the reader that stops after its tensor leaves at most
        8 MiB fetched for nothing (it was 64 MiB with a window of twice
        the read: 134 MiB sent for the 64 MiB tensor), and the header
        probe at offset 0 gets a block, not megabytes."""
        f = self.stack.repo("acme/loaders")["commits"][self.commit][
            "files"]["model.safetensors"]
        with Mount(self.tmp, self.stack.endpoint, name="cold") as cold:
            self.stack.clear_logs()
            report = self.compare("safetensors", "model.safetensors",
                                  mount=cold)
        sent = [e for e in self.stack.cdn_log()
                if e["uri"].endswith("/" + f["sha256"])]
        total = sum(max(e["bytes"], 0) for e in sent)
        print("\nsafetensors: file %d bytes, tensor %d, CDN sent %d in %d "
              "requests" % (f["size"], report["nbytes"], total, len(sent)))
        self.assertGreaterEqual(total, report["nbytes"])
        self.assertLessEqual(total, report["nbytes"] + SLACK, [
            (e["range"], e["bytes"]) for e in sent])

    def test_through_the_hf_cache_view(self):
        """As a program given a repo id finds the files: the view's
        snapshot links, the same bytes."""
        snap = self.m.path(".hf-cache", "models--acme--loaders", "snapshots",
                           self.commit)
        for kind, name, _ in FILES[1:]:
            self.assertTrue(os.path.islink(os.path.join(snap, name)), name)
            self.compare(kind, name, path=os.path.join(snap, name))

    def test_tokenizer(self):
        report = self.compare("tokenizer", "tokenizer.json")
        self.assertEqual(len(report["texts"]), 3)

    def test_gguf(self):
        report = self.compare("gguf", "model.gguf")
        self.assertEqual([t["type"] for t in report["tensors"]],
                         ["F32", "F16", "Q8_0"])

    def test_onnx(self):
        self.compare("onnx", "model.onnx")


if __name__ == "__main__":
    unittest.main(verbosity=2)
