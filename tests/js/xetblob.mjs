// A second, independent Xet reader against the emulator's CAS: the official
// @huggingface/hub npm client's XetBlob (its own v2 reconstruction parsing,
// LZ4 and byte-grouping decompression, written in JavaScript) reads whole
// files and slices of them, compared with the fixture bytes.
//
// Run by tests/python/test_xet.py:
//   node tests/js/xetblob.mjs ENDPOINT JOBS.json
// JOBS.json: [{"repo", "type", "commit", "hash", "size", "content", "slices": [[a, b], ...]}]
// (content: the file holding the expected bytes).  Prints one JSON line per
// read: {"repo", "slice", "ok", "error"?}.

import { createHash } from "node:crypto";
import { readFileSync, openSync, readSync, closeSync } from "node:fs";

import { __internal_XetBlob as XetBlob } from "@huggingface/hub";

const [endpoint, jobsPath] = process.argv.slice(2);
const jobs = JSON.parse(readFileSync(jobsPath, "utf8"));

function expected(path, a, b) {
	const fd = openSync(path, "r");
	try {
		const buf = Buffer.alloc(b - a);
		readSync(fd, buf, 0, b - a, a);
		return buf;
	} finally {
		closeSync(fd);
	}
}

const sha256 = (buf) => createHash("sha256").update(buf).digest("hex");

let failed = 0;
for (const job of jobs) {
	const plural = `${job.type}s`;
	const blob = new XetBlob({
		refreshUrl: `${endpoint}/api/${plural}/${job.repo}/xet-read-token/${job.commit}`,
		hash: job.hash,
		size: job.size,
	});
	for (const [a, b] of [[0, job.size], ...job.slices]) {
		const line = { repo: job.repo, slice: [a, b] };
		try {
			const got = Buffer.from(await blob.slice(a, b).arrayBuffer());
			const want = expected(job.content, a, b);
			line.ok = got.length === want.length && sha256(got) === sha256(want);
			if (!line.ok) line.error = `got ${got.length} bytes, sha256 ${sha256(got)}; want ${want.length}, ${sha256(want)}`;
		} catch (e) {
			line.ok = false;
			line.error = String(e?.stack ?? e);
		}
		if (!line.ok) failed++;
		console.log(JSON.stringify(line));
	}
}
process.exit(failed ? 1 : 0);
