"""The mount, end to end: the real daemon, real programs, the emulator.

One stack (Hub emulator + nginx CDN) and one daemon for most tests; tests
that need other settings (a token, the Hub gone) start their own mounts.
Every byte read is compared with the fixtures.
"""
import errno
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

from mountlib import HUBFS, Mount, files_at, hubstack, mounted, walk_files

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures",
                        "hub.json")
# dora's only repo moved to acme: dora lists nothing, but exists.
OWNERS = os.path.join(os.path.dirname(__file__), "..", "fixtures", "large",
                      "renamed-owner.json")


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def run(*cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                          **kw)


class MountTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="hubfs-it-")
        os.chmod(cls.tmp, 0o755)
        cls.stack = hubstack.Stack(os.path.join(cls.tmp, "stack"),
                                   fixtures=[FIXTURES, OWNERS], page_size=3)
        cls.stack.__enter__()
        cls.manifest = cls.stack.manifest
        with open(os.environ.get("HUBFS_TEST_TOKENS") or
                  os.path.join(cls.stack.state, "tokens.json")) as f:
            cls.tokens = json.load(f)
        cls.m = Mount(cls.tmp, cls.stack.endpoint).start()

    @classmethod
    def tearDownClass(cls):
        cls.m.stop()
        cls.stack.__exit__(None, None, None)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def token(self, user):
        return self.tokens["users"][user]["token"]

    def assert_repo_matches(self, top, repo_type, repo_id, rev):
        files, _ = files_at(self.manifest, repo_type, repo_id, rev)
        got = walk_files(top)
        self.assertEqual(sorted(got), sorted(files), top)
        for rel, f in files.items():
            st = os.stat(got[rel])
            self.assertEqual(st.st_size, f["size"], rel)
            self.assertEqual(sha256_of(got[rel]), f["sha256"], rel)

    # --- the namespace -------------------------------------------------

    def test_root_lists_types_and_known_owners(self):
        os.stat(self.m.path("acme", "tiny-model"))
        names = os.listdir(self.m.mnt)
        for n in ("datasets", "spaces", "acme"):
            self.assertIn(n, names)

    def test_dot_names_at_root_cost_no_request(self):
        self.stack.clear_hub_log() if hasattr(self.stack, "clear_hub_log") \
            else None
        before = len(self.stack.hub_log())
        for n in (".git", ".DS_Store", ".hidden"):
            self.assertFalse(os.path.exists(self.m.path(n)))
        self.assertEqual(len(self.stack.hub_log()), before)

    def test_owner_lists_its_repos(self):
        names = os.listdir(self.m.path("acme"))
        for n in ("tiny-model", "new-name"):
            self.assertIn(n, names)
        self.assertNotIn("secret-model", names)  # private, no token

    def test_unknown_names(self):
        for p in (("no-such-owner-xyz",),
                  ("acme", "tiny-model", "no-such-file"),
                  ("acme", "tiny-model@no-such-branch")):
            with self.assertRaises(FileNotFoundError, msg=p):
                os.stat(self.m.path(*p))
        # Anonymous, the Hub answers 401 for a repo that does not exist,
        # exactly as for a private one: EACCES (DESIGN.md section 2).
        for p in (("acme", "no-such-repo"), ("datasets", "acme", "tiny-model")):
            with self.assertRaises(PermissionError, msg=p):
                os.stat(self.m.path(*p))

    def test_miss_is_remembered(self):
        for name in ("probe-miss", "probe-miss@v9"):
            with self.assertRaises(OSError):
                os.stat(self.m.path("acme", name))
        with self.assertRaises(OSError):
            os.stat(self.m.path("probe-owner-miss"))
        before = len(self.stack.hub_log())
        for _ in range(5):
            for p in (("acme", "probe-miss"), ("acme", "probe-miss@v9"),
                      ("probe-owner-miss",)):
                with self.assertRaises(OSError):
                    os.stat(self.m.path(*p))
        self.assertEqual(len(self.stack.hub_log()), before)

    # --- reading -------------------------------------------------------

    def test_default_branch_bytes(self):
        self.assert_repo_matches(self.m.path("acme", "tiny-model"),
                                 "model", "acme/tiny-model", "main")

    def test_revisions_have_their_own_files(self):
        for rev, name in (("v1.0", "tiny-model@v1.0"),
                          ("dev", "tiny-model@dev"),
                          ("refs/pr/1", "tiny-model@refs%2Fpr%2F1")):
            self.assert_repo_matches(self.m.path("acme", name), "model",
                                     "acme/tiny-model", rev)
        _, sha = files_at(self.manifest, "model", "acme/tiny-model", "v1.0")
        self.assert_repo_matches(self.m.path("acme", "tiny-model@" + sha),
                                 "model", "acme/tiny-model", sha)
        self.assertIn("old.txt", os.listdir(self.m.path("acme",
                                                        "tiny-model@v1.0")))
        self.assertNotIn("old.txt", os.listdir(self.m.path("acme",
                                                           "tiny-model")))

    def test_datasets_and_spaces(self):
        self.assert_repo_matches(
            self.m.path("datasets", "acme", "tiny-dataset"), "dataset",
            "acme/tiny-dataset", "main")
        self.assert_repo_matches(
            self.m.path("spaces", "acme", "demo-space"), "space",
            "acme/demo-space", "main")

    def test_real_programs(self):
        top = self.m.path("acme", "tiny-model")
        files, _ = files_at(self.manifest, "model", "acme/tiny-model",
                            "main")
        r = run("sha256sum", "model.safetensors", "config.json", cwd=top)
        self.assertEqual(r.returncode, 0, r.stderr)
        for line in r.stdout.splitlines():
            digest, name = line.split(None, 1)
            self.assertEqual(digest, files[name.lstrip("*")]["sha256"])
        r = run("cat", os.path.join(top, "config.json"))
        with open(files["config.json"]["content"]) as f:
            self.assertEqual(r.stdout, f.read())
        r = run("ls", "-lR", top)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("model.safetensors", r.stdout)
        r = run("find", top, "-type", "f")
        self.assertEqual(len(r.stdout.splitlines()), len(files))
        dst = os.path.join(self.tmp, "copy")
        r = run("cp", "-r", top, dst)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assert_repo_matches(dst, "model", "acme/tiny-model", "main")

    def test_attributes(self):
        files, sha = files_at(self.manifest, "model", "acme/tiny-model",
                              "main")
        p = self.m.path("acme", "tiny-model", "model.safetensors")
        st = os.stat(p)
        self.assertEqual(st.st_mode & 0o7777, 0o444)
        self.assertEqual(st.st_uid, os.getuid())
        self.assertEqual(st.st_blocks, (st.st_size + 511) // 512)
        self.assertEqual(os.stat(self.m.path("acme", "tiny-model")).st_mode
                         & 0o7777, 0o555)
        # st_ino is stable for (commit, path), whichever name reaches it.
        self.assertEqual(
            st.st_ino,
            os.stat(self.m.path("acme", "tiny-model@" + sha,
                                "model.safetensors")).st_ino)

    def test_extended_attributes_with_the_option(self):
        """--xattr (or -o xattr) gives files and repo folders their
        provenance; the store holds the same facts for hubfs ls."""
        files, sha = files_at(self.manifest, "model", "acme/tiny-model",
                              "main")
        for args in (["--xattr"], ["-o", "ro,xattr"]):
            with Mount(self.tmp, self.stack.endpoint, name="xattr",
                       args=args) as m:
                top = m.path("acme", "tiny-model")
                p = os.path.join(top, "model.safetensors")
                self.assertEqual(os.getxattr(p, "user.hubfs.commit").decode(),
                                 sha)
                self.assertEqual(os.getxattr(p, "user.hubfs.etag").decode(),
                                 files["model.safetensors"]["sha256"])
                self.assertEqual(os.getxattr(top, "user.hubfs.commit")
                                 .decode(), sha)
                self.assertEqual(sorted(os.listxattr(p)),
                                 ["user.hubfs.cached", "user.hubfs.commit",
                                  "user.hubfs.etag"])
                with open(p, "rb") as f:
                    size = len(f.read())
                self.assertEqual(int(os.getxattr(p, "user.hubfs.cached")),
                                 size)
                with self.assertRaises(OSError) as cm:
                    os.getxattr(p, "user.other")
                self.assertEqual(cm.exception.errno, errno.ENODATA)
                r = run("ls", "-l", top)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn("model.safetensors", r.stdout)

    def test_no_extended_attributes_by_default(self):
        """Without --xattr the mount answers no extended attribute: the
        kernel remembers its ENOSYS and says EOPNOTSUPP for the whole
        mount, ls -l still works, and hubfs ls shows the provenance."""
        files, sha = files_at(self.manifest, "model", "acme/tiny-model",
                              "main")
        top = self.m.path("acme", "tiny-model")
        p = os.path.join(top, "model.safetensors")
        with open(p, "rb") as f:
            f.read()
        for path in (p, top, p, self.m.mnt):
            for call in (lambda: os.getxattr(path, "user.hubfs.commit"),
                         lambda: os.getxattr(path, "security.selinux"),
                         lambda: os.listxattr(path)):
                with self.assertRaises(OSError) as cm:
                    call()
                self.assertEqual(cm.exception.errno, errno.ENOTSUP, path)
        r = run("ls", "-lR", top)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")
        for name in files:
            self.assertIn(os.path.basename(name), r.stdout)
        # The store records what was read once it is synced: ask until
        # it has.
        for _ in range(100):
            r = run(HUBFS, "ls", "--json", "--cache-dir", self.m.store,
                    "acme/tiny-model")
            self.assertEqual(r.returncode, 0, r.stderr)
            listed = json.loads(r.stdout)
            got = {f["path"]: f for f in listed["files"]}
            if got["model.safetensors"]["complete"]:
                break
            time.sleep(0.1)
        self.assertEqual(listed["commit"], sha)
        self.assertEqual(got["model.safetensors"]["etag"],
                         files["model.safetensors"]["sha256"])
        self.assertEqual(got["model.safetensors"]["local_bytes"],
                         files["model.safetensors"]["size"])

    def test_readahead_and_request_size(self):
        """Run by root, the mount reads ahead 1 MiB (the kernel's 128 KiB
        would cost a request per 128 KiB); large reads stay byte-exact."""
        p = self.m.path("acme", "tiny-model", "model.safetensors")
        st = os.stat(p)
        knob = "/sys/class/bdi/%d:%d/read_ahead_kb" % (os.major(st.st_dev),
                                                       os.minor(st.st_dev))
        if os.geteuid() == 0 and os.path.exists(knob):
            with open(knob) as f:
                self.assertEqual(int(f.read()), 1024)
        files, _ = files_at(self.manifest, "model", "acme/tiny-model",
                            "main")
        with open(files["model.safetensors"]["content"], "rb") as f:
            want = f.read()
        fd = os.open(p, os.O_RDONLY)
        try:
            self.assertEqual(os.pread(fd, len(want) + 4096, 0), want)
            self.assertEqual(os.pread(fd, 3 << 20, 1000), want[1000:])
        finally:
            os.close(fd)

    def test_read_only(self):
        top = self.m.path("acme", "tiny-model")
        for fn, args in ((open, (os.path.join(top, "new"), "w")),
                         (open, (os.path.join(top, "config.json"), "a")),
                         (os.mkdir, (os.path.join(top, "d"),)),
                         (os.unlink, (os.path.join(top, "config.json"),)),
                         (os.rename, (os.path.join(top, "config.json"),
                                      os.path.join(top, "x")))):
            with self.assertRaises(OSError) as cm:
                fn(*args)
            self.assertEqual(cm.exception.errno, errno.EROFS, fn)

    def test_legacy_and_renamed_ids_are_links(self):
        self.assertEqual(os.readlink(self.m.path("gpt2")),
                         "openai-community/gpt2")
        self.assert_repo_matches(self.m.path("gpt2"), "model",
                                 "openai-community/gpt2", "main")
        self.assertEqual(os.readlink(self.m.path("acme", "old-name")),
                         "../acme/new-name")
        self.assert_repo_matches(self.m.path("acme", "old-name"), "model",
                                 "acme/new-name", "main")

    def test_an_owner_with_no_repos_left(self):
        """dora/notes moved to acme/doras-notes and dora lists no repo: the
        Hub still knows dora (her overview answers), so her folder exists,
        empty, and the old id is a link to the new one.  A name the Hub
        does not know as an owner stays ENOENT."""
        self.assertTrue(os.path.isdir(self.m.path("dora")))
        self.assertEqual(os.listdir(self.m.path("dora")), [])
        self.assertEqual(os.readlink(self.m.path("dora", "notes")),
                         "../acme/doras-notes")
        self.assert_repo_matches(self.m.path("dora", "notes"), "model",
                                 "acme/doras-notes", "main")
        with self.assertRaises(FileNotFoundError):
            os.stat(self.m.path("nobody-at-all"))
        with self.assertRaises(FileNotFoundError):
            os.stat(self.m.path("nobody-at-all", "notes"))

    def test_private_and_gated_need_a_token(self):
        for p in (("acme", "secret-model"), ("bigco", "gated-model",
                                              "config.json")):
            with self.assertRaises(PermissionError, msg=p):
                with open(self.m.path(*p, "config.json")
                          if len(p) == 2 else self.m.path(*p)) as f:
                    f.read()
        self.assertIn("hf auth login", self.m.read_log())

    def test_token_from_env_and_from_file(self):
        alice = self.token("alice")
        tokfile = os.path.join(self.tmp, "alice.token")
        with open(tokfile, "w") as f:
            f.write(alice + "\n")
        for name, env in (("env", {"HF_TOKEN": alice}),
                          ("file", {"HF_TOKEN_PATH": tokfile})):
            with Mount(self.tmp, self.stack.endpoint, name=name,
                       env=env) as m:
                self.assert_repo_matches(m.path("acme", "secret-model"),
                                         "model", "acme/secret-model",
                                         "main")
                self.assert_repo_matches(m.path("bigco", "gated-model"),
                                         "model", "bigco/gated-model",
                                         "main")
                self.assertNotIn(alice, m.read_log())
        self.assertFalse(any(r.get("auth") in (1, "1", True)
                             for r in self.stack.cdn_log()),
                         "a request to the CDN carried Authorization")

    def test_offline_remount(self):
        """The Hub gone: what the store knows still lists and reads."""
        st = hubstack.Stack(os.path.join(self.tmp, "stack2"),
                            fixtures=[FIXTURES])
        st.__enter__()
        m = Mount(self.tmp, st.endpoint, name="off",
                  args=("--read-timeout", "5"))
        try:
            m.start()
            top = m.path("acme", "tiny-model")
            listing = sorted(walk_files(top))
            with open(os.path.join(top, "config.json"), "rb") as f:
                config = f.read()
            m.stop()
        finally:
            st.__exit__(None, None, None)
        with m:
            top = m.path("acme", "tiny-model")
            self.assertEqual(sorted(walk_files(top)), listing)
            with open(os.path.join(top, "config.json"), "rb") as f:
                self.assertEqual(f.read(), config)
            t0 = time.monotonic()
            with self.assertRaises(OSError) as cm:
                with open(os.path.join(top, "model.safetensors"), "rb") as f:
                    f.read()
            self.assertEqual(cm.exception.errno, errno.EIO)
            self.assertLess(time.monotonic() - t0, 30)  # no hang
        with Mount(self.tmp, "http://127.0.0.1:9", name="off",
                   args=("--offline",), store=m.store) as m2:
            self.assertEqual(sorted(walk_files(m2.path("acme",
                                                       "tiny-model"))),
                             listing)

    def test_unprivileged_user_mounts(self):
        """CI runs as root, which hides fusermount3: mount as nobody."""
        if os.getuid() != 0:
            self.skipTest("needs root to switch to nobody")
        import pwd
        nobody = pwd.getpwnam("nobody")
        # A stock Debian system has /dev/fuse 0666; some containers don't.
        mode = os.stat("/dev/fuse").st_mode & 0o777
        if mode != 0o666:
            os.chmod("/dev/fuse", 0o666)
            self.addCleanup(os.chmod, "/dev/fuse", mode)
        root = os.path.join(self.tmp, "nobody")
        os.makedirs(root, exist_ok=True)
        m = Mount(root, self.stack.endpoint, name="u")
        for d in (root, m.mnt, m.home):
            os.chown(d, nobody.pw_uid, nobody.pw_gid)
        setpriv = ["setpriv", "--reuid=%d" % nobody.pw_uid,
                   "--regid=%d" % nobody.pw_gid, "--clear-groups"]
        r = run(*setpriv, mountlib_hubfs(), "mount", "--endpoint",
                self.stack.endpoint, "--cache-dir", m.store, "--log", m.log,
                m.mnt, env=m.env)
        self.assertEqual(r.returncode, 0, r.stderr + m.read_log())
        try:
            r = run(*setpriv, "cat",
                    m.path("acme", "tiny-model", "config.json"), env=m.env)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("model_type", r.stdout)
            r = run(*setpriv, "stat", "-c", "%u %a",
                    m.path("acme", "tiny-model", "config.json"), env=m.env)
            self.assertEqual(r.stdout.split(), [str(nobody.pw_uid), "444"])
            # Private to its user: root itself is refused without
            # allow_other.
            with self.assertRaises(PermissionError):
                os.stat(m.path("acme"))
            self.assertEqual(os.stat(m.store).st_mode & 0o777, 0o700)
        finally:
            r = run(*setpriv, "fusermount3", "-u", m.mnt, env=m.env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertFalse(mounted(m.mnt))


def mountlib_hubfs():
    import mountlib
    return mountlib.HUBFS


if __name__ == "__main__":
    unittest.main(verbosity=2)
