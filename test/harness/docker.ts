/**
 * Test helpers for the Docker engine and the other container tools the sink tests use as
 * validators. Tests that need Docker call requireDocker() first: a machine without a running
 * engine makes them FAIL with instructions, never skip silently.
 */
import { spawn, spawnSync } from 'node:child_process';

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion (no shell), collecting its output; never throws for a non-zero exit. */
export function run(command: string, args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; input?: string } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: options.env ?? process.env, cwd: options.cwd, stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr!.on('data', (chunk: Buffer) => err.push(chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }));
    if (child.stdin) {
      child.stdin.on('error', () => {}); // a command that exits without reading its input
      child.stdin.end(options.input);
    }
  });
}

/** Runs a command and returns its stdout; a non-zero exit throws with the command line and its stderr. */
export async function check(command: string, args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; input?: string } = {}): Promise<string> {
  const result = await run(command, args, options);
  if (result.code !== 0) {
    throw new Error(`${command} ${args.join(' ')} exited with ${result.code}:\n${result.stderr || result.stdout}`);
  }
  return result.stdout;
}

/**
 * Throws (so the calling test fails) unless `docker info` succeeds, i.e. a Docker engine answers
 * on DOCKER_HOST or /var/run/docker.sock.
 */
export function requireDocker(): void {
  const result = spawnSync('docker', ['info', '--format', '{{.ServerVersion}}'], { encoding: 'utf8', timeout: 30_000 });
  if (result.error || result.status !== 0) {
    const why = result.error ? result.error.message : (result.stderr || result.stdout).trim().split('\n').slice(-3).join(' | ');
    throw new Error(
      `these tests need a running Docker engine and \`docker info\` failed (${why}). ` +
        'Start one with scripts/start-dockerd (it runs dockerd with --bridge=none --iptables=false), then run the tests again.',
    );
  }
}

/** Removes images from the Docker engine, ignoring ones that are not there. */
export async function dockerRemoveImages(refs: string[]): Promise<void> {
  if (refs.length > 0) await run('docker', ['image', 'rm', '--force', ...refs]);
}
