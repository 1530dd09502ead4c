/**
 * `uvimage build` economy and reproducibility (issue 5), through the CLI on the recipe's example:
 *
 * - a one-line change to the project rebuilds only the project layer, and the next push uploads
 *   that layer and the config, nothing else;
 * - two builds from two clean, empty caches give the same digest as one from the warm shared store.
 *
 * amd64 with the python-build-standalone stand-in (test/harness/standalone-python.ts).
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { check, requireDocker, run } from '../harness/docker.js';
import { buildOk, copyExample, fastapiHello, sharedCliCache, standaloneEnv, type BuildJson } from '../harness/project-build.js';
import { startRegistry, type TestRegistry } from '../harness/registry.js';
import { standaloneMirror, type StandaloneMirror } from '../harness/standalone-python.js';

let registry: TestRegistry;
let mirror: StandaloneMirror;
let work: string;
let warm: BuildJson | undefined;

before(async () => {
  requireDocker();
  registry = await startRegistry();
  mirror = await standaloneMirror('3.12.1');
  work = await mkdtemp(join(tmpdir(), 'uvimage-build-economy-'));
});

after(async () => {
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

interface PushDetails {
  uploadedBlobs: number;
  skippedBlobs: number;
  mountedBlobs: number;
  transferredBytes: number;
}

function pushOf(build: BuildJson): { bytes: number; details: PushDetails } {
  const push = build.outputs.find((output) => output.sink === 'push');
  assert.ok(push, 'a push output');
  return { bytes: push.bytes ?? 0, details: push.details as unknown as PushDetails };
}

test('a one-line change rebuilds only the project layer, and the push sends only it and the config', async () => {
  const repository = `${registry.host}/economy/fastapi-hello`;
  const env = standaloneEnv(mirror);
  const first = await buildOk(['build', fastapiHello, '--platform', 'linux/amd64', '-t', `${repository}:1`, '--push', '--cache-dir', sharedCliCache()], env);
  warm = first;
  const firstPush = pushOf(first);
  const layers = first.platforms[0]!.layers;
  assert.equal(firstPush.details.uploadedBlobs, layers.length + 1, 'the first push uploads every layer and the config');

  // The example copied elsewhere (another path on the build machine) and one line changed.
  const changed = await copyExample(join(work, 'changed'));
  const module = join(changed, 'src', 'fastapi_hello', '__init__.py');
  const source = await readFile(module, 'utf8');
  assert.match(source, /"Hello world"/);
  await writeFile(module, source.replace('"Hello world"', '"Hello again"'));
  const second = await buildOk(['build', changed, '--platform', 'linux/amd64', '-t', `${repository}:2`, '--push', '--cache-dir', sharedCliCache()], env);

  const before = first.platforms[0]!.layers;
  const after = second.platforms[0]!.layers;
  assert.deepEqual(after.map((layer) => layer.role), before.map((layer) => layer.role));
  assert.deepEqual(before.map((layer) => layer.role), ['base: libc', 'base: base', 'runtime', 'dependencies', 'project']);
  for (const [index, layer] of after.entries()) {
    if (layer.role === 'project') assert.notEqual(layer.digest, before[index]!.digest, 'the project layer changes');
    else assert.equal(layer.digest, before[index]!.digest, `the ${layer.role} layer is the same`);
  }
  assert.notEqual(second.images[0]!.config, first.images[0]!.config);

  // The push: the new project layer and the new config uploaded; every other layer was there.
  const { bytes, details } = pushOf(second);
  assert.equal(details.uploadedBlobs, 2, JSON.stringify(details));
  assert.equal(details.skippedBlobs, after.length - 1, JSON.stringify(details));
  assert.equal(details.mountedBlobs, 0);
  const project = after.find((layer) => layer.role === 'project')!;
  const configSize = JSON.parse(await check('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${repository}:2`])) as { config: { size: number } };
  assert.equal(bytes, project.size + configSize.config.size, 'bytes uploaded: the project layer and the config');
  assert.ok(bytes < 64 * 1024, `a small upload, not ${bytes} bytes`);
  assert.ok(details.transferredBytes < 64 * 1024, `${details.transferredBytes} bytes on the wire`);
  console.log(`economy: first build+push ${first.seconds.toFixed(1)} s, rebuild+push ${second.seconds.toFixed(1)} s uploading ${bytes} bytes`);
});

test('two builds from two clean, empty caches give the digest of a build from the warm store', async () => {
  // Each clean cache downloads the Debian packages and the wheels again and writes every layer
  // from scratch: nothing is shared with the warm store or with each other.
  const env = standaloneEnv(mirror);
  const [a, b] = await Promise.all(
    ['clean-a', 'clean-b'].map((name) =>
      buildOk(['build', fastapiHello, '--platform', 'linux/amd64', '-t', `fastapi-hello:${name}`, '--oci', join(work, `${name}-layout`), '--cache-dir', join(work, name)], env),
    ),
  );
  assert.equal(a!.digest, b!.digest, 'two clean caches, one digest');
  assert.deepEqual(
    a!.images[0]!.layers.map((layer) => layer.digest),
    b!.images[0]!.layers.map((layer) => layer.digest),
  );
  const reference = warm ?? (await buildOk(['build', fastapiHello, '--platform', 'linux/amd64', '-t', 'fastapi-hello:warm', '--oci', join(work, 'warm-layout'), '--cache-dir', sharedCliCache()], env));
  assert.equal(a!.digest, reference.digest, 'a clean build and a build from the warm store agree');
  console.log(`reproducibility: two clean builds in parallel ${Math.max(a!.seconds, b!.seconds).toFixed(1)} s`);
});

test('two platforms with Debian\'s runtime: every layer written again from scratch gives the same index', async () => {
  // Clean caches for both platforms would download ~100 MB of .debs and wheels again; instead the
  // warm store is copied (hardlinks: blobs are immutable, written under temp names and renamed)
  // and its records are removed, all but the two that pin *which* packages the build uses (the
  // verified InRelease and the base's package plan: without them a Debian update between the two
  // builds could change the inputs). The downloads stay; no layer is known to be built, and no
  // blob is trusted without hashing: base, runtime, dependency and project layers and their
  // bytecode are all produced again and must come out byte for byte the same.
  const args = ['build', fastapiHello, '--runtime', 'debian', '--python', '3.13', '--platform', 'linux/amd64,linux/arm64', '-t', 'fastapi-hello:debian'];
  const reference = await buildOk([...args, '--oci', join(work, 'debian-warm'), '--cache-dir', sharedCliCache()]);
  const copy = join(work, 'store-without-records');
  const copied = await run('cp', ['-al', sharedCliCache(), copy]);
  assert.equal(copied.code, 0, copied.stderr);
  const kept = new Set(['debian-inrelease', 'debian-plan']);
  const removed: string[] = [];
  for (const kind of await readdir(join(copy, 'records'))) {
    if (kept.has(kind)) continue;
    await rm(join(copy, 'records', kind), { recursive: true, force: true });
    removed.push(kind);
  }
  assert.ok(removed.includes('debian-layers') && removed.includes('venv-layer'), `records removed: ${removed.join(', ')}`);
  const again = await buildOk([...args, '--oci', join(work, 'debian-again'), '--cache-dir', copy]);
  assert.equal(again.digest, reference.digest, 'same index');
  for (const [index, image] of again.images.entries()) {
    assert.deepEqual(image.layers.map((layer) => layer.digest), reference.images[index]!.layers.map((layer) => layer.digest), image.platform);
  }
  console.log(`reproducibility (debian, 2 platforms): warm ${reference.seconds.toFixed(1)} s, without records ${again.seconds.toFixed(1)} s`);
});
