/**
 * The streaming .deb reader on packages crafted here with `ar`, `tar` and Python's tarfile: the
 * tar dialects (ustar with prefix, GNU long names, PAX), the compressions, merged-/usr, the
 * rejection of hostile members, and memory that does not grow with the package.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { debLayerEntries, mergeUsrPath, readDebFile, type OpenedDeb } from '../../src/debian/deb.js';
import { ArchiveFormatError, normalizeArchivePath } from '../../src/oci/spooled-tar.js';
import { readTar } from '../../src/oci/tar-reader.js';
import { writeLayer } from '../../src/oci/layer-writer.js';
import { BlobStore } from '../../src/oci/store.js';

let work: string;
let store: BlobStore;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'uvimage-deb-'));
  store = await BlobStore.open(join(work, 'store'));
});
after(async () => {
  await rm(work, { recursive: true, force: true });
});

function sh(command: string, args: string[], options: { cwd?: string; input?: string } = {}): string {
  const result = spawnSync(command, args, { cwd: options.cwd, input: options.input, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed: ${result.stderr}`);
  return result.stdout;
}

interface Member {
  name: string;
  type?: 'file' | 'dir' | 'symlink' | 'hardlink' | 'fifo';
  content?: string;
  /** A file of this many zero bytes, streamed (for size tests). */
  zeros?: number;
  linkname?: string;
  mode?: number;
}

/** A tar written by Python's tarfile, so member names can be anything (hostile ones included). */
function pythonTar(out: string, members: Member[], format: 'gnu' | 'pax' | 'ustar'): void {
  const script = `
import io, json, sys, tarfile
spec = json.load(sys.stdin)
fmt = {'gnu': tarfile.GNU_FORMAT, 'pax': tarfile.PAX_FORMAT, 'ustar': tarfile.USTAR_FORMAT}[spec['format']]
class Zeros(io.RawIOBase):
    def __init__(self, n): self.left = n
    def readable(self): return True
    def readinto(self, b):
        n = min(len(b), self.left); b[:n] = bytes(n); self.left -= n; return n
with tarfile.open(spec['out'], 'w', format=fmt) as tar:
    for m in spec['members']:
        info = tarfile.TarInfo(m['name'])
        info.mode = m.get('mode', 0o644 if m.get('type', 'file') == 'file' else 0o755)
        info.mtime = 1700000000
        kind = m.get('type', 'file')
        if kind == 'dir': info.type = tarfile.DIRTYPE; tar.addfile(info)
        elif kind == 'symlink': info.type = tarfile.SYMTYPE; info.linkname = m['linkname']; tar.addfile(info)
        elif kind == 'hardlink': info.type = tarfile.LNKTYPE; info.linkname = m['linkname']; tar.addfile(info)
        elif kind == 'fifo': info.type = tarfile.FIFOTYPE; tar.addfile(info)
        elif 'zeros' in m: info.size = m['zeros']; tar.addfile(info, io.BufferedReader(Zeros(m['zeros'])))
        else:
            data = m.get('content', '').encode(); info.size = len(data); tar.addfile(info, io.BytesIO(data))
`;
  sh('python3', ['-c', script], { input: JSON.stringify({ out, members, format }) });
}

const compressors: Record<string, string[] | undefined> = { xz: ['xz', '-T0', '-1', '-f'], gz: ['gzip', '-1', '-f'], zst: ['zstd', '-q', '-f', '--rm'], tar: undefined };

let counter = 0;
/** A .deb from control fields and data members, assembled with `ar` in dpkg's member order. */
async function makeDeb(options: { name?: string; data: Member[] | string; format?: 'gnu' | 'pax' | 'ustar'; compression?: 'xz' | 'gz' | 'zst' | 'tar'; md5sums?: string }): Promise<string> {
  const dir = join(work, `deb-${counter++}`);
  await mkdir(dir, { recursive: true });
  const name = options.name ?? 'hello';
  await writeFile(join(dir, 'debian-binary'), '2.0\n');
  await writeFile(join(dir, 'control'), `Package: ${name}\nVersion: 1.0-1\nArchitecture: amd64\nMaintainer: Test <t@example.org>\nDescription: test package\n multi-line\n`);
  const controlMembers = ['./control'];
  if (options.md5sums) {
    await writeFile(join(dir, 'md5sums'), options.md5sums);
    controlMembers.push('./md5sums');
  }
  sh('tar', ['--format=gnu', '--owner=0', '--group=0', '-cf', 'control.tar', ...controlMembers], { cwd: dir });
  const compression = options.compression ?? 'xz';
  const dataTar = join(dir, 'data.tar');
  if (typeof options.data === 'string') sh('cp', [options.data, dataTar]);
  else pythonTar(dataTar, options.data, options.format ?? 'gnu');
  const compressor = compressors[compression];
  let dataName = 'data.tar';
  let controlName = 'control.tar';
  if (compressor) {
    sh(compressor[0]!, [...compressor.slice(1), 'data.tar'], { cwd: dir });
    sh(compressor[0]!, [...compressor.slice(1), 'control.tar'], { cwd: dir });
    dataName = `data.tar.${compression}`;
    controlName = `control.tar.${compression}`;
  }
  const deb = join(dir, `${name}.deb`);
  sh('ar', ['rc', deb, 'debian-binary', controlName, dataName], { cwd: dir });
  return deb;
}

async function open(deb: string, mergedUsr = false): Promise<OpenedDeb> {
  return readDebFile(deb, { spoolPath: store.tempPath('debspool'), label: deb.slice(deb.lastIndexOf('/') + 1), mergedUsr });
}

async function text(deb: OpenedDeb, path: string): Promise<string> {
  const file = deb.files.find((candidate) => candidate.path === path);
  assert.ok(file, `${path} in ${deb.files.map((f) => f.path).join(', ')}`);
  const source = deb.open(file);
  if (Buffer.isBuffer(source)) return source.toString('utf8');
  const chunks: Buffer[] = [];
  for await (const chunk of source) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function spoolFiles(): Promise<string[]> {
  return (await readdir(join(store.root, 'tmp'))).filter((name) => name.startsWith('debspool'));
}

const longDir = `usr/share/${'deep/'.repeat(25)}`;
const sample: Member[] = [
  { name: './', type: 'dir' },
  { name: './usr/', type: 'dir' },
  { name: './usr/bin/', type: 'dir' },
  { name: './usr/bin/hello', content: '#!hello\n', mode: 0o755 },
  { name: './usr/bin/hi', type: 'symlink', linkname: 'hello' },
  { name: './usr/bin/hello-again', type: 'hardlink', linkname: './usr/bin/hello' },
  { name: `./${longDir}file-with-a-long-name-${'x'.repeat(120)}.txt`, content: 'long\n' },
  { name: './usr/share/caf\u00e9.txt', content: 'non-ascii\n' },
  { name: './bin/', type: 'dir' },
  { name: './bin/old-style', content: 'in /bin\n', mode: 0o755 },
  { name: './lib64', type: 'symlink', linkname: 'usr/lib64' },
  { name: './usr/share/doc/hello/link', type: 'symlink', linkname: '../../../../etc/hostname' },
];

describe('reading', () => {
  for (const format of ['gnu', 'pax', 'ustar'] as const) {
    for (const compression of ['xz', 'gz', 'zst', 'tar'] as const) {
      // ustar cannot hold the 200-byte name or the non-ASCII one; it gets the short members only.
      const members = format === 'ustar' ? sample.filter((member) => member.name.length < 150 && !/[^\x00-\x7f]/.test(member.name)) : sample;
      test(`${format} tar, ${compression}: members, contents, links, control`, async () => {
        const deb = await open(await makeDeb({ data: members, format, compression, md5sums: 'd41d8cd98f00b204e9800998ecf8427e  usr/bin/hello\n' }));
        try {
          assert.equal(deb.control.Package, 'hello');
          assert.equal(deb.control.Description, 'test package\nmulti-line');
          assert.match(deb.md5sums!.toString(), /usr\/bin\/hello/);
          const paths = deb.files.map((file) => file.path);
          assert.ok(!paths.includes('.') && !paths.includes(''), 'the root itself is no entry');
          assert.equal(await text(deb, 'usr/bin/hello'), '#!hello\n');
          // A hardlink is served as a copy of its target's content.
          assert.equal(await text(deb, 'usr/bin/hello-again'), '#!hello\n');
          const hi = deb.files.find((file) => file.path === 'usr/bin/hi')!;
          assert.deepEqual([hi.type, hi.target], ['symlink', 'hello']);
          assert.equal(deb.files.find((file) => file.path === 'usr/bin/hello')!.mode, 0o755);
          if (format !== 'ustar') {
            assert.equal(await text(deb, `${longDir}file-with-a-long-name-${'x'.repeat(120)}.txt`), 'long\n');
            assert.equal(await text(deb, 'usr/share/caf\u00e9.txt'), 'non-ascii\n');
          }
          // Without merged-/usr, bin stays bin.
          assert.ok(paths.includes('bin/old-style'));
        } finally {
          await deb.close();
        }
      });
    }
  }

  test('merged-/usr moves bin, sbin, lib* under usr; a package\'s own top-level links stay', async () => {
    const deb = await open(await makeDeb({ data: sample }), true);
    try {
      const paths = deb.files.map((file) => file.path);
      assert.ok(paths.includes('usr/bin/old-style'));
      assert.ok(!paths.includes('bin/old-style'));
      assert.ok(paths.includes('usr/bin'), 'the bin directory itself becomes usr/bin');
      assert.ok(paths.includes('lib64'), 'a symlink named lib64 stays a top-level link');
      assert.equal(await text(deb, 'usr/bin/old-style'), 'in /bin\n');
    } finally {
      await deb.close();
    }
    assert.equal(mergeUsrPath('sbin/ldconfig', false), 'usr/sbin/ldconfig');
    assert.equal(mergeUsrPath('lib/x86_64-linux-gnu/libc.so.6', false), 'usr/lib/x86_64-linux-gnu/libc.so.6');
    assert.equal(mergeUsrPath('libexec/x', false), 'libexec/x');
    assert.equal(mergeUsrPath('etc/bin/x', false), 'etc/bin/x');
  });

  test('the entries go into a layer the layer writer sorts and reads lazily from the spool', async () => {
    const deb = await open(await makeDeb({ data: sample }), true);
    try {
      const layer = await writeLayer(store, debLayerEntries(deb), { mtime: 0 });
      const listed: Record<string, string> = {};
      const gunzipped = store.openRead(layer.descriptor.digest).pipe(createGunzip());
      for await (const member of readTar(gunzipped, { what: 'layer', collect: () => true })) {
        listed[member.name] = member.type === 'file' ? member.content!.toString() : `${member.type}:${member.linkname}`;
      }
      assert.equal(listed['usr/bin/hello'], '#!hello\n');
      assert.equal(listed['usr/bin/hello-again'], '#!hello\n');
      assert.equal(listed['usr/bin/hi'], 'symlink:hello');
      assert.equal(listed['usr/bin/old-style'], 'in /bin\n');
    } finally {
      await deb.close();
    }
    assert.deepEqual(await spoolFiles(), [], 'close() removes the spool');
  });

  test('memory does not grow with the size of the package (a 512 MiB file streams through a spool)', async () => {
    const size = 512 * 1024 * 1024;
    const deb = await makeDeb({ data: [{ name: './usr/', type: 'dir' }, { name: './usr/big', zeros: size }, { name: './usr/small', content: 'after\n' }], compression: 'gz' });
    global.gc?.();
    const before = process.memoryUsage().rss;
    let peak = before;
    const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
    try {
      const opened = await open(deb);
      try {
        const big = opened.files.find((file) => file.path === 'usr/big')!;
        assert.equal(big.size, size);
        let read = 0;
        for await (const chunk of opened.open(big) as Readable) read += (chunk as Buffer).length;
        assert.equal(read, size);
        assert.equal(await text(opened, 'usr/small'), 'after\n');
      } finally {
        await opened.close();
      }
    } finally {
      clearInterval(timer);
    }
    const grown = (peak - before) / 1024 / 1024;
    assert.ok(grown < 128, `RSS grew by ${grown.toFixed(0)} MiB reading a ${size / 1024 / 1024} MiB package`);
  });
});

describe('hostile packages are rejected with a clear error', () => {
  const cases: [string, Member[], RegExp][] = [
    ['a "../" path', [{ name: '../etc/passwd', content: 'x' }], /member "\.\.\/etc\/passwd" has a '\.\.' segment and would escape the root/],
    ['a "./../" path deeper down', [{ name: './usr/../../etc/shadow', content: 'x' }], /has a '\.\.' segment/],
    ['an absolute path', [{ name: '/etc/passwd', content: 'x' }], /member "\/etc\/passwd" has an absolute path/],
    ['a symlink that climbs out of the root', [{ name: './usr/lib/evil', type: 'symlink', linkname: '../../../etc/shadow' }], /symlink "usr\/lib\/evil" -> "\.\.\/\.\.\/\.\.\/etc\/shadow" escapes the root/],
    ['a hardlink to a path outside the package', [{ name: './usr/x', type: 'hardlink', linkname: '../../etc/shadow' }], /has a '\.\.' segment/],
    ['a hardlink to nothing', [{ name: './usr/x', type: 'hardlink', linkname: './usr/missing' }], /hardlink ".\/usr\/x" points at ".\/usr\/missing", which is not an earlier file/],
    ['a FIFO', [{ name: './usr/pipe', type: 'fifo' }], /is a device node or FIFO/],
  ];
  for (const [what, members, pattern] of cases) {
    test(what, async () => {
      const deb = await makeDeb({ name: 'evil', data: members, format: 'pax' });
      await assert.rejects(open(deb), (error: unknown) => {
        assert.ok(error instanceof ArchiveFormatError, String(error));
        assert.match(error.message, /^evil\.deb: /);
        assert.match(error.message, pattern);
        return true;
      });
      assert.deepEqual(await spoolFiles(), [], 'a rejected package leaves no spool behind');
    });
  }

  test('a data.tar made by GNU tar with -P and a "../" member', async () => {
    const dir = join(work, 'gnu-escape', 'inner');
    await mkdir(join(dir, 'payload'), { recursive: true });
    await writeFile(join(dir, '..', 'escaped'), 'owned\n');
    await symlink('/etc/passwd', join(dir, 'payload', 'link'));
    sh('tar', ['-cPf', join(dir, 'data.tar'), '../escaped'], { cwd: dir });
    const deb = await makeDeb({ name: 'tar-escape', data: join(dir, 'data.tar') });
    await assert.rejects(open(deb), /tar-escape\.deb: member "\.\.\/escaped" has a '\.\.' segment and would escape the root/);
  });

  test('garbage and truncation', async () => {
    const junk = join(work, 'junk.deb');
    await writeFile(junk, 'this is not an ar archive');
    await assert.rejects(open(junk), /junk\.deb: not a Debian package/);
    const good = await makeDeb({ name: 'cut', data: sample });
    const bytes = (await import('node:fs/promises')).readFile;
    const whole = await bytes(good);
    const cut = join(work, 'cut-short.deb');
    await writeFile(cut, whole.subarray(0, whole.length - 200));
    await assert.rejects(open(cut), ArchiveFormatError);
  });

  test('path normalization', () => {
    assert.equal(normalizeArchivePath('./', 'x'), undefined);
    assert.equal(normalizeArchivePath('.', 'x'), undefined);
    assert.equal(normalizeArchivePath('./usr//bin/', 'x'), 'usr/bin');
    assert.throws(() => normalizeArchivePath('/usr', 'x'), /absolute/);
    assert.throws(() => normalizeArchivePath('usr/../..', 'x'), /'\.\.'/);
  });
});
