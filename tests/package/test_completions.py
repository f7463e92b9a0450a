#!/usr/bin/python3
"""test_completions.py HUBFS -- the shell completions in contrib/completions
are what generate.py writes from this hubfs's --help, and they complete
what --help lists when a shell runs them.

- generate.py --check: the three files are current;
- bash (with bash-completion): 'hubfs <TAB>' offers every command of
  `hubfs --help` and --help, --version; 'hubfs pu<TAB>' is 'pull'; 'hubfs CMD
  -<TAB>' offers exactly the options of `hubfs CMD --help`; an option that
  takes DIR completes folders only, one that takes FILE files too;
- fish: the same commands and options, through `complete -C`;
- zsh: the file parses (zsh -n).
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
COMPLETIONS = os.path.join(HERE, "..", "..", "contrib", "completions")
HUBFS = None


def help_commands():
    out = subprocess.run([HUBFS, "--help"], capture_output=True, text=True,
                         check=True).stdout
    return re.findall(r"^  (\w+) ", out.split("Commands:", 1)[1], re.M)


def help_options(command):
    out = subprocess.run([HUBFS, command, "--help"], capture_output=True,
                         text=True, check=True).stdout
    opts = set()
    for line in out.splitlines():
        m = re.match(r"^  (-\w)?(?:, )?(--[a-z][a-z0-9-]*)?(?:\s|$)", line)
        if m:
            opts.update(o for o in m.groups() if o)
    return opts


BASH = r"""
source /usr/share/bash-completion/bash_completion
source "$1"; shift
COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
_hubfs hubfs "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
"""


def bash_complete(*words):
    r = subprocess.run(["bash", "-c", BASH, "bash",
                        os.path.join(COMPLETIONS, "hubfs.bash"), "hubfs"] +
                       list(words), capture_output=True, text=True,
                       check=True)
    return sorted(w for w in r.stdout.split("\n") if w)


def fish_complete(line):
    r = subprocess.run(["fish", "--no-config", "-c",
                        "source %s; complete -C %s" % (
                            os.path.join(COMPLETIONS, "hubfs.fish"),
                            "'" + line.replace("'", "\\'") + "'")],
                       capture_output=True, text=True, check=True)
    return sorted(w.split("\t")[0] for w in r.stdout.split("\n") if w)


class Completions(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.commands = help_commands()
        cls.options = {c: help_options(c) for c in cls.commands}
        assert len(cls.commands) > 5 and any(cls.options.values())

    def test_files_are_current(self):
        r = subprocess.run([sys.executable,
                            os.path.join(COMPLETIONS, "generate.py"), HUBFS,
                            "--check"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_bash_commands(self):
        self.assertEqual(bash_complete(""),
                         sorted(self.commands + ["--help", "--version"]))
        self.assertEqual(bash_complete("pu"), ["pull"])

    def test_bash_options_of_every_command(self):
        for c in self.commands:
            self.assertEqual(bash_complete(c, "-"), sorted(self.options[c]), c)

    def test_bash_values(self):
        tmp = tempfile.mkdtemp()
        try:
            os.mkdir(os.path.join(tmp, "abc"))
            open(os.path.join(tmp, "abd"), "w").close()
            stem = os.path.join(tmp, "ab")
            self.assertEqual(bash_complete("mount", "--cache-dir", stem),
                             [stem + "c"])
            self.assertEqual(bash_complete("mount", "--token-file", stem),
                             [stem + "c", stem + "d"])
            self.assertEqual(bash_complete("mount", stem), [stem + "c"])
            self.assertEqual(bash_complete("mount", "--endpoint", stem), [])
        finally:
            shutil.rmtree(tmp)

    def test_fish(self):
        self.assertEqual(fish_complete("hubfs "), sorted(self.commands))
        self.assertEqual(fish_complete("hubfs pu"), ["pull"])
        for c in self.commands:
            self.assertEqual(set(fish_complete("hubfs %s -" % c)) |
                             set(fish_complete("hubfs %s --" % c)),
                             self.options[c], c)

    def test_zsh_parses(self):
        r = subprocess.run(["zsh", "-n", os.path.join(COMPLETIONS, "_hubfs")],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)


if __name__ == "__main__":
    HUBFS = sys.argv.pop(1)
    unittest.main()
