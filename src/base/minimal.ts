/**
 * The minimal flavour: of cc's packages, only those whose libraries some ELF file of the image
 * needs, and of libc6 only what something can load. Decided from the image itself — the
 * dynamic loader's rules (src/binary/loader.ts) run from every ELF file outside the base, plus
 * what glibc loads by itself (src/facts/glibc.ts) — never from a list of guesses. Pure: the
 * image is an ImageView of the candidate image (cc's packages under the image's other layers).
 *
 * What is always kept: the static content (base-files, netbase, tzdata, the CA bundle,
 * media-types, users, status.d), libc6 (the loader itself) and the packages asked for by
 * debian-packages. What can go:
 *   - a candidate package none of whose files is loaded (libstdc++6 when nothing is C++,
 *     libssl3t64 when the runtime links OpenSSL statically, gcc-NN-base, which holds no library);
 *   - from libc6, the shared objects no process loads: it is the one package whose other ways
 *     of being loaded are all known (NSS modules by nsswitch.conf, libgcc_s and gconv modules by
 *     the symbols that make glibc load them; libmemusage, libpcprofile and libc_malloc_debug only
 *     by LD_PRELOAD; libthread_db only by a debugger), and the gconv modules unless something
 *     imports iconv_open.
 * A kept package other than libc6 is kept whole: its own plug-ins (OpenSSL's ossl-modules) are
 * loaded in ways the loader cannot see.
 */
import { posix } from 'node:path';
import { findMissingLibraries, shownPath, type ImageView, type LoaderSystem } from '../binary/loader.js';
import { gconvSymbols, glibcLoadingSymbols, nssModules, unwinderSoname, unwinderSymbols } from '../facts/glibc.js';
import type { DebianSuite } from '../facts/debian-suites.js';
import { flavourPackages, nsswitchFile } from './flavours.js';

/** The packages minimal keeps whatever the image needs: the static content, and libc6 (the loader itself). */
export function alwaysKept(suite: DebianSuite): string[] {
  return [...flavourPackages('static', suite), 'libc6'];
}

/** The package whose files are trimmed one by one. */
const trimmedPackage = 'libc6';

export interface MinimalBaseInput {
  /** The candidate image: every candidate package's files, under the image's other layers. */
  view: ImageView;
  /** The Debian package each file of the base layers belongs to (absolute paths); undefined: not a package's (or a later layer's). */
  baseOwner: (path: string) => string | undefined;
  /** Whether a path of the image comes from the base layers (and no later layer replaced it). */
  inBase: (path: string) => boolean;
  /** The candidate packages, in the flavour's order. */
  candidates: string[];
  /** Packages kept whatever the image needs: the static content and libc6. */
  always: string[];
  system: LoaderSystem;
  pythonInterpreters: { root: string; interpreter: string }[];
  workdir: string;
}

export interface MinimalBaseSelection {
  /** The packages kept, in the candidates' order. */
  packages: string[];
  /** Why each package beyond `always` is kept: the libraries of it something loads. */
  keptFor: Record<string, string[]>;
  /** The candidates left out. */
  leftOut: string[];
  /** Paths (no leading '/') of kept packages that are left out, sorted: libc6's unloaded objects, its gconv modules. */
  dropped: string[];
  /** Whether the gconv modules stay (something imports iconv_open). */
  gconv: boolean;
  /** The first file (in path order) that imports iconv_open, when gconv stays. */
  gconvFor?: string;
}

export function selectMinimalBase(input: MinimalBaseInput): MinimalBaseSelection {
  const { view } = input;
  const roots = (path: string) => !input.inBase(path);
  const elfOf = (path: string) => {
    const node = view.node(path);
    return node?.type === 'file' ? node.elf : undefined;
  };

  // The loader from every ELF file outside the base, then again with what glibc loads by
  // itself for what the first pass found, until nothing new is imported.
  const nss = nssModules(nsswitchFile);
  const rootFiles = [...view.elfFiles()].filter(roots);
  let imports = new Set<string>();
  let loaded: string[] = [];
  for (let round = 0; round < 4; round++) {
    const dlopened = [...nss, ...(unwinderSymbols.some((symbol) => imports.has(symbol)) ? [unwinderSoname] : [])];
    loaded = findMissingLibraries(view, { system: input.system, pythonInterpreters: input.pythonInterpreters, workdir: input.workdir, roots, dlopened }).loaded;
    const next = new Set<string>();
    for (const path of [...rootFiles, ...loaded]) {
      for (const symbol of elfOf(path)?.imports ?? []) if (glibcLoadingSymbols.has(symbol)) next.add(symbol);
    }
    const grown = [...next].some((symbol) => !imports.has(symbol));
    imports = next;
    if (!grown) break;
  }
  const gconv = gconvSymbols.some((symbol) => imports.has(symbol));

  const loadedInBase = loaded.filter((path) => input.inBase(path));
  const inProcesses = [...new Set([...rootFiles, ...loaded])].sort();
  const keptFor: Record<string, string[]> = {};
  for (const path of loadedInBase) {
    const owner = input.baseOwner(path);
    if (!owner || input.always.includes(owner)) continue;
    (keptFor[owner] ??= []).push(whyLoaded(path, elfOf(path)?.soname ?? posix.basename(path), inProcesses, elfOf));
  }
  const kept = new Set([...input.always, ...Object.keys(keptFor)]);
  const packages = input.candidates.filter((name) => kept.has(name));

  // libc6's files that nothing loads: the gconv modules (which iconv_open loads, not the
  // loader) as a whole, the other shared objects one by one.
  const gconvDirs = input.system.searchDirs.map((dir) => `${dir}/gconv`).filter((dir) => view.node(dir)?.type === 'directory');
  const inGconv = (path: string) => gconvDirs.some((dir) => path.startsWith(`${dir}/`));
  const loadedSet = new Set(loadedInBase);
  const droppedFiles = new Set<string>();
  for (const path of view.elfFiles()) {
    if (!input.inBase(path) || input.baseOwner(path) !== trimmedPackage || inGconv(path)) continue;
    const elf = elfOf(path);
    if (elf?.kind === 'shared' && !loadedSet.has(path)) droppedFiles.add(path);
  }
  if (!gconv) {
    for (const gconvDir of gconvDirs) {
      const subtree = walk(view, gconvDir);
      if (subtree.every((path) => view.node(path)?.type !== 'file' || input.baseOwner(path) === trimmedPackage)) {
        for (const path of [gconvDir, ...subtree]) droppedFiles.add(path);
      }
    }
  }
  // Links of the base that lead to a dropped file go with it.
  for (const path of walk(view, '/')) {
    const node = view.node(path);
    if (node?.type !== 'symlink' || !input.inBase(path)) continue;
    const target = posix.resolve(posix.dirname(path), node.target);
    if (droppedFiles.has(target)) droppedFiles.add(path);
  }
  const dropped = [...droppedFiles].map((path) => path.slice(1)).sort();
  const gconvFor = gconv ? inProcesses.find((path) => elfOf(path)?.imports?.some((symbol) => gconvSymbols.includes(symbol))) : undefined;
  return { packages, keptFor, leftOut: input.candidates.filter((name) => !kept.has(name)), dropped, gconv, ...(gconvFor ? { gconvFor: shownPath(gconvFor) } : {}) };
}

/** Why a library of the base is loaded: the first file (in path order) that needs it, or what makes glibc load it. */
function whyLoaded(path: string, soname: string, files: string[], elfOf: (path: string) => { needed: string[]; imports?: string[] } | undefined): string {
  const needer = files.find((file) => file !== path && elfOf(file)?.needed.includes(soname));
  if (needer) return `${soname} (needed by ${shownPath(needer)})`;
  if (soname === unwinderSoname) {
    const importer = files.find((file) => elfOf(file)?.imports?.some((symbol) => unwinderSymbols.includes(symbol)));
    if (importer) return `${soname} (glibc loads it for ${elfOf(importer)!.imports!.filter((symbol) => unwinderSymbols.includes(symbol)).join(', ')}, which ${shownPath(importer)} calls)`;
  }
  return soname;
}

/** Every path under `dir` (not `dir` itself), depth first, without following links. */
function walk(view: ImageView, dir: string): string[] {
  const paths: string[] = [];
  for (const name of [...view.children(dir)].sort()) {
    const path = dir === '/' ? `/${name}` : `${dir}/${name}`;
    paths.push(path);
    if (view.node(path)?.type === 'directory') paths.push(...walk(view, path));
  }
  return paths;
}
