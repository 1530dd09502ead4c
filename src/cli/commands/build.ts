import { Command, Option } from 'commander';
import { buildProject, type PlatformReport } from '../../build/project.js';
import { parseToolUvimage, type ToolUvimage } from '../../config/schema.js';
import { flavourNames } from '../../debian/flavours.js';
import { parsePlatformList } from '../../oci/platform.js';
import { formatBytes } from '../progress.js';
import { readPyProject } from '../../python/pyproject.js';
import { addImageConfigOptions, parseCommandLine, parseKeyValues, parsePorts, type ImageConfigFlags } from '../parse.js';
import { addOutputOptions, collect, openImageRun, type CommonOptions } from '../run.js';

interface BuildOptions extends CommonOptions, ImageConfigFlags {
  platform?: string;
  base?: string;
  baseGlibc?: string;
  flavour?: ToolUvimage['flavour'];
  debianSuite?: ToolUvimage['debian-suite'];
  debianMirror?: string;
  debianLock?: string;
  runtime?: ToolUvimage['runtime'];
  python?: string;
  trim: boolean;
  extra: string[];
  allExtras?: boolean;
  group: string[];
  onlyGroup: string[];
  separateLayer: string[];
  frozen?: boolean;
}

/** [tool.uvimage] with the flags applied over it; flags win key by key. */
function mergeConfig(table: ToolUvimage, options: BuildOptions): ToolUvimage {
  const config: ToolUvimage = { ...table };
  if (options.platform) config.platforms = options.platform.split(',').map((entry) => entry.trim());
  if (options.base) config.base = options.base;
  if (options.baseGlibc) config['base-glibc'] = options.baseGlibc;
  if (options.flavour) config.flavour = options.flavour;
  if (options.debianSuite) config['debian-suite'] = options.debianSuite;
  if (options.debianMirror) config['debian-mirror'] = options.debianMirror;
  if (options.debianLock) config['debian-lock'] = options.debianLock;
  if (options.runtime) config.runtime = options.runtime;
  if (options.python) config.python = options.python;
  if (!options.trim) config.trim = false;
  const entrypoint = parseCommandLine('--entrypoint', options.entrypoint);
  const cmd = parseCommandLine('--cmd', options.cmd);
  if (entrypoint) config.entrypoint = entrypoint;
  if (cmd) config.cmd = cmd;
  if (options.env.length) config.env = { ...config.env, ...parseKeyValues('--env', options.env) };
  if (options.label.length) config.labels = { ...config.labels, ...parseKeyValues('--label', options.label) };
  if (options.expose.length) config.expose = Object.keys(parsePorts(options.expose) ?? {});
  if (options.user) config.user = options.user;
  if (options.workdir) config.workdir = options.workdir;
  if (options.extra.length) config.extras = options.extra;
  if (options.allExtras) config['all-extras'] = true;
  if (options.group.length) config.groups = options.group;
  if (options.onlyGroup.length) config['only-groups'] = options.onlyGroup;
  if (options.separateLayer.length) config['separate-layers'] = options.separateLayer;
  return config;
}

/** -t wins; else [tool.uvimage] tags, each appended to `repository` when one is set. */
function imageTags(config: ToolUvimage, flags: string[]): string[] {
  if (flags.length > 0) return flags;
  const tags = config.tags ?? (config.repository ? ['latest'] : []);
  return tags.map((tag) => (config.repository ? `${config.repository}:${tag}` : tag));
}

function describeLayers(report: PlatformReport): string[] {
  const lines = [`  ${report.platform}: Python ${report.python} (${report.runtime}) on ${report.base}, ${report.packages} packages`];
  for (const layer of report.layers) lines.push(`    ${layer.role.padEnd(24)} ${formatBytes(layer.size).padStart(10)}  ${layer.digest.slice(0, 19)}`);
  const trimmed = report.trimmed?.reduce((sum, group) => sum + group.bytes, 0) ?? 0;
  if (trimmed > 0) lines.push(`    trimmed from the runtime: ${formatBytes(trimmed)} (${report.trimmed!.map((group) => group.rule).join('; ')})`);
  return lines;
}

async function buildCommand(directory: string, options: BuildOptions): Promise<void> {
  const project = await readPyProject(directory);
  const config = mergeConfig(parseToolUvimage(project.toolUvimage, `${project.dir}/pyproject.toml`), options);
  const platforms = parsePlatformList((config.platforms ?? ['linux/amd64']).join(','));
  options.tag = imageTags(config, options.tag);
  const run = await openImageRun(options);
  const { artifact, reports } = await buildProject({
    projectDir: project.dir,
    platforms,
    config,
    install: {
      extras: config.extras ?? [],
      allExtras: config['all-extras'] ?? false,
      groups: config.groups ?? [],
      onlyGroups: config['only-groups'] ?? [],
      noDefaultGroups: true,
    },
    frozen: options.frozen ?? false,
    store: run.store,
    client: run.client,
    blobs: run.blobs,
    progress: run.progress,
    flavour: options.mediaTypes,
    annotations: { source: options.source, revision: options.revision },
  });
  await run.emit(artifact, { json: { platforms: reports }, lines: reports.flatMap(describeLayers) });
}

export function buildCommandDefinition(): Command {
  const command = new Command('build')
    .description('build a uv project (pyproject.toml + uv.lock) into a minimal distroless image')
    .argument('[project]', 'the project directory', '.')
    .option('--platform <list>', 'target platforms, comma separated (default: tool.uvimage.platforms, else linux/amd64)')
    .option('--base <ref>', 'a base image from any registry instead of the Debian flavour uvimage assembles')
    .option('--base-glibc <version>', "the glibc of --base, e.g. 2.36 (default: read from the base's dpkg database)")
    .addOption(new Option('--flavour <name>', 'the Debian flavour to assemble as the base (default cc)').choices([...flavourNames]))
    .addOption(new Option('--debian-suite <suite>', 'Debian release of the base and of the Debian runtime (default trixie)').choices(['trixie', 'bookworm']))
    .option('--debian-mirror <url>', 'Debian mirror (or a snapshot.debian.org URL)')
    .option('--debian-lock <path>', 'Debian lock file of the base ({arch} for several platforms): written when missing, followed after')
    .addOption(new Option('--runtime <kind>', 'python-build-standalone at /python, or Debian\'s CPython').choices(['standalone', 'debian']))
    .option('--python <version>', 'Python version (default: tool.uvimage.python, .python-version, else the newest requires-python allows)')
    .option('--no-trim', 'keep the whole runtime (tests, tkinter, headers, …)')
    .option('--extra <name>', 'an extra of the project (repeatable)', collect, [])
    .option('--all-extras', 'all extras of the project')
    .option('--group <name>', 'a dependency group to install (repeatable; none by default, not even dev)', collect, [])
    .option('--only-group <name>', 'only this dependency group, without the project (repeatable)', collect, [])
    .option('--separate-layer <package>', 'give this package a layer of its own, e.g. torch (repeatable)', collect, [])
    .option('--frozen', 'use uv.lock as it is, without checking it against pyproject.toml');
  const withConfig = addImageConfigOptions(command, {
    cmd: 'command: a JSON array of strings, or one word ({site-packages} and {venv} are expanded)',
    user: 'user to run as (default 65532, nonroot)',
    workdir: 'working directory (default /app)',
  });
  return addOutputOptions(withConfig).action(buildCommand);
}

