/**
 * Reading images from where they are: OCI layouts (ours, and skopeo's with zstd layers), the
 * forms of docker-archive (uvimage's --tar, classic `docker save` with a repeated layer as a
 * symlink, Docker 25's archive that is also an OCI layout, packed by GNU tar), platform and tag
 * choice, and refusal of a blob that does not match its digest. The registry and `docker save`
 * of a real engine are in inspect.e2e.test.ts.
 */
import assert from 'node:assert/strict';
import { cp, mkdir, mkdtemp, open, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createWriteStream } from 'node:fs';
import { createGunzip } from 'node:zlib';
import { after, before, test } from 'node:test';
import { silentProgress } from '../../src/progress.js';
import { UserError } from '../../src/errors.js';
import { digestHex, sha256Digest } from '../../src/oci/digest.js';
import type { Artifact } from '../../src/oci/image.js';
import { DockerArchiveSink } from '../../src/oci/sinks/docker-archive.js';
import { OciLayoutSink } from '../../src/oci/sinks/oci-layout.js';
import { BlobStore } from '../../src/oci/store.js';
import { RegistryClient } from '../../src/registry/client.js';
import { openSourceImage, type OpenImageOptions } from '../../src/report/image-source.js';
import { analyzeImage, inspectReport } from '../../src/report/inspect.js';
import { Annotation } from '../../src/oci/image.js';
import { check } from '../harness/docker.js';
import { makeBusyboxImage, makeBusyboxIndex, storeBlobSource } from '../harness/images.js';

let work: string;
let store: BlobStore;
let image: Artifact & { kind: 'image' };
let index: Artifact & { kind: 'index' };
const trimmed = [{ rule: 'test suite', files: 12, bytes: 3456 }];

const amd64 = { os: 'linux', architecture: 'amd64' };
const arm64 = { os: 'linux', architecture: 'arm64', variant: 'v8' };

function options(platform?: { os: string; architecture: string; variant?: string }): OpenImageOptions {
  return { platform, store: async () => store, client: () => new RegistryClient(), progress: silentProgress };
}

const context = (tags: string[]) => ({ blobs: storeBlobSource(store), progress: silentProgress, tags });

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'uvimage-report-source-'));
  store = await BlobStore.open(join(work, 'store'));
  image = await makeBusyboxImage(store, amd64, { files: { 'etc/app.conf': 'setting = 1\n' }, annotations: { [Annotation.runtimeTrimmed]: JSON.stringify(trimmed) } });
  index = await makeBusyboxIndex(store, [amd64, arm64], { annotations: { [Annotation.runtimeTrimmed]: JSON.stringify(trimmed) } });
});
after(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

/** What an image holds as it runs: path → size, for comparing sources. */
async function visibleFiles(name: string): Promise<Record<string, number>> {
  const analysis = await analyzeImage(await openSourceImage(name, options()));
  const out: Record<string, number> = {};
  for (const [path, { layer, entry }] of analysis.merged.visible) {
    const found = analysis.layers[layer]!.contents.entries[entry]!;
    if (found.type !== 'directory') out[path] = found.size;
  }
  return out;
}

test('an OCI layout: the tag names the image, the platform is chosen from an index, the manifest annotations are read', async () => {
  const dir = join(work, 'layout');
  await new OciLayoutSink(dir).write(index, context(['app:multi']));
  await new OciLayoutSink(dir).write(image, context(['app:single']));

  const host = await openSourceImage(`oci:${dir}:multi`, options());
  assert.equal(host.platform.architecture, 'amd64', "this machine's platform by default");
  assert.equal(host.manifestDigest, index.index.images[0]!.manifest.descriptor.digest);
  const arm = await openSourceImage(`oci:${dir}:multi`, options(arm64));
  assert.equal(arm.platform.architecture, 'arm64');
  assert.equal(arm.manifestDigest, index.index.images[1]!.manifest.descriptor.digest);
  await assert.rejects(openSourceImage(`oci:${dir}:multi`, options({ os: 'linux', architecture: 's390x' })), (error: Error) => {
    assert.ok(error instanceof UserError);
    assert.match(error.message, /has no linux\/s390x; it has linux\/amd64, linux\/arm64\/v8/);
    return true;
  });
  await assert.rejects(openSourceImage(`oci:${dir}:nope`, options()), /has no tag "nope"; it has multi, single/);
  await assert.rejects(openSourceImage(`oci:${dir}`, options()), /holds several tags \(multi, single\); name one as oci:/);
  await assert.rejects(openSourceImage(`oci:${join(work, 'missing')}:1`, options()), /no such directory/);

  const single = await openSourceImage(`oci:${dir}:single`, options());
  const report = inspectReport(await analyzeImage(single), { top: 5 });
  assert.deepEqual(report.trimmed, trimmed);
  assert.equal(report.layers.length, 1);
  assert.equal(report.layers[0]!.digest, image.image.layers[0]!.descriptor.digest);
  assert.equal(report.image.compressedSize, image.image.layers[0]!.descriptor.size);
  assert.equal(report.largest[0]!.path, '/bin/busybox');
  assert.ok(report.owners.every((owner) => owner.kind === 'unowned'), 'busybox has no package records');
});

test('zstd layers (skopeo --dest-compress-format zstd) are decompressed and checked', async () => {
  const dir = join(work, 'layout-for-zstd');
  await new OciLayoutSink(dir).write(image, context(['app:1']));
  const zstdDir = join(work, 'layout-zstd');
  await check('skopeo', ['copy', '--quiet', '--dest-compress-format', 'zstd', `oci:${dir}:1`, `oci:${zstdDir}:1`]);
  const source = await openSourceImage(`oci:${zstdDir}:1`, options());
  assert.equal(source.layers[0]!.mediaType, 'application/vnd.oci.image.layer.v1.tar+zstd');
  const analysis = await analyzeImage(source);
  assert.equal(analysis.layers[0]!.compression, 'zstd');
  assert.equal(analysis.layers[0]!.diffId, image.image.layers[0]!.diffId);
  assert.deepEqual(await visibleFiles(`oci:${zstdDir}:1`), await visibleFiles(`oci:${dir}:1`));
});

test('a layer blob that does not match its digest is refused with one line', async () => {
  const dir = join(work, 'layout-corrupt');
  await new OciLayoutSink(dir).write(image, context(['app:1']));
  const blob = join(dir, 'blobs', 'sha256', digestHex(image.image.layers[0]!.descriptor.digest));
  // The layout hard-links blobs from the store: break the link before changing the bytes.
  await cp(blob, `${blob}.copy`);
  await rm(blob);
  await cp(`${blob}.copy`, blob);
  const handle = await open(blob, 'r+');
  await handle.write(Buffer.from([0x00]), 0, 1, 200);
  await handle.close();
  const source = await openSourceImage(`oci:${dir}:1`, options());
  await assert.rejects(analyzeImage(source), (error: Error) => {
    assert.ok(error instanceof UserError, `a UserError, not ${error.constructor.name}: ${error.message}`);
    assert.match(error.message, /layer 1 .*(does not match its digest|cannot be read)/);
    assert.doesNotMatch(error.message, /\n/);
    return true;
  });
});

test('docker-archive: uvimage --tar, the classic docker save form with a repeated layer as a symlink, and Docker 25 form are read alike', async () => {
  const ours = join(work, 'ours.tar');
  await new DockerArchiveSink(ours).write(image, context(['app:1']));
  const expected = await visibleFiles(`docker-archive:${ours}`);
  assert.equal(expected['hello.txt'], 'hello from a uvimage test image\n'.length);
  assert.equal(expected['etc/app.conf'], 'setting = 1\n'.length);

  // The layer uncompressed, as docker save writes it.
  const layer = image.image.layers[0]!;
  const config = JSON.parse(image.image.config.bytes.toString('utf8')) as { rootfs: { diff_ids: string[] }; history: unknown[] };

  // Classic: <id>/layer.tar, <config hex>.json; the same layer twice, the second a symlink to the first.
  const classic = join(work, 'classic');
  await mkdir(join(classic, 'aaaa'), { recursive: true });
  await mkdir(join(classic, 'bbbb'), { recursive: true });
  await pipeline(store.openRead(layer.descriptor.digest), createGunzip(), createWriteStream(join(classic, 'aaaa', 'layer.tar')));
  await symlink('../aaaa/layer.tar', join(classic, 'bbbb', 'layer.tar'));
  const twice = Buffer.from(JSON.stringify({ ...config, rootfs: { type: 'layers', diff_ids: [layer.diffId, layer.diffId] }, history: [...config.history, ...config.history] }));
  await writeFile(join(classic, `${digestHex(sha256Digest(twice))}.json`), twice);
  await writeFile(join(classic, 'manifest.json'), JSON.stringify([{ Config: `${digestHex(sha256Digest(twice))}.json`, RepoTags: ['app:1'], Layers: ['aaaa/layer.tar', 'bbbb/layer.tar'] }]));
  await check('tar', ['-cf', join(work, 'classic.tar'), '-C', classic, '.']);
  const classicSource = await openSourceImage(`docker-archive:${join(work, 'classic.tar')}:app:1`, options());
  assert.equal(classicSource.layers.length, 2);
  const classicAnalysis = await analyzeImage(classicSource);
  assert.equal(classicAnalysis.layers[0]!.compression, 'none');
  assert.deepEqual(await visibleFiles(`docker-archive:${join(work, 'classic.tar')}`), expected);
  const report = inspectReport(classicAnalysis, { top: 3 });
  assert.equal(report.shadowed.files, report.layers[0]!.files, 'the second copy of the layer shadows every file of the first');

  // Docker 25+: an OCI layout whose manifest.json names blobs/sha256/<hex>.
  const modern = join(work, 'modern');
  const blobs = join(modern, 'blobs', 'sha256');
  await mkdir(blobs, { recursive: true });
  await pipeline(store.openRead(layer.descriptor.digest), createGunzip(), createWriteStream(join(blobs, digestHex(layer.diffId))));
  await writeFile(join(blobs, digestHex(image.image.config.descriptor.digest)), image.image.config.bytes);
  await writeFile(join(modern, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  await writeFile(join(modern, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [] }));
  await writeFile(
    join(modern, 'manifest.json'),
    JSON.stringify([{ Config: `blobs/sha256/${digestHex(image.image.config.descriptor.digest)}`, RepoTags: ['app:1'], Layers: [`blobs/sha256/${digestHex(layer.diffId)}`] }]),
  );
  await check('tar', ['-cf', join(work, 'modern.tar'), '-C', modern, 'oci-layout', 'index.json', 'manifest.json', 'blobs']);
  const modernSource = await openSourceImage(`docker-archive:${join(work, 'modern.tar')}`, options());
  assert.equal(modernSource.layers[0]!.digest, layer.diffId, 'an uncompressed blob is named by its diff_id, and checked against it');
  assert.equal(modernSource.configDigest, image.image.config.descriptor.digest);
  assert.deepEqual(await visibleFiles(`docker-archive:${join(work, 'modern.tar')}`), expected);

  await assert.rejects(openSourceImage(`docker-archive:${join(work, 'classic.tar')}:other:2`, options()), /has no image "other:2"; it has app:1/);
  await check('sh', ['-c', `gzip -c ${join(work, 'classic.tar')} > ${join(work, 'classic.tar.gz')}`]);
  await assert.rejects(openSourceImage(`docker-archive:${join(work, 'classic.tar.gz')}`, options()), /is gzip-compressed; give the uncompressed archive/);
  await assert.rejects(openSourceImage(`docker-archive:${join(work, 'nothing.tar')}`, options()), /no such file/);
});
