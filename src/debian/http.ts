/**
 * HTTP for the Debian archive: plain GETs over the shared node:http(s) transport, following
 * redirects (mirror networks redirect) and retrying a couple of times on dropped connections and
 * 5xx/429 answers. Every failure is a UserError naming the URL.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { UserError, describeError } from '../errors.js';
import { errorCode } from '../net/retry.js';
import { discardBody, header, readBody, sendRequest, type TransportResponse } from '../net/transport.js';

export interface DebianHttpOptions {
  /** Called for every request sent (tests count them). */
  onRequest?: (url: string) => void;
  /** Attempts per request, including the first; default 3. */
  attempts?: number;
  /** Delay before the first retry, doubled each time; default 500 ms. */
  retryDelayMs?: number;
}

const retryableStatuses = new Set([408, 429, 500, 502, 503, 504]);
const retryableCodes = new Set(['ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'ECONNABORTED', 'ENETUNREACH', 'EHOSTUNREACH', 'ERR_STREAM_PREMATURE_CLOSE']);

/** A connection-level failure worth another attempt. */
export function isTransient(error: unknown): boolean {
  if (error instanceof HttpStatusError) return retryableStatuses.has(error.status);
  const code = errorCode(error);
  return code !== undefined && retryableCodes.has(code);
}

export class HttpStatusError extends UserError {
  constructor(readonly url: string, readonly status: number) {
    super(`GET ${url}: HTTP ${status}`);
  }
}

const maxRedirects = 5;
const idleTimeoutMs = 60_000;

/**
 * One GET, redirects followed. Resolves with a 200 (or 304 when `headers` made it conditional)
 * response whose body the caller must consume; any other status is an HttpStatusError.
 */
export async function httpGet(url: string, options: DebianHttpOptions & { headers?: Record<string, string> } = {}): Promise<TransportResponse> {
  let current = new URL(url);
  for (let hop = 0; hop <= maxRedirects; hop++) {
    options.onRequest?.(current.href);
    let response: TransportResponse;
    try {
      response = await sendRequest({
        method: 'GET',
        url: current,
        headers: { 'user-agent': 'uvimage', ...(options.headers ?? {}) },
        idleTimeoutMs,
      });
    } catch (error) {
      throw Object.assign(new UserError(`GET ${current.href}: ${describeError(error)}`, { cause: error }), { code: errorCode(error) });
    }
    const status = response.status;
    if (status === 200 || status === 304) return response;
    await discardBody(response);
    const location = header(response, 'location');
    if ([301, 302, 303, 307, 308].includes(status) && location) {
      current = new URL(location, current);
      continue;
    }
    throw new HttpStatusError(current.href, status);
  }
  throw new UserError(`GET ${url}: more than ${maxRedirects} redirects`);
}

/** Runs `attempt` again (a couple of times, with backoff) when it fails transiently. */
export async function withRetries<T>(options: DebianHttpOptions, attempt: () => Promise<T>): Promise<T> {
  const attempts = options.attempts ?? 3;
  let delay = options.retryDelayMs ?? 500;
  for (let i = 1; ; i++) {
    try {
      return await attempt();
    } catch (error) {
      if (i >= attempts || !isTransient(error)) throw error;
      await sleep(delay);
      delay *= 2;
    }
  }
}

/** GETs a small document whole (InRelease), with retries. `undefined` body means 304 Not Modified. */
export async function fetchSmall(
  url: string,
  limit: number,
  options: DebianHttpOptions & { headers?: Record<string, string> } = {},
): Promise<{ body?: Buffer; lastModified?: string; etag?: string }> {
  return withRetries(options, async () => {
    const response = await httpGet(url, options);
    if (response.status === 304) {
      await discardBody(response);
      return {};
    }
    let body: Buffer;
    try {
      body = await readBody(response, limit);
    } catch (error) {
      throw Object.assign(new UserError(`GET ${url}: ${describeError(error)}`, { cause: error }), { code: errorCode(error) });
    }
    return { body, lastModified: header(response, 'last-modified'), etag: header(response, 'etag') };
  });
}
