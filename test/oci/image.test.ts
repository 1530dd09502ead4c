import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sha256Digest, type Digest } from '../../src/oci/digest.js';
import {
  Annotation,
  assembleImage,
  assembleIndex,
  buildTimestamp,
  extendConfig,
  type ImageConfig,
  type Layer,
} from '../../src/oci/image.js';
import { MediaType } from '../../src/oci/media-types.js';

function fakeLayer(seed: string): Layer {
  return {
    descriptor: { mediaType: MediaType.ociLayerGzip, digest: sha256Digest(`gz-${seed}`), size: 10 + seed.length },
    diffId: sha256Digest(`tar-${seed}`),
  };
}

const amd64 = { os: 'linux', architecture: 'amd64' };

test('SOURCE_DATE_EPOCH sets the one timestamp; unset means the epoch', () => {
  assert.deepEqual(buildTimestamp({}), { seconds: 0, iso: '1970-01-01T00:00:00Z' });
  assert.deepEqual(buildTimestamp({ SOURCE_DATE_EPOCH: '1700000000' }), { seconds: 1700000000, iso: '2023-11-14T22:13:20Z' });
  assert.throws(() => buildTimestamp({ SOURCE_DATE_EPOCH: 'yesterday' }), /SOURCE_DATE_EPOCH/);
});

test('extendConfig keeps base settings, merges Env by name and appends layers and history', () => {
  const base: ImageConfig = {
    architecture: 'amd64',
    os: 'linux',
    config: { Env: ['PATH=/usr/bin', 'LANG=C'], Cmd: ['/bin/sh'], Labels: { a: '1' } },
    rootfs: { type: 'layers', diff_ids: [fakeLayer('base').diffId] },
    history: [{ created_by: 'base' }],
    'moby.buildkit.buildinfo.v1': 'kept',
  };
  const app = fakeLayer('app');
  const config = extendConfig({
    base,
    platform: amd64,
    added: [{ layer: app, history: { created_by: 'uvimage: app' } }],
    changes: { Env: ['PATH=/app/bin:/usr/bin'], Entrypoint: ['/app/run'], Labels: { b: '2' }, User: '65532', ExposedPorts: { '8000/tcp': {} } },
    created: '1970-01-01T00:00:00Z',
  });
  assert.deepEqual(config.config?.Env, ['LANG=C', 'PATH=/app/bin:/usr/bin']);
  assert.equal(config.config?.Cmd, undefined, 'an explicit entrypoint drops the base Cmd');
  assert.deepEqual(config.config?.Labels, { a: '1', b: '2' });
  assert.deepEqual(config.rootfs.diff_ids, [base.rootfs.diff_ids[0], app.diffId]);
  assert.equal(config.history?.length, 2);
  assert.equal(config.history?.[1]?.created, '1970-01-01T00:00:00Z');
  assert.equal(config['moby.buildkit.buildinfo.v1'], 'kept');
  assert.deepEqual(Object.keys(config.config ?? {}), [...Object.keys(config.config ?? {})].sort(), 'runtime keys are sorted');
});

test('assembleImage refuses diff_ids that do not match the layers', () => {
  const layers = [fakeLayer('1'), fakeLayer('2')];
  const config = extendConfig({ platform: amd64, added: layers.map((layer) => ({ layer, history: {} })), changes: {}, created: 'x' });
  assert.throws(() => assembleImage({ platform: amd64, config, layers: [layers[1]!, layers[0]!] }), /diff_ids/);
  assert.throws(() => assembleImage({ platform: amd64, config, layers: [layers[0]!] }), /diff_ids/);
  const image = assembleImage({ platform: amd64, config, layers });
  assert.equal(image.layers.length, 2);
});

test('manifest and config are OCI by default and reference each other by digest', () => {
  const layer = fakeLayer('x');
  const config = extendConfig({ platform: amd64, added: [{ layer, history: {} }], changes: {}, created: 'x' });
  const image = assembleImage({
    platform: amd64,
    config,
    layers: [layer],
    annotations: { [Annotation.created]: '1970-01-01T00:00:00Z', [Annotation.baseName]: 'docker.io/library/x:1' },
  });
  const manifest = JSON.parse(image.manifest.bytes.toString());
  assert.equal(manifest.mediaType, MediaType.ociManifest);
  assert.equal(manifest.config.mediaType, MediaType.ociConfig);
  assert.equal(manifest.config.digest, sha256Digest(image.config.bytes));
  assert.equal(manifest.config.size, image.config.bytes.length);
  assert.equal(manifest.layers[0].digest, layer.descriptor.digest);
  assert.equal(manifest.annotations[Annotation.baseName], 'docker.io/library/x:1');
  assert.equal(image.manifest.descriptor.digest, sha256Digest(image.manifest.bytes));
  assert.deepEqual(image.manifest.descriptor.platform, amd64);
});

test('the Docker flavour uses Docker v2 media types and no annotations', () => {
  const layer = fakeLayer('x');
  const config = extendConfig({ platform: amd64, added: [{ layer, history: {} }], changes: {}, created: 'x' });
  const image = assembleImage({ platform: amd64, config, layers: [layer], annotations: { a: 'b' }, flavour: 'docker' });
  const manifest = JSON.parse(image.manifest.bytes.toString());
  assert.equal(manifest.mediaType, MediaType.dockerManifest);
  assert.equal(manifest.config.mediaType, MediaType.dockerConfig);
  assert.equal(manifest.layers[0].mediaType, MediaType.dockerLayerGzip);
  assert.equal(manifest.annotations, undefined);
});

test('an index lists each platform manifest with its platform; equal inputs give equal digests', () => {
  const build = () => {
    const images = (['amd64', 'arm64'] as const).map((architecture) => {
      const platform = architecture === 'arm64' ? { os: 'linux', architecture, variant: 'v8' } : { os: 'linux', architecture };
      const layer = fakeLayer(architecture);
      const config = extendConfig({ platform, added: [{ layer, history: {} }], changes: { User: '65532' }, created: 'x' });
      return assembleImage({ platform, config, layers: [layer] });
    });
    return assembleIndex(images, { annotations: { [Annotation.created]: 'x' } });
  };
  const first = build();
  const second = build();
  assert.equal(first.index.descriptor.digest, second.index.descriptor.digest);
  const document = JSON.parse(first.index.bytes.toString());
  assert.equal(document.mediaType, MediaType.ociIndex);
  assert.deepEqual(
    document.manifests.map((entry: { platform: unknown }) => entry.platform),
    [{ architecture: 'amd64', os: 'linux' }, { architecture: 'arm64', os: 'linux', variant: 'v8' }],
  );
  const configOfArm = JSON.parse(first.images[1]!.config.bytes.toString());
  assert.equal(configOfArm.variant, 'v8');
  const digests: Digest[] = document.manifests.map((entry: { digest: Digest }) => entry.digest);
  assert.deepEqual(digests, first.images.map((image) => image.manifest.descriptor.digest));
});
