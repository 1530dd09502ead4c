/**
 * The corpus's projects (test/harness/corpus.ts) as uv sees them: every smoke.json is valid,
 * every committed uv.lock passes real uv's `uv lock --check` (offline: uv checks a lock against
 * pyproject.toml without the network, so this runs with the tests' uv cache empty or full), a
 * changed copy fails it (the check can fail), and each lock really has the shape its project
 * stands for (a fork, a normalised marker, intersected bounds, an sdist-only package…). The
 * private-index project is locked against the tests' pypiserver with credentials, which also
 * proves the server refuses anonymous requests, that its redirect to another host serves the
 * same file, and what uv itself does across that redirect.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { parse } from 'smol-toml';
import { corpusFeatures, corpusProjects, type CorpusProject } from '../harness/corpus.js';
import { exists } from '../harness/project-build.js';
import { pointAtPrivateIndex, privatePackageName, startPrivateIndex, type PrivateIndex } from '../harness/private-index.js';
import { uvAvailable, uvBinary, uvEnv } from '../harness/uv.js';
import { run } from '../harness/docker.js';

interface LockPackage {
  name: string;
  version: string;
  source: Record<string, string>;
  sdist?: { url: string };
  wheels?: { url: string }[];
  dependencies?: { name: string; marker?: string }[];
  'resolution-markers'?: string[];
  'optional-dependencies'?: Record<string, { name: string }[]>;
  'dev-dependencies'?: Record<string, { name: string }[]>;
}
interface Lock {
  'requires-python': string;
  'resolution-markers'?: string[];
  manifest?: { members?: string[] };
  package: LockPackage[];
}
type Toml = Record<string, unknown>;

let projects: CorpusProject[];
let work: string;

before(async () => {
  assert.ok(uvAvailable(), 'uv must be installed (scripts/install-test-deps installs it)');
  projects = await corpusProjects();
  work = await mkdtemp(join(tmpdir(), 'uvimage-corpus-lock-'));
});

after(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

async function readToml<T = Toml>(path: string): Promise<T> {
  // Plain objects (smol-toml's tables have no prototype), so deepEqual compares values only.
  return JSON.parse(JSON.stringify(parse(await readFile(path, 'utf8')))) as T;
}

const lockOf = (project: CorpusProject) => readToml<Lock>(join(project.dir, 'uv.lock'));
const packageIn = (lock: Lock, name: string): LockPackage[] => lock.package.filter((entry) => entry.name === name);
const only = (lock: Lock, name: string): LockPackage => {
  const found = packageIn(lock, name);
  assert.equal(found.length, 1, `${name} once in the lock`);
  return found[0]!;
};

/** `uv lock --check` with the tests' uv, offline; returns exit code and stderr. */
function lockCheck(dir: string, env: NodeJS.ProcessEnv = {}) {
  return run(uvBinary(), ['lock', '--check', '--offline'], { cwd: dir, env: uvEnv(env) });
}

test('the corpus: at least ten projects, each with a valid smoke.json, pyproject.toml and .python-version 3.12', async () => {
  assert.ok(projects.length >= 10, `${projects.length} projects`);
  for (const project of projects) {
    assert.ok(await exists(join(project.dir, 'pyproject.toml')), `${project.name}: pyproject.toml`);
    assert.equal((await readFile(join(project.dir, '.python-version'), 'utf8')).trim(), '3.12', `${project.name}: .python-version`);
    for (const feature of project.smoke.features) assert.ok(feature in corpusFeatures);
  }
  // Every shape the issue lists is there.
  const names = projects.map((project) => project.name);
  for (const name of ['workspace-fastapi', 'django-site', 'flask-gevent', 'cli-scripts', 'workspace-five', 'data-app', 'fork-python', 'platform-markers', 'extras-groups', 'sdist-only', 'workspace-bounds', 'native-libs', 'private-index']) {
    assert.ok(names.includes(name), `${name} in the corpus`);
  }
});

test('uv lock --check passes for every committed lock (offline, the tests\' uv)', async () => {
  for (const project of projects) {
    if (project.smoke.privateIndex) {
      // Its lock names the running index's port: made afresh by the private-index test below.
      assert.equal(await exists(join(project.dir, 'uv.lock')), false, `${project.name} commits no uv.lock`);
      continue;
    }
    const result = await lockCheck(project.dir);
    assert.equal(result.code, 0, `${project.name}: uv lock --check failed:\n${result.stderr}`);
  }
});

test('uv lock --check fails for a copy whose pyproject.toml no longer matches its lock', async () => {
  const project = projects.find((entry) => entry.name === 'cli-scripts')!;
  const copy = join(work, 'stale');
  await cp(project.dir, copy, { recursive: true });
  const pyproject = join(copy, 'pyproject.toml');
  await writeFile(pyproject, (await readFile(pyproject, 'utf8')).replace('"typer>=0.12"', '"typer>=0.12", "six>=1.16"'));
  const result = await lockCheck(copy);
  assert.notEqual(result.code, 0);
  assert.match(result.stderr, /needs to be updated/);
});

/** What each project's lock must show for the shape it stands for. */
const shapes: Record<string, (project: CorpusProject, lock: Lock) => Promise<void> | void> = {
  'workspace-fastapi': async (project, lock) => {
    const root = await readToml(join(project.dir, 'pyproject.toml'));
    assert.equal(root.project, undefined, 'a virtual root: no [project]');
    assert.deepEqual(lock.manifest?.members, ['api', 'inventory']);
    assert.deepEqual(only(lock, 'api').source, { editable: 'packages/api' });
    const deps = only(lock, 'api').dependencies!.map((dep) => dep.name);
    for (const name of ['fastapi', 'sqlmodel', 'psycopg', 'inventory']) assert.ok(deps.includes(name), `api depends on ${name}`);
    assert.ok(packageIn(lock, 'psycopg-binary').length === 1, 'psycopg[binary] brings psycopg-binary');
  },
  'django-site': async (project, lock) => {
    const pyproject = await readToml<{ tool: { setuptools: { packages: string[] } } }>(join(project.dir, 'pyproject.toml'));
    assert.deepEqual(pyproject.tool.setuptools.packages, [], 'setuptools installs no module of the site');
    assert.deepEqual(only(lock, 'django-site').source, { editable: '.' });
    assert.ok(await exists(join(project.dir, 'manage.py')));
  },
  'flask-gevent': (_project, lock) => {
    assert.deepEqual(only(lock, 'flask-gevent').source, { virtual: '.' }, 'package = false: a virtual project');
    for (const name of ['flask', 'gevent', 'gunicorn', 'packaging']) only(lock, name);
  },
  'cli-scripts': async (project) => {
    const pyproject = await readToml<{ project: { scripts: Record<string, string> } }>(join(project.dir, 'pyproject.toml'));
    assert.deepEqual(Object.keys(pyproject.project.scripts).sort(), ['greet', 'shout', 'wordcount']);
  },
  'workspace-five': (_project, lock) => {
    const chain = ['alpha', 'bravo', 'charlie', 'delta', 'echo'];
    assert.deepEqual(lock.manifest?.members, [...chain, 'five'].sort());
    chain.forEach((name, i) => {
      const member = only(lock, name);
      assert.deepEqual(member.source, { editable: `packages/${name}` });
      if (i + 1 < chain.length) assert.ok(member.dependencies!.some((dep) => dep.name === chain[i + 1]), `${name} depends on ${chain[i + 1]}`);
    });
    assert.deepEqual(only(lock, 'five').dependencies!.map((dep) => dep.name).sort(), chain);
  },
  'data-app': (_project, lock) => {
    for (const name of ['numpy', 'pandas', 'pyarrow']) assert.ok(only(lock, name).wheels!.length > 0);
  },
  'fork-python': (_project, lock) => {
    assert.deepEqual(lock['resolution-markers'], ["python_full_version >= '3.12'", "python_full_version < '3.12'"], 'the lock forks at 3.12');
    const numpys = packageIn(lock, 'numpy');
    assert.equal(numpys.length, 2, 'one numpy per fork');
    const byFork = new Map(numpys.map((entry) => [entry['resolution-markers']!.join(' or '), entry.version]));
    const [newMajor, newMinor] = byFork.get("python_full_version >= '3.12'")!.split('.').map(Number);
    const [oldMajor, oldMinor] = byFork.get("python_full_version < '3.12'")!.split('.').map(Number);
    assert.ok(newMajor! > 2 || (newMajor === 2 && newMinor! >= 1), `numpy >= 2.1 from 3.12: ${[...byFork]}`);
    assert.ok(oldMajor! < 2 || (oldMajor === 2 && oldMinor! < 1), `numpy < 2.1 below 3.12: ${[...byFork]}`);
  },
  'platform-markers': async (project, lock) => {
    const text = await readFile(join(project.dir, 'pyproject.toml'), 'utf8');
    assert.match(text, /"pexpect>=4\.9; platform_system != 'Windows'"/);
    const deps = new Map(only(lock, 'platform-markers').dependencies!.map((dep) => [dep.name, dep.marker]));
    // uv normalises platform_system to sys_platform in the lock.
    assert.equal(deps.get('pexpect'), "sys_platform != 'win32'");
    assert.equal(deps.get('colorama'), "sys_platform == 'win32'");
    assert.equal(deps.get('uvloop'), "sys_platform == 'linux'");
    assert.equal(deps.get('pywin32'), "sys_platform == 'win32'");
    assert.equal(deps.get('pyobjc-core'), "sys_platform == 'darwin'");
    assert.ok(only(lock, 'pywin32').wheels!.every((wheel) => /-win/.test(wheel.url)), 'pywin32 has Windows wheels only');
  },
  'extras-groups': async (project, lock) => {
    const entry = only(lock, 'extras-groups');
    assert.deepEqual(Object.keys(entry['optional-dependencies']!).sort(), ['redis', 'yaml']);
    assert.deepEqual(Object.keys(entry['dev-dependencies']!).sort(), ['dev', 'docs', 'prod']);
    const pyproject = await readToml<{ tool: { uvimage: { extras: string[]; groups: string[] } } }>(join(project.dir, 'pyproject.toml'));
    assert.deepEqual(pyproject.tool.uvimage.extras, ['redis']);
    assert.deepEqual(pyproject.tool.uvimage.groups, ['prod']);
  },
  'sdist-only': (_project, lock) => {
    const docopt = only(lock, 'docopt');
    assert.equal(docopt.version, '0.6.2');
    assert.ok(docopt.sdist, 'an sdist');
    assert.equal(docopt.wheels, undefined, 'PyPI has no wheel of docopt 0.6.2');
  },
  'workspace-bounds': async (project, lock) => {
    const bounds = [];
    for (const path of ['pyproject.toml', 'packages/bounds-lib/pyproject.toml', 'packages/bounds-extra/pyproject.toml']) {
      bounds.push((await readToml<{ project: { 'requires-python': string } }>(join(project.dir, path))).project['requires-python']);
    }
    assert.deepEqual(bounds, ['>=3.9.2,<4.0.0', '>=3.10.2,<4.0.0', '>=3.11,<3.15']);
    // uv keeps the intersection, which is none of the members' own.
    assert.equal(lock['requires-python'], '>=3.11, <3.15');
  },
  'native-libs': (_project, lock) => {
    const psycopg2 = only(lock, 'psycopg2');
    assert.ok(psycopg2.sdist);
    assert.ok((psycopg2.wheels ?? []).every((wheel) => /-win/.test(wheel.url)), 'no Linux wheel: built from the sdist');
    assert.ok(only(lock, 'opencv-python').wheels!.some((wheel) => /manylinux.*x86_64/.test(wheel.url)));
    assert.equal(packageIn(lock, 'opencv-python-headless').length, 0);
  },
};

test('each lock has the shape its project stands for', async () => {
  for (const project of projects) {
    if (project.smoke.privateIndex) continue;
    const shape = shapes[project.name];
    assert.ok(shape, `${project.name}: no shape assertions`);
    await shape(project, await lockOf(project));
  }
});

test('the private index: refuses anonymous requests; uv locks against it with credentials and sends none to a redirect target on another host', async (t) => {
  let index: PrivateIndex | undefined;
  t.after(() => index?.stop());
  index = await startPrivateIndex();
  const simple = `${index.url}${privatePackageName}/`;
  assert.equal((await fetch(simple)).status, 401, 'anonymous: 401');
  const authorization = `Basic ${Buffer.from(`${index.username}:${index.password}`).toString('base64')}`;
  const page = await fetch(simple, { headers: { authorization } });
  assert.equal(page.status, 200);
  assert.ok((await page.text()).includes(`${index.wheel.filename}#sha256=${index.wheel.sha256}`));

  // The redirect serves the same file from another host name, to anyone.
  index.redirectDownloads(true);
  const wheelPath = `/packages/${index.wheel.filename}`;
  const redirect = await fetch(`${index.url.replace(/\/simple\/$/, '')}${wheelPath}`, { headers: { authorization }, redirect: 'manual' });
  assert.equal(redirect.status, 307);
  const location = new URL(redirect.headers.get('location')!);
  assert.equal(location.hostname, 'localhost', 'another host name than the index (127.0.0.1)');
  const moved = await fetch(location);
  assert.equal(moved.status, 200);
  assert.equal(createHash('sha256').update(Buffer.from(await moved.arrayBuffer())).digest('hex'), index.wheel.sha256);
  index.proxy.resetStats();

  // uv, the reference: locking needs the wheel (pypiserver serves no separate metadata), which
  // it asks the index for with the credentials and then fetches from the other host without them.
  const project = projects.find((entry) => entry.smoke.privateIndex)!;
  const copy = join(work, 'private-index');
  await cp(project.dir, copy, { recursive: true });
  await pointAtPrivateIndex(copy, index);
  const atIndex = index.proxy.log.filter((entry) => entry.path === wheelPath);
  assert.ok(atIndex.length > 0 && atIndex.every((entry) => entry.authorization), `uv asked the index for the wheel with credentials: ${JSON.stringify(index.proxy.log)}`);
  assert.ok(index.proxy.storageLog.length > 0, 'uv followed the redirect');
  assert.deepEqual(index.proxy.storageLog.filter((entry) => entry.authorization), [], 'uv sent no credentials to the other host');
  index.redirectDownloads(false);

  const lock = await readToml<Lock>(join(copy, 'uv.lock'));
  const locked = only(lock, privatePackageName);
  assert.deepEqual(locked.source, { registry: index.url });
  assert.deepEqual(locked.wheels!.map((wheel) => wheel.url), [`${index.url.replace(/simple\/$/, '')}packages/${index.wheel.filename}`]);
  assert.ok(only(lock, 'attrs').source.registry!.startsWith('https://pypi.org/'), 'the rest from PyPI');
  assert.equal((await lockCheck(copy, index.credentialsEnv)).code, 0, 'uv lock --check of the fresh lock');
});
