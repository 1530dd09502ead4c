/**
 * The one request loop of uvimage's HTTP clients: a request sent over src/net/transport.ts,
 * redirects followed, transient failures tried again (src/net/retry.ts), through the proxy the
 * environment names (src/net/proxy.ts), with idle and whole-request timeouts.
 *
 * Credentials belong to one origin. The Authorization of a request (given, or made from the
 * URL's user:password, which never goes on the wire in the URL) is sent only while the request
 * stays on its scheme, host and port; a redirect anywhere else drops it, with Cookie and
 * Proxy-Authorization, for the rest of that request (uv's `request_into_redirect` in
 * crates/uv-client/src/base_client.rs does the same). A redirect Location that carries
 * user:password of its own gets those as its Authorization, as in uv.
 *
 * Failures are one line naming the method and the URL as sent, so without credentials (and the
 * proxy, when one was used, with its credentials redacted).
 */
import type { Readable } from 'node:stream';
import { UserError, describeError } from '../errors.js';
import { proxyFor, redactUrl } from './proxy.js';
import { attemptsFor, backoffMs, errorCode, isTransientError, isTransientStatus, parseRetryAfter, retryPolicy, sleep, type RetryPolicy } from './retry.js';
import { BodySourceError, discardBody, header, sendRequest, trustedCertificates, type TransportResponse } from './transport.js';

/** A request body that can be sent again (a retry, a 307): its length and a way to read it from the start. */
export interface RequestBody {
  length: number;
  open(): Promise<Readable>;
}

export interface HttpRequest {
  /** Default GET. */
  method?: string;
  url: URL | string;
  headers?: Record<string, string>;
  /** Sent to the URL's origin only (see the top of this file). An `authorization` header counts as this. */
  authorization?: string;
  body?: Buffer | RequestBody;
  /** Follow 301/302/303/307/308; default for GET and HEAD only. */
  followRedirects?: boolean;
  /** Over the shared policy; `false`: one try, every answer and failure goes to the caller. */
  retry?: Partial<RetryPolicy> | false;
  /** A try fails when its connection is idle this long; default 60 s. */
  idleTimeoutMs?: number;
  /**
   * Each request (a redirect hop, a retry), its response body included when `consume` reads it,
   * must end within this; default none, as a large download may rightly take long.
   */
  timeoutMs?: number;
  /** Where proxy settings and SSL_CERT_FILE are read; default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Called with each URL a request is sent to (redirect hops and retries included). */
  onRequest?: (url: string) => void;
}

export interface HttpResponse extends TransportResponse {
  /** Tries made. */
  attempts: number;
  /** The proxy the answer came through, if any (its status may be the proxy's own). */
  proxy?: URL;
  /**
   * For a transient status handed to the caller (tries used up, or `retry: false`): how long the
   * server asked to wait (Retry-After), else the backoff the policy would wait.
   */
  retryDelayMs?: number;
}

/**
 * A request failed without an answer (connection, timeout, too many redirects). Its message is
 * `METHOD URL: detail`; a caller with its own wording uses `url` and `detail`.
 */
export class NetworkError extends UserError {
  /** Node's error code, e.g. ECONNRESET. */
  readonly code: string | undefined;
  /** What went wrong (and through which proxy). */
  readonly detail: string;
  constructor(
    readonly method: string,
    /** The URL as sent (no credentials). */
    readonly url: string,
    reason: string,
    readonly transient: boolean,
    options: { cause?: unknown; proxy?: URL } = {},
  ) {
    const detail = `${reason}${options.proxy ? ` (through proxy ${redactUrl(options.proxy)})` : ''}`;
    super(`${method} ${url}: ${detail}`, { cause: options.cause });
    this.detail = detail;
    this.code = errorCode(options.cause);
  }
}

/** A response with a status the caller does not accept: `METHOD URL: HTTP 404`. */
export class HttpStatusError extends UserError {
  /** `HTTP 404` and any hint. */
  readonly detail: string;
  constructor(
    readonly method: string,
    /** The URL as sent (no credentials). */
    readonly url: string,
    readonly status: number,
    hint = '',
    proxy?: URL,
  ) {
    const detail = `HTTP ${status}${statusHint(status)}${hint}${proxy ? ` (through proxy ${redactUrl(proxy)})` : ''}`;
    super(`${method} ${url}: ${detail}`);
    this.detail = detail;
  }
}

function statusHint(status: number): string {
  // Only a proxy answers 407; its credentials go in the proxy URL.
  return status === 407 ? ' (the proxy wants credentials: http://user:password@proxy:port in HTTPS_PROXY/HTTP_PROXY)' : '';
}

/** A status error for a response (its body is drained so the connection can be reused). */
export async function statusError(response: HttpResponse, method = 'GET', hint = ''): Promise<HttpStatusError> {
  await discardBody(response);
  return new HttpStatusError(method, response.url.href, response.status, hint, response.proxy);
}

const maxRedirects = 10;
const defaultIdleTimeoutMs = 60_000;
const redirectStatuses = new Set([301, 302, 303, 307, 308]);
/** Headers that hold credentials for the origin they were set for. */
const credentialHeaders = ['authorization', 'cookie', 'proxy-authorization'];

/** Sends a request and returns the response (for any status) whose body the caller reads. */
export function request(spec: HttpRequest): Promise<HttpResponse> {
  return requestWith(spec, async (response) => response);
}

/**
 * Sends a request and hands the response to `consume`. Transient failures are tried again, a
 * failure of `consume` as well (a connection reset while it streams the body into the store):
 * the whole try starts over. A transient status the tries did not get past reaches `consume`
 * too, with `retryDelayMs`.
 */
export async function requestWith<T>(spec: HttpRequest, consume: (response: HttpResponse) => Promise<T>): Promise<T> {
  const policy = retryPolicy(spec.retry);
  const method = (spec.method ?? 'GET').toUpperCase();
  const start = new URL(spec.url);
  for (let attempt = 1; ; attempt++) {
    let response: HttpResponse;
    // The hop being sent, and its proxy: what a failure names.
    let hop: { url: URL; proxy: URL | undefined } = { url: withoutUserinfo(start), proxy: undefined };
    try {
      response = await sendFollowing(spec, method, start, (current) => (hop = current));
    } catch (error) {
      if (error instanceof UserError || error instanceof BodySourceError) throw error;
      const transient = isTransientError(error);
      if (transient && attempt < attemptsFor(error, policy)) {
        await sleep(backoffMs(policy, attempt));
        continue;
      }
      throw new NetworkError(method, hop.url.href, describeFailure(error), transient, { cause: error, proxy: hop.proxy });
    }
    response.attempts = attempt;
    if (isTransientStatus(response.status)) {
      const delay = parseRetryAfter(header(response, 'retry-after'), policy.maxRetryAfterMs) ?? backoffMs(policy, attempt);
      if (attempt < policy.attempts) {
        await discardBody(response);
        await sleep(delay);
        continue;
      }
      response.retryDelayMs = delay;
    }
    try {
      return await consume(response);
    } catch (error) {
      response.body.destroy();
      if (!isTransientError(error)) throw error;
      if (attempt < attemptsFor(error, policy)) {
        await sleep(backoffMs(policy, attempt));
        continue;
      }
      if (error instanceof NetworkError) throw error;
      throw new NetworkError(method, response.url.href, describeFailure(error), true, { cause: error, proxy: hop.proxy });
    }
  }
}

/** One try: the request and the redirects it is sent along, credentials kept to their origin. */
async function sendFollowing(
  spec: HttpRequest,
  firstMethod: string,
  start: URL,
  sending: (hop: { url: URL; proxy: URL | undefined }) => void,
): Promise<HttpResponse> {
  const env = spec.env ?? process.env;
  const ca = await trustedCertificates(env);
  const follow = spec.followRedirects ?? (firstMethod === 'GET' || firstMethod === 'HEAD');
  const headers: Record<string, string> = { 'user-agent': 'uvimage' };
  let authorization = spec.authorization;
  for (const [name, value] of Object.entries(spec.headers ?? {})) {
    if (name.toLowerCase() === 'authorization') authorization ??= value;
    else headers[name.toLowerCase()] = value;
  }
  let url = new URL(start.href);
  authorization ??= userinfoAuthorization(url);
  let origin = url.origin;
  let method = firstMethod;
  let body = spec.body;
  for (let hops = 0; ; hops++) {
    const wire = withoutUserinfo(url);
    const sent: Record<string, string> = { ...headers };
    if (authorization) sent.authorization = authorization;
    let stream: Buffer | Readable | undefined;
    if (body !== undefined && method !== 'GET' && method !== 'HEAD') {
      if (Buffer.isBuffer(body)) stream = body;
      else {
        sent['content-length'] = String(body.length);
        try {
          stream = await body.open();
        } catch (error) {
          throw new BodySourceError(error);
        }
      }
    }
    const proxy = proxyFor(wire, env);
    sending({ url: wire, proxy });
    spec.onRequest?.(wire.href);
    const response: HttpResponse = Object.assign(
      await sendRequest({
        method,
        url: wire,
        headers: sent,
        body: stream,
        idleTimeoutMs: spec.idleTimeoutMs ?? defaultIdleTimeoutMs,
        ...(spec.timeoutMs ? { timeoutMs: spec.timeoutMs } : {}),
        ...(proxy ? { proxy } : {}),
        ...(ca ? { ca } : {}),
      }),
      proxy ? { attempts: 1, proxy } : { attempts: 1 },
    );
    const location = header(response, 'location');
    if (!follow || !redirectStatuses.has(response.status) || !location) return response;
    await discardBody(response);
    if (hops >= maxRedirects) throw new NetworkError(firstMethod, wire.href, `more than ${maxRedirects} redirects`, false);
    let next: URL;
    try {
      next = new URL(location, url);
    } catch {
      throw new NetworkError(firstMethod, wire.href, `redirect to an invalid URL ${JSON.stringify(location)}`, false);
    }
    if (next.protocol !== 'http:' && next.protocol !== 'https:') {
      throw new NetworkError(firstMethod, wire.href, `redirect to a ${next.protocol} URL, not http(s)`, false);
    }
    if (next.origin !== origin) {
      // Another origin: what was meant for the first one stays there.
      authorization = undefined;
      for (const name of credentialHeaders) delete headers[name];
    }
    const own = userinfoAuthorization(next);
    if (own) {
      authorization = own;
      origin = next.origin;
    }
    // RFC 9110 §15.4.4: a 303 is followed by a GET (of the new URL, without the body).
    if (response.status === 303 && method !== 'HEAD') {
      method = 'GET';
      body = undefined;
      delete headers['content-type'];
    }
    url = next;
  }
}

/** Basic credentials from a URL's user:password, if it has any. */
function userinfoAuthorization(url: URL): string | undefined {
  if (!url.username && !url.password) return undefined;
  const credentials = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`;
  return `Basic ${Buffer.from(credentials).toString('base64')}`;
}

/** The URL as sent: node would turn user:password into an Authorization header of its own. */
function withoutUserinfo(url: URL): URL {
  if (!url.username && !url.password) return url;
  const copy = new URL(url.href);
  copy.username = '';
  copy.password = '';
  return copy;
}

/** One line for a failure without an answer. */
function describeFailure(error: unknown): string {
  const code = errorCode(error);
  const message = describeError(error).replace(/\s+/g, ' ').trim();
  if (!code) return message || 'failed';
  return message && !message.includes(code) ? `${message} (${code})` : message || code;
}
