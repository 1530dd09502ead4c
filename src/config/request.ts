/**
 * The build as asked for: [tool.uvimage] with the flags over it, validated once by the zod schema
 * (src/config/schema.ts), so every bad value names the flag or the key it came from, plus the
 * checks that need nothing from the network: SOURCE_DATE_EPOCH, platforms, conflicting options,
 * `files` sources, the outputs. A BuildRequest is what planning starts from;
 * nothing has been downloaded when it exists.
 */
import { stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { UserError } from '../errors.js';
import { ConfigError, describeConfigIssue, toolUvimageSchema, type ToolUvimage } from './schema.js';
import { parseCommandLine, parseKeyValues } from './values.js';
import { architectures, parseArchitecture, type Architecture } from '../facts/architectures.js';
import { buildTimestamp, type MediaTypeFlavour } from '../oci/image.js';
import { formatPlatform, parsePlatform, type Platform } from '../oci/platform.js';
import { readPyProject, type PyProject } from '../python/pyproject.js';
import { parseReference } from '../registry/reference.js';
import type { RepositoryRef } from '../registry/client.js';
import { parseCacheRepo } from '../registry/layer-cache.js';

/** The flags of `uvimage build` (and `uvimage plan`, which takes every one of them). */
export interface BuildFlags {
  platform?: string;
  base?: string;
  baseGlibc?: string;
  flavour?: string;
  debianSuite?: string;
  debianMirror?: string;
  debianLock?: string;
  runtime?: string;
  python?: string;
  trim?: boolean;
  extra?: string[];
  allExtras?: boolean;
  group?: string[];
  onlyGroup?: string[];
  separateLayer?: string[];
  package?: string[];
  allPackages?: boolean;
  sourceTree?: boolean;
  debianPackage?: string[];
  allowMissing?: string[];
  strip?: boolean;
  debugImage?: boolean;
  frozen?: boolean;
  entrypoint?: string;
  cmd?: string;
  env?: string[];
  label?: string[];
  expose?: string[];
  user?: string;
  workdir?: string;
  source?: string;
  revision?: string;
  mediaTypes?: MediaTypeFlavour;
  tag?: string[];
  push?: boolean;
  load?: boolean;
  oci?: string;
  tar?: string;
  loadPlatform?: string;
  /** --sbom DIR (a string), or --no-sbom (false). */
  sbom?: string | false;
  cacheRepo?: string;
}

/** Where each output goes; checked for what can be checked before any work. */
export interface OutputRequest {
  tags: string[];
  push: boolean;
  load: boolean;
  oci?: string;
  tar?: string;
  /** The platform --load and --tar take from a multi-platform build. */
  loadPlatform?: Platform;
  mediaTypes: MediaTypeFlavour;
  /** SBOMs (src/cli/sbom.ts): written to `dir`, and attached as referrers to --push and --oci when `attach`; absent: none. */
  sbom?: { dir?: string; attach: boolean };
}

export interface BuildRequest {
  /** The project directory as given, resolved. */
  dir: string;
  /** Its pyproject.toml (a workspace member, the root, or a virtual workspace root). */
  pyproject: PyProject;
  /** [tool.uvimage] with the flags applied over it, validated. */
  config: ToolUvimage;
  /** Where each key of `config` came from, for messages: `--base-glibc` or `pyproject.toml: tool.uvimage.base-glibc`. */
  origins: Partial<Record<keyof ToolUvimage, string>>;
  targets: { platform: Platform; arch: Architecture }[];
  frozen: boolean;
  /** The one timestamp of every entry and document (SOURCE_DATE_EPOCH, else 0). */
  created: { seconds: number; iso: string; from: 'SOURCE_DATE_EPOCH' | 'default' };
  outputs: OutputRequest;
  annotations: { source?: string; revision?: string };
  /** The layer cache in a registry (src/registry/layer-cache.ts): --cache-repo, else UVIMAGE_CACHE_REPO, else tool.uvimage.cache-repo. */
  cacheRepo?: RepositoryRef & { from: string };
}

/**
 * Each flag and the [tool.uvimage] key it sets, in one table: flags win key by key, and a bad value
 * is reported under the flag's name. `read` gives the flag's value as the key's (undefined: not given).
 */
const flagKeys: { flag: string; key: keyof ToolUvimage; read: (flags: BuildFlags) => unknown }[] = [
  { flag: '--cache-repo', key: 'cache-repo', read: (flags) => flags.cacheRepo },
  { flag: '--platform', key: 'platforms', read: (flags) => flags.platform?.split(',').map((entry) => entry.trim()).filter(Boolean) },
  { flag: '--base', key: 'base', read: (flags) => flags.base },
  { flag: '--base-glibc', key: 'base-glibc', read: (flags) => flags.baseGlibc },
  { flag: '--flavour', key: 'flavour', read: (flags) => flags.flavour },
  { flag: '--debian-suite', key: 'debian-suite', read: (flags) => flags.debianSuite },
  { flag: '--debian-mirror', key: 'debian-mirror', read: (flags) => flags.debianMirror },
  { flag: '--debian-lock', key: 'debian-lock', read: (flags) => flags.debianLock },
  { flag: '--runtime', key: 'runtime', read: (flags) => flags.runtime },
  { flag: '--python', key: 'python', read: (flags) => flags.python },
  { flag: '--no-trim', key: 'trim', read: (flags) => (flags.trim === false ? false : undefined) },
  { flag: '--entrypoint', key: 'entrypoint', read: (flags) => parseCommandLine('--entrypoint', flags.entrypoint) },
  { flag: '--cmd', key: 'cmd', read: (flags) => parseCommandLine('--cmd', flags.cmd) },
  { flag: '--expose', key: 'expose', read: (flags) => (flags.expose?.length ? flags.expose : undefined) },
  { flag: '--user', key: 'user', read: (flags) => flags.user },
  { flag: '--workdir', key: 'workdir', read: (flags) => flags.workdir },
  { flag: '--extra', key: 'extras', read: (flags) => (flags.extra?.length ? flags.extra : undefined) },
  { flag: '--all-extras', key: 'all-extras', read: (flags) => (flags.allExtras ? true : undefined) },
  { flag: '--group', key: 'groups', read: (flags) => (flags.group?.length ? flags.group : undefined) },
  { flag: '--only-group', key: 'only-groups', read: (flags) => (flags.onlyGroup?.length ? flags.onlyGroup : undefined) },
  { flag: '--separate-layer', key: 'separate-layers', read: (flags) => (flags.separateLayer?.length ? flags.separateLayer : undefined) },
  { flag: '--package', key: 'package', read: (flags) => (flags.package?.length ? flags.package : undefined) },
  { flag: '--all-packages', key: 'all-packages', read: (flags) => (flags.allPackages ? true : undefined) },
  { flag: '--source-tree', key: 'source', read: (flags) => flags.sourceTree },
  { flag: '--debian-package', key: 'debian-packages', read: (flags) => (flags.debianPackage?.length ? flags.debianPackage : undefined) },
  { flag: '--allow-missing', key: 'allow-missing', read: (flags) => (flags.allowMissing?.length ? flags.allowMissing : undefined) },
  { flag: '--no-strip', key: 'strip', read: (flags) => (flags.strip === false ? false : undefined) },
  { flag: '--debug-image', key: 'debug-image', read: (flags) => (flags.debugImage ? true : undefined) },
];

/** Flags whose KEY=VALUE entries are added to a table key's (the flag's entries win). */
const flagTables: { flag: string; key: 'env' | 'labels'; read: (flags: BuildFlags) => string[] | undefined }[] = [
  { flag: '--env', key: 'env', read: (flags) => flags.env },
  { flag: '--label', key: 'labels', read: (flags) => flags.label },
];

/**
 * The request for a build of `directory`: its pyproject's [tool.uvimage] with the flags over it,
 * validated, and everything checkable without the network checked. Every failure is one line
 * naming the flag, or the file and key, that is wrong.
 */
export async function resolveBuildRequest(directory: string, flags: BuildFlags, env: NodeJS.ProcessEnv = process.env): Promise<BuildRequest> {
  const dir = resolve(directory);
  if (!(await stat(dir).then((info) => info.isDirectory(), () => false))) throw new UserError(`${directory}: not a directory`);
  const pyproject = await readPyProject(dir);
  const file = join(pyproject.dir, 'pyproject.toml');
  const created = timestampFrom(env);

  // 1. Merge: the table as written, each given flag over its key (the environment's
  // UVIMAGE_CACHE_REPO between the two: a CI runner's setting, over the project's).
  const merged: Record<string, unknown> = { ...pyproject.toolUvimage };
  const origins: Record<string, string> = {};
  if (env.UVIMAGE_CACHE_REPO) {
    merged['cache-repo'] = env.UVIMAGE_CACHE_REPO;
    origins['cache-repo'] = 'UVIMAGE_CACHE_REPO';
  }
  for (const { flag, key, read } of flagKeys) {
    const value = read(flags);
    if (value === undefined) continue;
    merged[key] = value;
    origins[key] = flag;
  }
  for (const { flag, key, read } of flagTables) {
    const entries = read(flags);
    if (!entries?.length) continue;
    const table = parseKeyValues(flag, entries);
    merged[key] = { ...(merged[key] as Record<string, string> | undefined), ...table };
    for (const name of Object.keys(table)) origins[`${key}.${name}`] = flag;
  }

  // 2. One validation of the whole: the issue names the flag that set the key, else the file and key.
  const parsed = toolUvimageSchema.safeParse(merged);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const [key, sub] = issue.path.map(String);
    const flag = (sub !== undefined ? origins[`${key}.${sub}`] : undefined) ?? (key !== undefined ? origins[key] : undefined);
    throw new ConfigError(describeConfigIssue(issue, flag ? { flag } : { file }, merged));
  }
  const config = parsed.data;
  const where = (key: keyof ToolUvimage): string => origins[key] ?? `${file}: tool.uvimage.${key}`;

  // 3. What the schema cannot see: platforms uvimage builds for, each once.
  const targets: BuildRequest['targets'] = [];
  for (const text of config.platforms ?? ['linux/amd64']) {
    const platform = parsePlatform(text, where('platforms'));
    if (platform.os !== 'linux') throw new UserError(`${where('platforms')}: ${text}: uvimage builds linux images only`);
    const arch = parseArchitecture(formatPlatform(platform), `${where('platforms')}: platform`);
    if (targets.some((target) => target.arch === arch)) throw new UserError(`${where('platforms')}: ${text} is listed twice`);
    // The platform as asked for, in OCI's names (linux/aarch64 is linux/arm64); a variant only when given.
    const oci = architectures[arch].oci.architecture;
    targets.push({ platform: platform.variant ? { os: 'linux', architecture: oci, variant: platform.variant } : { os: 'linux', architecture: oci }, arch });
  }

  // 4. Options that contradict each other.
  const conflict = (a: keyof ToolUvimage, b: keyof ToolUvimage, why: string): void => {
    if (config[a] !== undefined && config[b] !== undefined) throw new UserError(`${where(a)} and ${where(b)} cannot be combined: ${why}`);
  };
  if (config.runtime === 'debian') conflict('runtime', 'base', 'runtime "debian" brings its own Debian base (use runtime "standalone" with base)');
  if (config.runtime === 'debian') conflict('runtime', 'flavour', 'runtime "debian" is Debian\'s CPython on the cc flavour, a base of its own');
  for (const key of ['flavour', 'debian-suite', 'debian-mirror', 'debian-lock', 'debian-packages'] as const) {
    conflict(key, 'base', `${key} shapes the Debian base uvimage assembles, and base replaces it`);
  }
  if (config['base-glibc'] !== undefined && config.base === undefined) {
    throw new UserError(`${where('base-glibc')}: base-glibc is the glibc of a pulled base; without base, uvimage's Debian base sets it`);
  }
  if (config['debian-lock'] && targets.length > 1 && !config['debian-lock'].includes('{arch}')) {
    throw new UserError(`${where('debian-lock')}: a Debian lock is per architecture; with several platforms put {arch} in its name (e.g. base-{arch}.lock)`);
  }
  conflict('package', 'all-packages', 'all-packages installs every workspace member');
  if (config['only-groups']?.length && (config.groups?.length || config.extras?.length || config['all-extras'])) {
    throw new UserError(`${where('only-groups')}: only-groups installs only those groups, without the project, so it cannot be combined with groups or extras`);
  }

  // 5. Local inputs that must exist.
  for (const [index, entry] of (config.files ?? []).entries()) {
    const source = resolve(pyproject.dir, entry.src);
    if (!(await stat(source).then(() => true, () => false))) throw new UserError(`${file}: tool.uvimage.files[${index}].src: ${entry.src} does not exist in ${pyproject.dir}`);
  }

  // 6. Outputs. (The command is the plan's to choose, from the project --package selects.)
  const outputs = resolveOutputs(flags, config, targets.map((target) => target.platform));
  const cacheRepo = config['cache-repo'] !== undefined ? { ...parseCacheRepo(config['cache-repo'], where('cache-repo')), from: where('cache-repo') } : undefined;
  return { dir, pyproject, config, origins, targets, frozen: flags.frozen ?? false, created, outputs, annotations: { source: flags.source, revision: flags.revision }, ...(cacheRepo ? { cacheRepo } : {}) };
}

/** SOURCE_DATE_EPOCH, checked: a bad value is one line, not a failure deep in the build. */
function timestampFrom(env: NodeJS.ProcessEnv): BuildRequest['created'] {
  const given = env.SOURCE_DATE_EPOCH !== undefined && env.SOURCE_DATE_EPOCH !== '';
  return { ...buildTimestamp(env), from: given ? 'SOURCE_DATE_EPOCH' : 'default' };
}

/** -t wins; else [tool.uvimage] tags, each appended to `repository` when one is set. */
function imageTags(config: ToolUvimage, flags: string[]): string[] {
  if (flags.length > 0) return flags;
  const tags = config.tags ?? (config.repository ? ['latest'] : []);
  return tags.map((tag) => (config.repository && !tag.includes(':') && !tag.includes('/') ? `${config.repository}:${tag}` : tag));
}

function resolveOutputs(flags: BuildFlags, config: ToolUvimage, platforms: Platform[]): OutputRequest {
  const tags = imageTags(config, flags.tag ?? []);
  for (const tag of tags) {
    try {
      parseReference(tag);
    } catch (error) {
      const from = flags.tag?.length ? '-t' : 'tool.uvimage tags';
      throw new UserError(`${from}: ${(error as Error).message}`);
    }
  }
  const loadPlatform = flags.loadPlatform ? parsePlatform(flags.loadPlatform, '--load-platform') : undefined;
  if (loadPlatform && !platforms.some((platform) => platform.architecture === loadPlatform.architecture && platform.os === loadPlatform.os)) {
    throw new UserError(`--load-platform ${formatPlatform(loadPlatform)} is not among the platforms built (${platforms.map(formatPlatform).join(', ')})`);
  }
  // --sbom DIR writes them (and attaches them); `sbom = true` attaches them; --no-sbom makes none.
  const sbomDir = typeof flags.sbom === 'string' ? flags.sbom : undefined;
  const attachSbom = flags.sbom !== false && (sbomDir !== undefined || config.sbom === true);
  return {
    ...(sbomDir !== undefined || attachSbom ? { sbom: { ...(sbomDir !== undefined ? { dir: sbomDir } : {}), attach: attachSbom } } : {}),
    tags,
    push: flags.push ?? false,
    load: flags.load ?? false,
    oci: flags.oci,
    tar: flags.tar,
    loadPlatform,
    mediaTypes: flags.mediaTypes ?? 'oci',
  };
}
