/**
 * The CLI as a user runs it: `src/cli/main.ts` in a child process, so exit codes, stdout and
 * stderr are what a shell sees. SOURCE_DATE_EPOCH is cleared unless `env` sets it.
 */
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { run, type RunResult } from './docker.js';

const cli = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

export type CliResult = RunResult;

/** The environment the CLI runs with in tests: this process's, SOURCE_DATE_EPOCH cleared, then `env`. */
export function cliEnv(env: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { ...process.env, SOURCE_DATE_EPOCH: '', ...env };
}

/** Runs `uvimage ARGS` to completion; `input` (default none) is written to its standard input. */
export function uvimage(args: string[], env: NodeJS.ProcessEnv = {}, input = ''): Promise<CliResult> {
  return run(process.execPath, ['--import', 'tsx', cli, ...args], { env: cliEnv(env), input });
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
