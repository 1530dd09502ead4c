/**
 * `uvimage build` end to end (issue 5): the recipe's example (examples/fastapi-hello) built by the
 * CLI, loaded into a real Docker engine, run the way the recipe says (`--read-only --user 65532`)
 * and asked over HTTP; amd64 with the python-build-standalone runtime (the default) and with
 * Debian's CPython, and the arm64 images of two-platform builds under qemu-user, with either
 * runtime.
 *
 * python-build-standalone's home (GitHub) is unreachable here, so the standalone runtime comes
 * from stand-ins in its layout, served as a mirror (UVIMAGE_PYTHON_MIRROR) with uv-format
 * metadata (UVIMAGE_PYTHON_DOWNLOADS_JSON), through the same download, verification and trimming
 * code as the real archives:
 *   - CPython 3.12.1 made from pyenv's build on this machine (test/harness/standalone-python.ts),
 *     x86_64 only;
 *   - CPython 3.13 made from Debian trixie's python3.13 .debs for x86_64 and aarch64
 *     (test/harness/debian-standalone-python.ts), so one two-platform build has the same Python on
 *     both and its arm64 image runs under qemu.
 * Where python-build-standalone's release URL answers, the amd64 standalone test downloads the
 * real archive (uvimage's pinned table, no mirror) instead of the 3.12.1 stand-in.
 * Debian's own runtime (`--runtime debian`) is trixie's python3.13 from the real archive.
 *
 * Builds use the persistent test store, so a rerun downloads nothing.
 * Needs: a Docker engine (scripts/start-dockerd); for arm64 the qemu-aarch64 binfmt entry with
 * flag F (scripts/enable-binfmt).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createGunzip } from 'node:zlib';
import { after, before, test } from 'node:test';
import { check, dockerRemoveImages, requireDocker, run } from '../harness/docker.js';
import {
  appCommand,
  buildOk,
  fastapiHello,
  inspectImage,
  removeContainers,
  sharedCliCache,
  standaloneEnv,
  startContainer,
  waitForHttp,
  type BuildJson,
} from '../harness/project-build.js';
import { freePort, startRegistry, type TestRegistry } from '../harness/registry.js';
import { reachableRealStandalone, standaloneMirror, type StandaloneMirror } from '../harness/standalone-python.js';
import { debianStandaloneMirror } from '../harness/debian-standalone-python.js';
import { elfMachine } from '../harness/uv.js';
import { BlobStore } from '../../src/oci/store.js';
import { readTar } from '../../src/oci/tar-reader.js';

const images = {
  standalone: 'uvimage-e2e/fastapi-hello:standalone',
  debian: 'uvimage-e2e/fastapi-hello:debian',
  debianArm64: 'uvimage-e2e/fastapi-hello:debian-arm64',
  standalone313: 'uvimage-e2e/fastapi-hello:standalone-3.13',
  standalone313Arm64: 'uvimage-e2e/fastapi-hello:standalone-3.13-arm64',
};
const hello = { message: 'Hello world' };

let registry: TestRegistry;
let mirror: StandaloneMirror;
/** The Debian-made stand-in: the same CPython 3.13 for x86_64 and aarch64. */
let mirror313: StandaloneMirror;
let work: string;
const containers: string[] = [];

before(async () => {
  requireDocker();
  registry = await startRegistry();
  mirror = await standaloneMirror('3.12.1');
  mirror313 = await debianStandaloneMirror();
  work = await mkdtemp(join(tmpdir(), 'uvimage-build-e2e-'));
});

after(async () => {
  await removeContainers(containers);
  await dockerRemoveImages([...Object.values(images), `${registry?.host}/e2e/fastapi-hello:debian`]);
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

/** The image config the recipe promises, as the engine sees the loaded image. */
async function assertImageConfig(ref: string, architecture: string, pythonMinor: string): Promise<void> {
  const image = await inspectImage(ref);
  assert.equal(image.Architecture, architecture);
  const config = image.Config;
  assert.equal(config.User, '65532');
  assert.equal(config.WorkingDir, '/app');
  const env = new Map((config.Env ?? []).map((entry) => [entry.slice(0, entry.indexOf('=')), entry.slice(entry.indexOf('=') + 1)]));
  assert.match(env.get('PATH') ?? '', /^\/app\/\.venv\/bin:/);
  assert.equal(env.get('VIRTUAL_ENV'), '/app/.venv');
  assert.equal(env.get('SSL_CERT_FILE'), '/etc/ssl/certs/ca-certificates.crt');
  // Bytecode is shipped, not switched off: the no-__pycache__ checks below would prove nothing otherwise.
  assert.equal(env.has('PYTHONDONTWRITEBYTECODE'), false);
  assert.deepEqual(Object.keys(config.ExposedPorts ?? {}), ['8000/tcp']);
  // The example's cmd, {site-packages} expanded for the runtime's Python.
  assert.deepEqual(config.Cmd, ['fastapi', 'run', '--host', '0.0.0.0', '--port', '8000', `/app/.venv/lib/python${pythonMinor}/site-packages/fastapi_hello`]);
}

/**
 * Runs the image as the recipe does (read-only root, nonroot user) and asks the app; then once
 * more as root on a writable root, where Python would write __pycache__ for any module whose pyc
 * is missing or stale, and checks with `docker diff` that nothing of the kind was written.
 */
async function assertServesHello(
  ref: string,
  pythonMinor: string,
  options: { platform?: string; timeoutMs: number; writableRun?: boolean },
): Promise<{ readOnlyMs: number; rootMs?: number }> {
  const platformArgs = options.platform ? ['--platform', options.platform] : [];
  // The image's own Cmd listens on 0.0.0.0:8000; on the host network a free port on loopback is
  // safer, so the same command is given with another port (the image is unchanged).
  const port = await freePort();
  const readOnly = await startContainer(ref, [...platformArgs, '--read-only', '--user', '65532'], appCommand(pythonMinor, port));
  containers.push(readOnly);
  const answer = await waitForHttp(`http://127.0.0.1:${port}/`, readOnly, options.timeoutMs);
  assert.equal(answer.status, 200, answer.body);
  assert.deepEqual(JSON.parse(answer.body), hello);
  const user = await check('docker', ['inspect', '--format', '{{.Config.User}} {{.HostConfig.ReadonlyRootfs}}', readOnly]);
  assert.equal(user.trim(), '65532 true');
  await removeContainers([readOnly]);
  if (options.writableRun === false) return { readOnlyMs: answer.waitedMs };

  const rootPort = await freePort();
  const writable = await startContainer(ref, [...platformArgs, '--user', '0'], appCommand(pythonMinor, rootPort));
  containers.push(writable);
  const again = await waitForHttp(`http://127.0.0.1:${rootPort}/`, writable, options.timeoutMs);
  assert.deepEqual(JSON.parse(again.body), hello);
  const diff = (await check('docker', ['diff', writable])).trim().split('\n').filter(Boolean);
  const bytecode = diff.filter((line) => /__pycache__|\.pyc$/.test(line));
  assert.deepEqual(bytecode, [], `the app wrote bytecode at start:\n${diff.join('\n')}`);
  await removeContainers([writable]);
  return { readOnlyMs: answer.waitedMs, rootMs: again.waitedMs };
}

test('amd64 with the python-build-standalone runtime: loaded, runs read-only as 65532, says hello, writes no bytecode', async () => {
  // The real release where its home answers (uvimage's pinned table, no mirror); else the stand-in.
  const real = await reachableRealStandalone('3.12');
  const runtime = real ? { env: {}, version: real.version, what: `the real ${real.asset}` } : { env: standaloneEnv(mirror), version: mirror.version, what: 'the stand-in (GitHub unreachable)' };
  const built = await buildOk(['build', fastapiHello, '--platform', 'linux/amd64', '-t', images.standalone, '--load', '--cache-dir', sharedCliCache()], runtime.env);
  assert.equal(built.mediaType, 'application/vnd.oci.image.manifest.v1+json');
  const [report] = built.platforms;
  assert.equal(report!.runtime, 'standalone');
  assert.equal(report!.python, runtime.version);
  assert.deepEqual(report!.layers.map((layer) => layer.role), ['base: libc', 'base: base', 'runtime', 'dependencies', 'project']);
  assert.deepEqual(built.outputs.map((output) => output.sink), ['load']);
  await assertImageConfig(images.standalone, 'amd64', '3.12');
  const waited = await assertServesHello(images.standalone, '3.12', { timeoutMs: 60_000 });
  console.log(`standalone amd64 (${runtime.what}): build ${built.seconds.toFixed(1)} s, first answer after ${waited.readOnlyMs} ms`);
});

let debianBuild: BuildJson | undefined;

test('amd64 with Debian\'s runtime, one two-platform build pushed, written as a layout and loaded', async () => {
  // trixie's CPython is 3.13 and the example's .python-version says 3.12, so the version is given;
  // the lock (requires-python >=3.12) has 3.13 wheels for everything.
  const pushed = `${registry.host}/e2e/fastapi-hello:debian`;
  const layout = join(work, 'debian-layout');
  const built = await buildOk([
    'build', fastapiHello, '--runtime', 'debian', '--python', '3.13', '--platform', 'linux/amd64,linux/arm64',
    '-t', pushed, '--push', '--oci', layout, '--load', '--cache-dir', sharedCliCache(),
  ]);
  debianBuild = built;
  assert.equal(built.mediaType, 'application/vnd.oci.image.index.v1+json');
  assert.deepEqual(built.platforms.map((report) => [report.platform, report.runtime, report.python.split('.').slice(0, 2).join('.')]), [
    ['linux/amd64', 'debian', '3.13'],
    ['linux/arm64', 'debian', '3.13'],
  ]);
  for (const report of built.platforms) assert.deepEqual(report.layers.map((layer) => layer.role).slice(-2), ['dependencies', 'project']);
  assert.deepEqual(built.outputs.map((output) => output.sink).sort(), ['load', 'oci', 'push']);
  for (const output of built.outputs) assert.equal(output.digest, output.sink === 'load' ? built.images[0]!.digest : built.digest);
  // The registry and the layout hold the index with both platforms, as skopeo reads them.
  const raw = JSON.parse(await check('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${pushed}`])) as { manifests: { platform: { architecture: string } }[] };
  assert.deepEqual(raw.manifests.map((entry) => entry.platform.architecture), ['amd64', 'arm64']);
  await check('skopeo', ['inspect', `oci:${layout}:debian`]);

  // --load took the host's platform (amd64); the tag loaded is the pushed reference.
  await check('docker', ['tag', pushed, images.debian]);
  await assertImageConfig(images.debian, 'amd64', '3.13');
  const waited = await assertServesHello(images.debian, '3.13', { timeoutMs: 60_000 });
  console.log(`debian amd64+arm64: build ${built.seconds.toFixed(1)} s, amd64 first answer after ${waited.readOnlyMs} ms`);
});

test('the arm64 image of the same build runs under qemu-user and says hello', async () => {
  assert.ok(debianBuild, 'needs the two-platform build above');
  const binfmt = await run('cat', ['/proc/sys/fs/binfmt_misc/qemu-aarch64']);
  assert.match(binfmt.stdout, /flags: .*F/, 'qemu-aarch64 must be registered with flag F (scripts/enable-binfmt)');
  // The same inputs again, the arm64 image taken for --load: same index, nothing rebuilt.
  const loaded = await buildOk([
    'build', fastapiHello, '--runtime', 'debian', '--python', '3.13', '--platform', 'linux/amd64,linux/arm64',
    '-t', images.debianArm64, '--load', '--load-platform', 'linux/arm64', '--cache-dir', sharedCliCache(),
  ]);
  assert.equal(loaded.digest, debianBuild.digest, 'same inputs, same index');
  const arm64 = debianBuild.images.find((image) => image.platform === 'linux/arm64')!;
  assert.equal(loaded.outputs[0]!.digest, arm64.digest);
  await assertImageConfig(images.debianArm64, 'arm64', '3.13');
  // The interpreter in it is an aarch64 one, run through qemu.
  const machine = await check('docker', ['run', '--rm', '--platform', 'linux/arm64', '--network', 'host', '--read-only', '--user', '65532', '--entrypoint', 'python3', images.debianArm64, '-c', 'import platform; print(platform.machine())']);
  assert.equal(machine.trim(), 'aarch64');
  // Slow under emulation (over a minute to the first answer): a generous wait, and one run only;
  // the bytecode of the same build was checked on amd64 (the arm64 layers are compiled the same way).
  const waited = await assertServesHello(images.debianArm64, '3.13', { platform: 'linux/arm64', timeoutMs: 180_000, writableRun: false });
  console.log(`debian arm64 under qemu: reload ${loaded.seconds.toFixed(1)} s, first answer after ${waited.readOnlyMs} ms`);
});

/**
 * Every ELF file under /python in an image is of `machine`. Only the runtime layer puts anything
 * there (base and venv layers do not), so only it is read.
 */
async function assertRuntimeMachine(report: BuildJson['platforms'][number], machine: 'x86_64' | 'aarch64'): Promise<void> {
  const store = await BlobStore.open(sharedCliCache());
  const runtime = report.layers.find((layer) => layer.role === 'runtime')!;
  const machines = new Map<string, string>();
  const tar = store.openRead(runtime.digest).pipe(createGunzip());
  for await (const member of readTar(tar, { what: `runtime layer ${runtime.digest}`, collect: (m) => m.type === 'file', maxCollect: 64 * 1024 * 1024 })) {
    const content = member.content;
    assert.ok(member.name.startsWith('python/'), `${member.name} in the runtime layer`);
    const found = content && elfMachine(content);
    if (found) machines.set(member.name, found);
  }
  // The interpreter, the bundled libraries and the extension modules a trimmed runtime keeps.
  assert.ok(machines.has('python/bin/python3.13') && machines.has('python/lib/libssl.so.3'), [...machines.keys()].join('\n'));
  assert.ok(machines.size > 30, `${machines.size} ELF files under /python`);
  for (const [path, found] of machines) assert.equal(found, machine, `${report.platform}: ${path} is ${found}, not ${machine}`);
}

let standalone313Build: BuildJson | undefined;

test('python-build-standalone 3.13 for amd64 and arm64 in one build: the amd64 image loaded, runs read-only as 65532, says hello, writes no bytecode', async () => {
  // The example's .python-version says 3.12; the stand-in for both architectures is 3.13.
  const built = await buildOk(
    ['build', fastapiHello, '--python', '3.13', '--platform', 'linux/amd64,linux/arm64', '-t', images.standalone313, '--load', '--cache-dir', sharedCliCache()],
    standaloneEnv(mirror313),
  );
  standalone313Build = built;
  assert.equal(built.mediaType, 'application/vnd.oci.image.index.v1+json');
  assert.deepEqual(built.platforms.map((report) => [report.platform, report.runtime, report.python]), [
    ['linux/amd64', 'standalone', mirror313.version],
    ['linux/arm64', 'standalone', mirror313.version],
  ]);
  for (const report of built.platforms) {
    assert.deepEqual(report.layers.map((layer) => layer.role), ['base: libc', 'base: base', 'runtime', 'dependencies', 'project']);
  }
  // Each platform has its own runtime layer (one archive per architecture).
  const [amd64Runtime, arm64Runtime] = built.platforms.map((report) => report.layers.find((layer) => layer.role === 'runtime')!.digest);
  assert.notEqual(amd64Runtime, arm64Runtime);
  const elfStarted = Date.now();
  await assertRuntimeMachine(built.platforms[0]!, 'x86_64');
  await assertRuntimeMachine(built.platforms[1]!, 'aarch64');
  const elfSeconds = (Date.now() - elfStarted) / 1000;

  await assertImageConfig(images.standalone313, 'amd64', '3.13');
  const runStarted = Date.now();
  const waited = await assertServesHello(images.standalone313, '3.13', { timeoutMs: 60_000 });
  console.log(
    `standalone 3.13 amd64+arm64: build ${built.seconds.toFixed(1)} s, ELF check ${elfSeconds.toFixed(1)} s, amd64 first answer after ${waited.readOnlyMs} ms (both runs ${((Date.now() - runStarted) / 1000).toFixed(1)} s)`,
  );
});

test('the arm64 image of that build (python-build-standalone runtime) runs under qemu-user and says hello', async () => {
  assert.ok(standalone313Build, 'needs the two-platform build above');
  const binfmt = await run('cat', ['/proc/sys/fs/binfmt_misc/qemu-aarch64']);
  assert.match(binfmt.stdout, /flags: .*F/, 'qemu-aarch64 must be registered with flag F (scripts/enable-binfmt)');
  const loaded = await buildOk(
    ['build', fastapiHello, '--python', '3.13', '--platform', 'linux/amd64,linux/arm64', '-t', images.standalone313Arm64, '--load', '--load-platform', 'linux/arm64', '--cache-dir', sharedCliCache()],
    standaloneEnv(mirror313),
  );
  assert.equal(loaded.digest, standalone313Build.digest, 'same inputs, same index');
  const arm64 = standalone313Build.images.find((image) => /^linux\/arm64/.test(image.platform))!;
  assert.equal(loaded.outputs[0]!.digest, arm64.digest);
  await assertImageConfig(images.standalone313Arm64, 'arm64', '3.13');
  // The venv's interpreter is the relocated aarch64 CPython at /python, run through qemu: it finds
  // its prefix from its own location and its libraries through $ORIGIN.
  const probe = await check('docker', [
    'run', '--rm', '--platform', 'linux/arm64', '--network', 'host', '--read-only', '--user', '65532', '--entrypoint', '/app/.venv/bin/python', images.standalone313Arm64,
    '-c', 'import platform, sys, ssl, sqlite3, ctypes, lzma, bz2, zoneinfo, decimal; print(platform.machine(), sys.base_prefix, sys.prefix, platform.python_version())',
  ]);
  assert.equal(probe.trim(), `aarch64 /python /app/.venv ${mirror313.version}`);
  // The stdlib pycs of the arm64 archive are valid for its sources in the image (timestamp pycs,
  // their mtime field rewritten to the layer's): root on a writable root writes no __pycache__.
  // (The whole app's start is checked so on amd64; under qemu a second app start costs ~40 s.)
  const writable = await startContainer(images.standalone313Arm64, ['--platform', 'linux/arm64', '--user', '0', '--entrypoint', '/app/.venv/bin/python'], [
    '-c', 'import asyncio, bz2, ctypes, decimal, email.message, http.client, json, lzma, sqlite3, ssl, zoneinfo',
  ]);
  containers.push(writable);
  assert.equal((await check('docker', ['wait', writable])).trim(), '0', (await run('docker', ['logs', writable])).stderr);
  const diff = (await check('docker', ['diff', writable])).trim().split('\n').filter(Boolean);
  assert.deepEqual(diff.filter((line) => /__pycache__|\.pyc$/.test(line)), [], `the arm64 runtime wrote bytecode:\n${diff.join('\n')}`);
  await removeContainers([writable]);
  const waited = await assertServesHello(images.standalone313Arm64, '3.13', { platform: 'linux/arm64', timeoutMs: 180_000, writableRun: false });
  console.log(`standalone 3.13 arm64 under qemu: reload ${loaded.seconds.toFixed(1)} s, first answer after ${waited.readOnlyMs} ms`);
});
