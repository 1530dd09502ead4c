import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { writeLayer } from '../../src/oci/layer-writer.js';
import { BlobStore } from '../../src/oci/store.js';
import {
  chooseStandaloneDownload,
  fetchStandalone,
  loadStandaloneDownloads,
  openStandaloneRuntime,
  standaloneUrl,
  type StandaloneDownload,
} from '../../src/runtime/standalone.js';
import { matchesSpecifiers } from '../../src/python/pep440.js';
import { serveDirectory, standaloneMirror, type StandaloneMirror, type StaticServer } from '../harness/standalone-python.js';

let mirror: StandaloneMirror;
let server: StaticServer;
let env: NodeJS.ProcessEnv;

before(async () => {
  mirror = await standaloneMirror('3.12.1');
  server = await serveDirectory(mirror.dir);
  env = { UVIMAGE_PYTHON_MIRROR: server.url, UVIMAGE_PYTHON_DOWNLOADS_JSON: mirror.metadataPath };
});
after(async () => server?.stop());

async function tempStore(): Promise<BlobStore> {
  return BlobStore.open(await mkdtemp(join(tmpdir(), 'uvimage-standalone-')));
}

test('the pinned table picks the newest patch of a minor, an exact version, or what requires-python allows', async () => {
  const { downloads, source } = await loadStandaloneDownloads({});
  assert.match(source, /pinned/);
  const newest312 = chooseStandaloneDownload(downloads, 'x86_64', { version: '3.12' });
  assert.match(newest312.asset, /^cpython-3\.12\.\d+\+\d{8}-x86_64-unknown-linux-gnu-install_only(_stripped)?\.tar\.gz$/);
  for (const other of downloads.filter((download) => download.version.startsWith('3.12.') && download.arch === 'x86_64')) {
    assert.ok(Number(other.version.split('.')[2]) <= Number(newest312.version.split('.')[2]));
  }
  const arm = chooseStandaloneDownload(downloads, 'aarch64', { version: newest312.version });
  assert.equal(arm.version, newest312.version);
  assert.match(arm.asset, /aarch64-unknown-linux-gnu/);
  const allowed = chooseStandaloneDownload(downloads, 'x86_64', { allows: (version) => matchesSpecifiers(version, '>=3.11,<3.13') });
  assert.equal(allowed.version, newest312.version, 'requires-python picks the newest allowed');
  assert.throws(() => chooseStandaloneDownload(downloads, 'x86_64', { version: '3.99' }), /no python-build-standalone release of Python 3\.99 for x86_64.*known: 3\.9, 3\.10/);
});

test('a mirror replaces the release URL prefix (uvimage\'s variable, else uv\'s)', () => {
  const download: StandaloneDownload = { version: '3.12.8', arch: 'x86_64', release: '20241219', asset: 'cpython-3.12.8+20241219-x86_64-unknown-linux-gnu-install_only_stripped.tar.gz', sha256: 'ab' };
  assert.equal(standaloneUrl(download, {}), 'https://github.com/astral-sh/python-build-standalone/releases/download/20241219/cpython-3.12.8%2B20241219-x86_64-unknown-linux-gnu-install_only_stripped.tar.gz');
  assert.match(standaloneUrl(download, { UV_PYTHON_INSTALL_MIRROR: 'https://mirror.example/pbs/' }), /^https:\/\/mirror\.example\/pbs\/20241219\//);
  assert.match(standaloneUrl(download, { UV_PYTHON_INSTALL_MIRROR: 'https://a/', UVIMAGE_PYTHON_MIRROR: 'http://b' }), /^http:\/\/b\/20241219\//);
});

test('the archive is downloaded once, verified, and cached; a checksum mismatch stores nothing', async () => {
  const store = await tempStore();
  const { downloads } = await loadStandaloneDownloads(env);
  const download = chooseStandaloneDownload(downloads, 'x86_64', { version: '3.12' });
  const before = server.requests.length;
  const digest = await fetchStandalone(download, store, { env });
  assert.equal(digest, `sha256:${download.sha256}`);
  assert.equal(server.requests.length, before + 1);
  await fetchStandalone(download, store, { env });
  assert.equal(server.requests.length, before + 1, 'a cached archive is not downloaded again');

  const wrong = { ...download, sha256: '0'.repeat(64) };
  const fresh = await tempStore();
  await assert.rejects(fetchStandalone(wrong, fresh, { env }), /digest mismatch/);
  assert.deepEqual(await readdir(join(fresh.root, 'blobs', 'sha256')), []);
  assert.deepEqual(await readdir(join(fresh.root, 'tmp')), []);

  await assert.rejects(
    fetchStandalone(download, await tempStore(), { env: { ...env, UVIMAGE_PYTHON_MIRROR: 'http://127.0.0.1:9' } }),
    /cannot download Python 3\.12\.1 from http:\/\/127\.0\.0\.1:9\//,
  );
});

test('the trimmed runtime keeps what apps import, drops what servers never use, and uses its bytecode', async () => {
  const store = await tempStore();
  const { downloads } = await loadStandaloneDownloads(env);
  const download = chooseStandaloneDownload(downloads, 'x86_64', { version: '3.12' });
  const digest = await fetchStandalone(download, store, { env });
  const runtime = await openStandaloneRuntime(digest, store, { version: download.version, mtime: 0 });
  const layer = await writeLayer(store, runtime.entries, { mtime: 0 });
  await runtime.close();
  assert.equal(runtime.interpreter, '/python/bin/python3.12');
  const rules = runtime.removed.map((group) => group.rule);
  for (const expected of ['the test suite', 'idlelib', 'tkinter and Tcl/Tk', 'ensurepip', 'headers', 'optimized bytecode (.opt-1/.opt-2.pyc, used only with -O)']) {
    assert.ok(rules.includes(expected), `${expected} trimmed: ${rules.join('; ')}`);
  }
  assert.ok(!rules.some((rule) => rule.startsWith('libpython')), 'this interpreter links libpython, so it stays');
  const removedBytes = runtime.removed.reduce((sum, group) => sum + group.bytes, 0);
  assert.ok(removedBytes > 50 * 1024 * 1024, `removed ${removedBytes} bytes`);

  // Unpack the layer and run the interpreter from it: the imports a web app makes work, and no
  // source is recompiled (python -v says "bytecode is stale" when it would).
  const root = await mkdtemp(join(tmpdir(), 'uvimage-standalone-root-'));
  const tar = spawnSync('sh', ['-c', `gzip -dc '${store.blobPath(layer.descriptor.digest)}' | tar -x -C '${root}'`]);
  assert.equal(tar.status, 0, tar.stderr?.toString());
  await assert.rejects(readFile(join(root, 'python/lib/python3.12/test/__init__.py')));
  const run = spawnSync(join(root, 'python/bin/python3.12'), ['-v', '-c', 'import ssl, sqlite3, ctypes, json, zoneinfo, lzma, bz2, asyncio, email, http.server, decimal; print("imports ok")'], {
    encoding: 'utf8',
    env: { PYTHONDONTWRITEBYTECODE: '1', PATH: '/usr/bin:/bin' },
  });
  assert.equal(run.status, 0, run.stderr.slice(-2000));
  assert.match(run.stdout, /imports ok/);
  assert.doesNotMatch(run.stderr, /bytecode is stale/);
  assert.match(run.stderr, /code object from '.*\/python3\.12\/json\/__pycache__\/__init__\.cpython-312\.pyc'/);
  await writeFile(join(root, 'done'), '');
});

test('keepAll keeps everything', async () => {
  const store = await tempStore();
  const { downloads } = await loadStandaloneDownloads(env);
  const download = chooseStandaloneDownload(downloads, 'x86_64', { version: '3.12' });
  const runtime = await openStandaloneRuntime(await fetchStandalone(download, store, { env }), store, { version: download.version, mtime: 0, keepAll: true });
  await runtime.close();
  assert.deepEqual(runtime.removed, []);
  assert.ok(runtime.entries.some((entry) => entry.path === 'python/lib/python3.12/test/__init__.py'));
});
