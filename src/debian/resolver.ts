/**
 * Resolving a set of root packages to everything they need from a PackageIndex.
 *
 * Depends and Pre-Depends are followed (Recommends and Suggests are not: an image carries what
 * is required, nothing more). For each dependency group (`a | b (>= 2)`):
 *   - it is already met when a package chosen so far satisfies one of its alternatives (by name
 *     and version, or by a Provides, versioned when the relation is versioned);
 *   - it is met, without adding anything, when one of its alternatives is excluded (the caller
 *     leaves such packages out of the image on purpose, e.g. debconf or a shell);
 *   - roots are chosen before any dependency is looked at, so they win such choices;
 *   - otherwise the alternatives are tried in order, and for each one its candidates: the real
 *     package's versions newest first, then the packages that provide it (highest Priority
 *     first, then by name, as apt prefers mawk for awk). The first
 *     candidate whose own dependencies resolve is taken; one that fails is rolled back
 *     completely before the next is tried.
 * A candidate that Conflicts with or Breaks a chosen package (or is conflicted or broken by one),
 * by name and version or through a virtual package the other provides, is not taken.
 * Architecture qualifiers (`:any`, `:native`) are ignored: an index holds one architecture (and
 * `all`). Cycles are fine: a package being resolved already counts as chosen. Essential packages
 * are not added implicitly (an image is not a Debian system; dpkg never runs in it).
 *
 * The result depends only on the index, the roots and the exclusions (roots are resolved in
 * sorted order) and is sorted by name.
 */
import { UserError } from '../errors.js';
import { formatGroup, parseRelations, type Relation, type RelationGroups } from './control.js';
import { relationSatisfiedBy, type DebianPackage, type PackageIndex } from './archive/index.js';

export interface ResolveOptions {
  /** Packages never installed; a dependency on one of them counts as met. */
  exclude?: string[];
}

/** Why a package could not be installed: the chain from a root and the unmet dependency. */
interface Failure {
  chain: string[];
  dependency: string;
  reason: string;
}

class Selection {
  constructor(
    readonly chosen = new Map<string, DebianPackage>(),
    /** Provided name -> versions provided (undefined = unversioned) by chosen packages. */
    readonly provided = new Map<string, (string | undefined)[]>(),
  ) {}

  clone(): Selection {
    const provided = new Map<string, (string | undefined)[]>();
    for (const [name, versions] of this.provided) provided.set(name, [...versions]);
    return new Selection(new Map(this.chosen), provided);
  }

  adopt(other: Selection): void {
    this.chosen.clear();
    for (const [name, pkg] of other.chosen) this.chosen.set(name, pkg);
    this.provided.clear();
    for (const [name, versions] of other.provided) this.provided.set(name, versions);
  }

  add(pkg: DebianPackage, provides: RelationGroups): void {
    this.chosen.set(pkg.name, pkg);
    for (const group of provides) {
      for (const relation of group) {
        const version = relation.relation === '=' ? relation.version : undefined;
        const list = this.provided.get(relation.name);
        if (list) list.push(version);
        else this.provided.set(relation.name, [version]);
      }
    }
  }

  satisfies(relation: Relation): boolean {
    const pkg = this.chosen.get(relation.name);
    if (pkg && relationSatisfiedBy(relation, pkg.version)) return true;
    const versions = this.provided.get(relation.name);
    return versions !== undefined && versions.some((version) => relationSatisfiedBy(relation, version));
  }
}

export function resolvePackages(index: PackageIndex, roots: string[], options: ResolveOptions = {}): DebianPackage[] {
  const excluded = new Set(options.exclude ?? []);
  const sortedRoots = [...new Set(roots)].sort();
  const selection = new Selection();

  type Field = 'depends' | 'preDepends' | 'provides' | 'conflicts' | 'breaks';
  const parsed = new Map<DebianPackage, Partial<Record<Field, RelationGroups>>>();
  const relationsOf = (pkg: DebianPackage, field: Field): RelationGroups => {
    let fields = parsed.get(pkg);
    if (!fields) parsed.set(pkg, (fields = {}));
    const known = fields[field];
    if (known) return known;
    try {
      return (fields[field] = parseRelations(pkg[field] ?? ''));
    } catch (error) {
      throw new UserError(`${pkg.name} ${pkg.version}: ${(error as Error).message}`);
    }
  };

  const candidates = (relation: Relation): DebianPackage[] => {
    const result: DebianPackage[] = [];
    for (const pkg of index.versions(relation.name)) {
      if (relationSatisfiedBy(relation, pkg.version)) result.push(pkg);
    }
    const providers = index
      .providers(relation.name)
      .filter((provider) => relationSatisfiedBy(relation, provider.version) && !result.includes(provider.pkg))
      .map((provider) => provider.pkg);
    // Like apt: of several providers, the one of highest Priority (mawk, required, for awk),
    // then by name; the index lists them by name, newest version first, and sort() is stable.
    providers.sort((a, b) => priorityRank(a) - priorityRank(b));
    return [...result, ...new Set(providers)];
  };

  /** Whether `a` conflicts with or breaks `b` (itself excepted), as a reason, or undefined. */
  const clashOneWay = (a: DebianPackage, b: DebianPackage): string | undefined => {
    if (a.name === b.name) return undefined;
    for (const field of ['conflicts', 'breaks'] as const) {
      for (const group of relationsOf(a, field)) {
        for (const relation of group) {
          if (relation.name === b.name && relationSatisfiedBy(relation, b.version)) {
            return `${a.name} ${a.version} ${field === 'breaks' ? 'breaks' : 'conflicts with'} ${b.name} ${b.version}`;
          }
          if (!relation.relation && relation.name !== b.name) {
            // An unversioned conflict with a virtual package hits every provider of it.
            const provides = relationsOf(b, 'provides');
            if (provides.some((alternatives) => alternatives.some((provided) => provided.name === relation.name))) {
              return `${a.name} ${a.version} ${field === 'breaks' ? 'breaks' : 'conflicts with'} ${relation.name}, which ${b.name} ${b.version} provides`;
            }
          }
        }
      }
    }
    return undefined;
  };

  const conflictBetween = (candidate: DebianPackage, state: Selection): string | undefined => {
    for (const chosen of state.chosen.values()) {
      const clash = clashOneWay(candidate, chosen) ?? clashOneWay(chosen, candidate);
      if (clash) return clash;
    }
    return undefined;
  };

  /** Installs `pkg` and what it needs into `state`; a Failure leaves `state` half-done (callers clone). */
  const install = (state: Selection, pkg: DebianPackage, chain: string[]): Failure | undefined => {
    state.add(pkg, relationsOf(pkg, 'provides'));
    return installDependencies(state, pkg, chain);
  };

  const installDependencies = (state: Selection, pkg: DebianPackage, chain: string[]): Failure | undefined => {
    const groups = [...relationsOf(pkg, 'preDepends'), ...relationsOf(pkg, 'depends')];
    for (const group of groups) {
      if (group.some((relation) => state.satisfies(relation))) continue;
      if (group.some((relation) => excluded.has(relation.name))) continue;
      let failure: Failure | undefined;
      let met = false;
      for (const relation of group) {
        for (const candidate of candidates(relation)) {
          if (excluded.has(candidate.name)) continue;
          const other = state.chosen.get(candidate.name);
          if (other) continue; // another version of it is already chosen and does not satisfy
          const clash = conflictBetween(candidate, state);
          if (clash) {
            failure ??= { chain: [...chain, `${candidate.name} ${candidate.version}`], dependency: formatGroup(group), reason: clash };
            continue;
          }
          const trial = state.clone();
          const result = install(trial, candidate, [...chain, `${candidate.name} ${candidate.version}`]);
          if (!result) {
            state.adopt(trial);
            met = true;
            break;
          }
          failure ??= result;
        }
        if (met) break;
      }
      if (met) continue;
      if (failure) return failure;
      return { chain, dependency: formatGroup(group), reason: explainUnmet(index, group, state) };
    }
    return undefined;
  };

  for (const root of sortedRoots) {
    if (excluded.has(root)) throw new UserError(`package ${root} is both asked for and excluded`);
    const pkg = index.get(root);
    if (!pkg) {
      const providers = index.providers(root);
      const hint = providers.length > 0 ? ` (it is a virtual package provided by ${providers.map((p) => p.pkg.name).join(', ')}; ask for one of those)` : '';
      throw new UserError(`package ${root} is not in ${index.description}${hint}`);
    }
  }
  // All roots are chosen first, so a root satisfies an alternative or a virtual package
  // another root needs (asking for mawk makes base-files' `awk` dependency mawk).
  for (const root of sortedRoots) {
    const pkg = index.get(root)!;
    const clash = conflictBetween(pkg, selection);
    if (clash) throw new UserError(`the packages asked for cannot be installed together: ${clash}`);
    selection.add(pkg, relationsOf(pkg, 'provides'));
  }
  for (const root of sortedRoots) {
    const pkg = index.get(root)!;
    const trial = selection.clone();
    const failure = installDependencies(trial, pkg, [`${pkg.name} ${pkg.version}`]);
    if (failure) {
      throw new UserError(`cannot resolve ${failure.chain.join(' -> ')}: unmet dependency ${failure.dependency} (${failure.reason})`);
    }
    selection.adopt(trial);
  }
  return [...selection.chosen.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

const priorities = ['required', 'important', 'standard', 'optional', 'extra'];

function priorityRank(pkg: DebianPackage): number {
  const rank = priorities.indexOf(pkg.priority ?? '');
  return rank < 0 ? priorities.length : rank;
}

function explainUnmet(index: PackageIndex, group: Relation[], state: Selection): string {
  const reasons = group.map((relation) => {
    const chosen = state.chosen.get(relation.name);
    if (chosen) return `${relation.name} ${chosen.version} is already chosen`;
    const versions = index.versions(relation.name).map((pkg) => pkg.version);
    const providers = index.providers(relation.name);
    if (versions.length === 0 && providers.length === 0) return `no package ${relation.name} in ${index.description}`;
    const available = [
      ...versions,
      ...providers.map((provider) => `${provider.pkg.name} provides ${provider.version ?? 'it unversioned'}`),
    ];
    return `${relation.name}: only ${available.join(', ')}`;
  });
  return reasons.join('; ');
}
