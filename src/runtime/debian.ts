/**
 * Debian's CPython as a runtime layer on a cc base: python3.X (3.13 on trixie, 3.11 on bookworm)
 * and the part of its dependency closure the base does not already hold, with the standard
 * library precompiled. Debian's packages ship no bytecode (postinst runs py3compile, and no
 * maintainer script runs in an image), so without it every start would compile the imported
 * modules again (and fail to save them on a read-only root). The pycs are PEP 552 unchecked-hash
 * pycs made by a host CPython of the same minor version (src/python/bytecode.ts): the bytes depend
 * only on the source and its in-image path, and nothing is rehashed at import.
 */
import { createReadStream } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import { posix } from 'node:path';
import { UserError } from '../errors.js';
import type { LayerEntry } from '../oci/layer-entry.js';
import { BlobStore } from '../oci/store.js';
import { stages, type Progress, type Stage } from '../progress.js';
import { openPycCompiler, pycPathFor, type HostPycCompiler } from '../python/bytecode.js';
import { packagesLayerKey, writePackagesLayer, type DebInput, type PackagesLayer } from '../base/image.js';
import type { DebFile, OpenedDeb } from '../debian/deb.js';
import type { Architecture } from '../facts/architectures.js';
import { debianSuites, type DebianSuite } from '../facts/debian-suites.js';
import { keepPackageFile } from '../base/flavours.js';

/** The Debian package that is the interpreter of a suite ('python3.13'). */
export function pythonPackageFor(suite: DebianSuite): string {
  return `python${debianSuites[suite].python}`;
}

/**
 * Packages never installed with the runtime although its closure names them: debconf (tzdata's
 * configuration, Perl), and what would bring a shell or a package manager into the image.
 */
export const runtimeExcludes = ['debconf', 'debconf-2.0', 'perl-base', 'dpkg', 'bash', 'dash', 'coreutils', 'python3-pip', 'install-info'];

export interface PythonRuntimeLayerOptions {
  store: BlobStore;
  suite: DebianSuite;
  arch: Architecture;
  /** The runtime's packages: the interpreter's closure minus what the base has. */
  packages: DebInput[];
  mtime: number;
  /** A compiler of the suite's Python minor; default: openPycCompiler(minor). */
  compiler?: HostPycCompiler;
  /** Reuse a runtime layer built before from the same packages and compiler (default true). */
  layerCache?: boolean;
  /** The record name the plan gave the layer (pythonRuntimeLayerKey). */
  plannedKey?: string;
  /** Where the standard library's compilation is shown. */
  progress?: Progress;
  /** The stage the layer is counted in. */
  layers?: Stage;
}

/** The pycs depend on the compiling interpreter's exact version as well as on the sources. */
function runtimeCacheKey(compiler: { version: string; cacheTag: string }): unknown {
  return { kind: 'python-runtime', format: 2, compiler: compiler.version, cacheTag: compiler.cacheTag };
}

/** The record name of the runtime layer of these packages, compiled by this interpreter. */
export function pythonRuntimeLayerKey(options: Pick<PythonRuntimeLayerOptions, 'suite' | 'arch' | 'mtime' | 'packages'> & { compiler: { version: string; cacheTag: string } }): string {
  return BlobStore.recordName(packagesLayerKey({ ...options, cacheKey: runtimeCacheKey(options.compiler) }));
}

/** What the layer holds beside the packages: the pycs, and /usr/bin/python3. */
export interface RuntimeLayer extends PackagesLayer {
  pycCount: number;
}

/** Writes the runtime layer: the packages' files, /usr/bin/python3, and a pyc for every stdlib module. */
export async function writePythonRuntimeLayer(options: PythonRuntimeLayerOptions): Promise<RuntimeLayer> {
  const { store, suite } = options;
  const minor = debianSuites[suite].python;
  const compiler = options.compiler ?? (await openPycCompiler(minor));
  if (!compiler) {
    throw new UserError(
      `precompiling Debian's Python ${minor} standard library needs a CPython ${minor} on this machine (uv python install ${minor}, or pyenv); none was found`,
    );
  }
  const ownsCompiler = !options.compiler;
  const spoolPath = store.tempPath('pycspool');
  let pycCount = 0;
  try {
    const { written, contentSize } = await writePackagesLayer({
      store,
      packages: options.packages,
      suite,
      arch: options.arch,
      mtime: options.mtime,
      label: `python${minor}-${suite}-${options.arch} runtime`,
      layers: options.layers,
      cacheKey: options.layerCache === false ? undefined : runtimeCacheKey(compiler),
      plannedKey: options.plannedKey,
      // As distroless' python3 image has them: python3 the interpreter, python beside it.
      extra: [
        { type: 'symlink', path: 'usr/bin/python3', target: `python${minor}` },
        { type: 'symlink', path: 'usr/bin/python', target: 'python3' },
      ],
      keep: (path) => keepPackageFile(path) && !isCruft(path),
      derive: async (debs) => {
        const entries = await compileStandardLibrary(debs, compiler, spoolPath, minor, options.progress, options.arch);
        pycCount = entries.filter((entry) => entry.type === 'file').length;
        return entries;
      },
    });
    return {
      group: 'runtime',
      packages: options.packages,
      uncompressedSize: written.uncompressedSize,
      contentSize,
      layer: { descriptor: written.descriptor, diffId: written.diffId },
      history: {
        created_by: `uvimage base python3 (${suite}/${options.arch}): ${options.packages.map((pkg) => `${pkg.name}=${pkg.version}`).join(' ')}; stdlib precompiled (unchecked-hash pycs)`,
        comment: 'uvimage',
      },
      pycCount,
    };
  } finally {
    if (ownsCompiler) await compiler.close();
    await rm(spoolPath, { force: true });
  }
}

/** Parts of the runtime packages an image never uses (test suite, IDLE, turtle demos, desktop files), should a suite ship them in these packages. */
function isCruft(path: string): boolean {
  return /^usr\/lib\/python3\.\d+\/(idlelib|turtledemo|test|lib2to3\/tests)(\/|$)/.test(path) || /^usr\/share\/(applications|pixmaps|icons)(\/|$)/.test(path);
}

/**
 * A pyc for every .py under usr/lib/python3.X, in sorted path order (one fresh interpreter per
 * build, fed in the same order, gives the same bytes). A .py that is a symlink (Debian's
 * sitecustomize.py -> /etc/python3.X/sitecustomize.py) gets a pyc beside the link, compiled from
 * its target's source under the link's path, because that is where the import system looks.
 * The pycs are spooled to one temp file and served from offsets, like package contents.
 */
async function compileStandardLibrary(debs: OpenedDeb[], compiler: HostPycCompiler, spoolPath: string, minor: string, progress: Progress | undefined, arch: string): Promise<LayerEntry[]> {
  const files = new Map<string, { deb: OpenedDeb; file: DebFile }>();
  for (const deb of debs) for (const file of deb.files) files.set(file.path, { deb, file });
  const stdlib = new RegExp(`^usr/lib/python${minor.replace('.', '\\.')}/.*\\.py$`);
  const sources = [...files.keys()].filter((path) => stdlib.test(path) && !isCruft(path)).sort(byBytes);

  const spool = await open(spoolPath, 'w');
  const entries: LayerEntry[] = [];
  const stage = progress?.stage(stages.bytecode(arch));
  stage?.expect(sources.length);
  const task = stage?.begin(`the Python ${minor} standard library`);
  try {
    let offset = 0;
    const dirs = new Set<string>();
    const batch = 64;
    for (let start = 0; start < sources.length; start += batch) {
      const slice = sources.slice(start, start + batch);
      const results = await Promise.all(
        slice.map(async (path) => {
          const source = await readSource(files, path);
          if (!source) return undefined;
          return compiler.compile(source, `/${path}`);
        }),
      );
      task?.tick(slice.length);
      for (const [index, pyc] of results.entries()) {
        if (!pyc) continue;
        const path = slice[index]!;
        const pycPath = pycPathFor(path, compiler.cacheTag);
        await spool.write(pyc, 0, pyc.length, offset);
        const at = offset;
        offset += pyc.length;
        dirs.add(posix.dirname(pycPath));
        entries.push({ type: 'file', path: pycPath, mode: 0o644, size: pyc.length, open: () => createReadStream(spoolPath, { start: at, end: at + pyc.length - 1 }) });
      }
    }
    for (const dir of dirs) entries.push({ type: 'directory', path: dir, mode: 0o755 });
    task?.end(0);
  } catch (error) {
    task?.fail();
    throw error;
  } finally {
    await spool.close();
    stage?.finish();
  }
  return entries;
}

/** The source of a stdlib .py: the file, or a symlink's target among the runtime's files. */
async function readSource(files: Map<string, { deb: OpenedDeb; file: DebFile }>, path: string): Promise<Buffer | undefined> {
  let current = path;
  for (let hops = 0; hops < 8; hops++) {
    const found = files.get(current);
    if (!found) return undefined;
    if (found.file.type === 'file') return found.deb.readFile(found.file);
    if (found.file.type !== 'symlink') return undefined;
    const target = found.file.target!;
    current = target.startsWith('/') ? posix.normalize(target).slice(1) : posix.normalize(posix.join(posix.dirname(current), target));
  }
  return undefined;
}

function byBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}
