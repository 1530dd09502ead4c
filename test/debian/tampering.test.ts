/**
 * Tampering is caught: a mirror on 127.0.0.1 forwards to the real archive and changes what it
 * passes on. Each forgery fails with a clear error, and nothing unverified reaches the store.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import * as openpgp from 'openpgp';
import { debianSourceFrom, fetchDeb, loadPackageIndex, verifyInRelease } from '../../src/debian/archive/index.js';
import { sha256Digest } from '../../src/oci/digest.js';
import { BlobStore } from '../../src/oci/store.js';
import { sharedTestStore } from '../harness/cache.js';
import { startDebianMirror } from '../harness/debian-mirror.js';

async function emptyStore(): Promise<BlobStore> {
  return BlobStore.open(await mkdtemp(join(tmpdir(), 'uvimage-debian-tamper-')));
}

/** Every blob in a store, by content. */
async function blobsIn(store: BlobStore): Promise<Buffer[]> {
  const dir = join(store.root, 'blobs', 'sha256');
  return Promise.all((await readdir(dir)).map((name) => readFile(join(dir, name))));
}

async function tempFilesIn(store: BlobStore): Promise<string[]> {
  return readdir(join(store.root, 'tmp'));
}

test('a modified InRelease fails its signature check and is not stored', async () => {
  const forged: Buffer[] = [];
  const mirror = await startDebianMirror({
    transform: (path, body) => {
      if (!path.endsWith('/InRelease')) return body;
      // One character of the signed text: the archive now claims another origin.
      const changed = Buffer.from(body.toString('utf8').replace('Origin: Debian', 'Origin: Debiam'));
      forged.push(changed);
      return changed;
    },
  });
  try {
    const store = await emptyStore();
    const source = debianSourceFrom({ suite: 'trixie', arch: 'amd64', mirror: `${mirror.url}/debian`, securityMirror: `${mirror.url}/debian-security`, env: {} });
    await assert.rejects(loadPackageIndex(source, store, { retry: false }), /\/dists\/trixie(-security)?\/InRelease: InRelease signature verification failed: bad signature/);
    assert.equal(forged.length, 2);
    assert.deepEqual(await blobsIn(store), []);
    assert.deepEqual(await tempFilesIn(store), []);
    // Only InRelease was asked for: nothing is fetched on the word of an unverified index.
    assert.ok(mirror.requests.every((path) => path.endsWith('/InRelease')), mirror.requests.join(' '));
  } finally {
    await mirror.close();
  }
});

test('an InRelease signed by a key outside the pinned set is refused', async () => {
  // The real trixie text, clearsigned by a fresh key that claims to be Debian's.
  const real = await (await sharedTestStore()).readRecord<{ digest: `sha256:${string}` }>('debian-inrelease', 'https://deb.debian.org/debian|trixie');
  const signedText = real ? await verifyInRelease(await (await sharedTestStore()).readBytes(real.digest), 'cached') : 'Origin: Debian\nSuite: stable\nCodename: trixie\n';
  const { privateKey } = await openpgp.generateKey({ type: 'ecc', curve: 'ed25519Legacy', userIDs: [{ name: 'Debian Archive Automatic Signing Key (13/trixie)', email: 'ftpmaster@debian.org' }], format: 'object' });
  const forged = await openpgp.sign({ message: await openpgp.createCleartextMessage({ text: signedText }), signingKeys: privateKey });
  await assert.rejects(verifyInRelease(forged, 'https://mirror.example/debian/dists/trixie/InRelease'), /^UserError: https:\/\/mirror\.example\/debian\/dists\/trixie\/InRelease: InRelease signature verification failed: signed only by keys uvimage does not trust \([0-9A-F]{16}\)$/);
  // And the same text unsigned is no InRelease at all.
  await assert.rejects(verifyInRelease(signedText, 'x'), /x: not a clearsigned InRelease/);
});

test('a Packages file whose hash differs from InRelease is refused and not stored', async () => {
  // Any bytes but the real ones: here a Packages naming a .deb of the attacker's choice.
  const fake = Buffer.from('Package: libc6\nVersion: 99\nArchitecture: amd64\nFilename: pool/evil.deb\nSHA256: ' + 'e'.repeat(64) + '\nSize: 1\n\n');
  const mirror = await startDebianMirror({ respond: (path) => (path.includes('/binary-') ? fake : undefined) });
  try {
    const store = await emptyStore();
    const source = debianSourceFrom({ suite: 'trixie', arch: 'amd64', mirror: `${mirror.url}/debian`, securityMirror: `${mirror.url}/debian-security`, env: {} });
    await assert.rejects(
      loadPackageIndex(source, store, { retry: false }),
      /trixie(-security)? main\/binary-amd64\/Packages\.xz from http:\/\/127\.0\.0\.1:\d+\/debian(-security)?\/dists\/trixie(-security)?\/main\/binary-amd64\/by-hash\/SHA256\/[a-f0-9]{64}: digest mismatch: expected sha256:[a-f0-9]{64}, got sha256:[a-f0-9]{64}/,
    );
    // What is stored: the two verified InRelease files and their signed texts, nothing else.
    const blobs = (await blobsIn(store)).map((blob) => blob.toString('utf8'));
    assert.equal(blobs.length, 4);
    const signed = blobs.filter((blob) => blob.startsWith('-----BEGIN PGP SIGNED MESSAGE-----'));
    assert.equal(signed.length, 2);
    for (const text of blobs.filter((blob) => !signed.includes(blob))) {
      assert.match(text, /^Origin: Debian/);
      assert.ok(signed.some((inRelease) => inRelease.includes(text.split('\n').slice(0, 5).join('\n'))));
    }
    assert.ok(!(await store.has(sha256Digest(fake))));
    assert.deepEqual(await tempFilesIn(store), []);
  } finally {
    await mirror.close();
  }
});

test('a .deb whose hash differs from Packages is refused and not stored', async () => {
  const index = await loadPackageIndex(debianSourceFrom({ suite: 'trixie', arch: 'amd64', env: {} }), await sharedTestStore());
  const netbase = index.get('netbase')!;
  const mirror = await startDebianMirror({
    transform: (path, body) => {
      if (!path.endsWith('.deb')) return body;
      const changed = Buffer.from(body);
      changed[changed.length - 100]! ^= 0x01;
      return changed;
    },
  });
  try {
    const store = await emptyStore();
    const pkg = { ...netbase, archiveUrl: `${mirror.url}/debian`, stanza: netbase.stanza };
    await assert.rejects(
      fetchDeb(pkg, store, { retry: false }),
      new RegExp(`^UserError: netbase ${netbase.version.replace(/[.+]/g, '\\$&')} from http://127\\.0\\.0\\.1:\\d+/debian/pool/main/n/netbase/netbase_.*\\.deb: digest mismatch: expected sha256:${netbase.sha256}`),
    );
    assert.deepEqual(await blobsIn(store), []);
    assert.deepEqual(await tempFilesIn(store), []);
  } finally {
    await mirror.close();
  }
});

test('a pinned snapshot mirror ignores Valid-Until; the same metadata from a plain mirror is refused', async () => {
  const mirror = await startDebianMirror();
  try {
    const store = await sharedTestStore();
    const later = Date.now() + 60 * 24 * 3600 * 1000;
    const snapshot = debianSourceFrom({ suite: 'trixie', arch: 'amd64', mirror: `${mirror.url}/archive/debian/20251101T000000Z/`, env: {} });
    assert.equal(snapshot.snapshot, true);
    assert.equal(snapshot.securityMirror, `${mirror.url}/archive/debian-security/20251101T000000Z`);
    const index = await loadPackageIndex(snapshot, store, { now: () => later });
    assert.ok(index.get('libc6'));
    // The index files themselves came from the cache (same digests as the real archive's).
    assert.ok(mirror.requests.every((path) => path.endsWith('/InRelease')), mirror.requests.join(' '));

    const plain = debianSourceFrom({ suite: 'trixie', arch: 'amd64', mirror: `${mirror.url}/debian`, securityMirror: `${mirror.url}/debian-security`, env: {} });
    await assert.rejects(loadPackageIndex(plain, store, { now: () => later }), /the InRelease of suite trixie-security expired on/);
  } finally {
    await mirror.close();
  }
});
