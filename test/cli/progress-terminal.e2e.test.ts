/**
 * What `uvimage build` shows while it works (issue 14, point 5), from an empty store so every
 * stage has work — the Debian index and .debs, the runtime, the wheels, the project's build,
 * the bytecode, the layers, and three sinks (push, OCI layout, docker-archive):
 *
 *   - on a terminal: the build runs in tmux (a real VT100 emulator with a pseudo-terminal); the
 *     screen it leaves, as tmux renders it (history included), holds exactly one finished line
 *     per stage, each with its time, then the result — no live line left, no escape sequence
 *     shown as text, no index file named by its sha256;
 *   - without one (CI): a start line and a finished line per stage (and a heartbeat for a slow
 *     one), never a line per file;
 *   - `--quiet` and `--json`: nothing on stderr.
 *
 * Downloads go through a caching mirror in front of the real Debian archive and PyPI
 * (caching-mirror.ts; the example's lock points at it, so the build is --frozen), the runtime
 * comes from the python-build-standalone stand-in, as in test/build/build.e2e.test.ts.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmod, cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { uvimage } from '../harness/cli.js';
import { fastapiHello, standaloneEnv } from '../harness/project-build.js';
import { startRegistry, type TestRegistry } from '../harness/registry.js';
import { standaloneMirror, type StandaloneMirror } from '../harness/standalone-python.js';
import { uvBinary } from '../harness/uv.js';
import { startCachingMirror, type CachingMirror } from './caching-mirror.js';

const cli = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const tmuxSocket = `uvimage-progress-${process.pid}`;

let mirror: CachingMirror;
let registry: TestRegistry;
let standalone: StandaloneMirror;
let work: string;
let project: string;

before(async () => {
  mirror = await startCachingMirror();
  registry = await startRegistry();
  standalone = await standaloneMirror('3.12.1');
  work = await mkdtemp(join(tmpdir(), 'uvimage-progress-'));
  project = join(work, 'fastapi-hello');
  await cp(fastapiHello, project, { recursive: true });
  const lock = join(project, 'uv.lock');
  await writeFile(lock, (await readFile(lock, 'utf8')).replaceAll('https://files.pythonhosted.org/', `${mirror.url}/pythonhosted/`));
});

after(async () => {
  spawnSync('tmux', ['-L', tmuxSocket, 'kill-server']);
  await mirror?.close();
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

/** The environment of a build from the mirror and the stand-in runtime. */
function buildEnv(): NodeJS.ProcessEnv {
  return {
    UV: uvBinary(),
    UVIMAGE_DEBIAN_MIRROR: `${mirror.url}/debian`,
    UVIMAGE_DEBIAN_SECURITY_MIRROR: `${mirror.url}/debian-security`,
    ...standaloneEnv(standalone),
  };
}

/** A build from an empty store to three sinks. */
function buildArgs(name: string): string[] {
  return [
    'build', project, '--frozen', '-t', `${registry.host}/e2e/progress-${name}:1`, '--push',
    '--oci', join(work, `${name}-oci`), '--tar', join(work, `${name}.tar`), '--cache-dir', join(work, `${name}-cache`),
  ];
}

/** One pattern per stage of that build: its finished line. */
const finishedStages = [
  /^Fetched the Debian trixie amd64 index \(\d+\.\d MiB\)/,
  /^Planned the build/,
  /^Fetched \d+ Debian trixie packages for amd64 \(\d+\.\d MiB\)/,
  /^Wrote 2 base layers for amd64 \(Debian trixie cc, \d+\.\d MiB\)/,
  /^Downloaded Python 3\.12\.1 for amd64 \(\d+\.\d MiB\)/,
  /^Wrote the Python 3\.12\.1 runtime layer \(\d+\.\d MiB\)/,
  /^Built fastapi-hello for amd64/,
  /^Downloaded \d+ wheels for amd64 \(\d+\.\d MiB\)/,
  /^Compiled \d+ files to bytecode for amd64/,
  /^Wrote 2 venv layers for amd64 \(\d+\.\d MiB\)/,
  /^Pushed 6 blobs to 127\.0\.0\.1:\d+\/e2e\/progress-\w+ \(\d+\.\d MiB\)/,
  /^Wrote the OCI layout \S+ \(\d+\.\d MiB\)/,
  /^Wrote the docker-archive \S+ \(\d+\.\d MiB\)/,
];
const withTime = / in (\d+ms|\d+\.\d\ds|\d+m \d\ds)$/;

/** Each pattern matches exactly one of the lines, and every line is one of them. */
function assertOneLinePerStage(lines: string[]): void {
  for (const pattern of finishedStages) {
    const matching = lines.filter((line) => pattern.test(line));
    assert.equal(matching.length, 1, `one line for ${pattern}:\n${lines.join('\n')}`);
    assert.match(matching[0]!, withTime);
  }
  assert.equal(lines.length, finishedStages.length, `only the stages' lines:\n${lines.join('\n')}`);
}

function tmux(...args: string[]): string {
  const result = spawnSync('tmux', ['-L', tmuxSocket, ...args], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`tmux ${args.join(' ')}: ${result.stderr}`);
  return result.stdout;
}

const shellQuote = (text: string) => `'${text.replaceAll("'", "'\\''")}'`;

test('on a terminal: one live line per stage, and the screen left has one finished line per stage with its time', async () => {
  // The pane is narrower than many live lines (they are cut, never wrapped) and tall enough
  // that the finished lines stay on the screen.
  const script = join(work, 'terminal-build.sh');
  const env = { ...buildEnv(), SOURCE_DATE_EPOCH: '' };
  await writeFile(
    script,
    [
      '#!/bin/sh',
      ...Object.entries(env).map(([name, value]) => `export ${name}=${shellQuote(value ?? '')}`),
      `${[process.execPath, '--import', 'tsx', cli, ...buildArgs('terminal')].map(shellQuote).join(' ')}`,
      'echo "uvimage exited $?"',
      'exec sleep 3600',
      '',
    ].join('\n'),
  );
  await chmod(script, 0o755);
  tmux('-f', '/dev/null', 'new-session', '-d', '-x', '100', '-y', '60', '-s', 'build', script);

  let screen = '';
  const deadline = Date.now() + 300_000;
  while (!/^uvimage exited \d+$/m.test(screen)) {
    assert.ok(Date.now() < deadline, `the build did not end within 5 minutes:\n${screen}`);
    await new Promise((resolve) => setTimeout(resolve, 500));
    screen = tmux('capture-pane', '-p', '-J', '-t', 'build', '-S', '-', '-E', '-');
  }
  const lines = screen.split('\n').map((line) => line.trimEnd());
  assert.ok(lines.includes('uvimage exited 0'), screen);

  const resultAt = lines.findIndex((line) => line.startsWith('built sha256:'));
  assert.ok(resultAt > 0, `the result follows the progress:\n${screen}`);
  const progress = lines.slice(0, resultAt).filter((line) => line !== '');
  assertOneLinePerStage(progress);
  assert.doesNotMatch(screen, /[\u2800-\u28ff]/, 'no live line (its spinner) is left');
  assert.doesNotMatch(screen, /\x1b|\^\[|\[\d*[ABJKm]/, 'no escape sequence shows as text');
  assert.doesNotMatch(progress.join('\n'), /[0-9a-f]{64}|\.whl|\.deb\b/, 'no file named by a hash, no line per file');
});

test('without a terminal: a start line and a finished line per stage, none per file; --quiet and --json print nothing on stderr', async () => {
  const result = await uvimage(buildArgs('plain'), buildEnv());
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /^built sha256:[0-9a-f]{64}\n/);
  const lines = result.stderr.split('\n').filter((line) => line !== '');
  const started = lines.filter((line) => line.endsWith('…'));
  const heartbeats = lines.filter((line) => /^[A-Z][a-z]+ing [^:]+: /.test(line));
  const finished = lines.filter((line) => !started.includes(line) && !heartbeats.includes(line));
  assertOneLinePerStage(finished);
  assert.equal(started.length, finishedStages.length, `a start line per stage:\n${result.stderr}`);
  // A heartbeat every 15 s of a stage at most: this build's stages take seconds.
  assert.ok(heartbeats.length <= 4, `a few lines per stage, not one per file:\n${result.stderr}`);
  assert.doesNotMatch(result.stderr, /\x1b/, 'plain text');
  assert.doesNotMatch(result.stderr, /[0-9a-f]{64}|\.whl|\.deb\b|Packages\.xz/, 'no line per file');

  // The same build again, into the now warm store: still work to do (the project is built
  // again), but --quiet and --json keep stderr empty and print the result.
  const again = buildArgs('plain').filter((arg) => arg !== '--push');
  const quiet = await uvimage([...again, '-q'], buildEnv());
  assert.equal(quiet.code, 0, quiet.stderr);
  assert.equal(quiet.stderr, '');
  assert.match(quiet.stdout, /^built sha256:/);
  const json = await uvimage([...again, '--json'], buildEnv());
  assert.equal(json.code, 0, json.stderr);
  assert.equal(json.stderr, '');
  assert.equal((JSON.parse(json.stdout) as { digest: string }).digest, /^built (sha256:[0-9a-f]{64})/.exec(result.stdout)![1]);
});
