"""emu_xet.py -- the emulator's Xet storage: objects on disk and the CAS service.

The Hub stores big files in Xet (hub/hub-api.md section 9 and section 14): a
file is a list of terms, each a chunk range of a xorb (a container of
compressed chunks).  Clients fetch a file's reconstruction from the CAS
(`GET /v1|v2/reconstructions/<file hash>`), then the xorb byte ranges it
names from signed, expiring CDN URLs (nginx here).

The emulator does not chunk or hash anything itself (no BLAKE3 in the
standard library, and Python would be too slow for big files): hf_xet's
own upload path writes real objects into this CAS (tests/harness/xet_build.py,
run by hubstack.py with the test venv), and the CAS keeps them:

    <blob cache>/xet/xorbs/<xorb hash>      a xorb as uploaded (chunks, no footer)
    <blob cache>/xet/files/<sha256>.json    {"file_hash", "size", "sha256",
                                             "terms": [[xorb, first, end, bytes], ...]}

Shards are parsed with struct to learn each file's terms (and, from the
metadata extension, its sha256, which ties it to fixture content); xorbs
are walked header by header to learn each chunk's byte offset and
compression scheme.  Both stores are content-addressed and written
atomically, so runs in parallel share them safely.  Standard library only.
"""

import collections
import json
import os
import re
import secrets
import struct
import threading
import time

from emu_http import HubError, Reply, Response, json_response, url_signature

SHARD_HEADER_SIZE = 48
ENTRY_SIZE = 48
BOOKEND = b"\xff" * 32
FLAG_VERIFICATION = 0x80000000
FLAG_METADATA_EXT = 0x40000000
CHUNK_HEADER_SIZE = 8
MAX_CHUNK = 128 * 1024
SCHEMES = {0: "none", 1: "lz4", 2: "bg4-lz4"}
HEX64 = re.compile(r"[0-9a-f]{64}")


class XetFormatError(ValueError):
    pass


def hash_hex(raw):
    """A 32-byte Xet hash as the spec's string: four little-endian u64s in hex."""
    return "".join("%016x" % v for v in struct.unpack("<4Q", raw))


def parse_shard(data):
    """A shard (as POSTed: header, file info, CAS info, footer optional) ->
    (files, xorbs).  files: [{"file_hash", "sha256" or None, "terms":
    [[xorb, first, end, unpacked bytes], ...]}]; xorbs: [{"hash", "chunks",
    "bytes"}] (bytes = unpacked total)."""
    if len(data) < SHARD_HEADER_SIZE:
        raise XetFormatError("shard shorter than its header")
    version, _footer_size = struct.unpack_from("<QQ", data, 32)
    if version != 2:
        raise XetFormatError("shard header version %d, want 2" % version)
    pos, files, xorbs = SHARD_HEADER_SIZE, [], []

    def entry(at):
        if at + ENTRY_SIZE > len(data):
            raise XetFormatError("shard cut short at byte %d" % at)
        return data[at:at + 32], data[at + 32:at + ENTRY_SIZE]

    while True:
        raw, rest = entry(pos)
        pos += ENTRY_SIZE
        if raw == BOOKEND:
            break
        flags, n = struct.unpack_from("<II", rest)
        terms = []
        for _ in range(n):
            xraw, xrest = entry(pos)
            pos += ENTRY_SIZE
            _cas_flags, unpacked, first, end = struct.unpack("<IIII", xrest)
            if end <= first:
                raise XetFormatError("empty chunk range in a file term")
            terms.append([hash_hex(xraw), first, end, unpacked])
        if flags & FLAG_VERIFICATION:
            pos += n * ENTRY_SIZE
        sha256 = None
        if flags & FLAG_METADATA_EXT:
            sraw, _ = entry(pos)
            pos += ENTRY_SIZE
            sha256 = hash_hex(sraw)
        files.append({"file_hash": hash_hex(raw), "sha256": sha256, "terms": terms})
    while True:
        raw, rest = entry(pos)
        pos += ENTRY_SIZE
        if raw == BOOKEND:
            break
        _flags, n, unpacked, _on_disk = struct.unpack("<IIII", rest)
        pos += n * ENTRY_SIZE
        xorbs.append({"hash": hash_hex(raw), "chunks": n, "bytes": unpacked})
    return files, xorbs


class XorbLayout:
    """Where each chunk of a serialized xorb sits: offsets[i] is chunk i's
    header, offsets[n] the end of the chunk data; sizes[i] its unpacked size;
    schemes[i] its compression scheme number."""

    __slots__ = ("offsets", "sizes", "schemes")

    def __init__(self, offsets, sizes, schemes):
        self.offsets, self.sizes, self.schemes = offsets, sizes, schemes

    @classmethod
    def read(cls, path):
        offsets, sizes, schemes = [], [], []
        with open(path, "rb") as f:
            total = os.fstat(f.fileno()).st_size
            pos = 0
            while pos + CHUNK_HEADER_SIZE <= total:
                f.seek(pos)
                head = f.read(CHUNK_HEADER_SIZE)
                version, csize, scheme, usize = (head[0], int.from_bytes(head[1:4], "little"),
                                                 head[4], int.from_bytes(head[5:8], "little"))
                if version != 0 or usize == 0 or usize > MAX_CHUNK or pos + 8 + csize > total:
                    break       # the footer (xorbs as stored by the Hub carry one)
                offsets.append(pos)
                sizes.append(usize)
                schemes.append(scheme)
                pos += CHUNK_HEADER_SIZE + csize
        if not offsets:
            raise XetFormatError("%s: no chunk" % path)
        offsets.append(pos)
        return cls(offsets, sizes, schemes)


def _write_atomic(path, data):
    tmp = "%s.%d.%d.tmp" % (path, os.getpid(), threading.get_ident())
    with open(tmp, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


class XetStore:
    """Xorbs and file reconstructions kept across runs (see the top)."""

    def __init__(self, root, publish_dir):
        self.root = os.path.abspath(root)
        self.publish_dir = publish_dir
        for sub in ("", "xorbs", "files"):
            os.makedirs(os.path.join(self.root, sub), exist_ok=True)
            os.chmod(os.path.join(self.root, sub), 0o755)
        os.makedirs(publish_dir, exist_ok=True)
        os.chmod(publish_dir, 0o755)
        self._layouts = collections.OrderedDict()
        self._files = {}            # sha256 -> record, file hash -> record
        self._lock = threading.Lock()

    def xorb_path(self, xorb):
        return os.path.join(self.root, "xorbs", xorb)

    def has_xorb(self, xorb):
        return os.path.exists(self.xorb_path(xorb))

    def put_xorb(self, xorb, body):
        """-> True when it was new.  The body is checked to be chunks."""
        if self.has_xorb(xorb):
            return False
        _write_atomic(self.xorb_path(xorb), body)
        try:
            XorbLayout.read(self.xorb_path(xorb))
        except XetFormatError:
            os.unlink(self.xorb_path(xorb))
            raise
        return True

    def layout(self, xorb):
        with self._lock:
            lay = self._layouts.get(xorb)
            if lay:
                self._layouts.move_to_end(xorb)
                return lay
        lay = XorbLayout.read(self.xorb_path(xorb))
        with self._lock:
            self._layouts[xorb] = lay
            while len(self._layouts) > 512:
                self._layouts.popitem(last=False)
        return lay

    def register_shard(self, data):
        """Record every file of an uploaded shard; -> the new records.
        Each referenced xorb must be here already (the spec's order)."""
        files, _ = parse_shard(data)
        records = []
        for f in files:
            for xorb, first, end, unpacked in f["terms"]:
                if not self.has_xorb(xorb):
                    raise XetFormatError("shard names xorb %s, not uploaded" % xorb)
                lay = self.layout(xorb)
                if end >= len(lay.offsets) or sum(lay.sizes[first:end]) != unpacked:
                    raise XetFormatError("term %s [%d,%d) does not match the xorb" % (xorb, first, end))
            if not f["sha256"]:
                continue        # without the metadata extension it ties to no content
            rec = {"file_hash": f["file_hash"], "sha256": f["sha256"],
                   "size": sum(t[3] for t in f["terms"]), "terms": f["terms"]}
            _write_atomic(os.path.join(self.root, "files", rec["sha256"] + ".json"),
                          json.dumps(rec).encode())
            records.append(self._remember(rec))
        return records

    def _remember(self, rec):
        with self._lock:
            self._files[rec["sha256"]] = rec
            self._files[rec["file_hash"]] = rec
        for xorb in {t[0] for t in rec["terms"]}:
            self.publish(xorb)
        return rec

    def publish(self, xorb):
        """Make a xorb servable by nginx as PUBLISH_DIR/<hash>."""
        dest = os.path.join(self.publish_dir, xorb)
        if os.path.exists(dest):
            return
        try:
            os.link(self.xorb_path(xorb), dest)
        except FileExistsError:
            pass
        except OSError:
            os.symlink(self.xorb_path(xorb), dest)

    def by_sha256(self, sha256):
        """The record of built content, or None (also looked up on disk)."""
        with self._lock:
            rec = self._files.get(sha256)
        if rec:
            return rec
        try:
            with open(os.path.join(self.root, "files", sha256 + ".json")) as f:
                rec = json.load(f)
            if all(self.has_xorb(t[0]) for t in rec["terms"]):
                return self._remember(rec)
        except (OSError, ValueError, KeyError):
            pass
        return None

    def by_file_hash(self, file_hash):
        with self._lock:
            return self._files.get(file_hash)

    def schemes(self, records):
        """{scheme name: chunk count} over the xorbs these records use."""
        counts = collections.Counter()
        for xorb in sorted({t[0] for r in records for t in r["terms"]}):
            for s in self.layout(xorb).schemes:
                counts[SCHEMES.get(s, str(s))] += 1
        return dict(counts)

    def file_schemes(self, rec):
        """{scheme name: chunk count} over the chunks one file's terms name
        (a chunk named twice counts twice)."""
        counts = collections.Counter()
        for xorb, first, end, _ in rec["terms"]:
            for s in self.layout(xorb).schemes[first:end]:
                counts[SCHEMES.get(s, str(s))] += 1
        return dict(counts)


# ---------------------------------------------------------------- reconstruction

def parse_cas_range(value, size):
    """Range on a reconstruction request -> (first, last) inclusive, None for
    the whole file; raises 416 past the end."""
    if not value:
        return None
    m = re.fullmatch(r"\s*bytes=(\d+)-(\d*)\s*", value)
    if not m:
        raise HubError(400, "Invalid Range header")
    first = int(m.group(1))
    last = int(m.group(2)) if m.group(2) else size - 1
    if first >= size or last < first:
        raise Reply(Response(416, [("Content-Range", "bytes */%d" % size)], b""))
    return first, min(last, size - 1)


def plan(store, rec, rng):
    """-> (offset into first range, [[xorb, first chunk, end chunk, bytes]])
    for the bytes `rng` (None: all) of file `rec`."""
    first, last = rng if rng else (0, rec["size"] - 1)
    terms, pos, offset = [], 0, 0
    for xorb, c0, c1, unpacked in rec["terms"]:
        if pos + unpacked <= first:
            pos += unpacked
            continue
        if pos > last:
            break
        if pos >= first and pos + unpacked - 1 <= last:
            terms.append([xorb, c0, c1, unpacked])
            pos += unpacked
            continue
        sizes = store.layout(xorb).sizes
        keep, kept_bytes, cpos = [], 0, pos
        for i in range(c0, c1):
            if cpos + sizes[i] > first and cpos <= last:
                if not terms and not keep:
                    offset = first - cpos
                keep.append(i)
                kept_bytes += sizes[i]
            cpos += sizes[i]
        terms.append([xorb, keep[0], keep[-1] + 1, kept_bytes])
        pos += unpacked
    return offset, terms


def merged_ranges(terms):
    """{xorb: [(first, end), ...]}: the chunk ranges to fetch, overlapping or
    adjacent ranges of one xorb merged."""
    by_xorb = collections.OrderedDict()
    for xorb, c0, c1, _ in terms:
        by_xorb.setdefault(xorb, []).append((c0, c1))
    out = collections.OrderedDict()
    for xorb, ranges in by_xorb.items():
        merged = []
        for c0, c1 in sorted(ranges):
            if merged and c0 <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], c1))
            else:
                merged.append((c0, c1))
        out[xorb] = merged
    return out


def signed_xorb_url(base, xorb, spans, ttl, secret):
    """CDN URL for byte ranges [(first, last), ...] of a xorb: the ranges
    are part of what is signed, so the URL is good for exactly the Range
    header `bytes=first-last[,first-last...]`."""
    expires = int(time.time()) + int(ttl)
    uri = "/xorbs/default/" + xorb
    rng = ",".join("%d-%d" % span for span in spans)
    return "%s%s?range=%s&expires=%d&md5=%s" % (base, uri, rng, expires,
                                                url_signature(expires, uri + rng, secret))


def check_xorb_signature(uri, params, range_header, secret):
    """-> "ok", "bad", "expired" or "range": the Range header must be all
    the signed ranges or one of them."""
    try:
        expires = int(params.get("expires", [""])[0])
    except ValueError:
        return "bad"
    rng = params.get("range", [""])[0]
    if params.get("md5", [""])[0] != url_signature(expires, uri + rng, secret):
        return "bad"
    if expires < int(time.time()):
        return "expired"
    asked = (range_header or "").strip()
    if asked != "bytes=" + rng and asked[len("bytes="):] not in rng.split(","):
        return "range"
    return "ok"


# ---------------------------------------------------------------- the CAS

class Cas:
    """Routes of the CAS port.  `emu` gives config, secret, cdn_base(),
    the repos (for a token's scope) and the Xet store."""

    def __init__(self, emu, store):
        self.emu, self.store = emu, store
        self._tokens = {}           # token -> {"scope", "repo" (key or None), "exp"}
        self._lock = threading.Lock()

    def issue(self, scope, repo_key, ttl):
        token = "xet_%s_%s" % (scope, secrets.token_urlsafe(24))
        exp = int(time.time()) + int(ttl)
        with self._lock:
            self._tokens[token] = {"scope": scope, "repo": repo_key, "exp": exp}
        return token, exp

    def _grant(self, req, scope):
        """The token's grant, or 401 (missing, unknown, expired) / 403 (scope)."""
        kind, _, token = (req.authorization or "").partition(" ")
        with self._lock:
            grant = self._tokens.get(token.strip()) if kind.lower() == "bearer" else None
        if grant is None or grant["exp"] < time.time():
            raise HubError(401, "Invalid or expired Xet token")
        if scope == "write" and grant["scope"] != "write":
            raise HubError(403, "A write token is needed")
        return grant

    def route(self, req):
        p, m = req.raw_path, req.method
        rec = re.fullmatch(r"/v([12])/reconstructions/([^/]+)", p)
        if rec and m in ("GET", "HEAD"):
            return self.reconstruction(req, int(rec.group(1)), rec.group(2))
        if re.fullmatch(r"/v1/chunks/[^/]+/[^/]+", p) and m == "GET":
            self._grant(req, "read")
            raise HubError(404, "Chunk not tracked by global deduplication")
        xorb = re.fullmatch(r"/v1/xorbs/default/([0-9a-f]{64})", p)
        if xorb and m == "POST":
            self._grant(req, "write")
            try:
                inserted = self.store.put_xorb(xorb.group(1), req.body)
            except XetFormatError as e:
                raise HubError(400, "Bad xorb: %s" % e)
            return json_response({"was_inserted": inserted})
        if p == "/v1/shards" and m == "POST":
            self._grant(req, "write")
            try:
                records = self.store.register_shard(req.body)
            except XetFormatError as e:
                raise HubError(400, "Bad shard: %s" % e)
            self.emu.xet_registered(records)
            return json_response({"result": 1})
        if p == "/v1/telemetry" and m == "POST":
            return json_response({})
        # Not offered (hf_xet falls back): upload grants, streamed v2 shard
        # upload, batch reconstruction, chunk hashes of dirty ranges.
        raise HubError(404, "Not Found")

    def reconstruction(self, req, version, file_hash):
        if not HEX64.fullmatch(file_hash):
            raise HubError(400, "Malformed file hash")
        grant = self._grant(req, "read")
        if version == 2 and self.emu.config["xet_reconstruction"] == "v1":
            raise HubError(404, "Not Found")
        rec = self.store.by_file_hash(file_hash)
        if rec is None or (grant["repo"] and not self.emu.repo_has_xet(grant["repo"], file_hash)):
            raise HubError(404, "File not found")
        offset, terms = plan(self.store, rec, parse_cas_range(req.range, rec["size"]))
        base, ttl, secret = self.emu.cdn_base(), self.emu.config["xet_url_ttl"], self.emu.secret
        body = {"offset_into_first_range": offset,
                "terms": [{"hash": x, "unpacked_length": n, "range": {"start": a, "end": b}}
                          for x, a, b, n in terms]}
        spans = {}                  # xorb -> [(first chunk, end chunk, first byte, last byte)]
        for xorb, ranges in merged_ranges(terms).items():
            offsets = self.store.layout(xorb).offsets
            spans[xorb] = [(a, b, offsets[a], offsets[b] - 1) for a, b in ranges]
        if version == 1:
            body["fetch_info"] = {
                x: [{"range": {"start": a, "end": b}, "url_range": {"start": s, "end": e},
                     "url": signed_xorb_url(base, x, [(s, e)], ttl, secret)} for a, b, s, e in items]
                for x, items in spans.items()}
            return json_response(body)
        # v2: one URL per range, or with xet_multirange one URL per xorb for
        # all its ranges, fetched with one multi-range request as the Hub does.
        groups = lambda items: [items] if self.emu.config["xet_multirange"] else [[i] for i in items]
        body["xorbs"] = {
            x: [{"url": signed_xorb_url(base, x, [(s, e) for _, _, s, e in group], ttl, secret),
                 "ranges": [{"chunks": {"start": a, "end": b}, "bytes": {"start": s, "end": e}}
                            for a, b, s, e in group]} for group in groups(items)]
            for x, items in spans.items()}
        return json_response(body)
