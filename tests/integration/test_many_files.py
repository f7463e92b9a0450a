"""A 100,000-file dataset: listed from the index, not a request per file.

Also prints (does not assert) the time of `ls -lR` through the mount, cold
and warm, beside `ls -lR` of the same names and sizes on local disk.
"""
import os
import shutil
import subprocess
import tempfile
import time
import unittest

from mountlib import Mount, files_at, hubstack

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "large",
                       "many-files.json")
REPO = "acme/many-files"


def timed(*cmd):
    t0 = time.monotonic()
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=600)
    return time.monotonic() - t0, r


class ManyFilesTest(unittest.TestCase):
    def test_find_and_ls(self):
        tmp = tempfile.mkdtemp(prefix="hubfs-many-")
        os.chmod(tmp, 0o755)
        try:
            with hubstack.Stack(os.path.join(tmp, "stack"),
                                fixtures=[FIXTURE]) as stack:
                files, _ = files_at(stack.manifest, "dataset", REPO, "main")
                self.run_case(tmp, stack, files)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def run_case(self, tmp, stack, files):
        m = Mount(tmp, stack.endpoint)
        with m:
            top = m.path("datasets", REPO)
            before = len(stack.hub_log())
            cold, r = timed("ls", "-lR", top)
            self.assertEqual(r.returncode, 0, r.stderr)
            log = stack.hub_log()[before:]
            warm, _ = timed("ls", "-lR", top)
            r = subprocess.run(["find", top, "-type", "f"],
                               capture_output=True, text=True, timeout=600)
            self.assertEqual(len(r.stdout.splitlines()), len(files))
            self.assertEqual(len(files), 100001)

        trees = [e for e in log if "/tree/" in e["path"]]
        others = [e for e in log if "/tree/" not in e["path"]]
        entries = len(files) + 1100  # files plus their folders
        self.assertLessEqual(len(trees), entries // 1000 + 2, trees[-3:])
        self.assertLessEqual(len(others), 3, others)

        local = os.path.join(tmp, "local")
        for rel, f in files.items():
            p = os.path.join(local, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "wb") as out:
                out.truncate(f["size"])
        disk, _ = timed("ls", "-lR", local)
        remount = Mount(tmp, stack.endpoint, store=m.store, name="again")
        with remount:
            again, _ = timed("ls", "-lR", remount.path("datasets", REPO))
        print("\nls -lR of %d files: mount cold %.2f s (%d tree pages), "
              "warm %.2f s, remounted %.2f s; local disk %.2f s"
              % (len(files), cold, len(trees), warm, again, disk))


if __name__ == "__main__":
    unittest.main(verbosity=2)
