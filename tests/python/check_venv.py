"""The tests' virtual environment holds exactly the pinned versions.

Run with the venv's own python: every package named in requirements.txt
must be installed at the pinned version, and the ones the tests import must
import (hf_xet's and onnxruntime's native parts load).
"""
import importlib
import importlib.metadata
import re
import sys


def pins(path):
    out = {}
    for line in open(path, encoding="utf-8"):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        if not m:
            raise SystemExit("%s: not a pin: %r" % (path, line))
        out[m.group(1)] = m.group(2)
    return out


def main():
    bad = []
    for name, want in sorted(pins(sys.argv[1]).items()):
        try:
            have = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            bad.append("%s: not installed (want %s)" % (name, want))
            continue
        if have != want:
            bad.append("%s: %s installed, %s pinned" % (name, have, want))
    for mod in ("huggingface_hub", "hf_xet", "safetensors.numpy", "tokenizers",
                "gguf", "onnx", "onnxruntime", "numpy"):
        try:
            importlib.import_module(mod)
        except Exception as e:  # noqa: BLE001 - report any import failure
            bad.append("import %s: %s" % (mod, e))
    for line in bad:
        print(line)
    print("venv: %s" % ("pins and imports hold" if not bad else "%d problems" % len(bad)))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
