/**
 * The README's main job on a fresh machine: scripts/build-example in a fresh clone of this
 * repository, with a fresh cache directory (XDG_CACHE_HOME: no uvimage store, no stand-in, no
 * uv cache) and a PATH without uv, so everything it needs it brings or does without — npm's
 * packages, the python-build-standalone stand-in, the Debian packages and wheels, and uv, which
 * uvimage fetches from PyPI. Docker is left off its PATH as well: loading and running the image
 * (the script does it when an engine answers) is build-e2e's; here the outputs are judged by
 * skopeo. Real network: Debian's archive, PyPI and the npm registry, nothing cached.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { uvVersion } from '../../src/python/uv-downloads.js';
import { check, run } from '../harness/docker.js';
import { pathWithout } from '../harness/installed-build.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));
let work: string;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'uvimage-build-example-'));
});

after(async () => {
  await rm(work, { recursive: true, force: true });
});

test('scripts/build-example in a fresh clone, with a fresh cache and no uv, builds the example', async () => {
  const clone = join(work, 'clone');
  await check('git', ['clone', '--quiet', '--no-hardlinks', repo, clone]);
  const path = await pathWithout(['uv', 'uvx', 'docker'], join(work, 'path'));
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: path, XDG_CACHE_HOME: join(work, 'cache'), UV: '', UVIMAGE_CACHE_DIR: '', SOURCE_DATE_EPOCH: '' };
  delete env.UVIMAGE_PYTHON_MIRROR;
  delete env.UVIMAGE_PYTHON_DOWNLOADS_JSON;
  const result = await run(join(clone, 'scripts', 'build-example'), [], { cwd: work, env });
  assert.equal(result.code, 0, `build-example failed (${result.code}):\n${result.stdout}\n${result.stderr}`);
  const output = result.stdout + result.stderr;
  assert.match(output, new RegExp(`no uv on PATH \\(nor \\$UV\\): fetching uv ${uvVersion.replace(/\./g, '\\.')} from PyPI`), 'uvimage fetched its uv');

  // The two outputs the README promises, read by skopeo: one image config in both.
  const layout = JSON.parse(await check('skopeo', ['inspect', `oci:${join(clone, 'out', 'fastapi-hello-oci')}:latest`])) as { Architecture: string; Layers: string[] };
  assert.equal(layout.Architecture, 'amd64');
  assert.ok(layout.Layers.length >= 5, 'base (2), runtime, dependencies and project layers');
  const configOf = async (ref: string) => JSON.parse(await check('skopeo', ['inspect', '--config', ref])) as { rootfs: { diff_ids: string[] }; config: { Cmd: string[]; User: string } };
  const fromLayout = await configOf(`oci:${join(clone, 'out', 'fastapi-hello-oci')}:latest`);
  const fromArchive = await configOf(`docker-archive:${join(clone, 'out', 'fastapi-hello.tar')}`);
  assert.deepEqual(fromArchive, fromLayout, 'the docker-archive holds the same image');
  assert.equal(fromLayout.config.User, '65532');
  assert.equal(fromLayout.config.Cmd[0], 'fastapi');
  // Everything went to the fresh cache (the uvimage store under XDG_CACHE_HOME, its uv included).
  assert.equal((await run('test', ['-x', join(work, 'cache', 'uvimage', 'tools')])).code, 0);
});
