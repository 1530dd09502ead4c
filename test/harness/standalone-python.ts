/**
 * A python-build-standalone stand-in for machines that cannot reach its releases: made once by
 * scripts/make-standalone-python from a CPython on this machine (pyenv's) into the persistent
 * test cache, and served from 127.0.0.1 like a release mirror, so the runtime goes through the
 * same download and verification code as the real one.
 */
import { spawnSync } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chooseStandaloneDownload, loadStandaloneDownloads, standaloneUrl, type StandaloneDownload } from '../../src/runtime/standalone.js';
import { testCacheDir } from './cache.js';
import { exists } from './project-build.js';

const script = fileURLToPath(new URL('../../scripts/make-standalone-python', import.meta.url));

export interface StandaloneMirror {
  /** The mirror tree: <release>/<asset>. */
  dir: string;
  /** uv-format download metadata with the stand-in's sha256. */
  metadataPath: string;
  version: string;
}

/** The stand-in for `version` (made on first use, then reused from the test cache). */
export async function standaloneMirror(version = '3.12.1'): Promise<StandaloneMirror> {
  // The suffix changes whenever scripts/make-standalone-python makes something else (2: without nis).
  const dir = join(testCacheDir(), 'standalone-python', `${version}-2`);
  const metadataPath = join(dir, 'download-metadata.json');
  if (!(await exists(metadataPath))) {
    const result = spawnSync(script, [version, dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    if (result.status !== 0) throw new Error(`make-standalone-python ${version} failed: ${result.stderr}`);
  }
  JSON.parse(await readFile(metadataPath, 'utf8'));
  return { dir, metadataPath, version };
}

/**
 * python-build-standalone's real release of the newest `minor` (x86_64) in uvimage's pinned
 * table, when its release URL answers within a few seconds; undefined where GitHub is out of
 * reach (as on the machines this project is developed on), and the stand-in serves instead.
 */
export async function reachableRealStandalone(minor: string): Promise<StandaloneDownload | undefined> {
  const pinned: NodeJS.ProcessEnv = {};
  const { downloads, source } = await loadStandaloneDownloads(pinned);
  const download = chooseStandaloneDownload(downloads, 'x86_64', { version: minor, source });
  const answer = await fetch(standaloneUrl(download, pinned), { method: 'HEAD', signal: AbortSignal.timeout(5000) }).catch(() => undefined);
  return answer?.ok ? download : undefined;
}

export interface StaticServer {
  url: string;
  /** Paths requested, in order. */
  requests: string[];
  stop(): Promise<void>;
}

/** Serves a directory over http on 127.0.0.1 (GET only), as a release mirror does. */
export async function serveDirectory(dir: string): Promise<StaticServer> {
  const requests: string[] = [];
  const server: Server = createServer((request, response) => {
    const path = decodeURIComponent(new URL(request.url ?? '/', 'http://x').pathname);
    requests.push(path);
    const file = normalize(join(dir, path));
    if (!file.startsWith(dir)) {
      response.writeHead(403).end();
      return;
    }
    stat(file).then(
      (stats) => {
        if (!stats.isFile()) return response.writeHead(404).end();
        response.writeHead(200, { 'content-length': stats.size });
        createReadStream(file).pipe(response);
      },
      () => response.writeHead(404).end(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
