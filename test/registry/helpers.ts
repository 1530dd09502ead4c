/** Shared pieces of the registry tests: stores, real layers, images, a BlobSource, skopeo. */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { after, before } from 'node:test';
import { promisify } from 'node:util';
import { silentProgress } from '../../src/progress.js';
import { createBlobSource } from '../../src/oci/blobs.js';
import { assembleImage, extendConfig, type Image, type ImageConfig, type Layer } from '../../src/oci/image.js';
import { writeLayer } from '../../src/oci/layer-writer.js';
import type { Platform } from '../../src/oci/platform.js';
import type { BlobSource, SinkContext } from '../../src/oci/sink.js';
import { BlobStore } from '../../src/oci/store.js';
import type { RegistryClient, RegistryClientOptions } from '../../src/registry/client.js';
import { fetchLayerBlob } from '../../src/registry/pull.js';
import { startFaultProxy, type FaultProxy } from '../harness/fault-proxy.js';
import { startRegistry, type TestRegistry } from '../harness/registry.js';

const run = promisify(execFile);

export const amd64: Platform = { os: 'linux', architecture: 'amd64' };
export const arm64: Platform = { os: 'linux', architecture: 'arm64', variant: 'v8' };

/** Fast retries for tests. */
export const fastRetry = { attempts: 5, baseDelayMs: 20, maxDelayMs: 200, connectionRefusedAttempts: 2 };

export interface TempStore {
  store: BlobStore;
  dir: string;
  cleanup(): Promise<void>;
}

export async function tempStore(): Promise<TempStore> {
  const dir = await mkdtemp(join(tmpdir(), 'uvimage-store-'));
  const store = await BlobStore.open(dir);
  return { store, dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export async function tempDir(): Promise<{ dir: string; cleanup(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'uvimage-test-'));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** A real gzip'd tar layer in the store with the given files (path → content). */
export async function makeLayer(store: BlobStore, files: Record<string, string | Buffer>): Promise<Layer> {
  const written = await writeLayer(
    store,
    Object.entries(files).map(([path, content]) => {
      const bytes = Buffer.from(content);
      return { type: 'file' as const, path, size: bytes.length, mode: 0o644, open: () => bytes };
    }),
    { mtime: 0 },
  );
  return { descriptor: written.descriptor, diffId: written.diffId };
}

/** An image of the given layers (on top of an optional base config and layers). */
export function makeImage(options: {
  platform?: Platform;
  layers: Layer[];
  base?: { config: ImageConfig; layers: Layer[] };
  flavour?: 'oci' | 'docker';
  cmd?: string[];
}): Image {
  const platform = options.platform ?? amd64;
  const config = extendConfig({
    ...(options.base ? { base: options.base.config } : {}),
    platform,
    added: options.layers.map((layer, index) => ({ layer, history: { created_by: `test layer ${index}` } })),
    changes: { Cmd: options.cmd ?? ['/bin/true'], Env: ['UVIMAGE_TEST=1'] },
    created: '1970-01-01T00:00:00Z',
  });
  return assembleImage({
    platform,
    config,
    layers: [...(options.base?.layers ?? []), ...options.layers],
    flavour: options.flavour ?? 'oci',
  });
}

/** A BlobSource over the store that fetches pulled layers on demand, counting what it opens. */
export function countingBlobSource(
  store: BlobStore,
  client?: RegistryClient | RegistryClientOptions,
): BlobSource & { opened: string[]; fetched: string[] } {
  const opened: string[] = [];
  const fetched: string[] = [];
  const inner = createBlobSource(store, async (layer) => {
    fetched.push(layer.descriptor.digest);
    await fetchLayerBlob(layer, store, client ?? {});
  });
  return {
    opened,
    fetched,
    ensureLayer: (layer) => inner.ensureLayer(layer),
    async openLayer(layer: Layer): Promise<Readable> {
      opened.push(layer.descriptor.digest);
      return inner.openLayer(layer);
    },
  };
}

export function sinkContext(blobs: BlobSource, tags: string[] = []): SinkContext {
  return { blobs, progress: silentProgress, tags };
}

export async function skopeo(args: string[]): Promise<string> {
  const { stdout } = await run('skopeo', args, { maxBuffer: 64 * 1024 * 1024 });
  return stdout;
}

/** A test file's registry, a fault proxy in front of it and a temp store: started before its tests, stopped after them. */
export function registryBehindFaultProxy(): { registry: TestRegistry; proxy: FaultProxy; local: TempStore } {
  const fixture = {} as { registry: TestRegistry; proxy: FaultProxy; local: TempStore };
  before(async () => {
    fixture.registry = await startRegistry();
    fixture.proxy = await startFaultProxy(fixture.registry.host);
    fixture.local = await tempStore();
  });
  after(async () => {
    await fixture.proxy?.stop();
    await fixture.registry?.stop();
    await fixture.local?.cleanup();
  });
  return fixture;
}
