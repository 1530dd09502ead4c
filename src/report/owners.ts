/**
 * Who put each file of an image there, read from what the image itself records:
 *
 *   debian    Debian packages: distroless' `/var/lib/dpkg/status.d/<pkg>` stanza with its file
 *             list `<pkg>.md5sums` (what syft and trivy read), or a classic
 *             `/var/lib/dpkg/status` with `/var/lib/dpkg/info/<pkg>[:arch].list`
 *   python    Python distributions: each `*.dist-info/RECORD`, its paths relative to the
 *             directory holding the dist-info (site-packages), `../../../bin/x` included
 *   runtime   the Python runtime: python-build-standalone's tree at `/python`, or Debian's
 *             CPython (its python3.X, libpython3.X-* packages)
 *   project   the project: uvimage's project layer (history `uvimage: project NAME`), all of it,
 *             and the dist-info of the project's wheel wherever it is
 *   unowned   what none of them claims
 *
 * Only metadata files that are visible in the image count (a package whose status file a later
 * layer deleted owns nothing). A `__pycache__/NAME.TAG.pyc` belongs to whoever owns `NAME.py`
 * beside it, as RECORD often leaves compiled files out (uv and uvimage compile after install).
 * When two claim a path, the runtime tree wins, then Debian, then RECORD: a RECORD path can
 * point anywhere, a package's file list is what dpkg installed.
 */
import { posix } from 'node:path';
import { parseStanzas, type Stanza } from '../debian/control.js';
import { mergeUsrPath } from '../debian/deb.js';
import { normalizeName } from '../python/markers.js';
import { parseRecord } from '../python/wheel-installer.js';
import type { LayerContents, MergedImage } from './contents.js';

export type OwnerKind = 'debian' | 'python' | 'runtime' | 'project' | 'unowned';

export interface Owner {
  kind: OwnerKind;
  /** Package, distribution, runtime or project name; `` for unowned. */
  name: string;
  version?: string;
}

export interface DebianPackage {
  name: string;
  version: string;
  architecture?: string;
  source?: string;
  /** The layer whose dpkg record is visible. */
  layer: number;
}

export interface PythonDistribution {
  /** PEP 503 normalized name. */
  name: string;
  version: string;
  /** Path of the dist-info directory. */
  distInfo: string;
  layer: number;
  /** The project itself (or a member of its workspace, in the project layer). */
  project: boolean;
}

export interface PythonRuntime {
  kind: 'python-build-standalone' | 'debian';
  /** `3.12.1` where the image says it, else the minor version. */
  version?: string;
  /** python-build-standalone's release tag (a date), when the image says it. */
  release?: string;
  /** Where it lives: `python` (standalone) or the Debian packages it is. */
  root?: string;
  packages?: string[];
}

export interface Ownership {
  /** Per layer, per entry (parallel to `entries`). */
  owners: Owner[][];
  debian: DebianPackage[];
  python: PythonDistribution[];
  runtime?: PythonRuntime;
  project?: { name: string; version?: string };
}

/** The files owners are read from: the caller collects their content while reading layers. */
export function isOwnerMetadata(path: string): boolean {
  return (
    path === 'var/lib/dpkg/status' ||
    /^var\/lib\/dpkg\/status\.d\/[^/]+$/.test(path) ||
    /^var\/lib\/dpkg\/info\/[^/]+\.list$/.test(path) ||
    /\.dist-info\/(RECORD|METADATA)$/.test(path) ||
    /^python\/(PYTHON\.json|include\/python3\.\d+t?\/patchlevel\.h)$/.test(path)
  );
}

/** The owner key two images' owners are compared by: kind and name, not version. */
export function ownerKey(owner: Owner): string {
  return `${owner.kind}:${owner.name}`;
}

const unowned: Owner = { kind: 'unowned', name: '' };

/** Debian's own CPython: python3.X, python3.X-minimal, libpython3.X-minimal/-stdlib, python3, … */
const debianPythonPackage = /^(lib)?python3(\.\d+)?(-minimal|-stdlib)?$/;

export function assignOwners(layers: readonly LayerContents[], merged: MergedImage, createdBy: readonly (string | undefined)[]): Ownership {
  const visibleFile = (path: string): { layer: number; content: Buffer } | undefined => {
    const found = merged.visible.get(path);
    const content = found && layers[found.layer]!.files.get(path);
    return found && content ? { layer: found.layer, content } : undefined;
  };
  const visibleMetadata = [...merged.visible.keys()].filter((path) => layers[merged.visible.get(path)!.layer]!.files.has(path)).sort();
  const claims = new Map<string, Owner>();
  const claim = (path: string, owner: Owner) => {
    claims.set(path, owner);
    const merged = mergeUsrPath(path, false);
    if (merged !== path && !claims.has(merged)) claims.set(merged, owner);
  };

  // The project layer(s): uvimage names them in the history.
  const projectLayers = new Set<number>();
  let projectName: string | undefined;
  for (const [index, text] of createdBy.entries()) {
    const match = /^uvimage: project (\S+)/.exec(text ?? '');
    if (match) {
      projectLayers.add(index);
      projectName = normalizeName(match[1]!);
    }
  }

  // Python distributions (lowest priority of the claims).
  const python: PythonDistribution[] = [];
  for (const path of visibleMetadata) {
    const match = /^(.*?)([^/]+)\.dist-info\/RECORD$/.exec(path);
    if (!match) continue;
    const distInfo = `${match[1]}${match[2]}.dist-info`;
    const { layer, content } = visibleFile(path)!;
    const metadata = visibleFile(`${distInfo}/METADATA`)?.content.toString('utf8');
    const header = metadata?.split(/\r?\n\r?\n/, 1)[0] ?? '';
    const dash = match[2]!.lastIndexOf('-');
    const name = normalizeName(/^Name:[ \t]*(.+)$/m.exec(header)?.[1] ?? (dash > 0 ? match[2]!.slice(0, dash) : match[2]!));
    const version = /^Version:[ \t]*(.+)$/m.exec(header)?.[1]?.trim() ?? (dash > 0 ? match[2]!.slice(dash + 1) : '');
    const isProject = projectLayers.has(layer) || name === projectName;
    python.push({ name, version, distInfo, layer, project: isProject });
    const owner: Owner = { kind: isProject ? 'project' : 'python', name, version };
    const sitePackages = match[1]!.replace(/\/$/, '');
    let entries: ReturnType<typeof parseRecord>;
    try {
      entries = parseRecord(content.toString('utf8'), path);
    } catch {
      entries = []; // a RECORD that cannot be read claims nothing beyond its dist-info
    }
    for (const entry of entries) {
      const resolved = posix.normalize(posix.join(sitePackages, entry.path));
      if (!resolved.startsWith('../') && resolved !== '..') claim(resolved, owner);
    }
    for (const file of [`${distInfo}/RECORD`, `${distInfo}/METADATA`]) claim(file, owner);
  }

  // Debian packages: distroless' status.d, else dpkg's status and info/*.list.
  const debian: DebianPackage[] = [];
  const runtimePackages: DebianPackage[] = [];
  const addPackage = (stanza: Stanza, layer: number, files: string[], records: string[]) => {
    const name = stanza.Package;
    if (!name || !stanza.Version) return;
    const status = stanza.Status;
    if (status !== undefined && !/ installed$/.test(status)) return;
    const pkg: DebianPackage = { name, version: stanza.Version, layer };
    if (stanza.Architecture) pkg.architecture = stanza.Architecture;
    if (stanza.Source) pkg.source = stanza.Source.split(' ')[0];
    debian.push(pkg);
    const owner: Owner = debianPythonPackage.test(name) ? { kind: 'runtime', name: 'debian-python' } : { kind: 'debian', name, version: pkg.version };
    if (owner.kind === 'runtime') runtimePackages.push(pkg);
    for (const file of [...files, ...records]) claim(file, owner);
  };
  for (const path of visibleMetadata) {
    const match = /^var\/lib\/dpkg\/status\.d\/([^/]+)$/.exec(path);
    if (!match || match[1]!.endsWith('.md5sums')) continue;
    const { layer, content } = visibleFile(path)!;
    const md5sums = visibleFile(`${path}.md5sums`)?.content.toString('utf8') ?? '';
    const files = md5sums.split('\n').map((line) => /^[0-9a-f]{32}\s+(.+)$/.exec(line.trim())?.[1]).filter((file): file is string => file !== undefined);
    for (const stanza of parseStanzas(content.toString('utf8'))) addPackage(stanza, layer, files.map((file) => file.replace(/^\/+/, '')), [path, `${path}.md5sums`]);
  }
  const status = visibleFile('var/lib/dpkg/status');
  if (status) {
    for (const stanza of parseStanzas(status.content.toString('utf8'))) {
      const name = stanza.Package ?? '';
      const listPath = [`var/lib/dpkg/info/${name}.list`, `var/lib/dpkg/info/${name}:${stanza.Architecture}.list`].find((candidate) => visibleFile(candidate));
      const list = listPath ? visibleFile(listPath)!.content.toString('utf8') : '';
      const files = list.split('\n').map((line) => line.trim().replace(/^\/+/, '')).filter((line) => line !== '' && line !== '.');
      addPackage(stanza, status.layer, files, listPath ? [listPath] : []);
    }
  }

  // The runtime: python-build-standalone at /python, else Debian's CPython.
  const runtime = standaloneRuntime(merged, createdBy, visibleFile) ?? debianRuntime(runtimePackages);
  const runtimeOwner: Owner | undefined = runtime && { kind: 'runtime', name: runtime.kind === 'debian' ? 'debian-python' : runtime.kind, version: runtime.version };
  if (runtime?.kind === 'debian') for (const [path, owner] of claims) if (owner.kind === 'runtime') claims.set(path, runtimeOwner!);

  const projectDist = python.find((dist) => dist.project && (projectName === undefined || dist.name === projectName));
  const projectOwner: Owner | undefined = projectName ? { kind: 'project', name: projectName, version: projectDist?.version } : undefined;

  const ownerOfPath = (path: string, layer: number): Owner => {
    if (runtime?.kind === 'python-build-standalone' && (path === 'python' || path.startsWith('python/'))) return runtimeOwner!;
    const direct = claims.get(path);
    if (direct) return direct;
    const compiled = /^(.*\/)__pycache__\/([^/.]+)\.[^/]+\.pyc$/.exec(path);
    const source = compiled && claims.get(`${compiled[1]}${compiled[2]}.py`);
    if (source) return source;
    if (projectLayers.has(layer) && projectOwner) return projectOwner;
    return unowned;
  };
  const owners = layers.map((layer, index) => layer.entries.map((entry) => ownerOfPath(entry.path, index)));
  return {
    owners,
    debian: debian.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
    python: python.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.distInfo < b.distInfo ? -1 : 1)),
    runtime,
    project: projectOwner && { name: projectOwner.name, version: projectOwner.version },
  };
}

/**
 * python-build-standalone's tree: `/python/bin/python3.X` beside `/python/lib/python3.X`. Its
 * version comes from uvimage's history (`uvimage: python-build-standalone cpython-3.12.1+20240107-…`),
 * else from the release's PYTHON.json (full archives), else from patchlevel.h, else the minor.
 */
function standaloneRuntime(
  merged: MergedImage,
  createdBy: readonly (string | undefined)[],
  visibleFile: (path: string) => { layer: number; content: Buffer } | undefined,
): PythonRuntime | undefined {
  let minor: string | undefined;
  for (const path of merged.visible.keys()) {
    const match = /^python\/bin\/python(3\.\d+)$/.exec(path);
    if (match && merged.visible.has(`python/lib/python${match[1]}`)) minor = match[1];
  }
  if (!minor) return undefined;
  const runtime: PythonRuntime = { kind: 'python-build-standalone', version: minor, root: 'python' };
  const layer = merged.visible.get(`python/bin/python${minor}`)!.layer;
  const asset = /python-build-standalone cpython-(\d+\.\d+\.\d+)\+(\d+)-/.exec(createdBy[layer] ?? '');
  if (asset) return { ...runtime, version: asset[1], release: asset[2] };
  try {
    const json = visibleFile('python/PYTHON.json');
    const version = json && (JSON.parse(json.content.toString('utf8')) as { python_version?: unknown }).python_version;
    if (typeof version === 'string') return { ...runtime, version };
  } catch {
    // not JSON: fall through to the header
  }
  const patchlevel = visibleFile(`python/include/python${minor}/patchlevel.h`)?.content.toString('latin1');
  const version = patchlevel && /#define\s+PY_VERSION\s+"([^"]+)"/.exec(patchlevel)?.[1];
  return version ? { ...runtime, version } : runtime;
}

function debianRuntime(packages: DebianPackage[]): PythonRuntime | undefined {
  const interpreter = packages.find((pkg) => /^python3\.\d+$/.test(pkg.name));
  if (!interpreter) return undefined;
  // Debian's version of CPython 3.13.5 is 3.13.5-2: the upstream part, without an epoch.
  const version = interpreter.version.replace(/^\d+:/, '').split(/[-+~]/)[0];
  return { kind: 'debian', version, root: interpreter.name, packages: packages.map((pkg) => pkg.name).sort() };
}
