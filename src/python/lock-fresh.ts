/**
 * The check `uv sync --locked` makes before installing: does uv.lock still describe
 * pyproject.toml? uv compares the workspace's requirements, as it lowers them, with what it
 * recorded in the lock ([package.metadata] requires-dist / requires-dev, provides-extras,
 * [manifest] members, requires-python). uv writes markers there simplified (python_version
 * becomes python_full_version, parts implied by requires-python dropped), so markers are compared
 * by meaning: both must agree on every environment built from the values they mention.
 */
import { UserError } from '../errors.js';
import { isLocalProjectSource, lockPackagesNamed, type LockPackage, type LockRequirement, type UvLock } from './lock.js';
import { evaluateMarker, markerLiterals, normalizeName, parseMarker, type MarkerEnvironment, type MarkerExpression, type MarkerVariable } from './markers.js';
import { formatSpecifiers, formatVersion, matchesSpecifiers, parseSpecifiers, tryParseVersion, type Specifier } from './pep440.js';
import type { DependencyGroupEntry, PyProject } from './pyproject.js';
import { parseRequirement } from './requirement.js';

interface ComparableRequirement {
  /** Name, extras, specifier (unless the requirement has a non-index source) and whether it has one. */
  key: string;
  marker?: string;
  /** For messages. */
  display: string;
}

const SOURCE_KEYS = ['editable', 'path', 'git', 'url', 'directory', 'virtual', 'workspace'];

function canonicalSpecifiers(specifiers: Specifier[]): string {
  return formatSpecifiers(specifiers).split(', ').filter(Boolean).sort().join(',');
}

function keyOf(name: string, extras: string[], specifier: string, sourced: boolean): string {
  const extraPart = extras.length ? `[${[...new Set(extras.map(normalizeName))].sort().join(',')}]` : '';
  return `${normalizeName(name)}${extraPart}${sourced ? ' (source)' : specifier ? ` ${specifier}` : ''}`;
}

function andMarkers(a: string | undefined, b: string | undefined): string | undefined {
  if (!a) return b;
  if (!b) return a;
  return `(${a}) and (${b})`;
}

/** Whether [tool.uv.sources] gives the package a non-index source (workspace, path, git, url). */
function hasSource(sources: Record<string, unknown>, name: string): boolean {
  const entry = Object.entries(sources).find(([key]) => normalizeName(key) === normalizeName(name))?.[1];
  if (entry === undefined) return false;
  const entries = Array.isArray(entry) ? entry : [entry];
  return entries.some((item) => typeof item === 'object' && item !== null && SOURCE_KEYS.some((key) => key in item));
}

function fromPyProject(text: string, sources: Record<string, unknown>, extraMarker?: string): ComparableRequirement {
  const requirement = parseRequirement(text);
  const sourced = requirement.url !== undefined || hasSource(sources, requirement.name);
  return {
    key: keyOf(requirement.name, requirement.extras, canonicalSpecifiers(requirement.specifiers), sourced),
    marker: andMarkers(requirement.marker, extraMarker),
    display: text.trim(),
  };
}

function fromLock(requirement: LockRequirement): ComparableRequirement {
  const sourced = SOURCE_KEYS.some((key) => key in requirement.other);
  let specifier = '';
  try {
    specifier = requirement.specifier ? canonicalSpecifiers(parseSpecifiers(requirement.specifier)) : '';
  } catch {
    specifier = requirement.specifier ?? '';
  }
  const extras = requirement.extras ?? [];
  return {
    key: keyOf(requirement.name, extras, specifier, sourced),
    marker: requirement.marker,
    display: `${requirement.name}${extras.length ? `[${extras.join(',')}]` : ''}${requirement.specifier ?? ''}${requirement.marker ? `; ${requirement.marker}` : ''}`,
  };
}

const BASE_ENVIRONMENT: MarkerEnvironment = {
  implementation_name: 'cpython',
  implementation_version: '3.12.0',
  os_name: 'posix',
  platform_machine: 'x86_64',
  platform_python_implementation: 'CPython',
  platform_release: '',
  platform_system: 'Linux',
  platform_version: '',
  python_full_version: '3.12.0',
  python_version: '3.12',
  sys_platform: 'linux',
};

const PYTHON_VARIABLES = new Set<MarkerVariable>(['python_version', 'python_full_version', 'implementation_version']);

/** Python versions to probe: every minor of 2.7-3.20 at .0/.1/.99, and each literal a marker mentions, nudged either side. */
function pythonCandidates(literals: Iterable<string>, requiresPython: string | undefined): string[] {
  const candidates = new Set<string>(['2.7.0', '2.7.18']);
  for (let minor = 0; minor <= 20; minor++) for (const micro of [0, 1, 99]) candidates.add(`3.${minor}.${micro}`);
  for (const literal of literals) {
    for (const item of literal.split(/[\s,]+/)) {
      const version = tryParseVersion(item.replace(/\.\*$/, ''));
      if (!version) continue;
      const release = [...version.release, 0, 0].slice(0, 3) as [number, number, number];
      candidates.add(release.join('.'));
      candidates.add([release[0], release[1], release[2] + 1].join('.'));
      if (release[2] > 0) candidates.add([release[0], release[1], release[2] - 1].join('.'));
      if (release[1] > 0) candidates.add([release[0], release[1] - 1, 99].join('.'));
      candidates.add([release[0], release[1] + 1, 0].join('.'));
    }
  }
  let list = [...candidates];
  if (requiresPython) {
    try {
      const specifiers = parseSpecifiers(requiresPython);
      list = list.filter((version) => matchesSpecifiers(version, specifiers));
    } catch {
      // An invalid requires-python is reported elsewhere.
    }
  }
  return list;
}

/** Environments on which two sets of markers must agree. undefined when there would be too many. */
function probeEnvironments(markers: MarkerExpression[], requiresPython: string | undefined): { environment: MarkerEnvironment; extras: string[] }[] | undefined {
  const literals = new Map<MarkerVariable, Set<string>>();
  for (const marker of markers) markerLiterals(marker, literals);
  const pythonLiterals: string[] = [];
  const axes: { variable: MarkerVariable; values: string[] }[] = [];
  for (const [variable, values] of literals) {
    if (PYTHON_VARIABLES.has(variable)) pythonLiterals.push(...values);
    else axes.push({ variable, values: [...values, '\u0000other'] });
  }
  const pythons = pythonCandidates(pythonLiterals, requiresPython);
  let environments: { environment: MarkerEnvironment; extras: string[] }[] = pythons.map((full) => {
    const [major, minor] = full.split('.');
    return { environment: { ...BASE_ENVIRONMENT, python_full_version: full, python_version: `${major}.${minor}`, implementation_version: full }, extras: [] };
  });
  for (const axis of axes) {
    const next: typeof environments = [];
    for (const item of environments) {
      for (const value of axis.values) {
        if (axis.variable === 'extra') next.push({ environment: item.environment, extras: value === '\u0000other' ? [] : [...item.extras, value] });
        else next.push({ environment: { ...item.environment, [axis.variable]: value }, extras: item.extras });
      }
    }
    environments = next;
    if (environments.length > 50_000) return undefined;
  }
  return environments;
}

/** Whether two lists of markers (each list OR-ed; undefined = always) mean the same under requires-python. */
function sameMeaning(left: (string | undefined)[], right: (string | undefined)[], requiresPython: string | undefined): boolean {
  const parse = (marker: string | undefined): MarkerExpression | undefined => (marker === undefined || marker.trim() === '' ? undefined : parseMarker(marker));
  let leftParsed: (MarkerExpression | undefined)[];
  let rightParsed: (MarkerExpression | undefined)[];
  try {
    leftParsed = left.map(parse);
    rightParsed = right.map(parse);
  } catch {
    return [...left].sort().join('|') === [...right].sort().join('|');
  }
  const all = [...leftParsed, ...rightParsed].filter((marker): marker is MarkerExpression => marker !== undefined);
  const environments = probeEnvironments(all, requiresPython);
  if (!environments) return [...left].sort().join('|') === [...right].sort().join('|');
  const holds = (list: (MarkerExpression | undefined)[], environment: MarkerEnvironment, extras: string[]) =>
    list.some((marker) => marker === undefined || evaluateMarker(marker, environment, extras));
  return environments.every(({ environment, extras }) => holds(leftParsed, environment, extras) === holds(rightParsed, environment, extras));
}

/** Whether a marker can hold at all under requires-python (requirements that never apply are ignored on both sides). */
function canApply(marker: string | undefined, requiresPython: string | undefined): boolean {
  return !sameMeaning([marker], [], requiresPython) || marker === undefined;
}

/** The differences between two requirement lists, as short phrases. */
function compareRequirements(where: string, expected: ComparableRequirement[], locked: ComparableRequirement[], requiresPython: string | undefined): string[] {
  const group = (list: ComparableRequirement[]) => {
    const map = new Map<string, ComparableRequirement[]>();
    for (const item of list) {
      if (!canApply(item.marker, requiresPython)) continue;
      map.set(item.key, [...(map.get(item.key) ?? []), item]);
    }
    return map;
  };
  const wanted = group(expected);
  const have = group(locked);
  const differences: string[] = [];
  const nameOf = (key: string) => /^[^[ ]+/.exec(key)![0];
  const onlyLocked = new Map([...have].filter(([key]) => !wanted.has(key)));
  for (const [key, items] of wanted) {
    const lockedItems = have.get(key);
    if (!lockedItems) {
      // The same package, required differently (specifier, extras, source): one phrase for both sides.
      const changed = [...onlyLocked].find(([other]) => nameOf(other) === nameOf(key));
      if (changed) {
        onlyLocked.delete(changed[0]);
        differences.push(`${where}: ${items[0]!.display} in pyproject.toml, ${changed[1][0]!.display} in uv.lock`);
      } else {
        differences.push(`${where}: ${items[0]!.display} is not in the lock`);
      }
    } else if (!sameMeaning(items.map((i) => i.marker), lockedItems.map((i) => i.marker), requiresPython)) {
      differences.push(`${where}: ${items[0]!.display} has a different marker in the lock (${lockedItems.map((i) => i.marker ?? 'none').join(' | ')})`);
    }
  }
  for (const items of onlyLocked.values()) differences.push(`${where}: the lock has ${items[0]!.display}, pyproject.toml does not`);
  return differences;
}

/** A dependency group with include-group expanded (uv records the flattened list). */
export function expandDependencyGroup(groups: Record<string, DependencyGroupEntry[]>, name: string, file = 'pyproject.toml', seen: string[] = []): string[] {
  const entry = Object.entries(groups).find(([key]) => normalizeName(key) === normalizeName(name));
  if (!entry) throw new UserError(`${file}: dependency group ${JSON.stringify(name)} is included but not defined`);
  if (seen.includes(normalizeName(name))) throw new UserError(`${file}: dependency group ${JSON.stringify(name)} includes itself (${[...seen, normalizeName(name)].join(' -> ')})`);
  const result: string[] = [];
  for (const item of entry[1]) {
    if (typeof item === 'string') result.push(item);
    else result.push(...expandDependencyGroup(groups, item['include-group'], file, [...seen, normalizeName(name)]));
  }
  return result;
}

function specifierMeaning(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  try {
    const specifiers = parseSpecifiers(text);
    // The truth table over Python versions: requires-python written differently but equal compares equal.
    return pythonCandidates(specifiers.map((s) => s.version), undefined)
      .map((version) => (matchesSpecifiers(version, specifiers) ? '1' : '0'))
      .join('');
  } catch {
    return text;
  }
}

function memberPackage(lock: UvLock, name: string): LockPackage | undefined {
  return lockPackagesNamed(lock, name).find((pkg) => isLocalProjectSource(pkg.source));
}

function describeMembers(names: Iterable<string>): string {
  return [...names].sort().join(', ') || '(none)';
}

/** Every member's [tool.uv] conflicts as canonical strings (items without a package belong to the declaring member). */
function conflictSets(root: PyProject, everyone: PyProject[]): string[] {
  const sets: string[] = [];
  const sources = everyone.includes(root) ? everyone : [root, ...everyone];
  for (const member of sources) {
    const declared = member.toolUv.conflicts;
    if (!Array.isArray(declared)) continue;
    for (const set of declared) {
      if (!Array.isArray(set)) continue;
      const items = set
        .filter((item): item is Record<string, unknown> => typeof item === 'object' && item !== null)
        .map((item) => {
          const pkg = normalizeName(typeof item.package === 'string' ? item.package : member.name);
          return `${pkg}:${typeof item.extra === 'string' ? `extra=${normalizeName(item.extra)}` : `group=${normalizeName(String(item.group ?? ''))}`}`;
        });
      sets.push(items.sort().join('|'));
    }
  }
  return sets.sort();
}

/**
 * Throws a UserError when uv.lock no longer matches pyproject.toml, as `uv sync --locked` would.
 * `members` are the workspace members other than the root (readWorkspaceMembers).
 */
export function checkLockFresh(project: PyProject, lock: UvLock, members: PyProject[] = []): void {
  const differences: string[] = [];
  const everyone = [...(project.hasProjectTable ? [project] : []), ...members];

  // requires-python: the lock's is the intersection of the members'.
  const declared = everyone.map((member) => member.requiresPython).filter((value): value is string => value !== undefined);
  if (declared.length) {
    const intersection = declared.join(', ');
    if (specifierMeaning(intersection) !== specifierMeaning(lock.requiresPython)) {
      differences.push(`requires-python is ${declared.join(' and ')} in pyproject.toml but ${lock.requiresPython ?? 'unset'} in uv.lock`);
    }
  }

  // The set of workspace members.
  const expectedMembers = new Set(everyone.map((member) => normalizeName(member.name)));
  const lockedMembers = new Set(
    lock.manifest.members.length
      ? lock.manifest.members.map(normalizeName)
      : project.hasProjectTable && memberPackage(lock, project.name)
        ? [normalizeName(project.name)]
        : [],
  );
  if (lock.manifest.members.length || expectedMembers.size > 1) {
    if ([...expectedMembers].sort().join(',') !== [...lockedMembers].sort().join(',')) {
      differences.push(`workspace members are ${describeMembers(expectedMembers)} but the lock has ${describeMembers(lockedMembers)}`);
    }
  }

  const rootSources = typeof project.toolUv.sources === 'object' && project.toolUv.sources !== null ? (project.toolUv.sources as Record<string, unknown>) : {};
  for (const member of everyone) {
    const pkg = memberPackage(lock, member.name);
    if (!pkg) {
      differences.push(`${member.name} is not in the lock`);
      continue;
    }
    const ownSources = typeof member.toolUv.sources === 'object' && member.toolUv.sources !== null ? (member.toolUv.sources as Record<string, unknown>) : {};
    const sources = { ...rootSources, ...ownSources };
    if (member.version !== undefined && pkg.version !== undefined) {
      const a = tryParseVersion(member.version);
      const b = tryParseVersion(pkg.version);
      if (a && b ? formatVersion(a) !== formatVersion(b) : member.version !== pkg.version) {
        differences.push(`${member.name} is version ${member.version} in pyproject.toml but ${pkg.version} in the lock`);
      }
    }
    const metadata = pkg.metadata ?? {};
    const expected: ComparableRequirement[] = member.dependencies.map((text) => fromPyProject(text, sources));
    for (const [extra, list] of Object.entries(member.optionalDependencies)) {
      for (const text of list) expected.push(fromPyProject(text, sources, `extra == '${normalizeName(extra)}'`));
    }
    differences.push(...compareRequirements(`${member.name}`, expected, (metadata.requiresDist ?? []).map(fromLock), lock.requiresPython));

    if (metadata.providesExtras || Object.keys(member.optionalDependencies).length) {
      const want = Object.keys(member.optionalDependencies).map(normalizeName).sort().join(', ');
      const have = (metadata.providesExtras ?? Object.keys(pkg.optionalDependencies)).map(normalizeName).sort().join(', ');
      if (want !== have) differences.push(`${member.name}: extras are ${want || '(none)'} but the lock has ${have || '(none)'}`);
    }

    const groupNames = new Set([...Object.keys(member.dependencyGroups), ...Object.keys(metadata.requiresDev ?? {})].map(normalizeName));
    for (const group of groupNames) {
      const declaredGroup = Object.keys(member.dependencyGroups).find((key) => normalizeName(key) === group);
      const lockedGroup = Object.entries(metadata.requiresDev ?? {}).find(([key]) => normalizeName(key) === group)?.[1];
      if (declaredGroup === undefined) {
        differences.push(`${member.name}: the lock has dependency group ${group}, pyproject.toml does not`);
        continue;
      }
      if (lockedGroup === undefined) {
        differences.push(`${member.name}: dependency group ${group} is not in the lock`);
        continue;
      }
      const wanted = expandDependencyGroup(member.dependencyGroups, declaredGroup, `${member.dir}/pyproject.toml`).map((text) => fromPyProject(text, sources));
      differences.push(...compareRequirements(`${member.name} group ${group}`, wanted, lockedGroup.map(fromLock), lock.requiresPython));
    }
  }

  // [tool.uv] constraint-dependencies and override-dependencies are recorded in the manifest.
  for (const [key, locked] of [
    ['constraint-dependencies', lock.manifest.constraints],
    ['override-dependencies', lock.manifest.overrides],
  ] as const) {
    const declaredList = Array.isArray(project.toolUv[key]) ? (project.toolUv[key] as unknown[]).filter((item): item is string => typeof item === 'string') : [];
    differences.push(...compareRequirements(`tool.uv.${key}`, declaredList.map((text) => fromPyProject(text, {})), (locked ?? []).map(fromLock), lock.requiresPython));
  }

  // [tool.uv] conflicts, as the lock's top-level conflicts.
  const declaredConflicts = conflictSets(project, everyone);
  const lockedConflicts = lock.conflicts.map((set) => set.map((item) => `${normalizeName(item.package)}:${item.extra !== undefined ? `extra=${normalizeName(item.extra)}` : `group=${normalizeName(item.group ?? '')}`}`).sort().join('|')).sort();
  if (declaredConflicts.join(' ; ') !== lockedConflicts.join(' ; ')) {
    differences.push(`[tool.uv] conflicts differ from the lock's`);
  }

  // A workspace root without [project] keeps its dependency groups in the manifest.
  if (!project.hasProjectTable) {
    const lockedGroups = lock.manifest.dependencyGroups ?? {};
    const groupNames = new Set([...Object.keys(project.dependencyGroups), ...Object.keys(lockedGroups)].map(normalizeName));
    for (const group of groupNames) {
      const declaredGroup = Object.keys(project.dependencyGroups).find((key) => normalizeName(key) === group);
      const lockedGroup = Object.entries(lockedGroups).find(([key]) => normalizeName(key) === group)?.[1];
      const wanted = declaredGroup ? expandDependencyGroup(project.dependencyGroups, declaredGroup).map((text) => fromPyProject(text, rootSources)) : [];
      differences.push(...compareRequirements(`workspace group ${group}`, wanted, (lockedGroup ?? []).map(fromLock), lock.requiresPython));
    }
  }

  if (differences.length) {
    const shown = differences.slice(0, 3).join('; ');
    const more = differences.length > 3 ? `; and ${differences.length - 3} more` : '';
    throw new UserError(`uv.lock is out of date with pyproject.toml (${shown}${more}); run \`uv lock\`, or pass --frozen`);
  }
}
