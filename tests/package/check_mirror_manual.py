#!/usr/bin/python3
"""check_mirror_manual.py -- every option `hubfs-mirror --help` lists is
documented as a Fl in man/hubfs-mirror.1, and every Fl there is one
`--help` lists."""
import os
import re
import subprocess
import sys

TOP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def main():
    out = subprocess.run([sys.executable, os.path.join(
        TOP, "contrib", "mirror", "hubfs-mirror"), "--help"],
        capture_output=True, text=True, check=True).stdout
    helped = set()
    for line in out.split("options:", 1)[1].splitlines():
        m = re.match(r"^  (-\w)?(?:, )?(--[a-z][a-z0-9-]*)?(?:\s|$)", line)
        if m:
            helped.update(o for o in m.groups() if o)
    with open(os.path.join(TOP, "man", "hubfs-mirror.1")) as f:
        man = f.read()
    documented = {"-" + m.replace("\\-", "-") for m in
                  re.findall(r"\bFl (\\-[a-z][a-z0-9-]*|[a-z])\b", man)}
    ok = bool(helped)
    for o in sorted(helped - documented):
        print("hubfs-mirror %s: not in man/hubfs-mirror.1" % o)
        ok = False
    for o in sorted(documented - helped):
        print("man/hubfs-mirror.1 %s: not in hubfs-mirror --help" % o)
        ok = False
    print("%d options, each in --help and in the manual" % len(helped)
          if ok else "the manual and 'hubfs-mirror --help' disagree")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
