import { Command } from 'commander';
import type { PlannedPackage } from '../../python/install-set.js';
import { describeTarget } from '../../python/target.js';
import type { BuildPlan, PlatformPlan } from '../../pipeline/plan.js';
import { addBuildOptions, withPlan, type BuildOptions } from './build.js';

function describePackage(pkg: PlannedPackage, project: string): { name: string; version: string; how: string } {
  if (pkg.kind === 'wheel') return { name: pkg.name, version: pkg.version, how: pkg.wheel.filename };
  const what = pkg.member ? (pkg.name === project ? 'build (the project)' : 'build (workspace member)') : pkg.reason === 'no-compatible-wheel' ? 'build from sdist (no wheel for this platform)' : pkg.reason === 'no-binary' ? 'build from sdist (no-binary)' : 'build from source';
  const where = pkg.dir ?? pkg.source.git ?? pkg.source.url ?? pkg.sdist?.url ?? pkg.sdist?.path ?? '';
  return { name: pkg.name, version: pkg.version ?? '', how: where ? `${what}: ${where}` : what };
}

/** One platform's plan for people: the target and where each choice came from, the layers, the packages, the command. */
function formatPlatformPlan(platform: PlatformPlan): string {
  const { target } = platform;
  const lines = [
    `${describeTarget(platform.install.target)}: ${platform.install.packages.length} packages`,
    `  Python ${target.python.version} (${target.python.from}); glibc ${target.glibc.version} (${target.glibc.from})`,
    `  base: ${platform.base.name}${platform.base.kind === 'pulled' ? ` ${platform.base.manifestDigest}` : ''}`,
    `  runtime: ${platform.runtime.kind === 'standalone' ? `python-build-standalone ${platform.runtime.asset}` : `Debian's CPython ${platform.runtime.version}`}`,
    `  bytecode: ${platform.bytecode ? `compiled by ${platform.bytecode.interpreter} (CPython ${platform.bytecode.version})` : 'none (no CPython of this version on this machine)'}`,
    '  layers:',
  ];
  for (const layer of platform.layers) {
    const key = layer.key === null ? 'built anew' : 'blob' in layer.key ? layer.key.blob.slice(0, 19) : `${layer.key.record} ${layer.key.name.slice(0, 12)}`;
    const inputs = layer.inputs.length > 3 ? `${layer.inputs.slice(0, 3).join(', ')}, … (${layer.inputs.length})` : layer.inputs.join(', ');
    lines.push(`    ${layer.label.padEnd(16)} ${key.padEnd(32)} ${inputs}`);
  }
  const rows = platform.install.packages.map((pkg) => describePackage(pkg, platform.install.project.name));
  const width = Math.max(0, ...rows.map((row) => `${row.name} ${row.version}`.length));
  lines.push('  packages:');
  for (const row of rows) lines.push(`  ${`${row.name} ${row.version}`.padEnd(width)}  ${row.how}`);
  const command = [...(platform.config.Entrypoint ?? []), ...(platform.config.Cmd ?? [])];
  lines.push(`  command: ${JSON.stringify(command)} as ${platform.config.User ?? 'root'} in ${platform.config.WorkingDir ?? '/'}`);
  return lines.join('\n');
}

function formatPlan(plan: BuildPlan): string {
  return plan.platforms.map(formatPlatformPlan).join('\n\n');
}

async function planCommand(directory: string, options: BuildOptions): Promise<void> {
  await withPlan(directory, { ...options, json: false }, 'optional', async (plan, context) => {
    context.run.progress.close();
    process.stdout.write(options.json ? `${JSON.stringify(plan, null, 2)}\n` : `${formatPlan(plan)}\n`);
  });
}

export function planCommandDefinition(): Command {
  const command = new Command('plan').description(
    'show the plan `uvimage build` with the same flags executes: per platform the target, base, runtime, packages and wheels, layers and their cache keys, and the image config',
  );
  return addBuildOptions(command).action(planCommand);
}
