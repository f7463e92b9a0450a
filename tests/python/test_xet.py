#!/usr/bin/env python3
"""test_xet.py -- the pinned huggingface_hub + hf_xet download Xet files from the emulator.

Run with the test venv's python (ctest passes it; by hand:
    $(.ci/install-venv --path)/bin/python tests/python/test_xet.py [-v]).

Unmodified huggingface_hub and hf_xet, pointed at the emulator with
HF_ENDPOINT, fetch the Xet fixtures (tests/fixtures/hub.json's xet file and
tests/fixtures/large/xet.json: a 256 MiB file in three revisions that share
most chunks, and a copy of revision 1 in another repo) through the CAS the
read token names and the signed xorb ranges nginx serves.  Checked: bytes,
the cache layout huggingface_hub 2.4.0's source describes (shared blob store
`<cache>/blobs/<2 hex>/<xet hash>`, linked from `models--.../blobs/<sha256>`
by a relative symlink; off with HF_HUB_DISABLE_SHARED_BLOBS=1), that
revision 2 needs from the CDN only the xorbs revision 1 lacked beyond what
they share, the CAS's answers to bad tokens and ranges, and the client
through CAS and xorb faults.

Each client run is a child process with its own HF_HOME (huggingface_hub
reads its settings at import).  The whole test runs in a network namespace
that has only loopback (when root and unshare(1) allow it), so nothing can
reach anything but 127.0.0.1; the children also record every Python-level
connect and the test checks each went to 127.0.0.1.
"""

import hashlib
import http.client
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "tests", "harness"))
import hubstack  # noqa: E402

FIXTURE = os.path.join(ROOT, "tests", "fixtures", "large", "xet.json")
NETNS_MARK = "HUBFS_XET_TEST_NETNS"
# hf_xet waits 3 s before its first retry, doubling; the fault tests wait less.
FAST_RETRY = {"HF_XET_CLIENT_RETRY_BASE_DELAY": "100ms"}

# A client run: the operations in argv[1] (JSON), results as JSON on stdout.
CLIENT = r"""
import json, os, sys
connects = []
def audit(event, args):
    if event == "socket.connect":
        addr = args[1]
        connects.append(addr[0] if isinstance(addr, tuple) else str(addr))
sys.addaudithook(audit)
import huggingface_hub as hh
out = []
for op in json.loads(sys.argv[1]):
    kind = op.pop("op")
    try:
        out.append({"path": getattr(hh, kind)(**op)})
    except Exception as e:
        out.append({"error": "%s: %s" % (type(e).__name__, e)})
print(json.dumps({"results": out, "connects": connects}))
"""


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def folder(repo_type, repo_id):
    return "%ss--%s" % (repo_type, repo_id.replace("/", "--"))


class XetDownloads(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.stack = hubstack.Stack(fixtures=[FIXTURE]).start()
        if not cls.stack.xet_built:
            cls.stack.stop()
            raise unittest.SkipTest("no test venv: the stack could not build Xet objects")
        cls.tmp = tempfile.mkdtemp(prefix="hubfs-xet-test-")

    @classmethod
    def tearDownClass(cls):
        cls.stack.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.stack.clear_faults()
        self.stack.control("POST", "/_emu/reset")
        self.home = tempfile.mkdtemp(dir=self.tmp)

    # ------------------------------------------------------------ helpers
    def client(self, ops, shared=True, fail=False, **env_extra):
        """Run huggingface_hub in a child with its own HF_HOME; -> its results
        (paths; error texts when `fail`, which expects every op to fail)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE"))}
        env.update({"HF_HOME": self.home, "HF_ENDPOINT": self.stack.endpoint,
                    "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
                    "HF_HUB_DISABLE_UPDATE_CHECK": "1"}, **env_extra)
        if not shared:
            env["HF_HUB_DISABLE_SHARED_BLOBS"] = "1"
        r = subprocess.run([sys.executable, "-c", CLIENT, json.dumps(ops)], env=env,
                           capture_output=True, text=True, timeout=600)
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        doc = json.loads(r.stdout.strip().splitlines()[-1])
        for host in doc["connects"]:
            self.assertEqual(host, "127.0.0.1", "a connect went elsewhere")
        for res in doc["results"]:
            self.assertEqual("error" in res, fail, res.get("error") or r.stderr[-3000:])
        return [res.get("error" if fail else "path") for res in doc["results"]]

    def hub_cache(self, home=None):
        return os.path.join(home or self.home, "hub")

    def files(self, repo_id, rev, rtype="model"):
        repo = self.stack.repo(repo_id, rtype)
        return repo["commits"][repo["refs"].get(rev, rev)]["files"]

    def commit(self, repo_id, rev, rtype="model"):
        return self.stack.repo(repo_id, rtype)["refs"][rev]

    def xorb_gets(self):
        return [e for e in self.stack.cdn_log() if e["uri"].startswith("/xorbs/")]

    def cas_log(self):
        return [e for e in self.stack.hub_log() if e["bucket"] == "cas"]

    def check_shared_layout(self, home, rtype, repo_id, commit, path, f):
        """The layout huggingface_hub 2.4.0 writes for a Xet download with
        shared blobs on (utils/_shared_blobs.py, file_download.py)."""
        cache = self.hub_cache(home)
        repo_dir = os.path.join(cache, folder(rtype, repo_id))
        pointer = os.path.join(repo_dir, "snapshots", commit, path)
        self.assertTrue(os.path.islink(pointer))
        self.assertFalse(os.path.isabs(os.readlink(pointer)))
        blob = os.path.join(repo_dir, "blobs", f["sha256"])
        self.assertEqual(os.path.realpath(pointer), os.path.realpath(blob))
        self.assertTrue(os.path.islink(blob), "the repo blob links into the shared store")
        store = os.path.join(cache, "blobs", f["xetHash"][:2], f["xetHash"])
        self.assertEqual(os.readlink(blob), os.path.relpath(store, os.path.dirname(blob)))
        st = os.lstat(store)
        self.assertTrue(stat.S_ISREG(st.st_mode))
        self.assertEqual(st.st_size, f["size"])
        self.assertEqual(stat.S_IMODE(st.st_mode) & 0o222, 0, "shared blobs are read-only")
        with open(os.path.join(cache, "blobs", ".huggingface-shared-blobs")) as m:
            self.assertEqual(m.read(), "1\n")
        with open(store + ".refs") as refs:
            self.assertIn("%s/blobs/%s" % (folder(rtype, repo_id), f["sha256"]), refs.read().split("\n"))
        self.assertEqual(sha256_file(pointer), f["sha256"])
        return store

    def cas_get(self, path, token=None, rng=None):
        url = urllib.parse.urlsplit(self.stack.cas)
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
        headers = {"Authorization": "Bearer %s" % token} if token else {}
        if rng:
            headers["Range"] = rng
        try:
            conn.request("GET", path, headers=headers)
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()

    def hub_head(self, path, headers):
        url = urllib.parse.urlsplit(self.stack.endpoint)
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
        try:
            conn.request("HEAD", path, headers=headers)
            r = conn.getresponse()
            r.read()
            return r
        finally:
            conn.close()

    def read_token(self, repo_id, rtype="model", user=None):
        url = urllib.parse.urlsplit(self.stack.endpoint)
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
        headers = {"Authorization": "Bearer %s" % self.stack.token(user)} if user else {}
        try:
            conn.request("GET", "/api/%ss/%s/xet-read-token/main" % (rtype, repo_id), headers=headers)
            r = conn.getresponse()
            body = r.read()
            return r.status, (json.loads(body) if r.status == 200 else body), dict(r.getheaders())
        finally:
            conn.close()

    # ------------------------------------------------------------ tests
    def test_hf_hub_download_shared_blobs(self):
        """hf_hub_download through the CAS: bytes, the shared blob store."""
        tiny = self.files("acme/tiny-model", "main")["weights/xet-model.bin"]
        big = self.files("acme/xet-revisions", "main")
        self.stack.clear_logs()
        paths = self.client([
            {"op": "hf_hub_download", "repo_id": "acme/tiny-model", "filename": "weights/xet-model.bin"},
            {"op": "hf_hub_download", "repo_id": "acme/xet-revisions", "filename": "model.bin"},
            {"op": "hf_hub_download", "repo_id": "acme/xet-revisions", "filename": "small.bin"}])
        self.check_shared_layout(self.home, "model", "acme/tiny-model",
                                 self.commit("acme/tiny-model", "main"), "weights/xet-model.bin", tiny)
        for name in ("model.bin", "small.bin"):
            self.check_shared_layout(self.home, "model", "acme/xet-revisions",
                                     self.commit("acme/xet-revisions", "main"), name, big[name])
        self.assertEqual(paths[1], os.path.join(self.hub_cache(), folder("model", "acme/xet-revisions"),
                                                "snapshots", self.commit("acme/xet-revisions", "main"),
                                                "model.bin"))
        cas = self.cas_log()
        for f in (tiny, big["model.bin"], big["small.bin"]):
            self.assertTrue(any(f["xetHash"] in e["path"] and e["status"] == 200 for e in cas),
                            "no reconstruction query for %s" % f["xetHash"])
        gets = self.xorb_gets()
        self.assertTrue(gets)
        for e in gets:
            self.assertEqual((e["status"], e["auth"]), (206, 0), e)
            self.assertTrue(e["range"].startswith("bytes="), e)
        bridge = [e for e in self.stack.cdn_log() if e["uri"].startswith("/blobs/")]
        self.assertEqual(bridge, [], "Xet files must not come through the LFS bridge")

    def test_fixture_objects(self):
        """The built xorbs hold chunks of every compression scheme (random
        bytes: none, text: LZ4, float32s: byte grouping + LZ4), and every xet
        file of the fixtures got real objects."""
        info = self.stack.control("GET", "/_emu/xet")
        self.assertEqual(info["pending"], [])
        self.assertEqual(set(info["schemes"]), {"none", "lz4", "bg4-lz4"})
        for repo in self.stack.manifest["repos"]:
            for commit in repo["commits"].values():
                for path, f in commit["files"].items():
                    if f["xet"]:
                        self.assertTrue(f["xetBuilt"], "%s %s" % (repo["id"], path))
                        self.assertEqual(info["built"][f["sha256"]], f["xetHash"])
        print("\nxet chunks by compression scheme: %s" % info["schemes"], file=sys.stderr)

    def xetblob(self, specs):
        """Read Xet files and slices of them with the npm client's XetBlob
        (tests/js/xetblob.mjs); every read must match the fixture bytes."""
        node, modules = shutil.which("node"), os.path.join(ROOT, "tests", "js", "node_modules", "@huggingface", "hub")
        if not node or not os.path.isdir(modules):
            self.skipTest("no node or npm client (tests/js/run.sh --install)")
        mib = 1 << 20
        jobs = []
        for repo_id, path, rev in specs:
            f = self.files(repo_id, rev)[path]
            size = f["size"]
            slices = [[1, 1000], [size - 777, size], [size // 3, size // 3 + 4097]]
            if size > 256 * mib - 1:
                slices += [[97 * mib - 1000, 97 * mib + 5000], [120 * mib, 121 * mib + 3],
                           [200 * mib + 3, 202 * mib + 1], [10 * mib - 5, 11 * mib + 5]]
            jobs.append({"repo": repo_id, "type": "model", "commit": self.commit(repo_id, rev),
                         "hash": f["xetHash"], "size": size, "content": f["content"], "slices": slices})
        jobs_path = os.path.join(self.home, "jobs.json")
        with open(jobs_path, "w") as out:
            json.dump(jobs, out)
        r = subprocess.run([node, os.path.join(ROOT, "tests", "js", "xetblob.mjs"), self.stack.endpoint, jobs_path],
                           cwd=os.path.join(ROOT, "tests", "js"), capture_output=True, text=True, timeout=600)
        lines = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
        self.assertEqual(len(lines), sum(len(j["slices"]) + 1 for j in jobs), r.stdout + r.stderr[-3000:])
        for line in lines:
            self.assertTrue(line["ok"], line)
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])

    def test_js_xetblob(self):
        """A second, independent reader: the npm client's XetBlob (v2
        reconstructions, LZ4 and byte grouping in JavaScript) reads whole
        files and slices across every kind of part."""
        self.stack.clear_logs()
        self.xetblob([("acme/tiny-model", "weights/xet-model.bin", "main"),
                      ("acme/xet-revisions", "model.bin", "v2"), ("acme/xet-revisions", "small.bin", "main")])
        self.assertTrue(any(e["path"].startswith("/v2/reconstructions/") for e in self.cas_log()))

    def test_multirange(self):
        """xet_multirange: one v2 URL for all of a xorb's ranges.  hf_xet 1.8
        fetches them one by one, XetBlob as one multi-range request
        (multipart/byteranges), from nginx and from the fault CDN."""
        v2 = self.files("acme/xet-revisions", "v2")["model.bin"]
        self.stack.configure(xet_multirange=True)
        self.stack.clear_logs()
        self.client([{"op": "hf_hub_download", "repo_id": "acme/xet-revisions", "filename": "model.bin",
                      "revision": "v2"}])
        self.check_shared_layout(self.home, "model", "acme/xet-revisions", self.commit("acme/xet-revisions", "v2"),
                                 "model.bin", v2)
        self.assertTrue(all(e["status"] == 206 for e in self.xorb_gets()))
        for fault_cdn in (False, True):
            if fault_cdn:           # a harmless rule: xorb URLs point at the fault CDN meanwhile
                self.stack.fault(target="cdn", kind="stall", after=0, seconds=0.01, path="^/nothing/")
            self.stack.clear_logs()
            self.xetblob([("acme/xet-revisions", "model.bin", "v2")])
            multi = [e for e in self.xorb_gets() if "," in e["range"]]
            self.assertTrue(multi, "XetBlob asked for several ranges at once")
            self.assertEqual({e["server"] for e in multi}, {"fault-cdn" if fault_cdn else "nginx"})
            self.assertTrue(all(e["status"] == 206 for e in multi))

    def test_shared_blobs_disabled(self):
        """HF_HUB_DISABLE_SHARED_BLOBS=1: the per-repo layout, no store."""
        f = self.files("acme/xet-revisions", "main")["small.bin"]
        self.client([{"op": "hf_hub_download", "repo_id": "acme/xet-revisions", "filename": "small.bin"}],
                    shared=False)
        blob = os.path.join(self.hub_cache(), folder("model", "acme/xet-revisions"), "blobs", f["sha256"])
        self.assertTrue(stat.S_ISREG(os.lstat(blob).st_mode))
        self.assertEqual(sha256_file(blob), f["sha256"])
        self.assertFalse(os.path.exists(os.path.join(self.hub_cache(), "blobs")))

    def test_snapshot_download_and_cross_repo_reuse(self):
        """snapshot_download at a tag and at main; then another repo's copy of
        a file comes from the shared store with no Xet traffic at all."""
        paths = self.client([
            {"op": "snapshot_download", "repo_id": "acme/xet-revisions", "revision": "v1"},
            {"op": "snapshot_download", "repo_id": "acme/xet-revisions"}])
        for rev, snap in zip(("v1", "main"), paths):
            self.assertEqual(os.path.basename(snap), self.commit("acme/xet-revisions", rev))
            for name, f in self.files("acme/xet-revisions", rev).items():
                self.assertEqual(sha256_file(os.path.join(snap, name)), f["sha256"], name)
                if f["xet"]:
                    self.check_shared_layout(self.home, "model", "acme/xet-revisions",
                                             os.path.basename(snap), name, f)
        with open(os.path.join(self.hub_cache(), folder("model", "acme/xet-revisions"), "refs", "v1")) as r:
            self.assertEqual(r.read(), self.commit("acme/xet-revisions", "v1"))
        self.stack.clear_logs()
        copy = self.files("acme/xet-copy", "main", "dataset")["data/model.bin"]
        self.client([{"op": "hf_hub_download", "repo_id": "acme/xet-copy", "repo_type": "dataset",
                      "filename": "data/model.bin"}])
        store = self.check_shared_layout(self.home, "dataset", "acme/xet-copy",
                                         self.commit("acme/xet-copy", "main", "dataset"),
                                         "data/model.bin", copy)
        v1 = self.files("acme/xet-revisions", "v1")["model.bin"]
        self.assertEqual(copy["xetHash"], v1["xetHash"])
        self.assertEqual(store, os.path.join(self.hub_cache(), "blobs", v1["xetHash"][:2], v1["xetHash"]))
        self.assertEqual(self.cas_log(), [], "the shared store had it: no CAS request")
        self.assertEqual(self.xorb_gets(), [], "the shared store had it: no xorb bytes")

    def test_revision_2_after_revision_1(self):
        """Revision 2 shares all but a few regions with revision 1: its
        reconstruction names revision 1's xorbs for all of it but the new
        xorb ranges, and those are all hf_xet fetches beyond what revision 1
        fetched.  hf_xet 1.8 keeps no chunk cache between downloads (its
        chunk_cache.size_bytes is 0 and setting it changes nothing), so it
        fetches the shared ranges again; a client with a cache (hubfs) would
        need only the new ones.  Prints both figures."""
        v2 = self.files("acme/xet-revisions", "v2")["model.bin"]
        self.stack.clear_logs()
        self.client([{"op": "hf_hub_download", "repo_id": "acme/xet-revisions", "filename": "model.bin",
                      "revision": "v1"}])
        first = self.xorb_gets()
        self.stack.clear_logs()
        self.client([{"op": "hf_hub_download", "repo_id": "acme/xet-revisions", "filename": "model.bin",
                      "revision": "v2"}])
        second = self.xorb_gets()
        pointer = os.path.join(self.hub_cache(), folder("model", "acme/xet-revisions"), "snapshots",
                               self.commit("acme/xet-revisions", "v2"), "model.bin")
        self.assertEqual(sha256_file(pointer), v2["sha256"])
        token = self.read_token("acme/xet-revisions")[1]["accessToken"]
        xorbs = {}
        for rev in ("v1", "v2"):
            f = self.files("acme/xet-revisions", rev)["model.bin"]
            status, body = self.cas_get("/v1/reconstructions/" + f["xetHash"], token)
            self.assertEqual(status, 200)
            xorbs[rev] = {t["hash"] for t in json.loads(body)["terms"]}
        lacked = xorbs["v2"] - xorbs["v1"]
        self.assertTrue(lacked, "revision 2 has new bytes")
        fetched_v1 = {e["uri"].rsplit("/", 1)[1] for e in first}
        self.assertEqual(fetched_v1, xorbs["v1"])
        new = [e for e in second if e["uri"].rsplit("/", 1)[1] not in fetched_v1]
        self.assertEqual({e["uri"].rsplit("/", 1)[1] for e in new}, lacked)
        new_bytes = sum(e["bytes"] for e in new)
        self.assertLess(new_bytes, v2["size"] // 20, "revision 2 must share most xorb bytes with revision 1")
        print("\nxet revisions: revision 1 fetched %d xorb bytes; revision 2 then %d, of which %d from "
              "the %d xorb(s) revision 1 lacked (file size %d)"
              % (sum(e["bytes"] for e in first), sum(e["bytes"] for e in second), new_bytes, len(lacked),
                 v2["size"]), file=sys.stderr)

    def test_cas_protocol(self):
        """Read token (JSON and X-Xet-* headers), reconstruction v1/v2 with
        Range, tokens checked, and the signed xorb URL is good for its range only."""
        f = self.files("acme/xet-revisions", "main")["model.bin"]
        status, tok, headers = self.read_token("acme/xet-revisions")
        self.assertEqual(status, 200)
        self.assertEqual(tok["casUrl"], self.stack.cas)
        self.assertEqual(headers["X-Xet-Access-Token"], tok["accessToken"])
        self.assertEqual(headers["X-Xet-Cas-Url"], tok["casUrl"])
        self.assertEqual(int(headers["X-Xet-Token-Expiration"]), tok["exp"])
        token = tok["accessToken"]
        status, body = self.cas_get("/v1/reconstructions/" + f["xetHash"], token)
        self.assertEqual(status, 200)
        whole = json.loads(body)
        self.assertEqual(whole["offset_into_first_range"], 0)
        self.assertEqual(sum(t["unpacked_length"] for t in whole["terms"]), f["size"])
        for t in whole["terms"]:
            self.assertTrue(any(fi["range"]["start"] <= t["range"]["start"] and
                                t["range"]["end"] <= fi["range"]["end"] for fi in whole["fetch_info"][t["hash"]]))
        status, body = self.cas_get("/v1/reconstructions/" + f["xetHash"], token, "bytes=1000000-1999999")
        part = json.loads(body)
        self.assertEqual(status, 200)
        self.assertGreater(part["offset_into_first_range"], 0)
        self.assertGreaterEqual(sum(t["unpacked_length"] for t in part["terms"]) - part["offset_into_first_range"],
                                1000000)
        status, body = self.cas_get("/v2/reconstructions/" + f["xetHash"], token, "bytes=1000000-1999999")
        v2 = json.loads(body)
        self.assertEqual((v2["offset_into_first_range"], v2["terms"]), (part["offset_into_first_range"], part["terms"]))
        fi = next(iter(part["fetch_info"].values()))[0]
        rng = "bytes=%d-%d" % (fi["url_range"]["start"], fi["url_range"]["end"])
        for headers, want in (({"Range": rng}, 206), ({}, 403),
                              ({"Range": "bytes=0-%d" % fi["url_range"]["end"]}, 403 if fi["url_range"]["start"] else 206),
                              ({"Range": rng, "Authorization": "Bearer x"}, 403)):
            u = urllib.parse.urlsplit(fi["url"])
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
            conn.request("GET", u.path + "?" + u.query, headers=headers)
            r = conn.getresponse()
            data = r.read()
            conn.close()
            self.assertEqual(r.status, want, headers)
            if want == 206 and headers.get("Range") == rng:
                self.assertEqual(len(data), fi["url_range"]["end"] - fi["url_range"]["start"] + 1)
        self.assertEqual(self.cas_get("/v1/reconstructions/" + f["xetHash"], token,
                                      "bytes=%d-" % f["size"])[0], 416)
        self.assertEqual(self.cas_get("/v1/reconstructions/" + f["xetHash"])[0], 401)
        self.assertEqual(self.cas_get("/v1/reconstructions/" + f["xetHash"], "xet_unknown")[0], 401)
        self.assertEqual(self.cas_get("/v1/reconstructions/" + "0" * 64, token)[0], 404)
        tiny = self.files("acme/tiny-model", "main")["weights/xet-model.bin"]
        self.assertEqual(self.cas_get("/v1/reconstructions/" + tiny["xetHash"], token)[0], 404,
                         "a token is good for its own repo's files only")
        self.stack.configure(xet_token_ttl=-5)
        expired = self.read_token("acme/xet-revisions")[1]["accessToken"]
        self.assertEqual(self.cas_get("/v1/reconstructions/" + f["xetHash"], expired)[0], 401)
        r = self.hub_head("/acme/xet-revisions/resolve/main/model.bin",
                          {"Accept": "application/vnd.xet-fileinfo+json, */*"})
        self.assertEqual((r.status, r.getheader("X-Xet-Hash")), (302, f["xetHash"]))
        self.assertIn('<%s/v1/reconstructions/%s>; rel="xet-reconstruction-info"' % (self.stack.cas, f["xetHash"]),
                      r.getheader("Link"))
        self.assertNotIn("xet-reconstruction-info", self.hub_head("/acme/xet-revisions/resolve/main/model.bin",
                                                                  {}).getheader("Link"))
        self.assertEqual(self.read_token("bigco/gated-model")[0], 401)
        self.assertEqual(self.read_token("alice/private-notes")[0], 401)
        self.assertEqual(self.read_token("alice/private-notes", user="bob")[0], 404)

    def test_client_through_faults(self):
        """hf_xet gets the file despite a CAS 503 and 429, and a cut, an
        expired and a short xorb range."""
        f = self.files("acme/xet-revisions", "main")["small.bin"]
        self.stack.fault(target="cas", kind="status", status=503, path="/reconstructions/", count=1)
        self.stack.fault(target="cas", kind="rate_limit", t=1, path="/reconstructions/", count=1)
        self.stack.fault(target="cdn", kind="reset", after=1000, path="^/xorbs/", count=1)
        self.stack.fault(target="cdn", kind="expired", path="^/xorbs/", count=1)
        self.stack.fault(target="cdn", kind="short_range", path="^/xorbs/", count=1)
        self.stack.clear_logs()
        self.client([{"op": "hf_hub_download", "repo_id": "acme/xet-revisions", "filename": "small.bin"}],
                    **FAST_RETRY)
        blob = os.path.join(self.hub_cache(), "blobs", f["xetHash"][:2], f["xetHash"])
        self.assertEqual(sha256_file(blob), f["sha256"])
        faults = [e["fault"] for e in self.stack.hub_log() if e["fault"]]
        self.assertEqual(sorted(faults), ["rate_limit", "status"])
        cdn_faults = sorted(e.get("fault") for e in self.stack.cdn_log() if e.get("fault"))
        self.assertEqual(cdn_faults, ["expired", "reset", "short_range"])

    def test_client_falls_back_to_v1(self):
        """With /v2/reconstructions answering 404, hf_xet uses /v1."""
        f = self.files("acme/tiny-model", "main")["weights/xet-model.bin"]
        self.stack.configure(xet_reconstruction="v1")
        self.stack.clear_logs()
        self.client([{"op": "hf_hub_download", "repo_id": "acme/tiny-model", "filename": "weights/xet-model.bin"}])
        self.check_shared_layout(self.home, "model", "acme/tiny-model", self.commit("acme/tiny-model", "main"),
                                 "weights/xet-model.bin", f)
        calls = [(e["path"].split("/")[1], e["status"]) for e in self.cas_log() if "/reconstructions/" in e["path"]]
        self.assertEqual(calls[:2], [("v2", 404), ("v1", 200)])

    def test_client_rejects_malformed_reconstruction(self):
        """A reconstruction that is not JSON fails the download cleanly
        (no file in the cache), the next attempt succeeds."""
        f = self.files("acme/tiny-model", "main")["weights/xet-model.bin"]
        self.stack.fault(target="cas", kind="malformed_json", path="/reconstructions/")
        op = [{"op": "hf_hub_download", "repo_id": "acme/tiny-model", "filename": "weights/xet-model.bin"}]
        print("\nmalformed reconstruction: %s" % self.client(op, fail=True, **FAST_RETRY)[0][:300],
              file=sys.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.hub_cache(), "blobs", f["xetHash"][:2], f["xetHash"])))
        self.stack.clear_faults()
        self.client(op)
        self.check_shared_layout(self.home, "model", "acme/tiny-model", self.commit("acme/tiny-model", "main"),
                                 "weights/xet-model.bin", f)


if __name__ == "__main__":
    hubstack.loopback_only(NETNS_MARK)
    unittest.main(verbosity=2)
