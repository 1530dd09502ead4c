/**
 * The project's virtualenv as image layers, split by how often they change:
 *
 *   dependencies[0]  the venv skeleton (pyvenv.cfg, interpreter links) and every third-party
 *                    package (downloaded wheels, and wheels built from sdists, paths and git)
 *   dependencies[1+] one layer per very large wheel, when asked (`ownLayer`), so a torch-sized
 *                    wheel is pushed and pulled once and not again when a small dependency moves
 *   project          the project and its workspace members, built with `uv build --wheel`
 *
 * Each layer is keyed by its inputs (wheel hashes, venv root, runtime, Python version, bytecode
 * compiler, stripping, mtime, layer format version); a layer whose key has a record and whose blob is intact
 * in the store is reused without opening a wheel.
 */
import { createReadStream } from 'node:fs';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { stripFormat } from '../binary/strip.js';
import { UserError } from '../errors.js';
import { isDigest, type Digest } from '../oci/digest.js';
import { buildTimestamp } from '../oci/image.js';
import type { LayerEntry } from '../oci/layer-entry.js';
import { layerEncoding, writeLayer, type WrittenLayer } from '../oci/layer-writer.js';
import { BlobStore } from '../oci/store.js';
import { architectureOfPython } from '../facts/architectures.js';
import { asTask, stages, type Progress, type Stage } from '../progress.js';
import { buildWheel, hostArch, isPureWheel } from './build-wheel.js';
import { cpythonCacheTag, openPycCompiler, type HostPycCompiler, type PycCompiler } from './bytecode.js';
import { downloadWheel, wheelInStore, type DownloadedWheel, type PackageIndex } from './download.js';
import { checkoutGit, gitDirectUrl, gitWheelKey, parseGitSource } from './git-source.js';
import type { InstallPlan, PlannedPackage } from './install-set.js';
import type { UvLock } from './lock.js';
import { normalizeName } from './markers.js';
import { compatibleTags, wheelTags } from './tags.js';
import { describeTarget } from './target.js';
import { locateUv } from './uv.js';
import { defaultVenvRoot, venvScheme, venvSkeletonEntries, type VenvRuntime } from './venv.js';
import { installWheel, type InstalledWheel } from './wheel-installer.js';

/** Bumped whenever what a layer holds for the same inputs changes, so old cached layers are not reused. */
export const venvLayerFormat = 1;

export interface BuildVenvLayersOptions {
  store: BlobStore;
  /** Where the venv lives in the image; default /app/.venv. */
  venvRoot?: string;
  runtime: { interpreter: string; home: string; version: string };
  /** The project's directory (relative wheel/sdist paths, builds, direct_url.json). */
  projectDir: string;
  /** Compiles installed .py files; without one, no bytecode is installed. */
  compiler?: PycCompiler;
  /** Where the downloads, builds, bytecode and layers are shown, a stage each. */
  progress?: Progress;
  /** Seconds since the epoch for every entry; default SOURCE_DATE_EPOCH or 0. */
  mtime?: number;
  /** Named indexes (for UV_INDEX_<NAME>_* credentials). */
  indexes?: PackageIndex[];
  env?: NodeJS.ProcessEnv;
  /** Wheels this large (bytes) or larger, or of these packages, get a layer of their own. */
  ownLayer?: { minBytes?: number; packages?: string[] };
  /** Downloads at once; default 8. */
  concurrency?: number;
  /** The uv executable for builds; default locateUv: $UV, else `uv` on PATH, else the pinned uv fetched into the store. */
  uv?: string;
  /** The interpreter `uv build` builds with (`--python`); default the runtime's minor version, found by uv. */
  buildPython?: string;
  /** The lock, for naming the wheels that exist when a package cannot be built for the target. */
  lock?: UvLock;
  /** pyvenv.cfg `prompt`; default the project name (as `uv sync` writes it). */
  prompt?: string;
  /** INSTALLER of every package; default 'uvimage'. */
  installer?: string;
  /** Reuse layers (and compiled bytecode, and wheels built from git sources) from the store when their inputs match; default true. */
  reuse?: boolean;
  /** direct_url.json `url` of the project and members; default file://<their directory>, as uv writes it. */
  directUrlFor?: (dir: string) => string;
  /** Strip debug information from the ELF files of the wheels (src/binary/strip.ts); default true. */
  strip?: boolean;
  /** The layers to write, as planned (planVenvLayers); default: planned here from the same options. */
  layers?: VenvLayerPlan[];
}

/**
 * One planned venv layer: which packages go in it, and the record key of the layer when every
 * wheel's digest is known before anything is built (from the lock); a layer holding a wheel built
 * here (the project, a member, an sdist, a git or path source) is keyed once that wheel exists.
 */
export interface VenvLayerPlan {
  role: 'dependencies' | 'dependency' | 'project';
  label: string;
  /** Whether the layer carries the venv skeleton (pyvenv.cfg, interpreter links): the first one does. */
  skeleton: boolean;
  /** The packages, in the order they are installed: name, version, and the locked wheel or what is built. */
  packages: { name: string; version: string; wheel?: string; built?: true }[];
  /** The layer's record name in the store (`venv-layer`), or null until its built wheels exist. */
  key: string | null;
}

/** What the options fix about every venv layer's content, beside its wheels: part of each layer's key. */
function venvKeyBase(options: Pick<BuildVenvLayersOptions, 'venvRoot' | 'runtime' | 'mtime' | 'installer' | 'strip'>, pyc: { version: string } | undefined) {
  const scheme = venvScheme(options.venvRoot ?? defaultVenvRoot, options.runtime.version);
  const runtime: VenvRuntime = { interpreter: options.runtime.interpreter, home: options.runtime.home, version: options.runtime.version };
  return {
    format: venvLayerFormat,
    layerEncoding,
    root: scheme.root,
    runtime,
    mtime: options.mtime ?? buildTimestamp().seconds,
    installer: options.installer ?? 'uvimage',
    pyc: pyc ? [pyc.version, cpythonCacheTag(options.runtime.version)] : null,
    strip: (options.strip ?? true) ? stripFormat : false,
  };
}

/** The key text of one venv layer (its record name is BlobStore.recordName of it). */
function venvLayerKey(base: ReturnType<typeof venvKeyBase>, skeleton: string | false, wheels: { filename: string; digest: Digest; directUrl?: string }[]): string {
  return JSON.stringify({ ...base, skeleton, wheels: wheels.map((wheel) => [wheel.filename, wheel.digest, wheel.directUrl ?? null]) });
}

/** Packages of the plan that go into the venv, in name order: what is downloaded and what is built. */
function venvPackages(plan: InstallPlan): PlannedPackage[] {
  return plan.packages
    .filter((pkg) => !(pkg.kind === 'build' && pkg.member && plan.project.virtual && normalizeName(pkg.name) === normalizeName(plan.project.name)))
    .sort((a, b) => compareNormalized(a.name, b.name));
}

function compareNormalized(a: string, b: string): number {
  const left = normalizeName(a);
  const right = normalizeName(b);
  return left < right ? -1 : left > right ? 1 : 0;
}

/**
 * Which layer each package goes to, and the keys that can be known before any download or
 * build. Pure. `bytecode` is the version of the CPython that will compile the venv's bytecode
 * (undefined: no bytecode), as it is part of every key.
 */
export function planVenvLayers(
  plan: InstallPlan,
  options: Pick<BuildVenvLayersOptions, 'venvRoot' | 'runtime' | 'mtime' | 'installer' | 'strip' | 'ownLayer' | 'prompt' | 'projectDir' | 'directUrlFor'> & { bytecode?: { version: string } },
): VenvLayerPlan[] {
  const base = venvKeyBase(options, options.bytecode);
  const prompt = options.prompt ?? plan.project.name;
  const ownPackages = new Set((options.ownLayer?.packages ?? []).map(normalizeName));
  const minBytes = options.ownLayer?.minBytes;
  const packages = venvPackages(plan);
  const member = (pkg: PlannedPackage) => pkg.kind === 'build' && pkg.member;
  const own = packages.filter((pkg) => !member(pkg) && (ownPackages.has(normalizeName(pkg.name)) || (minBytes !== undefined && pkg.kind === 'wheel' && (pkg.wheel.size ?? 0) >= minBytes)));
  const shared = packages.filter((pkg) => !member(pkg) && !own.includes(pkg));
  const members = packages.filter(member);
  const layer = (role: VenvLayerPlan['role'], label: string, group: PlannedPackage[], skeleton: boolean): VenvLayerPlan => {
    const known = group.every((pkg) => pkg.kind === 'wheel' && pkg.wheel.hash !== undefined && isDigest(pkg.wheel.hash));
    const key = known
      ? BlobStore.recordName(venvLayerKey(base, skeleton ? prompt : false, group.map((pkg) => ({ filename: (pkg as WheelPackage).wheel.filename, digest: (pkg as WheelPackage).wheel.hash as Digest }))))
      : null;
    return {
      role,
      label,
      skeleton,
      packages: group.map((pkg) => (pkg.kind === 'wheel' ? { name: pkg.name, version: pkg.version, wheel: pkg.wheel.filename } : { name: pkg.name, version: pkg.version ?? '', built: true as const })),
      key,
    };
  };
  return [
    layer('dependencies', 'dependencies', shared, true),
    ...own.map((pkg) => layer('dependency', `dependency ${pkg.name}`, [pkg], false)),
    layer('project', 'project', members, false),
  ];
}

type WheelPackage = Extract<PlannedPackage, { kind: 'wheel' }>;

export interface InstalledPackage {
  name: string;
  version: string;
  /** The wheel installed. */
  filename: string;
  digest: Digest;
  /** Index into dependencies[], or 'project'. */
  layer: number | 'project';
}

export interface VenvLayers {
  dependencies: WrittenLayer[];
  project: WrittenLayer;
  packages: InstalledPackage[];
  /** How many layers were reused from the store. */
  reused: number;
  /** False when no compiler was given: the venv has no bytecode. */
  bytecode: boolean;
}

interface ReadyWheel {
  name: string;
  version: string;
  filename: string;
  /** sha256 of the wheel: from the lock (before any download), or of the wheel built or fetched. */
  digest: Digest;
  size: number;
  /** The wheel's path in the store, downloading (and verifying) it on first call. */
  path: () => Promise<string>;
  /** Whether path() has to download it (the store lacks it). */
  missing: () => Promise<boolean>;
  directUrl?: string;
  member: boolean;
}

/** The wheels of a venv, ready to install: locked ones known by digest (fetched on first use), the others built. */
export interface PreparedWheels {
  wheels: ReadyWheel[];
  /** The stage the wheels' downloads are shown in (they go on while the layers are written). */
  downloads?: Stage;
  /** Removes what the builds left in temp directories; after the layers are written. */
  close(): Promise<void>;
}

/**
 * Step 1 of a venv: every wheel, ready. A wheel the lock gives a sha256 for is known by that
 * digest without being fetched: a layer whose key matches is reused without reading (or
 * downloading) any wheel. The others are fetched when a layer needs them, at most `concurrency`
 * at once, each verified against the lock as it streams into the store (or rehashed there once).
 * What has to be built (the project, members, sdists, git and path sources) is built now, so a
 * package that cannot be built for the target fails before any layer is written.
 */
export async function prepareVenvWheels(plan: InstallPlan, options: BuildVenvLayersOptions): Promise<PreparedWheels> {
  const { store } = options;
  const mtime = options.mtime ?? buildTimestamp().seconds;
  const env = options.env ?? process.env;
  const cleanups: (() => Promise<void>)[] = [];
  const close = async (): Promise<void> => {
    for (const cleanup of cleanups.splice(0)) await cleanup().catch(() => undefined);
  };
  const arch = architectureOfPython(plan.target.arch);
  // Downloads start here (wheels the lock has no hash for) and go on when the layers need the
  // others: the stage goes with the prepared wheels. Builds are over when this returns.
  const downloads = options.progress?.stage(stages.wheels(arch));
  const builds = options.progress?.stage(stages.builds(arch));
  try {
    const remote = plan.packages.filter((pkg): pkg is WheelPackage => pkg.kind === 'wheel');
    const limit = semaphore(Math.max(1, options.concurrency ?? 8));
    const downloadOptions = { store, baseDir: options.projectDir, indexes: options.indexes, env };
    const wheels: ReadyWheel[] = [];
    for (const pkg of remote) {
      const source = { name: pkg.name, url: pkg.wheel.url, path: pkg.wheel.path, filename: pkg.wheel.filename, hash: pkg.wheel.hash, size: pkg.wheel.size, indexUrl: pkg.indexUrl };
      let fetched: Promise<DownloadedWheel> | undefined;
      let inStore: Promise<DownloadedWheel | undefined> | undefined;
      const present = () => (inStore ??= wheelInStore(source, store));
      // A wheel the store has is not a download: only the others are a task of the stage (whoever
      // calls fetch has counted it with `expect` first).
      const download = async (): Promise<DownloadedWheel> =>
        (await present()) ?? limit(() => asTask(downloads, source.filename, (task) => downloadWheel(source, { ...downloadOptions, task })));
      const fetch = (): Promise<DownloadedWheel> => (fetched ??= download());
      const missing = async () => (await present()) === undefined;
      let digest: Digest;
      let size = pkg.wheel.size ?? 0;
      if (pkg.wheel.hash !== undefined && isDigest(pkg.wheel.hash)) digest = pkg.wheel.hash;
      else {
        // No usable hash in the lock: the digest is only known once the wheel is here.
        downloads?.expect(1, pkg.wheel.size);
        const wheel = await fetch();
        digest = wheel.digest;
        size = wheel.size;
      }
      wheels.push({ name: pkg.name, version: pkg.version, filename: pkg.wheel.filename, digest, size, path: async () => (await fetch()).path, missing, member: false });
    }
    const toBuild = venvPackages(plan).filter((pkg): pkg is BuildPackage => pkg.kind === 'build');
    builds?.expect(toBuild.length);
    for (const pkg of toBuild) wheels.push(await buildPackage(pkg, plan, options, mtime, cleanups, builds));
    return { wheels, close, downloads };
  } catch (error) {
    downloads?.finish();
    await close();
    throw error;
  } finally {
    builds?.finish();
  }
}

/** The venv's layers (step 2: each planned layer from its wheels), from wheels prepared before or now. */
export async function buildVenvLayers(plan: InstallPlan, options: BuildVenvLayersOptions & { prepared?: PreparedWheels }): Promise<VenvLayers> {
  const { store } = options;
  const root = options.venvRoot ?? defaultVenvRoot;
  const scheme = venvScheme(root, options.runtime.version);
  const runtime: VenvRuntime = { interpreter: options.runtime.interpreter, home: options.runtime.home, version: options.runtime.version };
  const mtime = options.mtime ?? buildTimestamp().seconds;
  const prepared = options.prepared ?? (await prepareVenvWheels(plan, options));
  const arch = architectureOfPython(plan.target.arch);
  const downloads = prepared.downloads;
  const compiled = options.progress?.stage(stages.bytecode(arch));
  const written = options.progress?.stage(stages.venvLayers(arch));
  try {
    const layers = options.layers ?? planVenvLayers(plan, { ...options, bytecode: options.compiler });
    const byName = new Map(prepared.wheels.map((wheel) => [normalizeName(wheel.name), wheel]));

    // 2. Each planned layer, from its wheels.
    const reuse = options.reuse ?? true;
    const bytecode = options.compiler ? { compiler: options.compiler, cacheTag: cpythonCacheTag(options.runtime.version), store, reuse, stage: compiled } : undefined;
    const prompt = options.prompt ?? plan.project.name;
    const strip = (options.strip ?? true) ? { store, reuse } : undefined;
    const base = venvKeyBase(options, options.compiler);
    let reused = 0;
    const packages: InstalledPackage[] = [];

    const layerOf = async (planned: VenvLayerPlan, index: number | 'project'): Promise<WrittenLayer> => {
      const group = planned.packages.map((pkg) => {
        const wheel = byName.get(normalizeName(pkg.name));
        if (!wheel) throw new Error(`the venv plan names ${pkg.name}, which the install plan does not have`);
        return wheel;
      });
      for (const wheel of group) packages.push({ name: wheel.name, version: wheel.version, filename: wheel.filename, digest: wheel.digest, layer: index });
      const key = venvLayerKey(base, planned.skeleton ? prompt : false, group);
      if (planned.key !== null && planned.key !== BlobStore.recordName(key)) throw new Error(`venv layer ${planned.label}: its key is not the planned one`);
      const hit = (): void => {
        reused++;
        written?.skip('unchanged');
      };
      return store.cached('venv-layer', key, () => writeGroup(planned.label, group, planned.skeleton), { blobs: (layer) => [layer.descriptor?.digest], reuse, hit });
    };

    const writeGroup = async (label: string, group: ReadyWheel[], skeleton: boolean): Promise<WrittenLayer> => {
      // Start fetching every wheel of the layer; installs below take them as they arrive. The
      // downloads are counted first, so the stage says n of m from its start.
      const missing = await Promise.all(group.map((wheel) => wheel.missing()));
      const fetching = group.filter((_, index) => missing[index]);
      downloads?.expect(fetching.length, fetching.reduce((sum, wheel) => sum + wheel.size, 0));
      for (const wheel of group) void wheel.path().catch(() => undefined);
      const opened: InstalledWheel[] = [];
      try {
        const entries: LayerEntry[] = skeleton ? venvSkeletonEntries(scheme, runtime, { prompt }) : [];
        const filesAt = new Map<string, number>();
        // Wheels are read (and their bytecode compiled) a few at a time; their entries are
        // combined in name order, so the result does not depend on which finished first.
        const installs = await mapLimited(group, 4, async (wheel) => {
          const installed = await installWheel(await wheel.path(), {
            scheme,
            filename: wheel.filename,
            wheelDigest: wheel.digest,
            installer: options.installer,
            directUrl: wheel.directUrl,
            bytecode,
            strip,
          });
          opened.push(installed);
          return installed;
        });
        for (const installed of installs) {
          for (const entry of installed.entries) {
            // Two packages writing one file (it happens, e.g. a shared namespace __init__.py):
            // the later package in name order wins, as a sequential install would leave it.
            const previous = filesAt.get(entry.path);
            if (previous !== undefined && entry.type === 'file') {
              entries[previous] = entry;
              continue;
            }
            if (entry.type === 'file') filesAt.set(entry.path, entries.length);
            entries.push(entry);
          }
        }
        // Every wheel of the layer is here: that stage is over (a later layer's wheels are a
        // second round of it). Bytecode goes on with the next layer's wheels; it finishes with the venv.
        downloads?.finish();
        return await asTask(written, label, (task) => writeLayer(store, entries, { mtime, onBytes: (bytes) => task.advance(bytes) }));
      } finally {
        for (const wheel of opened) wheel.close();
      }
    };

    written?.expect(layers.length);
    const dependencies: WrittenLayer[] = [];
    let project: WrittenLayer | undefined;
    for (const planned of layers) {
      if (planned.role === 'project') project = await layerOf(planned, 'project');
      else dependencies.push(await layerOf(planned, dependencies.length));
    }
    if (!project || dependencies.length === 0) throw new Error('a venv plan has a dependencies layer and a project layer');
    return { dependencies, project, packages, reused, bytecode: bytecode !== undefined };
  } finally {
    for (const stage of [downloads, compiled, written]) stage?.finish();
    if (!options.prepared) await prepared.close();
  }
}

/** Runs at most `count` of the functions given to it at once; a finished one hands its slot to the next waiting. */
function semaphore(count: number): <T>(fn: () => Promise<T>) => Promise<T> {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async <T>(fn: () => Promise<T>): Promise<T> => {
    if (active < count) active++;
    else await new Promise<void>((resolve) => waiting.push(resolve));
    try {
      return await fn();
    } finally {
      const next = waiting.shift();
      if (next) next();
      else active--;
    }
  };
}

/** fn over items with at most `limit` running at once; results in the order of items. The first failure is thrown once all started calls settled. */
async function mapLimited<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (!failure && next < items.length) {
      const index = next++;
      try {
        results[index] = await fn(items[index]!);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure) throw failure.error;
  return results;
}

type BuildPackage = Extract<PlannedPackage, { kind: 'build' }>;

async function buildPackage(pkg: BuildPackage, plan: InstallPlan, options: BuildVenvLayersOptions, mtime: number, cleanups: (() => Promise<void>)[], stage: Stage | undefined): Promise<ReadyWheel> {
  const { store } = options;
  const python = options.buildPython ?? options.runtime.version.split('.').slice(0, 2).join('.');
  const target = plan.target;
  const ready = (wheel: StoredWheel, directUrl: string | undefined): ReadyWheel => ({
    name: pkg.name,
    version: pkg.version ?? '',
    filename: wheel.filename,
    path: async () => store.blobPath(wheel.digest),
    missing: async () => false,
    digest: wheel.digest,
    size: wheel.size,
    directUrl,
    member: pkg.member,
  });

  /** `uv build --wheel` of a source tree or sdist; the wheel must fit the target; kept in the store. */
  const buildFrom = async (source: string): Promise<StoredWheel> => {
    const uv = options.uv ?? (await locateUv({ env: options.env, store, progress: options.progress }));
    const built = await buildWheel(source, { uv, python, env: options.env, sourceDateEpoch: mtime, name: pkg.name });
    cleanups.push(built.cleanup);
    if (!isPureWheel(built.filename)) {
      const targetTags = new Set(compatibleTags(target));
      const fits = target.arch === hostArch() && wheelTags(built.filename).some((tag) => targetTags.has(tag));
      if (!fits) {
        throw new UserError(
          `${pkg.name}${pkg.version ? ` ${pkg.version}` : ''} ${pkg.reason === 'no-binary' ? `is no-binary (built from source, its wheels unused) for ${describeTarget(target)}` : `has no wheel for ${describeTarget(target)}`}, and building it here gives ${built.filename}, which is not for that platform${existingWheels(pkg.name, options.lock)}; ways out: build on a ${target.arch} machine, pin a version of ${pkg.name} with wheels for it, or leave that platform out`,
        );
      }
    }
    const blob = await store.writeStream(createReadStream(built.path), undefined, `built wheel ${built.filename}`);
    return { filename: built.filename, digest: blob.digest, size: blob.size };
  };

  if (pkg.dir) {
    const dir = pkg.dir;
    return ready(await asTask(stage, pkg.name, () => buildFrom(dir)), directUrlJson(dir, options.directUrlFor));
  }
  if (pkg.sdist && (pkg.sdist.url || pkg.sdist.path)) {
    const sdist = pkg.sdist;
    const filename = (sdist.url ?? sdist.path ?? '').split('/').pop()!.split('?')[0]!;
    // The sdist's download is part of its build, as uv counts it.
    const build = () =>
      asTask(stage, pkg.name, async (task) => {
        const fetched = await downloadWheel(
          { name: pkg.name, url: sdist.url, path: sdist.path, filename, hash: sdist.hash, size: sdist.size, indexUrl: pkg.source.registry },
          { store, baseDir: options.projectDir, indexes: options.indexes, env: options.env, task },
        );
        // uv build wants the sdist under its own name.
        const dir = await mkdtemp(join(tmpdir(), 'uvimage-sdist-'));
        cleanups.push(() => rm(dir, { recursive: true, force: true }));
        const source = join(dir, filename);
        await copyFile(fetched.path, source);
        return buildFrom(source);
      });
    // A locked sdist (known by its sha256) builds the same wheel for the same target, Python and
    // timestamp: the wheel built before is used, as a git commit's is, rather than building again.
    const wheel =
      sdist.hash !== undefined && isDigest(sdist.hash)
        ? await store.cached('sdist-wheel', JSON.stringify({ format: 1, sdist: sdist.hash, target, python, mtime }), build, {
            blobs: (cached) => [cached.digest],
            valid: (record) => typeof (record as StoredWheel).filename === 'string',
            reuse: options.reuse,
            hit: () => stage?.skip('built before'),
          })
        : await build();
    return ready(wheel, pkg.member ? directUrlJson(options.projectDir, options.directUrlFor) : undefined);
  }
  if (pkg.source.git !== undefined) {
    // The wheel built before from the locked commit for this target, else a checkout to build.
    const locked = parseGitSource(pkg.source.git, { name: pkg.name, subdirectory: pkg.source.subdirectory });
    const wheel = await store.cached(
      'git-wheel',
      gitWheelKey(locked, target, python, mtime),
      () =>
        asTask(stage, pkg.name, async () => {
          const checkout = await checkoutGit(locked, { store, name: pkg.name, env: options.env });
          cleanups.push(checkout.cleanup);
          return buildFrom(checkout.dir);
        }),
      { blobs: (cached) => [cached.digest], valid: (record) => typeof (record as StoredWheel).filename === 'string', reuse: options.reuse, hit: () => stage?.skip('built before') },
    );
    return ready(wheel, gitDirectUrl(locked));
  }
  throw new UserError(`${pkg.name}${pkg.version ? ` ${pkg.version}` : ''} has no wheel for ${describeTarget(target)} and no source uvimage can build (${describeSource(pkg)})${existingWheels(pkg.name, options.lock)}`);
}

/** A wheel in the store. */
interface StoredWheel {
  filename: string;
  digest: Digest;
  size: number;
}

/**
 * The bytecode compiler for a runtime: a CPython of its minor version on this machine (the given
 * interpreter, else what uv or pyenv or PATH has), with one worker per core. Without one, a
 * warning and undefined: the image then has no .pyc files, which is slower to start but never
 * wrong (a pyc from another minor version would be).
 *
 * With a store, the interpreter found is remembered (record 'pyc-interpreter', per minor version)
 * and tried first next time: looking it up asks `uv python find` twice, which costs a rebuild
 * from 0.1 s to most of a second, more than everything else a one-line change needs. A
 * remembered interpreter that no longer starts or reports another version is looked up afresh.
 */
export async function openBytecodeCompiler(
  runtimeVersion: string,
  options: { interpreter?: string; env?: NodeJS.ProcessEnv; workers?: number; warn?: (line: string) => void; store?: BlobStore } = {},
): Promise<HostPycCompiler | undefined> {
  const minor = runtimeVersion.split('.').slice(0, 2).join('.');
  const workers = options.workers ?? availableParallelism();
  const remember = options.interpreter === undefined ? options.store : undefined;
  const remembered = await remember?.readRecord<string>('pyc-interpreter', minor);
  let compiler = typeof remembered === 'string' ? await openPycCompiler(minor, { interpreter: remembered, env: options.env, workers }) : undefined;
  if (!compiler) {
    compiler = await openPycCompiler(minor, { interpreter: options.interpreter, env: options.env, workers });
    if (compiler) await remember?.writeRecord('pyc-interpreter', minor, compiler.interpreter);
  }
  if (!compiler) {
    (options.warn ?? ((line: string) => process.stderr.write(`warning: ${line}\n`)))(
      `no CPython ${minor} on this machine to compile bytecode with: the image will have no .pyc files and every start compiles its imports (install one with \`uv python install ${minor}\`)`,
    );
  }
  return compiler;
}

/** direct_url.json for a local directory installed non-editable, as uv serializes it. */
export function directUrlJson(dir: string, directUrlFor?: (dir: string) => string): string {
  const url = directUrlFor ? directUrlFor(dir) : pathToFileURL(dir).href;
  return JSON.stringify({ url, dir_info: { editable: false } });
}

function describeSource(pkg: BuildPackage): string {
  const source = pkg.source;
  if (source.git) return `git source ${source.git}`;
  if (source.url) return `url ${source.url}`;
  if (source.path) return `path ${source.path}`;
  if (source.registry) return `registry ${source.registry} has no sdist`;
  return 'no source';
}

function existingWheels(name: string, lock: UvLock | undefined): string {
  if (!lock) return '';
  const wanted = normalizeName(name);
  const filenames = lock.packages.filter((pkg) => normalizeName(pkg.name) === wanted).flatMap((pkg) => pkg.wheels.map((wheel) => wheel.filename));
  if (filenames.length === 0) return '; the lock has no wheels for it';
  const tags = [...new Set(filenames.flatMap((filename) => wheelTags(filename)))].sort();
  return `; wheels exist for: ${tags.join(', ')}`;
}
