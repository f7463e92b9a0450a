#!/usr/bin/python3
"""check_commands.py HUBFS MANPAGE -- `hubfs --help` and hubfs(1) name the
same commands.

The commands of `hubfs --help` are the lines under "Commands:"; those of
the manual are the `.Cm` words of its SYNOPSIS lines that start with `.Nm`,
and the `.It Cm` items of the command list in DESCRIPTION.  All three sets
must be equal, and each command's `--help` must succeed.
"""
import re
import subprocess
import sys


def help_commands(hubfs):
    out = subprocess.run([hubfs, "--help"], capture_output=True, text=True,
                         check=True).stdout
    names, inside = set(), False
    for line in out.splitlines():
        if line.strip() == "Commands:":
            inside = True
        elif inside and re.match(r"^  \S", line):
            names.add(line.split()[0])
        elif inside:
            inside = False
    return names


def man_sections(path):
    sections, name = {}, None
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith(".Sh "):
                name = line[4:].strip()
                sections[name] = []
            elif name:
                sections[name].append(line)
    return sections


def synopsis_commands(lines):
    names = set()
    for prev, line in zip(lines, lines[1:]):
        m = re.match(r"^\.Cm (\S+)", line)
        if prev.strip() == ".Nm" and m:
            names.add(m.group(1))
    return names


def description_commands(lines):
    """.It Cm items of the first list, before any subsection."""
    names, depth = set(), 0
    for line in lines:
        if line.startswith(".Ss "):
            break
        if line.startswith(".Bl"):
            depth += 1
        elif line.startswith(".El"):
            depth -= 1
            if depth == 0:
                break
        elif depth == 1:
            m = re.match(r"^\.It Cm (\S+)", line)
            if m:
                names.add(m.group(1))
    return names


def main():
    hubfs, man = sys.argv[1], sys.argv[2]
    sections = man_sections(man)
    got = {
        "hubfs --help": help_commands(hubfs),
        "SYNOPSIS": synopsis_commands(sections.get("SYNOPSIS", [])),
        "DESCRIPTION": description_commands(sections.get("DESCRIPTION", [])),
    }
    ok = True
    for where, names in got.items():
        print("%-13s %s" % (where + ":", " ".join(sorted(names))))
        if not names or names != got["hubfs --help"]:
            ok = False
    for name in sorted(got["hubfs --help"]):
        r = subprocess.run([hubfs, name, "--help"], capture_output=True,
                           text=True)
        if r.returncode != 0 or not r.stdout.startswith("usage: hubfs " +
                                                        name):
            print("'hubfs %s --help' failed (%d)" % (name, r.returncode))
            ok = False
    if not ok:
        print("the manual and 'hubfs --help' disagree on the commands")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
