/**
 * The streaming .deb reader: ar → control.tar.{xz,gz,zst,} and data.tar.{xz,gz,zst,} → layer
 * entries, without extracting anything to disk as a tree.
 *
 * How the layer writer is fed: it sorts entries and opens each file lazily in sorted order, while
 * a data.tar comes in archive order and can only be read front to back. So the decompressed
 * data.tar is spooled, as it streams past the tar parser, to one temp file in the store's tmp
 * directory; each file entry remembers its content's offset in that file and open() is a ranged
 * read stream. Memory stays at one chunk plus per-member metadata whatever the size of the
 * package; disk use is the uncompressed data of the packages of one layer, removed by close().
 * (Re-streaming the .deb per file would make a package of n files cost n decompressions.)
 *
 * Compression: xz (Debian's archive, through lzma-native), gzip (node:zlib), zstd (Ubuntu's
 * choice; Node 20 has no zstd, so `zstd -dc` is spawned when installed, else a clear error), and
 * uncompressed members.
 *
 * Safety: member names must be relative ("./x" or "x") without '..' segments; absolute names,
 * '..', device nodes and FIFOs, hardlinks to anything but an earlier file of the same package and
 * symlinks whose target leaves the root are rejected with DebFormatError naming package and path.
 */
import { spawn } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { open, rm, type FileHandle } from 'node:fs/promises';
import { Duplex, Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import lzma from 'lzma-native';
import { UserError } from '../errors.js';
import type { LayerEntry } from '../oci/layer-entry.js';
import { ByteReader, readTar, type TarMember } from './tar-reader.js';

export class DebFormatError extends UserError {}

/** One member of data.tar, path already normalized and checked. */
export interface DebFile {
  /** Relative path inside the image ("usr/bin/python3.13"), after the merged-/usr mapping if any. */
  path: string;
  /** Path as the package ships it, normalized but not mapped ("bin/sh"). */
  packagePath: string;
  type: 'file' | 'directory' | 'symlink';
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Symlink target as shipped. */
  target?: string;
  /** Offset of the content in the spool file. */
  offset: number;
}

export interface OpenedDeb {
  /** What the package is, for messages ("libc6_2.41-12_amd64.deb"). */
  label: string;
  /** The control file, as shipped. */
  controlText: string;
  control: Record<string, string>;
  /** control.tar's md5sums, when the package has one. */
  md5sums?: Buffer;
  files: DebFile[];
  /** Reads a file's content from the spool. */
  open(file: DebFile): Readable | Buffer;
  /** Reads a (small) file's content into memory. */
  readFile(file: DebFile): Promise<Buffer>;
  /** Removes the spool file. */
  close(): Promise<void>;
}

export interface ReadDebOptions {
  /** Where to spool the decompressed data.tar (a temp path in the store's tmp directory). */
  spoolPath: string;
  label: string;
  /** Rewrite bin/, sbin/, lib/, lib32/, lib64/, libx32/ into usr/ (merged-/usr, trixie). */
  mergedUsr?: boolean;
}

const usrMergedDirs = new Set(['bin', 'sbin', 'lib', 'lib32', 'lib64', 'libx32']);

/** Reads a .deb from a stream: control parsed in memory (it is small), data spooled. */
export async function readDeb(source: AsyncIterable<Buffer | Uint8Array | string>, options: ReadDebOptions): Promise<OpenedDeb> {
  const { label } = options;
  const fail = (why: string): never => {
    throw new DebFormatError(`${label}: ${why}`);
  };
  const reader = new ByteReader(source);
  const magic = await reader.read(8);
  if (magic.toString('latin1') !== '!<arch>\n') fail('not a Debian package (no ar archive signature)');

  let version: string | undefined;
  let control: { text: string; md5sums?: Buffer } | undefined;
  let data: { files: DebFile[] } | undefined;
  let spool: FileHandle | undefined;
  try {
    for (;;) {
      const header = await reader.read(60);
      if (header.length === 0) break;
      if (header.length < 60 || header.toString('latin1', 58, 60) !== '`\n') fail('malformed ar member header');
      let name = header.toString('latin1', 0, 16).trimEnd();
      if (name.endsWith('/')) name = name.slice(0, -1); // GNU ar terminates names with '/'
      const size = Number(header.toString('latin1', 48, 58).trim());
      if (!Number.isSafeInteger(size) || size < 0) fail(`bad size for ar member ${JSON.stringify(name)}`);
      const start = reader.position;
      if (name === 'debian-binary') {
        version = (await reader.read(size)).toString('latin1').trim();
        if (!/^2\.\d+$/.test(version)) fail(`unsupported package format version ${JSON.stringify(version)}`);
      } else if (/^control\.tar(\.(xz|gz|zst))?$/.test(name)) {
        if (!version) fail('control.tar comes before debian-binary');
        control = await readControl(decompress(name, reader.take(size), label), label);
      } else if (/^data\.tar(\.(xz|gz|zst|lzma|bz2))?$/.test(name)) {
        if (!control) fail('data.tar comes before control.tar');
        spool = await open(options.spoolPath, 'w');
        data = await readData(decompress(name, reader.take(size), label), spool, options);
        await spool.close();
        spool = undefined;
      } else if (!name.startsWith('_')) {
        fail(`unexpected ar member ${JSON.stringify(name)}`);
      }
      // Whatever a reader above left unread (and the pad byte to an even offset) is skipped.
      const consumed = reader.position - start;
      await reader.skip(size - consumed + (size % 2));
    }
  } catch (error) {
    await spool?.close().catch(() => {});
    await rm(options.spoolPath, { force: true });
    throw error;
  }
  if (!control) fail('has no control.tar member');
  if (!data) fail('has no data.tar member');
  const spoolPath = options.spoolPath;
  const open_ = (file: DebFile): Readable | Buffer =>
    file.size === 0 ? Buffer.alloc(0) : createReadStream(spoolPath, { start: file.offset, end: file.offset + file.size - 1 });
  return {
    label,
    controlText: control!.text,
    control: parseControl(control!.text),
    md5sums: control!.md5sums,
    files: data!.files,
    open: open_,
    async readFile(file) {
      const handle = await open(spoolPath, 'r');
      try {
        const buffer = Buffer.alloc(file.size);
        await handle.read(buffer, 0, file.size, file.offset);
        return buffer;
      } finally {
        await handle.close();
      }
    },
    close: () => rm(spoolPath, { force: true }),
  };
}

/** Opens a .deb file on disk (or in the store) and reads it. */
export function readDebFile(path: string, options: ReadDebOptions): Promise<OpenedDeb> {
  return readDeb(createReadStream(path, { highWaterMark: 256 * 1024 }), options);
}

function decompress(member: string, compressed: AsyncIterable<Buffer>, label: string): AsyncIterable<Buffer> {
  const input = Readable.from(compressed, { objectMode: false });
  const extension = member.slice(member.lastIndexOf('.') + 1);
  let decoder: Duplex;
  switch (extension) {
    case 'tar':
      return input;
    case 'xz':
    case 'lzma':
      decoder = lzma.createDecompressor();
      break;
    case 'gz':
      decoder = createGunzip();
      break;
    case 'zst':
      decoder = spawnZstd(label);
      break;
    default:
      throw new DebFormatError(`${label}: ${member} uses a compression uvimage does not read (${extension})`);
  }
  input.on('error', (error) => decoder.destroy(error));
  decoder.on('error', () => input.destroy());
  input.pipe(decoder);
  return wrapErrors(decoder, `${label}: ${member}`);
}

async function* wrapErrors(source: AsyncIterable<Buffer>, what: string): AsyncGenerator<Buffer> {
  try {
    for await (const chunk of source) yield chunk;
  } catch (error) {
    if (error instanceof UserError) throw error;
    throw new DebFormatError(`${what} cannot be decompressed: ${(error as Error).message}`, { cause: error });
  }
}

/** zstd through the `zstd` program: Node 20 has no zstd decoder. */
function spawnZstd(label: string): Duplex {
  const child = spawn('zstd', ['-dc'], { stdio: ['pipe', 'pipe', 'pipe'] });
  const duplex = Duplex.from({ writable: child.stdin, readable: child.stdout });
  let stderr = '';
  child.on('error', (error) =>
    duplex.destroy(new DebFormatError(`${label} is compressed with zstd and the \`zstd\` program is not available to decompress it (${error.message}); install zstd`)),
  );
  child.stderr.on('data', (chunk) => (stderr += chunk));
  child.on('close', (code) => {
    if (code !== 0 && code !== null) duplex.destroy(new DebFormatError(`${label}: zstd -dc failed: ${stderr.trim()}`));
  });
  return duplex;
}

async function readControl(source: AsyncIterable<Buffer>, label: string): Promise<{ text: string; md5sums?: Buffer }> {
  let text: string | undefined;
  let md5sums: Buffer | undefined;
  const wanted = (name: string) => name.replace(/^\.\//, '');
  for await (const member of readTar(source, { what: `${label} control.tar`, collect: (m) => ['control', 'md5sums'].includes(wanted(m.name)) })) {
    if (wanted(member.name) === 'control') text = member.content!.toString('utf8');
    if (wanted(member.name) === 'md5sums') md5sums = member.content;
  }
  if (text === undefined) throw new DebFormatError(`${label}: control.tar has no control file`);
  return { text, md5sums };
}

/** Tees the decompressed data.tar into the spool file while parsing it. */
async function readData(source: AsyncIterable<Buffer>, spool: FileHandle, options: ReadDebOptions): Promise<{ files: DebFile[] }> {
  async function* tee(): AsyncGenerator<Buffer> {
    for await (const chunk of source) {
      await spool.write(chunk);
      yield chunk;
    }
  }
  const files: DebFile[] = [];
  const byPackagePath = new Map<string, DebFile>();
  for await (const member of readTar(tee(), { what: `${options.label} data.tar` })) {
    const file = checkMember(member, options, byPackagePath);
    if (!file) continue;
    files.push(file);
    byPackagePath.set(file.packagePath, file);
  }
  return { files };
}

/** Normalizes and checks one data.tar member; undefined for the root directory itself. */
function checkMember(member: TarMember, options: ReadDebOptions, earlier: Map<string, DebFile>): DebFile | undefined {
  const { label } = options;
  const packagePath = normalizeMemberPath(member.name, label);
  if (packagePath === undefined) return undefined;
  const path = options.mergedUsr ? mergeUsrPath(packagePath, member.type === 'directory') : packagePath;
  const base = { path, packagePath, mode: member.mode, uid: member.uid, gid: member.gid, offset: member.offset };
  switch (member.type) {
    case 'directory':
      return { ...base, type: 'directory', size: 0 };
    case 'file':
      return { ...base, type: 'file', size: member.size };
    case 'symlink':
      checkSymlinkTarget(packagePath, member.linkname, label);
      return { ...base, type: 'symlink', size: 0, target: member.linkname };
    case 'hardlink': {
      // A hardlink becomes a copy of its target's content (same offset in the spool): the target
      // may be filtered out or land in another layer, and a copy is always valid.
      const targetPath = normalizeMemberPath(member.linkname, label);
      const target = targetPath === undefined ? undefined : earlier.get(targetPath);
      if (!target || target.type !== 'file') {
        throw new DebFormatError(`${label}: hardlink ${JSON.stringify(member.name)} points at ${JSON.stringify(member.linkname)}, which is not an earlier file of the package`);
      }
      return { ...base, type: 'file', size: target.size, offset: target.offset };
    }
    default:
      throw new DebFormatError(`${label}: ${JSON.stringify(member.name)} is a device node or FIFO (tar type ${JSON.stringify(member.typeflag)}), which an image layer does not take from a package`);
  }
}

/** "./usr/bin/x" or "usr/bin/x/" → "usr/bin/x"; "." and "./" → undefined; absolute or '..' → error. */
export function normalizeMemberPath(name: string, label: string): string | undefined {
  if (name.startsWith('/')) throw new DebFormatError(`${label}: member ${JSON.stringify(name)} has an absolute path; a package may only install paths relative to the root`);
  if (name.includes('\0')) throw new DebFormatError(`${label}: member ${JSON.stringify(name)} contains a NUL byte`);
  const segments = name.split('/').filter((segment) => segment !== '' && segment !== '.');
  if (segments.includes('..')) throw new DebFormatError(`${label}: member ${JSON.stringify(name)} has a '..' segment and would escape the root`);
  return segments.length === 0 ? undefined : segments.join('/');
}

/** The merged-/usr location of a path: bin/x → usr/bin/x, lib64/x → usr/lib64/x; the top directories themselves too. */
export function mergeUsrPath(path: string, isDirectory: boolean): string {
  const slash = path.indexOf('/');
  const top = slash === -1 ? path : path.slice(0, slash);
  if (!usrMergedDirs.has(top)) return path;
  // A symlink or file named exactly "bin" (base-files' own merged-/usr links) stays where it is.
  if (slash === -1 && !isDirectory) return path;
  return `usr/${path}`;
}

/** A relative symlink target must not climb above the root from the link's directory. */
function checkSymlinkTarget(path: string, target: string, label: string): void {
  if (target === '' || target.includes('\0')) throw new DebFormatError(`${label}: symlink ${JSON.stringify(path)} has an empty or invalid target`);
  if (target.startsWith('/')) {
    // Absolute targets resolve inside the container's root; '..' above '/' stays at '/', but a
    // package has no reason to write one, so it is treated as hostile.
    if (target.split('/').includes('..')) throw new DebFormatError(`${label}: symlink ${JSON.stringify(path)} -> ${JSON.stringify(target)} uses '..' in an absolute target`);
    return;
  }
  let depth = path.split('/').length - 1; // directories above the link
  for (const segment of target.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') depth--;
    else depth++;
    if (depth < 0) throw new DebFormatError(`${label}: symlink ${JSON.stringify(path)} -> ${JSON.stringify(target)} escapes the root`);
  }
}

/** A deb822 stanza: fields by name (continuation lines joined with '\n'). */
export function parseControl(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  let current: string | undefined;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (/^[ \t]/.test(line) && current) {
      fields[current] += `\n${line}`;
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    current = line.slice(0, colon);
    fields[current] = line.slice(colon + 1).trim();
  }
  return fields;
}

/** Layer entries for a package's files (all of them, or those `keep` accepts). */
export function debLayerEntries(deb: OpenedDeb, keep: (file: DebFile) => boolean = () => true): LayerEntry[] {
  const entries: LayerEntry[] = [];
  for (const file of deb.files) {
    if (!keep(file)) continue;
    const meta = { path: file.path, mode: file.mode, uid: file.uid, gid: file.gid };
    if (file.type === 'directory') entries.push({ ...meta, type: 'directory' });
    else if (file.type === 'symlink') entries.push({ ...meta, type: 'symlink', target: file.target! });
    else entries.push({ ...meta, type: 'file', size: file.size, open: () => deb.open(file) });
  }
  return entries;
}
