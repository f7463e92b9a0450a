// The hubfs mount's .hf-cache/ view read by the official @huggingface/hub
// npm client's cache functions (scanCacheDir, downloadFileToCacheDir's
// cached-file lookup), against the emulator's manifest and against a real
// cache that the same client downloaded into a fresh folder.
//
// Run by tests/integration/test_hfcache_js.py, which starts the stack and
// the mount and sets HUBFS_TEST_ENDPOINT, HUBFS_TEST_MANIFEST and
// HUBFS_TEST_MOUNT.  Prints one line per check and, last, "N passed, M failed".

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join, relative } from "node:path";

import { datasetInfo, downloadFileToCacheDir, listFiles, modelInfo, scanCacheDir, snapshotDownload, spaceInfo } from "@huggingface/hub";

function env(name) {
	const v = process.env[name];
	if (!v) {
		console.log(`FAIL setup: ${name} is not set (run through tests/integration/test_hfcache_js.py)`);
		console.log("0 passed, 1 failed");
		process.exit(1);
	}
	return v;
}

const ENDPOINT = env("HUBFS_TEST_ENDPOINT").replace(/\/+$/, "");
const MANIFEST = JSON.parse(readFileSync(env("HUBFS_TEST_MANIFEST"), "utf8"));
const MOUNT = env("HUBFS_TEST_MOUNT");
const VIEW = join(MOUNT, ".hf-cache");
console.debug = () => {}; // the client's "Downloading ..." lines

const requests = [];
async function recordingFetch(input, init) {
	const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
	requests.push(url);
	return fetch(input, init);
}
const common = { hubUrl: ENDPOINT, fetch: recordingFetch };

let passed = 0;
let failed = 0;
async function check(name, fn) {
	try {
		const detail = await fn();
		passed++;
		console.log(`ok   ${name}${detail ? ` (${detail})` : ""}`);
	} catch (err) {
		failed++;
		const msg = (err && (process.env.HUBFS_TEST_VERBOSE ? err.stack : err.message)) || String(err);
		console.log(`FAIL ${name}: ${msg.replace(/\s*\n\s*/g, " | ")}`);
	}
}

// ---------------------------------------------------------------- manifest

function manifestRepo(type, id) {
	const r = MANIFEST.repos.find((x) => x.type === type && x.id === id);
	if (!r) throw new Error(`manifest: no ${type} ${id}`);
	return r;
}

function folderOf(type, id) {
	return `${type}s--${id.split("/").join("--")}`;
}

// scanCacheDir lists the files directly in a snapshot folder (it skips
// sub-folders), so that is what is compared: {name: size}.
function topFiles(repo, sha) {
	const files = repo.commits[sha]?.files;
	if (!files) throw new Error(`manifest: ${repo.id} has no commit ${sha}`);
	return Object.fromEntries(Object.entries(files).filter(([p]) => !p.includes("/")).map(([p, f]) => [p, f.size]));
}

function scannedFiles(rev) {
	return Object.fromEntries(rev.files.map((f) => [relative(rev.path, f.path), f.blob.size]));
}

// {path: [link target, size]} of every file below a snapshot folder.
function linksBelow(top) {
	const out = {};
	const walk = (d) => {
		for (const e of readdirSync(d, { withFileTypes: true })) {
			const p = join(d, e.name);
			if (e.isDirectory()) walk(p);
			else out[relative(top, p)] = [readlinkSync(p), statSync(p).size];
		}
	};
	walk(top);
	return out;
}

// What the client can fetch from the emulator: not empty files, and only
// paths that survive its unencoded URLs (as in fidelity.mjs).
function fetchable(p, f) {
	return !/[?#%\\]/.test(p) && f.size > 0;
}

// ---------------------------------------------------------------- the client's own cache

// Repos and revisions the client caches itself, then reads through the view.
const TARGETS = [
	{ type: "model", id: "acme/tiny-model", rev: "main" },
	{ type: "model", id: "acme/tiny-model", rev: "v1.0" },
	{ type: "dataset", id: "acme/tiny-dataset", rev: "main" },
	{ type: "space", id: "acme/demo-space", rev: "main" },
];
const infoFn = { model: modelInfo, dataset: datasetInfo, space: spaceInfo };

const realCache = mkdtempSync(join(tmpdir(), "hubfs-hfc-js-"));
const started = Date.now();

for (const t of TARGETS) {
	const repo = manifestRepo(t.type, t.id);
	const sha = repo.refs[t.rev];
	const files = repo.commits[sha].files;
	const all = Object.entries(files).every(([p, f]) => fetchable(p, f));
	await check(`client caches ${t.type} ${t.id}@${t.rev} in a fresh cache`, async () => {
		if (all) {
			const folder = await snapshotDownload({ ...common, repo: { type: t.type, name: t.id }, revision: t.rev, cacheDir: realCache });
			assert.equal(basename(folder), sha);
			return "snapshotDownload";
		}
		// The steps of snapshotDownload, skipping what the client cannot fetch.
		const info = await infoFn[t.type]({ ...common, name: t.id, revision: t.rev, additionalFields: ["sha"] });
		assert.equal(info.sha, sha);
		let n = 0;
		for await (const e of listFiles({ ...common, repo: { type: t.type, name: t.id }, recursive: true, revision: sha })) {
			if (e.type !== "file" || !fetchable(e.path, files[e.path])) continue;
			await downloadFileToCacheDir({ ...common, repo: { type: t.type, name: t.id }, path: e.path, revision: sha, cacheDir: realCache });
			n++;
		}
		// and its ref, written as snapshotDownload writes it.
		const ref = join(realCache, folderOf(t.type, t.id), "refs", t.rev);
		mkdirSync(dirname(ref), { recursive: true });
		writeFileSync(ref, sha);
		return `${n} files by downloadFileToCacheDir`;
	});
	// hubfs learns the same revision through its main tree.
	const top = join(MOUNT, ...(t.type === "model" ? [] : [`${t.type}s`]), ...t.id.split("/"));
	readdirSync(`${top}@${encodeURIComponent(t.rev)}`);
}

// ---------------------------------------------------------------- scans

const view = await scanCacheDir(VIEW);
const real = await scanCacheDir(realCache);

await check("scanCacheDir of the view: no warnings", async () => {
	assert.deepEqual(view.warnings.map(String), []);
	assert.ok(view.repos.length >= 3, `${view.repos.length} repos`);
	return `${view.repos.length} repos, ${view.repos.reduce((n, r) => n + r.revisions.length, 0)} revisions`;
});
await check("scanCacheDir of the client's own cache: no warnings", async () => {
	assert.deepEqual(real.warnings.map(String), []);
	assert.equal(real.repos.length, new Set(TARGETS.map((t) => `${t.type}/${t.id}`)).size);
});

// Every repo and revision the view shows is the Hub's: commit, refs, files, sizes.
for (const r of view.repos) {
	await check(`view ${r.id.type} ${r.id.name}: every revision as the Hub has it`, async () => {
		const repo = manifestRepo(r.id.type, r.id.name);
		assert.equal(basename(r.path), folderOf(r.id.type, r.id.name));
		for (const rev of r.revisions) {
			assert.ok(repo.commits[rev.commitOid], `${rev.commitOid} is not a commit of the repo`);
			for (const ref of rev.refs) assert.equal(repo.refs[ref], rev.commitOid, `refs/${ref}`);
			assert.deepEqual(scannedFiles(rev), topFiles(repo, rev.commitOid), `files of ${rev.commitOid}`);
		}
		// Every top-level ref the view lists points to a revision it has.
		const refs = readdirSync(join(r.path, "refs"), { withFileTypes: true }).filter((d) => d.isFile()).map((d) => d.name);
		assert.deepEqual(r.revisions.flatMap((x) => x.refs).sort(), refs.sort());
		return `${r.revisions.length} revisions`;
	});
}

// Every revision the client cached is in the view, with the same commit,
// refs, file paths and sizes (the view may hold files the client could not fetch).
for (const rr of real.repos) {
	await check(`client's ${rr.id.type} ${rr.id.name} is in the view, same commits, files and sizes`, async () => {
		const vr = view.repos.find((x) => x.id.type === rr.id.type && x.id.name === rr.id.name);
		assert.ok(vr, "repo missing from the view");
		const repo = manifestRepo(rr.id.type, rr.id.name);
		for (const rev of rr.revisions) {
			const vrev = vr.revisions.find((x) => x.commitOid === rev.commitOid);
			assert.ok(vrev, `revision ${rev.commitOid} missing from the view`);
			for (const ref of rev.refs) assert.ok(vrev.refs.includes(ref), `ref ${ref}`);
			const want = scannedFiles(rev);
			const got = scannedFiles(vrev);
			for (const [p, size] of Object.entries(want)) assert.equal(got[p], size, `${p}`);
			const skipped = Object.keys(got).filter((p) => !(p in want));
			for (const p of skipped) assert.ok(!fetchable(p, repo.commits[rev.commitOid].files[p]), `${p} only in the view`);
			// The scan stops at sub-folders; the links below them must match
			// too: same paths, same relative targets, same sizes.
			const mine = linksBelow(rev.path);
			const theirs = linksBelow(vrev.path);
			for (const [p, l] of Object.entries(mine)) assert.deepEqual(theirs[p], l, p);
			for (const p of Object.keys(theirs)) assert.ok(p in mine || !fetchable(p, repo.commits[rev.commitOid].files[p]), `${p} only in the view`);
		}
		return `${rr.revisions.length} revisions`;
	});
}

// ---------------------------------------------------------------- cached-file lookups

// With a pinned commit whose pointer exists, downloadFileToCacheDir returns
// it without any request: point it at a port nobody listens on.
await check("downloadFileToCacheDir finds pinned files in the view with no request", async () => {
	const repo = manifestRepo("model", "acme/tiny-model");
	const sha = repo.refs.main;
	const before = requests.length;
	let n = 0;
	for (const [p, f] of Object.entries(repo.commits[sha].files)) {
		const got = await downloadFileToCacheDir({
			repo: { type: "model", name: repo.id }, path: p, revision: sha, cacheDir: VIEW,
			hubUrl: "http://127.0.0.1:9", fetch: recordingFetch,
		});
		assert.equal(got, join(VIEW, folderOf("model", repo.id), "snapshots", sha, p));
		assert.equal(createHash("sha256").update(readFileSync(got)).digest("hex"), f.sha256, p);
		n++;
	}
	assert.equal(requests.length, before, "the client made requests");
	return `${n} files`;
});

rmSync(realCache, { recursive: true, force: true });
console.log(`# ${requests.length} client requests in ${((Date.now() - started) / 1000).toFixed(1)} s`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
