/**
 * `uvimage build`: a uv project into an image, per target platform:
 *
 *   base layers      uvimage's Debian flavour (default cc on trixie), or a base pulled from a registry
 *   runtime          python-build-standalone at /python (default), or Debian's CPython (in the base)
 *   dependencies     the locked third-party packages as a venv at /app/.venv (+ own layers if asked)
 *   project          the project and its workspace members, non-editable
 *   files            extra files from [tool.uvimage] files, if any
 *
 * ordered by how often they change, so a code change rebuilds and pushes only the project layer.
 * Every layer is cached by its inputs; the same inputs give the same digests.
 */
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { createGunzip } from 'node:zlib';
import type { Progress } from '../progress.js';
import type { ToolUvimage } from '../config/schema.js';
import { buildDebianBase, lockPathFor } from '../debian/build-base.js';
import { architectures, parseArchitecture } from '../facts/architectures.js';
import { debianSuites, defaultDebianSuite, type DebianSuite } from '../facts/debian-suites.js';
import { readTar } from '../oci/tar-reader.js';
import { UserError } from '../errors.js';
import { directoryEntries } from '../oci/directory-entries.js';
import type { Digest } from '../oci/digest.js';
import {
  Annotation,
  assembleImage,
  assembleIndex,
  buildTimestamp,
  extendConfig,
  type AddedLayer,
  type Artifact,
  type ConfigChanges,
  type Image,
  type ImageConfig,
  type Layer,
  type MediaTypeFlavour,
} from '../oci/image.js';
import type { LayerEntry } from '../oci/layer-entry.js';
import { layerEncoding, writeLayer, type WrittenLayer } from '../oci/layer-writer.js';
import { formatPlatform, type Platform } from '../oci/platform.js';
import type { BlobSource } from '../oci/sink.js';
import type { BlobStore } from '../oci/store.js';
import type { RegistryClient } from '../registry/client.js';
import { pullBaseImage, type BaseImage } from '../registry/pull.js';
import { planInstall, type InstallOptions } from '../python/install-set.js';
import { loadLockedProject } from '../python/locked-project.js';
import { matchesSpecifiers } from '../python/pep440.js';
import type { PythonTarget } from '../python/target.js';
import { chooseStandaloneDownload, fetchStandalone, loadStandaloneDownloads, openStandaloneRuntime, type StandaloneDownload, type TrimmedGroup } from '../python/standalone.js';
import { buildVenvLayers, openBytecodeCompiler } from '../python/venv-layers.js';

export const venvRoot = '/app/.venv';

export interface ProjectBuildOptions {
  projectDir: string;
  platforms: Platform[];
  /** [tool.uvimage] with the flags applied over it. */
  config: ToolUvimage;
  install: InstallOptions;
  frozen: boolean;
  store: BlobStore;
  client: RegistryClient;
  blobs: BlobSource;
  progress: Progress;
  flavour: MediaTypeFlavour;
  annotations: { source?: string; revision?: string };
  env?: NodeJS.ProcessEnv;
}

/** What went into one platform's image, for the summary and --json. */
export interface PlatformReport {
  platform: string;
  python: string;
  runtime: 'standalone' | 'debian';
  base: string;
  layers: { role: string; digest: Digest; size: number }[];
  trimmed?: TrimmedGroup[];
  packages: number;
}

export interface ProjectBuild {
  artifact: Artifact;
  reports: PlatformReport[];
}

export async function buildProject(options: ProjectBuildOptions): Promise<ProjectBuild> {
  const { config, store } = options;
  const env = options.env ?? process.env;
  if (options.platforms.length === 0) throw new UserError('no platform to build for');
  const seen = new Set<string>();
  for (const platform of options.platforms) {
    const key = formatPlatform(platform);
    if (seen.has(key)) throw new UserError(`--platform lists ${key} twice`);
    seen.add(key);
  }
  const locked = await loadLockedProject(options.projectDir, { frozen: options.frozen });
  const project = locked.project;
  const created = buildTimestamp(env);
  const runtimeKind = config.runtime ?? 'standalone';
  const suite: DebianSuite = config['debian-suite'] ?? defaultDebianSuite;
  const requested = config.python ?? (await readPythonVersionFile(project.dir));
  const requiresPython = locked.lock.requiresPython ?? project.requiresPython;

  const images: Image[] = [];
  const reports: PlatformReport[] = [];
  for (const platform of options.platforms) {
    const debianArch = parseArchitecture(formatPlatform(platform));
    const arch = architectures[debianArch].python;
    const added: AddedLayer[] = [];
    const roles: string[] = [];

    // The base: its config (Env, user …) and layers, and its glibc, which caps manylinux.
    let baseConfig: ImageConfig;
    let baseLayers: Layer[];
    let baseName: string;
    let glibc: [number, number];
    let pythonVersion: string;
    let interpreter: string;
    let trimmed: TrimmedGroup[] | undefined;
    const annotations: Record<string, string> = { [Annotation.created]: created.iso };
    // The Python version is settled before any download, so a version no runtime has fails at once.
    let standaloneDownload: StandaloneDownload | undefined;
    if (runtimeKind === 'debian') {
      const minor = debianSuites[suite].python;
      if (requested && requested !== minor && !requested.startsWith(`${minor}.`)) {
        throw new UserError(`Python ${requested} was asked for, but Debian ${suite}'s CPython is ${minor}; use runtime "standalone" or another Debian suite`);
      }
    } else {
      const { downloads, source } = await loadStandaloneDownloads(env);
      standaloneDownload = chooseStandaloneDownload(downloads, arch, {
        version: requested,
        allows: requiresPython ? (version) => matchesSpecifiers(version, requiresPython) : undefined,
        source,
      });
    }
    if (config.base) {
      if (runtimeKind === 'debian') throw new UserError('runtime "debian" brings its own Debian base; it cannot be combined with base (use runtime "standalone")');
      const pulled = await pullBaseImage(config.base, platform, store, { client: options.client, progress: options.progress });
      baseConfig = pulled.config;
      baseLayers = pulled.layers;
      baseName = config.base;
      annotations[Annotation.baseName] = config.base;
      annotations[Annotation.baseDigest] = pulled.manifestDigest;
      glibc = config['base-glibc'] ? parseGlibc(config['base-glibc']) : await glibcOfBase(pulled, store, options.blobs, config.base);
    } else {
      const built = await buildDebianBase({
        base: runtimeKind === 'debian' ? 'python3' : config.flavour ?? 'cc',
        suite,
        arch: debianArch,
        store,
        mirror: config['debian-mirror'],
        lockPath: lockPathFor(config['debian-lock'] && resolve(project.dir, config['debian-lock']), debianArch),
        progress: options.progress,
        env,
      });
      baseConfig = JSON.parse(built.image.config.bytes.toString('utf8')) as ImageConfig;
      // The base's own Entrypoint (python3 for the Debian runtime) is not the app's.
      if (baseConfig.config) delete baseConfig.config.Entrypoint;
      baseLayers = built.image.layers;
      baseName = `uvimage ${runtimeKind === 'debian' ? 'cc + python3' : config.flavour ?? 'cc'} (Debian ${suite})`;
      glibc = [...debianSuites[suite].glibc];
      for (const layer of built.layers) roles.push(`base: ${layer.group}`);
      if (runtimeKind === 'debian') {
        const python = built.packages.find((pkg) => pkg.name === `python${debianSuites[suite].python}`);
        if (!python) throw new Error(`the Debian runtime has no python${debianSuites[suite].python} package`);
        pythonVersion = python.version.replace(/^\d+:/, '').split(/[-+~]/)[0]!;
        interpreter = `/usr/bin/python${debianSuites[suite].python}`;
      }
    }
    if (!config.base && roles.length < baseLayers.length) roles.push(...baseLayers.slice(roles.length).map(() => 'base'));
    if (config.base) roles.push(...baseLayers.map(() => 'base'));

    if (runtimeKind === 'debian') {
      pythonVersion = pythonVersion!;
      interpreter = interpreter!;
    } else {
      const download = standaloneDownload!;
      pythonVersion = download.version;
      const archive = await fetchStandalone(download, store, { env, progress: options.progress });
      const runtimeLayer = await standaloneRuntimeLayer(store, archive, pythonVersion, config.trim ?? true, created.seconds, options.progress);
      trimmed = runtimeLayer.removed;
      interpreter = runtimeLayer.interpreter;
      added.push({ layer: runtimeLayer.layer, history: { created_by: `uvimage: python-build-standalone ${download.asset}`, comment: 'uvimage' } });
      roles.push('runtime');
    }

    // The virtualenv: the locked packages for this target, then the project.
    const target: PythonTarget = { pythonVersion, implementation: 'cpython', os: 'linux', arch, glibc };
    const plan = planInstall(project, locked.lock, target, options.install);
    const compiler = await openBytecodeCompiler(pythonVersion, { env, store, warn: (line) => options.progress.info(`warning: ${line}`) });
    try {
      const venv = await buildVenvLayers(plan, {
        store,
        venvRoot,
        runtime: { interpreter, home: interpreter.slice(0, interpreter.lastIndexOf('/')), version: pythonVersion },
        projectDir: project.dir,
        compiler,
        progress: options.progress,
        mtime: created.seconds,
        env,
        lock: locked.lock,
        // The CPython that compiles bytecode is of the runtime's minor version: uv builds with it too.
        buildPython: compiler?.interpreter,
        ownLayer: config['separate-layers'] ? { packages: config['separate-layers'] } : undefined,
        // uv records the build machine's path; the image records where the project lives in it, so
        // the same project gives the same bytes on every machine.
        directUrlFor: (dir) => `file:///app${dir === locked.root.dir ? '' : `/${dir.slice(locked.root.dir.length + 1)}`}`,
      });
      for (const [index, layer] of venv.dependencies.entries()) {
        added.push({ layer, history: { created_by: `uvimage: dependencies${index === 0 ? '' : ` (own layer ${index})`}`, comment: 'uvimage' } });
        roles.push(index === 0 ? 'dependencies' : `dependencies (own layer ${index})`);
      }
      added.push({ layer: venv.project, history: { created_by: `uvimage: project ${project.name}`, comment: 'uvimage' } });
      roles.push('project');
      if (config.files?.length) {
        added.push({ layer: await filesLayer(store, project.dir, config.files, created.seconds), history: { created_by: 'uvimage: files', comment: 'uvimage' } });
        roles.push('files');
      }

      const changes = imageChanges(config, project.scripts, baseConfig, pythonVersion);
      const imageConfig = extendConfig({ base: baseConfig, platform, added, changes, created: created.iso });
      if (options.annotations.source) annotations[Annotation.source] = options.annotations.source;
      if (options.annotations.revision) annotations[Annotation.revision] = options.annotations.revision;
      const layers = [...baseLayers, ...added.map((entry) => entry.layer)];
      const image = assembleImage({ platform, config: imageConfig, layers, annotations, flavour: options.flavour });
      await store.putBytes(image.config.bytes);
      await store.putBytes(image.manifest.bytes);
      images.push(image);
      reports.push({
        platform: formatPlatform(platform),
        python: pythonVersion,
        runtime: runtimeKind,
        base: baseName,
        layers: layers.map((layer, index) => ({ role: roles[index] ?? 'base', digest: layer.descriptor.digest, size: layer.descriptor.size })),
        trimmed,
        packages: venv.packages.length,
      });
    } finally {
      await compiler?.close();
    }
  }
  if (images.length === 1) return { artifact: { kind: 'image', image: images[0]! }, reports };
  const index = assembleIndex(images, { annotations: { [Annotation.created]: created.iso }, flavour: options.flavour });
  await store.putBytes(index.index.bytes);
  return { artifact: { kind: 'index', index }, reports };
}

async function readPythonVersionFile(dir: string): Promise<string | undefined> {
  const text = await readFile(join(dir, '.python-version'), 'utf8').catch(() => undefined);
  const line = text?.split('\n').map((entry) => entry.trim()).find((entry) => entry && !entry.startsWith('#'));
  if (!line) return undefined;
  const match = /^(?:cpython-|python)?(\d+\.\d+(?:\.\d+)?)$/.exec(line);
  if (!match) throw new UserError(`${join(dir, '.python-version')}: ${JSON.stringify(line)} is not a Python version like 3.12`);
  return match[1];
}

/**
 * The runtime layer of a python-build-standalone archive, cached by its inputs: writing it takes
 * seconds, and it only changes with the archive, the trimming or the timestamp.
 */
async function standaloneRuntimeLayer(
  store: BlobStore,
  archive: Digest,
  version: string,
  trim: boolean,
  mtime: number,
  progress: Progress,
): Promise<{ layer: WrittenLayer; interpreter: string; removed: TrimmedGroup[] }> {
  const key = JSON.stringify({ format: 1, layerEncoding, archive, trim, mtime, root: '/python' });
  return store.cached('standalone-layer', key, async () => {
    const runtime = await openStandaloneRuntime(archive, store, { version, keepAll: !trim, mtime });
    try {
      progress.info(`writing the Python ${version} runtime layer`);
      const layer = await writeLayer(store, runtime.entries, { mtime });
      return { layer, interpreter: runtime.interpreter, removed: runtime.removed };
    } finally {
      await runtime.close();
    }
  }, { blobs: (value) => [value.layer?.descriptor?.digest] });
}

/** Extra files and directories from [tool.uvimage] files, relative to the project. */
async function filesLayer(store: BlobStore, projectDir: string, files: NonNullable<ToolUvimage['files']>, mtime: number): Promise<WrittenLayer> {
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

/**
 * The image's runtime settings: the command (configured, else the project's one console script),
 * PATH with the venv first, VIRTUAL_ENV, a nonroot user, /app as the working directory.
 */
function imageChanges(config: ToolUvimage, scripts: Record<string, string>, base: ImageConfig, pythonVersion: string): ConfigChanges {
  const minor = pythonVersion.split('.').slice(0, 2).join('.');
  const sitePackages = `${venvRoot}/lib/python${minor}/site-packages`;
  const expand = (words: string[] | undefined) => words?.map((word) => word.replaceAll('{site-packages}', sitePackages).replaceAll('{venv}', venvRoot));
  let entrypoint = expand(config.entrypoint);
  const cmd = expand(config.cmd);
  if (!entrypoint && !cmd) {
    const names = Object.keys(scripts);
    if (names.length !== 1) {
      throw new UserError(
        names.length === 0
          ? 'no command for the image: set tool.uvimage.cmd (or entrypoint) in pyproject.toml, or give the project one console script'
          : `no command for the image and the project has ${names.length} console scripts (${names.join(', ')}): set tool.uvimage.cmd or entrypoint`,
      );
    }
    entrypoint = [`${venvRoot}/bin/${names[0]}`];
  }
  const basePath = base.config?.Env?.find((entry) => entry.startsWith('PATH='))?.slice(5) ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
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
  if (cmd) changes.Cmd = cmd;
  else changes.Cmd = undefined;
  return changes;
}

function parseGlibc(text: string): [number, number] {
  const [major, minor] = text.split('.').map(Number);
  return [major!, minor!];
}

/**
 * The glibc of a pulled base, which caps the manylinux tags: from the dpkg database in its
 * layers (distroless' status.d or a full /var/lib/dpkg/status), read as streams. That means
 * fetching the base's layers, so the answer is remembered per base image, and `base-glibc` in
 * [tool.uvimage] skips the look altogether (a push then never downloads the base's layers).
 */
async function glibcOfBase(base: BaseImage, store: BlobStore, blobs: BlobSource, name: string): Promise<[number, number]> {
  const key = `${base.manifestDigest} ${formatPlatform(base.platform)}`;
  return store.cached('base-glibc', key, () => readGlibcOfLayers(base.layers, blobs, name), {
    valid: (record) => Array.isArray(record) && record.length === 2 && record.every(Number.isInteger),
  });
}

async function readGlibcOfLayers(layers: Layer[], blobs: BlobSource, name: string): Promise<[number, number]> {
  for (const layer of [...layers].reverse()) {
    const stream = (await blobs.openLayer(layer)).pipe(createGunzip());
    for await (const member of readTar(stream, {
      what: `${name} layer ${layer.descriptor.digest}`,
      collect: (entry) => /^(\.\/)?var\/lib\/dpkg\/(status|status\.d\/libc6[^/]*)$/.test(entry.name),
    })) {
      if (!member.content) continue;
      const stanza = member.content.toString('utf8').split('\n\n').find((text) => /^Package: libc6$/m.test(text));
      const version = stanza && /^Version: (?:\d+:)?(\d+)\.(\d+)/m.exec(stanza);
      if (version) return [Number(version[1]), Number(version[2])];
    }
  }
  throw new UserError(
    `cannot tell which glibc the base ${name} has (no libc6 in its dpkg database); set tool.uvimage.base-glibc (e.g. "2.36"), which caps the manylinux wheels chosen`,
  );
}
