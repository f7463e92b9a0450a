#!/usr/bin/python3
"""check_units.py -- the systemd units README.md and contrib/mirror/README.md
show are the files the packages ship (contrib/systemd/), as is the mirror's
/etc/default file.

Each README names a shipped file in the text just before a fenced block;
that block must be the file, byte for byte.
"""
import os
import re
import sys

TOP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
SHOWN = [
    ("README.md", "/usr/lib/systemd/user/hubfs.service",
     "contrib/systemd/hubfs.service"),
    ("contrib/mirror/README.md", "/usr/lib/systemd/system/hubfs-mirror.service",
     "contrib/systemd/hubfs-mirror.service"),
    ("contrib/mirror/README.md", "`/etc/default/hubfs-mirror`, which",
     "contrib/deb/hubfs-mirror/default"),
]


def block_after(text, name):
    """The first fenced block after the first mention of name."""
    at = text.find(name)
    if at < 0:
        return None
    m = re.compile(r"^```[a-z]*\n(.*?)^```$", re.M | re.S).search(text, at)
    return m.group(1) if m else None


def main():
    ok = True
    for readme, name, shipped in SHOWN:
        with open(os.path.join(TOP, readme), encoding="utf-8") as f:
            shown = block_after(f.read(), name)
        with open(os.path.join(TOP, shipped), encoding="utf-8") as f:
            want = f.read()
        if shown != want:
            print("%s: the block after %s is not %s" % (readme, name, shipped))
            ok = False
        else:
            print("%s shows %s as shipped" % (readme, shipped))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
