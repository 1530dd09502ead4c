/**
 * Referrers in a registry (distribution-spec 1.1): an artifact manifest is put like any manifest;
 * then the registry lists it under its subject itself, when it has the referrers API (`GET
 * /v2/<name>/referrers/<digest>` answers 200 with an image index), or the client keeps the list
 * under the referrers tag schema (the tag `sha256-<hex>` names an index of the referrers,
 * fetched, merged with what is missing, and put back). Debian's docker-registry (distribution
 * 2.8) has no referrers API: it answers 404 there.
 *
 * A second push of the same referrers puts nothing: a manifest the registry has (HEAD by digest)
 * is not put again, and an index that lists every referrer already is not rewritten.
 */
import type { Digest } from '../oci/digest.js';
import { isIndexMediaType } from '../oci/media-types.js';
import { mergeReferrersIndex, referrersTag, type Referrer } from '../oci/referrers.js';
import { discardBody, header, readBody } from '../net/transport.js';
import { RegistryError, type RegistryRequests, type RepositoryRef } from './requests.js';
import type { RegistryClient } from './client.js';

/** What attaching did, for the push sink's details. */
export interface ReferrerDetails {
  /** Referrer manifests put, and those the registry had already. */
  referrersPut: number;
  referrersKept: number;
  /** Referrers tag-schema indexes written (none when every entry was there, or the registry has the API). */
  referrerIndexesPut: number;
  /** How the registry lists referrers: its API, or the tag schema. */
  referrersListedBy?: 'api' | 'tag-schema';
}

const listingLimit = 4 * 1024 * 1024;

/** The registry's referrers listing of a subject (an image index), or undefined where it has no referrers API. */
export async function getReferrers(requests: RegistryRequests, repo: RepositoryRef, subject: Digest): Promise<Record<string, unknown> | undefined> {
  const action = `list the referrers of ${subject} in ${repo.repository}`;
  const response = await requests.execute({
    repo,
    action,
    method: 'GET',
    url: requests.repoUrl(repo, `referrers/${subject}`),
    headers: { accept: 'application/vnd.oci.image.index.v1+json' },
    scopes: [{ repository: repo.repository, actions: ['pull'] }],
  });
  // A registry without the API answers 404 (distribution 2.8: no such route), or some other
  // refusal of an endpoint it does not know; anything but a 200 index is taken as no API.
  if (response.status !== 200) {
    await discardBody(response);
    if (response.status >= 500) throw await requests.statusError(response, action, repo);
    return undefined;
  }
  const type = (header(response, 'content-type') ?? '').split(';')[0]!.trim();
  let document: unknown;
  try {
    document = JSON.parse((await readBody(response, listingLimit)).toString('utf8'));
  } catch {
    return undefined;
  }
  const record = document as Record<string, unknown> | null;
  if (typeof record !== 'object' || record === null || !Array.isArray(record.manifests)) return undefined;
  if (type && !isIndexMediaType(type) && record.mediaType !== 'application/vnd.oci.image.index.v1+json') return undefined;
  return record;
}

/**
 * Puts the referrers (their blobs already pushed) into `repo` and makes each findable from its
 * subject: by the registry's API where it has one, else by the referrers tag schema.
 */
export async function attachReferrers(client: RegistryClient, repo: RepositoryRef, referrers: readonly Referrer[], details: ReferrerDetails): Promise<void> {
  for (const referrer of referrers) {
    const { descriptor, bytes } = referrer.manifest;
    if ((await client.headManifest(repo, descriptor.digest))?.digest === descriptor.digest) {
      details.referrersKept++;
      continue;
    }
    await client.putManifest(repo, descriptor.digest, { mediaType: descriptor.mediaType, bytes, digest: descriptor.digest });
    details.referrersPut++;
  }
  const bySubject = new Map<Digest, Referrer[]>();
  for (const referrer of referrers) bySubject.set(referrer.subject.digest, [...(bySubject.get(referrer.subject.digest) ?? []), referrer]);
  for (const [subject, attached] of bySubject) {
    if (await client.getReferrers(repo, subject)) {
      details.referrersListedBy = 'api';
      continue;
    }
    details.referrersListedBy = 'tag-schema';
    const tag = referrersTag(attached[0]!.subject.digest);
    let existing: Record<string, unknown> | undefined;
    try {
      existing = (await client.getManifest(repo, tag)).document;
    } catch (error) {
      if (!(error instanceof RegistryError && error.status === 404)) throw error;
    }
    const { index, changed } = mergeReferrersIndex(existing, attached);
    if (!changed) continue;
    await client.putManifest(repo, tag, { mediaType: index.descriptor.mediaType, bytes: index.bytes, digest: index.descriptor.digest });
    details.referrerIndexesPut++;
  }
}
