/**
 * The lock of a Debian package set: what the resolver chose for a suite, architecture and set of
 * root packages, down to each .deb's URL and SHA256. A build that has a lock follows it without
 * loading an index or resolving: it downloads (or finds in the store) exactly these files and
 * verifies each against its SHA256. When what the build asks for (suite, architecture, mirror,
 * roots, exclusions) is no longer what the lock was made for, checkLockMatches says what changed.
 *
 * The file is TOML, like uv.lock beside it: one [[package]] table per package gives reviewers a
 * line-per-field diff when a security update moves a version, and it is written sorted and
 * deterministic so an unchanged resolution rewrites the same bytes. It is written to a temp
 * file and renamed, so a reader never sees half a lock.
 */
import { randomBytes } from 'node:crypto';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { parse, stringify, TomlError } from 'smol-toml';
import { z } from 'zod';
import { UserError } from '../errors.js';
import type { Progress } from '../progress.js';
import type { BlobStore } from '../oci/store.js';
import { debUrl, loadPackageIndex, type DebDownload, type DebianPackage, type DebianSource } from './archive/index.js';
import { resolvePackages } from './resolver.js';

export interface DebianLockPackage {
  name: string;
  version: string;
  arch: string;
  /** Path in the archive (pool/main/…). */
  filename: string;
  url: string;
  /** SHA256 of the .deb, 64 hex digits. */
  sha256: string;
  size: number;
  /** The layer it goes in when not the one its name implies: `extra` for debian-packages and their closure. */
  layer?: 'extra';
}

export interface DebianLock {
  version: 1;
  suite: string;
  arch: string;
  mirror: string;
  securityMirror: string;
  /** The packages asked for, sorted. */
  roots: string[];
  /** The packages left out on purpose, sorted. */
  exclude: string[];
  /** Sorted by name. */
  packages: DebianLockPackage[];
}

/** What a build asks for, to compare with a lock. */
export interface DebianLockRequest {
  suite: string;
  arch: string;
  mirror: string;
  securityMirror?: string;
  roots: string[];
  exclude?: string[];
}

const sortedUnique = (values: readonly string[]) => [...new Set(values)].sort();

/** The lock of a resolution (resolvePackages' result). */
export function createDebianLock(
  source: DebianSource,
  roots: string[],
  packages: readonly Pick<DebianPackage, 'name' | 'version' | 'arch' | 'filename' | 'sha256' | 'size' | 'archiveUrl'>[],
  exclude: string[] = [],
  extra: ReadonlySet<string> = new Set(),
): DebianLock {
  return {
    version: 1,
    suite: source.suite,
    arch: source.arch,
    mirror: source.mirror,
    securityMirror: source.securityMirror,
    roots: sortedUnique(roots),
    exclude: sortedUnique(exclude),
    packages: [...packages]
      .map((pkg) => ({
        name: pkg.name,
        version: pkg.version,
        arch: pkg.arch,
        filename: pkg.filename,
        url: debUrl(pkg),
        sha256: pkg.sha256,
        size: pkg.size,
        ...(extra.has(pkg.name) ? { layer: 'extra' as const } : {}),
      }))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
  };
}

/** The locked packages as fetchDeb/fetchDebs arguments. */
export function lockedDownloads(lock: DebianLock): DebDownload[] {
  return lock.packages.map((pkg) => ({ name: pkg.name, version: pkg.version, sha256: pkg.sha256, size: pkg.size, url: pkg.url }));
}

export function formatDebianLock(lock: DebianLock): string {
  const document = {
    version: lock.version,
    suite: lock.suite,
    arch: lock.arch,
    mirror: lock.mirror,
    'security-mirror': lock.securityMirror,
    roots: lock.roots,
    exclude: lock.exclude,
    package: lock.packages.map((pkg) => ({
      name: pkg.name,
      version: pkg.version,
      arch: pkg.arch,
      filename: pkg.filename,
      url: pkg.url,
      sha256: pkg.sha256,
      size: pkg.size,
      ...(pkg.layer ? { layer: pkg.layer } : {}),
    })),
  };
  return `# Written by uvimage: the Debian packages this image is built from. Do not edit by hand.\n${stringify(document)}\n`;
}

const lockSchema = z.object({
  version: z.number(),
  suite: z.string(),
  arch: z.string(),
  mirror: z.string(),
  'security-mirror': z.string(),
  roots: z.array(z.string()),
  exclude: z.array(z.string()).default([]),
  package: z
    .array(
      z.object({
        name: z.string(),
        version: z.string(),
        arch: z.string(),
        filename: z.string(),
        url: z.string(),
        sha256: z.string().regex(/^[a-f0-9]{64}$/, 'not a SHA256'),
        size: z.number().int().nonnegative(),
        layer: z.literal('extra').optional(),
      }),
    )
    .default([]),
});

export function parseDebianLock(text: string, where: string): DebianLock {
  let raw: unknown;
  try {
    raw = parse(text);
  } catch (error) {
    const detail = error instanceof TomlError ? error.message.split('\n')[0] : String(error);
    throw new UserError(`${where}: not a valid lock file: ${detail}`);
  }
  const version = (raw as { version?: unknown }).version;
  if (typeof version === 'number' && version > 1) {
    throw new UserError(`${where}: lock version ${version} is newer than this uvimage understands (1); upgrade uvimage`);
  }
  const result = lockSchema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new UserError(`${where}: not a valid lock file: ${issue.path.join('.') || '(top)'}: ${issue.message}`);
  }
  const data = result.data;
  if (data.version !== 1) throw new UserError(`${where}: unknown lock version ${data.version}`);
  return {
    version: 1,
    suite: data.suite,
    arch: data.arch,
    mirror: data.mirror,
    securityMirror: data['security-mirror'],
    roots: data.roots,
    exclude: data.exclude,
    packages: data.package,
  };
}

/** Writes a lock atomically (temp file in the same directory, then rename). */
export async function writeDebianLock(path: string, lock: DebianLock): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`);
  try {
    await writeFile(temp, formatDebianLock(lock));
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw new UserError(`cannot write ${path}: ${(error as Error).message}`);
  }
}

/** Reads a lock; undefined when there is no such file. */
export async function readDebianLock(path: string): Promise<DebianLock | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new UserError(`cannot read ${path}: ${(error as Error).message}`);
  }
  return parseDebianLock(text, path);
}

/**
 * Throws a UserError listing what differs between a lock and what a build asks for. The mirror
 * counts: a lock names its URLs, and another mirror (above all another snapshot) is another ask.
 */
export function checkLockMatches(lock: DebianLock, request: DebianLockRequest, where = 'the Debian lock'): void {
  const changes: string[] = [];
  if (lock.suite !== request.suite) changes.push(`suite ${lock.suite} -> ${request.suite}`);
  if (lock.arch !== request.arch) changes.push(`arch ${lock.arch} -> ${request.arch}`);
  if (lock.mirror !== request.mirror) changes.push(`mirror ${lock.mirror} -> ${request.mirror}`);
  if (request.securityMirror !== undefined && lock.securityMirror !== request.securityMirror) {
    changes.push(`security mirror ${lock.securityMirror} -> ${request.securityMirror}`);
  }
  const setChange = (what: string, locked: readonly string[], asked: readonly string[]) => {
    const lockedSet = new Set(locked);
    const askedSet = new Set(asked);
    const added = [...askedSet].filter((name) => !lockedSet.has(name)).sort();
    const removed = [...lockedSet].filter((name) => !askedSet.has(name)).sort();
    const parts = [...added.map((name) => `+${name}`), ...removed.map((name) => `-${name}`)];
    if (parts.length > 0) changes.push(`${what} ${parts.join(' ')}`);
  };
  setChange('packages', lock.roots, request.roots);
  setChange('excluded', lock.exclude, request.exclude ?? []);
  if (changes.length > 0) {
    throw new UserError(`${where} no longer matches what this build asks for (${changes.join('; ')}); lock again (uvimage lock)`);
  }
}

/**
 * `uvimage lock` for a Debian package set: loads the index (verified), resolves the roots and
 * returns the lock to write with writeDebianLock.
 */
export async function lockDebianPackages(
  source: DebianSource,
  store: BlobStore,
  roots: string[],
  options: { exclude?: string[]; offline?: boolean; progress?: Progress } = {},
): Promise<DebianLock> {
  const index = await loadPackageIndex(source, store, { offline: options.offline, progress: options.progress });
  const packages = resolvePackages(index, roots, { exclude: options.exclude });
  return createDebianLock(source, roots, packages, options.exclude ?? []);
}

/**
 * What a build that has a lock installs: the lock's packages, after checking that the lock is
 * still for what the build asks (checkLockMatches). No index is loaded and nothing is resolved;
 * pass the result to fetchDebs, which verifies every .deb against the locked SHA256.
 */
export function packagesFromLock(lock: DebianLock, source: DebianSource, roots: string[], exclude: string[] = [], where?: string): DebDownload[] {
  checkLockMatches(lock, { suite: source.suite, arch: source.arch, mirror: source.mirror, securityMirror: source.securityMirror, roots, exclude }, where);
  return lockedDownloads(lock);
}
