/**
 * Fetching from a Debian archive, over src/net (retries, proxies, timeouts), into the BlobStore,
 * where only verified bytes ever arrive:
 *
 *   dists/<dist>/InRelease   stored after its signature checks out (release.ts), with its signed
 *                            text, which later reads parse without verifying again; a store
 *                            record per archive and dist remembers the last one, revalidated (a
 *                            conditional GET) at most once per TTL (default 1 hour,
 *                            UVIMAGE_DEBIAN_INDEX_TTL_SECONDS); offline mode uses it without any
 *                            request
 *   any file it lists        (Packages, Contents-<arch>.gz, …) streamed in against the SHA256 the
 *                            verified InRelease gives, by-hash where the archive offers it; never
 *                            downloaded again once its digest is in the store
 *   pool/…/<name>.deb        against the SHA256 of its Packages stanza (or a lock)
 *
 * A mismatch stores nothing.
 */
import { asTask, stages, type Progress, type Stage, type StageTask } from '../../progress.js';
import { UserError } from '../../errors.js';
import { downloadToStore } from '../../net/download.js';
import { HttpStatusError, requestWith, statusError, type HttpRequest } from '../../net/request.js';
import { header, readBody } from '../../net/transport.js';
import type { Digest } from '../../oci/digest.js';
import { CorruptBlobError, type BlobStore } from '../../oci/store.js';
import { debUrl, type DebianPackage } from './packages.js';
import { checkRelease, parseRelease, verifyInRelease, type ReleaseInfo } from './release.js';
import { archivesOf, type Archive, type DebianSource } from './source.js';

/** How the archive is spoken to: src/net's retries, proxies and timeouts, with these knobs. */
export type ArchiveHttpOptions = Pick<HttpRequest, 'onRequest' | 'retry' | 'env'>;

export interface LoadIndexOptions extends ArchiveHttpOptions {
  /** Use the cache only; no request is made, a missing index is an error. */
  offline?: boolean;
  progress?: Progress;
  /**
   * The stage the downloads count in (loadPackageIndex runs one per suite and architecture,
   * "Fetching the Debian trixie amd64 index"); without it, each file fetched is a stage of its own.
   */
  indexStage?: Stage;
  /** How long a verified InRelease is trusted before it is revalidated; default UVIMAGE_DEBIAN_INDEX_TTL_SECONDS, else 3600. */
  ttlSeconds?: number;
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
 * The verified InRelease of one archive of a source: from the cache within the TTL (or offline),
 * else fetched (conditionally, when one is cached) and verified before it is stored.
 */
export async function loadRelease(archive: Archive, source: DebianSource, store: BlobStore, options: LoadIndexOptions): Promise<ReleaseInfo> {
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
  const { body, lastModified, etag } = await indexTask(`Debian ${archive.dist} InRelease`, options, undefined, (task) =>
    requestWith(
      { url, headers, timeoutMs: inReleaseTimeoutMs, onRequest: options.onRequest, retry: options.retry, env: options.env },
      async (response): Promise<{ body?: Buffer; lastModified?: string; etag?: string }> => {
        if (response.status === 304) return {};
        if (response.status !== 200) throw await statusError(response);
        const read = await readBody(response, inReleaseLimit);
        task.advance(read.length);
        return { body: read, lastModified: header(response, 'last-modified'), etag: header(response, 'etag') };
      },
    ),
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

/**
 * Brings a file the verified InRelease of the source's main (or security) archive lists into
 * the store, verified against the SHA256 it gives, and returns its digest: `main/Contents-amd64.gz`,
 * `main/binary-arm64/Packages.xz`, … (paths relative to dists/<dist>/, as the InRelease writes
 * them). A file already in the store is not downloaded.
 */
export async function fetchIndexFile(
  source: DebianSource,
  store: BlobStore,
  path: string,
  options: LoadIndexOptions & { archive?: 'main' | 'security' } = {},
): Promise<Digest> {
  const archive = archivesOf(source)[options.archive ?? 'main'];
  const own = options.indexStage ? undefined : options.progress?.stage(stages.debianIndexFile(indexFileName(archive, path)));
  const inStage = { ...options, indexStage: options.indexStage ?? own };
  try {
    const release = await loadRelease(archive, source, store, inStage);
    return await fetchListedFile(archive, release, path, store, inStage);
  } finally {
    own?.finish();
  }
}

/** The digest a verified InRelease gives a file it lists: what the file is, before (or without) fetching it. */
export function listedFileDigest(archive: Archive, release: ReleaseInfo, path: string): Digest {
  const entry = release.sha256.get(path);
  if (!entry) throw new UserError(`${archive.url}/dists/${archive.dist}/InRelease lists no SHA256 for ${path}`);
  return `sha256:${entry.sha256}`;
}

/** fetchIndexFile for an InRelease at hand. */
export async function fetchListedFile(archive: Archive, release: ReleaseInfo, path: string, store: BlobStore, options: LoadIndexOptions): Promise<Digest> {
  const distUrl = `${archive.url}/dists/${archive.dist}`;
  const digest = listedFileDigest(archive, release, path);
  const entry = release.sha256.get(path)!;
  if (await store.has(digest)) return digest;
  if (options.offline) throw new UserError(`offline: ${distUrl}/${path} is not in the cache; run once without offline mode`);

  const direct = `${distUrl}/${path}`;
  // by-hash names the exact file the InRelease describes, so a mirror updating between our two
  // requests cannot hand us a newer file than the InRelease we verified.
  const urls = release.acquireByHash ? [`${distUrl}/${path.replace(/[^/]+$/, '')}by-hash/SHA256/${entry.sha256}`, direct] : [direct];
  return indexTask(indexFileName(archive, path), options, entry.size, async (task) => {
    for (const [i, url] of urls.entries()) {
      try {
        await downloadVerified(url, digest, `${archive.dist} ${path} from ${url}`, store, options, task);
        return digest;
      } catch (error) {
        if (i < urls.length - 1 && error instanceof HttpStatusError && error.status === 404) continue;
        throw error;
      }
    }
    throw new Error('unreachable');
  });
}

/** Streams a URL into the store against an expected digest (nothing is stored on a mismatch), its bytes counted in `task`. */
async function downloadVerified(url: string, digest: Digest, what: string, store: BlobStore, options: ArchiveHttpOptions, task: Pick<StageTask, 'advance'>): Promise<void> {
  await downloadToStore({ url, onRequest: options.onRequest, retry: options.retry, env: options.env }, { store, digest, what, onBytes: (bytes) => task.advance(bytes) });
}

/**
 * What people call an index file: "Debian trixie main amd64 Packages.xz", "Debian trixie main
 * Contents-arm64.gz" (the InRelease's path, `main/binary-amd64/Packages.xz`, read as apt names it).
 */
export function indexFileName(archive: Pick<Archive, 'dist'>, path: string): string {
  const binary = /^([^/]+)\/binary-([^/]+)\/([^/]+)$/.exec(path);
  return `Debian ${archive.dist} ${binary ? `${binary[1]} ${binary[2]} ${binary[3]}` : path.replaceAll('/', ' ')}`;
}

/** One fetch of the index: a task of the index stage, or (without one) a stage of its own. */
async function indexTask<T>(name: string, options: LoadIndexOptions, bytes: number | undefined, work: (task: StageTask) => Promise<T>): Promise<T> {
  const own = options.indexStage ? undefined : options.progress?.stage(stages.debianIndexFile(name));
  try {
    return await asTask(options.indexStage ?? own, name, work, { bytes });
  } finally {
    own?.finish();
  }
}

/** What fetchDeb needs: a name for messages, where to get it, and its SHA256. */
export type DebDownload = Pick<DebianPackage, 'name' | 'version' | 'sha256'> & { size?: number } & (
    | { url: string }
    | Pick<DebianPackage, 'archiveUrl' | 'filename'>
  );

export interface FetchDebOptions extends ArchiveHttpOptions {
  offline?: boolean;
  progress?: Progress;
  /** Names the stage: "Fetching Debian trixie packages for amd64". */
  suite?: string;
  arch?: string;
}

/** The stage .debs are fetched in. */
function debStage(progress: Progress | undefined, options: Pick<FetchDebOptions, 'suite' | 'arch'>): Stage | undefined {
  return progress?.stage(stages.debianPackages(options.suite, options.arch));
}

/**
 * Brings a .deb into the store, verified against the SHA256 its Packages stanza (or a lock)
 * gives, and returns its digest. A .deb already in the store is not downloaded.
 */
export async function fetchDeb(pkg: DebDownload, store: BlobStore, options: FetchDebOptions = {}): Promise<Digest> {
  const stage = debStage(options.progress, options);
  try {
    return await fetchDebIn(pkg, store, options, stage);
  } finally {
    stage?.finish();
  }
}

async function fetchDebIn(pkg: DebDownload, store: BlobStore, options: FetchDebOptions, stage: Stage | undefined, present?: boolean): Promise<Digest> {
  const digest = debDigest(pkg);
  if (present ?? (await store.has(digest))) return digest;
  const url = 'url' in pkg ? pkg.url : debUrl(pkg);
  if (options.offline) throw new UserError(`offline: ${pkg.name} ${pkg.version} (${url}) is not in the cache`);
  const what = `${pkg.name} ${pkg.version} from ${url}`;
  await asTask(stage, `${pkg.name} ${pkg.version}`, (task) => downloadVerified(url, digest, what, store, options, task));
  return digest;
}

function debDigest(pkg: DebDownload): Digest {
  if (!/^[a-f0-9]{64}$/.test(pkg.sha256)) throw new UserError(`${pkg.name} ${pkg.version}: not a SHA256: ${JSON.stringify(pkg.sha256)}`);
  return `sha256:${pkg.sha256}`;
}

/**
 * fetchDeb for many packages, a few at a time; digests in the order of `packages`. The ones to
 * download are known before the first starts, so the stage counts n of m from the start.
 */
export async function fetchDebs(packages: readonly DebDownload[], store: BlobStore, options: FetchDebOptions & { concurrency?: number } = {}): Promise<Digest[]> {
  const present = await Promise.all(packages.map((pkg) => store.has(debDigest(pkg))));
  const missing = packages.filter((_, i) => !present[i]);
  const stage = missing.length > 0 && !options.offline ? debStage(options.progress, options) : undefined;
  stage?.expect(missing.length, missing.reduce((sum, pkg) => sum + (pkg.size ?? 0), 0));
  const results: Digest[] = new Array(packages.length);
  let next = 0;
  const worker = async () => {
    while (next < packages.length) {
      const i = next++;
      results[i] = await fetchDebIn(packages[i]!, store, options, stage, present[i]);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(options.concurrency ?? 4, packages.length) }, worker));
  } finally {
    stage?.finish();
  }
  return results;
}
