import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { UserError } from '../../src/errors.js';
import { DEFAULT_INSTALL_OPTIONS, planInstall, type InstallOptions, type InstallPlan, type PlannedPackage } from '../../src/python/install-set.js';
import { parseUvLock, readUvLock } from '../../src/python/lock.js';
import { parseToml, readPyProject } from '../../src/python/pyproject.js';
import type { PythonTarget } from '../../src/python/target.js';

const fixtures = fileURLToPath(new URL('../fixtures/python/', import.meta.url));
const x86: PythonTarget = { pythonVersion: '3.12.8', implementation: 'cpython', os: 'linux', arch: 'x86_64', glibc: [2, 41] };
const arm: PythonTarget = { ...x86, arch: 'aarch64' };

async function plan(fixture: string, target: PythonTarget, options: Partial<InstallOptions> = {}): Promise<InstallPlan> {
  const project = await readPyProject(join(fixtures, fixture));
  const lock = await readUvLock(join(fixtures, fixture.split('/')[0]!, 'uv.lock'));
  return planInstall(project, lock, target, { ...DEFAULT_INSTALL_OPTIONS, ...options });
}

function names(result: InstallPlan): string[] {
  return result.packages.map((pkg) => pkg.name);
}

function wheelOf(result: InstallPlan, name: string): string {
  const pkg = result.packages.find((item) => item.name === name);
  assert.ok(pkg, `${name} planned`);
  assert.equal(pkg.kind, 'wheel', `${name} is a wheel`);
  return (pkg as Extract<PlannedPackage, { kind: 'wheel' }>).wheel.filename;
}

function assertBuiltProject(result: InstallPlan, name: string, dir: string): void {
  const pkg = result.packages.find((item) => item.name === name);
  assert.ok(pkg && pkg.kind === 'build', `${name} is built`);
  assert.equal(pkg.member, true);
  assert.equal(pkg.dir, dir);
}

test('pure: the project is built, every dependency is a pure or manylinux wheel', async () => {
  for (const target of [x86, arm]) {
    const result = await plan('pure', target);
    assert.deepEqual(names(result), ['certifi', 'charset-normalizer', 'idna', 'pure', 'requests', 'urllib3']);
    assert.deepEqual(result.project, { name: 'pure', virtual: false });
    assertBuiltProject(result, 'pure', join(fixtures, 'pure'));
    assert.match(wheelOf(result, 'requests'), /-py3-none-any\.whl$/);
    const wheel = result.packages.find((pkg) => pkg.name === 'requests');
    assert.ok(wheel?.kind === 'wheel' && wheel.wheel.url?.startsWith('https://') && wheel.wheel.hash?.startsWith('sha256:'));
    assert.equal(wheel?.kind === 'wheel' ? wheel.indexUrl : undefined, 'https://pypi.org/simple');
    assert.match(wheelOf(result, 'charset-normalizer'), target.arch === 'x86_64' ? /cp312-cp312-.*manylinux.*_x86_64/ : /cp312-cp312-.*manylinux.*_aarch64/);
  }
});

test('cext: pydantic-core and orjson wheels for the target architecture and Python', async () => {
  const amd = await plan('cext', x86);
  const aarch = await plan('cext', arm);
  assert.deepEqual(names(amd), names(aarch));
  assert.deepEqual(names(amd), ['annotated-types', 'cext', 'orjson', 'pydantic', 'pydantic-core', 'typing-extensions', 'typing-inspection']);
  assert.match(wheelOf(amd, 'pydantic-core'), /-cp312-cp312-.*manylinux_2_17_x86_64/);
  assert.match(wheelOf(aarch, 'pydantic-core'), /-cp312-cp312-.*manylinux_2_17_aarch64/);
  assert.match(wheelOf(aarch, 'orjson'), /-cp312-cp312-.*_aarch64/);
  const py313 = await plan('cext', { ...x86, pythonVersion: '3.13.1' });
  assert.match(wheelOf(py313, 'pydantic-core'), /-cp313-cp313-/);
  assert.doesNotMatch(JSON.stringify(amd.packages), /musllinux/);
});

test('markers: platform and Python markers pick different packages per architecture', async () => {
  const amd = await plan('markers', x86);
  const aarch = await plan('markers', arm);
  assert.deepEqual(names(amd), ['markers', 'simplejson', 'typing-extensions', 'uvloop']);
  assert.deepEqual(names(aarch), ['markers', 'markupsafe', 'typing-extensions', 'uvloop']);
  assert.ok(!names(amd).includes('pywin32') && !names(amd).includes('tomli'));
  // Python 3.10 (allowed by requires-python >=3.10) takes tomli and drops typing-extensions.
  const old = await plan('markers', { ...x86, pythonVersion: '3.10.14' });
  assert.deepEqual(names(old), ['markers', 'simplejson', 'tomli', 'uvloop']);
  assert.match(wheelOf(old, 'uvloop'), /-cp310-cp310-/);
  // Below requires-python: refused, not silently planned.
  await assert.rejects(plan('markers', { ...x86, pythonVersion: '3.9.1' }), /requires Python >=3\.10 .* target Python is 3\.9\.1/);
});

test('extras: a dependency extra always, project extras with --extra / --all-extras', async () => {
  const base = await plan('extras', x86);
  assert.deepEqual(names(base), ['anyio', 'certifi', 'extras', 'h11', 'h2', 'hpack', 'httpcore', 'httpx', 'hyperframe', 'idna', 'typing-extensions']);
  const cli = await plan('extras', x86, { extras: ['cli'] });
  assert.deepEqual(names(cli).filter((name) => !names(base).includes(name)), ['click']);
  assert.deepEqual(cli.extras, ['cli']);
  const all = await plan('extras', arm, { allExtras: true });
  assert.deepEqual(names(all).filter((name) => !names(base).includes(name)), ['click', 'pyyaml']);
  assert.match(wheelOf(all, 'pyyaml'), /aarch64/);
  await assert.rejects(plan('extras', x86, { extras: ['nope'] }), /the project has no extra "nope" \(it has: cli, yaml\)/);
});

test('groups: none by default (not even dev), --group, include-group, --only-group', async () => {
  assert.deepEqual(names(await plan('groups', x86)), ['groups', 'six']);
  assert.deepEqual(names(await plan('groups', x86, { groups: ['dev'] })), ['groups', 'pyflakes', 'ruff', 'six']);
  assert.deepEqual(names(await plan('groups', x86, { groups: ['lint', 'docs'] })), ['groups', 'markdown', 'pyflakes', 'six']);
  assert.deepEqual(names(await plan('groups', x86, { onlyGroups: ['lint'] })), ['pyflakes']);
  assert.deepEqual(names(await plan('groups', x86, { allGroups: true })), ['groups', 'markdown', 'pyflakes', 'ruff', 'six']);
  assert.match(wheelOf(await plan('groups', arm, { groups: ['dev'] }), 'ruff'), /aarch64/);
  await assert.rejects(plan('groups', x86, { groups: ['test'] }), /no dependency group "test" \(it has: dev, docs, lint\)/);
});

test('workspace: members are built like the project; a member plans only what it needs', async () => {
  const root = await plan('workspace', x86);
  assert.deepEqual(names(root), ['app', 'attrs', 'idna', 'lib', 'workspace']);
  assertBuiltProject(root, 'workspace', join(fixtures, 'workspace'));
  assertBuiltProject(root, 'app', join(fixtures, 'workspace/packages/app'));
  assertBuiltProject(root, 'lib', join(fixtures, 'workspace/packages/lib'));
  const app = await plan('workspace/packages/app', arm);
  assert.deepEqual(names(app), ['app', 'idna', 'lib']);
  assert.equal(app.project.name, 'app');
  const lib = await plan('workspace/packages/lib', arm);
  assert.deepEqual(names(lib), ['idna', 'lib']);
  const everything = await plan('workspace/packages/lib', arm, { allPackages: true });
  assert.deepEqual(names(everything), names(root));
});

test('a workspace root that is not a project: every member, and the groups of the manifest', async () => {
  assert.deepEqual(names(await plan('virtual-workspace', x86)), ['idna', 'svc']);
  assert.deepEqual(names(await plan('virtual-workspace', x86, { groups: ['tools'] })), ['idna', 'six', 'svc']);
  assert.deepEqual(names(await plan('virtual-workspace', arm, { onlyGroups: ['tools'] })), ['six']);
  const result = await plan('virtual-workspace', x86);
  assert.equal(result.project.virtual, true);
  assertBuiltProject(result, 'svc', join(fixtures, 'virtual-workspace/packages/svc'));
  const member = await plan('virtual-workspace/packages/svc', x86);
  assert.deepEqual(names(member), ['idna', 'svc']);
});

test('scripts: console-script packages and a .data/scripts wheel', async () => {
  for (const target of [x86, arm]) {
    const result = await plan('scripts', target);
    assert.deepEqual(names(result), ['black', 'click', 'mypy-extensions', 'ninja', 'packaging', 'pathspec', 'platformdirs', 'pytokens', 'scripts']);
    assert.match(wheelOf(result, 'ninja'), new RegExp(`-py3-none-.*manylinux.*_${target.arch}\\.`));
  }
});

test('conflicts: conflict markers choose versions by the activated extras and groups; conflicting ones are refused', async () => {
  const version = (result: InstallPlan, name: string) => result.packages.find((pkg) => pkg.name === name)?.version;
  const base = await plan('conflicts', x86);
  assert.deepEqual(names(base), ['conflicts', 'six']);
  assert.equal(version(base, 'six'), '1.17.0');
  const legacy = await plan('conflicts', x86, { groups: ['legacy'], extras: ['old'] });
  assert.equal(version(legacy, 'six'), '1.16.0');
  assert.equal(version(legacy, 'idna'), '3.7');
  const current = await plan('conflicts', arm, { groups: ['current'], extras: ['new'] });
  assert.equal(version(current, 'six'), '1.17.0');
  assert.equal(version(current, 'idna'), '3.8');
  await assert.rejects(plan('conflicts', x86, { extras: ['old', 'new'] }), /extra new of conflicts and extra old of conflicts cannot be installed together/);
  await assert.rejects(plan('conflicts', x86, { allExtras: true }), /cannot be installed together/);
});

/** A lock written by hand: one project and whatever packages a test needs. */
async function syntheticPlan(packages: string, target: PythonTarget = x86, projectExtra = '', options: Partial<InstallOptions> = {}): Promise<InstallPlan> {
  const dir = await mkdtemp(join(tmpdir(), 'uvimage-plan-'));
  await writeFile(join(dir, 'pyproject.toml'), `[project]\nname = "app"\nversion = "1.0"\nrequires-python = ">=3.12"\n${projectExtra}`);
  const text = `version = 1\nrevision = 3\nrequires-python = ">=3.12"\n\n[[package]]\nname = "app"\nversion = "1.0"\nsource = { virtual = "." }\ndependencies = [{ name = "dep" }]\n\n${packages}`;
  const lock = parseUvLock(join(dir, 'uv.lock'), parseToml(join(dir, 'uv.lock'), text));
  return planInstall(await readPyProject(dir), lock, target, { ...DEFAULT_INSTALL_OPTIONS, ...options });
}

test('no wheel for the target: an sdist is built; without one the error names package, target and the tags there are', async () => {
  const wheels = `wheels = [
  { url = "https://files.example/dep-2.0-cp312-cp312-win_amd64.whl", hash = "sha256:aa" },
  { url = "https://files.example/dep-2.0-cp312-cp312-musllinux_1_2_x86_64.whl", hash = "sha256:bb" },
  { url = "https://files.example/dep-2.0-cp312-cp312-manylinux_2_43_x86_64.whl", hash = "sha256:cc" },
]`;
  const withSdist = await syntheticPlan(
    `[[package]]\nname = "dep"\nversion = "2.0"\nsource = { registry = "https://pypi.org/simple" }\nsdist = { url = "https://files.example/dep-2.0.tar.gz", hash = "sha256:dd" }\n${wheels}\n`,
  );
  assert.equal(withSdist.project.virtual, true);
  assert.deepEqual(withSdist.packages.map((pkg) => [pkg.name, pkg.kind]), [['dep', 'build']]);
  const dep = withSdist.packages[0]!;
  assert.ok(dep.kind === 'build' && dep.reason === 'no-compatible-wheel' && dep.sdist?.url === 'https://files.example/dep-2.0.tar.gz' && !dep.member);

  await assert.rejects(
    syntheticPlan(`[[package]]\nname = "dep"\nversion = "2.0"\nsource = { registry = "https://pypi.org/simple" }\n${wheels}\n`),
    (error: unknown) => {
      assert.ok(error instanceof UserError);
      assert.equal(
        error.message,
        'dep 2.0 has no wheel for linux/amd64 (CPython 3.12, glibc 2.41) and no source distribution to build; the lock has wheels for: cp312-cp312-win_amd64, cp312-cp312-musllinux_1_2_x86_64, cp312-cp312-manylinux_2_43_x86_64',
      );
      return true;
    },
  );
  // The same lock with a newer base glibc accepts the manylinux_2_43 wheel.
  const newer = await syntheticPlan(`[[package]]\nname = "dep"\nversion = "2.0"\nsource = { registry = "https://pypi.org/simple" }\n${wheels}\n`, { ...x86, glibc: [2, 43] });
  assert.equal(newer.packages[0]?.kind === 'wheel' ? newer.packages[0].wheel.filename : '', 'dep-2.0-cp312-cp312-manylinux_2_43_x86_64.whl');
});

test('git, directory and path sources are built; a direct wheel URL is a wheel', async () => {
  const git = await syntheticPlan(`[[package]]\nname = "dep"\nversion = "0.1"\nsource = { git = "https://github.com/o/dep?rev=main#0123456789abcdef0123456789abcdef01234567" }\n`);
  assert.ok(git.packages[0]?.kind === 'build' && git.packages[0].source.git?.endsWith('#0123456789abcdef0123456789abcdef01234567') && git.packages[0].reason === 'source');
  const directory = await syntheticPlan(`[[package]]\nname = "dep"\nversion = "0.1"\nsource = { directory = "../dep" }\n`);
  assert.ok(directory.packages[0]?.kind === 'build' && directory.packages[0].dir?.endsWith('/dep'));
  const path = await syntheticPlan(`[[package]]\nname = "dep"\nversion = "0.1"\nsource = { path = "vendor/dep-0.1.tar.gz" }\nsdist = { hash = "sha256:ee" }\n`);
  assert.ok(path.packages[0]?.kind === 'build' && path.packages[0].source.path?.endsWith('/vendor/dep-0.1.tar.gz'));
  const wheelUrl = await syntheticPlan(
    `[[package]]\nname = "dep"\nversion = "0.1"\nsource = { url = "https://example.com/dep-0.1-py3-none-any.whl" }\nwheels = [{ url = "https://example.com/dep-0.1-py3-none-any.whl", hash = "sha256:ff" }]\n`,
  );
  assert.equal(wheelUrl.packages[0]?.kind, 'wheel');
  const localWheel = await syntheticPlan(
    `[[package]]\nname = "dep"\nversion = "0.1"\nsource = { path = "wheels/dep-0.1-py3-none-any.whl" }\nwheels = [{ filename = "dep-0.1-py3-none-any.whl", hash = "sha256:ff" }]\n`,
  );
  const local = localWheel.packages[0];
  assert.ok(local?.kind === 'wheel' && local.wheel.path?.endsWith('/wheels/dep-0.1-py3-none-any.whl') && local.wheel.filename === 'dep-0.1-py3-none-any.whl');
});

test('forks: without a version on the edge, the package whose resolution markers match the target', async () => {
  const forked = `[[package]]
name = "dep"
version = "1.0"
source = { registry = "https://pypi.org/simple" }
resolution-markers = ["platform_machine == 'x86_64'"]
wheels = [{ url = "https://files.example/dep-1.0-py3-none-any.whl", hash = "sha256:11" }]

[[package]]
name = "dep"
version = "2.0"
source = { registry = "https://pypi.org/simple" }
resolution-markers = ["platform_machine != 'x86_64'"]
wheels = [{ url = "https://files.example/dep-2.0-py3-none-any.whl", hash = "sha256:22" }]
`;
  assert.equal((await syntheticPlan(forked, x86)).packages[0]?.version, '1.0');
  assert.equal((await syntheticPlan(forked, arm)).packages[0]?.version, '2.0');
});

test('[tool.uv] no-binary builds from the sdist even when a wheel fits; no-build turns a missing wheel into an error', async () => {
  const dep = `[[package]]\nname = "dep"\nversion = "2.0"\nsource = { registry = "https://pypi.org/simple" }\nsdist = { url = "https://files.example/dep-2.0.tar.gz", hash = "sha256:dd" }\nwheels = [{ url = "https://files.example/dep-2.0-py3-none-any.whl", hash = "sha256:aa" }]\n`;
  assert.equal((await syntheticPlan(dep)).packages[0]?.kind, 'wheel');
  const noBinary = await syntheticPlan(dep, x86, '[tool.uv]\nno-binary-package = ["Dep"]\n');
  assert.ok(noBinary.packages[0]?.kind === 'build' && noBinary.packages[0].reason === 'no-binary');
  assert.equal((await syntheticPlan(dep, x86, '', { noBinary: true })).packages[0]?.kind, 'build');
  const windowsOnly = dep.replace('py3-none-any', 'cp312-cp312-win_amd64');
  assert.equal((await syntheticPlan(windowsOnly)).packages[0]?.kind, 'build');
  await assert.rejects(syntheticPlan(windowsOnly, x86, '[tool.uv]\nno-build = true\n'), /dep 2\.0 has no wheel for linux\/amd64 .* building it is disabled by no-build in \[tool\.uv\]/);
});
