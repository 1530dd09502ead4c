#!/usr/bin/env node
// Bundles the tsc output (dist/) into the `uvimage` bin: one ES module for the CLI and all its
// dependencies (the xz decoder is WebAssembly inside xz-decompress, so nothing native is left to
// node_modules and the package installs no dependencies: `npm pack` ships dist/bundle alone),
// with openpgp in a chunk of its own that loads only when an InRelease has to be verified. Node
// 20 has no compile cache for ES modules, so every run resolves, reads and compiles each of the
// ~150 modules the CLI imports (zod alone is dozens): about 0.15–0.25 s of a rebuild that takes
// well under a second otherwise. One file is compiled in one pass.
//
// usage: node scripts/bundle.mjs [DIST [OUT]]   (default dist/ and dist/bundle/)
import { build } from 'esbuild';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('..', import.meta.url));
const dist = resolve(process.argv[2] ?? join(repo, 'dist'));
const out = resolve(process.argv[3] ?? join(dist, 'bundle'));

await build({
  entryPoints: { uvimage: join(dist, 'cli', 'main.js') },
  outdir: out,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20.19',
  // CommonJS dependencies (commander, yauzl) call require() for node's built-in modules, which
  // an ES module does not have.
  banner: { js: "import { createRequire as __uvimageCreateRequire } from 'node:module'; const require = __uvimageCreateRequire(import.meta.url);" },
  logLevel: 'warning',
});
