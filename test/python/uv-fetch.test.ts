/**
 * uv when the machine has none: with no $UV and no `uv` on PATH, uvimage fetches the uv wheel
 * pinned in src/python/uv-downloads.ts from PyPI (verified by its sha256, kept in the store),
 * extracts its `uv` once per wheel digest, says so in one progress line, and builds with it.
 * $UV and PATH still win. The real wheel from PyPI, kept in the test cache so reruns download
 * nothing; a real build of the example with a PATH that has no uv.
 */
import assert from 'node:assert/strict';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Digest } from '../../src/oci/digest.js';
import { BlobStore } from '../../src/oci/store.js';
import { chooseUvWheels, hostUvPlatform, locateUv, newestUvVersion } from '../../src/python/uv.js';
import { uvVersion, uvWheelRows } from '../../src/python/uv-downloads.js';
import { sharedTestStore } from '../harness/cache.js';
import { check } from '../harness/docker.js';
import { pathWithout, sourcesDigest } from '../harness/installed-build.js';
import { uvimage } from '../harness/cli.js';
import { copyExample, sharedCliCache, standaloneEnv } from '../harness/project-build.js';
import { standaloneMirror } from '../harness/standalone-python.js';

let work: string;
let pathWithoutUv: string;
const row = uvWheelRows.find(([platform]) => platform === hostUvPlatform())!;
const wheelDigest: Digest = `sha256:${row[2]}`;

/** A store of its own with the pinned wheel already in it (from the shared test cache: no download on reruns). */
async function storeWithWheel(name: string): Promise<BlobStore> {
  const shared = await sharedTestStore();
  if (!(await shared.hasIntact(wheelDigest))) await locateUv({ env: { PATH: pathWithoutUv }, store: shared });
  const store = await BlobStore.open(join(work, name));
  await store.writeStream(createReadStream(shared.blobPath(wheelDigest)), wheelDigest, 'the uv wheel');
  return store;
}

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'uvimage-uv-fetch-'));
  pathWithoutUv = await pathWithout(['uv', 'uvx'], join(work, 'path'));
  assert.ok(row, `the table pins a uv for this machine (${hostUvPlatform()})`);
});

after(async () => {
  await rm(work, { recursive: true, force: true });
});

test('the pinned table has a verified-looking wheel of one uv version for every platform', () => {
  assert.deepEqual(uvWheelRows.map(([platform]) => platform).sort(), ['linux-aarch64-gnu', 'linux-aarch64-musl', 'linux-x86_64-gnu', 'linux-x86_64-musl', 'macos-aarch64', 'macos-x86_64']);
  for (const [platform, filename, sha256, size, url] of uvWheelRows) {
    assert.match(filename, new RegExp(`^uv-${uvVersion.replace(/\./g, '\\.')}-py3-none-.+\\.whl$`), platform);
    assert.match(sha256, /^[0-9a-f]{64}$/);
    assert.ok(size > 1_000_000, `${filename} is a real wheel's size`);
    assert.equal(url, `${url.slice(0, url.lastIndexOf('/'))}/${filename}`);
    assert.ok(url.startsWith('https://files.pythonhosted.org/packages/'), url);
  }
});

test('chooseUvWheels takes the oldest manylinux/musllinux/macOS tag per platform; newestUvVersion skips pre-releases', () => {
  const file = (filename: string) => ({ filename, url: `https://files.example/${filename}`, hashes: { sha256: 'a'.repeat(64) }, size: 10 });
  const files = [
    file('uv-1.2.0-py3-none-manylinux_2_28_x86_64.whl'),
    file('uv-1.2.0-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl'),
    file('uv-1.2.0-py3-none-musllinux_1_1_x86_64.whl'),
    file('uv-1.2.0-py3-none-manylinux_2_28_aarch64.whl'),
    file('uv-1.2.0-py3-none-manylinux_2_17_aarch64.manylinux2014_aarch64.musllinux_1_1_aarch64.whl'),
    file('uv-1.2.0-py3-none-macosx_10_12_x86_64.whl'),
    file('uv-1.2.0-py3-none-macosx_11_0_arm64.whl'),
    file('uv-1.1.0-py3-none-manylinux_2_5_x86_64.whl'),
    { ...file('uv-1.2.0-py3-none-manylinux_2_5_x86_64.whl'), yanked: 'broken' },
  ];
  assert.deepEqual(Object.fromEntries(chooseUvWheels(files, '1.2.0').map(([platform, wheel]) => [platform, wheel.filename])), {
    'linux-x86_64-gnu': 'uv-1.2.0-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl',
    'linux-x86_64-musl': 'uv-1.2.0-py3-none-musllinux_1_1_x86_64.whl',
    'linux-aarch64-gnu': 'uv-1.2.0-py3-none-manylinux_2_17_aarch64.manylinux2014_aarch64.musllinux_1_1_aarch64.whl',
    'linux-aarch64-musl': 'uv-1.2.0-py3-none-manylinux_2_17_aarch64.manylinux2014_aarch64.musllinux_1_1_aarch64.whl',
    'macos-x86_64': 'uv-1.2.0-py3-none-macosx_10_12_x86_64.whl',
    'macos-aarch64': 'uv-1.2.0-py3-none-macosx_11_0_arm64.whl',
  });
  assert.throws(() => chooseUvWheels(files.slice(0, 3), '1.2.0'), /no wheel for linux-aarch64-gnu/);
  assert.equal(newestUvVersion(['0.9.9', '0.10.0', '0.13.9', '0.14.0rc1', '0.14.0.dev2', '0.13.10']), '0.13.10');
});

test('without uv on PATH the pinned wheel is verified, kept, extracted once and used; $UV and PATH win', async () => {
  const store = await storeWithWheel('fresh-store');
  const lines: string[] = [];
  const progress = { info: (line: string) => lines.push(line) };
  const env = { PATH: pathWithoutUv };
  const [first, concurrent] = await Promise.all([locateUv({ env, store, progress }), locateUv({ env, store })]);
  assert.equal(first, join(store.root, 'tools', `uv-${row[2]}`, 'uv'));
  assert.equal(concurrent, first, 'two at once end with the one directory');
  assert.equal((await check(first, ['--version'])).trim().split(' ').slice(0, 2).join(' '), `uv ${uvVersion}`);
  assert.ok((await stat(first)).mode & 0o100, 'executable');
  assert.equal(lines.length, 1, lines.join('\n'));
  assert.match(lines[0]!, new RegExp(`^no uv on PATH \\(nor \\$UV\\): using uv ${uvVersion.replace(/\./g, '\\.')} from the cache, kept at ${first}$`));
  assert.equal(await locateUv({ env, store, progress }), first);
  assert.equal(lines.length, 1, 'an extracted uv is used without a word');

  assert.equal(await locateUv({ env: { PATH: pathWithoutUv, UV: '/opt/their/uv' }, store }), '/opt/their/uv');
  assert.equal(await locateUv({ env: { PATH: process.env.PATH }, store }), 'uv');
  assert.equal(await locateUv({ env }), 'uv', 'without a store nothing is fetched');
});

test('uvimage build with no uv anywhere fetches the pinned one, says so once, and builds the same image', async () => {
  // The shared store keeps the wheel (no download on reruns); its extracted uv is removed so this build extracts it.
  const shared = await sharedTestStore();
  await rm(join(shared.root, 'tools', `uv-${row[2]}`), { recursive: true, force: true });
  const project = await copyExample(join(work, 'project'));
  const oci = join(work, 'oci');
  // Without --json, so the progress lines are there to read.
  const result = await uvimage(['build', project, '--oci', oci, '-t', 'fastapi-hello:installed', '--cache-dir', sharedCliCache()], {
    ...standaloneEnv(await standaloneMirror()),
    PATH: pathWithoutUv,
    UV: '',
  });
  assert.equal(result.code, 0, result.stderr);
  const uvLines = result.stderr.split('\n').filter((line) => /uv \d|\$UV|PyPI/.test(line));
  assert.equal(uvLines.length, 1, result.stderr);
  assert.match(uvLines[0]!, new RegExp(`^no uv on PATH \\(nor \\$UV\\): using uv ${uvVersion.replace(/\./g, '\\.')} from the cache, kept at ${join(shared.root, 'tools')}/uv-${row[2]}/uv$`));
  const inspected = JSON.parse(await check('skopeo', ['inspect', `oci:${oci}:installed`])) as { Digest: string };
  assert.equal(inspected.Digest, await sourcesDigest(work), 'the same image as a build with uv on PATH');
  assert.ok((await stat(join(shared.root, 'tools', `uv-${row[2]}`, 'uv'))).isFile());
});
