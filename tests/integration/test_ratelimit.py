"""A Hub that mixes faults the way a busy Hub behind proxies does, against
the real daemon (issue: a short 429 froze every resolve for minutes).

Several fault kinds are on at once, each on every Nth request it matches,
with periods (primes) that do not line up with hubfs's own request
pattern: 500s, 429s carrying `Retry-After: 1` and `RateLimit:
"resolvers";r=0;t=1` on resolves, cut bodies, Range requests answered 200,
expired CDN URLs.  The emulator's own rate limiter meanwhile answers every
resolve with a RateLimit header of its 5-minute window, which is what made
the old pacer keep that long window after a 429 that asked for one second.

The whole tree of a repo of many small regular files and a few LFS files
is read through the mount: every byte must be right, no read may fail, and
from the emulator's request log no resolve may be held back after a 429
longer than the answer asked (t + the 1 s the Python client adds) plus
SLACK.  The counts of each fault and the slowest file's time are printed,
not asserted.

Run: /usr/bin/python3 tests/integration/test_ratelimit.py [-v]  (HUBFS_BIN
selects the binary; ctest passes it).
"""
import hashlib
import os
import shutil
import sys
import tempfile
import time
import unittest

from mountlib import Mount, files_at, hubstack

REPO = "acme/tiny-model"
BRANCH = "fault-mix"
N_SMALL = 24
LFS_SIZES = (3 << 20, (5 << 20) + 4321, (2 << 20) + 17)
SLACK = 3.0  # seconds beyond t + 1 that a resolve may wait after a 429
ASKED = 1    # t= and Retry-After of the injected 429s
RULES = [
    dict(kind="rate_limit", path="/resolve/", t=ASKED, retry_after=ASKED,
         every=5),
    dict(kind="status", status=500, every=7),
    dict(kind="reset", path="/api/resolve-cache/", after=40, every=11),
    dict(kind="range_200", target="cdn", every=3),
    dict(kind="expired", target="cdn", every=2),
    dict(kind="reset", target="cdn", after=70000, every=5),
]


def say(msg):
    print(msg, file=sys.stderr, flush=True)


class FaultMixTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="hubfs-ratelimit-")
        os.chmod(cls.tmp, 0o755)
        cls.stack = hubstack.Stack(os.path.join(cls.tmp, "stack"))
        cls.stack.__enter__()
        files = {}
        for i in range(N_SMALL):
            files["small/f%02d.bin" % i] = {"size": 100 + 397 * i,
                                            "seed": 500 + i}
        for i, size in enumerate(LFS_SIZES):
            files["lfs/part-%d.safetensors" % i] = {"size": size,
                                                    "seed": 600 + i,
                                                    "lfs": True}
        cls.stack.commit(REPO, files=files, branch=BRANCH, message="Fault mix")
        cls.files, _ = files_at(cls.stack.manifest, "model", REPO, BRANCH)
        cls.files = {p: f for p, f in cls.files.items()
                     if p.startswith(("small/", "lfs/"))}

    @classmethod
    def tearDownClass(cls):
        cls.stack.__exit__(None, None, None)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_fault_mix_reads_everything(self):
        m = Mount(self.tmp, self.stack.endpoint, name="mix",
                  args=["--read-timeout", "30"])
        m.start()
        self.addCleanup(m.stop)
        self.stack.clear_logs()
        for rule in RULES:
            self.stack.fault(**rule)
        self.addCleanup(self.stack.clear_faults)

        slowest, times, wrong = ("", 0.0), [], []
        t_all = time.monotonic()
        for path in sorted(self.files):
            t = time.monotonic()
            owner, name = REPO.split("/")
            with open(m.path(owner, name + "@" + BRANCH, *path.split("/")),
                      "rb") as f:
                got = hashlib.sha256(f.read()).hexdigest()
            secs = time.monotonic() - t
            times.append(secs)
            if secs > slowest[1]:
                slowest = (path, secs)
            with open(self.files[path]["content"], "rb") as f:
                if got != hashlib.sha256(f.read()).hexdigest():
                    wrong.append(path)
        total = time.monotonic() - t_all
        self.assertEqual(wrong, [], "files read with wrong bytes")

        fired = {}
        for rule in self.stack.control("GET", "/_emu/faults"):
            fired["%s/%s" % (rule.get("target", "hub"), rule["kind"])] = \
                rule["hits"]
        say("\nfault mix: %d files in %.1f s; slowest %s in %.1f s; "
            "faults fired: %s" % (len(times), total, slowest[0], slowest[1],
                                  ", ".join("%s %d" % kv for kv in
                                            sorted(fired.items()))))
        self.assertGreater(fired["hub/rate_limit"], 0, fired)
        self.assertGreater(fired["hub/status"], 0, fired)

        # No resolve held back after a 429 longer than it asked (+ 1 s).
        log = self.stack.hub_log()
        resolves = [e for e in log if "/resolve/" in e["path"]]
        waits = []
        for i, e in enumerate(resolves):
            if e.get("status") != 429:
                continue
            later = [r["time"] for r in resolves[i + 1:]]
            if later:
                waits.append(later[0] - e["time"])
        say("after each of %d 429s the next resolve came within %.1f s at "
            "most (allowed: %d + 1 + %.0f)" % (
                len(waits), max(waits) if waits else 0, ASKED, SLACK))
        self.assertTrue(waits, "no 429 was followed by another resolve")
        self.assertLessEqual(max(waits), ASKED + 1 + SLACK)


if __name__ == "__main__":
    unittest.main(verbosity=2)
