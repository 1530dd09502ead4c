/**
 * The default runtime: a python-build-standalone CPython (the one `uv python install` uses),
 * chosen for the target, verified by sha256, cached in the store, placed at /python and trimmed
 * of what a server never uses.
 *
 * Checksums come from a pinned table generated from uv's download-metadata.json
 * (scripts/refresh-python-downloads.ts), or from a download-metadata.json the user names
 * (UVIMAGE_PYTHON_DOWNLOADS_JSON, or uv's UV_PYTHON_DOWNLOADS_JSON_URL). Archives come from the
 * release URL, or from a mirror that replaces its prefix (UVIMAGE_PYTHON_MIRROR, or uv's
 * UV_PYTHON_INSTALL_MIRROR): the same code path either way.
 */
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { createGunzip } from 'node:zlib';
import { asTask, stages, type Progress } from '../progress.js';
import { UserError } from '../errors.js';
import { downloadToStore } from '../net/download.js';
import { HttpStatusError, NetworkError, requestWith, statusError } from '../net/request.js';
import { readBody } from '../net/transport.js';
import { readElf } from '../binary/elf.js';
import type { Digest } from '../oci/digest.js';
import type { LayerEntry } from '../oci/layer-entry.js';
import { spoolTar, spooledLayerEntries, type SpooledMember, type SpooledTar } from '../oci/spooled-tar.js';
import { layerEncoding, writeLayer, type WrittenLayer } from '../oci/layer-writer.js';
import { BlobStore } from '../oci/store.js';
import { compareVersions } from '../python/pep440.js';
import { architectureOfPython, architectures, findArchitecture, type PythonArch } from '../facts/architectures.js';
import { standaloneDownloadRows } from './standalone-downloads.js';

export const standaloneReleaseBase = 'https://github.com/astral-sh/python-build-standalone/releases/download';

export interface StandaloneDownload {
  /** Full CPython version, e.g. 3.12.14. */
  version: string;
  arch: PythonArch;
  /** The python-build-standalone release (its date), e.g. 20260814. */
  release: string;
  /** The asset's file name. */
  asset: string;
  sha256: string;
}

/** uv's download-metadata.json entry, as far as uvimage reads it. */
export interface UvDownloadMetadata {
  name: string;
  arch: { family: string; variant: string | null };
  os: string;
  libc: string;
  major: number;
  minor: number;
  patch: number;
  prerelease: string;
  url: string;
  sha256: string | null;
  variant: string | null;
  build?: string;
}

/**
 * The downloads uvimage can use from uv's download-metadata.json: CPython for glibc Linux on
 * x86_64 (baseline) or aarch64, final releases of CPython 3.9 and later, the default build,
 * install_only archives (their top folder is python/). Used by the refresh script and for a user's own metadata file.
 */
export function standaloneDownloadsFromUvMetadata(metadata: Record<string, UvDownloadMetadata>): StandaloneDownload[] {
  const downloads: StandaloneDownload[] = [];
  for (const entry of Object.values(metadata)) {
    if (entry.name !== 'cpython' || entry.os !== 'linux' || entry.libc !== 'gnu') continue;
    const arch = findArchitecture(entry.arch.family);
    if (entry.arch.variant !== null || !arch || architectures[arch].python !== entry.arch.family) continue;
    if (entry.prerelease !== '' || entry.variant !== null || !entry.sha256) continue;
    // CPython 3.8 and older are past their end of life.
    if (entry.major !== 3 || entry.minor < 9) continue;
    const asset = decodeURIComponent(new URL(entry.url).pathname.split('/').pop() ?? '');
    if (!/-install_only(_stripped)?\.tar\.gz$/.test(asset)) continue;
    const release = entry.build ?? /\+(\d{8})-/.exec(asset)?.[1];
    if (!release) continue;
    downloads.push({ version: `${entry.major}.${entry.minor}.${entry.patch}`, arch: architectures[arch].python, release, asset, sha256: entry.sha256 });
  }
  return downloads.sort((a, b) => (a.asset < b.asset ? -1 : a.asset > b.asset ? 1 : 0));
}

/** uv's download-metadata.json is about 1 MB; a document far larger is not it. */
const metadataSizeLimit = 64 * 1024 * 1024;
const metadataTimeoutMs = 120_000;

/** Where the checksums come from: the pinned table, or the metadata file the environment names. */
export async function loadStandaloneDownloads(env: NodeJS.ProcessEnv = process.env): Promise<{ downloads: StandaloneDownload[]; source: string }> {
  const location = env.UVIMAGE_PYTHON_DOWNLOADS_JSON || env.UV_PYTHON_DOWNLOADS_JSON_URL;
  if (!location) {
    const downloads = standaloneDownloadRows.map(([version, arch, release, asset, sha256]) => ({ version, arch, release, asset, sha256 }));
    return { downloads, source: 'the table pinned in uvimage' };
  }
  let text: string;
  try {
    if (/^https?:\/\//.test(location)) {
      text = await requestWith({ url: location, env, timeoutMs: metadataTimeoutMs }, async (response) => {
        if (response.status !== 200) throw await statusError(response);
        return (await readBody(response, metadataSizeLimit)).toString('utf8');
      });
    } else {
      text = await readFile(location.startsWith('file:') ? fileURLToPath(location) : location, 'utf8');
    }
  } catch (error) {
    throw new UserError(`cannot read the Python downloads metadata at ${location}: ${(error as Error).message}`);
  }
  let metadata: Record<string, UvDownloadMetadata>;
  try {
    metadata = JSON.parse(text) as Record<string, UvDownloadMetadata>;
  } catch {
    throw new UserError(`the Python downloads metadata at ${location} is not valid JSON`);
  }
  return { downloads: standaloneDownloadsFromUvMetadata(metadata), source: location };
}

/**
 * The download for a request: an exact version (3.12.8), the newest of a minor (3.12), or the
 * newest version `allows` accepts (requires-python). Newest release of that version wins.
 */
export function chooseStandaloneDownload(
  downloads: StandaloneDownload[],
  arch: PythonArch,
  request: { version?: string; allows?: (version: string) => boolean; source?: string },
): StandaloneDownload {
  const forArch = downloads.filter((download) => download.arch === arch);
  const wanted = request.version?.trim();
  const candidates = forArch.filter((download) => {
    if (wanted) return download.version === wanted || download.version.startsWith(`${wanted}.`);
    return request.allows ? request.allows(download.version) : true;
  });
  if (candidates.length === 0) {
    const minors = [...new Set(forArch.map((download) => download.version.split('.').slice(0, 2).join('.')))].sort(compareVersions);
    const what = wanted ? `Python ${wanted}` : 'a Python that requires-python allows';
    throw new UserError(
      `no python-build-standalone release of ${what} for ${arch} Linux in ${request.source ?? 'the known downloads'} (known: ${minors.join(', ') || 'none'})`,
    );
  }
  return candidates.sort((a, b) => compareVersions(b.version, a.version) || (a.release < b.release ? 1 : -1))[0]!;
}

/** The archive's URL: the release URL, or the same path under a mirror. */
export function standaloneUrl(download: StandaloneDownload, env: NodeJS.ProcessEnv = process.env): string {
  const base = (env.UVIMAGE_PYTHON_MIRROR || env.UV_PYTHON_INSTALL_MIRROR || standaloneReleaseBase).replace(/\/+$/, '');
  return `${base}/${download.release}/${encodeURIComponent(download.asset)}`;
}

/** Brings the archive into the store, verified against its sha256; a cached one is not downloaded again. */
export async function fetchStandalone(
  download: StandaloneDownload,
  store: BlobStore,
  options: { env?: NodeJS.ProcessEnv; progress?: Progress } = {},
): Promise<Digest> {
  const digest = `sha256:${download.sha256}` as Digest;
  if (await store.hasIntact(digest)) return digest;
  const url = standaloneUrl(download, options.env);
  const what = `python-build-standalone archive ${url}`;
  const stage = options.progress?.stage(stages.runtimeDownload(download.version, architectureOfPython(download.arch)));
  const fetch = async (onBytes: (bytes: number) => void): Promise<void> => {
    if (url.startsWith('file:')) {
      const body: Readable = createReadStream(fileURLToPath(url));
      body.on('data', (chunk: Buffer) => onBytes(chunk.length));
      await store.writeStream(body, digest, what);
    } else {
      await downloadToStore({ url, env: options.env }, { store, digest, what, onBytes });
    }
  };
  try {
    await asTask(stage, download.asset, (task) => fetch((bytes) => task.advance(bytes)));
  } catch (error) {
    if (error instanceof HttpStatusError || error instanceof NetworkError) throw new UserError(`cannot download Python ${download.version} from ${error.url}: ${error.detail}`, { cause: error });
    if (error instanceof UserError) throw new UserError(`${error.message} (the checksum is from uvimage's pinned table or UVIMAGE_PYTHON_DOWNLOADS_JSON)`);
    throw new UserError(`cannot download Python ${download.version} from ${url}: ${(error as Error).message}`);
  } finally {
    stage?.finish();
  }
  return digest;
}

/** What trimming removed, by rule, for --json. */
export interface TrimmedGroup {
  rule: string;
  files: number;
  bytes: number;
}

export interface StandaloneRuntime {
  version: string;
  /** e.g. 3.12 */
  minor: string;
  /** Where the runtime is in the image, e.g. /python. */
  root: string;
  /** The interpreter a venv's bin/python links to, e.g. /python/bin/python3.12. */
  interpreter: string;
  entries: LayerEntry[];
  removed: TrimmedGroup[];
  /** Removes the spooled archive (after the layer is written). */
  close(): Promise<void>;
}

/** Why each trimmed path goes; the first rule that matches a path names it. */
function trimRules(minor: string): { rule: string; test: (path: string) => boolean }[] {
  const stdlib = `lib/python${minor}`;
  const under = (prefix: string) => (path: string) => path === prefix || path.startsWith(`${prefix}/`);
  const stdlibDir = (name: string) => under(`${stdlib}/${name}`);
  return [
    { rule: 'the test suite', test: (path) => stdlibDir('test')(path) || (path.startsWith(`${stdlib}/`) && !path.startsWith(`${stdlib}/site-packages/`) && /\/(tests?|idle_test)(\/|$)/.test(path.slice(stdlib.length))) },
    { rule: 'test extension modules', test: (path) => /^lib\/python[\d.]+\/lib-dynload\/(_test|_xxtest|xxlimited|_ctypes_test|xxsubtype)/.test(path) },
    { rule: 'idlelib', test: stdlibDir('idlelib') },
    { rule: 'tkinter and Tcl/Tk', test: (path) => stdlibDir('tkinter')(path) || /^lib\/python[\d.]+\/lib-dynload\/_tkinter/.test(path) || /^lib\/(tcl|tk|itcl|thread|Tix)[\d.]*(\/|$)/.test(path) || /^lib\/lib(tcl|tk)[\d.]*\.so/.test(path) },
    { rule: 'turtledemo', test: stdlibDir('turtledemo') },
    { rule: 'ensurepip', test: stdlibDir('ensurepip') },
    { rule: 'lib2to3', test: stdlibDir('lib2to3') },
    { rule: 'pip and other packages of the base interpreter (a venv does not see them)', test: (path) => path.startsWith(`${stdlib}/site-packages/`) && path !== `${stdlib}/site-packages/README.txt` },
    { rule: 'headers', test: under('include') },
    { rule: 'static libraries and build configuration', test: (path) => /\.a$/.test(path) || /^lib\/python[\d.]+\/config-[^/]+(\/|$)/.test(path) || under('lib/pkgconfig')(path) || /^bin\/python[\d.]*-config$/.test(path) },
    { rule: 'command-line tools (idle, pydoc, 2to3, pip)', test: (path) => /^bin\/(idle|pydoc|2to3|pip)[\d.-]*$/.test(path) },
    { rule: 'manual pages', test: under('share/man') },
    { rule: 'optimized bytecode (.opt-1/.opt-2.pyc, used only with -O)', test: (path) => /\.opt-[12]\.pyc$/.test(path) },
  ];
}

/** The rules trimming applies, by name, for the plan (what each removed is known once the archive is read). */
export function trimRuleNames(minor: string): string[] {
  return [...trimRules(minor).map((rule) => rule.rule), libpythonRule];
}

const libpythonRule = 'libpython (nothing in the runtime links it)';

/**
 * Reads a standalone archive from the store into layer entries under `root` (default /python),
 * trimmed unless `keepAll`. Timestamp-based .pyc files are rewritten to the layer's mtime (the
 * sources carry that mtime in the image, so the interpreter uses the cached bytecode instead of
 * recompiling at every start); hash-based ones are kept as they are.
 */
export async function openStandaloneRuntime(
  digest: Digest,
  store: BlobStore,
  options: { version: string; root?: string; keepAll?: boolean; mtime: number },
): Promise<StandaloneRuntime> {
  const root = (options.root ?? '/python').replace(/\/+$/, '');
  const minor = options.version.split('.').slice(0, 2).join('.');
  const label = `python-build-standalone ${options.version}`;
  const gunzip = createGunzip();
  const archive = await spoolTar(store.openRead(digest).pipe(gunzip), {
    spoolPath: store.tempPath('python'),
    label,
    mapPath: (archivePath) => {
      if (archivePath === 'python') return undefined;
      if (!archivePath.startsWith('python/')) throw new UserError(`${label}: ${archivePath} is outside the archive's python/ folder`);
      return `${root.slice(1)}/${archivePath.slice('python/'.length)}`;
    },
  });
  try {
    const relative = (member: SpooledMember) => member.path.slice(root.length);
    const interpreterMember = archive.members.find((member) => relative(member) === `bin/python${minor}`);
    if (!interpreterMember) throw new UserError(`${label}: the archive has no bin/python${minor}`);

    const removed = new Map<string, TrimmedGroup>();
    const rules = options.keepAll ? [] : trimRules(minor);
    const kept = archive.members.filter((member) => {
      const rule = rules.find((candidate) => candidate.test(relative(member)));
      if (!rule) return true;
      const group = removed.get(rule.rule) ?? { rule: rule.rule, files: 0, bytes: 0 };
      if (member.type === 'file') {
        group.files++;
        group.bytes += member.size;
      }
      removed.set(rule.rule, group);
      return false;
    });
    const unlinkedLibpython = options.keepAll ? [] : await unusedLibpython(archive, kept, relative);
    if (unlinkedLibpython.length > 0) {
      const group = { rule: libpythonRule, files: 0, bytes: 0 };
      for (const member of unlinkedLibpython) {
        if (member.type === 'file') {
          group.files++;
          group.bytes += member.size;
        }
      }
      removed.set(group.rule, group);
    }
    const dropped = new Set(unlinkedLibpython);
    const final = new Set(kept.filter((member) => !dropped.has(member)));
    const entries = spooledLayerEntries(archive, (member) => final.has(member));
    const byPath = new Map([...final].map((member) => [member.path, member]));
    for (const entry of entries) {
      if (entry.type !== 'file' || !entry.path.endsWith('.pyc')) continue;
      const member = byPath.get(entry.path)!;
      const source = sourceOfPyc(entry.path);
      const sourceSize = source ? byPath.get(source)?.size : undefined;
      if (sourceSize === undefined) continue;
      entry.open = () => pycWithMtime(archive, member, options.mtime, sourceSize);
    }
    return {
      version: options.version,
      minor,
      root,
      interpreter: `${root}/bin/python${minor}`,
      entries,
      removed: [...removed.values()],
      close: () => archive.close(),
    };
  } catch (error) {
    await archive.close();
    throw error;
  }
}

/** The key text of a runtime layer: the archive, whether it is trimmed, the mtime, where it goes. */
function standaloneLayerKeyText(options: { archive: Digest; trim: boolean; mtime: number; root: string }): string {
  return JSON.stringify({ format: 1, layerEncoding, archive: options.archive, trim: options.trim, mtime: options.mtime, root: options.root });
}

/** The record name (`standalone-layer`) of the runtime layer of an archive: known before it is downloaded. */
export function standaloneLayerKey(options: { archive: Digest; trim: boolean; mtime: number; root: string }): string {
  return BlobStore.recordName(standaloneLayerKeyText(options));
}

/** The runtime layer of a standalone archive and what went into it. */
export interface StandaloneLayer {
  layer: WrittenLayer;
  interpreter: string;
  removed: TrimmedGroup[];
}

/**
 * The runtime layer of a python-build-standalone archive in the store, cached by its inputs:
 * writing it takes seconds, and it only changes with the archive, the trimming or the timestamp.
 */
export async function writeStandaloneLayer(
  store: BlobStore,
  options: {
    archive: Digest;
    /** Brings the archive into the store, only when the layer is to be written (not when it is found in a cache). */
    fetchArchive?: () => Promise<Digest>;
    version: string;
    trim: boolean;
    mtime: number;
    root: string;
    plannedKey?: string;
    progress?: Progress;
  },
): Promise<StandaloneLayer> {
  const key = standaloneLayerKeyText(options);
  if (options.plannedKey !== undefined && options.plannedKey !== BlobStore.recordName(key)) throw new Error('the runtime layer\'s key is not the planned one');
  return store.cached(
    'standalone-layer',
    key,
    async () => {
      if (options.fetchArchive && (await options.fetchArchive()) !== options.archive) throw new Error(`the runtime archive fetched is not ${options.archive}`);
      const stage = options.progress?.stage(stages.runtimeLayer(options.version));
      const write = async (advance: (bytes: number) => void) => {
        const runtime = await openStandaloneRuntime(options.archive, store, { version: options.version, root: options.root, keepAll: !options.trim, mtime: options.mtime });
        try {
          const layer = await writeLayer(store, runtime.entries, { mtime: options.mtime, onBytes: advance });
          return { layer, interpreter: runtime.interpreter, removed: runtime.removed };
        } finally {
          await runtime.close();
        }
      };
      try {
        return await asTask(stage, options.root, (task) => write((bytes) => task.advance(bytes)));
      } finally {
        stage?.finish();
      }
    },
    { blobs: (value) => [value.layer?.descriptor?.digest] },
  );
}

/** The libpython shared libraries, when no kept ELF file needs them (python-build-standalone links statically since 2025). */
async function unusedLibpython(archive: SpooledTar, kept: SpooledMember[], relative: (member: SpooledMember) => string): Promise<SpooledMember[]> {
  const libpython = kept.filter((member) => /^lib\/libpython3[\d.]*\.so/.test(relative(member)));
  if (libpython.length === 0) return [];
  const names = new Set(libpython.map((member) => member.path.split('/').pop()!));
  for (const member of kept) {
    if (member.type !== 'file' || libpython.includes(member)) continue;
    const elf = await readElf((position, length) => archive.readRange(member, position, length));
    if (elf?.needed.some((needed) => names.has(needed))) return [];
  }
  return libpython;
}

/** a/__pycache__/b.cpython-312.pyc → a/b.py */
function sourceOfPyc(path: string): string | undefined {
  const match = /^(.*)\/__pycache__\/([^/]+?)\.[a-z]+-\d+\.pyc$/.exec(path);
  return match ? `${match[1]}/${match[2]}.py` : undefined;
}

/**
 * A timestamp-based pyc (PEP 552 flags 0) records its source's mtime and size; the image gives
 * every source the layer's mtime, so that field is set to it. A pyc whose recorded size does not
 * match its source is stale anyway and left alone, as are hash-based pycs.
 */
async function pycWithMtime(archive: SpooledTar, member: SpooledMember, mtime: number, sourceSize: number): Promise<Readable> {
  const content = await archive.readFile(member); // a .pyc is small
  const timestampBased = content.length >= 16 && content.readUInt32LE(4) === 0;
  if (timestampBased && content.readUInt32LE(12) === sourceSize >>> 0) content.writeUInt32LE(mtime >>> 0, 8);
  return Readable.from([content]);
}
