/**
 * Pulling base images from a real registry: tag resolution cached for a TTL, digest-pinned
 * references served from the store with the registry stopped, Docker manifest lists and OCI
 * indexes, and the platform errors.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UserError } from '../../src/errors.js';
import { serializeDocument, assembleIndex, type Image } from '../../src/oci/image.js';
import { MediaType } from '../../src/oci/media-types.js';
import { RegistryClient } from '../../src/registry/client.js';
import { pullBaseImage, tagRecordKey, type TagRecord } from '../../src/registry/pull.js';
import { RegistrySink } from '../../src/registry/push.js';
import { parseReference } from '../../src/registry/reference.js';
import { startRegistry } from '../harness/registry.js';
import { amd64, arm64, countingBlobSource, fastRetry, makeImage, makeLayer, registryBehindFaultProxy, sinkContext, tempStore } from './helpers.js';

const fixture = registryBehindFaultProxy();

async function push(ref: string, image: Image): Promise<void> {
  await new RegistrySink([ref], { retry: fastRetry }).write({ kind: 'image', image }, sinkContext(countingBlobSource(fixture.local.store)));
}

test('a tag is resolved at most once per TTL; documents come from the store', async () => {
  const first = makeImage({ layers: [await makeLayer(fixture.local.store, { 'v.txt': 'one' })] });
  await push(`${fixture.registry.host}/cache/app:1`, first);
  const ref = `${fixture.proxy.host}/cache/app:1`;
  const pulled = await tempStore();
  try {
    let clock = 1_000_000;
    const options = { retry: fastRetry, now: () => clock, env: {} };
    fixture.proxy.resetStats();
    const a = await pullBaseImage(ref, amd64, pulled.store, options);
    assert.equal(a.manifestDigest, first.manifest.descriptor.digest);
    assert.ok(fixture.proxy.stats.requests > 0);
    const record = await pulled.store.readRecord<TagRecord>('tags', tagRecordKey(parseReference(ref)));
    assert.deepEqual(record, { digest: first.manifest.descriptor.digest, resolvedAt: clock });

    // Within the TTL: no registry call at all.
    fixture.proxy.resetStats();
    clock += 299_000;
    const b = await pullBaseImage(ref, amd64, pulled.store, options);
    assert.deepEqual(b, a);
    assert.equal(fixture.proxy.stats.requests, 0);

    // The tag moves; within the TTL the old resolution stands, after it the new one is seen.
    const second = makeImage({ layers: [await makeLayer(fixture.local.store, { 'v.txt': 'two' })] });
    await push(`${fixture.registry.host}/cache/app:1`, second);
    assert.equal((await pullBaseImage(ref, amd64, pulled.store, options)).manifestDigest, first.manifest.descriptor.digest);
    clock += 2_000;
    fixture.proxy.resetStats();
    const c = await pullBaseImage(ref, amd64, pulled.store, options);
    assert.equal(c.manifestDigest, second.manifest.descriptor.digest);
    assert.deepEqual(c.layers.map((layer) => layer.descriptor.digest), second.layers.map((layer) => layer.descriptor.digest));

    // Expired again but unchanged: one HEAD, nothing downloaded.
    clock += 301_000;
    fixture.proxy.resetStats();
    await pullBaseImage(ref, amd64, pulled.store, options);
    assert.deepEqual(fixture.proxy.log.map((entry) => `${entry.method} ${entry.path}`), ['HEAD /v2/cache/app/manifests/1']);

    // UVIMAGE_TAG_TTL_SECONDS=0: always asks (HEAD only, the documents are cached).
    fixture.proxy.resetStats();
    await pullBaseImage(ref, amd64, pulled.store, { ...options, env: { UVIMAGE_TAG_TTL_SECONDS: '0' } });
    assert.deepEqual(fixture.proxy.log.map((entry) => entry.method), ['HEAD']);
    await assert.rejects(
      pullBaseImage(ref, amd64, pulled.store, { ...options, env: { UVIMAGE_TAG_TTL_SECONDS: 'soon' } }),
      /UVIMAGE_TAG_TTL_SECONDS must be a whole number/,
    );
  } finally {
    await pulled.cleanup();
  }
});

test('a digest-pinned base whose documents are cached needs no registry (it is stopped)', async () => {
  const own = await startRegistry();
  let stopped = false;
  const pulled = await tempStore();
  try {
    const image = makeImage({ layers: [await makeLayer(fixture.local.store, { 'pinned.txt': 'pinned' })] });
    await new RegistrySink([`${own.host}/pinned/base:1`], { retry: fastRetry }).write({ kind: 'image', image }, sinkContext(countingBlobSource(fixture.local.store)));
    const pinned = `${own.host}/pinned/base@${image.manifest.descriptor.digest}`;
    const online = await pullBaseImage(pinned, amd64, pulled.store, { retry: fastRetry });
    const byTag = await pullBaseImage(`${own.host}/pinned/base:1`, amd64, pulled.store, { retry: fastRetry });
    await own.stop();
    stopped = true;

    const offline = await pullBaseImage(pinned, amd64, pulled.store, { retry: fastRetry });
    assert.deepEqual(offline, online);
    assert.equal(offline.manifestDigest, image.manifest.descriptor.digest);
    // A tag within its TTL too; past it, the registry is needed and its absence is a UserError.
    assert.deepEqual(await pullBaseImage(`${own.host}/pinned/base:1`, amd64, pulled.store, { retry: fastRetry }), byTag);
    await assert.rejects(
      pullBaseImage(`${own.host}/pinned/base:1`, amd64, pulled.store, { retry: fastRetry, tagTtlSeconds: 0 }),
      (error: unknown) => error instanceof UserError && error.message.startsWith(`cannot reach registry ${own.host}: connect ECONNREFUSED`),
    );
  } finally {
    if (!stopped) await own.stop();
    await pulled.cleanup();
  }
});

test('a Docker manifest list: the platform is chosen, arm64 matches arm64/v8', async () => {
  const amdImage = makeImage({ platform: amd64, layers: [await makeLayer(fixture.local.store, { 'd.txt': 'amd' })], flavour: 'docker' });
  const armImage = makeImage({ platform: arm64, layers: [await makeLayer(fixture.local.store, { 'd.txt': 'arm' })], flavour: 'docker' });
  const index = assembleIndex([amdImage, armImage], { flavour: 'docker' });
  assert.equal(index.index.descriptor.mediaType, MediaType.dockerManifestList);
  const ref = `${fixture.registry.host}/lists/docker:1`;
  await new RegistrySink([ref], { retry: fastRetry }).write({ kind: 'index', index }, sinkContext(countingBlobSource(fixture.local.store)));
  const pulled = await tempStore();
  try {
    const arm = await pullBaseImage(ref, { os: 'linux', architecture: 'arm64' }, pulled.store, { retry: fastRetry });
    assert.equal(arm.manifestDigest, index.index.descriptor.digest);
    assert.deepEqual(arm.platform, arm64);
    assert.deepEqual(arm.layers.map((layer) => layer.descriptor.mediaType), [MediaType.dockerLayerGzip]);
    assert.deepEqual(arm.layers.map((layer) => layer.diffId), armImage.layers.map((layer) => layer.diffId));
    await assert.rejects(
      pullBaseImage(ref, { os: 'linux', architecture: 'arm', variant: 'v7' }, pulled.store, { retry: fastRetry }),
      (error: unknown) => error instanceof UserError && error.message === `base image ${ref} has no linux/arm/v7; it has linux/amd64, linux/arm64/v8`,
    );
  } finally {
    await pulled.cleanup();
  }
});

test('index entries that are not images (attestations) are neither chosen nor listed', async () => {
  const image = makeImage({ platform: amd64, layers: [await makeLayer(fixture.local.store, { 'att.txt': 'x' })] });
  await push(`${fixture.registry.host}/lists/attested:base`, image);
  const index = serializeDocument(
    {
      schemaVersion: 2,
      mediaType: MediaType.ociIndex,
      manifests: [
        { ...image.manifest.descriptor, platform: amd64 },
        { mediaType: MediaType.ociManifest, digest: image.manifest.descriptor.digest, size: image.manifest.descriptor.size, platform: { os: 'unknown', architecture: 'unknown' } },
      ],
    },
    MediaType.ociIndex,
  );
  const client = new RegistryClient({ retry: fastRetry });
  await client.putManifest({ registry: fixture.registry.host, repository: 'lists/attested' }, '1', { ...index.descriptor, bytes: index.bytes });
  const pulled = await tempStore();
  try {
    await assert.rejects(
      pullBaseImage(`${fixture.registry.host}/lists/attested:1`, { os: 'linux', architecture: 's390x' }, pulled.store, { client }),
      (error: unknown) => error instanceof UserError && error.message === `base image ${fixture.registry.host}/lists/attested:1 has no linux/s390x; it has linux/amd64`,
    );
    const base = await pullBaseImage(`${fixture.registry.host}/lists/attested:1`, amd64, pulled.store, { client });
    assert.equal(base.manifestDigest, index.descriptor.digest);
  } finally {
    await pulled.cleanup();
  }
});

test('a single-platform manifest of another platform is refused, naming what it is', async () => {
  const image = makeImage({ platform: amd64, layers: [await makeLayer(fixture.local.store, { 'single.txt': 'x' })] });
  await push(`${fixture.registry.host}/single/app:1`, image);
  const pulled = await tempStore();
  try {
    await assert.rejects(
      pullBaseImage(`${fixture.registry.host}/single/app:1`, arm64, pulled.store, { retry: fastRetry }),
      (error: unknown) => error instanceof UserError && error.message === `base image ${fixture.registry.host}/single/app:1 has no linux/arm64/v8; it has linux/amd64`,
    );
  } finally {
    await pulled.cleanup();
  }
});

test('a missing tag or repository is a UserError naming it', async () => {
  const pulled = await tempStore();
  try {
    await assert.rejects(pullBaseImage(`${fixture.registry.host}/nothing/here:1`, amd64, pulled.store, { retry: fastRetry }), (error: unknown) => {
      assert.ok(error instanceof UserError);
      assert.match(error.message, new RegExp(`^registry ${fixture.registry.host} has no manifest ${fixture.registry.host}/nothing/here:1 \\(404`));
      return true;
    });
  } finally {
    await pulled.cleanup();
  }
});
