/**
 * The Debian repository client: a suite's package index, verified from the archive's signature
 * down to every .deb.
 *
 *   dists/<suite>/InRelease       clearsigned by a pinned Debian archive key (keys.ts); Suite or
 *                                 Codename must be the suite asked for; Valid-Until must not have
 *                                 passed (except on a pinned snapshot mirror)
 *   main/binary-<arch>/Packages.xz  its SHA256 taken from the verified InRelease, checked before a
 *                                 single byte is parsed (.gz or plain when there is no .xz)
 *   pool/.../<name>.deb           its SHA256 taken from the verified Packages stanza
 *
 * The suite's security updates (<suite>-security on the security mirror) are merged in.
 *
 * Caching: everything lives in the BlobStore by digest, and only verified bytes get there: an
 * InRelease (and its signed text, which later reads parse without verifying again) is stored
 * after its signature checks out, Packages and .debs are streamed into the
 * store against their expected digest (a mismatch stores nothing). A store record per archive
 * and suite remembers the last verified InRelease; it is revalidated (a conditional GET) at most
 * once per TTL (default 1 hour, UVIMAGE_DEBIAN_INDEX_TTL_SECONDS), and offline mode uses it
 * without any request. The Packages blob named by a cached InRelease is never downloaded again,
 * nor is a .deb whose digest is in the store.
 */
import { createGunzip } from 'node:zlib';
import type { Transform, Readable } from 'node:stream';
import type * as OpenPGP from 'openpgp';
import { createXzDecompressor } from './xz.js';
import type { Progress } from '../progress.js';
import { UserError, describeError } from '../errors.js';
import type { Digest } from '../oci/digest.js';
import { parseArchitecture, type Architecture } from '../facts/architectures.js';
import { debianSuites, defaultDebianSuite, parseDebianSuite, type DebianSuite } from '../facts/debian-suites.js';
import { CorruptBlobError, type BlobStore } from '../oci/store.js';
import { parseRelations, parseStanza, type Stanza } from './control.js';
import { downloadToStore } from '../net/download.js';
import { HttpStatusError, requestWith, statusError, type HttpRequest } from '../net/request.js';
import { header, readBody } from '../net/transport.js';
import { debianArchiveKeys } from './keys.js';
import { compareDebianVersions, versionSatisfies, type VersionRelation } from './version.js';


export const defaultDebianMirror = 'https://deb.debian.org/debian';
export const defaultDebianSecurityMirror = 'https://security.debian.org/debian-security';

export interface DebianSource {
  /** Base URL of the Debian archive, no trailing slash. */
  mirror: string;
  /** Base URL of the security archive, no trailing slash. */
  securityMirror: string;
  suite: DebianSuite;
  arch: Architecture;
  /** A pinned snapshot (a timestamped snapshot.debian.org-style URL): Valid-Until is not enforced. */
  snapshot?: boolean;
}

/** `…/archive/<archive>/<YYYYMMDDTHHMMSSZ>` — snapshot.debian.org's URL shape for a point in time. */
const snapshotPattern = /\/archive\/([^/]+)\/(\d{8}T\d{6}Z)$/;

export function isSnapshotMirror(url: string): boolean {
  return snapshotPattern.test(normalizeMirror(url, 'mirror'));
}

function normalizeMirror(url: string, what: string): string {
  const trimmed = url.trim().replace(/\/+$/, '');
  let parsed: URL;
  try {
    parsed = new URL(trimmed);
  } catch {
    throw new UserError(`${what} ${JSON.stringify(url)} is not a URL`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new UserError(`${what} ${JSON.stringify(url)} must be an http:// or https:// URL`);
  }
  return trimmed;
}

/**
 * The source to use, from (highest first) explicit options (flags), the environment
 * (UVIMAGE_DEBIAN_MIRROR, UVIMAGE_DEBIAN_SECURITY_MIRROR), `config` (pyproject's
 * [tool.uvimage]) and the defaults. A mirror of snapshot.debian.org's timestamped shape
 * (https://snapshot.debian.org/archive/debian/20251101T000000Z/) is a pinned snapshot; its
 * security mirror defaults to the same point in time of the debian-security archive.
 */
export function debianSourceFrom(options: {
  suite?: string;
  arch?: string;
  mirror?: string;
  securityMirror?: string;
  config?: { suite?: string; arch?: string; mirror?: string; securityMirror?: string };
  env?: NodeJS.ProcessEnv;
}): DebianSource {
  const env = options.env ?? process.env;
  const pick = (...values: (string | undefined)[]) => values.find((value) => value !== undefined && value.trim() !== '');
  const suite = parseDebianSuite(pick(options.suite, options.config?.suite) ?? defaultDebianSuite);
  const arch = parseArchitecture(pick(options.arch, options.config?.arch) ?? 'amd64', 'Debian architecture');
  const mirror = normalizeMirror(pick(options.mirror, env.UVIMAGE_DEBIAN_MIRROR, options.config?.mirror) ?? defaultDebianMirror, 'Debian mirror');
  const snapshot = snapshotPattern.exec(mirror);
  const explicitSecurity = pick(options.securityMirror, env.UVIMAGE_DEBIAN_SECURITY_MIRROR, options.config?.securityMirror);
  let securityMirror: string;
  if (explicitSecurity) securityMirror = normalizeMirror(explicitSecurity, 'Debian security mirror');
  else if (snapshot) securityMirror = mirror.replace(snapshotPattern, `/archive/debian-security/${snapshot[2]}`);
  else securityMirror = defaultDebianSecurityMirror;
  const source: DebianSource = { mirror, securityMirror, suite, arch };
  if (snapshot) source.snapshot = true;
  return source;
}

/** A binary package from a Packages index. */
export interface DebianPackage {
  name: string;
  version: string;
  arch: string;
  /** Path of the .deb relative to archiveUrl (pool/main/…). */
  filename: string;
  /** SHA256 of the .deb, 64 hex digits. */
  sha256: string;
  size: number;
  /** Raw relationship fields ('' when absent). */
  depends: string;
  preDepends: string;
  provides: string;
  source?: string;
  installedSize?: number;
  multiArch?: string;
  priority?: string;
  section?: string;
  essential?: boolean;
  /** Raw Conflicts and Breaks fields, when present (the resolver keeps such pairs apart). */
  conflicts?: string;
  breaks?: string;
  /** The Packages stanza as the archive wrote it (for /var/lib/dpkg/status.d). */
  stanza: Stanza;
  /** Base URL of the archive it came from (mirror or security mirror). */
  archiveUrl: string;
}

/** The download URL of a package. */
export function debUrl(pkg: Pick<DebianPackage, 'archiveUrl' | 'filename'>): string {
  return `${pkg.archiveUrl}/${pkg.filename}`;
}

export interface Provider {
  pkg: DebianPackage;
  /** The version of a versioned provide (`Provides: foo (= 1.2)`); undefined for a plain one. */
  version?: string;
}

/**
 * A suite's packages for one architecture (arch-specific and Architecture: all), main and
 * security merged. A name may have several versions (main's and a security update's); get()
 * answers the newest.
 */
export class PackageIndex {
  private readonly byName = new Map<string, DebianPackage[]>();
  private readonly provided = new Map<string, Provider[]>();

  constructor(packages: Iterable<DebianPackage>, readonly description = 'index') {
    for (const pkg of packages) this.add(pkg);
    for (const list of this.byName.values()) list.sort((a, b) => compareDebianVersions(b.version, a.version));
    for (const list of this.provided.values()) {
      list.sort((a, b) => (a.pkg.name < b.pkg.name ? -1 : a.pkg.name > b.pkg.name ? 1 : compareDebianVersions(b.pkg.version, a.pkg.version)));
    }
  }

  private add(pkg: DebianPackage): void {
    const list = this.byName.get(pkg.name);
    if (list) {
      // The same version from two archives (main and security): the first one wins.
      if (list.some((other) => other.version === pkg.version)) return;
      list.push(pkg);
    } else {
      this.byName.set(pkg.name, [pkg]);
    }
    let groups;
    try {
      groups = parseRelations(pkg.provides);
    } catch {
      return; // an unreadable Provides only hides that package as a provider
    }
    for (const group of groups) {
      for (const relation of group) {
        const entry: Provider = { pkg };
        if (relation.relation === '=' && relation.version) entry.version = relation.version;
        const providers = this.provided.get(relation.name);
        if (providers) providers.push(entry);
        else this.provided.set(relation.name, [entry]);
      }
    }
  }

  /** The newest version of a real package. */
  get(name: string): DebianPackage | undefined {
    return this.byName.get(name)?.[0];
  }

  /** Every version of a real package, newest first. */
  versions(name: string): readonly DebianPackage[] {
    return this.byName.get(name) ?? [];
  }

  /** Packages that declare `Provides: name`, sorted by package name, newest version first. */
  providers(name: string): readonly Provider[] {
    return this.provided.get(name) ?? [];
  }

  /** The newest version of every package, sorted by name. */
  all(): DebianPackage[] {
    return [...this.byName.keys()].sort().map((name) => this.byName.get(name)![0]!);
  }

  get size(): number {
    return this.byName.size;
  }
}

/** Whether a relation `name (op version)` is satisfied by a package version. */
export function relationSatisfiedBy(relation: { relation?: VersionRelation; version?: string }, version: string | undefined): boolean {
  if (!relation.relation) return true;
  if (version === undefined) return false;
  return versionSatisfies(version, relation.relation, relation.version!);
}

/** How the archive is spoken to: src/net's retries, proxies and timeouts, with these knobs. */
export type ArchiveHttpOptions = Pick<HttpRequest, 'onRequest' | 'retry' | 'env'>;

export interface LoadIndexOptions extends ArchiveHttpOptions {
  /** Use the cache only; no request is made, a missing index is an error. */
  offline?: boolean;
  progress?: Progress;
  /** How long a verified InRelease is trusted before it is revalidated; default UVIMAGE_DEBIAN_INDEX_TTL_SECONDS, else 3600. */
  ttlSeconds?: number;
  env?: NodeJS.ProcessEnv;
  /** The clock (tests): when Valid-Until and the TTL are judged. */
  now?: () => number;
}

const defaultTtlSeconds = 3600;
const inReleaseLimit = 8 * 1024 * 1024;
/** An InRelease is ~150 KB: one that takes minutes is stuck, not slow. */
const inReleaseTimeoutMs = 120_000;

function indexTtlSeconds(options: LoadIndexOptions): number {
  if (options.ttlSeconds !== undefined) return options.ttlSeconds;
  const raw = (options.env ?? process.env).UVIMAGE_DEBIAN_INDEX_TTL_SECONDS;
  if (raw === undefined || raw === '') return defaultTtlSeconds;
  if (!/^\d+$/.test(raw.trim())) throw new UserError(`UVIMAGE_DEBIAN_INDEX_TTL_SECONDS must be a whole number of seconds, got ${JSON.stringify(raw)}`);
  return Number(raw.trim());
}

/** One archive a suite is read from: the main archive or the security archive. */
interface Archive {
  url: string;
  /** The distribution directory under dists/: `trixie` or `trixie-security`. */
  dist: string;
}

/** The store record of an archive's last verified InRelease. */
interface ReleaseRecord {
  /** The InRelease as fetched (kept for conditional requests). */
  digest: Digest;
  /**
   * Its signed text, stored once the signature checked out: a cached InRelease is read from it
   * without verifying again, so a rebuild within the TTL never loads openpgp (~0.15 s). Records
   * written before this field existed are verified again and given one.
   */
  signedText?: Digest;
  /** When it was last fetched or revalidated, ms since the epoch. */
  checkedAt: number;
  lastModified?: string;
  etag?: string;
}

/**
 * Loads the package index of a suite and architecture: main and security, merged. Verified
 * from the signature down; cached as described at the top of this file.
 */
export async function loadPackageIndex(source: DebianSource, store: BlobStore, options: LoadIndexOptions = {}): Promise<PackageIndex> {
  const files = await loadPackagesFiles(source, store, options);
  const lists = await Promise.all(files.map((file) => parseArchivePackages(file, store)));
  return new PackageIndex(lists.flat(), `${source.suite}/${source.arch}`);
}

/** The verified Packages files of the suite and its security suite, in the store, not parsed. */
interface PackagesFile {
  archive: Archive;
  digest: Digest;
  compression: Compression;
}

async function loadPackagesFiles(source: DebianSource, store: BlobStore, options: LoadIndexOptions): Promise<PackagesFile[]> {
  const archives: Archive[] = [
    { url: source.mirror, dist: source.suite },
    { url: source.securityMirror, dist: debianSuites[source.suite].securitySuite },
  ];
  // Both archives are loaded side by side and both are waited for, so nothing is still being
  // written to the store when a failure is reported.
  const results = await Promise.allSettled(
    archives.map(async (archive) => {
      const release = await loadRelease(archive, source, store, options);
      return { archive, ...(await ensurePackagesFile(archive, source, release, store, options)) };
    }),
  );
  const failed = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
  if (failed) throw failed.reason;
  return results.map((result) => (result as PromiseFulfilledResult<PackagesFile>).value);
}

/**
 * What the index of a source is, without parsing it: the digests of its verified Packages files
 * (InRelease revalidated at most once per TTL). Work derived from an index — a resolved package
 * list — can be cached under this key, and a build whose index did not move skips the seconds a
 * Packages file takes to decompress and parse.
 */
export async function packageIndexIdentity(source: DebianSource, store: BlobStore, options: LoadIndexOptions = {}): Promise<string> {
  const files = await loadPackagesFiles(source, store, options);
  return files.map((file) => `${file.archive.url}/dists/${file.archive.dist}@${file.digest}`).join(' ');
}

async function parseArchivePackages({ archive, digest, compression }: PackagesFile, store: BlobStore): Promise<DebianPackage[]> {
  // Parsing a main Packages file takes seconds; a process that loads the same index again (a
  // multi-platform build, a lock check) reuses it. Packages are immutable once parsed.
  const key = `${archive.url}|${digest}`;
  let parsed = parsedPackages.get(key);
  if (!parsed) {
    parsed = parsePackagesBlob(store, digest, compression, archive.url, `${archive.url}/dists/${archive.dist}`);
    parsedPackages.set(key, parsed);
    parsed.catch(() => parsedPackages.delete(key));
    while (parsedPackages.size > maxParsedIndexes) parsedPackages.delete(parsedPackages.keys().next().value!);
  }
  return parsed;
}

/** Parsed Packages files of this process, by archive URL and digest (oldest first). */
const parsedPackages = new Map<string, Promise<DebianPackage[]>>();
const maxParsedIndexes = 8;

/** The fields of a verified InRelease uvimage uses. */
export interface ReleaseInfo {
  suite?: string;
  codename?: string;
  date?: Date;
  validUntil?: Date;
  architectures: string[];
  acquireByHash: boolean;
  /** path (relative to dists/<dist>/) -> SHA256 and size. */
  sha256: Map<string, { sha256: string; size: number }>;
}

export function parseRelease(text: string): ReleaseInfo {
  const fields = parseStanza(text);
  const sha256 = new Map<string, { sha256: string; size: number }>();
  for (const line of (fields.SHA256 ?? '').split('\n')) {
    const parts = line.trim().split(/\s+/);
    if (parts.length !== 3 || !/^[a-f0-9]{64}$/.test(parts[0]!)) continue;
    sha256.set(parts[2]!, { sha256: parts[0]!, size: Number(parts[1]) });
  }
  const date = (value: string | undefined) => {
    if (!value) return undefined;
    const parsed = new Date(value);
    return Number.isNaN(parsed.getTime()) ? undefined : parsed;
  };
  const info: ReleaseInfo = {
    architectures: (fields.Architectures ?? '').split(/\s+/).filter(Boolean),
    acquireByHash: (fields['Acquire-By-Hash'] ?? '').toLowerCase() === 'yes',
    sha256,
  };
  if (fields.Suite) info.suite = fields.Suite;
  if (fields.Codename) info.codename = fields.Codename;
  const when = date(fields.Date);
  if (when) info.date = when;
  const validUntil = date(fields['Valid-Until']);
  if (validUntil) info.validUntil = validUntil;
  return info;
}

/**
 * Checks a verified InRelease against what was asked: its Suite or Codename is `dist`, it lists
 * the architecture, and it has not expired (Valid-Until), unless the mirror is a pinned snapshot,
 * where an old Valid-Until is expected and the point in time is the user's choice.
 */
export function checkRelease(release: ReleaseInfo, expected: { dist: string; arch: string; now: number; snapshot: boolean; url: string }): void {
  if (release.suite !== expected.dist && release.codename !== expected.dist) {
    throw new UserError(
      `${expected.url}: InRelease is for suite ${release.suite ?? '?'} (codename ${release.codename ?? '?'}), not ${expected.dist}`,
    );
  }
  if (release.architectures.length > 0 && !release.architectures.includes(expected.arch)) {
    throw new UserError(`${expected.url}: suite ${expected.dist} has no ${expected.arch} packages (it has ${release.architectures.join(', ')})`);
  }
  if (!expected.snapshot && release.validUntil && release.validUntil.getTime() < expected.now) {
    throw new UserError(
      `${expected.url}: the InRelease of suite ${expected.dist} expired on ${release.validUntil.toISOString()} (Valid-Until); the mirror is out of date or something replays old metadata`,
    );
  }
}

let trustedKeys: Promise<OpenPGP.PublicKey[]> | undefined;

/**
 * openpgp, loaded on first use: only a build that (re)validates an InRelease needs it, and a
 * rebuild within the index's TTL or from a lock should not pay for loading it.
 */
function loadOpenpgp(): Promise<typeof OpenPGP> {
  return import('openpgp');
}

/** The pinned archive keys, each checked against its pinned fingerprint. */
export function archiveKeys(): Promise<OpenPGP.PublicKey[]> {
  trustedKeys ??= Promise.all(
    debianArchiveKeys.map(async (entry) => {
      const openpgp = await loadOpenpgp();
      const key = await openpgp.readKey({ armoredKey: entry.armored });
      const fingerprint = key.getFingerprint().toUpperCase();
      if (fingerprint !== entry.fingerprint) {
        throw new Error(`embedded Debian archive key ${entry.name} has fingerprint ${fingerprint}, pinned ${entry.fingerprint}`);
      }
      return key;
    }),
  );
  return trustedKeys;
}

/**
 * Verifies a clearsigned InRelease and returns its signed text. At least one signature must be
 * good and made by a pinned Debian archive key; signatures by other keys are ignored (apt does
 * the same: an archive is often signed by an old release's key too).
 */
export async function verifyInRelease(bytes: Uint8Array | string, url: string): Promise<string> {
  const text = typeof bytes === 'string' ? bytes : Buffer.from(bytes).toString('utf8');
  const openpgp = await loadOpenpgp();
  let message;
  try {
    message = await openpgp.readCleartextMessage({ cleartextMessage: text });
  } catch (error) {
    throw new UserError(`${url}: not a clearsigned InRelease (${describeError(error)})`);
  }
  const keys = await archiveKeys();
  const result = await openpgp.verify({ message, verificationKeys: keys, expectSigned: false });
  const seen: string[] = [];
  const failures: string[] = [];
  for (const signature of result.signatures) {
    const keyId = signature.keyID.toHex().toUpperCase();
    seen.push(keyId);
    try {
      await signature.verified;
      return result.data;
    } catch (error) {
      failures.push(`${keyId}: ${describeError(error)}`);
    }
  }
  const known = failures.filter((failure) => !/Could not find signing key/i.test(failure));
  const why = known.length > 0 ? `bad signature (${known.join('; ')})` : seen.length > 0 ? `signed only by keys uvimage does not trust (${seen.join(', ')})` : 'no signature';
  throw new UserError(`${url}: InRelease signature verification failed: ${why}`);
}

async function loadRelease(archive: Archive, source: DebianSource, store: BlobStore, options: LoadIndexOptions): Promise<ReleaseInfo> {
  const url = `${archive.url}/dists/${archive.dist}/InRelease`;
  const key = `${archive.url}|${archive.dist}`;
  const now = (options.now ?? Date.now)();
  const expected = { dist: archive.dist, arch: source.arch, now, snapshot: source.snapshot === true, url };
  const record = await store.readRecord<ReleaseRecord>('debian-inrelease', key);
  const cached = record && (await store.has(record.digest)) ? record : undefined;

  /** A cached InRelease's signed text: stored once verified; when missing or damaged, verified again and stored. */
  const signedTextOf = async (rec: ReleaseRecord): Promise<{ text: string; record: ReleaseRecord }> => {
    const stored =
      rec.signedText && (await store.has(rec.signedText))
        ? await store.readBytes(rec.signedText).catch((error: unknown) => {
            if (error instanceof CorruptBlobError) return undefined;
            throw error;
          })
        : undefined;
    if (stored) return { text: stored.toString('utf8'), record: rec };
    const text = await verifyInRelease(await store.readBytes(rec.digest), url);
    const { digest: signedText } = await store.putBytes(Buffer.from(text, 'utf8'));
    return { text, record: { ...rec, signedText } };
  };
  const fromCache = async (rec: ReleaseRecord, checkedAt = rec.checkedAt): Promise<ReleaseInfo> => {
    const { text, record: next } = await signedTextOf(rec);
    const release = parseRelease(text);
    checkRelease(release, expected);
    if (next !== rec || checkedAt !== rec.checkedAt) await store.writeRecord('debian-inrelease', key, { ...next, checkedAt } satisfies ReleaseRecord);
    return release;
  };

  if (options.offline) {
    if (!cached) throw new UserError(`offline: no cached index of ${archive.dist} from ${archive.url}; run once without offline mode`);
    return fromCache(cached);
  }
  const ttlMs = indexTtlSeconds(options) * 1000;
  // A check "in the future" (the clock went back) does not count as fresh.
  if (cached && now >= cached.checkedAt && now - cached.checkedAt < ttlMs) {
    try {
      return await fromCache(cached);
    } catch {
      // expired (Valid-Until) or unreadable: fetch it again below
    }
  }

  const headers: Record<string, string> = {};
  if (cached?.lastModified) headers['if-modified-since'] = cached.lastModified;
  if (cached?.etag) headers['if-none-match'] = cached.etag;
  const { body, lastModified, etag } = await requestWith(
    { url, headers, timeoutMs: inReleaseTimeoutMs, onRequest: options.onRequest, retry: options.retry, env: options.env },
    async (response): Promise<{ body?: Buffer; lastModified?: string; etag?: string }> => {
      if (response.status === 304) return {};
      if (response.status !== 200) throw await statusError(response);
      return { body: await readBody(response, inReleaseLimit), lastModified: header(response, 'last-modified'), etag: header(response, 'etag') };
    },
  );
  if (!body && cached) {
    // 304: the cached InRelease is current.
    return fromCache(cached, now);
  }
  if (!body) throw new UserError(`GET ${url}: 304 Not Modified to an unconditional request`);
  // Verified and checked before anything is stored.
  const text = await verifyInRelease(body, url);
  const release = parseRelease(text);
  checkRelease(release, expected);
  const { digest } = await store.putBytes(body);
  const { digest: signedText } = await store.putBytes(Buffer.from(text, 'utf8'));
  const next: ReleaseRecord = { digest, signedText, checkedAt: now };
  if (lastModified) next.lastModified = lastModified;
  if (etag) next.etag = etag;
  await store.writeRecord('debian-inrelease', key, next);
  return release;
}

type Compression = 'xz' | 'gz' | 'none';

async function ensurePackagesFile(
  archive: Archive,
  source: DebianSource,
  release: ReleaseInfo,
  store: BlobStore,
  options: LoadIndexOptions,
): Promise<{ digest: Digest; compression: Compression }> {
  const base = `main/binary-${source.arch}/Packages`;
  const candidates: [string, Compression][] = [
    [`${base}.xz`, 'xz'],
    [`${base}.gz`, 'gz'],
    [base, 'none'],
  ];
  const found = candidates.find(([path]) => release.sha256.has(path));
  const distUrl = `${archive.url}/dists/${archive.dist}`;
  if (!found) throw new UserError(`${distUrl}/InRelease lists no SHA256 for ${base}.xz, .gz or plain`);
  const [path, compression] = found;
  const entry = release.sha256.get(path)!;
  const digest: Digest = `sha256:${entry.sha256}`;
  if (await store.has(digest)) return { digest, compression };
  if (options.offline) throw new UserError(`offline: ${distUrl}/${path} is not in the cache; run once without offline mode`);

  const direct = `${distUrl}/${path}`;
  // by-hash names the exact file the InRelease describes, so a mirror updating between our two
  // requests cannot hand us a newer Packages than the InRelease we verified.
  const urls = release.acquireByHash ? [`${distUrl}/${path.replace(/[^/]+$/, '')}by-hash/SHA256/${entry.sha256}`, direct] : [direct];
  for (const [i, url] of urls.entries()) {
    try {
      await downloadVerified(url, digest, entry.size, `${archive.dist} ${path} from ${url}`, store, options);
      return { digest, compression };
    } catch (error) {
      if (i < urls.length - 1 && error instanceof HttpStatusError && error.status === 404) continue;
      throw error;
    }
  }
  throw new Error('unreachable');
}

/** Streams a URL into the store against an expected digest (nothing is stored on a mismatch). */
async function downloadVerified(
  url: string,
  digest: Digest,
  size: number | undefined,
  what: string,
  store: BlobStore,
  options: ArchiveHttpOptions & { progress?: Progress },
): Promise<void> {
  const progress = options.progress;
  const id = `debian:${url}`;
  progress?.start(id, `downloading ${url.slice(url.lastIndexOf('/') + 1)}`, size);
  try {
    await downloadToStore({ url, onRequest: options.onRequest, retry: options.retry, env: options.env }, { store, digest, what, onBytes: (bytes) => progress?.advance(id, bytes) });
  } catch (error) {
    progress?.finish(id, 'failed');
    throw error;
  }
  progress?.finish(id);
}

function decompressor(compression: Compression): Transform | undefined {
  if (compression === 'gz') return createGunzip();
  if (compression === 'xz') return createXzDecompressor();
  return undefined;
}

/**
 * Parses a verified Packages blob. The decompressed file (~55 MB for trixie/amd64) is split into
 * stanzas at the byte level as it streams out of the decompressor, and each stanza is decoded on
 * its own, so no giant string is built, parsing overlaps decompression, and a package keeps only
 * its own stanza's text.
 */
async function parsePackagesBlob(store: BlobStore, digest: Digest, compression: Compression, archiveUrl: string, what: string): Promise<DebianPackage[]> {
  const raw: Readable = store.openRead(digest);
  const unpack = decompressor(compression);
  const stream: Readable = unpack ? raw.pipe(unpack) : raw;
  if (unpack) raw.on('error', (error) => unpack.destroy(error));
  const packages: DebianPackage[] = [];
  const take = (bytes: Buffer, start: number, end: number) => {
    if (end <= start) return;
    const pkg = packageFromStanza(bytes.toString('utf8', start, end), archiveUrl);
    if (pkg) packages.push(pkg);
  };
  let rest: Buffer = Buffer.alloc(0);
  try {
    for await (const chunk of stream) {
      const bytes: Buffer = rest.length > 0 ? Buffer.concat([rest, chunk as Buffer]) : (chunk as Buffer);
      let start = 0;
      for (;;) {
        const end = bytes.indexOf(stanzaSeparator, start);
        if (end < 0) break;
        take(bytes, start, end);
        start = end + 2;
      }
      rest = Buffer.from(bytes.subarray(start));
    }
  } catch (error) {
    throw new UserError(`${what}: cannot read the Packages index: ${describeError(error)}`);
  }
  take(rest, 0, rest.length);
  return packages;
}

const stanzaSeparator = Buffer.from('\n\n');

/**
 * A package whose full stanza is parsed only when asked for (an index has ~65 000 of them).
 * `stanza` is an own enumerable getter, so `{ ...pkg }` and JSON.stringify see it like any field.
 */
class IndexedPackage implements DebianPackage {
  name = '';
  version = '';
  arch = '';
  filename = '';
  sha256 = '';
  size = 0;
  depends = '';
  preDepends = '';
  provides = '';
  source?: string;
  installedSize?: number;
  multiArch?: string;
  priority?: string;
  section?: string;
  essential?: boolean;
  conflicts?: string;
  breaks?: string;
  declare readonly stanza: Stanza;
  #text: string;
  #parsed: Stanza | undefined;

  constructor(text: string, readonly archiveUrl: string) {
    this.#text = text;
    Object.defineProperty(this, 'stanza', stanzaProperty);
  }

  static parsedStanza(pkg: IndexedPackage): Stanza {
    return (pkg.#parsed ??= parseStanza(pkg.#text));
  }
}

/** One accessor shared by every IndexedPackage (so they share a hidden class). */
const stanzaProperty: PropertyDescriptor = {
  enumerable: true,
  configurable: true,
  get(this: IndexedPackage) {
    return IndexedPackage.parsedStanza(this);
  },
};

/** The Packages fields an index keeps parsed, by the first letter of their name. */
const indexedFields: Record<string, string[]> = {
  P: ['Package', 'Pre-Depends', 'Provides', 'Priority'],
  V: ['Version'],
  A: ['Architecture'],
  F: ['Filename'],
  S: ['SHA256', 'Size', 'Source', 'Section'],
  D: ['Depends'],
  C: ['Conflicts'],
  B: ['Breaks'],
  I: ['Installed-Size'],
  M: ['Multi-Arch'],
  E: ['Essential'],
};

function packageFromStanza(text: string, archiveUrl: string): DebianPackage | undefined {
  const trimmed = text.charCodeAt(0) === 10 ? text.replace(/^\n+/, '') : text;
  if (!trimmed) return undefined;
  const pkg = new IndexedPackage(trimmed, archiveUrl);
  let start = 0;
  while (start < trimmed.length) {
    let end = trimmed.indexOf('\n', start);
    if (end < 0) end = trimmed.length;
    const candidates = indexedFields[trimmed[start]!];
    if (candidates) {
      for (const field of candidates) {
        if (trimmed.charCodeAt(start + field.length) !== 58 /* : */ || !trimmed.startsWith(field, start)) continue;
        const value = trimmed.slice(start + field.length + 1, end).trim();
        switch (field) {
          case 'Package':
            pkg.name = value;
            break;
          case 'Version':
            pkg.version = value;
            break;
          case 'Architecture':
            pkg.arch = value;
            break;
          case 'Filename':
            pkg.filename = value;
            break;
          case 'SHA256':
            pkg.sha256 = value.toLowerCase();
            break;
          case 'Size':
            pkg.size = Number(value);
            break;
          case 'Depends':
            pkg.depends = value;
            break;
          case 'Pre-Depends':
            pkg.preDepends = value;
            break;
          case 'Provides':
            pkg.provides = value;
            break;
          case 'Source':
            pkg.source = value;
            break;
          case 'Installed-Size':
            pkg.installedSize = Number(value);
            break;
          case 'Multi-Arch':
            pkg.multiArch = value;
            break;
          case 'Priority':
            pkg.priority = value;
            break;
          case 'Section':
            pkg.section = value;
            break;
          case 'Essential':
            pkg.essential = value.toLowerCase() === 'yes';
            break;
          case 'Conflicts':
            pkg.conflicts = value;
            break;
          case 'Breaks':
            pkg.breaks = value;
            break;
        }
        break;
      }
    }
    start = end + 1;
  }
  // A stanza without a verifiable .deb is of no use to us.
  if (!pkg.name || !pkg.version || !pkg.filename || pkg.sha256.length !== 64) return undefined;
  return pkg;
}

/** What fetchDeb needs: a name for messages, where to get it, and its SHA256. */
export type DebDownload = Pick<DebianPackage, 'name' | 'version' | 'sha256'> & { size?: number } & (
    | { url: string }
    | Pick<DebianPackage, 'archiveUrl' | 'filename'>
  );

export interface FetchDebOptions extends ArchiveHttpOptions {
  offline?: boolean;
  progress?: Progress;
}

/**
 * Brings a .deb into the store, verified against the SHA256 its Packages stanza (or a lock)
 * gives, and returns its digest. A .deb already in the store is not downloaded.
 */
export async function fetchDeb(pkg: DebDownload, store: BlobStore, options: FetchDebOptions = {}): Promise<Digest> {
  if (!/^[a-f0-9]{64}$/.test(pkg.sha256)) throw new UserError(`${pkg.name} ${pkg.version}: not a SHA256: ${JSON.stringify(pkg.sha256)}`);
  const digest: Digest = `sha256:${pkg.sha256}`;
  if (await store.has(digest)) return digest;
  const url = 'url' in pkg ? pkg.url : debUrl(pkg);
  if (options.offline) throw new UserError(`offline: ${pkg.name} ${pkg.version} (${url}) is not in the cache`);
  await downloadVerified(url, digest, pkg.size, `${pkg.name} ${pkg.version} from ${url}`, store, options);
  return digest;
}

/** fetchDeb for many packages, a few at a time; digests in the order of `packages`. */
export async function fetchDebs(packages: readonly DebDownload[], store: BlobStore, options: FetchDebOptions & { concurrency?: number } = {}): Promise<Digest[]> {
  const results: Digest[] = new Array(packages.length);
  let next = 0;
  const worker = async () => {
    while (next < packages.length) {
      const i = next++;
      results[i] = await fetchDeb(packages[i]!, store, options);
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.concurrency ?? 4, packages.length) }, worker));
  return results;
}
