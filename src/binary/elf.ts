/**
 * Just enough ELF to answer what image assembly asks of a binary: is it ELF, for which machine,
 * and which shared libraries does it need (DT_NEEDED, DT_SONAME, DT_RUNPATH). Reads through a
 * positional reader so it works on files on disk and on members of a spooled archive alike,
 * without reading whole binaries.
 */

export interface ElfInfo {
  bits: 32 | 64;
  littleEndian: boolean;
  /** e_machine as a name uvimage uses: x86_64, aarch64, arm, i386, riscv64, ppc64, s390x; else `machine-<n>`. */
  machine: string;
  /** DT_NEEDED entries, in order. */
  needed: string[];
  soname?: string;
  runpath?: string;
}

/** Reads `length` bytes at `position` (fewer at the end of the file). */
export type PositionalReader = (position: number, length: number) => Promise<Buffer>;

const machines: Record<number, string> = { 3: 'i386', 20: 'ppc', 21: 'ppc64', 22: 's390x', 40: 'arm', 62: 'x86_64', 183: 'aarch64', 243: 'riscv64' };

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const DT_NULL = 0;
const DT_NEEDED = 1;
const DT_STRTAB = 5;
const DT_SONAME = 14;
const DT_RPATH = 15;
const DT_RUNPATH = 29;

export function isElfMagic(bytes: Buffer): boolean {
  return bytes.length >= 4 && bytes[0] === 0x7f && bytes[1] === 0x45 && bytes[2] === 0x4c && bytes[3] === 0x46;
}

/** ELF facts of a file, or undefined when it is not ELF (or is truncated or malformed). */
export async function readElf(read: PositionalReader): Promise<ElfInfo | undefined> {
  const ident = await read(0, 64);
  if (!isElfMagic(ident) || ident.length < 52) return undefined;
  const bits = ident[4] === 2 ? 64 : ident[4] === 1 ? 32 : undefined;
  const littleEndian = ident[5] === 1;
  if (!bits || (ident[5] !== 1 && ident[5] !== 2)) return undefined;
  const u16 = (buffer: Buffer, at: number) => (littleEndian ? buffer.readUInt16LE(at) : buffer.readUInt16BE(at));
  const u32 = (buffer: Buffer, at: number) => (littleEndian ? buffer.readUInt32LE(at) : buffer.readUInt32BE(at));
  const u64 = (buffer: Buffer, at: number) => Number(littleEndian ? buffer.readBigUInt64LE(at) : buffer.readBigUInt64BE(at));
  const word = (buffer: Buffer, at: number) => (bits === 64 ? u64(buffer, at) : u32(buffer, at));

  const machineNumber = u16(ident, 18);
  const machine = machines[machineNumber] ?? `machine-${machineNumber}`;
  const info: ElfInfo = { bits, littleEndian, machine, needed: [] };

  const phoff = bits === 64 ? u64(ident, 32) : u32(ident, 28);
  const phentsize = u16(ident, bits === 64 ? 54 : 42);
  const phnum = u16(ident, bits === 64 ? 56 : 44);
  if (phnum === 0 || phentsize === 0) return info;
  const table = await read(phoff, phentsize * phnum);
  if (table.length < phentsize * phnum) return info;

  const loads: { vaddr: number; offset: number; filesz: number }[] = [];
  let dynamic: { offset: number; size: number } | undefined;
  for (let index = 0; index < phnum; index++) {
    const at = index * phentsize;
    const type = u32(table, at);
    // 64-bit: p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz; 32-bit: p_type, p_offset, p_vaddr, p_paddr, p_filesz.
    const offset = bits === 64 ? u64(table, at + 8) : u32(table, at + 4);
    const vaddr = bits === 64 ? u64(table, at + 16) : u32(table, at + 8);
    const filesz = bits === 64 ? u64(table, at + 32) : u32(table, at + 16);
    if (type === PT_LOAD) loads.push({ vaddr, offset, filesz });
    if (type === PT_DYNAMIC) dynamic = { offset, size: filesz };
  }
  if (!dynamic) return info; // statically linked
  const entries = await read(dynamic.offset, dynamic.size);
  const entrySize = bits === 64 ? 16 : 8;
  const tags: { tag: number; value: number }[] = [];
  let strtabAddress: number | undefined;
  for (let at = 0; at + entrySize <= entries.length; at += entrySize) {
    const tag = word(entries, at);
    const value = word(entries, at + entrySize / 2);
    if (tag === DT_NULL) break;
    if (tag === DT_STRTAB) strtabAddress = value;
    tags.push({ tag, value });
  }
  if (strtabAddress === undefined) return info;
  // DT_STRTAB is a virtual address; the PT_LOAD segment that contains it gives its file offset.
  const segment = loads.find((load) => strtabAddress! >= load.vaddr && strtabAddress! < load.vaddr + load.filesz);
  if (!segment) return info;
  const strtabOffset = segment.offset + (strtabAddress - segment.vaddr);
  const readString = async (index: number): Promise<string> => {
    let text = '';
    for (let position = strtabOffset + index; ; position += 256) {
      const chunk = await read(position, 256);
      const end = chunk.indexOf(0);
      if (end >= 0) return text + chunk.toString('utf8', 0, end);
      text += chunk.toString('utf8');
      if (chunk.length < 256 || text.length > 4096) return text;
    }
  };
  for (const { tag, value } of tags) {
    if (tag === DT_NEEDED) info.needed.push(await readString(value));
    else if (tag === DT_SONAME) info.soname = await readString(value);
    else if (tag === DT_RUNPATH || (tag === DT_RPATH && info.runpath === undefined)) info.runpath = await readString(value);
  }
  return info;
}

/** A PositionalReader over a file on disk. */
export async function readElfFile(path: string): Promise<ElfInfo | undefined> {
  const { open } = await import('node:fs/promises');
  const handle = await open(path, 'r');
  try {
    return await readElf(async (position, length) => {
      const buffer = Buffer.alloc(length);
      const { bytesRead } = await handle.read(buffer, 0, length, position);
      return buffer.subarray(0, bytesRead);
    });
  } finally {
    await handle.close();
  }
}
