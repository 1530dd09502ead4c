/**
 * Child process of bench/xz.ts: decodes one .xz file with one decoder, counting the bytes that
 * come out, and prints one JSON line: the time, the output size, and the peak RSS before and
 * after (a process of its own, so the peak is this decoder's on this file).
 *
 *   node --import tsx bench/xz-child.ts <xz-decompress|lzma-native> <file.xz>
 */
import { createReadStream } from 'node:fs';
import { createRequire } from 'node:module';
import type { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createXzDecompressor } from '../src/debian/xz.js';

export interface XzChildResult {
  seconds: number;
  outputBytes: number;
  /** The first decode in the process (a few bytes): loading the addon or instantiating the WebAssembly module. */
  warmupSeconds: number;
  /** Peak RSS after the warm-up, before decoding the file, MiB. */
  baselineMaxRssMiB: number;
  maxRssMiB: number;
}

const decoders: Record<string, () => Transform> = {
  'xz-decompress': createXzDecompressor,
  // liblzma through its native binding, what uvimage used before (a devDependency for this bench).
  'lzma-native': () => (createRequire(import.meta.url)('lzma-native') as { createDecompressor(): Transform }).createDecompressor(),
};

const [name, file] = process.argv.slice(2);
const create = decoders[name ?? ''];
if (!create || !file) throw new Error(`usage: xz-child.ts <${Object.keys(decoders).join('|')}> <file.xz>`);
const mib = (kib: number) => Math.round((kib / 1024) * 10) / 10;
const decode = async (source: NodeJS.ReadableStream | Iterable<Buffer>): Promise<number> => {
  let bytes = 0;
  await pipeline(source, create(), async (chunks: AsyncIterable<Buffer>) => {
    for await (const chunk of chunks) bytes += chunk.length;
  });
  return bytes;
};
// A one-time cost of each process, timed apart from the file: `printf ok | xz -0 (a 256 KiB dictionary)`.
const warmupStarted = performance.now();
if ((await decode([Buffer.from('/Td6WFoAAATm1rRGAgAhAQwAAACPmEGcAQABb2sAAAADwESAPz9ngAABGgLcLqV+H7bzfQEAAAAABFla', 'base64')])) !== 2) throw new Error('warm-up decoded wrongly');
const warmupSeconds = (performance.now() - warmupStarted) / 1000;
const baselineMaxRssMiB = mib(process.resourceUsage().maxRSS);
const started = performance.now();
const outputBytes = await decode(createReadStream(file));
const result: XzChildResult = { warmupSeconds, seconds: (performance.now() - started) / 1000, outputBytes, baselineMaxRssMiB, maxRssMiB: mib(process.resourceUsage().maxRSS) };
process.stdout.write(`${JSON.stringify(result)}\n`);
