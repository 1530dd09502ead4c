/**
 * `uvimage plan` as a user runs it: a child process, exit codes, stdout, one-line errors. The plan
 * reads the Debian index (through the shared test store) and the pinned python-build-standalone
 * table; it downloads no runtime and no wheel.
 */
import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { BuildPlan } from '../../src/pipeline/plan.js';
import { assertOneLineError, uvimage as run } from '../harness/cli.js';
import { sharedCliCache } from '../harness/project-build.js';

const fixtures = fileURLToPath(new URL('../fixtures/python/', import.meta.url));


/** The CLI with the shared test store, so the Debian index is read from it. */
const uvimage = (args: string[]) => run([...args, '--cache-dir', sharedCliCache()]);

async function copyFixture(name: string): Promise<string> {
  const dir = join(await mkdtemp(join(tmpdir(), 'uvimage-plan-cli-')), name);
  await cp(join(fixtures, name), dir, { recursive: true });
  return dir;
}

test('plan prints the chosen wheel per package for each platform', async () => {
  const result = await uvimage(['plan', join(fixtures, 'cext'), '--platform', 'linux/amd64,linux/arm64', '--python', '3.12']);
  assert.equal(result.code, 0, result.stderr);
  const [amd, arm] = result.stdout.trim().split('\n\n');
  assert.match(amd!, /^linux\/amd64 \(CPython 3\.12, glibc 2\.41\): 7 packages\n/);
  assert.match(amd!, /\n {2}pydantic-core \S+ +pydantic_core-\S+-cp312-cp312-\S*manylinux_2_17_x86_64\S*\.whl\n/);
  assert.match(amd!, /\n {2}cext 0\.1\.0 +build \(the project\): /);
  assert.match(arm!, /^linux\/arm64 \(CPython 3\.12, glibc 2\.41\): 7 packages\n/);
  assert.match(arm!, /pydantic_core-\S+-cp312-cp312-\S*aarch64\S*\.whl/);
});

test('plan --json, with markers, extras and groups', async () => {
  const markers = await uvimage(['plan', join(fixtures, 'markers'), '--platform', 'linux/arm64', '--json']);
  assert.equal(markers.code, 0, markers.stderr);
  const [plan] = (JSON.parse(markers.stdout) as BuildPlan).platforms;
  assert.equal(plan!.platform, 'linux/arm64');
  assert.equal(plan!.install.target.arch, 'aarch64');
  assert.match(plan!.install.target.pythonVersion, /^3\.12\.\d+$/, 'the newest 3.12 release');
  assert.equal(plan!.target.python.from, '.python-version');
  assert.deepEqual(plan!.install.packages.map((pkg) => pkg.name), ['markers', 'markupsafe', 'typing-extensions', 'uvloop']);

  const packages = (output: string) => (JSON.parse(output) as BuildPlan).platforms[0]!.install.packages.map((pkg) => pkg.name);
  const groups = await uvimage(['plan', join(fixtures, 'groups'), '--group', 'dev', '--json']);
  assert.deepEqual(packages(groups.stdout), ['groups', 'pyflakes', 'ruff', 'six']);
  const only = await uvimage(['plan', join(fixtures, 'groups'), '--only-group', 'lint', '--json']);
  assert.deepEqual(packages(only.stdout), ['pyflakes']);
  const extras = await uvimage(['plan', join(fixtures, 'extras'), '--all-extras', '--debian-suite', 'bookworm', '--json']);
  assert.equal(extras.code, 0, extras.stderr);
  const names = packages(extras.stdout);
  assert.ok(names.includes('click') && names.includes('pyyaml'));
  assert.deepEqual((JSON.parse(extras.stdout) as BuildPlan).platforms[0]!.target.glibc, { version: '2.36', from: 'Debian bookworm' });
});

test('errors are one line and exit 1: missing uv.lock, stale lock, lock version 2, unparsable pyproject, bad flags', async () => {
  const missing = await copyFixture('pure');
  await rm(join(missing, 'uv.lock'));
  assertOneLineError(await uvimage(['plan', missing]), /uv\.lock not found; run `uv lock` to create it/);

  const stale = await copyFixture('pure');
  const pyproject = join(stale, 'pyproject.toml');
  await writeFile(pyproject, (await readFile(pyproject, 'utf8')).replace('requests>=2.31', 'requests>=2.32'));
  assertOneLineError(await uvimage(['plan', stale]), /^uvimage: error: uv lock --check refuses .*uv\.lock: (The lockfile at `uv\.lock` needs to be updated, but `--check` was provided\.|No solution found when resolving dependencies: .*requests>=2\.32.*); run `uv lock`, or pass --frozen$/);
  const frozen = await uvimage(['plan', stale, '--frozen']);
  assert.equal(frozen.code, 0, frozen.stderr);

  const v2 = await copyFixture('pure');
  const lockFile = join(v2, 'uv.lock');
  await writeFile(lockFile, (await readFile(lockFile, 'utf8')).replace(/^version = 1$/m, 'version = 2'));
  assertOneLineError(await uvimage(['plan', v2]), /uv\.lock at .*uv\.lock has version 2; this uvimage reads version 1 \(upgrade uvimage\)/);

  const broken = await copyFixture('pure');
  await writeFile(join(broken, 'pyproject.toml'), '[project\nname = "pure"\n');
  assertOneLineError(await uvimage(['plan', broken]), /pyproject\.toml:1:\d+: invalid TOML: /);

  assertOneLineError(await uvimage(['plan', join(fixtures, 'pure'), '--platform', 'linux/s390x']), /platform "linux\/s390x" is not supported/);
  assertOneLineError(await uvimage(['plan', join(fixtures, 'pure'), '--python', '3.11']), /requires Python >=3\.12 .*target Python is 3\.11/);
  assertOneLineError(await uvimage(['plan', join(fixtures, 'pure'), '--extra', 'nope']), /no extra "nope"/);
  assertOneLineError(await uvimage(['plan', join(fixtures, 'does-not-exist')]), /not a directory/);
});
