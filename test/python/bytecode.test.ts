/**
 * Deterministic bytecode from one long-lived interpreter: PEP 552 unchecked-hash pycs whose
 * co_filename is the path in the image, the same bytes on every run, fast for thousands of
 * files, and no compiler (rather than a wrong one) when the version is not on this machine.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BlobStore } from '../../src/oci/store.js';
import { openPycCompiler, pycPathFor, type HostPycCompiler } from '../../src/python/bytecode.js';
import { openBytecodeCompiler } from '../../src/python/venv-layers.js';
import { pyenvPython } from '../harness/uv.js';

const python = pyenvPython('3.12');

describe('bytecode', { skip: python ? false : 'no CPython 3.12 in pyenv' }, () => {
  let compiler: HostPycCompiler;
  let dir: string;
  before(async () => {
    compiler = (await openPycCompiler('3.12'))!;
    assert.ok(compiler, 'a 3.12 compiler is found');
    dir = await mkdtemp(join(tmpdir(), 'uvimage-pyc-'));
  });
  after(async () => {
    await compiler.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('finds a CPython of the requested minor version', () => {
    assert.match(compiler.version, /^3\.12\.\d+$/);
    assert.equal(compiler.cacheTag, 'cpython-312');
  });

  test('an unchecked-hash pyc with the image path as co_filename, which that CPython loads', async () => {
    const source = Buffer.from('def f():\n    return {"a", "b", "c", "d"}\nVALUE = 42\n');
    const imagePath = '/app/.venv/lib/python3.12/site-packages/demo.py';
    const pyc = (await compiler.compile(source, imagePath))!;
    assert.ok(pyc);
    assert.equal(pyc.readUInt32LE(4), 0b01, 'flags: hash-based, not checked');
    const pycFile = join(dir, 'demo.pyc');
    await writeFile(pycFile, pyc);
    const check = `
import importlib.util, marshal, sys
data = open(sys.argv[1], "rb").read()
assert data[:4] == importlib.util.MAGIC_NUMBER, "magic"
assert data[8:16] == importlib.util.source_hash(sys.argv[2].encode().decode("unicode_escape").encode()), "source hash"
code = marshal.loads(data[16:])
ns = {}
exec(code, ns)
print(code.co_filename, ns["VALUE"], ns["f"].__code__.co_filename)
`;
    const output = execFileSync(python!.interpreter, ['-c', check, pycFile, source.toString('utf8').replace(/\n/g, '\\n')], { encoding: 'utf8' });
    assert.equal(output.trim(), `${imagePath} 42 ${imagePath}`);
  });

  test('the same source gives the same bytes: in one process after other files, and in a new one', async () => {
    const source = Buffer.from('import os\nNAMES = frozenset({"x", "y", "z", "w", "v"})\nclass A:\n    def m(self, data):\n        return [d for d in data if d in NAMES]\n');
    const first = (await compiler.compile(source, '/app/m.py'))!;
    for (let i = 0; i < 20; i++) await compiler.compile(Buffer.from(`data = ${i}\nNAMES = ${i}\n`), `/app/other${i}.py`);
    const again = (await compiler.compile(source, '/app/m.py'))!;
    const fresh = (await openPycCompiler('3.12'))!;
    const third = (await fresh.compile(source, '/app/m.py'))!;
    await fresh.close();
    assert.ok(first.equals(again));
    assert.ok(first.equals(third));
  });

  test('several workers: the same bytes as one', async () => {
    const pool = (await openPycCompiler('3.12', { workers: 2 }))!;
    const sources = Array.from({ length: 40 }, (_, i) => Buffer.from(`X${i} = {${i}, "a", "b"}\ndef f():\n    return X${i}\n`));
    const pooled = await Promise.all(sources.map((source, i) => pool.compile(source, `/app/p${i}.py`)));
    await pool.close();
    for (let i = 0; i < sources.length; i++) assert.ok(pooled[i]!.equals((await compiler.compile(sources[i]!, `/app/p${i}.py`))!));
  });

  test('a file that does not compile gives undefined, and the compiler carries on', async () => {
    assert.equal(await compiler.compile(Buffer.from('def broken(:\n'), '/app/broken.py'), undefined);
    assert.equal(await compiler.compile(Buffer.from('\xff\xfe not utf-8 \x00', 'latin1'), '/app/binary.py'), undefined);
    assert.ok(await compiler.compile(Buffer.from('x = 1\n'), '/app/ok.py'));
  });

  test('thousands of files through one process', async () => {
    const source = Buffer.from(Array.from({ length: 60 }, (_, i) => `def function_${i}(a, b):\n    return a * ${i} + b\n`).join(''));
    const started = Date.now();
    const results = await Promise.all(Array.from({ length: 3000 }, (_, i) => compiler.compile(source, `/app/pkg/mod${i}.py`)));
    const seconds = (Date.now() - started) / 1000;
    assert.ok(results.every((pyc) => pyc && pyc.length > 0));
    console.log(`# 3000 files of ${source.length} bytes compiled in ${seconds.toFixed(2)} s`);
    assert.ok(seconds < 30, `took ${seconds} s`);
  });

  test('pyc paths as importlib names them', () => {
    assert.equal(pycPathFor('/app/.venv/lib/python3.12/site-packages/six.py', 'cpython-312'), '/app/.venv/lib/python3.12/site-packages/__pycache__/six.cpython-312.pyc');
    assert.equal(pycPathFor('pkg/__init__.py', 'cpython-313'), 'pkg/__pycache__/__init__.cpython-313.pyc');
    assert.equal(pycPathFor('mod.py', 'cpython-312'), '__pycache__/mod.cpython-312.pyc');
  });

  test('no compiler for a version this machine does not have, or a wrong interpreter', async () => {
    assert.equal(await openPycCompiler('3.99'), undefined);
    const warnings: string[] = [];
    assert.equal(await openBytecodeCompiler('3.99.1', { warn: (line) => warnings.push(line) }), undefined);
    assert.deepEqual(warnings, ['no CPython 3.99 on this machine to compile bytecode with: the image will have no .pyc files and every start compiles its imports (install one with `uv python install 3.99`)']);
    assert.equal(await openPycCompiler('3.11', { interpreter: python!.interpreter }), undefined);
    assert.equal(await openPycCompiler('3.12', { interpreter: '/nonexistent/python3.12' }), undefined);
  });

  test('with a store, the interpreter is remembered and used next time; a stale one is looked up again', async () => {
    const store = await BlobStore.open(join(dir, 'store'));
    const found = (await openBytecodeCompiler('3.12.1', { store, workers: 1 }))!;
    await found.close();
    assert.equal(await store.readRecord('pyc-interpreter', '3.12'), found.interpreter);

    // A path no lookup would give: taken only because it is remembered.
    const remembered = join(dir, 'remembered-python3.12');
    await symlink(python!.interpreter, remembered);
    await store.writeRecord('pyc-interpreter', '3.12', remembered);
    const used = (await openBytecodeCompiler('3.12.1', { store, workers: 1 }))!;
    await used.close();
    assert.equal(used.interpreter, remembered);

    // Gone, or of another minor version: found afresh and remembered instead.
    for (const stale of ['/nonexistent/python3.12', pyenvPython('3.11')?.interpreter].filter((path) => path !== undefined)) {
      await store.writeRecord('pyc-interpreter', '3.12', stale);
      const again = (await openBytecodeCompiler('3.12.1', { store, workers: 1 }))!;
      await again.close();
      assert.equal(again.interpreter, found.interpreter, stale);
      assert.equal(await store.readRecord('pyc-interpreter', '3.12'), found.interpreter);
    }
  });
});
