"""xet_build.py -- build real Xet objects for fixture files with hf_xet's own upload path.

Run by hubstack.py with the test venv's python (hf_xet is not in the standard
library; the emulator itself stays stdlib-only):

    $VENV/bin/python tests/harness/xet_build.py --cas URL --token T --exp E FILE ...

Each FILE is uploaded through hf_xet (real chunking, compression, hashing,
in Rust) to the emulator's CAS, which keeps the xorbs and learns each file's
reconstruction from the shards (tests/emulator/emu_xet.py).  The files go in
the order given, one at a time, so a later file dedupes against chunks of an
earlier one (revision 2 of a fixture against revision 1).  hf_xet's own cache
is a fresh temporary folder: it must not dedupe against xorbs that another
run uploaded somewhere else.  Each file is its own upload commit: a file
dedupes only against xorbs already uploaded, and within one commit the
last, still open xorb of one file is not yet one of them.  Prints one JSON line per file: sha256, Xet
hash, size, and hf_xet's deduplication figures.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cas", required=True, help="the emulator's CAS URL")
    ap.add_argument("--token", required=True, help="a CAS write token")
    ap.add_argument("--exp", type=int, required=True, help="the token's expiry (unix seconds)")
    ap.add_argument("files", nargs="+")
    args = ap.parse_args(argv)
    cache = tempfile.mkdtemp(prefix="hubfs-xet-build-")
    os.environ["HF_XET_CACHE"] = cache
    import hf_xet
    try:
        config = hf_xet.XetConfig().with_config({"data.max_concurrent_file_ingestion": 1,
                                                 "telemetry.enabled": False})
        session = hf_xet.XetSession(config=config)
        for path in args.files:
            with session.new_upload_commit(endpoint=args.cas, token=args.token,
                                           token_expiry_unix_secs=args.exp) as commit:
                handle = commit.start_upload_file(path, sha256=hf_xet.COMPUTE_SHA256)
            meta = handle.result()
            dedup = meta.dedup_metrics
            print(json.dumps({"path": path, "sha256": meta.xet_info.sha256, "xet_hash": meta.xet_info.hash,
                              "size": meta.xet_info.file_size,
                              "deduped_bytes": getattr(dedup, "deduped_bytes", None),
                              "new_bytes": getattr(dedup, "new_bytes", None)}), flush=True)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
