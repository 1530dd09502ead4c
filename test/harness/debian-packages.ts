/**
 * Real Debian packages unpacked into a directory, for tests that need real binaries of an
 * architecture this machine cannot compile for (aarch64 libraries, an aarch64 ld.so): the
 * package index and the .debs come verified from the archive through the persistent test cache.
 */
import { createWriteStream } from 'node:fs';
import { chmod, mkdir, symlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { readDebFile } from '../../src/debian/deb.js';
import { debianSourceFrom, fetchDeb, loadPackageIndex } from '../../src/debian/archive/index.js';
import type { Architecture } from '../../src/facts/architectures.js';
import type { DebianSuite } from '../../src/facts/debian-suites.js';
import { sharedTestStore } from './cache.js';

/**
 * Unpacks the data of `packages` (newest versions of the suite) into `dir`, as dpkg would
 * (merged-/usr on trixie). Returns the package each regular file came from, by image path ('/usr/…').
 */
export async function unpackDebianPackages(dir: string, suite: DebianSuite, arch: Architecture, packages: string[]): Promise<Map<string, string>> {
  const owners = new Map<string, string>();
  const store = await sharedTestStore();
  const index = await loadPackageIndex(debianSourceFrom({ suite, arch, env: {} }), store);
  for (const name of packages) {
    const pkg = index.get(name);
    if (!pkg) throw new Error(`${suite}/${arch} has no package ${name}`);
    const digest = await fetchDeb(pkg, store);
    const deb = await readDebFile(store.blobPath(digest), { spoolPath: store.tempPath('deb'), label: `${name}_${pkg.version}_${arch}.deb`, mergedUsr: suite !== 'bookworm' });
    try {
      for (const file of deb.files) {
        const path = join(dir, file.path);
        if (file.type === 'directory') await mkdir(path, { recursive: true });
        else if (file.type === 'symlink') {
          await mkdir(dirname(path), { recursive: true });
          await symlink(file.target!, path).catch((error: NodeJS.ErrnoException) => {
            if (error.code !== 'EEXIST') throw error;
          });
        } else {
          await mkdir(dirname(path), { recursive: true });
          const content = deb.open(file);
          if (Buffer.isBuffer(content)) await pipeline([content], createWriteStream(path));
          else await pipeline(content, createWriteStream(path));
          await chmod(path, file.mode & 0o7777);
          owners.set(`/${file.path}`, name);
        }
      }
    } finally {
      await deb.close();
    }
  }
  return owners;
}
