/**
 * `--oci DIR`: an OCI image layout (image-spec image-layout.md): `oci-layout`, `index.json` and
 * every blob under `blobs/sha256/<hex>` — layers, configs, manifests and, for a multi-platform
 * artifact, the image index.
 *
 * index.json lists the artifact's root once per tag, with `org.opencontainers.image.ref.name`
 * set to the tag alone (`1.0` for `-t registry.example.com/app:1.0`), which is what
 * `skopeo … oci:DIR:1.0`, `umoci --image DIR:1.0`, `docker save` (25+), buildah and containerd
 * write and look up, and `io.containerd.image.name` set to the full canonical name (which
 * containerd and Docker use to name the image on import). Two -t values with the same tag
 * (`a:1.0`, `b:1.0`) share one entry, which carries the first one's full name. `refName: 'full'`
 * puts the full name (in its short form: `app:1.0`, `ghcr.io/me/app:1.0`) in ref.name instead;
 * skopeo (`oci:DIR:ghcr.io/me/app:1.0`) and umoci accept it, as the ref grammar of the spec
 * allows '/' and ':'. Without tags the root is listed without a name (`skopeo … oci:DIR` takes
 * the only entry). Only one entry per tag is written, never both forms: a second entry for the
 * same manifest would make `oci:DIR` without a ref ambiguous to skopeo.
 *
 * A multi-platform artifact is listed as its image index (the nested-index form `skopeo copy
 * --all` and `docker save` write), not as its platform manifests: the index digest stays the
 * image's identity (the digest a registry push gives), and one tag naming several manifests is
 * ambiguous to every reader (skopeo takes the first, umoci refuses).
 *
 * Writing is all-or-nothing:
 *   - a new DIR (or an empty one) is built at a temp sibling `DIR.tmp-<random>` and renamed into
 *     place, so DIR never exists half-written;
 *   - an existing layout is added to, like `skopeo copy … oci:DIR:tag`: missing blobs are each
 *     written to a temp name and renamed in (a blob already there is kept: the name is its
 *     content), then index.json is replaced atomically, with entries for our ref names replacing
 *     the old entries of the same names and every other entry kept. Blobs no longer referenced
 *     are not garbage-collected. Two writers updating one layout at once can lose one's index
 *     entry (there is no lock);
 *   - any other existing DIR (a file, or a directory with other content) is refused untouched.
 *
 * Layers are streamed from the BlobSource into place; with `store` (the store the BlobSource
 * reads), a layer is instead hard-linked from the store once BlobStore.checkIntact vouches for
 * its file (hashed again unless untouched since it was last hashed), when
 * the layout is on the same file system. Store blobs are immutable (written once, renamed into
 * place, only ever removed), and nothing here opens a layout blob for writing, so a link never
 * lets anyone mutate the store through uvimage.
 */
import { createWriteStream } from 'node:fs';
import { link, mkdir, readFile, readdir, rename, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { UserError, describeError } from '../../errors.js';
import { digestHex, type Digest } from '../digest.js';
import { Annotation, artifactImages, artifactRoot, type Artifact, type Descriptor, type Layer } from '../image.js';
import { MediaType } from '../media-types.js';
import { referrerDescriptor, type Referrer } from '../referrers.js';
import type { BlobSource, Sink, SinkCheckContext, SinkContext, SinkResult } from '../sink.js';
import type { BlobStore } from '../store.js';
import { asTask, stages } from '../../progress.js';
import { ByteCounter, asWriteError, isErrno, parseSinkTags, randomSuffix, removeQuietly } from './common.js';

/** The annotation containerd and Docker read for an image's full name on import. */
export const CONTAINERD_IMAGE_NAME = 'io.containerd.image.name';

export const OCI_LAYOUT_FILE = 'oci-layout';
export const OCI_LAYOUT_VERSION = '1.0.0';

export interface OciLayoutSinkOptions {
  /**
   * The store the context's BlobSource reads from. When given, layers are hard-linked from it
   * (digest verified first) instead of copied, falling back to a copy across file systems.
   */
  store?: BlobStore;
  /**
   * What goes into org.opencontainers.image.ref.name: the tag alone (`1.0`, default: the
   * skopeo/docker save/buildah convention) or the full reference in its short form (`app:1.0`,
   * `ghcr.io/me/app:1.0`).
   */
  refName?: 'tag' | 'full';
}

interface IndexJson {
  schemaVersion?: number;
  mediaType?: string;
  manifests: Descriptor[];
  [key: string]: unknown;
}

/** One blob the layout must hold. */
type BlobToWrite = { digest: Digest; size: number } & ({ bytes: Buffer } | { layer: Layer });

/** `--oci DIR`. */
export class OciLayoutSink implements Sink {
  readonly name = 'oci' as const;

  constructor(
    readonly dir: string,
    private readonly options: OciLayoutSinkOptions = {},
  ) {}

  /** The index.json entries this artifact gets for the given tags. */
  private entries(artifact: Artifact, tags: readonly string[]): Descriptor[] {
    const root = artifactRoot(artifact);
    const base: Descriptor = { mediaType: root.descriptor.mediaType, digest: root.descriptor.digest, size: root.descriptor.size };
    if (artifact.kind === 'image') base.platform = artifact.image.platform;
    const byName = new Map<string, Descriptor>();
    for (const tag of parseSinkTags(tags, `--oci ${this.dir}`)) {
      const name = this.options.refName === 'full' ? tag.familiar : tag.tag;
      if (byName.has(name)) continue;
      byName.set(name, { ...base, annotations: { [CONTAINERD_IMAGE_NAME]: tag.canonical, [Annotation.refName]: name } });
    }
    return byName.size > 0 ? [...byName.values()] : [base];
  }

  async check(context: SinkCheckContext): Promise<void> {
    const sink = `--oci ${this.dir}`;
    parseSinkTags(context.tags, sink);
    await layoutState(resolve(this.dir), sink, this.dir);
  }

  async write(artifact: Artifact, context: SinkContext): Promise<SinkResult> {
    const sink = `--oci ${this.dir}`;
    // Referrers (SBOMs) go in as oras writes them: their blobs, and their manifests listed in
    // index.json with their artifactType (untagged), where readers find them by their subject.
    const referrers = context.referrers ?? [];
    const entries = [...this.entries(artifact, context.tags), ...referrers.map(referrerDescriptor)];
    const blobs = [...blobsOf(artifact), ...referrerBlobsOf(referrers)];
    const target = resolve(this.dir);
    const state = await layoutState(target, sink, this.dir);

    const total = blobs.reduce((sum, blob) => sum + blob.size, 0);
    const stage = context.progress.stage(stages.ociLayout(this.dir));
    const counts = { copied: 0, linked: 0, kept: 0, bytes: 0 };
    try {
      await asTask(
        stage,
        `${blobs.length} blobs`,
        async (task) => {
          const place = new BlobPlacer(context.blobs, this.options.store, counts, (bytes) => task.advance(bytes));
          if (state === 'layout') await this.update(target, blobs, entries, place);
          else await this.create(target, blobs, entries, place, state === 'empty');
        },
        { bytes: total },
      );
    } catch (error) {
      throw asWriteError(error, sink, this.dir);
    } finally {
      stage.finish();
    }

    const names = entries.map((entry) => entry.annotations?.[Annotation.refName]).filter((name): name is string => name !== undefined);
    return {
      sink: 'oci',
      written: names.length > 0 ? names.map((name) => `${target}:${name}`) : [target],
      digest: artifactRoot(artifact).descriptor.digest,
      bytes: counts.bytes,
      details: { path: target, refNames: names, updatedExisting: state === 'layout', layersCopied: counts.copied, layersLinked: counts.linked, blobsKept: counts.kept },
    };
  }

  /** A new layout, built beside DIR and renamed into place. */
  private async create(target: string, blobs: BlobToWrite[], entries: Descriptor[], place: BlobPlacer, replaceEmpty: boolean): Promise<void> {
    await mkdir(dirname(target), { recursive: true });
    const temp = join(dirname(target), `.${basename(target)}.tmp-${randomSuffix()}`);
    try {
      await mkdir(join(temp, 'blobs', 'sha256'), { recursive: true });
      for (const blob of blobs) await place.put(blob, join(temp, 'blobs', 'sha256', digestHex(blob.digest)));
      await place.writeSmall(join(temp, OCI_LAYOUT_FILE), layoutFileBytes());
      const index: IndexJson = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: entries };
      await place.writeSmall(join(temp, 'index.json'), Buffer.from(JSON.stringify(index), 'utf8'));
      try {
        // rename(2) replaces an empty directory atomically, and fails if DIR gained content meanwhile.
        await rename(temp, target);
      } catch (error) {
        if (isErrno(error) && (error.code === 'ENOTEMPTY' || error.code === 'EEXIST')) {
          throw new UserError(`--oci ${target}: ${replaceEmpty ? 'the empty directory' : 'the directory'} was filled by someone else while the layout was written; nothing was changed`);
        }
        throw error;
      }
    } catch (error) {
      await removeQuietly(temp);
      throw error;
    }
  }

  /** An existing layout: blobs added one by one atomically, then index.json replaced atomically. */
  private async update(target: string, blobs: BlobToWrite[], entries: Descriptor[], place: BlobPlacer): Promise<void> {
    const index = await readIndex(target);
    const temp = join(target, `.uvimage-tmp-${randomSuffix()}`);
    await mkdir(temp);
    try {
      const blobDir = join(target, 'blobs', 'sha256');
      await mkdir(blobDir, { recursive: true });
      for (const blob of blobs) {
        const final = join(blobDir, digestHex(blob.digest));
        const existing = await stat(final).catch(() => undefined);
        if (existing?.isFile() && existing.size === blob.size) {
          place.counts.kept++;
          continue;
        }
        const staged = join(temp, digestHex(blob.digest));
        await place.put(blob, staged);
        await rename(staged, final);
      }
      const names = new Set(entries.map((entry) => entry.annotations?.[Annotation.refName]).filter((name) => name !== undefined));
      const kept = index.manifests.filter((entry) => {
        const name = entry.annotations?.[Annotation.refName];
        if (name !== undefined) return !names.has(name);
        // Unnamed entries: drop only an identical one of ours (writing the same thing twice).
        return !entries.some((ours) => ours.annotations?.[Annotation.refName] === undefined && ours.digest === entry.digest);
      });
      const updated: IndexJson = { ...index, manifests: [...kept, ...entries] };
      const staged = join(temp, 'index.json');
      await place.writeSmall(staged, Buffer.from(JSON.stringify(updated), 'utf8'));
      await rename(staged, join(target, 'index.json'));
    } finally {
      await removeQuietly(temp);
    }
  }
}

function layoutFileBytes(): Buffer {
  return Buffer.from(JSON.stringify({ imageLayoutVersion: OCI_LAYOUT_VERSION }), 'utf8');
}

/** Every blob of an artifact once: the index, then per image its layers, config and manifest. */
function blobsOf(artifact: Artifact): BlobToWrite[] {
  const out = new Map<Digest, BlobToWrite>();
  const addDocument = (document: { descriptor: Descriptor; bytes: Buffer }) => {
    if (!out.has(document.descriptor.digest)) out.set(document.descriptor.digest, { digest: document.descriptor.digest, size: document.bytes.length, bytes: document.bytes });
  };
  if (artifact.kind === 'index') addDocument(artifact.index.index);
  for (const image of artifactImages(artifact)) {
    for (const layer of image.layers) {
      const digest = layer.descriptor.digest;
      if (!out.has(digest)) out.set(digest, { digest, size: layer.descriptor.size, layer });
    }
    addDocument(image.config);
    addDocument(image.manifest);
  }
  return [...out.values()];
}

/** The blobs of the referrers, each once: the empty config, the documents, the artifact manifests. */
function referrerBlobsOf(referrers: readonly Referrer[]): BlobToWrite[] {
  const out = new Map<Digest, BlobToWrite>();
  for (const document of referrers.flatMap((referrer) => [...referrer.blobs, referrer.manifest])) {
    if (!out.has(document.descriptor.digest)) out.set(document.descriptor.digest, { digest: document.descriptor.digest, size: document.bytes.length, bytes: document.bytes });
  }
  return [...out.values()];
}

/** What is at DIR: nothing, an empty directory, or an OCI layout; anything else is refused. */
async function layoutState(target: string, sink: string, given: string): Promise<'absent' | 'empty' | 'layout'> {
  let names: string[];
  try {
    const info = await stat(target);
    if (!info.isDirectory()) throw new UserError(`${sink}: ${given} exists and is not a directory`);
    names = await readdir(target);
  } catch (error) {
    if (isErrno(error) && error.code === 'ENOENT') return 'absent';
    throw asWriteError(error, sink, given);
  }
  if (names.length === 0) return 'empty';
  if (names.includes(OCI_LAYOUT_FILE)) return 'layout';
  throw new UserError(`${sink}: ${given} exists and is not an OCI image layout (it has no ${OCI_LAYOUT_FILE} file); refusing to write into it`);
}

async function readIndex(target: string): Promise<IndexJson> {
  const where = `existing OCI layout ${target}`;
  let layout: unknown;
  try {
    layout = JSON.parse(await readFile(join(target, OCI_LAYOUT_FILE), 'utf8'));
  } catch (error) {
    throw new UserError(`${where}: ${OCI_LAYOUT_FILE} cannot be read as JSON: ${describeError(error)}`);
  }
  const version = (layout as { imageLayoutVersion?: unknown } | null)?.imageLayoutVersion;
  if (version !== OCI_LAYOUT_VERSION) {
    throw new UserError(`${where}: imageLayoutVersion is ${JSON.stringify(version)}; only ${OCI_LAYOUT_VERSION} is supported`);
  }
  let index: unknown;
  try {
    index = JSON.parse(await readFile(join(target, 'index.json'), 'utf8'));
  } catch (error) {
    if (isErrno(error) && error.code === 'ENOENT') return { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [] };
    throw new UserError(`${where}: index.json cannot be read as JSON: ${describeError(error)}`);
  }
  if (typeof index !== 'object' || index === null || !Array.isArray((index as IndexJson).manifests)) {
    throw new UserError(`${where}: index.json has no "manifests" list`);
  }
  return index as IndexJson;
}

/** Writes blobs to given paths: documents from memory, layers by link or stream. */
class BlobPlacer {
  constructor(
    private readonly source: BlobSource,
    private readonly store: BlobStore | undefined,
    readonly counts: { copied: number; linked: number; kept: number; bytes: number },
    private readonly onBytes: (bytes: number) => void,
  ) {}

  async writeSmall(path: string, bytes: Buffer): Promise<void> {
    await writeFile(path, bytes, { flag: 'wx', mode: 0o644 });
    this.counts.bytes += bytes.length;
  }

  async put(blob: BlobToWrite, path: string): Promise<void> {
    if ('bytes' in blob) {
      await this.writeSmall(path, blob.bytes);
      this.onBytes(blob.size);
      return;
    }
    if (this.store && (await this.tryLink(blob.layer, path))) return;
    await this.copy(blob.layer, path);
  }

  /** Hard-links a layer from the store once it is known intact; false when linking is not possible here. */
  private async tryLink(layer: Layer, path: string): Promise<boolean> {
    const store = this.store!;
    const digest = layer.descriptor.digest;
    await this.source.ensureLayer(layer);
    const [blobInfo, dirInfo] = await Promise.all([stat(store.blobPath(digest)), stat(dirname(path))]);
    if (blobInfo.dev !== dirInfo.dev) return false; // another file system: copy (and verify) instead
    // A link copies no bytes, so nothing would notice a corrupt store blob: check it first
    // (hashed in full unless hashed before and untouched since; CorruptBlobError, the blob
    // removed from the store, on a mismatch).
    if (!(await store.checkIntact(digest))) return false;
    try {
      await link(store.blobPath(digest), path);
    } catch (error) {
      if (isErrno(error) && (error.code === 'EXDEV' || error.code === 'EPERM' || error.code === 'EMLINK' || error.code === 'ENOTSUP' || error.code === 'ENOENT')) return false;
      throw error;
    }
    // The new link changed the file's ctime, not its bytes.
    await store.linkedAfterCheck(digest);
    this.counts.linked++;
    this.onBytes(layer.descriptor.size);
    return true;
  }

  private async copy(layer: Layer, path: string): Promise<void> {
    const input = await this.source.openLayer(layer);
    const counter = new ByteCounter(this.onBytes);
    await pipeline(input, counter, createWriteStream(path, { flags: 'wx', mode: 0o644 }));
    if (counter.bytes !== layer.descriptor.size) {
      throw new Error(`layer ${layer.descriptor.digest}: the blob source gave ${counter.bytes} bytes; its descriptor says ${layer.descriptor.size}`);
    }
    this.counts.copied++;
    this.counts.bytes += counter.bytes;
  }
}
