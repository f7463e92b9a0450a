"""Helpers for integration tests that mount the real hubfs daemon.

A Mount runs `hubfs mount` (daemonized, as a user would) against the test
stack, with a private HOME so that no real token or cache is ever read, and
unmounts in stop().  The binary is $HUBFS_BIN (ctest passes it).
"""
import os
import sqlite3
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "harness"))

import hubstack  # noqa: E402  (path set above)

HUBFS = os.environ.get("HUBFS_BIN") or os.path.join(
    HERE, "..", "..", "build", "hubfs")


def mounted(path):
    path = os.path.realpath(path)
    with open("/proc/self/mounts") as f:
        return any(line.split()[1] == path for line in f)


class Mount:
    """One hubfs daemon: store, mount point, log, environment."""

    def __init__(self, root, endpoint, name="m", env=None, args=(),
                 store=None):
        self.root = root
        self.mnt = os.path.join(root, name + "-mnt")
        self.store = store or os.path.join(root, name + "-store")
        self.home = os.path.join(root, name + "-home")
        self.log = os.path.join(root, name + ".log")
        self.endpoint = endpoint
        self.args = list(args)
        for d in (self.mnt, self.home):
            os.makedirs(d, exist_ok=True)
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                    "HOME": self.home, "LANG": "C.UTF-8"}
        # A sanitizer build of the daemon writes its reports here (a daemon
        # has no stderr); stop() fails the test if there are any.
        self.sanitizer_log = os.path.join(root, name + ".sanitizer")
        for var in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "TSAN_OPTIONS"):
            self.env[var] = "log_path=" + self.sanitizer_log
        self.env.update(env or {})

    def start(self, extra=()):
        cmd = [HUBFS, "mount", "--endpoint", self.endpoint,
               "--cache-dir", self.store, "--log", self.log,
               *self.args, *extra, self.mnt]
        r = subprocess.run(cmd, env=self.env, capture_output=True,
                           text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("hubfs mount failed (%d): %s\n%s" % (
                r.returncode, r.stderr, self.read_log()))
        assert mounted(self.mnt), "mount returned 0 but nothing is mounted"
        return self

    def stop(self):
        if not mounted(self.mnt):
            return
        for _ in range(100):
            r = subprocess.run(["fusermount3", "-u", self.mnt],
                               capture_output=True)
            if r.returncode == 0:
                break
            time.sleep(0.1)
        else:
            subprocess.run(["fusermount3", "-uz", self.mnt])
        # The daemon exits once the kernel lets go; give it a moment so the
        # store is closed before the next mount opens it.
        for _ in range(100):
            if not daemon_pids(self.mnt):
                break
            time.sleep(0.05)
        self.check_sanitizers()

    def check_sanitizers(self):
        d = os.path.dirname(self.sanitizer_log)
        base = os.path.basename(self.sanitizer_log)
        reports = [os.path.join(d, f) for f in os.listdir(d)
                   if f.startswith(base)]
        text = ""
        for r in reports:
            with open(r, errors="replace") as f:
                text += f.read()
            os.unlink(r)
        if text:
            raise AssertionError("sanitizer report from the daemon:\n" + text)

    def path(self, *parts):
        return os.path.join(self.mnt, *parts)

    def read_log(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def blob_recorded(store, etag, seconds=60):
    """Wait until the store's index records the blob of etag complete and
    verified (a mount records it just after the read that completed it).
    True once it is, False when seconds passed first."""
    index = os.path.join(store, "index.db")
    deadline = time.monotonic() + seconds
    while True:
        try:
            db = sqlite3.connect("file:%s?mode=ro" % index, uri=True, timeout=10)
            try:
                n = db.execute("SELECT count(*) FROM blobs WHERE etag = ?",
                               (etag,)).fetchone()[0]
            finally:
                db.close()
        except sqlite3.Error:
            n = 0
        if n or time.monotonic() >= deadline:
            return bool(n)
        time.sleep(0.1)


def daemon_pids(mnt):
    """The pids of hubfs daemons serving mnt."""
    pids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"hubfs") and b"mount" in argv and \
                mnt.encode() in argv:
            pids.append(int(pid))
    return pids


def files_at(manifest, repo_type, repo_id, rev):
    """{path: file} of a repo at a revision, from the stack's manifest."""
    for repo in manifest["repos"]:
        if repo["type"] == repo_type and repo["id"] == repo_id:
            sha = repo["refs"].get(rev, rev)
            return repo["commits"][sha]["files"], sha
    raise KeyError(repo_id)


def walk_files(top):
    """Relative paths of the files below top, as find would list them."""
    out = {}
    for d, _, names in os.walk(top):
        for n in names:
            p = os.path.join(d, n)
            out[os.path.relpath(p, top)] = p
    return out


def venv_python():
    """The pinned venv's python (tests/python/requirements.txt): ctest
    passes it as HUBFS_TEST_PYTHON; by hand, .ci/install-venv --path."""
    py = os.environ.get("HUBFS_TEST_PYTHON")
    if not py:
        venv = subprocess.run(
            [os.path.join(HERE, "..", "..", ".ci", "install-venv"), "--path"],
            capture_output=True, text=True, check=True).stdout.strip()
        py = os.path.join(venv, "bin", "python")
    if not os.access(py, os.X_OK):
        raise RuntimeError("no venv python at %s: run .ci/install-venv" % py)
    return py
