/**
 * A private Python package index for the tests (issue 11, point 5): the real `pypiserver` from
 * PyPI on 127.0.0.1 with basic auth (an htpasswd file), serving the wheel of
 * test/fixtures/private-pkg (a package no public index has, built with `uv build`; each server's
 * wheel has a build id of its own), and a fault proxy (fault-proxy.ts) in front of it that can
 * answer downloads with a redirect to another host (`localhost` instead of 127.0.0.1, still this
 * machine), so a test can show whether credentials follow a redirect off the index's host.
 *
 * pypiserver and passlib (which pypiserver needs to read an htpasswd file) are installed with the
 * test uv, once, into a venv under the test cache; the server runs as `python -m pypiserver` from
 * it. `--disable-fallback` keeps pypiserver from redirecting unknown packages to pypi.org.
 *
 * A project that uses the index (test/fixtures/projects/private-index) names it in
 * `[[tool.uv.index]]` with a placeholder URL; `pointAtPrivateIndex` writes the server's URL into a
 * copy of the project and locks that copy with real uv and the credentials. The lock records the
 * index URL with its port, and a fixed port would collide between test processes on a shared
 * machine, so the lock is made afresh each run rather than committed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { cp, mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { indexEnvName } from '../../src/python/download.js';
import { testCacheDir } from './cache.js';
import { check } from './docker.js';
import { startFaultProxy, type FaultProxy } from './fault-proxy.js';
import { exists } from './project-build.js';
import { freePort, killChild, waitForServer } from './registry.js';
import { pyenvPython, runUv } from './uv.js';

export const pypiserverVersion = '2.4.2';
export const passlibVersion = '1.7.4';

/** The package written for these tests, served only by the private index. */
export const privatePackageDir = fileURLToPath(new URL('../fixtures/private-pkg', import.meta.url));
export const privatePackageName = 'uvimage-corpus-private';

/** The index's name in `[[tool.uv.index]]`, hence UV_INDEX_CORPUS_PRIVATE_USERNAME / _PASSWORD. */
export const privateIndexName = 'corpus-private';
/** The URL test/fixtures/projects/private-index names until pointAtPrivateIndex replaces it. */
export const privateIndexPlaceholderUrl = 'http://127.0.0.1:3141/simple/';

export interface PrivateIndex {
  /** The simple API root clients use, through the proxy: `http://127.0.0.1:PORT/simple/`. */
  url: string;
  username: string;
  /** Distinctive, so a test can search outputs, images and errors for it. */
  password: string;
  /** The variables uv (and uvimage) read for the index: UV_INDEX_CORPUS_PRIVATE_USERNAME / _PASSWORD. */
  credentialsEnv: Record<string, string>;
  /** The wheel served, as pypiserver has it. */
  wheel: { filename: string; sha256: string };
  /** The proxy in front of pypiserver: its log says which requests carried Authorization. */
  proxy: FaultProxy;
  /**
   * While on, every wheel download (`/packages/...`) is answered 307 with a Location on another
   * host (`localhost:<storage port>`); that server fetches the file from pypiserver with the
   * index's credentials itself, and `proxy.storageLog` records whether the client sent any.
   */
  redirectDownloads(on: boolean): void;
  /** The last of pypiserver's output, for failure messages. */
  serverOutput(): string;
  stop(): Promise<void>;
}

/** The venv with pypiserver and passlib, made once under the test cache. */
async function pypiserverPython(): Promise<string> {
  const dir = join(testCacheDir(), 'pypiserver', `pypiserver-${pypiserverVersion}-passlib-${passlibVersion}`);
  const python = join(dir, 'bin', 'python');
  if (await exists(join(dir, 'complete'))) return python;
  await mkdir(join(dir, '..'), { recursive: true });
  // Made under a temp name and renamed; `bin/python` is a symlink and the packages are found
  // relative to it, so the renamed venv works (its console-script shebangs would not: unused).
  const temp = await mkdtemp(`${dir}.tmp-`);
  try {
    const base = pyenvPython('3.12') ?? pyenvPython('3.11');
    await runUv(['venv', '--quiet', '--python', base?.interpreter ?? '3.12', join(temp, 'venv')]);
    await runUv(['pip', 'install', '--quiet', '--python', join(temp, 'venv', 'bin', 'python'), `pypiserver==${pypiserverVersion}`, `passlib==${passlibVersion}`]);
    await writeFile(join(temp, 'venv', 'complete'), '');
    await rename(join(temp, 'venv'), dir).catch(async (error: NodeJS.ErrnoException) => {
      // Another test process made it first.
      if (!(await exists(join(dir, 'complete')))) throw error;
    });
  } finally {
    await rm(temp, { recursive: true, force: true });
  }
  return python;
}

/** Starts pypiserver (basic auth on every request) behind a fault proxy, serving the private package. */
export async function startPrivateIndex(): Promise<PrivateIndex> {
  const python = await pypiserverPython();
  const dir = await mkdtemp(join(tmpdir(), 'uvimage-private-index-'));
  const packages = join(dir, 'packages');
  await mkdir(packages);
  // A wheel of its own for each server (a build id inside), so no cache, uv's or uvimage's
  // store, holds it: every build that needs it downloads it through this index.
  const source = join(dir, 'source');
  await cp(privatePackageDir, source, { recursive: true });
  await writeFile(join(source, 'src', 'uvimage_corpus_private', '_build.py'), `BUILD_ID = "${randomBytes(8).toString('hex')}"\n`);
  await runUv(['build', '--wheel', '--quiet', '--out-dir', packages, source]);
  const [filename] = (await readdir(packages)).filter((name) => name.endsWith('.whl'));
  if (!filename) throw new Error(`uv build of ${privatePackageDir} wrote no wheel`);
  const sha256 = createHash('sha256').update(await readFile(join(packages, filename))).digest('hex');

  const username = 'corpus';
  const password = 'corpus-index-pw-5e1f9c';
  const htpasswd = join(dir, 'htpasswd');
  // apr1-MD5: passlib reads it without further packages (bcrypt would need the bcrypt wheel).
  await writeFile(htpasswd, await check('htpasswd', ['-nbm', username, password]));
  const basic = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;

  let child: ChildProcess | undefined;
  let output = '';
  let port = 0;
  // The port is chosen, released and handed to pypiserver; retry on the rare race.
  for (let tries = 0; ; tries++) {
    port = await freePort();
    output = '';
    child = spawn(
      python,
      ['-m', 'pypiserver', 'run', '--interface', '127.0.0.1', '--port', String(port), '--passwords', htpasswd,
        '--authenticate', 'download,list,update', '--disable-fallback', packages],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const collect = (chunk: Buffer) => {
      output = (output + chunk.toString('utf8')).slice(-4000);
    };
    child.stdout!.on('data', collect);
    child.stderr!.on('data', collect);
    try {
      // 401: it answers, and asks for credentials as configured.
      await waitForServer('pypiserver', { port, path: '/simple/', ready: [401] }, child, () => output, 30_000);
      break;
    } catch (error) {
      await killChild(child);
      if (tries < 2 && /address already in use/i.test(output)) continue;
      await rm(dir, { recursive: true, force: true });
      throw error;
    }
  }
  const server = child;
  const proxy = await startFaultProxy(`127.0.0.1:${port}`, [], { storageAuthorization: basic, storageHostname: 'localhost' });
  const variable = indexEnvName(privateIndexName);
  let stopped = false;
  return {
    url: `http://${proxy.host}/simple/`,
    username,
    password,
    credentialsEnv: { [`UV_INDEX_${variable}_USERNAME`]: username, [`UV_INDEX_${variable}_PASSWORD`]: password },
    wheel: { filename, sha256 },
    proxy,
    redirectDownloads(on: boolean) {
      proxy.setRules(on ? [{ method: 'GET', path: /^\/packages\//, action: { kind: 'redirect-to-storage' } }] : []);
    },
    serverOutput: () => output,
    async stop() {
      if (stopped) return;
      stopped = true;
      await proxy.stop();
      await killChild(server);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Points a copy of a project at the running index (its `[[tool.uv.index]]` placeholder URL
 * replaced) and locks it with real uv and the index's credentials.
 */
export async function pointAtPrivateIndex(projectCopy: string, index: PrivateIndex): Promise<void> {
  const pyproject = join(projectCopy, 'pyproject.toml');
  const text = await readFile(pyproject, 'utf8');
  if (!text.includes(privateIndexPlaceholderUrl)) throw new Error(`${pyproject} does not name ${privateIndexPlaceholderUrl}`);
  await writeFile(pyproject, text.replaceAll(privateIndexPlaceholderUrl, index.url));
  await runUv(['lock', '--quiet'], { cwd: projectCopy, env: index.credentialsEnv });
}
