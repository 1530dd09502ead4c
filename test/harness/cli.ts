/**
 * The CLI as a user runs it: `src/cli/main.ts` in a child process, so exit codes, stdout and
 * stderr are what a shell sees. SOURCE_DATE_EPOCH is cleared unless `env` sets it.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const cli = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `uvimage ARGS` to completion; `input` is written to its standard input. */
export function uvimage(args: string[], env: NodeJS.ProcessEnv = {}, input?: string): Promise<CliResult> {
  return runCommand(process.execPath, ['--import', 'tsx', cli, ...args], env, input);
}

/** Runs a command as uvimage() runs the CLI: the same environment rules, its output collected. */
export function runCommand(command: string, args: string[], env: NodeJS.ProcessEnv = {}, input?: string): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      env: { ...process.env, SOURCE_DATE_EPOCH: '', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.on('error', () => {}); // a run that exits without reading its input
    child.stdin.end(input);
  });
}

/** A user-facing failure: exit 1, exactly one `uvimage: error:` line on stderr that names the problem, no stack trace, no result on stdout. */
export function assertOneLineError(result: CliResult, pattern: RegExp): void {
  assert.equal(result.code, 1, `expected exit 1, got ${result.code}; stderr: ${result.stderr}`);
  const lines = result.stderr.trim().split('\n').filter((line) => line.startsWith('uvimage: '));
  assert.equal(lines.length, 1, `one error line expected: ${result.stderr}`);
  assert.match(lines[0]!, /^uvimage: error: /);
  assert.match(lines[0]!, pattern);
  assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace without --debug');
  assert.equal(result.stdout, '', 'a failed run prints no result');
}
