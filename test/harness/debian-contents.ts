/**
 * A suite's Contents index, verified as the Debian client verifies Packages: listed in the
 * signed InRelease and fetched against its SHA256 (by-hash first, as apt does) into the
 * persistent test store, by the archive client's own fetchIndexFile. A mismatch stores nothing
 * and fails.
 */
import { debianSourceFrom, fetchIndexFile } from '../../src/debian/archive/index.js';
import type { Architecture } from '../../src/facts/architectures.js';
import type { DebianSuite } from '../../src/facts/debian-suites.js';
import { sharedTestStore } from './cache.js';

/** The path in the test store of `dists/<suite>/main/Contents-<arch>.gz` (arch may be 'all'), verified. */
export async function verifiedContentsIndex(suite: DebianSuite, arch: Architecture | 'all'): Promise<string> {
  const store = await sharedTestStore();
  const source = debianSourceFrom({ suite, arch: arch === 'all' ? 'amd64' : arch, env: {} });
  return store.blobPath(await fetchIndexFile(source, store, `main/Contents-${arch}.gz`));
}
