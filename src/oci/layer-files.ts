/**
 * What the closure check needs of a layer (src/pipeline/closure.ts): its paths, symlinks and
 * whiteouts, the ELF facts of its ELF files, and the small text files that say who owns what.
 * Kept in the store as a `layer-files` record by the layer's diff_id. Two ways to the same
 * record, sharing the per-member rules below: the layer writer collects it as it writes a layer
 * (src/oci/layer-writer.ts), so a layer uvimage built is never read again to be checked; the
 * closure check reads any other layer (a pulled base's, one from before) back from its blob.
 */
import { posix } from 'node:path';
import { isElfMagic, readElf, type ElfInfo, type PositionalReader } from '../binary/elf.js';
import { glibcLoadingSymbols } from '../facts/glibc.js';

/** Bump when what a layer-files record holds changes. */
export const layerFilesFormat = 2;

/** One layer as the closure check sees it. */
export interface LayerFiles {
  format: number;
  /** Each member: path (no leading '/'), 'f' file, 'd' directory, 'l' symlink (with its target). */
  entries: [string, 'f' | 'd' | 'l', string?][];
  whiteouts: string[];
  opaque: string[];
  elf: Record<string, ElfInfo>;
  /** Files that say who owns what, and the loader's configuration: status.d md5sums, RECORD, ld.so.conf, os-release. */
  texts: Record<string, string>;
}

/** The record's key text: the layer's diff_id (what is in it), and the record's format. */
export function layerFilesKey(diffId: string): string {
  return JSON.stringify({ format: layerFilesFormat, diffId });
}

export function emptyLayerFiles(): LayerFiles {
  return { format: layerFilesFormat, entries: [], whiteouts: [], opaque: [], elf: {}, texts: {} };
}

const ownerText = /^(var\/lib\/dpkg\/status\.d\/[^/]+\.md5sums|.*\.dist-info\/RECORD|etc\/ld\.so\.conf(\.d\/[^/]+)?|etc\/ld\.so\.cache|(usr\/lib|etc)\/os-release)$/;
const maxText = 4 * 1024 * 1024;
/** The smallest ELF file (a 32-bit ELF header). */
const minElf = 52;

/** A member of a layer, as the tar has it: path without a leading '/', type, size, link target. */
export interface LayerMember {
  path: string;
  type: 'file' | 'directory' | 'symlink' | 'hardlink' | string;
  size: number;
  target?: string;
}

/** Whether a file member's content is wanted at all: a text the record keeps, or possibly ELF. */
export function wantsContent(member: LayerMember): boolean {
  return member.type === 'file' && (member.size >= minElf || isOwnerText(member) || member.path.endsWith('ld.so.cache'));
}

function isOwnerText(member: LayerMember): boolean {
  return ownerText.test(member.path) && member.size < maxText;
}

/**
 * Adds one member to the record. `content` reads a file member's bytes (all of them, or a range)
 * and is only called for members `wantsContent` says yes to.
 */
export async function addLayerMember(files: LayerFiles, member: LayerMember, content?: { all(): Promise<Buffer>; range: PositionalReader }): Promise<void> {
  const base = posix.basename(member.path);
  const dir = posix.dirname(member.path);
  if (base === '.wh..wh..opq') {
    files.opaque.push(dir === '.' ? '' : dir);
    return;
  }
  if (base.startsWith('.wh.')) {
    if (!base.startsWith('.wh..wh.')) files.whiteouts.push(dir === '.' ? base.slice(4) : `${dir}/${base.slice(4)}`);
    return;
  }
  if (member.type === 'symlink') files.entries.push([member.path, 'l', member.target]);
  else files.entries.push([member.path, member.type === 'directory' ? 'd' : 'f']);
  if (member.type !== 'file') return;
  // ld.so.cache is binary: only that the image has one matters (the loader then reads ld.so.conf's directories).
  if (member.path.endsWith('ld.so.cache')) files.texts[member.path] = '';
  if (!content) return;
  if (isOwnerText(member) && !member.path.endsWith('ld.so.cache')) files.texts[member.path] = (await content.all()).toString('utf8');
  if (member.size < minElf) return;
  const elf = await readElf((position, length) => content.range(position, Math.max(0, Math.min(length, member.size - position))), { watchedImports: glibcLoadingSymbols });
  if (elf) files.elf[member.path] = elf;
}

/** A positional reader over bytes in memory. */
export function bufferReader(bytes: Buffer): PositionalReader {
  return async (position, length) => bytes.subarray(position, position + length);
}

/** The most bytes of one file held in memory to read its ELF facts while a layer is written. */
const maxHeld = 64 * 1024 * 1024;

/**
 * The record of a layer being written, member by member in tar order: directories and links at
 * once, files from their bytes as they stream past. A file is held in memory only while it may
 * be ELF or is a text the record keeps, and only up to maxHeld: an ELF file larger than that
 * leaves the record incomplete, and the closure check then reads that layer back from its blob.
 */
export class LayerFilesCollector {
  readonly files = emptyLayerFiles();
  incomplete = false;
  private member?: LayerMember;
  private chunks: Buffer[] = [];
  private held = 0;
  private holding = false;
  private sniffed = false;

  async add(member: LayerMember): Promise<void> {
    if (member.type !== 'file') await addLayerMember(this.files, member);
    else this.startFile(member);
  }

  private startFile(member: LayerMember): void {
    this.member = member;
    this.chunks = [];
    this.held = 0;
    this.holding = wantsContent(member);
    this.sniffed = false;
  }

  /** A chunk of the current file's bytes, in order. */
  data(chunk: Buffer): void {
    if (!this.holding) return;
    this.chunks.push(chunk);
    this.held += chunk.length;
    const member = this.member!;
    // Once its first four bytes are known: a file that is not ELF is only held as a kept text.
    if (!this.sniffed && this.held >= 4) {
      this.sniffed = true;
      if (!isOwnerText(member) && !isElfMagic(Buffer.concat(this.chunks))) return this.drop();
    }
    if (this.held > maxHeld) {
      this.incomplete = true;
      this.drop();
    }
  }

  /** The current file's bytes are all there. */
  async endFile(): Promise<void> {
    const member = this.member!;
    this.member = undefined;
    const bytes = this.holding ? Buffer.concat(this.chunks, this.held) : undefined;
    this.drop();
    await addLayerMember(this.files, member, bytes ? { all: async () => bytes, range: bufferReader(bytes) } : undefined);
  }

  private drop(): void {
    this.holding = false;
    this.chunks = [];
    this.held = 0;
  }
}
