/**
 * `npm run bench`: runs the benchmarks and writes each one's section of docs/benchmarks.md with
 * the machine, the date and the command. Targets are stated in each section; they are measured
 * here, never asserted in timed tests. BENCH_ONLY=layer,debian,venv,build,breakdown,strip,xz runs a subset; the
 * comparison with the recipe's Dockerfile is `npm run bench:recipe`.
 */
import { runBreakdownBench } from './breakdown.js';
import { runBuildBench } from './build.js';
import { runDebianBasesBench } from './debian-bases.js';
import { runLayerWriterBench } from './layer-writer.js';
import { runStripBench } from './strip.js';
import { machineLine, writeBenchSection } from './report.js';
import { runVenvBench } from './venv.js';
import { runXzBench } from './xz.js';

const benches: [name: string, title: string, run: () => Promise<string>][] = [
  ['layer', 'Layer writer: throughput and memory', () => runLayerWriterBench()],
  ['debian', 'Debian bases: sizes beside distroless', () => runDebianBasesBench()],
  ['venv', 'Virtualenv layers beside uv sync', () => runVenvBench()],
  ['build', 'uvimage build of examples/fastapi-hello', () => runBuildBench()],
  ['breakdown', 'Where the time goes: a cold build and adding a dependency', () => runBreakdownBench()],
  ['strip', 'Debug information stripped from wheels', () => runStripBench()],
  ['xz', 'xz decoding: xz-decompress (WebAssembly) beside lzma-native', () => runXzBench()],
];
const only = new Set((process.env.BENCH_ONLY ?? benches.map(([name]) => name).join(',')).split(','));
for (const [name, title, run] of benches) {
  if (!only.has(name)) continue;
  const body = await run();
  const section = `## ${title}\n\nCommand: \`BENCH_ONLY=${name} npm run bench\`, ${new Date().toISOString().slice(0, 10)}. ${machineLine()}\n\n${body}`;
  await writeBenchSection(name, section);
  process.stdout.write(`${section}\n\n`);
}
