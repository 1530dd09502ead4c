/**
 * The debug variant of an image (`--debug-image`, `debug-image = true`), as distroless' `:debug`
 * tags are: the same image plus a static busybox from Debian's busybox-static at /busybox, on
 * PATH, in one extra top layer — so every other layer, and the image's own command, is shared
 * with the image it is the variant of. Written beside it under `<tag>-debug`.
 */
import { posix } from 'node:path';
import { readDebFile } from '../debian/deb.js';
import { fetchDebs } from '../debian/archive/index.js';
import type { PlannedDeb } from '../base/build.js';
import { UserError } from '../errors.js';
import { debianSuites, type DebianSuite } from '../facts/debian-suites.js';
import { assembleImage, extendConfig, mergeContainerConfig, type ContainerConfig, type Image, type ImageConfig, type MediaTypeFlavour } from '../oci/image.js';
import type { LayerEntry } from '../oci/layer-entry.js';
import { writeLayer } from '../oci/layer-writer.js';
import type { Platform } from '../oci/platform.js';
import type { BlobStore } from '../oci/store.js';
import type { Progress } from '../progress.js';

/** The suffix of a debug variant's tags: `app:1.0` → `app:1.0-debug`. */
export const debugTagSuffix = '-debug';

/** Where busybox goes; distroless' debug images put it there too. */
const busyboxDir = 'busybox';

/**
 * The applets linked beside busybox: a shell and what one reaches for inside a container
 * (distroless' debug images link busybox's full list; these are the ones worth a name here).
 */
const applets = [
  'sh', 'ash', 'cat', 'chmod', 'cp', 'cut', 'date', 'df', 'du', 'echo', 'env', 'find', 'free', 'grep', 'head', 'hostname',
  'id', 'ip', 'kill', 'less', 'ln', 'ls', 'mkdir', 'mv', 'netstat', 'nslookup', 'ping', 'printenv', 'ps', 'pwd', 'rm',
  'sed', 'sleep', 'sort', 'stat', 'tail', 'tar', 'tee', 'top', 'touch', 'tr', 'uname', 'vi', 'wc', 'wget', 'which', 'xargs',
];

export interface DebugImagePlan {
  /** Debian's busybox-static for the platform's architecture, verified by its sha256 when fetched. */
  deb: PlannedDeb;
  suite: DebianSuite;
  /** The variant's runtime settings: the image's, with /busybox last on PATH. */
  config: ContainerConfig;
}

/** The variant's plan: busybox-static of the suite, and the image's config with /busybox on PATH. */
export function planDebugImage(deb: PlannedDeb, suite: DebianSuite, config: ContainerConfig): DebugImagePlan {
  return { deb, suite, config: mergeContainerConfig(config, { Env: [pathWithBusybox(config.Env)] }) };
}

function pathWithBusybox(env: string[] | undefined): string {
  const path = env?.find((entry) => entry.startsWith('PATH='))?.slice(5) ?? '/usr/local/bin:/usr/bin:/bin';
  return `PATH=${path}:/${busyboxDir}`;
}

/** Writes the busybox layer and assembles the variant on top of `image`. */
export async function writeDebugImage(
  plan: DebugImagePlan,
  image: { config: ImageConfig; platform: Platform; layers: Image['layers']; annotations: Record<string, string> },
  options: { store: BlobStore; mtime: number; created: string; mediaTypes: MediaTypeFlavour; progress?: Progress },
): Promise<Image> {
  const { store } = options;
  const [digest] = await fetchDebs([plan.deb], store, { progress: options.progress });
  const label = `${plan.deb.name}_${plan.deb.version}_${plan.deb.arch}.deb`;
  const deb = await readDebFile(store.blobPath(digest!), { spoolPath: store.tempPath('debspool'), label, mergedUsr: debianSuites[plan.suite].mergedUsr });
  try {
    const binary = deb.files.find((file) => file.type === 'file' && posix.basename(file.path) === 'busybox' && /(^|\/)bin\/busybox$/.test(file.path));
    if (!binary) throw new UserError(`${label} has no bin/busybox`);
    const entries: LayerEntry[] = [
      { type: 'directory', path: busyboxDir, mode: 0o755 },
      { type: 'file', path: `${busyboxDir}/busybox`, mode: 0o755, size: binary.size, open: () => deb.open(binary) },
      ...applets.map((name): LayerEntry => ({ type: 'symlink', path: `${busyboxDir}/${name}`, target: 'busybox' })),
    ];
    const layer = await writeLayer(store, entries, { mtime: options.mtime });
    const config = extendConfig({
      base: image.config,
      platform: image.platform,
      added: [{ layer, history: { created_by: `uvimage: debug variant, ${label} at /${busyboxDir}`, comment: 'uvimage' } }],
      changes: { Env: [pathWithBusybox(image.config.config?.Env)] },
      created: options.created,
    });
    const debug = assembleImage({ platform: image.platform, config, layers: [...image.layers, layer], annotations: image.annotations, flavour: options.mediaTypes });
    await store.putBytes(debug.config.bytes);
    await store.putBytes(debug.manifest.bytes);
    return debug;
  } finally {
    await deb.close();
  }
}
