/**
 * A client for the OCI distribution API (Docker Registry HTTP API v2): blobs (check, download
 * verified into the store, cross-repository mount, monolithic and chunked streamed upload with
 * resume) and manifests (get with content negotiation and digest check, head, put with digest
 * check). Every request goes through one loop that authenticates (anonymous, Basic, Bearer
 * tokens; see auth.ts), follows redirects to blob storage without credentials, and retries with
 * exponential backoff on 408/429/5xx and dropped connections. Failures reach the user as a
 * one-line UserError naming the registry, the repository and what failed.
 */
import { createHash } from 'node:crypto';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { UserError } from '../errors.js';
import { isDigest, sha256Digest, type Digest } from '../oci/digest.js';
import { MediaType } from '../oci/media-types.js';
import type { BlobInfo, BlobStore } from '../oci/store.js';
import { AuthenticationError, RegistryAuth, mergeScopes, oneLine, type AuthState, type Scope } from './auth.js';
import { resolveCredential, type Credential } from './credentials.js';
import { isInsecureRegistry } from './reference.js';
import { NetworkError, requestWith, type HttpResponse, type RequestBody } from '../net/request.js';
import { backoffMs, errorCode, isTransientStatus, retryPolicy, sleep, type RetryPolicy } from '../net/retry.js';
import { BodySourceError, discardBody, header, readBody, type TransportResponse } from '../net/transport.js';

/** A repository in a registry: where API calls go. */
export interface RepositoryRef {
  /** Host[:port] of the registry API (Docker Hub is `registry-1.docker.io`). */
  registry: string;
  repository: string;
}

/** Over src/net's one retry policy (attempts, delays, Retry-After cap); tests make it fast. */
export type RetryOptions = Partial<RetryPolicy>;

export interface RegistryClientOptions {
  /** Registries (host or host:port) that may be spoken to over plain http besides loopback ones. */
  insecureRegistries?: string[];
  /** Environment for credential lookup (DOCKER_CONFIG, …); default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Explicit credentials, by registry host[:port]; they win over any auth file. */
  credentials?: Record<string, { username: string; password: string }>;
  /** Replaces the credential lookup entirely (tests, embedding). */
  resolveCredential?: (registry: string, repository: string) => Promise<Credential | undefined>;
  retry?: RetryOptions;
  /**
   * Blobs larger than this are uploaded in chunks of this size (PATCH with Content-Range, so an
   * interrupted upload can resume); smaller ones in one PUT. Default 64 MiB.
   */
  chunkSize?: number;
  /** A request fails when its connection is idle this long; default 120 s. */
  timeoutMs?: number;
  userAgent?: string;
  /** Where challenges and tokens are kept; default one state shared by the whole process. */
  authState?: AuthState;
}

/** A blob to upload: its digest and size, and a way to read it from the start (again, on retries). */
export interface BlobUpload {
  digest: Digest;
  size: number;
  open: () => Promise<Readable>;
}

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

/** Errors that mean the registry could not be reached at all (nothing was exchanged). */
const unreachableCodes = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  'EPROTO',
  'ERR_SSL_WRONG_VERSION_NUMBER',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

const manifestSizeLimit = 8 * 1024 * 1024;
const errorBodyLimit = 64 * 1024;
const defaultChunkSize = 64 * 1024 * 1024;

/**
 * A failed registry request. `retryable` tells a caller with its own recovery (blob uploads)
 * whether trying again could help.
 */
export class RegistryError extends UserError {
  constructor(
    message: string,
    readonly retryable: boolean,
    readonly status?: number,
    readonly retryAfterMs?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

interface Call {
  repo: RepositoryRef;
  /** What the request does, for messages: `upload blob sha256:… to me/app`. */
  action: string;
  method: string;
  url: URL;
  headers?: Record<string, string>;
  body?: Buffer | (RequestBody & { onBytes?: (bytes: number) => void });
  scopes: Scope[];
  followRedirects?: boolean;
  /** False: fail at once on a retryable status or dropped connection (the caller recovers). */
  retry?: boolean;
}

export class RegistryClient {
  private readonly auth: RegistryAuth;
  private readonly pings = new Map<string, Promise<void>>();
  private readonly credentialCache = new Map<string, Promise<Credential | undefined>>();
  private readonly retry: RetryPolicy;
  readonly chunkSize: number;
  private readonly timeoutMs: number;
  private readonly userAgent: string;
  /** Counters, for tests and --json details. */
  readonly stats = { requests: 0, uploadedBytes: 0, downloadedBytes: 0 };

  constructor(private readonly options: RegistryClientOptions = {}) {
    this.retry = retryPolicy(options.retry);
    this.chunkSize = options.chunkSize ?? defaultChunkSize;
    this.timeoutMs = options.timeoutMs ?? 120_000;
    this.userAgent = options.userAgent ?? 'uvimage';
    this.auth = new RegistryAuth({
      userAgent: this.userAgent,
      send: (request, what) =>
        this.execute({
          repo: { registry: what.registry, repository: what.repository },
          action: what.action,
          method: request.method,
          url: request.url,
          headers: request.headers,
          body: request.body as Buffer | undefined,
          scopes: [],
          // Token requests are not authenticated by the registry's scheme.
          followRedirects: request.method === 'GET',
        }, { unauthenticated: true }),
      credential: (registry, repository) => this.credential(registry, repository),
      plainHttpAllowed: (host) => isInsecureRegistry(host, this.options.insecureRegistries ?? []),
    }, options.authState);
  }

  /** How many token requests this client made (tokens are cached and reused). */
  get tokenRequests(): number {
    return this.auth.tokenRequests;
  }

  /** `http` only for loopback registries and those named insecure; `https` otherwise. */
  baseUrl(registry: string): URL {
    const scheme = isInsecureRegistry(registry, this.options.insecureRegistries ?? []) ? 'http' : 'https';
    return new URL(`${scheme}://${registry}/v2/`);
  }

  private repoUrl(repo: RepositoryRef, path: string): URL {
    return new URL(`${repo.repository}/${path}`, this.baseUrl(repo.registry));
  }

  private credential(registry: string, repository: string): Promise<Credential | undefined> {
    const key = `${registry}|${repository}`;
    let cached = this.credentialCache.get(key);
    if (!cached) {
      cached = this.options.resolveCredential
        ? this.options.resolveCredential(registry, repository)
        : resolveCredential(registry, {
            env: this.options.env,
            explicit: this.options.credentials?.[registry],
            repository,
          });
      cached.catch(() => this.credentialCache.delete(key));
      this.credentialCache.set(key, cached);
    }
    return cached;
  }

  // ---------------------------------------------------------------- blobs

  /**
   * The size of a blob if the repository has it, else undefined. `forPush` asks for push access
   * too, so a push gets one token for its checks and uploads alike.
   */
  async headBlob(repo: RepositoryRef, digest: Digest, options: { forPush?: boolean } = {}): Promise<number | undefined> {
    const response = await this.execute({
      repo,
      action: `check blob ${digest} in ${repo.repository}`,
      method: 'HEAD',
      url: this.repoUrl(repo, `blobs/${digest}`),
      scopes: [{ repository: repo.repository, actions: options.forPush ? ['pull', 'push'] : ['pull'] }],
      followRedirects: true,
    });
    await discardBody(response);
    if (response.status === 200) {
      const length = Number(header(response, 'content-length'));
      return Number.isFinite(length) ? length : 0;
    }
    if (response.status === 404) return undefined;
    throw await this.statusError(response, `check blob ${digest} in ${repo.repository}`, repo);
  }

  /**
   * Downloads a blob into the store, streamed and verified against its digest (and size, when
   * given); a mismatch leaves nothing in the store. A dropped connection starts the download over.
   */
  async fetchBlob(
    repo: RepositoryRef,
    digest: Digest,
    store: BlobStore,
    options: { size?: number; onBytes?: (bytes: number) => void } = {},
  ): Promise<BlobInfo> {
    const action = `download blob ${digest} from ${repo.repository}`;
    const call: Call = {
      repo,
      action,
      method: 'GET',
      url: this.repoUrl(repo, `blobs/${digest}`),
      scopes: [{ repository: repo.repository, actions: ['pull'] }],
      followRedirects: true,
    };
    // A connection that drops mid-blob starts the download over (src/net: the whole try again).
    return this.execute(call, {}, async (response) => {
      if (response.status === 404) {
        await discardBody(response);
        throw new RegistryError(`registry ${repo.registry} has no blob ${digest} in ${repo.repository} (404)`, false, 404);
      }
      if (response.status !== 200) throw await this.statusError(response, action, repo);
      const hashing = new HashCheck(options.size);
      let received = 0;
      const counting = new Transform({
        transform: (chunk: Buffer, _encoding, callback: TransformCallback) => {
          received += chunk.length;
          this.stats.downloadedBytes += chunk.length;
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
   * Asks the registry to link a blob it holds in repository `from` into `repo` without an
   * upload. When it does not (202, or anything else), returns the upload location it offered,
   * if any, so the caller can upload there.
   */
  async mountBlob(repo: RepositoryRef, digest: Digest, from: string): Promise<{ mounted: true } | { mounted: false; location?: URL }> {
    const url = this.repoUrl(repo, 'blobs/uploads/');
    url.searchParams.set('mount', digest);
    url.searchParams.set('from', from);
    let response: TransportResponse;
    try {
      response = await this.execute({
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
  async uploadBlob(
    repo: RepositoryRef,
    blob: BlobUpload,
    options: { location?: URL; onBytes?: (bytes: number) => void; chunkSize?: number } = {},
  ): Promise<void> {
    const chunkSize = options.chunkSize ?? this.chunkSize;
    const chunked = blob.size > chunkSize;
    const scopes: Scope[] = [{ repository: repo.repository, actions: ['pull', 'push'] }];
    const action = `upload blob ${blob.digest} to ${repo.repository}`;
    let location = options.location;
    let offset = 0;
    let reported = 0;
    const report = (bytes: number) => {
      reported += bytes;
      this.stats.uploadedBytes += bytes;
      options.onBytes?.(bytes);
    };
    const rewind = (to: number) => report(to - reported);
    const cursor = new BlobCursor(blob.open);

    try {
      for (let failures = 0; ; ) {
        try {
          if (!location) location = await this.startUpload(repo, scopes);
          if (!chunked) {
            await this.completeUpload(repo, location, blob, scopes, action, {
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
            const response: TransportResponse = await this.execute({
              repo,
              action,
              method: 'PATCH',
              url,
              headers: { 'content-type': 'application/octet-stream', 'content-range': `${start}-${start + length - 1}` },
              body: { length, open: () => cursor.range(start, length), onBytes: report },
              scopes,
              retry: false,
            });
            if (response.status !== 202 && response.status !== 204) throw await this.statusError(response, action, repo);
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
          await this.completeUpload(repo, location, blob, scopes, action, undefined);
          return;
        } catch (error) {
          failures++;
          if (!(error instanceof RegistryError) || !error.retryable || failures >= this.retry.attempts) throw error;
          await sleep(error.retryAfterMs ?? backoffMs(this.retry, failures));
          // A lost response to a PUT that did commit: the blob is there.
          if ((await this.headBlob(repo, blob.digest, { forPush: true }).catch(() => undefined)) !== undefined) {
            rewind(blob.size);
            return;
          }
          if (chunked && location) {
            const status = await this.uploadStatus(repo, location, scopes);
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

  private async startUpload(repo: RepositoryRef, scopes: Scope[]): Promise<URL> {
    const action = `start a blob upload to ${repo.repository}`;
    const response = await this.execute({ repo, action, method: 'POST', url: this.repoUrl(repo, 'blobs/uploads/'), scopes });
    if (response.status !== 202 && response.status !== 201) throw await this.statusError(response, action, repo);
    await discardBody(response);
    const location = header(response, 'location');
    if (!location) throw new RegistryError(`registry ${repo.registry} started a blob upload to ${repo.repository} without a Location`, false);
    return new URL(location, response.url);
  }

  /** The final PUT of an upload, with the blob's bytes (monolithic) or without (chunked). */
  private async completeUpload(
    repo: RepositoryRef,
    location: URL,
    blob: BlobUpload,
    scopes: Scope[],
    action: string,
    body: Call['body'],
  ): Promise<void> {
    const url = new URL(location.href);
    url.searchParams.set('digest', blob.digest);
    const response = await this.execute({
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
      throw await this.statusError(response, action, repo);
    }
    await discardBody(response);
    const stored = header(response, 'docker-content-digest');
    if (stored && isDigest(stored) && stored !== blob.digest) {
      throw new RegistryError(`registry ${repo.registry} stored blob ${blob.digest} for ${repo.repository} as ${stored}`, false);
    }
  }

  /** Where an interrupted upload stands: the offset the registry holds and the location to continue at. */
  private async uploadStatus(repo: RepositoryRef, location: URL, scopes: Scope[]): Promise<{ offset: number; location: URL } | undefined> {
    try {
      const response = await this.execute({
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

  // ---------------------------------------------------------------- manifests

  /**
   * Gets a manifest or index by tag or digest, checks its bytes against the digest asked for
   * (or the registry's Docker-Content-Digest), and parses it.
   */
  async getManifest(repo: RepositoryRef, reference: string): Promise<FetchedManifest> {
    const name = manifestName(repo, reference);
    const action = `get manifest ${name}`;
    const response = await this.execute({
      repo,
      action,
      method: 'GET',
      url: this.repoUrl(repo, `manifests/${reference}`),
      headers: { accept: manifestAccept },
      scopes: [{ repository: repo.repository, actions: ['pull'] }],
    });
    if (response.status === 404) {
      const detail = await errorDetail(response);
      throw new RegistryError(`registry ${repo.registry} has no manifest ${name} (404${detail ? `: ${detail}` : ''})`, false, 404);
    }
    if (response.status !== 200) throw await this.statusError(response, action, repo);
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
  async headManifest(repo: RepositoryRef, reference: string): Promise<{ digest?: Digest; mediaType?: string; size?: number } | undefined> {
    const name = manifestName(repo, reference);
    const action = `check manifest ${name}`;
    const response = await this.execute({
      repo,
      action,
      method: 'HEAD',
      url: this.repoUrl(repo, `manifests/${reference}`),
      headers: { accept: manifestAccept },
      scopes: [{ repository: repo.repository, actions: ['pull'] }],
    });
    await discardBody(response);
    if (response.status === 404) return undefined;
    if (response.status !== 200) throw await this.statusError(response, action, repo);
    const digest = header(response, 'docker-content-digest');
    const mediaType = header(response, 'content-type')?.split(';')[0]?.trim();
    const size = Number(header(response, 'content-length'));
    return {
      ...(digest && isDigest(digest) ? { digest } : {}),
      ...(mediaType ? { mediaType } : {}),
      ...(Number.isFinite(size) ? { size } : {}),
    };
  }

  /** Puts a manifest or index under a tag or its digest; the registry must agree on its digest. */
  async putManifest(repo: RepositoryRef, reference: string, document: { mediaType: string; bytes: Buffer; digest: Digest }): Promise<Digest> {
    const name = manifestName(repo, reference);
    const action = `push manifest ${name}`;
    const response = await this.execute({
      repo,
      action,
      method: 'PUT',
      url: this.repoUrl(repo, `manifests/${reference}`),
      headers: { 'content-type': document.mediaType },
      body: document.bytes,
      scopes: [{ repository: repo.repository, actions: ['pull', 'push'] }],
    });
    if (response.status !== 201 && response.status !== 200 && response.status !== 202) {
      throw await this.statusError(response, action, repo);
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

  // ---------------------------------------------------------------- the request loop

  /** GET /v2/ once per registry, to learn its auth scheme before the first real request. */
  private ping(repo: RepositoryRef): Promise<void> {
    let pending = this.pings.get(repo.registry);
    if (!pending) {
      pending = (async () => {
        const response = await this.execute(
          { repo, action: 'check the registry API', method: 'GET', url: this.baseUrl(repo.registry), scopes: [] },
          { unauthenticated: true },
        );
        await discardBody(response);
        if (response.status === 401) this.auth.recordChallenge(repo.registry, header(response, 'www-authenticate'));
        else if (response.status >= 200 && response.status < 300) this.auth.recordChallenge(repo.registry, undefined);
        // Anything else: learn the scheme from the first 401, if one comes.
      })();
      pending.catch(() => this.pings.delete(repo.registry));
      this.pings.set(repo.registry, pending);
    }
    return pending;
  }

  /**
   * Sends a request with authentication, over src/net's request loop (redirects, retries,
   * proxies, timeouts), and hands the response to `consume` (default: returns it) for any status
   * it does not handle itself: a 401 is answered by authenticating again once, a transient
   * status the tries did not get past is a RegistryError. A failure of `consume` that is
   * transient (a connection reset mid-blob) sends the request again.
   */
  private async execute<T = TransportResponse>(
    call: Call,
    mode: { unauthenticated?: boolean } = {},
    consume: (response: HttpResponse) => Promise<T> = async (response) => response as T,
  ): Promise<T> {
    const { registry } = call.repo;
    const registryOrigin = this.baseUrl(registry).origin;
    let scopes = call.scopes;
    for (let reauthenticated = false; ; reauthenticated = true) {
      let authorization: string | undefined;
      if (!mode.unauthenticated) {
        if (!this.auth.knows(registry)) await this.ping(call.repo);
        authorization = await this.auth.authorization(registry, call.repo.repository, scopes);
      }
      let outcome: { value: T } | { challenge: string };
      try {
        outcome = await requestWith(
          {
            method: call.method,
            url: call.url,
            headers: { 'user-agent': this.userAgent, ...(call.headers ?? {}) },
            // Credentials go to the registry only (as go-containerregistry's bearer transport
            // does), never to a storage host an upload Location names; src/net drops them on
            // redirects to another origin.
            ...(authorization && call.url.origin === registryOrigin ? { authorization } : {}),
            body: requestBody(call.body),
            followRedirects: call.followRedirects ?? false,
            retry: call.retry === false ? false : this.retry,
            idleTimeoutMs: this.timeoutMs,
            env: this.options.env,
            onRequest: () => this.stats.requests++,
          },
          async (response) => {
            if (response.status === 401 && !mode.unauthenticated) {
              const challenge = header(response, 'www-authenticate');
              const detail = await errorDetail(response);
              if (reauthenticated || !challenge) {
                throw new AuthenticationError(registry, call.repo.repository, 401, await this.auth.hasCredential(registry, call.repo.repository), detail);
              }
              return { challenge };
            }
            if (isTransientStatus(response.status)) {
              const error = await this.statusError(response, call.action, call.repo);
              // Retryable for a caller with its own recovery only if the tries were not used up here.
              throw new RegistryError(error.message, call.retry === false, response.status, response.retryDelayMs);
            }
            return { value: await consume(response) };
          },
        );
      } catch (error) {
        if (error instanceof BodySourceError) {
          if (error.source instanceof UserError) throw error.source;
          throw new RegistryError(`${call.action} failed: reading the blob failed: ${error.message}`, false, undefined, undefined, { cause: error.source });
        }
        if (error instanceof NetworkError) throw this.connectionError(call, error);
        throw error;
      }
      if ('value' in outcome) return outcome.value;
      this.auth.recordChallenge(registry, outcome.challenge);
      scopes = mergeScopes(scopes, this.auth.challengeScopes(outcome.challenge));
      if (authorization) await this.auth.invalidate(registry, call.repo.repository, scopes);
    }
  }

  private connectionError(call: Call, error: NetworkError): RegistryError {
    const host = new URL(error.url).host;
    const where = host === call.repo.registry ? `registry ${call.repo.registry}` : `${host} (for registry ${call.repo.registry})`;
    const message =
      error.code && unreachableCodes.has(error.code)
        ? `cannot reach ${where}: ${error.detail}`
        : `connection to ${where} failed during ${call.action}: ${error.detail}`;
    // Retryable for a caller with its own recovery only if the tries were not used up here.
    return new RegistryError(message, error.transient && call.retry === false, undefined, undefined, { cause: error });
  }

  /** A one-line error for an unexpected status, with the registry's own error code and message. */
  private async statusError(response: TransportResponse, action: string, repo: RepositoryRef): Promise<RegistryError> {
    const detail = await errorDetail(response);
    const verb = response.status === 403 ? 'denied the request to' : 'failed to';
    return new RegistryError(
      `registry ${repo.registry} ${verb} ${action} (${response.status}${detail ? `: ${detail}` : ''})`,
      isTransientStatus(response.status),
      response.status,
    );
  }
}

/** A call's body as src/net sends it: reopened for every try, its bytes counted as they go. */
function requestBody(body: Call['body']): Buffer | RequestBody | undefined {
  if (body === undefined || Buffer.isBuffer(body)) return body;
  const { onBytes } = body;
  if (!onBytes) return body;
  return {
    length: body.length,
    open: async () => {
      const source = await body.open();
      return source.pipe(counter(onBytes, source));
    },
  };
}

/** `me/app:1` or `me/app@sha256:…`, prefixed with the registry. */
function manifestName(repo: RepositoryRef, reference: string): string {
  return `${repo.registry}/${repo.repository}${isDigest(reference) ? '@' : ':'}${reference}`;
}

/** The registry's error code and message from an error response body (OCI error format). */
async function errorDetail(response: TransportResponse): Promise<string | undefined> {
  let text: string;
  try {
    text = (await readBody(response, errorBodyLimit)).toString('utf8').trim();
  } catch {
    return undefined;
  }
  if (!text) return undefined;
  try {
    const parsed = JSON.parse(text) as { errors?: { code?: unknown; message?: unknown; detail?: unknown }[] };
    const first = parsed.errors?.[0];
    if (first) {
      const parts = [first.code, first.message].filter((part): part is string => typeof part === 'string' && part !== '');
      if (parts.length > 0) return oneLine(parts.join(' ')).slice(0, 300);
    }
  } catch {
    // not JSON
  }
  return oneLine(text).slice(0, 200);
}

/** The number of bytes a `Range: 0-<last>` header says the registry holds. */
function parseRange(value: string | undefined): number | undefined {
  if (!value) return undefined;
  const match = /^(?:bytes=)?0-(\d+)$/.exec(value.trim());
  if (!match) return undefined;
  const last = Number(match[1]);
  return last === 0 ? 0 : last + 1;
}

function describe(error: unknown): string {
  if (error instanceof Error) return oneLine(error.message) || (errorCode(error) ?? error.name);
  return String(error);
}

/** Counts bytes into `onBytes` as they pass; forwards errors of its source. */
function counter(onBytes: (bytes: number) => void, source: Readable): Transform {
  const transform = new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      onBytes(chunk.length);
      callback(null, chunk);
    },
  });
  source.on('error', (error) => transform.destroy(error));
  return transform;
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
