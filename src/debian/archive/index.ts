/**
 * The Debian archive client: a suite's package index, verified from the archive's signature
 * down to every .deb, apart from what is built from it (src/base/).
 *
 *   dists/<suite>/InRelease       clearsigned by a pinned Debian archive key (keys.ts); Suite or
 *                                 Codename must be the suite asked for; Valid-Until must not have
 *                                 passed (except on a pinned snapshot mirror)      release.ts
 *   main/binary-<arch>/Packages.xz  its SHA256 taken from the verified InRelease, checked before a
 *                                 single byte is parsed (.gz or plain when there is no .xz);
 *                                 any other listed file the same way               fetch.ts
 *   pool/.../<name>.deb           its SHA256 taken from the verified Packages stanza   fetch.ts
 *
 * The suite's security updates (<suite>-security on the security mirror) are merged in
 * (package-index.ts, packages.ts); where both archives are is source.ts's.
 */
export { archivesOf, debianSourceFrom, defaultDebianMirror, defaultDebianSecurityMirror, isSnapshotMirror, type Archive, type DebianSource } from './source.js';
export { archiveKeys, checkRelease, parseRelease, verifyInRelease, type ReleaseInfo } from './release.js';
export { debUrl, PackageIndex, relationSatisfiedBy, type DebianPackage, type Provider } from './packages.js';
export { fetchDeb, fetchDebs, fetchIndexFile, type ArchiveHttpOptions, type DebDownload, type FetchDebOptions, type LoadIndexOptions } from './fetch.js';
export { loadPackageIndex, packageIndexIdentity } from './package-index.js';
