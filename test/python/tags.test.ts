import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { LockWheel } from '../../src/python/lock.js';
import { selectWheel } from '../../src/python/select.js';
import { compatibleTags, parseWheelFilename, platformTags, wheelTags } from '../../src/python/tags.js';
import type { PythonTarget } from '../../src/python/target.js';

const trixieX86: PythonTarget = { pythonVersion: '3.12.8', implementation: 'cpython', os: 'linux', arch: 'x86_64', glibc: [2, 41] };
const bookwormArm: PythonTarget = { pythonVersion: '3.12.8', implementation: 'cpython', os: 'linux', arch: 'aarch64', glibc: [2, 36] };

function before(tags: string[], a: string, b: string): void {
  const i = tags.indexOf(a);
  const j = tags.indexOf(b);
  assert.ok(i >= 0, `${a} present`);
  assert.ok(j >= 0, `${b} present`);
  assert.ok(i < j, `${a} (#${i}) before ${b} (#${j})`);
}

test('platform tags: manylinux_2_N from the glibc ceiling down, legacy aliases right after their twins, linux_<arch> last', () => {
  const x86 = platformTags(trixieX86);
  assert.equal(x86[0], 'manylinux_2_41_x86_64');
  assert.equal(x86.at(-1), 'linux_x86_64');
  assert.equal(x86[x86.indexOf('manylinux_2_17_x86_64') + 1], 'manylinux2014_x86_64');
  assert.equal(x86[x86.indexOf('manylinux_2_12_x86_64') + 1], 'manylinux2010_x86_64');
  assert.equal(x86[x86.indexOf('manylinux_2_5_x86_64') + 1], 'manylinux1_x86_64');
  assert.equal(x86.indexOf('manylinux_2_4_x86_64'), -1);
  assert.equal(x86.length, 41 - 5 + 1 + 3 + 1);
  const arm = platformTags(bookwormArm);
  assert.equal(arm[0], 'manylinux_2_36_aarch64');
  assert.equal(arm.indexOf('manylinux_2_37_aarch64'), -1, 'nothing newer than the base glibc');
  assert.equal(arm.at(-2), 'manylinux2014_aarch64', 'aarch64 stops at 2_17');
  assert.equal(arm.at(-3), 'manylinux_2_17_aarch64');
  assert.ok(!arm.some((tag) => tag.includes('musllinux')));
  assert.ok(!arm.some((tag) => tag.includes('manylinux1') || tag.includes('manylinux2010')));
});

test("compatible tags in uv's priority order", () => {
  const tags = compatibleTags(trixieX86);
  assert.equal(tags[0], 'cp312-cp312-manylinux_2_41_x86_64');
  assert.equal(tags.at(-1), 'py30-none-any');
  assert.ok(!tags.some((tag) => tag.includes('musllinux')));
  assert.equal(new Set(tags).size, tags.length, 'no duplicates');
  // 1. the exact ABI on every platform tag, before any abi3
  before(tags, 'cp312-cp312-linux_x86_64', 'cp312-abi3-manylinux_2_41_x86_64');
  // 2. abi3 down the minors to cp32, cp312-none after cp312-abi3
  before(tags, 'cp312-abi3-linux_x86_64', 'cp312-none-manylinux_2_41_x86_64');
  before(tags, 'cp312-none-linux_x86_64', 'cp311-abi3-manylinux_2_41_x86_64');
  before(tags, 'cp311-abi3-linux_x86_64', 'cp310-abi3-manylinux_2_41_x86_64');
  assert.ok(tags.includes('cp32-abi3-manylinux1_x86_64'));
  assert.ok(!tags.includes('cp31-abi3-manylinux1_x86_64'));
  assert.ok(!tags.includes('cp311-none-manylinux_2_17_x86_64'), 'none only for the current CPython');
  assert.ok(!tags.includes('cp311-cp311-manylinux_2_17_x86_64'));
  // 3. py312, then py3, then py311... with platforms
  before(tags, 'cp32-abi3-linux_x86_64', 'py312-none-manylinux_2_41_x86_64');
  before(tags, 'py312-none-linux_x86_64', 'py3-none-manylinux_2_41_x86_64');
  before(tags, 'py3-none-linux_x86_64', 'py311-none-manylinux_2_41_x86_64');
  // 4. -any: cp312-none-any, py312-none-any, py3-none-any, py311-none-any ... py30-none-any
  before(tags, 'py30-none-linux_x86_64', 'cp312-none-any');
  const anyTags = tags.filter((tag) => tag.endsWith('-any'));
  assert.deepEqual(anyTags.slice(0, 4), ['cp312-none-any', 'py312-none-any', 'py3-none-any', 'py311-none-any']);
  // manylinux2014 ranks right after manylinux_2_17, manylinux1 after manylinux_2_5
  assert.equal(tags[tags.indexOf('cp312-cp312-manylinux_2_17_x86_64') + 1], 'cp312-cp312-manylinux2014_x86_64');
  assert.equal(tags[tags.indexOf('cp312-cp312-manylinux_2_5_x86_64') + 1], 'cp312-cp312-manylinux1_x86_64');
});

test('wheel filenames and compressed tag sets', () => {
  assert.deepEqual(wheelTags('six-1.17.0-py2.py3-none-any.whl'), ['py2-none-any', 'py3-none-any']);
  assert.deepEqual(wheelTags('orjson-3.13.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl'), [
    'cp312-cp312-manylinux_2_17_x86_64',
    'cp312-cp312-manylinux2014_x86_64',
  ]);
  assert.deepEqual(parseWheelFilename('pkg-1.0-1build-py3-none-any.whl'), {
    name: 'pkg',
    version: '1.0',
    build: '1build',
    pythonTags: ['py3'],
    abiTags: ['none'],
    platformTags: ['any'],
  });
  assert.deepEqual(wheelTags('pkg-1.0.tar.gz'), []);
});

function wheels(...filenames: string[]): LockWheel[] {
  return filenames.map((filename) => ({ filename, url: `https://files.example/${filename}`, hash: 'sha256:00' }));
}

test('selectWheel takes the best priority; nothing newer than the glibc, no musllinux, no other arch', () => {
  const tags = compatibleTags(trixieX86);
  const candidates = wheels(
    'pkg-1.0-py3-none-any.whl',
    'pkg-1.0-cp312-cp312-musllinux_1_2_x86_64.whl',
    'pkg-1.0-cp312-cp312-manylinux_2_17_aarch64.manylinux2014_aarch64.whl',
    'pkg-1.0-cp312-abi3-manylinux_2_28_x86_64.whl',
    'pkg-1.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl',
    'pkg-1.0-cp312-cp312-manylinux_2_99_x86_64.whl',
    'pkg-1.0-cp313-cp313-manylinux_2_28_x86_64.whl',
  );
  assert.equal(selectWheel(candidates, tags)?.filename, 'pkg-1.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl');
  // exact ABI beats abi3 even on an older manylinux; abi3 beats pure
  assert.equal(selectWheel(candidates.slice(0, 4), tags)?.filename, 'pkg-1.0-cp312-abi3-manylinux_2_28_x86_64.whl');
  assert.equal(selectWheel(candidates.slice(0, 3), tags)?.filename, 'pkg-1.0-py3-none-any.whl');
  assert.equal(selectWheel(candidates.slice(1, 3), tags), undefined);
  // abi3 of an older minor still fits; newer glibc does not
  assert.equal(selectWheel(wheels('c-1-cp39-abi3-manylinux_2_17_x86_64.whl'), tags)?.filename, 'c-1-cp39-abi3-manylinux_2_17_x86_64.whl');
  assert.equal(selectWheel(wheels('c-1-cp313-abi3-manylinux_2_17_x86_64.whl'), tags), undefined);
  assert.equal(selectWheel(wheels('c-1-cp312-cp312-manylinux_2_39_aarch64.whl'), compatibleTags(bookwormArm)), undefined);
  assert.equal(selectWheel(wheels('c-1-cp312-cp312-manylinux_2_36_aarch64.whl'), compatibleTags(bookwormArm))?.filename, 'c-1-cp312-cp312-manylinux_2_36_aarch64.whl');
  // a newer manylinux (within the ceiling) beats an older one
  assert.equal(
    selectWheel(wheels('d-1-cp312-cp312-manylinux_2_17_x86_64.whl', 'd-1-cp312-cp312-manylinux_2_28_x86_64.whl'), tags)?.filename,
    'd-1-cp312-cp312-manylinux_2_28_x86_64.whl',
  );
});

test('on equal tags the higher build tag wins', () => {
  const tags = compatibleTags(trixieX86);
  assert.equal(selectWheel(wheels('e-1-py3-none-any.whl', 'e-1-2-py3-none-any.whl', 'e-1-10b-py3-none-any.whl', 'e-1-10a-py3-none-any.whl'), tags)?.filename, 'e-1-10b-py3-none-any.whl');
});
