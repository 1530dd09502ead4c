/**
 * The produce stage: a BuildPlan into an image (or an index of several), streaming every layer
 * into the store. Each step follows what the plan recorded — the .debs and layers of the base, the
 * runtime archive, the wheels and the venv layers, the files, the config — and where a step can
 * recompute a planned value (a layer's key, the image config) it checks that it got the plan's.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { posix } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { resolve } from 'node:path';
import { UserError } from '../errors.js';
import { minimalBasePlan, writeDebianBase, type BuiltDebianBase } from '../base/build.js';
import type { MinimalBaseSelection } from '../base/minimal.js';
import { architectures } from '../facts/architectures.js';
import type { Digest } from '../oci/digest.js';
import { directoryEntries } from '../oci/directory-entries.js';
import {
  Annotation,
  assembleImage,
  assembleIndex,
  extendConfig,
  type AddedLayer,
  type Artifact,
  type ContainerConfig,
  type Image,
  type ImageConfig,
  type Layer,
} from '../oci/image.js';
import type { LayerEntry } from '../oci/layer-entry.js';
import { writeLayer, type WrittenLayer } from '../oci/layer-writer.js';
import { parsePlatform } from '../oci/platform.js';
import type { BlobStore } from '../oci/store.js';
import type { ProjectIndex } from '../python/indexes.js';
import type { UvLock } from '../python/lock.js';
import { fetchStandalone, writeStandaloneLayer, type TrimmedGroup } from '../runtime/standalone.js';
import { buildVenvLayers, prepareVenvWheels, type BuildVenvLayersOptions, type PreparedWheels } from '../python/venv-layers.js';
import type { BuildPlan, PlatformPlan } from './plan.js';
import { venvRoot } from './plan.js';
import { checkClosure, closureError, type ClosureReport } from './closure.js';
import { writeDebugImage } from './debug-image.js';
import { minimalBaseSelection } from './minimal-base.js';
import { sourceTreeEntries } from './source-tree.js';
import type { BytecodeCompilers, PipelineContext } from './sources.js';

/** What was built for one platform, for the summary and --json: read from what execution did, not copied from the plan. */
export interface PlatformReport {
  platform: string;
  python: string;
  runtime: 'standalone' | 'debian';
  base: string;
  layers: { role: string; digest: Digest; size: number }[];
  trimmed?: TrimmedGroup[];
  packages: number;
  /** The wheels installed, by layer. */
  wheels: { name: string; version: string; filename: string; layer: number | 'project' }[];
  /** The .debs the base was written from. */
  debs: { name: string; version: string; digest: Digest }[];
  /** The runtime settings of the image config written. */
  config: ContainerConfig;
  /** What the closure check found: every ELF file's libraries in the image (misses accepted by allow-missing listed). */
  closure: ClosureReport;
  /** The minimal flavour's choice: which of cc's packages stayed, and what of libc6 was left out. */
  minimal?: MinimalBaseSelection;
}

export interface ExecutedBuild {
  artifact: Artifact;
  reports: PlatformReport[];
  /** The debug variant (`<tag>-debug`), when the plan has one. */
  debug?: Artifact;
}

export interface ExecuteContext extends PipelineContext {
  compilers: BytecodeCompilers;
  /** The lock, for naming the wheels that exist when a package cannot be built for a target. */
  lock?: UvLock;
  /** The project's package indexes, with what finds their credentials (planned as names and redacted URLs). */
  indexes?: ProjectIndex[];
}

export async function executePlan(plan: BuildPlan, context: ExecuteContext): Promise<ExecutedBuild> {
  // With a layer cache in a registry, every planned layer's record is asked for at once (the
  // lookups are remembered), while the wheels are built, rather than one by one as layers come.
  const shared = context.store.shared;
  for (const layer of plan.platforms.flatMap((platform) => platform.layers)) {
    const key = layer.key;
    if (key && 'record' in key && shared?.shares(key.record)) void shared.lookupByName(key.record, key.name);
  }
  // Every platform's wheels first: what must be built is built before any layer is written, so a
  // package that cannot be built for a target stops the build before it has written anything.
  const prepared: { options: BuildVenvLayersOptions; wheels: PreparedWheels }[] = [];
  try {
    for (const platformPlan of plan.platforms) {
      const options = await venvOptions(plan, platformPlan, context);
      prepared.push({ options, wheels: await prepareVenvWheels(platformPlan.install, options) });
    }
    const images: Image[] = [];
    const debugImages: Image[] = [];
    const reports: PlatformReport[] = [];
    for (const [index, platformPlan] of plan.platforms.entries()) {
      const { image, report, debug } = await executePlatform(plan, platformPlan, prepared[index]!, context);
      images.push(image);
      reports.push(report);
      if (debug) debugImages.push(debug);
    }
    // Every image's ELF files have their libraries inside it, or nothing is written.
    if (reports.some((report) => report.closure.missing.length > 0)) {
      const suites = plan.platforms.map((platform) => (platform.base.kind === 'debian' ? platform.base.plan.suite : undefined));
      throw closureError(reports.map((report) => report.closure), suites.find(Boolean));
    }
    const built = await assembleArtifact(plan, images, reports, context);
    if (debugImages.length === 0) return built;
    return { ...built, debug: (await assembleArtifact(plan, debugImages, reports, context)).artifact };
  } finally {
    for (const { wheels } of prepared) await wheels.close();
  }
}

async function assembleArtifact(plan: BuildPlan, images: Image[], reports: PlatformReport[], context: ExecuteContext): Promise<ExecutedBuild> {
  const mediaTypes = plan.outputs.mediaTypes;
  if (images.length === 1) return { artifact: { kind: 'image', image: images[0]! }, reports };
  const index = assembleIndex(images, { annotations: plan.annotations, flavour: mediaTypes });
  await context.store.putBytes(index.index.bytes);
  return { artifact: { kind: 'index', index }, reports };
}

/** How a platform's venv is built: its runtime, its bytecode compiler, where the project is, its indexes. */
async function venvOptions(plan: BuildPlan, p: PlatformPlan, context: ExecuteContext): Promise<BuildVenvLayersOptions> {
  const compiler = p.bytecode ? await context.compilers.get(p.bytecode) : undefined;
  const interpreter = p.runtime.interpreter;
  const workspaceRoot = plan.project.workspaceRoot;
  return {
    store: context.store,
    venvRoot,
    runtime: { interpreter, home: interpreter.slice(0, interpreter.lastIndexOf('/')), version: p.runtime.version },
    projectDir: plan.project.dir,
    compiler,
    progress: context.progress,
    mtime: plan.created.seconds,
    env: context.env,
    lock: context.lock,
    indexes: context.indexes,
    // The CPython that compiles bytecode is of the runtime's minor version: uv builds with it too.
    buildPython: compiler?.interpreter,
    layers: p.venvLayers,
    strip: plan.strip,
    // uv records the build machine's path; the image records where the project lives in it, so
    // the same project gives the same bytes on every machine.
    directUrlFor: (dir) => `file:///app${dir === workspaceRoot ? '' : `/${dir.slice(workspaceRoot.length + 1)}`}`,
  };
}

async function executePlatform(
  plan: BuildPlan,
  p: PlatformPlan,
  venv: { options: BuildVenvLayersOptions; wheels: PreparedWheels },
  context: ExecuteContext,
): Promise<{ image: Image; report: PlatformReport; debug?: Image }> {
  const { store, progress, env } = context;
  const mtime = plan.created.seconds;
  const platform = parsePlatform(p.platform);
  const roles: string[] = [];
  const added: AddedLayer[] = [];
  const annotations = { ...p.annotations };

  // The base (for minimal, the candidate base: what stays is chosen once the other layers exist).
  const runtime = p.runtime;
  let base: WrittenBase;
  if (p.base.kind === 'pulled') {
    base = { config: p.base.config, layers: p.base.layers, roles: p.base.layers.map(() => 'base'), debs: [] };
  } else {
    const debian = p.base.plan;
    const compiler = debian.runtimeLayer ? await context.compilers.get(debian.runtimeLayer.compiler) : undefined;
    base = writtenBase(await writeDebianBase(debian, { store, progress, env, mediaTypes: plan.outputs.mediaTypes, compiler }));
  }

  // The runtime.
  let trimmed: TrimmedGroup[] | undefined;
  if (runtime.kind === 'standalone') {
    // The archive is fetched only when the layer is written, not when a cache has the layer.
    const download = { version: runtime.version, arch: architectures[p.target.arch].python, release: runtime.release, asset: runtime.asset, sha256: runtime.sha256 };
    const archive = `sha256:${runtime.sha256}` as Digest;
    const fetchArchive = () => fetchStandalone(download, store, { env, progress });
    const layer = await writeStandaloneLayer(store, { archive, fetchArchive, version: runtime.version, trim: runtime.trim !== false, mtime, root: runtime.root, plannedKey: runtime.key, progress });
    if (layer.interpreter !== runtime.interpreter) throw new UserError(`${runtime.asset}: its interpreter is ${layer.interpreter}, not ${runtime.interpreter}`);
    trimmed = layer.removed;
    if (trimmed.length > 0) annotations[Annotation.runtimeTrimmed] = JSON.stringify(trimmed);
    added.push({ layer: layer.layer, history: { created_by: `uvimage: python-build-standalone ${runtime.asset}`, comment: 'uvimage' } });
    roles.push('runtime');
  }

  // The virtualenv: the locked packages for this target, then the project.
  const venvLayers = await buildVenvLayers(p.install, { ...venv.options, prepared: venv.wheels });
  for (const [index, layer] of venvLayers.dependencies.entries()) {
    added.push({ layer, history: { created_by: `uvimage: dependencies${index === 0 ? '' : ` (own layer ${index})`}`, comment: 'uvimage' } });
    roles.push(index === 0 ? 'dependencies' : `dependencies (own layer ${index})`);
  }
  added.push({ layer: venvLayers.project, history: { created_by: `uvimage: project ${plan.project.name}`, comment: 'uvimage' } });
  roles.push('project');

  if (plan.source) {
    const { entries } = await sourceTreeEntries(plan.source, venvRoot);
    const files = entries.filter((entry) => entry.type === 'file').length;
    if (files !== plan.source.files) throw new UserError(`${plan.source.dir}: the source tree changed while building (${plan.source.files} files planned, ${files} now); build again`);
    added.push({ layer: await writeLayer(store, entries, { mtime }), history: { created_by: `uvimage: source tree ${plan.source.dest}`, comment: 'uvimage' } });
    roles.push('source');
  }

  if (p.files.length > 0) {
    added.push({ layer: await filesLayer(store, plan.project.dir, p.files, mtime), history: { created_by: 'uvimage: files', comment: 'uvimage' } });
    roles.push('files');
  }

  const runtimeRoot = runtime.kind === 'standalone' ? runtime.root : '/usr/lib';
  const pythonInterpreters = [
    { root: venvRoot, interpreter: `${venvRoot}/bin/python` },
    { root: runtimeRoot, interpreter: runtime.interpreter },
  ];
  const workdir = p.config.WorkingDir ?? '/';
  let minimal: MinimalBaseSelection | undefined;
  if (p.base.kind === 'debian' && p.base.plan.base === 'minimal') {
    const debian = p.base.plan;
    const extra = base.layers.filter((_, index) => base.roles[index] === 'base: extra');
    const candidateBase = base.layers.filter((_, index) => base.roles[index] !== 'base: extra');
    minimal = await minimalBaseSelection(debian, { candidateBase, others: [...extra, ...added.map((entry) => entry.layer)] }, { store, blobs: context.blobs, pythonInterpreters, workdir, progress });
    base = writtenBase(await writeDebianBase(minimalBasePlan(debian, minimal), { store, progress, env, mediaTypes: plan.outputs.mediaTypes }));
  }
  roles.unshift(...base.roles);
  const { config: baseConfig, layers: baseLayers, debs } = base;

  const planned = p.layers.map((layer) => layer.label);
  if (!isDeepStrictEqual(roles, planned)) throw new Error(`${p.platform}: built layers ${roles.join(', ')}; the plan has ${planned.join(', ')}`);
  const imageConfig = extendConfig({ base: baseConfig, platform, added, changes: p.changes, created: plan.created.iso });
  if (!isDeepStrictEqual(imageConfig.config, p.config)) throw new Error(`${p.platform}: the image config is not the planned one`);
  const layers = [...baseLayers, ...added.map((entry) => entry.layer)];
  const image = assembleImage({ platform, config: imageConfig, layers, annotations, flavour: plan.outputs.mediaTypes });
  await store.putBytes(image.config.bytes);
  await store.putBytes(image.manifest.bytes);
  const closure = await checkClosure(layers, {
    arch: p.target.arch,
    platform: p.platform,
    suite: p.base.kind === 'debian' ? p.base.plan.suite : undefined,
    mirror: p.base.kind === 'debian' ? p.base.mirror : undefined,
    allowMissing: plan.allowMissing,
    pythonInterpreters,
    stdlibModules: new RegExp(`^${runtimeRoot}/(lib/)?python3\\.\\d+/lib-dynload/`),
    workdir,
    store,
    blobs: context.blobs,
    env,
    progress,
  });
  let debug: Image | undefined;
  if (p.debug) {
    debug = await writeDebugImage(p.debug, { config: imageConfig, platform, layers: image.layers, annotations }, { store, mtime, created: plan.created.iso, mediaTypes: plan.outputs.mediaTypes, progress });
    const debugConfig = (JSON.parse(debug.config.bytes.toString('utf8')) as ImageConfig).config;
    if (!isDeepStrictEqual(debugConfig, p.debug.config)) throw new Error(`${p.platform}: the debug variant's config is not the planned one`);
  }
  for (const finding of closure.unloadableModules) {
    progress.info(`warning: ${p.platform}: the runtime's ${finding.neededBy.map((needer) => posix.basename(needer.chain[0] ?? needer.file)).join(', ')} cannot load: ${finding.soname} is not in the image`);
  }
  return {
    image,
    debug,
    report: {
      platform: p.platform,
      python: runtime.version,
      runtime: runtime.kind,
      base: p.base.name,
      layers: layers.map((layer, index) => ({ role: roles[index]!, digest: layer.descriptor.digest, size: layer.descriptor.size })),
      trimmed,
      packages: venvLayers.packages.length,
      wheels: venvLayers.packages.map((pkg) => ({ name: pkg.name, version: pkg.version, filename: pkg.filename, layer: pkg.layer })),
      debs,
      config: imageConfig.config ?? {},
      closure,
      ...(minimal ? { minimal } : {}),
    },
  };
}

/** A base as the image uses it: its config, its layers and their roles, the .debs it was written from. */
interface WrittenBase {
  config: ImageConfig;
  layers: Layer[];
  roles: string[];
  debs: PlatformReport['debs'];
}

function writtenBase(built: BuiltDebianBase): WrittenBase {
  const config = JSON.parse(built.image.config.bytes.toString('utf8')) as ImageConfig;
  // The base's own Entrypoint (python3 for the Debian runtime) is not the app's.
  if (config.config) delete config.config.Entrypoint;
  return {
    config,
    layers: built.image.layers,
    roles: built.layers.map((layer) => (layer.group === 'runtime' ? 'runtime' : `base: ${layer.group}`)),
    debs: built.packages.map((pkg) => ({ name: pkg.name, version: pkg.version, digest: pkg.digest })),
  };
}

/** Extra files and directories from [tool.uvimage] files, relative to the project. */
async function filesLayer(store: BlobStore, projectDir: string, files: { src: string; dest: string }[], mtime: number): Promise<WrittenLayer> {
  const entries: LayerEntry[] = [];
  for (const { src, dest } of files) {
    const path = resolve(projectDir, src);
    const stats = await stat(path).catch(() => undefined);
    if (!stats) throw new UserError(`tool.uvimage.files: ${src} does not exist in ${projectDir}`);
    const target = dest.replace(/^\/+|\/+$/g, '');
    if (stats.isDirectory()) entries.push(...(await directoryEntries(path, { prefix: target })));
    else entries.push({ type: 'file', path: target, mode: stats.mode & 0o777, size: stats.size, open: () => createReadStream(path) });
  }
  return writeLayer(store, entries, { mtime });
}
