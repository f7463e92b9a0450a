"""The .hf-cache view read by a real client nobody here wrote.

Runs tests/js/hfcache.mjs (the npm package @huggingface/hub: scanCacheDir
and downloadFileToCacheDir's cached-file lookup) against a mount of the
real daemon, inside its own emulator + CDN stack.  The script caches some
revisions itself into a fresh folder, has hubfs learn the same revisions
through its main tree, and compares both scans with each other and with
the emulator's manifest.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from mountlib import Mount, hubstack

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


class HfCacheJsTest(unittest.TestCase):
    def test_js_client_reads_the_view(self):
        subprocess.run(["bash", os.path.join(ROOT, "tests", "js", "run.sh"),
                        "--install"], check=True, timeout=600)
        tmp = tempfile.mkdtemp(prefix="hubfs-hfcjs-")
        self.addCleanup(shutil.rmtree, tmp, True)
        os.chmod(tmp, 0o755)
        with hubstack.Stack(os.path.join(tmp, "stack"), page_size=3) as st:
            with Mount(tmp, st.endpoint) as m:
                env = dict(os.environ, **st.env())
                env["HUBFS_TEST_MOUNT"] = m.mnt
                r = subprocess.run(
                    ["node", os.path.join(ROOT, "tests", "js",
                                          "hfcache.mjs")],
                    env=env, capture_output=True, text=True, timeout=300)
                sys.stdout.write(r.stdout)
                sys.stderr.write(r.stderr)
                self.assertEqual(r.returncode, 0, m.read_log()[-2000:])
                self.assertRegex(r.stdout, r"\n[1-9][0-9]* passed, 0 failed")


if __name__ == "__main__":
    unittest.main(verbosity=2)
