/**
 * A suite's Contents index, verified as the Debian client verifies Packages: the InRelease's
 * signature checked against the pinned archive keys (verifyInRelease), its Suite and Valid-Until
 * (checkRelease), then the index streamed into the persistent test store against the SHA256
 * the signed text gives (by-hash first, as apt does, then the plain path). A mismatch stores
 * nothing and fails. (uvimage's own download of it belongs to src/debian/repository.ts.)
 */
import { checkRelease, debianSourceFrom, fetchDeb, parseRelease, verifyInRelease, type DebianArch, type DebianSuite } from '../../src/debian/repository.js';
import { fetchSmall, HttpStatusError } from '../../src/debian/http.js';
import { sharedTestStore } from './cache.js';

/** The path in the test store of `dists/<suite>/main/Contents-<arch>.gz` (arch may be 'all'), verified. */
export async function verifiedContentsIndex(suite: DebianSuite, arch: DebianArch | 'all'): Promise<string> {
  const store = await sharedTestStore();
  const { mirror } = debianSourceFrom({ suite, arch: arch === 'all' ? 'amd64' : arch, env: {} });
  const distUrl = `${mirror}/dists/${suite}`;
  const { body } = await fetchSmall(`${distUrl}/InRelease`, 8 * 1024 * 1024);
  const release = parseRelease(await verifyInRelease(body!, `${distUrl}/InRelease`));
  checkRelease(release, { dist: suite, arch: arch === 'all' ? 'amd64' : arch, now: Date.now(), snapshot: false, url: distUrl });
  const path = `main/Contents-${arch}.gz`;
  const entry = release.sha256.get(path);
  if (!entry) throw new Error(`${distUrl}/InRelease lists no SHA256 for ${path}`);
  const urls = [...(release.acquireByHash ? [`${distUrl}/main/by-hash/SHA256/${entry.sha256}`] : []), `${distUrl}/${path}`];
  const failures: string[] = [];
  for (const url of urls) {
    try {
      const digest = await fetchDeb({ name: `Contents-${arch}.gz`, version: suite, sha256: entry.sha256, size: entry.size, url }, store);
      return store.blobPath(digest);
    } catch (error) {
      if (!(error instanceof HttpStatusError && error.status === 404) && !/sha256|digest|does not match/i.test((error as Error).message)) throw error;
      failures.push(`${url}: ${(error as Error).message}`);
    }
  }
  throw new Error(`no copy of ${path} matching the signed InRelease (sha256 ${entry.sha256}, ${entry.size} bytes) could be fetched:\n${failures.join('\n')}`);
}
