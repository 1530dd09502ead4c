/**
 * A client for the OCI distribution API (Docker Registry HTTP API v2), the face the rest of
 * uvimage uses (pull.ts, push.ts, the sinks, inspect): blobs (check, download verified into the
 * store, cross-repository mount, monolithic and chunked streamed upload with resume) and
 * manifests (get with content negotiation and digest check, head, put with digest check).
 *
 * Its parts: requests.ts (authentication and the request loop over src/net, RegistryError),
 * reads.ts (blobs and manifests read), uploads.ts (mounts, blob uploads, manifests put).
 * Failures reach the user as a one-line UserError naming the registry, the repository and what
 * failed.
 */
import type { Digest } from '../oci/digest.js';
import type { BlobInfo, BlobStore } from '../oci/store.js';
import { fetchBlob, getManifest, headBlob, headManifest, type FetchedManifest } from './reads.js';
import { RegistryRequests, type RegistryClientOptions, type RepositoryRef } from './requests.js';
import { getReferrers } from './referrers.js';
import { mountBlob, putManifest, uploadBlob, type BlobUpload } from './uploads.js';

export { manifestAccept, type FetchedManifest } from './reads.js';
export { RegistryError, type RegistryClientOptions, type RepositoryRef, type RetryOptions } from './requests.js';
export type { BlobUpload } from './uploads.js';

export class RegistryClient {
  private readonly requests: RegistryRequests;
  /** Blobs larger than this are uploaded in chunks (RegistryClientOptions.chunkSize). */
  readonly chunkSize: number;
  /** Counters, for tests and --json details. */
  readonly stats: { requests: number; uploadedBytes: number; downloadedBytes: number };

  constructor(options: RegistryClientOptions = {}) {
    this.requests = new RegistryRequests(options);
    this.chunkSize = this.requests.chunkSize;
    this.stats = this.requests.stats;
  }

  /** How many token requests this client made (tokens are cached and reused). */
  get tokenRequests(): number {
    return this.requests.tokenRequests;
  }

  /** `http` only for loopback registries and those named insecure; `https` otherwise. */
  baseUrl(registry: string): URL {
    return this.requests.baseUrl(registry);
  }

  /**
   * The size of a blob if the repository has it, else undefined. `forPush` asks for push access
   * too, so a push gets one token for its checks and uploads alike.
   */
  headBlob(repo: RepositoryRef, digest: Digest, options: { forPush?: boolean } = {}): Promise<number | undefined> {
    return headBlob(this.requests, repo, digest, options);
  }

  /**
   * Downloads a blob into the store, streamed and verified against its digest (and size, when
   * given); a mismatch leaves nothing in the store. A dropped connection starts the download over.
   */
  fetchBlob(repo: RepositoryRef, digest: Digest, store: BlobStore, options: { size?: number; onBytes?: (bytes: number) => void } = {}): Promise<BlobInfo> {
    return fetchBlob(this.requests, repo, digest, store, options);
  }

  /**
   * Asks the registry to link a blob it holds in repository `from` into `repo` without an
   * upload; when it does not, the upload location it offered, if any.
   */
  mountBlob(repo: RepositoryRef, digest: Digest, from: string): Promise<{ mounted: true } | { mounted: false; location?: URL }> {
    return mountBlob(this.requests, repo, digest, from);
  }

  /**
   * Uploads a blob: one streamed PUT up to chunkSize, else PATCH chunks that resume after a
   * failure. `location` is an upload the caller already started (a declined mount).
   */
  uploadBlob(repo: RepositoryRef, blob: BlobUpload, options: { location?: URL; onBytes?: (bytes: number) => void; chunkSize?: number } = {}): Promise<void> {
    return uploadBlob(this.requests, repo, blob, options);
  }

  /** Gets a manifest or index by tag or digest, checked against its digest, and parses it. */
  getManifest(repo: RepositoryRef, reference: string): Promise<FetchedManifest> {
    return getManifest(this.requests, repo, reference);
  }

  /** A manifest's digest, media type and size without its body, or undefined when absent. */
  headManifest(repo: RepositoryRef, reference: string): Promise<{ digest?: Digest; mediaType?: string; size?: number } | undefined> {
    return headManifest(this.requests, repo, reference);
  }

  /** The registry's referrers listing of a subject (an index), or undefined where it has no referrers API. */
  getReferrers(repo: RepositoryRef, subject: Digest): Promise<Record<string, unknown> | undefined> {
    return getReferrers(this.requests, repo, subject);
  }

  /** Puts a manifest or index under a tag or its digest; the registry must agree on its digest. */
  putManifest(repo: RepositoryRef, reference: string, document: { mediaType: string; bytes: Buffer; digest: Digest }): Promise<Digest> {
    return putManifest(this.requests, repo, reference, document);
  }
}
