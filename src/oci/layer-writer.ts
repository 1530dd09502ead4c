/**
 * The deterministic, streaming layer writer: turns LayerEntry values into a gzip-compressed tar
 * blob in the store, computing the diff_id (sha256 of the tar), the blob digest (sha256 of the
 * gzip) and its size in the one pass that writes it.
 *
 * Same entries (in any order) + same mtime + same Node (zlib) => same bytes (the deflate stream
 * is compressed block by block on several cores: parallel-deflate.ts). Nothing from the
 * machine, the clock, the locale, the user database or the order of the input reaches the output:
 *
 *   - entries are sorted by the UTF-8 bytes of their path (never by a locale collation);
 *   - every header, including the ustar header of each PAX extended header, carries the fixed
 *     mtime; there is no atime/ctime; uname/gname are empty; uid/gid come from the entry or are 0;
 *   - modes keep only the permission bits (0o7777), with fixed defaults;
 *   - the gzip header is written by hand with fixed bytes (no mtime, no file name, OS=255).
 *
 * `layerEncoding` names how the bytes are made; caches that keep layers by their inputs put it
 * in their keys, so a layer made another way is never taken for one made now.
 *
 * The tar encoder is written here rather than taken from tar-stream's pack(): pack() fills a
 * missing or zero mtime with `new Date()` (the wall clock), treats mode 0 as "use the default",
 * names every PAX header "PaxHeader" while dropping the real name from the ustar header, and
 * would need to be checked again on every upgrade. The encoder below is small, and every byte it
 * writes is decided in this file.
 *
 * Memory does not grow with the layer: contents are opened one at a time when the writer reaches
 * them, streamed through sha256 + crc32 + deflate + sha256 into a temp file with backpressure,
 * and only metadata (one small object per entry) is held — and, for the layer-files record the
 * closure check reads (src/oci/layer-files.ts), one ELF file or small text at a time, up to a
 * fixed bound.
 */
import { crc32 } from 'node:zlib';
import { Readable, Transform, Writable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { UserError } from '../errors.js';
import { HashingStream } from './digest.js';
import { buildTimestamp, type Layer } from './image.js';
import type { LayerEntry } from './layer-entry.js';
import { MediaType } from './media-types.js';
import { BLOCK_SIZE, ParallelDeflate } from './parallel-deflate.js';
import type { BlobStore } from './store.js';
import { LayerFilesCollector, layerFilesKey } from './layer-files.js';

export interface WriteLayerOptions {
  /** mtime (seconds since the epoch) of every entry; default buildTimestamp().seconds (SOURCE_DATE_EPOCH, else 0). */
  mtime?: number;
  /**
   * gzip level 0-9, default 6: zlib's own default and what `gzip`, Docker and Go's compress/gzip
   * use, so layer sizes are what users expect. On the Python trees uvimage packs (source,
   * bytecode, shared libraries), 9 costs two to three times the CPU of 6 for about 1% smaller
   * blobs, and 1 is roughly twice as fast but 10-15% larger — more bytes on every push and pull.
   * The level is part of the output: changing it changes the layer digest (not the diff_id).
   */
  compressionLevel?: number;
  /**
   * Called with the number of compressed bytes of each chunk as it is written (a delta, so it
   * can be passed straight to Progress.advance).
   */
  onBytes?: (compressedBytes: number) => void;
}

export interface WrittenLayer extends Layer {
  /** Size of the uncompressed tar, in bytes. */
  uncompressedSize: number;
}

/** An entry that cannot go into a layer (hostile or malformed path, conflict, wrong size). */
export class LayerEntryError extends UserError {}

export const defaultCompressionLevel = 6;

/**
 * How writeLayer turns entries into bytes, for the keys of caches that keep layers by their
 * inputs: change it whenever the tar encoding or the compression changes the output.
 */
export const layerEncoding = `ustar+pax, gzip of deflate in ${BLOCK_SIZE}-byte blocks`;

/**
 * Writes a layer into the store and returns its descriptor and diff_id. Entries are read for
 * metadata first (contents stay unopened), validated, de-duplicated, completed with missing
 * parent directories and sorted; then each file is opened in turn and streamed. On any error the
 * temp file is removed and nothing is added to the store.
 */
export async function writeLayer(
  store: BlobStore,
  entries: Iterable<LayerEntry> | AsyncIterable<LayerEntry>,
  options: WriteLayerOptions = {},
): Promise<WrittenLayer> {
  const mtime = options.mtime ?? buildTimestamp().seconds;
  if (!Number.isSafeInteger(mtime) || mtime < 0) throw new RangeError(`layer mtime must be a whole, non-negative number of seconds, got ${mtime}`);
  const level = options.compressionLevel ?? defaultCompressionLevel;
  if (!Number.isInteger(level) || level < 0 || level > 9) throw new RangeError(`compression level must be an integer from 0 to 9, got ${level}`);

  // Metadata pass: errors here happen before anything touches the store.
  const plan = await planLayer(entries);

  // What the closure check needs of the layer is collected as it is written: it is not read again.
  const collector = new LayerFilesCollector();
  const tar = Readable.from(tarChunks(plan, mtime, collector), { objectMode: false, highWaterMark: CHUNK });
  const meter = new TarMeter();
  const deflate = new ParallelDeflate({ level });
  const framer = new GzipFramer(meter, options.onBytes);
  const writer = store.createWriter();
  try {
    await pipeline(tar, meter, deflate, framer, forwardTo(writer.stream));
  } catch (error) {
    await writer.abort();
    throw error;
  }
  const blob = await writer.commit(undefined, 'layer');
  if (!collector.incomplete) await store.keepRecord('layer-files', layerFilesKey(meter.digest), collector.files);
  return {
    descriptor: { mediaType: MediaType.ociLayerGzip, digest: blob.digest, size: blob.size },
    diffId: meter.digest,
    uncompressedSize: meter.size,
  };
}

/**
 * A Writable that forwards to the blob writer's stream with backpressure. The blob writer's
 * stream is not handed to pipeline() itself: on failure pipeline destroys every stream *with the
 * error*, and BlobWriter re-emits that error on its file stream, where nothing listens (an
 * uncaught 'error' event that kills the process). Here a failure leaves the writer's stream
 * untouched, and writer.abort() then destroys it without an error and removes the temp file.
 */
function forwardTo(target: Writable): Writable {
  let failure: Error | undefined;
  let waiting: ((error?: Error | null) => void) | undefined;
  const onError = (error: Error): void => {
    failure = error;
    const callback = waiting;
    waiting = undefined;
    callback?.(error);
  };
  target.on('error', onError);
  return new Writable({
    write(chunk: Buffer, _encoding, callback) {
      if (failure) return callback(failure);
      if (target.write(chunk)) return callback();
      waiting = callback;
      target.once('drain', () => {
        const pending = waiting;
        waiting = undefined;
        pending?.();
      });
    },
    final(callback) {
      target.off('error', onError);
      if (failure) return callback(failure);
      target.end();
      callback();
    },
    destroy(error, callback) {
      target.off('error', onError);
      callback(error);
    },
  });
}

// ---------------------------------------------------------------------------------------------
// Planning: validation, de-duplication, parents, hardlink groups, order.

/** One tar member, ready to encode. */
interface Member {
  path: string;
  /** UTF-8 bytes of path: the sort key. */
  key: Buffer;
  type: 'file' | 'directory' | 'symlink' | 'hardlink';
  mode: number;
  uid: number;
  gid: number;
  /** Content size (files only). */
  size: number;
  open?: FileOpen;
  /** Symlink target, or the path of the member a hardlink points at. */
  linkname?: string;
  /** Whether the caller gave mode/uid/gid explicitly (hardlinks must agree with their target). */
  explicit?: { mode?: number; uid?: number; gid?: number };
}

type FileOpen = Extract<LayerEntry, { type: 'file' }>['open'];

const defaultModes = { file: 0o644, directory: 0o755, symlink: 0o777, hardlink: 0o644 } as const;

/** Reads the entries' metadata and returns the members in the order they are written. */
async function planLayer(entries: Iterable<LayerEntry> | AsyncIterable<LayerEntry>): Promise<Member[]> {
  const members = new Map<string, Member>();
  for await (const entry of entries) {
    const member = toMember(entry);
    const existing = members.get(member.path);
    if (!existing) {
      members.set(member.path, member);
      continue;
    }
    if (!sameMember(existing, member)) {
      throw new LayerEntryError(
        `layer entry ${JSON.stringify(member.path)} is given twice with different content: ${describe(existing)} and ${describe(member)}`,
      );
    }
  }

  // Missing parents become directories; a parent that is not a directory is an error (writing
  // "a/b" below a file or a symlink "a" would be rejected, or followed, by whoever extracts it).
  for (const member of [...members.values()]) {
    let slash = member.path.lastIndexOf('/');
    while (slash > 0) {
      const parent = member.path.slice(0, slash);
      const existing = members.get(parent);
      if (existing) {
        if (existing.type !== 'directory') {
          throw new LayerEntryError(`layer entry ${JSON.stringify(member.path)} is below ${JSON.stringify(parent)}, which is a ${existing.type}, not a directory`);
        }
        break; // its own parents are (or will be) handled when it is visited
      }
      members.set(parent, { path: parent, key: Buffer.from(parent, 'utf8'), type: 'directory', mode: 0o755, uid: 0, gid: 0, size: 0 });
      slash = parent.lastIndexOf('/');
    }
  }

  resolveHardlinks(members);

  return [...members.values()].sort((a, b) => Buffer.compare(a.key, b.key));
}

/**
 * A hard link must follow its target in the tar (extractors link to a path already written), but
 * the sort may put a link before its target. So each group of names for one file is written as
 * the file under the name that sorts first and hard links under the others — the same inode on
 * extraction, and independent of which name the caller called "the file". A hard link shares its
 * target's mode and owner, so those come from the file entry.
 */
function resolveHardlinks(members: Map<string, Member>): void {
  const groups = new Map<string, Member[]>();
  for (const member of members.values()) {
    if (member.type !== 'hardlink') continue;
    const targetPath = member.linkname!;
    const target = members.get(targetPath);
    if (!target) throw new LayerEntryError(`hardlink ${JSON.stringify(member.path)} points at ${JSON.stringify(targetPath)}, which is not in the layer`);
    if (target.type !== 'file') {
      throw new LayerEntryError(`hardlink ${JSON.stringify(member.path)} points at ${JSON.stringify(targetPath)}, which is a ${target.type}; a hardlink's target must be a file of the same layer`);
    }
    for (const field of ['mode', 'uid', 'gid'] as const) {
      const given = member.explicit?.[field];
      if (given !== undefined && given !== target[field]) {
        throw new LayerEntryError(
          `hardlink ${JSON.stringify(member.path)} has ${field} ${formatField(field, given)} but its target ${JSON.stringify(targetPath)} has ` +
            `${formatField(field, target[field])}; a hard link shares its target's ${field}`,
        );
      }
    }
    const group = groups.get(targetPath) ?? [target];
    group.push(member);
    groups.set(targetPath, group);
  }
  for (const group of groups.values()) {
    const { mode, uid, gid, size, open } = group[0]!; // the file entry
    const primary = group.reduce((first, member) => (Buffer.compare(member.key, first.key) < 0 ? member : first));
    for (const member of group) {
      member.mode = mode;
      member.uid = uid;
      member.gid = gid;
      if (member === primary) {
        member.type = 'file';
        member.size = size;
        member.open = open;
        delete member.linkname;
      } else {
        member.type = 'hardlink';
        member.size = 0;
        delete member.open;
        member.linkname = primary.path;
      }
    }
  }
}

function toMember(entry: LayerEntry): Member {
  if (typeof entry !== 'object' || entry === null) throw new LayerEntryError(`layer entry is not an object: ${String(entry)}`);
  const path = checkPath(entry.path, 'layer entry path');
  const type = entry.type;
  if (type !== 'file' && type !== 'directory' && type !== 'symlink' && type !== 'hardlink') {
    throw new LayerEntryError(`layer entry ${JSON.stringify(path)} has unknown type ${JSON.stringify(type)}`);
  }
  const mode = checkId(entry.mode, path, 'mode');
  const uid = checkId(entry.uid, path, 'uid');
  const gid = checkId(entry.gid, path, 'gid');
  const member: Member = {
    path,
    key: Buffer.from(path, 'utf8'),
    type,
    mode: mode === undefined ? defaultModes[type] : mode & 0o7777,
    uid: uid ?? 0,
    gid: gid ?? 0,
    size: 0,
  };
  switch (entry.type) {
    case 'file':
      if (!Number.isSafeInteger(entry.size) || entry.size < 0) throw new LayerEntryError(`layer entry ${JSON.stringify(path)}: size must be a non-negative integer, got ${entry.size}`);
      if (typeof entry.open !== 'function') throw new LayerEntryError(`layer entry ${JSON.stringify(path)}: open must be a function`);
      member.size = entry.size;
      member.open = entry.open;
      break;
    case 'symlink':
      if (typeof entry.target !== 'string' || entry.target === '' || entry.target.includes('\0') || !wellFormed(entry.target)) {
        throw new LayerEntryError(`symlink ${JSON.stringify(path)} has an invalid target ${JSON.stringify(entry.target)} (must be a non-empty string without NUL)`);
      }
      member.linkname = entry.target;
      break;
    case 'hardlink':
      member.linkname = checkPath(entry.target, `hardlink ${JSON.stringify(path)} target`);
      member.explicit = { mode: mode === undefined ? undefined : mode & 0o7777, uid, gid };
      break;
    case 'directory':
      break;
  }
  return member;
}

/**
 * A path inside the image: relative, '/'-separated, every segment non-empty and neither '.' nor
 * '..', no NUL, valid Unicode. Anything else could escape the root or mean two things.
 */
function checkPath(path: unknown, what: string): string {
  if (typeof path !== 'string') throw new LayerEntryError(`${what} must be a string, got ${typeof path}`);
  const problem =
    path === ''
      ? 'is empty'
      : path.includes('\0')
        ? 'contains a NUL character'
        : path.startsWith('/')
          ? 'is absolute (paths in a layer are relative to its root)'
          : !wellFormed(path)
            ? 'is not valid Unicode'
            : path.split('/').some((segment) => segment === '')
              ? "has an empty segment ('//' or a trailing '/')"
              : path.split('/').some((segment) => segment === '.' || segment === '..')
                ? "has a '.' or '..' segment"
                : undefined;
  if (problem) throw new LayerEntryError(`${what} ${JSON.stringify(path)} ${problem}`);
  return path;
}

/** Whether a string survives UTF-8 encoding unchanged (no lone surrogates, which would become U+FFFD). */
function wellFormed(text: string): boolean {
  return !/[\uD800-\uDFFF]/.test(text) || Buffer.from(text, 'utf8').toString('utf8') === text;
}

function checkId(value: number | undefined, path: string, field: 'mode' | 'uid' | 'gid'): number | undefined {
  if (value === undefined) return undefined;
  if (!Number.isSafeInteger(value) || value < 0) throw new LayerEntryError(`layer entry ${JSON.stringify(path)}: ${field} must be a non-negative integer, got ${value}`);
  return value;
}

function sameMember(a: Member, b: Member): boolean {
  // A file's content cannot be compared without reading it, so two file entries for one path are
  // always a conflict; identical directories, symlinks and hardlinks merge.
  if (a.type === 'file' || b.type === 'file') return false;
  return a.type === b.type && a.mode === b.mode && a.uid === b.uid && a.gid === b.gid && a.linkname === b.linkname;
}

function describe(member: Member): string {
  const owner = `mode ${formatField('mode', member.mode)}, uid ${member.uid}, gid ${member.gid}`;
  if (member.type === 'file') return `a file of ${member.size} bytes (${owner})`;
  if (member.type === 'directory') return `a directory (${owner})`;
  return `a ${member.type} to ${JSON.stringify(member.linkname)} (${owner})`;
}

function formatField(field: 'mode' | 'uid' | 'gid', value: number): string {
  return field === 'mode' ? `0o${value.toString(8)}` : String(value);
}

// ---------------------------------------------------------------------------------------------
// Tar encoding (POSIX ustar + PAX extended headers, typeflag 'x').

const BLOCK = 512;
/** Chunk size of the pipeline: small files are coalesced into writes of about this size. */
const CHUNK = 64 * 1024;
const maxOctal7 = 0o7777777; // mode, uid, gid fields: 7 digits + NUL
const maxOctal11 = 0o77777777777; // size, mtime fields: 11 digits + NUL
const typeflags = { file: '0', hardlink: '1', symlink: '2', directory: '5' } as const;

/** What a tar header says about one member. `path` is relative, without a trailing '/' (added for directories). */
export interface TarHeaderFields {
  path: string;
  type: 'file' | 'directory' | 'symlink' | 'hardlink';
  mode: number;
  uid: number;
  gid: number;
  /** Content size; 0 for anything but a file. */
  size: number;
  /** Symlink target or hardlink target path. */
  linkname?: string;
}

/**
 * The header block(s) of one member: a PAX extended header when ustar cannot hold it, then the
 * ustar header; the caller writes the content and its padding to 512 bytes. Deterministic in the
 * same way as the layers (also used for the docker-archive sink's outer tar). Performs no path
 * validation: callers pass paths they built themselves or that writeLayer validated.
 */
export function encodeHeaders(member: TarHeaderFields, mtime: number): Buffer {
  const name = member.type === 'directory' ? `${member.path}/` : member.path;
  const pax: [string, string][] = [];

  // Names: ustar holds ASCII names of up to 100 bytes, or up to 256 split at a '/' into a
  // 155-byte prefix and a 100-byte name. Anything else goes into a PAX 'path' record (UTF-8 by
  // definition), and the ustar field gets an ASCII stand-in that PAX readers ignore.
  let split = isAscii(name) ? splitUstarName(name) : undefined;
  if (!split) {
    pax.push(['path', name]);
    split = { prefix: '', name: asciiStandIn(name, member.type === 'directory') };
  }
  let linkname = member.linkname ?? '';
  if (linkname !== '' && (!isAscii(linkname) || linkname.length > 100)) {
    pax.push(['linkpath', linkname]);
    linkname = asciiStandIn(linkname, false);
  }
  // Numbers too large for their octal field go into PAX records and the field holds 0, as Go's
  // archive/tar does.
  let { uid, gid, size } = member;
  let ustarMtime = mtime;
  if (size > maxOctal11) {
    pax.push(['size', String(size)]);
    size = 0;
  }
  if (uid > maxOctal7) {
    pax.push(['uid', String(uid)]);
    uid = 0;
  }
  if (gid > maxOctal7) {
    pax.push(['gid', String(gid)]);
    gid = 0;
  }
  if (mtime > maxOctal11) {
    pax.push(['mtime', String(mtime)]);
    ustarMtime = 0;
  }

  const header = ustarHeader({
    name: split.name,
    prefix: split.prefix,
    mode: member.mode & 0o7777,
    uid,
    gid,
    size,
    mtime: ustarMtime,
    typeflag: typeflags[member.type],
    linkname,
  });
  if (pax.length === 0) return header;

  const records = Buffer.from(pax.map(([key, value]) => paxRecord(key, value)).join(''), 'utf8');
  const paxHeader = ustarHeader({
    // A fixed, ASCII name: readers that do not know PAX extract the records as a plain file of
    // this name. No pid or counter (GNU tar's default "PaxHeaders.<pid>" is not reproducible).
    name: asciiStandIn(`PaxHeaders.0/${baseName(member.path)}`, false),
    prefix: '',
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: records.length,
    mtime: ustarMtime, // the PAX header's own header carries the fixed mtime too
    typeflag: 'x',
    linkname: '',
  });
  return Buffer.concat([paxHeader, records, padding(records.length), header]);
}

interface UstarFields {
  name: string;
  prefix: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  typeflag: string;
  linkname: string;
}

function ustarHeader(fields: UstarFields): Buffer {
  const block = Buffer.alloc(BLOCK); // zero-filled: unused bytes, uname, gname are all NUL
  block.write(fields.name, 0, 100, 'latin1');
  writeOctal(block, 100, 8, fields.mode);
  writeOctal(block, 108, 8, fields.uid);
  writeOctal(block, 116, 8, fields.gid);
  writeOctal(block, 124, 12, fields.size);
  writeOctal(block, 136, 12, fields.mtime);
  block.write(fields.typeflag, 156, 1, 'latin1');
  block.write(fields.linkname, 157, 100, 'latin1');
  block.write('ustar\0', 257, 6, 'latin1');
  block.write('00', 263, 2, 'latin1');
  // uname (265, 32) and gname (297, 32) stay empty: owners are numeric only, so nothing depends
  // on the build machine's user database.
  writeOctal(block, 329, 8, 0); // devmajor
  writeOctal(block, 337, 8, 0); // devminor
  block.write(fields.prefix, 345, 155, 'latin1');
  // Checksum: the sum of all header bytes with the checksum field counted as spaces, written as
  // six octal digits, NUL, space (the form every tar writes).
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1');
  return block;
}

function writeOctal(block: Buffer, offset: number, width: number, value: number): void {
  block.write(`${value.toString(8).padStart(width - 1, '0')}\0`, offset, width, 'latin1');
}

/** The ustar prefix/name split of an ASCII name, or undefined when it does not fit. */
function splitUstarName(name: string): { prefix: string; name: string } | undefined {
  if (name.length <= 100) return { prefix: '', name };
  // The shortest prefix that leaves at most 100 bytes of name; a longer prefix only makes it
  // worse, so if this one exceeds 155 bytes nothing fits. (The '/' at the split is implied.)
  const body = name.endsWith('/') ? name.length - 1 : name.length; // a directory's trailing '/' is not a split point
  for (let slash = name.indexOf('/'); slash !== -1 && slash < body; slash = name.indexOf('/', slash + 1)) {
    if (name.length - slash - 1 <= 100) return slash <= 155 ? { prefix: name.slice(0, slash), name: name.slice(slash + 1) } : undefined;
  }
  return undefined;
}

/** A PAX record: "<length> <key>=<value>\n", where length counts the whole record in bytes, its own digits included. */
function paxRecord(key: string, value: string): string {
  const rest = Buffer.byteLength(` ${key}=${value}\n`, 'utf8');
  let length = rest + String(rest).length;
  while (String(length).length + rest !== length) length = String(length).length + rest;
  return `${length} ${key}=${value}\n`;
}

function isAscii(text: string): boolean {
  return /^[\x01-\x7f]*$/.test(text);
}

/** An ASCII, at most 100-byte rendering of a name for the ustar field when PAX holds the real one. */
function asciiStandIn(name: string, directory: boolean): string {
  let ascii = name.replace(/[^\x20-\x7e]/g, '_');
  if (ascii.length > 100) ascii = directory ? `${ascii.slice(0, 99)}/` : ascii.slice(0, 100);
  return ascii;
}

function toBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

function padding(size: number): Buffer {
  const rest = size % BLOCK;
  return rest === 0 ? EMPTY : Buffer.alloc(BLOCK - rest);
}

const EMPTY = Buffer.alloc(0);

/**
 * The tar as a sequence of chunks. Headers and small contents are coalesced into chunks of about
 * CHUNK bytes (a tree of many small files would otherwise push thousands of tiny buffers through
 * every stage); large content chunks pass through as they come. Each file is opened only when it
 * is reached, and its byte count is checked against the size its header already declared.
 */
async function* tarChunks(members: Member[], mtime: number, collector: LayerFilesCollector): AsyncGenerator<Buffer> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  function* emit(chunk: Buffer): Generator<Buffer> {
    if (chunk.length === 0) return;
    if (chunk.length >= CHUNK) {
      if (pendingBytes > 0) yield takePending();
      yield chunk;
      return;
    }
    pending.push(chunk);
    pendingBytes += chunk.length;
    if (pendingBytes >= CHUNK) yield takePending();
  }
  function takePending(): Buffer {
    const out = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes);
    pending = [];
    pendingBytes = 0;
    return out;
  }

  for (const member of members) {
    yield* emit(encodeHeaders(member, mtime));
    await collector.add({ path: member.path, type: member.type, size: member.size, target: member.linkname });
    if (member.type !== 'file') continue;
    const source = await member.open!();
    let written = 0;
    const count = (chunk: Buffer): void => {
      written += chunk.length;
      if (written > member.size) throw new LayerEntryError(`file ${JSON.stringify(member.path)} yielded more than its declared size of ${member.size} bytes (did it change while the layer was written?)`);
      collector.data(chunk);
    };
    if (source instanceof Uint8Array) {
      const chunk = toBuffer(source);
      count(chunk);
      yield* emit(chunk);
    } else {
      if (!source || typeof (source as Readable)[Symbol.asyncIterator] !== 'function') {
        throw new LayerEntryError(`file ${JSON.stringify(member.path)}: open() returned neither a stream nor a Buffer`);
      }
      for await (const data of source as AsyncIterable<Buffer | Uint8Array | string>) {
        const chunk = typeof data === 'string' ? Buffer.from(data, 'utf8') : toBuffer(data);
        count(chunk);
        yield* emit(chunk);
      }
    }
    if (written !== member.size) {
      throw new LayerEntryError(`file ${JSON.stringify(member.path)} yielded ${written} bytes but its declared size is ${member.size} (did it change while the layer was written?)`);
    }
    await collector.endFile();
    yield* emit(padding(member.size));
  }
  // End of archive: two zero blocks.
  yield* emit(Buffer.alloc(2 * BLOCK));
  if (pendingBytes > 0) yield takePending();
}

// ---------------------------------------------------------------------------------------------
// Hashing and gzip framing.

/** Passes the tar through, computing its sha256 (the diff_id), size and CRC-32 (for the gzip trailer). */
class TarMeter extends HashingStream {
  crc = 0;

  override _transform(chunk: Buffer, encoding: BufferEncoding, callback: TransformCallback): void {
    this.crc = crc32(chunk, this.crc);
    super._transform(chunk, encoding, callback);
  }
}

/**
 * The fixed gzip member header (RFC 1952): magic 1f 8b, CM 8 (deflate), FLG 0 (no name, comment,
 * extra or header CRC), MTIME 0 ("no time stamp"), XFL 0, OS 255 ("unknown"). zlib's own gzip
 * wrapper (zlib.createGzip) writes the OS byte of the platform zlib was built for (3 on Unix, 0
 * or 10/11 on Windows, 19 on macOS in newer zlib), so the same tar would give a different blob
 * digest on another machine; here only the deflate stream varies, and that only with the level.
 */
export const GZIP_HEADER = Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff]);

/** Wraps a raw deflate stream in the fixed gzip header and the CRC-32/ISIZE trailer. */
class GzipFramer extends Transform {
  private started = false;

  constructor(
    private readonly meter: TarMeter,
    private readonly onBytes?: (compressedBytes: number) => void,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (!this.started) this.pushCounted(GZIP_HEADER);
    this.started = true;
    this.pushCounted(chunk);
    callback();
  }

  override _flush(callback: TransformCallback): void {
    // The deflate stream ends only after the tar has ended, so the meter's CRC and size are final.
    if (!this.started) this.pushCounted(GZIP_HEADER);
    this.started = true;
    const trailer = Buffer.alloc(8);
    trailer.writeUInt32LE(this.meter.crc >>> 0, 0);
    trailer.writeUInt32LE(this.meter.size % 2 ** 32, 4); // ISIZE: input size modulo 2^32
    this.pushCounted(trailer);
    callback();
  }

  private pushCounted(chunk: Buffer): void {
    this.push(chunk);
    this.onBytes?.(chunk.length);
  }
}
