/**
 * A directory on disk as the loader check's ImageTree (the directory is the image's root):
 * symlinks as they are, every file's ELF facts read with src/binary/elf.ts, the text of
 * /etc/ld.so.conf and what it may include (everything under /etc that is small).
 */
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { readElfFile } from '../../src/binary/elf.js';
import { ImageTree } from '../../src/binary/loader.js';

export async function imageTreeFromDirectory(root: string, options: { watchedImports?: ReadonlySet<string> } = {}): Promise<ImageTree> {
  const tree = new ImageTree();
  const walk = async (relative: string): Promise<void> => {
    for (const name of (await readdir(join(root, relative))).sort()) {
      const path = `${relative}/${name}`;
      const full = join(root, path);
      const info = await lstat(full);
      if (info.isSymbolicLink()) tree.add(path, { type: 'symlink', target: await readlink(full) });
      else if (info.isDirectory()) {
        tree.add(path, { type: 'directory' });
        await walk(path);
      } else if (info.isFile()) {
        const text = path.startsWith('/etc/') && info.size < 64 * 1024 ? await readFile(full, 'utf8') : undefined;
        tree.add(path, { type: 'file', elf: info.size >= 52 ? await readElfFile(full, options) : undefined }, text);
      }
    }
  };
  await walk('');
  return tree;
}
