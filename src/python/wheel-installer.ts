/**
 * A wheel installer that writes layer entries, not files. It follows uv's installer
 * (crates/uv-install-wheel: install.rs, wheel.rs) step by step, so the result is what `uv sync`
 * puts in the venv:
 *
 *   - the archive is unpacked into site-packages (purelib = platlib in a venv);
 *   - `<name>.data/{purelib,platlib,headers,data,scripts}` move to their scheme directories
 *     (headers under include/site/pythonX.Y/<name>, data at the venv root, scripts in bin/, each
 *     file of `scripts` made executable and a `#!python`/`#!pythonw` first line rewritten to the
 *     venv's interpreter); a `.data/scripts` file named like an entry point is not installed;
 *   - console and GUI entry points become launchers in bin/;
 *   - INSTALLER, REQUESTED and (for the project) direct_url.json are added;
 *   - RECORD is rewritten: moved paths relative to site-packages, new hashes for rewritten
 *     scripts, the added files, sorted as uv sorts them. Files the archive has but RECORD does
 *     not list are added without a hash and entries for files the archive lacks are dropped
 *     (uv's `validate_and_heal_record`).
 *
 * Unlike uv, every file with a hash in RECORD is checked against it as it streams, and the
 * layer write fails on a mismatch. Hostile archives are refused: absolute or `..` paths (yauzl
 * refuses them as the central directory is read), symlink entries, destinations outside the
 * venv, scripts that would replace the interpreter links.
 *
 * Modes: 0o755 for files with any executable bit in the archive (as uv's unzip does) and for
 * everything in bin/, 0o644 otherwise.
 *
 * Bytecode: with a compiler, every `.py` installed under site-packages gets its
 * `__pycache__/<name>.<tag>.pyc` (unchecked-hash, co_filename the image path). A layer entry
 * needs its size before the layer is written, so the pycs of a wheel are compiled first into one
 * "pack" blob in the store (keyed by wheel hash, venv root and compiler), and each pyc entry reads
 * its slice of the pack. A rebuild of the layer compiles nothing for an unchanged wheel.
 */
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, createWriteStream, openSync, readSync } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import { posix } from 'node:path';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { inflateRawSync } from 'node:zlib';
import yauzl, { type Entry, type ZipFile } from 'yauzl';
import { fileReader, isElfMagic, type PositionalReader } from '../binary/elf.js';
import { planStripDebug, stripFormat, writeStripped } from '../binary/strip.js';
import { UserError } from '../errors.js';
import type { Digest } from '../oci/digest.js';
import type { FileEntry, LayerEntry } from '../oci/layer-entry.js';
import type { BlobStore } from '../oci/store.js';
import { pycPathFor, type PycCompiler } from './bytecode.js';
import { launcherScript, parseEntryPoints, reservedScriptName, shebang, type EntryPointScript } from './entry-points.js';
import type { VenvScheme } from './venv.js';
import type { Stage } from '../progress.js';

/** A wheel that cannot be installed: hostile, malformed or not what RECORD says. */
export class WheelError extends UserError {}

export interface WheelBytecode {
  compiler: PycCompiler;
  /** sys.implementation.cache_tag of the target runtime, e.g. 'cpython-312'. */
  cacheTag: string;
  /** Where compiled packs are kept; without it the pycs are held in memory for the layer. */
  store?: BlobStore;
  /** Use a pack compiled by an earlier build (default true). */
  reuse?: boolean;
  /** The stage the files compiled are counted in (one task per wheel). */
  stage?: Stage;
}

export interface InstallWheelOptions {
  scheme: VenvScheme;
  /** The wheel's file name (the `.whl` name, for tags and messages). */
  filename: string;
  /** sha256 of the wheel, for the bytecode cache key. */
  wheelDigest?: Digest;
  /** INSTALLER content; default 'uvimage'. */
  installer?: string;
  /** direct_url.json content (the project and other direct references), written as given. */
  directUrl?: string;
  bytecode?: WheelBytecode;
  /** Strip debug information from the wheel's ELF files. */
  strip?: WheelStrip;
}

export interface WheelStrip {
  /** Where stripped files are kept. */
  store: BlobStore;
  /** Use files stripped by an earlier build (default true). */
  reuse?: boolean;
}

/** An ELF file of the wheel, stripped: its copy in the store. */
export interface StrippedFile {
  digest: Digest;
  size: number;
  /** Its size in the wheel. */
  before: number;
}

export interface InstalledWheel {
  name: string;
  version: string;
  distInfo: string;
  /** Entries for the layer. File contents open lazily from the wheel, verified as they stream. */
  entries: LayerEntry[];
  /** The files stripped of debug information (with `strip`): layer path, size in the wheel, size installed. */
  stripped: { path: string; before: number; after: number }[];
  /** Closes the archive. Call after the layer is written. */
  close(): void;
}

interface RecordEntry {
  path: string;
  hash: string | undefined;
  size: number | undefined;
}

/** Reads a wheel and returns the layer entries that install it into `options.scheme`. */
export async function installWheel(wheelPath: string, options: InstallWheelOptions): Promise<InstalledWheel> {
  const what = `wheel ${options.filename}`;
  // One descriptor per wheel, shared by yauzl (central directory, streams of large entries) and
  // the positioned reads of small entries; yauzl closes it once the archive is closed and its
  // last stream is done.
  let fd: number;
  try {
    fd = openSync(wheelPath, 'r');
  } catch (error) {
    throw new WheelError(`${what} cannot be opened: ${(error as Error).message}`);
  }
  let zip: ZipFile;
  try {
    zip = await openZip(fd, what);
  } catch (error) {
    closeSync(fd);
    throw error;
  }
  try {
    return await installFromZip({ zip, fd, what }, wheelPath, options);
  } catch (error) {
    zip.close();
    throw error;
  }
}

async function installFromZip(archive: Archive, wheelPath: string, options: InstallWheelOptions): Promise<InstalledWheel> {
  const { scheme } = options;
  const { zip, what } = archive;
  const zipEntries = await readCentralDirectory(zip, what);

  // Files only; directory entries carry nothing a layer needs (parents are added).
  const files = new Map<string, Entry>();
  const topDirs = new Set<string>();
  for (const entry of zipEntries) {
    const name = entry.fileName;
    checkArchivePath(name, what);
    topDirs.add(name.split('/')[0]!);
    if (name.endsWith('/')) continue;
    const mode = (entry.externalFileAttributes >>> 16) & 0o170000;
    if (mode === 0o120000) throw new WheelError(`${what} is refused: entry ${JSON.stringify(name)} is a symbolic link`);
    const key = posix.normalize(name);
    if (files.has(key)) throw new WheelError(`${what} is refused: entry ${JSON.stringify(name)} appears twice`);
    files.set(key, entry);
  }

  const distInfos = [...topDirs].filter((dir) => dir.endsWith('.dist-info')).sort();
  if (distInfos.length === 0) throw new WheelError(`${what} is invalid: it has no .dist-info directory`);
  if (distInfos.length > 1) throw new WheelError(`${what} is invalid: it has several .dist-info directories (${distInfos.join(', ')})`);
  const distInfo = distInfos[0]!;
  const prefix = distInfo.slice(0, -'.dist-info'.length);
  const dataDir = `${prefix}.data`;

  const readSmall = async (path: string, required: boolean): Promise<Buffer | undefined> => {
    const entry = files.get(path);
    if (!entry) {
      if (required) throw new WheelError(`${what} is invalid: ${path} is missing`);
      return undefined;
    }
    return readEntry(archive, entry);
  };

  const recordBytes = (await readSmall(`${distInfo}/RECORD`, true))!;
  const wheelText = (await readSmall(`${distInfo}/WHEEL`, true))!.toString('utf8');
  const metadata = parseEmailHeaders((await readSmall(`${distInfo}/METADATA`, true))!.toString('utf8'));
  const name = metadata.get('name')?.[0];
  const version = metadata.get('version')?.[0];
  if (!name || !version) throw new WheelError(`${what} is invalid: METADATA has no Name or Version`);
  const wheelMeta = parseEmailHeaders(wheelText);
  const wheelVersion = wheelMeta.get('wheel-version')?.[0] ?? '';
  if (!/^1\.\d+$/.test(wheelVersion) && wheelVersion !== '0.1') throw new WheelError(`${what}: unsupported Wheel-Version ${JSON.stringify(wheelVersion)}`);
  const normalizedName = name.toLowerCase().replace(/[-_.]+/g, '-');

  const record = parseRecord(recordBytes.toString('utf8'), what);
  // Heal: keep RECORD entries whose file exists, add files RECORD does not list (no hash).
  const recordByPath = new Map<string, RecordEntry>();
  for (const entry of record) {
    const key = files.has(entry.path) ? entry.path : posix.normalize(entry.path);
    if (!files.has(key) || recordByPath.has(key)) continue;
    recordByPath.set(key, { ...entry, path: key });
  }
  for (const [path, entry] of files) {
    if (recordByPath.has(path)) continue;
    if (path === `${distInfo}/RECORD.jws` || path === `${distInfo}/RECORD.p7s`) continue;
    recordByPath.set(path, { path, hash: undefined, size: entry.uncompressedSize });
  }
  for (const [path, entry] of recordByPath) {
    const zipEntry = files.get(path)!;
    if (entry.hash !== undefined && entry.size !== undefined && entry.size !== zipEntry.uncompressedSize) {
      throw new WheelError(`${what} is refused: ${path} is ${zipEntry.uncompressedSize} bytes but RECORD says ${entry.size}`);
    }
    if (entry.hash !== undefined) parseRecordHash(entry.hash, path, what);
  }

  const entryPointsBytes = await readSmall(`${distInfo}/entry_points.txt`, false);
  const pythonMinor = Number(scheme.pythonMinor.split('.')[1]);
  const entryPoints = entryPointsBytes
    ? parseEntryPoints(entryPointsBytes.toString('utf8'), pythonMinor, what)
    : { console: [], gui: [] };
  const shebangLine = shebang(scheme.executable);

  const out: LayerEntry[] = [];
  const destinations = new Set<string>();
  const outRecord: RecordEntry[] = [];
  const relSite = (absolute: string): string => posix.relative(scheme.purelib, absolute);
  const add = (entry: LayerEntry): void => {
    if (destinations.has(entry.path)) throw new WheelError(`${what} is refused: two files install to /${entry.path}`);
    destinations.add(entry.path);
    out.push(entry);
  };
  const pyFiles: { imagePath: string; zipEntry: Entry; record: RecordEntry }[] = [];
  const strippedFiles = options.strip ? await stripElfFiles(archive, files, recordByPath, options, wheelPath) : new Map<string, StrippedFile>();
  const stripped: InstalledWheel['stripped'] = [];
  /** The layer entry of a wheel file, and its RECORD line: its stripped copy when it has one. */
  const fileOf = (zipEntry: Entry, zipPath: string, layerPath: string, mode: number, recordEntry: RecordEntry | undefined, destination: string): void => {
    const copy = strippedFiles.get(zipPath);
    if (!copy) {
      add(zipFileEntry(archive, zipEntry, layerPath, mode, recordEntry?.hash, zipPath));
      if (recordEntry) outRecord.push({ ...recordEntry, path: relSite(destination) });
      return;
    }
    const store = options.strip!.store;
    add({ type: 'file', path: layerPath, mode, size: copy.size, open: () => store.openRead(copy.digest) });
    if (recordEntry) outRecord.push({ path: relSite(destination), hash: `sha256=${Buffer.from(copy.digest.slice('sha256:'.length), 'hex').toString('base64url')}`, size: copy.size });
    stripped.push({ path: layerPath, before: copy.before, after: copy.size });
  };
  const entryPointNames = new Set([...entryPoints.console, ...entryPoints.gui].map((script) => script.name));

  for (const [path, zipEntry] of [...files].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const recordEntry = recordByPath.get(path);
    let destination: string;
    let kind: 'site' | 'scripts' | 'other' = 'site';
    if (path === dataDir || path.startsWith(`${dataDir}/`)) {
      const rest = path.slice(dataDir.length + 1);
      const slash = rest.indexOf('/');
      const sub = slash < 0 ? rest : rest.slice(0, slash);
      const inner = slash < 0 ? '' : rest.slice(slash + 1);
      if (inner === '') throw new WheelError(`${what} is invalid: unexpected file ${path} in ${dataDir}`);
      switch (sub) {
        case 'purelib':
          destination = `${scheme.purelib}/${inner}`;
          break;
        case 'platlib':
          destination = `${scheme.platlib}/${inner}`;
          break;
        case 'headers':
          destination = `${scheme.include}/${normalizedName}/${inner}`;
          kind = 'other';
          break;
        case 'data':
          destination = `${scheme.data}/${inner}`;
          kind = 'other';
          break;
        case 'scripts': {
          if (inner.includes('/')) throw new WheelError(`${what} is invalid: ${path} is in a directory inside ${dataDir}/scripts`);
          const matchName = inner.replace(/\.exe$/, '').replace(/-script\.py$/, '').replace(/\.pya$/, '');
          if (entryPointNames.has(matchName)) continue; // an entry point launcher replaces it; RECORD keeps the old line, as uv's does
          destination = `${scheme.scripts}/${inner}`;
          kind = 'scripts';
          break;
        }
        default:
          throw new WheelError(`${what} is invalid: unknown wheel data type ${JSON.stringify(sub)} in ${dataDir}`);
      }
    } else {
      destination = `${scheme.purelib}/${path}`;
    }
    destination = posix.normalize(destination);
    if (!destination.startsWith(`${scheme.root}/`)) {
      throw new WheelError(`${what} is refused: ${path} would be installed outside the venv (${destination})`);
    }
    if (destination.startsWith(`${scheme.scripts}/`) && destination.slice(scheme.scripts.length + 1).indexOf('/') < 0 && reservedScriptName(posix.basename(destination))) {
      throw new WheelError(`${what} is refused: ${path} would replace the venv's ${posix.basename(destination)}`);
    }
    const executable = ((zipEntry.externalFileAttributes >>> 16) & 0o111) !== 0;
    const layerPath = destination.slice(1);
    const expected = recordEntry?.hash;

    if (kind === 'scripts') {
      // `#!python` / `#!pythonw` first line: rewritten to the venv's interpreter (read whole; scripts are small).
      const head = await readHead(archive, zipEntry, 8);
      if (head.equals(Buffer.from('#!python'))) {
        const content = await readEntry(archive, zipEntry, expected, path);
        let end = 8;
        while (end < content.length && content[end] !== 0x0a && content[end] !== 0x0d) end++;
        // uv consumes the line break byte that ends the first line and writes '\n'.
        const rest = content.subarray(Math.min(end + 1, content.length));
        const rewritten = Buffer.concat([Buffer.from(`${shebangLine}\n`), rest]);
        add({ type: 'file', path: layerPath, mode: 0o755, size: rewritten.length, open: () => rewritten });
        if (recordEntry) outRecord.push({ path: relSite(destination), hash: recordHash(rewritten), size: rewritten.length });
        continue;
      }
      fileOf(zipEntry, path, layerPath, 0o755, recordEntry, destination);
    } else {
      fileOf(zipEntry, path, layerPath, executable ? 0o755 : 0o644, recordEntry, destination);
      if (kind === 'site' && destination.endsWith('.py')) pyFiles.push({ imagePath: destination, zipEntry, record: recordEntry ?? { path, hash: undefined, size: undefined } });
    }
  }
  // RECORD lines of .data/scripts files an entry point replaced stay as they were (uv leaves them).
  for (const [path, entry] of recordByPath) {
    if (path.startsWith(`${dataDir}/scripts/`)) {
      const inner = path.slice(`${dataDir}/scripts/`.length);
      const matchName = inner.replace(/\.exe$/, '').replace(/-script\.py$/, '').replace(/\.pya$/, '');
      if (!inner.includes('/') && entryPointNames.has(matchName)) outRecord.push(entry);
    }
  }

  const writeRecorded = (absolute: string, content: Buffer, mode: number): void => {
    const layerPath = absolute.slice(1);
    if (destinations.has(layerPath)) {
      // Replaces a file of the wheel (an entry point over a module file is possible but odd).
      const index = out.findIndex((entry) => entry.path === layerPath);
      out.splice(index, 1);
      destinations.delete(layerPath);
    }
    add({ type: 'file', path: layerPath, mode, size: content.length, open: () => content });
    outRecord.push({ path: relSite(absolute), hash: recordHash(content), size: content.length });
  };

  const launchers = (scripts: EntryPointScript[]): void => {
    for (const script of scripts) {
      const target = posix.normalize(`${scheme.scripts}/${script.name}`);
      if (!target.startsWith(`${scheme.scripts}/`) || target.slice(scheme.scripts.length + 1).includes('/')) {
        throw new WheelError(`${what} is refused: entry point ${JSON.stringify(script.name)} must resolve to a file within the scripts directory`);
      }
      if (reservedScriptName(script.name)) throw new WheelError(`${what} is refused: entry point ${JSON.stringify(script.name)} would replace the venv's interpreter link`);
      writeRecorded(target, Buffer.from(launcherScript(script, shebangLine), 'utf8'), 0o755);
    }
  };
  launchers(entryPoints.console);
  launchers(entryPoints.gui);

  const distInfoDir = `${scheme.purelib}/${distInfo}`;
  writeRecorded(`${distInfoDir}/REQUESTED`, Buffer.alloc(0), 0o644);
  if (options.directUrl !== undefined) writeRecorded(`${distInfoDir}/direct_url.json`, Buffer.from(options.directUrl, 'utf8'), 0o644);
  writeRecorded(`${distInfoDir}/INSTALLER`, Buffer.from(options.installer ?? 'uvimage', 'utf8'), 0o644);

  // RECORD itself: replaced by the rewritten one.
  const recordPath = `${distInfoDir}/RECORD`.slice(1);
  const recordIndex = out.findIndex((entry) => entry.path === recordPath);
  if (recordIndex >= 0) out.splice(recordIndex, 1);
  const recordText = Buffer.from(formatRecord(outRecord), 'utf8');
  out.push({ type: 'file', path: recordPath, mode: 0o644, size: recordText.length, open: () => recordText });

  if (options.bytecode) {
    for (const entry of await bytecodeEntries(archive, pyFiles, options, wheelPath)) {
      if (!destinations.has(entry.path)) {
        destinations.add(entry.path);
        out.push(entry);
      }
    }
  }

  const close = (): void => zip.close(); // idempotent in yauzl
  return { name, version, distInfo, entries: out, stripped, close };
}

// ---------------------------------------------------------------------------------------------
// Stripping.

interface StrippedRecord {
  /** Wheel path -> its stripped copy; the wheel's other files stay as they are. */
  files: Record<string, StrippedFile>;
}

/** Files never looked at for an ELF header: text the wheel format or Python itself defines. */
const textFile = /\.(py|pyi|pyc|pyx|pxd|pth|txt|md|rst|json|toml|cfg|ini|ya?ml|html|css|js|h|hpp|c|cc|cpp|typed)$/i;

/** The ELF files of a wheel that have debug information, stripped into the store (see the top of this file). */
async function stripElfFiles(archive: Archive, files: Map<string, Entry>, recordByPath: Map<string, RecordEntry>, options: InstallWheelOptions, wheelPath: string): Promise<Map<string, StrippedFile>> {
  const { store, reuse } = options.strip!;
  const key = JSON.stringify([stripFormat, options.wheelDigest ?? wheelPath]);
  if (options.wheelDigest && reuse !== false) {
    const cached = await store.readRecord<StrippedRecord>('stripped-elf', key);
    if (cached) {
      const copies = Object.entries(cached.files);
      if ((await Promise.all(copies.map(([, copy]) => store.hasIntact(copy.digest)))).every(Boolean)) return new Map(copies);
    }
  }
  const stripped = new Map<string, StrippedFile>();
  for (const [path, entry] of [...files].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (entry.uncompressedSize < 64 || textFile.test(path) || path.split('/')[0]!.endsWith('.dist-info')) continue;
    if (!isElfMagic(await readHead(archive, entry, 4))) continue;
    const copy = await stripEntry(archive, entry, recordByPath.get(path)?.hash, path, store);
    if (copy) stripped.set(path, copy);
  }
  if (options.wheelDigest) await store.writeRecord('stripped-elf', key, { files: Object.fromEntries(stripped) } satisfies StrippedRecord);
  return stripped;
}

/**
 * One ELF file stripped into the store, or undefined when it has nothing to strip (or is one
 * src/binary/strip.ts leaves alone). Its bytes are checked against RECORD before they are used:
 * small files in memory, large ones spooled to a temp file of the store (positional reads).
 */
async function stripEntry(archive: Archive, entry: Entry, expectedHash: string | undefined, recordPath: string, store: BlobStore): Promise<StrippedFile | undefined> {
  const size = entry.uncompressedSize;
  const strip = async (read: PositionalReader): Promise<StrippedFile | undefined> => {
    const result = await planStripDebug(read, size);
    if (!result.strip) return undefined;
    const blob = await store.writeStream(Readable.from(writeStripped(result.plan, read)), undefined, `${archive.what}: ${recordPath} stripped`);
    if (blob.size !== result.plan.size) throw new Error(`${archive.what}: ${recordPath} stripped to ${blob.size} bytes, planned ${result.plan.size}`);
    return { digest: blob.digest, size: blob.size, before: size };
  };
  if (size <= smallEntry) {
    const content = await readEntry(archive, entry, expectedHash, recordPath);
    return strip(async (position, length) => content.subarray(position, position + length));
  }
  const spool = store.tempPath('strip');
  try {
    await pipeline(await verifiedEntryStream(archive, entry, expectedHash, recordPath), createWriteStream(spool));
    const handle = await open(spool, 'r');
    try {
      return await strip(fileReader(handle));
    } finally {
      await handle.close();
    }
  } finally {
    await rm(spool, { force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Bytecode packs.

interface PycPack {
  digest: Digest;
  /** [imagePath, offset, size] */
  files: [string, number, number][];
}

const pycPackFormat = 1;

async function bytecodeEntries(
  archive: Archive,
  pyFiles: { imagePath: string; zipEntry: Entry; record: RecordEntry }[],
  options: InstallWheelOptions,
  wheelPath: string,
): Promise<FileEntry[]> {
  const bytecode = options.bytecode!;
  const { compiler, cacheTag, store } = bytecode;
  const key = JSON.stringify([pycPackFormat, options.wheelDigest ?? wheelPath, options.scheme.root, compiler.version, cacheTag]);
  const toEntries = (pack: PycPack, path: string | Buffer): FileEntry[] =>
    pack.files.map(([imagePath, offset, size]) => ({
      type: 'file',
      path: pycPathFor(imagePath, cacheTag).slice(1),
      mode: 0o644,
      size,
      open: () => (Buffer.isBuffer(path) ? path.subarray(offset, offset + size) : size === 0 ? Buffer.alloc(0) : createReadStream(path, { start: offset, end: offset + size - 1 })),
    }));

  const files: [string, number, number][] = [];
  let offset = 0;
  // Requests are pipelined (a window of sources in flight) so a compiler with several workers
  // keeps them all busy; results are taken in order, so the pack is the same every time.
  const compileAll = async function* (): AsyncGenerator<Buffer> {
    bytecode.stage?.expect(pyFiles.length);
    const task = bytecode.stage?.begin(options.filename);
    try {
      const window: { imagePath: string; pyc: Promise<Buffer | undefined> }[] = [];
      let next = 0;
      while (next < pyFiles.length || window.length) {
        while (next < pyFiles.length && window.length < 64) {
          const file = pyFiles[next++]!;
          const source = await readEntry(archive, file.zipEntry, file.record.hash, file.record.path);
          const pyc = compiler.compile(source, file.imagePath);
          pyc.catch(() => undefined); // observed below, in order
          window.push({ imagePath: file.imagePath, pyc });
        }
        const head = window.shift()!;
        const pyc = await head.pyc;
        task?.tick();
        if (!pyc) continue;
        files.push([head.imagePath, offset, pyc.length]);
        offset += pyc.length;
        yield pyc;
      }
      task?.end(0);
    } finally {
      // A generator left early (its reader failed) or a compile that threw ends here too.
      task?.fail();
    }
  };
  if (store) {
    const compileIntoStore = async (): Promise<PycPack> => ({ digest: (await store.writeStream(Readable.from(compileAll()))).digest, files });
    // Only a wheel known by its digest can be found again by key.
    const pack = options.wheelDigest
      ? await store.cached('pyc-pack', key, compileIntoStore, {
          blobs: (cached) => [cached.digest],
          valid: (record) => Array.isArray((record as PycPack).files),
          reuse: bytecode.reuse,
          hit: (cached) => bytecode.stage?.skip('compiled before', cached.files.length),
        })
      : await compileIntoStore();
    return toEntries(pack, store.blobPath(pack.digest));
  }
  const chunks: Buffer[] = [];
  for await (const chunk of compileAll()) chunks.push(chunk);
  return toEntries({ digest: 'sha256:' as Digest, files }, Buffer.concat(chunks));
}

// ---------------------------------------------------------------------------------------------
// Zip access.

function openZip(fd: number, what: string): Promise<ZipFile> {
  return new Promise((resolve, reject) => {
    yauzl.fromFd(fd, { lazyEntries: true, autoClose: false, decodeStrings: true, validateEntrySizes: true, strictFileNames: false }, (error, zip) => {
      if (error || !zip) reject(new WheelError(`${what} is not a valid zip archive: ${error?.message ?? 'unreadable'}`));
      else resolve(zip);
    });
  });
}

function readCentralDirectory(zip: ZipFile, what: string): Promise<Entry[]> {
  return new Promise((resolve, reject) => {
    const entries: Entry[] = [];
    zip.on('entry', (entry: Entry) => {
      entries.push(entry);
      zip.readEntry();
    });
    zip.once('end', () => {
      // Later errors belong to the entry streams, which report them; none may go unheard here.
      zip.on('error', () => {});
      resolve(entries);
    });
    zip.once('error', (error: Error) => {
      // yauzl refuses absolute paths, '..' segments and backslashes while reading names.
      reject(new WheelError(`${what} is refused: ${error.message}`));
    });
    zip.readEntry();
  });
}

function checkArchivePath(name: string, what: string): void {
  if (name.startsWith('/') || /^[a-zA-Z]:/.test(name) || name.includes('\\') || name.includes('\0')) {
    throw new WheelError(`${what} is refused: entry ${JSON.stringify(name)} has an absolute or invalid path`);
  }
  if (name.split('/').some((segment) => segment === '..')) throw new WheelError(`${what} is refused: entry ${JSON.stringify(name)} escapes the install directory`);
}

function openEntryStream(zip: ZipFile, entry: Entry, what: string): Promise<Readable> {
  return new Promise((resolve, reject) => {
    zip.openReadStream(entry, (error, stream) => {
      if (error || !stream) reject(new WheelError(`${what}: ${entry.fileName} cannot be read: ${error?.message ?? 'no stream'}`));
      else resolve(stream);
    });
  });
}

/** An open wheel: yauzl for the central directory and streams, a file descriptor for small entries. */
interface Archive {
  zip: ZipFile;
  fd: number;
  what: string;
}

/**
 * Entries up to this size are read with one positioned read and a synchronous inflate: for the
 * thousands of small files of a typical venv that is several times faster than a stream (and a
 * zlib stream object) per file. Larger entries stream.
 */
const smallEntry = 1024 * 1024;

/** A small entry's content, read and inflated synchronously. */
function readSmallSync(archive: Archive, entry: Entry): Buffer {
  const { fd, what } = archive;
  if (entry.generalPurposeBitFlag & 1) throw new WheelError(`${what} is refused: ${entry.fileName} is encrypted`);
  const header = Buffer.alloc(30);
  if (readSync(fd, header, 0, 30, entry.relativeOffsetOfLocalHeader) !== 30 || header.readUInt32LE(0) !== 0x04034b50) {
    throw new WheelError(`${what} is not a valid zip archive: bad local header for ${entry.fileName}`);
  }
  const start = entry.relativeOffsetOfLocalHeader + 30 + header.readUInt16LE(26) + header.readUInt16LE(28);
  const data = Buffer.allocUnsafe(entry.compressedSize);
  if (entry.compressedSize > 0 && readSync(fd, data, 0, entry.compressedSize, start) !== entry.compressedSize) {
    throw new WheelError(`${what} is not a valid zip archive: ${entry.fileName} is truncated`);
  }
  let content: Buffer;
  if (entry.compressionMethod === 0) content = data;
  else if (entry.compressionMethod === 8) {
    try {
      content = inflateRawSync(data, { maxOutputLength: Math.max(1, entry.uncompressedSize) });
    } catch (error) {
      throw new WheelError(`${what} is not a valid zip archive: ${entry.fileName} does not inflate (${(error as Error).message})`);
    }
  } else throw new WheelError(`${what}: ${entry.fileName} uses compression method ${entry.compressionMethod}, which is not supported`);
  if (content.length !== entry.uncompressedSize) throw new WheelError(`${what} is not a valid zip archive: ${entry.fileName} is ${content.length} bytes, its directory says ${entry.uncompressedSize}`);
  return content;
}

function verifyContent(content: Buffer, expectedHash: string | undefined, recordPath: string, what: string): Buffer {
  if (expectedHash !== undefined) {
    const { algorithm, digest } = parseRecordHash(expectedHash, recordPath, what);
    if (createHash(algorithm).update(content).digest('base64url') !== digest) throw recordMismatch(what, recordPath);
  }
  return content;
}

async function readEntry(archive: Archive, entry: Entry, expectedHash?: string, recordPath?: string): Promise<Buffer> {
  if (entry.uncompressedSize <= smallEntry) return verifyContent(readSmallSync(archive, entry), expectedHash, recordPath ?? entry.fileName, archive.what);
  const stream = await openEntryStream(archive.zip, entry, archive.what);
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return verifyContent(Buffer.concat(chunks), expectedHash, recordPath ?? entry.fileName, archive.what);
}

async function readHead(archive: Archive, entry: Entry, length: number): Promise<Buffer> {
  if (entry.uncompressedSize === 0) return Buffer.alloc(0);
  if (entry.uncompressedSize <= smallEntry) return readSmallSync(archive, entry).subarray(0, length);
  const stream = await openEntryStream(archive.zip, entry, archive.what);
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream) {
    chunks.push(chunk as Buffer);
    total += (chunk as Buffer).length;
    if (total >= length) break;
  }
  stream.destroy();
  return Buffer.concat(chunks).subarray(0, length);
}

/** A layer file entry whose content streams from the zip, verified against RECORD on the way. */
function zipFileEntry(archive: Archive, entry: Entry, path: string, mode: number, expectedHash: string | undefined, recordPath: string): FileEntry {
  const { what } = archive;
  if (entry.uncompressedSize <= smallEntry) {
    return { type: 'file', path, mode, size: entry.uncompressedSize, open: () => verifyContent(readSmallSync(archive, entry), expectedHash, recordPath, what) };
  }
  return { type: 'file', path, mode, size: entry.uncompressedSize, open: () => verifiedEntryStream(archive, entry, expectedHash, recordPath) };
}

/** A (large) entry's content as a stream that fails at its end unless it matches its RECORD hash. */
async function verifiedEntryStream(archive: Archive, entry: Entry, expectedHash: string | undefined, recordPath: string): Promise<Readable> {
  const { zip, what } = archive;
  const stream = await openEntryStream(zip, entry, what);
  if (expectedHash === undefined) return stream;
  const { algorithm, digest } = parseRecordHash(expectedHash, recordPath, what);
  const hash = createHash(algorithm);
  const check = new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      hash.update(chunk);
      callback(null, chunk);
    },
    flush(callback: TransformCallback) {
      callback(hash.digest('base64url') === digest ? null : recordMismatch(what, recordPath));
    },
  });
  stream.on('error', (error) => check.destroy(error));
  return stream.pipe(check);
}

function recordMismatch(what: string, path: string): WheelError {
  return new WheelError(`${what} is refused: ${path} does not match the hash in its RECORD`);
}

// ---------------------------------------------------------------------------------------------
// RECORD and email-header files.

const recordAlgorithms = new Set(['sha256', 'sha384', 'sha512']);

function parseRecordHash(value: string, path: string, what: string): { algorithm: string; digest: string } {
  const eq = value.indexOf('=');
  const algorithm = eq < 0 ? '' : value.slice(0, eq);
  const digest = value.slice(eq + 1).replace(/=+$/, '');
  if (!recordAlgorithms.has(algorithm) || !/^[A-Za-z0-9_-]+$/.test(digest)) {
    throw new WheelError(`${what} is refused: RECORD has an unusable hash ${JSON.stringify(value)} for ${path}`);
  }
  return { algorithm, digest };
}

/** `sha256=<urlsafe base64, no padding>` of some bytes, as RECORD writes it. */
export function recordHash(content: Buffer): string {
  return `sha256=${createHash('sha256').update(content).digest('base64url')}`;
}

/** RECORD as CSV (RFC 4180 quoting). A leading '/' is dropped from paths (some wheels have them, uv drops it). */
export function parseRecord(text: string, what: string): RecordEntry[] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  let i = 0;
  let fieldStarted = false;
  while (i < text.length) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i += 2;
          continue;
        }
        quoted = false;
      } else field += ch;
      i++;
      continue;
    }
    if (ch === '"' && !fieldStarted) {
      quoted = true;
      fieldStarted = true;
    } else if (ch === ',') {
      row.push(field);
      field = '';
      fieldStarted = false;
    } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++;
      row.push(field);
      if (row.length > 1 || row[0] !== '') rows.push(row);
      row = [];
      field = '';
      fieldStarted = false;
    } else {
      field += ch;
      fieldStarted = true;
    }
    i++;
  }
  if (field !== '' || row.length) {
    row.push(field);
    rows.push(row);
  }
  return rows.map((fields) => {
    if (fields.length < 1 || fields.length > 3) throw new WheelError(`${what} is invalid: RECORD has a malformed line ${JSON.stringify(fields.join(','))}`);
    const [path = '', hash = '', size = ''] = fields;
    if (size !== '' && !/^\d+$/.test(size)) throw new WheelError(`${what} is invalid: RECORD has a malformed size for ${path}`);
    return { path: path.replace(/^\/+/, ''), hash: hash === '' ? undefined : hash, size: size === '' ? undefined : Number(size) };
  });
}

/** RECORD as uv writes it: sorted by path, then hash, then size (None first); CSV, '\n' line ends. */
export function formatRecord(entries: RecordEntry[]): string {
  const compareOptional = <T extends string | number>(a: T | undefined, b: T | undefined): number =>
    a === b ? 0 : a === undefined ? -1 : b === undefined ? 1 : a < b ? -1 : 1;
  const byteCompare = (a: string, b: string): number => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
  const sorted = [...entries].sort((a, b) => byteCompare(a.path, b.path) || compareOptional(a.hash, b.hash) || compareOptional(a.size, b.size));
  const quote = (value: string): string => (/[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value);
  return sorted.map((entry) => `${quote(entry.path)},${quote(entry.hash ?? '')},${entry.size ?? ''}\n`).join('');
}

/** Headers of an email-format file (METADATA, WHEEL): lower-cased names to values, body ignored. */
function parseEmailHeaders(text: string): Map<string, string[]> {
  const headers = new Map<string, string[]>();
  let last: { name: string; values: string[] } | undefined;
  for (const line of text.split(/\r\n|\n/)) {
    if (line === '') break;
    if (/^[ \t]/.test(line) && last) {
      last.values[last.values.length - 1] = `${last.values[last.values.length - 1]}\n${line}`.trim();
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon);
    if (/\s/.test(name)) continue;
    const key = name.toLowerCase();
    const values = headers.get(key) ?? [];
    values.push(line.slice(colon + 1).trim());
    headers.set(key, values);
    last = { name: key, values };
  }
  return headers;
}
