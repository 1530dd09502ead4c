/**
 * `uvimage base`: a distroless base (or Debian's CPython on cc) for one or more architectures,
 * from the Debian archive: verified index → the flavour's packages → verified .debs in the store
 * → layers → image (or index). Everything after the downloads is deterministic: the same
 * packages and SOURCE_DATE_EPOCH give the same digests.
 */
import { UserError } from '../errors.js';
import type { Progress } from '../progress.js';
import { Annotation, assembleIndex, buildTimestamp, type Artifact, type ConfigChanges, type Image, type MediaTypeFlavour } from '../oci/image.js';
import type { BlobStore } from '../oci/store.js';
import type { HostPycCompiler } from '../python/bytecode.js';
import { assembleDebianImage, writeBaseLayers, type DebInput, type Layering, type PackagesLayer } from './base-image.js';
import type { Architecture } from '../facts/architectures.js';
import type { DebianSuite } from '../facts/debian-suites.js';
import { flavourPackages, isFlavour, type FlavourName } from './flavours.js';
import { debianSourceFrom, fetchDebs, loadPackageIndex, packageIndexIdentity, type DebianPackage, type DebianSource, type PackageIndex } from './archive/index.js';
import { createDebianLock, packagesFromLock, readDebianLock, writeDebianLock } from './lock.js';
import { resolvePackages } from './resolver.js';
import { pythonPackageFor, runtimeExcludes, writePythonRuntimeLayer } from './runtime.js';

/** The bases `uvimage base` builds: distroless' four flavours, and Debian's CPython on cc. */
export const baseNames = ['static', 'base-nossl', 'base', 'cc', 'python3'] as const;
export type BaseName = (typeof baseNames)[number];

export function parseBaseName(text: string): BaseName {
  if (!(baseNames as readonly string[]).includes(text)) throw new UserError(`unknown base ${JSON.stringify(text)} (use one of: ${baseNames.join(', ')})`);
  return text as BaseName;
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
  compiler?: HostPycCompiler;
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

/** The packages of a base: the flavour's list, and for python3 the interpreter's closure on top of cc. */
export function planBasePackages(index: PackageIndex, base: BaseName, suite: DebianSuite): { base: DebianPackage[]; runtime: DebianPackage[] } {
  const flavour: FlavourName = base === 'python3' ? 'cc' : base;
  const pick = (name: string): DebianPackage => {
    const pkg = index.get(name);
    if (!pkg) throw new UserError(`package ${name} is not in the ${index.description} index`);
    return pkg;
  };
  const baseNames = flavourPackages(flavour, suite);
  const basePackages = baseNames.map(pick);
  if (base !== 'python3') return { base: basePackages, runtime: [] };
  const closure = resolvePackages(index, [pythonPackageFor(suite)], { exclude: runtimeExcludes });
  const inBase = new Set(baseNames);
  return { base: basePackages, runtime: closure.filter((pkg) => !inBase.has(pkg.name)) };
}

/** What a base needs from the index: enough to fetch and verify each .deb. */
type PlannedDeb = Pick<DebianPackage, 'name' | 'version' | 'arch' | 'sha256' | 'size' | 'archiveUrl' | 'filename'>;

/**
 * planBasePackages, cached by the index's identity: the package list only changes when the
 * archive publishes a new Packages file, and parsing one takes seconds that a rebuild of an
 * unchanged base should not pay.
 */
async function plannedBasePackages(
  source: DebianSource,
  store: BlobStore,
  options: Pick<BuildDebianBaseOptions, 'base' | 'suite' | 'offline' | 'progress'>,
): Promise<{ base: PlannedDeb[]; runtime: PlannedDeb[] }> {
  const identity = await packageIndexIdentity(source, store, { offline: options.offline, progress: options.progress });
  const key = JSON.stringify({ format: 1, identity, base: options.base, suite: options.suite, arch: source.arch });
  return store.cached('debian-plan', key, async () => {
    const index = await loadPackageIndex(source, store, { offline: options.offline, progress: options.progress });
    const plan = planBasePackages(index, options.base, options.suite);
    const slim = (pkg: DebianPackage): PlannedDeb => ({ name: pkg.name, version: pkg.version, arch: pkg.arch, sha256: pkg.sha256, size: pkg.size, archiveUrl: pkg.archiveUrl, filename: pkg.filename });
    return { base: plan.base.map(slim), runtime: plan.runtime.map(slim) };
  }, { valid: (record) => Array.isArray((record as { base?: unknown }).base) && Array.isArray((record as { runtime?: unknown }).runtime) });
}

/** A lock path for one architecture: `{arch}` in the path is replaced by it. */
export function lockPathFor(path: string | undefined, arch: Architecture): string | undefined {
  return path?.replaceAll('{arch}', arch);
}

/** The packages a base asks for by name: the flavour's list, and the interpreter for python3. */
function baseRoots(base: BaseName, suite: DebianSuite): string[] {
  const flavour: FlavourName = base === 'python3' ? 'cc' : base;
  return [...flavourPackages(flavour, suite), ...(base === 'python3' ? [pythonPackageFor(suite)] : [])];
}

/** The base's packages from its lock, or resolved and written to a new lock. */
async function lockedBasePackages(
  source: DebianSource,
  store: BlobStore,
  options: Pick<BuildDebianBaseOptions, 'base' | 'suite' | 'offline' | 'progress' | 'updateLock'> & { lockPath: string },
): Promise<{ base: PlannedDeb[]; runtime: PlannedDeb[] }> {
  const roots = baseRoots(options.base, options.suite);
  const exclude = options.base === 'python3' ? runtimeExcludes : [];
  const lock = options.updateLock ? undefined : await readDebianLock(options.lockPath);
  if (!lock) {
    const planned = await plannedBasePackages(source, store, options);
    await writeDebianLock(options.lockPath, createDebianLock(source, roots, [...planned.base, ...planned.runtime], exclude));
    options.progress?.info(`wrote the Debian lock ${options.lockPath}`);
    return planned;
  }
  const locked = packagesFromLock(lock, source, roots, exclude, options.lockPath);
  const byName = new Map(lock.packages.map((pkg) => [pkg.name, pkg]));
  const asPlanned = (download: (typeof locked)[number]): PlannedDeb => {
    const pkg = byName.get(download.name)!;
    return { name: pkg.name, version: pkg.version, arch: pkg.arch, sha256: pkg.sha256, size: pkg.size, filename: pkg.filename, archiveUrl: pkg.url.slice(0, pkg.url.length - pkg.filename.length - 1) };
  };
  const inBase = new Set(flavourPackages(options.base === 'python3' ? 'cc' : options.base, options.suite));
  return {
    base: locked.filter((download) => inBase.has(download.name)).map(asPlanned),
    runtime: locked.filter((download) => !inBase.has(download.name)).map(asPlanned),
  };
}

/** Builds one base for one architecture. */
export async function buildDebianBase(options: BuildDebianBaseOptions): Promise<BuiltDebianBase> {
  const { store, suite, arch } = options;
  const source = debianSourceFrom({ suite, arch, mirror: options.mirror, securityMirror: options.securityMirror, env: options.env });
  const plan = options.lockPath ? await lockedBasePackages(source, store, { ...options, lockPath: options.lockPath }) : await plannedBasePackages(source, store, options);
  const all = [...plan.base, ...plan.runtime];
  const digests = await fetchDebs(all, store, { offline: options.offline, progress: options.progress });
  const inputs = all.map((pkg, position): DebInput => ({ name: pkg.name, version: pkg.version, arch: pkg.arch, digest: digests[position]! }));
  const flavour: FlavourName = options.base === 'python3' ? 'cc' : options.base;
  if (!isFlavour(flavour)) throw new UserError(`unknown flavour ${flavour}`);
  const { layers, changes } = await writeBaseLayers({
    flavour,
    suite,
    arch,
    store,
    packages: new Map(inputs.slice(0, plan.base.length).map((input) => [input.name, input])),
    layering: options.layering,
    layerCache: options.layerCache,
    nonroot: options.nonroot,
    env: options.env,
    progress: options.progress,
  });
  let configChanges: ConfigChanges = changes;
  if (options.base === 'python3') {
    const runtime = await writePythonRuntimeLayer({
      store,
      suite,
      arch,
      packages: inputs.slice(plan.base.length),
      mtime: buildTimestamp(options.env).seconds,
      compiler: options.compiler,
      layerCache: options.layerCache,
      progress: options.progress,
    });
    layers.push(runtime);
    configChanges = { ...changes, Entrypoint: ['/usr/bin/python3'] };
  }
  const image = await assembleDebianImage({ store, arch, layers, changes: configChanges, flavour: options.mediaTypes, env: options.env });
  return {
    image,
    layers,
    packages: inputs,
    unpackedSize: layers.reduce((sum, layer) => sum + layer.uncompressedSize, 0),
    contentSize: layers.reduce((sum, layer) => sum + layer.contentSize, 0),
    compressedSize: layers.reduce((sum, layer) => sum + layer.layer.descriptor.size, 0),
  };
}

/** Builds a base for each architecture: one image, or an index of several. */
export async function buildDebianBaseArtifact(options: Omit<BuildDebianBaseOptions, 'arch'> & { arches: Architecture[] }): Promise<{ artifact: Artifact; builds: BuiltDebianBase[] }> {
  if (options.arches.length === 0) throw new UserError('no platform to build for');
  if (new Set(options.arches).size !== options.arches.length) throw new UserError('a platform is listed twice');
  const builds: BuiltDebianBase[] = [];
  if (options.lockPath && options.arches.length > 1 && !options.lockPath.includes('{arch}')) {
    throw new UserError(`--lock ${options.lockPath}: a lock is per architecture; with several platforms put {arch} in its name (e.g. base-{arch}.lock)`);
  }
  for (const arch of options.arches) builds.push(await buildDebianBase({ ...options, arch, lockPath: lockPathFor(options.lockPath, arch) }));
  if (builds.length === 1) return { artifact: { kind: 'image', image: builds[0]!.image }, builds };
  const created = buildTimestamp(options.env);
  const index = assembleIndex(
    builds.map((build) => build.image),
    { annotations: { [Annotation.created]: created.iso }, flavour: options.mediaTypes },
  );
  await options.store.putBytes(index.index.bytes);
  return { artifact: { kind: 'index', index }, builds };
}
