/**
 * The venv as layers: the skeleton uv writes, bytecode a real CPython uses as it is, layers
 * reused when their inputs did not change, large wheels in layers of their own, and a clear error
 * for a package that has no wheel for the target and nothing to build it from.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { UserError } from '../../src/errors.js';
import { BlobStore } from '../../src/oci/store.js';
import { openPycCompiler, type HostPycCompiler } from '../../src/python/bytecode.js';
import type { InstallPlan } from '../../src/python/install-set.js';
import { planInstall } from '../../src/python/install-set.js';
import { readUvLock, type UvLock } from '../../src/python/lock.js';
import { readPyProject } from '../../src/python/pyproject.js';
import type { PythonTarget } from '../../src/python/target.js';
import { pyvenvCfg, venvScheme, venvSkeletonEntries } from '../../src/python/venv.js';
import { buildVenvLayers } from '../../src/python/venv-layers.js';
import { sharedTestStore } from '../harness/cache.js';
import { describeTree, extractLayers, hostGlibc, pyenvPython, uvAvailable, uvBinary, uvEnv } from '../harness/uv.js';

const fixtures = fileURLToPath(new URL('../fixtures/python/', import.meta.url));
const python = pyenvPython('3.12');

test('the venv skeleton: pyvenv.cfg as uv writes it, interpreter links, lib64', () => {
  const scheme = venvScheme('/app/.venv', '3.12.8');
  assert.equal(scheme.purelib, '/app/.venv/lib/python3.12/site-packages');
  assert.equal(scheme.include, '/app/.venv/include/site/python3.12');
  const runtime = { interpreter: '/python/bin/python3.12', version: '3.12.8' };
  assert.equal(pyvenvCfg(runtime, 'demo'), 'home = /python/bin\nimplementation = CPython\nversion_info = 3.12.8\ninclude-system-site-packages = false\nprompt = demo\n');
  assert.equal(pyvenvCfg({ interpreter: '/usr/bin/python3.11', home: '/usr/bin', version: '3.11.2' }), 'home = /usr/bin\nimplementation = CPython\nversion_info = 3.11.2\ninclude-system-site-packages = false\n');
  const links = venvSkeletonEntries(scheme, runtime).filter((entry) => entry.type === 'symlink');
  assert.deepEqual(
    links.map((entry) => [entry.path, entry.type === 'symlink' ? entry.target : '']),
    [
      ['app/.venv/bin/python', '/python/bin/python3.12'],
      ['app/.venv/bin/python3', 'python'],
      ['app/.venv/bin/python3.12', 'python'],
      ['app/.venv/lib64', 'lib'],
    ],
  );
  assert.throws(() => venvScheme('relative/venv', '3.12'), UserError);
});

describe('venv layers', { skip: !python ? 'no CPython 3.12 in pyenv' : !uvAvailable() ? 'uv is not installed' : false }, () => {
  let dir: string;
  let store: BlobStore;
  let compiler: HostPycCompiler;
  let projectDir: string;
  let plan: InstallPlan;
  let lock: UvLock;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'uvimage-venv-'));
    store = await sharedTestStore();
    compiler = (await openPycCompiler('3.12'))!;
    projectDir = join(dir, 'project');
    await cp(join(fixtures, 'pure'), projectDir, { recursive: true });
    const target: PythonTarget = { pythonVersion: python!.version, implementation: 'cpython', os: 'linux', arch: 'x86_64', glibc: hostGlibc() };
    lock = await readUvLock(join(projectDir, 'uv.lock'));
    plan = planInstall(await readPyProject(projectDir), lock, target);
  });
  after(async () => {
    await compiler?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const options = (venvRoot: string) => ({
    store,
    venvRoot,
    runtime: { interpreter: python!.interpreter, home: join(python!.interpreter, '..'), version: python!.version },
    projectDir,
    compiler,
    mtime: 0,
    uv: uvBinary(),
    buildPython: python!.interpreter,
    env: uvEnv(),
    directUrlFor: () => 'file:///src/pure',
  });

  test('bytecode for every installed module, used by CPython as it is; the layers are reused on the next build', async () => {
    const extract = join(dir, 'root');
    const venvRoot = join(dir, 'venv-a');
    const first = await buildVenvLayers(plan, options(venvRoot));
    assert.equal(first.bytecode, true);
    assert.equal(first.dependencies.length, 1);
    assert.ok(first.packages.some((pkg) => pkg.name === 'requests' && pkg.layer === 0));
    assert.ok(first.packages.some((pkg) => pkg.name === 'pure' && pkg.layer === 'project'));

    await extractLayers(store, [...first.dependencies, first.project], extract);
    const venv = join(extract, venvRoot);
    const tree = await describeTree(join(venv, 'lib/python3.12/site-packages'));
    const sources = [...tree.keys()].filter((path) => path.endsWith('.py'));
    const pycs = [...tree.keys()].filter((path) => path.endsWith('.cpython-312.pyc'));
    assert.ok(sources.length > 50);
    // Every module that compiles has its pyc (a few test files of some packages may not compile; none here).
    assert.equal(pycs.length, sources.length);

    // The interpreter runs our pycs without looking at the sources (unchecked hash): a source
    // changed after the build is not even read, and no pyc is rewritten.
    const site = join(venv, 'lib/python3.12/site-packages');
    const pyc = join(site, 'requests/__pycache__/__version__.cpython-312.pyc');
    const before = (await stat(pyc)).mtimeMs;
    const versionFile = join(site, 'requests/__version__.py');
    await writeFile(versionFile, (await readFile(versionFile, 'utf8')).replace(/__version__ = "[^"]*"/, '__version__ = "changed"'));
    const output = execFileSync(join(venv, 'bin/python'), ['-c', 'import requests; print(requests.__version__, requests.api.get.__module__)'], { encoding: 'utf8' });
    assert.equal(output.trim(), `${plan.packages.find((pkg) => pkg.name === 'requests')!.version} requests.api`);
    assert.equal((await stat(pyc)).mtimeMs, before, 'the pyc was not rewritten');
    assert.equal(await readFile(join(venv, 'pyvenv.cfg'), 'utf8'), pyvenvCfg({ interpreter: python!.interpreter, version: python!.version }, 'pure'));

    // Same inputs: every layer comes from the store, byte for byte.
    const second = await buildVenvLayers(plan, options(venvRoot));
    assert.equal(second.reused, 2);
    assert.deepEqual(second.dependencies.map((layer) => layer.descriptor.digest), first.dependencies.map((layer) => layer.descriptor.digest));
    assert.equal(second.project.descriptor.digest, first.project.descriptor.digest);
  });

  test('a large wheel gets a layer of its own; the others are unchanged by it', async () => {
    const venvRoot = '/app/.venv';
    const split = await buildVenvLayers(plan, { ...options(venvRoot), ownLayer: { packages: ['urllib3'] } });
    assert.equal(split.dependencies.length, 2);
    const extract = join(dir, 'split');
    await extractLayers(store, [split.dependencies[1]!], extract);
    const names = new Set([...(await describeTree(join(extract, 'app/.venv/lib/python3.12/site-packages'))).keys()].map((path) => path.split('/')[0]!));
    assert.ok(names.has('urllib3'));
    assert.ok([...names].every((name) => name.startsWith('urllib3')), [...names].join(', '));
    const bySize = await buildVenvLayers(plan, { ...options(venvRoot), ownLayer: { minBytes: 1 } });
    assert.equal(bySize.dependencies.length, 1 + plan.packages.filter((pkg) => pkg.kind === 'wheel').length);
  });

  test('a package with no wheel for the target and nothing to build it from: one clear line', async () => {
    const target: PythonTarget = { pythonVersion: '3.12.8', implementation: 'cpython', os: 'linux', arch: 'aarch64', glibc: [2, 41] };
    const broken: InstallPlan = {
      target,
      project: { name: 'demo', virtual: true },
      extras: [],
      groups: [],
      packages: [{ kind: 'build', name: 'fastlib', version: '1.0', source: { registry: 'https://pypi.org/simple' }, member: false, reason: 'no-compatible-wheel' }],
    };
    const fakeLock: UvLock = {
      ...lock,
      packages: [
        {
          name: 'fastlib',
          version: '1.0',
          source: { registry: 'https://pypi.org/simple' },
          dependencies: [],
          optionalDependencies: {},
          devDependencies: {},
          wheels: [
            { filename: 'fastlib-1.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl', url: 'https://example.invalid/a.whl', hash: 'sha256:00' },
            { filename: 'fastlib-1.0-cp312-cp312-win_amd64.whl', url: 'https://example.invalid/b.whl', hash: 'sha256:00' },
          ],
        },
      ],
    };
    await assert.rejects(buildVenvLayers(broken, { ...options('/app/.venv'), lock: fakeLock }), (error: Error) => {
      assert.ok(error instanceof UserError);
      assert.equal(
        error.message,
        'fastlib 1.0 has no wheel for linux/arm64 (CPython 3.12, glibc 2.41) and no source uvimage can build (registry https://pypi.org/simple has no sdist); wheels exist for: cp312-cp312-manylinux2014_x86_64, cp312-cp312-manylinux_2_17_x86_64, cp312-cp312-win_amd64',
      );
      return true;
    });
  });
});
