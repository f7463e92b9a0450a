"""Xet files through a mount: the CAS by default, the bridge as the fallback.

The stack with tests/fixtures/large/xet.json, whose Xet files hf_xet
uploaded into the emulator's CAS (hubstack.build_xet).  Real programs read
them (cat, sha256sum, cp, dd with skip):

- by default through the CAS: bytes right, the CAS answered
  reconstructions (with the Xet token, never the Hub's), nginx served
  xorb ranges, and not one byte of those files came from the bridge's CDN
  path; `hubfs status` counts the reconstructions;
- with --no-xet (and -o no_xet) through the bridge, and the CAS never
  hears of them;
- a CAS that refuses, or xorb URLs that do, fall back to the bridge with
  the right bytes;
- a flipped byte in a xorb (which nothing in hub/ can see: chunk hashes
  are BLAKE3) never yields a verified blob with wrong content: the read
  that ends the file gets EIO, the store holds nothing verified, and the
  next open fetches the file again through the bridge, right.

Under a sanitizer build of the daemon only the small Xet files are read.
"""
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

from mountlib import HUBFS, Mount, files_at, hubstack

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                       "fixtures", "large", "xet.json")
REPO = "acme/xet-revisions"
MiB = 1 << 20


def sanitized_binary(path):
    """Whether the daemon binary runs with a sanitizer runtime."""
    out = subprocess.run(["ldd", path], capture_output=True,
                         text=True).stdout
    return any(lib in out for lib in ("libasan", "libtsan", "libubsan"))


SANITIZED = sanitized_binary(HUBFS)


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(MiB), b""):
            h.update(block)
    return h.hexdigest()


def run(*cmd, **kw):
    return subprocess.run(list(cmd), capture_output=True, timeout=600, **kw)


class XetTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="hubfs-xet-")
        os.chmod(cls.tmp, 0o755)
        cls.stack = hubstack.Stack(os.path.join(cls.tmp, "stack"),
                                   fixtures=[FIXTURE])
        cls.stack.__enter__()
        if not cls.stack.xet_built:
            cls.stack.__exit__(None, None, None)
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise unittest.SkipTest("no Xet objects: the stack could not "
                                    "run hf_xet (no test venv)")
        cls.files, cls.commit = files_at(cls.stack.manifest, "model", REPO,
                                         "v1")
        cls.n = 0

    @classmethod
    def tearDownClass(cls):
        cls.stack.__exit__(None, None, None)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.stack.clear_faults()
        self.stack.clear_logs()

    def mount(self, *args):
        type(self).n += 1
        m = Mount(self.tmp, self.stack.endpoint, name="m%d" % self.n,
                  args=args)
        m.start()
        self.addCleanup(m.stop)
        return m

    def path(self, m, name):
        return m.path("acme", "xet-revisions@" + self.commit, name)

    def content(self, name, off=0, size=None):
        f = self.files[name]
        with open(f["content"], "rb") as fh:
            fh.seek(off)
            return fh.read(f["size"] - off if size is None else size)

    def names(self):
        """The Xet files to read whole: the small one, and the 256 MiB one
        unless the daemon runs under a sanitizer."""
        return ["small.bin"] if SANITIZED else ["small.bin", "model.bin"]

    # ---- what the servers saw
    def cas_calls(self, what="/reconstructions/"):
        """Requests the CAS got whose path has what."""
        return [e for e in self.stack.hub_log()
                if e["bucket"] == "cas" and what in e["path"]]

    def token_calls(self):
        return [e for e in self.stack.hub_log()
                if "/xet-read-token/" in e["path"]]

    def bridge_bytes(self, name):
        """Bytes of the file the CDN sent on the bridge's path."""
        sha = self.files[name]["sha256"]
        return sum(max(e["bytes"], 0) for e in self.stack.cdn_log()
                   if e["uri"].split("?")[0].endswith("/" + sha))

    def xorb_bytes(self):
        return sum(max(e["bytes"], 0) for e in self.stack.cdn_log()
                   if "/xorbs/" in e["uri"])

    def status(self, m):
        r = run(HUBFS, "status", "--json", "--cache-dir", m.store, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        mounts = json.loads(r.stdout)["mounts"]
        self.assertEqual(len(mounts), 1, mounts)
        return mounts[0]

    def verified(self, m, name, wait=10.0):
        """Whether the store holds the file's blob, complete and verified
        (recorded by the daemon's sync thread, just after the read that
        ended the file: wait up to `wait` seconds for it)."""
        path = os.path.join(m.store, "blobs", self.files[name]["sha256"])
        deadline = time.monotonic() + wait
        while not os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.05)
        return os.path.exists(path)

    def assert_cas_only(self, names):
        """Every byte of names came through the CAS, none from the bridge."""
        recons = self.cas_calls()
        self.assertTrue(recons, "no reconstruction was asked for")
        self.assertTrue(all(e["auth"] for e in recons), recons[:3])
        self.assertTrue(all(e["status"] in (200, 206) for e in recons),
                        [(e["path"], e["status"]) for e in recons])
        self.assertGreater(self.xorb_bytes(), 0)
        for name in names:
            self.assertEqual(self.bridge_bytes(name), 0, name)
        leaks = [e for e in self.stack.cdn_log() if e.get("auth")]
        self.assertEqual(leaks, [], "Authorization reached the CDN")

    # ---- the CAS path, the default
    def test_whole_files_through_the_cas(self):
        m = self.mount()
        names = self.names()
        for name in names:
            p = self.path(m, name)
            r = run("sha256sum", p, text=True)
            self.assertEqual(r.returncode, 0, r.stderr + m.read_log())
            self.assertEqual(r.stdout.split()[0], self.files[name]["sha256"])
            self.assertTrue(self.verified(m, name), name)
        self.assert_cas_only(names)
        self.assertEqual(len(self.token_calls()), 1)
        st = self.status(m)
        self.assertGreater(st["xet_reconstructions"], 0)
        self.assertGreater(st["xet_xorb_bytes"], 0)
        self.assertEqual(st["xet_tokens"], 1)
        self.assertEqual(st["xet_fallbacks"], 0)
        # Read again: from the store, nothing asked of anyone.
        self.stack.clear_logs()
        r = run("cat", self.path(m, "small.bin"))
        self.assertEqual(r.stdout, self.content("small.bin"))
        self.assertEqual(self.cas_calls(), [])
        self.assertEqual(self.stack.cdn_log(), [])
        out = run(HUBFS, "status", "--cache-dir", m.store, text=True).stdout
        self.assertIn("reconstructions", out)

    def test_pieces_through_the_cas(self):
        """cp and dd with skip, each on a cold store."""
        m = self.mount()
        name = "small.bin" if SANITIZED else "model.bin"
        size = self.files[name]["size"]
        dst = os.path.join(self.tmp, "copy-%d" % self.n)
        r = run("cp", self.path(m, "small.bin"), dst)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(dst, "rb") as f:
            self.assertEqual(f.read(), self.content("small.bin"))
        os.unlink(dst)
        # 1 MiB blocks: the first, one in the middle, the last (short).
        for skip in (0, size // MiB // 2, size // MiB):
            r = run("dd", "if=" + self.path(m, name), "bs=1M", "count=1",
                    "skip=%d" % skip, "status=none")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout, self.content(name, skip * MiB,
                                                    min(MiB, size - skip * MiB)),
                             "dd skip=%d" % skip)
        # Odd bytes across a block boundary.
        r = run("dd", "if=" + self.path(m, name), "bs=1000", "count=3",
                "skip=%d" % (MiB // 1000), "status=none")
        self.assertEqual(r.stdout, self.content(name, MiB // 1000 * 1000,
                                                3000))
        self.assert_cas_only([name, "small.bin"])

    # ---- --no-xet: the bridge only
    def test_no_xet_reads_through_the_bridge(self):
        for args in (["--no-xet"], ["-o", "no_xet"]):
            self.stack.clear_logs()
            m = self.mount(*args)
            r = run("cat", self.path(m, "small.bin"))
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout, self.content("small.bin"))
            self.assertEqual(self.cas_calls("/"), [], args)
            self.assertEqual(self.token_calls(), [], args)
            self.assertEqual(self.bridge_bytes("small.bin"),
                             self.files["small.bin"]["size"], args)
            self.assertEqual(self.xorb_bytes(), 0)
            self.assertTrue(self.verified(m, "small.bin"))
            self.assertEqual(self.status(m)["xet_reconstructions"], 0)

    # ---- faults: the bridge takes over
    def fallback(self, **rule):
        self.stack.fault(**rule)
        m = self.mount()
        r = run("cat", self.path(m, "small.bin"))
        self.assertEqual(r.returncode, 0, r.stderr.decode() + m.read_log())
        self.assertEqual(r.stdout, self.content("small.bin"))
        self.assertTrue(self.verified(m, "small.bin"))
        self.assertGreater(self.bridge_bytes("small.bin"), 0)
        self.assertGreater(self.status(m)["xet_fallbacks"], 0)
        log = m.read_log()
        self.assertIn("reading it through the resolve bridge", log)
        self.assertEqual(log.count("reading through the Xet CAS failed"), 1,
                         log)
        self.assertNotIn(self.stack.token("alice"), log)
        return m

    def test_cas_refusal_falls_back_to_the_bridge(self):
        self.fallback(target="cas", path="/reconstructions/", kind="status",
                      status=403)
        self.assertTrue(self.cas_calls())

    def test_expired_xorb_urls_fall_back_to_the_bridge(self):
        self.fallback(target="cdn", path="^/xorbs/", kind="expired")
        self.assertTrue(any("/xorbs/" in e["uri"] and e["status"] == 403
                            for e in self.stack.cdn_log()))

    def test_malformed_reconstruction_falls_back_to_the_bridge(self):
        self.fallback(target="cas", path="/reconstructions/",
                      kind="truncated_json", count=8)

    def test_flipped_xorb_byte_is_never_verified(self):
        """Random bytes are stored chunks: a flipped byte decodes fine, so
        only the file's sha256 can catch it: the read that ends the file
        gets EIO, nothing is recorded verified, and the next open reads
        the file through the bridge."""
        m = self.mount()
        self.stack.fault(target="cdn", path="^/xorbs/", kind="wrong_bytes",
                         after=1000, length=1, count=1)
        p = self.path(m, "small.bin")
        first = run("cat", p)
        print("\nflipped xorb byte: first read %s" % (
            "right bytes" if first.returncode == 0 else "EIO"))
        self.assertTrue(self.stack.control("GET", "/_emu/faults")[0]["hits"],
                        "the fault never fired")
        if first.returncode == 0:
            # The bad range did not decode (a compressed chunk): the reader
            # fetched it again.  Right bytes, or nothing.
            self.assertEqual(first.stdout, self.content("small.bin"))
        else:
            self.assertIn(b"Input/output error", first.stderr)
            self.assertFalse(self.verified(m, "small.bin", wait=0))
            self.assertIn("does not match its hash", m.read_log())
        # The next open fetches it again, through the bridge, past caches.
        self.stack.clear_logs()
        again = run("cat", p)
        self.assertEqual(again.returncode, 0, again.stderr.decode() + m.read_log())
        self.assertEqual(again.stdout, self.content("small.bin"))
        self.assertTrue(self.verified(m, "small.bin"))
        if first.returncode != 0:
            self.assertGreater(self.bridge_bytes("small.bin"), 0)
        with open(os.path.join(m.store, "blobs",
                               self.files["small.bin"]["sha256"]), "rb") as f:
            self.assertEqual(hashlib.sha256(f.read()).hexdigest(),
                             self.files["small.bin"]["sha256"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
