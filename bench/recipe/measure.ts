/**
 * The measuring side of the recipe benchmark: timed commands, a container's start to its first
 * HTTP 200, manifests read from the local registry, and the summary statistics.
 */
import { spawn } from 'node:child_process';
import { appendFile } from 'node:fs/promises';
import http from 'node:http';
import { performance } from 'node:perf_hooks';

export interface Timed {
  seconds: number;
  stdout: string;
}

/** Runs a command to completion, appending its output to `logFile`; a non-zero exit throws. */
export function timed(command: string, args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; logFile: string }): Promise<Timed> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(command, args, { env: options.env ?? process.env, cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      const seconds = (performance.now() - started) / 1000;
      const stdout = Buffer.concat(out).toString('utf8');
      const stderr = Buffer.concat(err).toString('utf8');
      appendFile(options.logFile, `\n$ ${command} ${args.join(' ')}\n(exit ${code}, ${seconds.toFixed(2)} s)\n${stdout}${stderr}`).then(
        () => (code === 0 ? resolve({ seconds, stdout }) : reject(new Error(`${command} ${args.join(' ')} exited with ${code}:\n${(stderr || stdout).slice(-3000)}`))),
        reject,
      );
    });
  });
}

/** One GET; undefined when nothing answers. */
export function httpGet(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders } | undefined> {
  return new Promise((resolve) => {
    const request = http.get(url, { headers, agent: false }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), headers: response.headers }));
      response.on('error', () => resolve(undefined));
    });
    request.on('error', () => resolve(undefined));
    request.setTimeout(2000, () => request.destroy());
  });
}

/**
 * `docker run -d --network host IMAGE`, then polls `url` every 20 ms: the seconds from just
 * before `docker run` to the first HTTP 200, and that response's body. The container is removed.
 */
export async function startToFirst200(docker: string, image: string, url: string, logFile: string): Promise<{ seconds: number; body: string }> {
  if (await httpGet(url)) throw new Error(`something already answers on ${url}; stop it before benchmarking`);
  const started = performance.now();
  const { stdout } = await timed(docker, ['run', '-d', '--network', 'host', image], { logFile });
  const id = stdout.trim();
  try {
    const deadline = started + 120_000;
    while (performance.now() < deadline) {
      const response = await httpGet(url);
      if (response?.status === 200) return { seconds: (performance.now() - started) / 1000, body: response.body };
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const logs = await timed(docker, ['logs', id], { logFile }).catch(() => ({ stdout: '' }));
    throw new Error(`${image} did not answer 200 on ${url} within 120 s:\n${logs.stdout.slice(-2000)}`);
  } finally {
    await timed(docker, ['rm', '-f', id], { logFile }).catch(() => undefined);
    // Wait until the port is free again, so the next container binds it.
    for (let i = 0; i < 100 && (await httpGet(url)); i++) await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A manifest in a registry (plain http): its digest, layer count and compressed size. */
export async function registryManifest(host: string, repository: string, tag: string): Promise<{ digest: string; layers: number; compressed: number }> {
  const accept = [
    'application/vnd.oci.image.manifest.v1+json',
    'application/vnd.docker.distribution.manifest.v2+json',
  ].join(', ');
  const response = await httpGet(`http://${host}/v2/${repository}/manifests/${tag}`, { accept });
  if (response?.status !== 200) throw new Error(`manifest ${host}/${repository}:${tag}: HTTP ${response?.status}`);
  const manifest = JSON.parse(response.body) as { layers?: { size: number }[]; manifests?: unknown[] };
  if (!manifest.layers) throw new Error(`${host}/${repository}:${tag} is an index, not an image manifest`);
  return {
    digest: String(response.headers['docker-content-digest']),
    layers: manifest.layers.length,
    compressed: manifest.layers.reduce((sum, layer) => sum + layer.size, 0),
  };
}

export interface Stats {
  median: number;
  min: number;
  max: number;
  n: number;
}

export function stats(values: number[]): Stats {
  const sorted = [...values].sort((a, b) => a - b);
  const n = sorted.length;
  const median = n === 0 ? NaN : n % 2 ? sorted[(n - 1) / 2]! : (sorted[n / 2 - 1]! + sorted[n / 2]!) / 2;
  return { median, min: sorted[0] ?? NaN, max: sorted[n - 1] ?? NaN, n };
}

export const mib = (bytes: number): string => (bytes / 2 ** 20).toFixed(1);
/** Bytes for people: KiB below 1 MiB, else MiB. */
export const bytes = (value: number): string => (value < 2 ** 20 ? `${(value / 1024).toFixed(1)} KiB` : `${mib(value)} MiB`);
export const secs = (value: number): string => value.toFixed(2);

/** `median (min–max)` of seconds, or of MiB with `format`. */
export function spread(values: number[], format: (value: number) => string = secs): string {
  const s = stats(values);
  if (s.n === 1 || format(s.min) === format(s.max)) return format(s.median);
  return `${format(s.median)} (${format(s.min)}–${format(s.max)})`;
}
