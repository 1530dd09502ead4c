/**
 * The one retry policy of every HTTP client in uvimage (Debian archive, wheel and
 * python-build-standalone downloads, registries): what is transient, how many tries, how long
 * to wait between them.
 *
 * Transient, as uv judges it (crates/uv-client/src/base_client.rs, `UvRetryableStrategy`): a
 * connection reset, refused, aborted or timed out, a broken pipe, a DNS lookup that may succeed
 * later; and the statuses 408, 429 and 5xx — except 501, which uv retries too but which says the
 * server does not implement the method, and that does not get better. Everything else (other
 * 4xx, a digest mismatch, a bad signature) fails at once.
 *
 * The wait doubles from `baseDelayMs` up to `maxDelayMs`, with jitter so that parallel
 * downloads that failed together do not come back together; a `Retry-After` (seconds or an
 * HTTP date, RFC 9110 §10.2.3) replaces it, cut to `maxRetryAfterMs`.
 */
import { UserError } from '../errors.js';

export interface RetryPolicy {
  /** Tries of one request in all, the first one included. */
  attempts: number;
  /** Delay before the first retry, doubled for each next one (with jitter). */
  baseDelayMs: number;
  /** Longest backoff delay. */
  maxDelayMs: number;
  /** Tries when nothing could be connected to (refused, unreachable): fewer, as a missing server rarely appears. */
  connectionRefusedAttempts: number;
  /** A Retry-After longer than this is cut to it. */
  maxRetryAfterMs: number;
}

export const defaultRetryPolicy: Readonly<RetryPolicy> = {
  attempts: 5,
  baseDelayMs: 500,
  maxDelayMs: 15_000,
  connectionRefusedAttempts: 3,
  maxRetryAfterMs: 60_000,
};

/** The policy with `options` over the defaults; `false` means one try. */
export function retryPolicy(options: Partial<RetryPolicy> | false | undefined): RetryPolicy {
  if (options === false) return { ...defaultRetryPolicy, attempts: 1, connectionRefusedAttempts: 1 };
  return { ...defaultRetryPolicy, ...options };
}

/** Statuses worth another try: 408, 429, and 5xx except 501. */
export function isTransientStatus(status: number): boolean {
  return status === 408 || status === 429 || (status >= 500 && status <= 599 && status !== 501);
}

/** Connection failures that may not happen again. */
const transientCodes = new Set([
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ECONNABORTED',
  'EAI_AGAIN',
  'ERR_STREAM_PREMATURE_CLOSE',
  'UND_ERR_SOCKET',
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
]);

/** Failures to connect at all, tried `connectionRefusedAttempts` times. */
const unconnectedCodes = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH']);

/**
 * Whether a failure is worth another try. A UserError is a verdict (a digest mismatch, a refused
 * signature), never transient, unless it says so itself (`transient: true`, as NetworkError does).
 */
export function isTransientError(error: unknown): boolean {
  if (error instanceof UserError) return (error as { transient?: unknown }).transient === true;
  const code = errorCode(error);
  return code !== undefined && transientCodes.has(code);
}

/** How many tries a failure allows under `policy`. */
export function attemptsFor(error: unknown, policy: RetryPolicy): number {
  const code = errorCode(error);
  return code !== undefined && unconnectedCodes.has(code) ? Math.min(policy.attempts, policy.connectionRefusedAttempts) : policy.attempts;
}

/** The wait before try `attempt + 1`: exponential, capped, with jitter in its upper half. */
export function backoffMs(policy: RetryPolicy, attempt: number): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
}

/** Retry-After in seconds or as an HTTP date, in milliseconds from now, cut to `cap`. */
export function parseRetryAfter(value: string | undefined, cap: number): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  let delay: number;
  if (/^\d+$/.test(trimmed)) delay = Number(trimmed) * 1000;
  else {
    const date = Date.parse(trimmed);
    if (!Number.isFinite(date)) return undefined;
    delay = date - Date.now();
  }
  return Math.max(0, Math.min(cap, delay));
}

/** Node's system-error code of a failure (or of what caused it), if it has one. */
export function errorCode(error: unknown): string | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current && typeof current === 'object'; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
