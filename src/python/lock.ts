/**
 * uv.lock (crates/uv-resolver/src/lock/mod.rs): version 1, any revision; unknown keys tolerated,
 * a higher version refused. Field names follow the TOML with kebab-case turned into camelCase.
 */
import { UserError } from '../errors.js';
import { normalizeName } from './markers.js';
import { readTomlFile } from './pyproject.js';

export interface LockWheel {
  url?: string;
  path?: string;
  /** Always set: the last segment of url/path, or the lock's `filename`. */
  filename: string;
  /** `sha256:<hex>`; absent only for wheels uv locked without a hash (some path/url sources). */
  hash?: string;
  size?: number;
  uploadTime?: string;
}

export interface LockSource {
  registry?: string;
  url?: string;
  /** `subdirectory` of a url or git source. */
  subdirectory?: string;
  path?: string;
  directory?: string;
  editable?: string;
  virtual?: string;
  /** The git URL as uv writes it: `https://host/repo?rev=...#<commit>`. */
  git?: string;
}

export interface LockSdist {
  url?: string;
  path?: string;
  hash?: string;
  size?: number;
  uploadTime?: string;
}

export interface LockDependency {
  name: string;
  /** PEP 508 marker, as uv simplified it (relative to the lock's requires-python). */
  marker?: string;
  extra?: string[];
  /** Only when the lock holds several versions/sources of the package. */
  version?: string;
  source?: LockSource;
}

/** A requirement in `[package.metadata] requires-dist` / `requires-dev`, as uv lowered it. */
export interface LockRequirement {
  name: string;
  specifier?: string;
  marker?: string;
  extras?: string[];
  /** Any other keys (index, editable, path, git, url, workspace, group...): kept for comparison. */
  other: Record<string, unknown>;
}

export interface LockPackage {
  name: string;
  version?: string;
  source: LockSource;
  dependencies: LockDependency[];
  optionalDependencies: Record<string, LockDependency[]>;
  devDependencies: Record<string, LockDependency[]>;
  sdist?: LockSdist;
  wheels: LockWheel[];
  resolutionMarkers?: string[];
  metadata?: {
    requiresDist?: LockRequirement[];
    requiresDev?: Record<string, LockRequirement[]>;
    providesExtras?: string[];
  };
}

/** One conflict set: items that must not be installed together (`{ package, extra }` or `{ package, group }`). */
export type LockConflictSet = { package: string; extra?: string; group?: string }[];

export interface LockManifest {
  members: string[];
  requirements?: LockRequirement[];
  dependencyGroups?: Record<string, LockRequirement[]>;
  constraints?: LockRequirement[];
  overrides?: LockRequirement[];
}

export interface UvLock {
  path: string;
  version: 1;
  revision: number;
  requiresPython?: string;
  resolutionMarkers: string[];
  supportedMarkers?: string[];
  conflicts: LockConflictSet[];
  packages: LockPackage[];
  manifest: LockManifest;
}

// ---------------------------------------------------------------------------------------------
// Reading


function isTable(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

function optionalString(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function optionalNumber(value: unknown): number | undefined {
  return typeof value === 'number' ? value : typeof value === 'bigint' ? Number(value) : undefined;
}

function stringList(value: unknown): string[] | undefined {
  return Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string') : undefined;
}

function lastSegment(location: string): string {
  const withoutQuery = location.split(/[?#]/)[0]!;
  const segment = withoutQuery.slice(withoutQuery.lastIndexOf('/') + 1);
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

function readSource(value: unknown): LockSource {
  if (!isTable(value)) return {};
  const source: LockSource = {};
  for (const key of ['registry', 'url', 'subdirectory', 'path', 'directory', 'editable', 'virtual', 'git'] as const) {
    const text = optionalString(value[key]);
    if (text !== undefined) source[key] = text;
  }
  return source;
}

function readDependency(value: unknown, where: string): LockDependency {
  if (!isTable(value) || typeof value.name !== 'string') throw new UserError(`${where}: a dependency without a name`);
  const dependency: LockDependency = { name: value.name };
  const marker = optionalString(value.marker);
  if (marker !== undefined) dependency.marker = marker;
  const extra = stringList(value.extra);
  if (extra?.length) dependency.extra = extra;
  const version = optionalString(value.version);
  if (version !== undefined) dependency.version = version;
  if (isTable(value.source)) dependency.source = readSource(value.source);
  return dependency;
}

function readDependencyTable(value: unknown, where: string): Record<string, LockDependency[]> {
  const result: Record<string, LockDependency[]> = {};
  if (!isTable(value)) return result;
  for (const [key, list] of Object.entries(value)) {
    result[key] = Array.isArray(list) ? list.map((item) => readDependency(item, `${where}.${key}`)) : [];
  }
  return result;
}

function readRequirement(value: unknown): LockRequirement | undefined {
  if (!isTable(value) || typeof value.name !== 'string') return undefined;
  const { name, specifier, marker, extras, ...other } = value;
  return {
    name,
    specifier: optionalString(specifier),
    marker: optionalString(marker),
    extras: stringList(extras),
    other,
  };
}

function readRequirements(value: unknown): LockRequirement[] | undefined {
  if (!Array.isArray(value)) return undefined;
  return value.map(readRequirement).filter((item): item is LockRequirement => item !== undefined);
}

function readRequirementTable(value: unknown): Record<string, LockRequirement[]> | undefined {
  if (!isTable(value)) return undefined;
  const result: Record<string, LockRequirement[]> = {};
  for (const [key, list] of Object.entries(value)) result[key] = readRequirements(list) ?? [];
  return result;
}

function readWheel(value: unknown, source: LockSource, where: string): LockWheel {
  if (!isTable(value)) throw new UserError(`${where}: a wheel entry is not a table`);
  const url = optionalString(value.url);
  const path = optionalString(value.path) ?? (value.filename !== undefined && source.path ? source.path : undefined);
  const filename = optionalString(value.filename) ?? (url ? lastSegment(url) : path ? lastSegment(path) : undefined);
  if (!filename) throw new UserError(`${where}: a wheel without url, path or filename`);
  const wheel: LockWheel = { filename };
  if (url !== undefined) wheel.url = url;
  if (path !== undefined) wheel.path = path;
  const hash = optionalString(value.hash);
  if (hash !== undefined) wheel.hash = hash;
  const size = optionalNumber(value.size);
  if (size !== undefined) wheel.size = size;
  const uploadTime = value['upload-time'];
  if (uploadTime !== undefined) wheel.uploadTime = uploadTime instanceof Date ? uploadTime.toISOString() : String(uploadTime);
  return wheel;
}

function readPackage(value: unknown, file: string, index: number): LockPackage {
  if (!isTable(value) || typeof value.name !== 'string') throw new UserError(`${file}: [[package]] #${index + 1} has no name`);
  const where = `${file}: package ${value.name}`;
  const source = readSource(value.source);
  const pkg: LockPackage = {
    name: value.name,
    version: optionalString(value.version),
    source,
    dependencies: Array.isArray(value.dependencies) ? value.dependencies.map((item) => readDependency(item, where)) : [],
    optionalDependencies: readDependencyTable(value['optional-dependencies'], where),
    devDependencies: readDependencyTable(value['dev-dependencies'], where),
    wheels: Array.isArray(value.wheels) ? value.wheels.map((item) => readWheel(item, source, where)) : [],
  };
  if (isTable(value.sdist)) {
    const sdist = value.sdist;
    pkg.sdist = {
      url: optionalString(sdist.url),
      path: optionalString(sdist.path),
      hash: optionalString(sdist.hash),
      size: optionalNumber(sdist.size),
      uploadTime: sdist['upload-time'] instanceof Date ? (sdist['upload-time'] as Date).toISOString() : optionalString(sdist['upload-time']),
    };
  }
  const resolutionMarkers = stringList(value['resolution-markers']);
  if (resolutionMarkers) pkg.resolutionMarkers = resolutionMarkers;
  if (isTable(value.metadata)) {
    const metadata = value.metadata;
    pkg.metadata = {
      requiresDist: readRequirements(metadata['requires-dist']),
      requiresDev: readRequirementTable(metadata['requires-dev']),
      providesExtras: stringList(metadata['provides-extras']),
    };
  }
  return pkg;
}

/** Parses uv.lock text (exported for tests and for callers that already hold the text). */
export function parseUvLock(path: string, raw: Record<string, unknown>): UvLock {
  const version = optionalNumber(raw.version);
  if (version === undefined) throw new UserError(`${path} has no \`version\`; it is not a uv.lock`);
  if (version !== 1) {
    throw new UserError(
      version > 1
        ? `uv.lock at ${path} has version ${version}; this uvimage reads version 1 (upgrade uvimage)`
        : `uv.lock at ${path} has version ${version}; this uvimage reads version 1 (re-lock with a current uv)`,
    );
  }
  const revision = optionalNumber(raw.revision) ?? 0;
  const conflicts: LockConflictSet[] = [];
  if (Array.isArray(raw.conflicts)) {
    for (const set of raw.conflicts) {
      if (!Array.isArray(set)) continue;
      conflicts.push(
        set.filter(isTable).map((item) => ({
          package: String(item.package ?? ''),
          extra: optionalString(item.extra),
          group: optionalString(item.group),
        })),
      );
    }
  }
  const manifestRaw = isTable(raw.manifest) ? raw.manifest : {};
  const manifest: LockManifest = {
    members: stringList(manifestRaw.members) ?? [],
    requirements: readRequirements(manifestRaw.requirements),
    dependencyGroups: readRequirementTable(manifestRaw['dependency-groups']),
    constraints: readRequirements(manifestRaw.constraints),
    overrides: readRequirements(manifestRaw.overrides),
  };
  const packages = Array.isArray(raw.package) ? raw.package.map((item, index) => readPackage(item, path, index)) : [];
  return {
    path,
    version: 1,
    revision,
    requiresPython: optionalString(raw['requires-python']),
    resolutionMarkers: stringList(raw['resolution-markers']) ?? [],
    supportedMarkers: stringList(raw['supported-markers']),
    conflicts,
    packages,
    manifest,
  };
}

/** Reads a uv.lock: version 1 with any revision (unknown keys ignored); other versions are refused. */
export async function readUvLock(path: string): Promise<UvLock> {
  let raw: Record<string, unknown>;
  try {
    raw = await readTomlFile(path);
  } catch (error) {
    if (error instanceof UserError && error.message.endsWith(' not found')) {
      throw new UserError(`${path} not found; run \`uv lock\` to create it`);
    }
    throw error;
  }
  return parseUvLock(path, raw);
}

/** The lock's packages with a name (normalized comparison). */
export function lockPackagesNamed(lock: UvLock, name: string): LockPackage[] {
  const wanted = normalizeName(name);
  return lock.packages.filter((pkg) => normalizeName(pkg.name) === wanted);
}

/** Whether a package is a workspace member or the project (its source is local and editable/virtual/directory). */
export function isLocalProjectSource(source: LockSource): boolean {
  return source.editable !== undefined || source.virtual !== undefined || source.directory !== undefined;
}

