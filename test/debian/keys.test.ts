/**
 * src/debian/keys.ts is generated: it must be exactly what scripts/refresh-debian-keys.ts writes
 * from the keyring package the module names (fetched through the verified archive client into
 * the test cache), so a key edited, added or dropped by hand fails here.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { defaultDebianMirror } from '../../src/debian/archive/index.js';
import { debianArchiveKeyring, debianArchiveKeys } from '../../src/debian/keys.js';
import { keyringPackageName, keysModulePath, openKeyringPackage, pinnedKeyNames, renderKeysModule } from '../../scripts/refresh-debian-keys.js';
import { sharedTestStore } from '../harness/cache.js';

test('the pinned keys are what the refresh script writes from the keyring package they name', async () => {
  const deb = await openKeyringPackage(await sharedTestStore(), { name: keyringPackageName, ...debianArchiveKeyring, archiveUrl: defaultDebianMirror });
  try {
    const committed = await readFile(keysModulePath, 'utf8');
    assert.equal(committed, await renderKeysModule(debianArchiveKeyring, deb), 'src/debian/keys.ts differs from what scripts/refresh-debian-keys.ts writes: run it, do not edit the module');
  } finally {
    await deb.close();
  }
});

test('three keys for every supported suite, oldest release first', () => {
  assert.deepEqual(debianArchiveKeys.map((key) => key.name), pinnedKeyNames());
  assert.deepEqual(pinnedKeyNames(), [
    'bookworm-stable',
    'bookworm-automatic',
    'bookworm-security-automatic',
    'trixie-stable',
    'trixie-automatic',
    'trixie-security-automatic',
  ]);
});
