import assert from 'node:assert/strict';
import { execFile as execFileCallback } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { crc32 } from 'node:zlib';
import type { LayerEntry } from '../../src/oci/layer-entry.js';
import { GZIP_HEADER, writeLayer, type WriteLayerOptions } from '../../src/oci/layer-writer.js';
import { MediaType } from '../../src/oci/media-types.js';
import { BlobStore } from '../../src/oci/store.js';

const execFile = promisify(execFileCallback);

// ------------------------------------------------------------------------------------------------
// Helpers

const cleanup: string[] = [];
after(async () => {
  for (const dir of cleanup) await rm(dir, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'uvimage-test-'));
  cleanup.push(dir);
  return dir;
}

async function newStore(): Promise<BlobStore> {
  return BlobStore.open(await tempDir());
}

async function write(entries: LayerEntry[] | AsyncIterable<LayerEntry>, options: WriteLayerOptions = {}, store?: BlobStore) {
  const s = store ?? (await newStore());
  const layer = await writeLayer(s, entries, options);
  const blob = await readFile(s.blobPath(layer.descriptor.digest));
  return { store: s, layer, blob, path: s.blobPath(layer.descriptor.digest) };
}

/** Decompresses with the system's gzip (an independent implementation) and returns the tar bytes. */
async function gunzip(path: string): Promise<Buffer> {
  const { stdout } = await execFile('gzip', ['-dc', path], { encoding: 'buffer', maxBuffer: 1 << 30 });
  return stdout;
}

function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** mulberry32: a tiny seeded PRNG, so generated trees are the same on every run. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function file(path: string, content: string | Buffer, extra: Partial<Extract<LayerEntry, { type: 'file' }>> = {}): LayerEntry {
  const bytes = typeof content === 'string' ? Buffer.from(content) : content;
  return { type: 'file', path, size: bytes.length, open: () => Readable.from([bytes]), ...extra };
}

function byteCompare(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

// ------------------------------------------------------------------------------------------------
// Independent readers: python3's tarfile (plus a raw header walk) and GNU tar.

interface PyMember {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  type: string;
  linkname: string;
  size: number;
  sha256: string | null;
  pax: Record<string, string>;
}

interface RawHeader {
  typeflag: string;
  name: string;
  mtime: number;
  uname: string;
  gname: string;
  size: number;
  records: string | null;
}

const pythonReader = String.raw`
import json, sys, tarfile, hashlib
path = sys.argv[1]
members = []
with tarfile.open(path, 'r:') as tar:
    for m in tar:
        digest = None
        if m.isreg():
            digest = 'sha256:' + hashlib.sha256(tar.extractfile(m).read()).hexdigest()
        members.append(dict(name=m.name, mode=m.mode, uid=m.uid, gid=m.gid, mtime=m.mtime,
                            type=m.type.decode(), linkname=m.linkname, size=m.size, sha256=digest,
                            pax=m.pax_headers))
# A raw walk over every header block, PAX extended headers included (tarfile hides those).
raw = []
with open(path, 'rb') as f:
    data = f.read()
offset = 0
zero = b'\0' * 512
ends = 0
while offset + 512 <= len(data):
    block = data[offset:offset + 512]
    offset += 512
    if block == zero:
        ends += 1
        continue
    field = lambda a, b: block[a:b].split(b'\0', 1)[0]
    size = int(field(124, 136) or b'0', 8)
    typeflag = block[156:157].decode()
    body = data[offset:offset + size]
    records = body.decode('utf-8') if typeflag == 'x' else None
    stored = sum(block[:148]) + 8 * 32 + sum(block[156:])
    assert int(field(148, 156).strip() or b'0', 8) == stored, 'bad checksum'
    raw.append(dict(typeflag=typeflag, name=field(0, 100).decode('latin1'), mtime=int(field(136, 148), 8),
                    uname=field(265, 297).decode('latin1'), gname=field(297, 329).decode('latin1'),
                    size=size, records=records))
    offset += (size + 511) // 512 * 512
json.dump(dict(members=members, raw=raw, ends=ends, length=len(data)), sys.stdout)
`;

async function readWithPython(tarPath: string): Promise<{ members: PyMember[]; raw: RawHeader[]; ends: number; length: number }> {
  const { stdout } = await execFile('python3', ['-c', pythonReader, tarPath], { maxBuffer: 1 << 28 });
  return JSON.parse(stdout);
}

interface GnuListed {
  mode: number;
  kind: string;
  uid: number;
  gid: number;
  mtime: number;
  name: string;
  link?: string;
}

function permsToMode(perms: string): number {
  let mode = 0;
  const bits = [0o400, 0o200, 0o100, 0o40, 0o20, 0o10, 0o4, 0o2, 0o1];
  for (let i = 0; i < 9; i++) {
    const c = perms[i + 1]!;
    if (c !== '-' && c !== 'S' && c !== 'T') mode |= bits[i]!;
  }
  if ('sS'.includes(perms[3]!)) mode |= 0o4000;
  if ('sS'.includes(perms[6]!)) mode |= 0o2000;
  if ('tT'.includes(perms[9]!)) mode |= 0o1000;
  return mode;
}

async function listWithGnuTar(tarPath: string): Promise<GnuListed[]> {
  const { stdout } = await execFile('tar', ['--quoting-style=literal', '--numeric-owner', '--full-time', '-tvf', tarPath], {
    env: { ...process.env, TZ: 'UTC', LC_ALL: 'C.UTF-8' },
    maxBuffer: 1 << 28,
  });
  return stdout
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => {
      const match = /^(\S{10}) (\d+)\/(\d+)\s+(\d+) (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) (.*)$/.exec(line);
      assert.ok(match, `unparsed GNU tar line: ${line}`);
      const [, perms, uid, gid, , time, rest] = match;
      let name = rest!;
      let link: string | undefined;
      const kind = perms![0]!;
      const arrow = kind === 'l' ? ' -> ' : kind === 'h' ? ' link to ' : undefined;
      if (arrow) {
        const at = name.indexOf(arrow);
        link = name.slice(at + arrow.length);
        name = name.slice(0, at);
      }
      return { mode: permsToMode(perms!), kind, uid: Number(uid), gid: Number(gid), mtime: Date.parse(`${time!.replace(' ', 'T')}Z`) / 1000, name, link };
    });
}

// ------------------------------------------------------------------------------------------------
// Generated trees

interface ExpectedMember {
  path: string;
  type: 'file' | 'directory' | 'symlink' | 'hardlink';
  mode: number;
  uid: number;
  gid: number;
  content?: Buffer;
  linkname?: string;
}

/**
 * A random tree: nested directories (some explicit with odd modes/owners, some implicit, some
 * empty), files with random contents given as Buffers, streams in random chunks or promises,
 * symlinks (relative, absolute, long, unicode, dangling), hardlinks (before and after their
 * target in sort order), names of every kind (ASCII, unicode, >100 and >255 bytes).
 */
function generateTree(seed: number): { entries: LayerEntry[]; expected: ExpectedMember[] } {
  const random = prng(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const int = (max: number) => Math.floor(random() * max);
  const unicode = ['é', 'ñ', 'ü', '日本語', 'Ω', '🐍', 'ß', 'Ǆ', 'ﬁ', 'א'];
  const segment = (): string => {
    const kind = random();
    if (kind < 0.15) return 'x'.repeat(60 + int(60)) + String(int(1000)); // long segments push paths past 100 and 255 bytes
    let name = '';
    const length = 1 + int(10);
    for (let i = 0; i < length; i++) name += random() < 0.2 ? pick(unicode) : pick([...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789_-.+ ']);
    // Keep names valid and unambiguous for the GNU tar listing parser.
    name = name.trim().replace(/^\.+$/, 'dots');
    return name === '' ? 'n' : name;
  };

  const taken = new Set<string>();
  const directories: string[] = [''];
  const explicitDirs = new Map<string, ExpectedMember>();
  const files: ExpectedMember[] = [];
  const others: ExpectedMember[] = [];
  const unique = (parent: string): string => {
    for (;;) {
      const path = parent === '' ? segment() : `${parent}/${segment()}`;
      if (!taken.has(path)) {
        taken.add(path);
        return path;
      }
    }
  };

  for (let i = 0; i < 25; i++) {
    const path = unique(pick(directories));
    directories.push(path);
    if (random() < 0.5) explicitDirs.set(path, { path, type: 'directory', mode: pick([0o755, 0o750, 0o700, 0o775, 0o2775]), uid: pick([0, 1000, 65534]), gid: pick([0, 100, 1000]) });
  }
  // Guaranteed empty directories (never picked as a parent below).
  for (let i = 0; i < 2; i++) {
    const path = unique(pick(directories));
    explicitDirs.set(path, { path, type: 'directory', mode: pick([0o755, 0o700]), uid: 0, gid: 0 });
  }
  // A guaranteed deep path of more than 255 bytes, and a single segment that cannot be split.
  const deep = ['a'.repeat(90), 'b'.repeat(90), 'c'.repeat(90)].join('/');
  for (const path of ['a'.repeat(90), 'a'.repeat(90) + '/' + 'b'.repeat(90), deep]) {
    taken.add(path);
    directories.push(path);
  }
  files.push({ path: `${deep}/${'d'.repeat(30)}.py`, type: 'file', mode: 0o644, uid: 0, gid: 0, content: Buffer.from('print("deep")\n') });
  files.push({ path: `${'s'.repeat(140)}.txt`, type: 'file', mode: 0o644, uid: 0, gid: 0, content: Buffer.from('single long segment\n') });
  files.push({ path: `${'p'.repeat(100)}`, type: 'file', mode: 0o600, uid: 0, gid: 0, content: Buffer.from('exactly 100\n') });
  for (const extra of files) taken.add(extra.path);

  for (let i = 0; i < 60; i++) {
    const path = unique(pick(directories));
    const size = pick([0, 1, 511, 512, 513, 1024, int(5000), int(70_000)]);
    const content = Buffer.alloc(size);
    for (let b = 0; b < size; b++) content[b] = random() < 0.5 ? 0x61 + (b % 7) : int(256);
    files.push({ path, type: 'file', mode: pick([0o644, 0o600, 0o755, 0o640, 0o444]), uid: pick([0, 1000]), gid: pick([0, 1000]), content });
  }
  for (let i = 0; i < 12; i++) {
    const path = unique(pick(directories));
    const linkname = pick([
      () => pick(files).path,
      () => '/usr/bin/python3',
      () => `../${'t'.repeat(120)}/target`,
      () => `./${pick(unicode)}/ziel`,
      () => 'dangling-target',
    ])();
    others.push({ path, type: 'symlink', mode: 0o777, uid: 0, gid: 0, linkname });
  }
  for (let i = 0; i < 10; i++) {
    // Hardlink names drawn from the whole tree, so some sort before their target and some after.
    const target = pick(files);
    const path = random() < 0.3 ? unique('') : unique(pick(directories));
    others.push({ path, type: 'hardlink', mode: target.mode, uid: target.uid, gid: target.gid, linkname: target.path });
  }

  const entries: LayerEntry[] = [];
  for (const dir of explicitDirs.values()) entries.push({ type: 'directory', path: dir.path, mode: dir.mode, uid: dir.uid, gid: dir.gid });
  for (const f of files) {
    const content = f.content!;
    const style = int(3);
    const open =
      style === 0
        ? () => content
        : style === 1
          ? () => {
              const chunks: Buffer[] = [];
              for (let at = 0; at < content.length; ) {
                const n = 1 + Math.floor(Math.random() * 3000); // chunking must not matter: not seeded on purpose
                chunks.push(content.subarray(at, at + n));
                at += n;
              }
              return Readable.from(chunks);
            }
          : async () => Readable.from([content]);
    entries.push({ type: 'file', path: f.path, size: content.length, mode: f.mode, uid: f.uid, gid: f.gid, open });
  }
  for (const other of others) {
    if (other.type === 'symlink') entries.push({ type: 'symlink', path: other.path, target: other.linkname! });
    else entries.push({ type: 'hardlink', path: other.path, target: other.linkname! });
  }
  // Shuffle: the output must not depend on input order.
  for (let i = entries.length - 1; i > 0; i--) {
    const j = int(i + 1);
    [entries[i], entries[j]] = [entries[j]!, entries[i]!];
  }

  // What the layer must hold: every parent, implicit ones as 0755 root dirs; hard link groups
  // written as the file under the name that sorts first and links to it under the others.
  const expected = new Map<string, ExpectedMember>();
  for (const f of files) expected.set(f.path, f);
  for (const o of others) expected.set(o.path, { ...o });
  for (const d of explicitDirs.values()) expected.set(d.path, d);
  for (const path of [...expected.keys()]) {
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join('/');
      if (!expected.has(parent)) expected.set(parent, { path: parent, type: 'directory', mode: 0o755, uid: 0, gid: 0 });
    }
  }
  for (const d of directories) if (d !== '' && !expected.has(d)) expected.set(d, { path: d, type: 'directory', mode: 0o755, uid: 0, gid: 0 });
  // Directories only reachable via `directories` that hold nothing are not in the entries: drop them.
  const mentioned = new Set(entries.map((entry) => entry.path));
  for (const [path, member] of expected) {
    if (member.type !== 'directory' || mentioned.has(path)) continue;
    const hasChild = [...expected.keys()].some((other) => other.startsWith(`${path}/`) && mentioned.has(other));
    if (!hasChild) expected.delete(path);
  }
  const groups = new Map<string, ExpectedMember[]>();
  for (const member of expected.values()) {
    if (member.type !== 'hardlink') continue;
    const group = groups.get(member.linkname!) ?? [expected.get(member.linkname!)!];
    group.push(member);
    groups.set(member.linkname!, group);
  }
  for (const group of groups.values()) {
    const content = group[0]!.content!;
    const primary = group.map((member) => member.path).sort(byteCompare)[0]!;
    for (const member of group) {
      const replacement: ExpectedMember =
        member.path === primary
          ? { path: member.path, type: 'file', mode: group[0]!.mode, uid: group[0]!.uid, gid: group[0]!.gid, content }
          : { path: member.path, type: 'hardlink', mode: group[0]!.mode, uid: group[0]!.uid, gid: group[0]!.gid, linkname: primary, content };
      expected.set(member.path, replacement);
    }
  }
  return { entries, expected: [...expected.values()].sort((a, b) => byteCompare(a.path, b.path)) };
}

const typeflag = { file: '0', hardlink: '1', symlink: '2', directory: '5' } as const;

// ------------------------------------------------------------------------------------------------
// Tests

describe('writeLayer: determinism', () => {
  test('the same entries twice give identical bytes and digests', async () => {
    const store = await newStore();
    const first = await write(generateTree(1).entries, { mtime: 0 }, store);
    const otherStore = await newStore();
    const second = await write(generateTree(1).entries, { mtime: 0 }, otherStore);
    assert.equal(second.layer.descriptor.digest, first.layer.descriptor.digest);
    assert.equal(second.layer.diffId, first.layer.diffId);
    assert.ok(first.blob.equals(second.blob));
    // Writing into a store that already has the blob is fine and gives the same answer.
    const again = await write(generateTree(1).entries, { mtime: 0 }, store);
    assert.deepEqual(again.layer, first.layer);
  });

  test('entries in a different order give identical output', async () => {
    const { entries } = generateTree(2);
    const a = await write(entries);
    const b = await write([...entries].reverse());
    const c = await write([...entries].sort((x, y) => (x.path < y.path ? 1 : -1)));
    assert.ok(a.blob.equals(b.blob));
    assert.ok(a.blob.equals(c.blob));
  });

  test('async iterables work like arrays', async () => {
    const { entries } = generateTree(3);
    async function* source(): AsyncGenerator<LayerEntry> {
      for (const entry of entries) yield entry;
    }
    const a = await write(entries);
    const b = await write(source());
    assert.equal(a.layer.descriptor.digest, b.layer.descriptor.digest);
  });

  test('the empty layer is two zero blocks with the well-known diff_id', async () => {
    const { layer, path } = await write([]);
    const tar = await gunzip(path);
    assert.deepEqual(tar, Buffer.alloc(1024));
    assert.equal(layer.diffId, 'sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef');
    assert.equal(layer.uncompressedSize, 1024);
  });

  test('the compression level changes the blob but not the diff_id', async () => {
    const { entries } = generateTree(4);
    const six = await write(entries);
    const one = await write(entries, { compressionLevel: 1 });
    const nine = await write(entries, { compressionLevel: 9 });
    assert.equal(one.layer.diffId, six.layer.diffId);
    assert.equal(nine.layer.diffId, six.layer.diffId);
    assert.notEqual(one.layer.descriptor.digest, six.layer.descriptor.digest);
    await assert.rejects(writeLayer(six.store, entries, { compressionLevel: 10 }), /compression level/);
  });
});

describe('writeLayer: gzip framing', () => {
  test('fixed header, valid stream, trailer, digests and sizes', async () => {
    const { entries } = generateTree(5);
    let reported = 0;
    const { layer, blob, path } = await write(entries, { onBytes: (n) => (reported += n) });
    assert.deepEqual(blob.subarray(0, 10), Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff]));
    assert.deepEqual(GZIP_HEADER, blob.subarray(0, 10));
    await execFile('gzip', ['-t', path]);
    const tar = await gunzip(path);
    assert.equal(sha256(tar), layer.diffId);
    assert.equal(tar.length, layer.uncompressedSize);
    assert.equal(tar.length % 512, 0);
    assert.equal(blob.readUInt32LE(blob.length - 8), crc32(tar));
    assert.equal(blob.readUInt32LE(blob.length - 4), tar.length % 2 ** 32);
    assert.equal(layer.descriptor.digest, sha256(blob));
    assert.equal(layer.descriptor.size, blob.length);
    assert.equal(layer.descriptor.mediaType, MediaType.ociLayerGzip);
    assert.equal(reported, blob.length);
  });

  test('a multi-megabyte file streamed in small chunks', async () => {
    const size = 3 * 1024 * 1024 + 123;
    const random = prng(99);
    const content = Buffer.alloc(size);
    for (let i = 0; i < size; i++) content[i] = i % 3 === 0 ? Math.floor(random() * 256) : 0x20;
    async function* chunks(): AsyncGenerator<Buffer> {
      for (let at = 0; at < size; at += 1000) yield content.subarray(at, at + 1000);
    }
    const { layer, path } = await write([{ type: 'file', path: 'big.bin', size, open: () => Readable.from(chunks()) }]);
    const tar = await gunzip(path);
    assert.equal(sha256(tar), layer.diffId);
    const { members } = await readWithPython(await saveTar(tar));
    assert.equal(members[0]!.sha256, sha256(content));
  });
});

async function saveTar(tar: Buffer): Promise<string> {
  const path = join(await tempDir(), 'layer.tar');
  await writeFile(path, tar);
  return path;
}

describe('writeLayer: generated trees read back by independent readers', () => {
  for (const seed of [11, 12, 13]) {
    test(`seed ${seed}: python tarfile, GNU tar listing and GNU tar extraction agree with the entries`, async () => {
      const mtime = 1_700_000_000 + seed;
      const { entries, expected } = generateTree(seed);
      const { layer, path } = await write(entries, { mtime });
      const tar = await gunzip(path);
      assert.equal(sha256(tar), layer.diffId);
      const tarPath = await saveTar(tar);

      // The tree really exercises what it should.
      const bytes = (p: string) => Buffer.byteLength(p, 'utf8');
      assert.ok(expected.some((m) => bytes(m.path) > 255));
      assert.ok(expected.some((m) => bytes(m.path) > 100 && bytes(m.path) <= 255));
      assert.ok(expected.some((m) => /[^\x00-\x7f]/.test(m.path)));
      assert.ok(expected.some((m) => m.type === 'hardlink'));
      assert.ok(expected.some((m) => m.type === 'symlink' && m.linkname!.length > 100));
      assert.ok(expected.some((m) => m.type === 'directory' && !expected.some((other) => other.path.startsWith(`${m.path}/`))), 'an empty directory');

      // python3 tarfile
      const python = await readWithPython(tarPath);
      assert.deepEqual(
        python.members.map((m) => m.name),
        expected.map((m) => m.path),
      );
      for (const [index, want] of expected.entries()) {
        const got = python.members[index]!;
        assert.equal(got.type, typeflag[want.type], want.path);
        assert.equal(got.mode, want.mode, `${want.path}: mode`);
        assert.equal(got.uid, want.uid, `${want.path}: uid`);
        assert.equal(got.gid, want.gid, `${want.path}: gid`);
        assert.equal(got.mtime, mtime, `${want.path}: mtime`);
        if (want.type === 'file') {
          assert.equal(got.size, want.content!.length);
          assert.equal(got.sha256, sha256(want.content!), `${want.path}: content`);
        } else {
          assert.equal(got.size, 0, `${want.path}: size`);
        }
        if (want.type === 'symlink' || want.type === 'hardlink') assert.equal(got.linkname, want.linkname, `${want.path}: link`);
        // Only path/linkpath ever go to PAX here, and never atime/ctime or anything else.
        for (const key of Object.keys(got.pax)) assert.ok(key === 'path' || key === 'linkpath', `${want.path}: PAX key ${key}`);
      }
      // Raw headers: every one (PAX headers included) has the fixed mtime and no user/group names.
      assert.ok(python.raw.some((h) => h.typeflag === 'x'));
      for (const header of python.raw) {
        assert.equal(header.mtime, mtime, `${header.typeflag} ${header.name}: raw mtime`);
        assert.equal(header.uname, '');
        assert.equal(header.gname, '');
        assert.ok(['0', '1', '2', '5', 'x'].includes(header.typeflag));
      }
      assert.equal(python.ends, 2, 'the archive ends with exactly two zero blocks');

      // GNU tar listing
      const listed = await listWithGnuTar(tarPath);
      assert.deepEqual(
        listed.map((m) => m.name),
        expected.map((m) => (m.type === 'directory' ? `${m.path}/` : m.path)),
      );
      for (const [index, want] of expected.entries()) {
        const got = listed[index]!;
        assert.equal(got.kind, { file: '-', directory: 'd', symlink: 'l', hardlink: 'h' }[want.type], want.path);
        if (want.type !== 'symlink') assert.equal(got.mode, want.mode, `${want.path}: GNU mode`);
        assert.equal(got.uid, want.uid);
        assert.equal(got.gid, want.gid);
        assert.equal(got.mtime, mtime);
        if (want.linkname !== undefined) assert.equal(got.link, want.linkname);
      }

      // GNU tar extraction
      const root = join(await tempDir(), 'root');
      await mkdir(root);
      await execFile('tar', ['-x', '-p', '--no-same-owner', '-f', tarPath, '-C', root]);
      const inodes = new Map<string, number>();
      for (const want of expected) {
        const at = join(root, want.path);
        const stats = await lstat(at);
        if (want.type === 'directory') {
          assert.ok(stats.isDirectory(), want.path);
          assert.equal(stats.mode & 0o7777, want.mode, `${want.path}: extracted mode`);
          assert.equal(Math.floor(stats.mtimeMs / 1000), mtime);
        } else if (want.type === 'symlink') {
          assert.ok(stats.isSymbolicLink(), want.path);
          assert.equal(await readlink(at), want.linkname);
        } else {
          assert.ok(stats.isFile(), want.path);
          assert.equal(stats.mode & 0o7777, want.mode, `${want.path}: extracted mode`);
          assert.equal(Math.floor(stats.mtimeMs / 1000), mtime);
          assert.ok((await readFile(at)).equals(want.content!), `${want.path}: extracted content`);
          if (want.type === 'hardlink') assert.equal(stats.ino, inodes.get(want.linkname!), `${want.path}: same inode as ${want.linkname}`);
          else inodes.set(want.path, stats.ino);
        }
      }
    });
  }
});

describe('writeLayer: tree rules', () => {
  test('missing parents are added as 0755 root directories, in byte order', async () => {
    const { path } = await write([file('usr/lib/python3/site.py', 'x'), { type: 'directory', path: 'usr', mode: 0o700, uid: 5, gid: 6 }]);
    const { members } = await readWithPython(await saveTar(await gunzip(path)));
    assert.deepEqual(
      members.map((m) => [m.name, m.type, m.mode, m.uid, m.gid]),
      [
        ['usr', '5', 0o700, 5, 6],
        ['usr/lib', '5', 0o755, 0, 0],
        ['usr/lib/python3', '5', 0o755, 0, 0],
        ['usr/lib/python3/site.py', '0', 0o644, 0, 0],
      ],
    );
  });

  test('order is by UTF-8 bytes, not by locale', async () => {
    const names = ['é', 'z', 'Z', 'a-b', 'a/b', 'B', '日本', 'a.txt', 'ä', 'A'];
    const { path } = await write(names.map((name) => file(name, name)));
    const { members } = await readWithPython(await saveTar(await gunzip(path)));
    assert.deepEqual(
      members.map((m) => m.name),
      ['A', 'B', 'Z', 'a', 'a-b', 'a.txt', 'a/b', 'z', 'ä', 'é', '日本'],
    );
  });

  test('modes: defaults, permission bits only', async () => {
    const { path } = await write([
      file('f', 'x'),
      file('setuid', 'x', { mode: 0o104755 }),
      { type: 'directory', path: 'd' },
      { type: 'directory', path: 'sticky', mode: 0o41777 },
      { type: 'symlink', path: 'l', target: 'f' },
    ]);
    const { members, raw } = await readWithPython(await saveTar(await gunzip(path)));
    const modes = Object.fromEntries(members.map((m) => [m.name, m.mode]));
    assert.deepEqual(modes, { d: 0o755, f: 0o644, l: 0o777, setuid: 0o4755, sticky: 0o1777 });
    assert.deepEqual(
      raw.map((h) => h.name),
      ['d/', 'f', 'l', 'setuid', 'sticky/'],
      'directory names end with / in the tar',
    );
  });

  test('ustar prefix split for names up to 256 bytes, PAX beyond and for non-ASCII', async () => {
    const exactly100 = 'n'.repeat(100);
    const split = `${'p'.repeat(150)}/${'n'.repeat(100)}`;
    const tooLong = `${'p'.repeat(156)}/${'n'.repeat(10)}`;
    const { path } = await write([file(exactly100, '1'), file(split, '2'), file(tooLong, '3'), file('naïve', '4'), { type: 'symlink', path: 'sym', target: 'ü' }]);
    const { members, raw } = await readWithPython(await saveTar(await gunzip(path)));
    const pax = Object.fromEntries(members.map((m) => [m.name, m.pax]));
    assert.deepEqual(pax[exactly100], {});
    assert.deepEqual(pax[split], {});
    assert.deepEqual(pax[tooLong], { path: tooLong });
    assert.deepEqual(pax['naïve'], { path: 'naïve' });
    assert.deepEqual(pax['sym'], { linkpath: 'ü' });
    // The implicit parents ('p' x 150 + '/', 'p' x 156 + '/') have no '/' to split at: PAX too.
    assert.deepEqual(pax['p'.repeat(150)], { path: `${'p'.repeat(150)}/` });
    assert.deepEqual(pax['p'.repeat(156)], { path: `${'p'.repeat(156)}/` });
    assert.equal(raw.filter((h) => h.typeflag === 'x').length, 5);
  });

  test('uid/gid beyond the 7-digit octal field go into PAX records', async () => {
    const { path } = await write([file('big-ids', 'x', { uid: 3_000_000, gid: 2_097_152 }), file('max-ids', 'y', { uid: 0o7777777, gid: 0o7777777 })]);
    const { members } = await readWithPython(await saveTar(await gunzip(path)));
    assert.deepEqual(
      members.map((m) => [m.name, m.uid, m.gid, m.pax]),
      [
        ['big-ids', 3_000_000, 2_097_152, { uid: '3000000', gid: '2097152' }],
        ['max-ids', 0o7777777, 0o7777777, {}],
      ],
    );
  });

  test('hardlinks: written after the name that sorts first, pointing at it', async () => {
    const { path } = await write([file('z/file', 'shared', { mode: 0o755, uid: 7, gid: 8 }), { type: 'hardlink', path: 'a/link', target: 'z/file' }, { type: 'hardlink', path: 'z/zz', target: 'z/file' }]);
    const tarPath = await saveTar(await gunzip(path));
    const { members } = await readWithPython(tarPath);
    assert.deepEqual(
      members.filter((m) => m.type !== '5').map((m) => [m.name, m.type, m.linkname, m.size, m.mode, m.uid, m.gid]),
      [
        ['a/link', '0', '', 6, 0o755, 7, 8],
        ['z/file', '1', 'a/link', 0, 0o755, 7, 8],
        ['z/zz', '1', 'a/link', 0, 0o755, 7, 8],
      ],
    );
  });

  test('duplicates: identical directories and links merge, anything else is an error', async () => {
    const merged = await write([
      { type: 'directory', path: 'd', mode: 0o750 },
      { type: 'directory', path: 'd', mode: 0o750 },
      { type: 'symlink', path: 'l', target: 'd' },
      { type: 'symlink', path: 'l', target: 'd' },
    ]);
    const { members } = await readWithPython(await saveTar(await gunzip(merged.path)));
    assert.deepEqual(
      members.map((m) => m.name),
      ['d', 'l'],
    );
    const store = merged.store;
    const conflicts: LayerEntry[][] = [
      [file('f', 'a'), file('f', 'a')],
      [file('f', 'a'), file('f', 'b')],
      [file('x', 'a'), { type: 'directory', path: 'x' }],
      [{ type: 'directory', path: 'd', mode: 0o755 }, { type: 'directory', path: 'd', mode: 0o700 }],
      [{ type: 'directory', path: 'd' }, { type: 'directory', path: 'd', uid: 1 }],
      [{ type: 'symlink', path: 'l', target: 'a' }, { type: 'symlink', path: 'l', target: 'b' }],
    ];
    for (const entries of conflicts) {
      await assert.rejects(writeLayer(store, entries), (error: Error) => {
        assert.match(error.message, /is given twice/);
        assert.match(error.message, new RegExp(`"${entries[0]!.path}"`));
        return true;
      });
    }
  });

  test('an entry below a file or symlink is an error', async () => {
    const store = await newStore();
    await assert.rejects(writeLayer(store, [file('a', 'x'), file('a/b', 'y')]), /"a\/b" is below "a", which is a file/);
    await assert.rejects(writeLayer(store, [{ type: 'symlink', path: 'lib', target: '/etc' }, file('lib/x', 'y')]), /which is a symlink/);
  });

  test('hardlink targets must be files of the same layer', async () => {
    const store = await newStore();
    await assert.rejects(writeLayer(store, [{ type: 'hardlink', path: 'h', target: 'missing' }]), /hardlink "h" points at "missing", which is not in the layer/);
    await assert.rejects(writeLayer(store, [{ type: 'directory', path: 'd' }, { type: 'hardlink', path: 'h', target: 'd' }]), /which is a directory/);
    await assert.rejects(writeLayer(store, [{ type: 'symlink', path: 's', target: 'x' }, { type: 'hardlink', path: 'h', target: 's' }]), /which is a symlink/);
    await assert.rejects(writeLayer(store, [file('f', 'x'), { type: 'hardlink', path: 'h', target: 'f' }, { type: 'hardlink', path: 'h2', target: 'h' }]), /"h2" points at "h", which is a hardlink/);
    await assert.rejects(writeLayer(store, [{ type: 'hardlink', path: 'h', target: '../f' }]), /hardlink "h" target "..\/f"/);
    await assert.rejects(writeLayer(store, [file('f', 'x', { mode: 0o600 }), { type: 'hardlink', path: 'h', target: 'f', mode: 0o644 }]), /shares its target's mode/);
  });

  test('hostile and malformed paths are rejected with the path in the message', async () => {
    const store = await newStore();
    const cases: [string, RegExp][] = [
      ['/etc/passwd', /"\/etc\/passwd" is absolute/],
      ['a/../../x', /"a\/..\/..\/x" has a '.' or '..' segment/],
      ['..', /"\.\." has a '.' or '..' segment/],
      ['./a', /"\.\/a" has a '.' or '..' segment/],
      ['a/.', /has a '.' or '..' segment/],
      ['', /"" is empty/],
      ['a//b', /"a\/\/b" has an empty segment/],
      ['a/', /"a\/" has an empty segment/],
      ['a\0b', /contains a NUL/],
      ['bad\uD800surrogate', /is not valid Unicode/],
    ];
    for (const [path, message] of cases) {
      let opened = false;
      const entries: LayerEntry[] = [file('ok', 'fine', { open: () => ((opened = true), Buffer.from('fine')) }), file(path, 'x')];
      await assert.rejects(writeLayer(store, entries), message, JSON.stringify(path));
      assert.equal(opened, false, 'validation happens before any content is opened');
    }
    await assert.rejects(writeLayer(store, [{ type: 'symlink', path: 's', target: '' }]), /symlink "s" has an invalid target/);
    assert.deepEqual(await readdir(join(store.root, 'tmp')), []);
    assert.deepEqual(await readdir(join(store.root, 'blobs', 'sha256')), []);
  });

  test('absolute and relative symlink targets are stored as given', async () => {
    const { path } = await write([{ type: 'symlink', path: 'bin/python', target: '/usr/bin/python3.12' }, { type: 'symlink', path: 'up', target: '../../x' }]);
    const { members } = await readWithPython(await saveTar(await gunzip(path)));
    assert.deepEqual(
      members.filter((m) => m.type === '2').map((m) => [m.name, m.linkname]),
      [
        ['bin/python', '/usr/bin/python3.12'],
        ['up', '../../x'],
      ],
    );
  });
});

describe('writeLayer: contents', () => {
  test('each file is opened once, when reached, in output order, after all entries were read', async () => {
    const log: string[] = [];
    let entriesDone = false;
    const names = ['c', 'a/x', 'b', 'a/y'];
    async function* source(): AsyncGenerator<LayerEntry> {
      for (const name of names) {
        yield {
          type: 'file',
          path: name,
          size: 1,
          open: () => {
            assert.ok(entriesDone, 'opened before all entries were read');
            log.push(name);
            return Readable.from([Buffer.from('!')]);
          },
        };
      }
      entriesDone = true;
    }
    await write(source());
    assert.deepEqual(log, ['a/x', 'a/y', 'b', 'c']);
  });

  for (const [label, open, declared] of [
    ['a stream yielding fewer bytes', () => Readable.from([Buffer.from('short')]), 10],
    ['a stream yielding more bytes', () => Readable.from([Buffer.from('much'), Buffer.from('too long')]), 6],
    ['a Buffer of the wrong length', () => Buffer.from('abc'), 4],
    ['an empty stream for a non-empty file', () => Readable.from([]), 1],
  ] as const) {
    test(`size mismatch (${label}) is rejected and leaves nothing in the store`, async () => {
      const store = await newStore();
      const big = Buffer.alloc(300_000, 7);
      const entries: LayerEntry[] = [file('a-first', big), { type: 'file', path: 'b/bad', size: declared, open }, file('c-after', 'never reached')];
      await assert.rejects(writeLayer(store, entries), (error: Error) => {
        assert.match(error.message, /file "b\/bad" yielded/);
        return true;
      });
      assert.deepEqual(await readdir(join(store.root, 'tmp')), []);
      assert.deepEqual(await readdir(join(store.root, 'blobs', 'sha256')), []);
    });
  }

  test('an error thrown by open() aborts the write and leaves nothing behind', async () => {
    const store = await newStore();
    const failing: LayerEntry = {
      type: 'file',
      path: 'x',
      size: 1,
      open: async () => {
        throw new Error('cannot read x');
      },
    };
    await assert.rejects(writeLayer(store, [file('a', Buffer.alloc(100_000)), failing]), /cannot read x/);
    assert.deepEqual(await readdir(join(store.root, 'tmp')), []);
    assert.deepEqual(await readdir(join(store.root, 'blobs', 'sha256')), []);
  });
});

describe('writeLayer: timestamps', () => {
  async function rawHeaders(layer: { path: string }) {
    return (await readWithPython(await saveTar(await gunzip(layer.path)))).raw;
  }
  const longName = `${'q'.repeat(200)}/ünïcödé`;
  const entries = (): LayerEntry[] => [file(longName, 'x'), { type: 'symlink', path: 'l', target: 't'.repeat(150) }];

  test('SOURCE_DATE_EPOCH is the default mtime of every header, PAX headers included', async () => {
    const saved = process.env.SOURCE_DATE_EPOCH;
    try {
      process.env.SOURCE_DATE_EPOCH = '1234567890';
      const raw = await rawHeaders(await write(entries()));
      assert.equal(raw.filter((h) => h.typeflag === 'x').length, 3); // 'l', the parent 'qqq…/' and the long name
      for (const header of raw) assert.equal(header.mtime, 1234567890, `${header.typeflag} ${header.name}`);
      // An explicit mtime wins over SOURCE_DATE_EPOCH.
      const explicit = await rawHeaders(await write(entries(), { mtime: 42 }));
      for (const header of explicit) assert.equal(header.mtime, 42, `${header.typeflag} ${header.name}`);
      delete process.env.SOURCE_DATE_EPOCH;
      const epoch = await rawHeaders(await write(entries()));
      for (const header of epoch) assert.equal(header.mtime, 0, `${header.typeflag} ${header.name}`);
    } finally {
      if (saved === undefined) delete process.env.SOURCE_DATE_EPOCH;
      else process.env.SOURCE_DATE_EPOCH = saved;
    }
  });

  test('the raw PAX header block carries the mtime in its ustar header and only path/linkpath records', async () => {
    const { path } = await write(entries(), { mtime: 0o1234567 });
    const tar = await gunzip(path);
    // Walk the blocks by hand: find every typeflag 'x' header.
    const seen: string[] = [];
    for (let offset = 0; offset + 512 <= tar.length; ) {
      const block = tar.subarray(offset, offset + 512);
      offset += 512;
      if (block.every((byte) => byte === 0)) continue;
      const size = parseInt(block.toString('latin1', 124, 135), 8);
      const flag = String.fromCharCode(block[156]!);
      assert.equal(block.toString('latin1', 136, 148), '00001234567\0', `mtime field of a '${flag}' header`);
      assert.ok(block.subarray(265, 329).every((byte) => byte === 0), 'uname and gname are empty');
      if (flag === 'x') {
        const records = tar.toString('utf8', offset, offset + size);
        seen.push(records);
        assert.doesNotMatch(records, /time=/, 'no atime/ctime/mtime records');
      }
      offset += Math.ceil(size / 512) * 512;
    }
    // 'l' sorts before 'qqq…/', its parent directory before it. Record lengths count their own
    // digits: 161 + 3, 208 + 3 and 219 + 3 bytes.
    assert.deepEqual(seen, [`164 linkpath=${'t'.repeat(150)}\n`, `211 path=${'q'.repeat(200)}/\n`, `222 path=${longName}\n`]);
  });

  test('a bad mtime is rejected', async () => {
    const store = await newStore();
    await assert.rejects(writeLayer(store, [], { mtime: -1 }), /mtime/);
    await assert.rejects(writeLayer(store, [], { mtime: 1.5 }), /mtime/);
  });
});

