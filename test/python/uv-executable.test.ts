/**
 * Which uv uvimage runs: $UV, which uv sets to its own path for every process it starts (so
 * `uv run uvimage …` uses that uv), else `uv` on PATH. A wrapper that logs its arguments and then
 * runs the real uv shows which one ran.
 */
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { openPycCompiler } from '../../src/python/bytecode.js';
import { buildWheel } from '../../src/python/build-wheel.js';
import { fastapiHello } from '../harness/project-build.js';
import { pyenvPython, uvAvailable, uvBinary, uvEnv } from '../harness/uv.js';

const skip = !uvAvailable() ? 'uv is not installed (scripts/install-test-deps)' : !pyenvPython('3.12') ? 'no CPython 3.12 in pyenv' : false;
let dir: string;
let log: string;
let wrapper: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'uvimage-uv-env-'));
  log = join(dir, 'calls.log');
  wrapper = join(dir, 'uv-from-env');
  await writeFile(wrapper, `#!/bin/sh\necho "$*" >> '${log}'\nexec '${uvBinary()}' "$@"\n`);
  await chmod(wrapper, 0o755);
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('uv build and uv python find run the uv that $UV names', { skip }, async () => {
  const env = uvEnv({ UV: wrapper });
  const built = await buildWheel(fastapiHello, { env, python: pyenvPython('3.12')!.interpreter, name: 'fastapi-hello' });
  await built.cleanup();
  assert.equal(built.filename, 'fastapi_hello-0.1.0-py3-none-any.whl');
  const compiler = await openPycCompiler('3.12', { env });
  await compiler?.close();
  const calls = (await readFile(log, 'utf8')).trim().split('\n');
  assert.ok(calls.some((call) => call.startsWith('build --wheel ')), calls.join('\n'));
  assert.ok(calls.some((call) => call.startsWith('python find --no-project ')), calls.join('\n'));
});

test('$UV naming nothing is one line naming it', { skip }, async () => {
  const missing = join(dir, 'no-such-uv');
  await assert.rejects(
    buildWheel(fastapiHello, { env: uvEnv({ UV: missing }), name: 'fastapi-hello' }),
    new RegExp(`^UserError: building fastapi-hello needs uv \\(uv build --wheel\\); ${missing} \\(from \\$UV\\) was not found$`),
  );
});
