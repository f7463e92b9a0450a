#!/usr/bin/python3
"""hubstack.py -- start the Hub emulator and the nginx CDN for a test, then stop them.

Command:
    /usr/bin/python3 tests/harness/hubstack.py run [options] -- CMD [ARG ...]
    /usr/bin/python3 tests/harness/hubstack.py serve [options]      (until Ctrl-C)
Module:
    with hubstack.Stack(state_dir, fixtures=[...]) as s:
        s.endpoint, s.cdn, s.manifest, s.fault(kind="reset", path="/blobs/"), ...

Xet files of the fixtures get real Xet objects, built once per machine by
hf_xet in the test venv (xet_build.py; see Stack.build_xet).  Both servers
listen on free 127.0.0.1 ports.  nginx runs as one foreground
process (as nobody when we are root); the emulator is a child python.  Both
get PR_SET_PDEATHSIG, so even a SIGKILLed harness leaves nothing behind
(note: the signal follows the *thread* that started them); normal exits,
exceptions and SIGTERM/SIGHUP stop them explicitly.  The contract (variables,
manifest.json, tokens.json, logs) is in tests/README.md.  Standard library
only; run with /usr/bin/python3.
"""

import argparse
import ctypes
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import nginx_cdn  # noqa: E402

EMULATOR = os.path.join(HERE, "..", "emulator", "hubemu.py")
XET_BUILDER = os.path.join(HERE, "xet_build.py")
INSTALL_VENV = os.path.join(HERE, "..", "..", ".ci", "install-venv")
PYTHON = "/usr/bin/python3"
PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent(sig):
    """preexec_fn: the child gets `sig` when the thread that forked it dies."""
    parent = os.getpid()

    def hook():
        _libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:
            os.kill(os.getpid(), sig)
    return hook


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def default_blob_cache():
    return os.environ.get("HUBFS_TEST_BLOB_CACHE") or os.path.join(
        tempfile.gettempdir(), "hubfs-test-blobs-%d" % os.getuid())


def _stop(proc, sig=signal.SIGTERM, grace=5.0):
    if proc is None or proc.poll() is not None:
        return
    try:
        proc.send_signal(sig)
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    except ProcessLookupError:
        pass


def _tail(path, n=2000):
    try:
        with open(path, errors="replace") as f:
            return f.read()[-n:]
    except OSError:
        return ""


class StackError(RuntimeError):
    pass


def loopback_only(mark):
    """Re-run this script (sys.argv) in a private network namespace that has
    only loopback, so that nothing it starts can reach another host.  The
    environment variable `mark` says the script already runs there.  Needs
    root and unshare(1); without them it returns and the script runs as it
    is."""
    if os.environ.get(mark) or os.geteuid() != 0 or not shutil.which("unshare"):
        return
    env = dict(os.environ, **{mark: "1"})
    cmd = ["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh",
           sys.executable] + sys.argv
    os.execvpe("unshare", cmd, env)


def xet_python():
    """The test venv's python (hf_xet), or None: $HUBFS_TEST_PYTHON, else the
    folder `.ci/install-venv --path` names (never built from here)."""
    python = os.environ.get("HUBFS_TEST_PYTHON")
    if not python:
        try:
            venv = subprocess.run([INSTALL_VENV, "--path"], capture_output=True, text=True,
                                  timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None
        python = os.path.join(venv, "bin", "python") if venv else ""
    return python if python and os.access(python, os.X_OK) else None


class Stack:
    """Emulator + nginx CDN.  Use as a context manager."""

    def __init__(self, state_dir=None, fixtures=(), page_size=None, cdn_rate=None,
                 resolve_mode=None, default_fixtures=True, blob_cache=None, config=None,
                 keep_state=None, startup_timeout=900):
        self.requested_state = state_dir
        self.fixtures = [os.path.abspath(f) for f in fixtures]
        self.cdn_rate = cdn_rate
        self.default_fixtures = default_fixtures
        self.blob_cache = blob_cache or default_blob_cache()
        self.initial_config = dict(config or {})
        if page_size:
            self.initial_config["page_size"] = int(page_size)
        if resolve_mode:
            self.initial_config["resolve_mode"] = resolve_mode
        self.keep_state = keep_state if keep_state is not None else bool(
            state_dir or os.environ.get("HUBFS_TEST_KEEP_STATE"))
        self.startup_timeout = startup_timeout
        self.secret = secrets.token_hex(16)
        self.state = self.endpoint = self.cdn = self.fault_cdn = self.cas = None
        self.xet_built = True           # False: some xet files are served by the bridge only
        self.manifest = self.tokens = None
        self._nginx = self._emu = None

    # ------------------------------------------------------------ lifecycle
    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def start(self):
        try:
            self._make_state()
            self._start_nginx()
            self._start_emulator()
            self.build_xet()
            self.reload()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        _stop(self._emu)
        _stop(self._nginx)
        self._emu = self._nginx = None
        if self.state and not self.keep_state:
            shutil.rmtree(self.state, ignore_errors=True)

    def _make_state(self):
        if self.requested_state:
            self.state = os.path.abspath(self.requested_state)
            os.makedirs(self.state, exist_ok=True)
        else:
            self.state = tempfile.mkdtemp(prefix="hubstack-")
        os.chmod(self.state, 0o755)
        for sub in ("cdn", "xorbs"):
            os.makedirs(os.path.join(self.state, sub), exist_ok=True)
            os.chmod(os.path.join(self.state, sub), 0o755)
        self.cdn_log_path = os.path.join(self.state, "cdn.log")
        open(self.cdn_log_path, "a").close()

    def _start_nginx(self):
        ids = nginx_cdn.unprivileged_ids()
        for _ in range(10):
            port = free_port()
            conf = nginx_cdn.write_config(self.state, port, self.secret, self.cdn_log_path, self.cdn_rate)
            nginx_cdn.prepare_permissions(self.state, self.cdn_log_path, ids)
            err = open(os.path.join(self.state, "nginx", "stderr"), "ab")
            kwargs = {"user": ids[0], "group": ids[1], "extra_groups": []} if ids else {}
            self._nginx = subprocess.Popen(
                nginx_cdn.command(self.state, conf), stdin=subprocess.DEVNULL, stdout=err,
                stderr=err, start_new_session=True,
                preexec_fn=_die_with_parent(signal.SIGKILL), **kwargs)
            err.close()
            if self._wait_port(port, self._nginx, 10):
                self.cdn = "http://127.0.0.1:%d" % port
                return
            log = _tail(os.path.join(self.state, "nginx", "error.log"))
            _stop(self._nginx)
            if "Address already in use" not in log:
                raise StackError("nginx did not start:\n" + log)
        raise StackError("nginx: no free port after 10 tries")

    @staticmethod
    def _wait_port(port, proc, timeout):
        """True once nginx answers GET /_health on `port`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            try:
                conn.request("GET", "/_health")
                if conn.getresponse().status == 200:
                    return True
            except OSError:
                time.sleep(0.02)
            finally:
                conn.close()
        return False

    def _start_emulator(self):
        ready = os.path.join(self.state, "emulator.json")
        if os.path.exists(ready):
            os.unlink(ready)
        cmd = [PYTHON, EMULATOR, "--state", self.state, "--cdn-url", self.cdn,
               "--secret", self.secret, "--cdn-log", self.cdn_log_path,
               "--blob-cache", self.blob_cache, "--ready-file", ready,
               "--config", json.dumps(self.initial_config)]
        if not self.default_fixtures:
            cmd.append("--no-default-fixtures")
        if self.fixtures:
            cmd += ["--fixtures"] + self.fixtures
        out_path = os.path.join(self.state, "emulator.out")
        with open(out_path, "ab") as out:
            self._emu = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                         start_new_session=True,
                                         preexec_fn=_die_with_parent(signal.SIGKILL))
        deadline = time.monotonic() + self.startup_timeout
        while not os.path.exists(ready):
            if self._emu.poll() is not None or time.monotonic() > deadline:
                raise StackError("emulator did not start:\n" + _tail(out_path))
            time.sleep(0.05)
        with open(ready) as f:
            info = json.load(f)
        self.endpoint, self.fault_cdn, self.cas = info["endpoint"], info["fault_cdn"], info["cas"]
        self.control("GET", "/_emu/health")

    def build_xet(self):
        """Have hf_xet upload every xet file not built yet into the emulator's
        CAS (tests/harness/xet_build.py; results kept in the blob cache).
        Without the test venv, say so: those files keep placeholder hashes
        and are served through the resolve bridge only."""
        pending = self.control("GET", "/_emu/xet")["pending"]
        if not pending:
            self.xet_built = True
            return
        python = xet_python()
        if python is None:
            self.xet_built = False
            print("hubstack: no test venv (HUBFS_TEST_PYTHON, .ci/install-venv): %d xet file(s) "
                  "have no Xet objects and are served through the resolve bridge only"
                  % len(pending), file=sys.stderr)
            return
        tok = self.control("POST", "/_emu/xet/write-token", {})
        log_path = os.path.join(self.state, "xet-build.log")
        with open(log_path, "ab") as log:
            rc = subprocess.call([python, XET_BUILDER, "--cas", self.cas, "--token", tok["accessToken"],
                                  "--exp", str(tok["exp"])] + [p["path"] for p in pending],
                                 stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                 preexec_fn=_die_with_parent(signal.SIGKILL), timeout=self.startup_timeout)
        left = self.control("GET", "/_emu/xet")["pending"]
        if rc != 0 or left:
            raise StackError("Xet build failed (exit %d, %d file(s) left):\n%s" % (rc, len(left), _tail(log_path)))
        self.xet_built = True

    # ------------------------------------------------------------ helpers
    def env(self):
        """The HUBFS_TEST_* variables for a test command."""
        return {"HUBFS_TEST_ENDPOINT": self.endpoint, "HUBFS_TEST_CDN": self.cdn,
                "HUBFS_TEST_FAULT_CDN": self.fault_cdn, "HUBFS_TEST_CAS": self.cas,
                "HUBFS_TEST_STATE": self.state,
                "HUBFS_TEST_MANIFEST": os.path.join(self.state, "manifest.json"),
                "HUBFS_TEST_CDN_LOG": self.cdn_log_path,
                "HUBFS_TEST_TOKENS": os.path.join(self.state, "tokens.json")}

    def reload(self):
        """Re-read manifest.json and tokens.json."""
        with open(os.path.join(self.state, "manifest.json"), encoding="utf-8") as f:
            self.manifest = json.load(f)
        with open(os.path.join(self.state, "tokens.json"), encoding="utf-8") as f:
            self.tokens = json.load(f)

    def control(self, method, path, body=None):
        """Call the emulator's /_emu/ API; returns the decoded JSON."""
        url = urllib.parse.urlsplit(self.endpoint)
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
        try:
            data = None if body is None else json.dumps(body).encode()
            headers = {"Content-Type": "application/json"} if data is not None else {}
            conn.request(method, path, data, headers)
            resp = conn.getresponse()
            payload = resp.read()
            if resp.status != 200:
                raise StackError("%s %s: %d %s" % (method, path, resp.status, payload[:500]))
            return json.loads(payload)
        finally:
            conn.close()

    def token(self, user):
        return self.tokens["users"][user]["token"]

    @property
    def invalid_token(self):
        return self.tokens["invalid"]

    def repo(self, repo_id, rtype="model"):
        for r in self.manifest["repos"]:
            if r["id"] == repo_id and r["type"] == rtype:
                return r
        raise KeyError("%s/%s" % (rtype, repo_id))

    def hub_log(self, since=0):
        return self.control("GET", "/_emu/log?since=%d" % since)

    def cdn_log(self):
        """Every CDN request so far (nginx and fault CDN), oldest first."""
        with open(self.cdn_log_path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]

    def clear_logs(self):
        self.control("POST", "/_emu/log/clear")
        with open(self.cdn_log_path, "r+") as f:
            f.truncate(0)

    def fault(self, **rule):
        """Add a fault rule (see tests/README.md); returns it with its id."""
        return self.control("POST", "/_emu/faults", rule)

    def clear_faults(self):
        self.control("DELETE", "/_emu/faults")

    def configure(self, **settings):
        return self.control("POST", "/_emu/config", settings)

    def commit(self, repo, files=None, delete=None, branch=None, message="Runtime commit",
               rtype="model", **extra):
        """Push a commit while running; returns its sha (manifest is reloaded)."""
        body = dict(extra, repo=repo, type=rtype, message=message, files=files or {},
                    delete=delete or [])
        if branch:
            body["ref"] = branch
        sha = self.control("POST", "/_emu/commit", body)["sha"]
        self.build_xet()
        self.reload()
        return sha


# ------------------------------------------------------------------ command

def parse_args(argv):
    ap = argparse.ArgumentParser(description="Run a command against the Hub emulator + nginx CDN.")
    ap.add_argument("mode", choices=("run", "serve"))
    ap.add_argument("--fixtures", nargs="*", default=[], help="extra fixture files")
    ap.add_argument("--no-default-fixtures", action="store_true")
    ap.add_argument("--page-size", type=int)
    ap.add_argument("--cdn-rate", help="nginx limit_rate per connection, e.g. 10m")
    ap.add_argument("--resolve-mode", choices=("redirect", "direct"))
    ap.add_argument("--direct-lfs", action="store_true", help="emulator serves LFS bytes itself")
    ap.add_argument("--state", help="state folder (kept); default: a temporary one, removed")
    ap.add_argument("--blob-cache", help="generated content cache (default $HUBFS_TEST_BLOB_CACHE "
                    "or TMPDIR/hubfs-test-blobs-UID)")
    cmd = []
    if "--" in argv:
        argv, cmd = argv[:argv.index("--")], argv[argv.index("--") + 1:]
    args = ap.parse_args(argv)
    args.cmd = cmd
    if args.mode == "run" and not args.cmd:
        ap.error("run needs -- CMD [ARG ...]")
    return args


def _run_child(stack, cmd):
    env = dict(os.environ, **stack.env())
    try:
        child = subprocess.Popen(cmd, env=env, preexec_fn=_die_with_parent(signal.SIGTERM))
    except OSError as e:
        print("hubstack: cannot run %s: %s" % (cmd[0], e), file=sys.stderr)
        return 127

    def forward(signum, _frame):
        try:
            child.send_signal(signum)
        except ProcessLookupError:
            pass
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGHUP, forward)
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the terminal already sent it to CMD
    rc = child.wait()
    return rc if rc >= 0 else 128 - rc


def _serve(stack):
    for k, v in stack.env().items():
        print("export %s=%s" % (k, v))
    print("# serving; Ctrl-C to stop", flush=True)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGHUP, lambda *_: stop.append(1))
    try:
        while not stop:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    return 0


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    config = {"direct_lfs": True} if args.direct_lfs else {}

    def interrupted(signum, _frame):
        raise KeyboardInterrupt("signal %d" % signum)
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGHUP, interrupted)
    stack = Stack(args.state, args.fixtures, args.page_size, args.cdn_rate, args.resolve_mode,
                  default_fixtures=not args.no_default_fixtures, blob_cache=args.blob_cache,
                  config=config)
    try:
        with stack:
            if args.mode == "serve":
                return _serve(stack)
            return _run_child(stack, args.cmd)
    except KeyboardInterrupt:
        return 130
    except StackError as e:
        print("hubstack: %s" % e, file=sys.stderr)
        return 125


if __name__ == "__main__":
    sys.exit(main())
