/**
 * The push sink: puts an artifact into one or more registry repositories. For each target
 * repository it makes sure every blob is there (HEAD first; a blob of a base that lives in
 * another repository of the same registry is mounted rather than uploaded, so it is never
 * downloaded just to be pushed), then puts each platform manifest, then the index, then the
 * tags. Blobs go up three at a time.
 */
import { Readable } from 'node:stream';
import { UserError } from '../errors.js';
import { stages, type Stage } from '../progress.js';
import type { Digest } from '../oci/digest.js';
import { artifactImages, artifactRoot, type Artifact, type Layer } from '../oci/image.js';
import type { Sink, SinkContext, SinkResult } from '../oci/sink.js';
import { RegistryClient, type RegistryClientOptions, type RepositoryRef } from './client.js';
import { attachReferrers, type ReferrerDetails } from './referrers.js';
import { formatReference, parseReference, type ImageReference } from './reference.js';

export interface RegistrySinkOptions extends RegistryClientOptions {
  /** A client to reuse (its options then win over the ones given here). */
  client?: RegistryClient;
  /** Blobs uploaded at once per repository; default 3. */
  concurrency?: number;
}

/** What the push did, in SinkResult.details. */
export interface PushDetails extends Partial<ReferrerDetails> {
  uploadedBlobs: number;
  skippedBlobs: number;
  mountedBlobs: number;
  /** Bytes sent over the wire for blobs, retries included (SinkResult.bytes counts each uploaded blob once). */
  transferredBytes: number;
}

interface PendingBlob {
  digest: Digest;
  size: number;
  /** A layer (read through the BlobSource, maybe fetched from its origin) … */
  layer?: Layer;
  /** … or bytes we hold (a config). */
  bytes?: Buffer;
}

interface Target {
  repo: RepositoryRef;
  tags: string[];
  /** Digests the user pinned (`repo@sha256:…`); the artifact must have that digest. */
  digests: Digest[];
}

export class RegistrySink implements Sink {
  readonly name = 'push' as const;
  private readonly targets: ImageReference[];

  /** `targets`: where to push (`registry/repository:tag`, parsed or not); empty means the context's tags. */
  constructor(targets: (ImageReference | string)[], private readonly options: RegistrySinkOptions = {}) {
    this.targets = targets.map((target) => (typeof target === 'string' ? parseReference(target) : target));
  }

  async write(artifact: Artifact, context: SinkContext): Promise<SinkResult> {
    const references = this.targets.length > 0 ? this.targets : context.tags.map((tag) => parseReference(tag));
    if (references.length === 0) throw new UserError('push: no tag to push to; give one with -t registry/repository:tag');
    const root = artifactRoot(artifact);
    const rootDigest = root.descriptor.digest;
    const targets = groupTargets(references);
    for (const target of targets) {
      for (const digest of target.digests) {
        if (digest !== rootDigest) {
          throw new UserError(
            `push: ${formatReference({ ...target.repo, digest })} names a digest, but the image built has digest ${rootDigest}`,
          );
        }
      }
    }

    const client = this.options.client ?? new RegistryClient(this.options);
    const concurrency = Math.max(1, this.options.concurrency ?? 3);
    const details: PushDetails = { uploadedBlobs: 0, skippedBlobs: 0, mountedBlobs: 0, transferredBytes: 0 };
    let uploadedBytes = 0;
    /** Repositories of each registry known to hold a blob (origins, and targets pushed to so far). */
    const holders = new Map<string, Set<string>>();
    const noteHolder = (registry: string, repository: string, digest: Digest) => {
      const key = `${registry}|${digest}`;
      const set = holders.get(key) ?? new Set<string>();
      set.add(repository);
      holders.set(key, set);
    };

    const images = artifactImages(artifact);
    const layers = new Map<Digest, PendingBlob>();
    const configs = new Map<Digest, PendingBlob>();
    for (const image of images) {
      for (const layer of image.layers) {
        const digest = layer.descriptor.digest;
        // A pulled base's repository, or the layer cache's for a layer taken from it: mounted, not uploaded.
        const origin = context.blobs.originOf?.(layer) ?? layer.origin;
        if (origin) noteHolder(origin.registry, origin.repository, digest);
        if (!layers.has(digest)) layers.set(digest, { digest, size: layer.descriptor.size, layer });
      }
      const config = image.config;
      configs.set(config.descriptor.digest, { digest: config.descriptor.digest, size: config.descriptor.size, bytes: config.bytes });
    }

    const pushBlob = async (repo: RepositoryRef, blob: PendingBlob, stage: Stage): Promise<void> => {
      // Each blob is a task (asking the registry is work too); only an upload counts as pushed.
      const task = stage.begin(blob.digest.slice(7, 19));
      try {
        if ((await client.headBlob(repo, blob.digest, { forPush: true })) !== undefined) {
          details.skippedBlobs++;
          noteHolder(repo.registry, repo.repository, blob.digest);
          stage.skip('already there');
          task.end(0);
          return;
        }
        let location: URL | undefined;
        const sources = [...(holders.get(`${repo.registry}|${blob.digest}`) ?? [])].filter((name) => name !== repo.repository);
        for (const from of sources.slice(0, 2)) {
          const result = await client.mountBlob(repo, blob.digest, from);
          if (result.mounted) {
            details.mountedBlobs++;
            noteHolder(repo.registry, repo.repository, blob.digest);
            stage.skip(`mounted from ${from}`);
            task.end(0);
            return;
          }
          location = result.location ?? location;
        }
        const open = blob.bytes
          ? async () => Readable.from([blob.bytes!])
          : async () => context.blobs.openLayer(blob.layer!);
        await client.uploadBlob(
          repo,
          { digest: blob.digest, size: blob.size, open },
          {
            ...(location ? { location } : {}),
            onBytes: (bytes) => {
              details.transferredBytes += bytes > 0 ? bytes : 0;
              task.advance(bytes);
            },
          },
        );
        details.uploadedBlobs++;
        uploadedBytes += blob.size;
        noteHolder(repo.registry, repo.repository, blob.digest);
        task.end();
      } catch (error) {
        task.fail();
        throw error;
      }
    };

    const written: string[] = [];
    /** One repository: its blobs (counted in `stage`), manifests, tags, then the referrers. */
    const pushTarget = async (target: Target, stage: Stage): Promise<void> => {
      const { repo } = target;
      // Counted, not sized: a blob the registry has moves no bytes.
      stage.expect(layers.size + configs.size);
      await mapLimit([...layers.values()], concurrency, (blob) => pushBlob(repo, blob, stage));
      await mapLimit([...configs.values()], concurrency, (blob) => pushBlob(repo, blob, stage));
      if (artifact.kind === 'index') {
        for (const image of images) {
          await client.putManifest(repo, image.manifest.descriptor.digest, {
            mediaType: image.manifest.descriptor.mediaType,
            bytes: image.manifest.bytes,
            digest: image.manifest.descriptor.digest,
          });
        }
      }
      const document = { mediaType: root.descriptor.mediaType, bytes: root.bytes, digest: rootDigest };
      if (target.tags.length === 0) await client.putManifest(repo, rootDigest, document);
      for (const tag of target.tags) {
        await client.putManifest(repo, tag, document);
        written.push(formatReference({ ...repo, tag }));
      }
      if (target.tags.length === 0) written.push(formatReference({ ...repo, digest: rootDigest }));
      if (context.referrers?.length) {
        // After the images they are about, so a registry that checks a referrer's subject finds it.
        const referrerBlobs = new Map<Digest, PendingBlob>();
        for (const blob of context.referrers.flatMap((referrer) => referrer.blobs)) referrerBlobs.set(blob.descriptor.digest, { digest: blob.descriptor.digest, size: blob.bytes.length, bytes: blob.bytes });
        stage.expect(referrerBlobs.size);
        await mapLimit([...referrerBlobs.values()], concurrency, (blob) => pushBlob(repo, blob, stage));
        const referrerDetails: ReferrerDetails = { referrersPut: details.referrersPut ?? 0, referrersKept: details.referrersKept ?? 0, referrerIndexesPut: details.referrerIndexesPut ?? 0 };
        await attachReferrers(client, repo, context.referrers, referrerDetails);
        Object.assign(details, referrerDetails);
      }
    };

    for (const target of targets) {
      const { repo } = target;
      const stage = context.progress.stage(stages.push(`${repo.registry}/${repo.repository}`));
      try {
        await pushTarget(target, stage);
      } finally {
        stage.finish();
      }
    }

    return { sink: 'push', written, digest: rootDigest, bytes: uploadedBytes, details: { ...details } };
  }
}

/** Targets grouped by repository, in the order first named, tags deduplicated. */
function groupTargets(references: ImageReference[]): Target[] {
  const byRepo = new Map<string, Target>();
  for (const reference of references) {
    const key = `${reference.registry}/${reference.repository}`;
    let target = byRepo.get(key);
    if (!target) {
      target = { repo: { registry: reference.registry, repository: reference.repository }, tags: [], digests: [] };
      byRepo.set(key, target);
    }
    if (reference.tag !== undefined && !target.tags.includes(reference.tag)) target.tags.push(reference.tag);
    if (reference.digest !== undefined && !target.digests.includes(reference.digest)) target.digests.push(reference.digest);
  }
  return [...byRepo.values()];
}

/** Runs `work` over `items` with at most `limit` at once; stops taking new items after a failure. */
async function mapLimit<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (!failed && next < items.length) {
      const item = items[next++]!;
      try {
        await work(item);
      } catch (error) {
        failed = true;
        throw error;
      }
    }
  };
  // Wait for the uploads under way to end before reporting the first failure.
  const results = await Promise.allSettled(Array.from({ length: Math.min(limit, items.length) }, worker));
  const failure = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
  if (failure) throw failure.reason;
}
