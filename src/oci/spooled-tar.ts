/**
 * A tar archive read once, front to back, and served afterwards in any order.
 *
 * The layer writer sorts entries and opens each file lazily in sorted order, while a tar (inside
 * a .deb, a runtime's .tar.gz) can only be read in archive order. So the uncompressed tar is
 * spooled, as it streams past the tar parser, to one temp file; each member remembers its
 * content's offset in it, and opening a member is a ranged read. Memory stays at one chunk plus
 * per-member metadata whatever the size of the archive; disk use is the uncompressed archive,
 * removed by close(). (Re-reading the archive per file would cost one decompression per file.)
 *
 * Safety: member names must be relative without '..' segments; absolute names, '..', device
 * nodes and FIFOs, hardlinks to anything but an earlier file, and symlinks whose target leaves the
 * root are rejected with an ArchiveFormatError naming the archive and the path.
 */
import { createReadStream } from 'node:fs';
import { open, rm, type FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { UserError } from '../errors.js';
import type { LayerEntry } from './layer-entry.js';
import { readTar, type TarMember } from './tar-reader.js';

export class ArchiveFormatError extends UserError {}

/** One member, its path normalized and checked. */
export interface SpooledMember {
  /** Relative path as the caller maps it (e.g. merged-/usr, a stripped top folder). */
  path: string;
  /** Path as the archive has it, normalized but not mapped. */
  archivePath: string;
  type: 'file' | 'directory' | 'symlink';
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Symlink target as written. */
  target?: string;
  /** Offset of the content in the spool file. */
  offset: number;
}

export interface SpooledTar {
  label: string;
  members: SpooledMember[];
  /** Streams a file's content from the spool. */
  open(member: SpooledMember): Readable | Buffer;
  /** Reads `length` bytes of a file at `position` (for headers: ELF, pyc). */
  readRange(member: SpooledMember, position: number, length: number): Promise<Buffer>;
  readFile(member: SpooledMember): Promise<Buffer>;
  /** Removes the spool file. */
  close(): Promise<void>;
}

export interface SpoolTarOptions {
  /** Where to spool the uncompressed tar (a temp path in the store's tmp directory). */
  spoolPath: string;
  /** What the archive is, for messages ("python3.13_3.13.5-2_amd64.deb data.tar"). */
  label: string;
  /** Maps a checked archive path to the member's path; undefined drops the member. */
  mapPath?: (archivePath: string, type: SpooledMember['type']) => string | undefined;
}

/** Reads a whole (uncompressed) tar stream into a spool and returns its checked members. */
export async function spoolTar(source: AsyncIterable<Buffer>, options: SpoolTarOptions): Promise<SpooledTar> {
  const { spoolPath, label } = options;
  let spool: FileHandle | undefined = await open(spoolPath, 'w');
  const members: SpooledMember[] = [];
  try {
    const handle = spool;
    async function* tee(): AsyncGenerator<Buffer> {
      for await (const chunk of source) {
        await handle.write(chunk);
        yield chunk;
      }
    }
    const earlierFiles = new Map<string, Omit<SpooledMember, 'path'>>();
    for await (const member of readTar(tee(), { what: label })) {
      const checked = checkMember(member, label, earlierFiles);
      if (!checked) continue;
      if (checked.type === 'file') earlierFiles.set(checked.archivePath, checked);
      const path = options.mapPath ? options.mapPath(checked.archivePath, checked.type) : checked.archivePath;
      if (path === undefined) continue;
      members.push({ ...checked, path });
    }
    await spool.close();
    spool = undefined;
  } catch (error) {
    await spool?.close().catch(() => {});
    await rm(spoolPath, { force: true });
    throw error;
  }

  const readRange = async (member: SpooledMember, position: number, length: number): Promise<Buffer> => {
    const size = Math.max(0, Math.min(length, member.size - position));
    const buffer = Buffer.alloc(size);
    if (size === 0) return buffer;
    const handle = await open(spoolPath, 'r');
    try {
      await handle.read(buffer, 0, size, member.offset + position);
      return buffer;
    } finally {
      await handle.close();
    }
  };
  return {
    label,
    members,
    open: (member) =>
      member.size === 0 ? Buffer.alloc(0) : createReadStream(spoolPath, { start: member.offset, end: member.offset + member.size - 1 }),
    readRange,
    readFile: (member) => readRange(member, 0, member.size),
    close: () => rm(spoolPath, { force: true }),
  };
}

/** Layer entries for spooled members (all, or those `keep` accepts), contents served from the spool. */
export function spooledLayerEntries(archive: Pick<SpooledTar, 'members' | 'open'>, keep: (member: SpooledMember) => boolean = () => true): LayerEntry[] {
  const entries: LayerEntry[] = [];
  for (const member of archive.members) {
    if (!keep(member)) continue;
    const meta = { path: member.path, mode: member.mode, uid: member.uid, gid: member.gid };
    if (member.type === 'directory') entries.push({ ...meta, type: 'directory' });
    else if (member.type === 'symlink') entries.push({ ...meta, type: 'symlink', target: member.target! });
    else entries.push({ ...meta, type: 'file', size: member.size, open: () => archive.open(member) });
  }
  return entries;
}

/** Normalizes and checks one member; undefined for the archive's root directory itself. */
function checkMember(member: TarMember, label: string, earlierFiles: Map<string, Omit<SpooledMember, 'path'>>): Omit<SpooledMember, 'path'> | undefined {
  const archivePath = normalizeArchivePath(member.name, label);
  if (archivePath === undefined) return undefined;
  const base = { archivePath, mode: member.mode, uid: member.uid, gid: member.gid, offset: member.offset };
  switch (member.type) {
    case 'directory':
      return { ...base, type: 'directory', size: 0 };
    case 'file':
      return { ...base, type: 'file', size: member.size };
    case 'symlink':
      checkSymlinkTarget(archivePath, member.linkname, label);
      return { ...base, type: 'symlink', size: 0, target: member.linkname };
    case 'hardlink': {
      // A hardlink becomes a copy of its target's content (same offset in the spool): the target
      // may be filtered out or land in another layer, and a copy is always valid.
      const targetPath = normalizeArchivePath(member.linkname, label);
      const target = targetPath === undefined ? undefined : earlierFiles.get(targetPath);
      if (!target) {
        throw new ArchiveFormatError(
          `${label}: hardlink ${JSON.stringify(member.name)} points at ${JSON.stringify(member.linkname)}, which is not an earlier file of the archive`,
        );
      }
      return { ...base, type: 'file', size: target.size, offset: target.offset };
    }
    default:
      throw new ArchiveFormatError(
        `${label}: ${JSON.stringify(member.name)} is a device node or FIFO (tar type ${JSON.stringify(member.typeflag)}), which an image layer does not take from an archive`,
      );
  }
}

/** "./usr/bin/x" or "usr/bin/x/" → "usr/bin/x"; "." and "./" → undefined; absolute or '..' → error. */
export function normalizeArchivePath(name: string, label: string): string | undefined {
  if (name.startsWith('/')) throw new ArchiveFormatError(`${label}: member ${JSON.stringify(name)} has an absolute path; an archive may only hold paths relative to the root`);
  if (name.includes('\0')) throw new ArchiveFormatError(`${label}: member ${JSON.stringify(name)} contains a NUL byte`);
  const segments = name.split('/').filter((segment) => segment !== '' && segment !== '.');
  if (segments.includes('..')) throw new ArchiveFormatError(`${label}: member ${JSON.stringify(name)} has a '..' segment and would escape the root`);
  return segments.length === 0 ? undefined : segments.join('/');
}

/** A relative symlink target must not climb above the root from the link's directory. */
function checkSymlinkTarget(path: string, target: string, label: string): void {
  if (target === '' || target.includes('\0')) throw new ArchiveFormatError(`${label}: symlink ${JSON.stringify(path)} has an empty or invalid target`);
  if (target.startsWith('/')) {
    // Absolute targets resolve inside the container's root; an archive has no reason to write
    // '..' into one, so it is treated as hostile.
    if (target.split('/').includes('..')) throw new ArchiveFormatError(`${label}: symlink ${JSON.stringify(path)} -> ${JSON.stringify(target)} uses '..' in an absolute target`);
    return;
  }
  let depth = path.split('/').length - 1; // directories above the link
  for (const segment of target.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') depth--;
    else depth++;
    if (depth < 0) throw new ArchiveFormatError(`${label}: symlink ${JSON.stringify(path)} -> ${JSON.stringify(target)} escapes the root`);
  }
}
