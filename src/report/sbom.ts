/**
 * What an SBOM of one platform image says, before it is written as CycloneDX or SPDX
 * (sbom-cyclonedx.ts, sbom-spdx.ts): the image, its layers, and every component with its
 * identity (purl, CPE), hashes, licenses and the layer that holds it.
 *
 * Two sources meet here, each for what it knows best:
 *   - the image's own contents (read through src/report like any image: contents.ts, owners.ts):
 *     which Debian packages its dpkg records list (with their source package and the copyright
 *     file), which Python distributions its dist-info directories are (with METADATA), where the
 *     runtime is, which layer holds each, the OS release;
 *   - the build (plan and execution report): the .debs' sha256, the runtime archive (release,
 *     asset, sha256), the wheel each distribution was installed from (filename and sha256 from
 *     uv.lock), and python-build-standalone's bundled libraries (src/runtime/standalone-libraries.ts).
 * A component the image holds is listed whether or not the build knows more about it; what the
 * build knows is added where name and version agree.
 *
 * `collectSbom` is pure (plain inputs, tested as such); `sbomContentsOf` takes the inputs it needs
 * from an ImageAnalysis.
 */
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { PackageURL } from 'packageurl-js';
import type { Digest } from '../oci/digest.js';
import type { Platform } from '../oci/platform.js';
import type { PlannedPackage } from '../python/install-set.js';
import { normalizeName } from '../python/markers.js';
import { standaloneLibraryRows } from '../runtime/standalone-libraries.js';
import type { PythonArch } from '../facts/architectures.js';
import type { ImageAnalysis } from './inspect.js';
import type { DebianPackage, PythonDistribution } from './owners.js';
import { debianCopyrightLicenses, pythonMetadataLicenses, asLicense, type License } from './sbom-licenses.js';

export type SbomComponentKind = 'debian' | 'python' | 'project' | 'runtime' | 'runtime-library';

export interface SbomLayer {
  /** 0-based position in the image. */
  index: number;
  /** The layer blob's digest (what a registry stores) and its diff_id (the uncompressed tar). */
  digest: Digest;
  diffId: Digest;
  /** What the build says it is (`base: libc`, `runtime`, `dependencies`, `project`, …). */
  role?: string;
}

export interface SbomComponent {
  /** Unique in the document and stable across builds of the same content: kind, name, version. */
  ref: string;
  kind: SbomComponentKind;
  name: string;
  version: string;
  purl: string;
  cpe?: string;
  /** sha256 hex of what it was installed from: the .deb, the wheel, the runtime archive. */
  sha256?: string;
  licenses: License[];
  /** The layer holding it (its dpkg record, its dist-info, the runtime's interpreter). */
  layer?: SbomLayer;
  /** Where in the image it is recorded (status.d file, dist-info directory, interpreter), no leading `/`. */
  path?: string;
  /** The component that links this one in statically (python-build-standalone's libraries). */
  linkedInto?: string;
  /** Further facts, as name/value pairs (`uvimage:…`); sorted by the renderers. */
  properties: [string, string][];
  description?: string;
}

export interface SbomModel {
  image: {
    /** Repository (registry/name) when the image is tagged for one, else the project's name. */
    name: string;
    repository?: string;
    platform: Platform;
    manifest: { mediaType: string; digest: Digest; size: number };
    layers: SbomLayer[];
  };
  /** The build's one timestamp (SOURCE_DATE_EPOCH), ISO 8601. */
  created: string;
  tool: { name: string; version: string };
  os?: { id: string; version: string };
  components: SbomComponent[];
  /** Facts of the whole document (e.g. why the runtime has no libraries). */
  properties: [string, string][];
}

/** What an SBOM reads from the image itself (see sbomContentsOf). */
export interface SbomContents {
  layers: SbomLayer[];
  debian: (DebianPackage & { copyright?: string })[];
  python: (PythonDistribution & { metadata?: string })[];
  runtime?: { kind: 'python-build-standalone' | 'debian'; version?: string; interpreter?: string; layer?: number; tkinter: boolean };
  os?: { id: string; versionId?: string };
}

/** What an SBOM takes from the build: the plan's and the execution report's facts. */
export interface SbomBuild {
  created: string;
  toolVersion: string;
  /** The project and the workspace members installed (normalized names). */
  project: { name: string; members: string[] };
  arch: PythonArch;
  runtime:
    | { kind: 'standalone'; version: string; release: string; asset: string; url: string; sha256: string }
    | { kind: 'debian'; version: string; packages: { name: string; version: string }[] };
  /** The .debs the base was written from. */
  debs: { name: string; version: string; digest: Digest }[];
  /** The install plan's packages (wheels with their lock hash, or built). */
  packages: PlannedPackage[];
  /** The Debian release of uvimage's base (src/facts/debian-suites.ts), for the purls' distro. */
  debianVersion?: string;
}

/** The files an SBOM reads beyond the owners' metadata: copyright files and the OS release. */
export function isSbomMetadata(path: string): boolean {
  return /^usr\/share\/doc\/[^/]+\/copyright$/.test(path) || path === 'etc/os-release' || path === 'usr/lib/os-release';
}

/** The SBOM inputs an analysis holds (read with `collect: isSbomMetadata`), layers named by `roles`. */
export function sbomContentsOf(analysis: ImageAnalysis, roles: readonly string[] = []): SbomContents {
  const { merged } = analysis;
  const layers: SbomLayer[] = analysis.layers.map((layer) => ({ index: layer.index, digest: layer.digest, diffId: layer.diffId, ...(roles[layer.index] ? { role: roles[layer.index] } : {}) }));
  const entryAt = (path: string) => {
    const found = merged.visible.get(path);
    return found && { layer: found.layer, entry: analysis.layers[found.layer]!.contents.entries[found.entry]! };
  };
  /** A visible file's content, following symlinks in its directories (usr/share/doc/<pkg> is often one). */
  const fileContent = (path: string): Buffer | undefined => {
    let current = path;
    for (let hops = 0; hops < 8; hops++) {
      const found = merged.visible.get(current);
      if (found) {
        const entry = analysis.layers[found.layer]!.contents.entries[found.entry]!;
        if (entry.type === 'symlink' && entry.linkTarget) {
          current = resolveLink(current, entry.linkTarget);
          continue;
        }
        return analysis.layers[found.layer]!.contents.files.get(current);
      }
      // A directory on the way may be a link: resolve the deepest one that is.
      const parts = current.split('/');
      let resolved: string | undefined;
      for (let length = parts.length - 1; length > 0 && !resolved; length--) {
        const prefix = parts.slice(0, length).join('/');
        const link = entryAt(prefix);
        if (link?.entry.type === 'symlink' && link.entry.linkTarget) resolved = posix.join(resolveLink(prefix, link.entry.linkTarget), ...parts.slice(length));
      }
      if (!resolved) return undefined;
      current = resolved;
    }
    return undefined;
  };

  const debian = analysis.ownership.debian.map((pkg) => {
    const copyright = fileContent(`usr/share/doc/${pkg.name}/copyright`)?.toString('utf8');
    return copyright === undefined ? { ...pkg } : { ...pkg, copyright };
  });
  const python = analysis.ownership.python.map((dist) => {
    const metadata = fileContent(`${dist.distInfo}/METADATA`)?.toString('utf8');
    return metadata === undefined ? { ...dist } : { ...dist, metadata };
  });

  let runtime: SbomContents['runtime'];
  const owned = analysis.ownership.runtime;
  if (owned) {
    const minor = owned.version?.split('.').slice(0, 2).join('.');
    const interpreter = owned.kind === 'python-build-standalone' ? `python/bin/python${minor}` : `usr/bin/python${minor}`;
    const stdlib = owned.kind === 'python-build-standalone' ? `python/lib/python${minor}` : `usr/lib/python${minor}`;
    runtime = {
      kind: owned.kind,
      ...(owned.version ? { version: owned.version } : {}),
      interpreter,
      ...(merged.visible.has(interpreter) ? { layer: merged.visible.get(interpreter)!.layer } : {}),
      // tkinter (and the Tcl/Tk and X11 libraries only it links) is gone once trimming took it out.
      tkinter: merged.visible.has(`${stdlib}/tkinter/__init__.py`),
    };
  }

  const osRelease = fileContent('etc/os-release') ?? fileContent('usr/lib/os-release');
  let os: SbomContents['os'];
  if (osRelease) {
    const fields = new Map([...osRelease.toString('utf8').matchAll(/^([A-Z_]+)=("?)(.*)\2$/gm)].map((match) => [match[1]!, match[3]!]));
    if (fields.get('ID')) os = { id: fields.get('ID')!, ...(fields.get('VERSION_ID') ? { versionId: fields.get('VERSION_ID') } : {}) };
  }
  return { layers, debian, python, ...(runtime ? { runtime } : {}), ...(os ? { os } : {}) };
}

function resolveLink(path: string, target: string): string {
  return target.startsWith('/') ? posix.normalize(target).replace(/^\/+/, '') : posix.normalize(posix.join(posix.dirname(path), target));
}

/** The libraries python-build-standalone builds into a release for an architecture, if uvimage's table has the release. */
export function standaloneLibraries(release: string, arch: PythonArch): { name: string; version: string; license: string }[] | undefined {
  const rows = standaloneLibraryRows.filter((row) => row[0] === release && (row[1] === '*' || row[1] === arch));
  return rows.length > 0 ? rows.map(([, , name, version, license]) => ({ name, version, license })) : undefined;
}

/** Libraries that only tkinter links: absent from the image once tkinter is trimmed. */
const tkinterOnly = new Set(['tcl', 'tk', 'tix', 'libX11', 'libXau', 'libxcb']);

/** NVD's vendor:product of the bundled libraries scanners match by CPE (grype does for generic packages). */
const libraryCpes: Record<string, string> = {
  openssl: 'openssl:openssl',
  sqlite: 'sqlite:sqlite',
  zlib: 'zlib:zlib',
  xz: 'tukaani:xz',
  bzip2: 'bzip:bzip2',
  libffi: 'libffi_project:libffi',
  expat: 'libexpat_project:libexpat',
  ncurses: 'gnu:ncurses',
  readline: 'gnu:readline',
  gdbm: 'gnu:gdbm',
  tcl: 'tcl:tcl',
  tk: 'tcl:tk',
  zstd: 'facebook:zstandard',
  bdb: 'oracle:berkeley_db',
  libX11: 'x.org:libx11',
};

export function cpe23(vendorProduct: string, version: string): string {
  // CPE 2.3 formatted string binding: `:` and other specials in a value are escaped with `\`.
  const escaped = version.replace(/[^A-Za-z0-9._-]/g, (char) => `\\${char}`);
  return `cpe:2.3:a:${vendorProduct}:${escaped}:*:*:*:*:*:*:*`;
}

const layerProperties = (layer: SbomLayer | undefined): [string, string][] =>
  layer ? [['uvimage:layer:digest', layer.digest], ['uvimage:layer:diffID', layer.diffId], ...(layer.role ? ([['uvimage:layer:role', layer.role]] as [string, string][]) : [])] : [];

export function collectSbom(image: Omit<SbomModel['image'], 'layers'>, build: SbomBuild, contents: SbomContents): SbomModel {
  const layerAt = (index: number | undefined) => (index === undefined ? undefined : contents.layers[index]);
  const components: SbomComponent[] = [];
  const properties: [string, string][] = [];
  const distroVersion = contents.os?.id === 'debian' && contents.os.versionId ? contents.os.versionId : build.debianVersion;
  const debianRuntime = new Set(build.runtime.kind === 'debian' ? build.runtime.packages.map((pkg) => `${pkg.name}=${pkg.version}`) : []);

  // Debian packages, as the image's dpkg records list them.
  const debs = new Map(build.debs.map((deb) => [`${deb.name}=${deb.version}`, deb.digest]));
  for (const pkg of contents.debian) {
    const arch = pkg.architecture;
    const qualifiers: Record<string, string> = {};
    if (arch) qualifiers.arch = arch;
    if (distroVersion) qualifiers.distro = `debian-${distroVersion}`;
    // Scanners match Debian's security tracker by source package (grype reads purl's upstream).
    const source = pkg.source ?? pkg.name;
    if (source !== pkg.name) qualifiers.upstream = source;
    const digest = debs.get(`${pkg.name}=${pkg.version}`);
    const layer = layerAt(pkg.layer);
    const licenses = pkg.copyright !== undefined ? (debianCopyrightLicenses(pkg.copyright) ?? []) : [];
    const props: [string, string][] = [['uvimage:debian:source', source], ...layerProperties(layer)];
    if (debianRuntime.has(`${pkg.name}=${pkg.version}`)) props.push(['uvimage:runtime', 'debian']);
    if (pkg.copyright !== undefined && licenses.length === 0) props.push(['uvimage:license:note', 'the copyright file is not in the machine-readable form']);
    components.push({
      ref: `deb:${pkg.name}@${pkg.version}${arch ? `:${arch}` : ''}`,
      kind: 'debian',
      name: pkg.name,
      version: pkg.version,
      purl: new PackageURL('deb', 'debian', pkg.name, pkg.version, qualifiers, null).toString(),
      ...(digest ? { sha256: digest.slice('sha256:'.length) } : {}),
      licenses,
      ...(layer ? { layer } : {}),
      path: `var/lib/dpkg/status.d/${pkg.name}`,
      properties: props,
    });
  }

  // The python-build-standalone runtime and the libraries built into it.
  if (build.runtime.kind === 'standalone' && contents.runtime?.kind === 'python-build-standalone') {
    const runtime = build.runtime;
    const layer = layerAt(contents.runtime.layer);
    const ref = `runtime:python@${runtime.version}`;
    const libraries = standaloneLibraries(runtime.release, build.arch);
    components.push({
      ref,
      kind: 'runtime',
      name: 'python',
      version: runtime.version,
      // syft's binary classifier names CPython pkg:generic/python@<version>; NVD's CPE is python:python.
      purl: new PackageURL('generic', null, 'python', runtime.version, null, null).toString(),
      cpe: cpe23('python:python', runtime.version),
      sha256: runtime.sha256,
      licenses: [{ expression: 'Python-2.0 AND CNRI-Python' }],
      ...(layer ? { layer } : {}),
      ...(contents.runtime.interpreter ? { path: contents.runtime.interpreter } : {}),
      description: `CPython ${runtime.version} from python-build-standalone ${runtime.release}`,
      properties: [
        ['uvimage:python-build-standalone:release', runtime.release],
        ['uvimage:python-build-standalone:asset', runtime.asset],
        ['uvimage:python-build-standalone:url', runtime.url],
        ['uvimage:runtime:libraries', libraries ? `python-build-standalone ${runtime.release}'s build definition (uvimage's table)` : `unknown: python-build-standalone release ${runtime.release} is not in uvimage's table`],
        ...layerProperties(layer),
      ],
    });
    if (!libraries) properties.push(['uvimage:runtime:libraries', `unknown: python-build-standalone release ${runtime.release} is not in uvimage's table of bundled libraries`]);
    for (const library of libraries ?? []) {
      if (tkinterOnly.has(library.name) && !contents.runtime.tkinter) continue;
      const known = libraryCpes[library.name];
      components.push({
        ref: `runtime-library:${library.name}@${library.version}`,
        kind: 'runtime-library',
        name: library.name,
        version: library.version,
        purl: new PackageURL('generic', null, library.name, library.version, null, null).toString(),
        ...(known ? { cpe: cpe23(known, library.version) } : {}),
        licenses: library.license ? [asLicense(library.license)] : [],
        ...(layer ? { layer } : {}),
        linkedInto: ref,
        description: `built into python-build-standalone ${runtime.release}'s CPython ${runtime.version}`,
        properties: [['uvimage:python-build-standalone:release', runtime.release], ...layerProperties(layer)],
      });
    }
  }

  // Python distributions, as the image's dist-info directories are; the project and its members among them.
  const planned = new Map(build.packages.map((pkg) => [`${normalizeName(pkg.name)}=${pkg.version ?? ''}`, pkg]));
  const members = new Set([build.project.name, ...build.project.members].map(normalizeName));
  for (const dist of contents.python) {
    const name = normalizeName(dist.name);
    const isProject = dist.project || members.has(name);
    const pkg = planned.get(`${name}=${dist.version}`);
    const layer = layerAt(dist.layer);
    const props: [string, string][] = [];
    let sha256: string | undefined;
    if (pkg?.kind === 'wheel') {
      props.push(['uvimage:python:wheel', pkg.wheel.filename]);
      if (pkg.wheel.hash?.startsWith('sha256:')) sha256 = pkg.wheel.hash.slice('sha256:'.length);
      if (pkg.wheel.url) props.push(['uvimage:python:wheel-url', pkg.wheel.url]);
    } else if (pkg?.kind === 'build') {
      props.push(['uvimage:python:built', pkg.member ? 'the project or a workspace member (uv build)' : `from source (${pkg.reason})`]);
    }
    props.push(...layerProperties(layer));
    components.push({
      ref: `${isProject ? 'project' : 'pypi'}:${name}@${dist.version}`,
      kind: isProject ? 'project' : 'python',
      name,
      version: dist.version,
      purl: new PackageURL('pypi', null, name, dist.version, null, null).toString(),
      ...(sha256 ? { sha256 } : {}),
      licenses: dist.metadata !== undefined ? pythonMetadataLicenses(dist.metadata) : [],
      ...(layer ? { layer } : {}),
      path: dist.distInfo,
      properties: props,
    });
  }

  const order: SbomComponentKind[] = ['project', 'runtime', 'runtime-library', 'python', 'debian'];
  components.sort((a, b) => order.indexOf(a.kind) - order.indexOf(b.kind) || compare(a.name, b.name) || compare(a.version, b.version) || compare(a.ref, b.ref));
  const seen = new Set<string>();
  for (const component of components) {
    // Two records of one package (an arch-less and an arched stanza, a dist-info twice) keep their refs apart.
    let ref = component.ref;
    for (let copy = 2; seen.has(ref); copy++) ref = `${component.ref}#${copy}`;
    component.ref = ref;
    seen.add(ref);
  }
  return {
    image: { ...image, layers: contents.layers },
    created: build.created,
    tool: { name: 'uvimage', version: build.toolVersion },
    ...(contents.os ? { os: { id: contents.os.id, version: contents.os.versionId ?? '' } } : {}),
    components,
    properties,
  };
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A name-based UUID (RFC 9562 version 5, SHA-1) of `name` under the URL namespace: the same name, the same UUID. */
export function nameBasedUuid(name: string): string {
  const urlNamespace = Buffer.from('6ba7b8119dad11d180b400c04fd430c8', 'hex');
  const hash = createHash('sha1').update(urlNamespace).update(name, 'utf8').digest();
  hash[6] = (hash[6]! & 0x0f) | 0x50;
  hash[8] = (hash[8]! & 0x3f) | 0x80;
  const hex = hash.subarray(0, 16).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** The purl of the image itself (purl-spec's oci type: the repository's last part, the manifest digest). */
export function imagePurl(image: SbomModel['image']): string {
  const qualifiers: Record<string, string> = { arch: image.platform.architecture, os: image.platform.os };
  if (image.platform.variant) qualifiers.variant = image.platform.variant;
  if (image.repository) qualifiers.repository_url = image.repository;
  const name = (image.repository ?? image.name).split('/').pop()!.toLowerCase();
  return new PackageURL('oci', null, name, image.manifest.digest, qualifiers, null).toString();
}
