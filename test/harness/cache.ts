/**
 * The on-disk cache tests that use the network share (Debian's archive, PyPI), so a rerun on the
 * same machine downloads nothing. The store is safe for concurrent use; only verified blobs are
 * ever in it. Override with UVIMAGE_TEST_CACHE.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import { BlobStore } from '../../src/oci/store.js';

export function testCacheDir(): string {
  return process.env.UVIMAGE_TEST_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'uvimage-test');
}

/** The persistent store for downloads (packages, indexes, wheels, runtimes). */
export function sharedTestStore(): Promise<BlobStore> {
  return BlobStore.open(join(testCacheDir(), 'store'));
}
