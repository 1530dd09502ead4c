/**
 * Any image, to read: an OCI image layout (`oci:DIR[:TAG]`), a docker-archive
 * (`docker-archive:FILE[:REF]`, as `docker save` writes it, in its classic form or the OCI-layout
 * form of Docker 25+, and as uvimage's --tar writes it), or a registry reference
 * (`registry.example.com/repo:tag`, `…@sha256:…`). Each becomes one `SourceImage`: the platform
 * manifest's annotations, the config, and the layers, each of which opens as its uncompressed tar.
 *
 * Nothing is extracted: a layer is read as a stream, decompressed as its media type says (gzip,
 * zstd, or none; by its first bytes where a classic docker-archive gives no media type), and
 * both its blob digest and its diff_id are checked as the bytes stream past, so the iteration
 * fails at its end when either does not match. Documents (indexes, manifests, configs) are
 * checked against their digests before they are parsed.
 *
 * An index (several platforms) gives the platform asked for, else this machine's, else its only
 * one; a list of what it has otherwise. Registry images go through the RegistryClient (their
 * blobs into the store, verified, as pulls do), so credentials, retries and tokens work as they
 * do for bases.
 */
import { createReadStream } from 'node:fs';
import { open, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, pipeline, type Duplex, type Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { Progress } from '../progress.js';
import { spawnZstd } from '../debian/deb.js';
import { UserError, describeError } from '../errors.js';
import { HashingStream, isDigest, sha256Digest, type Digest } from '../oci/digest.js';
import type { Image, ImageConfig } from '../oci/image.js';
import type { BlobSource } from '../oci/sink.js';
import { isIndexMediaType } from '../oci/media-types.js';
import { formatPlatform, hostPlatform, platformMatches, type Platform } from '../oci/platform.js';
import type { BlobStore } from '../oci/store.js';
import { readTar, type TarMember } from '../oci/tar-reader.js';
import { RegistryClient, type RepositoryRef } from '../registry/client.js';
import { fetchLayerBlob } from '../registry/pull.js';
import { formatReference, parseReference } from '../registry/reference.js';

/** One layer of a source image. */
export interface SourceLayer {
  /** 0-based position in the image. */
  index: number;
  /** As the manifest says; undefined in a classic docker-archive, which has no media types. */
  mediaType?: string;
  /** The blob's digest, when the source names it (a classic docker-archive names only diff_ids). */
  digest?: Digest;
  /** Bytes of the blob as the source holds it (compressed or not). */
  size: number;
  diffId: Digest;
  /**
   * The layer's uncompressed tar. The blob digest (when known) and the diff_id are checked as
   * it streams: the iteration throws a UserError at its end on a mismatch. `read` is told the
   * blob's digest and its compression once the blob has been read in full.
   */
  openTar(read?: (blob: { digest: Digest; compression: Compression }) => void): AsyncIterable<Buffer>;
}

export interface SourceImage {
  /** The image as the user named it. */
  name: string;
  transport: 'oci' | 'docker-archive' | 'registry';
  platform: Platform;
  /** The platform manifest's digest; a classic docker-archive has no manifest. */
  manifestDigest?: Digest;
  /** The platform manifest's annotations (none in a docker-archive). */
  annotations: Record<string, string>;
  configDigest: Digest;
  config: ImageConfig;
  layers: SourceLayer[];
}

export interface OpenImageOptions {
  /** The platform to take from an index; default this machine's, else the index's only one. */
  platform?: Platform;
  /** For registry images: where their blobs go (verified), and the client to fetch them with. */
  store: () => Promise<BlobStore>;
  client: () => RegistryClient;
  progress?: Progress;
}

const documentSizeLimit = 8 * 1024 * 1024;

/** Opens an image by its name: `oci:DIR[:TAG]`, `docker-archive:FILE[:REF]`, or a registry reference. */
export async function openSourceImage(name: string, options: OpenImageOptions): Promise<SourceImage> {
  if (name.startsWith('oci:')) {
    const { path, rest } = await splitPath(name.slice('oci:'.length), 'directory', name);
    return openOciLayout(name, path, rest, options.platform);
  }
  if (name.startsWith('docker-archive:')) {
    const { path, rest } = await splitPath(name.slice('docker-archive:'.length), 'file', name);
    return openDockerArchive(name, path, rest, options.platform);
  }
  return openRegistryImage(name, name.replace(/^docker:\/\//, ''), options);
}

/**
 * `PATH[:SUFFIX]`: a path may itself hold colons, so the longest prefix that exists (as a
 * directory or a file) is the path, and what follows its colon the tag or reference.
 */
async function splitPath(text: string, kind: 'directory' | 'file', name: string): Promise<{ path: string; rest?: string }> {
  if (text === '') throw new UserError(`${name}: no ${kind} given`);
  const isKind = async (path: string) => {
    const stats = await stat(path).catch(() => undefined);
    return kind === 'directory' ? stats?.isDirectory() === true : stats?.isFile() === true;
  };
  if (await isKind(text)) return { path: text };
  for (let at = text.lastIndexOf(':'); at > 0; at = text.lastIndexOf(':', at - 1)) {
    if (await isKind(text.slice(0, at))) return { path: text.slice(0, at), rest: text.slice(at + 1) };
  }
  throw new UserError(`${name}: no such ${kind} ${JSON.stringify(text.includes(':') && kind === 'directory' ? text.slice(0, text.lastIndexOf(':')) : text)}`);
}

// ---------------------------------------------------------------------------------------------
// Documents: JSON checked against digests, descriptors from untrusted JSON.

/** A descriptor read from a document, checked enough to be followed. */
interface FoundDescriptor {
  mediaType?: string;
  digest: Digest;
  size: number;
  platform?: Platform;
  annotations: Record<string, string>;
}

function parseJsonObject(bytes: Buffer, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new UserError(`${what} is not valid JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new UserError(`${what} is not a JSON object`);
  return value as Record<string, unknown>;
}

function stringRecord(value: unknown): Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return {};
  return Object.fromEntries(Object.entries(value).filter((entry): entry is [string, string] => typeof entry[1] === 'string'));
}

function readDescriptor(value: unknown, where: string): FoundDescriptor {
  const record = value as Record<string, unknown> | null;
  if (typeof record !== 'object' || record === null) throw new UserError(`${where} is not a descriptor`);
  if (typeof record.digest !== 'string' || !isDigest(record.digest)) {
    throw new UserError(`${where} has digest ${JSON.stringify(record.digest)}; uvimage reads sha256 digests only`);
  }
  if (typeof record.size !== 'number' || !Number.isSafeInteger(record.size) || record.size < 0) throw new UserError(`${where} has no valid size`);
  const descriptor: FoundDescriptor = { digest: record.digest, size: record.size, annotations: stringRecord(record.annotations) };
  if (typeof record.mediaType === 'string') descriptor.mediaType = record.mediaType;
  const platform = record.platform as Record<string, unknown> | undefined;
  if (platform && typeof platform.os === 'string' && typeof platform.architecture === 'string') {
    descriptor.platform = { os: platform.os, architecture: platform.architecture };
    if (typeof platform.variant === 'string' && platform.variant) descriptor.platform.variant = platform.variant;
  }
  return descriptor;
}

function isIndexDocument(document: Record<string, unknown>): boolean {
  if (typeof document.mediaType === 'string' && isIndexMediaType(document.mediaType)) return true;
  return Array.isArray(document.manifests) && document.config === undefined;
}

/**
 * The entry of an index for the platform wanted: the one asked for (an exact variant first),
 * else this machine's, else the only one. Entries without a real platform (attestations say
 * unknown/unknown) are not images.
 */
export function choosePlatformEntry<T extends { platform?: Platform }>(entries: T[], wanted: Platform | undefined, what: string): T {
  const images = entries.filter((entry) => entry.platform && entry.platform.os !== 'unknown' && entry.platform.architecture !== 'unknown');
  const available = () => [...new Set(images.map((entry) => formatPlatform(entry.platform!)))].join(', ') || 'no platform images';
  if (wanted) {
    const matching = images.filter((entry) => platformMatches(wanted, entry.platform!));
    const chosen = matching.find((entry) => entry.platform!.variant === wanted.variant) ?? matching[0];
    if (!chosen) throw new UserError(`${what} has no ${formatPlatform(wanted)}; it has ${available()}`);
    return chosen;
  }
  const host = images.find((entry) => platformMatches(hostPlatform(), entry.platform!));
  if (host) return host;
  if (images.length === 1) return images[0]!;
  throw new UserError(`${what} has several platforms (${available()}) and none is this machine's; choose one with --platform`);
}

/** What a reader of blobs by digest gives: documents whole (checked), layers as raw streams. */
interface BlobAccess {
  manifest(descriptor: { digest: Digest; size?: number }, what: string): Promise<Buffer>;
  config(descriptor: { digest: Digest; size?: number }, what: string): Promise<Buffer>;
  /** The raw blob (checked by whoever reads it, see verifiedTar). */
  layer(descriptor: FoundDescriptor, diffId: Digest, what: string): Promise<Readable>;
}

/**
 * From an index or a manifest down to one platform's manifest, and from it the config and
 * layers. Used by the OCI layout and by registries alike; `root` is the document a tag names.
 */
async function imageFromDocuments(
  name: string,
  transport: SourceImage['transport'],
  root: { document: Record<string, unknown>; digest?: Digest; platform?: Platform },
  blobs: BlobAccess,
  wanted: Platform | undefined,
): Promise<SourceImage> {
  let current = root;
  let fromIndex = false;
  for (let depth = 0; isIndexDocument(current.document); depth++) {
    if (depth === 4) throw new UserError(`${name}: indexes nest deeper than uvimage follows`);
    const entries = (Array.isArray(current.document.manifests) ? current.document.manifests : []).map((entry, position) =>
      readDescriptor(entry, `${name}: index entry ${position + 1}`),
    );
    const entry = entries.length === 1 && !entries[0]!.platform ? entries[0]! : choosePlatformEntry(entries, wanted, name);
    const bytes = await blobs.manifest(entry, `${name}: manifest ${entry.digest}`);
    current = { document: parseJsonObject(bytes, `${name}: manifest ${entry.digest}`), digest: entry.digest, platform: entry.platform };
    fromIndex = true;
  }
  const manifest = current.document;
  if (manifest.schemaVersion === 1) throw new UserError(`${name} has a Docker schema 1 manifest, which uvimage does not read`);
  if (typeof manifest.config !== 'object' || manifest.config === null || !Array.isArray(manifest.layers)) {
    throw new UserError(`${name}: its manifest has no config or layers${typeof manifest.mediaType === 'string' ? ` (media type ${manifest.mediaType})` : ''}`);
  }
  const configDescriptor = readDescriptor(manifest.config, `${name}: manifest config`);
  const config = parseConfig(await blobs.config(configDescriptor, `${name}: config ${configDescriptor.digest}`), `${name}: config ${configDescriptor.digest}`);
  const platform = platformOfConfig(config);
  if (wanted && !fromIndex && !platformMatches(wanted, platform)) {
    throw new UserError(`${name} is for ${formatPlatform(platform)}, not ${formatPlatform(wanted)}`);
  }
  const descriptors = manifest.layers.map((layer, position) => readDescriptor(layer, `${name}: layer ${position + 1}`));
  const diffIds = checkDiffIds(config, descriptors.length, name);
  const layers = descriptors.map((descriptor, index): SourceLayer => {
    const what = `${name}: layer ${index + 1} (${descriptor.digest})`;
    return {
      index,
      mediaType: descriptor.mediaType,
      digest: descriptor.digest,
      size: descriptor.size,
      diffId: diffIds[index]!,
      openTar: (read) => verifiedTar(() => blobs.layer(descriptor, diffIds[index]!, what), { ...descriptor, diffId: diffIds[index]! }, what, read),
    };
  });
  return {
    name,
    transport,
    platform,
    manifestDigest: current.digest,
    annotations: stringRecord(manifest.annotations),
    configDigest: configDescriptor.digest,
    config,
    layers,
  };
}

function parseConfig(bytes: Buffer, what: string): ImageConfig {
  const config = parseJsonObject(bytes, what) as Partial<ImageConfig>;
  if (typeof config.os !== 'string' || typeof config.architecture !== 'string' || typeof config.rootfs !== 'object' || config.rootfs === null || !Array.isArray(config.rootfs.diff_ids)) {
    throw new UserError(`${what} is not a container image config (no os, architecture or rootfs.diff_ids)`);
  }
  return config as ImageConfig;
}

function platformOfConfig(config: ImageConfig): Platform {
  const platform: Platform = { os: config.os, architecture: config.architecture };
  if (typeof config.variant === 'string' && config.variant) platform.variant = config.variant;
  return platform;
}

function checkDiffIds(config: ImageConfig, layers: number, name: string): Digest[] {
  const diffIds = config.rootfs.diff_ids;
  if (diffIds.length !== layers) throw new UserError(`${name} is inconsistent: ${layers} layers but ${diffIds.length} diff_ids in its config`);
  for (const [index, diffId] of diffIds.entries()) {
    if (typeof diffId !== 'string' || !isDigest(diffId)) throw new UserError(`${name}: diff_id ${index + 1} is not a sha256 digest: ${JSON.stringify(diffId)}`);
  }
  return diffIds;
}

function checkDocumentSize(descriptor: { size?: number }, what: string): void {
  if (descriptor.size !== undefined && descriptor.size > documentSizeLimit) throw new UserError(`${what} is ${descriptor.size} bytes, more than a document may be`);
}

function checkedDocument(bytes: Buffer, digest: Digest, what: string): Buffer {
  const actual = sha256Digest(bytes);
  if (actual !== digest) throw new UserError(`${what} does not match its digest (it hashes to ${actual})`);
  return bytes;
}

// ---------------------------------------------------------------------------------------------
// Layers: decompressed and checked as they stream.

export type Compression = 'gzip' | 'zstd' | 'none';

/** The compression a layer media type names (OCI `+gzip`/`+zstd`, Docker `.tar.gzip`), if it names one. */
export function compressionOfMediaType(mediaType: string | undefined): Compression | undefined {
  if (!mediaType) return undefined;
  if (/[+.]gzip$/.test(mediaType)) return 'gzip';
  if (/[+.]zstd$/.test(mediaType)) return 'zstd';
  if (/\.tar$/.test(mediaType)) return 'none';
  return undefined;
}

/** gzip (RFC 1952) and zstd (RFC 8878) by their magic numbers; anything else is taken as tar. */
function sniffCompression(head: Buffer): Compression {
  if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  return 'none';
}

export async function* verifiedTar(
  open: () => Promise<Readable>,
  expected: { mediaType?: string; digest?: Digest; size: number; diffId: Digest },
  what: string,
  onRead?: (blob: { digest: Digest; compression: Compression }) => void,
): AsyncGenerator<Buffer> {
  const raw = await open();
  const blobHash = new HashingStream();
  const tarHash = new HashingStream();
  let decoder: Duplex | undefined;
  let compression: Compression = 'none';
  try {
    const iterator = raw[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    const first = await iterator.next();
    const head: Buffer = first.done ? Buffer.alloc(4) : first.value;
    compression = compressionOfMediaType(expected.mediaType) ?? sniffCompression(head.length >= 4 ? head : Buffer.concat([head, Buffer.alloc(4)]));
    decoder = compression === 'gzip' ? createGunzip() : compression === 'zstd' ? spawnZstd(what) : new PassThrough();
    const rest = (async function* () {
      if (!first.done) yield first.value;
      for (let next = await iterator.next(); !next.done; next = await iterator.next()) yield next.value;
    })();
    pipeline(rest, blobHash, decoder, tarHash, () => {});
    for await (const chunk of tarHash) yield chunk as Buffer;
  } catch (error) {
    if (error instanceof UserError) throw error;
    throw new UserError(`${what} cannot be read: ${describeError(error)}`, { cause: error });
  } finally {
    raw.destroy();
    decoder?.destroy();
  }
  if (expected.digest && blobHash.digest !== expected.digest) throw new UserError(`${what} does not match its digest (its blob hashes to ${blobHash.digest})`);
  if (blobHash.size !== expected.size) throw new UserError(`${what} is ${blobHash.size} bytes, not the ${expected.size} its descriptor says`);
  if (tarHash.digest !== expected.diffId) throw new UserError(`${what} does not match its diff_id ${expected.diffId} (its tar hashes to ${tarHash.digest})`);
  onRead?.({ digest: blobHash.digest, compression });
}

// ---------------------------------------------------------------------------------------------
// oci:DIR[:TAG]

async function openOciLayout(name: string, dir: string, tag: string | undefined, wanted: Platform | undefined): Promise<SourceImage> {
  const layoutFile = await readFile(join(dir, 'oci-layout'), 'utf8').catch(() => undefined);
  if (layoutFile === undefined) throw new UserError(`${name}: ${dir} is not an OCI image layout (it has no oci-layout file)`);
  const indexBytes = await readFile(join(dir, 'index.json')).catch((error: unknown) => {
    throw new UserError(`${name}: cannot read ${join(dir, 'index.json')}: ${describeError(error)}`);
  });
  const index = parseJsonObject(indexBytes, `${name}: index.json`);
  const blobPath = (digest: Digest) => join(dir, 'blobs', 'sha256', digest.slice('sha256:'.length));
  const document = async (descriptor: { digest: Digest; size?: number }, what: string) => {
    checkDocumentSize(descriptor, what);
    const bytes = await readFile(blobPath(descriptor.digest)).catch(() => {
      throw new UserError(`${what} is missing from the layout (${blobPath(descriptor.digest)})`);
    });
    return checkedDocument(bytes, descriptor.digest, what);
  };
  const blobs: BlobAccess = {
    manifest: document,
    config: document,
    async layer(descriptor, _diffId, what) {
      const path = blobPath(descriptor.digest);
      if (!(await stat(path).catch(() => undefined))?.isFile()) throw new UserError(`${what} is missing from the layout (${path})`);
      return createReadStream(path, { highWaterMark: 256 * 1024 });
    },
  };
  const entries = (Array.isArray(index.manifests) ? index.manifests : []).map((entry, position) => readDescriptor(entry, `${name}: index.json entry ${position + 1}`));
  const refName = (entry: FoundDescriptor) => entry.annotations['org.opencontainers.image.ref.name'];
  const tags = [...new Set(entries.map(refName).filter((ref): ref is string => ref !== undefined))];
  let candidates = entries;
  if (tag !== undefined) {
    candidates = entries.filter((entry) => refName(entry) === tag);
    if (candidates.length === 0) throw new UserError(`${name}: the layout has no tag ${JSON.stringify(tag)}; it has ${tags.join(', ') || 'no tags'}`);
  } else if (tags.length > 1) {
    throw new UserError(`${name}: the layout holds several tags (${tags.join(', ')}); name one as oci:${dir}:TAG`);
  }
  if (candidates.length === 0) throw new UserError(`${name}: the layout's index.json lists no images`);
  // One entry is followed as it is; several (one tag for several platform manifests) are an index.
  const root =
    candidates.length === 1
      ? { document: parseJsonObject(await blobs.manifest(candidates[0]!, `${name}: manifest ${candidates[0]!.digest}`), `${name}: manifest ${candidates[0]!.digest}`), digest: candidates[0]!.digest }
      : { document: { ...index, manifests: (index.manifests as unknown[]).filter((_entry, position) => candidates.includes(entries[position]!)) } };
  return imageFromDocuments(name, 'oci', root, blobs, wanted);
}

// ---------------------------------------------------------------------------------------------
// docker-archive:FILE[:REF]

interface ArchiveMember {
  member: TarMember;
  /** Where the content starts in the file. */
  offset: number;
}

/**
 * A docker-archive: the members are indexed in one pass (only manifest.json is held), then
 * configs and layers are read from their byte ranges in the file. manifest.json's paths are
 * `<hex>.json` and `<id>/layer.tar` (classic `docker save`; a repeated layer may be a symlink to
 * another), `<hex>.tar.gz` (uvimage's --tar) or `blobs/sha256/<hex>` (Docker 25+, whose archive is
 * also an OCI layout). A name with a sha256 in it is checked against it; every layer's tar is
 * checked against the config's diff_ids.
 */
async function openDockerArchive(name: string, file: string, ref: string | undefined, wanted: Platform | undefined): Promise<SourceImage> {
  const head = Buffer.alloc(2);
  const handle = await open(file, 'r');
  try {
    await handle.read(head, 0, 2, 0);
  } finally {
    await handle.close();
  }
  if (head[0] === 0x1f && head[1] === 0x8b) throw new UserError(`${name}: ${file} is gzip-compressed; give the uncompressed archive (gunzip it first)`);
  const members = new Map<string, ArchiveMember>();
  let manifestBytes: Buffer | undefined;
  const clean = (path: string) => path.replace(/^(\.\/)+/, '').replace(/\/+$/, '');
  for await (const member of readTar(createReadStream(file, { highWaterMark: 256 * 1024 }), {
    what: `${name}`,
    collect: (entry) => clean(entry.name) === 'manifest.json',
    maxCollect: documentSizeLimit,
  })) {
    members.set(clean(member.name), { member, offset: member.offset });
    if (member.content) manifestBytes = member.content;
  }
  if (!manifestBytes) throw new UserError(`${name}: ${file} has no manifest.json; it is not a docker-archive (docker save)`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(manifestBytes.toString('utf8'));
  } catch {
    throw new UserError(`${name}: manifest.json is not valid JSON`);
  }
  if (!Array.isArray(parsed) || parsed.length === 0) throw new UserError(`${name}: manifest.json lists no images`);
  const images = parsed.map((entry, position) => {
    const record = entry as { Config?: unknown; RepoTags?: unknown; Layers?: unknown };
    if (typeof record?.Config !== 'string' || !Array.isArray(record.Layers) || record.Layers.some((layer) => typeof layer !== 'string')) {
      throw new UserError(`${name}: manifest.json entry ${position + 1} has no Config or Layers`);
    }
    const repoTags = Array.isArray(record.RepoTags) ? record.RepoTags.filter((tag): tag is string => typeof tag === 'string') : [];
    return { config: record.Config, layers: record.Layers as string[], repoTags };
  });
  let chosen = images[0]!;
  if (ref !== undefined) {
    const canonical = (text: string) => {
      try {
        return formatReference(parseReference(text));
      } catch {
        return text;
      }
    };
    const found = images.find((image) => image.repoTags.some((tag) => tag === ref || canonical(tag) === canonical(ref)));
    if (!found) throw new UserError(`${name}: the archive has no image ${JSON.stringify(ref)}; it has ${images.flatMap((image) => image.repoTags).join(', ') || 'untagged images only'}`);
    chosen = found;
  } else if (images.length > 1) {
    throw new UserError(`${name}: the archive holds ${images.length} images (${images.map((image) => image.repoTags[0] ?? image.config).join(', ')}); name one as docker-archive:${file}:REF`);
  }

  const resolve = (path: string, what: string): ArchiveMember => {
    let current = clean(path);
    for (let hops = 0; hops < 8; hops++) {
      const found = members.get(current);
      if (!found) break;
      if (found.member.type === 'file') return found;
      if (found.member.type !== 'symlink' && found.member.type !== 'hardlink') break;
      const target = found.member.linkname;
      const base = found.member.type === 'symlink' && !target.startsWith('/') ? current.split('/').slice(0, -1) : [];
      const parts: string[] = [];
      for (const part of [...base, ...target.split('/')]) {
        if (part === '..') parts.pop();
        else if (part !== '.' && part !== '') parts.push(part);
      }
      current = parts.join('/');
    }
    throw new UserError(`${name}: ${what} ${JSON.stringify(path)} is not in the archive`);
  };
  const range = (found: ArchiveMember) => createReadStream(file, { start: found.offset, end: found.offset + found.member.size - 1, highWaterMark: 256 * 1024 });
  const namedDigest = (path: string): Digest | undefined => {
    const hex = /(?:^|\/)(?:blobs\/sha256\/)?([a-f0-9]{64})(?:\.json|\.tar\.gz|\.tar)?$/.exec(clean(path))?.[1];
    return hex ? `sha256:${hex}` : undefined;
  };

  const configMember = resolve(chosen.config, 'config');
  if (configMember.member.size > documentSizeLimit) throw new UserError(`${name}: config ${chosen.config} is too large for a config`);
  const chunks: Buffer[] = [];
  for await (const chunk of range(configMember)) chunks.push(chunk as Buffer);
  const configBytes = Buffer.concat(chunks);
  const configDigest = sha256Digest(configBytes);
  const configNamed = namedDigest(chosen.config);
  if (configNamed && configNamed !== configDigest) throw new UserError(`${name}: config ${chosen.config} does not match the digest in its name (it hashes to ${configDigest})`);
  const config = parseConfig(configBytes, `${name}: config ${chosen.config}`);
  const platform = platformOfConfig(config);
  if (wanted && !platformMatches(wanted, platform)) throw new UserError(`${name} is for ${formatPlatform(platform)}, not ${formatPlatform(wanted)}`);
  const diffIds = checkDiffIds(config, chosen.layers.length, name);
  const layers = chosen.layers.map((path, index): SourceLayer => {
    const found = resolve(path, `layer ${index + 1}`);
    // A classic layer.tar's name is a layer ID, not a digest; only blobs/ and uvimage's names are digests.
    const digest = /(^|\/)layer\.tar$/.test(clean(path)) ? undefined : namedDigest(path);
    const what = `${name}: layer ${index + 1} (${path})`;
    return {
      index,
      digest,
      size: found.member.size,
      diffId: diffIds[index]!,
      openTar: (read) => verifiedTar(async () => range(found), { digest, size: found.member.size, diffId: diffIds[index]! }, what, read),
    };
  });
  return { name, transport: 'docker-archive', platform, annotations: {}, configDigest, config, layers };
}

// ---------------------------------------------------------------------------------------------
// An image uvimage just built: its documents in hand, its layers from the BlobSource.

/**
 * A platform image of a build as a SourceImage, read the way any other image is (its layers
 * from the store, or fetched from a pulled base's registry, checked as they stream), so what is
 * reported about it is what the image holds.
 */
export async function openBuiltImage(name: string, image: Image, blobs: BlobSource): Promise<SourceImage> {
  const byDigest = new Map(image.layers.map((layer) => [layer.descriptor.digest, layer]));
  const access: BlobAccess = {
    manifest: async () => image.manifest.bytes,
    config: async () => image.config.bytes,
    async layer(descriptor, _diffId, what) {
      const layer = byDigest.get(descriptor.digest);
      if (!layer) throw new Error(`${what} is not a layer of the image built`);
      return blobs.openLayer(layer);
    },
  };
  const root = { document: parseJsonObject(image.manifest.bytes, `${name}: manifest`), digest: image.manifest.descriptor.digest };
  return imageFromDocuments(name, 'oci', root, access, image.platform);
}

// ---------------------------------------------------------------------------------------------
// Registry references

async function openRegistryImage(name: string, refText: string, options: OpenImageOptions): Promise<SourceImage> {
  const reference = parseReference(refText);
  const repo: RepositoryRef = { registry: reference.registry, repository: reference.repository };
  const client = options.client();
  const store = await options.store();
  const root = await client.getManifest(repo, reference.digest ?? reference.tag ?? 'latest');
  const blobs: BlobAccess = {
    // getManifest checks the bytes against the digest asked for; fetchBlob checks them on the way into the store.
    manifest: async (descriptor) => (await client.getManifest(repo, descriptor.digest)).bytes,
    async config(descriptor, what) {
      checkDocumentSize(descriptor, what);
      if (!(await store.has(descriptor.digest))) await client.fetchBlob(repo, descriptor.digest, store, { size: descriptor.size });
      return store.readBytes(descriptor.digest);
    },
    async layer(descriptor, diffId) {
      await fetchLayerBlob({ descriptor: { mediaType: descriptor.mediaType ?? '', digest: descriptor.digest, size: descriptor.size }, diffId, origin: repo }, store, {
        client,
        progress: options.progress,
      });
      return store.openRead(descriptor.digest);
    },
  };
  return imageFromDocuments(name, 'registry', { document: root.document, digest: root.digest }, blobs, options.platform);
}
