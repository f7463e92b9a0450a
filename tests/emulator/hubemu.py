#!/usr/bin/python3
"""hubemu.py -- a local emulator of the Hugging Face Hub HTTP API for hubfs tests.

It serves the read-only API subset in hub/hub-api.md (section 12 is the
checklist) from fixture repos, on 127.0.0.1 only.  LFS bytes are served by a
real nginx acting as the CDN (started by tests/harness/hubstack.py); this
process writes those blobs to STATE/cdn/<sha256> and signs the URLs.  While a
fault rule targets the CDN, LFS redirects point instead at a second port of
this process (the "fault CDN") that serves the same URLs and can misbehave.
A third port is the Xet CAS (emu_xet.py): reconstructions whose xorb ranges
nginx serves from STATE/xorbs/, and the upload routes that hf_xet uses to
build the fixtures' Xet objects.

Run:  /usr/bin/python3 hubemu.py --state DIR [--fixtures F.json ...]
      [--cdn-url http://127.0.0.1:PORT --secret S] [--ready-file FILE]
Normally hubstack.py runs it; see tests/README.md for the whole contract.

Fixture format (tests/fixtures/*.json are loaded by default; more files,
e.g. tests/fixtures/large/*.json, only when passed with --fixtures):

  { "orgs":  [ {"name": "acme", "fullname": "Acme Corp"} ],
    "users": [ {"name": "alice", "fullname": "Alice A.", "orgs": ["acme"],
                "tokens": ["hf_alice_...", {"token": "hf_...", "role": "write",
                                            "displayName": "ci"}]} ],
    "repos": [ {
      "type": "model" | "dataset" | "space",      (default model)
      "id": "owner/name",
      "private": false, "disabled": false,
      "gated": false | "manual" | "auto", "gated_approved": ["alice"],
      "renamed_from": ["old-owner/old-name", "legacyid"],  (old ids answer 307)
      "default_branch": "main",
      "info": { ...extra fields merged into /api/{types}/{id}... },
      "raw_entries": [ ENTRY, ... ],  hostile entries appended to every listing
                                of the root folder (no file behind them): an
                                object is sent as ASCII JSON (a NUL in a string
                                becomes \\u0000), {"raw": "JSON text"} and
                                {"raw_base64": "..."} are sent verbatim
      "commits": [ {                              (applied in order)
        "ref": "main",          branch, "refs/pr/N" or "refs/convert/NAME" it
                                advances (default: default branch)
        "parent": "label" | sha | ref | null,     (default: head of `ref`,
                                else head of the default branch; null = orphan)
        "label": "v1",          name later commits' "parent" can use
        "tags": ["v1.0"],       tags pointing at this commit
        "message": "...", "date": "2024-01-02T00:00:00Z", "author": "alice",
        "files": { "path/in/repo": FILE, ... },   (added or changed)
        "delete": ["path", "folder"],             (removed, folders recursively)
        "trees": [ TREE, ... ] } ] } ] }

  FILE is a string (UTF-8 text) or an object with one content source:
      {"text": "..."} | {"base64": "..."} | {"file": "relative/path"} |
      {"size": N, "seed": S}   N bytes of random.Random(S).randbytes() drawn
                               in 1 MiB chunks (cached by (seed, size))
      {"size": N, "seed": S, "sparse": true}   zeros but for the last MiB (random
                               as above): a sparse file, for sizes past 2 GiB
      {"parts": [PART, ...], "patches": [PART + "offset", ...]}   composed
                               content (emu_store.compose_part): random, zeros,
                               text and float32 parts, patches written over it;
                               "edits": {"count", "size", "seed"} adds patches
                               spread evenly (emu_store.spread_edits)
    plus "lfs": true (stored as an LFS pointer; served through the CDN) and
    "xet": true (implies lfs; real Xet objects in the CAS once hubstack.py
    has built them, see emu_xet.py), optional "xetHash": "<64 hex>" (a
    placeholder with no objects).
  TREE generates many small text files:
      {"prefix": "data", "count": 100000, "dirs": [100, 10], "seed": 1,
       "size": 64, "ext": ".txt", "lfs": false}
    File i is PREFIX/dAA/dBB/fNNNNNN.txt (dirs gives the fanout per level;
    files are spread evenly over the leaf folders); its content is the line
    "<path> seed=<seed> n=<i>\\n", repeated and cut to `size` if given.

Endpoints, control API (/_emu/...) and fault rules: see tests/README.md.
Standard library only; run with /usr/bin/python3.
"""

import argparse
import base64
import collections
import glob
import hashlib
import itertools
import json
import os
import re
import secrets
import socket
import signal
import sys
import threading
import time
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from emu_control import Config, Faults, RateLimiter, RequestLog  # noqa: E402
from emu_http import (HubError, Reply, Response, check_signature,  # noqa: E402
                      content_disposition, content_response, content_type, error_response,
                      gzip_json, json_response, read_request_body, send, signed_cdn_url)
from emu_store import BlobStore, Hub, now_iso, write_json_atomic  # noqa: E402
from emu_xet import Cas, XetStore, check_xorb_signature  # noqa: E402

DEFAULT_FIXTURES = os.path.join(HERE, "..", "fixtures")
TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
PLURAL = {v: k for k, v in TYPES.items()}
# GET /api/agent-harnesses: the registry of AI agent harnesses (hub-api.md 7.4).
AGENT_HARNESSES = {"standardEnvVars": ["AI_AGENT", "AGENT"], "harnesses": {}}
API_SUBRESOURCES = ("revision", "tree", "paths-info", "refs", "commits", "xet-read-token",
                    "xet-write-token", "auth-check")
XET_FILEINFO = "application/vnd.xet-fileinfo+json"
INVALID_TOKEN = "hf_invalid_token_0000000000000000000000"
TRUE_WORDS = ("1", "true", "yes", "on")
_conn_ids = itertools.count(1)
_request_ids = itertools.count(1)


def dec(raw):
    """Percent-decode a raw (latin-1 transported) URL piece to text."""
    return urllib.parse.unquote_to_bytes(raw.encode("latin-1")).decode("utf-8", "replace")


def split_rev(segs):
    """Raw segments after tree/ or resolve/ -> (revision, path segments).

    refs/pr/N and refs/convert/NAME may come unencoded (JS does that)."""
    if len(segs) >= 3 and segs[0] == "refs" and segs[1] in ("pr", "convert", "heads", "tags"):
        return "refs/%s/%s" % (segs[1], dec(segs[2])), segs[3:]
    if not segs or segs[0] == "":
        raise HubError(404, "Invalid rev id: ", "RevisionNotFound")
    return dec(segs[0]), segs[1:]


def bucket_for(path):
    if path.startswith("/api/"):
        return "api"
    if "/resolve/" in path or "/raw/" in path:
        return "resolvers"
    return "pages"


def encode_cursor(commit_id, offset):
    """Opaque page cursor: the commit a listing is pinned to, and an offset."""
    raw = ("%s:%d" % (commit_id or "", offset)).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(value):
    if not value:
        return None, 0
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        commit_id, _, offset = raw.rpartition(":")
        return commit_id or None, max(0, int(offset))
    except ValueError:
        raise HubError(400, "Invalid cursor")


class Request:
    """What a route needs from one HTTP request."""

    def __init__(self, handler):
        self.method = handler.command
        target = handler.path
        if target.startswith(("http://", "https://")):
            target = "/" + target.split("/", 3)[3] if target.count("/") >= 3 else "/"
        self.raw_path, _, self.query = target.partition("?")
        self.params = urllib.parse.parse_qs(self.query, keep_blank_values=True)
        self.headers = handler.headers
        self.head = self.method == "HEAD"
        self.range = self.range_header = handler.headers.get("Range")
        self.authorization = handler.headers.get("Authorization")
        self.body = read_request_body(handler)

    def param(self, name, default=None):
        values = self.params.get(name)
        return values[0] if values else default

    def flag(self, name):
        return (self.param(name) or "").lower() in TRUE_WORDS

    def expand_list(self):
        return self.params.get("expand", []) + self.params.get("expand[]", [])


class Emulator:
    """Routes and state of one emulated Hub."""

    def __init__(self, hub, state, config, secret, cdn_url, cdn_log_path):
        self.hub, self.state, self.config, self.secret = hub, state, config, secret
        self.cdn_url = cdn_url
        self.endpoint = self.fault_cdn = self.cas_url = None
        self.cas = Cas(self, hub.xet_store)
        self._xet_sets = {}         # repo key -> (commit count, {xet file hashes})
        self.faults = Faults()
        self.limiter = RateLimiter(config)
        self.log = RequestLog(os.path.join(state, "hub.log"))
        self.cdn_log_path = cdn_log_path
        self._cdn_log_lock = threading.Lock()
        self._listings = collections.OrderedDict()
        self._listings_lock = threading.Lock()

    # ------------------------------------------------------------ state files
    def write_state_files(self):
        with self.hub.lock:
            doc = self.hub.manifest(self.endpoint, self.cdn_url or self.fault_cdn)
            doc["cas"] = self.cas_url
            write_json_atomic(os.path.join(self.state, "manifest.json"), doc)
        write_json_atomic(os.path.join(self.state, "tokens.json"), self.hub.tokens_doc(INVALID_TOKEN))

    def cdn_base(self):
        if self.faults.active("cdn") or not self.cdn_url:
            return self.fault_cdn
        return self.cdn_url

    # ------------------------------------------------------------ hub port
    def serve_hub(self, handler):
        req = Request(handler)
        if req.raw_path.startswith("/_emu/"):
            self.send_safely(handler, self.control(req), req.head, None)
            return
        bucket = bucket_for(req.raw_path)
        json_api = bucket == "api" and not req.raw_path.startswith("/api/resolve-cache/")
        fault = self.faults.take("hub", req.method, req.raw_path, bool(req.range), json_api)
        allowed, remaining, reset, quota, window = self.limiter.hit(bucket)
        resp = self.fault_response(fault, bucket)
        if resp is None and not allowed:
            resp = error_response(429, "You have exceeded the rate limit for %s requests. "
                                  "Retry in %d seconds." % (bucket, reset))
            resp.add("RateLimit", '"%s";r=0;t=%d' % (bucket, reset)).add("Retry-After", reset)
        if resp is None:
            resp = self.route_safely(req, fault)
        if self.config["gzip_json"]:
            gzip_json(resp, req.headers.get("Accept-Encoding"))
        self.common_headers(resp, bucket, remaining, reset, quota, window)
        entry = self.log.add({"time": time.time(), "method": req.method, "path": req.raw_path,
                              "query": req.query, "status": resp.status, "range": req.range_header,
                              "auth": req.authorization is not None,
                              "user": self.token_user(req), "bucket": bucket,
                              "conn": handler.conn_id, "fault": fault.kind if fault else None})
        entry["bytes"] = self.send_safely(handler, resp, req.head, fault)
        self.log.write_through(entry)

    def token_user(self, req):
        """For the log: whose token came (None: none, or not a known one)."""
        scheme, _, token = (req.authorization or "").partition(" ")
        user = self.hub.user_for_token(token.strip()) if scheme.lower() == "bearer" else None
        return user["name"] if user else None

    def route_safely(self, req, fault):
        if fault and fault.kind == "range_200":
            req.range = None
        if fault and fault.kind == "range_wide":
            req.range = "bytes=0-"
        if fault and fault.kind == "short_range":
            req.range = shorter_range(req.range)
        try:
            return self.route(req)
        except Reply as r:
            return r.response
        except Exception:
            traceback.print_exc()
            return error_response(500, "Internal emulator error")

    @staticmethod
    def send_safely(handler, resp, head, fault):
        try:
            return send(handler, resp, head, fault)
        except OSError:
            handler.close_connection = True
            return -1

    @staticmethod
    def common_headers(resp, bucket, remaining, reset, quota, window):
        resp.add("X-Request-Id", "Root=1-%08x-%024x" % (int(time.time()), next(_request_ids)))
        if resp.get("RateLimit") is None:
            resp.add("RateLimit", '"%s";r=%d;t=%d' % (bucket, remaining, reset))
        if resp.get("RateLimit-Policy") is None:
            resp.add("RateLimit-Policy", '"fixed window";"%s";q=%d;w=%d' % (bucket, quota, window))
        resp.add("Vary", "Origin, Accept")
        resp.add("X-Powered-By", "huggingface-moon")
        resp.add("Access-Control-Allow-Origin", "*")

    def fault_response(self, fault, bucket):
        """The whole answer for status / rate_limit / expired faults, else None."""
        if fault is None:
            return None
        if fault.kind == "status":
            resp = error_response(int(fault.get("status", 503)), fault.get("message", "Injected fault"))
            if fault.get("retry_after", None) is not None:
                resp.add("Retry-After", fault.get("retry_after", 0))
            return resp
        if fault.kind == "rate_limit":
            t = int(fault.get("t", 10))
            mode = fault.get("header", "both")
            resp = error_response(429, "Injected rate limit: retry in %d seconds." % t)
            if mode in ("both", "ratelimit"):
                resp.add("RateLimit", '"%s";r=0;t=%d' % (bucket or "api", t))
            if mode in ("both", "retry_after"):
                resp.add("Retry-After", int(fault.get("retry_after", t)))
            return resp
        if fault.kind == "expired":
            return forbidden("Request has expired")
        return None

    # ------------------------------------------------------------ routing
    def route(self, req):
        segs = req.raw_path.split("/")[1:]
        user = self.auth_user(req)
        if segs and segs[0] == "api":
            return self.route_api(req, segs[1:], user)
        return self.route_files(req, segs, user)

    def auth_user(self, req):
        if req.authorization is None:
            return None
        scheme, _, token = req.authorization.partition(" ")
        user = self.hub.user_for_token(token.strip()) if scheme.lower() == "bearer" else None
        if user is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        return user

    def route_api(self, req, segs, user):
        head = segs[0] if segs else ""
        if head == "whoami-v2":
            return self.whoami(req, user)
        if head == "agent-harnesses" and len(segs) == 1:
            # huggingface_hub fetches this registry for its user-agent and
            # keeps it a day in HF_HOME, but only when it gets one (hub-api.md 7.4).
            return json_response(AGENT_HARNESSES)
        if head in ("users", "organizations") and len(segs) == 3 and segs[2] == "overview":
            return self.owner_overview(head, dec(segs[1]))
        if head == "resolve-cache" and len(segs) >= 2 and segs[1] in TYPES:
            return self.resolve_cache(req, segs[1:], user)
        if head not in TYPES:
            raise HubError(404, "Not Found")
        if len(segs) == 1 or segs[1] == "":
            return self.list_repos(req, TYPES[head], user)
        repo_id, rest = self.split_id(TYPES[head], segs[1:], API_SUBRESOURCES)
        repo = self.open_repo(req, user, TYPES[head], repo_id, "/api/%s/" % head, rest)
        return self.repo_api(req, repo, rest, user)

    def owner_overview(self, kind, name):
        """hub-api.md 2.6: a user answers on /api/users/, an organisation on
        /api/organizations/, with or without repos; anything else is 404."""
        known = self.hub.users if kind == "users" else self.hub.orgs
        if name not in known:
            raise HubError(404, "%s not found" % ("User" if kind == "users" else "Organization"))
        with self.hub.lock:
            counts = {t: sum(1 for (rt, rid) in self.hub.repos if rt == t and rid.split("/")[0] == name)
                      for t in ("model", "dataset", "space")}
        body = {"name": name, "fullname": known[name].get("fullname", name),
                "type": "user" if kind == "users" else "org",
                "numModels": counts["model"], "numDatasets": counts["dataset"],
                "numSpaces": counts["space"]}
        if kind == "users":
            body["user"] = name
        return json_response(body)

    def split_id(self, rtype, segs, keywords=None, need_rest=False):
        """Raw segments -> (repo id, rest).  Canonical ids are owner/name; a
        one-part id (legacy `gpt2`) is tried when the two-part one is unknown.
        The segment after the id must be one of `keywords` (when given)."""
        shapes = []
        for n in (2, 1):
            if len(segs) < n or (need_rest and len(segs) == n):
                continue
            if keywords is None or len(segs) == n or segs[n] in keywords:
                shapes.append(n)
        if not shapes:
            raise HubError(404, "Not Found")
        for n in shapes:
            repo_id = "/".join(dec(x) for x in segs[:n])
            if self.hub.find(rtype, repo_id)[0]:
                return repo_id, segs[n:]
        n = shapes[0]
        return "/".join(dec(x) for x in segs[:n]), segs[n:]

    def repo_api(self, req, repo, rest, user):
        sub = rest[0] if rest else ""
        tail = rest[1:]
        if sub == "":
            return self.repo_info(req, repo, "HEAD")
        if sub == "revision" and tail:
            return self.repo_info(req, repo, dec("/".join(tail)))
        if sub == "tree" and tail:
            return self.tree(req, repo, tail)
        if sub == "paths-info" and tail:
            if req.method != "POST":
                raise HubError(405, "Method not allowed: use POST")
            return self.paths_info(req, repo, dec("/".join(tail)))
        if sub == "refs" and not tail:
            return self.refs(req, repo)
        if sub == "commits" and tail:
            return self.commits(req, repo, dec("/".join(tail)))
        if sub in ("xet-read-token", "xet-write-token") and tail:
            return self.xet_token(req, repo, dec("/".join(tail)), user, sub == "xet-write-token")
        if sub == "auth-check" and not tail:
            self.check_gate(repo, user)
            return json_response({})
        raise HubError(404, "Not Found")

    def open_repo(self, req, user, rtype, repo_id, prefix, rest):
        """The repo, or raise: 307 for an old id, RepoNotFound, disabled."""
        kind, found = self.hub.find(rtype, repo_id)
        if kind == "alias":
            loc = prefix + urllib.parse.quote(found, safe="/")
            if rest:
                loc += "/" + "/".join(rest)
            if req.query:
                loc += "?" + req.query
            raise Reply(Response(307, [("Location", loc), ("Content-Type", "text/plain; charset=utf-8")],
                                 ("Temporary Redirect. Redirecting to %s" % loc).encode()))
        if kind is None or not self.hub.can_read(user, found):
            raise HubError(401 if user is None else 404, "Repository not found", "RepoNotFound")
        if found.disabled:
            raise HubError(403, "Access to this resource is disabled.")
        return found

    def check_gate(self, repo, user):
        if self.hub.gate_open(user, repo):
            return
        if user is None:
            raise HubError(401, "Access to %s %s is restricted. You must have access to it and be "
                           "authenticated to access it. Please log in." % (repo.type, repo.id), "GatedRepo")
        raise HubError(403, "Access to %s %s is restricted and you are not in the authorized list. "
                       "Visit %s/%s to ask for access." % (repo.type, repo.id, self.endpoint, repo.id),
                       "GatedRepo")

    @staticmethod
    def commit_for(repo, rev):
        commit = repo.resolve(rev)
        if commit is None:
            raise HubError(404, "Invalid rev id: %s" % rev, "RevisionNotFound")
        return commit

    # ------------------------------------------------------------ repo info
    def repo_info(self, req, repo, rev):
        commit = self.commit_for(repo, rev)
        info = self.repo_json(repo, commit, req.flag("blobs"))
        if req.flag("securityStatus") and repo.type == "model":
            info["securityRepoStatus"] = {"scansDone": True, "filesWithIssues": []}
        wanted = req.params.get("expand")
        if wanted:
            info = {k: v for k, v in info.items() if k in wanted or k in ("_id", "id")}
        return json_response(info)

    def repo_summary(self, repo, commit):
        """Fields of a repo object without siblings (also used by listings)."""
        d = {"_id": repo.internal_id, "id": repo.id, "author": repo.owner, "sha": commit.id,
             "lastModified": commit.date,
             "createdAt": min(c.date for c in repo.commits.values()),
             "private": repo.private, "gated": repo.gated, "disabled": repo.disabled,
             "downloads": 0, "downloadsAllTime": 0, "likes": 0, "trendingScore": 0,
             "tags": [], "cardData": {}}
        if repo.type == "model":
            d.update({"modelId": repo.id, "library_name": None, "pipeline_tag": None,
                      "config": {}, "spaces": [], "widgetData": [], "transformersInfo": None})
        elif repo.type == "dataset":
            d.update({"description": "", "citation": "", "paperswithcode_id": None})
        else:
            sub = repo.id.replace("/", "-").lower()
            d.update({"sdk": "gradio", "subdomain": sub, "host": "https://%s.hf.space" % sub,
                      "runtime": {"stage": "RUNNING", "hardware": {"current": "cpu-basic"}},
                      "models": [], "datasets": []})
        d.update(repo.info)
        return d

    def repo_json(self, repo, commit, blobs):
        d = self.repo_summary(repo, commit)
        siblings = []
        for path in sorted(commit.files):
            s = {"rfilename": path}
            if blobs:
                f = commit.files[path]
                s.update({"size": f.size, "blobId": f.oid})
                if f.lfs:
                    s["lfs"] = {"sha256": f.blob.sha256, "size": f.size, "pointerSize": len(f.pointer)}
            siblings.append(s)
        d["siblings"] = siblings
        d["usedStorage"] = sum(f.size for f in commit.files.values())
        return d

    def list_repos(self, req, rtype, user):
        author = req.param("author")
        repos = sorted((r for (t, _), r in list(self.hub.repos.items())
                        if t == rtype and (author is None or r.owner == author)
                        and self.hub.can_read(user, r)), key=lambda r: r.id)
        size = max(1, min(int(req.param("limit") or 10 ** 9), int(self.config["page_size"])))
        _, offset = decode_cursor(req.param("cursor"))
        wanted = req.params.get("expand")
        full = req.flag("full")
        items = []
        for repo in repos[offset:offset + size]:
            head = repo.head()
            item = self.repo_summary(repo, head)
            if wanted:
                item = {k: v for k, v in item.items() if k in wanted or k in ("_id", "id")}
            elif full:
                item["siblings"] = [{"rfilename": p} for p in sorted(head.files)]
            elif rtype == "model":
                # The Hub's plain model listing has no commit or date: those
                # come with full=true or expand (huggingface_hub's list_models).
                item = {k: v for k, v in item.items() if k not in ("sha", "lastModified")}
            items.append(item)
        resp = json_response(items)
        if offset + size < len(repos):
            resp.add("Link", '<%s>; rel="next"' % self.next_url(req, encode_cursor(None, offset + size)))
        return resp

    def next_url(self, req, cursor):
        pairs = [(k, v) for k, v in urllib.parse.parse_qsl(req.query, keep_blank_values=True)
                 if k != "cursor"]
        query = urllib.parse.urlencode(pairs)
        base = self.config["link_base"] or self.endpoint
        return "%s%s?%s%scursor=%s" % (base, req.raw_path, query, "&" if query else "", cursor)

    # ------------------------------------------------------------ tree
    def tree(self, req, repo, segs):
        rev, path_segs = split_rev(segs)
        commit = self.commit_for(repo, rev)
        pinned, offset = decode_cursor(req.param("cursor"))
        commit = repo.commits.get(pinned, commit)
        path = dec("/".join(path_segs)).strip("/")
        if path and not commit.index.is_dir(path):
            raise HubError(404, "Entry not found", "EntryNotFound")
        expand = req.flag("expand")
        listing = self.listing(commit, path, req.flag("recursive"))
        if not path and repo.raw_entries:
            listing = listing + [(raw, None) for raw in repo.raw_entries]
        size = self.config.tree_page_size(expand)
        page = listing[offset:offset + size]
        if any(is_dir is None for _, is_dir in page):
            resp = self.raw_page(commit, page, expand)
        else:
            resp = json_response([self.entry_json(commit, p, is_dir, expand) for p, is_dir in page])
        if offset + size < len(listing):
            resp.add("Link", '<%s>; rel="next"' % self.next_url(req, encode_cursor(commit.id, offset + size)))
        return resp

    def raw_page(self, commit, page, expand):
        """A page with a repo's raw (hostile) entries, which are bytes, not
        objects: the JSON array is put together by hand."""
        parts = [p if is_dir is None else
                 json.dumps(self.entry_json(commit, p, is_dir, expand), ensure_ascii=False).encode("utf-8")
                 for p, is_dir in page]
        resp = Response(200, [], b"[" + b",".join(parts) + b"]", is_json=True)
        return resp.add("Content-Type", "application/json; charset=utf-8")

    def listing(self, commit, path, recursive):
        key = (commit.id, path, recursive)
        with self._listings_lock:
            if key in self._listings:
                self._listings.move_to_end(key)
                return self._listings[key]
        result = commit.index.listing(path, recursive)
        with self._listings_lock:
            self._listings[key] = result
            while len(self._listings) > 64:
                self._listings.popitem(last=False)
        return result

    @staticmethod
    def entry_json(commit, path, is_dir, expand):
        if is_dir:
            e = {"type": "directory", "oid": commit.index.tree_oid(path), "size": 0, "path": path}
        else:
            f = commit.files[path]
            e = {"type": "file", "oid": f.oid, "size": f.size, "path": path}
            if f.lfs:
                e["lfs"] = {"oid": f.blob.sha256, "size": f.size, "pointerSize": len(f.pointer)}
            if f.xet:
                e["xetHash"] = f.xet_hash
        if expand:
            last = (commit.dir_last_commits() if is_dir else commit.last_commits()).get(path, commit)
            e["lastCommit"] = {"id": last.id, "title": last.title, "date": last.date}
            if not is_dir:
                e["securityFileStatus"] = {"status": "safe", "avScan": {"virusFound": False},
                                           "pickleImportScan": None}
        return e

    def paths_info(self, req, repo, rev):
        commit = self.commit_for(repo, rev)
        paths, expand = self.parse_paths_body(req)
        out, seen = [], set()
        for p in paths:
            p = str(p).strip("/")
            if p in seen:
                continue
            seen.add(p)
            if p in commit.files:
                out.append(self.entry_json(commit, p, False, expand))
            elif p and commit.index.is_dir(p):
                out.append(self.entry_json(commit, p, True, expand))
        return json_response(out)

    @staticmethod
    def parse_paths_body(req):
        text = req.body.decode("utf-8", "replace")
        ctype = (req.headers.get("Content-Type") or "").lower()
        try:
            if "json" in ctype or text.lstrip().startswith("{"):
                doc = json.loads(text or "{}")
                paths, expand = doc.get("paths", []), doc.get("expand", False)
                if isinstance(paths, str):
                    paths = [paths]
            else:
                form = urllib.parse.parse_qs(text, keep_blank_values=True)
                paths, expand = form.get("paths", []), (form.get("expand") or ["false"])[0]
        except (ValueError, AttributeError):
            raise HubError(400, "Invalid request body")
        if isinstance(expand, str):
            expand = expand.lower() in TRUE_WORDS
        return paths, bool(expand)

    # ------------------------------------------------------------ refs, commits
    def refs(self, req, repo):
        def items(kind, prefix):
            return [{"name": n, "ref": prefix + n, "targetCommit": c.id}
                    for n, c in sorted(repo.refs[kind].items())]
        out = {"branches": items("branches", "refs/heads/"), "converts": items("converts", "refs/convert/"),
               "tags": items("tags", "refs/tags/")}
        if req.flag("include_prs"):
            out["pullRequests"] = items("prs", "refs/pr/")
        return json_response(out)

    def commits(self, req, repo, rev):
        commit = self.commit_for(repo, rev)
        pinned, offset = decode_cursor(req.param("cursor"))
        commit = repo.commits.get(pinned, commit)
        chain = list(commit.ancestry())
        size = max(1, int(self.config["page_size"]))
        formatted = "formatted" in req.expand_list()
        items = []
        for c in chain[offset:offset + size]:
            # The Hub splits a commit message into its title (the first
            # line) and its description (the rest, "" when there is none).
            body = c.message.partition("\n")[2].lstrip("\n")
            item = {"id": c.id, "title": c.title, "message": body,
                    "authors": [{"user": c.author, "avatar": None}], "date": c.date}
            if formatted:
                item["formatted"] = {"title": c.title, "message": body}
            items.append(item)
        resp = json_response(items)
        if offset + size < len(chain):
            resp.add("Link", '<%s>; rel="next"' % self.next_url(req, encode_cursor(commit.id, offset + size)))
        return resp

    def xet_token(self, req, repo, rev, user, write):
        """A CAS token for this repo (hub-api.md section 14.2): JSON for
        hf_xet's refresh, the same three values as X-Xet-* headers for
        huggingface_hub."""
        self.check_gate(repo, user)
        self.commit_for(repo, rev)
        if write:
            tok = self.hub.tokens.get((req.authorization or "").partition(" ")[2].strip(), {})
            if tok.get("role") not in ("write", "admin") or not self.hub.can_write(user, repo):
                raise HubError(403, "You don't have write access to %s %s" % (repo.type, repo.id))
        token, exp = self.cas.issue("write" if write else "read", repo.key, self.config["xet_token_ttl"])
        return json_response({"accessToken": token, "exp": exp, "casUrl": self.cas_url},
                             headers=[("X-Xet-Cas-Url", self.cas_url), ("X-Xet-Access-Token", token),
                                      ("X-Xet-Token-Expiration", str(exp))])

    def repo_has_xet(self, repo_key, file_hash):
        """True when some commit of the repo has a xet file with this hash."""
        rtype, _, repo_id = repo_key.partition("/")
        repo = self.hub.repos.get((rtype, repo_id))
        if repo is None:
            return False
        with self.hub.lock:
            known = self._xet_sets.get(repo_key)
            if known is None or known[0] != len(repo.commits):
                hashes = {f.xet_hash for c in repo.commits.values() for f in c.files.values() if f.xet}
                known = self._xet_sets[repo_key] = (len(repo.commits), hashes)
        return file_hash in known[1]

    def xet_registered(self, records):
        """A shard upload brought built Xet objects (emu_xet.Cas)."""
        self.hub.xet_registered(records)
        with self.hub.lock:
            self._xet_sets.clear()
        self.write_state_files()

    def whoami(self, req, user):
        if user is None:
            raise HubError(401, "Invalid username or password.")
        tok = self.hub.tokens[req.authorization.partition(" ")[2].strip()]
        orgs = [{"type": "org", "id": self.hub_id("org", o), "name": o,
                 "fullname": self.hub.orgs.get(o, {}).get("fullname", o), "email": None,
                 "canPay": False, "avatarUrl": "/avatars/%s.svg" % o, "periodEnd": None}
                for o in user["orgs"]]
        return json_response({
            "type": "user", "id": self.hub_id("user", user["name"]), "name": user["name"],
            "fullname": user["fullname"], "email": "%s@example.com" % user["name"],
            "emailVerified": True, "isPro": False, "canPay": False,
            "avatarUrl": "/avatars/%s.svg" % user["name"], "periodEnd": None,
            "billingMode": "postpaid", "orgs": orgs,
            "auth": {"type": "access_token", "accessToken": {
                "displayName": tok["displayName"], "role": tok["role"],
                "createdAt": "2024-01-01T00:00:00.000Z"}}})

    @staticmethod
    def hub_id(kind, name):
        return hashlib.sha1(("%s:%s" % (kind, name)).encode()).hexdigest()[:24]

    # ------------------------------------------------------------ files
    def route_files(self, req, segs, user):
        rtype, prefix = "model", "/"
        if segs and segs[0] in ("datasets", "spaces"):
            rtype, prefix, segs = TYPES[segs[0]], "/%s/" % segs[0], segs[1:]
        repo_id, rest = self.split_id(rtype, segs, ("resolve", "raw"), need_rest=True)
        repo = self.open_repo(req, user, rtype, repo_id, prefix, rest)
        rev, path_segs = split_rev(rest[1:])
        self.check_gate(repo, user)
        commit = self.commit_for(repo, rev)
        path = dec("/".join(path_segs))
        f = self.file_at(commit, path)
        if rest[0] == "raw":
            return self.serve_raw(req, commit, path, f)
        if f.lfs and not self.config["direct_lfs"]:
            return self.lfs_redirect(req, repo, commit, path, f)
        if f.lfs or self.config["resolve_mode"] == "direct":
            return self.serve_bytes(req, commit, path, f)
        return self.cache_redirect(req, repo, rev, commit, path, f, prefix)

    @staticmethod
    def file_at(commit, path):
        f = commit.files.get(path)
        if f is None:
            raise HubError(404, "Entry not found", "EntryNotFound", [("X-Repo-Commit", commit.id)])
        return f

    def cache_redirect(self, req, repo, rev, commit, path, f, prefix):
        original = "%s%s/resolve/%s/%s" % (prefix, repo.id, rev, path)
        query = urllib.parse.urlencode({original: "", "etag": '"%s"' % f.oid})
        loc = "/api/resolve-cache/%s/%s/%s/%s?%s" % (
            PLURAL[repo.type], urllib.parse.quote(repo.id, safe="/"), commit.id,
            urllib.parse.quote(path, safe="/"), query)
        return Response(307, [("Location", loc), ("Content-Type", "text/plain; charset=utf-8")],
                        ("Temporary Redirect. Redirecting to %s" % loc).encode())

    def lfs_redirect(self, req, repo, commit, path, f):
        url = signed_cdn_url(self.cdn_base(), f.blob.sha256, self.config["cdn_url_ttl"], self.secret)
        resp = Response(302, [("Location", url), ("X-Repo-Commit", commit.id),
                              ("X-Linked-Etag", '"%s"' % f.blob.sha256), ("X-Linked-Size", f.size),
                              ("ETag", '"%s"' % f.oid), ("Content-Type", "text/plain; charset=utf-8"),
                              ("Content-Disposition", content_disposition(path))],
                        ("Found. Redirecting to %s" % url).encode())
        if f.xet_built:     # a xet file with no Xet objects is served by the bridge only
            resp.add("X-Xet-Hash", f.xet_hash)
            link = '<%s/api/%s/%s/xet-read-token/%s>; rel="xet-auth"' % (
                self.endpoint, PLURAL[repo.type], repo.id, commit.id)
            if XET_FILEINFO in (req.headers.get("Accept") or ""):
                link += ', <%s/v1/reconstructions/%s>; rel="xet-reconstruction-info"' % (
                    self.cas_url, f.xet_hash)
            resp.add("Link", link)
        return resp

    def serve_bytes(self, req, commit, path, f):
        """200/206/416 with the file's bytes, as the direct mode or resolve-cache."""
        headers = [("X-Repo-Commit", commit.id), ("Content-Type", content_type(path)),
                   ("Content-Disposition", content_disposition(path))]
        if f.lfs:
            headers += [("ETag", '"%s"' % f.blob.sha256), ("X-Linked-Etag", '"%s"' % f.blob.sha256),
                        ("X-Linked-Size", str(f.size))]
        else:
            headers.append(("ETag", '"%s"' % f.oid))
        gzip_ok = (not f.lfs and self.config["gzip"] and not req.range
                   and "gzip" in (req.headers.get("Accept-Encoding") or ""))
        return content_response(f.blob.path, f.size, req.range, headers, gzip_ok)

    def serve_raw(self, req, commit, path, f):
        blob = self.hub.store.put_bytes(f.pointer) if f.lfs else f.blob
        headers = [("X-Repo-Commit", commit.id), ("ETag", '"%s"' % f.oid),
                   ("Content-Type", "text/plain; charset=utf-8"),
                   ("Content-Disposition", content_disposition(path))]
        return content_response(blob.path, blob.size, req.range, headers)

    def resolve_cache(self, req, segs, user):
        plural = segs[0]
        rtype = TYPES[plural]
        repo_id, rest = self.split_id(rtype, segs[1:], need_rest=True)
        repo = self.open_repo(req, user, rtype, repo_id, "/api/resolve-cache/%s/" % plural, rest)
        if not rest:
            raise HubError(404, "Not Found")
        self.check_gate(repo, user)
        commit = self.commit_for(repo, dec(rest[0]))
        path = dec("/".join(rest[1:]))
        return self.serve_bytes(req, commit, path, self.file_at(commit, path))

    # ------------------------------------------------------------ fault CDN port
    def serve_cdn(self, handler):
        req = Request(handler)
        fault = self.faults.take("cdn", req.method, req.raw_path, bool(req.range), False)
        resp = self.fault_response(fault, None)
        if resp is None:
            if fault and fault.kind == "range_200":
                req.range = None
            if fault and fault.kind == "range_wide":
                req.range = "bytes=0-"
            if fault and fault.kind == "short_range":
                req.range = shorter_range(req.range)
            try:
                resp = self.cdn_route(req)
            except Reply as r:
                resp = r.response
        sent = self.send_safely(handler, resp, req.head, fault)
        self.cdn_log_line({"server": "fault-cdn", "time": now_iso(), "method": req.method,
                           "uri": dec(req.raw_path), "args": req.query, "range": req.range_header or "",
                           "status": resp.status, "bytes": max(0, sent),
                           "auth": int(req.authorization is not None),
                           "authorization": req.authorization or "", "conn": handler.conn_id,
                           "fault": fault.kind if fault else None})

    def cdn_route(self, req):
        m = re.fullmatch(r"/xorbs/default/([0-9a-f]{64})", req.raw_path)
        if m:
            return self.xorb_route(req, m.group(1))
        m = re.fullmatch(r"/blobs/([0-9a-f]{64})", req.raw_path)
        if not m:
            return plain(404, "Not Found")
        if req.authorization is not None:
            return forbidden("Authorization not accepted")
        if check_signature(req.raw_path, req.params, self.secret) != "ok":
            return forbidden("Bad or expired signature")
        path = os.path.join(self.hub.cdn_dir, m.group(1))
        try:
            size = os.path.getsize(path)
        except OSError:
            return plain(404, "Not Found")
        headers = [("ETag", '"%s"' % m.group(1)), ("Content-Type", "application/octet-stream")]
        return content_response(path, size, req.range, headers)

    def xorb_route(self, req, xorb):
        """A xorb byte range, as nginx serves it (nginx_cdn.py)."""
        if req.authorization is not None:
            return forbidden("Authorization not accepted")
        verdict = check_xorb_signature(req.raw_path, req.params, req.range_header, self.secret)
        if verdict != "ok":
            return forbidden("Xorb URL: %s" % verdict)
        path = os.path.join(self.state, "xorbs", xorb)
        try:
            size = os.path.getsize(path)
        except OSError:
            return plain(404, "Not Found")
        if "," in (req.range or ""):
            return multipart_ranges(path, size, req.range)
        return content_response(path, size, req.range, [("Content-Type", "application/octet-stream")])

    # ------------------------------------------------------------ CAS port
    def serve_cas(self, handler):
        """The Xet CAS (emu_xet.Cas) on its own port, with `cas` fault rules."""
        req = Request(handler)
        json_route = "/reconstructions/" in req.raw_path
        fault = self.faults.take("cas", req.method, req.raw_path, bool(req.range), json_route)
        resp = self.fault_response(fault, "cas")
        if resp is None:
            try:
                resp = self.cas.route(req)
            except Reply as r:
                resp = r.response
            except Exception:
                traceback.print_exc()
                resp = error_response(500, "Internal emulator error")
        resp.add("X-Request-Id", "Root=1-%08x-%024x" % (int(time.time()), next(_request_ids)))
        entry = self.log.add({"time": time.time(), "method": req.method, "path": req.raw_path,
                              "query": req.query, "status": resp.status, "range": req.range_header,
                              "auth": req.authorization is not None, "user": None, "bucket": "cas",
                              "conn": handler.conn_id, "fault": fault.kind if fault else None})
        entry["bytes"] = self.send_safely(handler, resp, req.head, fault)
        self.log.write_through(entry)

    def cdn_log_line(self, entry):
        line = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
        with self._cdn_log_lock:
            fd = os.open(self.cdn_log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)

    # ------------------------------------------------------------ control API
    def control(self, req):
        try:
            return self.control_route(req)
        except Reply as r:
            return r.response
        except (ValueError, KeyError, TypeError) as e:
            return error_response(400, "%s: %s" % (type(e).__name__, e))

    def control_route(self, req):
        p, m = req.raw_path, req.method
        body = json.loads(req.body.decode("utf-8") or "{}") if req.body else {}
        if p == "/_emu/health":
            return json_response({"ok": True, "endpoint": self.endpoint, "cdn": self.cdn_url,
                                  "fault_cdn": self.fault_cdn, "cas": self.cas_url})
        if p == "/_emu/log" and m in ("GET", "HEAD"):
            return json_response(self.log.entries(int(req.param("since") or 0)))
        if p == "/_emu/log/clear" and m == "POST":
            self.log.clear()
            return json_response({"ok": True})
        if p == "/_emu/faults":
            return self.control_faults(m, body)
        if p.startswith("/_emu/faults/") and m == "DELETE":
            self.faults.clear(int(p.rsplit("/", 1)[1]))
            return json_response({"ok": True})
        if p == "/_emu/config":
            if m == "POST":
                self.config.update(body)
                if "quotas" in body or "window" in body:
                    self.limiter.reset()
            return json_response(self.config.snapshot())
        if p == "/_emu/reset" and m == "POST":
            self.faults.clear()
            self.config.reset()
            self.limiter.reset()
            return json_response(self.config.snapshot())
        if p == "/_emu/ratelimit/reset" and m == "POST":
            self.limiter.reset()
            return json_response({"ok": True})
        if p == "/_emu/commit" and m == "POST":
            return self.control_commit(body)
        if p == "/_emu/xet" and m in ("GET", "HEAD"):
            return self.control_xet(req)
        if p == "/_emu/xet/write-token" and m == "POST":
            token, exp = self.cas.issue("write", None, 3600)
            return json_response({"accessToken": token, "exp": exp, "casUrl": self.cas_url})
        raise HubError(404, "Unknown control endpoint %s %s" % (m, p))

    def control_xet(self, req):
        """What the Xet builder needs (pending content) and what was built;
        with ?sha256=, the schemes of that built file's chunks only."""
        pending = [{"sha256": b.sha256, "size": b.size, "path": b.path} for b in self.hub.xet_pending()]
        with self.hub.lock:
            built = [self.hub.xet_store.by_sha256(sha) for sha, es in self.hub.xet_entries.items()
                     if all(e.xet_built for e in es)]
        if req.param("sha256"):
            rec = self.hub.xet_store.by_sha256(req.param("sha256"))
            if rec is None:
                raise HubError(404, "No built Xet file with that sha256")
            return json_response({"cas": self.cas_url, "pending": pending,
                                  "built": {rec["sha256"]: rec["file_hash"]},
                                  "schemes": self.hub.xet_store.file_schemes(rec)})
        return json_response({"cas": self.cas_url, "pending": pending,
                              "built": {r["sha256"]: r["file_hash"] for r in built if r},
                              "schemes": self.hub.xet_store.schemes([r for r in built if r])})

    def control_faults(self, method, body):
        if method == "POST":
            rules = body if isinstance(body, list) else [body]
            added = [self.faults.add(rule) for rule in rules]
            return json_response(added if isinstance(body, list) else added[0])
        if method == "DELETE":
            self.faults.clear()
            return json_response({"ok": True})
        return json_response(self.faults.list())

    def control_commit(self, body):
        rtype = body.get("type", "model")
        kind, repo = self.hub.find(rtype, body["repo"])
        if kind != "repo":
            raise HubError(404, "No such repo %s/%s" % (rtype, body["repo"]))
        spec = {k: v for k, v in body.items() if k not in ("type", "repo")}
        commit = self.hub.push_commit(repo, spec)
        self.write_state_files()
        return json_response({"sha": commit.id, "ref": spec.get("ref", spec.get("branch", repo.default_branch)),
                              "date": commit.date})


def multipart_ranges(path, size, value):
    """206 multipart/byteranges for `bytes=a-b,c-d,...` (as nginx answers
    a multi-range request for a xorb); 416 when a range is past the end."""
    boundary = secrets.token_hex(10)
    parts = []
    with open(path, "rb") as f:
        for item in value.strip()[len("bytes="):].split(","):
            first, _, last = item.strip().partition("-")
            first, last = int(first), min(int(last), size - 1)
            if first > last:
                return Response(416, [("Content-Range", "bytes */%d" % size)], b"")
            f.seek(first)
            parts.append(b"\r\n--%s\r\nContent-Type: application/octet-stream\r\n"
                         b"Content-Range: bytes %d-%d/%d\r\n\r\n" % (boundary.encode(), first, last, size)
                         + f.read(last - first + 1))
    body = b"".join(parts) + b"\r\n--%s--\r\n" % boundary.encode()
    return Response(206, [("Content-Type", "multipart/byteranges; boundary=%s" % boundary)], body)


def shorter_range(value):
    """The short_range fault: the first half of a single `bytes=a-b` range."""
    m = re.fullmatch(r"\s*bytes=(\d+)-(\d+)\s*", value or "")
    if not m:
        return value
    first, last = int(m.group(1)), int(m.group(2))
    return "bytes=%d-%d" % (first, first + (last - first) // 2)


def plain(status, text):
    return Response(status, [("Content-Type", "text/plain; charset=utf-8")], (text + "\n").encode())


def forbidden(reason):
    body = ("<html><head><title>403 Forbidden</title></head><body><center><h1>403 Forbidden"
            "</h1></center><!-- %s --></body></html>\n" % reason).encode()
    return Response(403, [("Content-Type", "text/html")], body)


# ------------------------------------------------------------------ servers

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hubemu/1.0"
    sys_version = ""
    timeout = 300

    def setup(self):
        super().setup()
        self.conn_id = next(_conn_ids)
        # As the Hub's servers (and nginx's tcp_nodelay): the headers and
        # the body go as two writes, and with Nagle the body of an answer
        # on a reused connection waited ~40 ms for the client's delayed ACK.
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def log_message(self, *args):
        pass

    def version_string(self):
        return self.server_version

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except (ConnectionError, TimeoutError):
            self.close_connection = True

    def do_GET(self):
        self.server.serve(self)

    do_HEAD = do_POST = do_DELETE = do_PUT = do_PATCH = do_OPTIONS = do_GET


class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, address, serve):
        self.serve = serve
        super().__init__(address, Handler)

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--state", required=True, help="state folder (manifest, logs, cdn/)")
    ap.add_argument("--fixtures", nargs="*", default=[], help="extra fixture files")
    ap.add_argument("--no-default-fixtures", action="store_true",
                    help="do not load tests/fixtures/*.json")
    ap.add_argument("--blob-cache", help="content store kept across runs (default STATE/blobs)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--fault-cdn-port", type=int, default=0)
    ap.add_argument("--cas-port", type=int, default=0)
    ap.add_argument("--cdn-url", help="nginx CDN base URL (default: the fault CDN port)")
    ap.add_argument("--secret", default=None, help="secure_link secret shared with nginx")
    ap.add_argument("--cdn-log", help="CDN access log (default STATE/cdn.log)")
    ap.add_argument("--ready-file", help="written (JSON) once serving")
    ap.add_argument("--config", default="{}", help="initial config as JSON (see /_emu/config)")
    return ap.parse_args(argv)


def fixture_files(args):
    """Default fixtures, then --fixtures; a file named twice is loaded once."""
    files = [] if args.no_default_fixtures else sorted(glob.glob(os.path.join(DEFAULT_FIXTURES, "*.json")))
    out = []
    for f in files + args.fixtures:
        f = os.path.realpath(f)
        if f not in out:
            out.append(f)
    return out


def main(argv=None):
    args = parse_args(argv)
    state = os.path.abspath(args.state)
    cdn_dir = os.path.join(state, "cdn")
    os.makedirs(cdn_dir, exist_ok=True)
    os.chmod(cdn_dir, 0o755)
    blob_root = args.blob_cache or os.path.join(state, "blobs")
    hub = Hub(BlobStore(blob_root), cdn_dir,
              XetStore(os.path.join(blob_root, "xet"), os.path.join(state, "xorbs")))
    for path in fixture_files(args):
        hub.load(path)
    config = Config(**json.loads(args.config))
    emu = Emulator(hub, state, config, args.secret or secrets.token_hex(16), args.cdn_url,
                   args.cdn_log or os.path.join(state, "cdn.log"))
    hub_server = Server((args.host, args.port), emu.serve_hub)
    cdn_server = Server((args.host, args.fault_cdn_port), emu.serve_cdn)
    cas_server = Server((args.host, args.cas_port), emu.serve_cas)
    emu.endpoint = "http://%s:%d" % (args.host, hub_server.server_address[1])
    emu.fault_cdn = "http://%s:%d" % (args.host, cdn_server.server_address[1])
    emu.cas_url = "http://%s:%d" % (args.host, cas_server.server_address[1])
    emu.write_state_files()
    threading.Thread(target=cdn_server.serve_forever, daemon=True).start()
    threading.Thread(target=cas_server.serve_forever, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if args.ready_file:
        write_json_atomic(args.ready_file, {"endpoint": emu.endpoint, "fault_cdn": emu.fault_cdn,
                                            "cas": emu.cas_url, "pid": os.getpid()})
    print("hubemu: serving %s (fault CDN %s, Xet CAS %s)" % (emu.endpoint, emu.fault_cdn, emu.cas_url),
          flush=True)
    try:
        hub_server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
