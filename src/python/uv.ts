import { execFile } from 'node:child_process';
import { UserError } from '../errors.js';

/**
 * The uv that uvimage runs: $UV when set — uv puts its own path there for every process it
 * starts, so under `uv run` or `uvx` the very same uv is used, with no PATH lookup or version
 * manager's shim in between — else `uv` on PATH.
 */
export function uvExecutable(env: NodeJS.ProcessEnv = process.env): string {
  return env.UV?.trim() || 'uv';
}

/** What a uv run printed. */
export interface UvOutput {
  stdout: string;
  stderr: string;
}

/**
 * Runs uv to completion. A missing uv is one line saying which was looked for; a failing run
 * rejects with UvFailed, carrying what uv said, for the caller to report in its own words.
 */
export function runUv(args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; uv?: string; why: string }): Promise<UvOutput> {
  const env = options.env ?? process.env;
  const uv = options.uv ?? uvExecutable(env);
  return new Promise((resolve, reject) => {
    execFile(uv, args, { env, cwd: options.cwd, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (!error) return resolve({ stdout: String(stdout), stderr: String(stderr) });
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        return reject(new UserError(`${options.why} needs uv; ${uv === 'uv' ? 'there is none on PATH' : `${uv} (from $UV) was not found`}`));
      }
      reject(new UvFailed(String(stderr), error.message));
    });
  });
}

/** uv ran and failed: `said` is its stderr. */
export class UvFailed extends Error {
  constructor(
    readonly said: string,
    message: string,
  ) {
    super(message);
  }

  /** What uv said as one line: its last `error:` with the `cause:` lines under it (hints left out), else its last lines. */
  lastLines(count = 3): string {
    const lines = this.said.trim().split('\n').map((line) => line.trim()).filter(Boolean);
    const at = lines.findLastIndex((line) => line.startsWith('error:'));
    if (at < 0) return lines.slice(-count).join(' | ') || this.message;
    const causes = lines.slice(at + 1).filter((line) => line.startsWith('cause:'));
    return [lines[at]!, ...causes].map((line) => line.replace(/^(error|cause):\s*/, '')).join(': ');
  }
}
