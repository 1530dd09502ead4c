import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { UserError } from '../errors.js';
import type { LayerEntry } from './layer-entry.js';

/**
 * The entries of a directory tree on disk, placed under `prefix` in the image. Modes are kept
 * (permission bits only), owners are not (the image's owner comes from `uid`/`gid`), and files
 * that share an inode become hardlinks to the one whose path sorts first bytewise — the order
 * the layer writer uses — because a tar hardlink must follow the file it points at. Sockets, fifos and devices are refused: an image layer built from a project tree has
 * no use for them.
 */
export async function directoryEntries(
  root: string,
  options: {
    prefix?: string;
    uid?: number;
    gid?: number;
    /** Which paths (relative to root, '/'-separated) go in; a directory left out is not entered. Default: all. */
    keep?: (path: string, isDirectory: boolean) => boolean;
    /** Called with each directory (relative to root, '' for root) before its entries are read. */
    enter?: (path: string) => Promise<void>;
  } = {},
): Promise<LayerEntry[]> {
  const prefix = (options.prefix ?? '').replace(/^\/+|\/+$/g, '');
  const owner = { uid: options.uid ?? 0, gid: options.gid ?? 0 };
  const entries: LayerEntry[] = [];
  const linkedPaths = new Map<string, string[]>();

  async function walk(dir: string, relative: string): Promise<void> {
    await options.enter?.(relative);
    let names: string[];
    try {
      names = (await readdir(dir)).sort();
    } catch (error) {
      throw new UserError(`cannot read directory ${dir}: ${(error as Error).message}`);
    }
    for (const name of names) {
      const full = join(dir, name);
      const path = relative ? `${relative}/${name}` : name;
      const imagePath = prefix ? posix.join(prefix, path) : path;
      const stats = await lstat(full);
      if (options.keep && !options.keep(path, stats.isDirectory())) continue;
      const mode = stats.mode & 0o7777;
      if (stats.isDirectory()) {
        entries.push({ type: 'directory', path: imagePath, mode, ...owner });
        await walk(full, path);
      } else if (stats.isSymbolicLink()) {
        entries.push({ type: 'symlink', path: imagePath, target: await readlink(full), ...owner });
      } else if (stats.isFile()) {
        if (stats.nlink > 1) {
          const inode = `${stats.dev}:${stats.ino}`;
          linkedPaths.set(inode, [...(linkedPaths.get(inode) ?? []), imagePath]);
        }
        entries.push({ type: 'file', path: imagePath, mode, size: stats.size, open: () => createReadStream(full), ...owner });
      } else {
        throw new UserError(`${full}: not a regular file, directory or symlink; an image layer cannot hold it`);
      }
    }
  }

  await walk(root, '');
  const hardlinkTarget = new Map<string, string>();
  for (const paths of linkedPaths.values()) {
    const [first, ...others] = paths.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    for (const other of others) hardlinkTarget.set(other, first!);
  }
  for (const [index, entry] of entries.entries()) {
    const target = hardlinkTarget.get(entry.path);
    if (target) entries[index] = { type: 'hardlink', path: entry.path, target, mode: entry.mode, ...owner };
  }
  if (prefix) entries.unshift({ type: 'directory', path: prefix, mode: 0o755, ...owner });
  return entries;
}
