/**
 * Debug information dropped from an ELF executable or shared object, as `strip --strip-debug`
 * drops it, without binutils and the same for every architecture.
 *
 * What goes (binutils 2.40: objcopy.c `is_strip_section` with STRIP_DEBUG, which removes the
 * sections BFD marks SEC_DEBUGGING, and bfd/elf.c `_bfd_elf_make_section_from_shdr`, which marks
 * by name the non-allocated sections named .debug*, .gnu.debuglto_.debug_*,
 * .gnu.linkonce.wi.*, .zdebug*, .line*, .stab* and .gdb_index): those sections, the relocation
 * sections that apply to them, and from .symtab the symbols objcopy's `filter_symbols` drops
 * for --strip-debug: local STT_FILE and STT_SECTION symbols (BFD's BSF_DEBUGGING ones) and
 * symbols defined in a removed section. What stays, as with binutils: .symtab and .strtab (so
 * backtraces keep their function names), .comment, .gnu_debuglink, notes, every allocated byte.
 * Unlike binutils, .strtab is kept as it is (the names of the dropped symbols stay in it: a few
 * bytes, and rebuilding it would mean holding every name in memory).
 *
 * How: every byte up to the end of the last allocated section or segment is copied as it is
 * (program headers, and so what the loader maps, do not move); the non-allocated sections that
 * follow are laid out again after it, in their order, without the removed ones, each at its
 * alignment; then a new .shstrtab (names of the kept sections only) and the section header
 * table, with offsets, sizes, names and sh_link/sh_info indexes rewritten, and the ELF header's
 * e_shoff, e_shnum and e_shstrndx. The plan is made from the headers, .shstrtab and one pass
 * over .symtab; the output streams from positional reads, so memory is bounded by the section
 * header table, not the file. The same input always gives the same bytes.
 *
 * Files it leaves as they are, with the reason: not ELF, big-endian, relocatable objects (their
 * relocations name symbols by index), extended section numbering, section groups, relocations
 * kept in non-allocated sections (--emit-relocs), data after the last section (an appended
 * payload, as PyInstaller writes), a removed section before an allocated one in the table.
 */
import { cString, elfFields, parseElfHeader, parseSectionHeaders, readProgramHeaders, symbolFields, type PositionalReader, type SectionHeader as Section } from './elf.js';

/** Bumped whenever the same input would strip to other bytes, so copies stripped before are not reused. */
export const stripFormat = 1;

/** One piece of the stripped file, in order. */
type Piece =
  | { kind: 'copy'; offset: number; length: number }
  | { kind: 'bytes'; bytes: Buffer }
  | { kind: 'zeros'; length: number }
  | { kind: 'symtab'; offset: number; count: number; entsize: number; keep: SymbolFilter };

export interface StripPlan {
  /** Size of the stripped file. */
  size: number;
  /** Size of the input. */
  inputSize: number;
  /** The sections removed, with their sizes in the input. */
  removed: { name: string; size: number }[];
  /** Symbols dropped from .symtab. */
  droppedSymbols: number;
  pieces: Piece[];
}

export type StripResult = { strip: true; plan: StripPlan } | { strip: false; reason: string };


const SHT_SYMTAB = 2;
const SHT_STRTAB = 3;
const SHT_RELA = 4;
const SHT_NOBITS = 8;
const SHT_REL = 9;
const SHT_GROUP = 17;
const SHT_SYMTAB_SHNDX = 18;
const SHF_ALLOC = 0x2;
const SHF_INFO_LINK = 0x40;
const SHN_LORESERVE = 0xff00;
const SHN_XINDEX = 0xffff;
const ET_EXEC = 2;
const ET_DYN = 3;
const STB_LOCAL = 0;
const STT_SECTION = 3;
const STT_FILE = 4;

/** bfd/elf.c's SEC_DEBUGGING names (for sections without SHF_ALLOC). */
export function isDebugSectionName(name: string): boolean {
  return (
    name.startsWith('.debug') ||
    name.startsWith('.gnu.debuglto_.debug_') ||
    name.startsWith('.gnu.linkonce.wi.') ||
    name.startsWith('.zdebug') ||
    name.startsWith('.line') ||
    name.startsWith('.stab') ||
    name === '.gdb_index'
  );
}

/** Decides for one symbol (its st_info and st_shndx) whether it stays, and its new st_shndx. */
type SymbolFilter = (info: number, shndx: number) => number | undefined;

const symbolChunk = 4096;

/** What stripping `read` (a file of `fileSize` bytes) would do, or why it would leave the file as it is. */
export async function planStripDebug(read: PositionalReader, fileSize: number): Promise<StripResult> {
  const leave = (reason: string): StripResult => ({ strip: false, reason });
  const header = parseElfHeader(await read(0, 64));
  if (!header) return leave('not an ELF file');
  if (!header.littleEndian) return leave('big-endian ELF is not supported');
  if (header.type !== ET_EXEC && header.type !== ET_DYN) return leave(header.type === 1 ? 'a relocatable object' : `ELF type ${header.type}`);
  if (header.shoff === 0) return leave('no section header table');
  if (header.shnum === 0 || header.shstrndx === SHN_XINDEX) return leave('extended section numbering');
  const fields = elfFields(header.bits, header.littleEndian);
  const shentsize = header.bits === 64 ? 64 : 40;
  if (header.shentsize !== shentsize) return leave(`unexpected section header size ${header.shentsize}`);
  const tableSize = header.shnum * shentsize;
  if (header.shoff + tableSize > fileSize) return leave('the section header table is truncated');
  const table = await read(header.shoff, tableSize);
  const sections = parseSectionHeaders(table, header, fields);
  const names = sections[header.shstrndx];
  if (!names || names.type !== SHT_STRTAB || names.offset + names.size > fileSize || names.size > 16 * 1024 * 1024) return leave('no usable .shstrtab');
  const nameTable = await read(names.offset, names.size);
  for (const section of sections) section.name = cString(nameTable, section.nameOffset);

  // What goes: debug sections, and relocations that apply to a removed section.
  const removed = new Set<number>();
  for (const section of sections) if (section.index > 0 && (section.flags & SHF_ALLOC) === 0 && isDebugSectionName(section.name)) removed.add(section.index);
  for (const section of sections) {
    if ((section.type === SHT_REL || section.type === SHT_RELA) && (section.flags & SHF_ALLOC) === 0 && removed.has(section.info)) removed.add(section.index);
  }
  if (removed.size === 0) return leave('no debug sections');

  const kept = sections.filter((section) => !removed.has(section.index));
  if (sections.some((section) => section.type === SHT_SYMTAB_SHNDX || section.type === SHT_GROUP)) return leave('section groups or extended section indexes');
  const symtabs = kept.filter((section) => section.type === SHT_SYMTAB);
  if (symtabs.length > 1) return leave('more than one .symtab');
  const symtab = symtabs[0];
  const lastAllocated = Math.max(...kept.filter((section) => (section.flags & SHF_ALLOC) !== 0).map((section) => section.index), 0);
  if ([...removed].some((index) => index < lastAllocated)) return leave('a debug section comes before an allocated one in the section table');
  for (const section of kept) {
    if (section.index === 0) continue;
    if (section.link !== 0 && removed.has(section.link)) return leave(`${section.name} links to a removed section`);
    const infoIsIndex = section.type === SHT_REL || section.type === SHT_RELA || (section.flags & SHF_INFO_LINK) !== 0;
    if (infoIsIndex && section.info !== 0 && removed.has(section.info)) return leave(`${section.name} applies to a removed section`);
    if (symtab && (section.type === SHT_REL || section.type === SHT_RELA) && section.link === symtab.index) return leave(`${section.name} relocates through .symtab (--emit-relocs)`);
  }

  // The part that stays where it is: headers, segments, allocated sections, and any section
  // that begins inside that range.
  const programs = await readProgramHeaders(read, header);
  let fixedEnd = Math.max(header.ehsize, header.phoff + header.phnum * header.phentsize);
  for (const program of programs) fixedEnd = Math.max(fixedEnd, program.offset + program.filesz);
  for (const section of kept) if ((section.flags & SHF_ALLOC) !== 0 && section.type !== SHT_NOBITS) fixedEnd = Math.max(fixedEnd, section.offset + section.size);
  const byOffset = [...sections].filter((section) => section.index > 0).sort((a, b) => a.offset - b.offset || a.index - b.index);
  for (const section of byOffset) if (section.offset < fixedEnd && section.type !== SHT_NOBITS) fixedEnd = Math.max(fixedEnd, section.offset + section.size);
  if (fixedEnd > fileSize) return leave('a section or segment lies beyond the end of the file');
  if (symtab && symtab.offset < fixedEnd) return leave('.symtab lies among the allocated sections');

  // Nothing but padding may lie between the sections after that range, and nothing after the last.
  const tail = byOffset.filter((section) => section.offset >= fixedEnd && section.type !== SHT_NOBITS && section.size > 0);
  const spans = [...tail.map((section) => ({ start: section.offset, end: section.offset + section.size, align: section.addralign })), { start: header.shoff, end: header.shoff + tableSize, align: 8 }].sort(
    (a, b) => a.start - b.start,
  );
  let covered = fixedEnd;
  for (const span of spans) {
    if (span.start < fixedEnd) continue; // the old section header table inside the kept range
    if (span.start < covered) return leave('overlapping sections');
    if (span.start - covered >= Math.max(16, span.align)) return leave(`${span.start - covered} bytes outside any section at offset ${covered}`);
    covered = span.end;
  }
  if (covered < fileSize) return leave(`${fileSize - covered} bytes after the last section (an appended payload?)`);

  // .symtab: which symbols stay (one pass, in chunks).
  const newIndex = new Map<number, number>();
  kept.forEach((section, position) => newIndex.set(section.index, position));
  const keep: SymbolFilter = (info, shndx) => {
    if (shndx !== 0 && shndx < SHN_LORESERVE && removed.has(shndx)) return undefined;
    const bind = info >> 4;
    const type = info & 0xf;
    if (bind === STB_LOCAL && (type === STT_SECTION || type === STT_FILE)) return undefined;
    return shndx !== 0 && shndx < SHN_LORESERVE ? newIndex.get(shndx)! : shndx;
  };
  let keptSymbols = 0;
  let keptLocals = 0;
  let droppedSymbols = 0;
  if (symtab) {
    const entsize = header.bits === 64 ? 24 : 16;
    if (symtab.entsize !== entsize || symtab.size % entsize !== 0) return leave('unexpected .symtab entry size');
    const count = symtab.size / entsize;
    for (let first = 0; first < count; first += symbolChunk) {
      const n = Math.min(symbolChunk, count - first);
      const chunk = await read(symtab.offset + first * entsize, n * entsize);
      if (chunk.length < n * entsize) return leave('.symtab is truncated');
      for (let i = 0; i < n; i++) {
        const index = first + i;
        const { info, shndx } = symbolFields(chunk, i * entsize, header.bits, fields);
        const stays = index === 0 || keep(info, shndx) !== undefined;
        if (stays) {
          keptSymbols++;
          if (index < symtab.info) keptLocals++;
        } else droppedSymbols++;
      }
    }
  }

  // The new .shstrtab: the kept sections' names, in section order, each once.
  const nameOffsets = new Map<string, number>();
  const nameParts: Buffer[] = [Buffer.alloc(1)];
  let nameLength = 1;
  for (const section of kept) {
    if (section.index === 0 || section.name === '' || nameOffsets.has(section.name)) continue;
    nameOffsets.set(section.name, nameLength);
    const bytes = Buffer.from(`${section.name}\0`, 'utf8');
    nameParts.push(bytes);
    nameLength += bytes.length;
  }
  const newNames = Buffer.concat(nameParts);

  // Layout of what follows the kept range.
  const pieces: Piece[] = [];
  const headerBytes = Buffer.from(await read(0, header.ehsize));
  pieces.push({ kind: 'bytes', bytes: headerBytes }, { kind: 'copy', offset: header.ehsize, length: fixedEnd - header.ehsize });
  let cursor = fixedEnd;
  const placed = new Map<number, { offset: number; size: number }>();
  const pad = (align: number): void => {
    const aligned = align > 1 ? Math.ceil(cursor / align) * align : cursor;
    if (aligned > cursor) pieces.push({ kind: 'zeros', length: aligned - cursor });
    cursor = aligned;
  };
  const moved = kept.filter((section) => section.index > 0 && (section.offset >= fixedEnd || section.index === names.index)).sort((a, b) => {
    // .shstrtab inside the kept range is written anew after the others.
    const at = (section: Section) => (section.offset >= fixedEnd ? section.offset : Number.MAX_SAFE_INTEGER);
    return at(a) - at(b) || a.index - b.index;
  });
  for (const section of moved) {
    if ((section.flags & SHF_ALLOC) !== 0) continue; // an allocated NOBITS section after the kept range: nothing to move
    pad(section.addralign);
    if (section.type === SHT_NOBITS) {
      placed.set(section.index, { offset: cursor, size: section.size });
      continue;
    }
    if (section.index === names.index) {
      pieces.push({ kind: 'bytes', bytes: newNames });
      placed.set(section.index, { offset: cursor, size: newNames.length });
      cursor += newNames.length;
    } else if (section === symtab) {
      const size = keptSymbols * section.entsize;
      pieces.push({ kind: 'symtab', offset: section.offset, count: section.size / section.entsize, entsize: section.entsize, keep });
      placed.set(section.index, { offset: cursor, size });
      cursor += size;
    } else {
      pieces.push({ kind: 'copy', offset: section.offset, length: section.size });
      placed.set(section.index, { offset: cursor, size: section.size });
      cursor += section.size;
    }
  }
  pad(header.bits === 64 ? 8 : 4);
  const shoff = cursor;

  // The section header table.
  const newTable = Buffer.alloc(kept.length * shentsize);
  kept.forEach((section, position) => {
    const entry = newTable.subarray(position * shentsize, (position + 1) * shentsize);
    section.raw.copy(entry);
    if (section.index === 0) return;
    const at = header.bits === 64 ? { offset: 24, size: 32, link: 40, info: 44 } : { offset: 16, size: 20, link: 24, info: 28 };
    fields.writeU32(entry, section.name === '' ? 0 : nameOffsets.get(section.name)!, 0);
    const where = placed.get(section.index);
    if (where) {
      fields.writeWord(entry, where.offset, at.offset);
      fields.writeWord(entry, where.size, at.size);
    }
    if (section.link !== 0 && section.link < sections.length) fields.writeU32(entry, newIndex.get(section.link)!, at.link);
    const infoIsIndex = section.type === SHT_REL || section.type === SHT_RELA || (section.flags & SHF_INFO_LINK) !== 0;
    if (infoIsIndex && section.info !== 0 && section.info < sections.length) fields.writeU32(entry, newIndex.get(section.info)!, at.info);
    if (section === symtab) fields.writeU32(entry, keptLocals, at.info);
  });
  pieces.push({ kind: 'bytes', bytes: newTable });
  cursor += newTable.length;

  const ehdr = header.bits === 64 ? { shoff: 40, shnum: 60, shstrndx: 62 } : { shoff: 32, shnum: 48, shstrndx: 50 };
  fields.writeWord(headerBytes, shoff, ehdr.shoff);
  fields.writeU16(headerBytes, kept.length, ehdr.shnum);
  fields.writeU16(headerBytes, newIndex.get(names.index)!, ehdr.shstrndx);

  const removedSections = sections.filter((section) => removed.has(section.index)).map((section) => ({ name: section.name, size: section.type === SHT_NOBITS ? 0 : section.size }));
  return { strip: true, plan: { size: cursor, inputSize: fileSize, removed: removedSections, droppedSymbols, pieces } };
}

/** The stripped file's bytes, in order, read as they are needed (at most 1 MiB at a time). */
export async function* writeStripped(plan: StripPlan, read: PositionalReader): AsyncGenerator<Buffer> {
  const fields = elfFields(64, true); // little-endian (planStripDebug refuses the others); u16 fields only
  const step = 1024 * 1024;
  const exact = async (offset: number, length: number): Promise<Buffer> => {
    const bytes = await read(offset, length);
    if (bytes.length !== length) throw new Error(`the file changed while it was being stripped (short read at ${offset})`);
    return bytes;
  };
  for (const piece of plan.pieces) {
    if (piece.kind === 'bytes') yield piece.bytes;
    else if (piece.kind === 'zeros') yield Buffer.alloc(piece.length);
    else if (piece.kind === 'copy') {
      for (let done = 0; done < piece.length; done += step) yield await exact(piece.offset + done, Math.min(step, piece.length - done));
    } else {
      const { entsize, count, keep } = piece;
      const symbolBits = entsize === 24 ? 64 : 32;
      for (let first = 0; first < count; first += symbolChunk) {
        const n = Math.min(symbolChunk, count - first);
        const chunk = await exact(piece.offset + first * entsize, n * entsize);
        const out: Buffer[] = [];
        for (let i = 0; i < n; i++) {
          const entry = chunk.subarray(i * entsize, (i + 1) * entsize);
          if (first + i === 0) {
            out.push(entry);
            continue;
          }
          const { info, shndx } = symbolFields(chunk, i * entsize, symbolBits, fields);
          const index = keep(info, shndx);
          if (index === undefined) continue;
          const copy = Buffer.from(entry);
          fields.writeU16(copy, index, symbolBits === 64 ? 6 : 14);
          out.push(copy);
        }
        yield Buffer.concat(out);
      }
    }
  }
}
