/**
 * Pulling a base image: resolve a reference to its manifest (through a Docker manifest list or
 * OCI index, choosing the platform), and its config, every document checked against its digest
 * and kept in the BlobStore. Layers are not downloaded here: they come back with their origin,
 * so a push to the registry that already holds them never downloads them, and fetchLayerBlob
 * brings one into the store when some sink really needs its bytes.
 *
 * Caching: documents live in the store by digest; a tag's resolution is a store record that is
 * trusted for a TTL (default 5 minutes, UVIMAGE_TAG_TTL_SECONDS), so repeated builds do not ask
 * the registry at all, and a reference pinned by digest whose documents are in the store never
 * does.
 */
import { asTask, stages, type Progress } from '../progress.js';
import { UserError } from '../errors.js';
import { isDigest, type Digest } from '../oci/digest.js';
import type { Descriptor, ImageConfig, Layer } from '../oci/image.js';
import { MediaType, isIndexMediaType } from '../oci/media-types.js';
import { formatPlatform, platformMatches, type Platform } from '../oci/platform.js';
import { CorruptBlobError, type BlobStore } from '../oci/store.js';
import { RegistryClient, RegistryError, type RegistryClientOptions, type RepositoryRef } from './client.js';
import { parseReference, type ImageReference } from './reference.js';

export interface BaseImage {
  reference: ImageReference;
  /** The digest of the index or manifest the reference named (for org.opencontainers.image.base.digest). */
  manifestDigest: Digest;
  config: ImageConfig;
  /** The base's layers, with their origin; their blobs are not downloaded yet. */
  layers: Layer[];
  platform: Platform;
}

export interface PullOptions extends RegistryClientOptions {
  /** A client to reuse (its options then win over the ones given here). */
  client?: RegistryClient;
  progress?: Progress;
  /** How long a tag's resolution is trusted; default UVIMAGE_TAG_TTL_SECONDS, else 300. 0: always ask. */
  tagTtlSeconds?: number;
  /** The clock, in milliseconds (tests). */
  now?: () => number;
}

/** The store record of a tag's resolution. */
export interface TagRecord {
  digest: Digest;
  /** When it was resolved, in milliseconds since the epoch. */
  resolvedAt: number;
}

const defaultTagTtlSeconds = 300;

/** The record key of a tag: `registry/repository:tag`. */
export function tagRecordKey(reference: ImageReference): string {
  return `${reference.registry}/${reference.repository}:${reference.tag ?? 'latest'}`;
}

export function tagTtlSeconds(options: { tagTtlSeconds?: number; env?: NodeJS.ProcessEnv }): number {
  if (options.tagTtlSeconds !== undefined) return options.tagTtlSeconds;
  const raw = (options.env ?? process.env).UVIMAGE_TAG_TTL_SECONDS;
  if (raw === undefined || raw === '') return defaultTagTtlSeconds;
  if (!/^\d+$/.test(raw.trim())) throw new UserError(`UVIMAGE_TAG_TTL_SECONDS must be a whole number of seconds, got ${JSON.stringify(raw)}`);
  return Number(raw.trim());
}

export async function pullBaseImage(refText: string, platform: Platform, store: BlobStore, options: PullOptions = {}): Promise<BaseImage> {
  const reference = parseReference(refText);
  const repo: RepositoryRef = { registry: reference.registry, repository: reference.repository };
  let client = options.client;
  // Created only when a registry call is needed: a pinned, cached base makes none.
  const getClient = () => (client ??= new RegistryClient(options));
  const now = options.now ?? Date.now;
  const progress = options.progress;

  let rootDigest: Digest;
  if (reference.digest) {
    rootDigest = reference.digest;
  } else {
    const key = tagRecordKey(reference);
    const record = await store.readRecord<TagRecord>('tags', key);
    const ttlMs = tagTtlSeconds(options) * 1000;
    if (record && isDigest(record.digest) && now() - record.resolvedAt < ttlMs && now() >= record.resolvedAt && (await store.has(record.digest))) {
      rootDigest = record.digest;
    } else {
      const stage = progress?.stage(stages.baseResolve(refText));
      try {
        rootDigest = await asTask(stage, refText, () => resolveTag(getClient(), repo, reference.tag ?? 'latest', store));
      } finally {
        stage?.finish();
      }
      await store.writeRecord('tags', key, { digest: rootDigest, resolvedAt: now() } satisfies TagRecord);
    }
  }

  const what = `base image ${refText}`;
  const root = await loadDocument(getClient, repo, rootDigest, store, refText);
  let manifest = root;
  let fromIndex = false;
  if (isIndex(root.document)) {
    fromIndex = true;
    const entry = choosePlatform(root.document, platform, what);
    manifest = await loadDocument(getClient, repo, entry.digest, store, `${refText} (${formatPlatform(platform)})`);
    if (isIndex(manifest.document)) throw new UserError(`${what}: its ${formatPlatform(platform)} entry is another index, which uvimage does not support`);
  }
  const document = manifest.document;
  checkManifest(document, what);
  const configDescriptor = descriptorOf(document.config, `${what}: manifest config`);
  const config = await loadConfig(getClient, repo, configDescriptor, store, what);

  const actual: Platform = { os: config.os, architecture: config.architecture };
  if (typeof config.variant === 'string' && config.variant) actual.variant = config.variant;
  if (!fromIndex && !platformMatches(platform, actual)) {
    throw new UserError(`${what} has no ${formatPlatform(platform)}; it has ${formatPlatform(actual)}`);
  }

  const layerDescriptors = (document.layers as unknown[]).map((layer, index) => descriptorOf(layer, `${what}: layer ${index + 1}`));
  const diffIds = config.rootfs.diff_ids;
  if (diffIds.length !== layerDescriptors.length) {
    throw new UserError(`${what} is inconsistent: its manifest has ${layerDescriptors.length} layers but its config has ${diffIds.length} diff_ids`);
  }
  const layers: Layer[] = layerDescriptors.map((descriptor, index) => {
    if (!/layer|rootfs/.test(descriptor.mediaType)) {
      throw new UserError(`${what}: layer ${index + 1} has media type ${descriptor.mediaType}, which is not an image layer`);
    }
    const diffId = diffIds[index]!;
    if (!isDigest(diffId)) throw new UserError(`${what}: diff_id ${index + 1} is not a sha256 digest: ${JSON.stringify(diffId)}`);
    return { descriptor, diffId, origin: { registry: reference.registry, repository: reference.repository } };
  });

  return { reference, manifestDigest: rootDigest, config, layers, platform: actual };
}

/** The digest a tag points at now; the document itself is put in the store on the way. */
async function resolveTag(client: RegistryClient, repo: RepositoryRef, tag: string, store: BlobStore): Promise<Digest> {
  // HEAD first, as Docker does: it is not counted against pull rate limits, and when the
  // digest is already in the store nothing more is needed.
  const head = await client.headManifest(repo, tag).catch((error: unknown) => {
    // A registry that answers HEAD oddly (but not with an auth failure) still gets a GET.
    if (error instanceof RegistryError && error.status !== undefined && error.status !== 401) return undefined;
    throw error;
  });
  if (head?.digest && (await store.has(head.digest))) return head.digest;
  const fetched = await client.getManifest(repo, head?.digest ?? tag);
  await store.putBytes(fetched.bytes, fetched.digest, `manifest ${repo.registry}/${repo.repository}:${tag}`);
  return fetched.digest;
}

interface LoadedDocument {
  digest: Digest;
  document: Record<string, unknown>;
}

/** A manifest or index by digest: from the store, else from the registry (verified) into the store. */
async function loadDocument(
  getClient: () => RegistryClient,
  repo: RepositoryRef,
  digest: Digest,
  store: BlobStore,
  name: string,
): Promise<LoadedDocument> {
  let bytes: Buffer | undefined;
  if (await store.has(digest)) {
    try {
      bytes = await store.readBytes(digest);
    } catch (error) {
      if (!(error instanceof CorruptBlobError)) throw error;
      // It was removed; fetch it again below.
    }
  }
  if (!bytes) {
    const fetched = await getClient().getManifest(repo, digest);
    await store.putBytes(fetched.bytes, digest, `manifest ${repo.registry}/${repo.repository}@${digest}`);
    return { digest, document: fetched.document };
  }
  let document: unknown;
  try {
    document = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new UserError(`manifest for ${name} is not valid JSON`);
  }
  if (typeof document !== 'object' || document === null || Array.isArray(document)) {
    throw new UserError(`manifest for ${name} is not a JSON object`);
  }
  return { digest, document: document as Record<string, unknown> };
}

async function loadConfig(
  getClient: () => RegistryClient,
  repo: RepositoryRef,
  descriptor: Descriptor,
  store: BlobStore,
  what: string,
): Promise<ImageConfig> {
  let bytes: Buffer | undefined;
  if (await store.has(descriptor.digest)) {
    try {
      bytes = await store.readBytes(descriptor.digest);
    } catch (error) {
      if (!(error instanceof CorruptBlobError)) throw error;
    }
  }
  if (!bytes) {
    await getClient().fetchBlob(repo, descriptor.digest, store, { size: descriptor.size });
    bytes = await store.readBytes(descriptor.digest);
  }
  let config: unknown;
  try {
    config = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new UserError(`${what}: config ${descriptor.digest} is not valid JSON`);
  }
  const record = config as Partial<ImageConfig> | null;
  if (
    typeof record !== 'object' ||
    record === null ||
    typeof record.os !== 'string' ||
    typeof record.architecture !== 'string' ||
    typeof record.rootfs !== 'object' ||
    record.rootfs === null ||
    !Array.isArray(record.rootfs.diff_ids)
  ) {
    throw new UserError(`${what}: config ${descriptor.digest} is not a container image config (no os, architecture or rootfs.diff_ids)`);
  }
  return record as ImageConfig;
}

function isIndex(document: Record<string, unknown>): boolean {
  if (typeof document.mediaType === 'string' && isIndexMediaType(document.mediaType)) return true;
  return Array.isArray(document.manifests) && document.config === undefined;
}

function checkManifest(document: Record<string, unknown>, what: string): asserts document is Record<string, unknown> & { config: unknown; layers: unknown[] } {
  if (document.schemaVersion === 1 || (typeof document.mediaType === 'string' && document.mediaType.startsWith('application/vnd.docker.distribution.manifest.v1'))) {
    throw new UserError(`${what} has a Docker schema 1 manifest, which uvimage does not support; push it again with a current tool`);
  }
  if (typeof document.config !== 'object' || document.config === null || !Array.isArray(document.layers)) {
    throw new UserError(`${what}: its manifest has no config or layers${typeof document.mediaType === 'string' ? ` (media type ${document.mediaType})` : ''}`);
  }
}

function choosePlatform(index: Record<string, unknown>, wanted: Platform, what: string): Descriptor {
  const entries = Array.isArray(index.manifests) ? (index.manifests as unknown[]) : [];
  const candidates: { descriptor: Descriptor; platform: Platform }[] = [];
  for (const [position, entry] of entries.entries()) {
    const descriptor = descriptorOf(entry, `${what}: index entry ${position + 1}`);
    const platform = descriptor.platform;
    // Attestations and other non-image entries say unknown/unknown or nothing.
    if (!platform || typeof platform.os !== 'string' || typeof platform.architecture !== 'string') continue;
    if (platform.os === 'unknown' || platform.architecture === 'unknown') continue;
    const clean: Platform = { os: platform.os, architecture: platform.architecture };
    if (typeof platform.variant === 'string' && platform.variant) clean.variant = platform.variant;
    candidates.push({ descriptor, platform: clean });
  }
  const matching = candidates.filter((candidate) => platformMatches(wanted, candidate.platform));
  const exact = matching.find((candidate) => candidate.platform.variant === wanted.variant);
  const chosen = exact ?? matching[0];
  if (!chosen) {
    const available = [...new Set(candidates.map((candidate) => formatPlatform(candidate.platform)))];
    throw new UserError(
      `${what} has no ${formatPlatform(wanted)}; it has ${available.length > 0 ? available.join(', ') : 'no platform images'}`,
    );
  }
  return chosen.descriptor;
}

/** A descriptor from untrusted JSON, checked. */
function descriptorOf(value: unknown, where: string): Descriptor {
  const record = value as Partial<Descriptor> | null;
  if (typeof record !== 'object' || record === null) throw new UserError(`${where} is not a descriptor`);
  if (typeof record.digest !== 'string' || !isDigest(record.digest)) {
    throw new UserError(`${where} has digest ${JSON.stringify(record.digest)}; uvimage only supports sha256 digests`);
  }
  if (typeof record.size !== 'number' || !Number.isSafeInteger(record.size) || record.size < 0) {
    throw new UserError(`${where} has no valid size`);
  }
  const descriptor: Descriptor = {
    mediaType: typeof record.mediaType === 'string' ? record.mediaType : MediaType.ociManifest,
    digest: record.digest,
    size: record.size,
  };
  if (record.platform && typeof record.platform === 'object') descriptor.platform = record.platform;
  if (record.annotations && typeof record.annotations === 'object') descriptor.annotations = record.annotations;
  if (Array.isArray(record.urls)) descriptor.urls = record.urls.filter((url): url is string => typeof url === 'string');
  return descriptor;
}

/**
 * Brings a pulled layer's blob into the store from its origin registry, streamed and verified
 * (a mismatch is a UserError `blob sha256:… from <registry>/<repo> does not match its digest`
 * and leaves nothing in the store). Does nothing when the blob is already there.
 */
export async function fetchLayerBlob(
  layer: Layer,
  store: BlobStore,
  clientOptions: RegistryClient | (RegistryClientOptions & { client?: RegistryClient; progress?: Progress }) = {},
): Promise<void> {
  const digest = layer.descriptor.digest;
  if (await store.has(digest)) return;
  if (!layer.origin) throw new UserError(`layer ${digest} is not in the cache at ${store.root} and has no registry to fetch it from`);
  const client =
    clientOptions instanceof RegistryClient ? clientOptions : clientOptions.client ?? new RegistryClient(clientOptions);
  const progress = clientOptions instanceof RegistryClient ? undefined : clientOptions.progress;
  const origin = layer.origin;
  const stage = progress?.stage(stages.baseLayer(digest, `${origin.registry}/${origin.repository}`));
  try {
    await asTask(
      stage,
      digest.slice(7, 19),
      (task) => client.fetchBlob(origin, digest, store, { size: layer.descriptor.size, onBytes: (bytes) => task.advance(bytes) }),
      { bytes: layer.descriptor.size },
    );
  } finally {
    stage?.finish();
  }
}
