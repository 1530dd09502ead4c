/**
 * The layer cache in a registry (src/registry/layer-cache.ts) against Debian's docker-registry
 * with htpasswd auth: tag naming, a record published by one store and used by another (its layer
 * not downloaded until a BlobSource asks, then verified), identical manifests from racing
 * writers, stale and mismatched records as misses, and a registry that fails as one warning.
 */
import assert from 'node:assert/strict';
import { text } from 'node:stream/consumers';
import { after, before, test } from 'node:test';
import { createBlobSource } from '../../src/oci/blobs.js';
import { sha256Digest, type Digest } from '../../src/oci/digest.js';
import { MediaType } from '../../src/oci/media-types.js';
import { BlobStore } from '../../src/oci/store.js';
import type { WrittenLayer } from '../../src/oci/layer-writer.js';
import { writeLayer } from '../../src/oci/layer-writer.js';
import { RegistryClient } from '../../src/registry/client.js';
import { cacheDocuments, cacheTag, checkRecord, parseCacheRepo, RegistryLayerCache, sharedKinds } from '../../src/registry/layer-cache.js';
import { fetchLayerBlob } from '../../src/registry/pull.js';
import { startRegistry, type TestRegistry } from '../harness/registry.js';
import { fastRetry, tempStore, type TempStore } from './helpers.js';

let registry: TestRegistry;
const stores: TempStore[] = [];

before(async () => {
  registry = await startRegistry({ auth: 'htpasswd' });
});

after(async () => {
  await registry?.stop();
  for (const store of stores) await store.cleanup();
});

async function freshStore(): Promise<BlobStore> {
  const temp = await tempStore();
  stores.push(temp);
  return temp.store;
}

function client(password = registry.users.uvimage!): RegistryClient {
  return new RegistryClient({ credentials: { [registry.host]: { username: 'uvimage', password } }, retry: fastRetry, env: {} });
}

function cacheFor(store: BlobStore, repository: string, options: { password?: string; warnings?: string[] } = {}): RegistryLayerCache {
  const cache = new RegistryLayerCache({ client: client(options.password), repo: { registry: registry.host, repository }, store, warn: (line) => options.warnings?.push(line) });
  store.shared = cache;
  return cache;
}

async function layerOf(store: BlobStore, content: string): Promise<WrittenLayer> {
  const bytes = Buffer.from(content);
  return writeLayer(store, [{ type: 'file', path: 'app/hello.txt', size: bytes.length, mode: 0o644, open: () => bytes }], { mtime: 0 });
}

const layerBlobs = (layer: WrittenLayer) => [layer.descriptor?.digest];

test('a tag is the kind and the record name, within the distribution spec tag grammar', () => {
  const name = BlobStore.recordName('some key');
  for (const kind of sharedKinds) {
    const tag = cacheTag(kind, name);
    assert.match(tag, /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/);
    assert.equal(tag, `uvimage1-${kind}-${name}`);
  }
  assert.throws(() => cacheTag('venv-layer', 'not-a-sha'));
  assert.throws(() => cacheTag('Bad Kind', name));
});

test('--cache-repo is a repository: a tag or digest in it is one line naming where it came from', () => {
  assert.deepEqual(parseCacheRepo('registry.example.com/ci/cache', '--cache-repo'), { registry: 'registry.example.com', repository: 'ci/cache' });
  assert.throws(() => parseCacheRepo('registry.example.com/ci/cache:latest', 'UVIMAGE_CACHE_REPO'), (error: Error) => error.name === 'UserError' && /^UVIMAGE_CACHE_REPO: .* names a tag; give the repository only/.test(error.message));
  assert.throws(() => parseCacheRepo('Not A Ref', '--cache-repo'), /UserError: --cache-repo: /);
  assert.throws(() => parseCacheRepo(`127.0.0.1:5000/cache@sha256:${'a'.repeat(64)}`, '--cache-repo'), /names a digest/);
});

test('the documents of a record are the same bytes for the same record, and read back only for the key they were made for', () => {
  const blobs = [{ digest: sha256Digest('layer'), size: 5 }];
  const a = cacheDocuments('venv-layer', 'key text', { descriptor: { digest: blobs[0]!.digest } }, blobs);
  const b = cacheDocuments('venv-layer', 'key text', JSON.parse(JSON.stringify({ descriptor: { digest: blobs[0]!.digest } })), blobs);
  assert.equal(a.digest, b.digest);
  assert.ok(a.manifest.equals(b.manifest));
  const manifest = JSON.parse(a.manifest.toString()) as { artifactType: string; config: { mediaType: string; digest: Digest }; layers: { digest: Digest }[] };
  assert.equal(manifest.artifactType, 'application/vnd.uvimage.cache.v1+json');
  assert.equal(manifest.config.digest, sha256Digest(a.record));
  assert.deepEqual(manifest.layers.map((layer) => layer.digest), [blobs[0]!.digest]);

  assert.deepEqual(checkRecord(a.record, 'venv-layer', { key: 'key text' })?.value, { descriptor: { digest: blobs[0]!.digest } });
  assert.equal(checkRecord(a.record, 'venv-layer', { key: 'another key' }), undefined, 'a record of another key is a miss');
  assert.equal(checkRecord(a.record, 'debian-layers', { key: 'key text' }), undefined, 'a record of another kind is a miss');
  assert.ok(checkRecord(a.record, 'venv-layer', { name: BlobStore.recordName('key text') }));
  assert.equal(checkRecord(a.record, 'venv-layer', { name: BlobStore.recordName('other') }), undefined);
  const older = Buffer.from(JSON.stringify({ format: 0, kind: 'venv-layer', key: 'key text', value: {} }));
  assert.equal(checkRecord(older, 'venv-layer', { key: 'key text' }), undefined, 'another format is a miss');
  assert.equal(checkRecord(Buffer.from('{not json'), 'venv-layer', { key: 'key text' }), undefined);
});

test('a layer built by one store is used by another without being built, its bytes fetched only when asked for', async () => {
  const key = JSON.stringify({ test: 'round trip', at: Date.now() });
  const writerStore = await freshStore();
  const writer = cacheFor(writerStore, 'cache/round-trip');
  let built = 0;
  const produce = async () => {
    built++;
    return layerOf(writerStore, 'hello from runner A');
  };
  const made = await writerStore.cached('venv-layer', key, produce, { blobs: layerBlobs });
  await writer.flush();
  assert.equal(built, 1);
  // The layer's record, and the layer-files record the layer writer kept as it wrote the layer.
  assert.deepEqual(writer.stats, { hits: 0, misses: 1, published: 2, present: 0 });

  // Runner B: an empty store.
  const readerStore = await freshStore();
  const reader = cacheFor(readerStore, 'cache/round-trip');
  const found = await readerStore.cached('venv-layer', key, async () => {
    throw new Error('built again');
  }, { blobs: layerBlobs });
  assert.deepEqual(found, JSON.parse(JSON.stringify(made)));
  assert.equal(await readerStore.has(made.descriptor.digest), false, 'the layer is not downloaded with its record');
  assert.deepEqual(reader.originOf(made.descriptor.digest), { registry: registry.host, repository: 'cache/round-trip' });
  assert.equal(await readerStore.available('venv-layer', BlobStore.recordName(key), layerBlobs as (value: unknown) => unknown[]), true);

  // A sink that needs the bytes gets them through the BlobSource, verified.
  const c = client();
  const blobs = createBlobSource(readerStore, (layer) => fetchLayerBlob(layer, readerStore, c));
  assert.deepEqual(blobs.originOf?.(found), { registry: registry.host, repository: 'cache/round-trip' });
  const bytes = await text(await blobs.openLayer(found));
  assert.ok(bytes.length > 0);
  assert.equal(await readerStore.has(made.descriptor.digest), true);

  // A second writer of the same record (a racing runner, or one that found it in its own store)
  // finds the identical manifest under the tag and puts nothing.
  const third = cacheFor(await freshStore(), 'cache/round-trip');
  const thirdStore = (third as unknown as { options: { store: BlobStore } }).options.store;
  await thirdStore.cached('venv-layer', key, async () => layerOf(thirdStore, 'hello from runner A'), { blobs: layerBlobs });
  assert.equal(third.stats.hits, 1, 'runner C takes it from the registry');
  await readerStore.cached('venv-layer', key, async () => {
    throw new Error('built again');
  }, { blobs: layerBlobs });
  await reader.flush();
  assert.equal(reader.stats.published, 0, 'a record read from the registry is not put back');
});

test('racing writers of one key put the same manifest under its tag', async () => {
  const key = JSON.stringify({ test: 'race', at: Date.now() });
  const caches = await Promise.all([1, 2].map(async () => {
    const store = await freshStore();
    return { store, cache: cacheFor(store, 'cache/race') };
  }));
  await Promise.all(caches.map(({ store }) => store.cached('standalone-layer', key, async () => ({ layer: await layerOf(store, 'same bytes') }), { blobs: (value) => [value.layer.descriptor.digest] })));
  await Promise.all(caches.map(({ cache }) => cache.flush()));
  const tag = cacheTag('standalone-layer', BlobStore.recordName(key));
  const manifest = await client().getManifest({ registry: registry.host, repository: 'cache/race' }, tag);
  const layer = await layerOf(caches[0]!.store, 'same bytes');
  const expected = cacheDocuments('standalone-layer', key, { layer: JSON.parse(JSON.stringify(layer)) }, [{ digest: layer.descriptor.digest, size: layer.descriptor.size }]);
  assert.equal(manifest.digest, expected.digest, 'the tag holds the one deterministic manifest');
  assert.equal(manifest.mediaType, MediaType.ociManifest);
  // Each writer puts (or finds) two records: the layer's, and its layer-files record.
  assert.equal(caches.reduce((sum, { cache }) => sum + cache.stats.published + cache.stats.present, 0), 4);
});

test('a record under the right tag but for another key text is a miss, and the layer is built', async () => {
  const key = JSON.stringify({ test: 'mismatch', at: Date.now() });
  const repo = { registry: registry.host, repository: 'cache/mismatch' };
  // A forged record: the tag of `key`, the document of another key.
  const store = await freshStore();
  const layer = await layerOf(store, 'forged');
  const forged = cacheDocuments('venv-layer', 'another key', layer, [{ digest: layer.descriptor.digest, size: layer.descriptor.size }]);
  const c = client();
  for (const [digest, bytes] of [[layer.descriptor.digest, await store.readBytes(layer.descriptor.digest)], [sha256Digest(forged.record), forged.record]] as const) {
    await c.uploadBlob(repo, { digest, size: bytes.length, open: async () => (await import('node:stream')).Readable.from([bytes]) });
  }
  await c.putManifest(repo, cacheTag('venv-layer', BlobStore.recordName(key)), { mediaType: MediaType.ociManifest, bytes: forged.manifest, digest: forged.digest });

  const reader = await freshStore();
  const cache = cacheFor(reader, 'cache/mismatch');
  let built = 0;
  await reader.cached('venv-layer', key, async () => {
    built++;
    return layerOf(reader, 'the real one');
  }, { blobs: layerBlobs });
  assert.equal(built, 1, 'the forged record was not used');
  assert.equal(await reader.available('venv-layer', BlobStore.recordName(key), layerBlobs as (value: unknown) => unknown[]), true, 'built here now');
  await cache.flush();
  assert.equal(cache.stats.published, 2, 'the real record replaces it (with the layer-files record of the layer built)');
  const fresh = await freshStore();
  cacheFor(fresh, 'cache/mismatch');
  assert.ok(await fresh.cached('venv-layer', key, async () => {
    throw new Error('built again');
  }, { blobs: layerBlobs }));
});

test('a cache registry that refuses the credentials is one warning, and the build goes on without it', async () => {
  const warnings: string[] = [];
  const store = await freshStore();
  const cache = cacheFor(store, 'cache/denied', { password: 'wrong', warnings });
  let built = 0;
  for (const key of ['a', 'b']) {
    await store.cached('venv-layer', `denied ${key} ${Date.now()}`, async () => {
      built++;
      return layerOf(store, key);
    }, { blobs: layerBlobs });
  }
  await cache.flush();
  assert.equal(built, 2);
  assert.equal(warnings.length, 1, warnings.join('\n'));
  assert.match(warnings[0]!, new RegExp(`^warning: the layer cache ${registry.host}/cache/denied cannot be read \\(.*\\); building without it$`));
  assert.equal(cache.stats.published, 0);
});

test('a read-only token reads the cache and warns once that it cannot publish', async () => {
  const tokens = await startRegistry({ auth: 'token', users: { writer: 'w-pass', reader: 'r-pass' }, readOnlyUsers: ['reader'] });
  try {
    const as = (user: string, password: string, warnings: string[], store: BlobStore) => {
      const cache = new RegistryLayerCache({
        client: new RegistryClient({ credentials: { [tokens.host]: { username: user, password } }, retry: fastRetry, env: {} }),
        repo: { registry: tokens.host, repository: 'cache/shared' },
        store,
        warn: (line) => warnings.push(line),
      });
      store.shared = cache;
      return cache;
    };
    const key = `read-only ${Date.now()}`;
    const writerStore = await freshStore();
    const writer = as('writer', 'w-pass', [], writerStore);
    await writerStore.cached('venv-layer', key, () => layerOf(writerStore, 'by the writer'), { blobs: layerBlobs });
    await writer.flush();
    assert.equal(writer.stats.published, 2, 'the layer\'s record and its layer-files record');

    const warnings: string[] = [];
    const readerStore = await freshStore();
    const reader = as('reader', 'r-pass', warnings, readerStore);
    await readerStore.cached('venv-layer', key, async () => {
      throw new Error('built again');
    }, { blobs: layerBlobs });
    await readerStore.cached('venv-layer', `${key} new`, () => layerOf(readerStore, 'by the reader'), { blobs: layerBlobs });
    await readerStore.cached('venv-layer', `${key} newer`, () => layerOf(readerStore, 'again'), { blobs: layerBlobs });
    await reader.flush();
    assert.equal(reader.stats.hits, 1, 'the writer\'s record is read');
    assert.equal(reader.stats.published, 0);
    assert.equal(warnings.length, 1, warnings.join('\n'));
    assert.match(warnings[0]!, new RegExp(`^warning: the layer cache ${tokens.host}/cache/shared cannot be written \\(.*\\); layers built here are not shared$`));
    assert.equal(reader.shares('venv-layer'), true, 'reads go on');
  } finally {
    await tokens.stop();
  }
});

test('a cache registry that cannot be reached is one warning too', async () => {
  const warnings: string[] = [];
  const store = await freshStore();
  const cache = new RegistryLayerCache({ client: new RegistryClient({ retry: fastRetry, env: {} }), repo: { registry: '127.0.0.1:9', repository: 'cache/none' }, store, warn: (line) => warnings.push(line) });
  store.shared = cache;
  const value = await store.cached('debian-plan', 'unreachable', async () => ({ base: [], runtime: [], extra: [] }));
  await cache.flush();
  assert.deepEqual(value, { base: [], runtime: [], extra: [] });
  assert.equal(warnings.length, 1, warnings.join('\n'));
  assert.match(warnings[0]!, /cannot be read .*; building without it$/);
});
