/**
 * The streaming .deb reader: ar → control.tar.{xz,gz,zst,} and data.tar.{xz,gz,zst,} → layer
 * entries, without extracting anything to disk as a tree. data.tar is read through
 * src/oci/spooled-tar.ts (spooled once, files served from offsets, hostile paths refused).
 *
 * Compression: xz (Debian's archive, through src/debian/xz.ts), gzip (node:zlib), zstd (Ubuntu's
 * choice; Node 20 has no zstd, so `zstd -dc` is spawned when installed, else a clear error), and
 * uncompressed members.
 */
import { spawn } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { Duplex, Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { UserError } from '../errors.js';
import type { LayerEntry } from '../oci/layer-entry.js';
import { ArchiveFormatError, spoolTar, spooledLayerEntries, type SpooledMember, type SpooledTar } from '../oci/spooled-tar.js';
import { ByteReader, readTar } from '../oci/tar-reader.js';
import { parseStanza } from './control.js';
import { createXzDecompressor } from './xz.js';

/** One file of data.tar, its path checked and (on trixie) mapped to merged-/usr. */
export type DebFile = SpooledMember;

export interface OpenedDeb extends Pick<SpooledTar, 'open' | 'readFile' | 'readRange' | 'close'> {
  /** What the package is, for messages ("libc6_2.41-12_amd64.deb"). */
  label: string;
  /** The control file, as shipped. */
  controlText: string;
  control: Record<string, string>;
  /** control.tar's md5sums, when the package has one. */
  md5sums?: Buffer;
  files: DebFile[];
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
    throw new ArchiveFormatError(`${label}: ${why}`);
  };
  const reader = new ByteReader(source);
  const magic = await reader.read(8);
  if (magic.toString('latin1') !== '!<arch>\n') fail('not a Debian package (no ar archive signature)');

  let version: string | undefined;
  let control: { text: string; md5sums?: Buffer } | undefined;
  let data: SpooledTar | undefined;
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
        data = await spoolTar(decompress(name, reader.take(size), label), {
          spoolPath: options.spoolPath,
          label,
          mapPath: options.mergedUsr ? (path, type) => mergeUsrPath(path, type === 'directory') : undefined,
        });
      } else if (!name.startsWith('_')) {
        fail(`unexpected ar member ${JSON.stringify(name)}`);
      }
      // Whatever a reader above left unread (and the pad byte to an even offset) is skipped.
      const consumed = reader.position - start;
      await reader.skip(size - consumed + (size % 2));
    }
  } catch (error) {
    await data?.close();
    throw error;
  }
  if (!control) fail('has no control.tar member');
  if (!data) fail('has no data.tar member');
  const spooled = data!;
  return {
    label,
    controlText: control!.text,
    control: parseStanza(control!.text),
    md5sums: control!.md5sums,
    files: spooled.members,
    open: spooled.open,
    readFile: spooled.readFile,
    readRange: spooled.readRange,
    close: spooled.close,
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
      decoder = createXzDecompressor();
      break;
    case 'gz':
      decoder = createGunzip();
      break;
    case 'zst':
      decoder = spawnZstd(label);
      break;
    default:
      throw new ArchiveFormatError(`${label}: ${member} uses a compression uvimage does not read (${extension})`);
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
    throw new ArchiveFormatError(`${what} cannot be decompressed: ${(error as Error).message}`, { cause: error });
  }
}

/** zstd through the `zstd` program: Node 20 has no zstd decoder. */
export function spawnZstd(label: string): Duplex {
  const child = spawn('zstd', ['-dc'], { stdio: ['pipe', 'pipe', 'pipe'] });
  const duplex = Duplex.from({ writable: child.stdin, readable: child.stdout });
  let stderr = '';
  child.on('error', (error) =>
    duplex.destroy(new ArchiveFormatError(`${label} is compressed with zstd and the \`zstd\` program is not available to decompress it (${error.message}); install zstd`)),
  );
  child.stderr.on('data', (chunk) => (stderr += chunk));
  child.on('close', (code) => {
    if (code !== 0 && code !== null) duplex.destroy(new ArchiveFormatError(`${label}: zstd -dc failed: ${stderr.trim()}`));
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
  if (text === undefined) throw new ArchiveFormatError(`${label}: control.tar has no control file`);
  return { text, md5sums };
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

/** Layer entries for a package's files (all of them, or those `keep` accepts). */
export function debLayerEntries(deb: OpenedDeb, keep: (file: DebFile) => boolean = () => true): LayerEntry[] {
  return spooledLayerEntries({ members: deb.files, open: deb.open }, keep);
}
