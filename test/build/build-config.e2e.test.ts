/**
 * [tool.uvimage] settings that change what the image holds and runs: with no command configured,
 * the project's one console script is the entrypoint; `files` copies extra files in a layer of
 * their own; env and labels reach the config; a base from a registry. Checked in the image
 * config, the registry, the cache, and by running it.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { check, dockerRemoveImages, requireDocker } from '../harness/docker.js';
import { uvimage } from '../harness/cli.js';
import { buildOk, copyExample, exists, fastapiHello, sharedCliCache, standaloneEnv } from '../harness/project-build.js';
import { startRegistry } from '../harness/registry.js';
import { standaloneMirror, type StandaloneMirror } from '../harness/standalone-python.js';

let mirror: StandaloneMirror;
let work: string;
const tag = 'uvimage-test/build-config:1';

before(async () => {
  requireDocker();
  mirror = await standaloneMirror('3.12.1');
  work = await mkdtemp(join(tmpdir(), 'uvimage-build-config-'));
});

after(async () => {
  await dockerRemoveImages([tag]);
  if (work) await rm(work, { recursive: true, force: true });
});

test('no command: the one console script runs; files, env and labels are in the image', async () => {
  const project = await copyExample(join(work, 'project'));
  const pyproject = join(project, 'pyproject.toml');
  // The example's [tool.uvimage] without its cmd and ports, plus files, env and labels.
  const table = (await readFile(pyproject, 'utf8')).split('[tool.uvimage]')[0]!;
  await writeFile(
    pyproject,
    `${table}[tool.uvimage]\nfiles = [{ src = "config", dest = "/app/config" }, { src = "README.md", dest = "/app/README.md" }]\nenv = { GREETING_STYLE = "plain" }\nlabels = { "org.example.team" = "web" }\n`,
  );
  await mkdir(join(project, 'config'));
  await writeFile(join(project, 'config', 'settings.toml'), 'level = "info"\n');

  const built = await buildOk(['build', project, '-t', tag, '--load', '--frozen', '--cache-dir', sharedCliCache()], standaloneEnv(mirror));
  assert.deepEqual(built.platforms[0]!.layers.map((layer) => layer.role).slice(-2), ['project', 'files']);

  const config = JSON.parse(await check('docker', ['image', 'inspect', '--format', '{{json .Config}}', tag])) as {
    Entrypoint: string[] | null;
    Cmd?: string[] | null;
    Env: string[];
    Labels: Record<string, string>;
  };
  assert.deepEqual(config.Entrypoint, ['/app/.venv/bin/hello']);
  assert.equal(config.Cmd ?? undefined, undefined, 'no Cmd inherited from the base');
  assert.ok(config.Env.includes('GREETING_STYLE=plain'), config.Env.join(' '));
  assert.equal(config.Labels['org.example.team'], 'web');

  // The console script is the program; the extra files are where they were asked to go.
  assert.equal((await check('docker', ['run', '--rm', '--network', 'host', '--read-only', tag])).trim(), 'Hello world');
  const listing = await check('docker', [
    'run', '--rm', '--network', 'host', '--entrypoint', '/app/.venv/bin/python', tag,
    '-c', 'import pathlib; print(pathlib.Path("/app/config/settings.toml").read_text().strip()); print(pathlib.Path("/app/README.md").read_text().splitlines()[0])',
  ]);
  assert.deepEqual(listing.trim().split('\n'), ['level = "info"', '# fastapi-hello']);
});

test('on a base from a registry: its glibc is read once, its layers read once for the closure check and mounted on push', async () => {
  const registry = await startRegistry();
  try {
    // A cc base pushed to the registry by uvimage itself (bookworm: glibc 2.36).
    const base = `${registry.host}/bases/cc:bookworm`;
    const pushed = await uvimage(['base', 'cc', '--suite', 'bookworm', '--platform', 'linux/amd64', '-t', base, '--push', '--cache-dir', sharedCliCache()]);
    assert.equal(pushed.code, 0, pushed.stderr);

    // With base-glibc given, the glibc is not looked up; the closure check still reads the base's
    // files (its layers fetched once, their facts remembered), and the push mounts the base's
    // layers in the registry rather than uploading them.
    const cache = join(work, 'fresh-cache');
    const built = await buildOk(['build', fastapiHello, '--base', base, '--base-glibc', '2.36', '-t', `${registry.host}/apps/hello:1`, '--push', '--frozen', '--cache-dir', cache], standaloneEnv(mirror));
    const baseLayers = built.platforms[0]!.layers.filter((layer) => layer.role === 'base');
    assert.equal(baseLayers.length, 2);
    assert.equal(await exists(join(cache, 'records', 'base-glibc')), false, 'base-glibc given: not looked up');
    assert.ok(built.platforms[0]!.closure.elfFiles > 0, 'the base was part of the closure check');
    const push = built.outputs.find((output) => output.sink === 'push')!.details as { mountedBlobs: number };
    assert.equal(push.mountedBlobs, 2);

    // Without it, the glibc is read from the base's status.d and remembered for the next build.
    const detected = await uvimage(['build', fastapiHello, '--base', base, '-t', 'x:1', '--oci', join(work, 'on-base'), '--frozen', '--cache-dir', cache, '--json'], standaloneEnv(mirror));
    assert.equal(detected.code, 0, detected.stderr);
    const records = await readdir(join(cache, 'records', 'base-glibc'));
    assert.equal(records.length, 1);
    assert.deepEqual(JSON.parse(await readFile(join(cache, 'records', 'base-glibc', records[0]!), 'utf8')), [2, 36]);
  } finally {
    await registry.stop();
  }
});
