import { UserError } from '../errors.js';
import { sha256Digest, type Digest } from './digest.js';
import { MediaType, toDockerMediaType } from './media-types.js';
import type { Platform } from './platform.js';

/** An OCI content descriptor. */
export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  platform?: Platform;
  annotations?: Record<string, string>;
  urls?: string[];
}

/** Where a layer of a pulled image can be fetched or cross-repository mounted from. */
export interface RemoteOrigin {
  /** Registry host as used for API calls, e.g. `registry-1.docker.io` or `127.0.0.1:5000`. */
  registry: string;
  repository: string;
}

/**
 * A layer as an image holds it: the compressed blob's descriptor and the digest of the
 * uncompressed tar (the config's diff_id). A layer we wrote is in the store; a layer of a pulled
 * base may only be known by its origin until some sink needs its bytes.
 */
export interface Layer {
  descriptor: Descriptor;
  diffId: Digest;
  origin?: RemoteOrigin;
}

/** What a history entry says about one layer (or a config-only step). */
export interface HistoryEntry {
  created?: string;
  created_by?: string;
  comment?: string;
  author?: string;
  empty_layer?: boolean;
}

/** The runtime part of an image config (the `config` object of the OCI image config). */
export interface ContainerConfig {
  User?: string;
  ExposedPorts?: Record<string, Record<string, never>>;
  Env?: string[];
  Entrypoint?: string[];
  Cmd?: string[];
  Volumes?: Record<string, Record<string, never>>;
  WorkingDir?: string;
  Labels?: Record<string, string>;
  StopSignal?: string;
}

/** The OCI image config document. Unknown keys of a pulled config are kept as they are. */
export interface ImageConfig {
  created?: string;
  author?: string;
  architecture: string;
  os: string;
  variant?: string;
  'os.version'?: string;
  config?: ContainerConfig;
  rootfs: { type: 'layers'; diff_ids: Digest[] };
  history?: HistoryEntry[];
  [key: string]: unknown;
}

export interface ImageManifest {
  schemaVersion: 2;
  mediaType: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

export interface ImageIndexDocument {
  schemaVersion: 2;
  mediaType: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

/** A JSON document with the exact bytes that were (or will be) hashed and stored. */
export interface SerializedDocument {
  descriptor: Descriptor;
  bytes: Buffer;
}

/** A finished single-platform image: every byte of its config and manifest is fixed. */
export interface Image {
  platform: Platform;
  config: SerializedDocument;
  manifest: SerializedDocument;
  layers: Layer[];
}

/** A finished multi-platform image. */
export interface ImageIndex {
  index: SerializedDocument;
  images: Image[];
}

/** What a build produces and sinks consume: one image, or an index of several. */
export type Artifact = { kind: 'image'; image: Image } | { kind: 'index'; index: ImageIndex };

export type MediaTypeFlavour = 'oci' | 'docker';

/** The annotation keys uvimage sets (OCI image spec, pre-defined annotation keys). */
export const Annotation = {
  created: 'org.opencontainers.image.created',
  source: 'org.opencontainers.image.source',
  revision: 'org.opencontainers.image.revision',
  baseName: 'org.opencontainers.image.base.name',
  baseDigest: 'org.opencontainers.image.base.digest',
  refName: 'org.opencontainers.image.ref.name',
  /** uvimage's own: what trimming removed from the runtime, a JSON array of {rule, files, bytes} (read by `uvimage inspect`). */
  runtimeTrimmed: 'dev.uvimage.runtime.trimmed',
} as const;

/**
 * The one timestamp uvimage writes anywhere in an image: SOURCE_DATE_EPOCH when set (the
 * reproducible-builds convention), else the Unix epoch, so the same inputs give the same bytes.
 */
export function buildTimestamp(env: NodeJS.ProcessEnv = process.env): { seconds: number; iso: string } {
  const raw = env.SOURCE_DATE_EPOCH;
  let seconds = 0;
  if (raw !== undefined && raw !== '') {
    if (!/^\d+$/.test(raw)) throw new UserError(`SOURCE_DATE_EPOCH must be a whole number of seconds since 1970, got ${JSON.stringify(raw)}`);
    seconds = Number(raw);
  }
  return { seconds, iso: new Date(seconds * 1000).toISOString().replace('.000Z', 'Z') };
}

/** Serializes a document the one way uvimage always does, so equal documents have equal digests. */
export function serializeDocument(document: unknown, mediaType: string, extra?: Partial<Descriptor>): SerializedDocument {
  const bytes = Buffer.from(JSON.stringify(document), 'utf8');
  return { bytes, descriptor: { mediaType, digest: sha256Digest(bytes), size: bytes.length, ...extra } };
}

export interface AddedLayer {
  layer: Layer;
  history: HistoryEntry;
}

export interface ConfigChanges extends ContainerConfig {
  /** Env entries to set or replace by name; the base's other entries are kept. */
  Env?: string[];
}

/**
 * The config of an image made of a base (or nothing) plus added layers. The base's settings are
 * kept unless changed; Env is merged by variable name; Labels are merged; history gets one entry
 * per added layer, so history and rootfs.diff_ids stay consistent for tools that pair them.
 */
export function extendConfig(options: {
  base?: ImageConfig;
  platform: Platform;
  added: AddedLayer[];
  changes: ConfigChanges;
  created: string;
}): ImageConfig {
  const { base, platform, added, changes, created } = options;
  const config: ImageConfig = {
    ...(base ?? {}),
    created,
    architecture: platform.architecture,
    os: platform.os,
    config: mergeContainerConfig(base?.config ?? {}, changes),
    rootfs: { type: 'layers', diff_ids: [...(base?.rootfs.diff_ids ?? []), ...added.map((entry) => entry.layer.diffId)] },
    history: [...(base?.history ?? []), ...added.map((entry) => ({ created, ...entry.history }))],
  };
  if (platform.variant) config.variant = platform.variant;
  else delete config.variant;
  return config;
}

/**
 * A base's runtime settings with changes over them: Env merged by variable name, Labels and
 * ExposedPorts merged, everything else replaced where the changes set it.
 */
export function mergeContainerConfig(base: ContainerConfig, changes: ConfigChanges): ContainerConfig {
  const runtime: ContainerConfig = { ...base };
  for (const [key, value] of Object.entries(changes) as [keyof ContainerConfig, unknown][]) {
    if (value === undefined || key === 'Env' || key === 'Labels' || key === 'ExposedPorts') continue;
    (runtime as Record<string, unknown>)[key] = value;
  }
  if (changes.Env) runtime.Env = mergeEnv(base.Env ?? [], changes.Env);
  if (changes.Labels) runtime.Labels = { ...(base.Labels ?? {}), ...changes.Labels };
  if (changes.ExposedPorts) runtime.ExposedPorts = { ...(base.ExposedPorts ?? {}), ...changes.ExposedPorts };
  // An explicit Entrypoint without Cmd must not inherit the base's Cmd (docker does the same).
  if (changes.Entrypoint && !changes.Cmd) delete runtime.Cmd;
  return sortKeys(runtime);
}

function mergeEnv(base: string[], changes: string[]): string[] {
  const names = (entry: string) => entry.split('=', 1)[0] ?? entry;
  const changed = new Set(changes.map(names));
  return [...base.filter((entry) => !changed.has(names(entry))), ...changes];
}

function sortKeys<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) as T;
}

/**
 * Fixes an image's config and manifest bytes. Checks that the config's diff_ids are exactly the
 * layers' diff_ids in order (a mismatch makes an image every runtime refuses) and that the
 * non-empty history entries match the layer count.
 */
export function assembleImage(options: {
  platform: Platform;
  config: ImageConfig;
  layers: Layer[];
  annotations?: Record<string, string>;
  flavour?: MediaTypeFlavour;
}): Image {
  const { platform, config, layers, annotations } = options;
  const flavour = options.flavour ?? 'oci';
  const diffIds = config.rootfs.diff_ids;
  if (diffIds.length !== layers.length || diffIds.some((id, index) => id !== layers[index]?.diffId)) {
    throw new Error(
      `image config rootfs.diff_ids (${diffIds.length}) do not match the layers (${layers.length}): ` +
        `${JSON.stringify(diffIds)} vs ${JSON.stringify(layers.map((layer) => layer.diffId))}`,
    );
  }
  const history = config.history ?? [];
  const historyLayers = history.filter((entry) => !entry.empty_layer).length;
  if (history.length > 0 && historyLayers !== layers.length) {
    throw new Error(`image config history has ${historyLayers} non-empty entries for ${layers.length} layers`);
  }
  const pick = (mediaType: string) => (flavour === 'docker' ? toDockerMediaType(mediaType) : mediaType);
  const configDocument = serializeDocument(config, pick(MediaType.ociConfig));
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: pick(MediaType.ociManifest),
    config: configDocument.descriptor,
    layers: layers.map((layer) => ({ ...layer.descriptor, mediaType: pick(layer.descriptor.mediaType) })),
  };
  // Docker's schema 2 manifest has no annotations field; only OCI manifests carry them.
  if (annotations && Object.keys(annotations).length > 0 && flavour === 'oci') manifest.annotations = sortKeys(annotations);
  const manifestDocument = serializeDocument(manifest, manifest.mediaType, { platform: sortKeys(platform) });
  const outLayers = layers.map((layer, index) => ({ ...layer, descriptor: manifest.layers[index]! }));
  return { platform, config: configDocument, manifest: manifestDocument, layers: outLayers };
}

/** An index of several single-platform images, in the order given (a stable order gives a stable digest). */
export function assembleIndex(images: Image[], options: { annotations?: Record<string, string>; flavour?: MediaTypeFlavour } = {}): ImageIndex {
  const flavour = options.flavour ?? 'oci';
  const document: ImageIndexDocument = {
    schemaVersion: 2,
    mediaType: flavour === 'docker' ? MediaType.dockerManifestList : MediaType.ociIndex,
    manifests: images.map((image) => image.manifest.descriptor),
  };
  if (options.annotations && Object.keys(options.annotations).length > 0 && flavour === 'oci') {
    document.annotations = sortKeys(options.annotations);
  }
  return { index: serializeDocument(document, document.mediaType), images };
}

/** The image or images of an artifact, whichever it holds. */
export function artifactImages(artifact: Artifact): Image[] {
  return artifact.kind === 'image' ? [artifact.image] : artifact.index.images;
}

/** The top-level document of an artifact: what a tag points at. */
export function artifactRoot(artifact: Artifact): SerializedDocument {
  return artifact.kind === 'image' ? artifact.image.manifest : artifact.index.index;
}
