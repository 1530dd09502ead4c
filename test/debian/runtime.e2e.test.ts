/**
 * Debian's CPython as a runtime on the cc base (`uvimage base python3`), from the real Debian
 * archive through the persistent test cache, run in the Docker engine: the standard library is
 * precompiled (unchecked-hash pycs under their in-image paths), so a start on a read-only root
 * as 65532 imports everything and writes nothing; no pip and no shell are in the image.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { buildDebianBase } from '../../src/base/build.js';
import { flavourPackages } from '../../src/base/flavours.js';
import type { Digest } from '../../src/oci/digest.js';
import type { BlobStore } from '../../src/oci/store.js';
import { sharedTestStore } from '../harness/cache.js';
import { uvimage } from '../harness/cli.js';
import { check, dockerRemoveImages, requireDocker, run } from '../harness/docker.js';
import { readImage, statusPackages } from './image-files.js';



let store: BlobStore;
const suites = [
  { suite: 'trixie', minor: '3.13', tag: 'uvimage-test/python3:trixie' },
  { suite: 'bookworm', minor: '3.11', tag: 'uvimage-test/python3:bookworm' },
] as const;

before(async () => {
  requireDocker();
  store = await sharedTestStore();
});
after(async () => {
  await dockerRemoveImages(suites.map((entry) => entry.tag));
});

const probe = [
  'import ssl, sqlite3, ctypes, json, zoneinfo, decimal, lzma, bz2, zlib, hashlib, uuid, asyncio, email.message, http.client, sys',
  'ctx = ssl.create_default_context()',
  'assert ctx.cert_store_stats()["x509_ca"] > 100, ctx.cert_store_stats()',
  'sqlite3.connect(":memory:").execute("select 1")',
  'assert ctypes.CDLL(None).getpid() > 0',
  'import datetime; datetime.datetime(2024, 7, 1, tzinfo=zoneinfo.ZoneInfo("Europe/Paris")).utcoffset()',
  'print("|".join([sys.version.split()[0], ssl.OPENSSL_VERSION, json.__spec__.cached, json.dumps.__code__.co_filename]))',
].join('\n');

for (const { suite, minor, tag } of suites) {
  test(`python${minor} on cc (${suite}/amd64): imports ssl, sqlite3, ctypes, json, zoneinfo as 65532 on a read-only root and writes no bytecode`, async () => {
    const result = await uvimage(['base', 'python3', '--suite', suite, '--platform', 'linux/amd64', '--load', '-t', tag, '--cache-dir', store.root, '--json']);
    assert.equal(result.code, 0, result.stderr);
    const digest = (JSON.parse(result.stdout) as { digest: Digest }).digest;
    const { files, config, manifest } = await readImage(store, digest);

    // Three layers: glibc and friends, the rest of cc, the runtime.
    assert.equal(manifest.layers.length, 3);
    assert.equal(files.get(`usr/bin/python${minor}`)!.layer, 2);
    assert.deepEqual(config.config?.Entrypoint, ['/usr/bin/python3']);
    assert.deepEqual([files.get('usr/bin/python3')?.type, files.get('usr/bin/python3')?.linkname], ['symlink', `python${minor}`]);
    // The base's packages, the interpreter and its libraries; nothing that brings a shell, pip or debconf.
    const packages = statusPackages(files);
    for (const name of [...flavourPackages('cc', suite), `python${minor}`, `python${minor}-minimal`, `libpython${minor}-stdlib`, `libpython${minor}-minimal`]) {
      assert.ok(packages.includes(name), `${name} in ${packages.join(' ')}`);
    }
    for (const name of ['bash', 'dash', 'debconf', 'perl-base', 'python3-pip', 'dpkg', 'coreutils']) assert.ok(!packages.includes(name), name);
    for (const path of files.keys()) {
      assert.doesNotMatch(path, /(^|\/)(sh|bash|dash|pip3?|pip3\.\d+)$/, `no shell or pip: ${path}`);
      assert.doesNotMatch(path, /\/(site|dist)-packages\/pip(\/|$)|\/ensurepip\//, path);
    }
    // Every module of the standard library has an unchecked-hash pyc (PEP 552 flags = 0b01).
    const stdlib = `usr/lib/python${minor}/`;
    const tag3 = `cpython-${minor.replace('.', '')}`;
    const sources = [...files.entries()].filter(([path, file]) => path.startsWith(stdlib) && path.endsWith('.py') && file.type !== 'directory');
    assert.ok(sources.length > 500, `${sources.length} stdlib modules`);
    let missing = 0;
    for (const [path] of sources) {
      const slash = path.lastIndexOf('/');
      const pyc = files.get(`${path.slice(0, slash)}/__pycache__/${path.slice(slash + 1, -3)}.${tag3}.pyc`);
      if (!pyc) {
        missing++;
        continue;
      }
      if (pyc.content) assert.equal(pyc.content.readUInt32LE(4), 0b01, `${path}: unchecked-hash pyc`);
    }
    // A few sources deliberately do not compile (lib2to3 test data and the like, skipped as compileall does).
    assert.ok(missing <= 5, `${missing} stdlib modules without a pyc`);

    // Read-only root, nonroot user: everything imports.
    const output = await check('docker', ['run', '--rm', '--network', 'host', '--read-only', '-u', '65532', tag, '-c', probe]);
    const [version, , cached, coFilename] = output.trim().split('|');
    assert.ok(version!.startsWith(`${minor}.`), output);
    assert.equal(coFilename, `/usr/lib/python${minor}/json/__init__.py`, 'co_filename is the in-image path');
    assert.equal(cached, `/usr/lib/python${minor}/json/__pycache__/__init__.${tag3}.pyc`);

    // As root on a writable root, a start still writes nothing: no __pycache__ appears.
    const created = (await check('docker', ['create', '--network', 'host', tag, '-c', probe])).trim();
    try {
      const started = await run('docker', ['start', '-a', created]);
      assert.equal(started.code, 0, started.stderr);
      const diff = (await check('docker', ['diff', created])).trim();
      assert.equal(diff, '', `the container changed files:\n${diff}`);
    } finally {
      await run('docker', ['rm', '-f', created]);
    }
    // There is no shell to run.
    const shell = await run('docker', ['run', '--rm', '--network', 'host', '--entrypoint', '/bin/sh', tag, '-c', 'true']);
    assert.notEqual(shell.code, 0);
  });
}

test('the runtime layer is reproducible (same packages, same pycs, same digest)', async () => {
  const first = await buildDebianBase({ base: 'python3', suite: 'trixie', arch: 'amd64', store, env: {}, layerCache: false });
  const second = await buildDebianBase({ base: 'python3', suite: 'trixie', arch: 'amd64', store, env: {}, layerCache: false });
  assert.equal(second.layers[2]!.layer.diffId, first.layers[2]!.layer.diffId);
  assert.equal(second.image.manifest.descriptor.digest, first.image.manifest.descriptor.digest);
});
