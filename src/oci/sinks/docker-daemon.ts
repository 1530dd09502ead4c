/**
 * `--load`: streams the image's docker-archive (the same bytes `--tar` writes) to a Docker
 * Engine's `POST /images/load`, as `docker load` does, without a docker CLI.
 *
 * The engine is found as the docker CLI finds it without contexts: DOCKER_HOST (`unix:///path`,
 * `tcp://host:port`, also `http://` / `https://`), else /var/run/docker.sock; DOCKER_TLS_VERIFY
 * switches tcp to TLS with ca.pem/cert.pem/key.pem from DOCKER_CERT_PATH (default ~/.docker).
 * `docker context` selections (DOCKER_CONTEXT, currentContext in ~/.docker/config.json) and ssh://
 * hosts are not read.
 *
 * The engine is asked for its version first: a missing engine is reported before any layer is
 * read, and the engine's own os/arch is the default platform picked from an index (the engine
 * may be a remote machine of another architecture). The upload has no Content-Length (chunked):
 * the archive is produced while it is sent and never held. If reading a blob fails mid-way the
 * request is destroyed, so the engine sees a truncated body and loads nothing. The engine's
 * answer is a stream of JSON messages; an error message in it becomes a UserError.
 *
 * Layers the engine already holds are not sent again where that can be known for sure (Docker's
 * own image store, an image of our repositories sharing our first layers: see
 * layersTheEngineHolds), so loading a rebuild sends its changed layers, not the whole image.
 */
import { readFileSync } from 'node:fs';
import { request as httpRequest, type ClientRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { UserError, describeError } from '../../errors.js';
import type { Artifact, Image } from '../image.js';
import { formatPlatform, hostPlatform, type Platform } from '../platform.js';
import type { Sink, SinkCheckContext, SinkContext, SinkResult } from '../sink.js';
import { stages } from '../../progress.js';
import { choosePlatform, parseSinkTags, selectImage, type SinkTag } from './common.js';
import { isArchiveSourceError, writeDockerArchive } from './docker-archive.js';

export const DEFAULT_DOCKER_SOCKET = '/var/run/docker.sock';

/** Where the Docker Engine API is, and how to reach it. */
export interface DockerEndpoint {
  /** How it is named in messages: the socket path, or `tcp://host:port`. */
  display: string;
  /** Options for node:http / node:https, without method and path. */
  connect: RequestOptions & { ca?: Buffer; cert?: Buffer; key?: Buffer };
  tls: boolean;
  /** A path prefix from DOCKER_HOST (`tcp://host:2375/prefix`), '' when none. */
  basePath: string;
}

/** Resolves DOCKER_HOST (and DOCKER_TLS_VERIFY / DOCKER_CERT_PATH) as the docker CLI does. */
export function dockerEndpoint(env: NodeJS.ProcessEnv = process.env): DockerEndpoint {
  const host = (env.DOCKER_HOST ?? '').trim();
  if (host === '') return { display: DEFAULT_DOCKER_SOCKET, connect: { socketPath: DEFAULT_DOCKER_SOCKET }, tls: false, basePath: '' };
  if (host.startsWith('unix://')) {
    const socketPath = host.slice('unix://'.length);
    if (socketPath === '') throw new UserError(`DOCKER_HOST ${JSON.stringify(host)} names no socket path (expected unix:///path/to/docker.sock)`);
    return { display: socketPath, connect: { socketPath }, tls: false, basePath: '' };
  }
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(host)?.[1]?.toLowerCase();
  if (scheme !== 'tcp' && scheme !== 'http' && scheme !== 'https') {
    throw new UserError(
      `DOCKER_HOST ${JSON.stringify(host)} is not supported for --load: use unix:///path/to/docker.sock or tcp://host:port` +
        (scheme === 'ssh' ? ' (for ssh, forward the socket, e.g. ssh -L /tmp/docker.sock:/var/run/docker.sock host)' : ''),
    );
  }
  const tls = scheme === 'https' || (scheme === 'tcp' && (env.DOCKER_TLS_VERIFY ?? '') !== '');
  let url: URL;
  try {
    url = new URL(`${tls ? 'https' : 'http'}://${host.slice(scheme.length + 3)}`);
  } catch {
    throw new UserError(`DOCKER_HOST ${JSON.stringify(host)} is not a valid tcp://host:port address`);
  }
  const port = url.port === '' ? (tls ? 2376 : 2375) : Number(url.port);
  const hostname = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const connect: DockerEndpoint['connect'] = { host: hostname, port };
  if (tls) {
    const certPath = env.DOCKER_CERT_PATH || join(homedir(), '.docker');
    const read = (name: string): Buffer => {
      try {
        return readFileSync(join(certPath, name));
      } catch (error) {
        throw new UserError(`DOCKER_TLS_VERIFY is set but ${join(certPath, name)} cannot be read: ${describeError(error)}`);
      }
    };
    connect.ca = read('ca.pem');
    connect.cert = read('cert.pem');
    connect.key = read('key.pem');
  }
  const basePath = url.pathname.replace(/\/+$/, '');
  return { display: `${tls ? 'https' : 'tcp'}://${url.host}${basePath}`, connect, tls, basePath };
}

function startRequest(endpoint: DockerEndpoint, method: string, path: string, headers: Record<string, string> = {}): ClientRequest {
  // Over a unix socket there is no host name; name the API the way the docker CLI does.
  const host = endpoint.connect.socketPath ? { Host: 'docker' } : {};
  const options: RequestOptions = { ...endpoint.connect, method, path: endpoint.basePath + path, headers: { ...host, ...headers } };
  return endpoint.tls ? httpsRequest(options) : httpRequest(options);
}

function responseOf(request: ClientRequest): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    request.once('response', resolve);
    request.once('error', reject);
  });
}

async function readBody(response: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of response as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

/** The error a connection failure means: no engine there (one line). */
function noEngine(endpoint: DockerEndpoint, error: unknown): UserError {
  const hint = endpoint.connect.socketPath ? ' (is the Docker engine running? DOCKER_HOST selects another one)' : '';
  return new UserError(`no Docker engine at ${endpoint.display}: ${describeError(error)}${hint}`, { cause: error });
}

function oneLine(text: string): string {
  return text.trim().replace(/\s*\n\s*/g, '; ');
}

/** The `message` of an Engine API error body, or the body itself. */
function errorMessage(body: string): string {
  try {
    const parsed = JSON.parse(body) as { message?: unknown };
    if (typeof parsed.message === 'string') return parsed.message;
  } catch {
    // not JSON
  }
  return body.trim().split('\n')[0] ?? '';
}

export interface DockerEngineVersion {
  Version?: string;
  ApiVersion?: string;
  Os?: string;
  Arch?: string;
  Components?: { Name?: string }[];
}

/** A GET of the Engine API: the status and body, or the connection failure (as noEngine). */
async function engineGet(endpoint: DockerEndpoint, path: string, timeoutMs = 20_000): Promise<{ status: number; body: string }> {
  const request = startRequest(endpoint, 'GET', path);
  request.setTimeout(timeoutMs, () => request.destroy(new Error(`no answer within ${Math.round(timeoutMs / 1000)} s`)));
  request.end();
  try {
    const response = await responseOf(request);
    return { status: response.statusCode ?? 0, body: await readBody(response) };
  } catch (error) {
    throw noEngine(endpoint, error);
  }
}

/** GET /version: proves an engine answers, and says its platform. */
export async function dockerEngineVersion(endpoint: DockerEndpoint, timeoutMs = 20_000): Promise<DockerEngineVersion> {
  const { status, body } = await engineGet(endpoint, '/version', timeoutMs);
  if (status !== 200) {
    throw new UserError(`the Docker engine at ${endpoint.display} answered GET /version with HTTP ${status}: ${errorMessage(body)}`);
  }
  try {
    return JSON.parse(body) as DockerEngineVersion;
  } catch {
    throw new UserError(`${endpoint.display} answered GET /version with something that is not JSON; is it a Docker engine?`);
  }
}

/**
 * How many of the image's first layers the engine surely holds, so that the upload can leave
 * their files out (they stay named in manifest.json). Docker's graphdriver image store (moby's
 * image/tarexport load) looks each layer up by its chain ID — the digest of the diff_ids up to
 * it — and opens the layer's file only when that chain is missing. An image in the engine whose
 * first N diff_ids are ours proves the first N chains are there. The images asked about are
 * those of our tags' repositories (any tag: a rebuild is often tagged anew, by commit), at most
 * `maxImagesAsked` of them; a rebuild then sends its changed layers instead of the whole image.
 * The containerd image store and Podman read every file, so they get all of them (0). Any doubt
 * is 0: this only ever saves bytes, never decides what is loaded.
 */
export async function layersTheEngineHolds(endpoint: DockerEndpoint, version: DockerEngineVersion, image: Image, tags: readonly SinkTag[]): Promise<number> {
  if (tags.length === 0 || version.Components?.some((component) => /podman/i.test(component.Name ?? ''))) return 0;
  const json = async (path: string): Promise<unknown> => {
    const answer = await engineGet(endpoint, path).catch(() => undefined);
    if (answer?.status !== 200) return undefined;
    try {
      return JSON.parse(answer.body) as unknown;
    } catch {
      return undefined;
    }
  };
  const info = (await json('/info')) as { Driver?: unknown; DriverStatus?: unknown } | undefined;
  if (!info || typeof info.Driver !== 'string' || JSON.stringify(info.DriverStatus ?? []).includes('containerd.snapshotter')) return 0;
  const repositories = [...new Set(tags.map((tag) => tag.familiar.slice(0, tag.familiar.lastIndexOf(':'))))];
  const ids = new Set<string>();
  const listings = await Promise.all(repositories.map((repository) => json(`/images/json?filters=${encodeURIComponent(JSON.stringify({ reference: [repository] }))}`)));
  for (const listed of listings) {
    if (!Array.isArray(listed)) continue;
    for (const entry of listed as { Id?: unknown }[]) if (typeof entry.Id === 'string' && ids.size < maxImagesAsked) ids.add(entry.Id);
  }
  const shared = await Promise.all(
    [...ids].map(async (id) => {
      const present = (await json(`/images/${encodeURIComponent(id)}/json`)) as { RootFS?: { Layers?: unknown } } | undefined;
      const layers = present?.RootFS?.Layers;
      if (!Array.isArray(layers)) return 0;
      let count = 0;
      while (count < layers.length && count < image.layers.length && layers[count] === image.layers[count]!.diffId) count++;
      return count;
    }),
  );
  return Math.max(0, ...shared);
}

/** How many images of our repositories layersTheEngineHolds inspects at most (one request each). */
const maxImagesAsked = 16;

/** The engine answered the upload with a refusal (as opposed to the connection or our blobs failing). */
class EngineRefusedLoad extends UserError {}

/** Splits a stream of concatenated JSON values (newline-separated or not) into values. */
export function parseJsonStream(text: string): unknown[] {
  const values: unknown[] = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  let escaped = false;
  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    if (inString) {
      if (escaped) escaped = false;
      else if (char === '\\') escaped = true;
      else if (char === '"') inString = false;
      continue;
    }
    if (char === '"') inString = true;
    else if (char === '{' || char === '[') {
      if (depth === 0) start = i;
      depth++;
    } else if ((char === '}' || char === ']') && depth > 0) {
      depth--;
      if (depth === 0) values.push(JSON.parse(text.slice(start, i + 1)));
    }
  }
  return values;
}

interface JsonMessage {
  stream?: string;
  status?: string;
  error?: string;
  errorDetail?: { message?: string };
}

export interface DockerDaemonSinkOptions {
  /**
   * Which image of a multi-platform artifact to load; default the engine's own os/arch (from
   * GET /version). For a single image, a platform given here must match it.
   */
  platform?: Platform;
  /** Environment to read DOCKER_HOST etc. from; default process.env. */
  env?: NodeJS.ProcessEnv;
  /**
   * Called once the engine was asked which layers it holds, before the upload, with that count
   * (tests change the engine in between to prove the whole image is sent when that went stale).
   */
  beforeUpload?: (layersHeld: number) => Promise<void>;
}

/**
 * POST /images/load of the image's docker-archive, the first `omitLayers` layer files left out.
 * A refusal in the engine's answer is an EngineRefusedLoad.
 */
async function uploadArchive(
  endpoint: DockerEndpoint,
  image: Image,
  context: SinkContext,
  repoTags: string[],
  omitLayers: number,
  name: string,
): Promise<{ bytes: number; messages: JsonMessage[] }> {
  // Layers of a pulled base that are not cached yet are fetched before the upload starts, so
  // the engine's connection never idles through a download (or fails half-way through one).
  await Promise.all(image.layers.slice(omitLayers).map((layer) => context.blobs.ensureLayer(layer)));
  const total = image.layers.slice(omitLayers).reduce((sum, layer) => sum + layer.descriptor.size, 0) + image.config.bytes.length;
  const stage = context.progress.stage(stages.load(name, 'Docker', omitLayers > 0 ? `${omitLayers} of ${image.layers.length} layers already there` : undefined));
  const task = stage.begin(formatPlatform(image.platform), total);
  const request = startRequest(endpoint, 'POST', '/images/load?quiet=1', { 'Content-Type': 'application/x-tar' });
  const response = responseOf(request);
  response.catch(() => {}); // observed below; a failed upload must not leave it unhandled
  let bytes = 0;
  let messages: JsonMessage[];
  try {
    try {
      bytes = await writeDockerArchive(request, image, context.blobs, {
        repoTags,
        omitLayers,
        onBytes: (count) => task.advance(count),
      });
    } catch (error) {
      // A connection failure during the upload may come with an answer that says why.
      if (isArchiveSourceError(error)) throw error;
      const answer = await Promise.race([response, new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 2000).unref())]).catch(() => undefined);
      if (!answer) throw new UserError(`the Docker engine at ${endpoint.display} closed the connection during the upload: ${describeError(error)}`);
    }
    let answer: IncomingMessage;
    let body: string;
    try {
      answer = await response;
      body = await readBody(answer);
    } catch (error) {
      throw new UserError(`the Docker engine at ${endpoint.display} did not answer the image load: ${describeError(error)}`);
    }
    if (answer.statusCode !== 200) {
      throw new EngineRefusedLoad(`the Docker engine at ${endpoint.display} refused the image (HTTP ${answer.statusCode}): ${oneLine(errorMessage(body))}`);
    }
    try {
      messages = parseJsonStream(body) as JsonMessage[];
    } catch {
      throw new UserError(`the Docker engine at ${endpoint.display} answered the image load with malformed JSON: ${body.slice(0, 200)}`);
    }
    const failure = messages.find((message) => message.error !== undefined || message.errorDetail !== undefined);
    if (failure) {
      const text = failure.errorDetail?.message ?? failure.error ?? 'unknown error';
      throw new EngineRefusedLoad(`the Docker engine at ${endpoint.display} could not load the image: ${oneLine(text)}`);
    }
  } catch (error) {
    request.destroy();
    task.fail();
    stage.finish();
    throw error;
  }
  task.end();
  stage.finish();
  return { bytes, messages };
}

/** `--load`. */
export class DockerDaemonSink implements Sink {
  readonly name = 'load' as const;

  constructor(private readonly options: DockerDaemonSinkOptions = {}) {}

  async check(context: SinkCheckContext): Promise<void> {
    parseSinkTags(context.tags, '--load');
    // Without --load-platform the engine's platform decides, which is known only by asking it.
    if (this.options.platform) choosePlatform(context.platforms, this.options.platform, this.options.platform, '--load');
  }

  async write(artifact: Artifact, context: SinkContext): Promise<SinkResult> {
    const sink = '--load';
    const tags = parseSinkTags(context.tags, sink);
    const endpoint = dockerEndpoint(this.options.env ?? process.env);
    const version = await dockerEngineVersion(endpoint);
    const enginePlatform: Platform =
      version.Os && version.Arch ? { os: version.Os, architecture: version.Arch } : hostPlatform();
    const image = selectImage(artifact, this.options.platform, enginePlatform, sink);

    const repoTags = tags.map((tag) => tag.canonical);
    const name = tags[0]?.familiar ?? formatPlatform(image.platform);
    let held = await layersTheEngineHolds(endpoint, version, image, tags);
    await this.options.beforeUpload?.(held);
    let upload: { bytes: number; messages: JsonMessage[] };
    try {
      upload = await uploadArchive(endpoint, image, context, repoTags, held, name);
    } catch (error) {
      if (held === 0 || !(error instanceof EngineRefusedLoad)) throw error;
      // The image that proved those layers was removed in the meantime, and its layers with it.
      context.progress.info(`the Docker engine no longer holds the first ${held} layers (${error.message}); sending the whole image`);
      held = 0;
      upload = await uploadArchive(endpoint, image, context, repoTags, 0, name);
    }
    const { bytes, messages } = upload;
    const said = messages.map((message) => (message.stream ?? message.status ?? '').trim()).filter((line) => line !== '');
    const loaded = said.filter((line) => line.startsWith('Loaded image: ')).map((line) => line.slice('Loaded image: '.length));
    return {
      sink: 'load',
      written: loaded.length > 0 ? loaded : tags.length > 0 ? tags.map((tag) => tag.familiar) : [image.config.descriptor.digest],
      digest: image.manifest.descriptor.digest,
      bytes,
      details: {
        engine: endpoint.display,
        engineVersion: version.Version,
        layersSent: image.layers.length - held,
        layersTheEngineHeld: held,
        imageId: image.config.descriptor.digest,
        platform: formatPlatform(image.platform),
        messages: said,
        ...(artifact.kind === 'index' ? { indexDigest: artifact.index.index.descriptor.digest } : {}),
      },
    };
  }
}
