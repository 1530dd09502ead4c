/**
 * A caching mirror on 127.0.0.1 in front of the real Debian archive and PyPI's file host, so a
 * test can build from an empty store — every index file, .deb and wheel downloaded, as on a
 * fresh machine — without fetching them from the internet on every run:
 *
 *   /debian/…           -> https://deb.debian.org/debian/…
 *   /debian-security/…  -> https://security.debian.org/debian-security/…
 *   /pythonhosted/…     -> https://files.pythonhosted.org/…
 *
 * Files that never change under their name (Debian's pool/ and by-hash/ paths, PyPI's files) are
 * kept on disk in the test cache after the first fetch; the rest (InRelease) is forwarded every
 * time. The mirror checks nothing: uvimage verifies every byte it receives (sha256 from the
 * signed index or the lock), so a damaged cache fails the build, never passes it.
 *
 * `files` serves local directories under prefixes of their own (the python-build-standalone
 * stand-in as a mirror over http: `{ '/python/': mirror.dir }`), and `requests` lists every path
 * asked for, so a test can count what a build downloaded.
 */
import { createReadStream } from 'node:fs';
import { mkdir, rename, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join, normalize } from 'node:path';
import { testCacheDir } from '../harness/cache.js';

const upstreams: [string, string][] = [
  ['/debian-security/', 'https://security.debian.org/debian-security/'],
  ['/debian/', 'https://deb.debian.org/debian/'],
  ['/pythonhosted/', 'https://files.pythonhosted.org/'],
];

export interface CachingMirror {
  /** http://127.0.0.1:<port> */
  url: string;
  /** Every path requested, in order (clear it with `requests.length = 0`). */
  requests: string[];
  close(): Promise<void>;
}

function immutable(path: string): boolean {
  return path.startsWith('/pythonhosted/') || /\/(pool|by-hash)\//.test(path);
}

export async function startCachingMirror(options: { files?: Record<string, string> } = {}): Promise<CachingMirror> {
  const cacheDir = join(testCacheDir(), 'caching-mirror');
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    void (async () => {
      const path = normalize(new URL(req.url ?? '/', 'http://mirror').pathname);
      requests.push(path);
      const local = Object.entries(options.files ?? {}).find(([prefix]) => path.startsWith(prefix));
      if (local && !path.includes('..')) {
        // Asset names are URL-encoded (a `+` as %2B); the file has the plain name.
        const file = join(local[1], decodeURIComponent(path.slice(local[0].length)));
        const stats = await stat(file).catch(() => undefined);
        if (!stats?.isFile()) {
          res.writeHead(404).end();
          return;
        }
        res.writeHead(200, { 'content-length': stats.size });
        createReadStream(file).pipe(res);
        return;
      }
      const route = upstreams.find(([prefix]) => path.startsWith(prefix));
      if (!route || path.includes('..')) {
        res.writeHead(404).end();
        return;
      }
      const upstream = route[1] + path.slice(route[0].length);
      const cached = join(cacheDir, path);
      if (immutable(path) && (await stat(cached).catch(() => undefined))?.isFile()) {
        res.writeHead(200, { 'content-length': (await stat(cached)).size });
        createReadStream(cached).pipe(res);
        return;
      }
      const answer = await fetch(upstream, { headers: pickHeaders(req.headers), signal: AbortSignal.timeout(120_000) });
      const body = Buffer.from(await answer.arrayBuffer());
      if (answer.ok && immutable(path)) {
        await mkdir(dirname(cached), { recursive: true });
        const temp = `${cached}.tmp-${process.pid}-${Date.now()}`;
        await writeFile(temp, body);
        await rename(temp, cached);
      }
      const headers: Record<string, string> = { 'content-length': String(body.length) };
      for (const name of ['last-modified', 'etag', 'content-type']) {
        const value = answer.headers.get(name);
        if (value) headers[name] = value;
      }
      res.writeHead(answer.status, headers).end(body);
    })().catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(502);
      res.end(String(error));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** The conditional-request headers an InRelease fetch sends, passed on. */
function pickHeaders(headers: http.IncomingHttpHeaders): Record<string, string> {
  const picked: Record<string, string> = {};
  for (const name of ['if-modified-since', 'if-none-match']) {
    const value = headers[name];
    if (typeof value === 'string') picked[name] = value;
  }
  return picked;
}
