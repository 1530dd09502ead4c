import type { Readable } from 'node:stream';
import type { Progress } from '../progress.js';
import type { Artifact, Layer, RemoteOrigin } from './image.js';
import type { Platform } from './platform.js';
import type { Referrer } from './referrers.js';

/** Gives the bytes of any blob an artifact refers to (from the store, fetching pulled layers on demand). */
export interface BlobSource {
  /** Streams a layer's compressed blob, verified against its digest. */
  openLayer(layer: Layer): Promise<Readable>;
  /** Makes sure a layer's blob is in the local store (pulling it if needed). */
  ensureLayer(layer: Layer): Promise<void>;
  /**
   * The repository a layer's blob is fetched from when the store lacks it: a pulled base's, or
   * the layer cache's (--cache-repo) for a layer taken from there. A push to the same registry
   * mounts it from there.
   */
  originOf?(layer: Layer): RemoteOrigin | undefined;
}

export interface SinkContext {
  blobs: BlobSource;
  progress: Progress;
  /** Tags given with -t, as written by the user (e.g. `registry.example.com/me/app:1.0`). */
  tags: string[];
  /**
   * Documents attached to the artifact's images (their SBOMs) as OCI referrers: the push and the
   * OCI layout sinks store them beside the images; the others have no place for them.
   */
  referrers?: readonly Referrer[];
}

/** What one sink did, for the human summary and for --json. */
export interface SinkResult {
  sink: 'push' | 'oci' | 'tar' | 'load';
  /** Where it went: refs pushed or loaded, or the file/dir written. */
  written: string[];
  /** The digest of what the sink's tag points at (the manifest or index). */
  digest: string;
  /** Bytes uploaded or written, when the sink counts them. */
  bytes?: number;
  details?: Record<string, unknown>;
}

/**
 * Where an artifact goes. Sinks are independent of each other and of how the artifact was built
 * (the go-containerregistry / ko split), so one run can push, write a layout and a tar, and load.
 */
export interface Sink {
  readonly name: SinkResult['sink'];
  /**
   * Checks, before any work, what can be known about the output already: that its destination can
   * be written, that the tags fit it, that the platform it takes will be built. A failure is one
   * line, and nothing has been downloaded or written.
   */
  check?(context: SinkCheckContext): Promise<void>;
  write(artifact: Artifact, context: SinkContext): Promise<SinkResult>;
  /**
   * Where a variant of the artifact (the debug image, tagged `<tag><suffix>`) goes: a sink whose
   * destination holds one image names its own sibling (`app.tar` → `app-debug.tar`); default this one.
   */
  forVariant?(suffix: string): Sink;
}

export interface SinkCheckContext {
  tags: string[];
  /** The platforms the build produces. */
  platforms: Platform[];
}
