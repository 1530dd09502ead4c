/**
 * A python-build-standalone stand-in for both architectures uvimage builds for, made from Debian
 * trixie's CPython 3.13 packages: python-build-standalone's releases are unreachable here, and
 * the pyenv-made stand-in (standalone-python.ts) exists for the host's x86_64 only. The .debs
 * come from the real Debian archive through uvimage's own client (signed InRelease, Packages,
 * SHA256-verified .debs, cached in the shared test store), so a rerun downloads nothing, and once
 * made the archives stay in the test cache.
 *
 * Each archive is laid out like an `install_only` asset (top folder python/):
 *
 *   python/bin/python3.13, python3 -> python3.13        python3.13-minimal's /usr/bin/python3.13
 *   python/lib/python3.13/...                           libpython3.13-minimal + libpython3.13-stdlib's
 *                                                       /usr/lib/python3.13 (lib-dynload included)
 *   python/lib/lib*.so*                                 every non-glibc library the interpreter and
 *                                                       lib-dynload need, transitively, from the
 *                                                       packages of the interpreter's Debian closure
 *
 * RUNPATHs are set with patchelf (it edits foreign-architecture ELF; nothing here runs an aarch64
 * binary): `$ORIGIN/../lib` for bin/, `$ORIGIN/../..` for lib-dynload, `$ORIGIN` for the bundled
 * libraries. CPython's getpath finds the prefix from the executable's location by the landmark
 * lib/python3.13/os.py, so the tree works wherever it is unpacked (/python in the image); Debian's
 * compiled-in /usr is only the fallback. Left out: the /etc/python3.13/sitecustomize.py link (it
 * points outside the tree; PBS has no sitecustomize), Debian's EXTERNALLY-MANAGED marker (PBS has
 * none) and _tkinter (Debian ships it in python3-tk anyway). Debian's packages ship no bytecode;
 * python-build-standalone ships timestamp-based pycs, so the standard library is compiled the same
 * way by a host CPython 3.13 (bytecode does not depend on the architecture), against sources whose
 * mtime is the archive's (0) — uvimage rewrites that field to the layer's timestamp.
 *
 * The mirror tree and uv's metadata format are those of scripts/make-standalone-python:
 *
 *   <dir>/20000101/cpython-3.13.X+20000101-{aarch64,x86_64}-unknown-linux-gnu-install_only.tar.gz
 *   <dir>/download-metadata.json
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rename, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, posix } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { isElfMagic, readElfFile } from '../../src/binary/elf.js';
import { readDebFile, type DebFile, type OpenedDeb } from '../../src/debian/deb.js';
import type { Architecture } from '../../src/facts/architectures.js';
import { debianSourceFrom, fetchDebs, loadPackageIndex } from '../../src/debian/archive/index.js';
import { resolvePackages } from '../../src/debian/resolver.js';
import { runtimeExcludes } from '../../src/runtime/debian.js';
import type { BlobStore } from '../../src/oci/store.js';
import { openPycCompiler } from '../../src/python/bytecode.js';
import type { UvDownloadMetadata } from '../../src/runtime/standalone.js';
import { sharedTestStore, testCacheDir } from './cache.js';
import { check } from './docker.js';
import { exists } from './project-build.js';
import type { StandaloneMirror } from './standalone-python.js';

const minor = '3.13';
const suite = 'trixie';
/** The stand-ins' release: a date no real release has, as scripts/make-standalone-python uses. */
const release = '20000101';
const pythonArches = { amd64: 'x86_64', arm64: 'aarch64' } as const;
const triplets = { amd64: 'x86_64-linux-gnu', arm64: 'aarch64-linux-gnu' } as const;
/** The packages whose files make the interpreter and its standard library. */
const pythonPackages = [`python${minor}-minimal`, `libpython${minor}-minimal`, `libpython${minor}-stdlib`];
/** glibc's libraries: the base image has them (python-build-standalone needs only glibc and libgcc_s). */
const glibc = /^(linux-vdso|libc\.so|libm\.so|libpthread\.so|libdl\.so|librt\.so|libutil\.so|ld-linux|libresolv\.so|libnsl\.so|libanl\.so)/;

/** One made archive. */
export interface DebianStandaloneAsset {
  version: string;
  arch: 'x86_64' | 'aarch64';
  asset: string;
  sha256: string;
  /** Debian's version of python3.13-minimal it was made from. */
  debianVersion: string;
  /** The libraries bundled into python/lib. */
  bundled: string[];
}

/**
 * The stand-ins for amd64 and arm64 (made on first use, then reused from the test cache), one
 * CPython version on both, served as a mirror like the pyenv stand-in.
 */
export async function debianStandaloneMirror(): Promise<StandaloneMirror & { assets: DebianStandaloneAsset[] }> {
  const dir = join(testCacheDir(), 'standalone-python', `debian-${suite}-${minor}`);
  const metadataPath = join(dir, 'download-metadata.json');
  const assetsPath = join(dir, 'assets.json');
  const cached = await readFile(assetsPath, 'utf8').then((text) => JSON.parse(text) as DebianStandaloneAsset[], () => undefined);
  if (cached && (await Promise.all(cached.map((asset) => exists(join(dir, release, asset.asset))))).every(Boolean) && (await exists(metadataPath))) {
    return { dir, metadataPath, version: cached[0]!.version, assets: cached };
  }

  const store = await sharedTestStore();
  const assets: DebianStandaloneAsset[] = [];
  await mkdir(join(dir, release), { recursive: true });
  for (const arch of ['amd64', 'arm64'] as const) assets.push(await makeStandaloneFromDebian(arch, store, join(dir, release)));
  if (new Set(assets.map((asset) => asset.version)).size !== 1) {
    throw new Error(`Debian ${suite}'s python${minor} differs between architectures: ${assets.map((asset) => `${asset.arch} ${asset.debianVersion}`).join(', ')}`);
  }
  const metadata: Record<string, UvDownloadMetadata> = {};
  for (const asset of assets) {
    const [major, minorNumber, patch] = asset.version.split('.').map(Number);
    metadata[`cpython-${asset.version}-linux-${asset.arch}-gnu`] = {
      name: 'cpython',
      arch: { family: asset.arch, variant: null },
      os: 'linux',
      libc: 'gnu',
      major: major!,
      minor: minorNumber!,
      patch: patch!,
      prerelease: '',
      url: `https://github.com/astral-sh/python-build-standalone/releases/download/${release}/${asset.asset.replaceAll('+', '%2B')}`,
      sha256: asset.sha256,
      variant: null,
      build: release,
    };
  }
  await writeAtomically(metadataPath, `${JSON.stringify(metadata, null, 2)}\n`);
  await writeAtomically(assetsPath, `${JSON.stringify(assets, null, 2)}\n`);
  return { dir, metadataPath, version: assets[0]!.version, assets };
}

/** Makes one architecture's archive in `releaseDir` from the verified .debs. */
export async function makeStandaloneFromDebian(arch: Architecture, store: BlobStore, releaseDir: string): Promise<DebianStandaloneAsset> {
  // The archive the CLI would use (UVIMAGE_DEBIAN_MIRROR is honoured), verified the same way.
  const index = await loadPackageIndex(debianSourceFrom({ suite, arch }), store);
  // The interpreter's closure: the python packages and every library package they depend on.
  const closure = resolvePackages(index, [`python${minor}-minimal`, `libpython${minor}-stdlib`], { exclude: runtimeExcludes });
  const interpreterPackage = closure.find((pkg) => pkg.name === `python${minor}-minimal`)!;
  const version = /^(?:\d+:)?(\d+\.\d+\.\d+)/.exec(interpreterPackage.version)?.[1];
  if (!version) throw new Error(`cannot read a CPython version from ${interpreterPackage.name} ${interpreterPackage.version}`);
  const pythonArch = pythonArches[arch];
  const asset = `cpython-${version}+${release}-${pythonArch}-unknown-linux-gnu-install_only.tar.gz`;
  const digests = await fetchDebs(closure, store);

  const work = await mkdtemp(join(tmpdir(), 'uvimage-debian-standalone-'));
  const debs: { name: string; deb: OpenedDeb }[] = [];
  try {
    for (const [position, pkg] of closure.entries()) {
      const deb = await readDebFile(store.blobPath(digests[position]!), { spoolPath: store.tempPath('standalone-deb'), label: `${pkg.name}_${pkg.version}_${pkg.arch}.deb`, mergedUsr: true });
      debs.push({ name: pkg.name, deb });
    }
    const root = join(work, 'python');
    await copyPythonFiles(debs.filter(({ name }) => pythonPackages.includes(name)), root);
    const bundled = await bundleLibraries(debs, root, arch);
    await setRunpaths(root, bundled);
    await compileStandardLibrary(root);
    const output = join(releaseDir, asset);
    await packDeterministically(work, `${output}.tmp`);
    await rename(`${output}.tmp`, output);
    const sha256 = createHash('sha256').update(await readFile(output)).digest('hex');
    return { version, arch: pythonArch, asset, sha256, debianVersion: interpreterPackage.version, bundled };
  } finally {
    for (const { deb } of debs) await deb.close();
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * /usr/bin/python3.13 → bin/, /usr/lib/python3.13 → lib/python3.13; symlinks only when they stay
 * inside the tree; modes as the packages give them.
 */
async function copyPythonFiles(debs: { name: string; deb: OpenedDeb }[], root: string): Promise<void> {
  const stdlib = `usr/lib/python${minor}`;
  const place = (path: string): string | undefined => {
    if (path === `usr/bin/python${minor}`) return `bin/python${minor}`;
    if (path === stdlib || path.startsWith(`${stdlib}/`)) return `lib/python${minor}${path.slice(stdlib.length)}`;
    return undefined;
  };
  const skipped = (target: string) => target === `lib/python${minor}/EXTERNALLY-MANAGED` || /\/lib-dynload\/_tkinter/.test(target);
  await mkdir(join(root, 'bin'), { recursive: true });
  await mkdir(join(root, 'lib', `python${minor}`), { recursive: true });
  for (const { deb } of debs) {
    for (const file of deb.files) {
      const target = place(file.path);
      if (!target || skipped(target)) continue;
      const path = join(root, target);
      if (file.type === 'directory') {
        await mkdir(path, { recursive: true });
      } else if (file.type === 'file') {
        await mkdir(dirname(path), { recursive: true });
        await pipeline(deb.open(file), createWriteStream(path));
        await chmod(path, file.mode & 0o777);
      } else if (file.type === 'symlink') {
        const linkTarget = file.target!;
        const resolved = posix.normalize(posix.join(posix.dirname(target), linkTarget));
        if (linkTarget.startsWith('/') || resolved.startsWith('..')) continue; // sitecustomize.py -> /etc/python3.13/…
        await mkdir(dirname(path), { recursive: true });
        await symlink(linkTarget, path);
      }
    }
  }
  await symlink(`python${minor}`, join(root, 'bin', 'python3'));
  // Directory modes as the packages have them, whatever this process's umask.
  for (const entry of await readdir(root, { recursive: true, withFileTypes: true })) if (entry.isDirectory()) await chmod(join(entry.parentPath, entry.name), 0o755);
  await chmod(root, 0o755);
}

/**
 * Copies into lib/ every shared library an ELF file of the tree needs (DT_NEEDED, read from the
 * file: nothing is run) that glibc does not provide, until nothing new is needed. Libraries come
 * from the closure's packages' multiarch directory, symlinks followed, named as DT_NEEDED names
 * them. Every ELF file must be of the target's machine.
 */
async function bundleLibraries(debs: { name: string; deb: OpenedDeb }[], root: string, arch: Architecture): Promise<string[]> {
  const libraryDir = `usr/lib/${triplets[arch]}/`;
  const machine = pythonArches[arch];
  const libraries = new Map<string, { deb: OpenedDeb; file: DebFile }>();
  for (const { deb } of debs) {
    for (const file of deb.files) {
      if (file.path.startsWith(libraryDir) && !file.path.slice(libraryDir.length).includes('/') && /\.so(\.|$)/.test(file.path)) {
        libraries.set(file.path.slice(libraryDir.length), { deb, file });
      }
    }
  }
  const fileOf = (name: string): { deb: OpenedDeb; file: DebFile } | undefined => {
    let current = libraries.get(name);
    for (let hops = 0; current && current.file.type === 'symlink' && hops < 8; hops++) {
      const target = current.file.target!;
      current = libraries.get(posix.basename(target));
    }
    return current?.file.type === 'file' ? current : undefined;
  };

  const bundled: string[] = [];
  const queue = await elfFiles(root);
  for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
    const elf = await readElfFile(next);
    if (!elf) continue;
    if (elf.machine !== machine) throw new Error(`${next} is ${elf.machine}, not ${machine}`);
    for (const name of elf.needed) {
      if (glibc.test(name) || bundled.includes(name)) continue;
      const found = fileOf(name);
      if (!found) throw new Error(`${next.slice(root.length + 1)} needs ${name}, which no package of the python${minor} closure (${arch}) has`);
      const path = join(root, 'lib', name);
      await pipeline(found.deb.open(found.file), createWriteStream(path));
      await chmod(path, 0o755);
      bundled.push(name);
      queue.push(path);
    }
  }
  return bundled.sort();
}

/** RUNPATH so the bundled libraries are found wherever the tree is unpacked. */
async function setRunpaths(root: string, bundled: string[]): Promise<void> {
  const dynload = join(root, 'lib', `python${minor}`, 'lib-dynload');
  const jobs: [string, string][] = [];
  for (const name of await readdir(join(root, 'bin'))) {
    const path = join(root, 'bin', name);
    if ((await stat(path)).isFile() && (await readElfFile(path))) jobs.push([path, '$ORIGIN/../lib']);
  }
  for (const name of await readdir(dynload)) if (name.endsWith('.so')) jobs.push([join(dynload, name), '$ORIGIN/../..']);
  for (const name of bundled) jobs.push([join(root, 'lib', name), '$ORIGIN']);
  for (const [path, runpath] of jobs) await check('patchelf', ['--set-rpath', runpath, path]);
}

/**
 * Timestamp-based pycs for the standard library, as python-build-standalone ships them: compiled
 * by a host CPython 3.13 (the same bytecode magic for every 3.13.x), co_filename where the file
 * lives in the image, sources' mtime 0 (the archive's).
 */
async function compileStandardLibrary(root: string): Promise<void> {
  const stdlib = join(root, 'lib', `python${minor}`);
  const sources = (await readdir(stdlib, { recursive: true, withFileTypes: true })).filter((entry) => entry.isFile() && entry.name.endsWith('.py'));
  for (const entry of sources) await utimes(join(entry.parentPath, entry.name), 0, 0);
  const compiler = await openPycCompiler(minor);
  if (!compiler) throw new Error(`making the Python ${minor} stand-in needs a CPython ${minor} on this machine to compile its standard library (pyenv or uv python install ${minor})`);
  const interpreter = compiler.interpreter;
  await compiler.close();
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('PYTHON') && key !== 'SOURCE_DATE_EPOCH') env[key] = value;
  env.PYTHONHASHSEED = '0';
  // compileall exits 1 when a file does not compile (Debian's stdlib has none such); that is a failure here.
  await check(interpreter, ['-E', '-s', '-m', 'compileall', '-q', '-j', '0', '--invalidation-mode', 'timestamp', '-d', `/python/lib/python${minor}`, stdlib], { env });
}

/** tar.gz of work/python with sorted names, owner 0, mtime 0, and gzip without a name or time. */
async function packDeterministically(work: string, output: string): Promise<void> {
  const script = 'set -o pipefail; tar --sort=name --format=gnu --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$1" -cf - python | gzip -9n > "$2"';
  await check('bash', ['-c', script, 'pack', work, output]);
}

async function elfFiles(root: string): Promise<string[]> {
  const files: string[] = [];
  for (const entry of await readdir(root, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    const head = Buffer.alloc(4);
    const handle = createReadStream(path, { start: 0, end: 3 });
    let read = 0;
    for await (const chunk of handle) read += (chunk as Buffer).copy(head, read);
    if (isElfMagic(head.subarray(0, read))) files.push(path);
  }
  return files.sort();
}

async function writeAtomically(path: string, text: string): Promise<void> {
  await writeFile(`${path}.tmp`, text);
  await rename(`${path}.tmp`, path);
}
