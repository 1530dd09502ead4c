/**
 * Stripped native modules end to end (issue 12, point 4): examples/fastapi-hello, whose lock
 * brings uvloop (a 16 MB `loop.*.so` with its debug information), built by the CLI for amd64 and
 * arm64 with Debian's CPython 3.13; in both images the module is stripped (no debug section,
 * about 2 MB, RECORD naming its new hash and size) and it imports and runs an event loop as
 * 65532 on a read-only root, arm64 under qemu-user.
 *
 * Needs: a Docker engine (scripts/start-dockerd), the qemu-aarch64 binfmt entry with flag F
 * (scripts/enable-binfmt). Builds use the persistent test store, so a rerun downloads nothing.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createGunzip } from 'node:zlib';
import { after, before, test } from 'node:test';
import { planStripDebug } from '../../src/binary/strip.js';
import { BlobStore } from '../../src/oci/store.js';
import { readTar } from '../../src/oci/tar-reader.js';
import { parseRecord } from '../../src/python/wheel-installer.js';
import { check, dockerRemoveImages, requireDocker, run } from '../harness/docker.js';
import { buildOk, fastapiHello, sharedCliCache, type BuildJson } from '../harness/project-build.js';

const images = { amd64: 'uvimage-e2e/strip:amd64', arm64: 'uvimage-e2e/strip:arm64' };
const site = 'app/.venv/lib/python3.13/site-packages';
const buildArgs = ['build', fastapiHello, '--runtime', 'debian', '--python', '3.13', '--platform', 'linux/amd64,linux/arm64', '--cache-dir', sharedCliCache()];

before(() => requireDocker());
after(async () => {
  await dockerRemoveImages(Object.values(images));
});

/** uvloop's module and RECORD as the dependencies layer of `report` has them. */
async function uvloopInLayer(report: BuildJson['platforms'][number], arch: 'x86_64' | 'aarch64'): Promise<{ module: Buffer; record: string }> {
  const store = await BlobStore.open(sharedCliCache());
  const layer = report.layers.find((entry) => entry.role === 'dependencies')!;
  const modulePath = `${site}/uvloop/loop.cpython-313-${arch}-linux-gnu.so`;
  let module: Buffer | undefined;
  let record: string | undefined;
  const wanted = (name: string) => name === modulePath || /^app\/\.venv\/lib\/python3\.13\/site-packages\/uvloop-[^/]+\.dist-info\/RECORD$/.test(name);
  for await (const member of readTar(store.openRead(layer.digest).pipe(createGunzip()), { what: `layer ${layer.digest}`, collect: (m) => wanted(m.name), maxCollect: 64 * 1024 * 1024 })) {
    if (member.name === modulePath) module = member.content;
    else if (wanted(member.name)) record = member.content!.toString('utf8');
  }
  assert.ok(module && record, `${report.platform}: uvloop's module and RECORD are in the dependencies layer`);
  return { module, record };
}

async function assertStripped(report: BuildJson['platforms'][number], arch: 'x86_64' | 'aarch64'): Promise<number> {
  const { module, record } = await uvloopInLayer(report, arch);
  const reason = await planStripDebug(async (position, length) => module.subarray(position, position + length), module.length);
  assert.deepEqual(reason, { strip: false, reason: 'no debug sections' }, `${report.platform}: loop.*.so has no debug section left`);
  assert.ok(module.length < 2_200_000, `${report.platform}: loop.*.so is ${module.length} bytes`);
  const line = parseRecord(record, 'RECORD').find((entry) => entry.path === `uvloop/loop.cpython-313-${arch}-linux-gnu.so`)!;
  assert.equal(line.size, module.length);
  assert.equal(line.hash, `sha256=${createHash('sha256').update(module).digest('base64url')}`);
  return module.length;
}

const probe = 'import asyncio, uvloop, uvloop.loop\nasync def main():\n    await asyncio.sleep(0)\n    return type(asyncio.get_running_loop()).__module__\nprint(uvloop.run(main()), uvloop.loop.__file__)';

async function assertImports(image: string, platform: string, arch: string): Promise<void> {
  const output = await check('docker', ['run', '--rm', '--platform', platform, '--network', 'none', '--read-only', '--user', '65532', '--entrypoint', '/app/.venv/bin/python', image, '-c', probe]);
  assert.equal(output.trim(), `uvloop /app/.venv/lib/python3.13/site-packages/uvloop/loop.cpython-313-${arch}-linux-gnu.so`);
}

test('amd64 and arm64: uvloop\'s module stripped in the layer, RECORD rewritten; it imports and runs read-only as 65532', async () => {
  const built = await buildOk([...buildArgs, '-t', images.amd64, '--load']);
  const [amd64, arm64] = built.platforms;
  assert.deepEqual([amd64!.platform, arm64!.platform], ['linux/amd64', 'linux/arm64']);
  const sizes = [await assertStripped(amd64!, 'x86_64'), await assertStripped(arm64!, 'aarch64')];
  await assertImports(images.amd64, 'linux/amd64', 'x86_64');

  const binfmt = await run('cat', ['/proc/sys/fs/binfmt_misc/qemu-aarch64']);
  assert.match(binfmt.stdout, /flags: .*F/, 'qemu-aarch64 must be registered with flag F (scripts/enable-binfmt)');
  const loaded = await buildOk([...buildArgs, '-t', images.arm64, '--load', '--load-platform', 'linux/arm64']);
  assert.equal(loaded.digest, built.digest, 'same inputs, same index');
  await assertImports(images.arm64, 'linux/arm64', 'aarch64');
  console.log(`stripped loop.*.so: amd64 ${sizes[0]} bytes, arm64 ${sizes[1]} bytes; build ${built.seconds.toFixed(1)} s`);
});
