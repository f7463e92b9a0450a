#!/usr/bin/python3
"""test_package.py DEBDIR -- the Debian packages on a system nobody prepared.

    tests/package/test_package.py build-deb/deb       (make test-package)
    tests/package/test_package.py --cached            exit 0 if it can run (root
                                                      user, root cached)

A minimal Debian 12 root (debootstrap --variant=minbase, plus man-db and
bash-completion, from the Debian archive this machine's apt uses) is kept in
$HUBFS_TEST_ROOTS/bookworm (default /var/cache/hubfs-tests/bookworm) and made
again only when it is missing or unusable.  It stays pristine: each run works
in an overlay of it, in a private mount namespace, so every mount goes away
with the run.  Downloaded packages are kept in $HUBFS_TEST_ROOTS/apt-archives.

In the overlay, as a user would:
  - apt-get install ./hubfs_*.deb resolves its dependencies from the archive;
  - hubfs --version, man -w hubfs, and bash's completion of 'hubfs pu<TAB>';
  - hubfs mounts the Hub emulator (on this machine's 127.0.0.1, /dev/fuse
    bound in), lists a repo and reads its files, checked against the
    fixtures, and unmounts;
  - then with systemd installed (last, so that no library it brings could
    hide a missing Depends of hubfs) the root boots (systemd-nspawn -b, on a
    private network): apt-get install ./hubfs-mirror_*.deb brings nginx,
    whose scripts start nginx.service, and yet nginx never starts and
    nothing listens on port 80 (no policy-rc.d helps); hubfs-mirror.service
    starts and answers with that nginx; systemd-analyze verify
    accepts hubfs.service (user) and hubfs-mirror.service (system);
    systemctl --user enable --now hubfs mounts ~/models, and stopping it
    unmounts;
    removing hubfs-mirror unmasks nginx.service, which then, started by
    hand, does listen on port 80 (so the check above can fail), and
    installing hubfs-mirror over that running nginx leaves it running.
Root only.  Standard library only; run with /usr/bin/python3.
"""
import fcntl
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "harness"))
import hubstack  # noqa: E402

ROOTS = os.environ.get("HUBFS_TEST_ROOTS", "/var/cache/hubfs-tests")
ROOT = os.path.join(ROOTS, "bookworm")
ARCHIVES = os.path.join(ROOTS, "apt-archives")
MARK = ".hubfs-test-root"
INCLUDE = "man-db,bash-completion"
FIXTURES = os.path.join(HERE, "..", "fixtures", "hub.json")
REPO = "acme/tiny-model"


def log(msg):
    print("test-package: " + msg, flush=True)


def run(cmd, check=True, **kw):
    r = subprocess.run(cmd, text=True, capture_output=True, **kw)
    if check and r.returncode != 0:
        raise SystemExit("failed (%d): %s\n%s%s" % (
            r.returncode, " ".join(cmd), r.stdout[-3000:], r.stderr[-3000:]))
    return r


# ---- the cached root ----------------------------------------------------

def debian_sources():
    """The deb822 stanzas of this machine's apt sources that name Debian's
    archive (signed by debian-archive-keyring), and the archive's URI."""
    stanzas = []
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        with open(path) as f:
            for block in f.read().split("\n\n"):
                fields = {}
                for line in block.splitlines():
                    if ":" in line and not line.startswith(("#", " ")):
                        k, v = line.split(":", 1)
                        fields[k.strip()] = v.strip()
                if "debian-archive-keyring" in fields.get("Signed-By", "") \
                        and any(x.split("-")[0] == "bookworm"
                                for x in fields.get("Suites", "").split()):
                    stanzas.append(fields)
    if not stanzas:
        raise SystemExit("no Debian bookworm archive in /etc/apt/sources.list.d")
    mirror = stanzas[0]["URIs"].split()[0]
    text = "\n".join("".join("%s: %s\n" % kv for kv in s.items())
                     for s in stanzas)
    return mirror, text


def root_usable(root):
    if not os.path.exists(os.path.join(root, MARK)):
        return False
    for p in ("usr/bin/apt-get", "usr/bin/man", "usr/share/bash-completion/bash_completion"):
        if not os.path.exists(os.path.join(root, p)):
            return False
    return run(["chroot", root, "/bin/true"], check=False).returncode == 0


def ensure_root():
    if root_usable(ROOT):
        return False
    mirror, sources = debian_sources()
    log("making the Debian 12 root %s (debootstrap from %s)" % (ROOT, mirror))
    tmp = ROOT + ".new"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(ROOT, ignore_errors=True)
    os.makedirs(ROOTS, exist_ok=True)
    run(["debootstrap", "--variant=minbase", "--include=" + INCLUDE,
         "bookworm", tmp, mirror])
    os.remove(os.path.join(tmp, "etc/apt/sources.list"))
    with open(os.path.join(tmp, "etc/apt/sources.list.d/debian.sources"), "w") as f:
        f.write(sources)
    if os.path.exists(os.path.join(tmp, "usr/sbin/policy-rc.d")):
        raise SystemExit("debootstrap left a policy-rc.d in the root")
    run(["chroot", tmp, "apt-get", "clean"])
    with open(os.path.join(tmp, MARK), "w") as f:
        f.write("debootstrap --variant=minbase --include=%s bookworm %s\n"
                % (INCLUDE, mirror))
    os.rename(tmp, ROOT)
    return True


# ---- the overlay, in a private mount namespace --------------------------

class Overlay:
    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="hubfs-pkg-", dir="/var/tmp")
        os.chmod(self.tmp, 0o755)  # the test CDN's nginx runs as nobody
        self.root = os.path.join(self.tmp, "root")

    def __enter__(self):
        for d in ("upper", "work", "root"):
            os.mkdir(os.path.join(self.tmp, d))
        run(["mount", "-t", "overlay", "overlay", "-o",
             "lowerdir=%s,upperdir=%s/upper,workdir=%s/work"
             % (ROOT, self.tmp, self.tmp), self.root])
        run(["mount", "--rbind", "/dev", self.path("dev")])
        run(["mount", "-t", "proc", "proc", self.path("proc")])
        run(["mount", "-t", "sysfs", "sysfs", self.path("sys")])
        os.makedirs(ARCHIVES, exist_ok=True)
        run(["mount", "--bind", ARCHIVES, self.path("var/cache/apt/archives")])
        shutil.copy("/etc/resolv.conf", self.path("etc/resolv.conf"))
        return self

    def __exit__(self, *exc):
        self.kill_processes()
        run(["umount", "-R", self.root], check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def kill_processes(self):
        """Anything still running in the root (a daemon a failed step left)."""
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                if os.readlink("/proc/%s/root" % pid).startswith(self.root):
                    os.kill(int(pid), 9)
            except OSError:
                pass

    def chroot(self, *cmd, check=True, env=None):
        base = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
                "LANG": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive"}
        return run(["chroot", self.root] + list(cmd), check=check,
                   env=dict(base, **(env or {})))


# ---- the checks -----------------------------------------------------------

def expect(cond, what):
    if not cond:
        raise SystemExit("FAILED: " + what)
    log("ok: " + what)


COMPLETE = r"""
source /usr/share/bash-completion/bash_completion
_completion_loader hubfs
fn=$(complete -p hubfs | sed -n 's/.* -F \([^ ]*\) .*/\1/p')
COMP_WORDS=(hubfs pu); COMP_CWORD=1; COMP_LINE='hubfs pu'; COMP_POINT=8
"$fn" hubfs pu hubfs
printf '%s\n' "${COMPREPLY[@]}"
"""


def check_hubfs(ov, deb, version):
    ov.chroot("apt-get", "update", "-qq")
    ov.chroot("apt-get", "install", "-y", "-qq", "--no-install-recommends",
              "/srv/debs/" + os.path.basename(deb))
    out = ov.chroot("hubfs", "--version").stdout
    expect(out.startswith("hubfs %s\n" % version), "hubfs --version: " + out.strip())
    out = ov.chroot("man", "-w", "hubfs").stdout.strip()
    expect(out == "/usr/share/man/man1/hubfs.1.gz", "man -w hubfs: " + out)
    out = ov.chroot("bash", "-c", COMPLETE).stdout.split()
    expect(out == ["pull"], "bash completes 'hubfs pu<TAB>' as %s" % out)


def check_mount(ov):
    with hubstack.Stack(os.path.join(ov.tmp, "stack"),
                        fixtures=[FIXTURES]) as stack:
        repo = next(r for r in stack.manifest["repos"] if r["id"] == REPO)
        files = repo["commits"][repo["refs"]["main"]]["files"]
        os.makedirs(ov.path("mnt/models"))
        ov.chroot("hubfs", "mount", "--endpoint", stack.endpoint,
                  "--cache-dir", "/root/store", "--no-hf-cache", "/mnt/models")
        try:
            top = ov.path("mnt/models", REPO)
            listed = ov.chroot("ls", "-A", "/mnt/models/" + REPO).stdout
            tops = sorted({p.split("/")[0] for p in files})
            expect(sorted(listed.split("\n")[:-1]) == tops,
                   "ls /mnt/models/%s in the root lists %s"
                   % (REPO, " ".join(tops)))
            for rel, f in sorted(files.items()):
                path = "/mnt/models/%s/%s" % (REPO, rel)
                got = ov.chroot("sha256sum", path).stdout.split()[0]
                size = os.path.getsize(os.path.join(top, rel))
                if got != f["sha256"] or size != f["size"]:
                    raise SystemExit("FAILED: %s read back wrong" % path)
            expect(True, "read all %d files of %s through the mount, every "
                   "byte as the fixtures say" % (len(files), REPO))
        finally:
            ov.chroot("hubfs", "umount", "/mnt/models", check=False)
        with open("/proc/self/mountinfo") as f:
            expect(" %s " % ov.path("mnt/models") not in f.read(),
                   "hubfs umount unmounted it")


def listeners(port):
    """A shell command that prints how many sockets listen on port in the
    network namespace it runs in (/proc/net/tcp and tcp6, state 0A)."""
    return ("cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | "
            "awk '$4 == \"0A\" && $2 ~ /:%04X$/' | wc -l" % port)


class Booted:
    """The overlay booted with systemd (systemd-nspawn -b), on a private
    network: nginx can take port 80 there, and only there."""

    def __init__(self, ov):
        self.ov, self.proc, self.pid = ov, None, None

    def __enter__(self):
        for m in ("var/cache/apt/archives", "sys", "proc", "dev"):
            run(["umount", "-R", self.ov.path(m)], check=False)
        self.log = open(os.path.join(self.ov.tmp, "nspawn.log"), "w")
        self.proc = subprocess.Popen(
            ["systemd-nspawn", "-q", "-D", self.ov.root, "--private-network",
             "--register=no", "--keep-unit", "--bind=/dev/fuse",
             "--bind=%s:/var/cache/apt/archives" % ARCHIVES, "-b"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        deadline, state = time.monotonic() + 120, "no systemd"
        while time.monotonic() < deadline:
            self.pid = self.pid or self._init_pid()
            if self.pid:
                r = self.run("systemctl", "is-system-running", check=False)
                state = (r.stdout + r.stderr).strip()
                if state in ("running", "degraded"):
                    return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.5)
        self.__exit__()
        with open(self.log.name, errors="replace") as f:
            tail = f.read()[-3000:]
        raise SystemExit("the root did not boot (%s):\n%s" % (state, tail))

    def __exit__(self, *exc):
        self.proc.terminate()  # nspawn powers the container off
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    def _init_pid(self):
        """The container's systemd: a descendant of systemd-nspawn."""
        parent = {}
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open("/proc/%s/stat" % pid) as f:
                    stat = f.read()
            except OSError:
                continue
            comm = stat[stat.index("(") + 1:stat.rindex(")")]
            parent[int(pid)] = (int(stat[stat.rindex(")") + 2:].split()[1]), comm)
        for pid, (_, comm) in parent.items():
            p = pid
            while comm == "systemd" and p in parent and p > 1:
                p = parent[p][0]
                if p == self.proc.pid:
                    return pid
        return None

    def run(self, *cmd, check=True):
        return run(["nsenter", "-t", str(self.pid), "-m", "-u", "-i", "-n",
                    "-p", "--", "/usr/bin/env", "-i",
                    "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8",
                    "DEBIAN_FRONTEND=noninteractive"] + list(cmd), check=check)

    def port_80(self):
        return int(self.run("sh", "-c", listeners(80)).stdout)


HEALTH = """
import time, urllib.request
for _ in range(100):
    try:
        r = urllib.request.urlopen("http://127.0.0.1:8080/.hubfs-mirror/health")
        print(r.status)
        break
    except OSError as e:
        err = e
        time.sleep(0.1)
else:
    print(err)
"""


def check_user_unit(ov, box):
    """systemctl --user enable --now hubfs mounts ~/models, as the README
    says (offline, through a drop-in: the network is private), and stopping
    the unit unmounts it."""
    box.run("systemctl", "start", "user@0.service")
    user = ["env", "XDG_RUNTIME_DIR=/run/user/0", "systemctl", "--user"]
    dropin = ov.path("root/.config/systemd/user/hubfs.service.d")
    os.makedirs(dropin)
    with open(os.path.join(dropin, "offline.conf"), "w") as f:
        f.write("[Service]\nEnvironment=HF_HUB_OFFLINE=1\n")
    box.run(*user, "daemon-reload")
    box.run(*user, "enable", "--now", "hubfs")
    fstype = ""
    for _ in range(100):
        fstype = box.run("findmnt", "-n", "-o", "FSTYPE", "/root/models",
                         check=False).stdout.strip()
        if fstype:
            break
        time.sleep(0.1)
    listed = box.run("ls", "/root/models", check=False).stdout.split()
    status = box.run(*user, "status", "hubfs", check=False).stdout
    expect(fstype.startswith("fuse") and "datasets" in listed,
           "systemctl --user enable --now hubfs mounts ~/models (%s: %s)%s" % (
               fstype, " ".join(listed),
               "" if fstype else "\n" + status[-2000:]))
    box.run(*user, "stop", "hubfs")
    fstype = box.run("findmnt", "-n", "-o", "FSTYPE", "/root/models",
                     check=False).stdout.strip()
    expect(not fstype, "systemctl --user stop hubfs unmounts it")


def check_mirror(ov, deb):
    """hubfs-mirror brings nginx into a system that runs systemd, where
    nginx's own scripts start nginx.service: it must not listen on port 80."""
    name = "/srv/debs/" + os.path.basename(deb)
    apt = ["apt-get", "install", "-y", "-qq", "--no-install-recommends"]
    ov.chroot(*apt, "systemd", "dbus", "libpam-systemd")
    ov.chroot(*apt, "--download-only", name)
    expect(not os.path.exists(ov.path("usr/sbin/policy-rc.d")),
           "the root has no policy-rc.d (nothing keeps services from starting)")
    with Booted(ov) as box:
        box.run(*apt, name)
        started = box.run("systemctl", "show", "-P",
                          "ExecMainStartTimestampMonotonic",
                          "nginx").stdout.strip()
        state = box.run("systemctl", "is-enabled", "nginx",
                        check=False).stdout.strip()
        expect(box.port_80() == 0 and started == "0" and state == "masked",
               "installing hubfs-mirror (and nginx) under systemd started no "
               "nginx: nothing listens on port 80, nginx.service %s" % state)
        # The unit, with the address set in /etc/default/hubfs-mirror (an
        # upstream that needs no DNS: the network is private).
        with open(ov.path("etc/default/hubfs-mirror"), "a") as f:
            f.write('HUBFS_MIRROR_ARGS="--upstream http://127.0.0.1:9 '
                    '--listen 127.0.0.1:8080 --cache-dir /var/cache/hubfs-mirror"\n')
        box.run("systemctl", "start", "hubfs-mirror")
        health = box.run("python3", "-c", HEALTH, check=False)
        expect(health.stdout.strip() == "200", "systemctl start hubfs-mirror: "
               "its nginx answers on 127.0.0.1:8080 (%s)"
               % (health.stdout + health.stderr).strip()[-300:])
        box.run("systemctl", "stop", "hubfs-mirror")
        for args in (["systemd-analyze", "verify",
                      "/usr/lib/systemd/system/hubfs-mirror.service"],
                     ["env", "XDG_RUNTIME_DIR=/tmp", "systemd-analyze",
                      "--user", "verify",
                      "/usr/lib/systemd/user/hubfs.service"]):
            r = box.run(*args, check=False)
            expect(r.returncode == 0 and not r.stderr.strip(), "%s: %s" % (
                " ".join(args[args.index("systemd-analyze") + 1:]),
                r.stderr.strip() or "clean"))
        check_user_unit(ov, box)
        box.run("apt-get", "remove", "-y", "-qq", "hubfs-mirror")
        expect(not os.path.lexists(ov.path("etc/systemd/system/nginx.service")),
               "removing hubfs-mirror unmasks nginx.service")
        # The check above can fail: nginx, started now, listens on port 80.
        box.run("systemctl", "start", "nginx")
        expect(box.port_80() > 0,
               "started by hand, Debian's nginx listens on port 80 there")
        # An nginx that was there before is the administrator's: installing
        # hubfs-mirror again leaves it running and unmasked.
        before = box.run("systemctl", "is-enabled", "nginx",
                         check=False).stdout.strip()
        box.run(*apt, name)
        after = box.run("systemctl", "is-enabled", "nginx",
                        check=False).stdout.strip()
        expect(box.port_80() > 0 and after == before != "masked",
               "installed over a running nginx, hubfs-mirror leaves it "
               "running and %s" % after)


def one_deb(debdir, pattern):
    found = glob.glob(os.path.join(debdir, pattern))
    if len(found) != 1:
        raise SystemExit("want one %s in %s, found %s" % (pattern, debdir, found))
    return found[0]


def inner(debdir):
    hubfs_deb = one_deb(debdir, "hubfs_*.deb")
    mirror_deb = one_deb(debdir, "hubfs-mirror_*.deb")
    version = os.path.basename(hubfs_deb).split("_")[1]
    run(["mount", "--make-rprivate", "/"])
    with Overlay() as ov:
        os.makedirs(ov.path("srv/debs"))
        for d in (hubfs_deb, mirror_deb):
            shutil.copy(d, ov.path("srv/debs"))
        check_hubfs(ov, hubfs_deb, version)
        check_mount(ov)
        check_mirror(ov, mirror_deb)


def main():
    if sys.argv[1:] == ["--cached"]:
        return 0 if os.geteuid() == 0 and root_usable(ROOT) else 1
    if len(sys.argv) == 3 and sys.argv[1] == "--inner":
        inner(sys.argv[2])
        return 0
    if len(sys.argv) != 2:
        raise SystemExit(__doc__.split("\n\n")[1])
    if os.geteuid() != 0:
        raise SystemExit("test-package needs root (debootstrap, chroot, mounts)")
    start = time.monotonic()
    # One run at a time on a machine: they share the root and the archives.
    os.makedirs(ROOTS, exist_ok=True)
    lock = open(os.path.join(ROOTS, "lock"), "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log("waiting for another test-package run to finish")
        fcntl.flock(lock, fcntl.LOCK_EX)
    made = ensure_root()
    ready = time.monotonic()
    r = subprocess.run(["unshare", "--mount", "--propagation", "private",
                        sys.executable, os.path.abspath(__file__), "--inner",
                        os.path.abspath(sys.argv[1])])
    end = time.monotonic()
    log("%s in %.0f s (root: %s %.0f s; checks %.0f s)" % (
        "passed" if r.returncode == 0 else "FAILED", end - start,
        "made in" if made else "cached,", ready - start, end - ready))
    return r.returncode


if __name__ == "__main__":
    sys.exit(main())
