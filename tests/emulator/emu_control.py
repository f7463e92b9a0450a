"""emu_control.py -- the knobs tests turn on the Hub emulator.

Config (POST /_emu/config), the per-bucket fixed-window rate limiter, the
fault rules (POST/DELETE /_emu/faults) and the in-memory request log
(GET /_emu/log).  All of it is shared by the handler threads, so each class
guards its own state with one lock.  Standard library only.
"""

import collections
import json
import math
import re
import threading
import time

BUCKETS = ("api", "resolvers", "pages")
FAULT_KINDS = ("status", "rate_limit", "reset", "stall", "wrong_bytes", "range_200",
               "expired", "malformed_json", "truncated_json", "range_wide", "short_range")
TARGETS = ("hub", "cdn", "cas")


class Config:
    """Runtime settings; see DEFAULTS for the keys."""

    DEFAULTS = {
        "resolve_mode": "redirect",   # redirect (307 to resolve-cache) | direct (200)
        "direct_lfs": False,          # LFS files answered 200/206 by the emulator
        "page_size": 1000,            # tree, commits and repo-list pages
        "page_size_expand": None,     # tree pages with expand=true; None: min(50, page_size)
        "cdn_url_ttl": 3600,          # seconds a signed CDN URL stays valid (may be <= 0)
        "gzip": False,                # gzip text files when the client accepts it
        "gzip_json": False,           # gzip 2xx JSON unless Accept-Encoding rules gzip out
        "link_base": None,            # base URL of next-page Links (None: the endpoint)
        "xet_token_ttl": 3600,        # seconds a CAS token lives (<= 0: handed out expired)
        "xet_url_ttl": 3600,          # seconds a signed xorb URL stays valid (may be <= 0)
        "xet_reconstruction": "v2",   # v2: /v2 and /v1 reconstructions; v1: /v2 answers 404
        "xet_multirange": False,      # v2: one xorb URL for all of a xorb's ranges (multi-range GET)
        "quotas": {"api": 1000000, "resolvers": 1000000, "pages": 1000000},
        "window": 300,                # rate-limit window, seconds
    }

    def __init__(self, **overrides):
        self._lock = threading.Lock()
        self._values = json.loads(json.dumps(self.DEFAULTS))
        self.update(overrides)
        self._initial = json.dumps(self._values)

    def reset(self):
        """Back to the settings the emulator started with."""
        with self._lock:
            self._values = json.loads(self._initial)

    def update(self, changes):
        with self._lock:
            for key, value in changes.items():
                if key not in self.DEFAULTS:
                    raise ValueError("unknown config key %r" % key)
                if key == "quotas":
                    self._values["quotas"].update({k: int(v) for k, v in value.items()})
                elif key == "resolve_mode" and value not in ("redirect", "direct"):
                    raise ValueError("resolve_mode must be redirect or direct")
                elif key == "xet_reconstruction" and value not in ("v1", "v2"):
                    raise ValueError("xet_reconstruction must be v1 or v2")
                else:
                    self._values[key] = value
            return dict(self._values)

    def __getitem__(self, key):
        with self._lock:
            return self._values[key]

    def snapshot(self):
        with self._lock:
            return json.loads(json.dumps(self._values))

    def tree_page_size(self, expand):
        with self._lock:
            size = int(self._values["page_size"])
            if expand:
                exp = self._values["page_size_expand"]
                size = int(exp) if exp else min(50, size)
            return max(1, size)


class RateLimiter:
    """Fixed windows per bucket, all clients counted together."""

    def __init__(self, config):
        self.config = config
        self._lock = threading.Lock()
        self.reset()

    def reset(self):
        with self._lock:
            self._start = time.monotonic()
            self._counts = {b: 0 for b in BUCKETS}
            self._window_no = 0

    def hit(self, bucket):
        """Count one request -> (allowed, remaining, seconds to reset, quota, window)."""
        window = max(1, int(self.config["window"]))
        quota = int(self.config["quotas"].get(bucket, 1000000))
        with self._lock:
            elapsed = time.monotonic() - self._start
            number = int(elapsed // window)
            if number != self._window_no:
                self._window_no = number
                self._counts = {b: 0 for b in BUCKETS}
            self._counts[bucket] += 1
            used = self._counts[bucket]
        reset = max(1, math.ceil((number + 1) * window - elapsed))
        return used <= quota, max(0, quota - used), reset, quota, window


class FaultRule:
    """One injected fault.  Keys (JSON):

    kind        one of FAULT_KINDS
    path        regex searched in the raw request path (no query); default any
    method      GET / HEAD / POST ...; default any
    target      "hub" (default), "cdn" (LFS blobs and xorbs) or "cas" (Xet CAS)
    count       how many requests it applies to; default forever
    every       act on every Nth request it matches only (default 1: each);
                the others pass to the next rule
    status      for kind=status (default 503)
    retry_after seconds, for status and rate_limit (Retry-After header)
    t           seconds in RateLimit for rate_limit (default 10)
    header      rate_limit: "both" (default), "ratelimit" or "retry_after"
    after       body bytes sent before reset / stall / wrong_bytes (default 0);
                for stall, a negative value stalls before the status line
    seconds     stall duration (default 30)
    length      wrong_bytes: how many bytes to flip (default 16)
    """

    def __init__(self, rule_id, spec):
        kind = spec.get("kind")
        if kind not in FAULT_KINDS:
            raise ValueError("fault kind must be one of %s" % ", ".join(FAULT_KINDS))
        self.id = rule_id
        self.spec = dict(spec)
        self.kind = kind
        self.regex = re.compile(spec.get("path") or "")
        self.method = (spec.get("method") or "").upper() or None
        self.target = spec.get("target", "hub")
        if self.target not in TARGETS:
            raise ValueError("fault target must be one of %s" % ", ".join(TARGETS))
        count = spec.get("count")
        self.left = None if count is None else int(count)
        self.hits = 0
        self.every = int(spec.get("every") or 1)
        if self.every < 1:
            raise ValueError("every must be at least 1")
        self.seen = 0

    def get(self, key, default):
        value = self.spec.get(key)
        return default if value is None else value

    def wants(self, target, method, path, has_range, is_api):
        if self.target != target or (self.left is not None and self.left <= 0):
            return False
        if self.method and self.method != method:
            return False
        if not self.regex.search(path):
            return False
        if self.kind in ("range_200", "range_wide", "short_range") and not has_range:
            return False
        if self.kind in ("malformed_json", "truncated_json") and not is_api:
            return False
        if method == "HEAD" and (self.kind in ("reset", "wrong_bytes") or
                                 (self.kind == "stall" and int(self.get("after", 0)) >= 0)):
            return False
        return True

    def describe(self):
        d = dict(self.spec)
        d.update({"id": self.id, "left": self.left, "hits": self.hits})
        return d


class Faults:
    def __init__(self):
        self._lock = threading.Lock()
        self._rules = []
        self._next = 1

    def add(self, spec):
        with self._lock:
            rule = FaultRule(self._next, spec)
            self._next += 1
            self._rules.append(rule)
            return rule.describe()

    def clear(self, rule_id=None):
        with self._lock:
            self._rules = [r for r in self._rules if rule_id is not None and r.id != rule_id]

    def list(self):
        with self._lock:
            return [r.describe() for r in self._rules]

    def take(self, target, method, path, has_range=False, is_api=False):
        """The first rule matching this request, consumed once; or None."""
        with self._lock:
            for rule in self._rules:
                if rule.wants(target, method, path, has_range, is_api):
                    rule.seen += 1
                    if rule.seen % rule.every:
                        continue
                    if rule.left is not None:
                        rule.left -= 1
                    rule.hits += 1
                    return rule
        return None

    def active(self, target):
        with self._lock:
            return any(r.target == target and (r.left is None or r.left > 0) for r in self._rules)


class RequestLog:
    """The last `keep` requests, oldest first, each with a sequence number."""

    def __init__(self, path=None, keep=200000):
        self._lock = threading.Lock()
        self._entries = collections.deque(maxlen=keep)
        self._seq = 0
        self._file = open(path, "a", encoding="utf-8") if path else None

    def add(self, entry):
        with self._lock:
            self._seq += 1
            entry["seq"] = self._seq
            self._entries.append(entry)
        return entry

    def write_through(self, entry):
        """Append a finished entry to the JSON-lines file, if any."""
        if self._file:
            line = json.dumps(entry, ensure_ascii=False) + "\n"
            with self._lock:
                self._file.write(line)
                self._file.flush()

    def entries(self, since=0):
        with self._lock:
            return [dict(e) for e in self._entries if e["seq"] > since]

    def clear(self):
        with self._lock:
            self._entries.clear()
