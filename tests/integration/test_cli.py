"""The command line: where, ls, help and usage errors, and the fstab form.

`where` is checked against flags and the environment (and must never print
the token); `ls` against a store that a real mount fills while files are
read; the fstab form through mount.fuse3 and through mount(8) itself.
"""
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
import unittest

from mountlib import Mount, files_at, hubstack, mounted
from mountlib import HUBFS as _HUBFS

HUBFS = os.path.abspath(_HUBFS)

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures",
                        "hub.json")
SECRET = "hf_DoNotPrintMe0123456789"


def run(*cmd, env=None, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                          env=env, **kw)


def mount_type(path):
    path = os.path.realpath(path)
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if fields[1] == path:
                return fields[2]
    return None


class CliTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="hubfs-cli-")
        os.chmod(cls.tmp, 0o755)
        cls.stack = hubstack.Stack(os.path.join(cls.tmp, "stack"),
                                   fixtures=[FIXTURES], page_size=3)
        cls.stack.__enter__()
        cls.manifest = cls.stack.manifest
        cls.home = os.path.join(cls.tmp, "home")
        os.makedirs(cls.home)

    @classmethod
    def tearDownClass(cls):
        cls.stack.__exit__(None, None, None)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def env(self, **extra):
        e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
             "HOME": self.home, "LANG": "C.UTF-8"}
        e.update(extra)
        return e

    def hubfs(self, *args, env=None, ok=True):
        r = run(HUBFS, *args, env=env or self.env())
        if ok:
            self.assertEqual(r.returncode, 0, r.stderr)
        return r

    def where(self, *args, env=None):
        r = self.hubfs("where", "--json", *args, env=env)
        self.assertNotIn(SECRET, r.stdout + r.stderr)
        return json.loads(r.stdout)

    def ls(self, store, *args):
        r = self.hubfs("ls", "--json", "--cache-dir", store, *args)
        return json.loads(r.stdout)

    # --- where ---------------------------------------------------------

    def test_where_defaults(self):
        r = self.hubfs("where")
        store = os.path.join(self.home, ".cache", "hubfs")
        self.assertIn("store     %s (from HOME" % store, r.stdout)
        self.assertIn(os.path.join(store, "index.db"), r.stdout)
        token = os.path.join(self.home, ".cache", "huggingface", "token")
        self.assertIn("token     %s (file; does not exist)" % token,
                      r.stdout)
        self.assertIn("endpoint  https://huggingface.co (default)", r.stdout)
        self.assertIn("offline   no", r.stdout)
        self.assertFalse(os.path.exists(store), "where created the store")

    def test_where_environment(self):
        xdg = os.path.join(self.tmp, "xdg")
        w = self.where(env=self.env(HF_TOKEN=SECRET, XDG_CACHE_HOME=xdg,
                                    HF_ENDPOINT="http://hub.example:8080/",
                                    HF_HUB_OFFLINE="1"))
        self.assertEqual(w["store"], os.path.join(xdg, "hubfs"))
        self.assertEqual(w["store_from"], "XDG_CACHE_HOME")
        self.assertEqual(w["token"], {"kind": "environment",
                                      "where": "HF_TOKEN"})
        self.assertEqual(w["endpoint"], "http://hub.example:8080")
        self.assertEqual(w["endpoint_from"], "HF_ENDPOINT")
        self.assertTrue(w["offline"])
        self.assertEqual(w["offline_from"], "HF_HUB_OFFLINE")

        hf_home = os.path.join(self.tmp, "hf-home")
        w = self.where(env=self.env(HF_HOME=hf_home))
        self.assertEqual(w["token"]["where"], os.path.join(hf_home, "token"))
        self.assertFalse(w["token"]["exists"])

        path = os.path.join(self.tmp, "token-at-path")
        with open(path, "w") as f:
            f.write(SECRET + "\n")
        w = self.where(env=self.env(HF_TOKEN_PATH=path, HF_HOME=hf_home))
        self.assertEqual(w["token"], {"kind": "file", "where": path,
                                      "exists": True})

    def test_where_flags_win(self):
        tok = os.path.join(self.tmp, "flag.token")
        with open(tok, "w") as f:
            f.write(SECRET)
        env = self.env(HF_TOKEN=SECRET, HF_ENDPOINT="http://env.example",
                       XDG_CACHE_HOME=os.path.join(self.tmp, "xdg2"))
        r = run(HUBFS, "where", "--cache-dir", "rel-store", "--endpoint",
                "http://flag.example/", "--token-file", "flag.token",
                "--offline", env=env, cwd=self.tmp)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn(SECRET, r.stdout + r.stderr)
        out = r.stdout
        self.assertIn("store     %s (from --cache-dir; not created yet)"
                      % os.path.join(self.tmp, "rel-store"), out)
        self.assertIn("token     %s (file)" % tok, out)
        self.assertIn("endpoint  http://flag.example (--endpoint)", out)
        self.assertIn("offline   yes (--offline)", out)

    def test_where_refuses_a_bad_endpoint(self):
        r = self.hubfs("where", "--endpoint", "ftp://x", ok=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("not an http or https URL", r.stderr)
        r = self.hubfs("where", env=self.env(HF_ENDPOINT="nonsense"),
                       ok=False)
        self.assertEqual(r.returncode, 1)

    # --- ls ------------------------------------------------------------

    def test_ls_without_a_store(self):
        store = os.path.join(self.tmp, "no-store")
        self.assertEqual(self.ls(store), [])
        r = self.hubfs("ls", "--cache-dir", store)
        self.assertIn("No repos", r.stdout)
        self.assertFalse(os.path.exists(store), "ls created the store")
        r = self.hubfs("ls", "--cache-dir", store, "acme/tiny-model",
                       ok=False)
        self.assertEqual(r.returncode, 1)

    def test_a_store_that_cannot_be_opened_fails_once(self):
        """A store with a newer schema than this hubfs knows: every command
        that reads it exits non-zero with one line on stderr and prints
        nothing else (ls used to add "No repos ... yet" and exit 0)."""
        store = os.path.join(self.tmp, "newer-store")
        self.hubfs("gc", "--cache-dir", store)
        db = sqlite3.connect(os.path.join(store, "index.db"))
        db.execute("PRAGMA user_version = 999")
        db.close()
        for cmd in (["ls"], ["ls", "--json"], ["ls", "acme/tiny-model"],
                    ["status"], ["status", "--json"], ["gc"], ["verify"],
                    ["unpin", "acme/tiny-model"],
                    ["forget", "acme/tiny-model"]):
            r = self.hubfs(*cmd, "--cache-dir", store, "--offline", ok=False)
            self.assertEqual(r.returncode, 1, (cmd, r.stdout, r.stderr))
            self.assertEqual(r.stdout, "", (cmd, r.stdout))
            self.assertEqual(len(r.stderr.splitlines()), 1, (cmd, r.stderr))
            self.assertIn("schema version 999", r.stderr)

    def repo_entry(self, listing, rtype, repo_id):
        for r in listing:
            if r["type"] == rtype and r["id"] == repo_id:
                return r
        self.fail("%s %s not listed: %s" % (rtype, repo_id, listing))

    def file_entry(self, store, spec, path):
        for f in self.ls(store, spec)["files"]:
            if f["path"] == path:
                return f
        self.fail("%s not in %s" % (path, spec))

    def test_ls_follows_what_the_mount_reads(self):
        with Mount(self.tmp, self.stack.endpoint, name="ls") as m:
            self.assertEqual(self.ls(m.store), [])
            top = m.path("acme", "tiny-model")
            for _ in os.walk(top):  # the tree gets listed, nothing read
                pass
            files, sha = files_at(self.manifest, "model", "acme/tiny-model",
                                  "main")
            repo = self.repo_entry(self.ls(m.store), "model",
                                   "acme/tiny-model")
            self.assertEqual(repo["commit"], sha)
            self.assertEqual(repo["files"], len(files))
            self.assertEqual(repo["bytes"],
                             sum(f["size"] for f in files.values()))
            before = repo["local_bytes"]
            self.assertLess(before, repo["bytes"])

            for rel in ("config.json", "model.safetensors"):
                with open(os.path.join(top, rel), "rb") as f:
                    self.assertEqual(len(f.read()), files[rel]["size"])
            # A blob is recorded complete once verified, which may come
            # just after the read that completed it.
            for _ in range(100):
                big = self.file_entry(m.store, "acme/tiny-model",
                                      "model.safetensors")
                if big["complete"]:
                    break
                time.sleep(0.1)
            self.assertTrue(big["complete"])
            self.assertEqual(big["local_bytes"],
                             files["model.safetensors"]["size"])
            cfg = self.file_entry(m.store, "acme/tiny-model", "config.json")
            self.assertEqual(cfg["local_bytes"], files["config.json"]["size"])
            repo = self.repo_entry(self.ls(m.store), "model",
                                   "acme/tiny-model")
            self.assertGreaterEqual(
                repo["local_bytes"],
                before + files["model.safetensors"]["size"])

            # Another revision, a dataset, a legacy id.
            os.listdir(m.path("acme", "tiny-model@v1.0"))
            os.listdir(m.path("datasets", "acme", "tiny-dataset"))
            os.listdir(m.path("gpt2"))
            text = self.hubfs("ls", "--cache-dir", m.store).stdout
        # The same answers once the mount is gone.
        self.assertFalse(mounted(m.mnt))
        lines = text.splitlines()
        self.assertTrue(lines[0].split()[:4] == ["TYPE", "REPO", "FILES",
                                                 "SIZE"], text)
        self.assertTrue(any(l.split()[:2] == ["model", "acme/tiny-model"]
                            and "MiB" in l and "v1.0" in l for l in lines),
                        text)
        self.assertTrue(any(l.split()[:2] == ["dataset",
                                              "datasets/acme/tiny-dataset"]
                            for l in lines), text)
        self.assertTrue(any(l.split()[:2] == ["model", "gpt2"] and
                            "openai-community/gpt2" in l for l in lines),
                        text)

        listing = self.ls(m.store)
        repo = self.repo_entry(listing, "model", "acme/tiny-model")
        revs = {r["revision"]: r for r in repo["revisions"]}
        v1_files, v1_sha = files_at(self.manifest, "model",
                                    "acme/tiny-model", "v1.0")
        self.assertEqual(revs["v1.0"]["commit"], v1_sha)
        self.assertEqual(revs["v1.0"]["files"], len(v1_files))
        self.assertTrue(revs[None]["default"])
        self.assertEqual(self.repo_entry(listing, "model", "gpt2")
                         ["canonical"], "openai-community/gpt2")

        one = self.ls(m.store, "acme/tiny-model@v1.0")
        self.assertEqual(one["commit"], v1_sha)
        self.assertEqual(sorted(f["path"] for f in one["files"]),
                         sorted(v1_files))
        self.assertEqual(one["total"]["files"], len(v1_files))
        self.assertEqual(self.ls(m.store, "acme/tiny-model@" +
                                 v1_sha[:10])["commit"], v1_sha)
        ds = self.ls(m.store, "datasets/acme/tiny-dataset")
        self.assertEqual(ds["type"], "dataset")
        self.assertEqual(self.ls(m.store, "gpt2")["id"],
                         "openai-community/gpt2")
        text = self.hubfs("ls", "--cache-dir", m.store,
                          "acme/tiny-model").stdout
        self.assertIn("config.json", text)
        self.assertIn("100%", text)
        self.assertRegex(text.splitlines()[-1],
                         r"^\d+ files, .* held locally \(\d+%\)$")

        for spec, code in (("acme/not-known", 1),
                           ("acme/tiny-model@no-such-branch", 1),
                           ("spaces/acme/tiny-model", 1),
                           ("acme/bad name", 2), ("acme/x@", 2)):
            r = self.hubfs("ls", "--cache-dir", m.store, spec, ok=False)
            self.assertEqual(r.returncode, code, (spec, r.stderr))
            self.assertTrue(r.stderr.startswith("hubfs"), r.stderr)

    # --- help and usage --------------------------------------------------

    def test_help(self):
        r = self.hubfs("--help")
        for cmd in ("mount", "umount", "where", "ls"):
            self.assertRegex(r.stdout, r"\n  %s +\S" % cmd)
            for args in ((cmd, "--help"), ("help", cmd)):
                h = self.hubfs(*args)
                self.assertTrue(h.stdout.startswith("usage: hubfs " + cmd),
                                h.stdout)

    def test_usage_errors_exit_2(self):
        for args in (("no-such-command",), ("ls", "a/b", "c/d"),
                     ("ls", "--no-such-option"), ("where", "extra"),
                     ("mount",), ("mount", "--revision-ttl", "x", self.tmp),
                     ("mount", "-o", "cache_dir", self.tmp),
                     ("hubfs", self.tmp, "-o", "read_timeout=0"),
                     ("hubfs", self.tmp, "extra"), ("umount",),
                     ("umonut", self.tmp),  # a typo does not mount
                     ("help", "no-such-command"), ()):
            r = self.hubfs(*args, ok=False)
            self.assertEqual(r.returncode, 2, (args, r.stdout, r.stderr))
            self.assertTrue(r.stderr, args)
            self.assertFalse(mounted(self.tmp))

    # --- the fstab form --------------------------------------------------

    def helper_dir(self):
        """A folder holding `hubfs`, as mount.fuse3 runs it by that name."""
        d = os.path.join(self.tmp, "bin")
        if not os.path.exists(d):
            os.makedirs(d)
            os.symlink(os.path.abspath(HUBFS), os.path.join(d, "hubfs"))
        return d

    def fstab_options(self, name):
        store = os.path.join(self.tmp, name + "-store")
        opts = ["cache_dir=" + store, "endpoint=" + self.stack.endpoint,
                "token_file=" + os.path.join(self.tmp, "no-token"),
                "log=" + os.path.join(self.tmp, name + ".log")]
        return store, opts

    def check_fstab_store(self, store, mnt):
        # An unmount returns once the kernel lets go; the daemon then
        # records what it fetched and exits.  The store is read after that.
        self.wait_daemon_gone(mnt)
        repo = self.repo_entry(self.ls(store), "model", "acme/tiny-model")
        self.assertGreater(repo["local_bytes"], 0)

    def config_json(self):
        files, _ = files_at(self.manifest, "model", "acme/tiny-model",
                            "main")
        return files["config.json"]

    def test_fstab_form_through_mount_fuse3(self):
        helper = shutil.which("mount.fuse3",
                              path="/usr/sbin:/sbin:/usr/bin:/bin")
        if not helper:
            self.skipTest("mount.fuse3 is not installed")
        mnt = os.path.join(self.tmp, "fuse3-mnt")
        os.makedirs(mnt)
        store, opts = self.fstab_options("fuse3")
        # What mount(8) passes for a line with these options, and what
        # mount.fuse3 adds (dev, suid).
        opts += ["rw", "noauto", "nofail", "_netdev", "relatime",
                 "x-systemd.automount", "revision_ttl=5", "read_timeout=30"]
        env = self.env(PATH=self.helper_dir() + ":" + os.environ["PATH"])
        r = run(helper, "hubfs", mnt, "-t", "fuse.hubfs", "-o",
                ",".join(opts), env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        try:
            self.assertEqual(mount_type(mnt), "fuse.hubfs")
            with open(os.path.join(mnt, "acme", "tiny-model",
                                   "config.json"), "rb") as f:
                self.assertEqual(len(f.read()), self.config_json()["size"])
            self.assertTrue(os.path.exists(os.path.join(self.tmp,
                                                        "fuse3.log")))
        finally:
            r = self.hubfs("umount", mnt, ok=False)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertFalse(mounted(mnt))
        self.check_fstab_store(store, mnt)

    def test_fstab_form_through_mount(self):
        """mount -t fuse.hubfs, as for an /etc/fstab line."""
        if os.getuid() != 0 or not shutil.which("unshare"):
            self.skipTest("needs root and unshare(1)")
        # mount(8) clears PATH, so mount.fuse3's /bin/sh looks for hubfs
        # in the default path only: a private mount namespace puts ours
        # at /usr/local/sbin without touching the system.
        mnt = os.path.join(self.tmp, "fstab-mnt")
        os.makedirs(mnt)
        out = os.path.join(self.tmp, "fstab-read")
        mounts = os.path.join(self.tmp, "fstab-mounts")
        store, opts = self.fstab_options("fstab")
        script = """
            set -e
            trap 'umount "$MNT" 2>/dev/null || true' EXIT
            mount --bind "$BIN" /usr/local/sbin
            mount -t fuse.hubfs hubfs "$MNT" -o "$OPTS"
            cat /proc/self/mounts > "$MOUNTS"
            cat "$MNT/acme/tiny-model/config.json" > "$OUT"
            umount "$MNT"
        """
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
               "MNT": mnt, "BIN": self.helper_dir(), "OUT": out,
               "MOUNTS": mounts,
               "OPTS": ",".join(opts + ["nofail", "_netdev", "noauto"])}
        r = run("unshare", "--mount", "--propagation", "private", "sh", "-c",
                script, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(mounts) as f:
            self.assertIn("hubfs %s fuse.hubfs ro," % mnt, f.read())
        self.assertEqual(os.path.getsize(out), self.config_json()["size"])
        self.check_fstab_store(store, mnt)

    @staticmethod
    def wait_daemon_gone(mnt, timeout=30):
        def alive():
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    with open("/proc/%s/cmdline" % pid, "rb") as f:
                        argv = f.read().split(b"\0")
                except OSError:
                    continue
                if argv[0].endswith(b"hubfs") and mnt.encode() in argv:
                    return True
            return False
        deadline = time.monotonic() + timeout
        while alive():
            if time.monotonic() > deadline:
                raise AssertionError("the daemon of %s did not exit" % mnt)
            time.sleep(0.05)


if __name__ == "__main__":
    unittest.main(verbosity=2)
