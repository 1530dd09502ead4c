import { UserError } from '../errors.js';
import { directoryEntries } from '../oci/directory-entries.js';
import {
  Annotation,
  assembleImage,
  assembleIndex,
  buildTimestamp,
  extendConfig,
  type Artifact,
  type ConfigChanges,
  type Image,
  type ImageConfig,
  type Layer,
  type MediaTypeFlavour,
} from '../oci/image.js';
import { writeLayer } from '../oci/layer-writer.js';
import type { Platform } from '../oci/platform.js';
import type { BlobStore } from '../oci/store.js';

/** A base image resolved for one platform: its config and layers (blobs possibly still remote). */
export interface ResolvedBase {
  /** The reference as the user wrote it, for the base.name annotation. */
  name: string;
  /** Digest of what the reference named (index or manifest), for the base.digest annotation. */
  digest: string;
  config: ImageConfig;
  layers: Layer[];
}

export interface DirectoryBuildOptions {
  directory: string;
  /** Where the directory's contents go in the image; '/' puts them at the root. */
  prefix: string;
  platforms: Platform[];
  store: BlobStore;
  /** Resolves the base for each platform; absent means an image from scratch. */
  resolveBase?: (platform: Platform) => Promise<ResolvedBase>;
  changes: ConfigChanges;
  annotations: { source?: string; revision?: string };
  flavour: MediaTypeFlavour;
  env?: NodeJS.ProcessEnv;
}

/**
 * Builds an image whose one added layer is a directory tree (plus an optional base). It is the
 * engine's smallest complete use: layer writer, image model and store, without any Python. The
 * layer does not depend on the platform, so it is written once and shared by every platform.
 */
export async function buildFromDirectory(options: DirectoryBuildOptions): Promise<Artifact> {
  if (options.platforms.length === 0) throw new UserError('no platform to build for');
  const created = buildTimestamp(options.env);
  const entries = await directoryEntries(options.directory, { prefix: options.prefix });
  const layer = await writeLayer(options.store, entries, { mtime: created.seconds });
  const added = [{ layer, history: { created_by: `uvimage build-from-dir ${options.prefix}`, comment: 'uvimage' } }];

  const images: Image[] = [];
  for (const platform of options.platforms) {
    const base = options.resolveBase ? await options.resolveBase(platform) : undefined;
    const config = extendConfig({ base: base?.config, platform, added, changes: options.changes, created: created.iso });
    const annotations: Record<string, string> = { [Annotation.created]: created.iso };
    if (options.annotations.source) annotations[Annotation.source] = options.annotations.source;
    if (options.annotations.revision) annotations[Annotation.revision] = options.annotations.revision;
    if (base) {
      annotations[Annotation.baseName] = base.name;
      annotations[Annotation.baseDigest] = base.digest;
    }
    images.push(
      assembleImage({ platform, config, layers: [...(base?.layers ?? []), layer], annotations, flavour: options.flavour }),
    );
  }
  await storeDocuments(options.store, images);
  if (images.length === 1 && options.platforms.length === 1) return { kind: 'image', image: images[0]! };
  const index = assembleIndex(images, { annotations: { [Annotation.created]: created.iso }, flavour: options.flavour });
  await options.store.putBytes(index.index.bytes);
  return { kind: 'index', index };
}

/** Configs and manifests go into the store too, so every blob an artifact names is there. */
async function storeDocuments(store: BlobStore, images: Image[]): Promise<void> {
  for (const image of images) {
    await store.putBytes(image.config.bytes);
    await store.putBytes(image.manifest.bytes);
  }
}
