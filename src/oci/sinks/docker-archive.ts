/**
 * `--tar FILE`: a docker-archive, the format of `docker save` that `docker load`, `podman load`
 * and `skopeo … docker-archive:FILE` read:
 *
 *   <layer blob hex>.tar.gz   each distinct layer, exactly the blob of the image (still gzip'd)
 *   <config hex>.json         the image config, byte for byte (so the loaded image ID is its digest)
 *   manifest.json             [{"Config": …, "RepoTags": […], "Layers": […]}], written last
 *
 * RepoTags are canonical (`docker.io/me/app:1.0`): Docker shows them in their short form either
 * way, but podman names an image whose RepoTag has no registry `localhost/me/app:1.0`, which is
 * another image than the `-t me/app:1.0` (docker.io) the user meant.
 *
 * Layers go in compressed, as they are in the store: Docker's loader runs every layer file
 * through archive.DecompressStream and containers/image's docker-archive source through
 * compression.AutoDecompress, and both check the result against the config's diff_ids. So no
 * layer is decompressed or counted twice, the tar header's size is the descriptor's size (known
 * up front, nothing is buffered) and the file is as small as the pushed image.
 *
 * manifest.json comes last, so a truncated archive (a failed --load upload) is never a loadable
 * one. There is no `repositories` file: it is the pre-1.10 format, read by Docker only when
 * manifest.json is absent. There is no index.json/oci-layout either (Docker 25 adds them):
 * `podman load` (4.3) tries a file as an OCI archive before a docker-archive, so with them it
 * ignores manifest.json and names the image from index.json's annotations instead (observed:
 * ref.name `1.0` alone loads as `localhost/1.0:latest`) — one file, two sources of names that
 * tools read differently. Without them, docker and podman both read RepoTags.
 *
 * Every tar header has mode 0644, owner 0:0, no user/group names and mtime SOURCE_DATE_EPOCH
 * (else 0), and members come in a fixed order, so the same image and tags give the same bytes.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, rename, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { UserError } from '../../errors.js';
import { digestHex } from '../digest.js';
import { buildTimestamp, type Image, type Layer, type Artifact } from '../image.js';
import { encodeHeaders } from '../layer-writer.js';
import { MediaType } from '../media-types.js';
import { formatPlatform, hostPlatform, type Platform } from '../platform.js';
import type { BlobSource, Sink, SinkCheckContext, SinkContext, SinkResult } from '../sink.js';
import { asTask, stages } from '../../progress.js';
import { asWriteError, choosePlatform, parseSinkTags, randomSuffix, removeQuietly, selectImage } from './common.js';

const BLOCK = 512;

export interface DockerArchiveOptions {
  /** RepoTags, e.g. `docker.io/library/app:1.0` (each must carry a tag: Docker refuses a RepoTag without one). */
  repoTags: string[];
  /** mtime of the archive's tar headers; default buildTimestamp().seconds (SOURCE_DATE_EPOCH, else 0). */
  mtime?: number;
  /** Called with the size of each chunk as it is produced (for Progress.advance). */
  onBytes?: (bytes: number) => void;
  /**
   * How many of the image's first layers to leave out: they stay named in manifest.json, but
   * their files are not written. Only for a reader known to hold those layers already (see
   * DockerDaemonSink); such an archive is not loadable anywhere else. Default 0.
   */
  omitLayers?: number;
}

/** The archive's manifest.json entry for one image. */
export interface DockerArchiveManifestEntry {
  Config: string;
  RepoTags: string[] | null;
  Layers: string[];
}

/** The member names of an image in the archive. */
export function dockerArchiveLayout(image: Image): { config: string; layers: string[] } {
  return {
    config: `${digestHex(image.config.descriptor.digest)}.json`,
    layers: image.layers.map((layer) => `${digestHex(layer.descriptor.digest)}${layerExtension(layer.descriptor.mediaType)}`),
  };
}

function layerExtension(mediaType: string): string {
  if (mediaType.endsWith('+gzip') || mediaType.endsWith('.gzip')) return '.tar.gz';
  if (mediaType.endsWith('+zstd') || mediaType.endsWith('.zstd')) return '.tar.zst';
  return '.tar';
}

/**
 * The docker-archive of one image as a stream of chunks. Layers are read from `blobs` one at a
 * time when reached and pass straight through; a blob whose bytes do not match its digest makes
 * the stream fail (the BlobSource checks at the blob's end), before manifest.json is produced.
 */
export async function* dockerArchiveChunks(image: Image, blobs: BlobSource, options: DockerArchiveOptions): AsyncGenerator<Buffer> {
  const mtime = options.mtime ?? buildTimestamp().seconds;
  const names = dockerArchiveLayout(image);
  const emit = (chunk: Buffer): Buffer => {
    options.onBytes?.(chunk.length);
    return chunk;
  };
  const header = (path: string, size: number): Buffer =>
    emit(encodeHeaders({ path, type: 'file', mode: 0o644, uid: 0, gid: 0, size }, mtime));

  const written = new Set<string>(names.layers.slice(0, options.omitLayers ?? 0));
  for (const [index, layer] of image.layers.entries()) {
    const name = names.layers[index]!;
    if (written.has(name)) continue; // the same layer twice in one image (one member, named twice in Layers), or omitted
    written.add(name);
    if (layer.descriptor.mediaType === MediaType.dockerForeignLayerGzip) {
      throw new UserError(`layer ${layer.descriptor.digest} is a foreign (Windows) layer, which a docker-archive cannot carry`);
    }
    yield header(name, layer.descriptor.size);
    yield* layerChunks(layer, blobs, emit);
    yield emit(padding(layer.descriptor.size));
  }

  yield header(names.config, image.config.bytes.length);
  yield emit(image.config.bytes);
  yield emit(padding(image.config.bytes.length));

  const manifest: DockerArchiveManifestEntry[] = [
    { Config: names.config, RepoTags: options.repoTags.length > 0 ? options.repoTags : null, Layers: names.layers },
  ];
  const manifestBytes = Buffer.from(JSON.stringify(manifest), 'utf8');
  yield header('manifest.json', manifestBytes.length);
  yield emit(manifestBytes);
  yield emit(padding(manifestBytes.length));

  yield emit(Buffer.alloc(2 * BLOCK)); // end of archive
}

async function* layerChunks(layer: Layer, blobs: BlobSource, emit: (chunk: Buffer) => Buffer): AsyncGenerator<Buffer> {
  const expected = layer.descriptor.size;
  const stream = await blobs.openLayer(layer);
  let seen = 0;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      seen += chunk.length;
      // The header already promised `expected` bytes; more would corrupt the archive.
      if (seen > expected) break;
      yield emit(chunk);
    }
  } finally {
    stream.destroy();
  }
  if (seen !== expected) {
    const got = seen > expected ? `more than ${expected}` : String(seen);
    throw new Error(`layer ${layer.descriptor.digest}: the blob source gave ${got} bytes; its descriptor says ${expected}`);
  }
}

function padding(size: number): Buffer {
  const rest = size % BLOCK;
  return Buffer.alloc(rest === 0 ? 0 : BLOCK - rest);
}

/**
 * Writes the docker-archive of one image to `out` and ends it. On failure `out` is destroyed
 * (an upload is aborted mid-body, so the receiver never sees a complete archive) and the error
 * is thrown. Returns the number of bytes written.
 */
export async function writeDockerArchive(out: Writable, image: Image, blobs: BlobSource, options: DockerArchiveOptions): Promise<number> {
  let bytes = 0;
  const chunks = dockerArchiveChunks(image, blobs, {
    ...options,
    onBytes: (count) => {
      bytes += count;
      options.onBytes?.(count);
    },
  });
  async function* recorded(): AsyncGenerator<Buffer> {
    try {
      yield* chunks;
    } catch (error) {
      if (typeof error === 'object' && error !== null) sourceErrors.add(error);
      throw error;
    }
  }
  await pipeline(Readable.from(recorded(), { objectMode: false }), out);
  return bytes;
}

const sourceErrors = new WeakSet<object>();

/**
 * Whether writeDockerArchive failed because producing the archive failed (a blob could not be
 * read or was corrupt), as opposed to the destination failing (a full disk, a closed connection).
 */
export function isArchiveSourceError(error: unknown): boolean {
  return typeof error === 'object' && error !== null && sourceErrors.has(error);
}

export interface DockerArchiveSinkOptions {
  /**
   * Which image of a multi-platform artifact goes into the archive (a docker-archive holds one
   * per tag); default the host's platform. For a single image, a platform given here must match it.
   */
  platform?: Platform;
}

/** `--tar FILE`. */
export class DockerArchiveSink implements Sink {
  readonly name = 'tar' as const;

  constructor(
    readonly file: string,
    private readonly options: DockerArchiveSinkOptions = {},
  ) {}

  forVariant(suffix: string): DockerArchiveSink {
    const file = /\.tar$/.test(this.file) ? this.file.replace(/\.tar$/, `${suffix}.tar`) : `${this.file}${suffix}`;
    return new DockerArchiveSink(file, this.options);
  }

  async check(context: SinkCheckContext): Promise<void> {
    const sink = `--tar ${this.file}`;
    choosePlatform(context.platforms, this.options.platform, hostPlatform(), sink);
    parseSinkTags(context.tags, sink);
    await this.checkTarget(sink);
  }

  private async checkTarget(sink: string): Promise<void> {
    const existing = await stat(resolve(this.file)).catch(() => undefined);
    if (existing?.isDirectory()) throw new UserError(`${sink}: ${this.file} is a directory; give the path of the archive file to write`);
  }

  async write(artifact: Artifact, context: SinkContext): Promise<SinkResult> {
    const sink = `--tar ${this.file}`;
    const image = selectImage(artifact, this.options.platform, hostPlatform(), sink);
    const tags = parseSinkTags(context.tags, sink);
    const target = resolve(this.file);
    await this.checkTarget(sink);

    const total = image.layers.reduce((sum, layer) => sum + layer.descriptor.size, 0) + image.config.bytes.length;
    const stage = context.progress.stage(stages.dockerArchive(this.file));
    const temp = `${target}.tmp-${randomSuffix()}`;
    let bytes: number;
    try {
      bytes = await asTask(
        stage,
        formatPlatform(image.platform),
        async (task) => {
          await mkdir(dirname(target), { recursive: true });
          // 'wx': the temp name is ours alone; never follow or reuse something already there.
          const out = createWriteStream(temp, { flags: 'wx', mode: 0o644 });
          const written = await writeDockerArchive(out, image, context.blobs, {
            repoTags: tags.map((tag) => tag.canonical),
            onBytes: (count) => task.advance(count),
          });
          await rename(temp, target);
          return written;
        },
        { bytes: total },
      );
    } catch (error) {
      await removeQuietly(temp);
      throw asWriteError(error, sink, this.file);
    } finally {
      stage.finish();
    }
    return {
      sink: 'tar',
      written: [target],
      digest: image.manifest.descriptor.digest,
      bytes,
      details: {
        imageId: image.config.descriptor.digest,
        platform: formatPlatform(image.platform),
        repoTags: tags.map((tag) => tag.canonical),
        ...(artifact.kind === 'index' ? { indexDigest: artifact.index.index.descriptor.digest } : {}),
      },
    };
  }
}
