/**
 * OCI 1.1 referrers: documents attached to an image (here its SBOMs) as artifact manifests whose
 * `subject` is the image's manifest (image-spec manifest.md, "Guidelines for Artifact Usage";
 * distribution-spec, "Listing Referrers"). Each is an image manifest with an `artifactType`, the
 * empty config (`application/vnd.oci.empty.v1+json`, the two bytes `{}`) and the document as
 * its one layer, titled with its file name.
 *
 * Where a registry has no referrers API, clients keep the list themselves under the referrers
 * tag schema: the tag `<alg>-<hex>` of the subject's digest names an image index of the
 * referrers' descriptors (with their artifactType and annotations). `mergeReferrersIndex` adds
 * to such an index what it lacks and keeps what others put there.
 *
 * Everything here is pure: the registry sink (src/registry/referrers.ts) and the OCI layout sink
 * write what these build.
 */
import { sha256Digest, type Digest } from './digest.js';
import { Annotation, serializeDocument, type Descriptor, type ImageIndexDocument, type SerializedDocument } from './image.js';
import { MediaType } from './media-types.js';

/** image-spec's empty descriptor: the config of an artifact that has none. */
export const emptyConfig = {
  descriptor: { mediaType: 'application/vnd.oci.empty.v1+json', digest: 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a' as Digest, size: 2 },
  bytes: Buffer.from('{}', 'utf8'),
} as const;

/** One document attached to one image. */
export interface Referrer {
  /** The image it is about (its platform manifest). */
  subject: Descriptor;
  artifactType: string;
  /** The artifact manifest: what the registry or layout lists as the referrer. */
  manifest: SerializedDocument;
  /** Its blobs: the empty config and the document. */
  blobs: SerializedDocument[];
}

export function makeReferrer(options: { subject: Descriptor; artifactType: string; document: Buffer; title: string; created: string }): Referrer {
  const { subject, artifactType, document, title, created } = options;
  const documentBlob: SerializedDocument = {
    bytes: document,
    descriptor: { mediaType: artifactType, digest: sha256Digest(document), size: document.length, annotations: { 'org.opencontainers.image.title': title } },
  };
  const manifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    artifactType,
    config: emptyConfig.descriptor,
    layers: [documentBlob.descriptor],
    subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
    annotations: { [Annotation.created]: created },
  };
  return {
    subject: manifest.subject,
    artifactType,
    manifest: serializeDocument(manifest, MediaType.ociManifest),
    blobs: [{ descriptor: emptyConfig.descriptor, bytes: emptyConfig.bytes }, documentBlob],
  };
}

/** The descriptor an index of referrers lists for one: with its artifactType and annotations. */
export function referrerDescriptor(referrer: Referrer): Descriptor & { artifactType: string } {
  const { annotations } = JSON.parse(referrer.manifest.bytes.toString('utf8')) as { annotations?: Record<string, string> };
  return { ...referrer.manifest.descriptor, artifactType: referrer.artifactType, ...(annotations ? { annotations } : {}) };
}

/** The referrers tag schema's tag for a subject: `sha256-<hex>` (at most 128 characters, as a tag may be). */
export function referrersTag(subject: Digest): string {
  return subject.replace(':', '-').slice(0, 128);
}

/**
 * The referrers index after adding `referrers`: an existing index (any document another client
 * wrote: its entries and fields kept) with the descriptors it lacks appended; `changed` false when
 * it had them all, so nothing needs to be written.
 */
export function mergeReferrersIndex(existing: Record<string, unknown> | undefined, referrers: readonly Referrer[]): { index: SerializedDocument; changed: boolean } {
  const base: ImageIndexDocument = existing && Array.isArray(existing.manifests)
    ? ({ ...existing, schemaVersion: 2, mediaType: MediaType.ociIndex } as ImageIndexDocument)
    : { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [] };
  const manifests = [...base.manifests];
  const present = new Set(manifests.map((entry) => entry.digest));
  let changed = existing === undefined;
  for (const referrer of referrers) {
    const descriptor = referrerDescriptor(referrer);
    if (present.has(descriptor.digest)) continue;
    manifests.push(descriptor);
    present.add(descriptor.digest);
    changed = true;
  }
  return { index: serializeDocument({ ...base, manifests }, MediaType.ociIndex), changed };
}
