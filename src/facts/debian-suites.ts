/**
 * The Debian releases uvimage builds on, and what each one fixes: its version, its glibc (the
 * manylinux ceiling of wheels), its CPython, its gcc runtime, its security suite, whether its
 * packages are merged-/usr. One row per suite; every module reads these from here.
 */
import { UserError } from '../errors.js';

export interface DebianSuiteFacts {
  /** The release number (os-release VERSION_ID, the purl's distro=debian-<N>). */
  version: string;
  /** glibc of the suite's libc6: the newest manylinux_2_N wheels an image on it may use. */
  glibc: readonly [number, number];
  /** The suite's CPython minor (python3.X packages). */
  python: string;
  /** The gcc whose runtime (gcc-N-base, libgcc-s1, libstdc++6) the suite ships. */
  gcc: string;
  /** The distribution of its security updates on the security archive. */
  securitySuite: string;
  /** Whether the suite is merged-/usr (bin, sbin, lib* are links into usr/). */
  mergedUsr: boolean;
}

export const debianSuites = {
  trixie: { version: '13', glibc: [2, 41], python: '3.13', gcc: '14', securitySuite: 'trixie-security', mergedUsr: true },
  bookworm: { version: '12', glibc: [2, 36], python: '3.11', gcc: '12', securitySuite: 'bookworm-security', mergedUsr: false },
} as const satisfies Record<string, DebianSuiteFacts>;

export type DebianSuite = keyof typeof debianSuites;
export const debianSuiteNames = Object.keys(debianSuites) as DebianSuite[];
/** The current stable release, the default. */
export const defaultDebianSuite: DebianSuite = 'trixie';

export function parseDebianSuite(text: string): DebianSuite {
  const suite = text.trim().toLowerCase();
  if (!(suite in debianSuites)) throw new UserError(`Debian suite ${JSON.stringify(text)} is not supported (use one of: ${debianSuiteNames.join(', ')})`);
  return suite as DebianSuite;
}
