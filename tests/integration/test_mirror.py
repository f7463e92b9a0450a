"""Many machines, one download: hubfs behind contrib/mirror/hubfs-mirror.

The emulator (the Hub), the nginx CDN, the mirror (a second nginx) and
hubfs mounts with their own stores, as separate machines would have them,
all pointed at the mirror.  One mount reads a set of repos, then two more
read the same at once: every byte matches the fixtures, and the CDN sees
nothing of the second and third.  Access stays the Hub's: a mount without
the right token gets EACCES or ENOENT for bytes the mirror holds.
"""
import errno
import hashlib
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import unittest
import urllib.parse

from mountlib import Mount, files_at, hubstack

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "harness"))
import hubmirror  # noqa: E402

# huggingface_hub (with hf_xet installed) downloads one file into its own
# cache folder, as a machine of the fleet would: argv = repo, file; prints
# the path.
HF_CLIENT = r"""
import sys
from huggingface_hub import hf_hub_download
print(hf_hub_download(sys.argv[1], sys.argv[2]))
"""

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "large",
                       "reads.json")
MiB = 1 << 20
SLICE = 1 * MiB  # the mirror's default

# What every "machine" reads: (type, id, path below the mount root).  The
# 48 MiB and 20 MiB LFS files of acme/reads among them, a private repo, a
# xet file, a dataset, regular files.
REPOS = [("model", "acme/reads", ("acme", "reads")),
         ("model", "acme/tiny-model", ("acme", "tiny-model")),
         ("model", "acme/secret-model", ("acme", "secret-model")),
         ("dataset", "acme/tiny-dataset", ("datasets", "acme", "tiny-dataset"))]


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class MirrorTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="hubfs-mirror-")
        os.chmod(cls.tmp, 0o755)  # nginx's workers run as nobody under root
        # Three entries a page: tree listings go through the mirror page by
        # page, so its rewritten Link headers are what the mounts follow.
        cls.stack = hubstack.Stack(os.path.join(cls.tmp, "stack"),
                                   fixtures=[FIXTURE], page_size=3)
        cls.stack.__enter__()
        try:
            cls.mirror = hubmirror.Mirror(cls.stack.endpoint,
                                          os.path.join(cls.tmp, "mirror"))
            cls.mirror.start()
        except BaseException:
            cls.stack.__exit__(None, None, None)
            raise
        cls.n = 0

    @classmethod
    def tearDownClass(cls):
        cls.mirror.stop()
        cls.stack.__exit__(None, None, None)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    # ---- helpers
    def mount(self, user=None):
        """A machine: its own store and HOME, the mirror as its endpoint."""
        type(self).n += 1
        env = {"HF_TOKEN": self.stack.token(user)} if user else {}
        m = Mount(self.tmp, self.mirror.url, name="m%d" % self.n, env=env)
        m.start()
        self.addCleanup(m.stop)
        return m

    def expected(self):
        """{path in the mount: (sha256, size)} for every file of REPOS."""
        out = {}
        for rtype, rid, where in REPOS:
            files, _ = files_at(self.stack.manifest, rtype, rid, "main")
            for path, f in files.items():
                out[os.path.join(*where, path)] = (f["sha256"], f["size"])
        return out

    def read_all(self, m, want):
        """sha256 of every file of want read through mount m."""
        return {p: sha256_of(os.path.join(m.mnt, p)) for p in sorted(want)}

    def http(self, method, path, token=None, **headers):
        u = urllib.parse.urlsplit(self.mirror.url)
        if token:
            headers["Authorization"] = "Bearer " + token
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        try:
            conn.request(method, path, headers=headers)
            r = conn.getresponse()
            return r, r.read()
        finally:
            conn.close()

    def lfs(self, rid, path, rtype="model"):
        files, _ = files_at(self.stack.manifest, rtype, rid, "main")
        return files[path]

    def content(self, f, off=0, size=None):
        with open(f["content"], "rb") as fh:
            fh.seek(off)
            return fh.read(f["size"] if size is None else size)

    def cdn_auth_never_sent(self):
        leaks = [e for e in self.stack.cdn_log() if e.get("auth")]
        self.assertEqual(leaks, [], "Authorization reached the CDN")

    # ---- the fleet
    def test_fleet_fetches_each_slice_once(self):
        want = self.expected()
        sums = {p: s for p, (s, _) in want.items()}
        big = [p for p, (_, size) in want.items() if size >= 20 * MiB]
        self.assertEqual(len(big), 2, big)  # 48 MiB and 20 MiB, LFS

        first = self.mount("alice")
        before = len(self.stack.cdn_log())
        self.assertEqual(self.read_all(first, want), sums)
        weights = self.lfs("acme/reads", "weights.safetensors")
        fetched = sum(e["bytes"] for e in self.stack.cdn_log()[before:]
                      if weights["sha256"] in e["uri"])
        self.assertEqual(fetched, weights["size"])  # from the CDN, once

        b, c = self.mount("alice"), self.mount("carol")
        cdn_mark = len(self.stack.cdn_log())
        hub_mark = self.stack.hub_log()[-1]["seq"]
        got, errors = {}, []
        barrier = threading.Barrier(2)

        def machine(m):
            try:
                barrier.wait()
                got[m.mnt] = self.read_all(m, want)
            except Exception as e:  # noqa: BLE001 -- reported below
                errors.append("%s: %r" % (m.mnt, e))
        threads = [threading.Thread(target=machine, args=(m,)) for m in (b, c)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        self.assertEqual(got[b.mnt], sums)
        self.assertEqual(got[c.mnt], sums)
        self.assertEqual(self.stack.cdn_log()[cdn_mark:], [],
                         "the CDN served the second and third machines")
        # ... while every one of their resolves still went to the Hub,
        # with a token.
        resolves = [e for e in self.stack.hub_log(since=hub_mark)
                    if "/resolve/" in e["path"]]
        self.assertTrue(resolves)
        self.assertTrue(all(e["auth"] for e in resolves), resolves[:3])
        lfs_resolves = {e["path"].rsplit("/", 1)[-1] for e in resolves
                        if e["status"] == 302}
        self.assertIn("weights.safetensors", lfs_resolves)
        # Listings were paged through the mirror (Link rewritten to it).
        self.assertTrue(any("cursor=" in e["uri"] for e in self.mirror.log()))
        # The Xet file among them came through the mirror's cache too: the
        # mirror drops the Xet markers, so no machine asked the CAS.
        self.assertIn(os.path.join("acme", "tiny-model", "weights",
                                   "xet-model.bin"), want)
        self.assertEqual([e["path"] for e in self.stack.hub_log()
                          if e["bucket"] == "cas"], [])
        self.cdn_auth_never_sent()

    # ---- access control stays the Hub's
    def test_no_access_no_cached_bytes(self):
        secret = self.lfs("acme/secret-model", "model.bin")
        gated = self.lfs("bigco/gated-model", "model.safetensors")
        alice = self.stack.token("alice")
        # The mirror holds both (fetched for alice; the second read is a hit).
        for rid, path, f in (("acme/secret-model", "model.bin", secret),
                             ("bigco/gated-model", "model.safetensors", gated)):
            url = "/%s/resolve/main/%s" % (rid, path)
            for _ in range(2):
                r, body = self.http("GET", url, alice)
                self.assertEqual((r.status, body), (200, self.content(f)))
            self.assertEqual(r.getheader("X-Mirror-Cache"), "HIT")
        # Over HTTP: the Hub's verdicts, none of the bytes.
        bob = self.stack.token("bob")
        for token, rid, path, status in (
                (None, "acme/secret-model", "model.bin", 401),
                (bob, "acme/secret-model", "model.bin", 404),
                (None, "bigco/gated-model", "model.safetensors", 401),
                (bob, "bigco/gated-model", "model.safetensors", 403),
                (self.stack.invalid_token, "acme/secret-model", "model.bin", 401)):
            r, body = self.http("GET", "/%s/resolve/main/%s" % (rid, path), token,
                                Range="bytes=0-99")
            self.assertEqual(r.status, status, (rid, token))
            self.assertNotIn(self.content(self.lfs(rid, path), 0, 100), body)
            self.assertIsNone(r.getheader("X-Mirror-Cache"))
        # Through mounts.
        anon = self.mount()
        with self.assertRaises(OSError) as cm:
            with open(anon.path("acme", "secret-model", "model.bin"), "rb") as f:
                f.read()
        self.assertIn(cm.exception.errno, (errno.EACCES, errno.ENOENT))
        with self.assertRaises(OSError) as cm:
            with open(anon.path("alice", "private-notes", "secret.bin"), "rb") as f:
                f.read()
        self.assertIn(cm.exception.errno, (errno.EACCES, errno.ENOENT))
        m_bob = self.mount("bob")
        with self.assertRaises(OSError) as cm:
            with open(m_bob.path("bigco", "gated-model", "model.safetensors"),
                      "rb") as f:
                f.read()
        self.assertEqual(cm.exception.errno, errno.EACCES)
        self.cdn_auth_never_sent()

    # ---- what a client sees on the wire
    def test_http_answers(self):
        f = self.lfs("acme/reads", "other.safetensors")
        url = "/acme/reads/resolve/main/other.safetensors"
        commit = self.stack.repo("acme/reads")["refs"]["main"]
        # A range across a slice boundary, twice (a miss, then a hit).
        a, z = SLICE - 1000, SLICE + 999
        for _ in range(2):
            r, body = self.http("GET", url, Range="bytes=%d-%d" % (a, z))
            self.assertEqual(r.status, 206)
            self.assertEqual(r.getheader("Content-Range"),
                             "bytes %d-%d/%d" % (a, z, f["size"]))
            self.assertEqual(body, self.content(f, a, z - a + 1))
            self.assertEqual(r.getheader("X-Linked-Etag"), '"%s"' % f["sha256"])
            self.assertEqual(r.getheader("ETag"), '"%s"' % f["sha256"])
            self.assertEqual(r.getheader("X-Linked-Size"), str(f["size"]))
            self.assertEqual(r.getheader("X-Repo-Commit"), commit)
            self.assertIsNone(r.getheader("X-Xet-Hash"))
            self.assertEqual(r.getheader("X-Mirror-Slice"), str(SLICE))
        for rng, first in (("bytes=-10", f["size"] - 10),
                           ("bytes=%d-" % (f["size"] - 5), f["size"] - 5)):
            r, body = self.http("GET", url, Range=rng)
            self.assertEqual((r.status, body), (206, self.content(f, first)))
        r, body = self.http("GET", url, Range="bytes=%d-" % f["size"])
        self.assertEqual(r.status, 416)
        self.assertEqual(r.getheader("Content-Range"), "bytes */%d" % f["size"])
        # HEAD = GET without the body: the full size, no redirect.
        r, body = self.http("HEAD", url)
        self.assertEqual((r.status, body), (200, b""))
        self.assertEqual(r.getheader("Content-Length"), str(f["size"]))
        self.assertEqual(r.getheader("X-Linked-Etag"), '"%s"' % f["sha256"])
        # A regular file passes through: the Hub's relative 307, same host.
        r, _ = self.http("GET", "/acme/reads/resolve/main/plain.bin")
        self.assertEqual(r.status, 307)
        self.assertTrue(r.getheader("Location").startswith(
            "/api/resolve-cache/models/acme/reads/%s/plain.bin" % commit))
        plain = self.lfs("acme/reads", "plain.bin")
        r, body = self.http("GET", r.getheader("Location"), Range="bytes=5-14")
        self.assertEqual((r.status, body), (206, self.content(plain, 5, 10)))
        # A renamed repo: the Hub's relative 307, unchanged.
        r, _ = self.http("GET", "/api/models/acme/old-name")
        self.assertEqual((r.status, r.getheader("Location")),
                         (307, "/api/models/acme/new-name"))
        # Pagination: the next page is on the mirror.
        r, _ = self.http("GET", "/api/models/acme/tiny-model/tree/main?recursive=true",
                         self.stack.token("alice"))
        self.assertEqual(r.status, 200)
        self.assertTrue(r.getheader("Link").startswith("<%s/api/models/acme/tiny-model/"
                                                       % self.mirror.url),
                        r.getheader("Link"))
        self.cdn_auth_never_sent()

    def test_cdn_refusal_is_a_retryable_502(self):
        # An expired signed URL (the CDN's 403) is the mirror's failure, not
        # a verdict on the client: 502, nothing cached, the next try works.
        f = self.lfs("openai-community/gpt2", "model.safetensors")
        url = "/openai-community/gpt2/resolve/main/model.safetensors"
        self.stack.fault(kind="expired", target="cdn", count=1)
        try:
            r, body = self.http("GET", url, Range="bytes=0-99")
            self.assertEqual(r.status, 502)
            self.assertNotIn(self.content(f, 0, 100), body)
        finally:
            self.stack.clear_faults()
        r, body = self.http("GET", url, Range="bytes=0-99")
        self.assertEqual((r.status, body), (206, self.content(f, 0, 100)))
        self.assertEqual(r.getheader("X-Mirror-Cache"), "MISS")

    def test_corrupt_slice_is_fetched_again_on_no_cache(self):
        # nginx does not hash what it caches: wrong bytes from the CDN stay
        # until a client asks again with "Cache-Control: no-cache".  The
        # mount asks so itself, for every fetch of a file whose last copy
        # failed its check, until a copy checks out.
        f = self.lfs("acme/new-name", "weights.bin")
        sha = f["sha256"]
        path = ("acme", "new-name", "weights.bin")
        m = self.mount()
        self.stack.fault(kind="wrong_bytes", target="cdn", path=sha,
                         after=100, count=1)
        try:
            mark = len(self.mirror.log())
            with self.assertRaises(OSError) as cm:
                sha256_of(m.path(*path))
            self.assertEqual(cm.exception.errno, errno.EIO)
        finally:
            self.stack.clear_faults()
        first = [e for e in self.mirror.log()[mark:] if e["sha256"] == sha]
        self.assertTrue(first)
        self.assertNotIn("BYPASS", [e["cache"] for e in first])
        # The same machine reads again: its fetch passes the mirror's cache,
        # which takes the CDN's bytes again and keeps them.
        mark = len(self.mirror.log())
        self.assertEqual(sha256_of(m.path(*path)), sha)
        again = [e for e in self.mirror.log()[mark:] if e["sha256"] == sha]
        self.assertTrue(again)
        self.assertEqual({e["cache"] for e in again}, {"BYPASS"}, again)
        # The mirror's copy is right now: another machine reads it from the
        # cache, asking for nothing special.
        mark = len(self.mirror.log())
        self.assertEqual(sha256_of(self.mount().path(*path)), sha)
        other = [e for e in self.mirror.log()[mark:] if e["sha256"] == sha]
        self.assertTrue(other)
        self.assertNotIn("BYPASS", [e["cache"] for e in other])

    # ---- Xet files: the mirror hides the Xet markers, so every client reads
    # them through the bridge, that is through the mirror's cache.
    def test_xet_files_go_through_the_bridge(self):
        f = self.lfs("acme/tiny-model", "weights/xet-model.bin")
        self.assertTrue(f.get("xet"), f)
        url = "/acme/tiny-model/resolve/main/weights/xet-model.bin"
        # The Hub marks it as Xet (else this test would prove nothing) ...
        hub = urllib.parse.urlsplit(self.stack.endpoint)
        conn = http.client.HTTPConnection(hub.hostname, hub.port, timeout=60)
        try:
            conn.request("HEAD", url)
            r = conn.getresponse()
            r.read()
        finally:
            conn.close()
        self.assertEqual(r.status, 302)
        self.assertTrue(r.getheader("X-Xet-Hash"))
        self.assertIn('rel="xet-auth"', r.getheader("Link") or "")
        # ... the mirror does not: the bytes come from it, not from a CAS.
        for method, accept in (("HEAD", None), ("GET", None),
                               ("GET", "application/vnd.xet-fileinfo+json")):
            headers = {"Accept": accept} if accept else {}
            r, body = self.http(method, url, **headers)
            self.assertEqual(r.status, 200, (method, accept))
            self.assertEqual(body, b"" if method == "HEAD" else self.content(f))
            self.assertIsNone(r.getheader("X-Xet-Hash"), (method, accept))
            self.assertNotIn("xet-", r.getheader("Link") or "", (method, accept))
            self.assertEqual(r.getheader("X-Linked-Etag"), '"%s"' % f["sha256"])
        # huggingface_hub + hf_xet on two machines: both download over HTTP
        # from the mirror (no read token, no CAS, no xorb), the CDN serves
        # the second nothing.
        python = hubstack.xet_python()
        if python is None:
            self.skipTest("no test venv with huggingface_hub and hf_xet "
                          "(HUBFS_TEST_PYTHON, .ci/install-venv)")
        hub_mark = self.stack.hub_log()[-1]["seq"]
        cdn = []
        for machine in ("xet-a", "xet-b"):
            cdn_mark = len(self.stack.cdn_log())
            home = os.path.join(self.tmp, machine)
            env = {k: v for k, v in os.environ.items()
                   if not k.startswith(("HF_", "HUGGINGFACE"))}
            env.update({"HF_HOME": home, "HF_ENDPOINT": self.mirror.url,
                        "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
                        "HF_HUB_DISABLE_UPDATE_CHECK": "1"})
            p = subprocess.run([python, "-c", HF_CLIENT, "acme/tiny-model",
                                "weights/xet-model.bin"], env=env, capture_output=True,
                               text=True, timeout=300)
            self.assertEqual(p.returncode, 0, p.stderr[-3000:])
            path = p.stdout.strip().splitlines()[-1]
            self.assertTrue(path.startswith(home), path)
            self.assertEqual(sha256_of(path), f["sha256"])
            cdn.append(self.stack.cdn_log()[cdn_mark:])
        self.assertEqual(cdn[1], [], "the CDN served the second machine")
        self.assertTrue(all(e["uri"].startswith("/blobs/") for e in cdn[0]), cdn[0])
        self.assertLessEqual(sum(e["bytes"] for e in cdn[0]), f["size"])
        hub = self.stack.hub_log(since=hub_mark)
        self.assertEqual([e for e in hub if e["bucket"] == "cas"
                          or "xet-read-token" in e["path"]], [])
        self.assertTrue(any(e["path"].endswith("/weights/xet-model.bin") for e in hub))
        self.cdn_auth_never_sent()


if __name__ == "__main__":
    unittest.main(verbosity=2)
