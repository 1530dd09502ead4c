/**
 * The uv that uvimage runs. $UV when set — uv puts its own path there for every process it
 * starts, so under `uv run` or `uvx` the very same uv is used, with no PATH lookup or version
 * manager's shim in between — else `uv` on PATH. Where neither exists, the uv wheel pinned in
 * src/python/uv-downloads.ts (scripts/refresh-uv-downloads.ts) is fetched from PyPI, checked
 * against its sha256, kept in the store, and its `uv` binary (checked against the wheel's RECORD)
 * extracted once to `<cache>/tools/uv-<sha256 of the wheel>/uv`, which later runs use as it is.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { constants, createWriteStream } from 'node:fs';
import { access, chmod, mkdir, rename, rm, stat } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import yauzl, { type Entry, type ZipFile } from 'yauzl';
import { UserError, describeError } from '../errors.js';
import type { Digest } from '../oci/digest.js';
import type { BlobStore } from '../oci/store.js';
import { downloadWheel } from './download.js';
import { compareVersions, tryParseVersion } from './pep440.js';
import { uvVersion, uvWheelRows } from './uv-downloads.js';
import { parseRecord } from './wheel-installer.js';

/** $UV, else `uv` (for PATH to find): what runs when nothing may be fetched. */
export function uvExecutable(env: NodeJS.ProcessEnv = process.env): string {
  return env.UV?.trim() || 'uv';
}

export interface LocateUvOptions {
  env?: NodeJS.ProcessEnv;
  /** Where a fetched uv is kept; without one, nothing is fetched. */
  store?: BlobStore;
  progress?: { info?(line: string): void };
}

/**
 * uvExecutable's answer when $UV is set or PATH has an executable `uv`; else the pinned uv
 * (fetched on first use) for this machine, or, without a store, `uv` (whose absence is then
 * reported where it is run).
 */
export async function locateUv(options: LocateUvOptions = {}): Promise<string> {
  const env = options.env ?? process.env;
  if (env.UV?.trim() || !options.store || (await onPath('uv', env))) return uvExecutable(env);
  const platform = hostUvPlatform();
  const wheel = uvWheelRows.find(([rowPlatform]) => rowPlatform === platform);
  if (!wheel) throw new UserError(`uvimage runs uv, and there is none on PATH (nor $UV); uvimage pins no uv for ${platform ?? `${process.platform}/${process.arch}`}: install uv (https://docs.astral.sh/uv/)`);
  const [, filename, sha256, size, url] = wheel;
  return installPinnedUv(options.store, { filename, sha256, size, url }, env, options.progress);
}

/** The platforms the table pins a uv wheel for. */
export type UvPlatform = 'linux-x86_64-gnu' | 'linux-x86_64-musl' | 'linux-aarch64-gnu' | 'linux-aarch64-musl' | 'macos-x86_64' | 'macos-aarch64';

/** This machine as the table names platforms (glibc or musl told apart by node's report), or undefined. */
export function hostUvPlatform(): UvPlatform | undefined {
  const arch = process.arch === 'x64' ? 'x86_64' : process.arch === 'arm64' ? 'aarch64' : undefined;
  if (!arch) return undefined;
  if (process.platform === 'darwin') return `macos-${arch}`;
  if (process.platform !== 'linux') return undefined;
  const header = (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header;
  return `linux-${arch}-${header?.glibcVersionRuntime ? 'gnu' : 'musl'}`;
}

export interface UvWheel {
  filename: string;
  sha256: string;
  size: number;
  url: string;
}

/**
 * The wheel tag each platform takes, lowest version first so the wheel runs on the oldest
 * systems the release supports: manylinux by its glibc, musllinux (static binaries) for musl,
 * macOS by its minimum version. uv's wheels are `py3-none-<platform tags>`.
 */
const platformTagPatterns: Record<UvPlatform, RegExp> = {
  'linux-x86_64-gnu': /^manylinux_(\d+)_(\d+)_x86_64$/,
  'linux-x86_64-musl': /^musllinux_(\d+)_(\d+)_x86_64$/,
  'linux-aarch64-gnu': /^manylinux_(\d+)_(\d+)_aarch64$/,
  'linux-aarch64-musl': /^musllinux_(\d+)_(\d+)_aarch64$/,
  'macos-x86_64': /^macosx_(\d+)_(\d+)_x86_64$/,
  'macos-aarch64': /^macosx_(\d+)_(\d+)_arm64$/,
};

/** A file of PyPI's simple index (PEP 691 JSON). */
export interface SimpleIndexFile {
  filename: string;
  url: string;
  hashes: { sha256?: string };
  size?: number;
  yanked?: boolean | string;
}

/** For each platform, the uv `version` wheel among `files` it should use (scripts/refresh-uv-downloads.ts). */
export function chooseUvWheels(files: SimpleIndexFile[], version: string): [UvPlatform, UvWheel][] {
  const chosen: [UvPlatform, UvWheel][] = [];
  for (const [platform, pattern] of Object.entries(platformTagPatterns) as [UvPlatform, RegExp][]) {
    let best: { wheel: UvWheel; rank: [number, number] } | undefined;
    for (const file of files) {
      const match = new RegExp(`^uv-${version.replace(/\./g, '\\.')}-py3-none-(.+)\\.whl$`).exec(file.filename);
      if (!match || file.yanked || !file.hashes.sha256 || file.size === undefined) continue;
      for (const tag of match[1]!.split('.')) {
        const found = pattern.exec(tag);
        if (!found) continue;
        const rank: [number, number] = [Number(found[1]), Number(found[2])];
        if (!best || rank[0] < best.rank[0] || (rank[0] === best.rank[0] && rank[1] < best.rank[1])) {
          best = { wheel: { filename: file.filename, sha256: file.hashes.sha256, size: file.size, url: file.url }, rank };
        }
      }
    }
    if (!best) throw new Error(`uv ${version} on PyPI has no wheel for ${platform}`);
    chosen.push([platform, best.wheel]);
  }
  return chosen;
}

/** The newest final release among PyPI's versions of uv. */
export function newestUvVersion(versions: string[]): string {
  const finals = versions.filter((text) => {
    const version = tryParseVersion(text);
    return version !== undefined && version.pre === undefined && version.dev === undefined;
  });
  const newest = finals.sort(compareVersions).pop();
  if (!newest) throw new Error('PyPI lists no final release of uv');
  return newest;
}

async function onPath(program: string, env: NodeJS.ProcessEnv): Promise<boolean> {
  for (const dir of (env.PATH ?? '').split(delimiter).filter(Boolean)) {
    const candidate = join(dir, program);
    const isFile = await stat(candidate).then((stats) => stats.isFile(), () => false);
    if (isFile && (await access(candidate, constants.X_OK).then(() => true, () => false))) return true;
  }
  return false;
}

/**
 * The pinned wheel's `uv`, extracted to a directory named by the wheel's digest: written under a
 * temp name in the store and renamed into place, so a directory that exists is complete.
 */
async function installPinnedUv(store: BlobStore, wheel: UvWheel, env: NodeJS.ProcessEnv, progress?: LocateUvOptions['progress']): Promise<string> {
  const digest: Digest = `sha256:${wheel.sha256}`;
  const dir = join(store.root, 'tools', `uv-${wheel.sha256}`);
  const binary = join(dir, 'uv');
  if (await stat(binary).then((stats) => stats.isFile(), () => false)) return binary;
  const fetching = !(await store.hasIntact(digest));
  progress?.info?.(`no uv on PATH (nor $UV): ${fetching ? `fetching uv ${uvVersion} from PyPI (${(wheel.size / 2 ** 20).toFixed(1)} MiB)` : `using uv ${uvVersion} from the cache`}, kept at ${binary}`);
  const fetched = await fetchUvWheel(store, wheel, env);
  const temp = store.tempPath('uv');
  try {
    await mkdir(temp, { recursive: true });
    await extractUvBinary(fetched, join(temp, 'uv'), wheel.filename);
    await mkdir(join(store.root, 'tools'), { recursive: true });
    await rename(temp, dir).catch(async (error: NodeJS.ErrnoException) => {
      // Another uvimage extracted the same wheel first: its directory is as good as ours.
      if (error.code !== 'ENOTEMPTY' && error.code !== 'EEXIST') throw error;
    });
  } finally {
    await rm(temp, { recursive: true, force: true });
  }
  return binary;
}

/**
 * The wheel into the store, verified against the pinned sha256. The one place uv is fetched from
 * the network (the shared network layer can take it over here).
 */
async function fetchUvWheel(store: BlobStore, wheel: UvWheel, env: NodeJS.ProcessEnv): Promise<string> {
  const downloaded = await downloadWheel({ name: 'uv', url: wheel.url, filename: wheel.filename, hash: `sha256:${wheel.sha256}`, size: wheel.size }, { store, env });
  return downloaded.path;
}

/** `uv-<version>.data/scripts/uv` of the wheel at `wheelPath` to `target` (mode 0755), checked against RECORD. */
async function extractUvBinary(wheelPath: string, target: string, what: string): Promise<void> {
  const zip = await new Promise<ZipFile>((resolve, reject) => yauzl.open(wheelPath, { lazyEntries: true, autoClose: false }, (error, file) => (error ? reject(error) : resolve(file))));
  try {
    const entries = new Map<string, Entry>();
    await new Promise<void>((resolve, reject) => {
      zip.on('entry', (entry: Entry) => {
        entries.set(entry.fileName, entry);
        zip.readEntry();
      });
      zip.on('end', resolve);
      zip.on('error', reject);
      zip.readEntry();
    });
    const open = (entry: Entry) => new Promise<NodeJS.ReadableStream>((resolve, reject) => zip.openReadStream(entry, (error, stream) => (error ? reject(error) : resolve(stream))));
    const name = `uv-${uvVersion}.data/scripts/uv`;
    const recordName = [...entries.keys()].find((path) => /^uv-[^/]+\.dist-info\/RECORD$/.test(path));
    const binary = entries.get(name);
    if (!binary || !recordName) throw new UserError(`${what} has no ${binary ? 'RECORD' : name}; it is not the uv wheel uvimage pins`);
    const chunks: Buffer[] = [];
    for await (const chunk of await open(entries.get(recordName)!)) chunks.push(chunk as Buffer);
    const expected = parseRecord(Buffer.concat(chunks).toString('utf8'), what).find((entry) => entry.path === name)?.hash;
    const hash = createHash('sha256');
    const stream = await open(binary);
    stream.on('data', (chunk: Buffer) => hash.update(chunk));
    await pipeline(stream, createWriteStream(target, { mode: 0o755 }));
    const actual = `sha256=${hash.digest('base64url')}`;
    if (expected !== actual) throw new UserError(`${what}: ${name} does not match its RECORD hash (${expected ?? 'none'}, got ${actual})`);
    await chmod(target, 0o755);
  } catch (error) {
    throw error instanceof UserError ? error : new UserError(`${what} cannot be unpacked: ${describeError(error)}`);
  } finally {
    zip.close();
  }
}

/** What a uv run printed. */
export interface UvOutput {
  stdout: string;
  stderr: string;
}

/**
 * Runs uv to completion. A missing uv is one line saying which was looked for; a failing run
 * rejects with UvFailed, carrying what uv said, for the caller to report in its own words.
 */
export function runUv(args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; uv?: string; why: string }): Promise<UvOutput> {
  const env = options.env ?? process.env;
  const uv = options.uv ?? uvExecutable(env);
  return new Promise((resolve, reject) => {
    execFile(uv, args, { env, cwd: options.cwd, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (!error) return resolve({ stdout: String(stdout), stderr: String(stderr) });
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        return reject(new UserError(`${options.why} needs uv (uv ${args.slice(0, 2).join(' ')}); ${uv === 'uv' ? 'there is none on PATH' : `${uv} (from $UV) was not found`}`));
      }
      reject(new UvFailed(String(stderr), error.message));
    });
  });
}

/** uv ran and failed: `said` is its stderr. */
export class UvFailed extends Error {
  constructor(
    readonly said: string,
    message: string,
  ) {
    super(message);
  }

  /** What uv said as one line: its last `error:` with the `cause:` lines under it (hints left out), else its last lines. */
  lastLines(count = 3): string {
    const lines = this.said.trim().split('\n').map((line) => line.trim()).filter(Boolean);
    const at = lines.findLastIndex((line) => line.startsWith('error:'));
    if (at < 0) return lines.slice(-count).join(' | ') || this.message;
    const causes = lines.slice(at + 1).filter((line) => line.startsWith('cause:'));
    return [lines[at]!, ...causes].map((line) => line.replace(/^(error|cause):\s*/, '')).join(': ');
  }
}
