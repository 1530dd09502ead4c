/**
 * Just enough ELF to answer what image assembly asks of a binary: is it ELF, of which class and
 * machine, what kind of object, and what does the dynamic loader need to load it (PT_INTERP,
 * DT_NEEDED, DT_SONAME, DT_RPATH and DT_RUNPATH kept apart, DF_1_NODEFLIB), and whether it
 * imports symbols that make glibc load something by itself (pthread_exit → libgcc_s). Reads
 * through a positional reader — the header, the program header table and the dynamic segment,
 * the section headers and .dynsym when asked, never the code — so it works on files on disk and
 * on members of a spooled archive alike.
 *
 * Layouts from the System V ABI's ELF chapters (gABI "Object Files", "Program Loading and
 * Dynamic Linking") and glibc's elf/elf.h.
 */

/** The fixed part of an ELF file: identification and the ELF header. */
export interface ElfHeader {
  bits: 32 | 64;
  littleEndian: boolean;
  /** e_type: ET_REL 1, ET_EXEC 2, ET_DYN 3, ET_CORE 4. */
  type: number;
  /** e_machine as a number (62 x86-64, 183 AArch64). */
  machineNumber: number;
  /** e_machine as a name uvimage uses: x86_64, aarch64, arm, i386, riscv64, ppc64, s390x; else `machine-<n>`. */
  machine: string;
  phoff: number;
  phentsize: number;
  phnum: number;
  shoff: number;
  shentsize: number;
  /** e_shnum as written (0 when the count lives in section 0, see the gABI's SHN_LORESERVE rule). */
  shnum: number;
  /** e_shstrndx as written (SHN_XINDEX when it lives in section 0). */
  shstrndx: number;
  ehsize: number;
}

export interface ElfInfo {
  bits: 32 | 64;
  littleEndian: boolean;
  machine: string;
  /** What e_type says, by name ('other' for processor- or OS-specific types). */
  kind: 'relocatable' | 'executable' | 'shared' | 'core' | 'other';
  /** PT_INTERP: the program interpreter (dynamic loader) it asks the kernel for. */
  interpreter?: string;
  /** DT_NEEDED entries, in order. */
  needed: string[];
  soname?: string;
  /** DT_RPATH as written (glibc ignores it when DT_RUNPATH is present). */
  rpath?: string;
  /** DT_RUNPATH as written. */
  runpath?: string;
  /** DT_FLAGS_1 has DF_1_NODEFLIB: the loader's default directories are not searched for its needs. */
  noDefaultLib: boolean;
  /** Whether it has a PT_DYNAMIC segment (false: statically linked, or not a loadable object). */
  dynamic: boolean;
  /** The undefined dynamic symbols among those readElf was asked to watch (absent: none). */
  imports?: string[];
}

/** Reads `length` bytes at `position` (fewer at the end of the file). */
export type PositionalReader = (position: number, length: number) => Promise<Buffer>;

const machines: Record<number, string> = { 3: 'i386', 20: 'ppc', 21: 'ppc64', 22: 's390x', 40: 'arm', 62: 'x86_64', 183: 'aarch64', 243: 'riscv64' };
const kinds: Record<number, ElfInfo['kind']> = { 1: 'relocatable', 2: 'executable', 3: 'shared', 4: 'core' };

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;
const DT_NULL = 0;
const DT_NEEDED = 1;
const DT_STRTAB = 5;
const DT_SONAME = 14;
const DT_RPATH = 15;
const DT_RUNPATH = 29;
const DT_FLAGS_1 = 0x6ffffffb;
const DF_1_NODEFLIB = 0x800;

export function isElfMagic(bytes: Buffer): boolean {
  return bytes.length >= 4 && bytes[0] === 0x7f && bytes[1] === 0x45 && bytes[2] === 0x4c && bytes[3] === 0x46;
}

/** Integer fields of one ELF file's byte order and class; `word` is the class's address size. */
export interface ElfFields {
  u16(buffer: Buffer, at: number): number;
  u32(buffer: Buffer, at: number): number;
  u64(buffer: Buffer, at: number): number;
  word(buffer: Buffer, at: number): number;
  writeU16(buffer: Buffer, value: number, at: number): void;
  writeU32(buffer: Buffer, value: number, at: number): void;
  writeWord(buffer: Buffer, value: number, at: number): void;
}

export function elfFields(bits: 32 | 64, littleEndian: boolean): ElfFields {
  const u64 = (buffer: Buffer, at: number) => Number(littleEndian ? buffer.readBigUInt64LE(at) : buffer.readBigUInt64BE(at));
  const u32 = (buffer: Buffer, at: number) => (littleEndian ? buffer.readUInt32LE(at) : buffer.readUInt32BE(at));
  const writeU32 = (buffer: Buffer, value: number, at: number) => void (littleEndian ? buffer.writeUInt32LE(value, at) : buffer.writeUInt32BE(value, at));
  const writeU64 = (buffer: Buffer, value: number, at: number) => void (littleEndian ? buffer.writeBigUInt64LE(BigInt(value), at) : buffer.writeBigUInt64BE(BigInt(value), at));
  return {
    u16: (buffer, at) => (littleEndian ? buffer.readUInt16LE(at) : buffer.readUInt16BE(at)),
    u32,
    u64,
    word: bits === 64 ? u64 : u32,
    writeU16: (buffer, value, at) => void (littleEndian ? buffer.writeUInt16LE(value, at) : buffer.writeUInt16BE(value, at)),
    writeU32,
    writeWord: bits === 64 ? writeU64 : writeU32,
  };
}

/** The ELF header of the first bytes of a file (64 suffice), or undefined when they are not a valid one. */
export function parseElfHeader(bytes: Buffer): ElfHeader | undefined {
  if (!isElfMagic(bytes) || bytes.length < 52) return undefined;
  const bits = bytes[4] === 2 ? 64 : bytes[4] === 1 ? 32 : undefined;
  if (!bits || (bytes[5] !== 1 && bytes[5] !== 2) || (bits === 64 && bytes.length < 64)) return undefined;
  const littleEndian = bytes[5] === 1;
  const { u16, word } = elfFields(bits, littleEndian);
  // Elf64_Ehdr: e_type 16, e_machine 18, e_version 20, e_entry 24, e_phoff 32, e_shoff 40, e_flags 48,
  // e_ehsize 52, e_phentsize 54, e_phnum 56, e_shentsize 58, e_shnum 60, e_shstrndx 62.
  // Elf32_Ehdr: the same up to e_entry 24, then e_phoff 28, e_shoff 32, e_flags 36, e_ehsize 40, …
  const at = bits === 64 ? { phoff: 32, shoff: 40, ehsize: 52 } : { phoff: 28, shoff: 32, ehsize: 40 };
  const machineNumber = u16(bytes, 18);
  return {
    bits,
    littleEndian,
    type: u16(bytes, 16),
    machineNumber,
    machine: machines[machineNumber] ?? `machine-${machineNumber}`,
    phoff: word(bytes, at.phoff),
    shoff: word(bytes, at.shoff),
    ehsize: u16(bytes, at.ehsize),
    phentsize: u16(bytes, at.ehsize + 2),
    phnum: u16(bytes, at.ehsize + 4),
    shentsize: u16(bytes, at.ehsize + 6),
    shnum: u16(bytes, at.ehsize + 8),
    shstrndx: u16(bytes, at.ehsize + 10),
  };
}

/** One program header. */
export interface ProgramHeader {
  type: number;
  offset: number;
  vaddr: number;
  filesz: number;
}

/** The program header table of a file whose header is `header` (empty when it has none or it is truncated). */
export async function readProgramHeaders(read: PositionalReader, header: ElfHeader): Promise<ProgramHeader[]> {
  const { phoff, phentsize, phnum, bits } = header;
  if (phnum === 0 || phentsize < (bits === 64 ? 56 : 32)) return [];
  const table = await read(phoff, phentsize * phnum);
  if (table.length < phentsize * phnum) return [];
  const { u32, word } = elfFields(bits, header.littleEndian);
  const headers: ProgramHeader[] = [];
  for (let index = 0; index < phnum; index++) {
    const at = index * phentsize;
    // 64-bit: p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz; 32-bit: p_type, p_offset, p_vaddr, p_paddr, p_filesz.
    headers.push(
      bits === 64
        ? { type: u32(table, at), offset: word(table, at + 8), vaddr: word(table, at + 16), filesz: word(table, at + 32) }
        : { type: u32(table, at), offset: word(table, at + 4), vaddr: word(table, at + 8), filesz: word(table, at + 16) },
    );
  }
  return headers;
}

/** Reads a NUL-terminated string at `position` (at most 4 KiB). */
async function readCString(read: PositionalReader, position: number): Promise<string> {
  let text = '';
  for (let at = position; ; at += 256) {
    const chunk = await read(at, 256);
    const end = chunk.indexOf(0);
    if (end >= 0) return text + chunk.toString('utf8', 0, end);
    text += chunk.toString('utf8');
    if (chunk.length < 256 || text.length > 4096) return text;
  }
}

/** ELF facts of a file, or undefined when it is not ELF (or is truncated or malformed). */
export async function readElf(read: PositionalReader, options: { watchedImports?: ReadonlySet<string> } = {}): Promise<ElfInfo | undefined> {
  const header = parseElfHeader(await read(0, 64));
  if (!header) return undefined;
  const info = await readDynamicFacts(read, header);
  if (info.dynamic && options.watchedImports?.size) {
    const imports = await readImports(read, header, options.watchedImports);
    if (imports.length > 0) info.imports = imports;
  }
  return info;
}

async function readDynamicFacts(read: PositionalReader, header: ElfHeader): Promise<ElfInfo> {
  const { bits, littleEndian, machine } = header;
  const info: ElfInfo = { bits, littleEndian, machine, kind: kinds[header.type] ?? 'other', needed: [], noDefaultLib: false, dynamic: false };

  const programs = await readProgramHeaders(read, header);
  const loads = programs.filter((program) => program.type === PT_LOAD);
  const interp = programs.find((program) => program.type === PT_INTERP);
  if (interp) info.interpreter = await readCString(read, interp.offset);
  const dynamic = programs.find((program) => program.type === PT_DYNAMIC);
  if (!dynamic) return info; // statically linked, or a relocatable object
  info.dynamic = true;
  const { word } = elfFields(bits, littleEndian);
  const entries = await read(dynamic.offset, dynamic.filesz);
  const entrySize = bits === 64 ? 16 : 8;
  const tags: { tag: number; value: number }[] = [];
  let strtabAddress: number | undefined;
  for (let at = 0; at + entrySize <= entries.length; at += entrySize) {
    const tag = word(entries, at);
    const value = word(entries, at + entrySize / 2);
    if (tag === DT_NULL) break;
    if (tag === DT_STRTAB) strtabAddress = value;
    if (tag === DT_FLAGS_1) info.noDefaultLib = (value & DF_1_NODEFLIB) !== 0;
    tags.push({ tag, value });
  }
  if (strtabAddress === undefined) return info;
  // DT_STRTAB is a virtual address; the PT_LOAD segment that contains it gives its file offset.
  const segment = loads.find((load) => strtabAddress! >= load.vaddr && strtabAddress! < load.vaddr + load.filesz);
  if (!segment) return info;
  const strtabOffset = segment.offset + (strtabAddress - segment.vaddr);
  for (const { tag, value } of tags) {
    if (tag === DT_NEEDED) info.needed.push(await readCString(read, strtabOffset + value));
    else if (tag === DT_SONAME) info.soname = await readCString(read, strtabOffset + value);
    else if (tag === DT_RPATH) info.rpath = await readCString(read, strtabOffset + value);
    else if (tag === DT_RUNPATH) info.runpath = await readCString(read, strtabOffset + value);
  }
  return info;
}

/** One section header, as the table has it (`name` filled in once .shstrtab is read). */
export interface SectionHeader {
  index: number;
  nameOffset: number;
  name: string;
  type: number;
  flags: number;
  offset: number;
  size: number;
  link: number;
  info: number;
  addralign: number;
  entsize: number;
  /** The raw header, to copy the fields left as they are. */
  raw: Buffer;
}

const SHT_NULL = 0;
const SHT_DYNSYM = 11;
const SHN_UNDEF = 0;

/** The section header table (`table` is e_shnum entries of e_shentsize bytes). */
export function parseSectionHeaders(table: Buffer, header: ElfHeader, fields: ElfFields): SectionHeader[] {
  const size = header.shentsize;
  const sections: SectionHeader[] = [];
  for (let index = 0; index < header.shnum; index++) {
    const at = index * size;
    const raw = table.subarray(at, at + size);
    const word = (offset64: number, offset32: number) => fields.word(raw, header.bits === 64 ? offset64 : offset32);
    sections.push({
      index,
      nameOffset: fields.u32(raw, 0),
      name: '',
      type: fields.u32(raw, 4),
      flags: word(8, 8),
      offset: word(24, 16),
      size: word(32, 20),
      link: fields.u32(raw, header.bits === 64 ? 40 : 24),
      info: fields.u32(raw, header.bits === 64 ? 44 : 28),
      addralign: word(48, 32),
      entsize: word(56, 36),
      raw,
    });
  }
  if (sections[0] && sections[0].type !== SHT_NULL) sections[0].type = SHT_NULL;
  return sections;
}

/** st_info and st_shndx of the symbol at `at`. */
export function symbolFields(buffer: Buffer, at: number, bits: 32 | 64, fields: ElfFields): { info: number; shndx: number } {
  // Elf64_Sym: st_name 0, st_info 4, st_other 5, st_shndx 6; Elf32_Sym: st_name 0, st_value 4, st_size 8, st_info 12, st_other 13, st_shndx 14.
  return bits === 64 ? { info: buffer[at + 4]!, shndx: fields.u16(buffer, at + 6) } : { info: buffer[at + 12]!, shndx: fields.u16(buffer, at + 14) };
}

/** The NUL-terminated string at `offset` of a string table. */
export function cString(buffer: Buffer, offset: number): string {
  if (offset >= buffer.length) return '';
  const end = buffer.indexOf(0, offset);
  return buffer.toString('utf8', offset, end < 0 ? buffer.length : end);
}

/**
 * Which of `watched` the file imports: undefined symbols of its .dynsym (found through the
 * section headers, which every linker writes; a file without them imports nothing we can see).
 * Bounded reads: the section header table, .dynsym and its string table (metadata, never the code).
 */
async function readImports(read: PositionalReader, header: ElfHeader, watched: ReadonlySet<string>): Promise<string[]> {
  const entrySize = header.bits === 64 ? 64 : 40;
  if (header.shoff === 0 || header.shnum === 0 || header.shentsize !== entrySize) return [];
  const table = await read(header.shoff, header.shnum * entrySize);
  if (table.length < header.shnum * entrySize) return [];
  const fields = elfFields(header.bits, header.littleEndian);
  const sections = parseSectionHeaders(table, header, fields);
  const dynsym = sections.find((section) => section.type === SHT_DYNSYM);
  const strtab = dynsym && sections[dynsym.link];
  const symbolSize = header.bits === 64 ? 24 : 16;
  const limit = 64 * 1024 * 1024;
  if (!dynsym || !strtab || dynsym.size > limit || strtab.size > limit) return [];
  const [symbols, names] = await Promise.all([read(dynsym.offset, dynsym.size), read(strtab.offset, strtab.size)]);
  const found = new Set<string>();
  for (let at = symbolSize; at + symbolSize <= symbols.length; at += symbolSize) {
    if (symbolFields(symbols, at, header.bits, fields).shndx !== SHN_UNDEF) continue;
    const name = cString(names, fields.u32(symbols, at));
    if (watched.has(name)) found.add(name);
  }
  return [...found].sort();
}

/** A PositionalReader over an open file handle. */
export function fileReader(handle: import('node:fs/promises').FileHandle): PositionalReader {
  return async (position, length) => {
    const buffer = Buffer.alloc(length);
    const { bytesRead } = await handle.read(buffer, 0, length, position);
    return buffer.subarray(0, bytesRead);
  };
}

/** readElf of a file on disk. */
export async function readElfFile(path: string, options: { watchedImports?: ReadonlySet<string> } = {}): Promise<ElfInfo | undefined> {
  const { open } = await import('node:fs/promises');
  const handle = await open(path, 'r');
  try {
    return await readElf(fileReader(handle), options);
  } finally {
    await handle.close();
  }
}
