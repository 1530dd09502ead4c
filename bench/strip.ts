/**
 * Benchmark of debug-info stripping (src/binary/strip.ts, issue 12 point 4):
 *
 *   uvloop   the `loop.*.so` of uvloop's CPython 3.12 manylinux wheels (x86_64, aarch64) from
 *            PyPI: size before, after our strip and after binutils' `strip --strip-debug` (the
 *            host's binutils know x86-64 only; for aarch64 the section-by-section sizes show
 *            what went), and the time our strip takes (median of 3);
 *   layer    examples/fastapi-hello's dependencies layer (amd64, CPython 3.12, with bytecode)
 *            built by buildVenvLayers with and without stripping, no reuse (the second of two
 *            runs each): the only layer of the image stripping changes.
 *
 *   npx tsx bench/strip.ts      (or BENCH_ONLY=strip npm run bench)
 */
import { execFileSync } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdtemp, open, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { fileReader } from '../src/binary/elf.js';
import { planStripDebug, writeStripped } from '../src/binary/strip.js';
import { BlobStore } from '../src/oci/store.js';
import { openPycCompiler } from '../src/python/bytecode.js';
import { planInstall } from '../src/python/install-set.js';
import { readUvLock } from '../src/python/lock.js';
import { readPyProject } from '../src/python/pyproject.js';
import { buildVenvLayers } from '../src/python/venv-layers.js';
import { testCacheDir } from '../test/harness/cache.js';
import { hostGlibc, imageVenvOptions, pyenvPython } from '../test/harness/uv.js';
import { extractFromWheel, uvloopVersion, uvloopWheel } from '../test/harness/uvloop.js';

const example = fileURLToPath(new URL('../examples/fastapi-hello', import.meta.url));

/** Our strip of `input` into `output`; seconds. */
async function ourStrip(input: string, output: string): Promise<number> {
  const started = process.hrtime.bigint();
  const handle = await open(input, 'r');
  try {
    const read = fileReader(handle);
    const result = await planStripDebug(read, (await handle.stat()).size);
    if (!result.strip) throw new Error(`${input}: ${result.reason}`);
    await pipeline(writeStripped(result.plan, read), createWriteStream(output));
  } finally {
    await handle.close();
  }
  return Number(process.hrtime.bigint() - started) / 1e9;
}

/** Section name -> size, from `readelf -S -W` (which reads any architecture). */
function sectionSizes(file: string): Map<string, number> {
  const sizes = new Map<string, number>();
  for (const line of execFileSync('readelf', ['-S', '-W', file], { encoding: 'utf8' }).split('\n')) {
    const match = /^\s+\[\s*\d+\]\s+(\S+)\s+(\S+)\s+[0-9a-f]+\s+[0-9a-f]+\s+([0-9a-f]+)/.exec(line);
    if (match && match[2] !== 'NOBITS') sizes.set(match[1]!, parseInt(match[3]!, 16));
  }
  return sizes;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const mb = (bytes: number) => (bytes / 1e6).toFixed(2);
const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);

export async function runStripBench(options: { log?: (line: string) => void } = {}): Promise<string> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const work = await mkdtemp(join(tmpdir(), 'uvimage-bench-strip-'));
  try {
    const lines: string[] = [];
    // 1. uvloop's module.
    const rows: string[] = [];
    const sectionRows: string[] = [];
    for (const arch of ['x86_64', 'aarch64'] as const) {
      const wheel = await uvloopWheel(arch);
      const module = join(work, `loop-${arch}.so`);
      await extractFromWheel(wheel.path, wheel.module, module);
      const seconds: number[] = [];
      for (let i = 0; i < 3; i++) seconds.push(await ourStrip(module, `${module}.ours`));
      let binutils: number | undefined;
      try {
        execFileSync('strip', ['--strip-debug', '-o', `${module}.binutils`, module], { stdio: 'pipe' });
        binutils = (await stat(`${module}.binutils`)).size;
      } catch {
        binutils = undefined; // this binutils does not know the architecture
      }
      const [before, after] = [(await stat(module)).size, (await stat(`${module}.ours`)).size];
      log(`uvloop ${arch}: ${before} -> ${after} (binutils ${binutils ?? 'n/a'}) in ${median(seconds).toFixed(3)} s`);
      rows.push(`| ${arch} | ${mb(before)} | ${mb(after)} | ${binutils === undefined ? 'cannot (no aarch64 binutils here)' : `${mb(binutils)} (ours ${after - binutils >= 0 ? '+' : ''}${after - binutils} bytes)`} | ${(median(seconds) * 1000).toFixed(0)} ms |`);
      const [inSizes, ourSizes, binSizes] = [sectionSizes(module), sectionSizes(`${module}.ours`), binutils === undefined ? undefined : sectionSizes(`${module}.binutils`)];
      const removedBytes = [...inSizes].filter(([name]) => !ourSizes.has(name)).reduce((sum, [, size]) => sum + size, 0);
      for (const [name, size] of inSizes) {
        const ours = ourSizes.get(name);
        const theirs = binSizes?.get(name);
        if (ours === size && (binSizes === undefined || theirs === size)) continue;
        sectionRows.push(`| ${arch} | \`${name}\` | ${size} | ${ours ?? '—'} | ${binSizes === undefined ? 'n/a' : (theirs ?? '—')} |`);
      }
      sectionRows.push(`| ${arch} | every other section (${[...ourSizes.keys()].filter((name) => ourSizes.get(name) === inSizes.get(name)).length}) | unchanged | unchanged | ${binSizes === undefined ? 'n/a' : 'unchanged'} |`);
      sectionRows.push(`| ${arch} | **debug sections, together** | ${removedBytes} | — | ${binSizes === undefined ? 'n/a' : '—'} |`);
    }
    lines.push(
      `uvloop ${uvloopVersion}, \`loop.cpython-312-<arch>-linux-gnu.so\` from its cp312 manylinux wheels (MB = 10⁶ bytes):`,
      '',
      '| arch | in the wheel (MB) | uvimage strip (MB) | `strip --strip-debug` (MB) | uvimage strip time |',
      '| --- | ---: | ---: | ---: | ---: |',
      ...rows,
      '',
      'Section by section (bytes; — = removed). We keep `.strtab` whole (the names of the dropped local FILE symbols stay in it) and do not suffix-merge `.shstrtab`; every other kept section is byte for byte the input\'s:',
      '',
      '| arch | section | input | uvimage | binutils |',
      '| --- | --- | ---: | ---: | ---: |',
      ...sectionRows,
      '',
    );

    // 2. The example's dependencies layer, with and without stripping.
    const python = pyenvPython('3.12');
    if (!python) {
      lines.push('_The layer comparison needs a CPython 3.12 in pyenv; none here._', '');
      return lines.join('\n');
    }
    const store = await BlobStore.open(join(testCacheDir(), 'store'));
    const lock = await readUvLock(join(example, 'uv.lock'));
    const plan = planInstall(await readPyProject(example), lock, { pythonVersion: python.version, implementation: 'cpython', os: 'linux', arch: 'x86_64', glibc: hostGlibc() });
    const compiler = await openPycCompiler('3.12', { interpreter: python.interpreter });
    const layerRows: string[] = [];
    try {
      const sizes: Record<string, { compressed: number; uncompressed: number; seconds: number }> = {};
      for (const strip of [false, true, false, true]) {
        const started = process.hrtime.bigint();
        const layers = await buildVenvLayers(plan, { ...imageVenvOptions({ store, python, projectDir: example, lock }), compiler, strip, reuse: false });
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        const layer = layers.dependencies[0]!;
        sizes[String(strip)] = { compressed: layer.descriptor.size, uncompressed: layer.uncompressedSize, seconds }; // the second run of each (warm) is kept
        log(`fastapi-hello dependencies, strip ${strip}: ${layer.descriptor.size} gzip, ${layer.uncompressedSize} tar, ${seconds.toFixed(2)} s`);
      }
      const [off, on] = [sizes.false!, sizes.true!];
      layerRows.push(
        `| without stripping (\`strip = false\`) | ${mib(off.compressed)} | ${mib(off.uncompressed)} | ${off.seconds.toFixed(2)} s |`,
        `| with stripping (the default) | ${mib(on.compressed)} | ${mib(on.uncompressed)} | ${on.seconds.toFixed(2)} s |`,
        `| difference | −${mib(off.compressed - on.compressed)} | −${mib(off.uncompressed - on.uncompressed)} | |`,
      );
    } finally {
      await compiler?.close();
    }
    lines.push(
      `examples/fastapi-hello's dependencies layer (${plan.packages.length} packages, linux/amd64, CPython ${python.version}, with bytecode; built without any reuse, so the stripping itself is in the time): the only layer stripping changes, so the image shrinks by the same amount.`,
      '',
      '| dependencies layer | gzip (MiB) | tar (MiB) | build time |',
      '| --- | ---: | ---: | ---: |',
      ...layerRows,
      '',
    );
    return lines.join('\n');
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  process.stdout.write(`${await runStripBench()}\n`);
}
