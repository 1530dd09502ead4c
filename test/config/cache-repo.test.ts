/**
 * Where the layer cache in a registry comes from (src/config/request.ts): --cache-repo over
 * UVIMAGE_CACHE_REPO over tool.uvimage.cache-repo, each named in the request for messages.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { resolveBuildRequest } from '../../src/config/request.js';
import { appendLines, copyExample } from '../harness/project-build.js';

let work: string;
let project: string;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'uvimage-cache-repo-config-'));
  project = await copyExample(join(work, 'project'));
  await appendLines(join(project, 'pyproject.toml'), ['cache-repo = "registry.example.com/team/cache"']);
});

after(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

test('the cache repo: the flag, else UVIMAGE_CACHE_REPO, else [tool.uvimage]', async () => {
  const request = (flags: { cacheRepo?: string }, env: NodeJS.ProcessEnv = {}) => resolveBuildRequest(project, { oci: join(work, 'out'), ...flags }, env).then((built) => built.cacheRepo);
  assert.deepEqual(await request({}), { registry: 'registry.example.com', repository: 'team/cache', from: `${join(project, 'pyproject.toml')}: tool.uvimage.cache-repo` });
  assert.deepEqual(await request({}, { UVIMAGE_CACHE_REPO: '127.0.0.1:5000/ci/cache' }), { registry: '127.0.0.1:5000', repository: 'ci/cache', from: 'UVIMAGE_CACHE_REPO' });
  assert.deepEqual(await request({ cacheRepo: 'cache.example.com/x' }, { UVIMAGE_CACHE_REPO: '127.0.0.1:5000/ci/cache' }), { registry: 'cache.example.com', repository: 'x', from: '--cache-repo' });
  // An empty variable is no setting (a CI template's unset value).
  assert.equal((await request({}, { UVIMAGE_CACHE_REPO: '' }))?.from, `${join(project, 'pyproject.toml')}: tool.uvimage.cache-repo`);
});
