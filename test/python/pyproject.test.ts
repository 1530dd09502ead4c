import assert from 'node:assert/strict';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { UserError } from '../../src/errors.js';
import { findWorkspaceRoot, isPackage, readPyProject, readWorkspaceMembers } from '../../src/python/pyproject.js';
import { parseRequirement } from '../../src/python/requirement.js';

const fixtures = fileURLToPath(new URL('../fixtures/python/', import.meta.url));

test('reads [project], dependency groups and scripts', async () => {
  const groups = await readPyProject(join(fixtures, 'groups'));
  assert.equal(groups.name, 'groups');
  assert.equal(groups.version, '0.1.0');
  assert.equal(groups.requiresPython, '>=3.12');
  assert.deepEqual(groups.dependencies, ['six>=1.16']);
  assert.deepEqual(groups.dependencyGroups.dev, ['ruff>=0.6', { 'include-group': 'lint' }]);
  assert.equal(groups.hasBuildSystem, true);
  assert.equal(isPackage(groups), true);
  const scripts = await readPyProject(join(fixtures, 'scripts'));
  assert.deepEqual(scripts.scripts, { 'scripts-hello': 'scripts:main' });
  const extras = await readPyProject(join(fixtures, 'extras'));
  assert.deepEqual(Object.keys(extras.optionalDependencies).sort(), ['cli', 'yaml']);
});

test('workspace members are found from the globs, and a member finds its root', async () => {
  const root = await readPyProject(join(fixtures, 'workspace'));
  assert.deepEqual(root.workspaceMembers, [join(fixtures, 'workspace/packages/app'), join(fixtures, 'workspace/packages/lib')]);
  const members = await readWorkspaceMembers(root);
  assert.deepEqual(members.map((member) => member.name), ['app', 'lib']);
  const found = await findWorkspaceRoot(members[0]!);
  assert.equal(found?.dir, root.dir);
  assert.equal(await findWorkspaceRoot(root), undefined);
});

test('an unparsable pyproject.toml is one error naming the file, the line and the problem', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'uvimage-pyproject-'));
  await writeFile(join(dir, 'pyproject.toml'), '[project]\nname = "broken"\ndependencies = ["requests"\n');
  await assert.rejects(readPyProject(dir), (error: unknown) => {
    assert.ok(error instanceof UserError);
    assert.match(error.message, new RegExp(`^${join(dir, 'pyproject.toml').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+: invalid TOML: `));
    assert.doesNotMatch(error.message, /\n/);
    return true;
  });
});

test('missing file, missing name, bad requirement and a non-table are user errors', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'uvimage-pyproject-'));
  await assert.rejects(readPyProject(dir), /pyproject\.toml not found/);
  await writeFile(join(dir, 'pyproject.toml'), '[project]\nversion = "1"\n');
  await assert.rejects(readPyProject(dir), /\[project\] has no name/);
  await writeFile(join(dir, 'pyproject.toml'), '[project]\nname = "x"\ndependencies = ["requests >= "]\n');
  await assert.rejects(readPyProject(dir), /project\.dependencies: .*requests/);
  await writeFile(join(dir, 'pyproject.toml'), '[project]\nname = "x"\ndependencies = ["foo; python_version >> \'3\'"]\n');
  await assert.rejects(readPyProject(dir), /project\.dependencies/);
  await mkdir(join(dir, 'sub'));
  await writeFile(join(dir, 'sub', 'pyproject.toml'), 'project = 1\n');
  await assert.rejects(readPyProject(join(dir, 'sub')), /\[project\] must be a table/);
});

test('tool.uv.package = false makes a project with a build system virtual', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'uvimage-pyproject-'));
  await writeFile(join(dir, 'pyproject.toml'), '[project]\nname = "x"\n[build-system]\nrequires = []\n[tool.uv]\npackage = false\n[tool.uvimage]\nbase = "cc"\n');
  const project = await readPyProject(dir);
  assert.equal(isPackage(project), false);
  assert.deepEqual(project.toolUvimage, { base: 'cc' });
});

test('PEP 508 requirements', () => {
  assert.deepEqual(
    (({ parsedMarker: _parsed, ...rest }) => rest)(parseRequirement("httpx[HTTP2, socks] >=0.27, <1 ; python_version >= '3.9'")),
    {
      name: 'httpx',
      normalizedName: 'httpx',
      extras: ['http2', 'socks'],
      specifiers: [
        { operator: '>=', version: '0.27', wildcard: false },
        { operator: '<', version: '1', wildcard: false },
      ],
      marker: "python_version >= '3.9'",
    },
  );
  const url = parseRequirement('pkg @ https://example.com/pkg-1.0-py3-none-any.whl ; sys_platform == "linux"');
  assert.equal(url.url, 'https://example.com/pkg-1.0-py3-none-any.whl');
  assert.equal(url.marker, 'sys_platform == "linux"');
  assert.deepEqual(parseRequirement('Foo.Bar (==1.*)').specifiers, [{ operator: '==', version: '1', wildcard: true }]);
  assert.equal(parseRequirement('Foo.Bar').normalizedName, 'foo-bar');
  assert.throws(() => parseRequirement('>=1'), /no package name/);
});
