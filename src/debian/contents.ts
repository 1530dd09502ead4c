/**
 * Debian's Contents indexes: `dists/<suite>/<component>/Contents-<arch>.gz` (and Contents-all.gz
 * for Architecture: all packages) say which packages ship every file of the suite. Each line is
 * a path (relative to /, possibly with spaces), whitespace, then the comma-separated qualified
 * names of the packages that ship it, `[[<area>/]<section>/]<name>` (Debian wiki
 * "DebianRepository/Format", Contents indices; old indexes began with a free-text preamble up to
 * a `FILE  LOCATION` line, whose lines match nothing asked for here).
 *
 * An index is ~170 MB uncompressed for amd64 (1.85 million lines), so it is read as a stream and
 * only the lines whose file name is one asked for are kept: memory stays that of the answer.
 */
import { Readable, pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { posix } from 'node:path';
import { UserError } from '../errors.js';

export interface ContentsEntry {
  /** The file's path, absolute ('/usr/lib/x86_64-linux-gnu/libGL.so.1'). */
  path: string;
  /** The packages that ship it, by name, as the index lists them. */
  packages: string[];
}

const space = 0x20;
const tab = 0x09;
const newline = 0x0a;

/**
 * Reads a Contents index (gzip'd or not: judged by its first bytes) and returns, for each file
 * name asked for, every entry of the index with that name, in index order. Names not found map
 * to an empty list.
 */
export async function findInContents(source: Readable | AsyncIterable<Uint8Array>, fileNames: Iterable<string>, what = 'Contents index'): Promise<Map<string, ContentsEntry[]>> {
  const wanted = new Map<string, ContentsEntry[]>();
  for (const name of fileNames) wanted.set(name, []);
  /** Parses a line exactly and keeps it when its file name is wanted. */
  const exactLine = (buffer: Buffer, start: number, end: number): void => {
    if (end > start && buffer[end - 1] === 0x0d) end--;
    // The package list is the last field; the path ends where the whitespace before it begins.
    let fieldStart = end;
    while (fieldStart > start && buffer[fieldStart - 1] !== space && buffer[fieldStart - 1] !== tab) fieldStart--;
    let pathEnd = fieldStart;
    while (pathEnd > start && (buffer[pathEnd - 1] === space || buffer[pathEnd - 1] === tab)) pathEnd--;
    if (pathEnd === start || fieldStart === end) return;
    let nameStart = pathEnd;
    while (nameStart > start && buffer[nameStart - 1] !== 0x2f) nameStart--;
    const entries = wanted.get(buffer.toString('utf8', nameStart, pathEnd));
    if (!entries) return;
    const packages = buffer
      .toString('utf8', fieldStart, end)
      .split(',')
      .map((qualified) => qualified.slice(qualified.lastIndexOf('/') + 1))
      .filter(Boolean);
    entries.push({ path: `/${buffer.toString('utf8', start, pathEnd).replace(/^\/+/, '')}`, packages });
  };

  // Most of the 1.85 million lines are dismissed with native searches only: the last space
  // (before the package list), the last '/' before it, the first space after that, and the name
  // between compared with the wanted names of that length. Lines that pass, or that do not
  // have that shape (tabs), are parsed exactly.
  const byLength = new Map<number, Buffer[]>();
  for (const name of wanted.keys()) {
    const bytes = Buffer.from(name);
    byLength.set(bytes.length, [...(byLength.get(bytes.length) ?? []), bytes]);
  }
  const onLine = (buffer: Buffer, start: number, end: number, tabs: boolean): void => {
    const lastSpace = buffer.lastIndexOf(space, end - 1);
    if (tabs || lastSpace < start) return exactLine(buffer, start, end);
    let slash = buffer.lastIndexOf(0x2f, lastSpace);
    if (slash < start) slash = start - 1;
    const nameEnd = buffer.indexOf(space, slash + 1);
    const candidates = byLength.get(nameEnd - slash - 1);
    if (!candidates) return;
    for (const candidate of candidates) {
      if (buffer.compare(candidate, 0, candidate.length, slash + 1, nameEnd) === 0) return exactLine(buffer, start, end);
    }
  };

  let carry: Buffer | undefined;
  const onChunk = (chunk: Buffer): void => {
    let buffer = chunk;
    let start = 0;
    if (carry) {
      const end = chunk.indexOf(newline);
      if (end < 0) {
        carry = Buffer.concat([carry, chunk]);
        if (carry.length > 1024 * 1024) throw new UserError(`${what} is malformed: a line is longer than 1 MiB`);
        return;
      }
      buffer = Buffer.concat([carry, chunk.subarray(0, end + 1)]);
      exactLine(buffer, 0, buffer.length - 1);
      carry = undefined;
      buffer = chunk;
      start = end + 1;
    }
    const tabs = buffer.indexOf(tab, start) >= 0;
    for (let end = buffer.indexOf(newline, start); end >= 0; end = buffer.indexOf(newline, start)) {
      onLine(buffer, start, end, tabs);
      start = end + 1;
    }
    if (start < buffer.length) carry = Buffer.from(buffer.subarray(start));
  };

  // Peek at the first chunk: gzip's magic decides whether the rest goes through gunzip.
  const iterator = (source as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
  const toBuffer = (chunk: Uint8Array | string): Buffer => (Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array));
  try {
    const head = await iterator.next();
    if (head.done) return wanted;
    const firstChunk = toBuffer(head.value);
    const all = async function* (): AsyncGenerator<Buffer> {
      yield firstChunk;
      for (let next = await iterator.next(); !next.done; next = await iterator.next()) yield toBuffer(next.value);
    };
    let chunks: AsyncIterable<Buffer> = all();
    if (firstChunk[0] === 0x1f && firstChunk[1] === 0x8b) {
      const gunzip = createGunzip();
      pipeline(Readable.from(chunks), gunzip, () => undefined); // a failure surfaces in the loop below
      chunks = gunzip;
    }
    for await (const chunk of chunks) onChunk(chunk);
  } catch (error) {
    if (error instanceof UserError) throw error;
    throw new UserError(`${what} cannot be read: ${(error as Error).message}`);
  }
  if (carry) exactLine(carry, 0, carry.length);
  return wanted;
}

/**
 * The packages that ship `name` in one of the loader's directories (`searchDirs`, as
 * loaderSystem gives them), sorted; those shipping it only elsewhere (a private directory such
 * as …/gl4es/libGL.so.1, which the loader never searches) are left out.
 */
export function packagesInSearchPath(entries: readonly ContentsEntry[], searchDirs: readonly string[]): string[] {
  const dirs = new Set(searchDirs);
  const names = new Set<string>();
  for (const entry of entries) if (dirs.has(posix.dirname(entry.path))) for (const pkg of entry.packages) names.add(pkg);
  return [...names].sort();
}
