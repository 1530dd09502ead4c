/**
 * Git dependencies: a real `uv lock` of a project that depends on a local git repository
 * (git+file://, with a subdirectory and a tag), planned and built into the dependency layer. The
 * package's files equal what `uv sync --frozen --no-dev --no-editable` installs for it, including
 * direct_url.json; a second build takes the wheel (and the layer) from the store without cloning;
 * a lock that pins a commit the repository does not have fails with one line naming both.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { UserError } from '../../src/errors.js';
import type { BlobStore } from '../../src/oci/store.js';
import { gitDirectUrl, parseGitSource } from '../../src/python/git-source.js';
import { planInstall } from '../../src/python/install-set.js';
import { readUvLock } from '../../src/python/lock.js';
import { readPyProject } from '../../src/python/pyproject.js';
import type { PythonTarget } from '../../src/python/target.js';
import { buildVenvLayers } from '../../src/python/venv-layers.js';
import { sharedTestStore } from '../harness/cache.js';
import { recordingProgress } from '../harness/progress.js';
import { describeTree, extractLayers, hostGlibc, imageVenvOptions, pyenvPython, runUv, uvAvailable, uvBinary, uvEnv, uvSync, venvOptionsLikeUv } from '../harness/uv.js';

const python = pyenvPython('3.12');
const gitWorks = (() => {
  try {
    execFileSync('git', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
const skip = !uvAvailable() ? 'uv is not installed (scripts/install-test-deps)' : !python ? 'no CPython 3.12 in pyenv' : !gitWorks ? 'git is not installed' : false;

test('the lock\'s git source: repository, commit, reference, subdirectory; direct_url.json as uv writes it', () => {
  const sha = 'ae65fed95c374ec3b65c412fee2addf62555384a';
  const source = parseGitSource(`file:///tmp/repo?subdirectory=sub&tag=v1#${sha}`, { name: 'gitpkg' });
  assert.deepEqual(source, { repository: 'file:///tmp/repo', commit: sha, subdirectory: 'sub', reference: { kind: 'tag', name: 'v1' }, lfs: false });
  assert.equal(gitDirectUrl(source), `{"url":"file:///tmp/repo","vcs_info":{"vcs":"git","commit_id":"${sha}","requested_revision":"v1"},"subdirectory":"sub"}`);
  const plain = parseGitSource(`https://github.com/org/repo.git#${sha}`, { name: 'x' });
  assert.equal(plain.repository, 'https://github.com/org/repo.git');
  assert.equal(plain.reference, undefined);
  assert.equal(gitDirectUrl(plain), `{"url":"https://github.com/org/repo.git","vcs_info":{"vcs":"git","commit_id":"${sha}"}}`);
  assert.equal(parseGitSource(`https://h/r?branch=main#${sha}`, { name: 'x', subdirectory: 'pkgs/a' }).subdirectory, 'pkgs/a');
  assert.throws(() => parseGitSource('https://h/r?branch=main', { name: 'x' }), /x: .*does not pin a full commit/);
  assert.throws(() => parseGitSource(`https://h/r?subdirectory=../up#${sha}`, { name: 'x' }), /outside the repository/);
});

describe('git dependencies', { skip }, () => {
  let dir: string;
  let store: BlobStore;
  let repo: string;
  let commit: string;
  const target = (): PythonTarget => ({ pythonVersion: python!.version, implementation: 'cpython', os: 'linux', arch: 'x86_64', glibc: hostGlibc() });

  const git = (args: string[], cwd: string): string =>
    execFileSync('git', args, {
      cwd,
      encoding: 'utf8',
      env: { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@example.invalid', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@example.invalid', GIT_CONFIG_NOSYSTEM: '1', HOME: dir },
    });

  /** A project depending on gitpkg from the repository (subdirectory `sub`, tag v1), locked by real uv. */
  const lockedProject = async (name: string): Promise<string> => {
    const projectDir = join(dir, name);
    await mkdir(projectDir, { recursive: true });
    await writeFile(
      join(projectDir, 'pyproject.toml'),
      [
        '[project]',
        `name = "${name}"`,
        'version = "0.1.0"',
        'requires-python = ">=3.12"',
        'dependencies = ["gitpkg"]',
        '',
        '[tool.uv]',
        'package = false',
        '',
        '[tool.uv.sources]',
        `gitpkg = { git = "file://${repo}", subdirectory = "sub", tag = "v1" }`,
        '',
      ].join('\n'),
    );
    await runUv(['lock', '--python', python!.interpreter], { cwd: projectDir });
    return projectDir;
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'uvimage-git-'));
    store = await sharedTestStore();
    repo = join(dir, 'repo');
    const pkg = join(repo, 'sub', 'src', 'gitpkg');
    await mkdir(pkg, { recursive: true });
    await writeFile(
      join(repo, 'sub', 'pyproject.toml'),
      [
        '[project]',
        'name = "gitpkg"',
        'version = "0.3.0"',
        'description = "uvimage test: a package from git"',
        'requires-python = ">=3.12"',
        'dependencies = []',
        '',
        '[project.scripts]',
        'gitpkg-hello = "gitpkg.core:hello"',
        '',
        '[build-system]',
        'requires = ["uv_build>=0.8,<0.14"]',
        'build-backend = "uv_build"',
        '',
      ].join('\n'),
    );
    // A unique value per run, so no cache (ours or uv's) can stand in for building this commit.
    await writeFile(join(pkg, '__init__.py'), `VALUE = ${JSON.stringify(String(process.hrtime.bigint()))}\n`);
    await writeFile(join(pkg, 'core.py'), 'def hello():\n    print("hello from git")\n');
    await writeFile(join(repo, 'README.md'), 'outside the package\n');
    git(['init', '--quiet', '-b', 'main'], repo);
    git(['add', '-A'], repo);
    git(['commit', '--quiet', '-m', 'gitpkg 0.3.0'], repo);
    git(['tag', 'v1'], repo);
    commit = git(['rev-parse', 'HEAD'], repo).trim();
    // A later commit on the branch: the lock pins v1's commit, which is no longer the tip.
    await writeFile(join(pkg, 'core.py'), 'def hello():\n    print("changed after v1")\n');
    git(['commit', '--quiet', '-am', 'after v1'], repo);
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('a git dependency is built at the locked commit into the dependency layer, as uv sync installs it; the second build reuses it', async () => {
    const projectDir = await lockedProject('usesgit');
    const lock = await readUvLock(join(projectDir, 'uv.lock'));
    const locked = lock.packages.find((pkg) => pkg.name === 'gitpkg')!;
    assert.equal(locked.source.git, `file://${repo}?subdirectory=sub&tag=v1#${commit}`);

    const plan = planInstall(await readPyProject(projectDir), lock, target());
    const planned = plan.packages.find((pkg) => pkg.name === 'gitpkg')!;
    assert.equal(planned.kind, 'build');

    const venv = join(dir, 'uv', '.venv');
    await uvSync(projectDir, venv, python!.interpreter);

    const lines: string[] = [];
    const options = {
      ...venvOptionsLikeUv({ store, venv, python: python!, projectDir, lock }),
      progress: recordingProgress(lines),
    };
    const tempsBefore = await readdir(join(store.root, 'tmp'));
    const layers = await buildVenvLayers(plan, options);
    const installed = layers.packages.find((pkg) => pkg.name === 'gitpkg')!;
    assert.equal(installed.layer, 0);
    assert.equal(installed.filename, 'gitpkg-0.3.0-py3-none-any.whl');
    assert.ok(lines.includes('Building gitpkg'), lines.join('\n'));
    // The clone lived in the store's tmp and is gone.
    assert.deepEqual((await readdir(join(store.root, 'tmp'))).filter((name) => name.startsWith('git-') && !tempsBefore.includes(name)), []);

    const ours = join(dir, 'ours');
    await extractLayers(store, layers.dependencies, ours);
    const site = 'lib/python3.12/site-packages';
    const mine = await describeTree(join(ours, venv, site));
    const theirs = await describeTree(join(venv, site));
    const compared: string[] = [];
    for (const [path, item] of theirs) {
      if (!path.startsWith('gitpkg')) continue;
      if (/\.dist-info\/(RECORD|INSTALLER|uv_cache\.json|uv_build\.json)$/.test(path) || path.includes('__pycache__')) continue;
      assert.deepEqual(mine.get(path), item, path);
      compared.push(path);
    }
    for (const path of mine.keys()) if (path.startsWith('gitpkg') && !path.includes('__pycache__')) assert.ok(theirs.has(path), `only in ours: ${path}`);
    assert.ok(compared.includes('gitpkg/__init__.py') && compared.includes('gitpkg/core.py') && compared.includes('gitpkg-0.3.0.dist-info/direct_url.json'), compared.join(', '));
    // The locked commit's code, not the branch tip's.
    assert.match(await readFile(join(ours, venv, site, 'gitpkg/core.py'), 'utf8'), /hello from git/);
    // RECORD: the same lines, but for the installer's own files (INSTALLER's content, uv's uv_build.json).
    const recordLines = async (root: string): Promise<string[]> =>
      (await readFile(join(root, site, 'gitpkg-0.3.0.dist-info/RECORD'), 'utf8')).split('\n').filter((line) => line !== '' && !/\.dist-info\/(INSTALLER|uv_cache\.json|uv_build\.json),/.test(line));
    assert.deepEqual(await recordLines(join(ours, venv)), await recordLines(venv));
    // The console script too.
    assert.deepEqual((await describeTree(join(ours, venv, 'bin'))).get('gitpkg-hello'), (await describeTree(join(venv, 'bin'))).get('gitpkg-hello'));

    // Again: the wheel comes from the store (no clone, no build), the layer is the same.
    lines.length = 0;
    const again = await buildVenvLayers(plan, { ...options, reuse: true });
    assert.ok(!lines.some((line) => line.startsWith('Building ')), lines.join('\n'));
    assert.ok(lines.includes('Building: built before'), lines.join('\n'));
    assert.equal(again.dependencies[0]!.descriptor.digest, layers.dependencies[0]!.descriptor.digest);
    // And without the layer cache, the cached wheel still gives the same bytes.
    lines.length = 0;
    const rebuilt = await buildVenvLayers(plan, { ...options, reuse: false });
    assert.ok(lines.includes('Building gitpkg'), 'reuse: false clones again');
    assert.equal(rebuilt.dependencies[0]!.descriptor.digest, layers.dependencies[0]!.descriptor.digest);
  });

  test('a pure-Python git package goes into an image for another architecture too', async () => {
    const projectDir = await lockedProject('crossgit');
    const lock = await readUvLock(join(projectDir, 'uv.lock'));
    const plan = planInstall(await readPyProject(projectDir), lock, { ...target(), arch: 'aarch64', glibc: [2, 36] });
    const layers = await buildVenvLayers(plan, imageVenvOptions({ store, python: python!, projectDir, lock }));
    assert.equal(layers.packages.find((pkg) => pkg.name === 'gitpkg')?.filename, 'gitpkg-0.3.0-py3-none-any.whl');
    const ours = join(dir, 'cross');
    await extractLayers(store, layers.dependencies, ours);
    assert.match(await readFile(join(ours, 'app/.venv/lib/python3.12/site-packages/gitpkg/core.py'), 'utf8'), /hello from git/);
  });

  test('a lock pinning a commit the repository does not have: one line naming the package and the commit', async () => {
    const projectDir = await lockedProject('badcommit');
    const lockPath = join(projectDir, 'uv.lock');
    const missing = '0123456789abcdef0123456789abcdef01234567';
    await writeFile(lockPath, (await readFile(lockPath, 'utf8')).replaceAll(`#${commit}`, `#${missing}`));
    const lock = await readUvLock(lockPath);
    const plan = planInstall(await readPyProject(projectDir), lock, target());
    await assert.rejects(
      buildVenvLayers(plan, {
        store,
        venvRoot: '/app/.venv',
        runtime: { interpreter: python!.interpreter, home: join(python!.interpreter, '..'), version: python!.version },
        projectDir,
        mtime: 0,
        lock,
        uv: uvBinary(),
        buildPython: python!.interpreter,
        env: uvEnv(),
      }),
      (error: Error) => {
        assert.ok(error instanceof UserError, String(error));
        assert.ok(!error.message.includes('\n'), error.message);
        assert.match(error.message, /^gitpkg: /);
        assert.ok(error.message.includes(missing), error.message);
        assert.ok(error.message.includes(`file://${repo}`), error.message);
        console.log(error.message);
        return true;
      },
    );
  });
});
