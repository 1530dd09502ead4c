/**
 * The xz decoder (src/debian/xz.ts: xz-decompress, xz-embedded in WebAssembly) beside liblzma
 * through lzma-native (the native addon uvimage used before) and `xz -dc` (liblzma's own tool),
 * on what uvimage decompresses: Debian trixie's main Packages.xz (amd64) and the data.tar.xz of
 * a few real .debs, fetched and verified by the Debian client into the test cache
 * ($UVIMAGE_TEST_CACHE, else ~/.cache/uvimage-test) so a rerun downloads nothing.
 *
 *   BENCH_ONLY=xz npm run bench        (BENCH_REPEAT=N runs per decoder and file, default 5)
 *
 * Each decode runs in a child process of its own (bench/xz-child.ts), the decoders alternating,
 * so every time and peak RSS is one decoder's on one file. The rule: replace lzma-native
 * when xz-decompress takes at most 1.5× its time.
 */
import { spawn, execFile as execFileCallback } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdtemp, open, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { debianSourceFrom, fetchDeb, loadPackageIndex, packageIndexIdentity } from '../src/debian/archive/index.js';
import type { Digest } from '../src/oci/digest.js';
import { BlobStore } from '../src/oci/store.js';
import { testCacheDir } from '../test/harness/cache.js';
import { check } from '../test/harness/docker.js';
import { spread, stats } from './recipe/measure.js';
import type { XzChildResult } from './xz-child.js';

const execFile = promisify(execFileCallback);
const decoders = ['lzma-native', 'xz-decompress'] as const;
/** The threshold for replacing lzma-native. */
const allowedRatio = 1.5;
/** Packages whose data.tar.xz is decoded: large and small, binaries, text and Python. */
const debNames = ['libc6', 'libstdc++6', 'libpython3.13-stdlib', 'tzdata', 'coreutils', 'ca-certificates'];

interface Sample {
  label: string;
  path: string;
  compressedBytes: number;
  /** What `xz --list` says decoding needs (dictionary and decoder state). */
  memoryNeededBytes: number;
}

export async function runXzBench(options: { log?: (line: string) => void } = {}): Promise<string> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const repeat = Number(process.env.BENCH_REPEAT ?? 5);
  const store = await BlobStore.open(join(testCacheDir(), 'store'));
  const work = await mkdtemp(join(tmpdir(), 'uvimage-bench-xz-'));
  try {
    const samples = await collectSamples(store, work);
    const rows: string[] = [];
    const totals: Record<(typeof decoders)[number] | 'xz', number> = { 'lzma-native': 0, 'xz-decompress': 0, xz: 0 };
    const warmups: Record<(typeof decoders)[number], number[]> = { 'lzma-native': [], 'xz-decompress': [] };
    let worstRatio = 0;
    for (const sample of samples) {
      log(`${sample.label} ...`);
      const runs: Record<(typeof decoders)[number], XzChildResult[]> = { 'lzma-native': [], 'xz-decompress': [] };
      const xzSeconds: number[] = [];
      for (let i = 0; i < repeat; i++) {
        for (const decoder of decoders) runs[decoder].push(await runChild(decoder, sample.path));
        xzSeconds.push(await timeXzTool(sample.path));
      }
      const warmup = (decoder: (typeof decoders)[number]) => runs[decoder].map((run) => run.warmupSeconds);
      warmups['lzma-native'].push(...warmup('lzma-native'));
      warmups['xz-decompress'].push(...warmup('xz-decompress'));
      const outputs = new Set(decoders.flatMap((decoder) => runs[decoder].map((run) => run.outputBytes)));
      if (outputs.size !== 1) throw new Error(`${sample.label}: the decoders disagree on the output size: ${[...outputs].join(', ')}`);
      const seconds = (decoder: (typeof decoders)[number]) => runs[decoder].map((run) => run.seconds);
      const median = (values: number[]) => stats(values).median;
      const ratio = median(seconds('xz-decompress')) / median(seconds('lzma-native'));
      worstRatio = Math.max(worstRatio, ratio);
      for (const decoder of decoders) totals[decoder] += median(seconds(decoder));
      totals.xz += median(xzSeconds);
      const rssOver = (decoder: (typeof decoders)[number]) => Math.max(...runs[decoder].map((run) => run.maxRssMiB - run.baselineMaxRssMiB)).toFixed(1);
      rows.push(
        `| ${sample.label} | ${mib(sample.compressedBytes)} | ${mib([...outputs][0]!)} | ${mib(sample.memoryNeededBytes)} | ${spread(seconds('lzma-native'))} | ${spread(seconds('xz-decompress'))} | ${ratio.toFixed(2)}× | ${spread(xzSeconds)} | ${rssOver('lzma-native')} | ${rssOver('xz-decompress')} |`,
      );
    }
    const totalRatio = totals['xz-decompress'] / totals['lzma-native'];
    const met = totalRatio <= allowedRatio && worstRatio <= allowedRatio;
    return [
      `Each file decoded ${repeat} times per decoder, each time in a fresh child process; times are the decode alone (median, min–max, seconds), without`,
      "the process's start and the decoder's first use in it (loading the addon, instantiating the WebAssembly module: timed below on a 2-byte file),",
      'except for `xz -dc`, which is timed as a whole process (start included) writing to /dev/null.',
      'Peak RSS over baseline = the largest rise of the child\'s peak RSS during the decode (MiB); "xz needs" = the memory `xz --list -vv` says the',
      'file needs to decode (dictionary and decoder state): memory follows the dictionary, not the size of the file.',
      '',
      '| file | compressed MiB | decompressed MiB | xz needs MiB | lzma-native s | xz-decompress s | ratio | `xz -dc` s | peak RSS over baseline, lzma-native | peak RSS over baseline, xz-decompress |',
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
      ...rows,
      `| **all files (sum of medians)** | | | | ${totals['lzma-native'].toFixed(2)} | ${totals['xz-decompress'].toFixed(2)} | ${totalRatio.toFixed(2)}× | ${totals.xz.toFixed(2)} | | |`,
      '',
      `First decode in a process (median of ${warmups['lzma-native'].length}): lzma-native ${spread(warmups['lzma-native'])} s, xz-decompress ${spread(warmups['xz-decompress'])} s (compiling its WebAssembly), paid once per uvimage run.`,
      '',
      `Rule: replace lzma-native when xz-decompress takes at most ${allowedRatio}× its time: overall ${totalRatio.toFixed(2)}×, worst file ${worstRatio.toFixed(2)}× — ` +
        `**${met ? 'within' : 'NOT within'}**${met ? ': uvimage decodes xz with xz-decompress, and lzma-native is only a devDependency of this benchmark' : ''}.`,
      '',
    ].join('\n');
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** trixie's main Packages.xz (amd64) and the data.tar.xz of `debNames`, through the Debian client. */
async function collectSamples(store: BlobStore, work: string): Promise<Sample[]> {
  const source = debianSourceFrom({ suite: 'trixie', arch: 'amd64', env: {} });
  const identity = await packageIndexIdentity(source, store, { env: {} });
  // "<mirror>/dists/trixie@sha256:… <security>/dists/trixie-security@sha256:…": main's comes first.
  const packagesDigest = /@(sha256:[0-9a-f]{64})/.exec(identity)?.[1] as Digest | undefined;
  if (!packagesDigest) throw new Error(`no Packages digest in the index identity ${identity}`);
  const packagesPath = store.blobPath(packagesDigest);
  const file = await open(packagesPath);
  const magic = (await file.read(Buffer.alloc(6), 0, 6, 0).finally(() => file.close())).buffer.toString('latin1');
  if (magic !== '\xfd7zXZ\0') throw new Error(`${source.mirror}/dists/trixie's Packages is not xz-compressed here`);
  const samples: Sample[] = [await describe('Packages.xz (trixie main amd64)', packagesPath)];
  // Four times as much output from the same dictionary: memory must stay where it was for one.
  const fourTimes = join(work, 'Packages-x4.xz');
  await execFile('sh', ['-c', 'cat "$1" "$1" "$1" "$1" > "$2"', 'sh', packagesPath, fourTimes]);
  samples.push(await describe('the same Packages.xz four times (4 xz streams, one file)', fourTimes));
  const index = await loadPackageIndex(source, store, { env: {} });
  for (const name of debNames) {
    const pkg = index.get(name);
    if (!pkg) throw new Error(`trixie/amd64 has no package ${name}`);
    const deb = store.blobPath(await fetchDeb(pkg, store, {}));
    const dataTar = join(work, `${name}.data.tar.xz`);
    await extractArMember(deb, 'data.tar.xz', dataTar);
    samples.push(await describe(`${name} ${pkg.version} data.tar.xz`, dataTar));
  }
  return samples;
}

async function describe(label: string, path: string): Promise<Sample> {
  const { stdout } = await execFile('xz', ['--robot', '--list', '-vv', path]);
  const summary = stdout.split('\n').find((line) => line.startsWith('summary\t'));
  return { label, path, compressedBytes: (await stat(path)).size, memoryNeededBytes: Number(summary?.split('\t')[1] ?? NaN) };
}

/** `ar p DEB MEMBER > OUT` (binutils' ar). */
function extractArMember(deb: string, member: string, out: string): Promise<void> {
  const fd = openSync(out, 'w');
  return new Promise<void>((resolve, reject) => {
    const child = spawn('ar', ['p', deb, member], { stdio: ['ignore', fd, 'inherit'] });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`ar p ${deb} ${member} exited with ${code}`))));
  }).finally(() => closeSync(fd));
}

async function runChild(decoder: string, file: string): Promise<XzChildResult> {
  const script = fileURLToPath(new URL('./xz-child.ts', import.meta.url));
  const stdout = await check(process.execPath, ['--import', 'tsx', script, decoder, file], { cwd: fileURLToPath(new URL('..', import.meta.url)) });
  return JSON.parse(stdout.trim().split('\n').pop()!) as XzChildResult;
}

async function timeXzTool(file: string): Promise<number> {
  const started = performance.now();
  const fd = openSync('/dev/null', 'w');
  await new Promise<void>((resolve, reject) => {
    const child = spawn('xz', ['-dc', file], { stdio: ['ignore', fd, 'inherit'] });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`xz -dc ${file} exited with ${code}`))));
  }).finally(() => closeSync(fd));
  return (performance.now() - started) / 1000;
}

const mib = (bytes: number): string => (bytes / 2 ** 20).toFixed(2);

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  process.stdout.write(await runXzBench());
}
