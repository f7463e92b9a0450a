// hfcache.mjs ENDPOINT CACHEDIR TYPE ID [REVISION]
//
// Fills CACHEDIR the way the official @huggingface/hub npm client does
// (snapshotDownload into a huggingface_hub-layout cache), from the Hub at
// ENDPOINT, for the tests of hubfs's reuse of that cache.  Prints the
// snapshot folder.
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const hub = await import(pathToFileURL(join(here, "..", "js", "node_modules", "@huggingface", "hub", "dist", "index.mjs")));
const [endpoint, cacheDir, type, name, revision] = process.argv.slice(2);

const folder = await hub.snapshotDownload({
	repo: { type, name },
	revision: revision ?? "main",
	cacheDir,
	hubUrl: endpoint,
});
console.log(folder);
