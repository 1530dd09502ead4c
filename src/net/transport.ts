/**
 * One HTTP exchange: one request, one response, on node:http/node:https with keep-alive agents,
 * directly or through a proxy (an absolute-form request to an http:// proxy for http:// URLs, a
 * CONNECT tunnel for https:// ones: http-proxy-agent and https-proxy-agent, loaded only when a
 * proxy is in use). It streams request bodies (with an exact Content-Length) and response
 * bodies, never follows redirects and never retries: src/net/request.ts does that, once for
 * every client.
 */
import { readFile } from 'node:fs/promises';
import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';
import { UserError, describeError } from '../errors.js';

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
  idleTimeoutMs?: number;
  /**
   * The whole exchange, response body included, must end within this; else the request and its
   * response fail with ETIMEDOUT.
   */
  timeoutMs?: number;
  /** The proxy to go through (src/net/proxy.ts decides); undefined: connect directly. */
  proxy?: URL;
  /** PEM certificates to trust instead of Node's bundled roots (SSL_CERT_FILE). */
  ca?: string;
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

const agentOptions = { keepAlive: true, maxSockets: 32 };
const directAgents = {
  http: new http.Agent(agentOptions),
  https: new https.Agent(agentOptions),
};
/** Proxy agents by proxy URL and target scheme, so connections through a proxy are reused too. */
const proxyAgents = new Map<string, Promise<http.Agent>>();

function agentFor(secure: boolean, proxy: URL | undefined): Promise<http.Agent> {
  if (!proxy) return Promise.resolve(secure ? directAgents.https : directAgents.http);
  const key = `${secure ? 'https' : 'http'} ${proxy.href}`;
  let agent = proxyAgents.get(key);
  if (!agent) {
    agent = secure
      ? import('https-proxy-agent').then(({ HttpsProxyAgent }) => new HttpsProxyAgent(proxy, agentOptions))
      : import('http-proxy-agent').then(({ HttpProxyAgent }) => new HttpProxyAgent(proxy, agentOptions));
    proxyAgents.set(key, agent);
  }
  return agent;
}

const certificateFiles = new Map<string, Promise<string>>();

/**
 * The certificates SSL_CERT_FILE names (a PEM bundle), which replace Node's bundled roots as
 * they replace the platform's in uv and OpenSSL: what a network whose proxy re-signs TLS needs.
 */
export function trustedCertificates(env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  const path = env.SSL_CERT_FILE?.trim();
  if (!path) return Promise.resolve(undefined);
  let pending = certificateFiles.get(path);
  if (!pending) {
    pending = readFile(path, 'utf8').then(
      (text) => {
        if (!text.includes('-----BEGIN CERTIFICATE-----')) throw new UserError(`SSL_CERT_FILE=${path} holds no PEM certificate`);
        return text;
      },
      (error: unknown) => {
        throw new UserError(`SSL_CERT_FILE=${path} cannot be read: ${describeError(error)}`);
      },
    );
    pending.catch(() => certificateFiles.delete(path));
    certificateFiles.set(path, pending);
  }
  return pending;
}

/** How much of an early response (one sent before the request body was fully written) is kept. */
const earlyResponseLimit = 64 * 1024;

export async function sendRequest(request: TransportRequest): Promise<TransportResponse> {
  const { url, method } = request;
  const secure = url.protocol === 'https:';
  const module = secure ? https : http;
  const agent = await agentFor(secure, request.proxy);
  const headers: Record<string, string> = { ...(request.headers ?? {}) };
  if (Buffer.isBuffer(request.body)) headers['content-length'] = String(request.body.length);
  else if (!request.body && method !== 'GET' && method !== 'HEAD' && !hasHeader(headers, 'content-length')) {
    headers['content-length'] = '0';
  }

  return new Promise<TransportResponse>((resolve, reject) => {
    let settled = false;
    let bodyDone = !(request.body instanceof Readable);
    let response: IncomingMessage | undefined;
    let deadline: NodeJS.Timeout | undefined;
    const fail = (error: unknown) => {
      clearTimeout(deadline);
      if (settled) return;
      settled = true;
      if (request.body instanceof Readable) request.body.destroy();
      reject(error);
    };

    const req = module.request(url, { method, headers, agent, ...(request.ca ? { ca: request.ca } : {}) });
    req.on('error', fail);
    if (request.idleTimeoutMs) {
      const seconds = Math.round(request.idleTimeoutMs / 1000);
      req.setTimeout(request.idleTimeoutMs, () => req.destroy(timeoutError(`no data for ${seconds} s`)));
    }
    if (request.timeoutMs) {
      const seconds = Math.round(request.timeoutMs / 1000);
      deadline = setTimeout(() => {
        const error = timeoutError(`not done within ${seconds} s`);
        req.destroy(error);
        response?.destroy(error);
      }, request.timeoutMs);
      deadline.unref();
    }
    req.on('response', (res: IncomingMessage) => {
      response = res;
      res.once('close', () => clearTimeout(deadline));
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

function timeoutError(message: string): Error {
  return Object.assign(new Error(message), { code: 'ETIMEDOUT' });
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
