import { Command } from 'commander';
import type { Platform } from '../oci/platform.js';
import { createBlobSource } from '../oci/blobs.js';
import type { Artifact } from '../oci/image.js';
import type { Referrer } from '../oci/referrers.js';
import type { BlobSource, Sink, SinkResult } from '../oci/sink.js';
import { BlobStore, defaultCacheDir } from '../oci/store.js';
import { RegistryClient, type RepositoryRef } from '../registry/client.js';
import { RegistryLayerCache } from '../registry/layer-cache.js';
import { fetchLayerBlob } from '../registry/pull.js';
import { describeBuild, summarizeBuild } from './output.js';
import { createProgress, type CliProgress } from './progress.js';
import { openSinks, registryOptionsFrom, type OutputOptions } from './sinks.js';

/** Options every command that produces an image shares: where it goes, and how the run talks. */
export interface CommonOptions extends OutputOptions {
  cacheDir?: string;
  /** The layer cache in a registry, as the request resolved it (build, plan, run). */
  layerCache?: RepositoryRef;
  json?: boolean;
  quiet?: boolean;
  debug?: boolean;
}

/** `app:1.0` → `app:1.0-debug`; a reference without a tag is `latest`'s variant. */
export function variantTag(tag: string, suffix: string): string {
  const name = tag.slice(tag.lastIndexOf('/') + 1);
  return name.includes(':') ? `${tag}${suffix}` : `${tag}:latest${suffix}`;
}

/** Collects a repeatable option's values. */
export const collect = (value: string, previous: string[]) => [...previous, value];

export function addOutputOptions(command: Command): Command {
  return command
    .option('-t, --tag <ref>', 'name and tag, e.g. registry.example.com/me/app:1.0 (repeatable)', collect, [])
    .option('--push', 'push to the registry named by each tag')
    .option('--load', 'load into the running Docker engine (DOCKER_HOST honoured)')
    .option('--oci <dir>', 'write an OCI image layout directory')
    .option('--tar <file>', 'write a docker-archive tarball (docker load / podman load)')
    .option('--load-platform <os/arch>', 'platform to take from a multi-platform build for --load and --tar (default: this host)')
    .option('--insecure-registry <host>', 'allow plain http to this registry (localhost and 127.0.0.1 always are)', collect, [])
    .option('--registry-username <name>', 'username for the registries of the tags (or UVIMAGE_REGISTRY_USERNAME)')
    .option('--registry-password-stdin', 'read the registry password from standard input (or UVIMAGE_REGISTRY_PASSWORD)')
    .option('--cache-dir <dir>', `blob cache (default: $UVIMAGE_CACHE_DIR, else $XDG_CACHE_HOME/uvimage; now ${defaultCacheDir()})`)
    .option('--json', 'print the result as JSON on stdout')
    .option('-q, --quiet', 'print only errors and the result (no progress, no warnings)')
    .option('--debug', 'print stack traces for errors');
}

/** What a command that produces an image works with: the store, one registry client, its sinks. */
export interface ImageRun {
  store: BlobStore;
  /** One client for pulling bases, fetching their layers and pushing, so tokens are reused. */
  client: RegistryClient;
  /** Closed by emit before the result is printed. */
  progress: CliProgress;
  /** Layer bytes from the store, pulled base layers (and layers of the layer cache) fetched on first use. */
  blobs: BlobSource;
  /** The layer cache in a registry (--cache-repo), consulted by the store's `cached`. */
  layerCache?: RegistryLayerCache;
  sinks: Sink[];
  /**
   * Sends the artifact to every sink and prints the result (human or --json); `report` adds what
   * the command knows beyond the image (its JSON fields, and lines for people), or says not to
   * print it (`print: false`: `run`, whose stdout is the container's).
   */
  emit(
    artifact: Artifact,
    report?: { json?: Record<string, unknown>; lines?: string[]; print?: boolean },
    attached?: { referrers?: readonly Referrer[]; variant?: { artifact: Artifact; tagSuffix: string } },
  ): Promise<SinkResult[]>;
}

/**
 * Opens a run: the output flags are checked before any work is done (each sink checks what it can
 * about its destination and the platforms built), so a bad tag or a missing output fails at once
 * rather than after a long build. `outputs: 'optional'` (uvimage plan) checks the outputs given
 * without asking for one.
 */
export async function openImageRun(options: CommonOptions, check: { platforms: Platform[]; outputs?: 'required' | 'optional' }): Promise<ImageRun> {
  // --json keeps stderr quiet as --quiet does: scripts read stdout, and a log stays clean.
  const progress = createProgress({ quiet: options.json || options.quiet });
  const store = await BlobStore.open(options.cacheDir ?? defaultCacheDir());
  const client = new RegistryClient(await registryOptionsFrom(options));
  const sinks = openSinks(options, client, store, check.outputs ?? 'required');
  for (const sink of sinks) await sink.check?.({ tags: options.tag, platforms: check.platforms });
  const blobs = createBlobSource(store, (layer) => fetchLayerBlob(layer, store, { client, progress }));
  const layerCache = options.layerCache ? new RegistryLayerCache({ client, repo: options.layerCache, store, warn: (line) => progress.info(line) }) : undefined;
  if (layerCache) store.shared = layerCache;
  return {
    store,
    client,
    progress,
    blobs,
    sinks,
    ...(layerCache ? { layerCache } : {}),
    async emit(artifact, report, attached) {
      // Every sink runs even if one fails (each is atomic on its own); the first failure is reported.
      const referrers = attached?.referrers?.length ? { referrers: attached.referrers } : {};
      const settled = await Promise.allSettled(sinks.map((sink) => sink.write(artifact, { blobs, progress, tags: options.tag, ...referrers })));
      const failure = settled.find((result): result is PromiseRejectedResult => result.status === 'rejected');
      if (failure) throw failure.reason;
      const results = settled.map((result) => (result as PromiseFulfilledResult<SinkResult>).value);
      const variant = attached?.variant;
      if (variant) {
        // After the image itself, its variant under the suffixed tags, to the same outputs.
        const tags = options.tag.map((tag) => variantTag(tag, variant.tagSuffix));
        for (const sink of sinks) results.push(await (sink.forVariant?.(variant.tagSuffix) ?? sink).write(variant.artifact, { blobs, progress, tags }));
      }
      // The records this build made, shared before it ends (a failure there was a warning).
      await layerCache?.flush();
      progress.close();
      if (report?.print === false) return results;
      const cache = layerCache ? { layerCache: { repository: `${layerCache.repo.registry}/${layerCache.repo.repository}`, ...layerCache.stats } } : {};
      if (options.json) process.stdout.write(`${JSON.stringify({ ...describeBuild(artifact, results), ...report?.json, ...cache }, null, 2)}\n`);
      else process.stdout.write(`${[summarizeBuild(artifact, results), ...(report?.lines ?? [])].join('\n')}\n`);
      return results;
    },
  };
}
