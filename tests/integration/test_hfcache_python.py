"""The .hf-cache view judged by huggingface_hub itself (the pinned venv).

One stack, one daemon.  The same revisions are learnt by hubfs through its
main tree and downloaded by huggingface_hub into a cache of its own, from
the same emulator.  Then, with HF_HUB_CACHE (cache_dir) at the view and at
the client's cache in turn:

- scan_cache_dir() and `hf cache ls` report the same repos, revisions,
  refs, files, blob names and sizes;
- `hf cache verify` passes on a revision the store holds whole;
- offline (HF_HUB_OFFLINE=1) hf_hub_download(local_files_only=True),
  try_to_load_from_cache and snapshot_download find every file, at the
  same place relative to the cache;
- online, hf_hub_download and snapshot_download of a pinned commit cost
  no request at all (emulator request log and CDN log both empty).

The client's cache is filled with HF_HUB_DISABLE_XET=1 (plain HTTP for
xet files): the scan compares what a cache holds, not how it was fetched.
The Python side is tests/python/hfcache_client.py.
"""
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import unittest

from mountlib import Mount, files_at, hubstack, venv_python

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT = os.path.join(HERE, "..", "python", "hfcache_client.py")

# (repo id as asked for, type, revision): every kind of revision, an old
# id and a legacy id (their folders are links in the view), each type.
REVISIONS = [
    ("acme/tiny-model", "model", "main"),
    ("acme/tiny-model", "model", "v1.0"),
    ("acme/tiny-model", "model", "refs/pr/1"),
    ("acme/tiny-model", "model", "dev"),
    ("acme/tiny-model", "model", "UNREFERENCED"),  # a commit by its sha
    ("acme/tiny-dataset", "dataset", "main"),
    ("acme/tiny-dataset", "dataset", "refs/convert/parquet"),
    ("acme/new-name", "model", "main"),
    ("acme/old-name", "model", "main"),
    ("openai-community/gpt2", "model", "main"),
    ("gpt2", "model", "main"),
    ("acme/demo-space", "space", "main"),
]
PLURAL = {"model": "models", "dataset": "datasets", "space": "spaces"}
MISSING = "no/such/file.txt"


def main_tree_path(rid, rtype, rev):
    parts = [] if rtype == "model" else [PLURAL[rtype]]
    parts += rid.split("/")
    if rev != "main":
        parts[-1] += "@" + rev.replace("/", "%2F")
    return parts


class HfCachePythonTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.py = venv_python()
        cls.tmp = tempfile.mkdtemp(prefix="hubfs-hfcpy-")
        os.chmod(cls.tmp, 0o755)
        cls.stack = hubstack.Stack(os.path.join(cls.tmp, "stack"),
                                   page_size=3)
        cls.stack.__enter__()
        cls.m = Mount(cls.tmp, cls.stack.endpoint).start()
        cls.view = cls.m.path(".hf-cache")
        cls.real = os.path.join(cls.tmp, "client-cache")
        cls.hf_home = os.path.join(cls.tmp, "hf-home")
        os.makedirs(cls.hf_home)
        cls.jobs = []
        for rid, rtype, rev in REVISIONS:
            repo = cls.manifest_repo(rid, rtype)
            if rev == "UNREFERENCED":
                rev = sorted(set(repo["commits"]) -
                             set(repo["refs"].values()))[0]
            os.listdir(cls.m.path(*main_tree_path(rid, rtype, rev)))
            files, sha = files_at(cls.stack.manifest, rtype, repo["id"], rev)
            cls.jobs.append({"repo": rid, "type": rtype, "revision": rev,
                             "commit": sha, "files": sorted(files)})
        cls.client("download", cls.real, cls.jobs, offline=False)

    @classmethod
    def tearDownClass(cls):
        cls.m.stop()
        cls.stack.__exit__(None, None, None)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def manifest_repo(cls, rid, rtype):
        for repo in cls.stack.manifest["repos"]:
            if repo["type"] == rtype and (
                    repo["id"] == rid or rid in repo["renamed_from"]):
                return repo
        raise KeyError(rid)

    @classmethod
    def env(cls, offline):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
               "HOME": cls.m.home, "LANG": "C.UTF-8",
               "HF_HOME": cls.hf_home, "HF_ENDPOINT": cls.stack.endpoint,
               "HF_HUB_DISABLE_XET": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
               "HF_HUB_DISABLE_PROGRESS_BARS": "1", "NO_COLOR": "1"}
        if offline:
            env["HF_HUB_OFFLINE"] = "1"
        return env

    @classmethod
    def client(cls, cmd, cache, jobs=None, offline=True):
        argv = [cls.py, CLIENT, cmd, cache]
        if jobs is not None:
            argv.append(json.dumps(jobs))
        r = subprocess.run(argv, env=cls.env(offline), capture_output=True,
                           text=True, timeout=300)
        if r.returncode != 0:
            raise AssertionError("%s %s failed:\n%s\n%s" % (
                cmd, cache, r.stderr[-3000:], cls.m.read_log()[-2000:]))
        return json.loads(r.stdout)

    def hf(self, *args, offline=True):
        r = subprocess.run([os.path.join(os.path.dirname(self.py), "hf"),
                            *args], env=self.env(offline),
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return r.stdout

    # --- listing ------------------------------------------------------------

    def test_scan_cache_dir(self):
        view, real = self.client("scan", self.view), self.client(
            "scan", self.real)
        self.assertEqual(view["warnings"], [])
        self.assertEqual(real["warnings"], [])
        self.assertEqual(view["repos"], real["repos"])
        self.assertEqual(view["size_on_disk"], real["size_on_disk"])
        # ...and both are what the emulator holds.
        folders = {r["folder"] for r in view["repos"]}
        for job in self.jobs:
            name = PLURAL[job["type"]] + "--" + job["repo"].replace("/", "--")
            self.assertIn(name, folders)
            repo = next(r for r in view["repos"] if r["folder"] == name)
            rev = next(v for v in repo["revisions"]
                       if v["commit"] == job["commit"])
            if job["revision"] == job["commit"]:
                self.assertEqual(rev["refs"], [])
            else:
                self.assertIn(job["revision"], rev["refs"])
            files, _ = files_at(self.stack.manifest, job["type"],
                                self.manifest_repo(job["repo"],
                                                   job["type"])["id"],
                                job["commit"])
            self.assertEqual(
                rev["files"],
                {p: {"size": f["size"],
                     "blob": f["sha256"] if f["lfs"] else f["oid"]}
                 for p, f in files.items()}, name)

    def test_hf_cache_ls(self):
        for args in (("--revisions",), ()):
            out = []
            for cache in (self.view, self.real):
                rows = json.loads(self.hf("cache", "ls", "--cache-dir",
                                          cache, "--json", *args))
                for row in rows:  # where and when differ, by nature
                    for key in ("snapshot_path", "last_modified",
                                "last_accessed", "repo_path"):
                        row.pop(key, None)
                out.append(sorted(rows, key=json.dumps))
            self.assertEqual(out[0], out[1], args)
            self.assertEqual(len(out[0]), len({
                (j["repo"], j["type"]) + ((j["commit"],) if args else ())
                for j in self.jobs}))

    def test_hf_cache_verify_whole_revision(self):
        """Verify reads every file: only on a revision read whole first."""
        job = self.jobs[0]
        snap = os.path.join(self.view, "models--acme--tiny-model",
                            "snapshots", job["commit"])
        for rel in job["files"]:  # the store now holds the revision whole
            with open(os.path.join(snap, rel), "rb") as f:
                hashlib.sha256(f.read())
        out = []
        for cache in (self.view, self.real):
            doc = json.loads(self.hf(
                "cache", "verify", job["repo"], "--revision", job["revision"],
                "--cache-dir", cache, "--fail-on-missing-files",
                "--fail-on-extra-files", "--json", offline=False))
            self.assertEqual(doc["checked"], len(job["files"]))
            doc["path"] = os.path.relpath(doc["path"], cache)
            out.append(doc)
        self.assertEqual(out[0], out[1])

    # --- lookups ------------------------------------------------------------

    def relative(self, result, cache):
        """The paths of a find result, relative to the cache."""
        def rel(r):
            if "path" not in r:
                return {"error": r["error"]}  # the message names the cache
            if r["path"] == "None":  # try_to_load_from_cache: not cached
                return r
            self.assertTrue(r["path"].startswith(cache + os.sep), r)
            return {"path": os.path.relpath(r["path"], cache)}
        return [{"local_files_only": {k: rel(v) for k, v in
                                      job["local_files_only"].items()},
                 "try_to_load_from_cache": {k: rel(v) for k, v in
                                            job["try_to_load_from_cache"]
                                            .items()},
                 "snapshot_download": rel(job["snapshot_download"])}
                for job in result]

    def test_offline_lookups_find_every_file(self):
        jobs = list(self.jobs) + [dict(j, revision=j["commit"])
                                  for j in self.jobs]
        jobs = [dict(j, files=j["files"] + [MISSING]) for j in jobs]
        view = self.relative(self.client("find", self.view, jobs),
                             self.view)
        real = self.relative(self.client("find", self.real, jobs),
                             self.real)
        self.assertEqual(view, real)
        for job, res in zip(jobs, view):
            top = PLURAL[job["type"]] + "--" + job["repo"].replace("/", "--")
            snap = os.path.join(top, "snapshots", job["commit"])
            self.assertEqual(res["snapshot_download"], {"path": snap}, job)
            # What is not in the revision is not found, as in any cache.
            self.assertEqual(res["local_files_only"][MISSING]["error"],
                             "LocalEntryNotFoundError")
            self.assertEqual(res["try_to_load_from_cache"][MISSING],
                             {"path": "None"})
            for rel in job["files"][:-1]:
                for how in ("local_files_only", "try_to_load_from_cache"):
                    self.assertEqual(res[how][rel],
                                     {"path": os.path.join(snap, rel)},
                                     (how, job["repo"], job["revision"]))

    def test_pinned_commit_costs_no_request_online(self):
        # The client fetches the Hub's agent registry once a day into
        # HF_HOME; the download above did, so nothing is left to ask.
        self.assertTrue(os.path.exists(os.path.join(
            self.hf_home, ".agent_harnesses.json")))
        jobs = [dict(j, revision=j["commit"]) for j in self.jobs]
        self.stack.clear_logs()
        res = self.client("find-online", self.view, jobs, offline=False)
        self.assertEqual(self.stack.hub_log(), [])
        self.assertEqual(self.stack.cdn_log(), [])
        for job, got in zip(jobs, res):
            top = PLURAL[job["type"]] + "--" + job["repo"].replace("/", "--")
            snap = os.path.join(self.view, top, "snapshots", job["commit"])
            self.assertEqual(got["snapshot_download"], {"path": snap})
            self.assertEqual(got["hf_hub_download"],
                             {rel: {"path": os.path.join(snap, rel)}
                              for rel in job["files"]})


if __name__ == "__main__":
    unittest.main(verbosity=2)
