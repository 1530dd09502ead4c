/**
 * The requests of the registry client: each one authenticated as the registry asks (anonymous,
 * Basic, Bearer tokens; auth.ts), its auth scheme learnt once per registry (GET /v2/), sent over
 * src/net's request loop (redirects to blob storage without credentials, the one retry policy,
 * proxies, timeouts), its failures turned into one-line RegistryErrors naming the registry, the
 * repository and what failed. reads.ts and uploads.ts speak the API through it; client.ts is
 * the face the rest of uvimage uses.
 */
import { type Readable, Transform, type TransformCallback } from 'node:stream';
import { UserError } from '../errors.js';
import { isDigest } from '../oci/digest.js';
import { NetworkError, requestWith, type HttpResponse, type RequestBody } from '../net/request.js';
import { errorCode, isTransientStatus, retryPolicy, type RetryPolicy } from '../net/retry.js';
import { BodySourceError, discardBody, header, readBody, type TransportResponse } from '../net/transport.js';
import { AuthenticationError, RegistryAuth, mergeScopes, oneLine, type AuthState, type Scope } from './auth.js';
import { resolveCredential, type Credential } from './credentials.js';
import { isInsecureRegistry } from './reference.js';

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
  /** Environment for credential lookup (DOCKER_CONFIG, …) and src/net (proxies, SSL_CERT_FILE); default process.env. */
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
  /**
   * A request fails when its connection is idle this long; default 120 s, twice src/net's, as a
   * registry may hash a large blob before it answers the PUT that completes its upload.
   */
  timeoutMs?: number;
  userAgent?: string;
  /** Where challenges and tokens are kept; default one state shared by the whole process. */
  authState?: AuthState;
}

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

/** One request of the distribution API, as the modules of the client describe it. */
export interface RegistryCall {
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

export class RegistryRequests {
  private readonly auth: RegistryAuth;
  private readonly pings = new Map<string, Promise<void>>();
  private readonly credentialCache = new Map<string, Promise<Credential | undefined>>();
  readonly retry: RetryPolicy;
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

  /** How many token requests were made (tokens are cached and reused). */
  get tokenRequests(): number {
    return this.auth.tokenRequests;
  }

  /** `http` only for loopback registries and those named insecure; `https` otherwise. */
  baseUrl(registry: string): URL {
    const scheme = isInsecureRegistry(registry, this.options.insecureRegistries ?? []) ? 'http' : 'https';
    return new URL(`${scheme}://${registry}/v2/`);
  }

  repoUrl(repo: RepositoryRef, path: string): URL {
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
  async execute<T = TransportResponse>(
    call: RegistryCall,
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
            // Credentials go to the registry only, never to a storage host an upload Location
            // names (go-containerregistry: pkg/v1/remote/transport/bearer.go, matchesHost);
            // src/net drops them on redirects to another origin.
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

  private connectionError(call: RegistryCall, error: NetworkError): RegistryError {
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
  async statusError(response: TransportResponse, action: string, repo: RepositoryRef): Promise<RegistryError> {
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
function requestBody(body: RegistryCall['body']): Buffer | RequestBody | undefined {
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
export function manifestName(repo: RepositoryRef, reference: string): string {
  return `${repo.registry}/${repo.repository}${isDigest(reference) ? '@' : ':'}${reference}`;
}

/** The registry's error code and message from an error response body (OCI error format). */
export async function errorDetail(response: TransportResponse): Promise<string | undefined> {
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

export function describe(error: unknown): string {
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
