/**
 * A streaming tar reader: ustar, GNU (long names 'L'/'K', base-256 numbers) and PAX ('x' per
 * member, 'g' global) headers, pulled from an async iterable of chunks. It never holds more than
 * one chunk plus what the caller asks it to collect (PAX records, long names, and member contents
 * the caller wants as a Buffer, each under a size cap); everything else is skipped (or hashed,
 * for the members the caller wants a sha256 of) as it streams past, and each member's byte offset in the tar stream is reported so a caller that also wrote
 * the stream to a file can serve the content later from there.
 */
import { createHash } from 'node:crypto';
import { UserError } from '../errors.js';
import type { Digest } from './digest.js';

export type TarMemberType = 'file' | 'directory' | 'symlink' | 'hardlink' | 'other';

export interface TarMember {
  /** Name as the archive gives it (after PAX/GNU long names), e.g. "./usr/bin/python3". */
  name: string;
  type: TarMemberType;
  /** The raw typeflag, for error messages about 'other' members (devices, FIFOs). */
  typeflag: string;
  mode: number;
  uid: number;
  gid: number;
  /** Content size (0 for anything but a file). */
  size: number;
  /** Symlink target or hardlink target, as written. */
  linkname: string;
  /** Offset of the content in the uncompressed tar stream. */
  offset: number;
  /** The content, when the caller's `collect` asked for it. */
  content?: Buffer;
  /** The sha256 of the content, when the caller's `hash` asked for it (computed as it streams past). */
  sha256?: Digest;
}

export class TarFormatError extends UserError {}

export interface ReadTarOptions {
  /** What the archive is, for error messages (e.g. "python3.13_3.13.5-2_amd64.deb data.tar"). */
  what: string;
  /** Members whose content is returned as a Buffer; others are skipped. */
  collect?: (member: TarMember) => boolean;
  /** Largest content `collect` may hold, default 16 MiB. */
  maxCollect?: number;
  /** Files whose content is hashed (sha256) as it streams past, without being held. */
  hash?: (member: TarMember) => boolean;
}

const BLOCK = 512;
const MAX_META = 1024 * 1024; // PAX records and GNU long names

/** Pulls exact byte counts out of a chunk stream, tracking the position. */
export class ByteReader {
  private buffer: Buffer = Buffer.alloc(0);
  private readonly iterator: AsyncIterator<Buffer | Uint8Array | string>;
  private ended = false;
  position = 0;

  constructor(source: AsyncIterable<Buffer | Uint8Array | string>) {
    this.iterator = source[Symbol.asyncIterator]();
  }

  private async fill(): Promise<boolean> {
    if (this.ended) return false;
    const next = await this.iterator.next();
    if (next.done) {
      this.ended = true;
      return false;
    }
    const value = typeof next.value === 'string' ? Buffer.from(next.value) : Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value);
    this.buffer = this.buffer.length === 0 ? value : Buffer.concat([this.buffer, value]);
    return true;
  }

  /** Exactly `n` bytes, or fewer only at the end of the stream. */
  async read(n: number): Promise<Buffer> {
    while (this.buffer.length < n) if (!(await this.fill())) break;
    const take = Math.min(n, this.buffer.length);
    const out = this.buffer.subarray(0, take);
    this.buffer = this.buffer.subarray(take);
    this.position += take;
    return out;
  }

  /** Skips `n` bytes; returns how many were actually there. */
  async skip(n: number): Promise<number> {
    let left = n;
    while (left > 0) {
      if (this.buffer.length === 0 && !(await this.fill())) break;
      const take = Math.min(left, this.buffer.length);
      this.buffer = this.buffer.subarray(take);
      left -= take;
      this.position += take;
    }
    return n - left;
  }

  /** The next `n` bytes as a stream of chunks (the caller must consume it fully before reading on). */
  async *take(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (this.buffer.length === 0 && !(await this.fill())) return;
      const take = Math.min(left, this.buffer.length);
      const out = this.buffer.subarray(0, take);
      this.buffer = this.buffer.subarray(take);
      left -= take;
      this.position += take;
      yield out;
    }
  }

  /** Reads and discards everything that is left. */
  async drain(): Promise<void> {
    this.position += this.buffer.length;
    this.buffer = Buffer.alloc(0);
    while (await this.fill()) {
      this.position += this.buffer.length;
      this.buffer = Buffer.alloc(0);
    }
  }
}

/** The members of a tar stream, in archive order. Consumes the whole source (trailing padding included). */
export async function* readTar(source: AsyncIterable<Buffer | Uint8Array | string>, options: ReadTarOptions): AsyncGenerator<TarMember> {
  const reader = new ByteReader(source);
  const maxCollect = options.maxCollect ?? 16 * 1024 * 1024;
  let global: Record<string, string> = {};
  let pax: Record<string, string> | undefined;
  let longName: string | undefined;
  let longLink: string | undefined;
  const fail = (why: string): never => {
    throw new TarFormatError(`${options.what}: ${why} (at byte ${reader.position})`);
  };

  for (;;) {
    const block = await reader.read(BLOCK);
    if (block.length === 0) fail('the archive ends without its end-of-archive blocks');
    if (block.length < BLOCK) fail('truncated header');
    if (block.every((byte) => byte === 0)) {
      // End of archive (one or two zero blocks, then padding): consume the rest.
      await reader.drain();
      return;
    }
    checkChecksum(block) || fail('header checksum mismatch (not a tar archive, or corrupt)');
    const typeflag = String.fromCharCode(block[156]!);
    const magic = block.toString('latin1', 257, 263);
    const posix = magic === 'ustar\0';
    let name = cString(block, 0, 100);
    if (posix) {
      const prefix = cString(block, 345, 155);
      if (prefix) name = `${prefix}/${name}`;
    }
    const size = parseNumber(block, 124, 12) ?? fail(`bad size field in the header of ${JSON.stringify(name)}`);
    const paddedSize = Math.ceil(size / BLOCK) * BLOCK;

    // Meta members: their content describes the next member.
    if (typeflag === 'x' || typeflag === 'g' || typeflag === 'L' || typeflag === 'K') {
      if (size > MAX_META) fail(`${typeflag} header of ${size} bytes is too large`);
      const data = Buffer.from(await reader.read(size));
      if (data.length < size) fail('truncated extended header');
      await reader.skip(paddedSize - size);
      if (typeflag === 'x') pax = { ...(pax ?? {}), ...parsePax(data, fail) };
      else if (typeflag === 'g') global = { ...global, ...parsePax(data, fail) };
      else if (typeflag === 'L') longName = cString(data, 0, data.length);
      else longLink = cString(data, 0, data.length);
      continue;
    }

    const records = { ...global, ...(pax ?? {}) };
    const linkField = cString(block, 157, 100);
    const member: TarMember = {
      name: records.path ?? longName ?? name,
      type: memberType(typeflag),
      typeflag,
      mode: (parseNumber(block, 100, 8) ?? fail('bad mode field')) & 0o7777,
      uid: records.uid !== undefined ? Number(records.uid) : (parseNumber(block, 108, 8) ?? 0),
      gid: records.gid !== undefined ? Number(records.gid) : (parseNumber(block, 116, 8) ?? 0),
      size: records.size !== undefined ? Number(records.size) : size,
      linkname: records.linkpath ?? longLink ?? linkField,
      offset: reader.position,
    };
    pax = undefined;
    longName = undefined;
    longLink = undefined;
    if (!Number.isSafeInteger(member.size) || member.size < 0) fail(`bad size for ${JSON.stringify(member.name)}`);
    const contentSize = member.type === 'directory' || member.type === 'symlink' || member.type === 'hardlink' ? 0 : member.size;
    if (contentSize !== member.size && member.size !== 0) {
      // Links and directories carry no data; a size there is a malformed archive.
      fail(`${member.type} ${JSON.stringify(member.name)} declares ${member.size} bytes of content`);
    }
    if (member.type !== 'file') member.size = 0;
    const padded = Math.ceil(contentSize / BLOCK) * BLOCK;
    if (member.type === 'file' && options.collect?.(member)) {
      if (contentSize > maxCollect) fail(`${JSON.stringify(member.name)} is ${contentSize} bytes, more than the ${maxCollect} this reader holds in memory`);
      member.content = Buffer.from(await reader.read(contentSize));
      if (member.content.length < contentSize) fail(`truncated content of ${JSON.stringify(member.name)}`);
      await reader.skip(padded - contentSize);
      if (options.hash?.(member)) member.sha256 = `sha256:${createHash('sha256').update(member.content).digest('hex')}`;
    } else if (member.type === 'file' && options.hash?.(member)) {
      const hash = createHash('sha256');
      let seen = 0;
      for await (const chunk of reader.take(contentSize)) {
        hash.update(chunk);
        seen += chunk.length;
      }
      if (seen < contentSize) fail(`truncated content of ${JSON.stringify(member.name)}`);
      await reader.skip(padded - contentSize);
      member.sha256 = `sha256:${hash.digest('hex')}`;
    } else if ((await reader.skip(padded)) < contentSize) {
      fail(`truncated content of ${JSON.stringify(member.name)}`);
    }
    yield member;
  }
}

function memberType(typeflag: string): TarMemberType {
  switch (typeflag) {
    case '0':
    case '\0':
    case '7':
      return 'file';
    case '1':
      return 'hardlink';
    case '2':
      return 'symlink';
    case '5':
      return 'directory';
    default:
      return 'other';
  }
}

function cString(block: Buffer, offset: number, length: number): string {
  const field = block.subarray(offset, offset + length);
  const end = field.indexOf(0);
  return field.toString('utf8', 0, end === -1 ? field.length : end);
}

/** An octal field, or GNU base-256 (high bit of the first byte set). */
function parseNumber(block: Buffer, offset: number, length: number): number | undefined {
  const field = block.subarray(offset, offset + length);
  if (field[0]! & 0x80) {
    let value = field[0]! & 0x7f;
    for (let index = 1; index < field.length; index++) value = value * 256 + field[index]!;
    return Number.isSafeInteger(value) ? value : undefined;
  }
  const text = field.toString('latin1').replace(/\0.*$/s, '').trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) return undefined;
  return parseInt(text, 8);
}

function checkChecksum(block: Buffer): boolean {
  const stored = parseNumber(block, 148, 8);
  let unsigned = 0;
  let signed = 0;
  for (let index = 0; index < BLOCK; index++) {
    const byte = index >= 148 && index < 156 ? 0x20 : block[index]!;
    unsigned += byte;
    signed += byte > 127 ? byte - 256 : byte;
  }
  return stored === unsigned || stored === signed;
}

function parsePax(data: Buffer, fail: (why: string) => never): Record<string, string> {
  const records: Record<string, string> = {};
  let at = 0;
  while (at < data.length) {
    if (data[at] === 0) break;
    const space = data.indexOf(0x20, at);
    if (space === -1) fail('malformed PAX record');
    const length = Number(data.toString('latin1', at, space));
    if (!Number.isSafeInteger(length) || length <= 0 || at + length > data.length) fail('malformed PAX record length');
    const record = data.toString('utf8', space + 1, at + length - 1); // without the trailing newline
    const equals = record.indexOf('=');
    if (equals === -1) fail('malformed PAX record');
    records[record.slice(0, equals)] = record.slice(equals + 1);
    at += length;
  }
  return records;
}
