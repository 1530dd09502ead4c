/**
 * glibc's dynamic loader, as a pure function of an image's files: which DT_NEEDED entries (and
 * PT_INTERP paths) of its ELF files ld.so would fail to find. Nothing is run and nothing is read
 * but through the ImageView, so it works the same for any architecture.
 *
 * The search follows glibc's elf/dl-load.c `_dl_map_object` for a name without '/':
 *   0. an object already loaded in the process whose SONAME (or a name it was loaded as) is the
 *      name satisfies it, without any search;
 *   1. unless the requesting object has DT_RUNPATH: the DT_RPATH of the requesting object, then
 *      of the object that loaded it, and so on up the chain of loaders, then of the executable
 *      (an object with DT_RUNPATH has no DT_RPATH at all: elf/get-dynamic-info.h drops it);
 *   2. LD_LIBRARY_PATH — not part of an image, ignored;
 *   3. DT_RUNPATH of the requesting object only;
 *   4. /etc/ld.so.cache — modelled as the directories ldconfig would scan, /etc/ld.so.conf with
 *      its `include` globs (elf/ldconfig.c parse_conf), and only when the image has a cache:
 *      ld.so reads the cache file, never ld.so.conf;
 *   5. the system directories, unless the requesting object has DF_1_NODEFLIB (which also
 *      rejects cache entries in them).
 * `$ORIGIN`, `$LIB` and `$PLATFORM` (and their `${…}` forms) are expanded as elf/dl-load.c's
 * `_dl_dst_substitute` does: the origin is the directory of the path the object was found at
 * (for an executable, of its real path, as /proc/self/exe gives it). A name with '/' is opened
 * as it is, after the same expansion. Every candidate path is resolved inside the image as the
 * kernel would: symlinks followed component by component, absolute targets from the image's
 * root, `..` after the link is followed, at most 40 links. A candidate of the wrong ELF class or
 * machine is skipped (`open_verify`'s non-fatal cases); one that is not ELF, of the other byte
 * order or not ET_DYN/ET_EXEC fails the load there and then, as ld.so does ("invalid ELF header").
 * Dependencies are loaded breadth first (`_dl_map_object_deps`).
 *
 * Not modelled: glibc-hwcaps and legacy hwcap subdirectories (a library only there counts as
 * missing, as on a CPU without the capability), LD_PRELOAD, secure-mode restrictions, symbol
 * versions (a library found but too old still counts as found).
 *
 * Which processes are simulated: every dynamically linked executable, from itself; every Python
 * extension module (a `.so` under site-packages, dist-packages or lib-dynload), dlopen'ed by its
 * interpreter after the interpreter's own dependencies are loaded (so the interpreter's RPATH,
 * when it has one and no RUNPATH, and what it already loaded, count); then every other shared
 * object that none of those loads, dlopen'ed on its own (those only loaded by another such
 * object are judged as that one loads them). A caller may start processes only from some files
 * (`roots`: the minimal flavour runs it from everything but the base) and add sonames that are
 * dlopened by name (`dlopened`: what glibc loads by itself); the report lists every file loaded.
 */
import { posix } from 'node:path';
import { architectureOfPython, architectures } from '../facts/architectures.js';
import type { ElfInfo } from './elf.js';

// ---------------------------------------------------------------------------------------------
// The image's files.

export type ImageNode = { type: 'file'; elf?: ElfInfo } | { type: 'directory' } | { type: 'symlink'; target: string };

/** What the loader rules need of an image. Paths are absolute and normalized; none is resolved. */
export interface ImageView {
  /** The entry at exactly this path (no symlink followed), or undefined. */
  node(path: string): ImageNode | undefined;
  /** The names in the directory at exactly this path. */
  children(path: string): Iterable<string>;
  /** The content of a small text file at exactly this path (ld.so.conf files), when known. */
  text(path: string): string | undefined;
  /** Every regular file that is ELF. */
  elfFiles(): Iterable<string>;
}

/** An image's files in memory: add them layer by layer (a later add replaces, `remove` is a whiteout). */
export class ImageTree implements ImageView {
  private readonly nodes = new Map<string, ImageNode>([['/', { type: 'directory' }]]);
  private readonly names = new Map<string, Set<string>>([['/', new Set()]]);
  private readonly texts = new Map<string, string>();

  add(path: string, node: ImageNode, text?: string): void {
    const key = imagePath(path);
    if (key === '/') return;
    const parent = posix.dirname(key);
    if (this.nodes.get(parent)?.type !== 'directory') this.add(parent, { type: 'directory' });
    const existing = this.nodes.get(key);
    if (existing?.type === 'directory' && node.type === 'directory') return;
    if (existing) this.remove(key);
    this.nodes.set(key, node);
    if (node.type === 'directory') this.names.set(key, new Set());
    this.names.get(parent)!.add(posix.basename(key));
    if (text !== undefined) this.texts.set(key, text);
  }

  /** Removes an entry and everything under it. */
  remove(path: string): void {
    const key = imagePath(path);
    if (key === '/' || !this.nodes.has(key)) return;
    for (const name of this.names.get(key) ?? []) this.remove(`${key}/${name}`);
    this.nodes.delete(key);
    this.names.delete(key);
    this.texts.delete(key);
    this.names.get(posix.dirname(key))?.delete(posix.basename(key));
  }

  node(path: string): ImageNode | undefined {
    return this.nodes.get(path);
  }

  children(path: string): Iterable<string> {
    return this.names.get(path) ?? [];
  }

  text(path: string): string | undefined {
    return this.texts.get(path);
  }

  *elfFiles(): Iterable<string> {
    for (const [path, node] of this.nodes) if (node.type === 'file' && node.elf) yield path;
  }
}

/** An image path as people recognise it: under site-packages, relative to it. */
export function shownPath(path: string): string {
  const at = path.indexOf('/site-packages/');
  return at >= 0 ? path.slice(at + '/site-packages/'.length) : path;
}

/** An image path in the form ImageView uses: absolute, no '.', '..', '//' or trailing '/'. */
export function imagePath(path: string): string {
  const normal = posix.normalize(`/${path}`);
  return normal.length > 1 && normal.endsWith('/') ? normal.slice(0, -1) : normal;
}

type Resolution = { path: string; node: ImageNode } | { error: 'missing' | 'symlink loop' };

/** Linux's MAXSYMLINKS. */
const maxSymlinks = 40;

/** Path resolution as the kernel does it, inside the image (cached: an image is resolved many times over). */
class PathResolver {
  private readonly cache = new Map<string, Resolution>();
  constructor(private readonly view: ImageView) {}

  resolve(path: string): Resolution {
    let result = this.cache.get(path);
    if (!result) {
      result = this.walk(path);
      this.cache.set(path, result);
    }
    return result;
  }

  private walk(path: string): Resolution {
    const pending = path.split('/').reverse(); // a stack: the next component is last
    const current: string[] = [];
    let links = 0;
    while (pending.length > 0) {
      const part = pending.pop()!;
      if (part === '' || part === '.') continue;
      if (part === '..') {
        current.pop(); // '..' of the root is the root
        continue;
      }
      const at = `/${[...current, part].join('/')}`;
      const node = this.view.node(at);
      if (!node) return { error: 'missing' };
      if (node.type === 'symlink') {
        if (++links > maxSymlinks) return { error: 'symlink loop' };
        if (node.target.startsWith('/')) current.length = 0;
        pending.push(...node.target.split('/').reverse());
        continue;
      }
      if (node.type === 'file' && pending.some((rest) => rest !== '')) return { error: 'missing' }; // ENOTDIR
      current.push(part);
    }
    const resolved = `/${current.join('/')}`;
    return { path: resolved, node: this.view.node(resolved) ?? { type: 'directory' } };
  }
}

// ---------------------------------------------------------------------------------------------
// The loader of a platform.

/** What differs between the loaders of platforms and distributions. */
export interface LoaderSystem {
  /** ElfInfo's machine name of the processes: x86_64, aarch64. */
  machine: string;
  bits: 32 | 64;
  littleEndian: boolean;
  /** The system search path, in order (glibc's SYSTEM_DIRS). */
  searchDirs: string[];
  /** What `$LIB` expands to (glibc's DL_DST_LIB). */
  lib: string;
  /** What `$PLATFORM` expands to (AT_PLATFORM). */
  platform: string;
}

/**
 * The loader of a 64-bit glibc platform. `debian` is exactly what Debian's ld.so says of itself
 * (`ld.so --list-diagnostics` of trixie's libc6 on amd64 and, under qemu, arm64: system_dirs
 * /lib/<triplet>, /usr/lib/<triplet>, /lib, /usr/lib; dl_dst_lib lib/<triplet>). `any` is for a
 * base of unknown distribution: Debian's directories and the /lib64, /usr/lib64 that RPM-based
 * distributions' loaders search instead.
 */
export function loaderSystem(machine: 'x86_64' | 'aarch64', distribution: 'debian' | 'any' = 'debian'): LoaderSystem {
  const triplet = architectures[architectureOfPython(machine)].multiarchTriplet;
  const multiarch = [`/lib/${triplet}`, `/usr/lib/${triplet}`];
  const searchDirs = distribution === 'debian' ? [...multiarch, '/lib', '/usr/lib'] : [...multiarch, '/lib64', '/usr/lib64', '/lib', '/usr/lib'];
  return { machine, bits: 64, littleEndian: true, searchDirs, lib: `lib/${triplet}`, platform: machine };
}

/**
 * `_dl_dst_substitute`: $ORIGIN, $LIB, $PLATFORM and the ${…} forms; an unbraced name counts only
 * when no identifier character follows it (`is_dst`); any other `$` is kept as it is.
 */
export function expandDynamicStringTokens(text: string, origin: string, system: Pick<LoaderSystem, 'lib' | 'platform'>): string {
  const values: Record<string, string> = { ORIGIN: origin, LIB: system.lib, PLATFORM: system.platform };
  return text.replace(/\$(?:\{(ORIGIN|LIB|PLATFORM)\}|(ORIGIN|LIB|PLATFORM)(?![A-Za-z0-9_]))/g, (_, braced: string | undefined, bare: string | undefined) => values[(braced ?? bare)!]!);
}

// ---------------------------------------------------------------------------------------------
// ld.so.conf.

/** The directories /etc/ld.so.conf names, includes followed (relative patterns from the including file's directory, globs sorted as glob(3) sorts). */
export function ldSoConfDirectories(view: ImageView): string[] {
  const resolver = new PathResolver(view);
  const dirs: string[] = [];
  const seen = new Set<string>();
  const parse = (file: string): void => {
    const resolved = resolver.resolve(file);
    if ('error' in resolved || resolved.node.type !== 'file' || seen.has(resolved.path)) return;
    seen.add(resolved.path); // ldconfig would recurse forever on an include loop; nothing is gained by it
    const text = view.text(resolved.path);
    if (text === undefined) return;
    for (const raw of text.split('\n')) {
      const line = raw.replace(/#.*/, '').trim();
      if (line === '') continue;
      if (/^include[ \t]/.test(line)) {
        for (const pattern of line.slice('include'.length).trim().split(/[ \t]+/)) {
          for (const match of glob(pattern.startsWith('/') ? pattern : `${posix.dirname(file)}/${pattern}`, view, resolver)) parse(match);
        }
      } else if (/^hwcap[ \t]/i.test(line)) {
        continue; // obsolete, ignored by ldconfig
      } else if (line.startsWith('/')) {
        const dir = line.replace(/\/+$/, '') || '/';
        if (!dirs.includes(dir)) dirs.push(dir);
      }
    }
  };
  parse('/etc/ld.so.conf');
  return dirs;
}

/** glob(3) over the image: `*`, `?` and `[…]` within one path component; no match for a leading '.' unless the pattern has one. */
function glob(pattern: string, view: ImageView, resolver: PathResolver): string[] {
  let paths = [''];
  for (const part of pattern.split('/').filter((segment) => segment !== '')) {
    const next: string[] = [];
    for (const base of paths) {
      if (!/[*?[]/.test(part)) {
        next.push(`${base}/${part}`);
        continue;
      }
      const dir = resolver.resolve(base || '/');
      if ('error' in dir || dir.node.type !== 'directory') continue;
      const matcher = globMatcher(part);
      const names = [...view.children(dir.path)].filter((name) => matcher.test(name) && (!name.startsWith('.') || part.startsWith('.')));
      for (const name of names.sort(byteOrder)) next.push(`${base}/${name}`);
    }
    paths = next;
  }
  return paths.filter((path) => !('error' in resolver.resolve(path)));
}

function globMatcher(part: string): RegExp {
  let source = '';
  for (let at = 0; at < part.length; at++) {
    const ch = part[at]!;
    if (ch === '*') source += '[^/]*';
    else if (ch === '?') source += '[^/]';
    else if (ch === '[') {
      const end = part.indexOf(']', at + 2);
      if (end < 0) source += '\\[';
      else {
        const body = part.slice(at + 1, end).replace(/\\/g, '\\\\');
        source += `[${body.startsWith('!') ? `^${body.slice(1)}` : body}]`;
        at = end;
      }
    } else source += ch.replace(/[.+^${}()|\\\]]/g, '\\$&');
  }
  return new RegExp(`^${source}$`);
}

const byteOrder = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b));

// ---------------------------------------------------------------------------------------------
// The check.

export interface LoaderOptions {
  system: LoaderSystem;
  /** Which interpreter dlopens the extension modules under a directory (longest `root` wins), e.g. { root: '/app/.venv', interpreter: '/app/.venv/bin/python' }. */
  pythonInterpreters?: { root: string; interpreter: string }[];
  /** The directory relative paths (in a DT_NEEDED with '/', or an RPATH element) are taken from: the process's working directory; default '/'. */
  workdir?: string;
  /** Which ELF files start a simulated process (default: all): the others count only as loaded by one. */
  roots?: (path: string) => boolean;
  /** Sonames something dlopens by name on its own (glibc's libgcc_s, NSS modules): each found in the default search path starts a process. */
  dlopened?: string[];
}

/** A candidate that was found but could not be used. */
export interface RejectedCandidate {
  path: string;
  /** 'is ELFCLASS32', 'is for aarch64' (skipped, the search went on), or why the load failed there ('is not an ELF file', …). */
  problem: string;
}

export interface Needer {
  /** The ELF file whose DT_NEEDED (or PT_INTERP) it is, by its real path in the image. */
  file: string;
  /** How that file came to be loaded: from the simulated process's root (an executable, an extension module, a library) to `file`. */
  chain: string[];
  rejected: RejectedCandidate[];
}

export interface MissingLibrary {
  /** The DT_NEEDED entry (a soname, or a path), or the PT_INTERP path. */
  name: string;
  kind: 'needed' | 'interpreter';
  neededBy: Needer[];
}

export interface LoaderReport {
  /** Sorted by name; each name's needers sorted by file. */
  missing: MissingLibrary[];
  /** ELF files of another machine, class or byte order than the platform's: no process of the image can load them, so they are not checked. */
  foreign: string[];
  /** The ld.so.cache directories used (empty when the image has no /etc/ld.so.cache). */
  cacheDirs: string[];
  /** Every file some simulated process loaded (program interpreters included), by real path, sorted. */
  loaded: string[];
}

interface Loaded {
  /** The path it was found at, as the loader spelt it (origin is its directory). */
  path: string;
  /** Its real path in the image. */
  real: string;
  elf: ElfInfo;
  origin: string;
  names: Set<string>;
  /** l_loader: the object whose dependency (or dlopen) brought it in. */
  loader?: Loaded;
  chain: string[];
}

type Failure = { rejected: RejectedCandidate[] };
type Candidate = { loaded: Loaded } | { fatal: RejectedCandidate } | { skip: RejectedCandidate } | undefined;

/** A miss seen in one simulated process. */
interface Observed {
  name: string;
  kind: MissingLibrary['kind'];
  needer: Loaded;
  rejected: RejectedCandidate[];
}

/** One simulated process: what it loaded, by real path and by the names it was asked for. */
class Process {
  readonly byReal = new Map<string, Loaded>();
  readonly byName = new Map<string, Loaded>();
  readonly observed: Observed[] = [];
  main?: Loaded;
  /** The real path of the program interpreter, when found. */
  interpreterReal?: string;
  /** Misses are observed only while true (not while preloading an interpreter, whose own process reports them). */
  recording = true;

  constructor(readonly check: ClosureCheck) {}

  add(loaded: Loaded): void {
    this.byReal.set(loaded.real, loaded);
    for (const name of loaded.names) if (!this.byName.has(name)) this.byName.set(name, loaded);
  }

  addName(loaded: Loaded, name: string): void {
    loaded.names.add(name);
    if (!this.byName.has(name)) this.byName.set(name, loaded);
  }

  /** `_dl_map_object_deps`: the dependencies of `start`, breadth first. */
  loadDependencies(start: Loaded): void {
    const queue = [start];
    for (let next = queue.shift(); next; next = queue.shift()) {
      for (const name of next.elf.needed) {
        const before = this.byReal.size;
        const result = this.map(name, next);
        if ('rejected' in result) {
          if (this.recording) this.observed.push({ name, kind: 'needed', needer: next, rejected: result.rejected });
        } else if (this.byReal.size > before) queue.push(result);
      }
    }
  }

  /** `_dl_map_object`: the object `name` names, loaded for `loader`. */
  map(name: string, loader: Loaded): Loaded | Failure {
    const { system, workdir } = this.check;
    if (!name.includes('/')) {
      const known = this.byName.get(name);
      if (known) return known;
    } else {
      let path = expandDynamicStringTokens(name, loader.origin, system);
      if (!path.startsWith('/')) path = `${workdir}/${path}`;
      const candidate = this.open(path, name, loader);
      if (candidate && 'loaded' in candidate) return candidate.loaded;
      return { rejected: candidate ? ['fatal' in candidate ? candidate.fatal : candidate.skip] : [] };
    }
    const rejected: RejectedCandidate[] = [];
    for (const dir of this.searchPath(loader)) {
      const candidate = this.open(`${dir}/${name}`, name, loader);
      if (!candidate) continue;
      if ('loaded' in candidate) return candidate.loaded;
      if ('fatal' in candidate) return { rejected: [...rejected, candidate.fatal] };
      if (!rejected.some((seen) => seen.path === candidate.skip.path)) rejected.push(candidate.skip);
    }
    return { rejected };
  }

  /** The directories searched for a name `loader` needs, in order (duplicates are harmless: the first hit wins). */
  searchPath(loader: Loaded): string[] {
    const { system, cacheDirs } = this.check;
    const dirs: string[] = [];
    const rpathOf = (object: Loaded): string | undefined => (object.elf.runpath === undefined ? object.elf.rpath : undefined);
    const expand = (list: string, owner: Loaded): void => {
      for (const element of list.split(':')) dirs.push(this.check.directory(expandDynamicStringTokens(element, owner.origin, system)));
    };
    if (loader.elf.runpath === undefined) {
      let sawMain = false;
      for (let object: Loaded | undefined = loader; object; object = object.loader) {
        const rpath = rpathOf(object);
        if (rpath !== undefined) expand(rpath, object);
        if (object === this.main) sawMain = true;
      }
      const mainRpath = this.main && rpathOf(this.main);
      if (!sawMain && mainRpath !== undefined) expand(mainRpath, this.main!);
    } else {
      expand(loader.elf.runpath, loader);
    }
    const noDefaultLib = loader.elf.noDefaultLib;
    for (const dir of cacheDirs) if (!(noDefaultLib && system.searchDirs.includes(dir))) dirs.push(dir);
    if (!noDefaultLib) dirs.push(...system.searchDirs);
    return dirs;
  }

  /** `open_verify` of one candidate path. */
  open(path: string, name: string, loader: Loaded | undefined): Candidate {
    const judged = this.check.judge(path);
    if (!judged || !('elf' in judged)) return judged;
    const known = this.byReal.get(judged.real);
    if (known) {
      if (!name.includes('/')) this.addName(known, name);
      return { loaded: known };
    }
    const loaded: Loaded = {
      path,
      real: judged.real,
      elf: judged.elf,
      origin: posix.dirname(path),
      names: new Set([...(name.includes('/') ? [] : [name]), ...(judged.elf.soname ? [judged.elf.soname] : [])]),
      loader,
      chain: [...(loader?.chain ?? []), judged.real],
    };
    this.add(loaded);
    return { loaded };
  }
}

type Judged = { real: string; elf: ElfInfo } | { fatal: RejectedCandidate } | { skip: RejectedCandidate } | undefined;

class ClosureCheck {
  readonly resolver: PathResolver;
  readonly workdir: string;
  readonly cacheDirs: string[];
  private readonly judged = new Map<string, Judged>();

  constructor(readonly view: ImageView, readonly system: LoaderSystem, options: LoaderOptions) {
    this.resolver = new PathResolver(view);
    this.workdir = imagePath(options.workdir ?? '/');
    const cache = this.resolver.resolve('/etc/ld.so.cache');
    this.cacheDirs = !('error' in cache) && cache.node.type === 'file' ? ldSoConfDirectories(view) : [];
  }

  /** An RPATH element or cache directory as a search directory ('' and relative ones are from the working directory). */
  directory(element: string): string {
    const dir = element.startsWith('/') ? element : element === '' ? this.workdir : `${this.workdir}/${element}`;
    return dir.length > 1 ? dir.replace(/\/+$/, '') : dir;
  }

  /** Whether a process of this platform can load the file at `path` (not yet knowing which process). */
  judge(path: string): Judged {
    if (this.judged.has(path)) return this.judged.get(path);
    const result = this.judgeUncached(path);
    this.judged.set(path, result);
    return result;
  }

  private judgeUncached(path: string): Judged {
    const resolved = this.resolver.resolve(path);
    if ('error' in resolved) return resolved.error === 'symlink loop' ? { skip: { path, problem: 'is a symlink loop' } } : undefined;
    const { node } = resolved;
    if (node.type === 'directory') return { fatal: { path, problem: 'is a directory' } };
    if (node.type !== 'file') return undefined;
    const elf = node.elf;
    const { system } = this;
    if (!elf) return { fatal: { path, problem: 'is not an ELF file' } };
    if (elf.bits !== system.bits) return { skip: { path, problem: `is ELFCLASS${elf.bits}` } };
    if (elf.littleEndian !== system.littleEndian) return { fatal: { path, problem: `is ${elf.littleEndian ? 'little' : 'big'}-endian` } };
    if (elf.machine !== system.machine) return { skip: { path, problem: `is for ${elf.machine}` } };
    if (elf.kind !== 'shared' && elf.kind !== 'executable') return { fatal: { path, problem: `is a ${elf.kind} object, not a shared object` } };
    return { real: resolved.path, elf };
  }

  /** Whether an ELF file is one this platform's processes can load at all. */
  native(elf: ElfInfo): boolean {
    return elf.bits === this.system.bits && elf.littleEndian === this.system.littleEndian && elf.machine === this.system.machine;
  }
}

const pythonDir = /\/(site-packages|dist-packages|lib-dynload)\//;

/**
 * Every DT_NEEDED (and PT_INTERP) of every ELF file of the image that glibc's loader would not
 * find, as described at the top of this file, with how each needing file gets loaded.
 */
export function findMissingLibraries(view: ImageView, options: LoaderOptions): LoaderReport {
  const check = new ClosureCheck(view, options.system, options);
  const foreign: string[] = [];
  const executables: string[] = [];
  const modules: string[] = [];
  const libraries: string[] = [];
  for (const path of [...view.elfFiles()].sort(byteOrder)) {
    const node = view.node(path);
    const elf = node?.type === 'file' ? node.elf : undefined;
    if (!elf) continue;
    if (!check.native(elf)) {
      foreign.push(path);
      continue;
    }
    if (options.roots && !options.roots(path)) continue;
    if (!elf.dynamic) continue; // statically linked or not a loadable object: needs nothing
    if (elf.kind === 'executable' || (elf.kind === 'shared' && elf.interpreter !== undefined && elf.soname === undefined)) executables.push(path);
    else if (elf.kind === 'shared' && pythonDir.test(path) && path.endsWith('.so')) modules.push(path);
    else if (elf.kind === 'shared') libraries.push(path);
  }

  const interpreterOf = (path: string): string | undefined => {
    let best: { root: string; interpreter: string } | undefined;
    for (const entry of options.pythonInterpreters ?? []) {
      const root = imagePath(entry.root);
      if ((path.startsWith(`${root}/`) || root === '/') && (!best || root.length > imagePath(best.root).length)) best = entry;
    }
    return best?.interpreter;
  };

  /** A process running the executable at `path`. */
  const runExecutable = (path: string, recording = true): Process => {
    const process = new Process(check);
    const judged = check.judge(path);
    if (!judged || !('elf' in judged)) return process;
    const main: Loaded = { path: judged.real, real: judged.real, elf: judged.elf, origin: posix.dirname(judged.real), names: new Set(judged.elf.soname ? [judged.elf.soname] : []), chain: [judged.real] };
    process.main = main;
    process.add(main);
    process.recording = recording;
    const interpreter = judged.elf.interpreter;
    if (interpreter !== undefined) {
      const found = check.judge(interpreter.startsWith('/') ? interpreter : `${check.workdir}/${interpreter}`);
      if (found && 'elf' in found) process.interpreterReal = found.real;
      else if (recording) {
        const problem = found && ('fatal' in found ? found.fatal : found.skip);
        process.observed.push({ name: interpreter, kind: 'interpreter', needer: main, rejected: problem ? [problem] : [] });
      }
    }
    process.loadDependencies(main);
    return process;
  };

  /** A process that dlopens the shared object at `path`: by its Python interpreter (after the interpreter's own dependencies), else by a program that brings nothing. */
  const runDlopen = (path: string): Process => {
    const interpreter = pythonDir.test(path) ? interpreterOf(path) : undefined;
    const process = interpreter ? runExecutable(interpreter, false) : new Process(check);
    process.recording = true;
    // The caller of dlopen is libpython when the interpreter links it, else the executable.
    const caller = interpreter ? ([...process.byReal.values()].find((object) => /^libpython\d/.test(object.elf.soname ?? '')) ?? process.main) : undefined;
    const judged = check.judge(path);
    if (!judged || !('elf' in judged)) return process;
    const known = process.byReal.get(judged.real);
    const module: Loaded = known ?? { path, real: judged.real, elf: judged.elf, origin: posix.dirname(path), names: new Set(judged.elf.soname ? [judged.elf.soname] : []), loader: caller, chain: [judged.real] };
    if (!known) process.add(module);
    process.loadDependencies(module);
    return process;
  };

  const misses = new Map<string, { kind: MissingLibrary['kind']; byFile: Map<string, Needer> }>();
  const processRoots = new Set([...executables, ...modules].map((path) => {
    const judged = check.judge(path);
    return judged && 'elf' in judged ? judged.real : path;
  }));
  const rank = (chain: string[]): [number, number, string] => [processRoots.has(chain[0]!) ? 0 : 1, chain.length, chain.join('\n')];
  const better = (a: string[], b: string[]): boolean => {
    const [x, y] = [rank(a), rank(b)];
    return x[0] !== y[0] ? x[0] < y[0] : x[1] !== y[1] ? x[1] < y[1] : x[2] < y[2];
  };
  const loaded = new Set<string>();
  const commit = (process: Process): void => {
    for (const real of process.byReal.keys()) loaded.add(real);
    if (process.interpreterReal) loaded.add(process.interpreterReal);
    for (const seen of process.observed) {
      const entry = misses.get(seen.name) ?? { kind: seen.kind, byFile: new Map<string, Needer>() };
      misses.set(seen.name, entry);
      const previous = entry.byFile.get(seen.needer.real);
      if (!previous || better(seen.needer.chain, previous.chain)) entry.byFile.set(seen.needer.real, { file: seen.needer.real, chain: seen.needer.chain, rejected: seen.rejected });
    }
  };

  // Executables and extension modules: the processes that really happen.
  const covered = new Set<string>();
  for (const path of executables) {
    const process = runExecutable(path);
    commit(process);
    for (const real of process.byReal.keys()) covered.add(real);
  }
  for (const path of modules) {
    const process = runDlopen(path);
    commit(process);
    for (const real of process.byReal.keys()) covered.add(real);
  }
  // What is dlopened by name on its own (as glibc does libgcc_s.so.1): from the default search path.
  for (const name of options.dlopened ?? []) {
    const dir = [...check.cacheDirs, ...options.system.searchDirs].find((candidate) => {
      const judged = check.judge(`${candidate}/${name}`);
      return judged !== undefined && 'elf' in judged;
    });
    if (dir === undefined) continue;
    const process = runDlopen(`${dir}/${name}`);
    commit(process);
    for (const real of process.byReal.keys()) covered.add(real);
  }
  // The other shared objects none of those loads: each dlopen'ed on its own, and reported from
  // the ones no other of them loads (in a cycle of such objects, from the first in path order).
  const orphans = new Map<string, Process>();
  for (const path of libraries) {
    const judged = check.judge(path);
    if (judged && 'elf' in judged && !covered.has(judged.real)) orphans.set(judged.real, runDlopen(path));
  }
  const loadedByOthers = new Set<string>();
  for (const [real, process] of orphans) for (const other of process.byReal.keys()) if (other !== real) loadedByOthers.add(other);
  const reported = new Set<string>();
  const report = (real: string): void => {
    const process = orphans.get(real)!;
    commit(process);
    for (const other of process.byReal.keys()) reported.add(other);
  };
  for (const real of orphans.keys()) if (!loadedByOthers.has(real)) report(real);
  for (const real of orphans.keys()) if (!reported.has(real)) report(real);

  const missing: MissingLibrary[] = [...misses.entries()]
    .sort(([a], [b]) => byteOrder(a, b))
    .map(([name, entry]) => ({ name, kind: entry.kind, neededBy: [...entry.byFile.values()].sort((a, b) => byteOrder(a.file, b.file)) }));
  return { missing, foreign, cacheDirs: check.cacheDirs, loaded: [...loaded].sort(byteOrder) };
}
