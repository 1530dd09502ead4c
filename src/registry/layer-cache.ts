/**
 * The layer cache in a registry (`--cache-repo REGISTRY/REPO`, issue 15): the store's records of
 * layers and of what plans them, shared between machines through one repository, so a CI runner
 * with an empty cache directory takes the layers another runner built instead of downloading
 * their .debs, wheels and runtime archive and building them again.
 *
 * One record is one small OCI artifact, tagged `uvimage1-<kind>-<record name>` (the record name is
 * the sha256 of the key text, BlobStore.recordName; a tag is at most 128 characters of
 * `[A-Za-z0-9_][A-Za-z0-9._-]*` by the distribution spec, and this is ≤ 9 + 32 + 1 + 64):
 *
 *   manifest (OCI image manifest, artifactType application/vnd.uvimage.cache.v1+json)
 *     config  application/vnd.uvimage.cache.record.v1+json: {"format":1,"kind","key","value"}
 *             — the full key text, so a record is used only for the key it was made for
 *     layers  the blobs the value names (the layer), so the registry keeps them with the record
 *     annotations  dev.uvimage.cache.kind, dev.uvimage.cache.key-sha256
 *
 * Everything read is checked: the manifest against its digest (src/registry/reads.ts), the
 * record blob against the config descriptor's digest, the record's format, kind and key text
 * against the ones asked for (anything else is a miss); a layer found here is fetched only when a
 * sink needs its bytes, verified against its digest like any pulled blob. The manifest is made
 * from the record alone (JSON in one key order, descriptors in the value's order), so writers
 * racing on one key put the same blobs and the same manifest under the tag.
 *
 * A record is published after the value was produced (its blobs written and hashed into the
 * store), or when a build found it in its own store but the registry lacks it; in the
 * background, waited for at the end of the build (`flush`). The registry failing (unreachable,
 * 401/403, 5xx) is one warning line and the build goes on without it: a cache is a shortcut, and
 * a CI job whose cache is misconfigured still builds — and so the warning, not the exit status,
 * says so. Reading fails → neither reads nor writes again; writing fails (a read-only token) →
 * reads go on.
 */
import { Readable } from 'node:stream';
import { UserError, describeError } from '../errors.js';
import { isDigest, sha256Digest, type Digest } from '../oci/digest.js';
import type { RemoteOrigin } from '../oci/image.js';
import { MediaType } from '../oci/media-types.js';
import { BlobStore, type BlobInfo, type SharedRecord, type SharedRecords } from '../oci/store.js';
import { AuthenticationError } from './auth.js';
import { RegistryError, type RegistryClient, type RepositoryRef } from './client.js';
import { parseReference } from './reference.js';

export const cacheArtifactType = 'application/vnd.uvimage.cache.v1+json';
export const cacheRecordMediaType = 'application/vnd.uvimage.cache.record.v1+json';
/** Bump with the record document's shape (and the tag prefix with it, so formats never meet). */
const recordFormat = 1;
const tagPrefix = 'uvimage1';

/**
 * The records shared: the layers (their blobs are layers, fetched lazily), what the closure check
 * read of each layer (so a layer taken from here is not downloaded to be checked), and the
 * Debian package lists planning derives from the signed index (so a fresh runner fetches the
 * small InRelease, not the Packages file). Each key holds everything that shapes the value (the
 * layer keys include layerEncoding), so a record found is the one a local build would make.
 */
export const sharedKinds: readonly string[] = ['debian-layers', 'standalone-layer', 'venv-layer', 'layer-files', 'debian-plan', 'debian-package'];

/** The tag of a record: kind and record name, within the distribution spec's tag grammar. */
export function cacheTag(kind: string, name: string): string {
  if (!/^[a-z][a-z0-9-]{0,31}$/.test(kind)) throw new Error(`cache record kind ${JSON.stringify(kind)} cannot be part of a tag`);
  if (!/^[a-f0-9]{64}$/.test(name)) throw new Error(`cache record name ${JSON.stringify(name)} is not a sha256`);
  return `${tagPrefix}-${kind}-${name}`;
}

/** `REGISTRY/REPO`: a repository, no tag or digest. `where` names the flag, variable or key in the message. */
export function parseCacheRepo(text: string, where: string): RepositoryRef {
  let reference;
  try {
    reference = parseReference(text);
  } catch (error) {
    throw new UserError(`${where}: ${describeError(error)}`);
  }
  // parseReference gives `latest` when no tag is written; the text says whether one was.
  if (reference.digest !== undefined || text.slice(text.lastIndexOf('/') + 1).includes(':')) {
    throw new UserError(`${where}: ${text} names a ${reference.digest ? 'digest' : 'tag'}; give the repository only (REGISTRY/REPO), uvimage tags its records itself`);
  }
  return { registry: reference.registry, repository: reference.repository };
}

/** The documents of one record as published: deterministic bytes for the same record. */
export function cacheDocuments(kind: string, key: string, value: unknown, blobs: BlobInfo[]): { tag: string; record: Buffer; manifest: Buffer; digest: Digest } {
  const name = BlobStore.recordName(key);
  const record = Buffer.from(JSON.stringify({ format: recordFormat, kind, key, value }), 'utf8');
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      artifactType: cacheArtifactType,
      config: { mediaType: cacheRecordMediaType, digest: sha256Digest(record), size: record.length },
      layers: blobs.map((blob) => ({ mediaType: MediaType.ociLayerGzip, digest: blob.digest, size: blob.size })),
      annotations: { 'dev.uvimage.cache.kind': kind, 'dev.uvimage.cache.key-sha256': name },
    }),
    'utf8',
  );
  return { tag: cacheTag(kind, name), record, manifest, digest: sha256Digest(manifest) };
}

/**
 * A record document read back, checked: its format, its kind, and its key — the key text itself
 * when it is known, else that it hashes to the record name the tag was made from. Anything else
 * is undefined (a miss), never an error.
 */
export function checkRecord(bytes: Buffer, kind: string, wanted: { key: string } | { name: string }): { key: string; value: unknown } | undefined {
  let document: unknown;
  try {
    document = JSON.parse(bytes.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof document !== 'object' || document === null) return undefined;
  const { format, kind: recordKind, key, value } = document as Record<string, unknown>;
  if (format !== recordFormat || recordKind !== kind || typeof key !== 'string') return undefined;
  if ('key' in wanted ? key !== wanted.key : BlobStore.recordName(key) !== wanted.name) return undefined;
  return { key, value };
}

/** The layers a cache manifest holds, checked: an OCI manifest of our artifact type and record media type, for this kind. */
function manifestParts(document: Record<string, unknown>, kind: string): { record: BlobInfo; blobs: BlobInfo[] } | undefined {
  if (document.artifactType !== cacheArtifactType || document.schemaVersion !== 2) return undefined;
  const annotations = document.annotations as Record<string, unknown> | undefined;
  if (annotations?.['dev.uvimage.cache.kind'] !== kind) return undefined;
  const descriptor = (value: unknown): BlobInfo | undefined => {
    const { digest, size } = (value ?? {}) as Record<string, unknown>;
    return typeof digest === 'string' && isDigest(digest) && typeof size === 'number' && Number.isSafeInteger(size) && size >= 0 ? { digest, size } : undefined;
  };
  const config = document.config as Record<string, unknown> | undefined;
  const record = config?.mediaType === cacheRecordMediaType ? descriptor(config) : undefined;
  if (!record || record.size > 64 * 1024 * 1024 || !Array.isArray(document.layers)) return undefined;
  const blobs = document.layers.map(descriptor);
  if (blobs.some((blob) => blob === undefined)) return undefined;
  return { record, blobs: blobs as BlobInfo[] };
}

export interface RegistryLayerCacheOptions {
  client: RegistryClient;
  repo: RepositoryRef;
  /** The store the records are published from (and the record documents read into, verified). */
  store: BlobStore;
  /** Where the one warning line goes (progress.info). */
  warn: (line: string) => void;
  /** Records published at once; default 2. */
  concurrency?: number;
}

/** What the cache did, for --json and tests. */
export interface LayerCacheStats {
  hits: number;
  misses: number;
  /** Records put (their blobs uploaded where the registry lacked them). */
  published: number;
  /** Records the registry had already under their tag (a record found here, or a racing writer). */
  present: number;
}

export class RegistryLayerCache implements SharedRecords {
  readonly stats: LayerCacheStats = { hits: 0, misses: 0, published: 0, present: 0 };
  private readonly lookups = new Map<string, Promise<SharedRecord | undefined>>();
  private readonly origins = new Map<Digest, RemoteOrigin>();
  private readonly published = new Set<string>();
  private readonly queue: (() => Promise<void>)[] = [];
  private readonly idle: (() => void)[] = [];
  private running = 0;
  private reading = true;
  private writing = true;

  constructor(private readonly options: RegistryLayerCacheOptions) {}

  get repo(): RepositoryRef {
    return this.options.repo;
  }

  private get where(): string {
    return `${this.options.repo.registry}/${this.options.repo.repository}`;
  }

  shares(kind: string): boolean {
    return this.reading && sharedKinds.includes(kind);
  }

  async lookup(kind: string, key: string): Promise<SharedRecord | undefined> {
    const found = await this.find(kind, BlobStore.recordName(key));
    // The document hashes to the name; the key text itself must be the one asked for too.
    return found && found.key === key ? found : undefined;
  }

  lookupByName(kind: string, name: string): Promise<SharedRecord | undefined> {
    return this.find(kind, name);
  }

  originOf(digest: Digest): RemoteOrigin | undefined {
    return this.origins.get(digest);
  }

  /** One lookup per record and process. */
  private find(kind: string, name: string): Promise<SharedRecord | undefined> {
    const tag = cacheTag(kind, name);
    let pending = this.lookups.get(tag);
    if (!pending) {
      pending = this.read(kind, name, tag).then((found) => {
        if (found) {
          this.stats.hits++;
          this.published.add(tag);
          for (const blob of found.blobs) this.origins.set(blob.digest, { ...this.options.repo });
        } else if (this.reading) this.stats.misses++;
        return found;
      });
      this.lookups.set(tag, pending);
    }
    return pending;
  }

  private async read(kind: string, name: string, tag: string): Promise<SharedRecord | undefined> {
    if (!this.reading) return undefined;
    const { client, repo, store } = this.options;
    try {
      const manifest = await client.getManifest(repo, tag);
      const parts = manifestParts(manifest.document, kind);
      if (!parts) return undefined;
      // The record document into the store, checked against the manifest's descriptor.
      if (!(await store.has(parts.record.digest))) await client.fetchBlob(repo, parts.record.digest, store, { size: parts.record.size });
      const found = checkRecord(await store.readBytes(parts.record.digest), kind, { name });
      return found ? { ...found, blobs: parts.blobs } : undefined;
    } catch (error) {
      if (error instanceof RegistryError && error.status === 404) return undefined;
      this.failed('read', error);
      return undefined;
    }
  }

  /**
   * One warning line per build, whatever fails after. A read that fails, or a write that fails
   * for any reason but a refusal (a read-only token: 401/403), ends both; a refused write ends writes.
   */
  private failed(what: 'read' | 'write', error: unknown): void {
    const refused = error instanceof AuthenticationError || (error instanceof RegistryError && (error.status === 401 || error.status === 403));
    const warned = !this.reading || !this.writing;
    this.writing = false;
    if (what === 'read' || !refused) this.reading = false;
    if (warned) return;
    this.options.warn(
      this.reading
        ? `warning: the layer cache ${this.where} cannot be written (${describeError(error)}); layers built here are not shared`
        : `warning: the layer cache ${this.where} cannot be ${what === 'read' ? 'read' : 'reached'} (${describeError(error)}); building without it`,
    );
  }

  publish(kind: string, key: string, value: unknown, blobs: Digest[]): void {
    if (!this.writing || !sharedKinds.includes(kind)) return;
    const tag = cacheTag(kind, BlobStore.recordName(key));
    if (this.published.has(tag)) return;
    this.published.add(tag);
    this.queue.push(() => this.put(kind, key, value, blobs));
    this.pump();
  }

  /** Waits until every record queued is published (or publishing has failed, with its warning). */
  async flush(): Promise<void> {
    if (this.running === 0 && this.queue.length === 0) return;
    await new Promise<void>((resolve) => this.idle.push(resolve));
  }

  private pump(): void {
    const limit = Math.max(1, this.options.concurrency ?? 2);
    while (this.running < limit && this.queue.length > 0) {
      const job = this.queue.shift()!;
      this.running++;
      void job().finally(() => {
        this.running--;
        this.pump();
        if (this.running === 0 && this.queue.length === 0) for (const resolve of this.idle.splice(0)) resolve();
      });
    }
  }

  /** Blobs first (uploaded only where the registry lacks them), then the record, then the manifest under its tag. */
  private async put(kind: string, key: string, value: unknown, digests: Digest[]): Promise<void> {
    if (!this.writing) return;
    const { client, repo, store } = this.options;
    try {
      const blobs: BlobInfo[] = [];
      for (const digest of digests) {
        // Only what the store holds intact goes up: a blob it cannot vouch for is not shared.
        if (!(await store.checkIntact(digest))) return;
        blobs.push({ digest, size: await store.size(digest) });
      }
      const documents = cacheDocuments(kind, key, value, blobs);
      const there = await client.headManifest(repo, documents.tag);
      if (there?.digest === documents.digest) {
        this.stats.present++;
        return;
      }
      const upload = async (blob: BlobInfo, open: () => Promise<Readable>) => {
        if ((await client.headBlob(repo, blob.digest, { forPush: true })) !== undefined) return;
        await client.uploadBlob(repo, { ...blob, open });
      };
      for (const blob of blobs) await upload(blob, async () => store.openRead(blob.digest));
      await upload({ digest: sha256Digest(documents.record), size: documents.record.length }, async () => Readable.from([documents.record]));
      await client.putManifest(repo, documents.tag, { mediaType: MediaType.ociManifest, bytes: documents.manifest, digest: documents.digest });
      this.stats.published++;
    } catch (error) {
      this.failed('write', error);
    }
  }
}
