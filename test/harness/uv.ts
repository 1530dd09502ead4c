/**
 * Real uv and real CPythons for the Python tests: `uv sync` into a venv to compare with, a tree
 * walker that describes a directory file by file (type, executable bit, content hash or link
 * target), and extraction of our layers with `tar -x`. uv's cache is kept beside the shared test
 * store, so reruns download nothing.
 */
import { execFile, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { lstat, mkdir, readdir, readFile, readlink } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { isElfMagic } from '../../src/binary/elf.js';
import type { Layer } from '../../src/oci/image.js';
import type { BlobStore } from '../../src/oci/store.js';
import type { UvLock } from '../../src/python/lock.js';
import type { BuildVenvLayersOptions } from '../../src/python/venv-layers.js';
import { testCacheDir } from './cache.js';

const execFileAsync = promisify(execFile);

/** uv's cache for tests (persistent, like the shared store). */
export function uvCacheDir(): string {
  return join(testCacheDir(), 'uv');
}

let resolvedUv: string | undefined;

/**
 * The uv executable. Through pyenv's shim, `uv` depends on the directory it runs in (a
 * project's .python-version selects a Python without uv), so the real binary is resolved once.
 */
export function uvBinary(): string {
  if (resolvedUv) return resolvedUv;
  const which = spawnSync('pyenv', ['which', 'uv'], { encoding: 'utf8', cwd: '/' });
  resolvedUv = which.status === 0 && which.stdout.trim() ? which.stdout.trim() : 'uv';
  return resolvedUv;
}

/** Whether `uv` runs here (scripts/install-test-deps installs it). */
export function uvAvailable(): boolean {
  return spawnSync(uvBinary(), ['--version'], { encoding: 'utf8' }).status === 0;
}

/** The environment for uv runs in tests: the persistent cache, no user configuration. */
export function uvEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { ...process.env, UV_CACHE_DIR: uvCacheDir(), UV_NO_CONFIG: '1', UV_NO_PROGRESS: '1', UV_PYTHON_DOWNLOADS: 'never', ...extra };
}

/** A CPython of this minor version from pyenv's versions directory, newest first, or undefined. */
export function pyenvPython(minor: string): { interpreter: string; version: string } | undefined {
  const root = process.env.PYENV_ROOT ?? join(homedir(), '.pyenv');
  const versionsDir = join(root, 'versions');
  if (!existsSync(versionsDir)) return undefined;
  const result = spawnSync('ls', [versionsDir], { encoding: 'utf8' });
  const versions = result.stdout
    .split('\n')
    .filter((name) => name.startsWith(`${minor}.`) && /^\d+\.\d+\.\d+$/.test(name))
    .sort((a, b) => Number(b.split('.')[2]) - Number(a.split('.')[2]));
  for (const version of versions) {
    const interpreter = join(versionsDir, version, 'bin', `python${minor}`);
    if (existsSync(interpreter)) return { interpreter, version };
  }
  return undefined;
}

/** `uv` with the test cache and no user configuration. */
export async function runUv(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<string> {
  const env = uvEnv(options.env);
  try {
    const { stdout } = await execFileAsync(uvBinary(), args, { cwd: options.cwd, env, maxBuffer: 64 * 1024 * 1024 });
    return stdout;
  } catch (error) {
    const detail = (error as { stderr?: string }).stderr ?? String(error);
    throw new Error(`uv ${args.join(' ')} failed: ${detail.trim().split('\n').slice(-5).join('\n')}`);
  }
}

/** `uv sync --frozen --no-dev --no-editable` of a project into `venv` with the given interpreter. */
export async function uvSync(projectDir: string, venv: string, interpreter: string, extraArgs: string[] = []): Promise<void> {
  await runUv(['sync', '--frozen', '--no-dev', '--no-editable', '--python', interpreter, ...extraArgs], {
    cwd: projectDir,
    env: { UV_PROJECT_ENVIRONMENT: venv },
  });
}

export interface TreeItem {
  type: 'file' | 'symlink' | 'directory';
  /** For files: whether any executable bit is set. */
  executable?: boolean;
  /** For files: sha256 of the content. */
  sha256?: string;
  /** For symlinks. */
  target?: string;
}

/** Every path under `dir` (relative, '/'-separated) with what it is. Hardlinks are files. */
export async function describeTree(dir: string): Promise<Map<string, TreeItem>> {
  const items = new Map<string, TreeItem>();
  const walk = async (relative: string): Promise<void> => {
    for (const name of await readdir(join(dir, relative))) {
      const path = relative ? `${relative}/${name}` : name;
      const full = join(dir, path);
      const stats = await lstat(full);
      if (stats.isSymbolicLink()) items.set(path, { type: 'symlink', target: await readlink(full) });
      else if (stats.isDirectory()) {
        items.set(path, { type: 'directory' });
        await walk(path);
      } else {
        items.set(path, {
          type: 'file',
          executable: (stats.mode & 0o111) !== 0,
          sha256: createHash('sha256').update(await readFile(full)).digest('hex'),
        });
      }
    }
  };
  if (existsSync(dir)) await walk('');
  return items;
}

/** Extracts layers (in order) into `dir` with tar, as a container runtime would stack them. */
export async function extractLayers(store: BlobStore, layers: Layer[], dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const layer of layers) {
    await execFileAsync('tar', ['-xzf', store.blobPath(layer.descriptor.digest), '-C', dir, '--no-same-owner']);
  }
}

/** The machine field of an ELF file's header, or undefined for anything else. */
export function elfMachine(content: Buffer): 'x86_64' | 'aarch64' | `other:${number}` | undefined {
  if (content.length < 20 || !isElfMagic(content)) return undefined;
  const machine = content.readUInt16LE(18);
  return machine === 0x3e ? 'x86_64' : machine === 0xb7 ? 'aarch64' : `other:${machine}`;
}

/** The host's glibc as [major, minor] (from `ldd --version`), for planning what uv would install here. */
export function hostGlibc(): [number, number] {
  const output = spawnSync('ldd', ['--version'], { encoding: 'utf8' }).stdout ?? '';
  const match = /(\d+)\.(\d+)\s*$/m.exec(output.split('\n')[0] ?? '');
  return match ? [Number(match[1]), Number(match[2])] : [2, 36];
}

interface VenvOptionsInput {
  store: BlobStore;
  python: { interpreter: string; version: string };
  projectDir: string;
  lock: UvLock;
}

/**
 * What every test build of a venv shares: mtime 0, the test uv and its cache, builds with the
 * host CPython, and native files as the wheels have them (these builds are compared with uv's
 * file for file; stripping has its own tests, test/binary/strip.test.ts).
 */
function testVenvOptions({ store, python, projectDir, lock }: VenvOptionsInput): Omit<BuildVenvLayersOptions, 'runtime'> {
  return { store, projectDir, mtime: 0, lock, uv: uvBinary(), buildPython: python.interpreter, env: uvEnv(), strip: false };
}

/**
 * buildVenvLayers options that make our venv comparable with one `uv sync` wrote at `venv`: the
 * same venv path (so shebangs match) and the same host CPython as runtime.
 */
export function venvOptionsLikeUv(options: VenvOptionsInput & { venv: string }): BuildVenvLayersOptions {
  const { venv, python } = options;
  return { ...testVenvOptions(options), venvRoot: venv, runtime: { interpreter: python.interpreter, home: join(python.interpreter, '..'), version: python.version } };
}

/** buildVenvLayers options for an image's venv at /app/.venv on a python-build-standalone runtime at /python. */
export function imageVenvOptions(options: VenvOptionsInput): BuildVenvLayersOptions {
  const minor = options.python.version.split('.').slice(0, 2).join('.');
  return { ...testVenvOptions(options), venvRoot: '/app/.venv', runtime: { interpreter: `/python/bin/python${minor}`, home: '/python/bin', version: options.python.version } };
}
