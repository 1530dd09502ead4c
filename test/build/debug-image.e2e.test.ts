/**
 * The debug variant (issue 14): `--debug-image` also writes `<tag>-debug`, the same image plus
 * Debian's static busybox at /busybox on PATH in one extra top layer, every other layer shared.
 * Loaded into Docker, `/busybox/sh -c 'echo ok'` runs in it as 65532 on a read-only root; the
 * image itself has no shell; a --tar gets its sibling app-debug.tar.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { check, dockerRemoveImages, requireDocker, run } from '../harness/docker.js';
import { buildOk, exists, fastapiHello, inspectImage, sharedCliCache, standaloneEnv } from '../harness/project-build.js';
import { standaloneMirror, type StandaloneMirror } from '../harness/standalone-python.js';
import { uvBinary } from '../harness/uv.js';

const tag = 'uvimage-test/debug-image:1';
let mirror: StandaloneMirror;
let work: string;

before(async () => {
  requireDocker();
  mirror = await standaloneMirror('3.12.1');
  work = await mkdtemp(join(tmpdir(), 'uvimage-debug-image-'));
});

after(async () => {
  await dockerRemoveImages([tag, `${tag}-debug`]);
  if (work) await rm(work, { recursive: true, force: true });
});

test('<tag>-debug: busybox at /busybox on PATH in one more layer; the image itself has no shell', async () => {
  const archive = join(work, 'app.tar');
  const built = await buildOk(['build', fastapiHello, '-t', tag, '--load', '--tar', archive, '--debug-image', '--cache-dir', sharedCliCache()], { ...standaloneEnv(mirror), UV: uvBinary() });
  assert.ok(built.outputs.some((output) => output.sink === 'load' && output.written.some((name) => name.endsWith('debug-image:1-debug'))), JSON.stringify(built.outputs));
  assert.ok(await exists(join(work, 'app-debug.tar')), 'the tar gets its sibling');

  const image = await inspectImage(tag);
  const debug = await inspectImage(`${tag}-debug`);
  assert.deepEqual(debug.RootFS.Layers.slice(0, -1), image.RootFS.Layers, 'every layer of the image is shared');
  assert.equal(debug.RootFS.Layers.length, image.RootFS.Layers.length + 1);

  const ok = await check('docker', ['run', '--rm', '--network', 'none', '--read-only', '--user', '65532', '--entrypoint', '/busybox/sh', `${tag}-debug`, '-c', 'echo ok']);
  assert.equal(ok.trim(), 'ok');
  const path = await check('docker', ['run', '--rm', '--network', 'none', '--read-only', '--user', '65532', '--entrypoint', '/busybox/sh', `${tag}-debug`, '-c', 'echo "$PATH"; which ls']);
  assert.match(path, /:\/busybox\n\/busybox\/ls\n$/);
  const none = await run('docker', ['run', '--rm', '--network', 'none', '--entrypoint', '/busybox/sh', tag, '-c', 'echo ok']);
  assert.notEqual(none.code, 0, 'the image itself has no /busybox');
});
