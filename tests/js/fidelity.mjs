// Fidelity test: the official @huggingface/hub npm client, pointed at the
// hubfs Hub emulator through its `hubUrl` option, must see the same repos,
// files and bytes that the emulator's manifest describes.
//
// Run through tests/js/run.sh (which starts the stack with a small page
// size); the stack sets HUBFS_TEST_ENDPOINT, HUBFS_TEST_MANIFEST,
// HUBFS_TEST_CDN_LOG and HUBFS_TEST_TOKENS.
//
// Prints one line per check and, last, "N passed, M failed".

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { lstatSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";

import {
	HubApiError,
	datasetInfo,
	downloadFile,
	downloadFileToCacheDir,
	fileDownloadInfo,
	listFiles,
	modelInfo,
	snapshotDownload,
	spaceInfo,
} from "@huggingface/hub";

// ---------------------------------------------------------------- setup

function env(name) {
	const v = process.env[name];
	if (!v) {
		console.log(`FAIL setup: ${name} is not set (run through tests/js/run.sh)`);
		console.log("0 passed, 1 failed");
		process.exit(1);
	}
	return v;
}

const ENDPOINT = env("HUBFS_TEST_ENDPOINT").replace(/\/+$/, "");
const MANIFEST = JSON.parse(readFileSync(env("HUBFS_TEST_MANIFEST"), "utf8"));
const CDN_LOG = env("HUBFS_TEST_CDN_LOG");
const TOKENS = JSON.parse(readFileSync(env("HUBFS_TEST_TOKENS"), "utf8"));

// The package logs "Downloading <path> to <blob>.incomplete" via console.debug
// for every cached download; keep our one-line-per-check output readable.
console.debug = () => {};

// Every request the client makes goes through this wrapper (the package's
// own `fetch` option), so checks can look at what was sent and received.
const requests = [];
async function recordingFetch(input, init) {
	const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
	const method = init?.method ?? "GET";
	const headers = new Headers(init?.headers ?? {});
	const resp = await fetch(input, init);
	requests.push({ method, url, auth: headers.has("authorization"), status: resp.status, finalUrl: resp.url, headers: resp.headers });
	return resp;
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
		const msg = (err && (err.stack && process.env.HUBFS_TEST_VERBOSE ? err.stack : err.message)) || String(err);
		console.log(`FAIL ${name}: ${msg.replace(/\s*\n\s*/g, " | ")}`);
	}
}

function skip(name, why) {
	// A check that cannot run because the fixtures lack what it needs is a failure:
	// the fixtures are part of this test's contract.
	failed++;
	console.log(`FAIL ${name}: not run, ${why}`);
}

// ---------------------------------------------------------------- manifest helpers

const REPOS = MANIFEST.repos ?? [];

function commitOf(repo, rev) {
	const sha = repo.refs?.[rev] ?? rev;
	const commit = repo.commits?.[sha];
	if (!commit) throw new Error(`manifest: ${repo.type} ${repo.id} has no revision ${rev}`);
	return { sha, commit };
}

function filesAt(repo, rev = repo.default_branch ?? "main") {
	return commitOf(repo, rev).commit.files;
}

function designation(repo) {
	return { type: repo.type, name: repo.id };
}

function isPlainRepo(repo) {
	return !repo.private && !repo.gated && !repo.disabled;
}

function bytesOf(f) {
	return readFileSync(f.content);
}

function sha256(buf) {
	return createHash("sha256").update(buf).digest("hex");
}

function gitBlobSha1(buf) {
	return createHash("sha1").update(`blob ${buf.length}\0`).update(buf).digest("hex");
}

function normEtag(etag) {
	return String(etag).replace(/^W\//, "").replace(/^"(.*)"$/, "$1");
}

// The JS client puts file paths into URLs unencoded (fileDownloadInfo), so
// only paths the WHATWG URL parser keeps intact can be fetched by it.
function urlSafePath(p) {
	return !/[?#%\\]/.test(p);
}

function impliedDirs(paths) {
	const dirs = new Set();
	for (const p of paths) {
		const parts = p.split("/");
		for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join("/"));
	}
	return dirs;
}

function describe(repo) {
	return `${repo.type} ${repo.id}`;
}

// Pick the public repo of a type with the most files at its default branch,
// preferring one that has both LFS and regular files and a sub-directory.
function pickRepo(type, pred = () => true) {
	const cands = REPOS.filter((r) => r.type === type && isPlainRepo(r) && pred(r));
	const score = (r) => {
		let files;
		try {
			files = filesAt(r);
		} catch {
			return -1;
		}
		const entries = Object.entries(files);
		const lfs = entries.some(([, f]) => f.lfs && !f.xet);
		const reg = entries.some(([, f]) => !f.lfs);
		const sub = entries.some(([p]) => p.includes("/"));
		const safe = entries.every(([p]) => urlSafePath(p));
		return (safe ? 1000 : 0) + (lfs ? 100 : 0) + (reg ? 100 : 0) + (sub ? 50 : 0) + Math.min(entries.length, 40);
	};
	cands.sort((a, b) => score(b) - score(a));
	return cands[0];
}

function pickFile(files, wantLfs, wantXet = false) {
	const entries = Object.entries(files).filter(
		([p, f]) => urlSafePath(p) && f.size > 0 && (wantXet ? f.xet : wantLfs ? f.lfs && !f.xet : !f.lfs && !f.xet),
	);
	// Prefer one in a sub-directory, to exercise nested paths in resolve URLs.
	entries.sort(([a], [b]) => (b.includes("/") ? 1 : 0) - (a.includes("/") ? 1 : 0));
	return entries[0];
}

// tokens.json: find every hf_ token with the user (and orgs) it belongs to,
// whatever the exact nesting; then pick one whose user or org owns the repo.
function tokenEntries() {
	const out = [];
	const visit = (node, name) => {
		if (typeof node === "string") {
			if (node.startsWith("hf_")) out.push({ user: name, token: node, orgs: [] });
			return;
		}
		if (Array.isArray(node)) {
			for (const x of node) visit(x, name);
			return;
		}
		if (node && typeof node === "object") {
			const tok = typeof node.token === "string" ? node.token : undefined;
			const user = node.user ?? node.name ?? node.username ?? name;
			if (tok) {
				const orgs = (node.orgs ?? node.organizations ?? []).map((o) => (typeof o === "string" ? o : o?.name)).filter(Boolean);
				const access = node.access ?? node.repos ?? node.can_read ?? [];
				out.push({ user, token: tok, orgs, access: Array.isArray(access) ? access : Object.keys(access), raw: node });
				return;
			}
			for (const [k, v] of Object.entries(node)) visit(v, k);
		}
	};
	visit(TOKENS, undefined);
	return out.filter((t) => t.user !== "invalid");
}

function tokenFor(repo) {
	const ns = repo.id.split("/")[0];
	const all = tokenEntries();
	return (
		all.find((t) => (t.access ?? []).some((a) => a === repo.id || a === `${repo.type}s/${repo.id}` || a === `${repo.type}/${repo.id}`)) ??
		all.find((t) => t.user === ns || t.orgs.includes(ns))
	);
}

function invalidToken() {
	if (typeof TOKENS.invalid === "string") return TOKENS.invalid;
	return undefined;
}

function tokenNotFor(repo) {
	const good = tokenFor(repo);
	const ns = repo.id.split("/")[0];
	return tokenEntries().find(
		(t) =>
			t.token !== good?.token &&
			t.user !== ns &&
			!t.orgs.includes(ns) &&
			!(t.access ?? []).some((a) => String(a).endsWith(repo.id)) &&
			!(t.raw && (t.raw.admin || t.raw.role === "admin" || t.raw.all)),
	);
}

// ---------------------------------------------------------------- checks

const infoFn = { model: modelInfo, dataset: datasetInfo, space: spaceInfo };

async function checkInfo(repo) {
	const { sha, commit } = commitOf(repo, repo.default_branch ?? "main");
	await check(`${repo.type}Info ${repo.id}: name, private, sha, lastModified`, async () => {
		const info = await infoFn[repo.type]({ ...common, name: repo.id, additionalFields: ["sha"] });
		assert.equal(info.name, repo.id, "name (API id)");
		assert.equal(typeof info.id, "string", "id (API _id) must be a string");
		assert.ok(info.id.length > 0, "id (API _id) must not be empty");
		assert.equal(info.private, !!repo.private, "private");
		assert.equal(info.sha, sha, "sha of the default branch");
		assert.ok(!Number.isNaN(info.updatedAt.getTime()), "lastModified must parse as a date");
		if (commit.date) assert.equal(info.updatedAt.toISOString(), new Date(commit.date).toISOString(), "lastModified = date of the head commit");
		if (repo.type !== "space") {
			assert.equal(info.gated, repo.gated ?? false, "gated");
		}
		return `sha ${sha.slice(0, 12)}`;
	});
}

async function checkSiblings(repo) {
	if (repo.type !== "model") return;
	await check(`modelInfo ${repo.id}: filePaths (siblings) = manifest files`, async () => {
		const info = await modelInfo({ ...common, name: repo.id, additionalFields: ["filePaths"] });
		assert.deepEqual([...info.filePaths].sort(), Object.keys(filesAt(repo)).sort());
		return `${info.filePaths.length} files`;
	});
}

async function checkListFiles(repo, { rev, accessToken, label } = {}) {
	const revision = rev ?? repo.default_branch ?? "main";
	const files = filesAt(repo, revision);
	await check(`listFiles ${repo.id}@${revision} recursive${label ? ` ${label}` : ""}: paths, sizes, oids, lfs oids = manifest`, async () => {
		const before = requests.length;
		const entries = [];
		for await (const e of listFiles({ ...common, repo: designation(repo), recursive: true, revision, accessToken })) entries.push(e);
		const pages = requests.slice(before).filter((r) => r.url.includes("/tree/")).length;
		const fileEntries = entries.filter((e) => e.type === "file");
		const dirEntries = entries.filter((e) => e.type === "directory");
		const paths = entries.map((e) => e.path);
		assert.equal(new Set(paths).size, paths.length, "no entry may appear twice across pages");
		assert.deepEqual(fileEntries.map((e) => e.path).sort(), Object.keys(files).sort(), "file paths");
		assert.deepEqual(dirEntries.map((e) => e.path).sort(), [...impliedDirs(Object.keys(files))].sort(), "directory entries");
		for (const e of fileEntries) {
			const f = files[e.path];
			assert.equal(e.size, f.size, `${e.path}: size`);
			assert.equal(e.oid, f.oid, `${e.path}: oid`);
			if (f.lfs || f.xet) {
				assert.ok(e.lfs, `${e.path}: lfs block expected`);
				assert.equal(e.lfs.oid, f.sha256, `${e.path}: lfs.oid`);
				assert.equal(e.lfs.size, f.size, `${e.path}: lfs.size`);
				const pointer = `version https://git-lfs.github.com/spec/v1\noid sha256:${f.sha256}\nsize ${f.size}\n`;
				assert.equal(e.lfs.pointerSize, Buffer.byteLength(pointer), `${e.path}: lfs.pointerSize`);
			} else {
				assert.equal(e.lfs, undefined, `${e.path}: no lfs block for a regular file`);
			}
			if (f.xet) assert.match(e.xetHash ?? "", /^[0-9a-f]{64}$/, `${e.path}: xetHash`);
		}
		for (const e of dirEntries) {
			assert.equal(typeof e.oid, "string", `${e.path}: directory oid`);
			assert.equal(typeof e.size, "number", `${e.path}: directory size`);
		}
		const expectedPages = Math.max(1, Math.ceil(entries.length / 3));
		if (entries.length > 3) assert.ok(pages >= 2, `listing of ${entries.length} entries took ${pages} page(s): expected pagination at --page-size 3`);
		return `${fileEntries.length} files, ${dirEntries.length} dirs, ${pages} pages (>= ${expectedPages} expected at page size 3)`;
	});
}

async function checkListSubdir(repo) {
	const files = filesAt(repo);
	// The directory with the most direct children (files and sub-directories).
	const children = (d) => new Set(Object.keys(files).filter((p) => p.startsWith(d + "/")).map((p) => p.slice(d.length + 1).split("/")[0])).size;
	const dir = [...impliedDirs(Object.keys(files))].sort((a, b) => children(b) - children(a) || a.localeCompare(b))[0];
	if (!dir) return;
	await check(`listFiles ${repo.id} path=${dir} non-recursive: direct children only`, async () => {
		const entries = [];
		for await (const e of listFiles({ ...common, repo: designation(repo), path: dir })) entries.push(e);
		const want = new Set();
		for (const p of Object.keys(files)) {
			if (!p.startsWith(dir + "/")) continue;
			const rest = p.slice(dir.length + 1).split("/");
			want.add(rest.length === 1 ? `file ${p}` : `directory ${dir}/${rest[0]}`);
		}
		assert.deepEqual(entries.map((e) => `${e.type} ${e.path}`).sort(), [...want].sort());
		return `${entries.length} entries`;
	});
}

// fileDownloadInfo probes resolve with Range: bytes=0-0 and follows redirects.
async function checkDownloadInfo(repo, path, f, { rev, accessToken, label } = {}) {
	const revision = rev ?? repo.default_branch ?? "main";
	const sha = commitOf(repo, revision).sha;
	const kind = f.xet ? "xet" : f.lfs ? "LFS" : "regular";
	await check(`fileDownloadInfo ${repo.id}@${revision} ${kind} ${path}${label ? ` ${label}` : ""}: size, etag, commit`, async () => {
		const before = requests.length;
		const info = await fileDownloadInfo({ ...common, repo: designation(repo), path, revision, accessToken });
		assert.ok(info, "must not be null (null means 404 EntryNotFound)");
		assert.equal(info.size, f.size, "size");
		const etag = normEtag(info.etag);
		if (f.lfs) assert.equal(etag, f.sha256, "etag of an LFS file = sha256 of the content");
		else assert.equal(etag, f.oid, "etag of a regular file = git blob sha1");
		if (!f.xet) assert.equal(info.xet, undefined, "no xet info expected for a plain LFS/regular file");
		const probe = requests.slice(before).find((r) => r.url.includes("/resolve/"));
		assert.ok(probe, "no resolve request seen");
		if (f.lfs) {
			// The probe followed the 302 to the CDN: the final URL is on another origin,
			// and the client hands back the resolve URL for the download.
			assert.notEqual(new URL(probe.finalUrl).origin, new URL(ENDPOINT).origin, "LFS resolve must redirect off the Hub origin (CDN)");
			assert.ok(info.url.startsWith(ENDPOINT + "/"), `download url should be the resolve URL on the Hub, got ${info.url}`);
			// The final response is the CDN's: the commit is on the 302, which fetch hides,
			// so read it with a manual-redirect request to the same resolve URL.
			const r = await fetch(probe.url, {
				method: "HEAD",
				redirect: "manual",
				headers: accessToken ? { Authorization: `Bearer ${accessToken}` } : {},
			});
			assert.equal(r.status, 302, "LFS resolve status");
			assert.equal(r.headers.get("x-repo-commit"), sha, "X-Repo-Commit on the LFS 302");
			assert.equal(normEtag(r.headers.get("x-linked-etag") ?? ""), f.sha256, "X-Linked-Etag on the LFS 302");
			assert.equal(r.headers.get("x-linked-size"), String(f.size), "X-Linked-Size on the LFS 302");
		} else {
			assert.equal(probe.status, 206, "the Range: bytes=0-0 probe must get 206");
			assert.equal(probe.headers.get("x-repo-commit"), sha, "X-Repo-Commit");
			assert.equal(new URL(info.url).origin, new URL(ENDPOINT).origin, "download url must stay on the Hub");
		}
		return `etag ${etag.slice(0, 12)}, commit ${sha.slice(0, 12)}`;
	});
}

async function checkDownload(repo, path, f, { rev, accessToken, label } = {}) {
	const revision = rev ?? repo.default_branch ?? "main";
	const kind = f.xet ? "xet" : f.lfs ? "LFS" : "regular";
	await check(`downloadFile ${repo.id}@${revision} ${kind} ${path}${label ? ` ${label}` : ""}: bytes = manifest content`, async () => {
		const blob = await downloadFile({ ...common, repo: designation(repo), path, revision, accessToken });
		assert.ok(blob, "must not be null");
		assert.equal(blob.size, f.size, "blob size");
		const got = Buffer.from(await blob.arrayBuffer());
		const want = bytesOf(f);
		assert.equal(got.length, want.length, "byte count");
		assert.ok(got.equals(want), "bytes differ from the manifest content");
		assert.equal(sha256(got), f.sha256, "sha256 of the downloaded bytes");
		if (!f.lfs) assert.equal(gitBlobSha1(got), f.oid, "git blob sha1 of the downloaded bytes");
		return `${got.length} bytes`;
	});
}

// The JS client cannot fetch two kinds of file at all, whatever the server:
// - paths with ? # % or \ : it puts paths into resolve URLs unencoded;
// - 0-byte files: fileDownloadInfo always probes with "Range: bytes=0-0",
//   which RFC 7233 (and hub-api.md §12.7) answers with 416 for an empty
//   representation, and the client throws on any non-2xx.
function jsFetchable(p, f) {
	return urlSafePath(p) && f.size > 0;
}

// snapshotDownload when the client can fetch every file of the revision.
// Otherwise the same steps snapshotDownload takes (info -> sha, recursive
// listFiles at the sha, downloadFileToCacheDir per file), skipping the files
// the client cannot fetch, so the rest of the repo is still compared.
async function checkSnapshot(repo, { rev, accessToken, label } = {}) {
	const revision = rev ?? repo.default_branch ?? "main";
	const { sha } = commitOf(repo, revision);
	const files = filesAt(repo, revision);
	const unfetchable = Object.entries(files).filter(([p, f]) => !jsFetchable(p, f)).map(([p]) => p);
	const want = Object.fromEntries(Object.entries(files).filter(([p, f]) => jsFetchable(p, f)));
	const how = unfetchable.length ? `snapshot via downloadFileToCacheDir (skipping ${JSON.stringify(unfetchable)})` : "snapshotDownload";
	await check(`${how} ${describe(repo)}@${revision}${label ? ` ${label}` : ""}: every file byte for byte`, async () => {
		const cacheDir = mkdtempSync(join(tmpdir(), "hubfs-js-cache-"));
		try {
			const repoFolder = join(cacheDir, `${repo.type}s--${repo.id.split("/").join("--")}`);
			let folder;
			if (!unfetchable.length) {
				folder = await snapshotDownload({ ...common, repo: designation(repo), revision, cacheDir, accessToken });
				if (revision !== sha) {
					assert.equal(readFileSync(join(repoFolder, "refs", revision), "utf8"), sha, `refs/${revision}`);
				}
			} else {
				const info = await infoFn[repo.type]({ ...common, name: repo.id, revision, additionalFields: ["sha"], accessToken });
				assert.equal(info.sha, sha, "sha");
				folder = join(repoFolder, "snapshots", info.sha);
				for await (const e of listFiles({ ...common, repo: designation(repo), recursive: true, revision: info.sha, accessToken })) {
					if (e.type !== "file" || !want[e.path]) continue;
					await downloadFileToCacheDir({ ...common, repo: designation(repo), path: e.path, revision: info.sha, cacheDir, accessToken });
				}
			}
			assert.equal(folder, join(repoFolder, "snapshots", sha), "snapshot folder is named after the commit");
			const found = [];
			const walk = (d) => {
				for (const name of readdirSync(d)) {
					const p = join(d, name);
					const st = lstatSync(p);
					if (st.isDirectory()) walk(p);
					else found.push(relative(folder, p).split("\\").join("/"));
				}
			};
			walk(folder);
			assert.deepEqual(found.sort(), Object.keys(want).sort(), "files in the snapshot");
			let bytes = 0;
			for (const [p, f] of Object.entries(want)) {
				const local = join(folder, p);
				const got = readFileSync(local);
				assert.ok(got.equals(bytesOf(f)), `${p}: bytes differ from the manifest content`);
				bytes += got.length;
				// Blob name = etag: sha256 for LFS, git blob sha1 otherwise.
				const blobName = readlinkSync(local).split("/").pop();
				assert.equal(blobName, f.lfs || f.xet ? f.sha256 : f.oid, `${p}: cache blob name`);
			}
			return `${Object.keys(want).length} files, ${bytes} bytes`;
		} finally {
			rmSync(cacheDir, { recursive: true, force: true });
		}
	});
}

// The client's probe of a 0-byte file: the answer must be the one hub-api.md
// §12.7 gives for an unsatisfiable range (416, Content-Range: bytes */0).
async function checkEmptyFileProbe(repo, path) {
	await check(`fileDownloadInfo ${repo.id} 0-byte ${path}: Range: bytes=0-0 probe gets 416 + Content-Range bytes */0 (JS client cannot fetch empty files)`, async () => {
		const before = requests.length;
		const err = await expectHubError(fileDownloadInfo({ ...common, repo: designation(repo), path }), 416);
		const probe = requests.slice(before).find((r) => r.url.includes("/resolve/"));
		assert.ok(probe, "no resolve request seen");
		assert.equal(probe.headers.get("content-range"), "bytes */0", "Content-Range");
		return err.message.split(". URL")[0];
	});
}

async function expectHubError(promise, status) {
	try {
		await promise;
	} catch (err) {
		assert.ok(err instanceof HubApiError, `expected HubApiError, got ${err?.constructor?.name}: ${err?.message}`);
		assert.equal(err.statusCode, status, `statusCode (message: ${err.message})`);
		return err;
	}
	throw new Error(`expected HubApiError ${status}, the call succeeded`);
}

async function checkMissingFile(repo) {
	await check(`fileDownloadInfo ${repo.id} missing file: null (404 EntryNotFound)`, async () => {
		const info = await fileDownloadInfo({ ...common, repo: designation(repo), path: "does/not/exist.bin" });
		assert.equal(info, null);
	});
}

async function checkPrivate(repo) {
	const good = tokenFor(repo);
	const files = filesAt(repo);
	const regular = pickFile(files, false);
	const lfs = pickFile(files, true);
	if (!good) {
		skip(`private ${describe(repo)}`, "no token in tokens.json is recognisably the owner's");
		return;
	}
	const accessToken = good.token;
	const label = `with ${good.user ?? "owner"}'s token`;
	await check(`${repo.type}Info private ${repo.id} ${label}: works`, async () => {
		const info = await infoFn[repo.type]({ ...common, name: repo.id, additionalFields: ["sha"], accessToken });
		assert.equal(info.name, repo.id);
		assert.equal(info.private, true, "private");
		assert.equal(info.sha, commitOf(repo, repo.default_branch ?? "main").sha, "sha");
	});
	await checkListFiles(repo, { accessToken, label });
	if (regular) await checkDownload(repo, regular[0], regular[1], { accessToken, label });
	if (lfs) await checkDownload(repo, lfs[0], lfs[1], { accessToken, label });
	await checkSnapshot(repo, { accessToken, label });
	const any = regular ?? lfs;

	await check(`${repo.type}Info private ${repo.id} anonymous: HubApiError 401`, async () => {
		const err = await expectHubError(infoFn[repo.type]({ ...common, name: repo.id }), 401);
		assert.match(err.message, /Repository not found/, "message");
		return err.message.split(".")[0];
	});
	await check(`listFiles private ${repo.id} anonymous: HubApiError 401`, async () => {
		await expectHubError(
			(async () => {
				for await (const _ of listFiles({ ...common, repo: designation(repo) }));
			})(),
			401,
		);
	});
	if (any) {
		await check(`downloadFile private ${repo.id} ${any[0]} anonymous: HubApiError 401`, async () => {
			await expectHubError(downloadFile({ ...common, repo: designation(repo), path: any[0] }), 401);
		});
	}
	const other = tokenNotFor(repo);
	if (other) {
		await check(`${repo.type}Info private ${repo.id} with ${other.user ?? "another user"}'s token: HubApiError 404`, async () => {
			const err = await expectHubError(infoFn[repo.type]({ ...common, name: repo.id, accessToken: other.token }), 404);
			assert.match(err.message, /Repository not found/, "message");
		});
	}
}

async function checkRevision(repo, rev) {
	const { sha } = commitOf(repo, rev);
	const files = filesAt(repo, rev);
	await check(`${repo.type}Info ${repo.id} revision=${rev}: sha`, async () => {
		const info = await infoFn[repo.type]({ ...common, name: repo.id, revision: rev, additionalFields: ["sha"] });
		assert.equal(info.sha, sha);
		return sha.slice(0, 12);
	});
	await checkListFiles(repo, { rev });
	// A file whose bytes at this revision differ from the default branch's, if any.
	const mainFiles = filesAt(repo);
	const entries = Object.entries(files).filter(([p, f]) => jsFetchable(p, f) && !f.xet);
	entries.sort(([a, fa], [b, fb]) => (mainFiles[b]?.oid !== fb.oid ? 1 : 0) - (mainFiles[a]?.oid !== fa.oid ? 1 : 0));
	const pick = entries[0];
	if (pick) {
		await checkDownloadInfo(repo, pick[0], pick[1], { rev });
		await checkDownload(repo, pick[0], pick[1], { rev });
	}
}

function checkCdnLog() {
	return check("CDN log: no request to the CDN carried Authorization", async () => {
		const lines = readFileSync(CDN_LOG, "utf8").split("\n").filter((l) => l.trim());
		const entries = lines.map((l) => JSON.parse(l));
		assert.ok(entries.length > 0, "the CDN log is empty: no LFS bytes came through the CDN");
		const leaked = entries.filter((e) => e.auth === 1 || e.auth === "1" || e.auth === true);
		assert.equal(leaked.length, 0, `requests with Authorization: ${leaked.map((e) => e.uri).join(", ")}`);
		const refused = entries.filter((e) => Number(e.status) === 403);
		assert.equal(refused.length, 0, `CDN answered 403 to: ${refused.map((e) => e.uri).join(", ")}`);
		return `${entries.length} CDN requests`;
	});
}

// ---------------------------------------------------------------- main

const started = Date.now();
console.log(`# @huggingface/hub against ${ENDPOINT}, ${REPOS.length} repos in the manifest`);

const model = pickRepo("model");
const dataset = pickRepo("dataset");
const space = pickRepo("space");

for (const [type, repo] of [["model", model], ["dataset", dataset], ["space", space]]) {
	if (!repo) {
		skip(`${type} checks`, `no public ${type} repo in the manifest`);
		continue;
	}
	await checkInfo(repo);
	await checkSiblings(repo);
	await checkListFiles(repo);
}

if (model) {
	await checkListSubdir(model);
	const files = filesAt(model);
	const regular = pickFile(files, false);
	const lfs = pickFile(files, true);
	const xet = pickFile(files, true, true);
	// A path with a space and non-ASCII characters, which fetch percent-encodes.
	const odd = Object.entries(files).find(([p, f]) => jsFetchable(p, f) && !f.lfs && /[^\x21-\x7e]/.test(p));
	if (!regular) skip(`regular file checks on ${model.id}`, "no regular file in it");
	if (!lfs) skip(`LFS file checks on ${model.id}`, "no (non-xet) LFS file in it");
	for (const pf of [regular, lfs, xet, odd]) if (pf) await checkDownloadInfo(model, pf[0], pf[1]);
	for (const pf of [regular, lfs, xet, odd]) if (pf) await checkDownload(model, pf[0], pf[1]);
	await checkMissingFile(model);
	const empty = Object.entries(files).find(([p, f]) => urlSafePath(p) && f.size === 0);
	if (empty) await checkEmptyFileProbe(model, empty[0]);
}

// Snapshot every public repo, so all fixture bytes get compared.
for (const repo of REPOS.filter(isPlainRepo)) {
	try {
		filesAt(repo);
	} catch {
		continue;
	}
	await checkSnapshot(repo);
}

// Private repos: the owner's (or an org member's) token works, anonymous gets
// 401, another user's token gets 404.
const privs = REPOS.filter((r) => r.private && !r.gated && !r.disabled);
if (!privs.length) skip("private repo checks", "no private repo in the manifest");
for (const repo of privs) await checkPrivate(repo);

const bad = invalidToken();
if (bad && model) {
	await check(`modelInfo public ${model.id} with an invalid token: HubApiError 401`, async () => {
		const err = await expectHubError(modelInfo({ ...common, name: model.id, accessToken: bad }), 401);
		return err.message.split(". URL")[0];
	});
}

// Gated repos: metadata is public, files need an approved user's token.
for (const repo of REPOS.filter((r) => r.gated && !r.private && !r.disabled)) {
	const files = filesAt(repo);
	const any = pickFile(files, true) ?? pickFile(files, false);
	if (!any) continue;
	const approved = (repo.gated_approved ?? []).map((u) => tokenEntries().find((t) => t.user === u)).find(Boolean);
	const stranger = tokenEntries().find((t) => !(repo.gated_approved ?? []).includes(t.user) && t.user !== repo.id.split("/")[0] && !t.orgs.includes(repo.id.split("/")[0]));
	await check(`modelInfo gated ${repo.id} anonymous: gated = ${JSON.stringify(repo.gated)}`, async () => {
		const info = await infoFn[repo.type]({ ...common, name: repo.id });
		assert.equal(info.gated, repo.gated);
	});
	await check(`downloadFile gated ${repo.id} ${any[0]} anonymous: HubApiError 401`, async () => {
		const err = await expectHubError(downloadFile({ ...common, repo: designation(repo), path: any[0] }), 401);
		return err.message.split(". URL")[0];
	});
	if (stranger && repo.gated === "manual") {
		await check(`downloadFile gated ${repo.id} ${any[0]} with ${stranger.user}'s (not approved) token: HubApiError 403`, async () => {
			const err = await expectHubError(downloadFile({ ...common, repo: designation(repo), path: any[0], accessToken: stranger.token }), 403);
			return err.message.split(". URL")[0];
		});
	}
	if (approved) await checkDownload(repo, any[0], any[1], { accessToken: approved.token, label: `with ${approved.user}'s (approved) token` });
}

// Disabled repos: 403 "Access to this resource is disabled."
for (const repo of REPOS.filter((r) => r.disabled && !r.private)) {
	const any = Object.entries(filesAt(repo)).find(([p, f]) => jsFetchable(p, f))?.[0];
	if (!any) continue;
	await check(`downloadFile disabled ${repo.id} ${any}: HubApiError 403`, async () => {
		const err = await expectHubError(downloadFile({ ...common, repo: designation(repo), path: any }), 403);
		assert.match(err.message, /Access to this resource is disabled/);
	});
}

// Renamed repos: the old id redirects (307, relative) to the new one.
for (const repo of REPOS.filter((r) => isPlainRepo(r) && (r.renamed_from ?? []).length)) {
	for (const old of repo.renamed_from) {
		await check(`${repo.type}Info renamed ${old} -> ${repo.id}: name and sha of the new repo`, async () => {
			const info = await infoFn[repo.type]({ ...common, name: old, additionalFields: ["sha"] });
			assert.equal(info.name, repo.id, "name");
			assert.equal(info.sha, commitOf(repo, repo.default_branch ?? "main").sha, "sha");
		});
		const pf = pickFile(filesAt(repo), true) ?? pickFile(filesAt(repo), false);
		if (pf) {
			await check(`downloadFile renamed ${old} ${pf[0]}: bytes of ${repo.id}`, async () => {
				const blob = await downloadFile({ ...common, repo: { type: repo.type, name: old }, path: pf[0] });
				assert.ok(blob, "must not be null");
				assert.ok(Buffer.from(await blob.arrayBuffer()).equals(bytesOf(pf[1])), "bytes differ from the manifest content");
			});
		}
	}
}

// Revisions other than the default branch: every other branch, tag,
// refs/pr/N and refs/convert/* of the public repos.
const revTargets = [];
for (const repo of REPOS.filter(isPlainRepo)) {
	const def = repo.default_branch ?? "main";
	for (const ref of Object.keys(repo.refs ?? {})) if (ref !== def) revTargets.push([repo, ref]);
}
if (!revTargets.some(([, r]) => /^refs\/pr\/\d+$/.test(r))) skip("refs/pr/N checks", "no refs/pr/N in the manifest");
if (!revTargets.some(([, r]) => !r.startsWith("refs/"))) skip("tag/branch revision checks", "no tag or branch besides main in the manifest");
for (const [repo, rev] of revTargets) await checkRevision(repo, rev);
// Whole snapshots at refs/... revisions (written to refs/refs/... in the cache):
// one that snapshotDownload itself can fetch entirely, and a refs/pr/N.
const allFetchable = ([repo, rev]) => Object.entries(filesAt(repo, rev)).every(([p, f]) => jsFetchable(p, f));
const snapTargets = new Set([
	revTargets.find((t) => t[1].startsWith("refs/") && allFetchable(t)) ?? revTargets.find(allFetchable),
	revTargets.find(([, r]) => r.startsWith("refs/pr/")),
]);
for (const t of snapTargets) if (t) await checkSnapshot(t[0], { rev: t[1] });

await checkCdnLog();

console.log(`# ${requests.length} client requests in ${((Date.now() - started) / 1000).toFixed(1)} s`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
