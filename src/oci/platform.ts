import { UserError } from '../errors.js';
import { architectures, hostArchitecture, type Architecture } from '../facts/architectures.js';

/** An OCI platform as it appears in an index entry and in an image config. */
export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

/** Parses `linux/amd64`, `linux/arm64/v8`, `linux/arm/v7`. */
export function parsePlatform(text: string, what = '--platform'): Platform {
  const parts = text.trim().split('/');
  const [os, architecture, variant] = parts;
  if (parts.length < 2 || parts.length > 3 || !os || !architecture) {
    throw new UserError(`${what}: "${text}" is not of the form os/arch[/variant], e.g. linux/amd64`);
  }
  return variant ? { os, architecture, variant } : { os, architecture };
}

/** A comma-separated list of platforms, each once (a platform listed twice is an error before any work). */
export function parsePlatformList(text: string, what = '--platform'): Platform[] {
  const platforms: Platform[] = [];
  for (const part of text.split(',').filter((entry) => entry.trim() !== '')) {
    const platform = parsePlatform(part, what);
    if (platforms.some((seen) => platformMatches(seen, platform) || platformMatches(platform, seen))) throw new UserError(`${what}: ${part.trim()} is listed twice`);
    platforms.push(platform);
  }
  return platforms;
}

/** The OCI platform of an architecture uvimage builds for (arm64 with its v8 variant, as images record it). */
export function ociPlatform(arch: Architecture): Platform {
  const { oci } = architectures[arch] as { oci: { architecture: string; variant?: string } };
  return oci.variant ? { os: 'linux', architecture: oci.architecture, variant: oci.variant } : { os: 'linux', architecture: oci.architecture };
}

export function formatPlatform(platform: Platform): string {
  return [platform.os, platform.architecture, platform.variant].filter(Boolean).join('/');
}

/** arm64 images usually say variant v8; a request for linux/arm64 matches either. */
export function platformMatches(wanted: Platform, candidate: Platform): boolean {
  if (wanted.os !== candidate.os || wanted.architecture !== candidate.architecture) return false;
  if (!wanted.variant) return true;
  return (candidate.variant ?? defaultVariant(candidate.architecture)) === wanted.variant;
}

function defaultVariant(architecture: string): string | undefined {
  const known = (Object.values(architectures) as { oci: { architecture: string; variant?: string } }[]).find((names) => names.oci.architecture === architecture);
  return known?.oci.variant;
}

/** The platform of the machine uvimage runs on, in OCI terms (Node's name where uvimage does not build for it). */
export function hostPlatform(): Platform {
  const known = hostArchitecture();
  if (known) return { os: 'linux', architecture: architectures[known].oci.architecture };
  const architecture = ({ arm: 'arm', ppc64: 'ppc64le', s390x: 's390x' } as Record<string, string>)[process.arch];
  return { os: 'linux', architecture: architecture ?? process.arch };
}
