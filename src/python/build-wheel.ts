/**
 * Wheels uvimage has to build: the project and its workspace members (always), and locked
 * dependencies that have no wheel for the target (an sdist, a git or path source). `uv build
 * --wheel` builds them on this machine; the result can go into the image when it is pure Python
 * (`-none-any`) or when it was built for the target's platform (the target is this machine's
 * architecture and the wheel's tags are among the target's). Anything else is an error naming
 * the package, the target and the wheels that exist.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UserError } from '../errors.js';
import { architectures, hostArchitecture } from '../facts/architectures.js';
import { runUv, UvFailed } from './uv.js';

export interface BuildWheelOptions {
  /** The uv executable; default uvExecutable(env): $UV, else 'uv' on PATH. */
  uv?: string;
  /** Python version to build with (the target's, e.g. '3.12'). */
  python?: string;
  env?: NodeJS.ProcessEnv;
  /** SOURCE_DATE_EPOCH for the build backend, so rebuilt wheels are byte-identical. */
  sourceDateEpoch?: number;
  /** What to call the package in messages. */
  name: string;
}

export interface BuiltWheel {
  /** Path of the wheel file (in a temp directory; call cleanup() when done with it). */
  path: string;
  filename: string;
  cleanup(): Promise<void>;
}

/** `uv build --wheel <source>`: source is a project directory or an sdist archive. */
export async function buildWheel(source: string, options: BuildWheelOptions): Promise<BuiltWheel> {
  const outDir = await mkdtemp(join(tmpdir(), 'uvimage-build-'));
  const cleanup = (): Promise<void> => rm(outDir, { recursive: true, force: true });
  const args = ['build', '--wheel', '--quiet', '--no-progress', '--color', 'never', '--out-dir', outDir];
  if (options.python) args.push('--python', options.python);
  args.push(source);
  const env: NodeJS.ProcessEnv = { ...(options.env ?? process.env) };
  if (options.sourceDateEpoch !== undefined) env.SOURCE_DATE_EPOCH = String(options.sourceDateEpoch);
  try {
    await runUv(args, { env, cwd: outDir, uv: options.uv, why: `building ${options.name}` }).catch((error: unknown) => {
      throw error instanceof UvFailed ? new UserError(`uv build --wheel of ${options.name} failed: ${error.lastLines()}`) : error;
    });
    const wheels = (await readdir(outDir)).filter((name) => name.endsWith('.whl'));
    if (wheels.length !== 1) throw new UserError(`uv build --wheel of ${options.name} produced ${wheels.length} wheels, expected one`);
    return { path: join(outDir, wheels[0]!), filename: wheels[0]!, cleanup };
  } catch (error) {
    await cleanup();
    throw error;
  }
}

/** The host's architecture as Python names it. */
export function hostArch(): string {
  const host = hostArchitecture();
  return host ? architectures[host].python : process.arch;
}

/** Whether a wheel file name is pure Python (every tag's platform is `any`). */
export function isPureWheel(filename: string): boolean {
  const parts = filename.replace(/\.whl$/, '').split('-');
  const platform = parts[parts.length - 1] ?? '';
  const abi = parts[parts.length - 2] ?? '';
  return platform.split('.').every((tag) => tag === 'any') && abi.split('.').every((tag) => tag === 'none');
}
