#!/usr/bin/python3
"""check_commands.py HUBFS MANPAGE -- `hubfs --help` and hubfs(1) name the
same commands, and the same options of each.

The commands of `hubfs --help` are the lines under "Commands:"; those of
the manual are the `.Cm` words of its SYNOPSIS lines that start with `.Nm`,
and the `.It Cm` items of the command list in DESCRIPTION.  All three sets
must be equal, and each command's `--help` must succeed.

The options of a command are those its `--help` lists (`  -q, --quiet`,
`  --json`).  Each must be documented as a `Fl` in the manual, either in
that command's item of the command list or in the common options that
follow the list; and each `Fl` in the command's SYNOPSIS lines must be one
its `--help` lists.
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


FL = re.compile(r"\bFl (\\-[a-z][a-z0-9\\-]*|[a-zA-Z0-9])(?![\w\\])")


def man_flags(lines):
    """The options named by `Fl` macros in lines, as `-x` or `--name`."""
    flags = set()
    for line in lines:
        if line.startswith("."):
            for m in FL.finditer(line):
                flags.add("-" + m.group(1).replace("\\-", "-"))
    return flags


def help_options(hubfs, name):
    out = subprocess.run([hubfs, name, "--help"], capture_output=True,
                         text=True).stdout
    opts = set()
    for line in out.splitlines():
        m = re.match(r"^  (-\w)?(?:, )?(--[a-z][a-z0-9-]*)?(?:\s|$)", line)
        if m:
            opts.update(o for o in m.groups() if o)
    return opts


def command_items(lines):
    """Each command's lines in the DESCRIPTION command list (nested lists
    included), and the lines after that list: the common options."""
    items, name, depth, common = {}, None, 0, None
    for i, line in enumerate(lines):
        if line.startswith(".Ss "):
            break
        if line.startswith(".Bl"):
            depth += 1
        elif line.startswith(".El"):
            depth -= 1
            if depth == 0:
                common = []
                for rest in lines[i + 1:]:
                    if rest.startswith(".Ss "):
                        break
                    common.append(rest)
                break
        elif depth == 1 and line.startswith(".It"):
            m = re.match(r"^\.It Cm (\S+)", line)
            name = m.group(1) if m else None
            if name:
                items[name] = []
        if name and depth >= 1:
            items[name].append(line)
    return items, common or []


def synopsis_flags(lines):
    """The `Fl` options of each command's SYNOPSIS lines."""
    flags, name = {}, None
    for prev, line in zip(lines, lines[1:]):
        m = re.match(r"^\.Cm (\S+)", line)
        if prev.strip() == ".Nm":
            name = m.group(1) if m else None
            if name:
                flags.setdefault(name, set())
        elif name:
            flags[name] |= man_flags([line])
    return flags


def check_options(hubfs, names, sections):
    ok = True
    items, common = command_items(sections.get("DESCRIPTION", []))
    common_flags = man_flags(common)
    synopsis = synopsis_flags(sections.get("SYNOPSIS", []))
    if not common_flags:
        print("no common options found after the command list")
        ok = False
    seen = 0
    for name in sorted(names):
        opts = help_options(hubfs, name)
        seen += len(opts)
        documented = man_flags(items.get(name, [])) | common_flags
        for opt in sorted(opts - documented):
            print("hubfs %s %s: not in the manual" % (name, opt))
            ok = False
        for opt in sorted(synopsis.get(name, set()) - opts):
            print("hubfs %s %s: in the SYNOPSIS, not in its --help" %
                  (name, opt))
            ok = False
    if not seen:
        print("no 'hubfs COMMAND --help' lists any option")
        ok = False
    return ok


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
        return 1
    if not check_options(hubfs, got["hubfs --help"], sections):
        print("the manual and 'hubfs COMMAND --help' disagree on the options")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
