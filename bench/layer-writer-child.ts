/**
 * Child process of bench/layer-writer.ts: writes one layer from a directory tree and reports, as
 * one JSON line on stdout, how long it took and the process's peak RSS. It runs in its own
 * process so the peak RSS is that of writing the layer, not of generating the tree.
 *
 *   node --import tsx bench/layer-writer-child.ts <tree-dir> <store-dir> [compression-level]
 */
import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import type { LayerEntry } from '../src/oci/layer-entry.js';
import { writeLayer } from '../src/oci/layer-writer.js';
import { BlobStore } from '../src/oci/store.js';

export interface ChildResult {
  entries: number;
  contentBytes: number;
  walkSeconds: number;
  writeSeconds: number;
  /** Peak RSS before writeLayer started (Node + tsx + the entry list), MiB. */
  baselineMaxRssMiB: number;
  /** Peak RSS of the whole process at the end, MiB. */
  maxRssMiB: number;
  digest: string;
  diffId: string;
  compressedBytes: number;
  uncompressedBytes: number;
}

/** The entries of a directory tree, with lazily opened file contents (fs.createReadStream). */
async function entriesOf(root: string): Promise<{ entries: LayerEntry[]; contentBytes: number }> {
  const entries: LayerEntry[] = [];
  let contentBytes = 0;
  for (const dirent of await readdir(root, { recursive: true, withFileTypes: true })) {
    const absolute = join(dirent.parentPath, dirent.name);
    const path = relative(root, absolute).split(sep).join('/');
    const stats = await lstat(absolute);
    const meta = { path, mode: stats.mode & 0o7777 };
    if (stats.isDirectory()) entries.push({ type: 'directory', ...meta });
    else if (stats.isSymbolicLink()) entries.push({ type: 'symlink', ...meta, target: await readlink(absolute) });
    else if (stats.isFile()) {
      contentBytes += stats.size;
      entries.push({ type: 'file', ...meta, size: stats.size, open: () => createReadStream(absolute) });
    }
  }
  return { entries, contentBytes };
}

const mib = (bytes: number) => Math.round((bytes / 1024 / 1024) * 10) / 10;

async function main(): Promise<void> {
  const [treeDir, storeDir, level] = process.argv.slice(2);
  if (!treeDir || !storeDir) throw new Error('usage: layer-writer-child.ts <tree-dir> <store-dir> [compression-level]');
  const store = await BlobStore.open(storeDir);
  const walkStart = process.hrtime.bigint();
  const { entries, contentBytes } = await entriesOf(treeDir);
  const walkSeconds = Number(process.hrtime.bigint() - walkStart) / 1e9;
  // maxRSS is in KiB.
  const baselineMaxRssMiB = mib(process.resourceUsage().maxRSS * 1024);
  const start = process.hrtime.bigint();
  const layer = await writeLayer(store, entries, { mtime: 0, compressionLevel: level ? Number(level) : undefined });
  const writeSeconds = Number(process.hrtime.bigint() - start) / 1e9;
  const result: ChildResult = {
    entries: entries.length,
    contentBytes,
    walkSeconds,
    writeSeconds,
    baselineMaxRssMiB,
    maxRssMiB: mib(process.resourceUsage().maxRSS * 1024),
    digest: layer.descriptor.digest,
    diffId: layer.diffId,
    compressedBytes: layer.descriptor.size,
    uncompressedBytes: layer.uncompressedSize,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

await main();
