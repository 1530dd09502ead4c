/**
 * The progress view without a terminal (src/cli/progress.ts), written to a stream as a CI log
 * receives it: a stage says it starts and what it did, never a line per file; a stage with
 * nothing to do says nothing; a failed one says so; the finished lines read as uv's do. The
 * terminal view is driven through a real terminal in progress-terminal.e2e.test.ts.
 */
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { createProgress, finishedLine } from '../../src/cli/progress.js';
import { asTask, formatDuration, stages } from '../../src/progress.js';

function plainLog(heartbeatMs?: number): { stream: NodeJS.WriteStream; lines: () => string[] } {
  const stream = new PassThrough();
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  return { stream: stream as unknown as NodeJS.WriteStream, lines: () => Buffer.concat(chunks).toString('utf8').split('\n').filter((line) => line !== '') };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test('a log gets two lines for a stage of sixty downloads: it starts, and what it did in how long', async () => {
  const log = plainLog();
  const progress = createProgress({ stream: log.stream });
  const wheels = progress.stage(stages.wheels('amd64'));
  wheels.expect(60, 60 * 1000);
  await Promise.all(
    Array.from({ length: 60 }, (_, index) =>
      asTask(wheels, `package${index}-1.0-py3-none-any.whl`, async (task) => {
        await sleep(1);
        task.advance(1000);
      }),
    ),
  );
  wheels.finish();
  progress.close();
  const lines = log.lines();
  assert.equal(lines.length, 2, lines.join('\n'));
  assert.equal(lines[0], 'Downloading wheels for amd64…');
  assert.match(lines[1]!, /^Downloaded 60 wheels for amd64 \(58\.6 KiB\) in \d+ms$/);
  assert.doesNotMatch(lines.join('\n'), /\.whl/, 'no line names a file');
});

test('a stage whose every thing was in the store prints nothing; one with some says how many were', () => {
  const log = plainLog();
  const progress = createProgress({ stream: log.stream });
  const cached = progress.stage(stages.venvLayers('amd64'));
  cached.expect(2);
  cached.skip('unchanged', 2);
  cached.finish();
  const partly = progress.stage(stages.venvLayers('arm64'));
  partly.expect(2);
  partly.skip('unchanged');
  const task = partly.begin('project');
  task.advance(2150);
  task.end();
  partly.finish();
  progress.close();
  const lines = log.lines();
  assert.equal(lines.length, 2, lines.join('\n'));
  assert.match(lines[1]!, /^Wrote 1 venv layer for arm64 \(2\.1 KiB, 1 unchanged\) in \d+ms$/);
});

test('a failed task makes its stage say it failed, and how far it got', async () => {
  const log = plainLog();
  const progress = createProgress({ stream: log.stream });
  const debs = progress.stage(stages.debianPackages('trixie', 'amd64'));
  debs.expect(3);
  await asTask(debs, 'libc6 2.41-12', async () => {});
  await assert.rejects(
    asTask(debs, 'libssl3t64 3.5.1-1', async () => {
      throw new Error('digest mismatch');
    }),
    /digest mismatch/,
  );
  debs.finish();
  progress.close();
  assert.match(log.lines()[1]!, /^Fetching Debian trixie packages for amd64 failed after \d+ms, 1 of 3 Debian trixie packages done$/);
});

test('a long stage says where it is now and then, not per file', async () => {
  const log = plainLog();
  const progress = createProgress({ stream: log.stream, heartbeatMs: 500 });
  const layer = progress.stage(stages.runtimeLayer('3.12.1'));
  await asTask(layer, '/python', async (task) => {
    for (let i = 0; i < 14; i++) {
      await sleep(100);
      task.advance(1024 * 1024);
    }
  });
  layer.finish();
  progress.close();
  const lines = log.lines();
  const during = lines.slice(1, -1);
  // 1.4 s at one line every 0.5 s: two, each saying how much so far and how fast.
  assert.ok(during.length >= 1 && during.length <= 3, lines.join('\n'));
  for (const line of during) assert.match(line, /^Writing the Python 3\.12\.1 runtime layer: \d+\.\d MiB, \d+\.\d (KiB|MiB)\/s$/);
  assert.match(lines.at(-1)!, /^Wrote the Python 3\.12\.1 runtime layer \(14\.0 MiB\) in \d\.\d\ds$/);
});

test('work given to a finished stage is a second round, with a line of its own', async () => {
  const log = plainLog();
  const progress = createProgress({ stream: log.stream });
  const wheels = progress.stage(stages.wheels('amd64'));
  wheels.expect(1);
  await asTask(wheels, 'a-1.0-py3-none-any.whl', async () => {});
  wheels.finish();
  wheels.finish(); // idempotent
  wheels.expect(1);
  await asTask(wheels, 'torch-2.5.0-cp312-cp312-manylinux_2_28_x86_64.whl', async () => {});
  progress.close(); // finishes what is still open
  assert.deepEqual(
    log.lines().map((line) => line.replace(/ in \d+ms$/, '')),
    ['Downloading wheels for amd64…', 'Downloaded 1 wheel for amd64', 'Downloading wheels for amd64…', 'Downloaded 1 wheel for amd64'],
  );
});

test('--quiet: nothing at all, not even info lines', () => {
  const log = plainLog();
  const progress = createProgress({ stream: log.stream, quiet: true });
  progress.info('warning: no CPython 3.12 on this machine');
  const stage = progress.stage(stages.wheels('amd64'));
  stage.begin('a.whl').end();
  stage.finish();
  progress.close();
  assert.deepEqual(log.lines(), []);
});

test('finished lines: counts, names of a few things built, bytes, what was skipped, the time as uv prints it', () => {
  const base = { doneCount: 0, bytes: 0, skips: new Map<string, number>(), failed: false, names: [] as string[], busyMs: 0, expectedCount: 0 };
  assert.equal(finishedLine(stages.builds('amd64'), { ...base, doneCount: 1, names: ['fastapi-hello'], busyMs: 612 }), 'Built fastapi-hello for amd64 in 612ms');
  assert.equal(
    finishedLine(stages.builds('amd64'), { ...base, doneCount: 4, names: ['a', 'b', 'c', 'd'], busyMs: 3100 }),
    'Built 4 packages for amd64 in 3.10s',
  );
  assert.equal(
    finishedLine(stages.push('127.0.0.1:5000/me/app'), { ...base, doneCount: 1, bytes: 4900, skips: new Map([['already there', 6]]), busyMs: 210 }),
    'Pushed 1 blob to 127.0.0.1:5000/me/app (4.8 KiB, 6 already there) in 210ms',
  );
  assert.equal(finishedLine(stages.debianIndex('trixie', 'arm64'), { ...base, bytes: 9.7 * 1024 * 1024, busyMs: 1410 }), 'Fetched the Debian trixie arm64 index (9.7 MiB) in 1.41s');
  assert.equal(finishedLine(stages.baseLayers('cc', 'trixie', 'amd64'), { ...base, doneCount: 2, bytes: 9.7 * 1024 * 1024, busyMs: 2100 }), 'Wrote 2 base layers for amd64 (Debian trixie cc, 9.7 MiB) in 2.10s');
  assert.equal(formatDuration(125_000), '2m 05s');
});

test('a stage whose total grows as it goes says how many so far, not n of a moving m', async () => {
  const log = plainLog();
  const progress = createProgress({ stream: log.stream, heartbeatMs: 200 });
  const bytecode = progress.stage(stages.bytecode('amd64'));
  bytecode.expect(10);
  await asTask(bytecode, 'a-1.0-py3-none-any.whl', async (task) => {
    for (let i = 0; i < 10; i++) {
      await sleep(50);
      task.tick();
    }
    bytecode.expect(5);
  }, { count: 0 });
  bytecode.finish();
  progress.close();
  const lines = log.lines();
  const during = lines.slice(1, -1);
  assert.ok(during.length >= 1, lines.join('\n'));
  for (const line of during) assert.match(line, /^Compiling files to bytecode for amd64: \d+ files?$/);
  assert.match(lines.at(-1)!, /^Compiled 10 files to bytecode for amd64 in \d+ms$/);
});
