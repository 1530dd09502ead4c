/**
 * A forward HTTP proxy on 127.0.0.1, as squid or tinyproxy are to their clients: absolute-form
 * requests (`GET http://host:port/path`) are forwarded, `CONNECT host:port` opens a tunnel
 * (https through the proxy), and `Proxy-Authorization` is checked when credentials are set
 * (407 with a Proxy-Authenticate challenge otherwise).
 *
 * The names it connects to come from its own table, not DNS: `names.test` → 127.0.0.1, so a
 * test can use a host name that only the proxy can reach (a request that does not go through it
 * fails to resolve) while every connection stays on this machine. A name not in the table gets
 * 502; the proxy never connects anywhere else.
 */
import http, { type IncomingMessage } from 'node:http';
import net, { type AddressInfo } from 'node:net';

export interface ForwardProxyEntry {
  method: string;
  /** The absolute URL of a forwarded request, or host:port of a CONNECT. */
  target: string;
  /** The Proxy-Authorization the client sent, if any. */
  proxyAuthorization?: string;
  /** Whether a forwarded request carried an Authorization (a tunnel's are inside TLS). */
  authorization: boolean;
  status: number;
}

export interface ForwardProxy {
  /** http://127.0.0.1:PORT */
  url: string;
  log: ForwardProxyEntry[];
  stop(): Promise<void>;
}

export async function startForwardProxy(options: { names: Record<string, string>; credentials?: { username: string; password: string } }): Promise<ForwardProxy> {
  const log: ForwardProxyEntry[] = [];
  const expected = options.credentials
    ? `Basic ${Buffer.from(`${options.credentials.username}:${options.credentials.password}`).toString('base64')}`
    : undefined;
  const address = (host: string): string | undefined => options.names[host.toLowerCase()];
  const authorized = (req: IncomingMessage): boolean => expected === undefined || req.headers['proxy-authorization'] === expected;
  const entry = (req: IncomingMessage, target: string, status: number): ForwardProxyEntry => {
    const record: ForwardProxyEntry = { method: req.method ?? '', target, authorization: req.headers.authorization !== undefined, status };
    if (req.headers['proxy-authorization']) record.proxyAuthorization = req.headers['proxy-authorization'];
    log.push(record);
    return record;
  };
  const agent = new http.Agent({ keepAlive: false });

  const server = http.createServer((req, res) => {
    let target: URL;
    try {
      target = new URL(req.url ?? '');
    } catch {
      entry(req, req.url ?? '', 400);
      res.writeHead(400).end('a proxy request needs an absolute URL');
      return;
    }
    if (!authorized(req)) {
      entry(req, target.href, 407);
      res.writeHead(407, { 'proxy-authenticate': 'Basic realm="uvimage-test-proxy"' }).end();
      return;
    }
    const host = address(target.hostname);
    if (target.protocol !== 'http:' || !host) {
      entry(req, target.href, 502);
      res.writeHead(502).end(`the test proxy does not reach ${target.host}`);
      return;
    }
    const record = entry(req, target.href, 0);
    const headers = { ...req.headers };
    delete headers['proxy-authorization'];
    delete headers['proxy-connection'];
    const upstream = http.request(
      { host, port: target.port || 80, method: req.method, path: `${target.pathname}${target.search}`, headers, agent },
      (answer) => {
        record.status = answer.statusCode ?? 0;
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
    req.pipe(upstream);
  });

  /** Tunnels leave the HTTP server's bookkeeping; stop() ends them itself. */
  const tunnels = new Set<net.Socket>();
  server.on('connect', (req: IncomingMessage, client: net.Socket, head: Buffer) => {
    tunnels.add(client);
    client.on('close', () => tunnels.delete(client));
    const target = req.url ?? '';
    const match = /^([^:]+|\[[^\]]+\]):(\d+)$/.exec(target);
    const refuse = (status: number, reason: string, headers = '') => {
      entry(req, target, status);
      client.end(`HTTP/1.1 ${status} ${reason}\r\n${headers}Content-Length: 0\r\n\r\n`);
    };
    if (!authorized(req)) return refuse(407, 'Proxy Authentication Required', 'Proxy-Authenticate: Basic realm="uvimage-test-proxy"\r\n');
    const host = match ? address(match[1]!) : undefined;
    if (!match || !host) return refuse(502, 'Bad Gateway');
    entry(req, target, 200);
    const upstream = net.connect(Number(match[2]), host, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    tunnels.add(upstream);
    upstream.on('close', () => tunnels.delete(upstream));
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    log,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const socket of tunnels) socket.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
        agent.destroy();
      }),
  };
}
