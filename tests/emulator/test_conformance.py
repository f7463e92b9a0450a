#!/usr/bin/python3
"""test_conformance.py -- the Hub emulator checked against hub-api.md section 12.

Starts its own stack (emulator + nginx CDN) through tests/harness/hubstack.py
and talks to it with http.client and raw sockets only, the way a client
that knows nothing about the emulator would.  Each test class maps to an
item of the section 12 checklist.  Exit status is non-zero on failure.

    /usr/bin/python3 tests/emulator/test_conformance.py [-v]
"""

import gzip
import hashlib
import http.client
import json
import os
import re
import socket
import sys
import time
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "harness"))
import hubstack  # noqa: E402

STACK = None
HEX40 = re.compile(r"^[0-9a-f]{40}$")
UNSTABLE_HEADERS = ("date", "x-request-id", "ratelimit", "location")


def setUpModule():
    global STACK
    STACK = hubstack.Stack().start()


def tearDownModule():
    if STACK:
        STACK.stop()


# ------------------------------------------------------------------ clients

class Reply:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def h(self, name):
        return self.headers.get(name)

    def json(self):
        return json.loads(self.body)


def request(method, url, headers=None, body=None, token=None):
    """One request, no redirect following.  `url` may be a path on the emulator."""
    if url.startswith("/"):
        url = STACK.endpoint + url
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    hdrs = dict(headers or {})
    if token:
        hdrs["Authorization"] = "Bearer " + token
    if isinstance(body, dict):
        body = json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    elif isinstance(body, str):
        body = body.encode()
    try:
        conn.request(method, u.path + ("?" + u.query if u.query else ""), body, hdrs)
        resp = conn.getresponse()
        return Reply(resp.status, resp.headers, resp.read())
    finally:
        conn.close()


def get(url, **kw):
    return request("GET", url, **kw)


def head(url, **kw):
    return request("HEAD", url, **kw)


def raw_get(url, headers=(), timeout=10):
    """GET over a bare socket, reading until the server closes.

    -> (status, headers dict, body bytes, error or None, [(time, bytes so far)])"""
    u = urllib.parse.urlsplit(url)
    sock = socket.create_connection((u.hostname, u.port), timeout=timeout)
    target = u.path + ("?" + u.query if u.query else "")
    lines = ["GET %s HTTP/1.1" % target, "Host: %s:%d" % (u.hostname, u.port), "Connection: close"]
    lines += ["%s: %s" % kv for kv in headers]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    data, error, marks = b"", None, []
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
            marks.append((time.monotonic(), len(data)))
    except OSError as e:
        error = e
    finally:
        sock.close()
    head_part, _, body = data.partition(b"\r\n\r\n")
    lines = head_part.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and lines[0] else 0
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, body, error, marks


def wait_for(fn, timeout=3.0):
    """Poll `fn` until it returns something truthy (logs are written after the reply)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


def content(entry):
    with open(entry["content"], "rb") as f:
        return f.read()


def tiny():
    return STACK.repo("acme/tiny-model")


def main_files(repo):
    return repo["commits"][repo["refs"][repo["default_branch"]]]["files"]


class Base(unittest.TestCase):
    def setUp(self):
        STACK.control("POST", "/_emu/reset")

    def tearDown(self):
        STACK.control("POST", "/_emu/reset")

    def assertError(self, reply, status, code=None, message=None):
        self.assertEqual(reply.status, status, reply.body[:300])
        self.assertEqual(reply.h("X-Error-Code"), code)
        self.assertIn("error", reply.json())
        if message is not None:
            self.assertEqual(reply.h("X-Error-Message"), message)
            self.assertEqual(reply.json()["error"], message)

    def follow_to_cdn(self, path, token=None):
        r = get(path, token=token)
        self.assertEqual(r.status, 302, r.body)
        return r, r.h("Location")


# ------------------------------------------------------------------ item 1

class T01Fixtures(Base):
    def test_manifest_and_computed_hashes(self):
        repo = tiny()
        for name in ("main", "dev", "v1.0", "refs/pr/1"):
            self.assertRegex(repo["refs"][name], HEX40)
        self.assertRegex(STACK.repo("acme/tiny-dataset", "dataset")["refs"]["refs/convert/parquet"], HEX40)
        self.assertGreaterEqual(len(repo["commits"]), 5)
        for commit in repo["commits"].values():
            for path, f in commit["files"].items():
                data = content(f)
                self.assertEqual(len(data), f["size"], path)
                self.assertEqual(hashlib.sha256(data).hexdigest(), f["sha256"])
                if f["lfs"]:
                    pointer = ("version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n"
                               % (f["sha256"], f["size"])).encode()
                    self.assertEqual(f["pointerSize"], len(pointer))
                    blob = pointer
                else:
                    blob = data
                self.assertEqual(f["oid"], hashlib.sha1(b"blob %d\0" % len(blob) + blob).hexdigest())
        files = main_files(repo)
        self.assertTrue(files["weights/xet-model.bin"]["xet"])
        self.assertRegex(files["weights/xet-model.bin"]["xetHash"], "^[0-9a-f]{64}$")
        self.assertIn("docs/with space/naïve café.txt", files)
        self.assertNotIn("old.txt", files)
        self.assertIn("old.txt", repo["commits"][repo["refs"]["v1.0"]]["files"])
        self.assertEqual(STACK.repo("openai-community/gpt2")["renamed_from"], ["gpt2"])

    def test_tokens_file(self):
        self.assertTrue(STACK.token("alice").startswith("hf_"))
        self.assertEqual(STACK.tokens["users"]["alice"]["orgs"], ["acme"])
        self.assertTrue(STACK.invalid_token.startswith("hf_"))

    def test_cdn_files_and_env(self):
        f = main_files(tiny())["model.safetensors"]
        self.assertTrue(os.path.isfile(os.path.join(STACK.state, "cdn", f["sha256"])))
        env = STACK.env()
        self.assertEqual(env["HUBFS_TEST_ENDPOINT"], STACK.manifest["endpoint"])
        self.assertEqual(env["HUBFS_TEST_CDN"], STACK.manifest["cdn"])


# ------------------------------------------------------------------ item 2

class T02RepoInfo(Base):
    def test_info_main(self):
        repo = tiny()
        r = get("/api/models/acme/tiny-model")
        self.assertEqual(r.status, 200)
        info = r.json()
        self.assertEqual(info["sha"], repo["refs"]["main"])
        self.assertEqual(info["id"], "acme/tiny-model")
        for key in ("_id", "private", "gated", "disabled", "lastModified"):
            self.assertIn(key, info)
        self.assertEqual(sorted(s["rfilename"] for s in info["siblings"]), sorted(main_files(repo)))
        self.assertEqual(set(info["siblings"][0]), {"rfilename"})

    def test_blobs(self):
        files = main_files(tiny())
        info = get("/api/models/acme/tiny-model?blobs=true").json()
        for s in info["siblings"]:
            f = files[s["rfilename"]]
            self.assertEqual((s["size"], s["blobId"]), (f["size"], f["oid"]))
            if f["lfs"]:
                self.assertEqual(s["lfs"], {"sha256": f["sha256"], "size": f["size"],
                                            "pointerSize": f["pointerSize"]})
            else:
                self.assertNotIn("lfs", s)

    def test_revisions(self):
        refs = tiny()["refs"]
        cases = {"HEAD": "main", "main": "main", "v1.0": "v1.0", "dev": "dev",
                 "refs%2Fpr%2F1": "refs/pr/1", "refs/pr/1": "refs/pr/1",
                 refs["v1.0"]: "v1.0", refs["dev"][:7]: "dev"}
        for rev, ref in cases.items():
            r = get("/api/models/acme/tiny-model/revision/" + rev)
            self.assertEqual(r.status, 200, rev)
            self.assertEqual(r.json()["sha"], refs[ref], rev)
        conv = get("/api/datasets/acme/tiny-dataset/revision/refs%2Fconvert%2Fparquet").json()
        self.assertEqual(conv["sha"], STACK.repo("acme/tiny-dataset", "dataset")["refs"]["refs/convert/parquet"])

    def test_expand_and_security(self):
        info = get("/api/models/acme/tiny-model?expand=sha&expand=private").json()
        self.assertEqual(set(info), {"_id", "id", "sha", "private"})
        info = get("/api/models/acme/tiny-model?securityStatus=true").json()
        self.assertIn("securityRepoStatus", info)

    def test_other_types(self):
        self.assertEqual(get("/api/datasets/acme/tiny-dataset").status, 200)
        space = get("/api/spaces/acme/demo-space").json()
        self.assertEqual(space["sdk"], "gradio")
        self.assertEqual(space["host"], "https://acme-demo-space.hf.space")
        self.assertError(get("/api/models/acme/tiny-dataset"), 401, "RepoNotFound")


# ------------------------------------------------------------------ item 3

class T03Tree(Base):
    def list_all(self, path):
        entries, pages, url = [], 0, STACK.endpoint + path
        while url:
            r = get(url)
            self.assertEqual(r.status, 200, r.body)
            entries += r.json()
            pages += 1
            link = r.h("Link")
            url = None
            if link:
                m = re.match(r'^<(https?://[^>]+)>;\s+rel="next"$', link)
                self.assertIsNotNone(m, link)
                url = m.group(1)
                self.assertTrue(url.startswith(STACK.endpoint + "/"))
        return entries, pages

    def test_link_base(self):
        STACK.configure(page_size=2, link_base="http://localhost:1")
        r = get("/api/models/acme/tiny-model/tree/main?recursive=true")
        link = r.h("Link")
        self.assertTrue(link.startswith("<http://localhost:1/api/models/acme/tiny-model/tree/main?"), link)
        STACK.configure(link_base=None)
        self.assertTrue(get("/api/models/acme/tiny-model/tree/main?recursive=true").h("Link")
                        .startswith("<" + STACK.endpoint + "/"))

    def test_root_and_recursive(self):
        files = main_files(tiny())
        root = get("/api/models/acme/tiny-model/tree/main").json()
        self.assertIn({"type": "directory", "path": "nested"}, [{"type": e["type"], "path": e["path"]} for e in root])
        self.assertNotIn("nested/a", [e["path"] for e in root])
        entries, _ = self.list_all("/api/models/acme/tiny-model/tree/main?recursive=true")
        got = {e["path"]: e for e in entries if e["type"] == "file"}
        self.assertEqual(set(got), set(files))
        dirs = {e["path"] for e in entries if e["type"] == "directory"}
        self.assertTrue({"nested", "nested/a/b/c", "docs/with space", "日本語"} <= dirs)
        for path, e in got.items():
            f = files[path]
            self.assertEqual((e["oid"], e["size"]), (f["oid"], f["size"]))
            if f["lfs"]:
                self.assertEqual(e["lfs"], {"oid": f["sha256"], "size": f["size"], "pointerSize": f["pointerSize"]})
            self.assertEqual("xetHash" in e, f["xet"])
        for e in entries:
            if e["type"] == "directory":
                self.assertEqual(e["size"], 0)
                self.assertRegex(e["oid"], HEX40)

    def test_encodings(self):
        a = get("/api/models/acme/tiny-model/tree/main/nested/a?recursive=1").json()
        b = get("/api/models/acme/tiny-model/tree/main/nested%2Fa?recursive=1").json()
        self.assertEqual(a, b)
        self.assertEqual([e["path"] for e in a], ["nested/a/b", "nested/a/b/c", "nested/a/b/c/deep.txt"])
        pr = tiny()["refs"]["refs/pr/1"]
        for rev in ("refs%2Fpr%2F1", "refs/pr/1", pr):
            r = get("/api/models/acme/tiny-model/tree/%s/tokenizer" % rev)
            self.assertEqual(r.status, 200, rev)
            self.assertEqual(r.json()[0]["path"], "tokenizer/vocab.txt")
        r = get("/api/models/acme/tiny-model/tree/main/" + urllib.parse.quote("docs/with space", safe=""))
        self.assertEqual([e["path"] for e in r.json()], ["docs/with space/naïve café.txt"])
        r = get("/api/datasets/acme/tiny-dataset/tree/refs/convert/parquet/default?recursive=true")
        self.assertIn("default/train/0000.parquet", [e["path"] for e in r.json()])

    def test_errors(self):
        self.assertError(get("/api/models/acme/tiny-model/tree/main/nope"), 404, "EntryNotFound")
        self.assertError(get("/api/models/acme/tiny-model/tree/main/config.json"), 404, "EntryNotFound")
        self.assertError(get("/api/models/acme/tiny-model/tree/nobranch"), 404, "RevisionNotFound")

    def test_expand(self):
        repo = tiny()
        c2 = tiny()["commits"][repo["refs"]["main"]]
        entries = {e["path"]: e for e in get("/api/models/acme/tiny-model/tree/main?expand=true").json()}
        cfg = entries["config.json"]
        self.assertEqual(cfg["securityFileStatus"]["status"], "safe")
        sha_c2 = [s for s, c in repo["commits"].items() if c["title"].startswith("Update config")][0]
        self.assertEqual(cfg["lastCommit"]["id"], sha_c2)
        self.assertEqual(cfg["lastCommit"]["title"], "Update config, add a deep file, drop old.txt")
        self.assertEqual(entries["weights"]["lastCommit"]["id"], repo["refs"]["main"])
        self.assertEqual(entries["nested"]["lastCommit"]["id"], sha_c2)
        self.assertTrue(c2)

    def test_pagination(self):
        full, pages = self.list_all("/api/models/acme/tiny-model/tree/main?recursive=true")
        self.assertEqual(pages, 1)
        STACK.configure(page_size=3)
        paged, pages = self.list_all("/api/models/acme/tiny-model/tree/main?recursive=true")
        self.assertEqual(paged, full)
        self.assertEqual(pages, -(-len(full) // 3))
        STACK.configure(page_size=1000, page_size_expand=2)
        exp, pages = self.list_all("/api/models/acme/tiny-model/tree/main?recursive=true&expand=true")
        self.assertEqual([e["path"] for e in exp], [e["path"] for e in full])
        self.assertEqual(pages, -(-len(full) // 2))


# ------------------------------------------------------------------ item 4

class T04PathsInfo(Base):
    def test_both_encodings(self):
        files = main_files(tiny())
        url = "/api/models/acme/tiny-model/paths-info/main"
        form = "paths=config.json&paths=nested%2Fa&paths=missing.txt&paths=model.safetensors&expand=false"
        r1 = request("POST", url, {"Content-Type": "application/x-www-form-urlencoded"}, form)
        r2 = request("POST", url, body={"paths": ["config.json", "nested/a", "missing.txt", "model.safetensors"]})
        for r in (r1, r2):
            self.assertEqual(r.status, 200, r.body)
            got = {e["path"]: e for e in r.json()}
            self.assertEqual(set(got), {"config.json", "nested/a", "model.safetensors"})
            self.assertEqual(got["nested/a"]["type"], "directory")
            self.assertEqual(got["model.safetensors"]["lfs"]["oid"], files["model.safetensors"]["sha256"])
        r = request("POST", "/api/models/acme/tiny-model/paths-info/refs%2Fpr%2F1",
                    body={"paths": ["README.md"], "expand": True})
        self.assertIn("lastCommit", r.json()[0])
        self.assertError(request("POST", "/api/models/acme/tiny-model/paths-info/nope", body={"paths": []}),
                         404, "RevisionNotFound")


# ------------------------------------------------------------------ items 5, 5b, 6

class T05RefsListsWhoami(Base):
    def test_refs(self):
        refs = tiny()["refs"]
        r = get("/api/models/acme/tiny-model/refs").json()
        self.assertEqual({b["name"]: b["targetCommit"] for b in r["branches"]},
                         {"main": refs["main"], "dev": refs["dev"]})
        self.assertEqual(r["tags"], [{"name": "v1.0", "ref": "refs/tags/v1.0", "targetCommit": refs["v1.0"]}])
        self.assertEqual(r["converts"], [])
        self.assertNotIn("pullRequests", r)
        r = get("/api/models/acme/tiny-model/refs?include_prs=1").json()
        self.assertEqual(r["pullRequests"], [{"name": "1", "ref": "refs/pr/1", "targetCommit": refs["refs/pr/1"]}])
        d = get("/api/datasets/acme/tiny-dataset/refs").json()
        self.assertEqual(d["converts"][0]["ref"], "refs/convert/parquet")

    def test_commits(self):
        repo = tiny()
        r = get("/api/models/acme/tiny-model/commits/main?expand[]=formatted").json()
        self.assertEqual(r[0]["id"], repo["refs"]["main"])
        self.assertEqual(len(r), 3)
        self.assertEqual(r[-1]["title"], "Initial commit")
        # message is the description after the title line, "" when none
        self.assertEqual(r[-1]["message"], "Add the first files.")
        self.assertEqual(r[0]["message"], "")
        self.assertIn("formatted", r[0])
        STACK.configure(page_size=2)
        r = get("/api/models/acme/tiny-model/commits/main")
        self.assertEqual(len(r.json()), 2)
        self.assertIn('rel="next"', r.h("Link"))

    def list_ids(self, path, token=None):
        ids, url, pages = [], path, 0
        while url:
            r = get(url, token=token)
            self.assertEqual(r.status, 200, r.body)
            ids += [x["id"] for x in r.json()]
            pages += 1
            link = r.h("Link")
            url = re.match(r'<(http://[^>]+)>;\s+rel="next"', link).group(1) if link else None
        return ids, pages

    def test_author_listing(self):
        anon, _ = self.list_ids("/api/models?author=acme&limit=500")
        self.assertIn("acme/tiny-model", anon)
        self.assertNotIn("acme/secret-model", anon)
        self.assertNotIn("acme/tiny-dataset", anon)
        mine, pages = self.list_ids("/api/models?author=acme&limit=2", token=STACK.token("alice"))
        self.assertEqual(sorted(mine), sorted(anon + ["acme/secret-model"]))
        self.assertEqual(pages, -(-len(mine) // 2))
        self.assertNotIn("acme/secret-model", self.list_ids("/api/models?author=acme", STACK.token("bob"))[0])
        self.assertEqual(get("/api/models?author=nobody-here").json(), [])
        self.assertEqual(self.list_ids("/api/datasets?author=bob")[0], ["bob/bob-data"])
        self.assertEqual(self.list_ids("/api/models?author=ac")[0], [])
        item = get("/api/models?author=acme&expand=private&expand=gated").json()[0]
        self.assertEqual(set(item), {"_id", "id", "private", "gated"})
        # A plain model listing has no sha or lastModified; full=true adds
        # them, and the file names.
        item = get("/api/models?author=acme").json()[0]
        self.assertNotIn("sha", item)
        self.assertNotIn("lastModified", item)
        item = get("/api/models?author=acme&full=true").json()[0]
        self.assertEqual(len(item["sha"]), 40)
        self.assertIn("lastModified", item)
        self.assertIn({"rfilename": "config.json"}, item["siblings"])

    def test_owner_overview(self):
        """5c: a user answers on /api/users/, an organisation on
        /api/organizations/, with or without repos; anything else 404."""
        self.assertEqual(get("/api/users/carol/overview").json()["name"], "carol")
        self.assertEqual(get("/api/users/carol/overview").json()["type"], "user")
        self.assertEqual(get("/api/organizations/acme/overview").json()["type"], "org")
        self.assertEqual(get("/api/organizations/carol/overview").status, 404)
        self.assertEqual(get("/api/users/acme/overview").status, 404)
        for kind in ("users", "organizations"):
            self.assertEqual(get("/api/%s/nobody-here/overview" % kind).status, 404)

    def test_whoami(self):
        self.assertEqual(get("/api/whoami-v2").status, 401)
        self.assertEqual(get("/api/whoami-v2", token=STACK.invalid_token).status, 401)
        me = get("/api/whoami-v2", token=STACK.token("alice")).json()
        self.assertEqual(me["name"], "alice")
        self.assertEqual([o["name"] for o in me["orgs"]], ["acme"])
        self.assertEqual(me["auth"]["accessToken"]["role"], "read")

    def test_agent_harnesses(self):
        """6b: the registry huggingface_hub keeps a day once it gets one."""
        r = get("/api/agent-harnesses")
        self.assertEqual(r.status, 200)
        doc = r.json()
        self.assertIsInstance(doc["standardEnvVars"], list)
        self.assertIsInstance(doc["harnesses"], dict)
        self.assertEqual(get("/api/agent-harnesses/x").status, 404)


# ------------------------------------------------------------------ item 7

class T07Resolve(Base):
    def test_regular_redirect_mode(self):
        repo = tiny()
        f = main_files(repo)["config.json"]
        r = get("/acme/tiny-model/resolve/main/config.json")
        self.assertEqual(r.status, 307)
        loc = r.h("Location")
        self.assertTrue(loc.startswith("/api/resolve-cache/models/acme/tiny-model/%s/config.json?"
                                       % repo["refs"]["main"]), loc)
        self.assertEqual(int(r.h("Content-Length")), len(r.body))
        for url in (loc, loc.split("?")[0]):
            r2 = get(url)
            self.assertEqual(r2.status, 200)
            self.assertEqual(r2.body, content(f))
            self.assertEqual(r2.h("X-Repo-Commit"), repo["refs"]["main"])
            self.assertEqual(r2.h("ETag"), '"%s"' % f["oid"])
            self.assertEqual(int(r2.h("Content-Length")), f["size"])
            self.assertEqual(r2.h("Accept-Ranges"), "bytes")
            self.assertIn("config.json", r2.h("Content-Disposition"))
            self.assertTrue(r2.h("Content-Type"))

    def test_regular_direct_mode_and_types(self):
        STACK.configure(resolve_mode="direct")
        f = main_files(tiny())["README.md"]
        r = get("/acme/tiny-model/resolve/main/README.md")
        self.assertEqual((r.status, r.body), (200, content(f)))
        d = main_files(STACK.repo("acme/tiny-dataset", "dataset"))["data/train.csv"]
        self.assertEqual(get("/datasets/acme/tiny-dataset/resolve/main/data/train.csv").body, content(d))
        s = main_files(STACK.repo("acme/demo-space", "space"))["app.py"]
        self.assertEqual(get("/spaces/acme/demo-space/resolve/main/app.py").body, content(s))
        path = "docs/with space/naïve café.txt"
        r = get("/acme/tiny-model/resolve/main/" + urllib.parse.quote(path))
        self.assertEqual(r.body, content(main_files(tiny())[path]))
        self.assertIn("filename*=UTF-8''na%C3%AFve%20caf%C3%A9.txt", r.h("Content-Disposition"))
        r = get("/acme/tiny-model/resolve/refs%2Fpr%2F1/README.md")
        self.assertIn(b"better README", r.body)
        r = get("/acme/tiny-model/resolve/refs/pr/1/README.md")
        self.assertIn(b"better README", r.body)

    def test_empty_file(self):
        STACK.configure(resolve_mode="direct")
        r = get("/acme/tiny-model/resolve/main/empty.txt")
        self.assertEqual((r.status, r.body, r.h("Content-Length")), (200, b"", "0"))
        r = get("/acme/tiny-model/resolve/main/empty.txt", headers={"Range": "bytes=0-0"})
        self.assertEqual((r.status, r.h("Content-Range")), (416, "bytes */0"))

    def test_lfs_redirect_to_nginx(self):
        repo = tiny()
        f = main_files(repo)["model.safetensors"]
        r, loc = self.follow_to_cdn("/acme/tiny-model/resolve/main/model.safetensors")
        self.assertTrue(loc.startswith(STACK.cdn + "/blobs/%s?" % f["sha256"]), loc)
        self.assertEqual(r.h("X-Repo-Commit"), repo["refs"]["main"])
        self.assertEqual(r.h("X-Linked-Etag"), '"%s"' % f["sha256"])
        self.assertEqual(int(r.h("X-Linked-Size")), f["size"])
        self.assertTrue(r.h("ETag"))
        self.assertEqual(int(r.h("Content-Length")), len(r.body))
        c = get(loc)
        self.assertEqual(c.status, 200)
        self.assertEqual(hashlib.sha256(c.body).hexdigest(), f["sha256"])
        self.assertEqual(c.h("ETag"), '"%s"' % f["sha256"])
        old = repo["commits"][repo["refs"]["v1.0"]]["files"]["model.safetensors"]
        _, loc = self.follow_to_cdn("/acme/tiny-model/resolve/v1.0/model.safetensors")
        self.assertEqual(hashlib.sha256(get(loc).body).hexdigest(), old["sha256"])

    def test_xet(self):
        repo = tiny()
        f = main_files(repo)["weights/xet-model.bin"]
        r, loc = self.follow_to_cdn("/acme/tiny-model/resolve/main/weights/xet-model.bin")
        if not f["xetBuilt"]:
            # No test venv: no Xet objects, served through the bridge only.
            self.assertIsNone(r.h("X-Xet-Hash"))
            self.assertIsNone(r.h("Link"))
        else:
            self.assertEqual(r.h("X-Xet-Hash"), f["xetHash"])
            link = "<%s/api/models/acme/tiny-model/xet-read-token/%s>; rel=\"xet-auth\"" % (
                STACK.endpoint, repo["refs"]["main"])
            self.assertEqual(r.h("Link"), link)
        self.assertEqual(hashlib.sha256(get(loc).body).hexdigest(), f["sha256"])
        r = get("/api/models/acme/tiny-model/xet-read-token/%s" % repo["refs"]["main"])
        tok = r.json()
        self.assertTrue(tok["accessToken"] and tok["exp"] > time.time())
        self.assertEqual(tok["casUrl"], STACK.cas)
        self.assertEqual((r.h("X-Xet-Access-Token"), r.h("X-Xet-Cas-Url"), r.h("X-Xet-Token-Expiration")),
                         (tok["accessToken"], tok["casUrl"], str(tok["exp"])))

    def test_direct_lfs(self):
        STACK.configure(direct_lfs=True)
        f = main_files(tiny())["model.safetensors"]
        r = get("/acme/tiny-model/resolve/main/model.safetensors", headers={"Range": "bytes=10-19"})
        self.assertEqual(r.status, 206)
        self.assertEqual(r.body, content(f)[10:20])
        self.assertEqual(r.h("X-Linked-Etag"), '"%s"' % f["sha256"])
        r = get("/acme/tiny-model/resolve/main/model.safetensors")
        self.assertEqual((r.status, len(r.body)), (200, f["size"]))

    def test_raw_gives_pointer(self):
        f = main_files(tiny())["model.safetensors"]
        r = get("/acme/tiny-model/raw/main/model.safetensors")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.body.startswith(b"version https://git-lfs.github.com/spec/v1\n"))
        self.assertEqual(r.h("ETag"), '"%s"' % f["oid"])

    def check_ranges(self, url, data, etag=None):
        size = len(data)
        for spec, first, last in (("bytes=0-9", 0, 9), ("bytes=100-", 100, size - 1),
                                  ("bytes=-50", size - 50, size - 1), ("bytes=5-%d" % (size * 2), 5, size - 1)):
            r = get(url, headers={"Range": spec})
            self.assertEqual(r.status, 206, spec)
            self.assertEqual(r.h("Content-Range"), "bytes %d-%d/%d" % (first, last, size), spec)
            self.assertEqual(r.body, data[first:last + 1], spec)
            self.assertEqual(int(r.h("Content-Length")), last - first + 1)
            if etag:
                self.assertEqual(r.h("ETag"), etag)
        r = get(url, headers={"Range": "bytes=%d-" % size})
        self.assertEqual(r.status, 416)
        self.assertEqual(r.h("Content-Range"), "bytes */%d" % size)

    def test_ranges_emulator(self):
        repo = tiny()
        big = main_files(repo)["model.safetensors"]
        self.check_ranges("/api/resolve-cache/models/acme/tiny-model/%s/model.safetensors"
                          % repo["refs"]["main"], content(big))
        STACK.configure(direct_lfs=True)
        self.check_ranges("/acme/tiny-model/resolve/main/model.safetensors", content(big))
        STACK.configure(resolve_mode="direct")
        vocab = main_files(repo)["tokenizer/vocab.txt"]
        r = get("/acme/tiny-model/resolve/main/tokenizer/vocab.txt", headers={"Range": "bytes=-6"})
        self.assertEqual((r.status, r.body), (206, content(vocab)[-6:]))

    def test_ranges_nginx(self):
        f = main_files(tiny())["model.safetensors"]
        _, loc = self.follow_to_cdn("/acme/tiny-model/resolve/main/model.safetensors")
        self.check_ranges(loc, content(f), etag='"%s"' % f["sha256"])

    def test_head_parity(self):
        repo = tiny()
        urls = ["/acme/tiny-model/resolve/main/config.json",
                "/acme/tiny-model/resolve/main/model.safetensors",
                "/api/resolve-cache/models/acme/tiny-model/%s/config.json" % repo["refs"]["main"],
                "/acme/tiny-model/resolve/main/missing.bin",
                "/api/models/acme/tiny-model",
                "/api/models/acme/tiny-model/tree/main",
                "/api/models/acme/old-name",
                "/bigco/gated-model/resolve/main/config.json"]
        for url in urls:
            for hdrs in ({}, {"Range": "bytes=2-5"}):
                g, h = get(url, headers=hdrs), head(url, headers=hdrs)
                self.assertEqual(g.status, h.status, url)
                self.assertEqual(h.body, b"")
                gh = {k.lower(): v for k, v in g.headers.items() if k.lower() not in UNSTABLE_HEADERS}
                hh = {k.lower(): v for k, v in h.headers.items() if k.lower() not in UNSTABLE_HEADERS}
                self.assertEqual(gh, hh, url)
                self.assertEqual(int(h.h("Content-Length")), len(g.body), url)

    def test_gzip_mode(self):
        STACK.configure(resolve_mode="direct", gzip=True)
        f = main_files(tiny())["README.md"]
        r = get("/acme/tiny-model/resolve/main/README.md", headers={"Accept-Encoding": "gzip"})
        self.assertEqual(r.status, 200)
        self.assertEqual(r.h("Content-Encoding"), "gzip")
        self.assertIsNone(r.h("Content-Length"))
        self.assertEqual(r.h("Transfer-Encoding"), "chunked")
        self.assertEqual(gzip.decompress(r.body), content(f))
        r = get("/acme/tiny-model/resolve/main/README.md", headers={"Accept-Encoding": "gzip",
                                                                    "Range": "bytes=0-3"})
        self.assertEqual((r.status, r.h("Content-Encoding")), (206, None))

    def test_gzip_json(self):
        STACK.configure(gzip_json=True)
        url = STACK.endpoint + "/api/models/acme/tiny-model"
        plain = get(url, headers={"Accept-Encoding": "identity"})
        self.assertEqual((plain.status, plain.h("Content-Encoding")), (200, None))
        # No Accept-Encoding at all: any coding is acceptable (RFC 9110).
        status, hdrs, body, _, _ = raw_get(url)
        self.assertEqual((status, hdrs.get("content-encoding")), (200, "gzip"))
        self.assertEqual(hdrs.get("transfer-encoding"), "chunked")
        chunks, rest = b"", body
        while rest:
            size, _, rest = rest.partition(b"\r\n")
            n = int(size, 16)
            chunks, rest = chunks + rest[:n], rest[n + 2:]
            if n == 0:
                break
        self.assertEqual(json.loads(gzip.decompress(chunks)), plain.json())
        r = get(url, headers={"Accept-Encoding": "gzip;q=0, br"})
        self.assertEqual(r.h("Content-Encoding"), None)
        # Errors stay plain.
        r = get("/api/models/acme/nope", headers={"Accept-Encoding": "gzip"})
        self.assertEqual((r.status, r.h("Content-Encoding")), (401, None))


# ------------------------------------------------------------------ item 8

class T08Renamed(Base):
    def test_renames(self):
        cases = [("/api/models/acme/old-name", "/api/models/acme/new-name"),
                 ("/api/models/acme/old-name/tree/main?recursive=1",
                  "/api/models/acme/new-name/tree/main?recursive=1"),
                 ("/acme/old-name/resolve/main/config.json", "/acme/new-name/resolve/main/config.json"),
                 ("/gpt2/resolve/main/config.json", "/openai-community/gpt2/resolve/main/config.json"),
                 ("/api/models/gpt2", "/api/models/openai-community/gpt2"),
                 ("/api/models/gpt2/revision/main", "/api/models/openai-community/gpt2/revision/main")]
        for old, new in cases:
            for method in ("GET", "HEAD"):
                r = request(method, old)
                self.assertEqual((r.status, r.h("Location")), (307, new), old)
        r = get("/api/models/gpt2")
        info = get(r.h("Location")).json()
        self.assertEqual(info["id"], "openai-community/gpt2")
        r = get(get("/gpt2/resolve/main/model.safetensors").h("Location"))
        self.assertEqual(r.status, 302)


# ------------------------------------------------------------------ items 9, 12

class T09ErrorsAndAuth(Base):
    def test_repo_not_found(self):
        alice, bob = STACK.token("alice"), STACK.token("bob")
        self.assertError(get("/api/models/acme/nope"), 401, "RepoNotFound", "Repository not found")
        self.assertError(get("/acme/nope/resolve/main/x"), 401, "RepoNotFound")
        self.assertError(get("/api/models/acme/nope", token=alice), 404, "RepoNotFound")
        self.assertError(get("/api/models/alice/private-notes"), 401, "RepoNotFound")
        self.assertError(get("/api/models/alice/private-notes", token=bob), 404, "RepoNotFound")
        self.assertError(get("/alice/private-notes/resolve/main/notes.txt", token=bob), 404, "RepoNotFound")
        self.assertEqual(get("/api/models/alice/private-notes", token=alice).status, 200)
        self.assertError(get("/api/models/acme/secret-model", token=bob), 404, "RepoNotFound")
        self.assertEqual(get("/api/models/acme/secret-model", token=STACK.token("carol")).status, 200)
        r = get("/alice/private-notes/resolve/main/secret.bin", token=alice)
        self.assertEqual(r.status, 302)
        self.assertEqual(get(r.h("Location")).status, 200)

    def test_invalid_token(self):
        msg = "Invalid credentials in Authorization header"
        for url in ("/api/models/acme/tiny-model", "/acme/tiny-model/resolve/main/config.json",
                    "/api/models/acme/nope"):
            self.assertError(get(url, token=STACK.invalid_token), 401, None, msg)
        self.assertError(get("/api/models/acme/tiny-model", headers={"Authorization": "Basic abc"}),
                         401, None, msg)

    def test_revision_and_entry(self):
        repo = tiny()
        self.assertError(get("/api/models/acme/tiny-model/revision/nope"), 404, "RevisionNotFound",
                         "Invalid rev id: nope")
        self.assertError(get("/acme/tiny-model/resolve/nope/config.json"), 404, "RevisionNotFound")
        r = get("/acme/tiny-model/resolve/main/missing.bin")
        self.assertError(r, 404, "EntryNotFound")
        self.assertEqual(r.h("X-Repo-Commit"), repo["refs"]["main"])
        r = get("/acme/tiny-model/resolve/v1.0/nested")
        self.assertError(r, 404, "EntryNotFound")
        self.assertEqual(r.h("X-Repo-Commit"), repo["refs"]["v1.0"])

    def test_disabled(self):
        for url in ("/api/models/acme/disabled-model", "/acme/disabled-model/resolve/main/config.json",
                    "/api/models/acme/disabled-model/tree/main"):
            self.assertError(get(url), 403, None, "Access to this resource is disabled.")

    def test_gated(self):
        url = "/bigco/gated-model/resolve/main/config.json"
        r = get(url)
        self.assertError(r, 401, "GatedRepo")
        self.assertIn("restricted", r.h("X-Error-Message"))
        self.assertError(get(url, token=STACK.token("bob")), 403, "GatedRepo")
        self.assertEqual(get(url, token=STACK.token("alice")).status, 307)
        self.assertEqual(get("/bigco/gated-model/resolve/main/model.safetensors",
                             token=STACK.token("carol")).status, 302)
        self.assertEqual(get("/api/models/bigco/gated-model").json()["gated"], "manual")
        self.assertEqual(get("/api/models/bigco/gated-model/tree/main").status, 200)
        self.assertError(get("/api/models/bigco/gated-model/xet-read-token/main"), 401, "GatedRepo")
        self.assertError(get("/acme/auto-gated/resolve/main/config.json"), 401, "GatedRepo")
        self.assertEqual(get("/acme/auto-gated/resolve/main/config.json", token=STACK.token("bob")).status, 307)


# ------------------------------------------------------------------ item 10

class T10RateLimits(Base):
    def test_headers_everywhere(self):
        for url, bucket in (("/api/models/acme/tiny-model", "api"),
                            ("/acme/tiny-model/resolve/main/config.json", "resolvers"),
                            ("/acme/tiny-model", "pages"), ("/api/models/acme/nope", "api")):
            r = get(url)
            self.assertRegex(r.h("RateLimit"), r'^"%s";r=\d+;t=\d+$' % bucket)
            self.assertRegex(r.h("RateLimit-Policy"), r'^"fixed window";"%s";q=\d+;w=300$' % bucket)
            self.assertTrue(r.h("X-Request-Id"))

    def test_quota(self):
        STACK.configure(quotas={"resolvers": 3})
        seen = [get("/acme/tiny-model/resolve/main/config.json") for _ in range(4)]
        self.assertEqual([r.status for r in seen], [307, 307, 307, 429])
        self.assertEqual(seen[2].h("RateLimit").split(";")[1], "r=0")
        self.assertRegex(seen[3].h("RateLimit"), r'^"resolvers";r=0;t=\d+$')
        self.assertTrue(int(seen[3].h("Retry-After")) > 0)
        self.assertIn('q=3', seen[3].h("RateLimit-Policy"))
        self.assertEqual(get("/api/models/acme/tiny-model").status, 200)

    def test_injected(self):
        STACK.fault(kind="rate_limit", path="/resolve/", t=7, count=1)
        r = get("/acme/tiny-model/resolve/main/config.json")
        self.assertEqual(r.status, 429)
        self.assertEqual(r.h("RateLimit"), '"resolvers";r=0;t=7')
        self.assertEqual(r.h("Retry-After"), "7")
        self.assertEqual(get("/acme/tiny-model/resolve/main/config.json").status, 307)
        STACK.fault(kind="rate_limit", path="/api/", t=3, header="retry_after", count=1)
        r = get("/api/models/acme/tiny-model")
        self.assertEqual((r.status, r.h("Retry-After")), (429, "3"))
        self.assertNotIn("r=0", r.h("RateLimit"))


# ------------------------------------------------------------------ item 11

class T11Faults(Base):
    def cache_url(self, path="config.json"):
        return "%s/api/resolve-cache/models/acme/tiny-model/%s/%s" % (
            STACK.endpoint, tiny()["refs"]["main"], path)

    def test_status(self):
        STACK.fault(kind="status", status=503, path="/tree/", count=2, retry_after=1)
        r = get("/api/models/acme/tiny-model/tree/main")
        self.assertEqual((r.status, r.h("Retry-After")), (503, "1"))
        self.assertEqual(get("/api/models/acme/tiny-model/tree/main").status, 503)
        self.assertEqual(get("/api/models/acme/tiny-model/tree/main").status, 200)
        STACK.fault(kind="status", status=500, method="HEAD")
        self.assertEqual(get("/api/models/acme/tiny-model").status, 200)
        self.assertEqual(head("/api/models/acme/tiny-model").status, 500)

    def test_reset(self):
        data = content(main_files(tiny())["tokenizer/vocab.txt"])
        STACK.fault(kind="reset", path="/resolve-cache/", after=5, count=1)
        status, hdrs, body, err, _ = raw_get(self.cache_url("tokenizer/vocab.txt"))
        self.assertEqual(status, 200)
        self.assertEqual(int(hdrs["content-length"]), len(data))
        self.assertEqual(body, data[:5])
        self.assertIsInstance(err, ConnectionResetError)
        status, _, body, err, _ = raw_get(self.cache_url("tokenizer/vocab.txt"))
        self.assertEqual((status, body, err), (200, data, None))

    def test_stall(self):
        data = content(main_files(tiny())["tokenizer/vocab.txt"])
        STACK.fault(kind="stall", path="/resolve-cache/", after=4, seconds=0.6, count=1)
        t0 = time.monotonic()
        status, _, body, err, marks = raw_get(self.cache_url("tokenizer/vocab.txt"))
        self.assertEqual((status, body, err), (200, data, None))
        self.assertGreaterEqual(marks[-1][0] - t0, 0.55)
        early = [n for t, n in marks if t - t0 < 0.4]
        self.assertTrue(early, marks)
        STACK.fault(kind="stall", path="/api/models/", after=-1, seconds=0.5, count=1)
        t0 = time.monotonic()
        self.assertEqual(get("/api/models/acme/tiny-model").status, 200)
        self.assertGreaterEqual(time.monotonic() - t0, 0.45)

    def test_wrong_bytes(self):
        data = content(main_files(tiny())["tokenizer/vocab.txt"])
        STACK.fault(kind="wrong_bytes", path="/resolve-cache/", after=2, length=3, count=1)
        r = get(self.cache_url("tokenizer/vocab.txt"))
        self.assertEqual(len(r.body), len(data))
        self.assertEqual(r.body[:2] + r.body[5:], data[:2] + data[5:])
        self.assertEqual(bytes(b ^ 0xFF for b in r.body[2:5]), data[2:5])

    def test_range_200(self):
        data = content(main_files(tiny())["tokenizer/vocab.txt"])
        STACK.fault(kind="range_200", path="/resolve-cache/", count=1)
        r = get(self.cache_url("tokenizer/vocab.txt"), headers={"Range": "bytes=3-5"})
        self.assertEqual((r.status, r.body, r.h("Content-Range")), (200, data, None))
        r = get(self.cache_url("tokenizer/vocab.txt"), headers={"Range": "bytes=3-5"})
        self.assertEqual((r.status, r.body), (206, data[3:6]))

    def test_range_wide(self):
        data = content(main_files(tiny())["tokenizer/vocab.txt"])
        STACK.fault(kind="range_wide", path="/resolve-cache/", count=1)
        r = get(self.cache_url("tokenizer/vocab.txt"), headers={"Range": "bytes=3-5"})
        self.assertEqual((r.status, r.body, r.h("Content-Range")),
                         (206, data, "bytes 0-%d/%d" % (len(data) - 1, len(data))))
        r = get(self.cache_url("tokenizer/vocab.txt"), headers={"Range": "bytes=3-5"})
        self.assertEqual((r.status, r.body), (206, data[3:6]))

    def test_json_faults(self):
        STACK.fault(kind="malformed_json", path="/tree/", count=1)
        r = get("/api/models/acme/tiny-model/tree/main")
        self.assertEqual(r.status, 200)
        self.assertRaises(ValueError, json.loads, r.body)
        good = get("/api/models/acme/tiny-model/tree/main").body
        STACK.fault(kind="truncated_json", path="/tree/", count=1)
        r = get("/api/models/acme/tiny-model/tree/main")
        self.assertTrue(good.startswith(r.body) and len(r.body) < len(good))
        self.assertEqual(int(r.h("Content-Length")), len(r.body))
        self.assertRaises(ValueError, json.loads, r.body)

    def cdn_entries(self, server):
        return [e for e in STACK.cdn_log() if e["server"] == server]

    def test_cdn_faults_use_fault_cdn(self):
        f = main_files(tiny())["model.safetensors"]
        data = content(f)
        STACK.clear_logs()
        STACK.fault(kind="reset", target="cdn", path="/blobs/" + f["sha256"], after=1000, count=1)
        _, loc = self.follow_to_cdn("/acme/tiny-model/resolve/main/model.safetensors")
        self.assertTrue(loc.startswith(STACK.fault_cdn + "/blobs/"), loc)
        status, hdrs, body, err, _ = raw_get(loc)
        self.assertEqual((status, len(body)), (200, 1000))
        self.assertIsNotNone(err)
        self.assertEqual(hdrs["etag"], '"%s"' % f["sha256"])
        entry = wait_for(lambda: self.cdn_entries("fault-cdn"))[-1]
        self.assertEqual((entry["status"], entry["fault"], entry["auth"]), (200, "reset", 0))
        self.assertEqual(entry["bytes"], 1000)
        # The rule is used up: new redirects point at nginx again.
        _, loc = self.follow_to_cdn("/acme/tiny-model/resolve/main/model.safetensors")
        self.assertTrue(loc.startswith(STACK.cdn + "/blobs/"))
        self.assertEqual(get(loc).body, data)

    def test_cdn_expired_fault_and_real_expiry(self):
        STACK.fault(kind="expired", target="cdn", count=1)
        _, loc = self.follow_to_cdn("/acme/tiny-model/resolve/main/model.safetensors")
        self.assertEqual(get(loc).status, 403)
        self.assertEqual(get(loc).status, 200)       # fault used up; the URL itself is valid
        STACK.configure(cdn_url_ttl=-5)
        _, loc = self.follow_to_cdn("/acme/tiny-model/resolve/main/model.safetensors")
        self.assertTrue(loc.startswith(STACK.cdn))
        self.assertEqual(get(loc).status, 403)
        fault_loc = loc.replace(STACK.cdn, STACK.fault_cdn)
        self.assertEqual(get(fault_loc).status, 403)

    def test_cdn_range_200_and_wrong_bytes(self):
        data = content(main_files(tiny())["model.safetensors"])
        STACK.fault(kind="range_200", target="cdn", count=1)
        _, loc = self.follow_to_cdn("/acme/tiny-model/resolve/main/model.safetensors")
        r = get(loc, headers={"Range": "bytes=0-99"})
        self.assertEqual((r.status, len(r.body)), (200, len(data)))
        STACK.fault(kind="wrong_bytes", target="cdn", after=len(data) - 1, length=1, count=1)
        _, loc = self.follow_to_cdn("/acme/tiny-model/resolve/main/model.safetensors")
        r = get(loc)
        self.assertEqual(r.body[:-1], data[:-1])
        self.assertNotEqual(r.body[-1], data[-1])
        STACK.fault(kind="status", status=502, target="cdn", count=1)
        _, loc = self.follow_to_cdn("/acme/tiny-model/resolve/main/model.safetensors")
        self.assertEqual(get(loc).status, 502)
        STACK.fault(kind="stall", target="cdn", after=100, seconds=0.3, count=1)
        _, loc = self.follow_to_cdn("/acme/tiny-model/resolve/main/model.safetensors")
        self.assertEqual(get(loc).body, data)

    def test_cdns_reject_authorization_and_bad_signatures(self):
        alice = STACK.token("alice")
        STACK.clear_logs()
        _, loc = self.follow_to_cdn("/acme/tiny-model/resolve/main/model.safetensors")
        for base in (STACK.cdn, STACK.fault_cdn):
            url = loc.replace(STACK.cdn, base)
            self.assertEqual(get(url, token=alice).status, 403, base)
            self.assertEqual(get(url.replace("md5=", "md5=x")).status, 403, base)
            self.assertEqual(get(url.replace("expires=", "expires=1")).status, 403, base)
            r = get(url, headers={"Range": "bytes=-10"})
            self.assertEqual(r.status, 206, base)
        log = wait_for(lambda: len(STACK.cdn_log()) >= 8 and STACK.cdn_log())
        self.assertEqual(sorted({(e["server"], e["auth"], e["status"]) for e in log}),
                         [("fault-cdn", 0, 206), ("fault-cdn", 0, 403), ("fault-cdn", 1, 403),
                          ("nginx", 0, 206), ("nginx", 0, 403), ("nginx", 1, 403)])
        for e in log:
            for key in ("uri", "args", "range", "status", "bytes", "auth", "conn"):
                self.assertIn(key, e)

    def test_faults_api(self):
        rule = STACK.fault(kind="status", status=500, path="^/api/models/acme/tiny-model$", count=3)
        listed = STACK.control("GET", "/_emu/faults")
        self.assertEqual(listed[0]["id"], rule["id"])
        get("/api/models/acme/tiny-model")
        self.assertEqual(STACK.control("GET", "/_emu/faults")[0]["left"], 2)
        STACK.control("DELETE", "/_emu/faults/%d" % rule["id"])
        self.assertEqual(STACK.control("GET", "/_emu/faults"), [])
        self.assertEqual(request("POST", "/_emu/faults", body={"kind": "bogus"}).status, 400)


# ------------------------------------------------------------------ control API, keep-alive

class T13Control(Base):
    def test_runtime_commit(self):
        repo = STACK.repo("bob/bob-data", "dataset")
        before = repo["refs"]["main"]
        sha = STACK.commit("bob/bob-data", rtype="dataset", message="Runtime change",
                           files={"new/file.txt": "fresh\n", "data.jsonl": "{\"x\": 3}\n",
                                  "blob.bin": {"size": 2048, "seed": 99, "lfs": True}})
        self.assertRegex(sha, HEX40)
        self.assertEqual(get("/api/datasets/bob/bob-data").json()["sha"], sha)
        repo = STACK.repo("bob/bob-data", "dataset")
        self.assertEqual(repo["refs"]["main"], sha)
        self.assertEqual(repo["commits"][sha]["parent"], before)
        STACK.configure(resolve_mode="direct")
        self.assertEqual(get("/datasets/bob/bob-data/resolve/main/new/file.txt").body, b"fresh\n")
        self.assertEqual(get("/datasets/bob/bob-data/resolve/%s/data.jsonl" % before).body,
                         b"{\"x\": 1}\n{\"x\": 2}\n")
        _, loc = self.follow_to_cdn("/datasets/bob/bob-data/resolve/main/blob.bin")
        self.assertEqual(hashlib.sha256(get(loc).body).hexdigest(),
                         repo["commits"][sha]["files"]["blob.bin"]["sha256"])
        sha2 = STACK.commit("bob/bob-data", rtype="dataset", delete=["new"], branch="feature")
        self.assertEqual(get("/api/datasets/bob/bob-data/revision/feature").json()["sha"], sha2)
        self.assertEqual(get("/api/datasets/bob/bob-data").json()["sha"], sha)
        self.assertError(get("/api/datasets/bob/bob-data/tree/feature/new"), 404, "EntryNotFound")
        bad = request("POST", "/_emu/commit", body={"repo": "bob/bob-data", "type": "dataset",
                                                     "delete": ["nothing-here"]})
        self.assertEqual(bad.status, 400)

    def test_request_log_and_keepalive(self):
        STACK.control("POST", "/_emu/log/clear")
        u = urllib.parse.urlsplit(STACK.endpoint)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
        try:
            for path in ("/api/models/acme/tiny-model", "/acme/tiny-model/resolve/main/config.json"):
                conn.request("GET", path + "?x=1", headers={"Authorization": "Bearer " + STACK.token("bob"),
                                                            "Range": "bytes=0-1"})
                conn.getresponse().read()
        finally:
            conn.close()
        log = STACK.hub_log()
        self.assertEqual([(e["method"], e["path"], e["query"], e["status"], e["range"], e["auth"], e["bucket"])
                          for e in log],
                         [("GET", "/api/models/acme/tiny-model", "x=1", 200, "bytes=0-1", True, "api"),
                          ("GET", "/acme/tiny-model/resolve/main/config.json", "x=1", 307, "bytes=0-1",
                           True, "resolvers")])
        self.assertEqual(log[0]["conn"], log[1]["conn"])
        STACK.control("POST", "/_emu/log/clear")
        self.assertEqual(STACK.hub_log(), [])

    def test_config_api(self):
        cfg = STACK.configure(page_size=7)
        self.assertEqual(cfg["page_size"], 7)
        self.assertEqual(request("POST", "/_emu/config", body={"nope": 1}).status, 400)


if __name__ == "__main__":
    t0 = time.monotonic()
    prog = unittest.main(exit=False, verbosity=2 if "-v" in sys.argv else 1)
    print("conformance: %.1f s" % (time.monotonic() - t0), file=sys.stderr)
    sys.exit(0 if prog.result.wasSuccessful() else 1)
