"""A model update costs hubfs the chunks that changed, not the file again.

tests/fixtures/large/xet-update.json is a 1 GiB Xet file (random weights,
zeros, text, float32s: chunks of every compression scheme) whose revision
2 overwrote 100 regions of 100 KiB in place, spread evenly (about 1 % of
the file).  One mount reads revision 1 whole, then revision 2 whole; both
must hash right, both must come through the CAS (no byte from the resolve
bridge), and revision 2 may fetch at most 3 % of its size from the xorb
CDN: what the edits changed plus the chunk boundaries around them, the rest
copied from the verified revision 1 in the store.  Fetched bytes are the
body bytes of the nginx CDN log's /xorbs/ requests plus /blobs/ ones (the
bridge; asserted none, but counted so a fallback shows in the figure).

Revision 2 is read once the store's index has recorded revision 1
verified (just after the read that ended the file):
an update that arrives later, as they do.  `hubfs status` counts the
xorb bytes too; both counts must stay within the bound.

The same update through the pinned huggingface_hub + hf_xet (defaults,
its own HF_HOME): revision 1, then revision 2 into the same cache.  What
it fetched is printed beside hubfs's figure (hf_xet 1.8 keeps no chunk
cache between downloads, so it fetches about the whole file again).

Under a sanitizer build of the daemon the fixture is xet-update-small.json:
a quarter of the size (256 MiB) with 25 edits of the same 100 KiB, so the
edit density (about 1 %) and the chunks each edit touches are the same and
the 3 % bound means the same thing at a quarter of the bytes.

The whole test runs in a network namespace with only loopback when root
(like tests/python/test_xet.py); the client's children also record every
Python-level connect, and each must have gone to 127.0.0.1.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

from mountlib import HUBFS, Mount, blob_recorded, files_at, hubstack

HERE = os.path.dirname(os.path.abspath(__file__))
LARGE = os.path.join(HERE, "..", "fixtures", "large")
NETNS_MARK = "HUBFS_XET_UPDATE_NETNS"
LIMIT = 0.03            # revision 2 may fetch this share of its size
MiB = 1 << 20


def sanitized_binary(path):
    """Whether the daemon binary runs with a sanitizer runtime."""
    out = subprocess.run(["ldd", path], capture_output=True, text=True).stdout
    return any(lib in out for lib in ("libasan", "libtsan", "libubsan"))


SANITIZED = sanitized_binary(HUBFS)
FIXTURE, REPO = ((os.path.join(LARGE, "xet-update-small.json"), "acme/xet-update-small")
                 if SANITIZED else (os.path.join(LARGE, "xet-update.json"), "acme/xet-update"))

# huggingface_hub downloads (argv[1]: JSON list of hf_hub_download kwargs),
# one JSON line out: the paths and every socket connect.
CLIENT = r"""
import json, sys
connects = []
def audit(event, args):
    if event == "socket.connect":
        addr = args[1]
        connects.append(addr[0] if isinstance(addr, tuple) else str(addr))
sys.addaudithook(audit)
from huggingface_hub import hf_hub_download
paths = [hf_hub_download(**kw) for kw in json.loads(sys.argv[1])]
print(json.dumps({"paths": paths, "connects": connects}))
"""


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(MiB), b""):
            h.update(block)
    return h.hexdigest()


class XetUpdate(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="hubfs-xet-update-")
        os.chmod(cls.tmp, 0o755)
        cls.stack = hubstack.Stack(os.path.join(cls.tmp, "stack"), fixtures=[FIXTURE])
        cls.stack.start()
        if not cls.stack.xet_built:
            cls.stack.stop()
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise unittest.SkipTest("no test venv: the stack could not build Xet objects")
        cls.rev = {r: files_at(cls.stack.manifest, "model", REPO, r)[0]["model.bin"]
                   for r in ("v1", "v2")}

    @classmethod
    def tearDownClass(cls):
        cls.stack.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    # ------------------------------------------------------------ helpers
    def log_mark(self):
        return len(self.stack.cdn_log())

    def quiet_log(self, quiet=1.0, limit=30.0):
        """Wait until the CDN has logged nothing new for `quiet` seconds
        (readahead of the last read has landed); -> the log's length."""
        n, since, deadline = self.log_mark(), time.monotonic(), time.monotonic() + limit
        while time.monotonic() < deadline:
            time.sleep(0.1)
            now = self.log_mark()
            if now != n:
                n, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet:
                break
        return n

    def fetched(self, since):
        """(xorb bytes, bridge bytes, xorb requests) the CDN sent since the mark."""
        xorb = bridge = reqs = 0
        for e in self.stack.cdn_log()[since:]:
            if e["uri"].startswith("/xorbs/"):
                xorb += max(0, int(e["bytes"]))
                reqs += 1
            elif e["uri"].startswith("/blobs/"):
                bridge += max(0, int(e["bytes"]))
        return xorb, bridge, reqs

    def status(self, m):
        """This mount's `hubfs status --json` entry."""
        r = subprocess.run([HUBFS, "status", "--json", "--cache-dir", m.store],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        mounts = json.loads(r.stdout)["mounts"]
        self.assertEqual(len(mounts), 1, mounts)
        return mounts[0]

    def read_hash(self, path):
        t0 = time.monotonic()
        digest = sha256_file(path)
        return digest, time.monotonic() - t0

    def hf_client(self, home, revisions):
        """hf_hub_download of model.bin at each revision in turn into one
        HF_HOME; -> [(path, xorb bytes, bridge bytes)] per revision."""
        python = hubstack.xet_python()
        out = []
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE"))}
        env.update({"HF_HOME": home, "HF_ENDPOINT": self.stack.endpoint,
                    "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
                    "HF_HUB_DISABLE_UPDATE_CHECK": "1"})
        for rev in revisions:
            mark = self.quiet_log()
            r = subprocess.run([python, "-c", CLIENT, json.dumps(
                [{"repo_id": REPO, "filename": "model.bin", "revision": rev}])],
                env=env, capture_output=True, text=True, timeout=600)
            self.assertEqual(r.returncode, 0, r.stderr[-3000:])
            doc = json.loads(r.stdout.strip().splitlines()[-1])
            for host in doc["connects"]:
                self.assertEqual(host, "127.0.0.1", "a connect went elsewhere")
            xorb, bridge, _ = self.fetched(mark)
            out.append((doc["paths"][0], xorb, bridge))
        return out

    # ------------------------------------------------------------ the test
    def test_fixture_has_every_chunk_scheme(self):
        """Both revisions hold chunks of all three schemes (printed)."""
        for rev, f in self.rev.items():
            info = self.stack.control("GET", "/_emu/xet?sha256=" + f["sha256"])
            self.assertEqual(info["built"], {f["sha256"]: f["xetHash"]})
            self.assertEqual(set(info["schemes"]), {"none", "lz4", "bg4-lz4"}, rev)
            print("\n%s %s (%d MiB): chunks by compression scheme %s"
                  % (REPO, rev, f["size"] // MiB, info["schemes"]), file=sys.stderr)

    def test_update_fetches_changed_chunks(self):
        v1, v2 = self.rev["v1"], self.rev["v2"]
        self.assertEqual(v1["size"], v2["size"])
        self.assertNotEqual(v1["sha256"], v2["sha256"])
        owner, name = REPO.split("/")
        m = Mount(self.tmp, self.stack.endpoint, name="update")
        m.start()
        try:
            mark = self.log_mark()
            digest, secs1 = self.read_hash(m.path(owner, name + "@v1", "model.bin"))
            self.assertEqual(digest, v1["sha256"], "revision 1 read wrong")
            self.assertTrue(blob_recorded(m.store, v1["sha256"]),
                            "revision 1 never recorded verified")
            mark2 = self.quiet_log()
            xorb1, bridge1, _ = self.fetched(mark)
            st1 = self.status(m)
            digest, secs2 = self.read_hash(m.path(owner, name + "@v2", "model.bin"))
            self.assertEqual(digest, v2["sha256"], "revision 2 read wrong")
            self.quiet_log()
            st2 = self.status(m)
        finally:
            m.stop()
        xorb2, bridge2, reqs2 = self.fetched(mark2)
        cas = [e for e in self.stack.hub_log() if e["bucket"] == "cas"
               and "/reconstructions/" in e["path"]]
        share = (xorb2 + bridge2) / v2["size"]
        counted = st2["xet_xorb_bytes"] - st1["xet_xorb_bytes"]
        hf = self.hf_client(os.path.join(self.tmp, "hf-home"), ("v1", "v2"))
        self.assertEqual(sha256_file(hf[1][0]), v2["sha256"])
        hf_share = (hf[1][1] + hf[1][2]) / v2["size"]
        print("\n%s (%d MiB): hubfs read revision 1 in %.1f s fetching %d xorb bytes (bridge %d), "
              "then revision 2 in %.1f s fetching %d xorb bytes in %d requests (bridge %d); "
              "hf_xet fetched %d, then %d"
              % (REPO, v2["size"] // MiB, secs1, xorb1, bridge1, secs2, xorb2, reqs2, bridge2,
                 hf[0][1], hf[1][1]), file=sys.stderr)
        print("hubfs status: revision 1 %d xorb bytes, %d reconstructions; revision 2 %d xorb "
              "bytes, %d reconstructions; fallbacks %d"
              % (st1["xet_xorb_bytes"], st1["xet_reconstructions"], counted,
                 st2["xet_reconstructions"] - st1["xet_reconstructions"], st2["xet_fallbacks"]),
              file=sys.stderr)
        print("xet update: hubfs fetched %.2f %% of the file, hf_xet %.2f %%"
              % (100 * share, 100 * hf_share), file=sys.stderr)
        self.assertEqual((hf[0][2], hf[1][2]), (0, 0), "hf_xet went through the resolve bridge")
        self.assertTrue(any(v2["xetHash"] in e["path"] for e in cas),
                        "hubfs asked for no reconstruction of revision 2")
        self.assertEqual((bridge1, bridge2), (0, 0), "a revision came through the resolve bridge")
        self.assertGreater(xorb1, 0)
        self.assertGreater(xorb2, 0, "revision 2's changed chunks must come from the CAS")
        self.assertEqual(st2["xet_fallbacks"], 0, "the mount fell back to the bridge")
        self.assertLessEqual(share, LIMIT, "revision 2 fetched %.2f %% of its size" % (100 * share))
        self.assertLessEqual(counted, LIMIT * v2["size"], "hubfs status counts %d xorb bytes" % counted)


if __name__ == "__main__":
    hubstack.loopback_only(NETNS_MARK)
    unittest.main(verbosity=2)
