"""emu_http.py -- HTTP plumbing shared by the emulator's Hub and fault-CDN ports.

A route builds a Response (status, headers, body as bytes or a file range);
send() writes it on a keep-alive HTTP/1.1 connection, with sendfile() for
file bodies, and applies the body-level faults (reset, stall, wrong_bytes)
and JSON faults (malformed_json, truncated_json).  Also: single byte-range
parsing, content responses with 200/206/416, and CDN URL signing in the
format nginx's secure_link checks.  Standard library only.
"""

import base64
import gzip
import hashlib
import json
import mimetypes
import os
import socket
import struct
import time
import urllib.parse

READ_CHUNK = 1 << 20


class FileRange:
    __slots__ = ("path", "offset", "length")

    def __init__(self, path, offset, length):
        self.path, self.offset, self.length = path, offset, length

    def chunks(self):
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            left = self.length
            while left > 0:
                data = f.read(min(READ_CHUNK, left))
                if not data:
                    raise IOError("%s shrank while being served" % self.path)
                left -= len(data)
                yield data


class Response:
    def __init__(self, status, headers=(), body=b"", is_json=False):
        self.status = status
        self.headers = list(headers)
        self.body = body
        self.is_json = is_json
        self.chunked = False

    def add(self, name, value):
        self.headers.append((name, str(value)))
        return self

    def get(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    @property
    def length(self):
        return self.body.length if isinstance(self.body, FileRange) else len(self.body)


def header_safe(text):
    """Header values must be latin-1: percent-escape anything else."""
    return urllib.parse.quote(text, safe=" !\"#$&'()*+,-./:;<=>?@[\\]^_`{|}~")


def json_response(obj, status=200, headers=()):
    body = json.dumps(obj, ensure_ascii=False).encode("utf-8")
    resp = Response(status, headers, body, is_json=True)
    return resp.add("Content-Type", "application/json; charset=utf-8")


def accepts_gzip(accept_encoding):
    """RFC 9110 12.5.3: no Accept-Encoding means any coding is acceptable."""
    if accept_encoding is None:
        return True
    for item in accept_encoding.split(","):
        name, _, params = item.strip().partition(";")
        if name.strip().lower() in ("gzip", "*"):
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


def gzip_json(resp, accept_encoding):
    """Config gzip_json: a 2xx JSON body sent gzip + chunked when allowed."""
    if resp.is_json and 200 <= resp.status < 300 and accepts_gzip(accept_encoding):
        resp.body = gzip.compress(resp.body, mtime=0)
        resp.chunked = True
        resp.add("Content-Encoding", "gzip")
    return resp


def error_response(status, message, code=None, headers=()):
    resp = json_response({"error": message}, status, headers)
    if code:
        resp.add("X-Error-Code", code)
    return resp.add("X-Error-Message", header_safe(message))


class Reply(Exception):
    """Raised by a route to answer at once (redirects, errors)."""

    def __init__(self, response):
        super().__init__(response.status)
        self.response = response


class HubError(Reply):
    """An error answer in the Hub's format (JSON body, X-Error-* headers)."""

    def __init__(self, status, message, code=None, headers=()):
        super().__init__(error_response(status, message, code, headers))


def parse_range(value, size):
    """Single byte range -> None (absent or ignored), "unsatisfiable", or (first, last)."""
    if not value:
        return None
    value = value.strip()
    if not value.startswith("bytes=") or "," in value:
        return None
    first, sep, last = value[6:].strip().partition("-")
    if not sep:
        return None
    try:
        if first == "":
            n = int(last)
            if n <= 0 or size == 0:
                return "unsatisfiable"
            return max(0, size - n), size - 1
        a = int(first)
        b = int(last) if last else size - 1
    except ValueError:
        return None
    if a >= size:
        return "unsatisfiable"
    if a < 0 or b < a:
        return None
    return a, min(b, size - 1)


def content_type(path):
    ctype, _ = mimetypes.guess_type(path)
    if path.endswith((".md", ".txt", ".csv", ".py", ".cfg", ".yaml", ".yml", ".jsonl")):
        ctype = "text/plain"
    ctype = ctype or "application/octet-stream"
    if ctype.startswith("text/"):
        ctype += "; charset=utf-8"
    return ctype


def content_disposition(path):
    name = path.rsplit("/", 1)[-1]
    ascii_name = name.encode("ascii", "replace").decode().replace('"', "_")
    return "inline; filename*=UTF-8''%s; filename=\"%s\";" % (
        urllib.parse.quote(name, safe=""), ascii_name)


def content_response(path, size, range_header, headers, gzip_ok=False):
    """200 / 206 / 416 for the bytes of file `path` (`size` bytes)."""
    rng = parse_range(range_header, size)
    if rng == "unsatisfiable":
        resp = error_response(416, "Requested Range Not Satisfiable", headers=headers)
        return resp.add("Content-Range", "bytes */%d" % size)
    if rng is None:
        if gzip_ok:
            with open(path, "rb") as f:
                resp = Response(200, headers, gzip.compress(f.read(), mtime=0))
            resp.chunked = True
            return resp.add("Content-Encoding", "gzip")
        resp = Response(200, headers, FileRange(path, 0, size))
        return resp.add("Accept-Ranges", "bytes")
    first, last = rng
    resp = Response(206, headers, FileRange(path, first, last - first + 1))
    resp.add("Accept-Ranges", "bytes")
    return resp.add("Content-Range", "bytes %d-%d/%d" % (first, last, size))


# ------------------------------------------------------------------ signing

def url_signature(expires, uri, secret):
    """nginx secure_link_md5 "$secure_link_expires$uri <secret>", base64url."""
    digest = hashlib.md5(("%d%s %s" % (expires, uri, secret)).encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def signed_cdn_url(base, sha256, ttl, secret):
    expires = int(time.time()) + int(ttl)
    uri = "/blobs/" + sha256
    return "%s%s?expires=%d&md5=%s" % (base, uri, expires, url_signature(expires, uri, secret))


def check_signature(uri, params, secret):
    """-> "ok", "bad" or "expired", as nginx's $secure_link would say."""
    try:
        expires = int(params.get("expires", [""])[0])
    except ValueError:
        return "bad"
    given = params.get("md5", [""])[0]
    if given != url_signature(expires, uri, secret):
        return "bad"
    return "expired" if expires < int(time.time()) else "ok"


# ------------------------------------------------------------------ sending

class ConnectionCut(Exception):
    """The reset fault closed the connection."""


def corrupt_json(body, kind):
    if kind == "truncated_json":
        return body[: max(1, len(body) // 2)]
    return b'{"error": this is not JSON <html>' + b"x" * 16


def send(handler, resp, head, fault=None):
    """Write `resp` on the handler's connection; returns body bytes sent."""
    if fault and fault.kind in ("malformed_json", "truncated_json") and resp.is_json:
        resp.body = corrupt_json(resp.body, fault.kind)
    if fault and fault.kind == "stall" and int(fault.get("after", 0)) < 0:
        time.sleep(float(fault.get("seconds", 30)))
    handler.send_response(resp.status)
    for name, value in resp.headers:
        handler.send_header(name, value)
    if resp.chunked:
        handler.send_header("Transfer-Encoding", "chunked")
    else:
        handler.send_header("Content-Length", str(resp.length))
    handler.end_headers()
    if head or resp.status in (204, 304):
        return 0
    body_fault = fault if fault and fault.kind in ("reset", "stall", "wrong_bytes") else None
    if not body_fault and not resp.chunked and isinstance(resp.body, FileRange):
        return _sendfile(handler, resp.body)
    chunks = resp.body.chunks() if isinstance(resp.body, FileRange) else _slices(resp.body)
    return _pump(handler, chunks, body_fault, resp.chunked)


def _slices(data):
    for i in range(0, len(data), READ_CHUNK):
        yield data[i:i + READ_CHUNK]


def _sendfile(handler, body):
    if body.length == 0:
        return 0
    with open(body.path, "rb") as f:
        return handler.connection.sendfile(f, body.offset, body.length)


def _pump(handler, chunks, fault, chunked):
    write = handler.wfile.write
    out = (lambda d: write(b"%x\r\n%s\r\n" % (len(d), d)) if d else None) if chunked else write
    after = int(fault.get("after", 0)) if fault else 0
    pos, fired = 0, False
    for chunk in chunks:
        if fault and fault.kind == "wrong_bytes":
            chunk = _flip(chunk, pos, after, int(fault.get("length", 16)))
        elif fault and not fired and pos + len(chunk) > after:
            head_part, chunk = chunk[: after - pos], chunk[after - pos:]
            out(head_part)
            pos += len(head_part)
            fired = True
            if fault.kind == "reset":
                _cut(handler)
                return pos
            time.sleep(float(fault.get("seconds", 30)))
        out(chunk)
        pos += len(chunk)
    if chunked:
        write(b"0\r\n\r\n")
    return pos


def _flip(chunk, pos, start, length):
    lo, hi = max(start, pos), min(start + length, pos + len(chunk))
    if lo >= hi:
        return chunk
    buf = bytearray(chunk)
    for i in range(lo - pos, hi - pos):
        buf[i] ^= 0xFF
    return bytes(buf)


def _cut(handler):
    """Abort the connection with a TCP RST (SO_LINGER 0, then close)."""
    sock = handler.connection
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    except OSError:
        pass
    handler.close_connection = True


def read_request_body(handler):
    """The request body (Content-Length or chunked), or b''."""
    te = (handler.headers.get("Transfer-Encoding") or "").lower()
    if "chunked" in te:
        parts = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(parts)
            parts.append(handler.rfile.read(size))
            handler.rfile.readline()
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length > 0 else b""


def file_exists(path):
    return os.path.isfile(path)
