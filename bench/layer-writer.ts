/**
 * Benchmark of the layer writer against `tar -c | gzip -6` on the same tree.
 *
 *   npx tsx bench/layer-writer.ts            # 1 GiB tree
 *   BENCH_LAYER_MB=256 npx tsx bench/layer-writer.ts
 *
 * Generates a tree on disk (half of the bytes incompressible, half Python-like text; a few
 * thousand files plus a few large ones), then times writeLayer over it in a child process (so the
 * child's peak RSS is that of writing the layer, read from process.resourceUsage().maxRSS) and
 * `tar -c -C dir . | gzip -6` on the same tree. The tree is read right after being written, so
 * both runs read it from the page cache. Prints a markdown table; runLayerWriterBench() returns
 * the same markdown for bench/run.ts.
 */
import { execFile as execFileCallback, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { ChildResult } from './layer-writer-child.js';

const execFile = promisify(execFileCallback);
const MiB = 1024 * 1024;
/** The issue's target: peak RSS under 150 MB while writing a 1 GiB layer. */
const rssTargetMiB = 150;

export interface LayerWriterBenchOptions {
  /** Total bytes of file content, in MiB; default $BENCH_LAYER_MB or 1024. */
  sizeMiB?: number;
  /** Keep the generated tree and store (printed) instead of removing them. */
  keep?: boolean;
  /** Progress lines go here (stderr by default), so stdout stays the markdown. */
  log?: (line: string) => void;
}

export async function runLayerWriterBench(options: LayerWriterBenchOptions = {}): Promise<string> {
  const sizeMiB = options.sizeMiB ?? Number(process.env.BENCH_LAYER_MB ?? 1024);
  if (!Number.isFinite(sizeMiB) || sizeMiB <= 0) throw new Error(`BENCH_LAYER_MB must be a positive number, got ${process.env.BENCH_LAYER_MB}`);
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const work = await mkdtemp(join(tmpdir(), 'uvimage-bench-'));
  const tree = join(work, 'tree');
  const store = join(work, 'store');
  try {
    log(`generating a ${sizeMiB} MiB tree in ${tree} ...`);
    const generated = await generateTree(tree, Math.round(sizeMiB * MiB));
    log(`  ${generated.files} files in ${generated.directories} directories, ${(generated.bytes / MiB).toFixed(0)} MiB`);

    log('tar -c | gzip -6 ...');
    const baseline = await timeTarGzip(tree);
    log(`  ${baseline.seconds.toFixed(1)} s`);

    log('writeLayer (child process) ...');
    const child = await runChild(tree, store);
    log(`  ${child.writeSeconds.toFixed(1)} s, peak RSS ${child.maxRssMiB} MiB`);

    const rate = (seconds: number) => (generated.bytes / MiB / seconds).toFixed(1);
    const cpu = cpus();
    const lines = [
      `### Layer writer (${(generated.bytes / MiB).toFixed(0)} MiB of content, ${generated.files} files)`,
      '',
      `Machine: ${cpu.length} × ${cpu[0]?.model.trim() ?? 'unknown CPU'}, Node ${process.version}, ${process.platform}/${process.arch}. ` +
        'Tree read from the page cache; throughput is MiB of file content per second.',
      '',
      '| run | time (s) | throughput (MiB/s) | compressed (MiB) | peak RSS (MiB) |',
      '| --- | ---: | ---: | ---: | ---: |',
      `| writeLayer (gzip level 6, sha256 ×2, store) | ${child.writeSeconds.toFixed(2)} | ${rate(child.writeSeconds)} | ${(child.compressedBytes / MiB).toFixed(1)} | ${child.maxRssMiB} |`,
      `| \`tar -c -C dir . \\| gzip -6\` | ${baseline.seconds.toFixed(2)} | ${rate(baseline.seconds)} | ${(baseline.compressedBytes / MiB).toFixed(1)} | n/a |`,
      '',
      `Peak RSS of the writeLayer process: ${child.maxRssMiB} MiB (${child.baselineMaxRssMiB} MiB before writeLayer started: Node, tsx and the ` +
        `list of ${child.entries} entries); target < ${rssTargetMiB} MB (${(rssTargetMiB / 1.048576).toFixed(0)} MiB): **${child.maxRssMiB * 1.048576 < rssTargetMiB ? 'met' : 'NOT met'}**. ` +
        `Walking the tree took ${child.walkSeconds.toFixed(2)} s (not included above).`,
      '',
    ];
    return lines.join('\n');
  } finally {
    if (options.keep) log(`kept ${work}`);
    else await rm(work, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------

/**
 * Half of the bytes in four large files (two random, two text), half in about 3000 files of
 * varied sizes (alternately random and text), 50 files per directory, two levels deep.
 */
async function generateTree(root: string, totalBytes: number): Promise<{ files: number; directories: number; bytes: number }> {
  const text = textPool(8 * MiB);
  let files = 0;
  let bytes = 0;
  const directories = new Set<string>();
  const writeFileOf = async (path: string, size: number, compressible: boolean) => {
    const out = createWriteStream(path);
    for (let written = 0; written < size; ) {
      const n = Math.min(4 * MiB, size - written);
      let chunk: Buffer;
      if (compressible) {
        const start = Math.floor(Math.random() * (text.length - n));
        chunk = text.subarray(start, start + n);
      } else {
        chunk = randomBytes(n);
      }
      if (!out.write(chunk)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
      written += n;
    }
    await new Promise<void>((resolve, reject) => out.end((error?: Error | null) => (error ? reject(error) : resolve())));
    files++;
    bytes += size;
  };

  const large = join(root, 'large');
  await mkdir(large, { recursive: true });
  directories.add(large);
  const largeEach = Math.floor(totalBytes / 8);
  for (let i = 0; i < 4; i++) await writeFileOf(join(large, `blob-${i}.${i % 2 ? 'so' : 'bin'}`), largeEach, i % 2 === 1);

  // Sizes: log-uniform from 200 B to 1 MiB, scaled so they sum to the rest of the budget.
  const smallTotal = totalBytes - 4 * largeEach;
  const count = Math.max(1, Math.min(3000, Math.floor(smallTotal / 2048)));
  const raw = Array.from({ length: count }, () => Math.exp(Math.log(200) + Math.random() * (Math.log(MiB) - Math.log(200))));
  const scale = smallTotal / raw.reduce((sum, size) => sum + size, 0);
  let remaining = smallTotal;
  for (let i = 0; i < count; i++) {
    const size = i === count - 1 ? remaining : Math.min(remaining, Math.round(raw[i]! * scale));
    remaining -= size;
    const dir = join(root, 'site-packages', `pkg${Math.floor(i / 500)}`, `mod${Math.floor(i / 50)}`);
    if (!directories.has(dir)) {
      await mkdir(dir, { recursive: true });
      directories.add(dir);
    }
    await writeFileOf(join(dir, `file${i}.${i % 2 ? 'py' : 'pyc'}`), size, i % 2 === 1);
  }
  return { files, directories: directories.size, bytes };
}

/** Python-like text: compresses several times over with gzip -6, like real source. */
function textPool(size: number): Buffer {
  const words = ['def', 'return', 'self', 'import', 'from', 'class', 'if', 'else', 'for', 'in', 'None', 'True', 'False', 'value', 'name', 'data', 'result', 'config', 'path', 'items', 'yield', 'async', 'await', 'raise', 'Error'];
  const parts: string[] = [];
  let length = 0;
  while (length < size) {
    const indent = '    '.repeat(Math.floor(Math.random() * 3));
    let line = indent;
    const n = 2 + Math.floor(Math.random() * 8);
    for (let i = 0; i < n; i++) line += `${words[Math.floor(Math.random() * words.length)]}${Math.random() < 0.2 ? `_${Math.floor(Math.random() * 1000)}` : ''} `;
    line += Math.random() < 0.5 ? ':\n' : '\n';
    parts.push(line);
    length += line.length;
  }
  return Buffer.from(parts.join(''), 'latin1').subarray(0, size);
}

async function timeTarGzip(tree: string): Promise<{ seconds: number; compressedBytes: number }> {
  const start = process.hrtime.bigint();
  // wc -c counts the compressed bytes; it costs next to nothing next to gzip.
  const { stdout } = await execFile('sh', ['-c', 'tar -c -C "$1" . | gzip -6 | wc -c', 'sh', tree]);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  return { seconds, compressedBytes: Number(stdout.trim()) };
}

async function runChild(tree: string, store: string): Promise<ChildResult> {
  const script = fileURLToPath(new URL('./layer-writer-child.ts', import.meta.url));
  const cwd = fileURLToPath(new URL('..', import.meta.url));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', script, tree, store], { cwd, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (data: string) => (out += data));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`layer-writer-child exited with ${code}`));
      try {
        resolve(JSON.parse(out.trim().split('\n').pop()!) as ChildResult);
      } catch (error) {
        reject(new Error(`layer-writer-child printed no result: ${out}`, { cause: error }));
      }
    });
  });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  process.stdout.write(await runLayerWriterBench({ keep: process.env.BENCH_KEEP === '1' }));
}
