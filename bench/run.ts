/**
 * `npm run bench`: runs every benchmark and writes docs/benchmarks.md with the machine, the date
 * and the command. Targets are stated in each section; they are measured here, never asserted in
 * timed tests.
 */
import { writeFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { runLayerWriterBench } from './layer-writer.js';

const output = fileURLToPath(new URL('../docs/benchmarks.md', import.meta.url));

const sections: string[] = [];
sections.push('## Layer writer: throughput and memory\n\n' + (await runLayerWriterBench()));

const cpu = cpus();
const header = [
  '# Benchmarks',
  '',
  `Command: \`npm run bench\` (set BENCH_LAYER_MB to change the layer size). Written ${new Date().toISOString().slice(0, 10)}.`,
  '',
  `Machine: ${cpu.length} × ${cpu[0]?.model ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node.js ${process.version}, ${process.platform}/${process.arch}.`,
  '',
].join('\n');
const document = `${header}\n${sections.join('\n\n')}\n`;
await writeFile(output, document);
process.stdout.write(document);
