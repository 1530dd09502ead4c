/**
 * Small, real images for tests: a static busybox (the host's /bin/busybox, amd64) with a few
 * applet symlinks and a known /hello.txt, written through the real layer writer into a store.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { assembleImage, assembleIndex, buildTimestamp, extendConfig, type Artifact, type Image, type Layer, type MediaTypeFlavour } from '../../src/oci/image.js';
import type { LayerEntry } from '../../src/oci/layer-entry.js';
import { writeLayer } from '../../src/oci/layer-writer.js';
import type { Platform } from '../../src/oci/platform.js';
import type { BlobSource } from '../../src/oci/sink.js';
import { createBlobSource } from '../../src/oci/blobs.js';
import type { BlobStore } from '../../src/oci/store.js';

export const BUSYBOX = '/bin/busybox';
export const DEFAULT_HELLO = 'hello from a uvimage test image';

/** A BlobSource that serves layers from the store only (tests have no registry to fetch from). */
export function storeBlobSource(store: BlobStore): BlobSource {
  return createBlobSource(store);
}

export interface BusyboxImageOptions {
  /** The single line /hello.txt holds (a newline is appended). */
  hello?: string;
  /** Extra files, path (relative, no leading '/') to content. */
  files?: Record<string, string>;
  flavour?: MediaTypeFlavour;
  annotations?: Record<string, string>;
}

/** The layer entries: /bin/busybox, /bin/{sh,echo,cat,ls} -> busybox, /hello.txt and any extra files. */
export async function busyboxEntries(options: BusyboxImageOptions = {}): Promise<LayerEntry[]> {
  const size = (await stat(BUSYBOX)).size;
  const text = (content: string): { size: number; open: () => Buffer } => {
    const bytes = Buffer.from(content, 'utf8');
    return { size: bytes.length, open: () => bytes };
  };
  const entries: LayerEntry[] = [
    { type: 'directory', path: 'bin', mode: 0o755 },
    { type: 'file', path: 'bin/busybox', mode: 0o755, size, open: () => createReadStream(BUSYBOX) },
    ...['sh', 'echo', 'cat', 'ls'].map((name): LayerEntry => ({ type: 'symlink', path: `bin/${name}`, target: 'busybox' })),
    { type: 'file', path: 'hello.txt', mode: 0o644, ...text(`${options.hello ?? DEFAULT_HELLO}\n`) },
  ];
  for (const [path, content] of Object.entries(options.files ?? {})) entries.push({ type: 'file', path, mode: 0o644, ...text(content) });
  return entries;
}

/**
 * A one-layer image: Entrypoint ["/bin/busybox"], Cmd ["cat", "/hello.txt"], so running it prints
 * the hello line. The platform only goes into the config and manifest (the busybox bytes are
 * amd64 whatever it says; a fake arm64 image is fine for format tests).
 */
export async function makeBusyboxImage(store: BlobStore, platform: Platform, options: BusyboxImageOptions = {}): Promise<Artifact & { kind: 'image' }> {
  return { kind: 'image', image: await busyboxImage(store, platform, options) };
}

async function busyboxImage(store: BlobStore, platform: Platform, options: BusyboxImageOptions): Promise<Image> {
  const written = await writeLayer(store, await busyboxEntries(options));
  const layer: Layer = { descriptor: written.descriptor, diffId: written.diffId };
  const config = extendConfig({
    platform,
    added: [{ layer, history: { created_by: 'uvimage test: busybox and /hello.txt' } }],
    changes: { Entrypoint: ['/bin/busybox'], Cmd: ['cat', '/hello.txt'], Env: ['PATH=/bin'] },
    created: buildTimestamp().iso,
  });
  return assembleImage({ platform, config, layers: [layer], annotations: options.annotations, flavour: options.flavour });
}

/** A multi-platform artifact: one busybox image per platform, in the order given. */
export async function makeBusyboxIndex(store: BlobStore, platforms: Platform[], options: BusyboxImageOptions = {}): Promise<Artifact & { kind: 'index' }> {
  const images: Image[] = [];
  for (const platform of platforms) images.push(await busyboxImage(store, platform, options));
  return { kind: 'index', index: assembleIndex(images, { flavour: options.flavour }) };
}
