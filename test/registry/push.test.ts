/**
 * Push and pull against a real registry (distribution 2.8, anonymous), cross-checked with
 * skopeo: round trips, skipped and mounted blobs, multi-platform indexes, chunked uploads,
 * and the errors a user sees for an unreachable registry.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { UserError } from '../../src/errors.js';
import { sha256Digest } from '../../src/oci/digest.js';
import { assembleIndex, type Artifact } from '../../src/oci/image.js';
import { MediaType } from '../../src/oci/media-types.js';
import { RegistryClient } from '../../src/registry/client.js';
import { pullBaseImage } from '../../src/registry/pull.js';
import { RegistrySink } from '../../src/registry/push.js';
import { freePort, startRegistry, type TestRegistry } from '../harness/registry.js';
import {
  amd64,
  arm64,
  countingBlobSource,
  fastRetry,
  makeImage,
  makeLayer,
  sinkContext,
  skopeo,
  tempDir,
  tempStore,
  type TempStore,
} from './helpers.js';

let registry: TestRegistry;
let local: TempStore;

before(async () => {
  registry = await startRegistry();
  local = await tempStore();
});

after(async () => {
  await registry?.stop();
  await local?.cleanup();
});

test('push an image, pull it back: same config and layers; a second push uploads nothing', async () => {
  const { store } = local;
  const layers = [await makeLayer(store, { 'app/a.txt': 'hello' }), await makeLayer(store, { 'app/b.txt': 'world'.repeat(1000) })];
  const image = makeImage({ layers });
  const artifact: Artifact = { kind: 'image', image };
  const ref = `${registry.host}/round/trip:1`;
  const client = new RegistryClient({ retry: fastRetry });

  const sink = new RegistrySink([ref, `${registry.host}/round/trip:latest`], { client });
  const result = await sink.write(artifact, sinkContext(countingBlobSource(store)));
  assert.equal(result.sink, 'push');
  assert.equal(result.digest, image.manifest.descriptor.digest);
  assert.deepEqual(result.written, [ref, `${registry.host}/round/trip:latest`]);
  const expectedBytes = layers.reduce((sum, layer) => sum + layer.descriptor.size, 0) + image.config.descriptor.size;
  assert.equal(result.bytes, expectedBytes);
  assert.deepEqual(result.details, { uploadedBlobs: 3, skippedBlobs: 0, mountedBlobs: 0, transferredBytes: expectedBytes });

  // Pull into a fresh store: config equal, layers equal (digests, diff_ids, origin), blobs fetched and verified.
  const other = await tempStore();
  try {
    const base = await pullBaseImage(ref, amd64, other.store, { client });
    assert.equal(base.manifestDigest, image.manifest.descriptor.digest);
    assert.deepEqual(base.config, JSON.parse(image.config.bytes.toString('utf8')));
    assert.deepEqual(
      base.layers.map((layer) => [layer.descriptor.digest, layer.descriptor.size, layer.diffId]),
      image.layers.map((layer) => [layer.descriptor.digest, layer.descriptor.size, layer.diffId]),
    );
    assert.deepEqual(base.layers[0]!.origin, { registry: registry.host, repository: 'round/trip' });
    assert.deepEqual(base.platform, amd64);
    const source = countingBlobSource(other.store, client);
    for (const layer of base.layers) await source.ensureLayer(layer);
    for (const layer of image.layers) {
      assert.deepEqual(await other.store.readBytes(layer.descriptor.digest), await store.readBytes(layer.descriptor.digest));
    }
    assert.equal(source.fetched.length, 2);
  } finally {
    await other.cleanup();
  }

  // Same image again: every blob is already there, zero blob bytes go up, nothing is read.
  const source = countingBlobSource(store);
  const again = await new RegistrySink([ref], { client }).write(artifact, sinkContext(source));
  assert.equal(again.bytes, 0);
  assert.deepEqual(again.details, { uploadedBlobs: 0, skippedBlobs: 3, mountedBlobs: 0, transferredBytes: 0 });
  assert.deepEqual(source.opened, []);
});

test('skopeo reads what we pushed, and we pull what skopeo pushed', async () => {
  const { store } = local;
  const layer = await makeLayer(store, { 'etc/skopeo.txt': 'interop' });
  const image = makeImage({ layers: [layer], flavour: 'docker' });
  const ref = `${registry.host}/interop/ours:1`;
  await new RegistrySink([ref], { retry: fastRetry }).write({ kind: 'image', image }, sinkContext(countingBlobSource(store)));

  const inspect = JSON.parse(await skopeo(['inspect', '--tls-verify=false', `docker://${ref}`])) as {
    Digest: string;
    Layers: string[];
    Architecture: string;
  };
  assert.equal(inspect.Digest, image.manifest.descriptor.digest);
  assert.deepEqual(inspect.Layers, [layer.descriptor.digest]);
  assert.equal(inspect.Architecture, 'amd64');

  const out = await tempDir();
  try {
    await skopeo(['copy', '--src-tls-verify=false', `docker://${ref}`, `oci:${join(out.dir, 'layout')}:x`]);
    const index = JSON.parse(await readFile(join(out.dir, 'layout', 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    const manifestDigest = index.manifests[0]!.digest;
    const manifest = JSON.parse(await readFile(join(out.dir, 'layout', 'blobs', 'sha256', manifestDigest.slice(7)), 'utf8')) as {
      layers: { digest: string }[];
    };
    // skopeo converts to OCI media types but keeps the layer bytes.
    assert.deepEqual(manifest.layers.map((entry) => entry.digest), [layer.descriptor.digest]);
    const blob = await readFile(join(out.dir, 'layout', 'blobs', 'sha256', layer.descriptor.digest.slice(7)));
    assert.equal(sha256Digest(blob), layer.descriptor.digest);
  } finally {
    await out.cleanup();
  }

  // skopeo pushes a copy to another repository (in OCI form); we pull that.
  const theirs = `${registry.host}/interop/theirs:2`;
  await skopeo(['copy', '--src-tls-verify=false', '--dest-tls-verify=false', '--format', 'oci', `docker://${ref}`, `docker://${theirs}`]);
  const pulled = await tempStore();
  try {
    const base = await pullBaseImage(theirs, amd64, pulled.store, { retry: fastRetry });
    assert.deepEqual(base.layers.map((entry) => entry.descriptor.digest), [layer.descriptor.digest]);
    assert.deepEqual(base.config.rootfs.diff_ids, [layer.diffId]);
    assert.deepEqual(base.config.config?.Cmd, ['/bin/true']);
    const source = countingBlobSource(pulled.store, { retry: fastRetry });
    await source.ensureLayer(base.layers[0]!);
    assert.ok(await pulled.store.hasIntact(layer.descriptor.digest));
  } finally {
    await pulled.cleanup();
  }
});

test('layers of a base in another repository of the same registry are mounted, never downloaded', async () => {
  const { store } = local;
  const baseLayer = await makeLayer(store, { 'base/os-release': 'ID=test' });
  const baseImage = makeImage({ layers: [baseLayer] });
  const baseRef = `${registry.host}/library/base:1`;
  await new RegistrySink([baseRef], { retry: fastRetry }).write({ kind: 'image', image: baseImage }, sinkContext(countingBlobSource(store)));

  // Pull the base into an empty store: its layers are known only by origin.
  const app = await tempStore();
  try {
    const client = new RegistryClient({ retry: fastRetry });
    const base = await pullBaseImage(baseRef, amd64, app.store, { client });
    assert.equal(await app.store.has(baseLayer.descriptor.digest), false);
    const appLayer = await makeLayer(app.store, { 'app/main.py': 'print(1)' });
    const image = makeImage({ layers: [appLayer], base });
    const source = countingBlobSource(app.store, client);
    const result = await new RegistrySink([`${registry.host}/me/app:1`], { client }).write({ kind: 'image', image }, sinkContext(source));
    assert.deepEqual(result.details, { uploadedBlobs: 2, skippedBlobs: 0, mountedBlobs: 1, transferredBytes: result.bytes });
    assert.equal(result.bytes, appLayer.descriptor.size + image.config.descriptor.size);
    // The base layer was never fetched nor read.
    assert.deepEqual(source.fetched, []);
    assert.deepEqual(source.opened, [appLayer.descriptor.digest]);
    assert.equal(await app.store.has(baseLayer.descriptor.digest), false);
    const inspect = JSON.parse(await skopeo(['inspect', '--tls-verify=false', `docker://${registry.host}/me/app:1`])) as { Layers: string[] };
    assert.deepEqual(inspect.Layers, [baseLayer.descriptor.digest, appLayer.descriptor.digest]);

    // Pushing to several repositories at once: the second one mounts from the first.
    const multi = await new RegistrySink([`${registry.host}/multi/one:1`, `${registry.host}/multi/two:1`, `${registry.host}/multi/two:stable`], {
      client,
    }).write({ kind: 'image', image }, sinkContext(countingBlobSource(app.store, client)));
    assert.deepEqual(multi.written, [
      `${registry.host}/multi/one:1`,
      `${registry.host}/multi/two:1`,
      `${registry.host}/multi/two:stable`,
    ]);
    assert.equal(multi.details!.mountedBlobs, 1 + 3);
    assert.equal(multi.details!.uploadedBlobs, 2);
  } finally {
    await app.cleanup();
  }
});

test('an index of two platforms is pushed, skopeo shows it, and each platform pulls back', async () => {
  const { store } = local;
  const shared = await makeLayer(store, { 'shared.txt': 'both' });
  const amdImage = makeImage({ platform: amd64, layers: [shared, await makeLayer(store, { 'arch.txt': 'amd64' })] });
  const armImage = makeImage({ platform: arm64, layers: [shared, await makeLayer(store, { 'arch.txt': 'arm64' })] });
  const index = assembleIndex([amdImage, armImage]);
  const ref = `${registry.host}/multi/arch:1`;
  const result = await new RegistrySink([ref], { retry: fastRetry }).write({ kind: 'index', index }, sinkContext(countingBlobSource(store)));
  assert.equal(result.digest, index.index.descriptor.digest);
  // shared layer once, two arch layers, two configs
  assert.equal(result.details!.uploadedBlobs, 5);

  const raw = await skopeo(['inspect', '--tls-verify=false', '--raw', `docker://${ref}`]);
  assert.equal(raw, index.index.bytes.toString('utf8'));
  const parsed = JSON.parse(raw) as { mediaType: string; manifests: { digest: string; platform: { architecture: string } }[] };
  assert.equal(parsed.mediaType, MediaType.ociIndex);
  assert.deepEqual(parsed.manifests.map((entry) => entry.platform.architecture), ['amd64', 'arm64']);

  const pulled = await tempStore();
  try {
    const arm = await pullBaseImage(ref, { os: 'linux', architecture: 'arm64' }, pulled.store, { retry: fastRetry });
    assert.equal(arm.manifestDigest, index.index.descriptor.digest);
    assert.deepEqual(arm.platform, arm64);
    assert.deepEqual(arm.layers.map((layer) => layer.descriptor.digest), armImage.layers.map((layer) => layer.descriptor.digest));
    const amd = await pullBaseImage(ref, amd64, pulled.store, { retry: fastRetry });
    assert.deepEqual(amd.layers.map((layer) => layer.diffId), amdImage.layers.map((layer) => layer.diffId));
    await assert.rejects(
      pullBaseImage(ref, { os: 'linux', architecture: 's390x' }, pulled.store, { retry: fastRetry }),
      (error: unknown) =>
        error instanceof UserError && error.message === `base image ${ref} has no linux/s390x; it has linux/amd64, linux/arm64/v8`,
    );
  } finally {
    await pulled.cleanup();
  }
});

test('a blob larger than the chunk size goes up in chunks and arrives intact', async () => {
  const { store } = local;
  // Incompressible content, so the layer is larger than the chunk size.
  const layer = await makeLayer(store, { 'big.bin': randomBytes(300 * 1024) });
  assert.ok(layer.descriptor.size > 200 * 1024);
  const image = makeImage({ layers: [layer] });
  const client = new RegistryClient({ retry: fastRetry, chunkSize: 64 * 1024 });
  const ref = `${registry.host}/chunked/app:1`;
  const result = await new RegistrySink([ref], { client }).write({ kind: 'image', image }, sinkContext(countingBlobSource(store)));
  assert.equal(result.details!.uploadedBlobs, 2);
  const pulled = await tempStore();
  try {
    const base = await pullBaseImage(ref, amd64, pulled.store, { client });
    await countingBlobSource(pulled.store, client).ensureLayer(base.layers[0]!);
    assert.ok(await pulled.store.hasIntact(layer.descriptor.digest));
  } finally {
    await pulled.cleanup();
  }
});

test('pushing to a digest that is not the image digest is refused', async () => {
  const { store } = local;
  const image = makeImage({ layers: [await makeLayer(store, { x: 'y' })] });
  const wrong = sha256Digest('something else');
  await assert.rejects(
    new RegistrySink([`${registry.host}/pinned/app@${wrong}`], { retry: fastRetry }).write({ kind: 'image', image }, sinkContext(countingBlobSource(store))),
    (error: unknown) => error instanceof UserError && /names a digest/.test(error.message),
  );
  const right = `${registry.host}/pinned/app@${image.manifest.descriptor.digest}`;
  const result = await new RegistrySink([right], { retry: fastRetry }).write({ kind: 'image', image }, sinkContext(countingBlobSource(store)));
  assert.deepEqual(result.written, [right]);
});

test('an unreachable registry is a one-line UserError', async () => {
  const port = await freePort();
  const { store } = local;
  const image = makeImage({ layers: [await makeLayer(store, { x: 'unreachable' })] });
  const started = Date.now();
  await assert.rejects(
    new RegistrySink([`127.0.0.1:${port}/me/app:1`], { retry: fastRetry }).write({ kind: 'image', image }, sinkContext(countingBlobSource(store))),
    (error: unknown) => {
      assert.ok(error instanceof UserError);
      assert.equal(error.message, `cannot reach registry 127.0.0.1:${port}: connect ECONNREFUSED 127.0.0.1:${port}`);
      return true;
    },
  );
  await assert.rejects(pullBaseImage(`127.0.0.1:${port}/me/app:1`, amd64, store, { retry: fastRetry }), /^UserError: cannot reach registry/);
  assert.ok(Date.now() - started < 10_000);
});

test('a base from another registry is downloaded once, only because the target lacks it', async () => {
  const other = await startRegistry();
  const app = await tempStore();
  try {
    const { store } = local;
    const baseLayer = await makeLayer(store, { 'elsewhere.txt': 'from another registry' });
    await new RegistrySink([`${other.host}/upstream/base:1`], { retry: fastRetry }).write(
      { kind: 'image', image: makeImage({ layers: [baseLayer] }) },
      sinkContext(countingBlobSource(store)),
    );
    const client = new RegistryClient({ retry: fastRetry });
    const base = await pullBaseImage(`${other.host}/upstream/base:1`, amd64, app.store, { client });
    const image = makeImage({ layers: [await makeLayer(app.store, { 'app.txt': 'app' })], base });
    const source = countingBlobSource(app.store, client);
    const result = await new RegistrySink([`${registry.host}/downstream/app:1`], { client }).write({ kind: 'image', image }, sinkContext(source));
    assert.equal(result.details!.uploadedBlobs, 3);
    assert.equal(result.details!.mountedBlobs, 0);
    assert.deepEqual(source.fetched, [baseLayer.descriptor.digest]);
    assert.ok(await app.store.hasIntact(baseLayer.descriptor.digest));
  } finally {
    await app.cleanup();
    await other.stop();
  }
});
