import type { Readable } from 'node:stream';
import { UserError } from '../errors.js';
import type { Layer, RemoteOrigin } from './image.js';
import type { BlobSource } from './sink.js';
import type { BlobStore } from './store.js';

/** Brings a layer that lives in a remote registry into the store, verified. */
export type RemoteLayerFetcher = (layer: Layer) => Promise<void>;

/**
 * The BlobSource every sink reads from: the local store first; a pulled base's layer that is
 * not there yet is fetched from its origin registry on first use (and only then, so a push to
 * the registry that already holds it never downloads it), and so is a layer the store's shared
 * tier (the layer cache in a registry, src/registry/layer-cache.ts) gave without its bytes.
 * Concurrent requests for the same layer share one download.
 */
export function createBlobSource(store: BlobStore, fetchRemote?: RemoteLayerFetcher): BlobSource {
  const inFlight = new Map<string, Promise<void>>();

  const originOf = (layer: Layer): RemoteOrigin | undefined => layer.origin ?? store.shared?.originOf(layer.descriptor.digest);

  async function ensureLayer(layer: Layer): Promise<void> {
    const digest = layer.descriptor.digest;
    if (await store.has(digest)) return;
    const origin = originOf(layer);
    if (!origin || !fetchRemote) {
      throw new UserError(`layer ${digest} is not in the cache at ${store.root} and has no registry to fetch it from`);
    }
    let pending = inFlight.get(digest);
    if (!pending) {
      pending = fetchRemote({ ...layer, origin }).finally(() => inFlight.delete(digest));
      inFlight.set(digest, pending);
    }
    await pending;
  }

  return {
    ensureLayer,
    originOf,
    async openLayer(layer: Layer): Promise<Readable> {
      await ensureLayer(layer);
      return store.openRead(layer.descriptor.digest);
    },
  };
}
