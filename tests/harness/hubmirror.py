"""hubmirror.py -- run contrib/mirror/hubfs-mirror for a test or a benchmark.

    with hubmirror.Mirror(upstream=stack.endpoint, cache_dir=DIR) as mirror:
        mirror.url            # http://127.0.0.1:PORT, for HF_ENDPOINT / --endpoint
        mirror.log()          # the access log, one dict per request

Starts the mirror on a free loopback port (retrying on a port taken in the
meantime), waits until it answers its health URL, and stops it: SIGTERM to
nginx's master (the mirror execs nginx, so the pid we started is the
master), then SIGKILL to its process group, in which nginx's workers stay.
The master gets PR_SET_PDEATHSIG, as hubstack's servers do.  Under root the
workers run as nobody, so cache_dir must be reachable by them (a folder under
/tmp with mode 0755 is).  Its stdout and stderr go to CACHE_DIR/mirror.out.
Standard library only.
"""

import http.client
import json
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import hubstack  # noqa: E402

MIRROR = os.path.normpath(os.path.join(HERE, "..", "..", "contrib", "mirror",
                                       "hubfs-mirror"))
HEALTH = "/.hubfs-mirror/health"


class MirrorError(RuntimeError):
    pass


class Mirror:
    def __init__(self, upstream, cache_dir, args=()):
        self.upstream = upstream
        self.cache_dir = os.path.abspath(cache_dir)
        self.args = list(args)
        self.proc = None
        self.port = self.url = None
        self.out_path = os.path.join(self.cache_dir, "mirror.out")
        self.access_log = os.path.join(self.cache_dir, "logs", "access.log")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def start(self, timeout=20):
        os.makedirs(self.cache_dir, exist_ok=True)
        for _ in range(10):
            self.port = hubstack.free_port()
            cmd = [MIRROR, "--upstream", self.upstream,
                   "--listen", "127.0.0.1:%d" % self.port,
                   "--cache-dir", self.cache_dir] + self.args
            with open(self.out_path, "ab") as out:
                self.proc = subprocess.Popen(
                    cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                    start_new_session=True,
                    preexec_fn=hubstack._die_with_parent(signal.SIGKILL))
            if self._wait(timeout):
                self.url = "http://127.0.0.1:%d" % self.port
                return self
            text = self.output()
            self.stop()
            if "Address already in use" not in text:
                raise MirrorError("hubfs-mirror did not start:\n" + text[-3000:])
        raise MirrorError("hubfs-mirror: no free port after 10 tries")

    def _wait(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            try:
                conn.request("GET", HEALTH)
                if conn.getresponse().status == 200:
                    return True
            except OSError:
                time.sleep(0.05)
            finally:
                conn.close()
        return False

    def stop(self):
        p, self.proc = self.proc, None
        if p is None:
            return
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)   # nginx: fast shutdown
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                pass
        try:                                # workers left behind, if any
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if p.poll() is None:
            p.kill()
        p.wait()

    def output(self):
        try:
            with open(self.out_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log(self):
        """Every request the mirror logged (nginx logs one when it ends)."""
        try:
            with open(self.access_log, encoding="utf-8") as f:
                return [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []
