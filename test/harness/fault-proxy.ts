/**
 * An HTTP proxy on 127.0.0.1 in front of a real registry that injects faults by rule: answer
 * with a status instead of forwarding (500s, a 429 with Retry-After), drop the connection before
 * forwarding, cut a request body midway (the registry gets part of it, the client a reset),
 * flip a byte of a response body, replace a response body (malformed JSON), strip headers, or
 * redirect blob downloads to a "storage" server on a second port (named `localhost` if asked,
 * so the redirect crosses hosts while every server binds 127.0.0.1). It keeps the client's Host
 * header, so the registry's upload Locations point back through the proxy, and counts requests
 * and bytes. Any HTTP server can stand behind it (the private Python index of the tests too).
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type FaultAction =
  /** Answer with a status instead of forwarding; `early`: without reading the request body first. */
  | { kind: 'status'; status: number; headers?: Record<string, string>; body?: string; early?: boolean }
  /** Destroy the client's connection without forwarding anything. */
  | { kind: 'drop' }
  /** Forward the request but only `afterBytes` of its body, then destroy both connections. */
  | { kind: 'reset-midway'; afterBytes: number }
  /** Forward, and flip one byte (default: the middle one) of the response body. */
  | { kind: 'flip-byte'; offset?: number }
  /** Forward, but answer with this body (and status/headers) instead of the registry's. */
  | { kind: 'replace-body'; body: string | Buffer; status?: number; headers?: Record<string, string> }
  /** Forward, removing these response headers. */
  | { kind: 'strip-headers'; headers: string[] }
  /** Answer 307 to the same path on the storage server (which fetches from the registry). */
  | { kind: 'redirect-to-storage' };

export interface FaultRule {
  method?: string | string[];
  /** Matched against the path without the query string. */
  path?: RegExp;
  /** Let this many matching requests through untouched first. */
  skip?: number;
  /** Act on this many matching requests; default every one. */
  times?: number;
  action: FaultAction;
}

export interface ProxyLogEntry {
  method: string;
  path: string;
  status?: number;
  fault?: FaultAction['kind'];
  authorization: boolean;
}

export interface FaultProxy {
  /** `127.0.0.1:PORT`, to use as the registry host. */
  host: string;
  port: number;
  /** `HOST:PORT` of the storage server redirects point at (HOST: `storageHostname`, default 127.0.0.1). */
  storageHost: string;
  stats: { requests: number; byMethod: Record<string, number>; requestBytes: number; responseBytes: number; faults: number };
  log: ProxyLogEntry[];
  /** Requests the storage server got, with whether they carried an Authorization header. */
  storageLog: { path: string; authorization: boolean }[];
  setRules(rules: FaultRule[]): void;
  resetStats(): void;
  stop(): Promise<void>;
}

interface ActiveRule {
  rule: FaultRule;
  seen: number;
  acted: number;
}

export async function startFaultProxy(
  upstream: string,
  rules: FaultRule[] = [],
  options: { storageAuthorization?: string; storageHostname?: string } = {},
): Promise<FaultProxy> {
  const [upstreamHost, upstreamPortText] = upstream.split(':');
  const upstreamPort = Number(upstreamPortText);
  let active: ActiveRule[] = [];
  const stats: FaultProxy['stats'] = { requests: 0, byMethod: {}, requestBytes: 0, responseBytes: 0, faults: 0 };
  const log: ProxyLogEntry[] = [];
  const storageLog: FaultProxy['storageLog'] = [];
  const agent = new http.Agent({ keepAlive: false });
  let storagePort = 0;
  const storageHostname = options.storageHostname ?? '127.0.0.1';

  const setRules = (next: FaultRule[]) => {
    active = next.map((rule) => ({ rule, seen: 0, acted: 0 }));
  };
  setRules(rules);

  const pick = (method: string, path: string): FaultAction | undefined => {
    for (const entry of active) {
      const { rule } = entry;
      const methods = rule.method === undefined ? undefined : Array.isArray(rule.method) ? rule.method : [rule.method];
      if (methods && !methods.includes(method)) continue;
      if (rule.path && !rule.path.test(path)) continue;
      entry.seen++;
      if (entry.seen <= (rule.skip ?? 0)) continue;
      if (rule.times !== undefined && entry.acted >= rule.times) continue;
      entry.acted++;
      return rule.action;
    }
    return undefined;
  };

  const server = http.createServer((req, res) => {
    const method = req.method ?? 'GET';
    const path = (req.url ?? '/').split('?')[0]!;
    stats.requests++;
    stats.byMethod[method] = (stats.byMethod[method] ?? 0) + 1;
    const entry: ProxyLogEntry = { method, path, authorization: req.headers.authorization !== undefined };
    log.push(entry);
    req.on('data', (chunk: Buffer) => {
      stats.requestBytes += chunk.length;
    });
    const action = pick(method, path);
    if (action) {
      stats.faults++;
      entry.fault = action.kind;
    }

    if (action?.kind === 'status') {
      const answer = () => {
        entry.status = action.status;
        res.writeHead(action.status, { 'content-type': 'application/json', ...(action.headers ?? {}) });
        res.end(action.body ?? JSON.stringify({ errors: [{ code: 'UNKNOWN', message: 'injected fault' }] }));
      };
      if (action.early) {
        // Answer at once and close: the client is still sending its body.
        res.setHeader('connection', 'close');
        answer();
        return;
      }
      req.resume();
      req.on('end', answer);
      return;
    }
    if (action?.kind === 'drop') {
      req.socket.destroy();
      return;
    }
    if (action?.kind === 'redirect-to-storage') {
      req.resume();
      req.on('end', () => {
        entry.status = 307;
        res.writeHead(307, { location: `http://${storageHostname}:${storagePort}/storage${req.url}`, 'content-length': '0' });
        res.end();
      });
      return;
    }

    const upstreamReq = http.request(
      { host: upstreamHost, port: upstreamPort, method, path: req.url, headers: req.headers, agent },
      (upstreamRes) => respond(upstreamRes, res, entry, action),
    );
    upstreamReq.on('error', () => {
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
    if (action?.kind === 'reset-midway') {
      let forwarded = 0;
      let cut = false;
      req.on('data', (chunk: Buffer) => {
        if (cut) return;
        const room = action.afterBytes - forwarded;
        if (chunk.length < room) {
          forwarded += chunk.length;
          upstreamReq.write(chunk);
          return;
        }
        cut = true;
        upstreamReq.write(chunk.subarray(0, room));
        // Let the partial body reach the registry, then break both sides.
        setTimeout(() => {
          upstreamReq.destroy();
          req.socket.destroy();
        }, 100);
      });
      req.on('end', () => {
        if (!cut) upstreamReq.end();
      });
      return;
    }
    req.pipe(upstreamReq);
  });

  function respond(upstreamRes: IncomingMessage, res: ServerResponse, entry: ProxyLogEntry, action: FaultAction | undefined): void {
    const headers = { ...upstreamRes.headers };
    entry.status = upstreamRes.statusCode;
    if (action?.kind === 'strip-headers') {
      for (const name of action.headers) delete headers[name.toLowerCase()];
    }
    if (action?.kind === 'replace-body') {
      upstreamRes.resume();
      const body = Buffer.from(action.body);
      delete headers['docker-content-digest'];
      delete headers.etag;
      Object.assign(headers, action.headers ?? {}, { 'content-length': String(body.length) });
      entry.status = action.status ?? upstreamRes.statusCode;
      res.writeHead(entry.status ?? 200, headers);
      res.end(body);
      stats.responseBytes += body.length;
      return;
    }
    res.writeHead(upstreamRes.statusCode ?? 502, headers);
    if (action?.kind === 'flip-byte') {
      const length = Number(upstreamRes.headers['content-length'] ?? 0);
      const target = action.offset ?? Math.floor(length / 2);
      let position = 0;
      upstreamRes.on('data', (chunk: Buffer) => {
        const copy = Buffer.from(chunk);
        if (target >= position && target < position + copy.length) copy[target - position] = copy[target - position]! ^ 0xff;
        position += copy.length;
        stats.responseBytes += copy.length;
        res.write(copy);
      });
      upstreamRes.on('end', () => res.end());
      upstreamRes.on('error', () => res.destroy());
      return;
    }
    upstreamRes.on('data', (chunk: Buffer) => {
      stats.responseBytes += chunk.length;
    });
    upstreamRes.pipe(res);
  }

  /** The "blob storage" redirects point at: fetches the blob from the registry itself. */
  const storage = http.createServer((req, res) => {
    const path = (req.url ?? '/').replace(/^\/storage/, '');
    storageLog.push({ path: path.split('?')[0]!, authorization: req.headers.authorization !== undefined });
    const headers: Record<string, string> = {};
    if (options.storageAuthorization) headers.authorization = options.storageAuthorization;
    const upstreamReq = http.request(
      { host: upstreamHost, port: upstreamPort, method: req.method, path, headers, agent },
      (upstreamRes) => {
        const out = { ...upstreamRes.headers };
        res.writeHead(upstreamRes.statusCode ?? 502, out);
        upstreamRes.pipe(res);
      },
    );
    upstreamReq.on('error', () => res.writeHead(502).end());
    upstreamReq.end();
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  await new Promise<void>((resolve) => storage.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  storagePort = (storage.address() as AddressInfo).port;

  const close = (target: http.Server) =>
    new Promise<void>((resolve) => {
      target.close(() => resolve());
      target.closeAllConnections();
    });

  return {
    host: `127.0.0.1:${port}`,
    port,
    storageHost: `${storageHostname}:${storagePort}`,
    stats,
    log,
    storageLog,
    setRules,
    resetStats() {
      stats.requests = 0;
      stats.byMethod = {};
      stats.requestBytes = 0;
      stats.responseBytes = 0;
      stats.faults = 0;
      log.length = 0;
      storageLog.length = 0;
    },
    async stop() {
      await Promise.all([close(server), close(storage)]);
      agent.destroy();
    },
  };
}
