/**
 * Source distributions (issue 4, item 3): a locked package whose sdist uvimage must build — here
 * because the project's [tool.uv] no-binary-package says so, although the lock has a wheel — is
 * downloaded, built with `uv build --wheel` on this machine and installed when the result can run
 * on the target.
 *
 *   - six 1.16.0 (pure Python): planned as a build ('no-binary') for linux/x86_64 and for
 *     linux/aarch64; its files in site-packages equal what `uv sync --frozen --no-dev
 *     --no-editable` installs when uv builds it from the same sdist (RECORD lines too, but for the
 *     installer's own files); for aarch64 the pure py2.py3-none-any wheel goes in as it is.
 *   - mmh3 5.1.0 (a small C extension, no pure fallback): built here it is a
 *     cp312-cp312-linux_x86_64 wheel, which goes into an x86_64 image (its files equal uv sync's)
 *     and is refused for an aarch64 image with one line naming the package, the built wheel and the
 *     wheels that exist.
 *
 * The tests' uv environment sets UV_NO_CONFIG, under which uv reads no [tool.uv] settings from the
 * project either, so `uv sync` is given `--no-binary-package` explicitly; that uv really built the
 * sdist is checked in its WHEEL file (setuptools', not the generator of the wheel on PyPI).
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { UserError } from '../../src/errors.js';
import type { BlobStore } from '../../src/oci/store.js';
import { planInstall } from '../../src/python/install-set.js';
import { readUvLock, type UvLock } from '../../src/python/lock.js';
import { readPyProject } from '../../src/python/pyproject.js';
import type { PythonTarget } from '../../src/python/target.js';
import { buildVenvLayers, type BuildVenvLayersOptions } from '../../src/python/venv-layers.js';
import { sharedTestStore } from '../harness/cache.js';
import { recordingProgress } from '../harness/progress.js';
import { describeTree, elfMachine, extractLayers, hostGlibc, imageVenvOptions, pyenvPython, runUv, uvAvailable, uvSync, venvOptionsLikeUv, type TreeItem } from '../harness/uv.js';

const python = pyenvPython('3.12');
const skip = !uvAvailable() ? 'uv is not installed (scripts/install-test-deps)' : !python ? 'no CPython 3.12 in pyenv' : false;
const site = 'lib/python3.12/site-packages';

describe('packages built from their sdist', { skip }, () => {
  let dir: string;
  let store: BlobStore;
  const x86 = (): PythonTarget => ({ pythonVersion: python!.version, implementation: 'cpython', os: 'linux', arch: 'x86_64', glibc: hostGlibc() });
  const arm = (): PythonTarget => ({ pythonVersion: python!.version, implementation: 'cpython', os: 'linux', arch: 'aarch64', glibc: [2, 28] });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'uvimage-sdist-test-'));
    store = await sharedTestStore();
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** A project (as the fixtures are) depending on `requirement`, with `noBinary` in [tool.uv] no-binary-package, locked by real uv. */
  const lockedProject = async (name: string, requirement: string, noBinary: string): Promise<{ projectDir: string; lock: UvLock }> => {
    const projectDir = join(dir, name);
    await mkdir(join(projectDir, 'src', name), { recursive: true });
    await writeFile(
      join(projectDir, 'pyproject.toml'),
      [
        '[project]',
        `name = "${name}"`,
        'version = "0.1.0"',
        'description = "uvimage test: a dependency built from its sdist"',
        'requires-python = ">=3.12"',
        `dependencies = ["${requirement}"]`,
        '',
        '[tool.uv]',
        `no-binary-package = ["${noBinary}"]`,
        '',
        '[build-system]',
        'requires = ["uv_build>=0.8,<0.14"]',
        'build-backend = "uv_build"',
        '',
      ].join('\n'),
    );
    await writeFile(join(projectDir, '.python-version'), '3.12\n');
    await writeFile(join(projectDir, 'src', name, '__init__.py'), '');
    await runUv(['lock', '--python', python!.interpreter], { cwd: projectDir });
    return { projectDir, lock: await readUvLock(join(projectDir, 'uv.lock')) };
  };

  /** Options for an image venv at /app/.venv on another machine (cross-platform plans). */
  const imageOptions = (projectDir: string, lock: UvLock, progress?: BuildVenvLayersOptions['progress']): BuildVenvLayersOptions => ({
    ...imageVenvOptions({ store, python: python!, projectDir, lock }),
    progress,
  });

  const recording = (lines: string[]): NonNullable<BuildVenvLayersOptions['progress']> => recordingProgress(lines);

  /**
   * The files of one package (paths starting with `prefix`) in two site-packages: equal but for the
   * installer's own files; RECORD equal line by line but for those. `native`: compiled extensions,
   * equal but in content and size (the compiler writes the build directory, uv's or ours, into their debug info).
   */
  const comparePackage = async (ours: string, theirs: string, prefix: string, record: string, native: string[] = []): Promise<string[]> => {
    const mine = await describeTree(ours);
    const uvs = await describeTree(theirs);
    const compared: string[] = [];
    const problems: string[] = [];
    for (const [path, item] of uvs) {
      if (!path.startsWith(prefix) || path.includes('__pycache__')) continue;
      if (/\.dist-info\/(RECORD|INSTALLER|uv_cache\.json|uv_build\.json)$/.test(path)) continue;
      const got: TreeItem | undefined = mine.get(path);
      if (!got) problems.push(`missing in ours: ${path}`);
      else if (native.includes(path) ? got.type !== item.type || got.executable !== item.executable : JSON.stringify(got) !== JSON.stringify(item)) problems.push(`differs: ${path}: ours ${JSON.stringify(got)} uv ${JSON.stringify(item)}`);
      else compared.push(path);
    }
    for (const path of mine.keys()) if (path.startsWith(prefix) && !path.includes('__pycache__') && !uvs.has(path)) problems.push(`only in ours: ${path}`);
    assert.deepEqual(problems, [], `${prefix}: ${problems.length} differences`);
    const lines = async (root: string): Promise<string[]> =>
      (await readFile(join(root, record), 'utf8'))
        .split('\n')
        .filter((line) => line !== '' && !/\.dist-info\/(INSTALLER|uv_cache\.json|uv_build\.json),/.test(line))
        .map((line) => (native.some((path) => line.startsWith(`${path},`)) ? `${line.split(',')[0]},(native)` : line));
    assert.deepEqual(await lines(ours), await lines(theirs), `${record}`);
    return compared;
  };

  test('six from its sdist (no-binary-package): planned as a build, built with uv build --wheel, the same files as uv sync; pure, so aarch64 takes it too', async () => {
    const { projectDir, lock } = await lockedProject('usesix', 'six==1.16.0', 'six');
    const locked = lock.packages.find((pkg) => pkg.name === 'six')!;
    assert.ok(locked.sdist?.url?.endsWith('/six-1.16.0.tar.gz'), JSON.stringify(locked.sdist));
    // The lock has a wheel that fits: only no-binary makes this a build.
    assert.deepEqual(
      locked.wheels.map((wheel) => wheel.filename),
      ['six-1.16.0-py2.py3-none-any.whl'],
    );

    const project = await readPyProject(projectDir);
    const plan = planInstall(project, lock, x86());
    const planned = plan.packages.find((pkg) => pkg.name === 'six')!;
    assert.equal(planned.kind, 'build');
    assert.ok(planned.kind === 'build');
    assert.equal(planned.reason, 'no-binary');
    assert.equal(planned.sdist?.url, locked.sdist!.url);
    assert.equal(planned.dir, undefined);

    const venv = join(dir, 'uv', '.venv');
    await uvSync(projectDir, venv, python!.interpreter, ['--no-binary-package', 'six']);
    // uv built it (setuptools' WHEEL), it did not install PyPI's wheel (bdist_wheel 0.36.2).
    assert.match(await readFile(join(venv, site, 'six-1.16.0.dist-info/WHEEL'), 'utf8'), /^Generator: setuptools /m);

    const lines: string[] = [];
    const layers = await buildVenvLayers(plan, { ...venvOptionsLikeUv({ store, venv, python: python!, projectDir, lock }), progress: recording(lines) });
    const installed = layers.packages.find((pkg) => pkg.name === 'six')!;
    assert.equal(installed.layer, 0);
    assert.equal(installed.filename, 'six-1.16.0-py2.py3-none-any.whl');
    assert.notEqual(installed.digest, locked.wheels[0]!.hash, 'the built wheel, not the one on PyPI');
    // Built now, or before (a locked sdist's wheel is kept by its sha256, target and Python); then surely from the store.
    assert.ok(lines.includes('Building six') || lines.includes('Building: built before'), lines.join('\n'));
    const again: string[] = [];
    const rebuilt = await buildVenvLayers(plan, { ...venvOptionsLikeUv({ store, venv, python: python!, projectDir, lock }), progress: recording(again) });
    assert.ok(again.includes('Building: built before') && !again.includes('Building six'), again.join('\n'));
    assert.equal(rebuilt.packages.find((pkg) => pkg.name === 'six')!.digest, installed.digest, 'the same wheel');

    const ours = join(dir, 'ours');
    await extractLayers(store, layers.dependencies, ours);
    const compared = await comparePackage(join(ours, venv, site), join(venv, site), 'six', 'six-1.16.0.dist-info/RECORD');
    assert.ok(compared.includes('six.py') && compared.includes('six-1.16.0.dist-info/WHEEL') && compared.includes('six-1.16.0.dist-info/METADATA'), compared.join(', '));

    // linux/aarch64: the same no-binary plan; the wheel built here is pure and goes in as it is.
    const armPlan = planInstall(project, lock, arm());
    const armPlanned = armPlan.packages.find((pkg) => pkg.name === 'six')!;
    assert.ok(armPlanned.kind === 'build' && armPlanned.reason === 'no-binary', JSON.stringify(armPlanned));
    const armLayers = await buildVenvLayers(armPlan, imageOptions(projectDir, lock));
    assert.equal(armLayers.packages.find((pkg) => pkg.name === 'six')?.filename, 'six-1.16.0-py2.py3-none-any.whl');
    const armRoot = join(dir, 'ours-arm');
    await extractLayers(store, armLayers.dependencies, armRoot);
    const armSite = await describeTree(join(armRoot, 'app/.venv', site));
    const uvSite = await describeTree(join(venv, site));
    for (const path of ['six.py', 'six-1.16.0.dist-info/METADATA', 'six-1.16.0.dist-info/WHEEL']) assert.deepEqual(armSite.get(path), uvSite.get(path), path);
  });

  test(
    'mmh3 from its sdist (a C extension): the linux_x86_64 wheel built here goes into an x86_64 image as uv sync installs it, and is refused for aarch64',
    { skip: process.arch !== 'x64' ? 'the host is not x86_64' : false },
    async () => {
      const { projectDir, lock } = await lockedProject('usesmmh3', 'mmh3==5.1.0', 'mmh3');
      const project = await readPyProject(projectDir);
      const plan = planInstall(project, lock, x86());
      const planned = plan.packages.find((pkg) => pkg.name === 'mmh3')!;
      assert.ok(planned.kind === 'build' && planned.reason === 'no-binary' && planned.sdist?.url?.endsWith('/mmh3-5.1.0.tar.gz'), JSON.stringify(planned));

      const venv = join(dir, 'uv-mmh3', '.venv');
      await uvSync(projectDir, venv, python!.interpreter, ['--no-binary-package', 'mmh3']);
      assert.match(await readFile(join(venv, site, 'mmh3-5.1.0.dist-info/WHEEL'), 'utf8'), /^Tag: cp312-cp312-linux_x86_64$/m);

      const layers = await buildVenvLayers(plan, venvOptionsLikeUv({ store, venv, python: python!, projectDir, lock }));
      assert.equal(layers.packages.find((pkg) => pkg.name === 'mmh3')?.filename, 'mmh3-5.1.0-cp312-cp312-linux_x86_64.whl');
      const ours = join(dir, 'ours-mmh3');
      await extractLayers(store, layers.dependencies, ours);
      const ourSite = join(ours, venv, site);
      const extensions: string[] = [];
      for (const [path, item] of await describeTree(ourSite)) {
        if (item.type !== 'file' || !path.startsWith('mmh3')) continue;
        const machine = elfMachine(await readFile(join(ourSite, path)));
        if (machine !== undefined) {
          assert.equal(machine, 'x86_64', path);
          extensions.push(path);
        }
      }
      assert.deepEqual(extensions, ['mmh3.cpython-312-x86_64-linux-gnu.so']);
      const compared = await comparePackage(ourSite, join(venv, site), 'mmh3', 'mmh3-5.1.0.dist-info/RECORD', extensions);
      assert.ok(compared.includes('mmh3.cpython-312-x86_64-linux-gnu.so') && compared.includes('mmh3-5.1.0.dist-info/WHEEL'), compared.join(', '));

      // linux/aarch64: the lock has aarch64 wheels, but no-binary forbids them and the build here is x86_64.
      const armPlan = planInstall(project, lock, arm());
      assert.ok(armPlan.packages.some((pkg) => pkg.name === 'mmh3' && pkg.kind === 'build' && pkg.reason === 'no-binary'));
      await assert.rejects(buildVenvLayers(armPlan, imageOptions(projectDir, lock)), (error: Error) => {
        assert.ok(error instanceof UserError, String(error));
        assert.ok(!error.message.includes('\n'), error.message);
        assert.match(error.message, /^mmh3 5\.1\.0 is no-binary \(built from source, its wheels unused\) for linux\/arm64 \(CPython 3\.12, glibc 2\.28\), and building it here gives mmh3-5\.1\.0-cp312-cp312-linux_x86_64\.whl, which is not for that platform; wheels exist for: .*manylinux.*aarch64/);
        console.log(error.message);
        return true;
      });
    },
  );
});
