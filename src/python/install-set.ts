/**
 * The install set for one target: which locked packages a `uv sync --locked --no-editable` on that
 * target would install, and from what (a wheel chosen by tag priority, or a source to build).
 * Pure: no I/O; every decision comes from the lock, the project and the target.
 *
 * Like uv (crates/uv-resolver/src/lock/installable.rs), the lock is walked from the project along
 * its dependency edges; each edge's marker (uv wrote it simplified against the lock's
 * requires-python) is evaluated for the target, with the activated extras and groups of the
 * workspace members as uv encodes them for conflicts (`extra-<n>-<package>-<extra>`,
 * `group-<n>-<package>-<group>`). Where the lock holds several versions of a package (forks),
 * edges name the version, so following them picks the fork for the target.
 */
import { dirname, isAbsolute, resolve } from 'node:path';
import { UserError } from '../errors.js';
import {
  isLocalProjectSource,
  lockPackagesNamed,
  type LockDependency,
  type LockPackage,
  type LockRequirement,
  type LockSdist,
  type LockSource,
  type LockWheel,
  type UvLock,
} from './lock.js';
import { evaluateMarker, normalizeName, type MarkerEnvironment } from './markers.js';
import { matchesSpecifiers } from './pep440.js';
import type { PyProject } from './pyproject.js';
import { selectWheel, tagPriorities } from './select.js';
import { compatibleTags, wheelTags } from './tags.js';
import { describeTarget, markerEnvironment, type PythonTarget } from './target.js';

export interface InstallOptions {
  /** --extra: extras of the project (or, in a workspace, of the installed members). */
  extras: string[];
  /** --all-extras */
  allExtras: boolean;
  /** --group: dependency groups to add. */
  groups: string[];
  /** --only-group: only these groups; the project and its own dependencies are left out. */
  onlyGroups: string[];
  /**
   * --no-default-groups. uvimage's default groups are none: unlike `uv sync`, the dev group is
   * never installed unless asked for with --group dev (an image is for running, not developing).
   */
  noDefaultGroups: boolean;
  /** --all-groups */
  allGroups?: boolean;
  /** --all-packages: every workspace member, not only the project and what it depends on. */
  allPackages?: boolean;
  /** --package (several): these workspace members and what they depend on, instead of the project. */
  packages?: string[];
  /**
   * uv's `no-binary` / `no-binary-package`: build these from source even when a wheel fits (true:
   * every package). Default: read from the project's [tool.uv] (pass the workspace root's settings
   * when planning a member, as uv reads them from the root).
   */
  noBinary?: true | string[];
  /** uv's `no-build` / `no-build-package`: never build these; a missing wheel is an error. */
  noBuild?: true | string[];
}

/** no-binary / no-build settings from a [tool.uv] table. */
export function buildSettingsFromToolUv(toolUv: Record<string, unknown>): { noBinary?: true | string[]; noBuild?: true | string[] } {
  const list = (value: unknown) => (Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string') : []);
  const setting = (all: unknown, packages: unknown): true | string[] | undefined =>
    all === true ? true : list(packages).length ? list(packages).map(normalizeName) : undefined;
  return { noBinary: setting(toolUv['no-binary'], toolUv['no-binary-package']), noBuild: setting(toolUv['no-build'], toolUv['no-build-package']) };
}

function appliesTo(setting: true | string[] | undefined, name: string): boolean {
  return setting === true || (setting !== undefined && setting.includes(normalizeName(name)));
}

export const DEFAULT_INSTALL_OPTIONS: InstallOptions = { extras: [], allExtras: false, groups: [], onlyGroups: [], noDefaultGroups: false };

export type PlannedPackage =
  | {
      kind: 'wheel';
      name: string;
      version: string;
      /** The chosen wheel; `path` (local wheels) is absolute. */
      wheel: LockWheel;
      /** The registry the package came from (source.registry), when it is one. */
      indexUrl?: string;
      source: LockSource;
      member: false;
    }
  | {
      kind: 'build';
      name: string;
      version?: string;
      source: LockSource;
      sdist?: LockSdist;
      /** Absolute directory of a local project/member/path dependency (editable, directory or path source). */
      dir?: string;
      /** The project or a workspace member: installed non-editable, built with `uv build --wheel`. */
      member: boolean;
      /** Why it is built: a local project, a git/url/path source, no wheel for the target, or [tool.uv] no-binary. */
      reason: 'local' | 'source' | 'no-compatible-wheel' | 'no-binary';
    };

export interface InstallPlan {
  target: PythonTarget;
  /** Sorted by normalized name, then version. */
  packages: PlannedPackage[];
  project: { name: string; virtual: boolean };
  /** The extras and groups that were activated (normalized). */
  extras: string[];
  groups: string[];
}

/** uv's conflict-marker encoding of an activated extra or group of a package. */
export function conflictItemName(kind: 'extra' | 'group', pkg: string, name: string): string {
  const normalized = normalizeName(pkg);
  return `${kind}-${normalized.length}-${normalized}-${normalizeName(name)}`;
}

interface Walk {
  /** Package identity (index in lock.packages) -> package. */
  packages: Map<number, LockPackage>;
  /** Conflict items activated along the way. */
  activations: Set<string>;
}

function packageIndex(lock: UvLock): Map<LockPackage, number> {
  return new Map(lock.packages.map((pkg, index) => [pkg, index]));
}

function sameSource(a: LockSource, b: LockSource): boolean {
  const keys = ['registry', 'url', 'path', 'directory', 'editable', 'virtual', 'git'] as const;
  return keys.every((key) => a[key] === b[key]);
}

/** The locked package an edge points at: by name, narrowed by version and source when the edge names them. */
function resolveEdge(lock: UvLock, dependency: LockDependency, environment: MarkerEnvironment, from: LockPackage): LockPackage {
  let candidates = lockPackagesNamed(lock, dependency.name);
  if (dependency.version !== undefined) candidates = candidates.filter((pkg) => pkg.version === dependency.version);
  if (dependency.source) candidates = candidates.filter((pkg) => sameSource(pkg.source, dependency.source!));
  if (candidates.length > 1) {
    // Not disambiguated by the edge: the fork whose resolution markers match the target.
    const matching = candidates.filter((pkg) => !pkg.resolutionMarkers || pkg.resolutionMarkers.some((marker) => evaluateMarker(marker, environment)));
    if (matching.length >= 1) candidates = matching;
  }
  const found = candidates[0];
  if (!found) {
    throw new UserError(
      `${lock.path}: ${from.name} depends on ${dependency.name}${dependency.version ? ` ${dependency.version}` : ''}, which the lock does not contain; run \`uv lock\``,
    );
  }
  return found;
}

function edgeActive(dependency: LockDependency, environment: MarkerEnvironment, activations: ReadonlySet<string>): boolean {
  return evaluateMarker(dependency.marker, environment, activations);
}

/** A Python version must satisfy the lock's requires-python: the lock's markers were simplified under it. */
export function checkLockAllowsPython(lock: UvLock, version: string): void {
  if (!lock.requiresPython) return;
  let ok: boolean;
  try {
    ok = matchesSpecifiers(version, lock.requiresPython);
  } catch {
    throw new UserError(`${lock.path}: requires-python ${JSON.stringify(lock.requiresPython)} is not a valid specifier`);
  }
  if (!ok) {
    throw new UserError(`the project requires Python ${lock.requiresPython} (uv.lock) but the target Python is ${version}; choose a matching --python`);
  }
}

function checkRequiresPython(lock: UvLock, target: PythonTarget, environment: MarkerEnvironment): void {
  checkLockAllowsPython(lock, environment.python_full_version);
  if (lock.supportedMarkers?.length && !lock.supportedMarkers.some((marker) => evaluateMarker(marker, environment))) {
    throw new UserError(
      `uv.lock was resolved only for the environments ${lock.supportedMarkers.map((m) => JSON.stringify(m)).join(', ')} ([tool.uv] environments), which do not include ${describeTarget(target)}`,
    );
  }
}

/** What an install starts from, whatever the target: the workspace packages it roots at, and the extras and groups asked for, checked. */
interface InstallRoots {
  rootPackage: LockPackage | undefined;
  roots: LockPackage[];
  isMember: (pkg: LockPackage) => boolean;
  extras: string[];
  groups: string[];
}

/**
 * The roots of an install and its extras and groups, each checked against what the project and the
 * lock declare. Independent of the target, so a wrong name fails before anything is downloaded.
 */
export function checkInstallOptions(project: PyProject, lock: UvLock, options: InstallOptions = DEFAULT_INSTALL_OPTIONS): InstallRoots {

  // The workspace's own packages: the lock's manifest members (or just the project).
  const memberNames = new Set((lock.manifest.members.length ? lock.manifest.members : project.name ? [project.name] : []).map(normalizeName));
  const isMember = (pkg: LockPackage) => memberNames.has(normalizeName(pkg.name)) && isLocalProjectSource(pkg.source);
  const members = lock.packages.filter(isMember);

  const rootPackage = project.hasProjectTable
    ? members.find((pkg) => normalizeName(pkg.name) === normalizeName(project.name))
    : undefined;
  if (project.hasProjectTable && !rootPackage) {
    throw new UserError(`${lock.path} has no package for the project ${project.name}; run \`uv lock\``);
  }
  // Roots: the project; the members --package names; with --all-packages or a virtual workspace root (no [project]), every member.
  const named = new Set((options.packages ?? []).map(normalizeName));
  const roots = named.size > 0 ? members.filter((pkg) => named.has(normalizeName(pkg.name))) : rootPackage && !options.allPackages ? [rootPackage] : members;

  // Extras: validated against what the roots provide.
  const providedExtras = new Set<string>();
  for (const root of roots) {
    for (const extra of Object.keys(root.optionalDependencies)) providedExtras.add(normalizeName(extra));
    for (const extra of root.metadata?.providesExtras ?? []) providedExtras.add(normalizeName(extra));
  }
  if (rootPackage && !options.allPackages) for (const extra of Object.keys(project.optionalDependencies)) providedExtras.add(normalizeName(extra));
  const extras = options.allExtras ? [...providedExtras].sort() : [...new Set(options.extras.map(normalizeName))];
  for (const extra of extras) {
    if (!providedExtras.has(extra)) {
      const known = [...providedExtras].sort();
      throw new UserError(`the project has no extra ${JSON.stringify(extra)}${known.length ? ` (it has: ${known.join(', ')})` : ' (it has none)'}`);
    }
  }

  // Groups: declared by the roots (in the lock) or, for a virtual workspace root, by the manifest.
  const providedGroups = new Set<string>();
  for (const root of roots) for (const group of Object.keys(root.devDependencies)) providedGroups.add(normalizeName(group));
  for (const group of Object.keys(metadataGroups(roots))) providedGroups.add(group);
  if (!project.hasProjectTable) for (const group of Object.keys(lock.manifest.dependencyGroups ?? {})) providedGroups.add(normalizeName(group));
  for (const group of Object.keys(project.dependencyGroups)) providedGroups.add(normalizeName(group));
  const requestedGroups = options.onlyGroups.length ? options.onlyGroups : [...options.groups];
  let groups = options.allGroups ? [...providedGroups].sort() : [...new Set(requestedGroups.map(normalizeName))];
  for (const group of groups) {
    if (!providedGroups.has(group)) {
      const known = [...providedGroups].sort();
      throw new UserError(`the project has no dependency group ${JSON.stringify(group)}${known.length ? ` (it has: ${known.join(', ')})` : ' (it has none)'}`);
    }
  }
  return { rootPackage, roots, isMember, extras, groups: groups.sort() };
}

/** Plans the virtualenv of `project` for `target`, from `lock`. */
export function planInstall(project: PyProject, lock: UvLock, target: PythonTarget, options: InstallOptions = DEFAULT_INSTALL_OPTIONS): InstallPlan {
  const environment = markerEnvironment(target);
  checkRequiresPython(lock, target, environment);
  const lockDir = dirname(lock.path);
  const indexOf = packageIndex(lock);
  const { rootPackage, roots, isMember, extras, groups } = checkInstallOptions(project, lock, options);
  const onlyGroups = options.onlyGroups.length > 0;

  // Activated conflict items start with the roots' extras and groups; following edges into
  // members with extras adds more, so walk until the set stops growing.
  const activations = new Set<string>();
  for (const root of roots) {
    if (!onlyGroups) for (const extra of extras) activations.add(conflictItemName('extra', root.name, extra));
    for (const group of groups) activations.add(conflictItemName('group', root.name, group));
  }
  // A workspace root that is not a project keeps its own requirements and groups in the manifest.
  const rootEdges: LockDependency[] = [];
  if (!project.hasProjectTable) {
    const asEdge = (requirement: LockRequirement): LockDependency => ({ name: requirement.name, marker: requirement.marker, extra: requirement.extras });
    if (!onlyGroups) rootEdges.push(...(lock.manifest.requirements ?? []).map(asEdge));
    for (const [group, requirements] of Object.entries(lock.manifest.dependencyGroups ?? {})) {
      if (groups.includes(normalizeName(group))) rootEdges.push(...requirements.map(asEdge));
    }
  }
  let walk: Walk;
  for (;;) {
    checkConflicts(lock, activations);
    walk = walkLock(lock, roots, { extras: onlyGroups ? [] : extras, groups, includeRoots: !onlyGroups, rootEdges }, environment, activations, isMember);
    const before = activations.size;
    for (const item of walk.activations) activations.add(item);
    if (activations.size === before) break;
  }

  const fromProject = buildSettingsFromToolUv(project.toolUv);
  const settings = { noBinary: options.noBinary ?? fromProject.noBinary, noBuild: options.noBuild ?? fromProject.noBuild };
  const tags = compatibleTags(target);
  const priorities = tagPriorities(tags);
  const planned: PlannedPackage[] = [];
  for (const pkg of [...walk.packages.values()].sort((a, b) => (indexOf.get(a) ?? 0) - (indexOf.get(b) ?? 0))) {
    const item = planPackage(pkg, isMember(pkg), lockDir, priorities, target, settings);
    if (item) planned.push(item);
  }
  planned.sort((a, b) => compareNames(a.name, b.name) || compareVersionText(a.version, b.version));
  const virtual = !rootPackage || rootPackage.source.virtual !== undefined;
  return { target, packages: planned, project: { name: rootPackage?.name ?? project.name, virtual }, extras: onlyGroups ? [] : extras, groups };
}

/** uv refuses to install two items of one declared conflict set together ([tool.uv] conflicts). */
function checkConflicts(lock: UvLock, activations: ReadonlySet<string>): void {
  for (const set of lock.conflicts) {
    const active = set.filter((item) => {
      const kind = item.extra !== undefined ? 'extra' : 'group';
      const name = item.extra ?? item.group;
      return name !== undefined && activations.has(conflictItemName(kind, item.package, name));
    });
    if (active.length > 1) {
      const names = active.map((item) => (item.extra !== undefined ? `extra ${item.extra}` : `group ${item.group}`) + ` of ${item.package}`);
      throw new UserError(`${names.join(' and ')} cannot be installed together: they are declared as conflicting in [tool.uv] conflicts`);
    }
  }
}

function metadataGroups(roots: LockPackage[]): Record<string, true> {
  const result: Record<string, true> = {};
  for (const root of roots) for (const group of Object.keys(root.metadata?.requiresDev ?? {})) result[normalizeName(group)] = true;
  return result;
}

function compareNames(a: string, b: string): number {
  const x = normalizeName(a);
  const y = normalizeName(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

function compareVersionText(a: string | undefined, b: string | undefined): number {
  if (a === b) return 0;
  if (a === undefined) return -1;
  if (b === undefined) return 1;
  return a < b ? -1 : 1;
}

function walkLock(
  lock: UvLock,
  roots: LockPackage[],
  selection: { extras: string[]; groups: string[]; includeRoots: boolean; rootEdges: LockDependency[] },
  environment: MarkerEnvironment,
  activations: ReadonlySet<string>,
  isMember: (pkg: LockPackage) => boolean,
): Walk {
  const indexOf = packageIndex(lock);
  const packages = new Map<number, LockPackage>();
  const newActivations = new Set<string>();
  const seen = new Set<string>();
  const queue: { pkg: LockPackage; extra?: string }[] = [];

  const follow = (from: LockPackage, dependency: LockDependency) => {
    if (!edgeActive(dependency, environment, activations)) return;
    const to = resolveEdge(lock, dependency, environment, from);
    queue.push({ pkg: to });
    for (const extra of dependency.extra ?? []) {
      queue.push({ pkg: to, extra: normalizeName(extra) });
      if (isMember(to)) newActivations.add(conflictItemName('extra', to.name, extra));
    }
  };

  const workspaceRoot: LockPackage = { name: '(workspace root)', source: {}, dependencies: [], optionalDependencies: {}, devDependencies: {}, wheels: [] };
  for (const dependency of selection.rootEdges) follow(workspaceRoot, dependency);
  for (const root of roots) {
    if (selection.includeRoots) {
      queue.push({ pkg: root });
      for (const extra of selection.extras) queue.push({ pkg: root, extra });
    }
    for (const group of selection.groups) {
      const entry = Object.entries(root.devDependencies).find(([name]) => normalizeName(name) === group);
      for (const dependency of entry?.[1] ?? []) follow(root, dependency);
    }
  }
  while (queue.length) {
    const { pkg, extra } = queue.shift()!;
    const id = indexOf.get(pkg)!;
    const key = `${id}\u0000${extra ?? ''}`;
    if (seen.has(key)) continue;
    seen.add(key);
    packages.set(id, pkg);
    if (extra === undefined) {
      for (const dependency of pkg.dependencies) follow(pkg, dependency);
    } else {
      const entry = Object.entries(pkg.optionalDependencies).find(([name]) => normalizeName(name) === extra);
      for (const dependency of entry?.[1] ?? []) follow(pkg, dependency);
    }
  }
  return { packages, activations: newActivations };
}

function absolutize(lockDir: string, location: string | undefined): string | undefined {
  if (location === undefined) return undefined;
  return isAbsolute(location) ? location : resolve(lockDir, location);
}

function isRemote(location: string | undefined): boolean {
  return location !== undefined && /^[a-z][a-z0-9+.-]*:\/\//i.test(location);
}

/** Wheel tags present in a package's wheels, for error messages (platform-specific ones first, trimmed). */
function describeAvailableTags(wheels: LockWheel[]): string {
  const tags = [...new Set(wheels.flatMap((wheel) => wheelTags(wheel.filename)))];
  if (tags.length === 0) return 'no wheels at all';
  const shown = tags.slice(0, 12).join(', ');
  return tags.length > 12 ? `${shown} and ${tags.length - 12} more` : shown;
}

function planPackage(
  pkg: LockPackage,
  member: boolean,
  lockDir: string,
  priorities: Map<string, number>,
  target: PythonTarget,
  settings: { noBinary?: true | string[]; noBuild?: true | string[] },
): PlannedPackage | undefined {
  const source = pkg.source;
  if (isLocalProjectSource(source)) {
    // A virtual project/member contributes only its dependencies.
    if (source.virtual !== undefined) return undefined;
    return {
      kind: 'build',
      name: pkg.name,
      version: pkg.version,
      source,
      dir: absolutize(lockDir, source.editable ?? source.directory),
      member,
      reason: 'local',
    };
  }
  const noBinary = appliesTo(settings.noBinary, pkg.name);
  const noBuild = appliesTo(settings.noBuild, pkg.name);
  const wheel = noBinary ? undefined : selectWheel(pkg.wheels, priorities);
  if (wheel) {
    const chosen: LockWheel = { ...wheel };
    if (chosen.path !== undefined && !isRemote(chosen.path)) {
      // Wheels of a local registry are relative to it; a path source's wheel is the source itself.
      const base = source.registry && !isRemote(source.registry) ? absolutize(lockDir, source.registry)! : lockDir;
      chosen.path = isAbsolute(chosen.path) ? chosen.path : resolve(base, chosen.path);
    }
    return {
      kind: 'wheel',
      name: pkg.name,
      version: pkg.version ?? '',
      wheel: chosen,
      indexUrl: source.registry,
      source,
      member: false,
    };
  }
  const buildable = pkg.sdist !== undefined || source.git !== undefined || source.path !== undefined || source.url !== undefined;
  if (noBinary && noBuild) {
    throw new UserError(`${pkg.name} is both no-binary and no-build in [tool.uv]; it cannot be installed`);
  }
  if (buildable && !noBuild && !(source.path !== undefined && source.path.endsWith('.whl')) && !(source.url !== undefined && lastPathEndsWithWheel(source.url))) {
    return {
      kind: 'build',
      name: pkg.name,
      version: pkg.version,
      source: source.path !== undefined ? { ...source, path: absolutize(lockDir, source.path) } : source,
      sdist: pkg.sdist,
      dir: source.path !== undefined ? absolutize(lockDir, source.path) : undefined,
      member: false,
      reason: noBinary ? 'no-binary' : pkg.wheels.length || source.registry ? 'no-compatible-wheel' : 'source',
    };
  }
  const why = buildable ? `building it is disabled by no-build in [tool.uv]` : 'no source distribution to build';
  throw new UserError(
    `${pkg.name}${pkg.version ? ` ${pkg.version}` : ''} has no wheel for ${describeTarget(target)} and ${why}; the lock has wheels for: ${describeAvailableTags(pkg.wheels)}`,
  );
}

function lastPathEndsWithWheel(url: string): boolean {
  return url.split(/[?#]/)[0]!.endsWith('.whl');
}
