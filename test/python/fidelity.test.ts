/**
 * Fidelity with uv: for each fixture project, the site-packages and bin/ we produce (our
 * dependency and project layers, extracted with tar) equal what `uv sync --frozen --no-dev
 * --no-editable` produces on this machine, file by file with content hashes and executable bits.
 * Our venv root is uv's venv path, so shebangs and RECORD paths are comparable as they are.
 *
 * Allowed differences, each on purpose:
 *   - bin/activate* , bin/activate_this.py, bin/deactivate.bat, bin/pydoc.bat: uv's shell
 *     activation scripts; an image has no shell to source them (uvimage writes none);
 *   - <dist-info>/INSTALLER: 'uv' vs 'uvimage' (content only; both exist);
 *   - <dist-info>/uv_cache.json, <dist-info>/uv_build.json: uv's own cache bookkeeping;
 *   - RECORD: the lines of the files above differ accordingly (every other line is equal, in
 *     the same order: uv sorts RECORD and so do we);
 *   - __pycache__: not compared here (uv sync compiles nothing by default; bytecode.test.ts
 *     covers ours).
 *
 * Cross-platform: the same projects planned for linux/arm64 install only aarch64 ELF files, and
 * their site-packages equal `uv pip install --python-platform aarch64-manylinux_2_28 --target`
 * of the lock's exported requirements (RECORD and installer files aside: --target writes other
 * relative paths).
 */
import assert from 'node:assert/strict';
import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { BlobStore } from '../../src/oci/store.js';
import { planInstall } from '../../src/python/install-set.js';
import { readUvLock } from '../../src/python/lock.js';
import { readPyProject } from '../../src/python/pyproject.js';
import type { PythonTarget } from '../../src/python/target.js';
import { buildVenvLayers } from '../../src/python/venv-layers.js';
import { sharedTestStore } from '../harness/cache.js';
import { describeTree, elfMachine, extractLayers, hostGlibc, imageVenvOptions, pyenvPython, runUv, uvAvailable, uvSync, venvOptionsLikeUv, type TreeItem } from '../harness/uv.js';

const fixtures = fileURLToPath(new URL('../fixtures/python/', import.meta.url));
const projects = ['pure', 'cext', 'extras', 'groups', 'markers', 'scripts', 'workspace'];
const python = pyenvPython('3.12');
const skip = !uvAvailable() ? 'uv is not installed (scripts/install-test-deps)' : !python ? 'no CPython 3.12 in pyenv' : false;
// Fixed paths, so the layer cache is reused between runs and the comparison is stable.
const work = join(tmpdir(), 'uvimage-fidelity');

const uvOnlyBin = /^(activate(\..*)?|activate_this\.py|deactivate\.bat|pydoc\.bat)$/;
const uvOnlyDistInfo = /\.dist-info\/(uv_cache\.json|uv_build\.json)$/;
const installerFile = /\.dist-info\/INSTALLER$/;

function allowedOnlyInUv(path: string, where: 'bin' | 'site-packages'): boolean {
  if (where === 'bin' && uvOnlyBin.test(path)) return true;
  if (uvOnlyDistInfo.test(path)) return true;
  return path.includes('__pycache__');
}

function recordLines(text: string): string[] {
  return text
    .split('\n')
    .filter((line) => line !== '')
    .filter((line) => !/\.dist-info\/(INSTALLER|uv_cache\.json|uv_build\.json),/.test(line));
}

async function compareTrees(ours: string, theirs: string, label: string, where: 'bin' | 'site-packages'): Promise<{ files: number }> {
  const a = await describeTree(ours);
  const b = await describeTree(theirs);
  const problems: string[] = [];
  let files = 0;
  for (const [path, item] of b) {
    if (allowedOnlyInUv(path, where)) continue;
    const mine = a.get(path);
    if (!mine) {
      problems.push(`missing in ours: ${path}`);
      continue;
    }
    if (item.type === 'file') files++;
    if (path.endsWith('.dist-info/RECORD') && item.type === 'file') {
      const [x, y] = await Promise.all([readFile(join(ours, path), 'utf8'), readFile(join(theirs, path), 'utf8')]);
      assert.deepEqual(recordLines(x), recordLines(y), `${label}: RECORD ${path}`);
      continue;
    }
    if (installerFile.test(path)) continue;
    if (!sameItem(mine, item)) problems.push(`differs: ${path}: ours ${JSON.stringify(mine)} uv ${JSON.stringify(item)}`);
  }
  for (const path of a.keys()) if (!b.has(path) && !path.includes('__pycache__')) problems.push(`only in ours: ${path}`);
  assert.deepEqual(problems, [], `${label}: ${problems.length} differences`);
  return { files };
}

function sameItem(a: TreeItem, b: TreeItem): boolean {
  return a.type === b.type && a.sha256 === b.sha256 && a.target === b.target && a.executable === b.executable;
}

describe('venv fidelity with uv sync', { skip }, () => {
  let store: BlobStore;
  before(async () => {
    store = await sharedTestStore();
  });
  const compared: string[] = [];
  after(async () => {
    if (compared.length) console.log(`# compared: ${compared.join(', ')}`);
    await rm(work, { recursive: true, force: true });
  });

  for (const name of projects) {
    test(`${name}: site-packages and bin/ equal uv's (linux/amd64)`, async () => {
      const base = join(work, name);
      await rm(base, { recursive: true, force: true });
      const projectDir = join(base, 'project');
      await cp(join(fixtures, name), projectDir, { recursive: true });
      const venv = join(base, 'uv', '.venv');
      await uvSync(projectDir, venv, python!.interpreter);

      const project = await readPyProject(projectDir);
      const lock = await readUvLock(join(projectDir, 'uv.lock'));
      const target: PythonTarget = { pythonVersion: python!.version, implementation: 'cpython', os: 'linux', arch: 'x86_64', glibc: hostGlibc() };
      const plan = planInstall(project, lock, target);
      const layers = await buildVenvLayers(plan, venvOptionsLikeUv({ store, venv, python: python!, projectDir, lock }));
      const ours = join(base, 'ours');
      await extractLayers(store, [...layers.dependencies, layers.project], ours);
      const ourVenv = join(ours, venv);
      const site = 'lib/python3.12/site-packages';
      const { files } = await compareTrees(join(ourVenv, site), join(venv, site), `${name} site-packages`, 'site-packages');
      await compareTrees(join(ourVenv, 'bin'), join(venv, 'bin'), `${name} bin`, 'bin');
      assert.ok(files > 0, 'site-packages has files');
      compared.push(`${name}: ${files} files`);
      // pyvenv.cfg: uv's, without its own `uv = <version>` line.
      const theirs = (await readFile(join(venv, 'pyvenv.cfg'), 'utf8')).split('\n').filter((line) => !line.startsWith('uv = ')).join('\n');
      assert.equal(await readFile(join(ourVenv, 'pyvenv.cfg'), 'utf8'), theirs);
    });
  }

  for (const name of projects) {
    test(`${name}: planned for linux/arm64, only aarch64 code, same files as uv pip install --python-platform aarch64`, async () => {
      const base = join(work, `${name}-arm64`);
      await rm(base, { recursive: true, force: true });
      const projectDir = join(base, 'project');
      await cp(join(fixtures, name), projectDir, { recursive: true });

      const project = await readPyProject(projectDir);
      const lock = await readUvLock(join(projectDir, 'uv.lock'));
      const target: PythonTarget = { pythonVersion: python!.version, implementation: 'cpython', os: 'linux', arch: 'aarch64', glibc: [2, 28] };
      const plan = planInstall(project, lock, target);
      const venvRoot = '/app/.venv';
      const layers = await buildVenvLayers(plan, imageVenvOptions({ store, python: python!, projectDir, lock }));
      const ours = join(base, 'ours');
      await extractLayers(store, layers.dependencies, ours);
      const tree = await describeTree(ours);
      let elves = 0;
      for (const [path, item] of tree) {
        if (item.type !== 'file') continue;
        const machine = elfMachine(await readFile(join(ours, path)));
        if (machine === undefined) continue;
        elves++;
        assert.equal(machine, 'aarch64', `${path} is ${machine}`);
      }
      if (name === 'cext' || name === 'scripts') assert.ok(elves > 0, 'the dependencies have native code');

      // uv's own cross-platform install of the same locked set.
      const requirements = await runUv(['export', '--frozen', '--no-dev', '--no-hashes', '--no-emit-project', '--no-emit-workspace', '--no-header', '--no-annotate'], { cwd: projectDir });
      await mkdir(join(base, 'uv'), { recursive: true });
      await writeFile(join(base, 'requirements.txt'), requirements);
      const target2 = join(base, 'uv', 'target');
      await runUv(
        ['pip', 'install', '--no-deps', '--python', python!.interpreter, '--python-platform', 'aarch64-manylinux_2_28', '--target', target2, '-r', join(base, 'requirements.txt')],
        { cwd: base },
      );
      const theirs = await describeTree(target2);
      const mineSite = await describeTree(join(ours, venvRoot.slice(1), 'lib/python3.12/site-packages'));
      const problems: string[] = [];
      let checked = 0;
      for (const [path, item] of theirs) {
        if (item.type === 'file') checked++;
        if (path === '.lock' || path.startsWith('bin') || path.includes('__pycache__') || /\.dist-info\/(RECORD|INSTALLER|uv_cache\.json|uv_build\.json)$/.test(path)) continue;
        const mine = mineSite.get(path);
        if (!mine) problems.push(`missing in ours: ${path}`);
        else if (item.type === 'file' && mine.sha256 !== item.sha256) problems.push(`differs: ${path}`);
      }
      assert.deepEqual(problems, [], `${name} arm64: ${problems.length} differences`);
      assert.ok(checked > 0);
      compared.push(`${name} arm64: ${checked} files, ${elves} ELF`);
    });
  }
});
