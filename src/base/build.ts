/**
 * `uvimage base`: a distroless base (or Debian's CPython on cc) for one or more architectures,
 * from the Debian archive: verified index → the flavour's packages → verified .debs in the store
 * → layers → image (or index). Everything after the downloads is deterministic: the same
 * packages and SOURCE_DATE_EPOCH give the same digests.
 */
import { UserError } from '../errors.js';
import { stages, type Progress, type Stage } from '../progress.js';
import type { Digest } from '../oci/digest.js';
import { Annotation, assembleIndex, buildTimestamp, type Artifact, type ConfigChanges, type Image, type MediaTypeFlavour } from '../oci/image.js';
import type { BlobStore } from '../oci/store.js';
import { openPycCompiler, type HostPycCompiler } from '../python/bytecode.js';
import { assembleDebianImage, baseConfigChanges, planBaseLayers, writeBaseLayers, type BaseLayerPlan, type DebInput, type Layering, type PackagesLayer, type WrittenPackagesLayer } from './image.js';
import type { Architecture } from '../facts/architectures.js';
import { debianSuites, type DebianSuite } from '../facts/debian-suites.js';
import { flavourPackages, imageFlavourNames, type FlavourName } from './flavours.js';
import { debianSourceFrom, fetchDebs, loadPackageIndex, packageIndexIdentity, type DebianPackage, type DebianSource, type PackageIndex } from '../debian/archive/index.js';
import { createDebianLock, packagesFromLock, readDebianLock, writeDebianLock, type DebianLock } from '../debian/lock.js';
import { resolvePackages } from '../debian/resolver.js';
import type { MinimalBaseSelection } from './minimal.js';
import { pythonPackageFor, pythonRuntimeLayerKey, runtimeExcludes, writePythonRuntimeLayer } from '../runtime/debian.js';

/**
 * The Debian bases uvimage assembles: distroless' four flavours, minimal (cc's packages, of which
 * an image keeps only what its ELF files need: src/base/minimal.ts), and Debian's CPython on cc.
 */
export const baseNames = [...imageFlavourNames, 'python3'] as const;
export type BaseName = (typeof baseNames)[number];

/** The bases `uvimage base` builds on their own: all but minimal, which is computed from an image's files. */
export const standaloneBaseNames = baseNames.filter((name) => name !== 'minimal');

export function parseBaseName(text: string): BaseName {
  if (text === 'minimal') throw new UserError('the minimal base is computed from what an image\'s ELF files need, so it has no image of its own: use it with uvimage build (flavour = "minimal" or --flavour minimal)');
  if (!(baseNames as readonly string[]).includes(text)) throw new UserError(`unknown base ${JSON.stringify(text)} (use one of: ${standaloneBaseNames.join(', ')})`);
  return text as BaseName;
}

/** The distroless flavour whose package list a base starts from: python3 and minimal start from cc's. */
export function flavourOf(base: BaseName): FlavourName {
  return base === 'python3' || base === 'minimal' ? 'cc' : base;
}

export interface BuildDebianBaseOptions {
  base: BaseName;
  suite: DebianSuite;
  arch: Architecture;
  store: BlobStore;
  mirror?: string;
  securityMirror?: string;
  offline?: boolean;
  nonroot?: boolean;
  layering?: Layering;
  /** Reuse layers built before from the same inputs (default true). */
  layerCache?: boolean;
  /**
   * A Debian lock file: followed when it exists (no index is read; a lock that no longer matches
   * the request is an error), written from a fresh resolution when it does not.
   */
  lockPath?: string;
  /** Resolve again and rewrite the lock instead of following it. */
  updateLock?: boolean;
  mediaTypes?: MediaTypeFlavour;
  /** An open compiler for the python3 runtime's standard library; default: one is opened for the plan's interpreter. */
  compiler?: HostPycCompiler;
  /** The CPython that compiles the python3 runtime's bytecode (its version is part of the layer's key). */
  bytecode?: BytecodeInterpreter;
  /** Packages to add (with their dependency closure) in a layer above the flavour's: debian-packages. */
  extraPackages?: string[];
  progress?: Progress;
  env?: NodeJS.ProcessEnv;
}

/** One built base for one architecture, with what went into it. */
export interface BuiltDebianBase {
  image: Image;
  layers: PackagesLayer[];
  packages: DebInput[];
  /** Sum of the layers' uncompressed tar sizes. */
  unpackedSize: number;
  /** Sum of the file contents of the layers (the image's unpacked size, without tar headers). */
  contentSize: number;
  /** Sum of the layers' compressed sizes. */
  compressedSize: number;
}

/**
 * The packages of a base: the flavour's list, for python3 the interpreter's closure on top of cc,
 * and the closure of the extra packages asked for (debian-packages) beyond both.
 */
export function planBasePackages(index: PackageIndex, base: BaseName, suite: DebianSuite, extra: readonly string[] = []): { base: DebianPackage[]; runtime: DebianPackage[]; extra: DebianPackage[] } {
  const flavour = flavourOf(base);
  const pick = (name: string): DebianPackage => {
    const pkg = index.get(name);
    if (!pkg) throw new UserError(`package ${name} is not in the ${index.description} index`);
    return pkg;
  };
  const baseNames = flavourPackages(flavour, suite);
  const basePackages = baseNames.map(pick);
  const inBase = new Set(baseNames);
  const runtime = base === 'python3' ? resolvePackages(index, [pythonPackageFor(suite)], { exclude: runtimeExcludes }).filter((pkg) => !inBase.has(pkg.name)) : [];
  for (const name of extra) {
    if (!index.get(name)) throw new UserError(`debian-packages: ${name} is not a package of ${index.description}`);
  }
  const below = new Set([...inBase, ...runtime.map((pkg) => pkg.name)]);
  const extraPackages = extra.length ? resolvePackages(index, [...extra], { exclude: runtimeExcludes }).filter((pkg) => !below.has(pkg.name)) : [];
  return { base: basePackages, runtime, extra: extraPackages };
}

/** What a base needs from the index: enough to fetch and verify each .deb. */
export type PlannedDeb = Pick<DebianPackage, 'name' | 'version' | 'arch' | 'sha256' | 'size' | 'archiveUrl' | 'filename'>;

/**
 * planBasePackages, cached by the index's identity: the package list only changes when the
 * archive publishes a new Packages file, and parsing one takes seconds that a rebuild of an
 * unchanged base should not pay.
 */
async function plannedBasePackages(
  source: DebianSource,
  store: BlobStore,
  options: Pick<BuildDebianBaseOptions, 'base' | 'suite' | 'offline' | 'progress' | 'extraPackages'>,
): Promise<ResolvedBasePackages> {
  const identity = await packageIndexIdentity(source, store, { offline: options.offline, progress: options.progress });
  const extra = [...new Set(options.extraPackages ?? [])].sort();
  const key = JSON.stringify({ format: 2, identity, base: options.base, suite: options.suite, arch: source.arch, extra });
  return store.cached('debian-plan', key, async () => {
    const index = await loadPackageIndex(source, store, { offline: options.offline, progress: options.progress });
    const plan = planBasePackages(index, options.base, options.suite, extra);
    const slim = (pkg: DebianPackage): PlannedDeb => ({ name: pkg.name, version: pkg.version, arch: pkg.arch, sha256: pkg.sha256, size: pkg.size, archiveUrl: pkg.archiveUrl, filename: pkg.filename });
    return { base: plan.base.map(slim), runtime: plan.runtime.map(slim), extra: plan.extra.map(slim) };
  }, { valid: (record) => ['base', 'runtime', 'extra'].every((group) => Array.isArray((record as Record<string, unknown>)[group])) });
}

/** One package of a suite's signed index, cached by the index's identity like a base's plan (parsing an index takes seconds). */
export async function resolveDebianPackage(options: Pick<BuildDebianBaseOptions, 'suite' | 'arch' | 'store' | 'mirror' | 'offline' | 'progress' | 'env'> & { name: string }): Promise<PlannedDeb> {
  const source = debianSourceFrom({ suite: options.suite, arch: options.arch, mirror: options.mirror, env: options.env });
  const identity = await packageIndexIdentity(source, options.store, { offline: options.offline, progress: options.progress });
  return options.store.cached('debian-package', JSON.stringify({ format: 1, identity, name: options.name }), async () => {
    const index = await loadPackageIndex(source, options.store, { offline: options.offline, progress: options.progress });
    const pkg = index.get(options.name);
    if (!pkg) throw new UserError(`package ${options.name} is not in the ${index.description} index`);
    return { name: pkg.name, version: pkg.version, arch: pkg.arch, sha256: pkg.sha256, size: pkg.size, archiveUrl: pkg.archiveUrl, filename: pkg.filename };
  }, { valid: (record) => typeof (record as PlannedDeb).sha256 === 'string' });
}

/** A lock path for one architecture: `{arch}` in the path is replaced by it. */
export function lockPathFor(path: string | undefined, arch: Architecture): string | undefined {
  return path?.replaceAll('{arch}', arch);
}

/** The packages a base asks for by name: the flavour's list, the interpreter for python3, the extra packages. */
function baseRoots(base: BaseName, suite: DebianSuite, extra: readonly string[] = []): string[] {
  return [...flavourPackages(flavourOf(base), suite), ...(base === 'python3' ? [pythonPackageFor(suite)] : []), ...extra];
}

/** The base's packages from its lock, or resolved (and the lock to write, which execution writes). */
async function lockedBasePackages(
  source: DebianSource,
  store: BlobStore,
  options: Pick<BuildDebianBaseOptions, 'base' | 'suite' | 'offline' | 'progress' | 'updateLock' | 'extraPackages'> & { lockPath: string },
): Promise<ResolvedBasePackages> {
  const roots = baseRoots(options.base, options.suite, options.extraPackages);
  const exclude = options.base === 'python3' || options.extraPackages?.length ? runtimeExcludes : [];
  const lock = options.updateLock ? undefined : await readDebianLock(options.lockPath);
  if (!lock) {
    const planned = await plannedBasePackages(source, store, options);
    const extra = new Set(planned.extra.map((pkg) => pkg.name));
    return { ...planned, writeLock: { path: options.lockPath, lock: createDebianLock(source, roots, [...planned.base, ...planned.runtime, ...planned.extra], exclude, extra) } };
  }
  const locked = packagesFromLock(lock, source, roots, exclude, options.lockPath);
  const byName = new Map(lock.packages.map((pkg) => [pkg.name, pkg]));
  const asPlanned = (download: (typeof locked)[number]): PlannedDeb => {
    const pkg = byName.get(download.name)!;
    return { name: pkg.name, version: pkg.version, arch: pkg.arch, sha256: pkg.sha256, size: pkg.size, filename: pkg.filename, archiveUrl: pkg.url.slice(0, pkg.url.length - pkg.filename.length - 1) };
  };
  const inBase = new Set(flavourPackages(flavourOf(options.base), options.suite));
  const isExtra = (download: (typeof locked)[number]) => byName.get(download.name)!.layer === 'extra';
  return {
    base: locked.filter((download) => inBase.has(download.name)).map(asPlanned),
    runtime: locked.filter((download) => !inBase.has(download.name) && !isExtra(download)).map(asPlanned),
    extra: locked.filter((download) => !inBase.has(download.name) && isExtra(download)).map(asPlanned),
  };
}

/**
 * A Debian base as planned before any .deb is fetched: the packages (from the signed index, or
 * the lock), the layers with their keys, the config. Writing it (writeDebianBase) takes no
 * decision this does not record.
 */
export interface DebianBasePlan {
  base: BaseName;
  suite: DebianSuite;
  arch: Architecture;
  /** The flavour's packages, the extra packages' closure, (python3) the interpreter's closure; each verified by sha256 when fetched. */
  packages: { base: PlannedDeb[]; extra: PlannedDeb[]; runtime: PlannedDeb[] };
  /** The Debian lock written with this base (the lock file was missing, or --update-lock). */
  writeLock?: { path: string; lock: DebianLock };
  layers: BaseLayerPlan[];
  /** The python3 runtime layer: its packages, the CPython that precompiles its standard library, its key. */
  runtimeLayer?: { packages: DebInput[]; compiler: BytecodeInterpreter; key: string | null };
  /** The image config the flavour sets (distroless' Env, user, workdir; python3's entrypoint). */
  changes: ConfigChanges;
  mtime: number;
}

/** A CPython on this machine that compiles bytecode: which one, and what it is. */
export interface BytecodeInterpreter {
  interpreter: string;
  version: string;
  cacheTag: string;
}

/** What a .deb of the plan is as an input of a layer: known by its sha256 from the index. */
function debInput(pkg: PlannedDeb): DebInput {
  return { name: pkg.name, version: pkg.version, arch: pkg.arch, digest: `sha256:${pkg.sha256}` as Digest };
}

/** The packages of a base as read from the signed index (or its lock), before any .deb is fetched. */
export interface ResolvedBasePackages {
  base: PlannedDeb[];
  runtime: PlannedDeb[];
  /** debian-packages and their closure beyond the flavour (and the runtime): a layer of their own. */
  extra: PlannedDeb[];
  /** The lock to write with the base (the lock file was missing, or --update-lock). */
  writeLock?: { path: string; lock: DebianLock };
}

/** Reads what a base is made of: the signed index (cached by its identity), or the lock. */
export async function resolveBasePackages(options: BuildDebianBaseOptions): Promise<ResolvedBasePackages> {
  const source = debianSourceFrom({ suite: options.suite, arch: options.arch, mirror: options.mirror, securityMirror: options.securityMirror, env: options.env });
  return options.lockPath ? lockedBasePackages(source, options.store, { ...options, lockPath: options.lockPath }) : plannedBasePackages(source, options.store, options);
}

/** The plan of a base from its resolved packages: layers and their keys, the config. Pure. */
export function planDebianBaseFrom(
  resolved: ResolvedBasePackages,
  options: Pick<BuildDebianBaseOptions, 'base' | 'suite' | 'arch' | 'layering' | 'layerCache' | 'nonroot' | 'bytecode'> & { mtime: number },
): DebianBasePlan {
  const { suite, arch, mtime } = options;
  const flavour = flavourOf(options.base);
  const layers = planBaseLayers({
    flavour,
    suite,
    arch,
    packages: new Map(resolved.base.map((pkg) => [pkg.name, debInput(pkg)])),
    extra: resolved.extra.map(debInput),
    mtime,
    layering: options.layering,
    layerCache: options.layerCache,
  });
  let changes = baseConfigChanges(options.nonroot ?? false);
  let runtimeLayer: DebianBasePlan['runtimeLayer'];
  if (options.base === 'python3') {
    const compiler = requireBytecode(options);
    const packages = resolved.runtime.map(debInput);
    runtimeLayer = { packages, compiler, key: options.layerCache === false ? null : pythonRuntimeLayerKey({ suite, arch, mtime, packages, compiler }) };
    changes = { ...changes, Entrypoint: ['/usr/bin/python3'] };
  }
  return { base: options.base, suite, arch, packages: { base: resolved.base, extra: resolved.extra, runtime: resolved.runtime }, writeLock: resolved.writeLock, layers, runtimeLayer, changes, mtime };
}

/**
 * The minimal flavour's base once its selection is made (src/base/minimal.ts): the plan of the
 * candidate base (cc's packages) with only the packages kept, libc6 trimmed, the same layers
 * (libc, base, extra) keyed by what they now hold. The lock, written with the candidate base,
 * is not written again. Pure.
 */
export function minimalBasePlan(plan: DebianBasePlan, selection: Pick<MinimalBaseSelection, 'packages' | 'dropped'>): DebianBasePlan {
  const kept = new Set(selection.packages);
  const base = plan.packages.base.filter((pkg) => kept.has(pkg.name));
  const layers = planBaseLayers({
    flavour: flavourOf(plan.base),
    suite: plan.suite,
    arch: plan.arch,
    packages: new Map(base.map((pkg) => [pkg.name, debInput(pkg)])),
    extra: plan.packages.extra.map(debInput),
    mtime: plan.mtime,
    layerCache: plan.layers.every((layer) => layer.key !== null),
    selection: { packages: selection.packages, dropped: selection.dropped },
  });
  return { ...plan, packages: { ...plan.packages, base }, writeLock: undefined, layers };
}

/** The CPython that precompiles the python3 runtime's standard library; without one, one line saying what to install. */
function requireBytecode(options: Pick<BuildDebianBaseOptions, 'suite' | 'bytecode'>): BytecodeInterpreter {
  if (options.bytecode) return options.bytecode;
  const minor = debianSuites[options.suite].python;
  throw new UserError(`precompiling Debian's Python ${minor} standard library needs a CPython ${minor} on this machine (uv python install ${minor}, or pyenv); none was found`);
}

/** Plans one base for one architecture: reads the signed index (or the lock); writes nothing. */
export async function planDebianBase(options: BuildDebianBaseOptions): Promise<DebianBasePlan> {
  if (options.base === 'python3') requireBytecode(options); // before the index is read
  return planDebianBaseFrom(await resolveBasePackages(options), { ...options, mtime: buildTimestamp(options.env).seconds });
}

/** Writes a planned base: the lock (if planned), the verified .debs, the layers, the image. */
export async function writeDebianBase(
  plan: DebianBasePlan,
  options: Pick<BuildDebianBaseOptions, 'store' | 'offline' | 'progress' | 'mediaTypes' | 'env' | 'compiler'>,
): Promise<BuiltDebianBase> {
  const { store } = options;
  if (plan.writeLock) {
    await writeDebianLock(plan.writeLock.path, plan.writeLock.lock);
    options.progress?.info(`wrote the Debian lock ${plan.writeLock.path}`);
  }
  const all = [...plan.packages.base, ...plan.packages.extra, ...plan.packages.runtime];
  // Only the .debs of layers to be written are fetched: a layer whose record the store (or its
  // shared tier, a layer cache in a registry) has is taken from there, its packages unread.
  const needed = await packagesToWrite(plan, store);
  await fetchDebs(all.filter((pkg) => needed.has(debInput(pkg).digest)), store, { offline: options.offline, progress: options.progress, suite: plan.suite, arch: plan.arch });
  const inputs = all.map(debInput);
  const flavour = flavourOf(plan.base);
  const stage = options.progress?.stage(stages.baseLayers(plan.base, plan.suite, plan.arch));
  stage?.expect(plan.layers.length + (plan.runtimeLayer ? 1 : 0));
  try {
    return await writePlannedBase(plan, inputs, flavour, stage, options);
  } finally {
    stage?.finish();
  }
}

/** The digests of the .debs some layer of the plan needs written: those of the layers without a record (with its blob) to take. */
async function packagesToWrite(plan: DebianBasePlan, store: BlobStore): Promise<Set<Digest>> {
  const layerBlob = (value: unknown) => [(value as Partial<WrittenPackagesLayer>).written?.descriptor?.digest];
  const needed = new Set<Digest>();
  for (const layer of [...plan.layers, ...(plan.runtimeLayer ? [plan.runtimeLayer] : [])]) {
    if (layer.key !== null && (await store.available('debian-layers', layer.key, layerBlob))) continue;
    for (const pkg of layer.packages) needed.add(pkg.digest);
  }
  return needed;
}

async function writePlannedBase(
  plan: DebianBasePlan,
  inputs: DebInput[],
  flavour: FlavourName,
  stage: Stage | undefined,
  options: Pick<BuildDebianBaseOptions, 'store' | 'progress' | 'mediaTypes' | 'env' | 'compiler'>,
): Promise<BuiltDebianBase> {
  const { store } = options;
  const layers = await writeBaseLayers({ flavour, suite: plan.suite, arch: plan.arch, store, layers: plan.layers, mtime: plan.mtime, stage });
  if (plan.runtimeLayer) {
    const planned = plan.runtimeLayer;
    const compiler = options.compiler ?? (await openPycCompiler(debianSuites[plan.suite].python, { interpreter: planned.compiler.interpreter, env: options.env }));
    try {
      if (!compiler || compiler.version !== planned.compiler.version) {
        throw new UserError(`the CPython that compiles the runtime's bytecode changed while building: planned ${planned.compiler.interpreter} ${planned.compiler.version}, found ${compiler ? `${compiler.interpreter} ${compiler.version}` : 'none'}`);
      }
      layers.push(
        await writePythonRuntimeLayer({
          store,
          suite: plan.suite,
          arch: plan.arch,
          packages: planned.packages,
          mtime: plan.mtime,
          compiler,
          layerCache: planned.key !== null,
          plannedKey: planned.key ?? undefined,
          progress: options.progress,
          layers: stage,
        }),
      );
    } finally {
      if (!options.compiler) await compiler?.close();
    }
  }
  const image = await assembleDebianImage({ store, arch: plan.arch, layers, changes: plan.changes, flavour: options.mediaTypes, env: options.env });
  return {
    image,
    layers,
    packages: inputs,
    unpackedSize: layers.reduce((sum, layer) => sum + layer.uncompressedSize, 0),
    contentSize: layers.reduce((sum, layer) => sum + layer.contentSize, 0),
    compressedSize: layers.reduce((sum, layer) => sum + layer.layer.descriptor.size, 0),
  };
}

/** Plans and writes one base for one architecture. */
export async function buildDebianBase(options: BuildDebianBaseOptions): Promise<BuiltDebianBase> {
  const bytecode = options.base === 'python3' && !options.bytecode ? await bytecodeOf(options) : options.bytecode;
  return writeDebianBase(await planDebianBase({ ...options, bytecode }), options);
}

/** The compiler's identity, for a base that needs one: the given compiler, else the host's CPython of the suite's minor. */
async function bytecodeOf(options: BuildDebianBaseOptions): Promise<BytecodeInterpreter | undefined> {
  if (options.compiler) return { interpreter: options.compiler.interpreter, version: options.compiler.version, cacheTag: options.compiler.cacheTag };
  const compiler = await openPycCompiler(debianSuites[options.suite].python, { env: options.env });
  if (!compiler) return undefined;
  await compiler.close();
  return { interpreter: compiler.interpreter, version: compiler.version, cacheTag: compiler.cacheTag };
}

/** Builds a base for each architecture: one image, or an index of several. */
export async function buildDebianBaseArtifact(options: Omit<BuildDebianBaseOptions, 'arch'> & { arches: Architecture[] }): Promise<{ artifact: Artifact; builds: BuiltDebianBase[] }> {
  if (options.arches.length === 0) throw new UserError('no platform to build for');
  if (new Set(options.arches).size !== options.arches.length) throw new UserError('a platform is listed twice');
  if (options.lockPath && options.arches.length > 1 && !options.lockPath.includes('{arch}')) {
    throw new UserError(`--lock ${options.lockPath}: a lock is per architecture; with several platforms put {arch} in its name (e.g. base-{arch}.lock)`);
  }
  // Every architecture is planned before anything is fetched, so a problem with any of them fails first.
  const plans: DebianBasePlan[] = [];
  const bytecode = options.base === 'python3' && !options.bytecode ? await bytecodeOf({ ...options, arch: options.arches[0]! }) : options.bytecode;
  for (const arch of options.arches) plans.push(await planDebianBase({ ...options, arch, bytecode, lockPath: lockPathFor(options.lockPath, arch) }));
  const builds: BuiltDebianBase[] = [];
  for (const plan of plans) builds.push(await writeDebianBase(plan, options));
  if (builds.length === 1) return { artifact: { kind: 'image', image: builds[0]!.image }, builds };
  const created = buildTimestamp(options.env);
  const index = assembleIndex(
    builds.map((build) => build.image),
    { annotations: { [Annotation.created]: created.iso }, flavour: options.mediaTypes },
  );
  await options.store.putBytes(index.index.bytes);
  return { artifact: { kind: 'index', index }, builds };
}
