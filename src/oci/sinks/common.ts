/**
 * What the file-producing sinks (--oci, --tar, --load) share: tag handling, picking one image
 * of an index, temp names, and turning file-system failures into one-line UserErrors.
 */
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { Transform, type TransformCallback } from 'node:stream';
import { UserError, describeError } from '../../errors.js';
import { DOCKER_HUB_REGISTRY, formatReference, parseReference } from '../../registry/reference.js';
import type { Artifact, Image } from '../image.js';
import { formatPlatform, platformMatches, type Platform } from '../platform.js';

/** One -t value, in the forms the sinks need. */
export interface SinkTag {
  /** As the user wrote it. */
  given: string;
  /** The tag alone (`1.0`; `latest` when none was written): the OCI layout ref name. */
  tag: string;
  /** The short form `docker save` writes in RepoTags: `app:1.0`, `ghcr.io/me/app:1.0`. */
  familiar: string;
  /** The canonical form: `docker.io/library/app:1.0`, `ghcr.io/me/app:1.0`. */
  canonical: string;
}

/**
 * Parses -t values by Docker's reference rules. A tag must name a repository and a tag (a
 * missing tag means `latest`); a digest cannot be written into a layout or a docker archive as
 * a name, so a reference with one is refused.
 */
export function parseSinkTags(tags: readonly string[], sink: string): SinkTag[] {
  const seen = new Set<string>();
  const out: SinkTag[] = [];
  for (const given of tags) {
    const reference = parseReference(given);
    if (reference.digest !== undefined) {
      throw new UserError(`${sink}: tag ${JSON.stringify(given)} has a digest; a tag names a repository and a tag, e.g. app:1.0`);
    }
    const tag = reference.tag ?? 'latest';
    const canonical = formatReference({ registry: reference.registry, repository: reference.repository, tag });
    if (seen.has(canonical)) continue;
    seen.add(canonical);
    const repository =
      reference.registry === DOCKER_HUB_REGISTRY
        ? reference.repository.replace(/^library\/(?=[^/]+$)/, '')
        : `${reference.registry}/${reference.repository}`;
    out.push({ given, tag, familiar: `${repository}:${tag}`, canonical });
  }
  return out;
}

/**
 * The image of an artifact for one platform. A single image is used whatever its platform
 * unless a platform was asked for explicitly; from an index, the image matching `wanted` (or,
 * without one, `fallback`, the host's or the engine's platform) is taken. A miss names what the
 * artifact has.
 */
export function selectImage(artifact: Artifact, wanted: Platform | undefined, fallback: Platform, sink: string): Image {
  const images = artifact.kind === 'image' ? [artifact.image] : artifact.index.images;
  return images[choosePlatform(images.map((image) => image.platform), wanted, fallback, sink)]!;
}

/** Which of the platforms built a single-platform sink takes (selectImage's rule), by position; before the build, to check the choice. */
export function choosePlatform(platforms: Platform[], wanted: Platform | undefined, fallback: Platform, sink: string): number {
  if (platforms.length === 1) {
    if (wanted && !platformMatches(wanted, platforms[0]!)) {
      throw new UserError(`${sink}: the image is for ${formatPlatform(platforms[0]!)}, not ${formatPlatform(wanted)}`);
    }
    return 0;
  }
  const platform = wanted ?? fallback;
  const index = platforms.findIndex((candidate) => platformMatches(platform, candidate));
  if (index < 0) {
    const available = platforms.map(formatPlatform).join(', ');
    throw new UserError(
      `${sink}: the image index has no image for ${formatPlatform(platform)}${wanted ? '' : ' (this machine)'}; it has ${available || 'none'}. Choose one of them as the platform`,
    );
  }
  return index;
}

export function randomSuffix(): string {
  return randomBytes(6).toString('hex');
}

/**
 * Removes a temp file or directory on the way out of a failure. Never throws: the failure being
 * reported matters more, and a path under a non-directory (ENOTDIR) was never created anyway.
 */
export async function removeQuietly(path: string): Promise<void> {
  await rm(path, { recursive: true, force: true }).catch(() => {});
}

/** Whether an error is a failed system call (ENOENT, EACCES, ENOTDIR, ENOSPC…). */
export function isErrno(error: unknown): error is NodeJS.ErrnoException {
  return error instanceof Error && typeof (error as NodeJS.ErrnoException).code === 'string' && 'syscall' in error;
}

/**
 * A failed system call while writing `path` becomes a one-line UserError (the user can fix a
 * path, a permission, a full disk); anything else (a CorruptBlobError, a bug) is left as it is.
 */
export function asWriteError(error: unknown, sink: string, path: string): unknown {
  if (isErrno(error)) return new UserError(`${sink}: cannot write ${path}: ${describeError(error)}`, { cause: error });
  return error;
}

/** Counts the bytes flowing through, reporting each chunk's size (for Progress.advance). */
export class ByteCounter extends Transform {
  bytes = 0;
  constructor(private readonly onBytes?: (bytes: number) => void) {
    super();
  }
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    this.onBytes?.(chunk.length);
    callback(null, chunk);
  }
}
