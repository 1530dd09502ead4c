/**
 * The --oci, --tar and --load sinks, judged by independent tools rather than by our own reader:
 * skopeo, umoci and oci-image-tool for the OCI layout; skopeo, `docker load` + `docker run` and
 * `podman load` for the docker-archive; the Docker engine itself for --load. Needs a running
 * Docker engine (scripts/start-dockerd); without one these tests fail, they do not skip.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { silentProgress } from '../../src/progress.js';
import { UserError } from '../../src/errors.js';
import { digestHex } from '../../src/oci/digest.js';
import { Annotation, assembleImage, extendConfig, type Artifact, type Layer } from '../../src/oci/image.js';
import { writeLayer } from '../../src/oci/layer-writer.js';
import type { Platform } from '../../src/oci/platform.js';
import type { SinkContext } from '../../src/oci/sink.js';
import { DockerArchiveSink } from '../../src/oci/sinks/docker-archive.js';
import { DockerDaemonSink, dockerEndpoint, parseJsonStream } from '../../src/oci/sinks/docker-daemon.js';
import { CONTAINERD_IMAGE_NAME, OciLayoutSink } from '../../src/oci/sinks/oci-layout.js';
import { BlobStore, CorruptBlobError } from '../../src/oci/store.js';
import { check, dockerRemoveImages, requireDocker, run } from '../harness/docker.js';
import { busyboxEntries, makeBusyboxImage, makeBusyboxIndex, storeBlobSource } from '../harness/images.js';
import { exists } from '../harness/project-build.js';

const amd64: Platform = { os: 'linux', architecture: 'amd64' };
const arm64: Platform = { os: 'linux', architecture: 'arm64', variant: 'v8' };
const runId = randomBytes(4).toString('hex');
/** The repository every test image is tagged into; each test adds its own tag. */
const REPO = 'uvimage-test/busybox';
const HELLO = `hello from uvimage sink test ${runId}`;

let root: string;
let store: BlobStore;
let image: Artifact & { kind: 'image' };
let index: Artifact & { kind: 'index' };
const dockerTags: string[] = [];

function context(tags: string[], blobStore: BlobStore = store): SinkContext {
  return { blobs: storeBlobSource(blobStore), progress: silentProgress, tags };
}

/** A fresh tag in REPO, removed from Docker after the tests. */
function tag(label: string): string {
  const ref = `${REPO}:${label}-${runId}`;
  dockerTags.push(ref);
  return ref;
}

/**
 * A store holding a busybox image whose layer blob has one byte flipped. Each has its own
 * /hello.txt, so its layer is in no other store or layout of these tests.
 */
async function corruptedImage(): Promise<{ store: BlobStore; artifact: Artifact & { kind: 'image' } }> {
  const corrupt = await BlobStore.open(await mkdtemp(join(root, 'corrupt-store-')));
  const artifact = await makeBusyboxImage(corrupt, amd64, { hello: `corrupt ${randomBytes(8).toString('hex')}` });
  const path = corrupt.blobPath(artifact.image.layers[0]!.descriptor.digest);
  const bytes = await readFile(path);
  bytes[bytes.length >> 1]! ^= 0xff;
  await writeFile(path, bytes);
  return { store: corrupt, artifact };
}

function podmanArgs(podRoot: string): string[] {
  // Private vfs storage under the test dir: no podman configuration needed, no images left in
  // the machine's podman storage (podman still creates its lock file /dev/shm/libpod_lock).
  return ['--storage-driver', 'vfs', '--root', join(podRoot, 'root'), '--runroot', join(podRoot, 'runroot'), '--events-backend', 'none'];
}

before(async () => {
  requireDocker();
  root = await mkdtemp(join(tmpdir(), 'uvimage-sinks-'));
  store = await BlobStore.open(join(root, 'store'));
  image = await makeBusyboxImage(store, amd64, { hello: HELLO });
  index = await makeBusyboxIndex(store, [amd64, arm64], { hello: HELLO });
});

after(async () => {
  await dockerRemoveImages(dockerTags);
  if (root) await rm(root, { recursive: true, force: true });
});

describe('--oci DIR (OCI image layout)', () => {
  test('skopeo inspects it, umoci unpacks a runnable rootfs, oci-image-tool validates it', async () => {
    const dir = join(root, 'layout-single');
    const result = await new OciLayoutSink(dir).write(image, context([tag('oci')]));
    const refName = `oci-${runId}`;
    assert.equal(result.sink, 'oci');
    assert.equal(result.digest, image.image.manifest.descriptor.digest);
    assert.deepEqual(result.written, [`${dir}:${refName}`]);

    assert.deepEqual(JSON.parse(await readFile(join(dir, 'oci-layout'), 'utf8')), { imageLayoutVersion: '1.0.0' });
    const indexJson = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8'));
    assert.equal(indexJson.manifests.length, 1);
    assert.equal(indexJson.manifests[0].annotations[Annotation.refName], refName);
    assert.equal(indexJson.manifests[0].annotations[CONTAINERD_IMAGE_NAME], `docker.io/${REPO}:${refName}`);

    const inspected = JSON.parse(await check('skopeo', ['inspect', `oci:${dir}:${refName}`]));
    assert.equal(inspected.Digest, image.image.manifest.descriptor.digest);
    assert.equal(inspected.Architecture, 'amd64');
    assert.deepEqual(inspected.Layers, [image.image.layers[0]!.descriptor.digest]);

    const bundle = join(root, 'bundle');
    await check('umoci', ['unpack', '--rootless', '--image', `${dir}:${refName}`, bundle]);
    assert.equal(await readFile(join(bundle, 'rootfs', 'hello.txt'), 'utf8'), `${HELLO}\n`);
    const busybox = join(bundle, 'rootfs', 'bin', 'busybox');
    assert.ok((await stat(busybox)).mode & 0o111, 'busybox is executable');
    // The host's static amd64 busybox, so the unpacked rootfs really runs.
    assert.equal((await check(busybox, ['cat', join(bundle, 'rootfs', 'hello.txt')])).trim(), HELLO);
    const runtimeConfig = JSON.parse(await readFile(join(bundle, 'config.json'), 'utf8'));
    assert.deepEqual(runtimeConfig.process.args, ['/bin/busybox', 'cat', '/hello.txt']);

    const validated = await run('oci-image-tool', ['validate', '--type', 'image', '--ref', `name=${refName}`, dir]);
    assert.equal(validated.code, 0, validated.stderr + validated.stdout);
    assert.match(validated.stdout, /Validation succeeded/);
  });

  test('a two-platform index is listed as the index; skopeo and oci-image-tool accept it', async () => {
    const dir = join(root, 'layout-index');
    const refName = 'multi';
    const result = await new OciLayoutSink(dir).write(index, context([`${REPO}:${refName}`]));
    assert.equal(result.digest, index.index.index.descriptor.digest);

    const raw = await check('skopeo', ['inspect', '--raw', `oci:${dir}:${refName}`]);
    assert.equal(raw, index.index.index.bytes.toString('utf8'), 'the tag resolves to our index, byte for byte');
    const forArm = JSON.parse(await check('skopeo', ['--override-arch', 'arm64', 'inspect', `oci:${dir}:${refName}`]));
    assert.equal(forArm.Architecture, 'arm64');
    const forAmd = JSON.parse(await check('skopeo', ['--override-arch', 'amd64', 'inspect', '--config', `oci:${dir}:${refName}`]));
    assert.equal(forAmd.architecture, 'amd64');
    // skopeo copies every blob of every platform and checks each digest on the way.
    await check('skopeo', ['copy', '--all', '--quiet', `oci:${dir}:${refName}`, `dir:${join(root, 'index-copy')}`]);

    // oci-image-tool 1.0.0-rc1 validates the layout and the ref, but predates nested indexes in
    // index.json: it warns "unknown media type: application/vnd.oci.image.index.v1+json" and does
    // not descend into the index. So the index, each manifest and each config are also validated
    // one by one against the spec's schemas with --type imageIndex/manifest/config.
    const layout = await run('oci-image-tool', ['validate', '--type', 'image', '--ref', `name=${refName}`, dir]);
    assert.equal(layout.code, 0, layout.stderr + layout.stdout);
    assert.match(layout.stdout, /Validation succeeded/);
    const blob = (digest: string) => join(dir, 'blobs', 'sha256', digestHex(digest as `sha256:${string}`));
    const documents: [string, string][] = [['imageIndex', index.index.index.descriptor.digest]];
    for (const platformImage of index.index.images) {
      documents.push(['manifest', platformImage.manifest.descriptor.digest], ['config', platformImage.config.descriptor.digest]);
    }
    for (const [type, digest] of documents) {
      const validated = await run('oci-image-tool', ['validate', '--type', type, blob(digest)]);
      assert.equal(validated.code, 0, `${type} ${digest}: ${validated.stderr}${validated.stdout}`);
    }

    // umoci 0.4.7 has no platform selection: a tag whose target is an index resolves to every
    // manifest below it, and it refuses ("tag is ambiguous"). Listing the platform manifests
    // under one tag instead would be just as ambiguous to it, so this is the documented limit.
    const umoci = await run('umoci', ['unpack', '--rootless', '--image', `${dir}:${refName}`, join(root, 'bundle-index')]);
    assert.notEqual(umoci.code, 0);
    assert.match(umoci.stderr, /ambiguous/);
  });

  test('an existing layout gains refs and keeps the others; a non-layout directory is refused untouched', async () => {
    const dir = join(root, 'layout-shared');
    const other = await makeBusyboxImage(store, amd64, { hello: 'the other image' });
    await new OciLayoutSink(dir).write(image, context([`${REPO}:one`, `${REPO}:two`]));
    await new OciLayoutSink(dir).write(other, context([`${REPO}:three`]));
    // Re-pointing "two" at the other image replaces that entry only.
    const result = await new OciLayoutSink(dir).write(other, context([`${REPO}:two`]));
    assert.equal(result.details?.updatedExisting, true);

    const indexJson = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8'));
    const byName = new Map<string, string>(indexJson.manifests.map((entry: { digest: string; annotations: Record<string, string> }) => [entry.annotations[Annotation.refName], entry.digest]));
    assert.equal(indexJson.manifests.length, 3);
    assert.equal(byName.get('one'), image.image.manifest.descriptor.digest);
    assert.equal(byName.get('two'), other.image.manifest.descriptor.digest);
    assert.equal(byName.get('three'), other.image.manifest.descriptor.digest);
    for (const name of ['one', 'two', 'three']) {
      const inspected = JSON.parse(await check('skopeo', ['inspect', `oci:${dir}:${name}`]));
      assert.equal(inspected.Digest, byName.get(name));
    }
    assert.deepEqual((await readdir(dir)).sort(), ['blobs', 'index.json', 'oci-layout'], 'no temp files left in the layout');
    const validated = await run('oci-image-tool', ['validate', '--type', 'image', dir]);
    assert.equal(validated.code, 0, validated.stderr + validated.stdout);

    const notLayout = join(root, 'not-a-layout');
    await mkdir(notLayout);
    await writeFile(join(notLayout, 'precious.txt'), 'keep me');
    await assert.rejects(new OciLayoutSink(notLayout).write(image, context([`${REPO}:x`])), (error: Error) => {
      assert.ok(error instanceof UserError);
      assert.match(error.message, /not an OCI image layout/);
      return true;
    });
    assert.deepEqual(await readdir(notLayout), ['precious.txt']);

    const empty = join(root, 'empty-dir');
    await mkdir(empty);
    await new OciLayoutSink(empty).write(image, context([`${REPO}:in-empty`]));
    await check('skopeo', ['inspect', `oci:${empty}:in-empty`]);
  });

  test('full-reference ref names are accepted by skopeo and umoci; no tag lists the root unnamed', async () => {
    const dir = join(root, 'layout-full');
    const full = `${REPO}:full`;
    await new OciLayoutSink(dir, { refName: 'full' }).write(image, context([full]));
    const inspected = JSON.parse(await check('skopeo', ['inspect', `oci:${dir}:${full}`]));
    assert.equal(inspected.Digest, image.image.manifest.descriptor.digest);
    await check('umoci', ['unpack', '--rootless', '--image', `${dir}:${full}`, join(root, 'bundle-full')]);
    assert.equal(await readFile(join(root, 'bundle-full', 'rootfs', 'hello.txt'), 'utf8'), `${HELLO}\n`);

    const untagged = join(root, 'layout-untagged');
    const result = await new OciLayoutSink(untagged).write(image, context([]));
    assert.deepEqual(result.written, [untagged]);
    const anonymous = JSON.parse(await check('skopeo', ['inspect', `oci:${untagged}`]));
    assert.equal(anonymous.Digest, image.image.manifest.descriptor.digest);
  });

  test('with the store given, layers are hard-linked (after verification) and the layout still validates', async () => {
    const dir = join(root, 'layout-linked');
    const result = await new OciLayoutSink(dir, { store }).write(image, context([`${REPO}:linked`]));
    assert.equal(result.details?.layersLinked, 1);
    assert.equal(result.details?.layersCopied, 0);
    const digest = image.image.layers[0]!.descriptor.digest;
    const [inLayout, inStore] = await Promise.all([stat(join(dir, 'blobs', 'sha256', digestHex(digest))), stat(store.blobPath(digest))]);
    assert.equal(inLayout.ino, inStore.ino);
    const validated = await run('oci-image-tool', ['validate', '--type', 'image', '--ref', 'name=linked', dir]);
    assert.equal(validated.code, 0, validated.stderr + validated.stdout);

    // Another file system (/dev/shm is a tmpfs here): no link is possible, the layer is copied.
    if ((await stat('/dev/shm').catch(() => undefined))?.dev !== inStore.dev) {
      const elsewhere = await mkdtemp('/dev/shm/uvimage-sinks-');
      try {
        const copied = await new OciLayoutSink(join(elsewhere, 'layout'), { store }).write(image, context([`${REPO}:copied`]));
        assert.equal(copied.details?.layersLinked, 0);
        assert.equal(copied.details?.layersCopied, 1);
        await check('skopeo', ['inspect', `oci:${join(elsewhere, 'layout')}:copied`]);
      } finally {
        await rm(elsewhere, { recursive: true, force: true });
      }
    }
  });
});

describe('--tar FILE (docker-archive)', () => {
  test('skopeo inspects it, docker loads and runs it, podman loads it', async () => {
    const file = join(root, 'image.tar');
    const ref = tag('tar');
    const result = await new DockerArchiveSink(file).write(image, context([ref]));
    assert.equal(result.sink, 'tar');
    assert.deepEqual(result.written, [file]);
    assert.equal(result.bytes, (await stat(file)).size);
    assert.equal(result.digest, image.image.manifest.descriptor.digest);

    const inspected = JSON.parse(await check('skopeo', ['inspect', `docker-archive:${file}`]));
    assert.equal(inspected.Architecture, 'amd64');
    // containers/image decompresses the gzip'd layer and names it by its diff_id.
    assert.deepEqual(inspected.Layers, [image.image.layers[0]!.diffId]);

    const loaded = await check('docker', ['load', '--input', file]);
    assert.match(loaded, new RegExp(`Loaded image: ${ref}`));
    const id = (await check('docker', ['image', 'inspect', '--format', '{{.Id}}', ref])).trim();
    assert.equal(id, image.image.config.descriptor.digest, "Docker's image ID is our config digest");
    assert.equal((await check('docker', ['run', '--rm', '--network', 'host', ref])).trim(), HELLO);

    const podRoot = await mkdtemp(join(root, 'podman-'));
    const podman = podmanArgs(podRoot);
    await check('podman', [...podman, 'load', '--quiet', '--input', file]);
    const podInspect = JSON.parse(await check('podman', [...podman, 'image', 'inspect', ref]));
    assert.ok(podInspect[0].RepoTags.includes(`docker.io/${ref}`), JSON.stringify(podInspect[0].RepoTags));
    assert.equal(`sha256:${podInspect[0].Id}`, image.image.config.descriptor.digest);
  });

  test('an image with the same layer twice is written once and loads in docker and podman', async () => {
    const busybox = await writeLayer(store, await busyboxEntries({ hello: HELLO }));
    const extra = await writeLayer(store, [{ type: 'file', path: 'extra.txt', size: 6, open: () => Buffer.from('extra\n') }]);
    const layers: Layer[] = [busybox, extra, busybox].map((written) => ({ descriptor: written.descriptor, diffId: written.diffId }));
    const config = extendConfig({
      platform: amd64,
      added: layers.map((layer) => ({ layer, history: { created_by: 'test' } })),
      changes: { Entrypoint: ['/bin/busybox'], Cmd: ['cat', '/extra.txt', '/hello.txt'] },
      created: '1970-01-01T00:00:00Z',
    });
    const twice: Artifact = { kind: 'image', image: assembleImage({ platform: amd64, config, layers }) };
    const file = join(root, 'twice.tar');
    const ref = tag('twice');
    await new DockerArchiveSink(file).write(twice, context([ref]));
    const members = (await check('tar', ['--list', '--file', file])).trim().split('\n');
    assert.equal(members.length, 4, members.join(' '));
    assert.deepEqual(JSON.parse(await check('skopeo', ['inspect', `docker-archive:${file}`])).Layers, layers.map((layer) => layer.diffId));
    await check('docker', ['load', '--quiet', '--input', file]);
    assert.equal(await check('docker', ['run', '--rm', '--network', 'host', ref]), `extra\n${HELLO}\n`);
    const podman = podmanArgs(await mkdtemp(join(root, 'podman-')));
    await check('podman', [...podman, 'load', '--quiet', '--input', file]);
  });

  test('the same image gives the same bytes; headers carry mtime 0 and no owner names', async () => {
    const first = join(root, 'same-1.tar');
    const second = join(root, 'same-2.tar');
    const tags = [`${REPO}:same`];
    await new DockerArchiveSink(first).write(image, context(tags));
    await new DockerArchiveSink(second).write(image, context(tags));
    const [a, b] = await Promise.all([readFile(first), readFile(second)]);
    assert.ok(a.equals(b), 'identical archives');
    const listing = await check('tar', ['--list', '--verbose', '--numeric-owner', '--full-time', '--file', first]);
    for (const line of listing.trim().split('\n')) assert.match(line, /^-rw-r--r-- 0\/0 +\d+ 1970-01-01 00:00:00 /, line);
    assert.match(listing, /manifest\.json\n$/, 'manifest.json is the last member');

    const saved = process.env.SOURCE_DATE_EPOCH;
    process.env.SOURCE_DATE_EPOCH = '1700000000';
    try {
      const dated = join(root, 'dated.tar');
      await new DockerArchiveSink(dated).write(image, context(tags));
      const datedListing = await check('tar', ['--list', '--verbose', '--full-time', '--file', dated], { env: { ...process.env, TZ: 'UTC' } });
      for (const line of datedListing.trim().split('\n')) assert.match(line, / 2023-11-14 22:13:20 /, line);
    } finally {
      if (saved === undefined) delete process.env.SOURCE_DATE_EPOCH;
      else process.env.SOURCE_DATE_EPOCH = saved;
    }
  });

  test('from an index, the archive holds the chosen platform; a missing one is named', async () => {
    const file = join(root, 'arm64.tar');
    const result = await new DockerArchiveSink(file, { platform: { os: 'linux', architecture: 'arm64' } }).write(index, context([`${REPO}:arm`]));
    assert.equal(result.digest, index.index.images[1]!.manifest.descriptor.digest);
    const inspected = JSON.parse(await check('skopeo', ['inspect', `docker-archive:${file}`]));
    assert.equal(inspected.Architecture, 'arm64');
    const host = await new DockerArchiveSink(join(root, 'host.tar')).write(index, context([]));
    assert.equal(host.digest, index.index.images[0]!.manifest.descriptor.digest, 'the host platform (amd64) by default');

    await assert.rejects(
      new DockerArchiveSink(join(root, 's390x.tar'), { platform: { os: 'linux', architecture: 's390x' } }).write(index, context([])),
      (error: Error) => {
        assert.ok(error instanceof UserError);
        assert.match(error.message, /no image for linux\/s390x.*linux\/amd64, linux\/arm64\/v8/);
        return true;
      },
    );
    assert.equal(await exists(join(root, 's390x.tar')), false);
  });
});

describe('--load (Docker Engine API)', () => {
  test('the engine loads the image under our tag and ID, and it runs', async () => {
    const ref = tag('load');
    const result = await new DockerDaemonSink().write(image, context([ref]));
    assert.equal(result.sink, 'load');
    assert.deepEqual(result.written, [ref]);
    assert.equal(result.digest, image.image.manifest.descriptor.digest);
    const [id, tags] = (await check('docker', ['image', 'inspect', '--format', '{{.Id}} {{json .RepoTags}}', ref])).trim().split(' ');
    assert.equal(id, image.image.config.descriptor.digest);
    assert.ok((JSON.parse(tags!) as string[]).includes(ref), tags);
    assert.equal((await check('docker', ['run', '--rm', '--network', 'host', ref])).trim(), HELLO);
  });

  /** busybox (its /hello.txt saying `hello`) with a second layer holding /app.txt. */
  async function twoLayerImage(hello: string, app: string): Promise<Artifact & { kind: 'image' }> {
    const base = await writeLayer(store, await busyboxEntries({ hello }));
    const bytes = Buffer.from(`${app}\n`, 'utf8');
    const top = await writeLayer(store, [{ type: 'file', path: 'app.txt', mode: 0o644, size: bytes.length, open: () => bytes }]);
    const layers: Layer[] = [base, top].map((written) => ({ descriptor: written.descriptor, diffId: written.diffId }));
    const config = extendConfig({
      platform: amd64,
      added: layers.map((layer) => ({ layer, history: { created_by: 'uvimage test' } })),
      changes: { Entrypoint: ['/bin/busybox'], Cmd: ['cat', '/app.txt'], Env: ['PATH=/bin'] },
      created: '1970-01-01T00:00:00Z',
    });
    return { kind: 'image', image: assembleImage({ platform: amd64, config, layers }) };
  }

  test('a rebuild loaded into the same repository sends only the layers the engine lacks', async () => {
    const ref = tag('rebuild');
    const hello = `shared base ${runId}`;
    const first = await twoLayerImage(hello, 'first build');
    const loadedFirst = await new DockerDaemonSink().write(first, context([ref]));
    assert.equal(loadedFirst.details?.layersSent, 2, 'a new tag: the whole image');
    const baseSize = first.image.layers[0]!.descriptor.size;
    assert.ok(loadedFirst.bytes! > baseSize);

    const second = await twoLayerImage(hello, 'second build');
    const loadedSecond = await new DockerDaemonSink().write(second, context([ref]));
    assert.equal(loadedSecond.details?.layersTheEngineHeld, 1);
    assert.equal(loadedSecond.details?.layersSent, 1);
    assert.ok(loadedSecond.bytes! < baseSize, `sent ${loadedSecond.bytes} bytes, the base layer alone is ${baseSize}`);
    assert.equal((await check('docker', ['image', 'inspect', '--format', '{{.Id}}', ref])).trim(), second.image.config.descriptor.digest);
    assert.equal((await check('docker', ['run', '--rm', '--network', 'host', ref])).trim(), 'second build');
    assert.equal((await check('docker', ['run', '--rm', '--network', 'host', '--entrypoint', '/bin/cat', ref, '/hello.txt'])).trim(), hello);

    // The same image again: nothing but its config and manifest.json.
    const again = await new DockerDaemonSink().write(second, context([ref]));
    assert.equal(again.details?.layersSent, 0);
    assert.ok(again.bytes! < 10_000, `${again.bytes} bytes`);

    // A rebuild under a new tag of the same repository (tagged by commit, say) is judged by the
    // images already there under other tags.
    const nextRef = tag('rebuild-next');
    const third = await twoLayerImage(hello, 'third build');
    const loadedThird = await new DockerDaemonSink().write(third, context([nextRef]));
    assert.equal(loadedThird.details?.layersSent, 1);
    assert.equal((await check('docker', ['run', '--rm', '--network', 'host', nextRef])).trim(), 'third build');
  });

  test('when the image that proved the layers is gone before the upload, the whole image is sent', async () => {
    const ref = tag('stale');
    // A base layer no other image has, so removing the tag removes the layer from the engine.
    const hello = `stale base ${runId}`;
    await new DockerDaemonSink().write(await twoLayerImage(hello, 'one'), context([ref]));
    const next = await twoLayerImage(hello, 'two');
    const heldAtUpload: number[] = [];
    const loaded = await new DockerDaemonSink({
      beforeUpload: async (held) => {
        heldAtUpload.push(held);
        await check('docker', ['image', 'rm', ref]);
      },
    }).write(next, context([ref]));
    assert.deepEqual(heldAtUpload, [1], 'the engine held the base layer when asked');
    assert.equal(loaded.details?.layersTheEngineHeld, 0);
    assert.equal(loaded.details?.layersSent, 2);
    assert.equal((await check('docker', ['run', '--rm', '--network', 'host', ref])).trim(), 'two');
  });

  test('DOCKER_HOST=tcp://… reaches the engine over TCP', async () => {
    // The engine listens on its unix socket only; a small TCP forwarder stands in for a tcp:// engine.
    const forwarder = createServer((client) => {
      const engine = connect('/var/run/docker.sock');
      client.pipe(engine).pipe(client);
      client.on('error', () => engine.destroy());
      engine.on('error', () => client.destroy());
    });
    await new Promise<void>((resolve) => forwarder.listen(0, '127.0.0.1', resolve));
    const { port } = forwarder.address() as AddressInfo;
    try {
      const ref = tag('tcp');
      const result = await new DockerDaemonSink({ env: { DOCKER_HOST: `tcp://127.0.0.1:${port}` } }).write(index, context([ref]));
      assert.equal(result.details?.engine, `tcp://127.0.0.1:${port}`);
      assert.equal(result.details?.platform, 'linux/amd64', "from an index, the engine's platform");
      assert.equal((await check('docker', ['image', 'inspect', '--format', '{{.Id}}', ref])).trim(), index.index.images[0]!.config.descriptor.digest);
    } finally {
      forwarder.close();
    }
  });

  test('an error message in the engine’s JSON stream becomes a UserError', async () => {
    // An arm64 config with linux/amd64 layers loads fine; a Windows image is refused by a Linux engine.
    const windows = await makeBusyboxImage(store, { os: 'windows', architecture: 'amd64' });
    await assert.rejects(new DockerDaemonSink().write(windows, context([tag('windows')])), (error: Error) => {
      assert.ok(error instanceof UserError, String(error));
      assert.match(error.message, /could not load the image: .*windows/i);
      return true;
    });
  });

  test('DOCKER_HOST naming no engine gives a one-line UserError', async () => {
    for (const [host, where] of [
      ['unix:///nonexistent/docker.sock', /^no Docker engine at \/nonexistent\/docker\.sock: .*ENOENT/],
      ['tcp://127.0.0.1:1', /^no Docker engine at tcp:\/\/127\.0\.0\.1:1: .*ECONNREFUSED/],
    ] as const) {
      await assert.rejects(new DockerDaemonSink({ env: { DOCKER_HOST: host } }).write(image, context([`${REPO}:never`])), (error: Error) => {
        assert.ok(error instanceof UserError, String(error));
        assert.match(error.message, where);
        assert.doesNotMatch(error.message, /\n/);
        return true;
      });
    }
    await assert.rejects(new DockerDaemonSink({ env: { DOCKER_HOST: 'ssh://me@host' } }).write(image, context([])), UserError);
  });

  test('DOCKER_HOST forms are resolved as the docker CLI does', async () => {
    assert.deepEqual(dockerEndpoint({}).connect, { socketPath: '/var/run/docker.sock' });
    assert.deepEqual(dockerEndpoint({ DOCKER_HOST: 'unix:///run/user/1000/docker.sock' }).connect, { socketPath: '/run/user/1000/docker.sock' });
    const tcp = dockerEndpoint({ DOCKER_HOST: 'tcp://10.0.0.5' });
    assert.deepEqual([tcp.connect, tcp.tls, tcp.display], [{ host: '10.0.0.5', port: 2375 }, false, 'tcp://10.0.0.5']);
    assert.deepEqual(dockerEndpoint({ DOCKER_HOST: 'tcp://[::1]:2375/prefix' }).basePath, '/prefix');
    const certs = await mkdtemp(join(root, 'certs-'));
    for (const name of ['ca.pem', 'cert.pem', 'key.pem']) await writeFile(join(certs, name), name);
    const tls = dockerEndpoint({ DOCKER_HOST: 'tcp://docker.example:2376', DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: certs });
    assert.equal(tls.tls, true);
    assert.equal(tls.connect.ca?.toString(), 'ca.pem');
    assert.throws(() => dockerEndpoint({ DOCKER_HOST: 'tcp://docker.example:2376', DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: join(root, 'no-certs') }), /cannot be read/);
    assert.throws(() => dockerEndpoint({ DOCKER_HOST: 'ssh://me@host' }), UserError);
    assert.throws(() => dockerEndpoint({ DOCKER_HOST: 'unix://' }), UserError);
  });

  test('the engine’s streamed answer is split into its JSON messages', () => {
    assert.deepEqual(parseJsonStream('{"stream":"Loaded image: a:1\\n"}\r\n{"stream":"x{\\"}"}{"error":"boom"}\n'), [
      { stream: 'Loaded image: a:1\n' },
      { stream: 'x{"}' },
      { error: 'boom' },
    ]);
  });
});

describe('failures leave nothing behind', () => {
  test('an impossible output path is a UserError and leaves no temp file', async () => {
    const parent = await mkdtemp(join(root, 'unwritable-'));
    const file = join(parent, 'regular-file');
    await writeFile(file, 'not a directory');
    for (const sink of [new DockerArchiveSink(join(file, 'out.tar')), new DockerArchiveSink(join(file, 'sub', 'out.tar')), new OciLayoutSink(join(file, 'layout'))]) {
      await assert.rejects(sink.write(image, context([`${REPO}:x`])), (error: Error) => {
        assert.ok(error instanceof UserError, String(error));
        assert.match(error.message, /cannot write .*regular-file.*(ENOTDIR|EEXIST)/);
        return true;
      });
    }
    assert.deepEqual(await readdir(parent), ['regular-file']);
    // A directory where the archive should go is refused too.
    await assert.rejects(new DockerArchiveSink(parent).write(image, context([])), /is a directory/);
    assert.deepEqual(await readdir(parent), ['regular-file']);
  });

  test('a corrupt store blob fails each sink with CorruptBlobError and leaves no output', async () => {
    const out = await mkdtemp(join(root, 'corrupt-out-'));

    let corrupt = await corruptedImage();
    await assert.rejects(new DockerArchiveSink(join(out, 'c.tar')).write(corrupt.artifact, context([`${REPO}:c`], corrupt.store)), CorruptBlobError);

    corrupt = await corruptedImage();
    await assert.rejects(new OciLayoutSink(join(out, 'layout')).write(corrupt.artifact, context([`${REPO}:c`], corrupt.store)), CorruptBlobError);

    corrupt = await corruptedImage();
    await assert.rejects(
      new OciLayoutSink(join(out, 'linked'), { store: corrupt.store }).write(corrupt.artifact, context([`${REPO}:c`], corrupt.store)),
      CorruptBlobError,
    );
    assert.deepEqual(await readdir(out), [], 'no archive, no layout, no temp file or directory');

    // Into an existing layout: index.json is untouched and no blob of the failed write appears.
    const existing = join(out, 'existing');
    await new OciLayoutSink(existing).write(image, context([`${REPO}:kept`]));
    const before = { index: await readFile(join(existing, 'index.json')), blobs: await readdir(join(existing, 'blobs', 'sha256')) };
    corrupt = await corruptedImage();
    await assert.rejects(new OciLayoutSink(existing).write(corrupt.artifact, context([`${REPO}:c`], corrupt.store)), CorruptBlobError);
    assert.ok((await readFile(join(existing, 'index.json'))).equals(before.index));
    assert.deepEqual(await readdir(existing), ['blobs', 'index.json', 'oci-layout']);
    const after = await readdir(join(existing, 'blobs', 'sha256'));
    assert.ok(!after.includes(digestHex(corrupt.artifact.image.layers[0]!.descriptor.digest)), 'the corrupt layer was not added');

    // --load: the upload is cut off before the archive is complete, so the engine loads nothing.
    corrupt = await corruptedImage();
    const ref = tag('corrupt');
    await assert.rejects(new DockerDaemonSink().write(corrupt.artifact, context([ref], corrupt.store)), CorruptBlobError);
    const inspect = await run('docker', ['image', 'inspect', ref]);
    assert.notEqual(inspect.code, 0, 'the image must not be in Docker');
    assert.equal(
      (await run('docker', ['image', 'inspect', corrupt.artifact.image.config.descriptor.digest])).code,
      1,
      'not even untagged',
    );
  });
});
