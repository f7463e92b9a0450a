"""huggingface_hub's cache functions, run in the pinned venv for
integration/test_hfcache_python.py; prints one JSON document.

    python hfcache_client.py scan CACHE
        scan_cache_dir(CACHE) as plain data: repos, revisions, refs, files
        (path in the snapshot, size, blob name) and warnings.
    python hfcache_client.py download CACHE JOBS
        snapshot_download each job of the JSON list JOBS ([{"repo", "type",
        "revision"}]) into CACHE, from HF_ENDPOINT.
    python hfcache_client.py find CACHE JOBS
        for each job ({"repo", "type", "revision", "files": [paths]}):
        hf_hub_download(local_files_only=True), try_to_load_from_cache and
        snapshot_download as they answer from CACHE: the paths they give,
        or the error's class.  Offline or not is the caller's environment
        (HF_HUB_OFFLINE).
    python hfcache_client.py find-online CACHE JOBS
        hf_hub_download and snapshot_download of each job as a program
        online would call them (the caller watches what they ask the Hub).
"""
import json
import os
import sys

import huggingface_hub as hh


def scan(cache):
    info = hh.scan_cache_dir(cache)
    repos = []
    for repo in info.repos:
        revisions = []
        for rev in repo.revisions:
            files = {}
            for f in rev.files:
                rel = os.path.relpath(f.file_path, rev.snapshot_path)
                files[rel] = {"size": f.size_on_disk,
                              "blob": os.path.basename(f.blob_path)}
            revisions.append({"commit": rev.commit_hash,
                              "refs": sorted(rev.refs),
                              "size_on_disk": rev.size_on_disk,
                              "nb_files": rev.nb_files, "files": files})
        revisions.sort(key=lambda r: r["commit"])
        repos.append({"id": repo.repo_id, "type": repo.repo_type,
                      "folder": os.path.basename(repo.repo_path),
                      "size_on_disk": repo.size_on_disk,
                      "nb_files": repo.nb_files, "revisions": revisions})
    repos.sort(key=lambda r: (r["type"], r["id"]))
    return {"repos": repos, "warnings": [str(w) for w in info.warnings],
            "size_on_disk": info.size_on_disk}


def download(cache, jobs):
    out = []
    for job in jobs:
        out.append(hh.snapshot_download(job["repo"], repo_type=job["type"],
                                        revision=job["revision"],
                                        cache_dir=cache))
    return out


def attempt(fn, *args, **kwargs):
    try:
        return {"path": fn(*args, **kwargs)}
    except Exception as e:  # the class is what the test compares
        return {"error": type(e).__name__, "message": str(e)[:300]}


def find(cache, jobs):
    out = []
    for job in jobs:
        rid, rtype, rev = job["repo"], job["type"], job["revision"]
        res = {"local_files_only": {}, "try_to_load_from_cache": {}}
        for path in job["files"]:
            res["local_files_only"][path] = attempt(
                hh.hf_hub_download, rid, path, repo_type=rtype,
                revision=rev, cache_dir=cache, local_files_only=True)
            res["try_to_load_from_cache"][path] = attempt(
                lambda *a, **k: str(hh.try_to_load_from_cache(*a, **k)),
                rid, path, repo_type=rtype, revision=rev, cache_dir=cache)
        res["snapshot_download"] = attempt(
            hh.snapshot_download, rid, repo_type=rtype, revision=rev,
            cache_dir=cache)
        out.append(res)
    return out


def find_online(cache, jobs):
    out = []
    for job in jobs:
        rid, rtype, rev = job["repo"], job["type"], job["revision"]
        res = {"hf_hub_download": {}}
        for path in job["files"]:
            res["hf_hub_download"][path] = attempt(
                hh.hf_hub_download, rid, path, repo_type=rtype,
                revision=rev, cache_dir=cache)
        res["snapshot_download"] = attempt(
            hh.snapshot_download, rid, repo_type=rtype, revision=rev,
            cache_dir=cache)
        out.append(res)
    return out


def main():
    cmd, cache = sys.argv[1], sys.argv[2]
    if cmd == "scan":
        doc = scan(cache)
    elif cmd == "download":
        doc = download(cache, json.loads(sys.argv[3]))
    elif cmd == "find":
        doc = find(cache, json.loads(sys.argv[3]))
    elif cmd == "find-online":
        doc = find_online(cache, json.loads(sys.argv[3]))
    else:
        sys.exit("unknown command " + cmd)
    json.dump(doc, sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
