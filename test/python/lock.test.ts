import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { UserError } from '../../src/errors.js';
import { checkLockFresh, readUvLock } from '../../src/python/lock.js';
import { loadLockedProject } from '../../src/python/locked-project.js';
import { readPyProject, readWorkspaceMembers } from '../../src/python/pyproject.js';

const fixtures = fileURLToPath(new URL('../fixtures/python/', import.meta.url));
const FIXTURES = ['pure', 'cext', 'extras', 'groups', 'markers', 'scripts', 'workspace', 'conflicts', 'virtual-workspace'];

async function copyFixture(name: string): Promise<string> {
  const dir = join(await mkdtemp(join(tmpdir(), 'uvimage-lock-')), name);
  await cp(join(fixtures, name), dir, { recursive: true });
  return dir;
}

async function editFile(file: string, from: string | RegExp, to: string): Promise<void> {
  const text = await readFile(file, 'utf8');
  const edited = text.replace(from, to);
  assert.notEqual(edited, text, `edit of ${file} applies`);
  await writeFile(file, edited);
}

test('reads the fixture locks: sources, wheels, sdists, dependencies, groups, metadata', async () => {
  const lock = await readUvLock(join(fixtures, 'groups', 'uv.lock'));
  assert.equal(lock.version, 1);
  assert.ok(lock.revision >= 1);
  assert.equal(lock.requiresPython, '>=3.12');
  const root = lock.packages.find((pkg) => pkg.name === 'groups')!;
  assert.deepEqual(root.source, { editable: '.' });
  assert.deepEqual(Object.keys(root.devDependencies).sort(), ['dev', 'docs', 'lint']);
  assert.deepEqual(root.metadata?.requiresDev?.dev?.map((req) => req.name).sort(), ['pyflakes', 'ruff']);
  const six = lock.packages.find((pkg) => pkg.name === 'six')!;
  assert.deepEqual(six.source, { registry: 'https://pypi.org/simple' });
  assert.match(six.wheels[0]!.filename, /^six-.*-py2\.py3-none-any\.whl$/);
  assert.match(six.wheels[0]!.hash!, /^sha256:[0-9a-f]{64}$/);
  assert.ok(six.wheels[0]!.url?.startsWith('https://files.pythonhosted.org/'));
  assert.ok(six.sdist?.url?.endsWith('.tar.gz'));
  const workspace = await readUvLock(join(fixtures, 'workspace', 'uv.lock'));
  assert.deepEqual(workspace.manifest.members, ['app', 'lib', 'workspace']);
  assert.deepEqual(workspace.packages.find((pkg) => pkg.name === 'lib')?.source, { editable: 'packages/lib' });
  const conflicts = await readUvLock(join(fixtures, 'conflicts', 'uv.lock'));
  assert.deepEqual(conflicts.conflicts[0], [
    { package: 'conflicts', extra: 'new', group: undefined },
    { package: 'conflicts', extra: 'old', group: undefined },
  ]);
  const markers = await readUvLock(join(fixtures, 'markers', 'uv.lock'));
  assert.ok(markers.resolutionMarkers.length > 0);
});

test('every fixture lock is fresh', async () => {
  for (const name of FIXTURES) {
    const project = await readPyProject(join(fixtures, name));
    const lock = await readUvLock(join(fixtures, name, 'uv.lock'));
    const members = await readWorkspaceMembers(project);
    assert.doesNotThrow(() => checkLockFresh(project, lock, members), name);
  }
  const member = await loadLockedProject(join(fixtures, 'workspace', 'packages', 'app'));
  assert.equal(member.root.name, 'workspace');
  assert.equal(member.lock.path, join(fixtures, 'workspace', 'uv.lock'));
});

test('version 2 is refused; revision 99 with unknown keys is read', async () => {
  const dir = await copyFixture('pure');
  const file = join(dir, 'uv.lock');
  const original = await readFile(file, 'utf8');
  await writeFile(file, original.replace(/^version = 1$/m, 'version = 2'));
  await assert.rejects(readUvLock(file), (error: unknown) => {
    assert.ok(error instanceof UserError);
    assert.equal(error.message, `uv.lock at ${file} has version 2; this uvimage reads version 1 (upgrade uvimage)`);
    return true;
  });
  await writeFile(
    file,
    original.replace(/^revision = \d+$/m, 'revision = 99\nfuture-top-level = "x"').replace(
      /^(\[\[package\]\]\nname = "idna"\n)/m,
      '$1future-package-key = { a = 1 }\n',
    ) + '\n[[package.future-array]]\nz = 1\n\n[future-table]\nkey = 1\n',
  );
  const lock = await readUvLock(file);
  assert.equal(lock.revision, 99);
  assert.ok(lock.packages.some((pkg) => pkg.name === 'idna'));
  const project = await readPyProject(dir);
  assert.doesNotThrow(() => checkLockFresh(project, lock));
});

test('a missing or broken uv.lock is a user error', async () => {
  const dir = await copyFixture('pure');
  await writeFile(join(dir, 'uv.lock'), 'version = 1\n[[package]\n');
  await assert.rejects(readUvLock(join(dir, 'uv.lock')), /uv\.lock:\d+:\d+: invalid TOML/);
  await assert.rejects(readUvLock(join(dir, 'nope.lock')), /nope\.lock not found; run `uv lock`/);
});

test('a lock that no longer matches pyproject.toml is stale, and says what differs', async () => {
  const stale = async (fixture: string, file: string, from: string | RegExp, to: string, expected: RegExp) => {
    const dir = await copyFixture(fixture);
    await editFile(join(dir, file), from, to);
    const project = await readPyProject(dir);
    const lock = await readUvLock(join(dir, 'uv.lock'));
    const members = await readWorkspaceMembers(project);
    assert.throws(
      () => checkLockFresh(project, lock, members),
      (error: unknown) => {
        assert.ok(error instanceof UserError);
        assert.match(error.message, /^uv\.lock is out of date with pyproject\.toml \(.*\); run `uv lock`, or pass --frozen$/);
        assert.match(error.message, expected);
        return true;
      },
      `${fixture}: ${String(from)} -> ${to}`,
    );
  };
  await stale('pure', 'pyproject.toml', 'requests>=2.31', 'requests>=2.0', /pure: requests>=2\.0 in pyproject\.toml, requests>=2\.31 in uv\.lock/);
  await stale('pure', 'pyproject.toml', '"requests>=2.31"', '"requests>=2.31", "rich"', /rich is not in the lock/);
  await stale('pure', 'pyproject.toml', '"requests>=2.31"', '"requests[socks]>=2.31"', /requests\[socks\]/);
  await stale('pure', 'pyproject.toml', 'requires-python = ">=3.12"', 'requires-python = ">=3.11"', /requires-python/);
  await stale('pure', 'pyproject.toml', 'version = "0.1.0"', 'version = "0.2.0"', /version 0\.2\.0/);
  await stale('markers', 'pyproject.toml', "sys_platform != 'win32'", "sys_platform == 'linux'", /uvloop.*marker/);
  await stale('extras', 'pyproject.toml', 'yaml = ["pyyaml>=6.0"]', 'yaml = ["pyyaml>=6.0"]\ntoml = ["tomli"]', /tomli/);
  await stale('groups', 'pyproject.toml', 'lint = ["pyflakes>=3.2"]', 'lint = ["pyflakes>=3.2", "mypy"]', /mypy/);
  await stale('groups', 'pyproject.toml', 'docs = ["markdown>=3.6"]\n', '', /dependency group docs/);
  await stale('conflicts', 'pyproject.toml', '[{ group = "legacy" }, { group = "current" }],\n', '', /conflicts differ/);
  await stale('pure', 'pyproject.toml', '[build-system]', '[tool.uv]\nconstraint-dependencies = ["urllib3<3"]\n\n[build-system]', /tool\.uv\.constraint-dependencies: urllib3<3 is not in the lock/);
  await stale('virtual-workspace', 'pyproject.toml', 'tools = ["six>=1.16"]', 'tools = ["six>=1.17"]', /workspace group tools: six>=1\.17 in pyproject\.toml, six>=1\.16 in uv\.lock/);
  await stale('virtual-workspace', 'pyproject.toml', 'members = ["packages/*"]', 'members = []', /workspace members are \(none\) but the lock has svc/);
  await stale('workspace', 'packages/lib/pyproject.toml', 'idna>=3.7', 'idna>=3.8', /lib: idna>=3\.8 in pyproject\.toml, idna>=3\.7 in uv\.lock/);
});
