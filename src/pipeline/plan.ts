/**
 * The plan stage of `uvimage build`: from the request (src/config/request.ts) and the locked
 * project to a BuildPlan — one typed, JSON-serialisable value that says, per platform, what the
 * image is made of and from which verified source: the target, the base and its packages, the
 * runtime, every package to install and how, the ordered layers with their cache keys, the image
 * config and annotations, and the outputs. `uvimage plan --json` prints it; `build` executes it
 * (src/pipeline/execute.ts) and takes no decision it does not record.
 *
 * Planning reads metadata only (the python-build-standalone table, the signed Debian index or the
 * Debian lock, a pulled base's manifest and config) and writes no layer. The reads come through
 * PlanSources, so planBuild runs on plain data in tests. Decisions that need nothing from the
 * network are all taken first, so a request that cannot be met fails before the first download.
 */
import { readFile, stat } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { UserError } from '../errors.js';
import type { BuildRequest, OutputRequest } from '../config/request.js';
import type { ToolUvimage } from '../config/schema.js';
import { alwaysKept } from '../base/minimal.js';
import { lockPathFor, planDebianBaseFrom, type BaseName, type BytecodeInterpreter, type DebianBasePlan, type PlannedDeb, type ResolvedBasePackages } from '../base/build.js';
import { planDebugImage, type DebugImagePlan } from './debug-image.js';
import { architectures, type Architecture } from '../facts/architectures.js';
import { debianSuites, defaultDebianSuite, type DebianSuite } from '../facts/debian-suites.js';
import type { Digest } from '../oci/digest.js';
import { Annotation, mergeContainerConfig, type ConfigChanges, type ContainerConfig, type ImageConfig, type Layer } from '../oci/image.js';
import { formatPlatform, type Platform } from '../oci/platform.js';
import { buildSettingsFromToolUv, checkInstallOptions, checkLockAllowsPython, planInstall, type InstallOptions, type InstallPlan } from '../python/install-set.js';
import type { ProjectIndex } from '../python/indexes.js';
import type { LockedProject } from '../python/locked-project.js';
import { normalizeName } from '../python/markers.js';
import { matchesSpecifiers } from '../python/pep440.js';
import { chooseStandaloneDownload, standaloneLayerKey, trimRuleNames, type StandaloneDownload } from '../runtime/standalone.js';
import type { PythonTarget } from '../python/target.js';
import { planVenvLayers, type VenvLayerPlan } from '../python/venv-layers.js';
import { redactUrl } from '../net/proxy.js';
import { formatBytes } from '../progress.js';
import { planSourceTree, type SourceTreePlan } from './source-tree.js';

/** Where the virtualenv lives in every image uvimage builds. */
export const venvRoot = '/app/.venv';
/** Where python-build-standalone goes, as the recipe (and `uv python install`'s layout) has it. */
export const standaloneRoot = '/python';

/** The reads planning makes; each is metadata, none writes a layer. */
export interface PlanSources {
  /** python-build-standalone's downloads: the pinned table, or the metadata file the environment names. */
  standaloneDownloads(): Promise<{ downloads: StandaloneDownload[]; source: string }>;
  /** The CPython on this machine that compiles bytecode for a minor version, if there is one. */
  bytecodeInterpreter(minor: string): Promise<BytecodeInterpreter | undefined>;
  /** The packages of a uvimage Debian base, from the signed index or the Debian lock. */
  debianBasePackages(request: { base: BaseName; suite: DebianSuite; arch: Architecture; mirror?: string; lockPath?: string; extraPackages?: string[] }): Promise<ResolvedBasePackages>;
  /** A base from a registry for one platform: its manifest digest, config and layers (not their bytes). */
  pulledBase(reference: string, platform: Platform): Promise<PulledBase>;
  /** The glibc of a pulled base, from its dpkg database. */
  pulledBaseGlibc(base: PulledBase, reference: string): Promise<[number, number]>;
  /** Where a runtime archive is downloaded from: its release URL, or the same path under a mirror. */
  standaloneUrl(download: StandaloneDownload): string;
  /**
   * Refuses a lock uv would refuse (uv lock --check, run with `python` so uv need not search for
   * one), and a uv the project's required-version does not allow; frozen: only the latter.
   */
  checkLock(locked: LockedProject, options: { frozen: boolean; python?: string }): Promise<void>;
  /** One package of a Debian suite's signed index (busybox-static for a debug variant). */
  debianPackage(suite: DebianSuite, arch: Architecture, name: string): Promise<PlannedDeb>;
}

export interface PulledBase {
  manifestDigest: Digest;
  platform: Platform;
  config: ImageConfig;
  layers: Layer[];
}

export type BasePlan =
  | { kind: 'debian'; name: string; plan: DebianBasePlan; mirror?: string }
  | { kind: 'pulled'; name: string; reference: string; manifestDigest: Digest; config: ImageConfig; layers: Layer[] };

export type RuntimePlan =
  | {
      kind: 'standalone';
      version: string;
      /** python-build-standalone's release (its date) and asset, the URL it comes from, its pinned sha256. */
      release: string;
      asset: string;
      url: string;
      sha256: string;
      /** Where the checksum comes from: uvimage's pinned table or the metadata file named in the environment. */
      checksumsFrom: string;
      root: string;
      interpreter: string;
      /** What trimming leaves out, by rule (what each rule removed is known once the archive is read). */
      trim: string[] | false;
      key: string;
    }
  | { kind: 'debian'; version: string; interpreter: string; packages: { name: string; version: string }[] };

/** One layer of the image, in order: what it is, what it is made of, the record it is cached under. */
export interface LayerPlan {
  role: 'base' | 'runtime' | 'dependencies' | 'dependency' | 'project' | 'source' | 'files';
  /** The layer as the build's summary and --json name it: `base: libc`, `dependencies (own layer 1)`, `project` … */
  label: string;
  /** What goes in, as people name it: packages with versions, wheels, the archive, files. */
  inputs: string[];
  /**
   * The store record a built layer is kept under (`records/<kind>/<name>.json`), known before
   * anything is downloaded; null where a wheel built here is part of it (known once built) or
   * the layer is not cached; for a pulled base layer, its blob.
   */
  key: { record: string; name: string } | { blob: Digest } | null;
}

export interface PlatformPlan {
  platform: string;
  target: {
    arch: Architecture;
    python: { version: string; from: string };
    glibc: { version: string; from: string };
  };
  base: BasePlan;
  runtime: RuntimePlan;
  /** The CPython that compiles the venv's bytecode (null: the image has none, with a warning). */
  bytecode: BytecodeInterpreter | null;
  install: InstallPlan;
  venvLayers: VenvLayerPlan[];
  files: { src: string; dest: string }[];
  layers: LayerPlan[];
  /** The image's runtime settings as the image config will hold them (the base's merged with ours). */
  config: ContainerConfig;
  /** What the image config changes over the base's (what execution applies). */
  changes: ConfigChanges;
  /** Why the image runs what it runs: the configured command, the one console script, or the venv's python. */
  command: { words: string[]; from: string };
  /** The debug variant (`<tag>-debug`), when asked for. */
  debug?: DebugImagePlan;
  annotations: Record<string, string>;
}

export interface BuildPlan {
  format: 1;
  project: { name: string; dir: string; workspaceRoot: string; virtual: boolean };
  lock: { path: string; checked: 'fresh' | 'frozen' };
  created: { seconds: number; iso: string; from: string };
  install: InstallOptions;
  /** The project's source tree, copied into the working directory (apps that run from it). */
  source?: SourceTreePlan;
  /** Whether debug information is stripped from the wheels' ELF files (part of every venv layer's key). */
  strip: boolean;
  /** Sonames the closure check accepts missing (allow-missing). */
  allowMissing: string[];
  /** The package indexes downloads use, and where each is declared (credentials are never part of a plan). */
  indexes: { name?: string; url: string; from: string }[];
  platforms: PlatformPlan[];
  /** Annotations of the index, for a multi-platform build. */
  annotations: Record<string, string>;
  outputs: OutputRequest;
}

/** The install options [tool.uvimage] (and flags) ask for, with the workspace's [tool.uv] build settings. */
function installOptions(config: ToolUvimage, locked: LockedProject): InstallOptions {
  return {
    extras: config.extras ?? [],
    allExtras: config['all-extras'] ?? false,
    groups: config.groups ?? [],
    onlyGroups: config['only-groups'] ?? [],
    noDefaultGroups: true,
    allPackages: locked.allPackages,
    packages: locked.packages,
    // uv reads no-binary / no-build from the workspace root, whichever member is installed.
    ...buildSettingsFromToolUv(locked.root.toolUv),
  };
}

/** The Python version asked for, and who asked: a flag or key, else .python-version (the project's, up to the workspace root). */
async function requestedPython(request: BuildRequest, locked: LockedProject): Promise<{ version: string; from: string } | undefined> {
  if (request.config.python) return { version: request.config.python, from: request.origins.python ?? 'tool.uvimage.python' };
  let dir = locked.project.dir;
  for (;;) {
    const file = join(dir, '.python-version');
    const version = await readPythonVersionFile(file);
    if (version) return { version, from: relative(locked.root.dir, file) || '.python-version' };
    if (dir === locked.root.dir || dirname(dir) === dir) return undefined;
    dir = dirname(dir);
  }
}

/** The first version in a .python-version file (uv's format: comments, `cpython-3.12`, `3.12.8`). */
export async function readPythonVersionFile(file: string): Promise<string | undefined> {
  const text = await readFile(file, 'utf8').catch(() => undefined);
  const line = text?.split('\n').map((entry) => entry.trim()).find((entry) => entry && !entry.startsWith('#'));
  if (!line) return undefined;
  const match = /^(?:cpython-|cpython@|python)?(\d+\.\d+(?:\.\d+)?)$/.exec(line);
  if (!match) throw new UserError(`${file}: ${JSON.stringify(line)} is not a Python version like 3.12`);
  return match[1];
}

/**
 * The plan of a build. Local decisions first (Python version, runtime, bytecode interpreter,
 * names in the request), then the metadata reads (Debian index, pulled bases), then the pure
 * layout of every platform's image.
 */
export async function planBuild(request: BuildRequest, locked: LockedProject, sources: PlanSources, indexes: ProjectIndex[] = []): Promise<BuildPlan> {
  const { config } = request;
  const project = locked.project;
  const runtimeKind = config.runtime ?? 'standalone';
  const suite: DebianSuite = config['debian-suite'] ?? defaultDebianSuite;
  const requiresPython = locked.lock.requiresPython ?? project.requiresPython;
  const install = installOptions(config, locked);
  const asked = await requestedPython(request, locked);
  const fallback = await defaultCommand(config, locked);
  const source = await planSourceTree(project, config, { workdir: config.workdir ?? '/app', venvRoot, origin: request.origins.source });

  // 1. The runtime and Python version of every platform: nothing is downloaded for these.
  const table = runtimeKind === 'standalone' ? await sources.standaloneDownloads() : undefined;
  const chosen = request.targets.map(({ arch }) => {
    if (runtimeKind === 'debian') {
      const minor = debianSuites[suite].python;
      if (asked && asked.version !== minor && !asked.version.startsWith(`${minor}.`)) {
        throw new UserError(`Python ${asked.version} was asked for (${asked.from}), but Debian ${suite}'s CPython is ${minor}; use runtime "standalone" or another Debian suite`);
      }
      return { minor, download: undefined };
    }
    const download = chooseStandaloneDownload(table!.downloads, architectures[arch].python, {
      version: asked?.version,
      allows: requiresPython ? (version) => matchesSpecifiers(version, requiresPython) : undefined,
      source: table!.source,
    });
    return { minor: download.version.split('.').slice(0, 2).join('.'), download };
  });

  // 2. The host CPython that compiles bytecode, per minor version.
  const interpreters = new Map<string, BytecodeInterpreter | undefined>();
  for (const { minor } of chosen) if (!interpreters.has(minor)) interpreters.set(minor, await sources.bytecodeInterpreter(minor));
  if (runtimeKind === 'debian') {
    const minor = debianSuites[suite].python;
    if (!interpreters.get(minor)) {
      throw new UserError(`precompiling Debian's Python ${minor} standard library needs a CPython ${minor} on this machine (uv python install ${minor}, or pyenv); none was found`);
    }
  }

  // 3. The lock, as uv judges it (with the Python chosen, which the lock must allow); then what the request asks of it.
  for (const { download } of chosen) if (download) checkLockAllowsPython(locked.lock, download.version);
  await sources.checkLock(locked, { frozen: request.frozen, python: interpreters.get(chosen[0]!.minor)?.interpreter });
  checkInstallOptions(project, locked.lock, install);
  const lockNames = new Set(locked.lock.packages.map((pkg) => normalizeName(pkg.name)));
  for (const name of config['separate-layers'] ?? []) {
    if (!lockNames.has(normalizeName(name))) throw new UserError(`${request.origins['separate-layers'] ?? 'tool.uvimage.separate-layers'}: ${name} is not a package of ${locked.lock.path}`);
  }

  // 4. Each platform: its base (the metadata reads), then the pure layout.
  const platforms: PlatformPlan[] = [];
  for (const [position, { platform, arch }] of request.targets.entries()) {
    const { minor, download } = chosen[position]!;
    const bytecode = interpreters.get(minor) ?? null;
    const base = await planBase(request, arch, platform, runtimeKind, suite, bytecode, sources);

    let runtime: RuntimePlan;
    if (download) {
      const archive = `sha256:${download.sha256}` as Digest;
      const trim = config.trim ?? true;
      runtime = {
        kind: 'standalone',
        version: download.version,
        release: download.release,
        asset: download.asset,
        url: redactUrl(sources.standaloneUrl(download)),
        sha256: download.sha256,
        checksumsFrom: table!.source,
        root: standaloneRoot,
        interpreter: `${standaloneRoot}/bin/python${minor}`,
        trim: trim ? trimRuleNames(minor) : false,
        key: standaloneLayerKey({ archive, trim, mtime: request.created.seconds, root: standaloneRoot }),
      };
    } else {
      const debian = (base as Extract<BasePlan, { kind: 'debian' }>).plan;
      const python = debian.packages.runtime.find((pkg) => pkg.name === `python${minor}`);
      if (!python) throw new Error(`the Debian runtime has no python${minor} package`);
      runtime = {
        kind: 'debian',
        version: python.version.replace(/^\d+:/, '').split(/[-+~]/)[0]!,
        interpreter: `/usr/bin/python${minor}`,
        packages: debian.packages.runtime.map((pkg) => ({ name: pkg.name, version: pkg.version })),
      };
    }

    const glibc = base.kind === 'pulled' ? base.glibc : { version: debianSuites[suite].glibc.join('.'), from: `Debian ${suite}` };
    const target: PythonTarget = { pythonVersion: runtime.version, implementation: 'cpython', os: 'linux', arch: architectures[arch].python, glibc: glibc.version.split('.').map(Number) as [number, number] };
    const installPlan = planInstall(project, locked.lock, target, install);
    const interpreter = runtime.interpreter;
    const venvLayers = planVenvLayers(installPlan, {
      venvRoot,
      runtime: { interpreter, home: interpreter.slice(0, interpreter.lastIndexOf('/')), version: runtime.version },
      mtime: request.created.seconds,
      ownLayer: config['separate-layers'] ? { packages: config['separate-layers'] } : undefined,
      projectDir: project.dir,
      bytecode: bytecode ?? undefined,
      strip: config.strip ?? true,
    });

    const baseConfig = base.kind === 'pulled' ? (base.config.config ?? {}) : debianBaseContainerConfig(base.plan);
    const changes = imageChanges(config, fallback.words, baseConfig, runtime.version);
    const command = { words: [...(changes.Entrypoint ?? []), ...(changes.Cmd ?? [])], from: fallback.from };
    const annotations: Record<string, string> = { [Annotation.created]: request.created.iso };
    if (base.kind === 'pulled') {
      annotations[Annotation.baseName] = base.reference;
      annotations[Annotation.baseDigest] = base.manifestDigest;
    }
    if (request.annotations.source) annotations[Annotation.source] = request.annotations.source;
    if (request.annotations.revision) annotations[Annotation.revision] = request.annotations.revision;

    const files = config.files ?? [];
    const imageConfig = mergeContainerConfig(baseConfig, changes);
    const debugSuite = base.kind === 'debian' ? base.plan.suite : suite;
    const debug = config['debug-image'] ? planDebugImage(await sources.debianPackage(debugSuite, arch, 'busybox-static'), debugSuite, imageConfig) : undefined;
    platforms.push({
      platform: formatPlatform(platform),
      target: {
        arch,
        python: { version: runtime.version, from: runtimeKind === 'debian' ? `Debian ${suite}` : asked ? asked.from : requiresPython ? `the newest requires-python ${requiresPython} allows` : 'the newest known' },
        glibc,
      },
      base: base.kind === 'pulled' ? { kind: 'pulled', name: base.name, reference: base.reference, manifestDigest: base.manifestDigest, config: base.config, layers: base.layers } : base,
      runtime,
      bytecode,
      install: installPlan,
      venvLayers,
      files,
      layers: layerPlans(base, runtime, venvLayers, source, files),
      config: imageConfig,
      changes,
      command,
      ...(debug ? { debug } : {}),
      annotations,
    });
  }

  return {
    format: 1,
    project: { name: project.name, dir: project.dir, workspaceRoot: locked.root.dir, virtual: !project.hasProjectTable },
    lock: { path: locked.lock.path, checked: request.frozen ? 'frozen' : 'fresh' },
    created: { seconds: request.created.seconds, iso: request.created.iso, from: request.created.from },
    install,
    source,
    strip: config.strip ?? true,
    allowMissing: config['allow-missing'] ?? [],
    indexes: indexes.map((index) => ({ ...(index.name ? { name: index.name } : {}), url: redactUrl(index.url), from: index.from })),
    platforms,
    annotations: { [Annotation.created]: request.created.iso },
    outputs: request.outputs,
  };
}

type PlannedBase = Extract<BasePlan, { kind: 'debian' }> | (Extract<BasePlan, { kind: 'pulled' }> & { glibc: { version: string; from: string } });

async function planBase(
  request: BuildRequest,
  arch: Architecture,
  platform: Platform,
  runtimeKind: 'standalone' | 'debian',
  suite: DebianSuite,
  bytecode: BytecodeInterpreter | null,
  sources: PlanSources,
): Promise<PlannedBase> {
  const { config } = request;
  if (config.base) {
    const pulled = await sources.pulledBase(config.base, platform);
    const glibc = config['base-glibc']
      ? { version: config['base-glibc'], from: request.origins['base-glibc'] ?? 'tool.uvimage.base-glibc' }
      : { version: (await sources.pulledBaseGlibc(pulled, config.base)).join('.'), from: "the base's dpkg database" };
    return { kind: 'pulled', name: config.base, reference: config.base, manifestDigest: pulled.manifestDigest, config: pulled.config, layers: pulled.layers, glibc };
  }
  const base: BaseName = runtimeKind === 'debian' ? 'python3' : config.flavour ?? 'cc';
  const lockPath = lockPathFor(config['debian-lock'] && join(request.pyproject.dir, config['debian-lock']), arch);
  const resolved = await sources.debianBasePackages({ base, suite, arch, mirror: config['debian-mirror'], lockPath, extraPackages: config['debian-packages'] });
  const plan = planDebianBaseFrom(resolved, { base, suite, arch, mtime: request.created.seconds, bytecode: bytecode ?? undefined });
  return { kind: 'debian', name: `uvimage ${runtimeKind === 'debian' ? 'cc + python3' : base} (Debian ${suite})`, plan, mirror: config['debian-mirror'] };
}

/** The container config of a uvimage Debian base as the app sees it: the base's own entrypoint (python3's) is not the app's. */
function debianBaseContainerConfig(plan: DebianBasePlan): ContainerConfig {
  const { Entrypoint: _entrypoint, ...changes } = plan.changes;
  return mergeContainerConfig({}, changes);
}

/** The ordered layers of one platform's image, for the plan and for comparing with what was built. */
function layerPlans(base: PlannedBase, runtime: RuntimePlan, venvLayers: VenvLayerPlan[], source: SourceTreePlan | undefined, files: { src: string; dest: string }[]): LayerPlan[] {
  const layers: LayerPlan[] = [];
  if (base.kind === 'pulled') {
    for (const layer of base.layers) layers.push({ role: 'base', label: 'base', inputs: [`${base.reference} ${layer.descriptor.digest}`], key: { blob: layer.descriptor.digest } });
  } else {
    // minimal: the flavour's packages are candidates, kept when the image's ELF files need them
    // (decided once the other layers exist), so its layers have no key before then.
    const selected = base.plan.base === 'minimal';
    const always = new Set(alwaysKept(base.plan.suite));
    for (const layer of base.plan.layers) {
      const inputs = layer.packages.map((pkg) => `${pkg.name}=${pkg.version}${selected && layer.group !== 'extra' && !always.has(pkg.name) ? ' (if needed)' : ''}`);
      layers.push({ role: 'base', label: `base: ${layer.group}`, inputs, key: layer.key && !selected ? { record: 'debian-layers', name: layer.key } : null });
    }
    const runtimeLayer = base.plan.runtimeLayer;
    if (runtimeLayer) {
      layers.push({ role: 'runtime', label: 'runtime', inputs: runtimeLayer.packages.map((pkg) => `${pkg.name}=${pkg.version}`), key: runtimeLayer.key ? { record: 'debian-layers', name: runtimeLayer.key } : null });
    }
  }
  if (runtime.kind === 'standalone') layers.push({ role: 'runtime', label: 'runtime', inputs: [runtime.asset], key: { record: 'standalone-layer', name: runtime.key } });
  for (const [index, layer] of venvLayers.entries()) {
    layers.push({
      role: layer.role,
      label: layer.role === 'dependency' ? `dependencies (own layer ${index})` : layer.role,
      inputs: layer.packages.map((pkg) => pkg.wheel ?? `${pkg.name}${pkg.version ? ` ${pkg.version}` : ''} (built)`),
      key: layer.key ? { record: 'venv-layer', name: layer.key } : null,
    });
  }
  if (source) layers.push({ role: 'source', label: 'source', inputs: [`${source.dir} -> ${source.dest}: ${source.files} files, ${formatBytes(source.bytes)} (${source.rules})`], key: null });
  if (files.length > 0) layers.push({ role: 'files', label: 'files', inputs: files.map((file) => `${file.src} -> ${file.dest}`), key: null });
  return layers;
}

/**
 * What the image runs when [tool.uvimage] says nothing: the project's one console script; without
 * one, the venv's python — with `-m <module>` when the project's top-level module has a
 * __main__.py (src/ layout or flat). Several console scripts leave the choice to the user: an error.
 */
async function defaultCommand(config: ToolUvimage, locked: LockedProject): Promise<{ words: string[]; from: string }> {
  if (config.cmd || config.entrypoint) return { words: [], from: config.entrypoint ? 'tool.uvimage.entrypoint' : 'tool.uvimage.cmd' };
  const scripts = Object.keys(locked.project.scripts);
  if (scripts.length > 1) {
    throw new UserError(
      `${join(locked.project.dir, 'pyproject.toml')}: no command for the image, and the project has ${scripts.length} console scripts (${scripts.join(', ')}): set tool.uvimage.cmd or entrypoint (or --cmd)`,
    );
  }
  if (scripts.length === 1) return { words: [`${venvRoot}/bin/${scripts[0]!}`], from: `the project's console script ${scripts[0]!}` };
  const module = locked.project.name.toLowerCase().replace(/[-.]+/g, '_');
  for (const dir of ['src', '.']) {
    const main = join(locked.project.dir, dir, module, '__main__.py');
    if (await stat(main).then((info) => info.isFile(), () => false)) {
      return { words: [`${venvRoot}/bin/python`, '-m', module], from: `${relative(locked.project.dir, main)} (no console script)` };
    }
  }
  return { words: [`${venvRoot}/bin/python`], from: 'the venv\'s python (no console script, no __main__.py)' };
}

/**
 * The image's runtime settings: the command (configured, else the default command), PATH with the
 * venv first, VIRTUAL_ENV, a nonroot user, /app as the working directory.
 */
function imageChanges(config: ToolUvimage, fallback: string[], base: ContainerConfig, pythonVersion: string): ConfigChanges {
  const minor = pythonVersion.split('.').slice(0, 2).join('.');
  const sitePackages = `${venvRoot}/lib/python${minor}/site-packages`;
  const expand = (words: string[] | undefined) => words?.map((word) => word.replaceAll('{site-packages}', sitePackages).replaceAll('{venv}', venvRoot));
  let entrypoint = expand(config.entrypoint);
  const cmd = expand(config.cmd);
  if (!entrypoint && !cmd) entrypoint = fallback;
  const basePath = base.Env?.find((entry) => entry.startsWith('PATH='))?.slice(5) ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
  const env = [`PATH=${venvRoot}/bin:${basePath}`, `VIRTUAL_ENV=${venvRoot}`, 'SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt'];
  for (const [name, value] of Object.entries(config.env ?? {})) env.push(`${name}=${value}`);
  const changes: ConfigChanges = {
    Env: env,
    User: config.user ?? '65532',
    WorkingDir: config.workdir ?? '/app',
    Labels: config.labels,
    ExposedPorts: config.expose ? Object.fromEntries(config.expose.map((port) => [typeof port === 'number' || !port.includes('/') ? `${port}/tcp` : port, {}])) : undefined,
  };
  if (entrypoint) changes.Entrypoint = entrypoint;
  changes.Cmd = cmd;
  return changes;
}
