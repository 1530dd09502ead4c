/**
 * Lock freshness is uv's to decide (issue 11): checkLockWithUv against real uv on pairs of
 * projects where uv says fresh and where it says stale — the workspace-bounds and normalised-marker
 * locks uvimage used to refuse, extras, groups, sources, members — plus the project's
 * required-version and the remembered verdict.
 */
import assert from 'node:assert/strict';
import { chmod, cp, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { UserError } from '../../src/errors.js';
import { BlobStore } from '../../src/oci/store.js';
import { checkLockWithUv } from '../../src/python/lock-check.js';
import { readPyProject, readWorkspaceMembers } from '../../src/python/pyproject.js';
import { uvBinary, uvEnv } from '../harness/uv.js';

const fixtures = fileURLToPath(new URL('../fixtures/python/', import.meta.url));
const projects = fileURLToPath(new URL('../fixtures/projects/', import.meta.url));
const FIXTURES = ['pure', 'cext', 'extras', 'groups', 'markers', 'scripts', 'workspace', 'conflicts', 'virtual-workspace', 'virtual-app'];

async function copy(dir: string): Promise<string> {
  const target = join(await mkdtemp(join(tmpdir(), 'uvimage-lock-check-')), 'project');
  await cp(dir, target, { recursive: true });
  return target;
}

async function editFile(file: string, from: string | RegExp, to: string): Promise<void> {
  const text = await readFile(file, 'utf8');
  const edited = text.replace(from, to);
  assert.notEqual(edited, text, `edit of ${file} applies`);
  await writeFile(file, edited);
}

const env = uvEnv({ UV: uvBinary() });

async function check(dir: string, options: { store?: BlobStore; env?: NodeJS.ProcessEnv } = {}): Promise<void> {
  const root = await readPyProject(dir);
  await checkLockWithUv(root, await readWorkspaceMembers(root), { env: options.env ?? env, store: options.store });
}

test('every fixture lock is fresh, as uv says', async () => {
  for (const name of FIXTURES) await check(join(fixtures, name));
});

test('locks uvimage once refused are fresh: intersected requires-python of a workspace, markers uv normalises', async () => {
  // pyproject.toml says platform_system != 'Windows'; uv wrote sys_platform != 'win32' in the lock.
  const markers = await readFile(join(projects, 'platform-markers', 'pyproject.toml'), 'utf8');
  assert.match(markers, /platform_system != 'Windows'/);
  await check(join(projects, 'platform-markers'));
  // Members' bounds >=3.9.2,<4 and >=3.10.2,<4 and the root's, intersected by uv in the lock.
  await check(join(projects, 'workspace-bounds'));
});

test('a lock uv calls stale is refused in uv\'s words', async () => {
  const stale = async (base: string, file: string, from: string | RegExp, to: string, said = /needs to be updated|No solution found/) => {
    const dir = await copy(base);
    await editFile(join(dir, file), from, to);
    await assert.rejects(check(dir), (error: unknown) => {
      assert.ok(error instanceof UserError, String(error));
      assert.match(error.message, /^uv lock --check refuses .*uv\.lock: .+; run `uv lock`, or pass --frozen$/);
      // uv either finds the lock needs an update or, offline, cannot even resolve what pyproject.toml now asks.
      assert.match(error.message, said);
      return true;
    }, `${base}: ${String(from)} -> ${to}`);
  };
  await stale(join(fixtures, 'pure'), 'pyproject.toml', 'requests>=2.31', 'requests>=2.32.5');
  await stale(join(fixtures, 'pure'), 'pyproject.toml', '"requests>=2.31"', '"requests>=2.31", "rich"');
  await stale(join(fixtures, 'markers'), 'pyproject.toml', "sys_platform != 'win32'", "sys_platform == 'linux'");
  await stale(join(fixtures, 'extras'), 'pyproject.toml', 'yaml = ["pyyaml>=6.0"]', 'yaml = ["pyyaml>=6.0"]\ntoml = ["tomli"]');
  await stale(join(fixtures, 'groups'), 'pyproject.toml', 'lint = ["pyflakes>=3.2"]', 'lint = ["pyflakes>=3.2", "mypy"]');
  await stale(join(fixtures, 'workspace'), 'packages/lib/pyproject.toml', 'idna>=3.7', 'idna>=3.99');
  await stale(join(fixtures, 'virtual-workspace'), 'pyproject.toml', 'tools = ["six>=1.16"]', 'tools = ["six>=1.17.1"]');
  // A source changed: the member as a plain path dependency instead of the workspace's.
  await stale(join(fixtures, 'workspace'), 'pyproject.toml', 'app = { workspace = true }', 'app = { path = "packages/app" }', /must be declared as workspace sources/);
});

test("the project's required-version: a uv that does not match is one line naming both", async () => {
  const dir = await copy(join(fixtures, 'pure'));
  await editFile(join(dir, 'pyproject.toml'), '[build-system]', '[tool.uv]\nrequired-version = ">=99"\n\n[build-system]');
  await assert.rejects(check(dir), /tool\.uv\.required-version is ">=99", but the uv found \(.*uv\) is 0\.\d+\.\d+; install a uv that matches, or point \$UV at one/);
  await editFile(join(dir, 'pyproject.toml'), 'required-version = ">=99"', 'required-version = ">=0.13"');
  await check(dir);
});

test('a fresh verdict is remembered under everything uv reads, and asked again when any of it changes', async () => {
  const dir = await copy(join(fixtures, 'pure'));
  const store = await BlobStore.open(join(dir, '..', 'store'));
  // A uv that counts its `lock` runs, then is the real uv.
  const counter = join(dir, '..', 'lock-runs');
  const wrapper = join(dir, '..', 'uv');
  await writeFile(wrapper, `#!/bin/sh\n[ "$1" = lock ] && echo run >> ${counter}\nexec ${uvBinary()} "$@"\n`);
  await chmod(wrapper, 0o755);
  const counted = { ...env, UV: wrapper };
  const runs = async () => (await readFile(counter, 'utf8').catch(() => '')).split('\n').filter(Boolean).length;
  await check(dir, { store, env: counted });
  await check(dir, { store, env: counted });
  assert.equal(await runs(), 1, 'the second check is answered by the store');
  await writeFile(join(dir, 'pyproject.toml'), `${await readFile(join(dir, 'pyproject.toml'), 'utf8')}# a comment uv does not mind\n`);
  await check(dir, { store, env: counted });
  assert.equal(await runs(), 2, 'a changed pyproject.toml is asked about again');
  await check(dir, { store, env: { ...counted, UV_CONCURRENT_DOWNLOADS: '3' } });
  assert.equal(await runs(), 3, 'a changed UV_ setting is asked about again');
});
