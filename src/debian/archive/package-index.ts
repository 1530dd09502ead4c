/**
 * A suite's package index: the verified Packages files of its main and security archives,
 * parsed and merged (a process parses each file once), and the identity of those files, under
 * which work derived from an index is cached.
 */
import { UserError } from '../../errors.js';
import { silentProgress, stages } from '../../progress.js';
import type { Digest } from '../../oci/digest.js';
import type { BlobStore } from '../../oci/store.js';
import { fetchListedFile, listedFileDigest, loadRelease, type LoadIndexOptions } from './fetch.js';
import { PackageIndex, parsePackagesBlob, type Compression, type DebianPackage } from './packages.js';
import type { ReleaseInfo } from './release.js';
import { archivesOf, type Archive, type DebianSource } from './source.js';

/**
 * Loads the package index of a suite and architecture: main and security, merged. Verified
 * from the signature down; cached as fetch.ts describes.
 */
export async function loadPackageIndex(source: DebianSource, store: BlobStore, options: LoadIndexOptions = {}): Promise<PackageIndex> {
  const files = await loadPackagesFiles(source, store, options);
  const lists = await Promise.all(files.map((file) => parseArchivePackages(file, store)));
  return new PackageIndex(lists.flat(), `${source.suite}/${source.arch}`);
}

/** The verified Packages files of the suite and its security suite, in the store, not parsed. */
interface PackagesFile {
  archive: Archive;
  digest: Digest;
  compression: Compression;
}

async function loadPackagesFiles(source: DebianSource, store: BlobStore, options: LoadIndexOptions & { listedOnly?: boolean }): Promise<PackagesFile[]> {
  const { main, security } = archivesOf(source);
  // Reading the InRelease files alone (an identity: small, and most often not fetched within the
  // TTL) is shown as no stage: the index's stage is the one that fetches the Packages files, when
  // a build needs them, so a fresh build still says "Fetched the Debian … index" once.
  const indexStage = options.indexStage ?? (options.listedOnly ? silentProgress.stage(stages.debianIndex(source.suite, source.arch)) : options.progress?.stage(stages.debianIndex(source.suite, source.arch)));
  const inStage = { ...options, indexStage };
  // Both archives are loaded side by side and both are waited for, so nothing is still being
  // written to the store when a failure is reported.
  const results = await Promise.allSettled(
    [main, security].map(async (archive): Promise<PackagesFile> => {
      const release = await loadRelease(archive, source, store, inStage);
      const [path, compression] = packagesFileIn(release, archive, source);
      const digest = options.listedOnly ? listedFileDigest(archive, release, path) : await fetchListedFile(archive, release, path, store, inStage);
      return { archive, digest, compression };
    }),
  );
  if (!options.indexStage) indexStage?.finish();
  const failed = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
  if (failed) throw failed.reason;
  return results.map((result) => (result as PromiseFulfilledResult<PackagesFile>).value);
}

/**
 * What the index of a source is, without parsing it: the digests of its verified Packages files
 * (InRelease revalidated at most once per TTL). Work derived from an index — a resolved package
 * list — can be cached under this key, and a build whose index did not move skips the seconds a
 * Packages file takes to decompress and parse.
 */
export async function packageIndexIdentity(source: DebianSource, store: BlobStore, options: LoadIndexOptions = {}): Promise<string> {
  // The digests the verified InRelease lists: the Packages files themselves are fetched only
  // when the index is read (a record of what it gives — a layer cache's — makes that unneeded).
  const files = await loadPackagesFiles(source, store, { ...options, listedOnly: true });
  return files.map((file) => `${file.archive.url}/dists/${file.archive.dist}@${file.digest}`).join(' ');
}

async function parseArchivePackages({ archive, digest, compression }: PackagesFile, store: BlobStore): Promise<DebianPackage[]> {
  // Parsing a main Packages file takes seconds; a process that loads the same index again (a
  // multi-platform build, a lock check) reuses it. Packages are immutable once parsed.
  const key = `${archive.url}|${digest}`;
  let parsed = parsedPackages.get(key);
  if (!parsed) {
    parsed = parsePackagesBlob(store, digest, compression, archive.url, `${archive.url}/dists/${archive.dist}`);
    parsedPackages.set(key, parsed);
    parsed.catch(() => parsedPackages.delete(key));
    while (parsedPackages.size > maxParsedIndexes) parsedPackages.delete(parsedPackages.keys().next().value!);
  }
  return parsed;
}

/** Parsed Packages files of this process, by archive URL and digest (oldest first). */
const parsedPackages = new Map<string, Promise<DebianPackage[]>>();
const maxParsedIndexes = 8;

/** The Packages file of the source's architecture the InRelease lists: .xz, else .gz, else plain. */
function packagesFileIn(release: ReleaseInfo, archive: Archive, source: DebianSource): [string, Compression] {
  const base = `main/binary-${source.arch}/Packages`;
  const candidates: [string, Compression][] = [
    [`${base}.xz`, 'xz'],
    [`${base}.gz`, 'gz'],
    [base, 'none'],
  ];
  const found = candidates.find(([path]) => release.sha256.has(path));
  if (!found) throw new UserError(`${archive.url}/dists/${archive.dist}/InRelease lists no SHA256 for ${base}.xz, .gz or plain`);
  return found;
}
