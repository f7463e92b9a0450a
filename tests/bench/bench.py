#!/usr/bin/python3
"""bench.py -- hubfs against curl, aria2c, httpdirfs and rclone on the test CDN.

    /usr/bin/python3 tests/bench/bench.py [--cases cold,peers,...] [--rate 100m]
        [--keep] [--json FILE] [--list]

Starts the Hub emulator and the nginx CDN (tests/harness/hubstack.py) with
the 1 GiB LFS fixture (tests/fixtures/large/big-file.json), once with the
CDN uncapped and once with nginx `limit_rate` per connection, runs the
selected cases and prints one table of measurements (time, throughput, CDN
bytes from nginx's JSON access log, the daemon's VmHWM) and one table of
ratios measured in this run beside their targets.  It never asserts a time:
it exits 0 when it could run, whatever the numbers; a case that cannot run
(a peer missing, a timeout, a failed mount) prints n/a with the reason.

Everything it mounts (hubfs, httpdirfs, rclone) is unmounted and every
process it started is stopped on the way out, on failure, Ctrl-C or SIGTERM.
What each case measures is in tests/bench/README.md.  Standard library only.
The hubfs binary is $HUBFS_BIN, else build/hubfs.
"""

import argparse
import ctypes
import http.client
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import mountlib  # noqa: E402  (path set above; it brings hubstack too)
import hubstack  # noqa: E402
import hubmirror  # noqa: E402  (tests/harness/, on the path through mountlib)

MiB = 1 << 20
GiB = 1 << 30

BIG_FIXTURE = os.path.join(ROOT, "tests", "fixtures", "large", "big-file.json")
FOUR_FIXTURE = os.path.join(HERE, "four-big.json")
BIG_REPO, BIG_FILE = "acme/big-model", "model-1g.safetensors"
FOUR_REPO = "acme/four-big"
FOUR_FILES = ["part-%d.safetensors" % i for i in range(1, 5)]
XET_FIXTURE = os.path.join(ROOT, "tests", "fixtures", "large", "xet.json")
XET_REPO, XET_FILE = "acme/xet-revisions", "model.bin"
XET_UPDATE_FIXTURE = os.path.join(ROOT, "tests", "fixtures", "large", "xet-update.json")
XET_UPDATE_REPO = "acme/xet-update"
LOAD_FIXTURE = os.path.join(HERE, "model-load.json")
LOAD_REPO = "acme/bench-load"
LOAD_SCRIPT = os.path.join(HERE, "load_model.py")
MANY_FIXTURE = os.path.join(ROOT, "tests", "fixtures", "large", "many-files.json")
MANY_REPO = "acme/many-files"

CASES = ["cold", "peers", "warm", "first", "threads", "random", "rss", "fleet", "xet",
         "load", "lslr", "xetcold", "xetupdate"]
CASE_HELP = {
    "cold": "cold sequential read: hubfs vs curl (1 stream) vs aria2c -x16 -s16 (alone "
            "and + openssl sha256), and hubfs pull, CDN uncapped and rate-limited, "
            "medians of --runs",
    "peers": "the same file through httpdirfs --cache and rclone mount "
             "--vfs-cache-mode full: cold (both CDN rates), warm after remount",
    "warm": "hubfs warm read after remount and re-read in the same mount vs "
            "reading store/blobs/<sha256> directly",
    "first": "first 1 MiB of a cold file: time and CDN bytes (rate-limited CDN)",
    "threads": "8 threads pread one descriptor vs 8 descriptors, disjoint ranges "
               "covering the file, cold (rate-limited CDN)",
    "random": "fio --readonly 4 KiB random reads on a cold file: CDN bytes per read "
              "(rate-limited CDN)",
    "rss": "daemon VmHWM while one mount streams 4 different 1 GiB files at once "
           "(uncapped CDN)",
    "fleet": "1, then 3 mounts with their own stores (machines) read the file at once: "
             "each from the CDN vs through contrib/mirror/hubfs-mirror, cold and warm: "
             "CDN bytes and time, medians of --runs (CDN uncapped and rate-limited)",
    "xet": "huggingface_hub + hf_xet download a 256 MiB Xet file on 2 machines in turn: "
           "from the Hub (CAS, xorbs) vs through hubfs-mirror (bridge), then hubfs the "
           "same: CDN bytes and time, medians of --runs (CDN uncapped)",
    "load": "a 1 GiB safetensors model (load_file; safe_open, every tensor in file order) "
            "and a 1 GiB GGUF (GGUFReader mmap, every byte): hubfs cold, warm after "
            "remount, re-read in the same mount vs hf download + load vs a local copy, "
            "medians of --runs (CDN uncapped)",
    "lslr": "ls -lR of the 100,001-file dataset, warm: hubfs by default and with "
            "-o xattr vs the same tree on local disk, medians of --runs",
    "xetcold": "cold read of a 1 GiB Xet file: hubfs through the CAS vs hubfs --no-xet "
               "(the bridge) vs hf download (huggingface_hub + hf_xet) vs aria2c -x16 on "
               "the bridge URL, medians of --runs (CDN uncapped)",
    "xetupdate": "revision 2 of the 1 GiB Xet file (100 regions of 100 KiB rewritten) after "
                 "revision 1: xorb CDN bytes, hubfs vs hf download, medians of --runs "
                 "(CDN uncapped)",
}
# Which stack a case runs on: "open" = CDN uncapped, "rate" = limit_rate.
CASE_STACKS = {"cold": ("open", "rate"), "peers": ("open", "rate"), "warm": ("open",),
               "rss": ("open",), "first": ("rate",), "threads": ("rate",),
               "random": ("rate",), "fleet": ("open", "rate"), "xet": ("open",),
               "load": ("open",), "lslr": ("open",),
               "xetcold": ("open",), "xetupdate": ("open",)}

READ_TIMEOUT = 180      # one cold 1 GiB read (100 MiB/s takes ~11 s)
MOUNT_TIMEOUT = 60
FIO_IOS = 2000
THREADS = 8
FLEET = 3               # mounts in the fleet case, each with its own store
BEST_OF = 3             # warm and re-read: best of this many

PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


class NA(Exception):
    """A measurement that could not be made; the text is the reason."""


def log(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


_CLK_TCK = os.sysconf("SC_CLK_TCK")


def busy_cpu():
    """Busy CPU seconds of the whole machine so far (/proc/stat: user, nice,
    system, irq, softirq, steal), or None.  Machine-wide, so that work a
    reader causes elsewhere (the kernel, the CDN, writeback) counts too."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = v
    return (user + nice + system + irq + softirq + steal) / _CLK_TCK


def cpu_since(mark):
    now = busy_cpu()
    return None if mark is None or now is None else now - mark


def proc_cpu(pid):
    """CPU seconds (user + system, all threads) of a running process, or 0."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            v = f.read().rsplit(")", 1)[1].split()
        return (int(v[11]) + int(v[12])) / _CLK_TCK
    except (OSError, ValueError, IndexError):
        return 0.0


def proc_children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except (OSError, ValueError):
        return []


class CpuMark:
    """Busy CPU seconds from here on: machine-wide (`cpu`), and of the
    case's own processes (`own_cpu`): the children the bench reaps
    meanwhile (readers, curl, aria2c, openssl, hubfs pull), the daemons and
    peer mounts up, and the stack's nginx (whose sends are the loopback's
    receive work too).  Other engineers' load on a shared machine is in the
    first and not the second; kernel work in no process (writeback
    threads, ksoftirqd) is in the first only."""

    def __init__(self, bench):
        self.bench = bench
        self.busy = busy_cpu()
        self.own = bench.own_cpu()

    def end(self):
        own = self.bench.own_cpu()
        return {"cpu": cpu_since(self.busy),
                "own_cpu": None if self.own is None or own is None else own - self.own}


# --------------------------------------------------------------- the worker
# `bench.py --worker ...` is the reader the cases time.  It runs as its own
# process so that a read stuck in a FUSE file can be killed by a timeout.

def worker_read(path, offset, length):
    """Read [offset, offset+length) (length -1: to the end) in 1 MiB reads."""
    buf = bytearray(MiB)
    view = memoryview(buf)
    done = 0
    t0 = time.monotonic()
    fd = os.open(path, os.O_RDONLY)
    try:
        pos = offset
        while length < 0 or done < length:
            want = MiB if length < 0 else min(MiB, length - done)
            n = os.preadv(fd, [view[:want]], pos)
            if n == 0:
                break
            done += n
            pos += n
    finally:
        os.close(fd)
    return {"bytes": done, "seconds": time.monotonic() - t0}


def worker_threads(path, nthreads, shared):
    """nthreads threads pread disjoint ranges covering the file, through one
    shared descriptor or one descriptor each; timed from the first open."""
    size = os.stat(path).st_size
    step = -(-size // nthreads // MiB) * MiB
    ranges = [(i * step, min(size, (i + 1) * step)) for i in range(nthreads)]
    got = [0] * nthreads
    errors = []
    t0 = time.monotonic()
    fd_shared = os.open(path, os.O_RDONLY) if shared else -1

    def run(i):
        start, end = ranges[i]
        buf = memoryview(bytearray(MiB))
        fd = fd_shared if shared else os.open(path, os.O_RDONLY)
        try:
            pos = start
            while pos < end:
                n = os.preadv(fd, [buf[:min(MiB, end - pos)]], pos)
                if n == 0:
                    raise OSError("short read at %d" % pos)
                pos += n
                got[i] += n
        except OSError as e:
            errors.append(str(e))
        finally:
            if not shared:
                os.close(fd)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(nthreads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if shared:
        os.close(fd_shared)
    return {"bytes": sum(got), "seconds": time.monotonic() - t0, "errors": errors}


def worker_main(argv):
    mode = argv[0]
    if mode == "read":
        out = worker_read(argv[1], int(argv[2]), int(argv[3]))
    elif mode == "threads":
        out = worker_threads(argv[1], int(argv[2]), argv[3] == "shared")
    else:
        raise SystemExit("unknown worker mode " + mode)
    print(json.dumps(out))
    return 0


# --------------------------------------------------------------- processes

def _pdeathsig(sig):
    def hook():
        _libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
    return hook


def mounted(path):
    return mountlib.mounted(path)


def read_status(pid, field):
    """A kB field of /proc/PID/status (VmHWM, VmRSS) in bytes, or None."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def wchar(pid):
    try:
        with open("/proc/%d/io" % pid) as f:
            for line in f:
                if line.startswith("wchar:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


class PeerMount:
    """httpdirfs or rclone, in the foreground as our child, on a mount point."""

    def __init__(self, bench, kind, url, mnt, cache, logfile):
        self.bench, self.kind, self.url = bench, kind, url
        self.mnt, self.cache, self.logfile = mnt, cache, logfile
        self.proc = None
        os.makedirs(mnt, exist_ok=True)
        os.makedirs(cache, exist_ok=True)

    def command(self):
        if self.kind == "httpdirfs":
            # nginx sends no Accept-Ranges on a 206, which httpdirfs 1.2's
            # range check wants; ranges work (the check is the documented
            # workaround's target).
            return ["httpdirfs", "-f", "--no-range-check", "--cache",
                    "--cache-location", self.cache, self.url, self.mnt]
        return ["rclone", "mount", ":http:", self.mnt, "--http-url", self.url,
                "--vfs-cache-mode", "full", "--cache-dir", self.cache,
                "--config", os.devnull, "--log-file", self.logfile, "-v"]

    def start(self):
        out = open(self.logfile, "ab")
        try:
            self.proc = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                env=self.bench.peer_env(), start_new_session=True,
                preexec_fn=_pdeathsig(signal.SIGTERM))
        finally:
            out.close()
        self.bench.peers.append(self)
        deadline = time.monotonic() + MOUNT_TIMEOUT
        try:
            while not mounted(self.mnt):
                if self.proc.poll() is not None:
                    raise NA("%s exited with %d: %s" % (self.kind, self.proc.returncode,
                                                        tail(self.logfile, 300)))
                if time.monotonic() > deadline:
                    raise NA("%s did not mount within %d s" % (self.kind, MOUNT_TIMEOUT))
                time.sleep(0.05)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        if self.proc is None:
            return
        unmount(self.mnt)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if mounted(self.mnt):
            subprocess.run(["fusermount3", "-uz", self.mnt], capture_output=True)
        if self in self.bench.peers:
            self.bench.peers.remove(self)
        self.proc = None


def unmount(mnt, tries=50):
    for _ in range(tries):
        if not mounted(mnt):
            return True
        r = subprocess.run(["fusermount3", "-u", mnt], capture_output=True)
        if r.returncode == 0:
            return True
        time.sleep(0.1)
    subprocess.run(["fusermount3", "-uz", mnt], capture_output=True)
    return not mounted(mnt)


def mounts_below(top):
    top = os.path.realpath(top)
    with open("/proc/self/mounts") as f:
        points = [line.split()[1] for line in f]
    return [p for p in points if p == top or p.startswith(top + "/")]


def tail(path, n):
    try:
        with open(path, errors="replace") as f:
            return " ".join(f.read()[-n:].split())
    except OSError:
        return ""


# --------------------------------------------------------------- one stack

class StackCtx:
    """One running emulator + nginx, the file's signed URL, the CDN log."""

    def __init__(self, label, rate, stack):
        self.label, self.rate, self.stack = label, rate, stack
        self.big = self.file(BIG_REPO, BIG_FILE)

    def file(self, repo, path):
        r = self.stack.repo(repo)
        return r["commits"][r["refs"]["main"]]["files"][path]

    def cdn_path(self, sha):
        return os.path.join(self.stack.state, "cdn", sha)

    def publish_files(self, repos):
        """STATE/files/<repo>/<path> -> cdn/<sha256> (LFS) or the content."""
        base = os.path.join(self.stack.state, "files")
        for repo in repos:
            r = self.stack.repo(repo)
            for path, f in r["commits"][r["refs"]["main"]]["files"].items():
                dest = os.path.join(base, repo, path)
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                target = self.cdn_path(f["sha256"]) if f["lfs"] else f["content"]
                if not os.path.lexists(dest):
                    os.symlink(target, dest)

    def signed_url(self, repo, path):
        """The CDN URL from the emulator's resolve 302 Location."""
        u = urllib.parse.urlsplit(self.stack.endpoint)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        try:
            conn.request("GET", "/%s/resolve/main/%s" % (repo, urllib.parse.quote(path)))
            r = conn.getresponse()
            r.read()
            loc = r.getheader("Location")
            if r.status != 302 or not loc:
                raise NA("resolve answered %d without a CDN Location" % r.status)
            return urllib.parse.urljoin(self.stack.endpoint + "/", loc)
        finally:
            conn.close()

    def log_mark(self):
        return os.path.getsize(self.stack.cdn_log_path)

    def cdn_bytes(self, mark):
        """(body bytes, requests) the CDN logged since mark."""
        time.sleep(0.2)   # nginx logs a request when it ends
        total = reqs = 0
        with open(self.stack.cdn_log_path, "rb") as f:
            f.seek(mark)
            for line in f:
                try:
                    e = json.loads(line)
                except ValueError:
                    continue
                total += max(0, int(e.get("bytes", 0)))
                reqs += 1
        return total, reqs


# --------------------------------------------------------------- the bench

class Bench:
    def __init__(self, args):
        self.args = args
        self.cases = args.cases
        self.rate = args.rate
        self.rows = []
        self.notes = []
        self.mounts = []        # hubfs mountlib.Mount objects still mounted
        self.peers = []         # PeerMount objects still mounted
        self.mirrors = []       # hubmirror.Mirror objects still running
        self.procs = set()      # running child processes (own process groups)
        self.can_drop = None
        self.work = None
        self.hubfs = mountlib.HUBFS
        self.timed = []         # CpuMark.end() of each timed run() in measure()
        self.last = {}          # ... of the last run(): cpu, own_cpu
        self.watch = []         # pids whose CPU counts as the case's own (nginx)

    # ---- bookkeeping
    def note(self, text):
        if text not in self.notes:
            self.notes.append(text)

    def add(self, rid, case, what, cdn, **fields):
        row = dict(id=rid, case=case, what=what, cdn=cdn, seconds=None, nbytes=None,
                   cdn_bytes=None, requests=None, hwm=None, cpu=None, own_cpu=None,
                   load=None,
                   note="", na=None)
        row.update(fields)
        self.rows.append(row)
        if row["na"]:
            log("%-8s %-34s %-9s n/a: %s" % (case, what, cdn, row["na"]))
        else:
            log("%-8s %-34s %-9s %s" % (case, what, cdn, fmt_row_short(row)))
        return row

    def measure(self, rid, case, what, cdn, fn):
        """Run fn() -> dict of row fields; any failure becomes an n/a row.
        The row's busy CPU seconds (`cpu`) are fn's own figure, else those
        of the one timed run (run(), worker()) fn made; with more than one
        timed run and no figure of fn's, the row has none."""
        self.timed = []
        load = load_avg()
        try:
            fields = fn()
            fields.setdefault("load", load)
            if fields.get("cpu") is None and len(self.timed) == 1:
                fields.update(self.timed[0])
        except KeyboardInterrupt:
            raise
        except NA as e:
            why = str(e)
        except subprocess.TimeoutExpired as e:
            prog = "reader" if "--worker" in e.cmd else os.path.basename(str(e.cmd[0]))
            why = "timed out after %g s (%s)" % (e.timeout, prog)
        except Exception as e:  # noqa: BLE001 -- a benchmark reports and goes on
            why = "%s: %s" % (type(e).__name__, e)
        else:
            return self.add(rid, case, what, cdn, **fields)
        why = " ".join(why.split())
        return self.add(rid, case, what, cdn, na=why[:240] + ("..." if len(why) > 240 else ""))

    def row(self, rid):
        for r in self.rows:
            if r["id"] == rid and not r["na"]:
                return r
        return None

    # ---- processes
    def run(self, cmd, timeout, env=None, timed=True):
        """Run cmd in its own process group; (rc, stdout, stderr, seconds).
        The busy CPU seconds meanwhile (CpuMark) are self.last and, when
        timed, are noted for measure() (self.timed)."""
        cpu0 = CpuMark(self)
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=env, start_new_session=True)
        self.procs.add(p)
        try:
            out, err = p.communicate(timeout=timeout)
        except BaseException:       # a timeout, Ctrl-C, SIGTERM
            kill_group(p)
            p.communicate()
            raise
        finally:
            self.procs.discard(p)
        secs = time.monotonic() - t0
        self.last = cpu0.end()
        if timed:
            self.timed.append(self.last)
        return p.returncode, out.decode(errors="replace"), err.decode(errors="replace"), \
            secs

    def worker(self, args, timeout=None):
        timeout = timeout or self.args.read_timeout
        rc, out, err, _ = self.run([sys.executable, os.path.abspath(__file__), "--worker"]
                                   + [str(a) for a in args], timeout)
        if rc != 0:
            raise NA("reader failed (%d): %s" % (rc, " ".join(err.split())[-300:]))
        res = json.loads(out)
        res.update(self.last)
        if res.get("errors"):
            raise NA("reader: " + "; ".join(sorted(set(res["errors"])))[:300])
        return res

    def read_all(self, path, size, timeout=None):
        res = self.worker(["read", path, 0, -1], timeout)
        if res["bytes"] != size:
            raise NA("read %d bytes of %d" % (res["bytes"], size))
        return res

    def stat_size(self, path):
        rc, out, err, _ = self.run(["stat", "-L", "-c", "%s", path], MOUNT_TIMEOUT,
                                   timed=False)
        if rc != 0:
            raise NA("stat failed: " + " ".join(err.split())[-200:])
        return int(out.strip())

    def peer_env(self):
        home = os.path.join(self.work, "peer-home")
        os.makedirs(home, exist_ok=True)
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home,
                "XDG_CACHE_HOME": os.path.join(home, ".cache"),
                "XDG_CONFIG_HOME": os.path.join(home, ".config"), "LANG": "C.UTF-8"}

    def own_cpu(self):
        """CPU seconds so far of the reaped children, the mounted daemons
        and peers, and the watched pids (the stack's nginx and workers)."""
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        pids = set()
        for pid in self.watch:
            pids.add(pid)
            pids.update(proc_children(pid))
        pids.update(m.bench_pid for m in self.mounts if getattr(m, "bench_pid", None))
        pids.update(pm.proc.pid for pm in self.peers if pm.proc)
        return ru.ru_utime + ru.ru_stime + sum(proc_cpu(p) for p in pids)

    # ---- hubfs mounts
    def hubfs_mount(self, ctx, name, store, endpoint=None, args=()):
        if not os.access(self.hubfs, os.X_OK):
            raise NA("no hubfs binary at %s (make build, or set HUBFS_BIN)" % self.hubfs)
        m = mountlib.Mount(self.work, endpoint or ctx.stack.endpoint, name=name,
                           store=store, args=args)
        self.mounts.append(m)
        # Mount.start runs mountlib.HUBFS: this one (--baseline swaps it).
        normal, mountlib.HUBFS = mountlib.HUBFS, self.hubfs
        try:
            m.start()
        finally:
            mountlib.HUBFS = normal
        pids = mountlib.daemon_pids(m.mnt)
        m.bench_pid = pids[0] if pids else None
        return m

    def hubfs_unmount(self, m):
        pids = mountlib.daemon_pids(m.mnt)
        try:
            m.stop()
        except AssertionError as e:
            self.note("sanitizer report from the hubfs daemon (%s): %s" % (m.mnt, str(e)[:300]))
        finally:
            if mounted(m.mnt):
                subprocess.run(["fusermount3", "-uz", m.mnt], capture_output=True)
            for pid in pids:
                stop_pid(pid)
            if m in self.mounts:
                self.mounts.remove(m)

    def hwm(self, m):
        return read_status(m.bench_pid, "VmHWM") if m.bench_pid else None

    def settle(self, m, quiet=1.0, limit=15.0):
        """Wait until the daemon has written nothing for `quiet` seconds (its
        readahead has landed), at most `limit` seconds."""
        pid = m.bench_pid
        if pid is None or wchar(pid) is None:
            time.sleep(quiet)
            return
        last, since, deadline = wchar(pid), time.monotonic(), time.monotonic() + limit
        while time.monotonic() < deadline:
            time.sleep(0.1)
            now = wchar(pid)
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return

    # ---- cold conditions
    def cold_prep(self, ctx, shas):
        """Flush and drop the page cache, then read the CDN's source files so
        that nginx serves from memory like a CDN edge, not from this disk."""
        os.sync()
        if self.can_drop is not False:
            try:
                with open("/proc/sys/vm/drop_caches", "w") as f:
                    f.write("3\n")
                self.can_drop = True
            except OSError as e:
                self.can_drop = False
                self.note("could not drop the page cache (%s; needs root): cold cases "
                          "use fresh stores and mounts only" % e.strerror)
        for sha in shas:
            with open(ctx.cdn_path(sha), "rb", buffering=0) as f:
                while f.read(8 * MiB):
                    pass

    def fresh(self, name):
        """An empty path in the work folder (never one with a mount below)."""
        path = os.path.join(self.work, name)
        if mounts_below(path):
            raise NA("%s is still mounted" % path)
        shutil.rmtree(path, ignore_errors=True)
        return path

    # ---- cleanup
    def cleanup(self):
        for p in list(self.procs):
            kill_group(p)
        for m in list(self.mounts):
            try:
                self.hubfs_unmount(m)
            except Exception as e:  # noqa: BLE001
                log("cleanup: %s: %s" % (m.mnt, e))
        for pm in list(self.peers):
            try:
                pm.stop()
            except Exception as e:  # noqa: BLE001
                log("cleanup: %s: %s" % (pm.mnt, e))
        for mi in list(self.mirrors):
            try:
                mi.stop()
            except Exception as e:  # noqa: BLE001
                log("cleanup: mirror %s: %s" % (mi.cache_dir, e))
            self.mirrors.remove(mi)


def kill_group(p):
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def stop_pid(pid):
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not os.path.exists("/proc/%d" % pid):
                return
            try:
                with open("/proc/%d/stat" % pid) as f:
                    if f.read().split(")")[-1].split()[0] == "Z":
                        return
            except OSError:
                return
            time.sleep(0.05)


# --------------------------------------------------------------- the cases

def hubfs_read_case(b, ctx, rid, case, what, store_name, read, shas=None, settle=False):
    """Fresh store, cold caches, mount, stat, then time `read(m, path)`;
    CDN bytes are counted after the unmount."""
    def fn():
        store = b.fresh(store_name)
        b.cold_prep(ctx, shas or [ctx.big["sha256"]])
        m = b.hubfs_mount(ctx, store_name, store)
        try:
            path = m.path(BIG_REPO, BIG_FILE)
            if b.stat_size(path) != ctx.big["size"]:
                raise NA("wrong size in the mount")
            mark = ctx.log_mark()
            fields = read(m, path)
            if settle:
                b.settle(m)
            fields["hwm"] = b.hwm(m)
        finally:
            b.hubfs_unmount(m)
        fields["cdn_bytes"], fields["requests"] = ctx.cdn_bytes(mark)
        shutil.rmtree(store, ignore_errors=True)
        return fields
    return b.measure(rid, case, what, ctx.label, fn)


# The cold case's rows: (id suffix, what the row says).
COLD_ROWS = [("hubfs", "hubfs (cat-like read)"),
             ("curl", "curl (1 stream, to /dev/null)"),
             ("aria2c", "aria2c -x16 -s16 (to disk)"),
             ("aria2c+sha256", "aria2c -x16, then openssl dgst -sha256"),
             ("pull", "hubfs pull (to the store, verified)")]


def case_cold(b, ctx):
    """hubfs, curl, aria2c (alone and followed by openssl's sha256 of its
    file: hubfs's verified read is that work) and hubfs pull, each a median
    of --runs runs taken in turn, so that the machine's swings hit every
    row alike."""
    size, sha = ctx.big["size"], ctx.big["sha256"]

    def hubfs(binary=None):
        if binary:
            normal, b.hubfs = b.hubfs, binary
            try:
                return hubfs()
            finally:
                b.hubfs = normal
        store = b.fresh("cold-%s-store" % ctx.label)
        b.cold_prep(ctx, [sha])
        load = load_avg()
        m = b.hubfs_mount(ctx, "cold-%s" % ctx.label, store)
        try:
            path = m.path(BIG_REPO, BIG_FILE)
            if b.stat_size(path) != size:
                raise NA("wrong size in the mount")
            mark = ctx.log_mark()
            r = b.read_all(path, size)
            hwm = b.hwm(m)
        finally:
            b.hubfs_unmount(m)
        cdn, reqs = ctx.cdn_bytes(mark)
        shutil.rmtree(store, ignore_errors=True)
        return {"seconds": r["seconds"], "nbytes": r["bytes"], "cpu": r["cpu"],
                "own_cpu": r["own_cpu"], "cdn_bytes": cdn, "requests": reqs, "hwm": hwm,
                "load": load}

    def curl():
        if not shutil.which("curl"):
            raise NA("curl not installed (apt-get install curl)")
        url = ctx.signed_url(BIG_REPO, BIG_FILE)
        b.cold_prep(ctx, [sha])
        load = load_avg()
        mark = ctx.log_mark()
        rc, out, err, secs = b.run(["curl", "-sS", "-f", "-o", os.devnull,
                                    "-w", "%{size_download}", url], b.args.read_timeout)
        cpu = b.last
        if rc != 0:
            raise NA("curl exited %d: %s" % (rc, err.strip()[-200:]))
        got = int(float(out.strip() or 0))
        if got != size:
            raise NA("curl got %d bytes of %d" % (got, size))
        cdn, reqs = ctx.cdn_bytes(mark)
        return dict(cpu, seconds=secs, nbytes=got, cdn_bytes=cdn, requests=reqs, load=load)

    def aria2c():
        """aria2c's download, then openssl's sha256 of the file it wrote
        (from the page cache): two results, aria2c's and both together."""
        if not shutil.which("aria2c"):
            raise NA("aria2c not installed (apt-get install aria2)")
        url = ctx.signed_url(BIG_REPO, BIG_FILE)
        d = b.fresh("aria2-out")
        os.makedirs(d)
        b.cold_prep(ctx, [sha])
        load = load_avg()
        mark = ctx.log_mark()
        out_file = os.path.join(d, "out.bin")
        try:
            rc, out, err, secs = b.run(
                ["aria2c", "-x16", "-s16", "-q", "--file-allocation=none",
                 "--allow-overwrite=true", "--auto-file-renaming=false",
                 "--max-tries=1", "-d", d, "-o", "out.bin", url], b.args.read_timeout)
            cpu = b.last
            if rc != 0:
                raise NA("aria2c exited %d: %s" % (rc, (out + err).strip()[-200:]))
            got = os.path.getsize(out_file)
            dgst = None
            if shutil.which("openssl"):
                rc, out, err, dsecs = b.run(["openssl", "dgst", "-sha256", "-r", out_file],
                                            b.args.read_timeout)
                if rc == 0 and out.split()[:1] == [sha]:
                    dgst = (dsecs, b.last)
        finally:
            shutil.rmtree(d, ignore_errors=True)
        if got != size:
            raise NA("aria2c wrote %d bytes of %d" % (got, size))
        cdn, reqs = ctx.cdn_bytes(mark)
        one = dict(cpu, seconds=secs, nbytes=got, cdn_bytes=cdn, requests=reqs, load=load)
        both = None
        if dgst:
            both = dict(one, seconds=secs + dgst[0])
            for k in ("cpu", "own_cpu"):
                both[k] = None if None in (cpu[k], dgst[1][k]) else cpu[k] + dgst[1][k]
        return one, both

    def pull():
        """hubfs pull of the file into a fresh store: fetched, written,
        fdatasync'ed, hashed and recorded, like aria2c's download to disk
        plus the check."""
        store = b.fresh("cold-%s-pull" % ctx.label)
        b.cold_prep(ctx, [sha])
        load = load_avg()
        mark = ctx.log_mark()
        try:
            rc, out, err, secs = b.run(
                [b.hubfs, "pull", "-q", "--no-hf-cache", "--cache-dir", store,
                 "--endpoint", ctx.stack.endpoint, BIG_REPO, BIG_FILE],
                b.args.read_timeout)
            cpu = b.last
            if rc != 0:
                raise NA("hubfs pull exited %d: %s" % (rc, (out + err).strip()[-200:]))
            blob = os.path.join(store, "blobs", sha)
            if not os.path.exists(blob) or os.path.getsize(blob) != size:
                raise NA("hubfs pull left no complete blob")
        finally:
            shutil.rmtree(store, ignore_errors=True)
        cdn, reqs = ctx.cdn_bytes(mark)
        return dict(cpu, seconds=secs, nbytes=size, cdn_bytes=cdn, requests=reqs, load=load)

    rows = list(COLD_ROWS)
    if b.args.baseline:
        rows.insert(1, ("hubfs-baseline", "hubfs (cat-like read), --baseline binary"))
    runs = {key: [] for key, _ in rows}
    fails = {}

    def attempt(keys, fn):
        try:
            got = fn()
            for key, r in zip(keys, got if isinstance(got, tuple) else (got,)):
                if r is None:
                    fails.setdefault(key, "openssl missing or its digest was wrong")
                else:
                    runs[key].append(r)
        except KeyboardInterrupt:
            raise
        except NA as e:
            for key in keys:
                fails.setdefault(key, str(e))
        except subprocess.TimeoutExpired as e:
            for key in keys:
                fails.setdefault(key, "timed out after %g s" % e.timeout)
        except Exception as e:  # noqa: BLE001 -- a benchmark reports and goes on
            for key in keys:
                fails.setdefault(key, "%s: %s" % (type(e).__name__, e))

    for run in range(b.args.runs):
        log("cold run %d of %d (CDN %s, load %s)" % (run + 1, b.args.runs, ctx.label,
                                                    load_avg()))
        attempt(["hubfs"], hubfs)
        if b.args.baseline:
            attempt(["hubfs-baseline"], lambda: hubfs(b.args.baseline))
        attempt(["curl"], curl)
        attempt(["aria2c", "aria2c+sha256"], aria2c)
        attempt(["pull"], pull)
    for key, what in rows:
        add_median_row(b, "cold/%s/%s" % (ctx.label, key), "cold", what, ctx.label,
                       runs[key], fails.get(key))


def case_peers(b, ctx, warm):
    size, sha = ctx.big["size"], ctx.big["sha256"]
    url = ctx.stack.cdn + "/files/"
    for kind in ("httpdirfs", "rclone"):
        what = {"httpdirfs": "httpdirfs --cache",
                "rclone": "rclone mount --vfs-cache-mode full"}[kind]
        missing = None if shutil.which(kind) else \
            "%s not installed (apt-get install %s)" % (kind, kind)
        cache = os.path.join(b.work, "%s-%s-cache" % (kind, ctx.label))
        state = {}

        def mount():
            pm = PeerMount(b, kind, url, b.fresh("%s-%s-mnt" % (kind, ctx.label)), cache,
                           os.path.join(b.work, "%s-%s.log" % (kind, ctx.label)))
            return pm.start()

        def cold():
            if missing:
                raise NA(missing)
            b.fresh(os.path.basename(cache))
            b.cold_prep(ctx, [sha])
            pm = mount()
            try:
                path = os.path.join(pm.mnt, BIG_REPO, BIG_FILE)
                if b.stat_size(path) != size:
                    raise NA("wrong size in the mount")
                mark = ctx.log_mark()
                r = b.read_all(path, size)
            finally:
                pm.stop()
            state["cached"] = True
            cdn, reqs = ctx.cdn_bytes(mark)
            return {"seconds": r["seconds"], "nbytes": r["bytes"], "cdn_bytes": cdn,
                    "requests": reqs}
        b.measure("cold/%s/%s" % (ctx.label, kind), "cold", what, ctx.label, cold)

        def warm_read():
            if missing:
                raise NA(missing)
            if not state.get("cached"):
                raise NA("no cold read to warm up from")
            best = None
            for _ in range(BEST_OF):
                warm_files(cache)
                pm = mount()
                try:
                    path = os.path.join(pm.mnt, BIG_REPO, BIG_FILE)
                    b.stat_size(path)
                    mark = ctx.log_mark()
                    r = b.read_all(path, size)
                finally:
                    pm.stop()
                cdn, reqs = ctx.cdn_bytes(mark)
                if best is None or r["seconds"] < best["seconds"]:
                    best = {"seconds": r["seconds"], "nbytes": r["bytes"],
                            "cdn_bytes": cdn, "requests": reqs, "cpu": r["cpu"],
                            "own_cpu": r["own_cpu"],
                            "note": "best of %d remounts" % BEST_OF}
            return best
        if warm:
            b.measure("warm/%s" % kind, "warm", what + " after remount", ctx.label,
                      warm_read)
        shutil.rmtree(cache, ignore_errors=True)


def warm_files(top):
    """Read every file below top (a cache folder) into the page cache."""
    for d, _, names in os.walk(top):
        for n in names:
            p = os.path.join(d, n)
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, "rb", buffering=0) as f:
                    while f.read(8 * MiB):
                        pass


def case_warm(b, ctx):
    size, sha = ctx.big["size"], ctx.big["sha256"]
    store = b.fresh("warm-store")
    blob = os.path.join(store, "blobs", sha)
    state = {}

    def populate():
        b.cold_prep(ctx, [sha])
        m = b.hubfs_mount(ctx, "warm", store)
        try:
            path = m.path(BIG_REPO, BIG_FILE)
            b.stat_size(path)
            mark = ctx.log_mark()
            r = b.read_all(path, size)
            hwm = b.hwm(m)
        finally:
            b.hubfs_unmount(m)
        state["ok"] = True
        cdn, reqs = ctx.cdn_bytes(mark)
        return {"seconds": r["seconds"], "nbytes": r["bytes"], "cdn_bytes": cdn,
                "requests": reqs, "hwm": hwm, "note": "fills the store for the rows below"}
    b.measure("warm/populate", "warm", "hubfs cold read (fills store)", ctx.label, populate)

    def blob_read():
        if not state.get("ok"):
            raise NA("the store was not filled")
        if not os.path.isfile(blob):
            raise NA("no %s in the store after a full read" % os.path.relpath(blob, b.work))
        b.read_all(blob, size)      # into the page cache
        best = min((b.read_all(blob, size) for _ in range(BEST_OF)),
                   key=lambda r: r["seconds"])
        return {"seconds": best["seconds"], "nbytes": best["bytes"], "cpu": best["cpu"],
                "own_cpu": best["own_cpu"],
                "note": "best of %d, page cache" % BEST_OF}
    b.measure("warm/blob", "warm", "read of store/blobs/<sha256>", "-", blob_read)

    def remount_read():
        if not state.get("ok"):
            raise NA("the store was not filled")
        best = None
        rereads = []
        for i in range(BEST_OF):
            if os.path.isfile(blob):
                warm_files(os.path.join(store, "blobs"))
            m = b.hubfs_mount(ctx, "warm", store)
            try:
                path = m.path(BIG_REPO, BIG_FILE)
                b.stat_size(path)
                mark = ctx.log_mark()
                r = b.read_all(path, size)
                if i == BEST_OF - 1:
                    rereads = [b.read_all(path, size) for _ in range(BEST_OF)]
                hwm = b.hwm(m)
            finally:
                b.hubfs_unmount(m)
            cdn, reqs = ctx.cdn_bytes(mark)
            if best is None or r["seconds"] < best["seconds"]:
                best = {"seconds": r["seconds"], "nbytes": r["bytes"], "cdn_bytes": cdn,
                        "requests": reqs, "hwm": hwm, "cpu": r["cpu"],
                        "own_cpu": r["own_cpu"],
                        "note": "best of %d remounts" % BEST_OF}
        state["rereads"] = rereads
        return best
    b.measure("warm/hubfs", "warm", "hubfs after remount", ctx.label, remount_read)

    def reread():
        rr = state.get("rereads")
        if not rr:
            raise NA("no warm mount to re-read in")
        r = min(rr, key=lambda x: x["seconds"])
        return {"seconds": r["seconds"], "nbytes": r["bytes"], "cdn_bytes": 0,
                "cpu": r["cpu"], "own_cpu": r["own_cpu"],
                "note": "best of %d, same mount" % BEST_OF}
    b.measure("warm/reread", "warm", "hubfs re-read in the same mount", ctx.label, reread)
    shutil.rmtree(store, ignore_errors=True)


def case_first(b, ctx):
    def read(m, path):
        r = b.worker(["read", path, 0, MiB])
        if r["bytes"] != MiB:
            raise NA("read %d bytes of %d" % (r["bytes"], MiB))
        return {"seconds": r["seconds"], "nbytes": r["bytes"],
                "note": "CDN bytes counted after the daemon went quiet"}
    hubfs_read_case(b, ctx, "first/hubfs", "first", "hubfs first 1 MiB", "first-store",
                    read, settle=True)


def case_threads(b, ctx):
    size = ctx.big["size"]
    for shared, rid, what in ((True, "threads/onefd", "hubfs %d threads, 1 fd" % THREADS),
                              (False, "threads/fds", "hubfs %d threads, %d fds"
                               % (THREADS, THREADS))):
        def read(m, path, shared=shared):
            r = b.worker(["threads", path, THREADS, "shared" if shared else "own"])
            if r["bytes"] != size:
                raise NA("read %d bytes of %d" % (r["bytes"], size))
            return {"seconds": r["seconds"], "nbytes": r["bytes"]}
        hubfs_read_case(b, ctx, rid, "threads", what, "threads-store", read)


def case_random(b, ctx):
    size = ctx.big["size"]
    iolog = os.path.join(b.work, "fio-iolog")

    def read(m, path):
        if not shutil.which("fio"):
            raise NA("fio not installed (apt-get install fio)")
        if os.path.exists(iolog):
            os.unlink(iolog)
        cmd = ["fio", "--name=rand4k", "--filename=" + path, "--readonly",
               "--rw=randread", "--bs=4k", "--size=%d" % size,
               "--number_ios=%d" % b.args.random_ios, "--ioengine=psync",
               "--invalidate=0", "--randrepeat=1", "--write_iolog=" + iolog,
               "--output-format=json"]
        rc, out, err, secs = b.run(cmd, b.args.read_timeout, env=b.peer_env())
        if rc != 0:
            raise NA("fio exited %d: %s" % (rc, " ".join((err or out).split())[-300:]))
        try:
            job = json.loads(out[out.index("{"):])["jobs"][0]["read"]
        except (ValueError, KeyError, IndexError):
            raise NA("fio printed no JSON result")
        ios = job.get("total_ios") or job["io_bytes"] // 4096
        # The MiB blocks the reads touched: with 2000 reads over 1024 blocks
        # most blocks are touched, so bytes per read alone would hide a
        # fetch unit larger than the 1 MiB block; bytes per block shows it.
        blocks = set()
        with open(iolog, errors="replace") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 4 and parts[-3] == "read":
                    off, length = int(parts[-2]), int(parts[-1])
                    blocks.update(range(off // MiB, (off + length - 1) // MiB + 1))
        return {"seconds": secs, "nbytes": job["io_bytes"], "ios": ios,
                "blocks": len(blocks),
                "note": "%d reads in %d distinct MiB, fio %.0f IOPS"
                % (ios, len(blocks), job.get("iops", 0))}
    hubfs_read_case(b, ctx, "random/hubfs", "random", "hubfs fio 4 KiB randread",
                    "random-store", read, settle=True)


def case_rss(b, ctx):
    files = [ctx.file(FOUR_REPO, p) for p in FOUR_FILES]

    def fn():
        store = b.fresh("rss-store")
        b.cold_prep(ctx, [f["sha256"] for f in files])
        m = b.hubfs_mount(ctx, "rss", store)
        procs = []
        try:
            paths = [m.path(FOUR_REPO, p) for p in FOUR_FILES]
            for p in paths:
                b.stat_size(p)
            idle = b.hwm(m)
            mark = ctx.log_mark()
            cpu0 = CpuMark(b)
            t0 = time.monotonic()
            for p in paths:
                proc = subprocess.Popen(
                    [sys.executable, os.path.abspath(__file__), "--worker", "read", p,
                     "0", "-1"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, start_new_session=True)
                procs.append(proc)
                b.procs.add(proc)
            deadline = t0 + 2 * b.args.read_timeout
            results = []
            for proc in procs:
                try:
                    out, err = proc.communicate(timeout=max(1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    raise NA("4 readers not done within %d s" % (2 * b.args.read_timeout))
                if proc.returncode != 0:
                    raise NA("reader failed: %s" % " ".join(err.decode().split())[-200:])
                results.append(json.loads(out))
            secs = time.monotonic() - t0
            cpu = cpu0.end()
            hwm = b.hwm(m)
        finally:
            for proc in procs:
                if proc.poll() is None:
                    kill_group(proc)
                    proc.wait()
                b.procs.discard(proc)
            b.hubfs_unmount(m)
            shutil.rmtree(store, ignore_errors=True)
        got = sum(r["bytes"] for r in results)
        if got != sum(f["size"] for f in files):
            raise NA("read %d bytes of %d" % (got, sum(f["size"] for f in files)))
        cdn, reqs = ctx.cdn_bytes(mark)
        return {"seconds": secs, "nbytes": got, "cdn_bytes": cdn, "requests": reqs,
                "hwm": hwm, "cpu": cpu["cpu"], "own_cpu": cpu["own_cpu"],
                "note": "VmHWM after mount and stat: %s MiB"
                % ("?" if idle is None else "%.0f" % (idle / MiB))}
    b.measure("rss/hubfs", "rss", "hubfs 4 x 1 GiB at once", ctx.label, fn)


def load_avg():
    """The 1-minute load average (the machine is shared: figures swing)."""
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def cpu_seconds(roots):
    """CPU seconds (user + system) of the processes in roots and of their
    children (nginx's workers), as /proc has them now."""
    tick = os.sysconf("SC_CLK_TCK")
    roots = set(p for p in roots if p)
    total = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(name) in roots or int(fields[1]) in roots:
            total += int(fields[11]) + int(fields[12])
    return total / tick


def median(values):
    v = sorted(values)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


# The fleet's rows: (id suffix, machines, how they read, what the row says).
FLEET_ROWS = [("direct-1", 1, "direct", "hubfs x1 from the CDN"),
              ("direct", FLEET, "direct", "hubfs x%d, each from the CDN" % FLEET),
              ("mirror-1", 1, "cold", "hubfs x1 via hubfs-mirror, cold"),
              ("mirror-warm-1", 1, "warm", "hubfs x1 via hubfs-mirror, warm"),
              ("mirror", FLEET, "cold", "hubfs x%d via hubfs-mirror, cold" % FLEET),
              ("mirror-warm", FLEET, "warm", "hubfs x%d via hubfs-mirror, warm" % FLEET)]


def case_fleet(b, ctx):
    """1 and FLEET mounts, each with its own store (as that many machines
    would have), read the file at once: each from the CDN directly, then
    through one hubfs-mirror (cold: nothing cached; warm: the mirror holds
    the file).  Every row is the median of --runs runs, the runs taken in
    turn (direct, cold, warm, ...) so that a swing of the shared machine's
    load hits every row alike."""
    size, sha = ctx.big["size"], ctx.big["sha256"]

    def cpu_now(mounts, mi):
        """CPU seconds so far: the hubfs daemons, the mirror's nginx, the
        CDN's nginx, the Hub emulator."""
        stack = ctx.stack
        groups = {"hubfs": [m.bench_pid for m in mounts],
                  "mirror": [mi.proc.pid] if mi and mi.proc else [],
                  "cdn": [stack._nginx.pid] if stack._nginx else [],
                  "hub": [stack._emu.pid] if stack._emu else []}
        return {k: cpu_seconds(v) for k, v in groups.items()}

    def fleet_read(label, n, mi=None, warm_dir=None):
        endpoint = mi.url if mi else None
        stores = [b.fresh("fleet-%s-%d-store" % (label, i)) for i in range(n)]
        b.cold_prep(ctx, [sha])
        if warm_dir:        # the mirror's cache in memory, like the CDN's file
            warm_files(warm_dir)
        mounts, procs = [], []
        load = load_avg()
        try:
            for i in range(n):
                mounts.append(b.hubfs_mount(ctx, "fleet-%s-%d" % (label, i), stores[i],
                                            endpoint))
            paths = [m.path(BIG_REPO, BIG_FILE) for m in mounts]
            for p in paths:
                if b.stat_size(p) != size:
                    raise NA("wrong size in the mount")
            mark = ctx.log_mark()
            cpu0 = CpuMark(b)
            parts0 = cpu_now(mounts, mi)
            t0 = time.monotonic()
            for p in paths:
                proc = subprocess.Popen(
                    [sys.executable, os.path.abspath(__file__), "--worker", "read", p,
                     "0", "-1"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, start_new_session=True)
                procs.append(proc)
                b.procs.add(proc)
            deadline = t0 + 2 * b.args.read_timeout
            results = []
            for proc in procs:
                try:
                    out, err = proc.communicate(timeout=max(1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    raise NA("%d readers not done within %d s"
                             % (n, 2 * b.args.read_timeout))
                if proc.returncode != 0:
                    raise NA("reader failed: %s" % " ".join(err.decode().split())[-200:])
                results.append(json.loads(out))
            secs = time.monotonic() - t0
            cpu = cpu0.end()
            parts1 = cpu_now(mounts, mi)
            hwm = max((b.hwm(m) or 0) for m in mounts) or None
        finally:
            for proc in procs:
                if proc.poll() is None:
                    kill_group(proc)
                    proc.wait()
                b.procs.discard(proc)
            for m in mounts:
                b.hubfs_unmount(m)
            for store in stores:
                shutil.rmtree(store, ignore_errors=True)
        got = sum(r["bytes"] for r in results)
        if got != n * size:
            raise NA("read %d bytes of %d" % (got, n * size))
        cdn, reqs = ctx.cdn_bytes(mark)
        return {"seconds": secs, "nbytes": got, "cdn_bytes": cdn, "requests": reqs,
                "hwm": hwm, "load": load, "cpu": cpu["cpu"], "own_cpu": cpu["own_cpu"],
                "parts": {k: parts1[k] - parts0[k] for k in parts0}}

    def new_mirror(name):
        if not os.access(hubmirror.MIRROR, os.X_OK):
            raise NA("no %s" % hubmirror.MIRROR)
        mi = hubmirror.Mirror(ctx.stack.endpoint, b.fresh(name), b.args.mirror_arg)
        b.mirrors.append(mi)
        try:
            mi.start()
        except hubmirror.MirrorError as e:
            raise NA(str(e))
        return mi

    def drop_mirror(mi):
        if mi is None:
            return
        if b.args.keep:     # its access log, for a look at where time went
            shutil.copy(mi.access_log, mi.cache_dir + ".access.log")
        mi.stop()
        b.mirrors.remove(mi)
        shutil.rmtree(mi.cache_dir, ignore_errors=True)

    runs = {key: [] for key, _, _, _ in FLEET_ROWS}
    fails = {}

    def attempt(key, fn):
        try:
            r = fn()
            runs[key].append(r)
            log("fleet %-13s %6.2f s  CDN %7.1f MiB  CPU s %s" % (
                key, r["seconds"], r["cdn_bytes"] / MiB,
                " ".join("%s %.2f" % kv for kv in r["parts"].items())))
        except KeyboardInterrupt:
            raise
        except NA as e:
            fails.setdefault(key, str(e))
        except Exception as e:  # noqa: BLE001 -- a benchmark reports and goes on
            fails.setdefault(key, "%s: %s" % (type(e).__name__, e))

    for run in range(b.args.runs):
        log("fleet run %d of %d (CDN %s, load %s)" % (run + 1, b.args.runs, ctx.label,
                                                     load_avg()))
        attempt("direct-1", lambda: fleet_read("direct", 1, None))
        attempt("direct", lambda: fleet_read("direct", FLEET, None))
        for n, cold, warm in ((1, "mirror-1", "mirror-warm-1"),
                              (FLEET, "mirror", "mirror-warm")):
            mi = None
            try:
                mi = new_mirror("fleet-mirror-%d-%d" % (n, run))
                attempt(cold, lambda: fleet_read("cold", n, mi))
                if runs[cold]:
                    lfs = os.path.join(mi.cache_dir, "lfs")
                    attempt(warm, lambda: fleet_read("warm", n, mi, lfs))
            except NA as e:
                fails.setdefault(cold, str(e))
            finally:
                drop_mirror(mi)

    for key, n, _, what in FLEET_ROWS:
        add_median_row(b, "fleet/%s/%s" % (ctx.label, key), "fleet", what, ctx.label,
                       runs[key], fails.get(key), machines=n)


def add_median_row(b, rid, case, what, label, got, fail, **extra):
    """One row for the runs in got (dicts with seconds, nbytes, cdn_bytes,
    requests, hwm, load): the median time, each run's in the note."""
    if not got:
        b.add(rid, case, what, label, na=(fail or "did not run")[:240])
        return
    secs = [r["seconds"] for r in got]
    med = median(secs)
    loads = [r["load"] for r in got if r.get("load") is not None]
    note = "median of %d: %s s; spread %.0f%%; load %s" % (
        len(got), "/".join("%.2f" % s for s in secs), 100 * (max(secs) - min(secs)) / med,
        "/".join("%.1f" % x for x in loads) or "?")
    cpu = {}
    for k, name in (("cpu", "CPU"), ("own_cpu", "own CPU")):
        cpus = [r.get(k) for r in got]
        cpu[k] = None
        if cpus and None not in cpus:
            cpu[k] = median(cpus)
            note += "; %s %s s, spread %.0f%%" % (
                name, "/".join("%.2f" % c for c in cpus),
                100 * (max(cpus) - min(cpus)) / cpu[k] if cpu[k] else 0)
    parts = [r["parts"] for r in got if r.get("parts")]
    if parts:   # whose CPU it was (2 cores, shared): medians
        note += "; CPU s by part %s" % ", ".join(
            "%s %.2f" % (k, median([c[k] for c in parts])) for k in parts[0] if
            any(c[k] for c in parts))
    if len(got) < b.args.runs:
        note += "; %d failed: %s" % (b.args.runs - len(got), (fail or "?")[:80])
    b.add(rid, case, what, label, seconds=med, nbytes=got[0]["nbytes"],
          cdn_bytes=median([r["cdn_bytes"] for r in got]),
          requests=median([r["requests"] for r in got]),
          hwm=max((r.get("hwm") or 0) for r in got) or None, note=note, cpu=cpu["cpu"],
          own_cpu=cpu["own_cpu"],
          load=median(loads) if loads else None,
          cdn_max=max(r["cdn_bytes"] for r in got), **extra)


# huggingface_hub downloads one file into its HF_HOME (argv: repo, file).
HF_DOWNLOAD = r"""
import sys
from huggingface_hub import hf_hub_download
print(hf_hub_download(sys.argv[1], sys.argv[2]))
"""

XET_ROWS = [("direct-1", "hf_hub_download, 1st machine, from the Hub (Xet)"),
            ("direct-2", "hf_hub_download, 2nd machine, from the Hub (Xet)"),
            ("mirror-1", "hf_hub_download, 1st machine, via hubfs-mirror"),
            ("mirror-2", "hf_hub_download, 2nd machine, via hubfs-mirror")]


def case_xet(b, ctx):
    """A Xet file downloaded by huggingface_hub + hf_xet on two machines (own
    HF_HOME each) one after the other: from the Hub, where hf_xet reads the
    xorbs from the CAS's CDN, and through hubfs-mirror, which hides the Xet
    markers so that both read the bridge URL through its cache."""
    python = hubstack.xet_python()
    why = None
    if python is None:
        why = "no test venv with huggingface_hub + hf_xet (.ci/install-venv)"
    elif not ctx.stack.xet_built:
        why = "the Xet fixture could not be built (see the stack's xet-build.log)"
    try:
        f = ctx.file(XET_REPO, XET_FILE)
    except KeyError:
        why = why or "no %s/%s in the stack" % (XET_REPO, XET_FILE)
    runs = {key: [] for key, _ in XET_ROWS}
    fails = {}

    def download(endpoint, home):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("HF_", "HUGGINGFACE"))}
        env.update({"HF_HOME": home, "HF_ENDPOINT": endpoint,
                    "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
                    "HF_HUB_DISABLE_UPDATE_CHECK": "1"})
        load = load_avg()      # (the CAS's xorbs and the bridge's blob stay in memory)
        mark = ctx.log_mark()
        rc, out, err, secs = b.run([python, "-c", HF_DOWNLOAD, XET_REPO, XET_FILE],
                                   b.args.read_timeout, env=env)
        cpu = b.last
        try:
            if rc != 0:
                raise NA("hf_hub_download failed: %s" % " ".join(err.split())[-200:])
            path = out.strip().splitlines()[-1]
            if os.path.getsize(path) != f["size"]:
                raise NA("downloaded %d bytes of %d" % (os.path.getsize(path), f["size"]))
        finally:
            shutil.rmtree(home, ignore_errors=True)
        cdn, reqs = ctx.cdn_bytes(mark)
        return {"seconds": secs, "nbytes": f["size"], "cdn_bytes": cdn, "requests": reqs,
                "load": load, "cpu": cpu["cpu"], "own_cpu": cpu["own_cpu"]}

    def attempt(key, fn):
        try:
            runs[key].append(fn())
        except KeyboardInterrupt:
            raise
        except NA as e:
            fails.setdefault(key, str(e))
        except Exception as e:  # noqa: BLE001 -- a benchmark reports and goes on
            fails.setdefault(key, "%s: %s" % (type(e).__name__, e))

    for run in range(0 if why else b.args.runs):
        log("xet run %d of %d (load %s)" % (run + 1, b.args.runs, load_avg()))
        for m in (1, 2):
            attempt("direct-%d" % m, lambda: download(
                ctx.stack.endpoint, b.fresh("xet-home-direct-%d" % m)))
        mi = hubmirror.Mirror(ctx.stack.endpoint, b.fresh("xet-mirror-%d" % run))
        b.mirrors.append(mi)
        try:
            mi.start()
            for m in (1, 2):
                attempt("mirror-%d" % m, lambda: download(
                    mi.url, b.fresh("xet-home-mirror-%d" % m)))
        except hubmirror.MirrorError as e:
            fails.setdefault("mirror-1", str(e))
        finally:
            mi.stop()
            b.mirrors.remove(mi)
            shutil.rmtree(mi.cache_dir, ignore_errors=True)
    for key, what in XET_ROWS:
        add_median_row(b, "xet/%s" % key, "xet", what, ctx.label, runs[key],
                       why or fails.get(key))


HUBFS_XET_ROWS = [("hubfs-direct-1", "hubfs, 1st machine, from the Hub (Xet file)"),
                  ("hubfs-direct-2", "hubfs, 2nd machine, from the Hub (Xet file)"),
                  ("hubfs-mirror-1", "hubfs, 1st machine, via hubfs-mirror (Xet file)"),
                  ("hubfs-mirror-2", "hubfs, 2nd machine, via hubfs-mirror (Xet file)")]


def case_xet_hubfs(b, ctx):
    """The same Xet file read whole by hubfs on two machines (a mount and a
    store each) one after the other: from the Hub, and through a fresh
    hubfs-mirror, which hides the Xet markers, so that hubfs reads the
    bridge URL through its cache.  The note splits the CDN's bytes into
    xorbs (the CAS) and the rest (the bridge)."""
    try:
        f = ctx.file(XET_REPO, XET_FILE)
    except KeyError:
        for key, what in HUBFS_XET_ROWS:
            b.add("xet/%s" % key, "xet", what, ctx.label,
                  na="no %s/%s in the stack" % (XET_REPO, XET_FILE))
        return
    runs = {key: [] for key, _ in HUBFS_XET_ROWS}
    fails = {}

    def read(endpoint, name):
        store = b.fresh("xet-%s-store" % name)
        load = load_avg()
        m = b.hubfs_mount(ctx, "xet-" + name, store, endpoint)
        try:
            path = m.path(*XET_REPO.split("/"), XET_FILE)
            if b.stat_size(path) != f["size"]:
                raise NA("wrong size in the mount")
            mark = ctx.log_mark()
            cpu0 = cpu_seconds([m.bench_pid])
            got = b.read_all(path, f["size"])
            cpu = cpu_seconds([m.bench_pid]) - cpu0
        finally:
            b.hubfs_unmount(m)
            shutil.rmtree(store, ignore_errors=True)
        cdn, reqs = ctx.cdn_bytes(mark)
        xorbs = 0
        with open(ctx.stack.cdn_log_path, "rb") as log_file:
            log_file.seek(mark)
            for line in log_file:
                try:
                    e = json.loads(line)
                except ValueError:
                    continue
                if "xorb" in str(e.get("uri", "")):
                    xorbs += max(0, int(e.get("bytes", 0)))
        return {"seconds": got["seconds"], "nbytes": f["size"], "cdn_bytes": cdn,
                "requests": reqs, "load": load, "parts": {"hubfs": cpu},
                "xorbs": xorbs}

    def attempt(key, fn):
        try:
            runs[key].append(fn())
        except KeyboardInterrupt:
            raise
        except NA as e:
            fails.setdefault(key, str(e))
        except Exception as e:  # noqa: BLE001 -- a benchmark reports and goes on
            fails.setdefault(key, "%s: %s" % (type(e).__name__, e))

    for run in range(b.args.runs):
        log("xet hubfs run %d of %d (load %s)" % (run + 1, b.args.runs, load_avg()))
        for n in (1, 2):
            attempt("hubfs-direct-%d" % n, lambda: read(None, "direct-%d" % n))
        mi = hubmirror.Mirror(ctx.stack.endpoint, b.fresh("xet-hubfs-mirror-%d" % run))
        b.mirrors.append(mi)
        try:
            mi.start()
            for n in (1, 2):
                attempt("hubfs-mirror-%d" % n, lambda: read(mi.url, "mirror-%d" % n))
        except hubmirror.MirrorError as e:
            fails.setdefault("hubfs-mirror-1", str(e))
        finally:
            mi.stop()
            b.mirrors.remove(mi)
            shutil.rmtree(mi.cache_dir, ignore_errors=True)
    for key, what in HUBFS_XET_ROWS:
        got = runs[key]
        if got:
            what += "; xorbs %.1f MiB" % (median([r["xorbs"] for r in got]) / MiB)
        add_median_row(b, "xet/%s" % key, "xet", what, ctx.label, got, fails.get(key))


# --------------------------------------------------------------- model loads

# (kind of load, file, what the rows say); load_model.py names the kinds.
LOADS = [("load_file", "model.safetensors", "safetensors load_file"),
         ("safe_open", "model.safetensors", "safetensors safe_open, file order"),
         ("gguf", "model.gguf", "GGUFReader (mmap), every byte")]
LOAD_WAYS = [("cold", "hubfs cold"),
             ("reread", "hubfs re-read, same mount"),
             ("warm", "hubfs warm after remount"),
             ("download", "hf download, then load"),
             ("local", "local copy")]


def venv_env(home=None):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
           "HOME": home or tempfile.gettempdir(), "OMP_NUM_THREADS": "1"}
    return env


def load_files(b, ctx, python):
    """The model files, made once per machine like test_loaders.py's: kept in
    the stack's blob cache under a key hashing the generator and the pins."""
    import hashlib
    h = hashlib.sha256()
    for p in (LOAD_SCRIPT, os.path.join(ROOT, "tests", "python", "requirements.txt")):
        with open(p, "rb") as f:
            h.update(f.read())
    top = os.path.join(ctx.stack.blob_cache, "bench-load")
    out = os.path.join(top, h.hexdigest()[:16])
    if not os.path.exists(os.path.join(out, "DONE")):
        os.makedirs(top, exist_ok=True)
        for old in os.listdir(top):     # one set per machine
            shutil.rmtree(os.path.join(top, old), ignore_errors=True)
        tmp = out + ".tmp.%d" % os.getpid()
        log("making the model files (once per machine) in %s" % out)
        rc, _, err, _ = b.run([python, LOAD_SCRIPT, "make", tmp], 900, env=venv_env())
        if rc != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise NA("load_model.py make failed: %s" % " ".join(err.split())[-200:])
        os.rename(tmp, out)
    return out


def case_load(b, ctx):
    """Every LOADS kind, every way of LOAD_WAYS, --runs times, in turn (so
    that a swing of the machine's load hits every row alike).  A run of a
    kind: an empty store with the page cache dropped (cold), the same load
    again in that mount (re-read), a remount with the store's blobs in the
    page cache (warm: every byte through the daemon); hf download into an
    empty HF_HOME with the page cache dropped, then the load from its cache;
    the load from the generated file in the page cache (local)."""
    python = hubstack.xet_python()
    ways = list(LOAD_WAYS)
    if b.args.baseline:
        ways += [(w + "-baseline", label + " (--baseline)") for w, label in LOAD_WAYS
                 if w in ("cold", "reread", "warm")]
    rows = [(kind, way) for kind, _, _ in LOADS for way, _ in ways]
    runs = {key: [] for key in rows}
    fails = {}
    why = None
    if python is None:
        why = "no test venv with safetensors, gguf, huggingface_hub (.ci/install-venv)"
    hf = python and os.path.join(os.path.dirname(python), "hf")
    try:
        if why is None:
            local = load_files(b, ctx, python)
            ctx.stack.commit(LOAD_REPO, message="Model files", files={
                name: {"file": os.path.join(local, name), "lfs": True}
                for name in sorted({n for _, n, _ in LOADS})})
    except NA as e:
        why = str(e)

    def load(kind, path):
        rc, out, err, _ = b.run([python, LOAD_SCRIPT, "load", kind, path],
                                b.args.read_timeout, env=venv_env())
        if rc != 0:
            raise NA("%s load failed: %s" % (kind, " ".join(err.split())[-200:]))
        return json.loads(out.strip().splitlines()[-1])

    def row(res, size, extra=None):
        r = {"seconds": res["seconds"], "nbytes": size, "cdn_bytes": 0, "requests": 0,
             "load": res["load"]}
        r.update(extra or {})
        return r

    def hubfs_ways(kind, name, f, binary=None):
        if binary:
            normal, b.hubfs = b.hubfs, binary
            try:
                got = hubfs_ways(kind, name, f)
            finally:
                b.hubfs = normal
            return {way + "-baseline": r for way, r in got.items()}
        store = b.fresh("load-store")
        b.cold_prep(ctx, [f["sha256"]])
        load1 = load_avg()
        m = b.hubfs_mount(ctx, "load", store)
        out = {}
        try:
            path = m.path(LOAD_REPO, name)
            if b.stat_size(path) != f["size"]:
                raise NA("wrong size in the mount")
            mark = ctx.log_mark()
            cold = load(kind, path)
            cold["load"] = load1
            reread = load(kind, path)
            reread["load"] = load_avg()
            b.settle(m)
            hwm = b.hwm(m)
        finally:
            b.hubfs_unmount(m)
        cdn, reqs = ctx.cdn_bytes(mark)
        out["cold"] = row(cold, f["size"], {"cdn_bytes": cdn, "requests": reqs, "hwm": hwm})
        out["reread"] = row(reread, f["size"], {"hwm": hwm})
        warm_files(os.path.join(store, "blobs"))
        load2 = load_avg()
        m = b.hubfs_mount(ctx, "load", store)
        try:
            mark = ctx.log_mark()
            warm = load(kind, m.path(LOAD_REPO, name))
            warm["load"] = load2
            hwm = b.hwm(m)
        finally:
            b.hubfs_unmount(m)
        cdn, reqs = ctx.cdn_bytes(mark)
        out["warm"] = row(warm, f["size"], {"cdn_bytes": cdn, "requests": reqs, "hwm": hwm})
        shutil.rmtree(store, ignore_errors=True)
        return out

    def download_then_load(kind, name, f):
        home = b.fresh("load-hf-home")
        env = venv_env(home)
        env.update({"HF_HOME": home, "HF_ENDPOINT": ctx.stack.endpoint,
                    "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
                    "HF_HUB_DISABLE_UPDATE_CHECK": "1"})
        b.cold_prep(ctx, [f["sha256"]])
        load0 = load_avg()
        mark = ctx.log_mark()
        try:
            rc, out, err, secs = b.run([hf, "download", LOAD_REPO, name], b.args.read_timeout,
                                       env=env)
            if rc != 0:
                raise NA("hf download failed: %s" % " ".join((out + err).split())[-200:])
            # It prints the file's path, alone or after "path:".
            path = out.strip().splitlines()[-1].strip()
            path = path.split("path:", 1)[1].strip() if path.startswith("path:") else path
            if os.path.getsize(path) != f["size"]:
                raise NA("hf download wrote %d bytes of %d" % (os.path.getsize(path),
                                                               f["size"]))
            res = load(kind, path)
        finally:
            shutil.rmtree(home, ignore_errors=True)
        cdn, reqs = ctx.cdn_bytes(mark)
        return {"download": row({"seconds": secs + res["seconds"], "load": load0}, f["size"],
                                {"cdn_bytes": cdn, "requests": reqs, "fetch": secs,
                                 "then_load": res["seconds"]})}

    def local_load(kind, name, f):
        path = os.path.join(local, name)
        warm_files_one(path)
        load0 = load_avg()
        res = load(kind, path)
        res["load"] = load0
        return {"local": row(res, f["size"])}

    def attempt(kind, ways, fn):
        try:
            got = fn()
        except KeyboardInterrupt:
            raise
        except Exception as e:  # noqa: BLE001 -- a benchmark reports and goes on
            for way in ways:
                fails.setdefault((kind, way), "%s: %s" % (type(e).__name__, e)
                                 if not isinstance(e, NA) else str(e))
            return
        for way in ways:
            runs[(kind, way)].append(got[way])

    for run in range(0 if why else b.args.runs):
        for kind, name, _ in LOADS:
            log("load run %d of %d: %s (load %s)" % (run + 1, b.args.runs, kind, load_avg()))
            f = ctx.file(LOAD_REPO, name)
            attempt(kind, ("local",), lambda: local_load(kind, name, f))
            attempt(kind, ("cold", "reread", "warm"), lambda: hubfs_ways(kind, name, f))
            if b.args.baseline:
                attempt(kind, ("cold-baseline", "reread-baseline", "warm-baseline"),
                        lambda: hubfs_ways(kind, name, f, b.args.baseline))
            attempt(kind, ("download",), lambda: download_then_load(kind, name, f))
    for kind, name, what in LOADS:
        for way, label in ways:
            got = runs[(kind, way)]
            add_median_row(b, "load/%s/%s" % (kind, way), "load",
                           "%s: %s" % (what, label), ctx.label, got,
                           why or fails.get((kind, way)))
            if way == "download" and got:
                b.rows[-1]["note"] += "; download %s s + load %s s" % (
                    "/".join("%.2f" % r["fetch"] for r in got),
                    "/".join("%.2f" % r["then_load"] for r in got))


def warm_files_one(path):
    with open(path, "rb", buffering=0) as f:
        while f.read(8 * MiB):
            pass


def time_ratio_rows(b, out):
    """The goals of the load and lslr cases: ratios of median times."""
    def ratio(name, num, den, target):
        rows = [b.row(num), b.row(den)]
        if None in rows or not rows[1]["seconds"]:
            miss = num if rows[0] is None else den
            out.append([name, "n/a (%s %s)" % (miss, "failed" if any(
                r["id"] == miss for r in b.rows) else "not run"),
                target_text(target, "<="), "n/a"])
            return
        v = rows[0]["seconds"] / rows[1]["seconds"]
        out.append([name, "%.2f" % v, target_text(target, "<="), meets(v, target, "<=")])
    for kind, _, what in LOADS:
        def rid(way, kind=kind):
            return "load/%s/%s" % (kind, way)
        ratio("load %s: hubfs cold / hf download then load (time)" % what,
              rid("cold"), rid("download"), 1.0)
        ratio("load %s: hubfs re-read / local copy (time)" % what,
              rid("reread"), rid("local"), 1.1)
        ratio("load %s: hubfs warm after remount / local copy (time)" % what,
              rid("warm"), rid("local"), 1.5)
        if b.args.baseline:
            for way in ("cold", "reread", "warm"):
                ratio("load %s: hubfs %s / the same with --baseline (time)" % (what, way),
                      rid(way), rid(way + "-baseline"), None)
    ratio("ls -lR warm: hubfs default / local disk (time)", "lslr/default", "lslr/local",
          3.0)
    ratio("ls -lR warm: hubfs -o xattr / local disk (time)", "lslr/xattr", "lslr/local",
          None)


# --------------------------------------------------------------- ls -lR

def case_lslr(b, ctx):
    """ls -lR of the 100,001-file dataset, warm (after one ls -lR in the same
    mount): hubfs with its default (no extended attributes: the kernel stops
    asking after the first ENOSYS) and with -o xattr (a getxattr round trip
    per file for the security label and ACLs), vs the same names and sizes
    on local disk; the three in turn, --runs times."""
    ways = [("local", "ls -lR, local disk"), ("default", "ls -lR, hubfs default"),
            ("xattr", "ls -lR, hubfs -o xattr")]
    runs = {w: [] for w, _ in ways}
    fails = {}
    mounts = {}
    files = {}

    def ls(top):
        load0 = load_avg()
        rc, out, err, secs = b.run(["ls", "-lR", top], 600)
        if rc != 0:
            raise NA("ls -lR exited %d: %s" % (rc, " ".join(err.split())[-200:]))
        return {"seconds": secs, "nbytes": None, "cdn_bytes": 0, "requests": 0,
                "load": load0, "lines": out.count("\n")}
    try:
        r = ctx.stack.repo(MANY_REPO, "dataset")
        files = r["commits"][r["refs"]["main"]]["files"]
        local = b.fresh("lslr-local")
        for rel, f in files.items():
            p = os.path.join(local, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "wb") as out:
                out.truncate(f["size"])
        for way, args in (("default", ()), ("xattr", ("-o", "xattr"))):
            m = b.hubfs_mount(ctx, "lslr-" + way, b.fresh("lslr-%s-store" % way), args=args)
            mounts[way] = m
            ls(m.path("datasets", MANY_REPO))       # the listing, fetched once
        ls(local)
        tops = {"local": local, "default": mounts["default"].path("datasets", MANY_REPO),
                "xattr": mounts["xattr"].path("datasets", MANY_REPO)}
        for run in range(b.args.runs):
            log("lslr run %d of %d (load %s)" % (run + 1, b.args.runs, load_avg()))
            for way, _ in ways:
                try:
                    runs[way].append(ls(tops[way]))
                except NA as e:
                    fails.setdefault(way, str(e))
    except NA as e:
        for way, _ in ways:
            fails.setdefault(way, str(e))
    finally:
        for m in mounts.values():
            b.hubfs_unmount(m)
    for way, what in ways:
        add_median_row(b, "lslr/%s" % way, "lslr", what, "-", runs[way], fails.get(way))
    if files:
        b.note("lslr: the dataset has %d files" % len(files))


# --------------------------------------------------------------- Xet: hubfs's own reads

XETCOLD_ROWS = [("cas", "hubfs, Xet CAS path (cat-like read)"),
                ("bridge", "hubfs --no-xet, bridge (cat-like read)"),
                ("hf", "hf download (hf_xet, to its cache)"),
                ("aria2c", "aria2c -x16 -s16, bridge URL (to disk)")]
XETUPDATE_ROWS = [("hubfs", "hubfs: rev 2 after rev 1, one mount"),
                  ("hf", "hf download: rev 2 after rev 1, one HF_HOME")]


def hubfs_xet_support(b):
    """None when this hubfs has --no-xet (so it reads Xet files through the
    CAS, and through the bridge when told); else why its Xet rows are n/a."""
    if not os.access(b.hubfs, os.X_OK):
        return "no hubfs binary at %s (make build, or set HUBFS_BIN)" % b.hubfs
    rc, out, err, _ = b.run([b.hubfs, "mount", "--help"], MOUNT_TIMEOUT)
    if "--no-xet" not in out + err:
        return "this hubfs has no --no-xet"
    return None


def xet_update_setup(ctx):
    """(hf_xet's python, {"v1": file, "v2": file} of acme/xet-update's
    model.bin, why the Xet rows cannot run at all or None)."""
    python = hubstack.xet_python()
    if python is None:
        return None, None, "no test venv with huggingface_hub + hf_xet (.ci/install-venv)"
    if not ctx.stack.xet_built:
        return python, None, "the Xet fixture could not be built (see the stack's xet-build.log)"
    try:
        r = ctx.stack.repo(XET_UPDATE_REPO)
        files = {rev: r["commits"][r["refs"][rev]]["files"][XET_FILE] for rev in ("v1", "v2")}
    except KeyError:
        return python, None, "no %s/%s v1 and v2 in the stack" % (XET_UPDATE_REPO, XET_FILE)
    return python, files, None


def xet_cpu(r):
    """The busy CPU figures (cpu, own_cpu) of a timed run, from a reader's
    result or Bench.last after run(), where this bench measures them."""
    return {k: r[k] for k in ("cpu", "own_cpu") if k in (r or {})}


def xet_cold_prep(b, ctx, files):
    """cold_prep for Xet files: the page cache dropped, then the bridge's
    source files and every xorb their reconstructions name read back, so
    that nginx serves both paths from memory."""
    b.cold_prep(ctx, [f["sha256"] for f in files])
    xorbs = set()
    for f in files:
        rec = os.path.join(ctx.stack.blob_cache, "xet", "files", f["sha256"] + ".json")
        with open(rec) as fh:
            xorbs.update(t[0] for t in json.load(fh)["terms"])
    for xorb in sorted(xorbs):
        with open(os.path.join(ctx.stack.state, "xorbs", xorb), "rb", buffering=0) as fh:
            while fh.read(8 * MiB):
                pass


def xet_cdn_bytes(ctx, mark):
    """(xorb bytes, bridge bytes, requests) the CDN logged since mark."""
    time.sleep(0.2)   # nginx logs a request when it ends
    xorb = bridge = reqs = 0
    with open(ctx.stack.cdn_log_path, "rb") as f:
        f.seek(mark)
        for line in f:
            try:
                e = json.loads(line)
            except ValueError:
                continue
            n = max(0, int(e.get("bytes", 0)))
            if e.get("uri", "").startswith("/xorbs/"):
                xorb += n
            elif e.get("uri", "").startswith("/blobs/"):
                bridge += n
            reqs += 1
    return xorb, bridge, reqs


def xet_hubfs_reads(b, ctx, label, args, files, revs):
    """A fresh store, cold caches, one mount with `args`: read model.bin at
    each revision in `revs` whole, in turn, the daemon left to go quiet
    between them; -> one dict per revision (seconds, nbytes, cdn_bytes,
    xorb, bridge, requests, hwm, load)."""
    store = b.fresh("xet-%s-store" % label)
    xet_cold_prep(b, ctx, [files[rev] for rev in revs])
    load = load_avg()
    m = b.hubfs_mount(ctx, "xet-%s" % label, store, args=args)
    out = []
    try:
        owner, name = XET_UPDATE_REPO.split("/")
        for rev in revs:
            path = m.path(owner, "%s@%s" % (name, rev), XET_FILE)
            size = files[rev]["size"]
            if b.stat_size(path) != size:
                raise NA("wrong size in the mount")
            mark = ctx.log_mark()
            r = b.read_all(path, size)
            b.settle(m)
            xet_wait_verified(store, files[rev])
            out.append(dict(xet_cpu(r), seconds=r["seconds"], nbytes=r["bytes"], mark=mark,
                            load=load, hwm=b.hwm(m)))
            load = load_avg()
    finally:
        b.hubfs_unmount(m)
        shutil.rmtree(store, ignore_errors=True)
    ends = [r["mark"] for r in out[1:]] + [None]
    for r, end in zip(out, ends):
        r["xorb"], r["bridge"], r["requests"] = xet_cdn_bytes_between(ctx, r.pop("mark"), end)
        r["cdn_bytes"] = r["xorb"] + r["bridge"]
    return out


def xet_wait_verified(store, f, limit=30):
    """Wait until the store's index records f's blob complete and verified
    (just after the read that ended it)."""
    if not mountlib.blob_recorded(store, f["sha256"], limit):
        raise NA("the store never recorded the file verified")


def xet_cdn_bytes_between(ctx, mark, end):
    """xet_cdn_bytes from mark up to end (None: the end of the log)."""
    xorb, bridge, reqs = xet_cdn_bytes(ctx, mark)
    if end is None:
        return xorb, bridge, reqs
    later = xet_cdn_bytes(ctx, end)
    return xorb - later[0], bridge - later[1], reqs - later[2]


def xet_hf_downloads(b, ctx, python, files, revs, home):
    """`hf download` (huggingface_hub + hf_xet, defaults) of model.bin at each
    revision in turn into one fresh HF_HOME; -> one dict per revision."""
    hf = os.path.join(os.path.dirname(python), "hf")
    if not os.access(hf, os.X_OK):
        raise NA("no hf command beside %s" % python)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE"))}
    env.update({"HF_HOME": home, "HF_ENDPOINT": ctx.stack.endpoint,
                "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
                "HF_HUB_DISABLE_UPDATE_CHECK": "1"})
    xet_cold_prep(b, ctx, [files[rev] for rev in revs])
    out = []
    try:
        for rev in revs:
            load = load_avg()
            mark = ctx.log_mark()
            rc, stdout, err, secs = b.run([hf, "download", "--quiet", XET_UPDATE_REPO, XET_FILE,
                                           "--revision", rev], b.args.read_timeout, env=env)
            cpu = xet_cpu(getattr(b, "last", None))
            if rc != 0:
                raise NA("hf download failed: %s" % " ".join(err.split())[-200:])
            path = stdout.strip().splitlines()[-1] if stdout.strip() else ""
            if not os.path.isfile(path) or os.path.getsize(path) != files[rev]["size"]:
                raise NA("hf download left no file of %d bytes (%r)" % (files[rev]["size"], path))
            xorb, bridge, reqs = xet_cdn_bytes(ctx, mark)
            out.append(dict(cpu, seconds=secs, nbytes=files[rev]["size"], xorb=xorb,
                            bridge=bridge, cdn_bytes=xorb + bridge, requests=reqs, load=load))
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return out


def xet_signed_url(ctx, rev):
    """The bridge URL of model.bin at rev: the resolve 302 Location."""
    u = urllib.parse.urlsplit(ctx.stack.endpoint)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        conn.request("GET", "/%s/resolve/%s/%s" % (XET_UPDATE_REPO, rev, XET_FILE))
        r = conn.getresponse()
        r.read()
        loc = r.getheader("Location")
        if r.status != 302 or not loc:
            raise NA("resolve answered %d without a CDN Location" % r.status)
        return urllib.parse.urljoin(ctx.stack.endpoint + "/", loc)
    finally:
        conn.close()


def xet_aria2c(b, ctx, f, rev):
    if not shutil.which("aria2c"):
        raise NA("aria2c not installed (apt-get install aria2)")
    url = xet_signed_url(ctx, rev)
    d = b.fresh("xet-aria2-out")
    os.makedirs(d)
    xet_cold_prep(b, ctx, [f])
    load = load_avg()
    mark = ctx.log_mark()
    try:
        rc, out, err, secs = b.run(
            ["aria2c", "-x16", "-s16", "-q", "--file-allocation=none",
             "--allow-overwrite=true", "--auto-file-renaming=false",
             "--max-tries=1", "-d", d, "-o", "out.bin", url], b.args.read_timeout)
        cpu = xet_cpu(getattr(b, "last", None))
        if rc != 0:
            raise NA("aria2c exited %d: %s" % (rc, (out + err).strip()[-200:]))
        got = os.path.getsize(os.path.join(d, "out.bin"))
    finally:
        shutil.rmtree(d, ignore_errors=True)
    if got != f["size"]:
        raise NA("aria2c wrote %d bytes of %d" % (got, f["size"]))
    xorb, bridge, reqs = xet_cdn_bytes(ctx, mark)
    return dict(cpu, seconds=secs, nbytes=got, xorb=xorb, bridge=bridge,
                cdn_bytes=xorb + bridge, requests=reqs, load=load)


def xet_attempt(runs, fails, key, fn):
    try:
        runs[key].append(fn())
    except KeyboardInterrupt:
        raise
    except NA as e:
        fails.setdefault(key, " ".join(str(e).split()))
    except Exception as e:  # noqa: BLE001 -- a benchmark reports and goes on
        fails.setdefault(key, " ".join(("%s: %s" % (type(e).__name__, e)).split()))


def xet_path_notes(b, case, runs):
    """Say so when a row read through the other path than its own."""
    for key, wrong, path in (("cas", "bridge", "the bridge"), ("bridge", "xorb", "the CAS"),
                             ("hubfs", "bridge", "the bridge"), ("hf", "bridge", "the bridge")):
        n = max((r[wrong] for r in runs.get(key, ())), default=0)
        if n:
            b.note("%s/%s fetched %d bytes through %s" % (case, key, n, path))


def case_xetcold(b, ctx):
    """A cold whole-file read of revision 1 of the 1 GiB Xet file by hubfs
    through the CAS, hubfs --no-xet through the bridge, `hf download` and
    aria2c -x16 on the bridge URL; the rows in turn, --runs times, medians."""
    python, files, why = xet_update_setup(ctx)
    hubfs_why = why or hubfs_xet_support(b)
    if files:
        schemes = ctx.stack.control("GET", "/_emu/xet?sha256=" + files["v1"]["sha256"])["schemes"]
        b.note("%s/%s v1: Xet chunks by compression scheme %s" % (
            XET_UPDATE_REPO, XET_FILE, ", ".join("%s %d" % kv for kv in sorted(schemes.items()))))
    runs = {key: [] for key, _ in XETCOLD_ROWS}
    fails = {}
    for run in range(0 if why else b.args.runs):
        log("xetcold run %d of %d (load %s)" % (run + 1, b.args.runs, load_avg()))
        if not hubfs_why:
            xet_attempt(runs, fails, "cas", lambda: xet_hubfs_reads(
                b, ctx, "cas", (), files, ["v1"])[0])
            xet_attempt(runs, fails, "bridge", lambda: xet_hubfs_reads(
                b, ctx, "bridge", ("--no-xet",), files, ["v1"])[0])
        xet_attempt(runs, fails, "hf", lambda: xet_hf_downloads(
            b, ctx, python, files, ["v1"], b.fresh("xet-hf-home"))[0])
        xet_attempt(runs, fails, "aria2c", lambda: xet_aria2c(b, ctx, files["v1"], "v1"))
    xet_path_notes(b, "xetcold", runs)
    for key, what in XETCOLD_ROWS:
        add_median_row(b, "xetcold/%s" % key, "xetcold", what, ctx.label, runs[key],
                       (hubfs_why if key in ("cas", "bridge") else why) or fails.get(key))


def case_xetupdate(b, ctx):
    """Revision 1 then revision 2 of the 1 GiB Xet file (100 regions of
    100 KiB rewritten in place): hubfs in one mount with a fresh store, and
    `hf download` into one fresh HF_HOME; the rows are revision 2's (time,
    CDN bytes), medians of --runs."""
    python, files, why = xet_update_setup(ctx)
    hubfs_why = why or hubfs_xet_support(b)
    runs = {key: [] for key, _ in XETUPDATE_ROWS}
    fails = {}
    for run in range(0 if why else b.args.runs):
        log("xetupdate run %d of %d (load %s)" % (run + 1, b.args.runs, load_avg()))
        if not hubfs_why:
            xet_attempt(runs, fails, "hubfs", lambda: xet_hubfs_reads(
                b, ctx, "update", (), files, ["v1", "v2"])[1])
        xet_attempt(runs, fails, "hf", lambda: xet_hf_downloads(
            b, ctx, python, files, ["v1", "v2"], b.fresh("xet-hf-home"))[1])
    xet_path_notes(b, "xetupdate", runs)
    for key, what in XETUPDATE_ROWS:
        add_median_row(b, "xetupdate/%s" % key, "xetupdate", what, ctx.label, runs[key],
                       (hubfs_why if key == "hubfs" else why) or fails.get(key))


def xet_ratios(ratio, value):
    """The Xet cases' lines of the ratio table (ratio_rows' helpers)."""
    ratio("xet cold: hubfs CAS / hubfs --no-xet (bridge)", "xetcold/cas", "xetcold/bridge", 1.0)
    ratio("xet cold: hubfs CAS / hf download", "xetcold/cas", "xetcold/hf", 1.0)
    ratio("xet cold: hubfs CAS / aria2c -x16 (bridge URL)", "xetcold/cas", "xetcold/aria2c")
    ratio("xet cold: hf download / aria2c -x16 (bridge URL)", "xetcold/hf", "xetcold/aria2c")
    for key, target in (("hubfs", 3), ("hf", None)):
        value("xet update: %s CDN bytes for rev 2, %% of the file (most of the runs)" % key,
              "xetupdate/%s" % key, lambda r: 100 * r["cdn_max"] / r["nbytes"], target, "<=",
              "%")


def xet_update_lines(b):
    """`xet update: hubfs fetched X % of the file, hf_xet Y %` when the
    case ran (medians of the runs; n/a for a row that could not run)."""
    if "xetupdate" not in b.cases:
        return []

    def pct(rid):
        r = b.row(rid)
        return "n/a" if r is None else "%.2f" % (100 * r["cdn_bytes"] / r["nbytes"])
    return ["", "xet update: hubfs fetched %s %% of the file, hf_xet %s %%"
            % (pct("xetupdate/hubfs"), pct("xetupdate/hf"))]


# --------------------------------------------------------------- the report

def mibs(row):
    if row and row["seconds"] and row["nbytes"]:
        return row["nbytes"] / row["seconds"] / MiB
    return None


def fmt(v, spec, none="-"):
    return none if v is None else format(v, spec)


def cpu_per_gib(row, key="cpu"):
    """Busy CPU seconds (machine-wide; key own_cpu: the case's processes)
    per GiB the row read."""
    if row and row.get(key) is not None and row["nbytes"]:
        return row[key] / (row["nbytes"] / GiB)
    return None


def fmt_row_short(row):
    return "%s s  %s MiB/s  CPU %s (own %s) s/GiB  CDN %s MiB  load %s" % (
        fmt(row["seconds"], ".2f"), fmt(mibs(row), ".0f"), fmt(cpu_per_gib(row), ".2f"),
        fmt(cpu_per_gib(row, "own_cpu"), ".2f"),
        fmt(None if row["cdn_bytes"] is None else row["cdn_bytes"] / MiB, ".1f"),
        fmt(row.get("load"), ".1f"))


def table(headers, rows, right):
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]

    def line(cells):
        out = []
        for i, c in enumerate(cells):
            c = str(c)
            out.append(c.rjust(widths[i]) if i in right else c.ljust(widths[i]))
        return "  ".join(out).rstrip()
    text = [line(headers), line(["-" * w for w in widths])]
    text += [line(r) for r in rows]
    return "\n".join(text)


def measurement_table(b):
    rows = []
    for r in b.rows:
        if r["na"]:
            rows.append([r["case"], r["what"], r["cdn"], "n/a", "", "", "", "", "", "", "",
                         r["na"]])
            continue
        rows.append([r["case"], r["what"], r["cdn"], fmt(r["seconds"], ".2f"),
                     fmt(mibs(r), ".0f"), fmt(r.get("cpu"), ".2f"),
                     fmt(cpu_per_gib(r), ".2f"), fmt(cpu_per_gib(r, "own_cpu"), ".2f"),
                     fmt(None if r["cdn_bytes"] is None else r["cdn_bytes"] / MiB, ".1f"),
                     fmt(None if r["hwm"] is None else r["hwm"] / MiB, ".0f"),
                     fmt(r.get("load"), ".1f"), r["note"]])
    return table(["case", "reader", "CDN", "time s", "MiB/s", "CPU s", "CPU s/GiB",
                  "own s/GiB", "CDN MiB", "VmHWM MiB", "load", "note"], rows,
                 right={3, 4, 5, 6, 7, 8, 9, 10})


def ratio_rows(b):
    """(name, measured, target text, meets) for every ratio of this run."""
    out = []
    rate = b.rate

    def tput(rid):
        return mibs(b.row(rid))

    def need(*rids):
        for rid in rids:
            if b.row(rid) is None:
                ran = any(r["id"] == rid for r in b.rows)
                return "n/a (%s %s)" % (rid, "failed" if ran else "not run")
        return None

    def ratio(name, num, den, target=None, op=">="):
        why = need(num, den)
        if why:
            out.append([name, why, target_text(target, op), "n/a"])
            return
        v = tput(num) / tput(den)
        out.append([name, "%.2f" % v, target_text(target, op), meets(v, target, op)])

    def cpu_ratio(name, num, den, target=None, key="cpu"):
        """CPU seconds per GiB of num over den's (lower is better)."""
        why = need(num, den)
        a, c = cpu_per_gib(b.row(num), key), cpu_per_gib(b.row(den), key)
        if not why and (a is None or not c):
            why = "n/a (no CPU figure)"
        if why:
            out.append([name, why, target_text(target, "<="), "n/a"])
            return
        out.append([name, "%.2f" % (a / c), target_text(target, "<="),
                    meets(a / c, target, "<=")])

    def better_peer(label):
        cands = [("httpdirfs", "cold/%s/httpdirfs" % label), ("rclone",
                                                             "cold/%s/rclone" % label)]
        have = [(tput(rid), k, rid) for k, rid in cands if b.row(rid)]
        return max(have)[2] if have else "cold/%s/httpdirfs|rclone" % label

    for label, targets in (("uncapped", False), (rate, True)):
        ratio("cold %s: hubfs / curl" % label, "cold/%s/hubfs" % label,
              "cold/%s/curl" % label)
        ratio("cold %s: hubfs / aria2c -x16" % label, "cold/%s/hubfs" % label,
              "cold/%s/aria2c" % label, 1.5 if targets else None)
        ratio("cold %s: hubfs pull / aria2c -x16" % label, "cold/%s/pull" % label,
              "cold/%s/aria2c" % label)
        cpu_ratio("cold %s: CPU/GiB hubfs / (aria2c -x16 + openssl sha256)" % label,
                  "cold/%s/hubfs" % label, "cold/%s/aria2c+sha256" % label,
                  1.0 if targets else None)
        cpu_ratio("cold %s: own CPU/GiB hubfs / (aria2c -x16 + openssl sha256)" % label,
                  "cold/%s/hubfs" % label, "cold/%s/aria2c+sha256" % label,
                  key="own_cpu")
        cpu_ratio("cold %s: CPU/GiB hubfs pull / (aria2c -x16 + openssl sha256)" % label,
                  "cold/%s/pull" % label, "cold/%s/aria2c+sha256" % label)
        cpu_ratio("cold %s: CPU/GiB hubfs / curl" % label, "cold/%s/hubfs" % label,
                  "cold/%s/curl" % label)
        if any(r["id"] == "cold/%s/hubfs-baseline" % label for r in b.rows):
            ratio("cold %s: hubfs --baseline / aria2c -x16" % label,
                  "cold/%s/hubfs-baseline" % label, "cold/%s/aria2c" % label)
            cpu_ratio("cold %s: CPU/GiB hubfs --baseline / (aria2c -x16 + openssl sha256)"
                      % label, "cold/%s/hubfs-baseline" % label,
                      "cold/%s/aria2c+sha256" % label)
        peer = better_peer(label)
        ratio("cold %s: hubfs / better of httpdirfs, rclone (%s)"
              % (label, peer.split("/")[-1]), "cold/%s/hubfs" % label, peer,
              3.0 if targets else None)
    warm_peer = max(((tput(r), r) for r in ("warm/httpdirfs", "warm/rclone") if b.row(r)),
                    default=(None, "warm/httpdirfs|rclone"))[1]
    ratio("warm after remount: hubfs / best peer warm (%s)" % warm_peer.split("/")[-1],
          "warm/hubfs", warm_peer, 1.0)
    ratio("re-read same mount: hubfs / read of the blob", "warm/reread", "warm/blob", 0.9)
    ratio("warm after remount: hubfs / read of the blob", "warm/hubfs", "warm/blob")

    def value(name, rid, fn, target, op, unit):
        r = b.row(rid)
        if r is None:
            out.append([name, need(rid), target_text(target, op, unit), "n/a"])
            return
        try:
            v = fn(r)
        except (KeyError, TypeError, ZeroDivisionError):
            v = float("nan")
        if v != v:
            out.append([name, "n/a", target_text(target, op, unit), "n/a"])
            return
        out.append([name, "%.2f %s" % (v, unit), target_text(target, op, unit),
                    meets(v, target, op)])
    value("first 1 MiB: CDN bytes fetched", "first/hubfs",
          lambda r: r["cdn_bytes"] / MiB, 16, "<=", "MiB")
    ratio("%d threads: 1 fd / %d fds" % (THREADS, THREADS), "threads/onefd", "threads/fds",
          0.8)
    value("random 4 KiB: CDN bytes per read", "random/hubfs",
          lambda r: r["cdn_bytes"] / r["ios"] / MiB, 1, "<=", "MiB")
    value("random 4 KiB: CDN bytes per distinct MiB read", "random/hubfs",
          lambda r: r["cdn_bytes"] / r["blocks"] / MiB if r.get("blocks") else float("nan"),
          None, "<=", "MiB")
    value("peak RSS streaming 4 x 1 GiB (VmHWM)", "rss/hubfs",
          lambda r: r["hwm"] / MiB if r["hwm"] else float("nan"), 128, "<=", "MiB")
    # The fleet, per stack: nbytes is what the row's readers read together.
    for label in ("uncapped", rate):
        def fid(key, label=label):
            return "fleet/%s/%s" % (label, key)
        value("fleet %s x%d via the mirror, cold: CDN bytes beyond one copy (most of "
              "the runs)" % (label, FLEET), fid("mirror"),
              lambda r: (r["cdn_max"] - r["nbytes"] / FLEET) / MiB, 0, "<=", "MiB")
        value("fleet %s x%d via the mirror, warm: CDN bytes" % (label, FLEET),
              fid("mirror-warm"), lambda r: r["cdn_max"] / MiB, 0, "<=", "MiB")
        value("fleet %s x1 via the mirror, warm: CDN bytes" % label,
              fid("mirror-warm-1"), lambda r: r["cdn_max"] / MiB, 0, "<=", "MiB")
        ratio("fleet %s x%d: via the mirror, cold / each from the CDN" % (label, FLEET),
              fid("mirror"), fid("direct"), 1 / 1.2)
        ratio("fleet %s x1: via the mirror, cold / from the CDN" % label,
              fid("mirror-1"), fid("direct-1"))
        ratio("fleet %s x1: via the mirror, warm / from the CDN" % label,
              fid("mirror-warm-1"), fid("direct-1"), 1.0)
        ratio("fleet %s x%d: via the mirror, warm / each from the CDN" % (label, FLEET),
              fid("mirror-warm"), fid("direct"))
    time_ratio_rows(b, out)
    value("xet 2nd machine via the mirror: CDN bytes", "xet/mirror-2",
          lambda r: r["cdn_max"] / MiB, 0, "<=", "MiB")
    value("xet 1st machine via the mirror: CDN bytes, in copies of the file",
          "xet/mirror-1", lambda r: r["cdn_bytes"] / r["nbytes"], None, "<=", "x")
    value("xet each machine from the Hub: CDN bytes, in copies of the file",
          "xet/direct-2", lambda r: r["cdn_bytes"] / r["nbytes"], None, "<=", "x")
    value("xet hubfs 2nd machine via the mirror: CDN bytes", "xet/hubfs-mirror-2",
          lambda r: r["cdn_max"] / MiB, 0, "<=", "MiB")
    xet_ratios(ratio, value)
    return out


def target_text(target, op, unit=""):
    if target is None:
        return "-"
    return ("%s %g %s" % ("≥" if op == ">=" else "≤", target, unit)).strip()


def meets(v, target, op):
    if target is None:
        return "-"
    if v != v:  # NaN
        return "n/a"
    return "yes" if (v >= target if op == ">=" else v <= target) else "no"


def report(b, started):
    print()
    print("hubfs benchmark -- %s, hubfs %s" % (time.strftime("%Y-%m-%d %H:%M:%S"),
                                               hubfs_version(b.hubfs)))
    print("1 GiB LFS file %s/%s; CDN: nginx, uncapped and limit_rate %s per connection"
          % (BIG_REPO, BIG_FILE, b.rate))
    print("page cache: %s before every cold read; the CDN's source file is then read "
          "back so nginx serves it from memory" %
          ("dropped" if b.can_drop else "NOT dropped (not root?)" if b.can_drop is False
           else "untouched (no cold case ran)"))
    print()
    print(measurement_table(b))
    print()
    print(table(["ratio (this run)", "measured", "target", "meets"], ratio_rows(b),
                right={1}))
    for line in xet_update_lines(b):
        print(line)
    if b.notes:
        print()
        for n in b.notes:
            print("note: " + n)
    print()
    print("total time: %.0f s" % (time.monotonic() - started))


def hubfs_version(path):
    try:
        r = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
        first = r.stdout.strip().splitlines()[0] if r.stdout.strip() else "?"
        v = first.split()[-1]
    except (OSError, subprocess.TimeoutExpired):
        return "(not found at %s)" % path
    try:
        rev = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
    except OSError:
        rev = ""
    return "%s (%s)%s" % (v, path, ", tree " + rev if rev else "")


# --------------------------------------------------------------- main

def parse_args(argv):
    ap = argparse.ArgumentParser(description="hubfs benchmark (see tests/bench/README.md)")
    ap.add_argument("--cases", default=",".join(CASES),
                    help="comma-separated: " + ",".join(CASES) + " (default: all)")
    ap.add_argument("--rate", default="100m",
                    help="nginx limit_rate per connection for the capped runs (100m)")
    ap.add_argument("--read-timeout", type=float, default=READ_TIMEOUT,
                    help="seconds one 1 GiB read may take before it is n/a (%d)"
                    % READ_TIMEOUT)
    ap.add_argument("--random-ios", type=int, default=FIO_IOS,
                    help="fio reads in the random case (%d)" % FIO_IOS)
    ap.add_argument("--runs", type=int, default=3,
                    help="cold, fleet, xet, load, lslr, xetcold, xetupdate: runs of "
                         "every row; the table shows the median (3)")
    ap.add_argument("--mirror-arg", action="append", default=[], metavar="ARG",
                    help="fleet: an extra argument for hubfs-mirror (repeatable), "
                         "e.g. --mirror-arg=--slice=4M")
    ap.add_argument("--baseline", metavar="HUBFS",
                    help="cold, load: also run the hubfs rows with this other hubfs binary, in "
                         "turn with $HUBFS_BIN in every run (before/after a change)")
    ap.add_argument("--keep", action="store_true",
                    help="keep the work folder (and the fleet mirrors' access logs)")
    ap.add_argument("--json", help="also write the measurements to this file")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    args = ap.parse_args(argv)
    cases = [c.strip() for c in args.cases.replace(" ", ",").split(",") if c.strip()]
    bad = [c for c in cases if c not in CASES]
    if bad:
        ap.error("unknown case(s) %s; cases: %s" % (",".join(bad), ",".join(CASES)))
    args.cases = [c for c in CASES if c in cases]
    return args


def run_stack(b, kind):
    """Start one stack and run the selected cases that belong to it."""
    cases = [c for c in b.cases if kind in CASE_STACKS[c]]
    if not cases:
        return
    label = "uncapped" if kind == "open" else b.rate
    fixtures = [BIG_FIXTURE] + ([FOUR_FIXTURE] if "rss" in cases else []) + \
        ([XET_FIXTURE] if "xet" in cases else []) + \
        ([LOAD_FIXTURE] if "load" in cases else []) + \
        ([MANY_FIXTURE] if "lslr" in cases else []) + \
        ([XET_UPDATE_FIXTURE] if {"xetcold", "xetupdate"} & set(cases) else [])
    log("starting the stack, CDN %s (first run generates the fixtures' content)" % label)
    stack = hubstack.Stack(None, fixtures=fixtures,
                           cdn_rate=None if kind == "open" else b.rate,
                           keep_state=b.args.keep)
    try:
        stack.start()
    except Exception as e:  # noqa: BLE001
        for c in cases:
            b.add("%s/stack-%s" % (c, label), c, "(stack)", label,
                  na="the emulator + nginx stack did not start: %s" % str(e)[:300])
        return
    try:
        ctx = StackCtx(label, b.rate, stack)
        nginx = getattr(stack, "_nginx", None)   # its CPU is the case's own
        b.watch = [nginx.pid] if nginx else []
        ctx.publish_files([BIG_REPO])
        for c in cases:
            log("case %s (CDN %s)" % (c, label))
            if c == "cold":
                case_cold(b, ctx)
            elif c == "peers":
                case_peers(b, ctx, warm=(kind == "open"))
            elif c == "warm":
                case_warm(b, ctx)
            elif c == "first":
                case_first(b, ctx)
            elif c == "threads":
                case_threads(b, ctx)
            elif c == "random":
                case_random(b, ctx)
            elif c == "rss":
                case_rss(b, ctx)
            elif c == "fleet":
                case_fleet(b, ctx)
            elif c == "xet":
                case_xet(b, ctx)
                case_xet_hubfs(b, ctx)
            elif c == "load":
                case_load(b, ctx)
            elif c == "lslr":
                case_lslr(b, ctx)
            elif c == "xetcold":
                case_xetcold(b, ctx)
            elif c == "xetupdate":
                case_xetupdate(b, ctx)
    finally:
        b.watch = []
        b.cleanup()
        stack.stop()


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        return worker_main(argv[1:])
    args = parse_args(argv)
    if args.list:
        for c in CASES:
            print("%-8s %s" % (c, CASE_HELP[c]))
        return 0
    started = time.monotonic()

    def interrupted(signum, _frame):
        raise KeyboardInterrupt("signal %d" % signum)
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGHUP, interrupted)

    b = Bench(args)
    # nginx runs as nobody under root: the work folder must be reachable.
    b.work = tempfile.mkdtemp(prefix="hubfs-bench-")
    os.chmod(b.work, 0o755)
    log("work folder %s; cases: %s" % (b.work, ",".join(args.cases)))
    rc = 0
    try:
        for kind in ("open", "rate"):
            run_stack(b, kind)
    except KeyboardInterrupt:
        log("interrupted; cleaning up")
        b.note("interrupted: the tables show what ran before")
        rc = 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        b.cleanup()
        left = mounts_below(b.work)
        if left:
            b.note("still mounted, so %s was kept: %s" % (b.work, ", ".join(left)))
        elif not args.keep:
            shutil.rmtree(b.work, ignore_errors=True)
        else:
            log("kept %s" % b.work)
    report(b, started)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": b.rows, "ratios": ratio_rows(b), "notes": b.notes}, f,
                      indent=1)
    return rc


if __name__ == "__main__":
    sys.exit(main())
