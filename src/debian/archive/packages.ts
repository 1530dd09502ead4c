/**
 * The index model: a suite's binary packages (main and security merged) with their relations
 * and Provides, and the streaming parse of a verified Packages file into it. A package keeps its
 * own stanza's text and parses it in full only when asked (an index has ~65 000).
 */
import { createGunzip } from 'node:zlib';
import type { Readable, Transform } from 'node:stream';
import { UserError, describeError } from '../../errors.js';
import type { Digest } from '../../oci/digest.js';
import type { BlobStore } from '../../oci/store.js';
import { parseRelations, parseStanza, type Stanza } from '../control.js';
import { compareDebianVersions, versionSatisfies, type VersionRelation } from '../version.js';
import { createXzDecompressor } from '../xz.js';

/** A binary package from a Packages index. */
export interface DebianPackage {
  name: string;
  version: string;
  arch: string;
  /** Path of the .deb relative to archiveUrl (pool/main/…). */
  filename: string;
  /** SHA256 of the .deb, 64 hex digits. */
  sha256: string;
  size: number;
  /** Raw relationship fields ('' when absent). */
  depends: string;
  preDepends: string;
  provides: string;
  source?: string;
  installedSize?: number;
  multiArch?: string;
  priority?: string;
  section?: string;
  essential?: boolean;
  /** Raw Conflicts and Breaks fields, when present (the resolver keeps such pairs apart). */
  conflicts?: string;
  breaks?: string;
  /** The Packages stanza as the archive wrote it (for /var/lib/dpkg/status.d). */
  stanza: Stanza;
  /** Base URL of the archive it came from (mirror or security mirror). */
  archiveUrl: string;
}

/** The download URL of a package. */
export function debUrl(pkg: Pick<DebianPackage, 'archiveUrl' | 'filename'>): string {
  return `${pkg.archiveUrl}/${pkg.filename}`;
}

export interface Provider {
  pkg: DebianPackage;
  /** The version of a versioned provide (`Provides: foo (= 1.2)`); undefined for a plain one. */
  version?: string;
}

/**
 * A suite's packages for one architecture (arch-specific and Architecture: all), main and
 * security merged. A name may have several versions (main's and a security update's); get()
 * answers the newest.
 */
export class PackageIndex {
  private readonly byName = new Map<string, DebianPackage[]>();
  private readonly provided = new Map<string, Provider[]>();

  constructor(packages: Iterable<DebianPackage>, readonly description = 'index') {
    for (const pkg of packages) this.add(pkg);
    for (const list of this.byName.values()) list.sort((a, b) => compareDebianVersions(b.version, a.version));
    for (const list of this.provided.values()) {
      list.sort((a, b) => (a.pkg.name < b.pkg.name ? -1 : a.pkg.name > b.pkg.name ? 1 : compareDebianVersions(b.pkg.version, a.pkg.version)));
    }
  }

  private add(pkg: DebianPackage): void {
    const list = this.byName.get(pkg.name);
    if (list) {
      // The same version from two archives (main and security): the first one wins.
      if (list.some((other) => other.version === pkg.version)) return;
      list.push(pkg);
    } else {
      this.byName.set(pkg.name, [pkg]);
    }
    let groups;
    try {
      groups = parseRelations(pkg.provides);
    } catch {
      return; // an unreadable Provides only hides that package as a provider
    }
    for (const group of groups) {
      for (const relation of group) {
        const entry: Provider = { pkg };
        if (relation.relation === '=' && relation.version) entry.version = relation.version;
        const providers = this.provided.get(relation.name);
        if (providers) providers.push(entry);
        else this.provided.set(relation.name, [entry]);
      }
    }
  }

  /** The newest version of a real package. */
  get(name: string): DebianPackage | undefined {
    return this.byName.get(name)?.[0];
  }

  /** Every version of a real package, newest first. */
  versions(name: string): readonly DebianPackage[] {
    return this.byName.get(name) ?? [];
  }

  /** Packages that declare `Provides: name`, sorted by package name, newest version first. */
  providers(name: string): readonly Provider[] {
    return this.provided.get(name) ?? [];
  }

  /** The newest version of every package, sorted by name. */
  all(): DebianPackage[] {
    return [...this.byName.keys()].sort().map((name) => this.byName.get(name)![0]!);
  }

  get size(): number {
    return this.byName.size;
  }
}

/** Whether a relation `name (op version)` is satisfied by a package version. */
export function relationSatisfiedBy(relation: { relation?: VersionRelation; version?: string }, version: string | undefined): boolean {
  if (!relation.relation) return true;
  if (version === undefined) return false;
  return versionSatisfies(version, relation.relation, relation.version!);
}

/** How an index file in the store is compressed. */
export type Compression = 'xz' | 'gz' | 'none';

function decompressor(compression: Compression): Transform | undefined {
  if (compression === 'gz') return createGunzip();
  if (compression === 'xz') return createXzDecompressor();
  return undefined;
}

/**
 * Parses a verified Packages blob. The decompressed file (~55 MB for trixie/amd64) is split into
 * stanzas at the byte level as it streams out of the decompressor, and each stanza is decoded on
 * its own, so no giant string is built, parsing overlaps decompression, and a package keeps only
 * its own stanza's text.
 */
export async function parsePackagesBlob(store: BlobStore, digest: Digest, compression: Compression, archiveUrl: string, what: string): Promise<DebianPackage[]> {
  const raw: Readable = store.openRead(digest);
  const unpack = decompressor(compression);
  const stream: Readable = unpack ? raw.pipe(unpack) : raw;
  if (unpack) raw.on('error', (error) => unpack.destroy(error));
  const packages: DebianPackage[] = [];
  const take = (bytes: Buffer, start: number, end: number) => {
    if (end <= start) return;
    const pkg = packageFromStanza(bytes.toString('utf8', start, end), archiveUrl);
    if (pkg) packages.push(pkg);
  };
  let rest: Buffer = Buffer.alloc(0);
  try {
    for await (const chunk of stream) {
      const bytes: Buffer = rest.length > 0 ? Buffer.concat([rest, chunk as Buffer]) : (chunk as Buffer);
      let start = 0;
      for (;;) {
        const end = bytes.indexOf(stanzaSeparator, start);
        if (end < 0) break;
        take(bytes, start, end);
        start = end + 2;
      }
      rest = Buffer.from(bytes.subarray(start));
    }
  } catch (error) {
    throw new UserError(`${what}: cannot read the Packages index: ${describeError(error)}`);
  }
  take(rest, 0, rest.length);
  return packages;
}

const stanzaSeparator = Buffer.from('\n\n');

/**
 * A package whose full stanza is parsed only when asked for (an index has ~65 000 of them).
 * `stanza` is an own enumerable getter, so `{ ...pkg }` and JSON.stringify see it like any field.
 */
class IndexedPackage implements DebianPackage {
  name = '';
  version = '';
  arch = '';
  filename = '';
  sha256 = '';
  size = 0;
  depends = '';
  preDepends = '';
  provides = '';
  source?: string;
  installedSize?: number;
  multiArch?: string;
  priority?: string;
  section?: string;
  essential?: boolean;
  conflicts?: string;
  breaks?: string;
  declare readonly stanza: Stanza;
  #text: string;
  #parsed: Stanza | undefined;

  constructor(text: string, readonly archiveUrl: string) {
    this.#text = text;
    Object.defineProperty(this, 'stanza', stanzaProperty);
  }

  static parsedStanza(pkg: IndexedPackage): Stanza {
    return (pkg.#parsed ??= parseStanza(pkg.#text));
  }
}

/** One accessor shared by every IndexedPackage (so they share a hidden class). */
const stanzaProperty: PropertyDescriptor = {
  enumerable: true,
  configurable: true,
  get(this: IndexedPackage) {
    return IndexedPackage.parsedStanza(this);
  },
};

/** The Packages fields an index keeps parsed, by the first letter of their name. */
const indexedFields: Record<string, string[]> = {
  P: ['Package', 'Pre-Depends', 'Provides', 'Priority'],
  V: ['Version'],
  A: ['Architecture'],
  F: ['Filename'],
  S: ['SHA256', 'Size', 'Source', 'Section'],
  D: ['Depends'],
  C: ['Conflicts'],
  B: ['Breaks'],
  I: ['Installed-Size'],
  M: ['Multi-Arch'],
  E: ['Essential'],
};

function packageFromStanza(text: string, archiveUrl: string): DebianPackage | undefined {
  const trimmed = text.charCodeAt(0) === 10 ? text.replace(/^\n+/, '') : text;
  if (!trimmed) return undefined;
  const pkg = new IndexedPackage(trimmed, archiveUrl);
  let start = 0;
  while (start < trimmed.length) {
    let end = trimmed.indexOf('\n', start);
    if (end < 0) end = trimmed.length;
    const candidates = indexedFields[trimmed[start]!];
    if (candidates) {
      for (const field of candidates) {
        if (trimmed.charCodeAt(start + field.length) !== 58 /* : */ || !trimmed.startsWith(field, start)) continue;
        const value = trimmed.slice(start + field.length + 1, end).trim();
        switch (field) {
          case 'Package':
            pkg.name = value;
            break;
          case 'Version':
            pkg.version = value;
            break;
          case 'Architecture':
            pkg.arch = value;
            break;
          case 'Filename':
            pkg.filename = value;
            break;
          case 'SHA256':
            pkg.sha256 = value.toLowerCase();
            break;
          case 'Size':
            pkg.size = Number(value);
            break;
          case 'Depends':
            pkg.depends = value;
            break;
          case 'Pre-Depends':
            pkg.preDepends = value;
            break;
          case 'Provides':
            pkg.provides = value;
            break;
          case 'Source':
            pkg.source = value;
            break;
          case 'Installed-Size':
            pkg.installedSize = Number(value);
            break;
          case 'Multi-Arch':
            pkg.multiArch = value;
            break;
          case 'Priority':
            pkg.priority = value;
            break;
          case 'Section':
            pkg.section = value;
            break;
          case 'Essential':
            pkg.essential = value.toLowerCase() === 'yes';
            break;
          case 'Conflicts':
            pkg.conflicts = value;
            break;
          case 'Breaks':
            pkg.breaks = value;
            break;
        }
        break;
      }
    }
    start = end + 1;
  }
  // A stanza without a verifiable .deb is of no use to us.
  if (!pkg.name || !pkg.version || !pkg.filename || pkg.sha256.length !== 64) return undefined;
  return pkg;
}
