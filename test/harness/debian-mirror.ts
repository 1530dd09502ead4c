/**
 * A Debian mirror on 127.0.0.1 that forwards to the real archive, so tests can watch every
 * request and tamper with what the client receives:
 *
 *   /debian/…                               -> https://deb.debian.org/debian/…
 *   /debian-security/…                      -> https://security.debian.org/debian-security/…
 *   /archive/debian/<timestamp>/…           -> https://deb.debian.org/debian/…            (snapshot URL shape)
 *   /archive/debian-security/<timestamp>/…  -> https://security.debian.org/debian-security/…
 *
 * `respond` may answer a path itself (a forged file); `transform` may change the real bytes.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface DebianMirrorOptions {
  respond?: (path: string) => Buffer | undefined;
  transform?: (path: string, body: Buffer) => Buffer;
}

export interface DebianMirror {
  /** http://127.0.0.1:<port> */
  url: string;
  /** Paths requested, in order. */
  requests: string[];
  close(): Promise<void>;
}

const upstreams: [RegExp, string][] = [
  [/^\/debian-security\//, 'https://security.debian.org/debian-security/'],
  [/^\/debian\//, 'https://deb.debian.org/debian/'],
  [/^\/archive\/debian-security\/\d{8}T\d{6}Z\//, 'https://security.debian.org/debian-security/'],
  [/^\/archive\/debian\/\d{8}T\d{6}Z\//, 'https://deb.debian.org/debian/'],
];

export async function startDebianMirror(options: DebianMirrorOptions = {}): Promise<DebianMirror> {
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    requests.push(path);
    void (async () => {
      try {
        const forged = options.respond?.(path);
        if (forged) {
          res.writeHead(200, { 'content-length': forged.length });
          res.end(forged);
          return;
        }
        const upstream = upstreams.find(([pattern]) => pattern.test(path));
        if (!upstream) {
          res.writeHead(404).end();
          return;
        }
        const response = await fetch(path.replace(upstream[0], upstream[1]));
        if (response.status !== 200) {
          res.writeHead(response.status).end();
          return;
        }
        let body: Buffer = Buffer.from(await response.arrayBuffer());
        if (options.transform) body = options.transform(path, body);
        res.writeHead(200, { 'content-length': body.length });
        res.end(body);
      } catch (error) {
        res.writeHead(502).end(String(error));
      }
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
