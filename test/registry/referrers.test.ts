/**
 * OCI referrers (SBOMs attached to images) in a real registry and in an OCI layout: Debian's
 * docker-registry (distribution 2.8) has no referrers API, so the push keeps the referrers tag
 * schema's index (`sha256-<hex>`), merged with what others put there; a second push puts
 * nothing (counted at a fault proxy in front of the registry, forwarding everything). The
 * layout lists the referrer manifests in index.json beside the image, and skopeo reads both.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { sha256Digest } from '../../src/oci/digest.js';
import type { Artifact } from '../../src/oci/image.js';
import { MediaType } from '../../src/oci/media-types.js';
import { emptyConfig, makeReferrer, mergeReferrersIndex, referrersTag, type Referrer } from '../../src/oci/referrers.js';
import { OciLayoutSink } from '../../src/oci/sinks/oci-layout.js';
import { RegistryClient } from '../../src/registry/client.js';
import { RegistrySink } from '../../src/registry/push.js';
import { countingBlobSource, fastRetry, makeImage, makeLayer, registryBehindFaultProxy, sinkContext, skopeo, tempDir, tempStore } from './helpers.js';

const fixture = registryBehindFaultProxy();

const created = '2024-01-02T03:04:05Z';

function sboms(subject: Artifact & { kind: 'image' }, text: string): Referrer[] {
  const descriptor = subject.image.manifest.descriptor;
  return [
    makeReferrer({ subject: descriptor, artifactType: 'application/vnd.cyclonedx+json', document: Buffer.from(`{"bomFormat":"CycloneDX","x":"${text}"}`), title: 'linux-amd64.cdx.json', created }),
    makeReferrer({ subject: descriptor, artifactType: 'application/spdx+json', document: Buffer.from(`{"spdxVersion":"SPDX-2.3","x":"${text}"}`), title: 'linux-amd64.spdx.json', created }),
  ];
}

test('a referrer is an image manifest with the subject, the artifactType, the empty config and the document as its layer', async () => {
  const layer = await makeLayer(fixture.local.store, { 'a.txt': 'a' });
  const artifact: Artifact & { kind: 'image' } = { kind: 'image', image: makeImage({ layers: [layer] }) };
  const [cdx] = sboms(artifact, 'one');
  const manifest = JSON.parse(cdx!.manifest.bytes.toString('utf8'));
  assert.equal(manifest.mediaType, MediaType.ociManifest);
  assert.equal(manifest.artifactType, 'application/vnd.cyclonedx+json');
  assert.deepEqual(manifest.subject, { mediaType: MediaType.ociManifest, digest: artifact.image.manifest.descriptor.digest, size: artifact.image.manifest.descriptor.size });
  assert.deepEqual(manifest.config, { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256Digest(Buffer.from('{}')), size: 2 });
  assert.equal(manifest.layers.length, 1);
  assert.equal(manifest.layers[0].digest, sha256Digest(cdx!.blobs[1]!.bytes));
  assert.equal(manifest.layers[0].annotations['org.opencontainers.image.title'], 'linux-amd64.cdx.json');
  assert.equal(cdx!.manifest.descriptor.digest, sha256Digest(cdx!.manifest.bytes));
  assert.equal(referrersTag(artifact.image.manifest.descriptor.digest), artifact.image.manifest.descriptor.digest.replace('sha256:', 'sha256-'));
});

test('the tag-schema index keeps what others listed and adds only what it lacks', async () => {
  const layer = await makeLayer(fixture.local.store, { 'b.txt': 'b' });
  const artifact: Artifact & { kind: 'image' } = { kind: 'image', image: makeImage({ layers: [layer] }) };
  const referrers = sboms(artifact, 'merge');
  const foreign = { mediaType: MediaType.ociManifest, digest: sha256Digest(Buffer.from('someone else')), size: 12, artifactType: 'application/vnd.dev.sigstore.bundle.v0.3+json' };
  const first = mergeReferrersIndex({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [foreign] }, referrers.slice(0, 1));
  assert.equal(first.changed, true);
  const again = mergeReferrersIndex(JSON.parse(first.index.bytes.toString('utf8')), referrers);
  const listed = JSON.parse(again.index.bytes.toString('utf8')).manifests as { digest: string; artifactType: string }[];
  assert.deepEqual(listed.map((entry) => entry.artifactType), ['application/vnd.dev.sigstore.bundle.v0.3+json', 'application/vnd.cyclonedx+json', 'application/spdx+json']);
  const third = mergeReferrersIndex(JSON.parse(again.index.bytes.toString('utf8')), referrers);
  assert.equal(third.changed, false);
});

test('push with referrers: the tag-schema index lists them, they fetch back by digest, a second push puts nothing', async () => {
  const layer = await makeLayer(fixture.local.store, { 'app/c.txt': 'c'.repeat(500) });
  const artifact: Artifact & { kind: 'image' } = { kind: 'image', image: makeImage({ layers: [layer] }) };
  const referrers = sboms(artifact, 'pushed');
  const repo = { registry: fixture.proxy.host, repository: 'sbom/app' };
  const ref = `${fixture.proxy.host}/sbom/app:1`;
  const client = new RegistryClient({ retry: fastRetry });

  // Someone else attached a signature first: it stays listed.
  const signature = makeReferrer({ subject: artifact.image.manifest.descriptor, artifactType: 'application/vnd.example.signature', document: Buffer.from('sig'), title: 'sig', created });
  const tag = referrersTag(artifact.image.manifest.descriptor.digest);
  await new RegistrySink([ref], { client }).write(artifact, sinkContext(countingBlobSource(fixture.local.store)));
  for (const blob of signature.blobs) await client.uploadBlob(repo, { digest: blob.descriptor.digest, size: blob.bytes.length, open: async () => Readable.from([blob.bytes]) });
  await client.putManifest(repo, signature.manifest.descriptor.digest, { mediaType: MediaType.ociManifest, bytes: signature.manifest.bytes, digest: signature.manifest.descriptor.digest });
  const seeded = mergeReferrersIndex(undefined, [signature]).index;
  await client.putManifest(repo, tag, { mediaType: MediaType.ociIndex, bytes: seeded.bytes, digest: seeded.descriptor.digest });

  const result = await new RegistrySink([ref], { client }).write(artifact, { ...sinkContext(countingBlobSource(fixture.local.store)), referrers });
  assert.equal(result.details?.referrersListedBy, 'tag-schema');
  assert.equal(result.details?.referrersPut, 2);
  assert.equal(result.details?.referrerIndexesPut, 1);
  // The empty config and the two documents were uploaded; the image's blobs were there.
  assert.equal(result.details?.uploadedBlobs, 2, 'the two documents (the empty config came with the signature)');

  // Found by the tag schema, as a reader without the API looks: the index names both SBOMs and the signature.
  const index = await client.getManifest(repo, tag);
  const entries = (index.document.manifests as { digest: string; artifactType: string; mediaType: string }[]);
  assert.deepEqual(entries.map((entry) => entry.artifactType), ['application/vnd.example.signature', 'application/vnd.cyclonedx+json', 'application/spdx+json']);
  for (const referrer of referrers) {
    const entry = entries.find((candidate) => candidate.digest === referrer.manifest.descriptor.digest)!;
    const fetched = await client.getManifest(repo, entry.digest);
    assert.deepEqual(fetched.bytes, referrer.manifest.bytes);
    const documentDigest = (fetched.document.layers as { digest: `sha256:${string}` }[])[0]!.digest;
    const other = await tempStore();
    try {
      await client.fetchBlob(repo, documentDigest, other.store);
      assert.deepEqual(await other.store.readBytes(documentDigest), referrer.blobs[1]!.bytes);
    } finally {
      await other.cleanup();
    }
  }
  // skopeo, an independent reader, sees the tag-schema index and a referrer manifest with its subject.
  const raw = JSON.parse(await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${fixture.proxy.host}/sbom/app:${tag}`]));
  assert.equal(raw.manifests.length, 3);
  const referrerRaw = JSON.parse(await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${fixture.proxy.host}/sbom/app@${referrers[0]!.manifest.descriptor.digest}`]));
  assert.equal(referrerRaw.subject.digest, artifact.image.manifest.descriptor.digest);

  // Again: every blob there, every referrer there, the index complete: no upload, no PUT but the tag's.
  fixture.proxy.resetStats();
  fixture.proxy.log.length = 0;
  const again = await new RegistrySink([ref], { client }).write(artifact, { ...sinkContext(countingBlobSource(fixture.local.store)), referrers });
  assert.equal(again.details?.uploadedBlobs, 0);
  assert.equal(again.details?.referrersPut, 0);
  assert.equal(again.details?.referrersKept, 2);
  assert.equal(again.details?.referrerIndexesPut, 0);
  const puts = fixture.proxy.log.filter((entry) => entry.method === 'PUT' || entry.method === 'PATCH' || (entry.method === 'POST' && /uploads/.test(entry.path)));
  assert.deepEqual(puts.map((entry) => `${entry.method} ${entry.path}`), ['PUT /v2/sbom/app/manifests/1']);
});

test('--oci keeps the referrers in the layout: their blobs, and index.json entries with their artifactType; written twice, listed once', async () => {
  const layer = await makeLayer(fixture.local.store, { 'app/d.txt': 'd' });
  const artifact: Artifact & { kind: 'image' } = { kind: 'image', image: makeImage({ layers: [layer] }) };
  const referrers = sboms(artifact, 'layout');
  const { dir, cleanup } = await tempDir();
  try {
    const layout = join(dir, 'layout');
    const sink = new OciLayoutSink(layout, { store: fixture.local.store });
    for (let round = 0; round < 2; round++) await sink.write(artifact, { ...sinkContext(countingBlobSource(fixture.local.store), ['app:1']), referrers });
    const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string; artifactType?: string; annotations?: Record<string, string> }[] };
    assert.deepEqual(index.manifests.map((entry) => entry.artifactType ?? entry.annotations?.['org.opencontainers.image.ref.name']), ['1', 'application/vnd.cyclonedx+json', 'application/spdx+json']);
    for (const referrer of referrers) {
      for (const blob of [referrer.manifest, ...referrer.blobs]) {
        assert.deepEqual(await readFile(join(layout, 'blobs', 'sha256', blob.descriptor.digest.slice(7))), blob.bytes);
      }
    }
    assert.deepEqual(await readFile(join(layout, 'blobs', 'sha256', emptyConfig.descriptor.digest.slice(7)), 'utf8'), '{}');
    // skopeo still reads the image by its tag beside the untagged referrers (skopeo 1.9 looks
    // nothing up by digest in a layout, so the referrer is read from its blob).
    const inspected = JSON.parse(await skopeo(['inspect', `oci:${layout}:1`])) as { Digest: string };
    assert.equal(inspected.Digest, artifact.image.manifest.descriptor.digest);
    const raw = JSON.parse(await readFile(join(layout, 'blobs', 'sha256', referrers[1]!.manifest.descriptor.digest.slice(7)), 'utf8'));
    assert.equal(raw.artifactType, 'application/spdx+json');
    assert.equal(raw.subject.digest, artifact.image.manifest.descriptor.digest);
  } finally {
    await cleanup();
  }
});
