/**
 * The HTTP layer under the registry client: one request, one response, on node:http/node:https
 * with keep-alive agents. It streams request bodies (with an exact Content-Length) and response
 * bodies, never follows redirects and never retries; the client above decides what to do with a
 * status or a connection error.
 */
import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';

export interface TransportRequest {
  method: string;
  url: URL;
  headers?: Record<string, string>;
  /**
   * A request body: bytes, or a stream that is consumed once (the caller sets Content-Length and
   * makes a fresh stream for each attempt).
   */
  body?: Buffer | Readable;
  /** Idle-socket timeout; the request fails with ETIMEDOUT when nothing moves this long. */
  timeoutMs?: number;
}

export interface TransportResponse {
  status: number;
  headers: IncomingHttpHeaders;
  url: URL;
  body: Readable;
}

/** A request body stream failed (e.g. a blob in the store turned out corrupt): never retried. */
export class BodySourceError extends Error {
  override readonly name = 'BodySourceError';
  constructor(readonly source: unknown) {
    super(source instanceof Error ? source.message : String(source), { cause: source });
  }
}

const agents = {
  http: new http.Agent({ keepAlive: true, maxSockets: 32 }),
  https: new https.Agent({ keepAlive: true, maxSockets: 32 }),
};

/** How much of an early response (one sent before the request body was fully written) is kept. */
const earlyResponseLimit = 64 * 1024;

export function sendRequest(request: TransportRequest): Promise<TransportResponse> {
  const { url, method } = request;
  const secure = url.protocol === 'https:';
  const module = secure ? https : http;
  const headers: Record<string, string> = { ...(request.headers ?? {}) };
  if (Buffer.isBuffer(request.body)) headers['content-length'] = String(request.body.length);
  else if (!request.body && method !== 'GET' && method !== 'HEAD' && !hasHeader(headers, 'content-length')) {
    headers['content-length'] = '0';
  }

  return new Promise<TransportResponse>((resolve, reject) => {
    let settled = false;
    let bodyDone = !(request.body instanceof Readable);
    const fail = (error: unknown) => {
      if (settled) return;
      settled = true;
      if (request.body instanceof Readable) request.body.destroy();
      reject(error);
    };

    const req = module.request(url, { method, headers, agent: secure ? agents.https : agents.http });
    req.on('error', fail);
    if (request.timeoutMs) {
      req.setTimeout(request.timeoutMs, () => {
        req.destroy(Object.assign(new Error(`no data for ${Math.round(request.timeoutMs! / 1000)} s`), { code: 'ETIMEDOUT' }));
      });
    }
    req.on('response', (res: IncomingMessage) => {
      if (settled) {
        res.resume();
        return;
      }
      if (bodyDone) {
        settled = true;
        resolve({ status: res.statusCode ?? 0, headers: res.headers, url, body: res });
        return;
      }
      // The server answered before taking the whole body (an auth or size error, usually): keep
      // its (small) answer, stop sending, and drop the connection, which is no longer reusable.
      const chunks: Buffer[] = [];
      let length = 0;
      const finish = () => {
        if (settled) return;
        settled = true;
        const body = request.body as Readable;
        body.unpipe(req);
        body.destroy();
        req.destroy();
        resolve({ status: res.statusCode ?? 0, headers: res.headers, url, body: Readable.from([Buffer.concat(chunks)]) });
      };
      res.on('data', (chunk: Buffer) => {
        if (length < earlyResponseLimit) chunks.push(chunk);
        length += chunk.length;
      });
      res.on('end', finish);
      res.on('error', finish);
      res.on('close', finish);
    });

    const body = request.body;
    if (body === undefined) {
      req.end();
    } else if (Buffer.isBuffer(body)) {
      req.end(body);
    } else {
      body.on('error', (error) => {
        req.destroy();
        fail(new BodySourceError(error));
      });
      body.on('end', () => {
        bodyDone = true;
      });
      body.pipe(req);
    }
  });
}

function hasHeader(headers: Record<string, string>, name: string): boolean {
  return Object.keys(headers).some((key) => key.toLowerCase() === name);
}

/** Reads a whole response body, failing when it is longer than `limit` bytes. */
export async function readBody(response: TransportResponse, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of response.body) {
    const buffer = chunk as Buffer;
    length += buffer.length;
    if (length > limit) {
      response.body.destroy();
      throw new Error(`response body is larger than ${limit} bytes`);
    }
    chunks.push(buffer);
  }
  return Buffer.concat(chunks);
}

/** Reads and drops a response body so its connection can be reused; never throws. */
export async function discardBody(response: TransportResponse): Promise<void> {
  try {
    for await (const _chunk of response.body) {
      // drain
    }
  } catch {
    // a broken body of a response we do not use is not an error
  }
}

/** The first value of a response header. */
export function header(response: TransportResponse, name: string): string | undefined {
  const value = response.headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
}

/** Node's system-error code of a connection failure, if it is one. */
export function errorCode(error: unknown): string | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current && typeof current === 'object'; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}
