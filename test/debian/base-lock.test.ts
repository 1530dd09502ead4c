/**
 * The Debian lock of a base: the first build writes it, later builds follow it without reading
 * any index, and a lock that no longer matches what is asked is a one-line error.
 */
import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { parseDebianLock } from '../../src/debian/lock.js';
import { assertOneLineError, uvimage } from '../harness/cli.js';
import { startDebianMirror, type DebianMirror } from '../harness/debian-mirror.js';

let mirror: DebianMirror;
let work: string;
let env: NodeJS.ProcessEnv;

before(async () => {
  mirror = await startDebianMirror();
  work = await mkdtemp(join(tmpdir(), 'uvimage-base-lock-'));
  env = { UVIMAGE_DEBIAN_MIRROR: `${mirror.url}/debian`, UVIMAGE_DEBIAN_SECURITY_MIRROR: `${mirror.url}/debian-security`, UVIMAGE_CACHE_DIR: join(work, 'cache') };
});
after(async () => {
  await mirror?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

test('the first build writes the lock; a later build follows it without reading any index', async () => {
  const lockPattern = join(work, 'static-{arch}.lock');
  const first = await uvimage(['base', 'static', '--suite', 'trixie', '--platform', 'linux/amd64', '--lock', lockPattern, '--oci', join(work, 'first'), '-t', 'static:1', '--json'], env);
  assert.equal(first.code, 0, first.stderr);
  const lockPath = join(work, 'static-amd64.lock');
  const lock = parseDebianLock(await readFile(lockPath, 'utf8'), lockPath);
  assert.equal(lock.suite, 'trixie');
  assert.equal(lock.arch, 'amd64');
  assert.deepEqual(lock.packages.map((pkg) => pkg.name).sort(), [...lock.roots].sort(), 'static is its package list, nothing resolved beyond it');
  assert.ok(lock.roots.includes('base-files') && lock.roots.includes('tzdata'));
  for (const pkg of lock.packages) assert.match(pkg.sha256, /^[a-f0-9]{64}$/);

  // The same downloads, but no memory of the index (records hold the index's revalidation).
  await rm(join(work, 'cache', 'records'), { recursive: true, force: true });
  const before = mirror.requests.length;
  const second = await uvimage(['base', 'static', '--suite', 'trixie', '--platform', 'linux/amd64', '--lock', lockPattern, '--oci', join(work, 'second'), '-t', 'static:1', '--json'], env);
  assert.equal(second.code, 0, second.stderr);
  const during = mirror.requests.slice(before);
  assert.deepEqual(during.filter((path) => path.includes('/dists/')), [], `no index was read: ${during.join(' ')}`);
  assert.equal((JSON.parse(second.stdout) as { digest: string }).digest, (JSON.parse(first.stdout) as { digest: string }).digest);

  // A lock for another request is refused, saying what changed.
  await cp(lockPath, join(work, 'nossl-amd64.lock'));
  const mismatch = await uvimage(['base', 'base-nossl', '--suite', 'trixie', '--platform', 'linux/amd64', '--lock', join(work, 'nossl-{arch}.lock'), '--oci', join(work, 'third'), '-t', 'x:1'], env);
  assertOneLineError(mismatch, /nossl-amd64\.lock.*no longer matches.*libc6/);
  await assert.rejects(readFile(join(work, 'third', 'index.json')));
});

test('several platforms need {arch} in the lock path', async () => {
  const result = await uvimage(['base', 'static', '--platform', 'linux/amd64,linux/arm64', '--lock', join(work, 'one.lock'), '--oci', join(work, 'x')], env);
  assertOneLineError(result, /\{arch\}/);
});
