/**
 * Reading from a registry: whether a blob is there, a blob streamed into the store and verified
 * against its digest (and size), manifests and indexes by tag or digest with content negotiation
 * and a digest check, and their HEAD.
 */
import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { isDigest, sha256Digest, type Digest } from '../oci/digest.js';
import { MediaType } from '../oci/media-types.js';
import type { BlobInfo, BlobStore } from '../oci/store.js';
import { discardBody, header, readBody } from '../net/transport.js';
import { RegistryError, describe, errorDetail, manifestName, type RegistryCall, type RegistryRequests, type RepositoryRef } from './requests.js';

export interface FetchedManifest {
  digest: Digest;
  mediaType: string;
  bytes: Buffer;
  /** The parsed JSON document. */
  document: Record<string, unknown>;
}

/** The manifest media types uvimage reads, most preferred first. */
export const manifestAccept = [
  MediaType.ociIndex,
  MediaType.dockerManifestList,
  MediaType.ociManifest,
  MediaType.dockerManifest,
].join(', ');

const manifestSizeLimit = 8 * 1024 * 1024;

/**
 * The size of a blob if the repository has it, else undefined. `forPush` asks for push access
 * too, so a push gets one token for its checks and uploads alike.
 */
export async function headBlob(requests: RegistryRequests, repo: RepositoryRef, digest: Digest, options: { forPush?: boolean } = {}): Promise<number | undefined> {
  const response = await requests.execute({
    repo,
    action: `check blob ${digest} in ${repo.repository}`,
    method: 'HEAD',
    url: requests.repoUrl(repo, `blobs/${digest}`),
    scopes: [{ repository: repo.repository, actions: options.forPush ? ['pull', 'push'] : ['pull'] }],
    followRedirects: true,
  });
  await discardBody(response);
  if (response.status === 200) {
    const length = Number(header(response, 'content-length'));
    return Number.isFinite(length) ? length : 0;
  }
  if (response.status === 404) return undefined;
  throw await requests.statusError(response, `check blob ${digest} in ${repo.repository}`, repo);
}

/**
 * Downloads a blob into the store, streamed and verified against its digest (and size, when
 * given); a mismatch leaves nothing in the store. A dropped connection starts the download over.
 */
export async function fetchBlob(
  requests: RegistryRequests,
  repo: RepositoryRef,
  digest: Digest,
  store: BlobStore,
  options: { size?: number; onBytes?: (bytes: number) => void } = {},
): Promise<BlobInfo> {
  const action = `download blob ${digest} from ${repo.repository}`;
  const call: RegistryCall = {
    repo,
    action,
    method: 'GET',
    url: requests.repoUrl(repo, `blobs/${digest}`),
    scopes: [{ repository: repo.repository, actions: ['pull'] }],
    followRedirects: true,
  };
  // A connection that drops mid-blob starts the download over (src/net: the whole try again).
  return requests.execute(call, {}, async (response) => {
    if (response.status === 404) {
      await discardBody(response);
      throw new RegistryError(`registry ${repo.registry} has no blob ${digest} in ${repo.repository} (404)`, false, 404);
    }
    if (response.status !== 200) throw await requests.statusError(response, action, repo);
    const hashing = new HashCheck(options.size);
    let received = 0;
    const counting = new Transform({
      transform: (chunk: Buffer, _encoding, callback: TransformCallback) => {
        received += chunk.length;
        requests.stats.downloadedBytes += chunk.length;
        options.onBytes?.(chunk.length);
        callback(null, chunk);
      },
    });
    try {
      response.body.on('error', (error) => counting.destroy(error));
      counting.on('error', (error) => hashing.destroy(error));
      return await store.writeStream(response.body.pipe(counting).pipe(hashing), digest, `blob ${digest}`);
    } catch (error) {
      options.onBytes?.(-received);
      if (hashing.finished && hashing.digest !== digest) {
        throw new RegistryError(`blob ${digest} from ${repo.registry}/${repo.repository} does not match its digest (got ${hashing.digest})`, false);
      }
      if (hashing.tooLong) {
        throw new RegistryError(`blob ${digest} from ${repo.registry}/${repo.repository} is larger than the ${options.size} bytes its descriptor says`, false);
      }
      throw error;
    }
  });
}

/**
 * Gets a manifest or index by tag or digest, checks its bytes against the digest asked for
 * (or the registry's Docker-Content-Digest), and parses it.
 */
export async function getManifest(requests: RegistryRequests, repo: RepositoryRef, reference: string): Promise<FetchedManifest> {
  const name = manifestName(repo, reference);
  const action = `get manifest ${name}`;
  const response = await requests.execute({
    repo,
    action,
    method: 'GET',
    url: requests.repoUrl(repo, `manifests/${reference}`),
    headers: { accept: manifestAccept },
    scopes: [{ repository: repo.repository, actions: ['pull'] }],
  });
  if (response.status === 404) {
    const detail = await errorDetail(response);
    throw new RegistryError(`registry ${repo.registry} has no manifest ${name} (404${detail ? `: ${detail}` : ''})`, false, 404);
  }
  if (response.status !== 200) throw await requests.statusError(response, action, repo);
  let bytes: Buffer;
  try {
    bytes = await readBody(response, manifestSizeLimit);
  } catch (error) {
    throw new RegistryError(`registry ${repo.registry}: reading manifest ${name} failed: ${describe(error)}`, true, undefined, undefined, { cause: error });
  }
  const digest = sha256Digest(bytes);
  const expected = isDigest(reference) ? reference : header(response, 'docker-content-digest');
  if (expected && expected.startsWith('sha256:') && expected !== digest) {
    throw new RegistryError(`manifest for ${name} does not match its digest (expected ${expected}, got ${digest})`, false);
  }
  let document: unknown;
  try {
    document = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new RegistryError(`manifest for ${name} is not valid JSON`, false);
  }
  if (typeof document !== 'object' || document === null || Array.isArray(document)) {
    throw new RegistryError(`manifest for ${name} is not a JSON object`, false);
  }
  const record = document as Record<string, unknown>;
  const mediaType =
    (typeof record.mediaType === 'string' && record.mediaType) || (header(response, 'content-type') ?? '').split(';')[0]!.trim();
  return { digest, mediaType, bytes, document: record };
}

/** A manifest's digest, media type and size without its body, or undefined when absent. */
export async function headManifest(requests: RegistryRequests, repo: RepositoryRef, reference: string): Promise<{ digest?: Digest; mediaType?: string; size?: number } | undefined> {
  const name = manifestName(repo, reference);
  const action = `check manifest ${name}`;
  const response = await requests.execute({
    repo,
    action,
    method: 'HEAD',
    url: requests.repoUrl(repo, `manifests/${reference}`),
    headers: { accept: manifestAccept },
    scopes: [{ repository: repo.repository, actions: ['pull'] }],
  });
  await discardBody(response);
  if (response.status === 404) return undefined;
  if (response.status !== 200) throw await requests.statusError(response, action, repo);
  const digest = header(response, 'docker-content-digest');
  const mediaType = header(response, 'content-type')?.split(';')[0]?.trim();
  const size = Number(header(response, 'content-length'));
  return {
    ...(digest && isDigest(digest) ? { digest } : {}),
    ...(mediaType ? { mediaType } : {}),
    ...(Number.isFinite(size) ? { size } : {}),
  };
}

/** Hashes what passes through and refuses more than `limit` bytes. */
class HashCheck extends Transform {
  private readonly hash = createHash('sha256');
  private seen = 0;
  finished = false;
  tooLong = false;
  digest: Digest | undefined;

  constructor(private readonly limit?: number) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.seen += chunk.length;
    if (this.limit !== undefined && this.seen > this.limit) {
      this.tooLong = true;
      callback(new Error('blob is longer than its descriptor says'));
      return;
    }
    this.hash.update(chunk);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    this.digest = `sha256:${this.hash.digest('hex')}`;
    this.finished = true;
    callback();
  }
}
