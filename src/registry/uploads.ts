/**
 * Writing to a registry: a cross-repository mount, a blob uploaded in one streamed PUT or in
 * PATCH chunks with Content-Range that resume from the Range the registry kept after a failure
 * (or start over when it kept nothing), and manifests put under a tag or digest, each checked
 * against the digest the registry says it stored.
 */
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { UserError } from '../errors.js';
import { isDigest, type Digest } from '../oci/digest.js';
import { backoffMs, sleep } from '../net/retry.js';
import { discardBody, header, type TransportResponse } from '../net/transport.js';
import { AuthenticationError, type Scope } from './auth.js';
import { headBlob } from './reads.js';
import { RegistryError, manifestName, type RegistryCall, type RegistryRequests, type RepositoryRef } from './requests.js';

/** A blob to upload: its digest and size, and a way to read it from the start (again, on retries). */
export interface BlobUpload {
  digest: Digest;
  size: number;
  open: () => Promise<Readable>;
}

/**
 * Asks the registry to link a blob it holds in repository `from` into `repo` without an
 * upload. When it does not (202, or anything else), returns the upload location it offered,
 * if any, so the caller can upload there.
 */
export async function mountBlob(requests: RegistryRequests, repo: RepositoryRef, digest: Digest, from: string): Promise<{ mounted: true } | { mounted: false; location?: URL }> {
  const url = requests.repoUrl(repo, 'blobs/uploads/');
  url.searchParams.set('mount', digest);
  url.searchParams.set('from', from);
  let response: TransportResponse;
  try {
    response = await requests.execute({
      repo,
      action: `mount blob ${digest} from ${from} into ${repo.repository}`,
      method: 'POST',
      url,
      scopes: [
        { repository: repo.repository, actions: ['pull', 'push'] },
        { repository: from, actions: ['pull'] },
      ],
    });
  } catch (error) {
    // No read access to the source repository (or a token service that will not grant it)
    // just means no mount; the caller uploads instead.
    if (error instanceof AuthenticationError) return { mounted: false };
    throw error;
  }
  await discardBody(response);
  if (response.status === 201) return { mounted: true };
  if (response.status === 202) {
    const location = header(response, 'location');
    return location ? { mounted: false, location: new URL(location, response.url) } : { mounted: false };
  }
  return { mounted: false };
}

/**
 * Uploads a blob: one streamed PUT for blobs up to chunkSize, else PATCH chunks with
 * Content-Range then a PUT. On a failure mid-way it asks the upload location for its Range and
 * continues from there when the registry kept the bytes, else starts the upload over.
 * `location` is an upload the caller already started (a declined mount).
 */
export async function uploadBlob(
  requests: RegistryRequests,
  repo: RepositoryRef,
  blob: BlobUpload,
  options: { location?: URL; onBytes?: (bytes: number) => void; chunkSize?: number } = {},
): Promise<void> {
  const chunkSize = options.chunkSize ?? requests.chunkSize;
  const chunked = blob.size > chunkSize;
  const scopes: Scope[] = [{ repository: repo.repository, actions: ['pull', 'push'] }];
  const action = `upload blob ${blob.digest} to ${repo.repository}`;
  let location = options.location;
  let offset = 0;
  let reported = 0;
  const report = (bytes: number) => {
    reported += bytes;
    requests.stats.uploadedBytes += bytes;
    options.onBytes?.(bytes);
  };
  const rewind = (to: number) => report(to - reported);
  const cursor = new BlobCursor(blob.open);

  try {
    for (let failures = 0; ; ) {
      try {
        if (!location) location = await startUpload(requests, repo, scopes);
        if (!chunked) {
          await completeUpload(requests, repo, location, blob, scopes, action, {
            length: blob.size,
            open: async () => exactLength(await blob.open(), blob.size),
            onBytes: report,
          });
          return;
        }
        while (offset < blob.size) {
          const length = Math.min(chunkSize, blob.size - offset);
          const start = offset;
          const url: URL = new URL(location.href);
          const response: TransportResponse = await requests.execute({
            repo,
            action,
            method: 'PATCH',
            url,
            headers: { 'content-type': 'application/octet-stream', 'content-range': `${start}-${start + length - 1}` },
            body: { length, open: () => cursor.range(start, length), onBytes: report },
            scopes,
            retry: false,
          });
          if (response.status !== 202 && response.status !== 204) throw await requests.statusError(response, action, repo);
          await discardBody(response);
          const next = header(response, 'location');
          if (next) location = new URL(next, response.url);
          const range = parseRange(header(response, 'range'));
          if (range !== undefined && range !== start + length) {
            throw new RegistryError(`registry ${repo.registry} has ${range} bytes of blob ${blob.digest} after a chunk ending at ${start + length}`, true);
          }
          offset = start + length;
        }
        await cursor.verifyEnd(blob.size);
        await completeUpload(requests, repo, location, blob, scopes, action, undefined);
        return;
      } catch (error) {
        failures++;
        if (!(error instanceof RegistryError) || !error.retryable || failures >= requests.retry.attempts) throw error;
        await sleep(error.retryAfterMs ?? backoffMs(requests.retry, failures));
        // A lost response to a PUT that did commit: the blob is there.
        if ((await headBlob(requests, repo, blob.digest, { forPush: true }).catch(() => undefined)) !== undefined) {
          rewind(blob.size);
          return;
        }
        if (chunked && location) {
          const status = await uploadStatus(requests, repo, location, scopes);
          // "0-0" is ambiguous (nothing, or one byte), so resume only past it.
          if (status && status.offset > 1 && status.offset <= blob.size) {
            location = status.location;
            offset = status.offset;
            rewind(offset);
            continue;
          }
        }
        location = undefined;
        offset = 0;
        rewind(0);
      }
    }
  } finally {
    cursor.close();
  }
}

/** Puts a manifest or index under a tag or its digest; the registry must agree on its digest. */
export async function putManifest(requests: RegistryRequests, repo: RepositoryRef, reference: string, document: { mediaType: string; bytes: Buffer; digest: Digest }): Promise<Digest> {
  const name = manifestName(repo, reference);
  const action = `push manifest ${name}`;
  const response = await requests.execute({
    repo,
    action,
    method: 'PUT',
    url: requests.repoUrl(repo, `manifests/${reference}`),
    headers: { 'content-type': document.mediaType },
    body: document.bytes,
    scopes: [{ repository: repo.repository, actions: ['pull', 'push'] }],
  });
  if (response.status !== 201 && response.status !== 200 && response.status !== 202) {
    throw await requests.statusError(response, action, repo);
  }
  await discardBody(response);
  const stored = header(response, 'docker-content-digest');
  if (stored && stored !== document.digest) {
    throw new RegistryError(
      `registry ${repo.registry} stored manifest ${name} as ${stored}, but its digest is ${document.digest}`,
      false,
    );
  }
  return document.digest;
}

async function startUpload(requests: RegistryRequests, repo: RepositoryRef, scopes: Scope[]): Promise<URL> {
  const action = `start a blob upload to ${repo.repository}`;
  const response = await requests.execute({ repo, action, method: 'POST', url: requests.repoUrl(repo, 'blobs/uploads/'), scopes });
  if (response.status !== 202 && response.status !== 201) throw await requests.statusError(response, action, repo);
  await discardBody(response);
  const location = header(response, 'location');
  if (!location) throw new RegistryError(`registry ${repo.registry} started a blob upload to ${repo.repository} without a Location`, false);
  return new URL(location, response.url);
}

/** The final PUT of an upload, with the blob's bytes (monolithic) or without (chunked). */
async function completeUpload(
  requests: RegistryRequests,
  repo: RepositoryRef,
  location: URL,
  blob: BlobUpload,
  scopes: Scope[],
  action: string,
  body: RegistryCall['body'],
): Promise<void> {
  const url = new URL(location.href);
  url.searchParams.set('digest', blob.digest);
  const response = await requests.execute({
    repo,
    action,
    method: 'PUT',
    url,
    headers: { 'content-type': 'application/octet-stream' },
    body,
    scopes,
    retry: false,
  });
  if (response.status !== 201 && response.status !== 204 && response.status !== 200) {
    throw await requests.statusError(response, action, repo);
  }
  await discardBody(response);
  const stored = header(response, 'docker-content-digest');
  if (stored && isDigest(stored) && stored !== blob.digest) {
    throw new RegistryError(`registry ${repo.registry} stored blob ${blob.digest} for ${repo.repository} as ${stored}`, false);
  }
}

/** Where an interrupted upload stands: the offset the registry holds and the location to continue at. */
async function uploadStatus(requests: RegistryRequests, repo: RepositoryRef, location: URL, scopes: Scope[]): Promise<{ offset: number; location: URL } | undefined> {
  try {
    const response = await requests.execute({
      repo,
      action: `check an upload to ${repo.repository}`,
      method: 'GET',
      url: new URL(location.href),
      scopes,
    });
    await discardBody(response);
    if (response.status !== 204 && response.status !== 200) return undefined;
    const offset = parseRange(header(response, 'range'));
    if (offset === undefined) return undefined;
    const next = header(response, 'location');
    return { offset, location: next ? new URL(next, response.url) : location };
  } catch {
    return undefined;
  }
}

/** The number of bytes a `Range: 0-<last>` header says the registry holds. */
function parseRange(value: string | undefined): number | undefined {
  if (!value) return undefined;
  const match = /^(?:bytes=)?0-(\d+)$/.exec(value.trim());
  if (!match) return undefined;
  const last = Number(match[1]);
  return last === 0 ? 0 : last + 1;
}

/** Passes a stream through, failing it when it is not exactly `length` bytes long. */
function exactLength(source: Readable, length: number): Readable {
  let seen = 0;
  const transform = new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      seen += chunk.length;
      if (seen > length) callback(new Error(`the blob is longer than its ${length} bytes`));
      else callback(null, chunk);
    },
    flush(callback: TransformCallback) {
      callback(seen === length ? null : new Error(`the blob ended after ${seen} of its ${length} bytes`));
    },
  });
  source.on('error', (error) => transform.destroy(error));
  return source.pipe(transform);
}

/**
 * Reads consecutive byte ranges of a blob from one open stream, reopening it (and skipping to
 * the position) only when a range does not start where the last one ended, e.g. after a failed
 * chunk. So a chunked upload reads its source once, not once per chunk.
 */
class BlobCursor {
  private stream: Readable | undefined;
  private iterator: AsyncIterator<Buffer> | undefined;
  private pending: Buffer | undefined;
  private position = 0;
  private busy = false;

  constructor(private readonly open: () => Promise<Readable>) {}

  async range(start: number, length: number): Promise<Readable> {
    if (!this.iterator || this.position !== start || this.busy) {
      this.close();
      this.stream = await this.open();
      this.iterator = this.stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
      this.position = 0;
      await this.skip(start);
    }
    this.busy = true;
    const self = this;
    async function* take(): AsyncGenerator<Buffer> {
      let left = length;
      try {
        while (left > 0) {
          const chunk = await self.next();
          if (!chunk) throw new Error(`the blob ended after ${self.position} bytes`);
          const piece = chunk.length > left ? chunk.subarray(0, left) : chunk;
          if (piece.length < chunk.length) self.pending = chunk.subarray(left);
          self.position += piece.length;
          left -= piece.length;
          yield piece;
        }
      } finally {
        // A range read to its end leaves the cursor usable for the next one.
        if (left === 0) self.busy = false;
      }
    }
    return Readable.from(take(), { objectMode: false });
  }

  /** Reads past the last byte, so a verifying source stream checks its digest; fails on extra bytes. */
  async verifyEnd(size: number): Promise<void> {
    if (!this.iterator || this.position !== size || this.busy) return;
    const extra = await this.next();
    if (extra && extra.length > 0) throw new UserError(`a blob to upload is longer than the ${size} bytes its descriptor says`);
  }

  close(): void {
    this.stream?.destroy();
    this.stream = undefined;
    this.iterator = undefined;
    this.pending = undefined;
    this.busy = false;
  }

  private async next(): Promise<Buffer | undefined> {
    if (this.pending) {
      const chunk = this.pending;
      this.pending = undefined;
      return chunk;
    }
    const result = await this.iterator!.next();
    return result.done ? undefined : Buffer.from(result.value);
  }

  private async skip(count: number): Promise<void> {
    let left = count;
    while (left > 0) {
      const chunk = await this.next();
      if (!chunk) throw new Error(`the blob ended after ${this.position} bytes`);
      if (chunk.length > left) this.pending = chunk.subarray(left);
      const used = Math.min(left, chunk.length);
      this.position += used;
      left -= used;
    }
  }
}
