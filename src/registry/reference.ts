/**
 * Image references (`ubuntu`, `ghcr.io/org/app:1.2@sha256:…`), parsed by the rules of Docker's
 * distribution/reference package (grammar in regexp.go, normalisation in normalize.go):
 *
 *   reference := name [ ":" tag ] [ "@" digest ]
 *   name      := [ domain "/" ] path-component [ "/" path-component ]*
 *   domain    := (domain-name | "[" ipv6 "]") [ ":" port ]
 *
 * The first path component is a registry only if it contains "." or ":" or is exactly
 * `localhost`; otherwise the reference is on Docker Hub, and a single-component Docker Hub name
 * gets the `library/` prefix of official images.
 */
import { UserError } from '../errors.js';
import { isDigest, type Digest } from '../oci/digest.js';

export interface ImageReference {
  /** Host[:port] used for API calls: Docker Hub is `registry-1.docker.io`. */
  registry: string;
  /** The repository path in the registry; Docker Hub single names get `library/`. */
  repository: string;
  /** Undefined when only a digest was given; `latest` when neither was given. */
  tag?: string;
  digest?: Digest;
}

/** The host Docker Hub's registry API is served from. */
export const DOCKER_HUB_REGISTRY = 'registry-1.docker.io';
/** How Docker Hub is written in canonical references (`docker.io/library/ubuntu:latest`). */
export const DOCKER_HUB_DOMAIN = 'docker.io';
/** The longest repository path distribution/reference accepts. */
export const MAX_REPOSITORY_LENGTH = 255;

const DEFAULT_TAG = 'latest';
const OFFICIAL_REPO_PREFIX = 'library/';
/** Domains that mean Docker Hub. registry-1.docker.io is its API host, accepted as an alias too. */
const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

// The productions of distribution/reference regexp.go.
const alphanumeric = '[a-z0-9]+';
const separator = '(?:[._]|__|[-]+)';
const pathComponent = `${alphanumeric}(?:${separator}${alphanumeric})*`;
const domainNameComponent = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const domainName = `${domainNameComponent}(?:\\.${domainNameComponent})*`;
const ipv6address = '\\[(?:[a-fA-F0-9:]+)\\]';
const domainAndPort = `(?:${domainName}|${ipv6address})(?::[0-9]+)?`;

const anchoredPathComponent = new RegExp(`^${pathComponent}$`);
const anchoredDomain = new RegExp(`^${domainAndPort}$`);
const anchoredTag = /^[\w][\w.-]{0,127}$/;
/** distribution/reference's digest shape: any algorithm, at least 128 bits of hex. */
const anchoredAnyDigest = /^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$/;
/** A bare image ID, which Docker refuses as a repository name. */
const anchoredIdentifier = /^[a-f0-9]{64}$/;

function invalid(text: string, why: string): UserError {
  return new UserError(`invalid image reference ${JSON.stringify(text)}: ${why}`);
}

/**
 * Parses an image reference as `docker pull` would, normalised for API calls: Docker Hub names
 * get registry `registry-1.docker.io` and, for single names, `library/`; a reference with neither
 * tag nor digest gets tag `latest`. A reference may carry both a tag and a digest (then the
 * digest identifies the content and the tag is informational). Throws a UserError naming the
 * text and the rule it breaks.
 */
export function parseReference(text: string): ImageReference {
  if (text === '') throw invalid(text, 'it is empty');
  if (/\s/.test(text)) throw invalid(text, 'it contains whitespace');
  if (anchoredIdentifier.test(text)) {
    throw invalid(text, 'a 64-character hexadecimal string is an image ID, not a repository name');
  }

  // splitDockerDomain: the first component is a registry only if it looks like a host.
  let domain: string;
  let remainder: string;
  const slash = text.indexOf('/');
  const first = slash === -1 ? '' : text.slice(0, slash);
  if (slash !== -1 && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    domain = first;
    remainder = text.slice(slash + 1);
  } else {
    domain = DOCKER_HUB_DOMAIN;
    remainder = text;
  }
  if (!anchoredDomain.test(domain)) {
    throw invalid(text, `registry ${JSON.stringify(domain)} is not a valid host name, IPv4 address or [IPv6] address with an optional :port`);
  }
  const isHub = DOCKER_HUB_ALIASES.has(domain);

  // remainder := path [":" tag] ["@" digest]; neither the path nor a tag can contain "@" or ":".
  let digestText: string | undefined;
  const at = remainder.indexOf('@');
  if (at !== -1) {
    digestText = remainder.slice(at + 1);
    remainder = remainder.slice(0, at);
  }
  let tagText: string | undefined;
  const colon = remainder.indexOf(':');
  if (colon !== -1) {
    tagText = remainder.slice(colon + 1);
    remainder = remainder.slice(0, colon);
  }

  let path = remainder;
  if (path === '') throw invalid(text, 'the repository name is empty');
  if (path.toLowerCase() !== path) throw invalid(text, `repository name ${JSON.stringify(path)} must be lowercase`);
  for (const component of path.split('/')) {
    if (component === '') throw invalid(text, `repository name ${JSON.stringify(path)} has an empty path component`);
    if (!anchoredPathComponent.test(component)) {
      throw invalid(
        text,
        `repository path component ${JSON.stringify(component)} must be lowercase letters and digits, separated by ".", "_", "__" or dashes, starting and ending with a letter or digit`,
      );
    }
  }
  if (isHub && !path.includes('/')) path = OFFICIAL_REPO_PREFIX + path;
  if (path.length > MAX_REPOSITORY_LENGTH) {
    throw invalid(text, `repository name is ${path.length} characters long; the maximum is ${MAX_REPOSITORY_LENGTH}`);
  }

  if (tagText !== undefined) checkTag(text, tagText);
  let digest: Digest | undefined;
  if (digestText !== undefined) digest = checkDigest(text, digestText);

  const reference: ImageReference = { registry: isHub ? DOCKER_HUB_REGISTRY : domain, repository: path };
  if (tagText !== undefined) reference.tag = tagText;
  else if (digest === undefined) reference.tag = DEFAULT_TAG;
  if (digest !== undefined) reference.digest = digest;
  return reference;
}

function checkTag(text: string, tag: string): void {
  if (anchoredTag.test(tag)) return;
  if (tag === '') throw invalid(text, 'the tag after ":" is empty');
  throw invalid(
    text,
    `tag ${JSON.stringify(tag)} must be 1 to 128 letters, digits, "_", "." or "-", and must not start with "." or "-"`,
  );
}

function checkDigest(text: string, digest: string): Digest {
  if (isDigest(digest)) return digest;
  if (digest === '') throw invalid(text, 'the digest after "@" is empty');
  const algorithm = digest.includes(':') ? digest.slice(0, digest.indexOf(':')) : undefined;
  if (algorithm !== undefined && algorithm !== 'sha256' && anchoredAnyDigest.test(digest)) {
    throw invalid(text, `digest algorithm ${JSON.stringify(algorithm)} is not supported; only sha256 digests are`);
  }
  throw invalid(text, `digest ${JSON.stringify(digest)} is not "sha256:" followed by 64 lowercase hexadecimal digits`);
}

/**
 * The canonical text of a reference, `registry/repository[:tag][@digest]`, with Docker Hub
 * written as `docker.io` (`docker.io/library/ubuntu:latest`). parseReference of the result gives
 * the same reference back.
 */
export function formatReference(ref: ImageReference): string {
  const domain = ref.registry === DOCKER_HUB_REGISTRY ? DOCKER_HUB_DOMAIN : ref.registry;
  let text = `${domain}/${ref.repository}`;
  if (ref.tag !== undefined) text += `:${ref.tag}`;
  if (ref.digest !== undefined) text += `@${ref.digest}`;
  return text;
}

/** The same repository with the given tag (validated); any digest is kept. */
export function withTag(ref: ImageReference, tag: string): ImageReference {
  checkTag(formatReference({ ...ref, tag }), tag);
  return { ...ref, tag };
}

/** The same repository pinned to the given digest (validated); any tag is kept. */
export function withDigest(ref: ImageReference, digest: string): ImageReference {
  const checked = checkDigest(formatReference({ registry: ref.registry, repository: ref.repository }) + `@${digest}`, digest);
  return { ...ref, digest: checked };
}

/** Whether a registry is Docker Hub, under any of its names. */
export function isDockerHub(registry: string): boolean {
  return DOCKER_HUB_ALIASES.has(registry.toLowerCase());
}

/** Splits `host[:port]` / `[ipv6][:port]` into the host (brackets removed, lowercase) and port. */
export function splitHostPort(registry: string): { host: string; port?: string } {
  const text = registry.toLowerCase();
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close !== -1) {
      const host = text.slice(1, close);
      const rest = text.slice(close + 1);
      return rest.startsWith(':') ? { host, port: rest.slice(1) } : { host };
    }
  }
  const colon = text.lastIndexOf(':');
  if (colon !== -1 && text.indexOf(':') === colon) return { host: text.slice(0, colon), port: text.slice(colon + 1) };
  return { host: text };
}

function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (host === '::1' || host === '0:0:0:0:0:0:0:1') return true;
  const octets = host.split('.');
  return (
    octets.length === 4 &&
    octets[0] === '127' &&
    octets.every((octet) => /^[0-9]{1,3}$/.test(octet) && Number(octet) <= 255)
  );
}

/**
 * Whether uvimage may talk plain http to a registry: only for loopback registries (`localhost`,
 * 127.0.0.0/8, `[::1]`, any port) and registries the user named as insecure. An entry
 * `host:port` matches exactly that registry; an entry `host` without a port matches the host on
 * any port. Entries are compared case-insensitively, and an `http://` or `https://` prefix and a
 * trailing `/` on an entry are ignored.
 */
export function isInsecureRegistry(registry: string, insecureRegistries: string[]): boolean {
  const target = splitHostPort(registry);
  if (isLoopback(target.host)) return true;
  for (const entry of insecureRegistries) {
    const cleaned = entry.trim().replace(/^https?:\/\//i, '').replace(/\/+$/, '');
    if (cleaned === '') continue;
    const allowed = splitHostPort(cleaned);
    if (allowed.host !== target.host) continue;
    if (allowed.port === undefined || allowed.port === target.port) return true;
  }
  return false;
}
