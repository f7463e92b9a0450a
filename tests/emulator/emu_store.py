"""emu_store.py -- the Hub emulator's data model.

Loads fixture JSON files (format documented at the top of hubemu.py and in
tests/README.md), turns every file into a content-addressed blob on disk,
and builds repos, commits and refs from them.  Everything the Hub would
compute is computed here: git blob sha1s, LFS pointers and their sha1s,
sha256s, deterministic commit ids, git tree ids for folders, and the
"last commit that touched this path" used by `expand=true`.

Blob store layout (the --blob-cache folder, kept across runs):
    sha256/<hex>              the exact bytes of one content
    gen/<seed>-<size>.json    {"sha256", "sha1"} of random content, so a
                              1 GiB file is generated and hashed only once
Writes go to a temporary name and are renamed, so a crash or a concurrent
run never leaves a half-written blob under its final name.

Standard library only.
"""

import base64
import datetime
import hashlib
import json
import os
import random
import shutil
import threading

CHUNK = 1 << 20
POINTER = "version https://git-lfs.github.com/spec/v1\noid sha256:{}\nsize {}\n"
REPO_TYPES = ("model", "dataset", "space")
FIXTURE_EPOCH = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)


def git_blob_sha1(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def iso_date(value):
    """Normalise a fixture date to the Hub's `2024-01-01T00:00:00.000Z`."""
    if isinstance(value, datetime.datetime):
        dt = value
    else:
        dt = datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.timezone.utc)
    dt = dt.astimezone(datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (dt.microsecond // 1000)


def now_iso():
    return iso_date(datetime.datetime.now(datetime.timezone.utc))


def _write_atomic(path, data, mode=0o644):
    tmp = "%s.%d.%d.tmp" % (path, os.getpid(), threading.get_ident())
    with open(tmp, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


class Blob:
    """One content: its size, sha256, git blob sha1 and the file holding it."""

    __slots__ = ("size", "sha256", "sha1", "path")

    def __init__(self, size, sha256, sha1, path):
        self.size, self.sha256, self.sha1, self.path = size, sha256, sha1, path

    def read(self):
        with open(self.path, "rb") as f:
            return f.read()


class BlobStore:
    """Content-addressed files under `root`, shared by all repos."""

    def __init__(self, root):
        self.root = os.path.abspath(root)
        for sub in ("sha256", "gen"):
            os.makedirs(os.path.join(self.root, sub), exist_ok=True)
        for d in (self.root, os.path.join(self.root, "sha256")):
            os.chmod(d, 0o755)
        self.by_sha256 = {}
        self._lock = threading.Lock()

    def _path(self, sha256):
        return os.path.join(self.root, "sha256", sha256)

    def _remember(self, blob):
        with self._lock:
            return self.by_sha256.setdefault(blob.sha256, blob)

    def put_bytes(self, data):
        sha256 = hashlib.sha256(data).hexdigest()
        known = self.by_sha256.get(sha256)
        if known:
            return known
        path = self._path(sha256)
        try:
            ok = os.path.getsize(path) == len(data)
        except OSError:
            ok = False
        if not ok:
            _write_atomic(path, data)
        return self._remember(Blob(len(data), sha256, git_blob_sha1(data), path))

    def put_file(self, src):
        """The content of the file `src`, hashed by streaming and linked
        into the store (copied only across file systems), so a GiB file
        costs no memory and, beside the store, no second copy.  The file
        must not change afterwards.  Its hashes are remembered by
        (path, size, mtime, inode): a second run does not read it again."""
        src = os.path.abspath(src)
        st = os.stat(src)
        key = [src, st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev]
        meta_path = os.path.join(self.root, "gen", "file-%s.json" % hashlib.sha1(src.encode()).hexdigest()[:20])
        meta = None
        try:
            with open(meta_path) as f:
                meta = json.load(f)
            if meta.get("key") != key or os.path.getsize(self._path(meta["sha256"])) != st.st_size:
                meta = None
        except (OSError, ValueError, KeyError):
            meta = None
        if meta is None:
            h256, h1 = hashlib.sha256(), hashlib.sha1(b"blob %d\0" % st.st_size)
            with open(src, "rb") as f:
                for chunk in iter(lambda: f.read(16 * CHUNK), b""):
                    h256.update(chunk)
                    h1.update(chunk)
            meta = {"key": key, "sha256": h256.hexdigest(), "sha1": h1.hexdigest()}
            self._place(src, meta["sha256"], st.st_size)
            _write_atomic(meta_path, json.dumps(meta).encode())
        return self._remember(Blob(st.st_size, meta["sha256"], meta["sha1"], self._path(meta["sha256"])))

    def _place(self, src, sha256, size):
        """Put the bytes of src at the store path of sha256."""
        dest = self._path(sha256)
        try:
            if os.path.getsize(dest) == size:
                return
        except OSError:
            pass
        tmp = "%s.%d.%d.tmp" % (dest, os.getpid(), threading.get_ident())
        try:
            if os.stat(src).st_mode & 0o444 != 0o444:
                raise PermissionError("nginx reads the store as nobody")
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
            os.chmod(tmp, 0o644)
        os.replace(tmp, dest)

    def generated(self, seed, size):
        """Random bytes: random.Random(seed).randbytes() in 1 MiB chunks."""
        tag = str(seed) if isinstance(seed, int) else hashlib.sha1(str(seed).encode()).hexdigest()[:16]
        meta_path = os.path.join(self.root, "gen", "%s-%d.json" % (tag, size))
        try:
            with open(meta_path) as f:
                meta = json.load(f)
            path = self._path(meta["sha256"])
            if os.path.getsize(path) == size:
                return self._remember(Blob(size, meta["sha256"], meta["sha1"], path))
        except (OSError, ValueError, KeyError):
            pass
        blob = self._generate(seed, size)
        _write_atomic(meta_path, json.dumps({"sha256": blob.sha256, "sha1": blob.sha1}).encode())
        return self._remember(blob)

    def sparse(self, seed, size):
        """`size` bytes that are zeros but for a last MiB (or less) of
        random.Random(seed).randbytes(): kept as a sparse file, so a fixture
        can have a file past 2 GiB that costs no disk and is hashed once."""
        meta_path = os.path.join(self.root, "gen", "sparse-%s-%d.json" % (seed, size))
        try:
            with open(meta_path) as f:
                meta = json.load(f)
            path = self._path(meta["sha256"])
            if os.path.getsize(path) == size:
                return self._remember(Blob(size, meta["sha256"], meta["sha1"], path))
        except (OSError, ValueError, KeyError):
            pass
        tail = random.Random(seed).randbytes(min(CHUNK, size))
        h256 = hashlib.sha256()
        h1 = hashlib.sha1(b"blob %d\0" % size)
        zeros, left = bytes(16 * CHUNK), size - len(tail)
        while left > 0:
            chunk = zeros[:min(len(zeros), left)]
            h256.update(chunk)
            h1.update(chunk)
            left -= len(chunk)
        h256.update(tail)
        h1.update(tail)
        tmp = os.path.join(self.root, "gen", "tmp.%d.%d" % (os.getpid(), threading.get_ident()))
        with open(tmp, "wb") as f:
            f.truncate(size)
            f.seek(size - len(tail))
            f.write(tail)
        os.chmod(tmp, 0o644)
        blob = Blob(size, h256.hexdigest(), h1.hexdigest(), self._path(h256.hexdigest()))
        os.replace(tmp, blob.path)
        _write_atomic(meta_path, json.dumps({"sha256": blob.sha256, "sha1": blob.sha1}).encode())
        return self._remember(blob)

    def composed(self, parts, patches=()):
        """Content made of PARTS in order, then PATCHES written over it (see
        compose_part); cached like generated content, keyed by the spec."""
        key = json.dumps([parts, list(patches)], sort_keys=True)
        tag = hashlib.sha1(key.encode()).hexdigest()[:20]
        meta_path = os.path.join(self.root, "gen", "composed-%s.json" % tag)
        try:
            with open(meta_path) as f:
                meta = json.load(f)
            path = self._path(meta["sha256"])
            if os.path.getsize(path) == meta["size"]:
                return self._remember(Blob(meta["size"], meta["sha256"], meta["sha1"], path))
        except (OSError, ValueError, KeyError):
            pass
        tmp = os.path.join(self.root, "gen", "tmp.%d.%d" % (os.getpid(), threading.get_ident()))
        with open(tmp, "w+b") as f:
            for part in parts:
                for block in compose_part(part):
                    f.write(block)
            size = f.tell()
            for patch in patches:
                f.seek(int(patch["offset"]))
                for block in compose_part(patch):
                    f.write(block)
            if f.seek(0, os.SEEK_END) != size:
                raise ValueError("a patch runs past the end of the content")
            f.seek(0)
            h256, h1 = hashlib.sha256(), hashlib.sha1(b"blob %d\0" % size)
            for block in iter(lambda: f.read(CHUNK), b""):
                h256.update(block)
                h1.update(block)
        os.chmod(tmp, 0o644)
        blob = Blob(size, h256.hexdigest(), h1.hexdigest(), self._path(h256.hexdigest()))
        os.replace(tmp, blob.path)
        _write_atomic(meta_path, json.dumps({"sha256": blob.sha256, "sha1": blob.sha1,
                                             "size": size}).encode())
        return self._remember(blob)

    def _generate(self, seed, size):
        rng = random.Random(seed)
        h256 = hashlib.sha256()
        h1 = hashlib.sha1(b"blob %d\0" % size)
        tmp = os.path.join(self.root, "gen", "tmp.%d.%d" % (os.getpid(), threading.get_ident()))
        with open(tmp, "wb") as f:
            left = size
            while left > 0:
                chunk = rng.randbytes(min(CHUNK, left))
                h256.update(chunk)
                h1.update(chunk)
                f.write(chunk)
                left -= len(chunk)
        os.chmod(tmp, 0o644)
        sha256 = h256.hexdigest()
        os.replace(tmp, self._path(sha256))
        return Blob(size, sha256, h1.hexdigest(), self._path(sha256))


WORDS = ("tensor weight layer norm attention head token vocab embed model shard revision "
         "chunk xorb dedupe the of and a to in is for on with by").split()


FLOAT_BYTE2 = bytes(b & 0x87 for b in range(256))


def compose_part(part):
    """Blocks of one part of composed content (fixture key "parts"), each of
    a kind that stresses another Xet chunk compression scheme:
      {"random": N, "seed": S}  random.Random(S) bytes: incompressible
      {"zeros": N}              zeros: one chunk, deduplicated
      {"text": N, "seed": S}    numbered lines of words: LZ4
      {"floats": N, "seed": S}  little-endian float32s of one sign and
                                exponent: byte grouping (BG4) then LZ4
    """
    rng = random.Random(part.get("seed", 0))
    for kind in ("random", "zeros", "text", "floats"):
        if kind in part:
            left = int(part[kind])
            break
    else:
        raise ValueError("composed part %r: need random, zeros, text or floats" % part)
    line_no = 0
    while left > 0:
        n = min(CHUNK, left)
        if kind == "random":
            block = rng.randbytes(n)
        elif kind == "zeros":
            block = bytes(n)
        elif kind == "text":
            lines = []
            size = 0
            while size < n:
                line = "%08d %s\n" % (line_no, " ".join(rng.choices(WORDS, k=12)))
                lines.append(line)
                size += len(line)
                line_no += 1
            block = "".join(lines).encode()[:n]
        else:
            raw = bytearray(rng.randbytes(n))
            raw[3::4] = bytes([0x3c]) * len(raw[3::4])              # sign and high exponent
            raw[2::4] = bytes(raw[2::4]).translate(FLOAT_BYTE2)     # low exponent bit, few mantissa bits
            block = bytes(raw)
        left -= n
        yield block


def spread_edits(parts, edits):
    """Fixture key "edits" {"count": N, "size": S, "seed": K} -> N patches of
    S bytes spread evenly over the content of PARTS (patch i in the middle of
    the i-th N-th of it), each of the kind of the part under its start (text
    over zeros) and seeded K + i: an update that rewrites small regions in
    place, as a fine-tuning step does to a checkpoint."""
    kinds = []                  # (end offset, kind) of each part
    total = 0
    for part in parts:
        kind = next(k for k in ("random", "zeros", "text", "floats") if k in part)
        total += int(part[kind])
        kinds.append((total, "text" if kind == "zeros" else kind))
    count, size, seed = int(edits["count"]), int(edits["size"]), int(edits["seed"])
    if count * size > total:
        raise ValueError("edits: %d x %d bytes do not fit in %d" % (count, size, total))
    patches = []
    for i in range(count):
        offset = (2 * i + 1) * total // (2 * count) - size // 2
        kind = next(k for end, k in kinds if offset < end)
        patches.append({"offset": offset, kind: size, "seed": seed + i})
    return patches


class FileEntry:
    """A file at a commit: a blob plus how git stores it (plain or LFS/xet)."""

    __slots__ = ("blob", "lfs", "xet", "xet_hash", "xet_built", "oid", "pointer")

    def __init__(self, blob, lfs=False, xet=False, xet_hash=None):
        self.blob = blob
        self.lfs = bool(lfs or xet)
        self.xet = bool(xet)
        self.xet_hash = None
        self.xet_built = False      # xet_hash names real Xet objects in the CAS
        self.pointer = None
        if self.lfs:
            self.pointer = POINTER.format(blob.sha256, blob.size).encode()
            self.oid = git_blob_sha1(self.pointer)
        else:
            self.oid = blob.sha1
        if self.xet:
            self.xet_hash = xet_hash or hashlib.sha256(b"xet:" + blob.sha256.encode()).hexdigest()

    @property
    def size(self):
        return self.blob.size

    @property
    def etag(self):
        """What a client uses as the cache blob name."""
        return self.blob.sha256 if self.lfs else self.oid


class TreeIndex:
    """Folder structure of one commit, built on first use."""

    def __init__(self, files):
        self.dirs = {"": {}}
        for path in files:
            parts = path.split("/")
            parent = ""
            for name in parts[:-1]:
                child = name if not parent else parent + "/" + name
                self.dirs[parent][name] = True
                self.dirs.setdefault(child, {})
                parent = child
            self.dirs[parent][parts[-1]] = False
        self.files = files
        self._tree_oids = {}

    def is_dir(self, path):
        return path in self.dirs

    def _sorted(self, d):
        kids = self.dirs[d]
        names = sorted(kids)
        return [n for n in names if kids[n]] + [n for n in names if not kids[n]]

    def listing(self, d, recursive):
        """[(path, is_dir)]: folders first, then files; depth-first when recursive."""
        out = []
        self._walk(d, recursive, out)
        return out

    def _walk(self, d, recursive, out):
        for name in self._sorted(d):
            path = name if not d else d + "/" + name
            is_dir = self.dirs[d][name]
            out.append((path, is_dir))
            if is_dir and recursive:
                self._walk(path, True, out)

    def tree_oid(self, d):
        """The git tree id of folder `d` (computed like git does)."""
        oid = self._tree_oids.get(d)
        if oid:
            return oid
        kids = self.dirs[d]
        entries = []
        for name in kids:
            path = name if not d else d + "/" + name
            if kids[name]:
                entries.append((name + "/", b"40000 ", name, self.tree_oid(path)))
            else:
                entries.append((name, b"100644 ", name, self.files[path].oid))
        entries.sort(key=lambda e: e[0].encode())
        body = b"".join(m + n.encode() + b"\0" + bytes.fromhex(o) for _, m, n, o in entries)
        oid = hashlib.sha1(b"tree %d\0" % len(body) + body).hexdigest()
        self._tree_oids[d] = oid
        return oid


class Commit:
    __slots__ = ("id", "parent", "date", "title", "message", "author", "files", "changed",
                 "_index", "_last", "_dir_last")

    def __init__(self, parent, files, changed, title, message, date, author):
        self.parent, self.files, self.changed = parent, files, changed
        self.title, self.message, self.date, self.author = title, message, date, author
        self._index = self._last = self._dir_last = None
        self.id = None

    def compute_id(self, repo_key):
        h = hashlib.sha1()
        h.update(("%s\n%s\n%s\n%s\n" % (repo_key, self.parent.id if self.parent else "",
                                        self.message, self.date)).encode())
        for path in sorted(self.files):
            f = self.files[path]
            h.update(b"%s\0%s\0%d\n" % (path.encode(), f.oid.encode(), f.lfs + 2 * f.xet))
        self.id = h.hexdigest()
        return self.id

    @property
    def index(self):
        if self._index is None:
            self._index = TreeIndex(self.files)
        return self._index

    def last_commits(self):
        """{file path: commit that last changed it}, following first parents."""
        if self._last is None:
            last = dict(self.parent.last_commits()) if self.parent else {}
            for p in self.changed:
                if p in self.files:
                    last[p] = self
                else:
                    last.pop(p, None)
            self._last = last
        return self._last

    def dir_last_commits(self):
        """{folder path: newest commit that changed anything under it}."""
        if self._dir_last is None:
            last = dict(self.parent.dir_last_commits()) if self.parent else {}
            for p in self.changed:
                parts = p.split("/")[:-1]
                for i in range(len(parts) + 1):
                    last["/".join(parts[:i])] = self
            self._dir_last = last
        return self._dir_last

    def ancestry(self):
        c = self
        while c:
            yield c
            c = c.parent


class Repo:
    def __init__(self, spec):
        self.type = spec.get("type", "model")
        if self.type not in REPO_TYPES:
            raise ValueError("repo %r: unknown type %r" % (spec.get("id"), self.type))
        self.id = spec["id"]
        if self.id.count("/") != 1:
            raise ValueError("repo %r: canonical ids are owner/name (use renamed_from for legacy ids)" % self.id)
        self.owner = self.id.split("/")[0]
        self.private = bool(spec.get("private", False))
        self.gated = spec.get("gated", False) or False
        self.approved = set(spec.get("gated_approved", []))
        self.disabled = bool(spec.get("disabled", False))
        self.renamed_from = list(spec.get("renamed_from", []))
        self.default_branch = spec.get("default_branch", "main")
        self.info = dict(spec.get("info", {}))
        self.raw_entries = [raw_entry(e) for e in spec.get("raw_entries", [])]
        self.refs = {"branches": {}, "tags": {}, "prs": {}, "converts": {}}
        self.commits = {}
        self.labels = {}
        self.internal_id = hashlib.sha1(("%s/%s" % (self.type, self.id)).encode()).hexdigest()[:24]

    @property
    def key(self):
        return "%s/%s" % (self.type, self.id)

    def head(self):
        return self.refs["branches"].get(self.default_branch)

    def ref_slot(self, name):
        """(kind, short name) for a ref a commit advances."""
        for prefix, kind in (("refs/pr/", "prs"), ("refs/convert/", "converts"),
                             ("refs/heads/", "branches"), ("refs/tags/", "tags")):
            if name.startswith(prefix):
                return kind, name[len(prefix):]
        return "branches", name

    def resolve(self, rev):
        """A revision (branch, tag, refs/..., HEAD, full or short sha) -> Commit or None."""
        refs = self.refs
        if rev == "HEAD":
            return self.head()
        for kind in ("branches", "tags"):
            if rev in refs[kind]:
                return refs[kind][rev]
        kind, name = self.ref_slot(rev)
        if rev != name and name in refs[kind]:
            return refs[kind][name]
        if rev in self.commits:
            return self.commits[rev]
        if 5 <= len(rev) < 40 and all(c in "0123456789abcdef" for c in rev):
            hits = [c for sha, c in self.commits.items() if sha.startswith(rev)]
            if len(hits) == 1:
                return hits[0]
        return None

    def flat_refs(self):
        out = {}
        out.update({n: c.id for n, c in self.refs["branches"].items()})
        out.update({n: c.id for n, c in self.refs["tags"].items()})
        out.update({"refs/pr/%s" % n: c.id for n, c in self.refs["prs"].items()})
        out.update({"refs/convert/%s" % n: c.id for n, c in self.refs["converts"].items()})
        return out


def raw_entry(spec):
    """A hostile tree entry as the bytes to send: an object is sent as JSON
    with every non-ASCII character escaped (so a NUL becomes \\u0000), {"raw":
    TEXT} as that JSON text verbatim, {"raw_base64": B64} as those bytes
    verbatim (not even UTF-8)."""
    if "raw" in spec and len(spec) == 1:
        return spec["raw"].encode("utf-8")
    if "raw_base64" in spec and len(spec) == 1:
        return base64.b64decode(spec["raw_base64"])
    return json.dumps(spec, ensure_ascii=True).encode("ascii")


class Hub:
    """All users, orgs and repos the emulator serves."""

    def __init__(self, store, cdn_dir, xet_store=None):
        self.store = store
        self.cdn_dir = cdn_dir
        self.xet_store = xet_store   # built Xet objects (emu_xet.XetStore), or None
        self.xet_entries = {}        # content sha256 -> [FileEntry] of xet files
        self.users = {}      # name -> {"name", "fullname", "orgs": [...]}
        self.orgs = {}       # name -> {"name", "fullname"}
        self.tokens = {}     # token -> {"user", "role", "displayName"}
        self.repos = {}      # (type, id) -> Repo
        self.aliases = {}    # (type, old id) -> new id
        self.lock = threading.RLock()

    # ---------------------------------------------------------------- loading
    def load(self, path):
        with open(path, encoding="utf-8") as f:
            spec = json.load(f)
        base = os.path.dirname(os.path.abspath(path))
        for org in spec.get("orgs", []):
            self.orgs[org["name"]] = {"name": org["name"], "fullname": org.get("fullname", org["name"])}
        for user in spec.get("users", []):
            self._add_user(user)
        for repo_spec in spec.get("repos", []):
            self._add_repo(repo_spec, base)

    def _add_user(self, spec):
        name = spec["name"]
        self.users[name] = {"name": name, "fullname": spec.get("fullname", name),
                            "orgs": list(spec.get("orgs", []))}
        for org in spec.get("orgs", []):
            self.orgs.setdefault(org, {"name": org, "fullname": org})
        for i, tok in enumerate(spec.get("tokens", [])):
            if isinstance(tok, str):
                tok = {"token": tok}
            self.tokens[tok["token"]] = {"user": name, "role": tok.get("role", "read"),
                                         "displayName": tok.get("displayName", "%s-token-%d" % (name, i))}

    def _add_repo(self, spec, base):
        repo = Repo(spec)
        key = (repo.type, repo.id)
        if key in self.repos:
            raise ValueError("repo %s declared twice" % repo.key)
        self.repos[key] = repo
        for old in repo.renamed_from:
            self.aliases[(repo.type, old)] = repo.id
        for i, cspec in enumerate(spec.get("commits", [])):
            cspec = dict(cspec)
            # Fixture commits without a date get one day apart from 2024-01-01.
            cspec.setdefault("date", FIXTURE_EPOCH + datetime.timedelta(days=i))
            self.push_commit(repo, cspec, base)
        if not repo.head():
            raise ValueError("repo %s has no commit on its default branch %r" % (repo.key, repo.default_branch))

    # ---------------------------------------------------------------- commits
    def push_commit(self, repo, spec, base="."):
        """Apply one commit spec to `repo`; returns the new Commit.

        spec: ref (default: default branch), parent (label, sha, ref, or null
        for an orphan), files {path: file spec}, delete [paths], trees
        [tree spec], message, date, author, tags [names], label.
        """
        with self.lock:
            ref = spec.get("ref", spec.get("branch", repo.default_branch))
            kind, name = repo.ref_slot(ref)
            parent = self._parent_for(repo, spec, kind, name)
            files = dict(parent.files) if parent else {}
            changed = set()
            for path in spec.get("delete", []):
                path = path.strip("/")
                doomed = [p for p in files if p == path or p.startswith(path + "/")]
                if not doomed:
                    raise ValueError("%s: cannot delete missing %r" % (repo.key, path))
                for p in doomed:
                    del files[p]
                    changed.add(p)
            for path, fspec in spec.get("files", {}).items():
                self._set_file(files, changed, path.strip("/"), self.make_file(fspec, base, path))
            for tspec in spec.get("trees", []):
                for path, entry in self.make_tree(tspec):
                    self._set_file(files, changed, path, entry)
            self._check_paths(repo, files)
            message = spec.get("message", "Update files")
            commit = Commit(parent, files, changed, message.split("\n", 1)[0], message,
                            iso_date(spec["date"]) if spec.get("date") else now_iso(),
                            spec.get("author", repo.owner))
            commit.compute_id(repo.key)
            repo.commits.setdefault(commit.id, commit)
            commit = repo.commits[commit.id]
            repo.refs[kind][name] = commit
            for tag in spec.get("tags", []):
                repo.refs["tags"][tag] = commit
            if spec.get("label"):
                repo.labels[spec["label"]] = commit
            self._publish_lfs(files)
            return commit

    def _parent_for(self, repo, spec, kind, name):
        if "parent" in spec:
            p = spec["parent"]
            if p is None:
                return None
            found = repo.labels.get(p) or repo.resolve(p)
            if not found:
                raise ValueError("%s: unknown parent %r" % (repo.key, p))
            return found
        return repo.refs[kind].get(name) or repo.head()

    @staticmethod
    def _set_file(files, changed, path, entry):
        old = files.get(path)
        if old is None or old.oid != entry.oid or old.lfs != entry.lfs or old.xet != entry.xet:
            changed.add(path)
        files[path] = entry

    @staticmethod
    def _check_paths(repo, files):
        for path in files:
            parts = path.split("/")
            if any(p in ("", ".", "..") for p in parts):
                raise ValueError("%s: bad path %r" % (repo.key, path))
            for i in range(1, len(parts)):
                if "/".join(parts[:i]) in files:
                    raise ValueError("%s: %r is both a file and a folder" % (repo.key, "/".join(parts[:i])))

    def make_file(self, spec, base=".", path="?"):
        """A file spec -> FileEntry.  Spec: a string (text), or an object with
        one of text / base64 / file / {size, seed} / {parts, patches, edits}, plus
        lfs, xet, xetHash."""
        if isinstance(spec, str):
            spec = {"text": spec}
        if "text" in spec:
            blob = self.store.put_bytes(spec["text"].encode("utf-8"))
        elif "base64" in spec:
            blob = self.store.put_bytes(base64.b64decode(spec["base64"]))
        elif "file" in spec:
            blob = self.store.put_file(os.path.join(base, spec["file"]))
        elif "parts" in spec:
            patches = list(spec.get("patches", ()))
            if "edits" in spec:
                patches += spread_edits(spec["parts"], spec["edits"])
            blob = self.store.composed(spec["parts"], patches)
        elif "size" in spec and "seed" in spec and spec.get("sparse"):
            blob = self.store.sparse(spec["seed"], int(spec["size"]))
        elif "size" in spec and "seed" in spec:
            blob = self.store.generated(spec["seed"], int(spec["size"]))
        else:
            raise ValueError("file %r: need text, base64, file or size+seed" % path)
        entry = FileEntry(blob, spec.get("lfs", False), spec.get("xet", False), spec.get("xetHash"))
        if entry.xet and not spec.get("xetHash"):
            self._attach_xet(entry)
        return entry

    def _attach_xet(self, entry):
        """Give a xet file the hash of its built Xet objects, when built; until
        then it keeps a placeholder hash and is listed by xet_pending()."""
        with self.lock:
            self.xet_entries.setdefault(entry.blob.sha256, []).append(entry)
        rec = self.xet_store.by_sha256(entry.blob.sha256) if self.xet_store else None
        if rec and rec["size"] == entry.size:
            entry.xet_hash, entry.xet_built = rec["file_hash"], True

    def xet_pending(self):
        """Blobs of xet files whose Xet objects are not built yet."""
        with self.lock:
            return [es[0].blob for es in self.xet_entries.values()
                    if not all(e.xet_built for e in es)]

    def xet_registered(self, records):
        """Built objects arrived (a shard upload): their files get real hashes."""
        with self.lock:
            for rec in records:
                for entry in self.xet_entries.get(rec["sha256"], []):
                    if rec["size"] == entry.size:
                        entry.xet_hash, entry.xet_built = rec["file_hash"], True

    def make_tree(self, spec):
        """A generated tree: `count` small text files spread over nested folders.

        spec: prefix, count, dirs [fanout per level] (default [10]), seed,
        size (bytes per file, default: one line), ext (default .txt), lfs.
        """
        prefix = spec.get("prefix", "").strip("/")
        count, seed = int(spec["count"]), spec.get("seed", 0)
        fanouts = list(spec.get("dirs", [10]))
        leaves = 1
        for n in fanouts:
            leaves *= n
        per_leaf = max(1, -(-count // leaves))
        ext = spec.get("ext", ".txt")
        for i in range(count):
            leaf, digits = i // per_leaf, []
            for n in reversed(fanouts):
                digits.append(leaf % n)
                leaf //= n
            parts = ["d%0*d" % (len(str(n - 1)), d) for n, d in zip(fanouts, reversed(digits))]
            rel = "/".join(parts + ["f%0*d%s" % (len(str(count - 1)), i, ext)])
            path = prefix + "/" + rel if prefix else rel
            line = ("%s seed=%s n=%d\n" % (path, seed, i)).encode()
            size = spec.get("size")
            data = (line * (int(size) // len(line) + 1))[:int(size)] if size is not None else line
            yield path, FileEntry(self.store.put_bytes(data), spec.get("lfs", False))

    def _publish_lfs(self, files):
        """Make every LFS blob available to nginx as cdn/<sha256>."""
        for entry in files.values():
            if entry.lfs:
                self.publish_cdn(entry.blob)

    def publish_cdn(self, blob):
        dest = os.path.join(self.cdn_dir, blob.sha256)
        if os.path.exists(dest):
            return
        try:
            os.link(blob.path, dest)
        except FileExistsError:
            pass
        except OSError:
            try:
                os.symlink(blob.path, dest)
            except FileExistsError:
                pass
            except OSError:
                shutil.copyfile(blob.path, dest)

    # ---------------------------------------------------------------- lookup
    def find(self, rtype, repo_id):
        """-> ("repo", Repo) | ("alias", new id) | (None, None)."""
        repo = self.repos.get((rtype, repo_id))
        if repo:
            return "repo", repo
        new = self.aliases.get((rtype, repo_id))
        if new:
            return "alias", new
        return None, None

    def user_for_token(self, token):
        t = self.tokens.get(token)
        return self.users.get(t["user"]) if t else None

    def can_read(self, user, repo):
        return not repo.private or self._is_member(user, repo)

    def can_write(self, user, repo):
        return self._is_member(user, repo)

    def gate_open(self, user, repo):
        if not repo.gated:
            return True
        if user is None:
            return False
        return repo.gated == "auto" or user["name"] in repo.approved or self._is_member(user, repo)

    @staticmethod
    def _is_member(user, repo):
        return bool(user) and (user["name"] == repo.owner or repo.owner in user["orgs"])

    # ---------------------------------------------------------------- output
    def manifest(self, endpoint, cdn):
        repos = []
        with self.lock:
            for repo in sorted(self.repos.values(), key=lambda r: r.key):
                repos.append(self._repo_manifest(repo))
        return {"endpoint": endpoint, "cdn": cdn, "repos": repos}

    @staticmethod
    def _repo_manifest(repo):
        commits = {}
        for sha, c in repo.commits.items():
            files = {}
            for path, f in c.files.items():
                e = {"size": f.size, "oid": f.oid, "sha256": f.blob.sha256, "lfs": f.lfs,
                     "xet": f.xet, "content": f.blob.path}
                if f.lfs:
                    e["pointerSize"] = len(f.pointer)
                if f.xet:
                    e["xetHash"] = f.xet_hash
                    e["xetBuilt"] = f.xet_built
                files[path] = e
            commits[sha] = {"date": c.date, "title": c.title, "message": c.message,
                            "parent": c.parent.id if c.parent else None, "files": files}
        return {"type": repo.type, "id": repo.id, "private": repo.private, "gated": repo.gated,
                "gated_approved": sorted(repo.approved), "disabled": repo.disabled,
                "renamed_from": repo.renamed_from, "default_branch": repo.default_branch,
                "refs": repo.flat_refs(), "commits": commits}

    def tokens_doc(self, invalid_token):
        users = {}
        for name, u in sorted(self.users.items()):
            toks = [t for t, v in self.tokens.items() if v["user"] == name]
            users[name] = {"token": toks[0] if toks else None, "tokens": toks,
                           "orgs": u["orgs"], "fullname": u["fullname"]}
        tokens = {t: dict(v) for t, v in sorted(self.tokens.items())}
        return {"users": users, "tokens": tokens, "invalid": invalid_token}


def write_json_atomic(path, doc):
    _write_atomic(path, json.dumps(doc, indent=1, ensure_ascii=False).encode("utf-8"))
