/**
 * Where a suite's packages come from: the Debian archive and its security archive (mirrors,
 * both), or a pinned snapshot of them (snapshot.debian.org's timestamped URL shape, where an old
 * Valid-Until is expected). Chosen from flags, the environment, [tool.uvimage] and the defaults.
 */
import { UserError } from '../../errors.js';
import { parseArchitecture, type Architecture } from '../../facts/architectures.js';
import { debianSuites, defaultDebianSuite, parseDebianSuite, type DebianSuite } from '../../facts/debian-suites.js';

export const defaultDebianMirror = 'https://deb.debian.org/debian';
export const defaultDebianSecurityMirror = 'https://security.debian.org/debian-security';

export interface DebianSource {
  /** Base URL of the Debian archive, no trailing slash. */
  mirror: string;
  /** Base URL of the security archive, no trailing slash. */
  securityMirror: string;
  suite: DebianSuite;
  arch: Architecture;
  /** A pinned snapshot (a timestamped snapshot.debian.org-style URL): Valid-Until is not enforced. */
  snapshot?: boolean;
}

/** `…/archive/<archive>/<YYYYMMDDTHHMMSSZ>` — snapshot.debian.org's URL shape for a point in time. */
const snapshotPattern = /\/archive\/([^/]+)\/(\d{8}T\d{6}Z)$/;

export function isSnapshotMirror(url: string): boolean {
  return snapshotPattern.test(normalizeMirror(url, 'mirror'));
}

function normalizeMirror(url: string, what: string): string {
  const trimmed = url.trim().replace(/\/+$/, '');
  let parsed: URL;
  try {
    parsed = new URL(trimmed);
  } catch {
    throw new UserError(`${what} ${JSON.stringify(url)} is not a URL`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new UserError(`${what} ${JSON.stringify(url)} must be an http:// or https:// URL`);
  }
  return trimmed;
}

/**
 * The source to use, from (highest first) explicit options (flags), the environment
 * (UVIMAGE_DEBIAN_MIRROR, UVIMAGE_DEBIAN_SECURITY_MIRROR), `config` (pyproject's
 * [tool.uvimage]) and the defaults. A mirror of snapshot.debian.org's timestamped shape
 * (https://snapshot.debian.org/archive/debian/20251101T000000Z/) is a pinned snapshot; its
 * security mirror defaults to the same point in time of the debian-security archive.
 */
export function debianSourceFrom(options: {
  suite?: string;
  arch?: string;
  mirror?: string;
  securityMirror?: string;
  config?: { suite?: string; arch?: string; mirror?: string; securityMirror?: string };
  env?: NodeJS.ProcessEnv;
}): DebianSource {
  const env = options.env ?? process.env;
  const pick = (...values: (string | undefined)[]) => values.find((value) => value !== undefined && value.trim() !== '');
  const suite = parseDebianSuite(pick(options.suite, options.config?.suite) ?? defaultDebianSuite);
  const arch = parseArchitecture(pick(options.arch, options.config?.arch) ?? 'amd64', 'Debian architecture');
  const mirror = normalizeMirror(pick(options.mirror, env.UVIMAGE_DEBIAN_MIRROR, options.config?.mirror) ?? defaultDebianMirror, 'Debian mirror');
  const snapshot = snapshotPattern.exec(mirror);
  const explicitSecurity = pick(options.securityMirror, env.UVIMAGE_DEBIAN_SECURITY_MIRROR, options.config?.securityMirror);
  let securityMirror: string;
  if (explicitSecurity) securityMirror = normalizeMirror(explicitSecurity, 'Debian security mirror');
  else if (snapshot) securityMirror = mirror.replace(snapshotPattern, `/archive/debian-security/${snapshot[2]}`);
  else securityMirror = defaultDebianSecurityMirror;
  const source: DebianSource = { mirror, securityMirror, suite, arch };
  if (snapshot) source.snapshot = true;
  return source;
}

/** One archive a suite is read from: the main archive or the security archive. */
export interface Archive {
  url: string;
  /** The distribution directory under dists/: `trixie` or `trixie-security`. */
  dist: string;
}

/** The archives a source reads its suite from: the main archive, then the security archive. */
export function archivesOf(source: DebianSource): { main: Archive; security: Archive } {
  return {
    main: { url: source.mirror, dist: source.suite },
    security: { url: source.securityMirror, dist: debianSuites[source.suite].securitySuite },
  };
}
