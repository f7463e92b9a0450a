"""Fidelity: unmodified huggingface_hub against the Hub emulator.

The pinned huggingface_hub (tests/python/requirements.txt), pointed at the
emulator with HF_ENDPOINT as a user points it at a mirror, must see the
emulator as it sees the Hub: every answer is compared with the emulator's
manifest (tests/README.md), every error by its class.  Listings are paged
every 3 entries, so each listing here crosses pages.

Run with the venv's python (ctest passes it; .ci/install-venv --path):

    $(.ci/install-venv --path)/bin/python tests/python/test_hfhub_fidelity.py

Xet-backed files: with hf_xet installed the client fetches them from the
emulator's Xet CAS (reconstructions, xorbs through nginx); the checks of
that path are XetNativeTest.  The bridge
path (HF_HUB_DISABLE_XET=1, a plain GET through the 302) is XetBridgeTest.
Every other check uses files that are not on Xet.
"""
import hashlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "harness"))

import hubstack  # noqa: E402  (path set above)

PAGE = 3
TINY = "acme/tiny-model"
XET_FILE = "weights/xet-model.bin"

STACK = None
TMP = None
hf = None      # huggingface_hub, imported once HF_ENDPOINT names the emulator
errors = None  # huggingface_hub.errors


def client_env(**extra):
    """The environment a user pointing huggingface_hub at the emulator has:
    HF_ENDPOINT, a private HF_HOME (no token, no cache of theirs), nothing
    else of ours."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(HF_ENDPOINT=STACK.endpoint, HF_HOME=os.path.join(TMP, "hf-home"),
               HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_PROGRESS_BARS="1",
               HF_HUB_DISABLE_IMPLICIT_TOKEN="1")
    env.update(extra)
    return env


def setUpModule():
    global STACK, TMP, hf, errors
    TMP = tempfile.mkdtemp(prefix="hubfs-pyfid-")
    os.chmod(TMP, 0o755)
    STACK = hubstack.Stack(os.path.join(TMP, "stack"), page_size=PAGE)
    try:
        STACK.__enter__()
    except BaseException:
        shutil.rmtree(TMP, ignore_errors=True)
        raise
    os.environ.clear()
    os.environ.update(client_env())
    hf = importlib.import_module("huggingface_hub")
    errors = importlib.import_module("huggingface_hub.errors")


def tearDownModule():
    if STACK:
        STACK.__exit__(None, None, None)
    if TMP:
        shutil.rmtree(TMP, ignore_errors=True)


# ---------------------------------------------------------------- manifest

def repo_of(repo_id, rtype="model"):
    return STACK.repo(repo_id, rtype)


def commit_of(repo, rev=None):
    rev = rev or repo["default_branch"]
    sha = repo["refs"].get(rev, rev)
    return sha, repo["commits"][sha]


def files_of(repo, rev=None):
    return commit_of(repo, rev)[1]["files"]


def etag_of(f):
    """The cache blob name: the sha256 of LFS (and Xet) files, else the git
    blob id (hub-api.md 5.4)."""
    return f["sha256"] if f["lfs"] else f["oid"]


def implied_dirs(paths):
    dirs = set()
    for p in paths:
        parts = p.split("/")
        dirs.update("/".join(parts[:i]) for i in range(1, len(parts)))
    return dirs


def ancestry(repo, sha):
    out = []
    while sha:
        out.append(sha)
        sha = repo["commits"][sha]["parent"]
    return out


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def plain_repos(rtype):
    return [r for r in STACK.manifest["repos"] if r["type"] == rtype
            and not r["private"] and not r["gated"] and not r["disabled"]]


def non_xet(files):
    return {p: f for p, f in files.items() if not f["xet"]}


class Base(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.api = hf.HfApi()
        self.hub_mark = len(STACK.hub_log())
        self.cdn_mark = len(STACK.cdn_log())

    def hub_requests(self):
        return STACK.hub_log()[self.hub_mark:]

    def cdn_requests(self):
        return STACK.cdn_log()[self.cdn_mark:]

    def fresh(self, name):
        d = os.path.join(TMP, "%s-%s" % (self.id().rsplit(".", 1)[-1], name))
        shutil.rmtree(d, ignore_errors=True)
        return d

    def assertSiblings(self, info, files):
        got = {s.rfilename: s for s in info.siblings}
        self.assertEqual(set(got), set(files))
        for path, f in files.items():
            s = got[path]
            self.assertEqual((s.size, s.blob_id), (f["size"], f["oid"]), path)
            if f["lfs"]:
                self.assertEqual((s.lfs.sha256, s.lfs.size, s.lfs.pointer_size),
                                 (f["sha256"], f["size"], f["pointerSize"]), path)
            else:
                self.assertIsNone(s.lfs, path)

    def assertFileEntry(self, e, f):
        self.assertIsInstance(e, hf.hf_api.RepoFile, e.path)
        self.assertEqual((e.size, e.blob_id), (f["size"], f["oid"]), e.path)
        if f["lfs"]:
            self.assertEqual((e.lfs.sha256, e.lfs.size, e.lfs.pointer_size),
                             (f["sha256"], f["size"], f["pointerSize"]), e.path)
        else:
            self.assertIsNone(e.lfs, e.path)
        self.assertEqual(e.xet_hash, f.get("xetHash"), e.path)

    def assertCachedFile(self, cache, repo, rev, path, got):
        """got is what hf_hub_download returned: the snapshot link of the
        right commit, to the blob named by the etag, with the bytes."""
        sha, commit = commit_of(repo, rev)
        f = commit["files"][path]
        folder = os.path.join(cache, "%ss--%s" % (repo["type"], repo["id"].replace("/", "--")))
        self.assertEqual(got, os.path.join(folder, "snapshots", sha, path))
        self.assertTrue(os.path.islink(got), got)
        self.assertFalse(os.path.isabs(os.readlink(got)), got)
        self.assertEqual(os.path.realpath(got),
                         os.path.realpath(os.path.join(folder, "blobs", etag_of(f))))
        self.assertEqual(sha256_file(got), f["sha256"], path)
        if rev and rev != sha:
            with open(os.path.join(folder, "refs", rev)) as fh:
                self.assertEqual(fh.read(), sha)  # no newline (hub-api.md 8.2)


# ---------------------------------------------------------------- HfApi

class ApiTest(Base):
    def test_model_info_with_files_metadata(self):
        repo = repo_of(TINY)
        for rev in (None, "v1.0", "dev", "refs/pr/1", commit_of(repo, "v1.0")[0]):
            info = self.api.model_info(TINY, revision=rev, files_metadata=True)
            sha, commit = commit_of(repo, rev)
            self.assertEqual(info.id, TINY)
            self.assertEqual(info.sha, sha, rev)
            self.assertEqual(info.author, "acme")
            self.assertEqual((info.private, info.gated, info.disabled), (False, False, False))
            self.assertEqual(info.pipeline_tag, "text-generation")
            self.assertSiblings(info, commit["files"])
        info = self.api.model_info("bigco/gated-model")
        self.assertEqual(info.gated, "manual")
        self.assertEqual(self.api.model_info("acme/auto-gated").gated, "auto")
        info = self.api.model_info("alice/private-notes", token=STACK.token("alice"),
                                   files_metadata=True)
        self.assertTrue(info.private)
        self.assertSiblings(info, files_of(repo_of("alice/private-notes")))
        info = self.api.model_info(TINY, securityStatus=True)
        self.assertEqual(info.security_repo_status["scansDone"], True)

    def test_dataset_and_space_info(self):
        repo = repo_of("acme/tiny-dataset", "dataset")
        for rev in (None, "refs/convert/parquet"):
            info = self.api.dataset_info("acme/tiny-dataset", revision=rev, files_metadata=True)
            self.assertEqual(info.sha, commit_of(repo, rev)[0])
            self.assertSiblings(info, files_of(repo, rev))
        self.assertEqual(info.description, "A tiny dataset.")
        repo = repo_of("acme/demo-space", "space")
        info = self.api.space_info("acme/demo-space", files_metadata=True)
        self.assertEqual(info.sha, commit_of(repo)[0])
        self.assertEqual(info.sdk, "gradio")
        # a Space runs on its own host, named by its subdomain
        self.assertEqual((info.subdomain, info.host),
                         ("acme-demo-space", "https://acme-demo-space.hf.space"))
        self.assertSiblings(info, files_of(repo))
        # repo_info with a type is the same call
        self.assertEqual(self.api.repo_info("acme/demo-space", repo_type="space").sha, info.sha)

    def test_list_repo_tree_recursive_across_pages(self):
        for repo in [repo_of(TINY)] + plain_repos("dataset") + plain_repos("space"):
            for rev in sorted(repo["refs"]):
                sha, commit = commit_of(repo, rev)
                mark = len(STACK.hub_log())
                entries = list(self.api.list_repo_tree(
                    repo["id"], repo_type=repo["type"], revision=rev, recursive=True))
                where = "%s@%s" % (repo["id"], rev)
                paths = [e.path for e in entries]
                self.assertEqual(len(paths), len(set(paths)), where)
                files = {e.path: e for e in entries if isinstance(e, hf.hf_api.RepoFile)}
                dirs = {e.path for e in entries if isinstance(e, hf.hf_api.RepoFolder)}
                self.assertEqual(set(files), set(commit["files"]), where)
                self.assertEqual(dirs, implied_dirs(commit["files"]), where)
                for path, e in files.items():
                    self.assertFileEntry(e, commit["files"][path])
                pages = [x for x in STACK.hub_log()[mark:] if "/tree/" in x["path"]]
                self.assertEqual(len(pages), max(1, -(-len(entries) // PAGE)), where)
                self.assertTrue(all(x["status"] == 200 for x in pages), where)

    def test_list_repo_tree_folder_and_expand(self):
        repo = repo_of(TINY)
        sha, commit = commit_of(repo)
        top = list(self.api.list_repo_tree(TINY))
        self.assertEqual({e.path for e in top},
                         {p.split("/")[0] for p in commit["files"]})
        sub = list(self.api.list_repo_tree(TINY, path_in_repo="nested/a", recursive=True))
        self.assertEqual({e.path for e in sub}, {"nested/a/b", "nested/a/b/c",
                                                  "nested/a/b/c/deep.txt"})
        expanded = {e.path: e for e in self.api.list_repo_tree(TINY, recursive=True, expand=True)}
        self.assertEqual(set(expanded), set(commit["files"]) | implied_dirs(commit["files"]))
        for path, e in expanded.items():
            self.assertIn(e.last_commit.oid, ancestry(repo, sha), path)
            if path in commit["files"]:
                self.assertIsNotNone(e.security, path)
        # the file was last changed by the commit that added it
        c2 = [s for s, c in repo["commits"].items() if c["title"].startswith("Update config")][0]
        self.assertEqual(expanded["nested/a/b/c/deep.txt"].last_commit.oid, c2)
        self.assertEqual(expanded["config.json"].last_commit.oid, c2)

    def test_list_repo_files(self):
        for repo in [repo_of(TINY)] + plain_repos("dataset"):
            for rev in repo["refs"]:
                got = self.api.list_repo_files(repo["id"], repo_type=repo["type"], revision=rev)
                self.assertEqual(sorted(got), sorted(files_of(repo, rev)), rev)

    def test_list_repo_refs(self):
        for repo in [repo_of(TINY), repo_of("acme/tiny-dataset", "dataset")]:
            refs = self.api.list_repo_refs(repo["id"], repo_type=repo["type"],
                                           include_pull_requests=True)
            got = {}
            for kind, items, prefix in (("branch", refs.branches, "refs/heads/"),
                                        ("tag", refs.tags, "refs/tags/"),
                                        ("convert", refs.converts, "refs/convert/"),
                                        ("pr", refs.pull_requests, "refs/pr/")):
                for r in items:
                    self.assertEqual(r.ref, prefix + r.name)
                    key = r.ref if kind in ("convert", "pr") else r.name
                    self.assertNotIn(key, got)
                    got[key] = r.target_commit
            self.assertEqual(got, repo["refs"])
        refs = self.api.list_repo_refs(TINY)
        self.assertEqual([t.name for t in refs.tags], ["v1.0"])
        self.assertEqual(sorted(b.name for b in refs.branches), ["dev", "main"])
        self.assertIsNone(refs.pull_requests)

    def test_list_repo_commits(self):
        repo = repo_of(TINY)
        for rev in repo["refs"]:
            sha, _ = commit_of(repo, rev)
            got = self.api.list_repo_commits(TINY, revision=rev)
            self.assertEqual([c.commit_id for c in got], ancestry(repo, sha), rev)
            for c in got:
                m = repo["commits"][c.commit_id]
                title, _, rest = m["message"].partition("\n")
                self.assertEqual(c.title, title)
                # the description after the title, "" when there is none
                self.assertEqual(c.message, rest.lstrip("\n"))
                self.assertEqual(c.created_at.isoformat().replace("+00:00", ""),
                                 m["date"].replace(".000Z", ""))
                self.assertTrue(c.authors and all(isinstance(a, str) for a in c.authors))
        first = self.api.list_repo_commits(TINY, revision="v1.0")[0]
        self.assertEqual((first.title, first.message, first.authors),
                         ("Initial commit", "Add the first files.", ["alice"]))
        formatted = self.api.list_repo_commits(TINY, formatted=True)
        self.assertTrue(all(c.formatted_title is not None for c in formatted))

    def test_get_paths_info(self):
        repo = repo_of(TINY)
        for rev in ("main", "v1.0"):
            files = files_of(repo, rev)
            asked = ["config.json", "model.safetensors", "nested", "no/such/file", "README.md"]
            got = {e.path: e for e in self.api.get_paths_info(TINY, asked, revision=rev)}
            want = {p for p in asked if p in files or p in implied_dirs(files)}
            self.assertEqual(set(got), want, rev)
            for p in want & set(files):
                self.assertFileEntry(got[p], files[p])
            for p in want - set(files):
                self.assertIsInstance(got[p], hf.hf_api.RepoFolder)
        got = self.api.get_paths_info(TINY, ["config.json"], expand=True)
        self.assertIsNotNone(got[0].last_commit)

    def test_list_models_by_author(self):
        def readable(user):
            orgs = STACK.tokens["users"][user]["orgs"] if user else []
            return sorted(r["id"] for r in STACK.manifest["repos"]
                          if r["type"] == "model" and r["id"].split("/")[0] == "acme"
                          and (not r["private"] or r["id"].split("/")[0] in orgs))
        anon = list(self.api.list_models(author="acme", token=False))
        self.assertEqual(sorted(m.id for m in anon), readable(None))
        self.assertGreater(len(anon), PAGE)  # crossed pages
        for m in anon:
            # as on the Hub: no commit or date without full=True
            self.assertIsNone(m.sha, m.id)
            self.assertIsNone(m.last_modified, m.id)
        alice = list(self.api.list_models(author="acme", token=STACK.token("alice")))
        self.assertEqual(sorted(m.id for m in alice), readable("alice"))
        self.assertIn("acme/secret-model", [m.id for m in alice])
        full = {m.id: m for m in self.api.list_models(author="acme", full=True)}
        tiny = repo_of(TINY)
        self.assertEqual(full[TINY].sha, commit_of(tiny)[0])
        self.assertEqual(sorted(s.rfilename for s in full[TINY].siblings),
                         sorted(files_of(tiny)))
        self.assertEqual(list(self.api.list_models(author="nobody-here")), [])
        self.assertEqual([d.id for d in self.api.list_datasets(author="bob")], ["bob/bob-data"])

    def test_whoami_and_auth_check(self):
        me = self.api.whoami(token=STACK.token("alice"))
        self.assertEqual(me["name"], "alice")
        self.assertEqual([o["name"] for o in me["orgs"]], STACK.tokens["users"]["alice"]["orgs"])
        self.assertEqual(me["auth"]["accessToken"]["role"], "read")
        with self.assertRaises(errors.HfHubHTTPError) as cm:
            self.api.whoami(token=STACK.invalid_token)
        self.assertEqual(cm.exception.response.status_code, 401)
        self.api.auth_check(TINY, token=False)
        self.api.auth_check("bigco/gated-model", token=STACK.token("alice"))
        self.api.auth_check("acme/auto-gated", token=STACK.token("bob"))
        self.api.auth_check("alice/private-notes", token=STACK.token("alice"))
        for token, status in ((False, 401), (STACK.token("bob"), 403)):
            with self.assertRaises(errors.GatedRepoError) as cm:
                self.api.auth_check("bigco/gated-model", token=token)
            self.assertEqual(cm.exception.response.status_code, status)
        with self.assertRaises(errors.RepositoryNotFoundError):
            self.api.auth_check("alice/private-notes", token=STACK.token("bob"))

    def test_exists(self):
        self.assertTrue(self.api.repo_exists(TINY))
        self.assertTrue(self.api.repo_exists("bigco/gated-model"))
        self.assertFalse(self.api.repo_exists("acme/no-such-repo"))
        self.assertFalse(self.api.repo_exists("alice/private-notes"))
        self.assertTrue(self.api.revision_exists(TINY, "refs/pr/1"))
        self.assertFalse(self.api.revision_exists(TINY, "no-such-branch"))
        self.assertTrue(self.api.file_exists(TINY, "docs/with space/naïve café.txt"))
        self.assertFalse(self.api.file_exists(TINY, "no-such-file"))


    def test_file_metadata(self):
        repo = repo_of(TINY)
        for rev in ("main", "refs/pr/1"):
            sha, commit = commit_of(repo, rev)
            for path, f in commit["files"].items():
                m = hf.get_hf_file_metadata(hf.hf_hub_url(TINY, path, revision=rev))
                self.assertEqual((m.commit_hash, m.etag, m.size), (sha, etag_of(f), f["size"]),
                                 path)
                if f["lfs"]:  # a signed URL on another origin: the CDN
                    self.assertTrue(m.location.startswith(STACK.cdn + "/"), path)
                self.assertEqual(m.xet_file_data.file_hash if m.xet_file_data else None,
                                 f.get("xetHash"), path)

    def test_hf_file_system(self):
        fs = hf.HfFileSystem()
        repo = repo_of(TINY)
        for rev, prefix in (("main", TINY), ("refs/pr/1", TINY + "@refs%2Fpr%2F1")):
            files = files_of(repo, rev)
            self.assertEqual(sorted(p[len(prefix) + 1:] for p in fs.find(prefix)), sorted(files))
            with open(files["README.md"]["content"], "rb") as want:
                self.assertEqual(fs.cat(prefix + "/README.md"), want.read())
        f = files_of(repo)["model.safetensors"]
        self.assertEqual(fs.info(TINY + "/model.safetensors")["size"], f["size"])
        with fs.open(TINY + "/model.safetensors", "rb") as fh, open(f["content"], "rb") as want:
            fh.seek(123457)
            want.seek(123457)
            self.assertEqual(fh.read(4096), want.read(4096))
        self.assertTrue(fs.isdir(TINY + "/nested/a"))
        self.assertFalse(fs.exists(TINY + "/no-such-file"))


# ---------------------------------------------------------------- downloads

class DownloadTest(Base):
    REVS = ("main", "v1.0", "dev", "refs/pr/1")

    def revisions(self, repo):
        """(label, revision) for a branch, a tag, a commit and a PR."""
        return [(r, r) for r in self.REVS] + [("commit", commit_of(repo, "v1.0")[0])]

    def test_hf_hub_download_into_cache(self):
        repo = repo_of(TINY)
        cache = self.fresh("cache")
        for label, rev in self.revisions(repo):
            for path in non_xet(files_of(repo, rev)):
                got = hf.hf_hub_download(TINY, path, revision=rev, cache_dir=cache)
                self.assertCachedFile(cache, repo, rev, path, got)
        # no token ever reached the CDN; LFS bytes came from it
        self.assertTrue(self.cdn_requests())
        self.assertTrue(all(not e["authorization"] for e in self.cdn_requests()))
        # a commit already cached costs no request
        mark = len(STACK.hub_log())
        sha = commit_of(repo, "v1.0")[0]
        hf.hf_hub_download(TINY, "config.json", revision=sha, cache_dir=cache)
        self.assertEqual(STACK.hub_log()[mark:], [])
        # a dataset and a space
        for rtype, rid, path in (("dataset", "acme/tiny-dataset", "data/train.csv"),
                                 ("space", "acme/demo-space", "app.py")):
            got = hf.hf_hub_download(rid, path, repo_type=rtype, cache_dir=cache)
            self.assertCachedFile(cache, repo_of(rid, rtype), None, path, got)
        got = hf.hf_hub_download("acme/tiny-dataset", "default/train/0000.parquet",
                                 repo_type="dataset", revision="refs/convert/parquet",
                                 cache_dir=cache)
        self.assertCachedFile(cache, repo_of("acme/tiny-dataset", "dataset"),
                              "refs/convert/parquet", "default/train/0000.parquet", got)

    def test_hf_hub_download_into_local_dir(self):
        repo = repo_of(TINY)
        for label, rev in self.revisions(repo):
            local = self.fresh("local-" + label)
            sha, commit = commit_of(repo, rev)
            for path, f in non_xet(commit["files"]).items():
                got = hf.hf_hub_download(TINY, path, revision=rev, local_dir=local)
                self.assertEqual(got, os.path.join(local, path))
                self.assertFalse(os.path.islink(got))
                self.assertEqual(sha256_file(got), f["sha256"], path)
                with open(os.path.join(local, ".cache", "huggingface", "download",
                                       path + ".metadata")) as fh:
                    lines = fh.read().split("\n")
                self.assertEqual(lines[:2], [sha, etag_of(f)], path)

    def check_snapshot(self, folder, files, where):
        got = {}
        for d, _, names in os.walk(folder):
            for n in names:
                p = os.path.join(d, n)
                rel = os.path.relpath(p, folder)
                if not rel.startswith(".cache" + os.sep):
                    got[rel] = sha256_file(p)
        self.assertEqual(got, {p: f["sha256"] for p, f in files.items()}, where)

    def check_tree_cache(self, tree_folder, sha, files):
        with open(os.path.join(tree_folder, "trees", sha + ".json")) as fh:
            doc = json.load(fh)
        self.assertEqual(doc["format_version"], 1)
        want = {}
        for p, f in files.items():
            e = {"size": f["size"], "blob_id": f["oid"]}
            if f["lfs"]:
                e.update(lfs_sha256=f["sha256"], lfs_size=f["size"])
            if f["xet"]:
                e["xet_hash"] = f["xetHash"]
            want[p] = e
        self.assertEqual(doc["files"], want)

    def test_snapshot_download_into_cache_and_local_dir(self):
        repo = repo_of(TINY)
        cache = self.fresh("cache")
        for label, rev in self.revisions(repo):
            sha, commit = commit_of(repo, rev)
            files = non_xet(commit["files"])
            got = hf.snapshot_download(TINY, revision=rev, cache_dir=cache,
                                       ignore_patterns=[XET_FILE])
            folder = os.path.join(cache, "models--acme--tiny-model")
            self.assertEqual(got, os.path.join(folder, "snapshots", sha))
            self.check_snapshot(got, files, label)
            self.check_tree_cache(folder, sha, commit["files"])
            for path, f in files.items():
                self.assertEqual(os.path.realpath(os.path.join(got, path)),
                                 os.path.realpath(os.path.join(folder, "blobs", etag_of(f))))
            local = self.fresh("local-" + label)
            got = hf.snapshot_download(TINY, revision=rev, local_dir=local,
                                       ignore_patterns=[XET_FILE])
            self.assertEqual(got, os.path.realpath(local))
            self.check_snapshot(local, files, label)
            self.check_tree_cache(os.path.join(local, ".cache", "huggingface"), sha,
                                  commit["files"])
        for rtype in ("dataset", "space"):
            for r in plain_repos(rtype):
                for rev in r["refs"]:
                    got = hf.snapshot_download(r["id"], repo_type=rtype, revision=rev,
                                               cache_dir=cache)
                    self.check_snapshot(got, files_of(r, rev), r["id"] + "@" + rev)

    def test_gzip_answers(self):
        """Text files and JSON gzip-encoded, as the Hub's CDN front sends
        them to a client that accepts gzip."""
        STACK.configure(gzip=True, gzip_json=True)
        self.addCleanup(STACK.control, "POST", "/_emu/reset")
        repo = repo_of(TINY)
        sha, commit = commit_of(repo, "refs/pr/1")
        files = non_xet(commit["files"])
        got = hf.snapshot_download(TINY, revision="refs/pr/1", cache_dir=self.fresh("cache"),
                                   ignore_patterns=[XET_FILE])
        self.check_snapshot(got, files, "gzip")
        encoded = [e for e in self.hub_requests()
                   if e["path"].startswith("/api/resolve-cache/") and e["method"] == "GET"]
        sizes = {"/api/resolve-cache/models/%s/%s/%s" % (TINY, sha, p): f["size"]
                 for p, f in files.items() if f["size"] and not f["lfs"]}
        self.assertEqual(len([e for e in encoded if e["bytes"] != sizes.get(
            urllib.parse.unquote(e["path"]), e["bytes"])]), len(sizes))

    def test_try_to_load_from_cache(self):
        repo = repo_of(TINY)
        cache = self.fresh("cache")
        self.assertIsNone(hf.try_to_load_from_cache(TINY, "config.json", cache_dir=cache))
        got = hf.hf_hub_download(TINY, "config.json", cache_dir=cache)
        self.assertEqual(hf.try_to_load_from_cache(TINY, "config.json", cache_dir=cache), got)
        sha = commit_of(repo)[0]
        self.assertEqual(hf.try_to_load_from_cache(TINY, "config.json", revision=sha,
                                                   cache_dir=cache), got)
        self.assertIsNone(hf.try_to_load_from_cache(TINY, "README.md", cache_dir=cache))
        # a missing file is remembered (.no_exist, from X-Repo-Commit on the 404)
        with self.assertRaises(errors.EntryNotFoundError):
            hf.hf_hub_download(TINY, "no-such-file.json", cache_dir=cache)
        self.assertTrue(os.path.exists(os.path.join(
            cache, "models--acme--tiny-model", ".no_exist", sha, "no-such-file.json")))
        self.assertIs(hf.try_to_load_from_cache(TINY, "no-such-file.json", cache_dir=cache),
                      hf.file_download._CACHED_NO_EXIST)

    def test_offline_after_download(self):
        repo = repo_of(TINY)
        cache = self.fresh("cache")
        local = self.fresh("local")
        online = {}
        for rev in ("main", "v1.0", "refs/pr/1"):
            online[rev] = (hf.snapshot_download(TINY, revision=rev, cache_dir=cache,
                                                ignore_patterns=[XET_FILE]),
                           hf.hf_hub_download(TINY, "config.json", revision=rev,
                                              cache_dir=cache))
        hf.snapshot_download("acme/tiny-dataset", repo_type="dataset", local_dir=local)
        script = r"""
import json, sys
from huggingface_hub import constants, hf_hub_download, snapshot_download
from huggingface_hub.errors import LocalEntryNotFoundError
assert constants.HF_HUB_OFFLINE
cache, local, revs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
out = {}
for rev in revs:
    out[rev] = [snapshot_download("acme/tiny-model", revision=rev, cache_dir=cache,
                                  ignore_patterns=["weights/xet-model.bin"]),
                hf_hub_download("acme/tiny-model", "config.json", revision=rev, cache_dir=cache)]
out["local"] = snapshot_download("acme/tiny-dataset", repo_type="dataset", local_dir=local)
try:
    hf_hub_download("acme/tiny-model", "config.json", revision="dev", cache_dir=cache)
    out["dev"] = "found"
except LocalEntryNotFoundError:
    out["dev"] = "LocalEntryNotFoundError"
print(json.dumps(out))
"""
        mark = len(STACK.hub_log())
        r = subprocess.run([sys.executable, "-c", script, cache, local, json.dumps(list(online))],
                           env=client_env(HF_HUB_OFFLINE="1"), capture_output=True,
                           text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout)
        for rev, paths in online.items():
            self.assertEqual(out[rev], list(paths), rev)
        self.assertEqual(out["local"], os.path.realpath(local))
        self.assertEqual(out["dev"], "LocalEntryNotFoundError")
        self.assertEqual(STACK.hub_log()[mark:], [])


# ---------------------------------------------------------------- errors

class ErrorTest(Base):
    def download(self, repo_id, path="config.json", **kw):
        kw.setdefault("cache_dir", self.fresh("cache"))
        return hf.hf_hub_download(repo_id, path, **kw)

    def assertRaisesStatus(self, cls, status, fn, *args, **kw):
        with self.assertRaises(cls) as cm:
            fn(*args, **kw)
        self.assertEqual(cm.exception.response.status_code, status)
        return cm.exception

    def test_repository_not_found(self):
        alice, bob = STACK.token("alice"), STACK.token("bob")
        for fn in (self.download, self.api.model_info):
            # missing, or private and hidden: 401 anonymous, 404 signed in
            self.assertRaisesStatus(errors.RepositoryNotFoundError, 401, fn, "acme/no-such-repo")
            self.assertRaisesStatus(errors.RepositoryNotFoundError, 404, fn,
                                    "acme/no-such-repo", token=alice)
            self.assertRaisesStatus(errors.RepositoryNotFoundError, 401, fn, "alice/private-notes")
            self.assertRaisesStatus(errors.RepositoryNotFoundError, 404, fn,
                                    "alice/private-notes", token=bob)
        self.assertRaisesStatus(errors.RepositoryNotFoundError, 401, self.api.list_repo_files,
                                "acme/no-such-repo")
        self.assertRaisesStatus(errors.RepositoryNotFoundError, 401, hf.snapshot_download,
                                "acme/no-such-repo", cache_dir=self.fresh("cache"))
        self.assertRaisesStatus(errors.RepositoryNotFoundError, 401, self.download,
                                "acme/tiny-dataset", "README.md")  # a dataset asked as a model
        got = self.download("alice/private-notes", "notes.txt", token=alice)
        self.assertEqual(sha256_file(got),
                         files_of(repo_of("alice/private-notes"))["notes.txt"]["sha256"])

    def test_gated(self):
        for repo_id, bob_status in (("bigco/gated-model", 403), ("acme/auto-gated", None)):
            e = self.assertRaisesStatus(errors.GatedRepoError, 401, self.download, repo_id)
            self.assertIsInstance(e, errors.RepositoryNotFoundError)
            if bob_status:
                self.assertRaisesStatus(errors.GatedRepoError, bob_status, self.download,
                                        repo_id, token=STACK.token("bob"))
                self.assertRaisesStatus(errors.GatedRepoError, bob_status,
                                        hf.snapshot_download, repo_id,
                                        token=STACK.token("bob"), cache_dir=self.fresh("c"))
            else:
                self.download(repo_id, token=STACK.token("bob"))
        got = self.download("bigco/gated-model", token=STACK.token("alice"))
        self.assertEqual(sha256_file(got),
                         files_of(repo_of("bigco/gated-model"))["config.json"]["sha256"])

    def test_revision_not_found(self):
        for rev in ("no-such-branch", "refs/pr/99", "0" * 40):
            self.assertRaisesStatus(errors.RevisionNotFoundError, 404, self.download, TINY,
                                    revision=rev)
            self.assertRaisesStatus(errors.RevisionNotFoundError, 404, self.api.model_info, TINY,
                                    revision=rev)
        self.assertRaisesStatus(errors.RevisionNotFoundError, 404, self.api.list_repo_files,
                                TINY, revision="no-such-branch")
        self.assertRaisesStatus(errors.RevisionNotFoundError, 404, hf.snapshot_download,
                                TINY, revision="no-such-branch", cache_dir=self.fresh("c"))

    def test_entry_not_found(self):
        e = self.assertRaisesStatus(errors.EntryNotFoundError, 404, self.download, TINY,
                                    "no/such/file.txt")
        self.assertEqual(e.response.headers["X-Repo-Commit"], commit_of(repo_of(TINY))[0])
        # a file of another revision only
        self.assertRaisesStatus(errors.EntryNotFoundError, 404, self.download, TINY,
                                "dev-only.txt")
        self.assertRaisesStatus(errors.EntryNotFoundError, 404,
                                lambda: list(self.api.list_repo_tree(TINY, path_in_repo="nope")))

    def test_bad_token_is_401(self):
        bad = STACK.invalid_token
        for fn, args in ((self.download, (TINY,)), (self.api.model_info, (TINY,)),
                         (self.api.list_repo_files, (TINY,))):
            e = self.assertRaisesStatus(errors.HfHubHTTPError, 401, fn, *args, token=bad)
            # a bad token, not a missing repo
            self.assertNotIsInstance(e, errors.RepositoryNotFoundError)
            self.assertEqual(e.response.headers["X-Error-Message"],
                             "Invalid credentials in Authorization header")
        e = self.assertRaisesStatus(errors.HfHubHTTPError, 401, hf.snapshot_download, TINY,
                                    token=bad, cache_dir=self.fresh("cache"))
        self.assertNotIsInstance(e, errors.RepositoryNotFoundError)

    def test_disabled(self):
        self.assertRaisesStatus(errors.DisabledRepoError, 403, self.api.model_info,
                                "acme/disabled-model")
        with self.assertRaises(errors.LocalEntryNotFoundError) as cm:
            self.download("acme/disabled-model")
        self.assertIsInstance(cm.exception.__cause__, errors.DisabledRepoError)

    def test_renamed_repo_followed(self):
        new = repo_of("acme/new-name")
        sha, commit = commit_of(new)
        self.assertEqual(self.api.model_info("acme/old-name").id, "acme/new-name")
        self.assertEqual(self.api.model_info("acme/old-name").sha, sha)
        self.assertEqual(sorted(self.api.list_repo_files("acme/old-name")), sorted(commit["files"]))
        cache = self.fresh("cache")
        got = hf.hf_hub_download("acme/old-name", "config.json", cache_dir=cache)
        # kept under the name asked for (hub-api.md 5.3 c)
        self.assertEqual(got, os.path.join(cache, "models--acme--old-name", "snapshots", sha,
                                           "config.json"))
        self.assertEqual(sha256_file(got), commit["files"]["config.json"]["sha256"])
        got = hf.snapshot_download("acme/old-name", cache_dir=cache)
        self.check_files(got, commit["files"])
        got = hf.hf_hub_download("gpt2", "config.json", cache_dir=cache)
        gpt2 = repo_of("openai-community/gpt2")
        self.assertEqual(sha256_file(got), files_of(gpt2)["config.json"]["sha256"])
        self.assertIn("/models--gpt2/snapshots/%s/" % commit_of(gpt2)[0], got)
        redirects = [e for e in self.hub_requests() if e["status"] == 307
                     and e["path"].startswith(("/acme/old-name/", "/gpt2/",
                                               "/api/models/acme/old-name"))]
        self.assertTrue(redirects)

    def check_files(self, folder, files):
        for path, f in files.items():
            self.assertEqual(sha256_file(os.path.join(folder, path)), f["sha256"], path)


# ---------------------------------------------------------------- Xet files

class XetBridgeTest(Base):
    """HF_HUB_DISABLE_XET=1: the client ignores the Xet markers and follows
    the resolve 302 to the CDN, as the Hub's LFS-compatible bridge."""

    def test_bridge_download(self):
        repo = repo_of(TINY)
        f = files_of(repo)[XET_FILE]
        self.assertTrue(f["xet"])
        cache = self.fresh("cache")
        script = ("import sys; from huggingface_hub import constants, hf_hub_download\n"
                  "assert constants.HF_HUB_DISABLE_XET\n"
                  "print(hf_hub_download('acme/tiny-model', sys.argv[2], cache_dir=sys.argv[1]))\n")
        r = subprocess.run([sys.executable, "-c", script, cache, XET_FILE],
                           env=client_env(HF_HUB_DISABLE_XET="1"), capture_output=True,
                           text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertCachedFile(cache, repo, None, XET_FILE, r.stdout.strip())
        served = [e for e in self.cdn_requests() if f["sha256"] in e["uri"]]
        self.assertEqual(sum(e["bytes"] for e in served), f["size"])
        self.assertFalse([e for e in self.hub_requests() if "xet-read-token" in e["path"]])


class XetNativeTest(Base):
    """hf_xet downloads Xet-backed files from the emulator's Xet CAS."""

    def test_xet_download_into_cache(self):
        repo = repo_of(TINY)
        f = files_of(repo)[XET_FILE]
        cache = self.fresh("cache")
        got = hf.hf_hub_download(TINY, XET_FILE, cache_dir=cache)
        self.assertCachedFile(cache, repo, None, XET_FILE, got)
        self.assertTrue([e for e in self.hub_requests() if "xet-read-token" in e["path"]])
        self.assertFalse([e for e in self.cdn_requests() if f["sha256"] in e["uri"]])
        # the cache-wide shared blob store (hub-api.md 8.2): the repo's blob
        # is a relative symlink to <cache>/blobs/<xx>/<xet hash>
        blob = os.path.join(cache, "models--acme--tiny-model", "blobs", f["sha256"])
        shared = os.path.join(cache, "blobs", f["xetHash"][:2], f["xetHash"])
        self.assertTrue(os.path.islink(blob))
        self.assertEqual(os.path.normpath(os.path.join(os.path.dirname(blob),
                                                       os.readlink(blob))), shared)
        self.assertEqual(sha256_file(shared), f["sha256"])
        # a whole snapshot, Xet file included
        sha, commit = commit_of(repo)
        got = hf.snapshot_download(TINY, cache_dir=cache)
        for path, g in commit["files"].items():
            self.assertEqual(sha256_file(os.path.join(got, path)), g["sha256"], path)


if __name__ == "__main__":
    unittest.main(verbosity=2)
