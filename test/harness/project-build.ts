/**
 * End-to-end builds of the fastapi-hello example: the CLI with the standalone stand-in or the
 * shared store, and containers of the images it builds (started, polled over HTTP, inspected,
 * removed).
 */
import assert from 'node:assert/strict';
import { cp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Digest } from '../../src/oci/digest.js';
import { testCacheDir } from './cache.js';
import { uvimage } from './cli.js';
import { check, run } from './docker.js';
import type { StandaloneMirror } from './standalone-python.js';
import type { PlatformReport } from '../../src/pipeline/execute.js';

/** The example project of the recipe (pyproject.toml with [tool.uvimage], uv.lock). */
export const fastapiHello = fileURLToPath(new URL('../../examples/fastapi-hello', import.meta.url));

/** The persistent store end-to-end builds share, so reruns download no .deb, wheel or runtime. */
export function sharedCliCache(): string {
  return join(testCacheDir(), 'store');
}

/** The environment that points the CLI at the python-build-standalone stand-in. */
export function standaloneEnv(mirror: StandaloneMirror, url = `file://${mirror.dir}`): NodeJS.ProcessEnv {
  return { UVIMAGE_PYTHON_MIRROR: url, UVIMAGE_PYTHON_DOWNLOADS_JSON: mirror.metadataPath };
}

/** `uvimage build --json` output: the build, its sinks, and the per-platform report with layer roles. */
export interface BuildJson {
  digest: Digest;
  mediaType: string;
  images: { platform: string; digest: Digest; config: Digest; layers: { digest: Digest; size: number }[] }[];
  outputs: { sink: string; written: string[]; digest: string; bytes?: number; details?: Record<string, unknown> }[];
  platforms: PlatformReport[];
}

/** Runs a build that must succeed and returns its --json result. */
export async function buildOk(args: string[], env: NodeJS.ProcessEnv = {}): Promise<BuildJson & { seconds: number }> {
  const started = Date.now();
  const result = await uvimage([...args, '--json'], env);
  assert.equal(result.code, 0, `uvimage ${args.join(' ')} failed (${result.code}):\n${result.stderr}`);
  return { ...(JSON.parse(result.stdout) as BuildJson), seconds: (Date.now() - started) / 1000 };
}

/** A copy of the example in `dir` (optionally without some files). */
export async function copyExample(dir: string, options: { without?: string[] } = {}): Promise<string> {
  await cp(fastapiHello, dir, { recursive: true });
  for (const name of options.without ?? []) await rm(join(dir, name), { force: true });
  return dir;
}

/** Appends `lines` to a file (e.g. a key to [tool.uvimage], the last table of the example). */
export async function appendLines(path: string, lines: string[]): Promise<void> {
  await writeFile(path, `${await readFile(path, 'utf8')}${lines.join('\n')}\n`);
}

export async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}

/** The example's command with another port and host, given to `docker run` (the image's own Cmd says port 8000). */
export function appCommand(pythonMinor: string, port: number): string[] {
  return ['fastapi', 'run', '--host', '127.0.0.1', '--port', String(port), `/app/.venv/lib/python${pythonMinor}/site-packages/fastapi_hello`];
}

/** Starts a detached container (host network) and returns its id. */
export async function startContainer(image: string, dockerArgs: string[], command: string[] = []): Promise<string> {
  return (await check('docker', ['run', '-d', '--network', 'host', ...dockerArgs, image, ...command])).trim();
}

export async function removeContainers(ids: string[]): Promise<void> {
  if (ids.length > 0) await run('docker', ['rm', '--force', ...ids]);
}

/**
 * GETs `url` until it answers (the app is starting; under qemu that takes long), failing early if
 * the container exits. Returns the status and body.
 */
export async function waitForHttp(url: string, container: string, timeoutMs: number): Promise<{ status: number; body: string; waitedMs: number }> {
  const started = Date.now();
  for (;;) {
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(5000) });
      return { status: response.status, body: await response.text(), waitedMs: Date.now() - started };
    } catch {
      // not listening yet
    }
    const state = await run('docker', ['inspect', '--format', '{{.State.Running}}', container]);
    if (state.stdout.trim() !== 'true') {
      const logs = await run('docker', ['logs', container]);
      throw new Error(`container ${container.slice(0, 12)} exited before answering ${url}:\n${logs.stdout}${logs.stderr}`);
    }
    if (Date.now() - started > timeoutMs) {
      const logs = await run('docker', ['logs', container]);
      throw new Error(`no answer from ${url} within ${timeoutMs / 1000} s:\n${logs.stdout}${logs.stderr}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

/** The image config as the engine sees it (`docker image inspect`). */
export interface EngineImage {
  Id: string;
  Architecture: string;
  Config: { User?: string; WorkingDir?: string; Env?: string[]; ExposedPorts?: Record<string, object>; Cmd?: string[]; Entrypoint?: string[] | null };
  RootFS: { Layers: string[] };
}

export async function inspectImage(ref: string): Promise<EngineImage> {
  return (JSON.parse(await check('docker', ['image', 'inspect', ref])) as EngineImage[])[0]!;
}
