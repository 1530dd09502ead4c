/**
 * A real registry behind a fault-injecting proxy: server errors, rate limiting, connections
 * dropped or cut mid-upload, a manipulated blob, a malformed manifest, a manifest digest the
 * registry disagrees with. Pushes must survive the transient faults (and the image pull back
 * intact); the others must be one-line UserErrors that leave nothing behind.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { UserError } from '../../src/errors.js';
import type { Image } from '../../src/oci/image.js';
import { RegistryClient } from '../../src/registry/client.js';
import { fetchLayerBlob, pullBaseImage } from '../../src/registry/pull.js';
import { RegistrySink } from '../../src/registry/push.js';
import { amd64, countingBlobSource, fastRetry, makeImage, makeLayer, registryBehindFaultProxy, sinkContext, tempStore } from './helpers.js';

const fixture = registryBehindFaultProxy();

async function bigImage(label: string, bytes = 300 * 1024): Promise<Image> {
  return makeImage({ layers: [await makeLayer(fixture.local.store, { [`${label}.bin`]: randomBytes(bytes) })] });
}

/** Pulls `ref` directly from the registry into a fresh store and checks every blob. */
async function assertPullsBackIntact(ref: string, image: Image): Promise<void> {
  const pulled = await tempStore();
  try {
    const client = new RegistryClient({ retry: fastRetry });
    const base = await pullBaseImage(ref, amd64, pulled.store, { client });
    assert.equal(base.manifestDigest, image.manifest.descriptor.digest);
    for (const layer of base.layers) {
      await fetchLayerBlob(layer, pulled.store, client);
      assert.ok(await pulled.store.hasIntact(layer.descriptor.digest));
    }
  } finally {
    await pulled.cleanup();
  }
}

function uploadStarts(): number {
  return fixture.proxy.log.filter((entry) => entry.method === 'POST' && /\/blobs\/uploads\/$/.test(entry.path)).length;
}

test('500s on uploads and manifests are retried; the image arrives intact', async () => {
  const image = await bigImage('five-hundred');
  fixture.proxy.resetStats();
  fixture.proxy.setRules([
    { method: 'PUT', path: /\/blobs\/uploads\//, times: 2, action: { kind: 'status', status: 500 } },
    { method: 'POST', path: /\/blobs\/uploads\/$/, times: 1, action: { kind: 'status', status: 503 } },
    { method: 'PUT', path: /\/manifests\//, times: 1, action: { kind: 'status', status: 502 } },
  ]);
  const result = await new RegistrySink([`${fixture.proxy.host}/faults/five:1`], { retry: fastRetry }).write(
    { kind: 'image', image },
    sinkContext(countingBlobSource(fixture.local.store)),
  );
  assert.equal(fixture.proxy.stats.faults, 4);
  assert.equal(result.details!.uploadedBlobs, 2);
  // Bytes counted once per blob, though some went up twice.
  assert.equal(result.bytes, image.layers[0]!.descriptor.size + image.config.descriptor.size);
  fixture.proxy.setRules([]);
  await assertPullsBackIntact(`${fixture.registry.host}/faults/five:1`, image);
});

test('a 429 with Retry-After is honoured', async () => {
  const image = makeImage({ layers: [await makeLayer(fixture.local.store, { 'rate.txt': 'limited' })] });
  fixture.proxy.resetStats();
  fixture.proxy.setRules([{ method: 'PUT', path: /\/manifests\//, times: 1, action: { kind: 'status', status: 429, headers: { 'retry-after': '1' } } }]);
  const started = Date.now();
  await new RegistrySink([`${fixture.proxy.host}/faults/rate:1`], { retry: fastRetry }).write({ kind: 'image', image }, sinkContext(countingBlobSource(fixture.local.store)));
  const elapsed = Date.now() - started;
  assert.equal(fixture.proxy.stats.faults, 1);
  assert.ok(elapsed >= 950, `waited ${elapsed} ms, less than Retry-After`);
  fixture.proxy.setRules([]);
  await assertPullsBackIntact(`${fixture.registry.host}/faults/rate:1`, image);
});

test('a connection cut midway through a monolithic upload body: the upload starts over', async () => {
  const image = await bigImage('cut-monolithic');
  fixture.proxy.resetStats();
  fixture.proxy.setRules([{ method: 'PUT', path: /\/blobs\/uploads\//, times: 1, action: { kind: 'reset-midway', afterBytes: 50_000 } }]);
  const result = await new RegistrySink([`${fixture.proxy.host}/faults/cut:1`], { retry: fastRetry }).write(
    { kind: 'image', image },
    sinkContext(countingBlobSource(fixture.local.store)),
  );
  assert.equal(fixture.proxy.stats.faults, 1);
  assert.equal(result.details!.uploadedBlobs, 2);
  assert.equal(uploadStarts(), 3); // the layer twice, the config once
  fixture.proxy.setRules([]);
  await assertPullsBackIntact(`${fixture.registry.host}/faults/cut:1`, image);
});

test('a chunk whose connection drops before reaching the registry: the upload resumes from its Range', async () => {
  const image = await bigImage('resume');
  const size = image.layers[0]!.descriptor.size;
  const client = new RegistryClient({ retry: fastRetry, chunkSize: 64 * 1024 });
  fixture.proxy.resetStats();
  fixture.proxy.setRules([{ method: 'PATCH', skip: 2, times: 1, action: { kind: 'drop' } }]);
  await new RegistrySink([`${fixture.proxy.host}/faults/resume:1`], { client }).write({ kind: 'image', image }, sinkContext(countingBlobSource(fixture.local.store)));
  assert.equal(fixture.proxy.stats.faults, 1);
  const statusChecks = fixture.proxy.log.filter((entry) => entry.method === 'GET' && /\/blobs\/uploads\/./.test(entry.path));
  assert.equal(statusChecks.length, 1);
  assert.equal(statusChecks[0]!.status, 204);
  assert.equal(uploadStarts(), 2); // no restart: layer and config once each
  // Chunks sent: ceil(size/64K) plus the one dropped (which never reached the registry).
  const patches = fixture.proxy.log.filter((entry) => entry.method === 'PATCH').length;
  assert.equal(patches, Math.ceil(size / (64 * 1024)) + 1);
  fixture.proxy.setRules([]);
  await assertPullsBackIntact(`${fixture.registry.host}/faults/resume:1`, image);
});

test('a chunk cut midway (the registry kept part of it): the upload starts over when it cannot resume', async () => {
  const image = await bigImage('cut-chunk');
  const client = new RegistryClient({ retry: fastRetry, chunkSize: 64 * 1024 });
  fixture.proxy.resetStats();
  fixture.proxy.setRules([{ method: 'PATCH', skip: 1, times: 1, action: { kind: 'reset-midway', afterBytes: 10_000 } }]);
  const result = await new RegistrySink([`${fixture.proxy.host}/faults/cutchunk:1`], { client }).write(
    { kind: 'image', image },
    sinkContext(countingBlobSource(fixture.local.store)),
  );
  assert.equal(fixture.proxy.stats.faults, 1);
  assert.equal(result.details!.uploadedBlobs, 2);
  // distribution 2.8 cancels an upload whose size no longer matches its state token, so the
  // status check finds nothing to resume and the layer is uploaded again from the start.
  const statusChecks = fixture.proxy.log.filter((entry) => entry.method === 'GET' && /\/blobs\/uploads\/./.test(entry.path));
  assert.equal(statusChecks.length, 1);
  assert.notEqual(statusChecks[0]!.status, 204);
  assert.equal(uploadStarts(), 3);
  fixture.proxy.setRules([]);
  await assertPullsBackIntact(`${fixture.registry.host}/faults/cutchunk:1`, image);
});

test('a manipulated blob fails the pull with a digest mismatch and leaves nothing in the store', async () => {
  const image = await bigImage('flipped', 50 * 1024);
  await new RegistrySink([`${fixture.registry.host}/faults/flip:1`], { retry: fastRetry }).write({ kind: 'image', image }, sinkContext(countingBlobSource(fixture.local.store)));
  const pulled = await tempStore();
  try {
    const client = new RegistryClient({ retry: fastRetry });
    const base = await pullBaseImage(`${fixture.proxy.host}/faults/flip:1`, amd64, pulled.store, { client });
    const layer = base.layers[0]!;
    fixture.proxy.setRules([{ method: 'GET', path: /\/blobs\/sha256:/, action: { kind: 'flip-byte' } }]);
    await assert.rejects(fetchLayerBlob(layer, pulled.store, client), (error: unknown) => {
      assert.ok(error instanceof UserError);
      assert.match(error.message, new RegExp(`^blob ${layer.descriptor.digest} from ${fixture.proxy.host}/faults/flip does not match its digest`));
      return true;
    });
    assert.equal(await pulled.store.has(layer.descriptor.digest), false);
    assert.deepEqual(await readdir(join(pulled.dir, 'tmp')), []);
    const blobs = await readdir(join(pulled.dir, 'blobs', 'sha256'));
    assert.ok(!blobs.includes(layer.descriptor.digest.slice(7)));
  } finally {
    fixture.proxy.setRules([]);
    await pulled.cleanup();
  }
});

test('a malformed manifest is a UserError', async () => {
  const image = makeImage({ layers: [await makeLayer(fixture.local.store, { 'malformed.txt': 'x' })] });
  await new RegistrySink([`${fixture.registry.host}/faults/malformed:1`], { retry: fastRetry }).write({ kind: 'image', image }, sinkContext(countingBlobSource(fixture.local.store)));
  const pulled = await tempStore();
  fixture.proxy.setRules([
    { method: 'HEAD', path: /\/manifests\//, action: { kind: 'strip-headers', headers: ['docker-content-digest'] } },
    { method: 'GET', path: /\/manifests\//, action: { kind: 'replace-body', body: '{"schemaVersion": 2, "layers": [' } },
  ]);
  try {
    await assert.rejects(
      pullBaseImage(`${fixture.proxy.host}/faults/malformed:1`, amd64, pulled.store, { retry: fastRetry }),
      (error: unknown) => error instanceof UserError && error.message === `manifest for ${fixture.proxy.host}/faults/malformed:1 is not valid JSON`,
    );
    // Served for a digest, wrong bytes are a digest mismatch, whatever they hold.
    await assert.rejects(
      pullBaseImage(`${fixture.proxy.host}/faults/malformed@${image.manifest.descriptor.digest}`, amd64, pulled.store, { retry: fastRetry }),
      (error: unknown) => error instanceof UserError && /does not match its digest/.test(error.message),
    );
  } finally {
    fixture.proxy.setRules([]);
    await pulled.cleanup();
  }
});

test('a registry that reports another digest for a pushed manifest is a UserError', async () => {
  const image = makeImage({ layers: [await makeLayer(fixture.local.store, { 'other-digest.txt': 'x' })] });
  fixture.proxy.setRules([
    {
      method: 'PUT',
      path: /\/manifests\//,
      action: { kind: 'status', status: 201, headers: { 'docker-content-digest': `sha256:${'0'.repeat(64)}` }, body: '' },
    },
  ]);
  try {
    await assert.rejects(
      new RegistrySink([`${fixture.proxy.host}/faults/digest:1`], { retry: fastRetry }).write({ kind: 'image', image }, sinkContext(countingBlobSource(fixture.local.store))),
      (error: unknown) =>
        error instanceof UserError &&
        error.message ===
          `registry ${fixture.proxy.host} stored manifest ${fixture.proxy.host}/faults/digest:1 as sha256:${'0'.repeat(64)}, but its digest is ${image.manifest.descriptor.digest}`,
    );
  } finally {
    fixture.proxy.setRules([]);
  }
});

test('persistent 503s give up with a one-line UserError', async () => {
  fixture.proxy.setRules([{ method: 'GET', path: /\/manifests\//, action: { kind: 'status', status: 503 } }]);
  const pulled = await tempStore();
  try {
    await assert.rejects(
      pullBaseImage(`${fixture.proxy.host}/faults/five@sha256:${'1'.repeat(64)}`, amd64, pulled.store, { retry: fastRetry }),
      (error: unknown) =>
        error instanceof UserError &&
        error.message === `registry ${fixture.proxy.host} failed to get manifest ${fixture.proxy.host}/faults/five@sha256:${'1'.repeat(64)} (503: UNKNOWN injected fault)`,
    );
  } finally {
    fixture.proxy.setRules([]);
    await pulled.cleanup();
  }
});

test('an error answered while the upload body is still being sent is retried', async () => {
  const image = await bigImage('early', 4 * 1024 * 1024);
  fixture.proxy.resetStats();
  fixture.proxy.setRules([{ method: 'PUT', path: /\/blobs\/uploads\//, times: 1, action: { kind: 'status', status: 500, early: true } }]);
  const result = await new RegistrySink([`${fixture.proxy.host}/faults/early:1`], { retry: fastRetry }).write(
    { kind: 'image', image },
    sinkContext(countingBlobSource(fixture.local.store)),
  );
  assert.equal(fixture.proxy.stats.faults, 1);
  assert.equal(result.details!.uploadedBlobs, 2);
  fixture.proxy.setRules([]);
  await assertPullsBackIntact(`${fixture.registry.host}/faults/early:1`, image);
});

test('dropped connections and 408s on reads are retried', async () => {
  const image = await bigImage('reads', 20 * 1024);
  await new RegistrySink([`${fixture.registry.host}/faults/reads:1`], { retry: fastRetry }).write({ kind: 'image', image }, sinkContext(countingBlobSource(fixture.local.store)));
  fixture.proxy.resetStats();
  fixture.proxy.setRules([
    { method: 'HEAD', path: /\/manifests\//, times: 1, action: { kind: 'drop' } },
    { method: 'GET', path: /\/manifests\//, times: 1, action: { kind: 'drop' } },
    { method: 'GET', path: /\/blobs\/sha256:/, times: 2, action: { kind: 'status', status: 408 } },
  ]);
  const pulled = await tempStore();
  try {
    const client = new RegistryClient({ retry: fastRetry });
    const base = await pullBaseImage(`${fixture.proxy.host}/faults/reads:1`, amd64, pulled.store, { client });
    await fetchLayerBlob(base.layers[0]!, pulled.store, client);
    assert.ok(await pulled.store.hasIntact(image.layers[0]!.descriptor.digest));
    assert.equal(fixture.proxy.stats.faults, 4);
  } finally {
    fixture.proxy.setRules([]);
    await pulled.cleanup();
  }
});

test('a declined mount (202) uploads to the location the registry returned', async () => {
  const layer = await makeLayer(fixture.local.store, { 'declined.txt': 'not in the source repository' });
  const image = makeImage({ layers: [{ ...layer, origin: { registry: fixture.proxy.host, repository: 'faults/nowhere' } }] });
  fixture.proxy.resetStats();
  const result = await new RegistrySink([`${fixture.proxy.host}/faults/declined:1`], { retry: fastRetry }).write(
    { kind: 'image', image },
    sinkContext(countingBlobSource(fixture.local.store)),
  );
  assert.deepEqual(result.details, { uploadedBlobs: 2, skippedBlobs: 0, mountedBlobs: 0, transferredBytes: result.bytes });
  // One POST for the layer (the mount attempt, whose upload was used) and one for the config.
  assert.equal(uploadStarts(), 2);
  await assertPullsBackIntact(`${fixture.registry.host}/faults/declined:1`, image);
});

test('a refusal answered mid-upload is reported with the registry\'s own message', async () => {
  const image = await bigImage('refused', 4 * 1024 * 1024);
  fixture.proxy.setRules([
    {
      method: 'PUT',
      path: /\/blobs\/uploads\//,
      action: { kind: 'status', status: 413, early: true, body: JSON.stringify({ errors: [{ code: 'SIZE_INVALID', message: 'blob too large' }] }) },
    },
  ]);
  try {
    await assert.rejects(
      new RegistrySink([`${fixture.proxy.host}/faults/refused:1`], { retry: fastRetry }).write({ kind: 'image', image }, sinkContext(countingBlobSource(fixture.local.store))),
      (error: unknown) =>
        error instanceof UserError &&
        error.message === `registry ${fixture.proxy.host} failed to upload blob ${image.layers[0]!.descriptor.digest} to faults/refused (413: SIZE_INVALID blob too large)`,
    );
  } finally {
    fixture.proxy.setRules([]);
  }
});
