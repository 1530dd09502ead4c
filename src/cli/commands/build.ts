import { Command, Option } from 'commander';
import { debianSuiteNames } from '../../facts/debian-suites.js';
import { imageFlavourNames } from '../../base/flavours.js';
import { resolveBuildRequest, type BuildFlags } from '../../config/request.js';
import { executePlan, type PlatformReport } from '../../pipeline/execute.js';
import { debugTagSuffix } from '../../pipeline/debug-image.js';
import { planBuild, type BuildPlan, type PlatformPlan } from '../../pipeline/plan.js';
import type { SourceTreePlan } from '../../pipeline/source-tree.js';
import { BytecodeCompilers, defaultPlanSources, type PipelineContext } from '../../pipeline/sources.js';
import { readIndexes, type ProjectIndex } from '../../python/indexes.js';
import { loadLockedProject, type LockedProject } from '../../python/locked-project.js';
import { asTask, formatBytes, stages } from '../../progress.js';
import { addImageConfigOptions } from '../parse.js';
import { addOutputOptions, collect, openImageRun, type CommonOptions, type ImageRun } from '../run.js';
import { checkSbomDirectory, emitSboms } from '../sbom.js';

export type BuildOptions = CommonOptions & BuildFlags;

/** The flags `build` and `plan` share: what the image is, and where it goes. */
export function addBuildOptions(command: Command): Command {
  return addOutputOptions(addImageOptions(command.argument('[project]', 'the project directory', '.')));
}

/** Everything that decides what the image is (`run` takes these too). */
export function addImageOptions(command: Command): Command {
  command
    .option('--platform <list>', 'target platforms, comma separated (default: tool.uvimage.platforms, else linux/amd64)')
    .option('--base <ref>', 'a base image from any registry instead of the Debian flavour uvimage assembles')
    .option('--base-glibc <version>', "the glibc of --base, e.g. 2.36 (default: read from the base's dpkg database)")
    .addOption(new Option('--flavour <name>', 'the Debian flavour to assemble as the base (default cc)').choices([...imageFlavourNames]))
    .addOption(new Option('--debian-suite <suite>', 'Debian release of the base and of the Debian runtime (default trixie)').choices([...debianSuiteNames]))
    .option('--debian-mirror <url>', 'Debian mirror (or a snapshot.debian.org URL)')
    .option('--debian-lock <path>', 'Debian lock file of the base ({arch} for several platforms): written when missing, followed after')
    .addOption(new Option('--runtime <kind>', "python-build-standalone at /python, or Debian's CPython").choices(['standalone', 'debian']))
    .option('--python <version>', 'Python version (default: tool.uvimage.python, .python-version, else the newest requires-python allows)')
    .option('--no-trim', 'keep the whole runtime (tests, tkinter, headers, …)')
    .option('--extra <name>', 'an extra of the project (repeatable)', collect, [])
    .option('--all-extras', 'all extras of the project')
    .option('--group <name>', 'a dependency group to install (repeatable; none by default, not even dev)', collect, [])
    .option('--only-group <name>', 'only this dependency group, without the project (repeatable)', collect, [])
    .option('--separate-layer <package>', 'give this package a layer of its own, e.g. torch (repeatable)', collect, [])
    .option('--package <name>', 'the workspace member to build, as uv sync --package (repeatable)', collect, [])
    .option('--all-packages', 'every workspace member, as uv sync --all-packages')
    .option('--source-tree', "copy the project's source tree into the working directory (default: when uv does not install the project)")
    .option('--no-source-tree', 'do not copy the source tree')
    .option('--debian-package <name>', "a Debian package to add to uvimage's base, with its dependencies (repeatable)", collect, [])
    .option('--allow-missing <soname>', 'a shared library the image may lack, e.g. one only loaded optionally (repeatable)', collect, [])
    .option('--no-strip', "keep debug information in the wheels' ELF files")
    .option('--debug-image', 'also write <tag>-debug: the image plus busybox at /busybox on PATH')
    .option('--frozen', 'use uv.lock as it is, without checking it against pyproject.toml')
    .option('--cache-repo <registry/repo>', 'a registry repository shared as a layer cache: layers found there are not built, layers built are published (or UVIMAGE_CACHE_REPO)')
    .option('--sbom <dir>', 'write CycloneDX and SPDX SBOMs per platform into DIR, and attach them to --push and --oci outputs')
    .option('--no-sbom', 'no SBOMs, whatever tool.uvimage.sbom says');
  return addImageConfigOptions(command, {
    cmd: 'command: a JSON array of strings, or one word ({site-packages} and {venv} are expanded)',
    user: 'user to run as (default 65532, nonroot)',
    workdir: 'working directory (default /app)',
  });
}

/**
 * The request, its locked project and the plan — what `plan` prints and `build` executes — with
 * the run they were made in. Everything checkable without the network is checked before the
 * store, a registry or a sink is touched; the outputs are opened and checked before planning reads
 * anything remote.
 */
export async function withPlan(
  directory: string,
  options: BuildOptions,
  outputs: 'required' | 'optional',
  use: (plan: BuildPlan, context: PipelineContext & { run: ImageRun; compilers: BytecodeCompilers; locked: LockedProject; indexes: ProjectIndex[] }) => Promise<void>,
): Promise<void> {
  const request = await resolveBuildRequest(directory, options, process.env);
  const { package: packages, 'all-packages': allPackages } = request.config;
  const locked = await loadLockedProject(request.dir, { packages: typeof packages === 'string' ? [packages] : packages, allPackages, from: request.origins.package });
  const layerCache = request.cacheRepo ? { registry: request.cacheRepo.registry, repository: request.cacheRepo.repository } : undefined;
  const run = await openImageRun({ ...options, tag: request.outputs.tags, ...(layerCache ? { layerCache } : {}) }, { platforms: request.targets.map((target) => target.platform), outputs });
  const context: PipelineContext = { store: run.store, client: run.client, blobs: run.blobs, progress: run.progress, env: process.env };
  const compilers = new BytecodeCompilers(context);
  try {
    const indexes = await readIndexes(locked.root, context.env);
    // Planning is a stage of its own: reading a Debian index or checking the lock with uv takes seconds the other stages do not show.
    const planning = context.progress.stage(stages.plan());
    let plan: BuildPlan;
    try {
      plan = await asTask(planning, 'the build', () => planBuild(request, locked, defaultPlanSources(context, compilers), indexes));
    } finally {
      planning.finish();
    }
    await use(plan, { ...context, run, compilers, locked, indexes });
  } finally {
    // A build that failed still shares the layers it made.
    await run.layerCache?.flush();
    await compilers.close();
  }
}

function describeLayers(report: PlatformReport, plan: PlatformPlan, source: SourceTreePlan | undefined): string[] {
  const lines = [
    `  ${report.platform}: Python ${report.python} (${report.runtime}) on ${report.base}, ${report.packages} packages`,
    `    runs ${JSON.stringify(plan.command.words)}: ${plan.command.from}`,
  ];
  const closure = report.closure;
  lines.push(`    closure: ${closure.elfFiles} ELF files, every library they need is in the image${closure.allowed.length ? ` (allowed missing: ${closure.allowed.map((finding) => finding.soname).join(', ')})` : ''}${closure.unloadableModules.length ? `; stdlib modules that cannot load: ${closure.unloadableModules.map((finding) => finding.soname).join(', ')}` : ''}`);
  const minimal = report.minimal;
  if (minimal) {
    const why = Object.entries(minimal.keptFor).map(([name, files]) => `${name} for ${files.join(', ')}`);
    lines.push(`    minimal base: ${minimal.packages.length} packages${why.length ? ` (${why.join('; ')})` : ''}; left out ${minimal.leftOut.join(', ') || 'nothing'}; of libc6, ${minimal.dropped.length} paths nothing loads${minimal.gconv ? ` (the gconv modules stay: ${minimal.gconvFor ?? 'a file'} imports iconv_open)` : ' (the gconv modules among them: nothing imports iconv_open)'}`);
  }
  if (source) lines.push(`    source tree ${source.dir} -> ${source.dest}: ${source.files} files, ${formatBytes(source.bytes)} (${source.why})`);
  for (const layer of report.layers) lines.push(`    ${layer.role.padEnd(24)} ${formatBytes(layer.size).padStart(10)}  ${layer.digest.slice(0, 19)}`);
  const trimmed = report.trimmed?.reduce((sum, group) => sum + group.bytes, 0) ?? 0;
  if (trimmed > 0) lines.push(`    trimmed from the runtime: ${formatBytes(trimmed)} (${report.trimmed!.map((group) => group.rule).join('; ')})`);
  return lines;
}

async function buildCommand(directory: string, options: BuildOptions): Promise<void> {
  if (typeof options.sbom === 'string') await checkSbomDirectory(options.sbom);
  await withPlan(directory, options, 'required', async (plan, context) => {
    const executed = await executePlan(plan, { ...context, lock: context.locked.lock });
    const { artifact, reports } = executed;
    // The SBOMs are made from the image built (read back through src/report), before the sinks write it.
    const sboms = await emitSboms(plan, executed, { blobs: context.blobs, progress: context.progress, tags: plan.outputs.tags });
    const lines = reports.flatMap((report, index) => describeLayers(report, plan.platforms[index]!, plan.source));
    if (sboms?.files.length) lines.push(`  SBOMs: ${sboms.files.join(', ')}`);
    await context.run.emit(
      artifact,
      { json: { platforms: reports, ...(plan.source ? { source: plan.source } : {}), ...(sboms ? { sboms: sboms.files } : {}) }, lines },
      { referrers: sboms?.referrers, ...(executed.debug ? { variant: { artifact: executed.debug, tagSuffix: debugTagSuffix } } : {}) },
    );
  });
}

export function buildCommandDefinition(): Command {
  const command = new Command('build').description('build a uv project (pyproject.toml + uv.lock) into a minimal distroless image');
  return addBuildOptions(command).action(buildCommand);
}
