import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Command } from 'commander';
import { UserError } from '../../errors.js';
import { buildSettingsFromToolUv, planInstall, type InstallPlan, type PlannedPackage } from '../../python/install-set.js';
import { loadLockedProject } from '../../python/locked-project.js';
import { matchesSpecifiers } from '../../python/pep440.js';
import { architectureOfPython, architectures, parseArchitecture } from '../../facts/architectures.js';
import { describeTarget, type PythonTarget } from '../../python/target.js';
import { collect } from '../run.js';

interface PlanOptions {
  platform: string;
  python?: string;
  baseGlibc: string;
  extra: string[];
  allExtras: boolean;
  group: string[];
  onlyGroup: string[];
  allGroups: boolean;
  defaultGroups: boolean;
  allPackages: boolean;
  frozen: boolean;
  json: boolean;
}

function parseGlibc(text: string): [number, number] {
  const match = /^(\d+)\.(\d+)$/.exec(text.trim());
  if (!match) throw new UserError(`--base-glibc: ${JSON.stringify(text)} is not MAJOR.MINOR, e.g. 2.41`);
  return [Number(match[1]), Number(match[2])];
}

/** --python, else the project's .python-version, else the newest CPython 3.x (3.14 down to 3.9) that requires-python allows. */
async function choosePython(option: string | undefined, projectDir: string, requiresPython: string | undefined): Promise<string> {
  const given = option ?? (await readFile(join(projectDir, '.python-version'), 'utf8').then((text) => text.split('\n')[0]!.trim(), () => undefined));
  if (given) {
    const match = /^(?:cpython-|python)?(\d+\.\d+(?:\.\d+)?)$/.exec(given);
    if (!match) throw new UserError(`Python version ${JSON.stringify(given)} is not MAJOR.MINOR[.MICRO], e.g. 3.12`);
    return match[1]!;
  }
  for (let minor = 14; minor >= 9; minor--) {
    if (!requiresPython || matchesSpecifiers(`3.${minor}.0`, requiresPython)) return `3.${minor}`;
  }
  throw new UserError(`no CPython 3.9-3.14 satisfies requires-python ${requiresPython}; pass --python`);
}

function describePackage(pkg: PlannedPackage, project: string): { name: string; version: string; how: string } {
  if (pkg.kind === 'wheel') return { name: pkg.name, version: pkg.version, how: pkg.wheel.filename };
  const what = pkg.member ? (pkg.name === project ? 'build (the project)' : 'build (workspace member)') : pkg.reason === 'no-compatible-wheel' ? 'build from sdist (no wheel for this platform)' : pkg.reason === 'no-binary' ? 'build from sdist (no-binary)' : 'build from source';
  const where = pkg.dir ?? pkg.source.git ?? pkg.source.url ?? pkg.sdist?.url ?? pkg.sdist?.path ?? '';
  return { name: pkg.name, version: pkg.version ?? '', how: where ? `${what}: ${where}` : what };
}

function formatPlan(plan: InstallPlan): string {
  const rows = plan.packages.map((pkg) => describePackage(pkg, plan.project.name));
  const width = Math.max(0, ...rows.map((row) => `${row.name} ${row.version}`.length));
  const lines = [`${describeTarget(plan.target)}: ${plan.packages.length} packages`];
  for (const row of rows) lines.push(`  ${`${row.name} ${row.version}`.padEnd(width)}  ${row.how}`);
  return lines.join('\n');
}

async function planCommand(directory: string, options: PlanOptions): Promise<void> {
  const { project, root, lock } = await loadLockedProject(directory, { frozen: options.frozen });
  const pythonVersion = await choosePython(options.python, project.dir, lock.requiresPython ?? project.requiresPython);
  const glibc = parseGlibc(options.baseGlibc);
  const platforms = options.platform.split(',').map((part) => part.trim()).filter(Boolean);
  const plans = platforms.map((platform) => {
    const target: PythonTarget = { pythonVersion, implementation: 'cpython', os: 'linux', arch: architectures[parseArchitecture(platform)].python, glibc };
    return planInstall(project, lock, target, {
      extras: options.extra,
      allExtras: options.allExtras,
      groups: options.group,
      onlyGroups: options.onlyGroup,
      allGroups: options.allGroups,
      noDefaultGroups: !options.defaultGroups,
      allPackages: options.allPackages,
      ...buildSettingsFromToolUv(root.toolUv),
    });
  });
  if (options.json) {
    process.stdout.write(`${JSON.stringify(plans.map((plan) => ({ ...plan, platform: `linux/${architectureOfPython(plan.target.arch)}` })), null, 2)}\n`);
  } else {
    process.stdout.write(`${plans.map(formatPlan).join('\n\n')}\n`);
  }
}

export function planCommandDefinition(): Command {
  return new Command('plan')
    .description("show what would be installed into the image's virtualenv: the locked packages and the wheel chosen for each platform")
    .argument('<project-dir>', 'directory of the uv project (pyproject.toml; uv.lock here or at the workspace root)')
    .option('--platform <list>', 'target platforms, comma separated: linux/amd64, linux/arm64', 'linux/amd64')
    .option('--python <version>', 'target CPython, e.g. 3.12 or 3.12.8 (default: .python-version, else the newest allowed by requires-python)')
    .option('--base-glibc <version>', "the base's glibc, the newest manylinux allowed (trixie 2.41, bookworm 2.36)", '2.41')
    .option('--extra <name>', 'an extra of the project (repeatable)', collect, [])
    .option('--all-extras', 'all extras of the project', false)
    .option('--group <name>', 'a dependency group (repeatable); none, not even dev, by default', collect, [])
    .option('--only-group <name>', 'only this dependency group, without the project (repeatable)', collect, [])
    .option('--all-groups', 'all dependency groups', false)
    .option('--no-default-groups', 'accepted for uv compatibility; uvimage installs no group by default')
    .option('--all-packages', 'every workspace member, not only the project and what it depends on', false)
    .option('--frozen', 'use uv.lock as it is, without checking it against pyproject.toml', false)
    .option('--json', 'print the plan as JSON', false)
    .action(planCommand);
}
