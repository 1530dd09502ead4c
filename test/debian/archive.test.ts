/**
 * Against the real Debian archive, through the persistent test cache: the first run downloads
 * the indexes and a few small .debs, a rerun downloads nothing.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createInterface } from 'node:readline';
import { createGunzip } from 'node:zlib';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  checkLockMatches,
  createDebianLock,
  lockDebianPackages,
  lockedDownloads,
  packagesFromLock,
  readDebianLock,
  writeDebianLock,
} from '../../src/debian/lock.js';
import { debianSourceFrom, fetchDeb, fetchDebs, fetchIndexFile, loadPackageIndex, type DebianSource, type PackageIndex } from '../../src/debian/archive/index.js';
import { resolvePackages } from '../../src/debian/resolver.js';
import type { Digest } from '../../src/oci/digest.js';
import { sharedTestStore } from '../harness/cache.js';

/** distroless cc's packages (gcc-N-base comes in as a dependency). */
const ccRoots = (suite: string) => [
  'base-files',
  'netbase',
  'tzdata',
  'media-types',
  'ca-certificates',
  'libc6',
  suite === 'bookworm' ? 'libssl3' : 'libssl3t64',
  'libzstd1',
  'zlib1g',
  'libgcc-s1',
  'libstdc++6',
  'libgomp1',
];
/** What an image without a shell or package manager leaves out. */
const exclude = ['debconf', 'debconf-2.0', 'perl-base', 'dpkg'];

const indexes = new Map<string, PackageIndex>();

async function index(source: DebianSource): Promise<PackageIndex> {
  const key = `${source.suite}/${source.arch}`;
  let found = indexes.get(key);
  if (!found) {
    found = await loadPackageIndex(source, await sharedTestStore());
    indexes.set(key, found);
  }
  return found;
}

for (const [suite, arch] of [
  ['trixie', 'amd64'],
  ['bookworm', 'arm64'],
] as const) {
  test(`${suite}/${arch}: the cc package set resolves from the real archive`, async () => {
    const source = debianSourceFrom({ suite, arch, env: {} });
    const idx = await index(source);
    assert.ok(idx.size > 50_000, `${idx.size} packages`);
    const tzdata = idx.get('tzdata')!;
    assert.equal(tzdata.arch, 'all');
    assert.equal(tzdata.stanza.Package, 'tzdata');
    const resolved = resolvePackages(idx, ccRoots(suite), { exclude });
    const names = resolved.map((p) => p.name);
    assert.deepEqual(names, [...names].sort());
    for (const root of ccRoots(suite)) assert.ok(names.includes(root), root);
    assert.ok(names.includes(suite === 'bookworm' ? 'gcc-12-base' : 'gcc-14-base'), names.join(' '));
    assert.ok(names.includes('openssl'), 'ca-certificates needs openssl');
    for (const left of exclude) assert.ok(!names.includes(left), left);
    for (const p of resolved) {
      assert.ok(p.arch === arch || p.arch === 'all', `${p.name} ${p.arch}`);
      assert.match(p.sha256, /^[a-f0-9]{64}$/);
      assert.ok(p.archiveUrl === source.mirror || p.archiveUrl === source.securityMirror);
    }
    // Deterministic: the same index and roots resolve to the same set.
    assert.deepEqual(resolvePackages(idx, [...ccRoots(suite)].reverse(), { exclude }), resolved);

    // The lock of it, and what a build that follows the lock downloads.
    const lock = createDebianLock(source, ccRoots(suite), resolved, exclude);
    checkLockMatches(lock, { suite, arch, mirror: source.mirror, roots: ccRoots(suite), exclude });
    const store = await sharedTestStore();
    const small = lockedDownloads(lock).filter((p) => ['netbase', 'media-types', 'base-files'].includes(p.name));
    assert.equal(small.length, 3);
    const requests: string[] = [];
    const digests = await fetchDebs(small, store, { onRequest: (url) => requests.push(url) });
    for (const [i, digest] of digests.entries()) {
      assert.equal(digest, `sha256:${small[i]!.sha256}`);
      assert.ok(await store.hasIntact(digest));
    }
    // Now cached: no request at all.
    const again: string[] = [];
    await fetchDeb(resolved.find((p) => p.name === 'netbase')!, store, { onRequest: (url) => again.push(url) });
    assert.deepEqual(again, []);
  });
}

test('a second load uses the cache: InRelease revalidation at most, and offline none at all', async () => {
  const source = debianSourceFrom({ suite: 'trixie', arch: 'amd64', env: {} });
  const store = await sharedTestStore();
  await index(source); // makes sure the cache is filled
  const revalidate: string[] = [];
  const fresh = await loadPackageIndex(source, store, { ttlSeconds: 0, onRequest: (url) => revalidate.push(url) });
  assert.deepEqual(revalidate.sort(), [
    'https://deb.debian.org/debian/dists/trixie/InRelease',
    'https://security.debian.org/debian-security/dists/trixie-security/InRelease',
  ]);
  const withinTtl: string[] = [];
  await loadPackageIndex(source, store, { onRequest: (url) => withinTtl.push(url) });
  assert.deepEqual(withinTtl, []);
  // Within the TTL the InRelease is read from its signed text, stored when its signature was
  // verified; a damaged text is verified again from the InRelease itself and stored anew.
  const record = await store.readRecord<{ signedText?: Digest }>('debian-inrelease', 'https://deb.debian.org/debian|trixie');
  assert.ok(record?.signedText, 'the record names the verified signed text');
  assert.match((await store.readBytes(record.signedText)).toString('utf8'), /^Origin: Debian\n/);
  await writeFile(store.blobPath(record.signedText), 'Origin: Forged\nSuite: stable\n');
  const healing: string[] = [];
  const healed = await loadPackageIndex(source, store, { onRequest: (url) => healing.push(url) });
  assert.deepEqual(healing, []);
  assert.equal(healed.get('libc6')!.version, fresh.get('libc6')!.version);
  assert.ok(await store.hasIntact(record.signedText), 'the signed text is stored again');
  const offline: string[] = [];
  const cached = await loadPackageIndex(source, store, { offline: true, onRequest: (url) => offline.push(url) });
  assert.deepEqual(offline, []);
  assert.equal(cached.get('libc6')!.version, fresh.get('libc6')!.version);
  assert.equal(cached.size, fresh.size);
});

test('offline without a cached index is a clear error', async () => {
  const source = debianSourceFrom({ suite: 'trixie', arch: 'amd64', mirror: 'http://127.0.0.1:9/never-fetched', env: {} });
  await assert.rejects(
    loadPackageIndex(source, await sharedTestStore(), { offline: true }),
    /offline: no cached index of trixie from http:\/\/127\.0\.0\.1:9\/never-fetched; run once without offline mode/,
  );
});

test('an InRelease that has expired (Valid-Until) is refused, naming the suite', async () => {
  const source = debianSourceFrom({ suite: 'trixie', arch: 'amd64', env: {} });
  await index(source);
  const later = Date.now() + 60 * 24 * 3600 * 1000;
  await assert.rejects(
    loadPackageIndex(source, await sharedTestStore(), { now: () => later }),
    /security\.debian\.org\/debian-security\/dists\/trixie-security\/InRelease: the InRelease of suite trixie-security expired on .* \(Valid-Until\)/,
  );
});

test('lock, then build from the lock: no index, no resolution, the same .debs; a changed ask is refused', async () => {
  const source = debianSourceFrom({ suite: 'trixie', arch: 'amd64', env: {} });
  const store = await sharedTestStore();
  const roots = ['netbase', 'media-types'];
  const path = join(await mkdtemp(join(tmpdir(), 'uvimage-debian-lock-')), 'debian.lock');
  await writeDebianLock(path, await lockDebianPackages(source, store, roots));
  const lock = (await readDebianLock(path))!;
  assert.deepEqual(lock.packages.map((p) => p.name), ['media-types', 'netbase']);

  const requests: string[] = [];
  const downloads = packagesFromLock(lock, source, ['media-types', 'netbase']);
  await fetchDebs(downloads, store, { onRequest: (url) => requests.push(url) });
  await fetchDebs(downloads, store, { offline: true, onRequest: (url) => requests.push(url) });
  for (const url of requests) assert.match(url, /\.deb$/);
  assert.ok(requests.length <= 2);

  assert.throws(() => packagesFromLock(lock, source, ['netbase', 'media-types', 'tzdata'], [], path), /debian\.lock no longer matches what this build asks for \(packages \+tzdata\)/);
  assert.throws(() => packagesFromLock(lock, debianSourceFrom({ suite: 'bookworm', arch: 'arm64', env: {} }), roots), /suite trixie -> bookworm; arch amd64 -> arm64/);
});

test('another file the InRelease lists (a Contents-amd64.gz) is fetched verified the same way, once', async () => {
  // contrib's: main's Contents files on deb.debian.org do not match trixie's signed InRelease
  // these days (their sizes differ, and the archive has no by-hash copies of them), so fetching
  // them is refused, as it must be.
  const path = 'contrib/Contents-amd64.gz';
  const source = debianSourceFrom({ suite: 'trixie', arch: 'amd64', env: {} });
  const store = await sharedTestStore();
  const requests: string[] = [];
  const digest = await fetchIndexFile(source, store, path, { onRequest: (url) => requests.push(url) });
  assert.ok(await store.hasIntact(digest));
  for (const url of requests) assert.match(url, /^https:\/\/deb\.debian\.org\/debian\/dists\/trixie\/(InRelease|contrib\/(by-hash\/SHA256\/[a-f0-9]{64}|Contents-amd64\.gz))$/);
  // What it holds: every file path of the section's packages, and the packages that ship it.
  let count = 0;
  let zfs: string | undefined;
  for await (const line of createInterface({ input: store.openRead(digest).pipe(createGunzip()) })) {
    assert.match(line, /^\S.*?\s+[a-z0-9-]+\/[a-z0-9-]+\/[a-z0-9.+-]+(,[a-z0-9-]+\/[a-z0-9-]+\/[a-z0-9.+-]+)*$/, line);
    count++;
    if (line.startsWith('usr/sbin/zfs ')) zfs = line;
  }
  assert.ok(count > 10_000, `${count} lines`);
  assert.match(zfs ?? '', /^usr\/sbin\/zfs\s+contrib\/admin\/zfsutils-linux$/);
  // Cached: no request within the TTL, none offline.
  const again: string[] = [];
  assert.equal(await fetchIndexFile(source, store, path, { onRequest: (url) => again.push(url) }), digest);
  assert.equal(await fetchIndexFile(source, store, path, { offline: true, onRequest: (url) => again.push(url) }), digest);
  assert.deepEqual(again, []);
  await assert.rejects(fetchIndexFile(source, store, 'main/Contents-nonesuch.gz'), /https:\/\/deb\.debian\.org\/debian\/dists\/trixie\/InRelease lists no SHA256 for main\/Contents-nonesuch\.gz/);
});
