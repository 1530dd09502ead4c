/**
 * docs/benchmarks.md is written section by section: each benchmark replaces only its own
 * section (between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`), so running one benchmark
 * keeps the others' last results.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';

export const benchmarksDoc = fileURLToPath(new URL('../docs/benchmarks.md', import.meta.url));

/** One line naming the machine, for every section. */
export function machineLine(): string {
  const cpu = cpus();
  return `Machine: ${cpu.length} × ${cpu[0]?.model ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node.js ${process.version}, ${process.platform}/${process.arch}.`;
}

/** Replaces (or appends) the section `name` of docs/benchmarks.md with `markdown`. */
export async function writeBenchSection(name: string, markdown: string): Promise<void> {
  const begin = `<!-- bench:${name} -->`;
  const end = `<!-- /bench:${name} -->`;
  const section = `${begin}\n${markdown.trim()}\n${end}`;
  const current = await readFile(benchmarksDoc, 'utf8').catch(() => '# Benchmarks\n');
  const from = current.indexOf(begin);
  const to = current.indexOf(end);
  const next = from >= 0 && to > from ? current.slice(0, from) + section + current.slice(to + end.length) : `${current.trimEnd()}\n\n${section}\n`;
  await writeFile(benchmarksDoc, next);
}
