/**
 * The CLI end to end, as a user runs it: a real registry, a real Docker engine, the validators.
 * Runs `src/cli/main.ts` in a child process so exit codes and stderr are what a shell sees.
 */
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, readdir, writeFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { BlobStore } from '../../src/oci/store.js';
import { RegistrySink } from '../../src/registry/push.js';
import { assertOneLineError, uvimage } from '../harness/cli.js';
import { check, dockerRemoveImages, requireDocker } from '../harness/docker.js';
import { BUSYBOX, makeBusyboxIndex, storeBlobSource } from '../harness/images.js';
import { startRegistry, type TestRegistry } from '../harness/registry.js';
import { silentProgress } from '../../src/progress.js';
import type { Digest } from '../../src/oci/digest.js';

let registry: TestRegistry;
let work: string;
let rootfs: string;
const hello = 'hello from build-from-dir';

before(async () => {
  requireDocker();
  registry = await startRegistry();
  work = await mkdtemp(join(tmpdir(), 'uvimage-cli-'));
  rootfs = join(work, 'rootfs');
  await mkdir(join(rootfs, 'bin'), { recursive: true });
  await copyFile(BUSYBOX, join(rootfs, 'bin', 'busybox'));
  await writeFile(join(rootfs, 'hello.txt'), `${hello}\n`);
});

after(async () => {
  await registry?.stop();
  await dockerRemoveImages([`${registry?.host}/cli/hello:1`, 'uvimage-cli-test/onbase:1']);
});

test('one run pushes, writes a layout and a tar, and loads; the image runs and is the same every time', async () => {
  const cache = join(work, 'cache-a');
  const ref = `${registry.host}/cli/hello:1`;
  const args = [
    'build-from-dir', rootfs,
    '-t', ref,
    '--entrypoint', '["/bin/busybox"]', '--cmd', '["cat","/hello.txt"]',
    '--user', '65532', '--env', 'GREETING=hi', '--label', 'org.example=1', '--expose', '8000',
    '--push', '--load', '--oci', join(work, 'layout'), '--tar', join(work, 'image.tar'),
    '--cache-dir', cache, '--json',
  ];
  const result = await uvimage(args);
  assert.equal(result.code, 0, result.stderr);
  const built = JSON.parse(result.stdout) as { digest: Digest; outputs: { sink: string; digest: string }[] };
  assert.deepEqual(built.outputs.map((output) => output.sink).sort(), ['load', 'oci', 'push', 'tar']);

  // The registry has it, as skopeo sees it.
  const inspected = JSON.parse(await check('skopeo', ['inspect', '--tls-verify=false', `docker://${ref}`])) as { Digest: string };
  assert.equal(inspected.Digest, built.digest);
  // The layout and the archive are readable by skopeo too.
  await check('skopeo', ['inspect', `oci:${join(work, 'layout')}:1`]);
  await check('skopeo', ['inspect', `docker-archive:${join(work, 'image.tar')}`]);
  // And the loaded image runs as the user asked, printing the file of our layer.
  const output = await check('docker', ['run', '--rm', '--network', 'host', ref]);
  assert.equal(output.trim(), hello);
  const user = await check('docker', ['run', '--rm', '--network', 'host', '--entrypoint', '/bin/busybox', ref, 'id', '-u']);
  assert.equal(user.trim(), '65532');

  // Reproducible: a clean cache and another output directory give the same digest.
  const again = await uvimage(['build-from-dir', rootfs, '--entrypoint', '["/bin/busybox"]', '--cmd', '["cat","/hello.txt"]',
    '--user', '65532', '--env', 'GREETING=hi', '--label', 'org.example=1', '--expose', '8000',
    '--oci', join(work, 'layout-2'), '-t', 'x:1', '--cache-dir', join(work, 'cache-b'), '--json']);
  assert.equal(again.code, 0, again.stderr);
  assert.equal((JSON.parse(again.stdout) as { digest: string }).digest, built.digest);
});

test('a multi-platform build on a pulled base mounts the base layers and never downloads them', async () => {
  // The base: a two-platform busybox image pushed to the registry by our own push sink.
  const baseStore = await BlobStore.open(join(work, 'base-store'));
  const platforms = [{ os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: 'arm64', variant: 'v8' }];
  const baseIndex = await makeBusyboxIndex(baseStore, platforms, { hello: 'from the base' });
  await new RegistrySink([`${registry.host}/bases/busybox:1`]).write(baseIndex, { blobs: storeBlobSource(baseStore), progress: silentProgress, tags: [] });

  const app = join(work, 'app');
  await mkdir(app, { recursive: true });
  await writeFile(join(app, 'app.txt'), 'the app\n');
  const cache = join(work, 'cache-base');
  const result = await uvimage([
    'build-from-dir', app, '--prefix', '/app',
    '--base', `${registry.host}/bases/busybox:1`, '--platform', 'linux/amd64,linux/arm64',
    '--cmd', '["cat","/app/app.txt"]',
    '-t', `${registry.host}/apps/onbase:1`, '--push', '--cache-dir', cache, '--json',
  ]);
  assert.equal(result.code, 0, result.stderr);
  const built = JSON.parse(result.stdout) as {
    digest: Digest;
    mediaType: string;
    images: { platform: string; layers: { digest: Digest }[] }[];
    outputs: { details: { mountedBlobs: number; uploadedBlobs: number } }[];
  };
  assert.equal(built.mediaType, 'application/vnd.oci.image.index.v1+json');
  assert.deepEqual(built.images.map((image) => image.platform), ['linux/amd64', 'linux/arm64']);
  const push = built.outputs[0]!.details;
  const baseLayers = new Set(built.images.map((image) => image.layers[0]!.digest));
  // Uploaded: our one layer (shared by both platforms) and two configs; the base layer is mounted.
  assert.deepEqual({ mounted: push.mountedBlobs, uploaded: push.uploadedBlobs }, { mounted: baseLayers.size, uploaded: 3 }, JSON.stringify(push));
  // No base layer blob was downloaded into our cache.
  const cached = new Set((await readdir(join(cache, 'blobs', 'sha256'))).map((hex) => `sha256:${hex}`));
  for (const image of built.images) {
    const baseLayer = image.layers[0]!.digest;
    assert.equal(cached.has(baseLayer), false, `base layer ${baseLayer} must not be downloaded`);
  }
  const raw = JSON.parse(await check('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${registry.host}/apps/onbase:1`])) as {
    manifests: { platform: { architecture: string } }[];
  };
  assert.deepEqual(raw.manifests.map((entry) => entry.platform.architecture), ['amd64', 'arm64']);

  // Loading it (host platform) needs the base layer, which is then fetched, verified, and runs.
  const load = await uvimage([
    'build-from-dir', app, '--prefix', '/app', '--base', `${registry.host}/bases/busybox:1`,
    '--platform', 'linux/amd64,linux/arm64', '--cmd', '["cat","/app/app.txt"]',
    '-t', 'uvimage-cli-test/onbase:1', '--load', '--cache-dir', cache, '--json',
  ]);
  assert.equal(load.code, 0, load.stderr);
  assert.equal((JSON.parse(load.stdout) as { digest: string }).digest, built.digest, 'same inputs, same index digest');
  const output = await check('docker', ['run', '--rm', '--network', 'host', 'uvimage-cli-test/onbase:1']);
  assert.equal(output.trim(), 'the app');
});

test('bad input fails with one clear line, exit 1, and no output left behind', async (t) => {
  const cache = join(work, 'cache-errors');
  const common = ['--cache-dir', cache];
  await t.test('unreachable registry', async () => {
    const result = await uvimage(['build-from-dir', rootfs, '-t', '127.0.0.1:9/x/y:1', '--push', ...common]);
    assertOneLineError(result, /cannot reach registry 127\.0\.0\.1:9/);
  });
  await t.test('unreachable base registry', async () => {
    const tar = join(work, 'never.tar');
    const result = await uvimage(['build-from-dir', rootfs, '--base', '127.0.0.1:9/base:1', '--tar', tar, '-t', 'x:1', ...common]);
    assertOneLineError(result, /127\.0\.0\.1:9/);
    await assert.rejects(stat(tar));
  });
  await t.test('base without the wanted platform', async () => {
    const result = await uvimage(['build-from-dir', rootfs, '--base', `${registry.host}/bases/busybox:1`, '--platform', 'linux/s390x', '--oci', join(work, 'never'), ...common]);
    assertOneLineError(result, /linux\/s390x.*linux\/amd64/);
    await assert.rejects(stat(join(work, 'never')));
  });
  await t.test('unwritable output path', async () => {
    const blocker = join(work, 'a-file');
    await writeFile(blocker, 'x');
    const result = await uvimage(['build-from-dir', rootfs, '--tar', join(blocker, 'out.tar'), '-t', 'x:1', ...common]);
    assertOneLineError(result, /a-file/);
    const leftovers = (await readdir(work)).filter((name) => name.includes('tmp'));
    assert.deepEqual(leftovers, []);
  });
  await t.test('invalid tag', async () => {
    assertOneLineError(await uvimage(['build-from-dir', rootfs, '-t', 'Bad/Name:1', '--push', ...common]), /Bad\/Name/);
  });
  await t.test('no output asked for', async () => {
    assertOneLineError(await uvimage(['build-from-dir', rootfs, ...common]), /--push, --load, --oci/);
  });
  await t.test('wrong credentials', async () => {
    const secured = await startRegistry({ auth: 'htpasswd' });
    try {
      const result = await uvimage(
        ['build-from-dir', rootfs, '-t', `${secured.host}/x/y:1`, '--push', '--registry-username', 'uvimage', '--registry-password-stdin', ...common],
        {},
        'wrong-password\n',
      );
      assertOneLineError(result, /401|credentials/);
      const ok = await uvimage(
        ['build-from-dir', rootfs, '-t', `${secured.host}/x/y:1`, '--push', ...common],
        { UVIMAGE_REGISTRY_USERNAME: 'uvimage', UVIMAGE_REGISTRY_PASSWORD: secured.users.uvimage! },
      );
      assert.equal(ok.code, 0, ok.stderr);
    } finally {
      await secured.stop();
    }
  });
  await t.test('a directory that does not exist', async () => {
    assertOneLineError(await uvimage(['build-from-dir', join(work, 'nope'), '--oci', join(work, 'o'), ...common]), /not a directory/);
  });
});
