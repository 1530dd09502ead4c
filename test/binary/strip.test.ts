/**
 * Debug-info stripping (src/binary/strip.ts) judged by binutils: objects built here with gcc -g
 * (64-bit, 32-bit, an executable) stripped by us and by `strip --strip-debug`, their section
 * tables and symbol tables compared with readelf, the results loaded and run; uvloop's real
 * wheels from PyPI for x86_64 (against binutils) and aarch64 (which this machine's binutils
 * cannot strip: compared section by section with the input); the files left alone, each with
 * its reason; memory over a 256 MiB debug section; and the wheel installer's `strip` option.
 *
 * One corner is a byte edit: a big-endian file is a copy of a little-endian one with EI_DATA
 * flipped (no big-endian toolchain here), enough for the refusal, which reads only that byte.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFile, chmod, copyFile, mkdtemp, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { fileReader } from '../../src/binary/elf.js';
import { planStripDebug, writeStripped, type StripResult } from '../../src/binary/strip.js';
import type { FileEntry } from '../../src/oci/layer-entry.js';
import { writeLayer } from '../../src/oci/layer-writer.js';
import { BlobStore } from '../../src/oci/store.js';
import { venvScheme } from '../../src/python/venv.js';
import { installWheel, parseRecord, WheelError } from '../../src/python/wheel-installer.js';
import { extractFromWheel, uvloopWheel } from '../harness/uvloop.js';

let work: string;
before(async () => {
  work = await mkdtemp(join(tmpdir(), 'uvimage-strip-'));
});
after(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

async function stripFile(input: string): Promise<{ result: StripResult; output?: string }> {
  const handle = await open(input, 'r');
  try {
    const read = fileReader(handle);
    const result = await planStripDebug(read, (await handle.stat()).size);
    if (!result.strip) return { result };
    const output = `${input}.stripped`;
    const chunks: Buffer[] = [];
    for await (const chunk of writeStripped(result.plan, read)) chunks.push(chunk);
    await writeFile(output, Buffer.concat(chunks));
    return { result, output };
  } finally {
    await handle.close();
  }
}

function readelf(args: string[], file: string): { stdout: string; stderr: string } {
  const result = spawnSync('readelf', [...args, file], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  assert.equal(result.status, 0, `readelf ${args.join(' ')} ${file}: ${result.stderr}`);
  return { stdout: result.stdout, stderr: result.stderr };
}

interface SectionRow {
  name: string;
  type: string;
  address: string;
  offset: number;
  size: number;
  flags: string;
  link: string;
  info: string;
  align: string;
}

/** `readelf -S -W` as rows. */
function sections(file: string): SectionRow[] {
  const rows: SectionRow[] = [];
  for (const line of readelf(['-S', '-W'], file).stdout.split('\n')) {
    const match = /^\s+\[\s*\d+\]\s+(\S*)\s+(\S+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([A-Za-z]*)\s+(\d+)\s+(\d+)\s+(\d+)\s*$/.exec(line);
    if (!match) continue;
    const [, name, type, address, offset, size, , flags, link, info, align] = match;
    rows.push({ name: name!, type: type!, address: address!, offset: parseInt(offset!, 16), size: parseInt(size!, 16), flags: flags!, link: link!, info: info!, align: align! });
  }
  return rows;
}

/** What must be equal between two section tables: everything but where the non-allocated sections lie, and the sizes of .strtab/.shstrtab (we keep .strtab whole and do not merge .shstrtab's suffixes as binutils does). */
const comparable = (rows: SectionRow[]) =>
  rows.map((row) => ({ ...row, offset: row.flags.includes('A') ? row.offset : 0, size: row.name === '.strtab' || row.name === '.shstrtab' ? 0 : row.size }));

const isDebug = (name: string) => /^\.(debug|zdebug|gnu\.debuglto_\.debug_|line|stab)/.test(name) || name === '.gdb_index';

/** The bytes of every kept section's content, by name. */
async function sectionBytes(file: string): Promise<Map<string, string>> {
  const content = await readFile(file);
  return new Map(sections(file).filter((row) => row.type !== 'NOBITS' && row.name !== '').map((row) => [row.name, createHash('sha256').update(content.subarray(row.offset, row.offset + row.size)).digest('hex')]));
}

function gcc(args: string[]): void {
  execFileSync('gcc', args, { stdio: 'pipe' });
}

const librarySource = '#include <stdio.h>\nstatic int helper(int x) { return x * 2; }\nint exported(int x) { fprintf(stderr, "called\\n"); return helper(x); }\nint table[256] = {1};\n';

describe('stripping, judged by binutils', () => {
  test('a 64-bit shared object: the sections and symbols `strip --strip-debug` leaves, and it loads and runs', async () => {
    const lib = join(work, 'lib64.so');
    await writeFile(`${lib}.c`, librarySource);
    gcc(['-g', '-O1', '-shared', '-fPIC', '-o', lib, `${lib}.c`]);
    const { result, output } = await stripFile(lib);
    assert.ok(result.strip && output);
    execFileSync('strip', ['--strip-debug', '-o', `${lib}.binutils`, lib]);
    assert.deepEqual(comparable(sections(output)), comparable(sections(`${lib}.binutils`)));
    assert.ok(!sections(output).some((row) => isDebug(row.name)));
    assert.ok(sections(lib).filter((row) => isDebug(row.name)).length >= 5);
    assert.deepEqual(result.plan.removed.map((section) => section.name).sort(), sections(lib).filter((row) => isDebug(row.name)).map((row) => row.name).sort());
    // The same symbols (local FILE symbols gone) in the same order, with the same section indexes.
    assert.equal(readelf(['-s', '-W'], output).stdout, readelf(['-s', '-W'], `${lib}.binutils`).stdout);
    assert.ok(result.plan.droppedSymbols > 0);
    assert.equal(readelf(['-a', '-W'], output).stderr, '', 'readelf -a has no complaint');
    // Size: binutils' plus only the names we keep in .strtab and .shstrtab.
    const [ours, theirs] = [(await stat(output)).size, (await stat(`${lib}.binutils`)).size];
    assert.ok(ours < (await stat(lib)).size && ours - theirs < 128, `ours ${ours}, binutils ${theirs}`);
    // It loads and runs.
    const call = spawnSync('python3', ['-c', `import ctypes; print(ctypes.CDLL(${JSON.stringify(output)}).exported(21))`], { encoding: 'utf8' });
    assert.equal(call.stdout.trim(), '42', call.stderr);
    // Deterministic, and idempotent.
    const again = await stripFile(lib);
    assert.ok(again.output);
    assert.deepEqual(await readFile(again.output), await readFile(output));
    assert.deepEqual((await stripFile(output)).result, { strip: false, reason: 'no debug sections' });
  });

  test('a 32-bit shared object', async () => {
    const lib = join(work, 'lib32.so');
    await writeFile(`${lib}.c`, 'static int helper(int x) { return x * 2; }\nint exported(int x) { return helper(x) + 1; }\nint value = 7;\n');
    gcc(['-m32', '-g', '-O1', '-shared', '-fPIC', '-nostdlib', '-o', lib, `${lib}.c`]);
    assert.match(readelf(['-h'], lib).stdout, /Class:\s+ELF32/);
    const { result, output } = await stripFile(lib);
    assert.ok(result.strip && output);
    execFileSync('strip', ['--strip-debug', '-o', `${lib}.binutils`, lib]);
    assert.deepEqual(comparable(sections(output)), comparable(sections(`${lib}.binutils`)));
    assert.equal(readelf(['-s', '-W'], output).stdout, readelf(['-s', '-W'], `${lib}.binutils`).stdout);
    assert.equal(readelf(['-a', '-W'], output).stderr, '');
  });

  test('an executable still runs', async () => {
    const program = join(work, 'program');
    await writeFile(`${program}.c`, '#include <stdio.h>\nint main(int argc, char **argv) { printf("%d\\n", argc * 21); return 3; }\n');
    gcc(['-g', '-o', program, `${program}.c`]);
    const { result, output } = await stripFile(program);
    assert.ok(result.strip && output);
    await chmod(output, 0o755);
    const ran = spawnSync(output, ['x'], { encoding: 'utf8' });
    assert.equal(ran.status, 3);
    assert.equal(ran.stdout, '42\n');
    execFileSync('strip', ['--strip-debug', '-o', `${program}.binutils`, program]);
    assert.deepEqual(comparable(sections(output)), comparable(sections(`${program}.binutils`)));
  });

  test('files left as they are, each with its reason', async () => {
    const lib = join(work, 'plain.so');
    await writeFile(`${lib}.c`, librarySource);
    gcc(['-g', '-shared', '-fPIC', '-o', lib, `${lib}.c`]);
    const reason = async (file: string) => {
      const { result } = await stripFile(file);
      return result.strip ? 'stripped' : result.reason;
    };

    const object = join(work, 'object.o');
    gcc(['-g', '-c', '-o', object, `${lib}.c`]);
    assert.equal(await reason(object), 'a relocatable object');

    const bigEndian = join(work, 'big-endian.so');
    await copyFile(lib, bigEndian);
    const handle = await open(bigEndian, 'r+');
    await handle.write(Buffer.from([2]), 0, 1, 5); // EI_DATA = ELFDATA2MSB
    await handle.close();
    assert.equal(await reason(bigEndian), 'big-endian ELF is not supported');

    const appended = join(work, 'appended.so');
    await copyFile(lib, appended);
    await appendFile(appended, Buffer.alloc(4096, 0x5a));
    assert.match(await reason(appended), /^4096 bytes after the last section/);

    const emitRelocs = join(work, 'emit-relocs.so');
    gcc(['-g', '-shared', '-fPIC', '-Wl,--emit-relocs', '-o', emitRelocs, `${lib}.c`]);
    assert.match(await reason(emitRelocs), /relocates through \.symtab \(--emit-relocs\)$/);

    const text = join(work, 'text.so');
    await writeFile(text, 'INPUT(libc.so.6)\n'.repeat(8));
    assert.equal(await reason(text), 'not an ELF file');

    const stripped = join(work, 'stripped.so');
    execFileSync('strip', ['--strip-debug', '-o', stripped, lib]);
    assert.equal(await reason(stripped), 'no debug sections');

    const truncated = join(work, 'truncated.so');
    await writeFile(truncated, (await readFile(lib)).subarray(0, 8192));
    assert.equal(await reason(truncated), 'the section header table is truncated');
  });

  test('memory does not grow with the file: a 256 MiB debug section streams past', async () => {
    const lib = join(work, 'huge.so');
    await writeFile(`${lib}.c`, librarySource);
    gcc(['-g', '-shared', '-fPIC', '-o', `${lib}.small`, `${lib}.c`]);
    const blob = join(work, 'huge.bin');
    const file = await open(blob, 'w');
    const block = Buffer.alloc(1024 * 1024, 0x33);
    for (let i = 0; i < 256; i++) await file.write(block);
    await file.close();
    execFileSync('objcopy', ['--add-section', `.debug_huge=${blob}`, `${lib}.small`, lib]);
    await rm(blob);
    const before = process.memoryUsage().rss;
    let peak = before;
    const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
    let size: number;
    try {
      const handle = await open(lib, 'r');
      const read = fileReader(handle);
      const result = await planStripDebug(read, (await handle.stat()).size);
      assert.ok(result.strip);
      assert.ok(result.plan.removed.some((section) => section.name === '.debug_huge' && section.size === 256 * 1024 * 1024));
      const out = await open(join(work, 'huge.stripped.so'), 'w');
      for await (const chunk of writeStripped(result.plan, read)) await out.write(chunk);
      await out.close();
      await handle.close();
      size = result.plan.size;
    } finally {
      clearInterval(timer);
    }
    const grown = (peak - before) / 1024 / 1024;
    assert.ok(grown < 64, `RSS grew by ${grown.toFixed(0)} MiB stripping a 256 MiB section`);
    assert.equal((await stat(join(work, 'huge.stripped.so'))).size, size);
    assert.ok(size < 64 * 1024);
    assert.equal(readelf(['-a', '-W'], join(work, 'huge.stripped.so')).stderr, '');
  });
});

describe("uvloop's wheels", () => {
  test('x86_64: loop.*.so from 16 MB to 2 MB, as binutils strips it', async () => {
    const wheel = await uvloopWheel('x86_64');
    const module = join(work, 'loop-x86_64.so');
    await extractFromWheel(wheel.path, wheel.module, module);
    const { result, output } = await stripFile(module);
    assert.ok(result.strip && output);
    execFileSync('strip', ['--strip-debug', '-o', `${module}.binutils`, module]);
    assert.deepEqual(comparable(sections(output)), comparable(sections(`${module}.binutils`)));
    assert.equal(readelf(['-s', '-W'], output).stdout, readelf(['-s', '-W'], `${module}.binutils`).stdout);
    const [input, ours, theirs] = [(await stat(module)).size, (await stat(output)).size, (await stat(`${module}.binutils`)).size];
    assert.ok(input > 15_000_000 && ours < 2_100_000, `${input} -> ${ours}`);
    assert.ok(Math.abs(ours - theirs) < 1024, `ours ${ours}, binutils ${theirs}`);
  });

  test('aarch64: every kept section as it was, every debug section gone', async () => {
    const wheel = await uvloopWheel('aarch64');
    const module = join(work, 'loop-aarch64.so');
    await extractFromWheel(wheel.path, wheel.module, module);
    assert.match(readelf(['-h'], module).stdout, /Machine:\s+AArch64/);
    const { result, output } = await stripFile(module);
    assert.ok(result.strip && output);
    const inputRows = sections(module);
    const outputRows = sections(output);
    assert.deepEqual(
      outputRows.map((row) => row.name),
      inputRows.filter((row) => !isDebug(row.name)).map((row) => row.name),
    );
    assert.ok(inputRows.some((row) => isDebug(row.name)));
    // Allocated sections where they were; every section's bytes as they were, but the symbol table (filtered) and the section names (rewritten).
    assert.deepEqual(
      outputRows.filter((row) => row.flags.includes('A')),
      inputRows.filter((row) => row.flags.includes('A')),
    );
    const [before, afterBytes] = [await sectionBytes(module), await sectionBytes(output)];
    for (const [name, hash] of afterBytes) if (name !== '.symtab' && name !== '.shstrtab') assert.equal(hash, before.get(name), name);
    assert.equal(readelf(['-l', '-W'], output).stdout.replace(/There are \d+ section headers[^\n]*\n/, ''), readelf(['-l', '-W'], module).stdout.replace(/There are \d+ section headers[^\n]*\n/, ''));
    const [input, ours] = [(await stat(module)).size, (await stat(output)).size];
    assert.ok(input > 15_000_000 && ours < 2_100_000, `${input} -> ${ours}`);
  });
});

describe('the wheel installer strips', () => {
  let store: BlobStore;
  const scheme = venvScheme('/app/.venv', '3.12.8');
  before(async () => {
    store = await BlobStore.open(join(work, 'store'));
  });

  const contentOf = async (entry: FileEntry): Promise<Buffer> => {
    const opened = await entry.open();
    if (Buffer.isBuffer(opened)) return opened;
    const chunks: Buffer[] = [];
    for await (const chunk of opened as Readable) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  };

  test("uvloop's module: stripped in the layer, RECORD with its new hash and size, the layer the same every time, reused from the store", async () => {
    const wheel = await uvloopWheel('x86_64');
    const install = () => installWheel(wheel.path, { scheme, filename: wheel.filename, wheelDigest: wheel.digest, strip: { store } });
    const first = await install();
    const modulePath = `app/.venv/lib/python3.12/site-packages/${wheel.module}`;
    try {
      const module = first.entries.find((entry): entry is FileEntry => entry.path === modulePath && entry.type === 'file')!;
      const content = await contentOf(module);
      assert.equal(content.length, module.size);
      assert.ok(module.size < 2_100_000, `${module.size}`);
      assert.deepEqual(first.stripped, [{ path: modulePath, before: 16134240, after: module.size }]);
      const recordEntry = first.entries.find((entry): entry is FileEntry => entry.type === 'file' && entry.path.endsWith('.dist-info/RECORD'))!;
      const record = parseRecord((await contentOf(recordEntry)).toString('utf8'), 'RECORD');
      const line = record.find((entry) => entry.path === wheel.module)!;
      assert.equal(line.size, content.length);
      assert.equal(line.hash, `sha256=${createHash('sha256').update(content).digest('base64url')}`);
      // The other extension module files are untouched (uvloop has only this one ELF file).
      assert.equal(first.entries.filter((entry) => entry.type === 'file' && entry.path.endsWith('.so')).length, 1);
      const layerA = await writeLayer(store, first.entries, { mtime: 0 });
      const second = await install();
      try {
        assert.deepEqual(second.stripped, first.stripped);
        const layerB = await writeLayer(store, second.entries, { mtime: 0 });
        assert.equal(layerB.descriptor.digest, layerA.descriptor.digest);
      } finally {
        second.close();
      }
      // Without the option the module is installed as the wheel has it.
      const plain = await installWheel(wheel.path, { scheme, filename: wheel.filename, wheelDigest: wheel.digest });
      try {
        assert.equal((plain.entries.find((entry) => entry.path === modulePath) as FileEntry).size, 16134240);
        assert.deepEqual(plain.stripped, []);
      } finally {
        plain.close();
      }
    } finally {
      first.close();
    }
  });

  test('a wheel whose ELF file does not match RECORD is refused before anything is stripped', async () => {
    const lib = join(work, 'tampered.so');
    await writeFile(`${lib}.c`, librarySource);
    gcc(['-g', '-shared', '-fPIC', '-o', lib, `${lib}.c`]);
    const content = await readFile(lib);
    const wheelPath = join(work, 'demo-1.0-py3-none-any.whl');
    const script = `
import base64, hashlib, sys, zipfile
lib = open(sys.argv[2], "rb").read()
honest = base64.urlsafe_b64encode(hashlib.sha256(lib).digest()).rstrip(b"=").decode()
files = {"demo/_native.so": lib[:-1] + b"X", "demo-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\\nName: demo\\nVersion: 1.0\\n", "demo-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\\nRoot-Is-Purelib: false\\nTag: py3-none-any\\n"}
record = "demo/_native.so,sha256=%s,%d\\n" % (honest, len(lib))
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED) as z:
    for name, data in files.items(): z.writestr(name, data)
    z.writestr("demo-1.0.dist-info/RECORD", record + "demo-1.0.dist-info/RECORD,,\\n")
`;
    execFileSync('python3', ['-c', script, wheelPath, lib]);
    assert.ok(content.length > 1000);
    await assert.rejects(installWheel(wheelPath, { scheme, filename: 'demo-1.0-py3-none-any.whl', strip: { store } }), (error: Error) => {
      assert.ok(error instanceof WheelError);
      assert.equal(error.message, 'wheel demo-1.0-py3-none-any.whl is refused: demo/_native.so does not match the hash in its RECORD');
      return true;
    });
  });
});
