import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { UserError } from '../../src/errors.js';
import { readUvLock } from '../../src/python/lock.js';
import { loadLockedProject } from '../../src/python/locked-project.js';

const fixtures = fileURLToPath(new URL('../fixtures/python/', import.meta.url));

async function copyFixture(name: string): Promise<string> {
  const dir = join(await mkdtemp(join(tmpdir(), 'uvimage-lock-')), name);
  await cp(join(fixtures, name), dir, { recursive: true });
  return dir;
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

test('a workspace member finds its root and the root\'s lock', async () => {
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
});

test('a missing or broken uv.lock is a user error', async () => {
  const dir = await copyFixture('pure');
  await writeFile(join(dir, 'uv.lock'), 'version = 1\n[[package]\n');
  await assert.rejects(readUvLock(join(dir, 'uv.lock')), /uv\.lock:\d+:\d+: invalid TOML/);
  await assert.rejects(readUvLock(join(dir, 'nope.lock')), /nope\.lock not found; run `uv lock`/);
});
