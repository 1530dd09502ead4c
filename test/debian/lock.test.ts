import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { checkLockMatches, createDebianLock, lockedDownloads, readDebianLock, writeDebianLock } from '../../src/debian/lock.js';
import { debianSourceFrom, type DebianPackage } from '../../src/debian/archive/index.js';

function pkg(name: string, version: string, archiveUrl = 'https://deb.debian.org/debian'): DebianPackage {
  return {
    name,
    version,
    arch: 'amd64',
    filename: `pool/main/${name[0]}/${name}/${name}_${version}_amd64.deb`,
    sha256: name.length.toString(16).padStart(64, 'a'),
    size: 1234,
    depends: '',
    preDepends: '',
    provides: '',
    stanza: {},
    archiveUrl,
  };
}

const source = debianSourceFrom({ suite: 'trixie', arch: 'amd64', env: {} });

test('a lock is written atomically as TOML and read back', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'uvimage-lock-'));
  const path = join(dir, 'debian.lock');
  const lock = createDebianLock(source, ['zlib1g', 'libc6', 'zlib1g'], [pkg('zlib1g', '1:1.3'), pkg('libc6', '2.41-12', 'https://security.debian.org/debian-security')], ['debconf']);
  assert.deepEqual(lock.roots, ['libc6', 'zlib1g']);
  assert.deepEqual(lock.packages.map((p) => p.name), ['libc6', 'zlib1g']);
  assert.equal(lock.packages[0]!.url, 'https://security.debian.org/debian-security/pool/main/l/libc6/libc6_2.41-12_amd64.deb');
  await writeDebianLock(path, lock);
  assert.deepEqual(await readdir(dir), ['debian.lock']);
  const text = await readFile(path, 'utf8');
  assert.match(text, /^# Written by uvimage/);
  assert.match(text, /\[\[package\]\]\nname = "libc6"/);
  assert.deepEqual(await readDebianLock(path), lock);
  // The same resolution writes the same bytes.
  await writeDebianLock(path, createDebianLock(source, ['libc6', 'zlib1g'], [pkg('libc6', '2.41-12', 'https://security.debian.org/debian-security'), pkg('zlib1g', '1:1.3')], ['debconf']));
  assert.equal(await readFile(path, 'utf8'), text);
  assert.deepEqual(lockedDownloads(lock)[1], {
    name: 'zlib1g',
    version: '1:1.3',
    sha256: lock.packages[1]!.sha256,
    size: 1234,
    url: 'https://deb.debian.org/debian/pool/main/z/zlib1g/zlib1g_1:1.3_amd64.deb',
  });
  assert.equal(await readDebianLock(join(dir, 'missing.lock')), undefined);
});

test('a broken or newer lock is a clear error', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'uvimage-lock-'));
  const path = join(dir, 'debian.lock');
  await writeFile(path, 'version = 1\nsuite = "trixie"\n');
  await assert.rejects(readDebianLock(path), /debian\.lock: not a valid lock file: arch/);
  await writeFile(path, 'version = 2\n');
  await assert.rejects(readDebianLock(path), /lock version 2 is newer than this uvimage understands/);
  await writeFile(path, 'version = [');
  await assert.rejects(readDebianLock(path), /not a valid lock file/);
});

test('a build says what no longer matches its lock', () => {
  const lock = createDebianLock(source, ['libc6', 'tzdata'], [pkg('libc6', '2.41')], ['debconf']);
  const request = { suite: 'trixie', arch: 'amd64', mirror: source.mirror, securityMirror: source.securityMirror, roots: ['tzdata', 'libc6'], exclude: ['debconf'] };
  checkLockMatches(lock, request);
  assert.throws(() => checkLockMatches(lock, { ...request, suite: 'bookworm' }), /no longer matches what this build asks for \(suite trixie -> bookworm\); lock again/);
  assert.throws(() => checkLockMatches(lock, { ...request, arch: 'arm64' }), /arch amd64 -> arm64/);
  assert.throws(() => checkLockMatches(lock, { ...request, roots: ['libc6', 'netbase'] }), /packages \+netbase -tzdata/);
  assert.throws(() => checkLockMatches(lock, { ...request, exclude: [] }), /excluded -debconf/);
  assert.throws(
    () => checkLockMatches(lock, { ...request, mirror: 'https://snapshot.debian.org/archive/debian/20251101T000000Z' }, 'uvimage.debian.lock'),
    /^UserError: uvimage\.debian\.lock no longer matches .*mirror https:\/\/deb\.debian\.org\/debian -> https:\/\/snapshot/,
  );
});
