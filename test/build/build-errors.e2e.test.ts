/**
 * `uvimage build` on hostile and broken input, end to end through the CLI (issue 5): each fails
 * with exit 1 and one line on stderr that names the problem, and writes no output.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { assertOneLineError, uvimage } from '../harness/cli.js';
import { requireDocker } from '../harness/docker.js';
import { appendLines, copyExample, exists, fastapiHello, sharedCliCache, standaloneEnv } from '../harness/project-build.js';
import { startRegistry, type TestRegistry } from '../harness/registry.js';
import { serveDirectory, standaloneMirror, type StandaloneMirror } from '../harness/standalone-python.js';

let registry: TestRegistry;
let mirror: StandaloneMirror;
let work: string;

before(async () => {
  requireDocker();
  registry = await startRegistry();
  mirror = await standaloneMirror('3.12.1');
  work = await mkdtemp(join(tmpdir(), 'uvimage-build-errors-'));
});

after(async () => {
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

/** Outputs each failing run asks for; none may exist afterwards. */
function outputs(name: string): { args: string[]; paths: string[] } {
  const layout = join(work, `${name}-layout`);
  const tar = join(work, `${name}.tar`);
  return { args: ['--oci', layout, '--tar', tar, '-t', `fastapi-hello:${name}`], paths: [layout, tar] };
}

async function assertNothingWritten(paths: string[]): Promise<void> {
  for (const path of paths) assert.equal(await exists(path), false, `${path} must not be written`);
  const leftovers = (await readdir(work)).filter((name) => /tmp|\.partial|\.uvimage-/.test(name));
  assert.deepEqual(leftovers, [], 'no temp files left beside the outputs');
}

test('a project without uv.lock', async () => {
  const project = await copyExample(join(work, 'no-lock'), { without: ['uv.lock'] });
  const out = outputs('no-lock');
  const result = await uvimage(['build', project, ...out.args, '--cache-dir', sharedCliCache()], standaloneEnv(mirror));
  assertOneLineError(result, /uv\.lock not found; run `uv lock` to create it/);
  await assertNothingWritten(out.paths);
});

test('an unknown key in [tool.uvimage]', async () => {
  const project = await copyExample(join(work, 'unknown-key'));
  // [tool.uvimage] is the example's last table.
  await appendLines(join(project, 'pyproject.toml'), ['pyhton = "3.12"']);
  const out = outputs('unknown-key');
  const result = await uvimage(['build', project, ...out.args, '--cache-dir', sharedCliCache()], standaloneEnv(mirror));
  assertOneLineError(result, /pyproject\.toml: unknown key tool\.uvimage\.pyhton/);
  await assertNothingWritten(out.paths);
});

test('a Python version no release has', async () => {
  const out = outputs('python-3-99');
  const result = await uvimage(['build', fastapiHello, '--python', '3.99', ...out.args, '--cache-dir', sharedCliCache()], standaloneEnv(mirror));
  assertOneLineError(result, /no python-build-standalone release of Python 3\.99 for x86_64 Linux/);
  await assertNothingWritten(out.paths);
});

test('Debian\'s runtime with a Python version its suite does not have', async () => {
  // The example's .python-version says 3.12; trixie's CPython is 3.13.
  const out = outputs('debian-3-12');
  const result = await uvimage(['build', fastapiHello, '--runtime', 'debian', ...out.args, '--cache-dir', sharedCliCache()]);
  assertOneLineError(result, /Python 3\.12 was asked for \(\.python-version\), but Debian trixie's CPython is 3\.13/);
  await assertNothingWritten(out.paths);
});

test('a base image without the wanted platform', async () => {
  // A single-platform (amd64) base in the registry, made by uvimage itself.
  const base = `${registry.host}/bases/static:amd64`;
  const pushed = await uvimage(['base', 'static', '--platform', 'linux/amd64', '-t', base, '--push', '--cache-dir', sharedCliCache()]);
  assert.equal(pushed.code, 0, pushed.stderr);
  // The stand-in runtime is x86_64 only and the Python version is settled first: metadata that
  // also lists it for aarch64 lets the build reach the base, whose platform is then refused
  // before anything is downloaded.
  const metadata = JSON.parse(await readFile(mirror.metadataPath, 'utf8')) as Record<string, { arch: { family: string } }>;
  for (const [key, entry] of Object.entries(metadata)) metadata[key.replace('x86_64', 'aarch64')] = { ...entry, arch: { ...entry.arch, family: 'aarch64' } };
  const withArm = join(work, 'metadata-with-aarch64.json');
  await writeFile(withArm, JSON.stringify(metadata));
  const out = outputs('base-platform');
  const result = await uvimage(['build', fastapiHello, '--base', base, '--platform', 'linux/arm64', ...out.args, '--cache-dir', sharedCliCache()], {
    ...standaloneEnv(mirror),
    UVIMAGE_PYTHON_DOWNLOADS_JSON: withArm,
  });
  assertOneLineError(result, /has no linux\/arm64.*linux\/amd64/);
  await assertNothingWritten(out.paths);
});

test('a runtime archive whose checksum does not match', async () => {
  // The stand-in served over http as a release mirror, with metadata whose sha256 is wrong.
  const metadata = JSON.parse(await readFile(mirror.metadataPath, 'utf8')) as Record<string, { sha256: string }>;
  const wrong = '0'.repeat(64);
  for (const entry of Object.values(metadata)) entry.sha256 = wrong;
  const forged = join(work, 'forged-metadata.json');
  await writeFile(forged, JSON.stringify(metadata));
  const server = await serveDirectory(mirror.dir);
  try {
    const out = outputs('checksum');
    const cache = sharedCliCache();
    const result = await uvimage(['build', fastapiHello, ...out.args, '--cache-dir', cache], {
      UVIMAGE_PYTHON_MIRROR: server.url,
      UVIMAGE_PYTHON_DOWNLOADS_JSON: forged,
    });
    assertOneLineError(result, /python-build-standalone archive .*install_only\.tar\.gz: digest mismatch: expected sha256:0{64}, got sha256:[0-9a-f]{64}/);
    // The archive was fetched from the mirror and refused, not missing.
    assert.ok(server.requests.some((path) => path.endsWith('-install_only.tar.gz')), `requests: ${server.requests.join(', ')}`);
    await assertNothingWritten(out.paths);
    assert.equal(await exists(join(cache, 'blobs', 'sha256', wrong)), false, 'nothing stored under the claimed digest');
  } finally {
    await server.stop();
  }
});
