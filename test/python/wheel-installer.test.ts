/**
 * The wheel installer on wheels crafted here (with Python's zipfile, which writes whatever names
 * it is given): the .data scheme, RECORD rewriting and healing, launchers, shebangs and modes;
 * and hostile or broken wheels, each refused with one clear line.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import type { LayerEntry } from '../../src/oci/layer-entry.js';
import { writeLayer } from '../../src/oci/layer-writer.js';
import { BlobStore } from '../../src/oci/store.js';
import { parseEntryPoints } from '../../src/python/entry-points.js';
import { venvScheme } from '../../src/python/venv.js';
import { WheelError, formatRecord, installWheel, parseRecord, recordHash } from '../../src/python/wheel-installer.js';

interface ZipMember {
  name: string;
  content: string;
  /** Unix mode bits (with type), e.g. 0o100755 or 0o120777 for a symlink. */
  mode?: number;
}

/** Writes a zip with Python's zipfile: names are taken as given (no sanitising). */
function writeZip(path: string, members: ZipMember[]): void {
  const script = `
import json, sys, zipfile
spec = json.load(sys.stdin)
with zipfile.ZipFile(spec["path"], "w", zipfile.ZIP_DEFLATED) as z:
    for m in spec["members"]:
        info = zipfile.ZipInfo(m["name"], date_time=(2020, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = (m.get("mode") or 0o100644) << 16
        z.writestr(info, m["content"].encode("utf-8"))
`;
  execFileSync('python3', ['-c', script], { input: JSON.stringify({ path, members }) });
}

const b64 = (content: string): string => createHash('sha256').update(content).digest('base64url');

/** A wheel of package `demo` 1.0 with RECORD computed from `files` (plus extra members RECORD does not list). */
function demoWheel(path: string, files: ZipMember[], options: { unlisted?: ZipMember[]; recordOverride?: (lines: string[]) => string[] } = {}): void {
  const distInfo = 'demo-1.0.dist-info';
  const all: ZipMember[] = [
    ...files,
    { name: `${distInfo}/METADATA`, content: 'Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n' },
    { name: `${distInfo}/WHEEL`, content: 'Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n' },
  ];
  let lines = all.map((member) => `${member.name},sha256=${b64(member.content)},${Buffer.byteLength(member.content)}`);
  lines.push(`${distInfo}/RECORD,,`);
  if (options.recordOverride) lines = options.recordOverride(lines);
  writeZip(path, [...all, ...(options.unlisted ?? []), { name: `${distInfo}/RECORD`, content: lines.join('\n') + '\n' }]);
}

async function contentOf(entry: LayerEntry | undefined): Promise<string> {
  assert.ok(entry && entry.type === 'file', 'a file entry');
  const opened = await entry.open();
  if (Buffer.isBuffer(opened)) return opened.toString('utf8');
  const chunks: Buffer[] = [];
  for await (const chunk of opened as Readable) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

describe('wheel installer', () => {
  let dir: string;
  let store: BlobStore;
  const scheme = venvScheme('/app/.venv', '3.12.8');
  const site = 'app/.venv/lib/python3.12/site-packages';

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'uvimage-wheel-'));
    store = await BlobStore.open(join(dir, 'store'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('installs the .data scheme, launchers, shebangs, modes and a rewritten RECORD', async () => {
    const wheel = join(dir, 'demo-1.0-py3-none-any.whl');
    demoWheel(
      wheel,
      [
        { name: 'demo/__init__.py', content: 'def main():\n    return 0\n' },
        { name: 'demo/tool.sh', content: 'echo hi\n', mode: 0o100755 },
        { name: 'demo-1.0.data/scripts/hello', content: '#!python\nprint("hello")\n' },
        { name: 'demo-1.0.data/scripts/hellow', content: '#!pythonw -u\r\nprint("w")\n' },
        { name: 'demo-1.0.data/scripts/native', content: '\x7fELF-not-really', mode: 0o100644 },
        { name: 'demo-1.0.data/scripts/greet', content: '#!python\nreplaced by the entry point\n' },
        { name: 'demo-1.0.data/data/share/demo/readme.txt', content: 'data\n' },
        { name: 'demo-1.0.data/headers/demo.h', content: '#define DEMO 1\n' },
        { name: 'demo-1.0.data/purelib/demo_extra.py', content: 'X = 1\n' },
        { name: 'demo-1.0.dist-info/entry_points.txt', content: '[console_scripts]\ngreet = demo:main\n\n[gui_scripts]\ngreet-gui = demo.sub:app.run\n' },
      ],
      { unlisted: [{ name: 'demo/unlisted.txt', content: 'not in RECORD\n' }] },
    );
    const installed = await installWheel(wheel, { scheme, filename: 'demo-1.0-py3-none-any.whl', directUrl: '{"url":"file:///src/demo","dir_info":{"editable":false}}' });
    try {
      assert.equal(installed.name, 'demo');
      assert.equal(installed.version, '1.0');
      const byPath = new Map(installed.entries.map((entry) => [entry.path, entry]));
      const modeOf = (path: string): number | undefined => byPath.get(path)?.mode;

      assert.equal(await contentOf(byPath.get('app/.venv/bin/hello')), '#!/app/.venv/bin/python\nprint("hello")\n');
      assert.equal(await contentOf(byPath.get('app/.venv/bin/hellow')), '#!/app/.venv/bin/python\n\nprint("w")\n', 'the \\r ends the first line; the \\n after it stays, as uv does');
      assert.equal(await contentOf(byPath.get('app/.venv/bin/native')), '\x7fELF-not-really');
      assert.equal(modeOf('app/.venv/bin/native'), 0o755, 'scripts are made executable');
      assert.equal(modeOf('app/.venv/bin/hello'), 0o755);
      assert.equal(modeOf(`${site}/demo/tool.sh`), 0o755, 'an executable bit in the archive is kept');
      assert.equal(modeOf(`${site}/demo/__init__.py`), 0o644);
      assert.match(await contentOf(byPath.get('app/.venv/bin/greet')), /^#!\/app\/\.venv\/bin\/python\n# -\*- coding: utf-8 -\*-\nimport sys\nfrom demo import main\n/);
      assert.match(await contentOf(byPath.get('app/.venv/bin/greet-gui')), /from demo\.sub import app\n[\s\S]*sys\.exit\(app\.run\(\)\)\n$/);
      assert.equal(await contentOf(byPath.get('app/.venv/share/demo/readme.txt')), 'data\n');
      assert.equal(await contentOf(byPath.get('app/.venv/include/site/python3.12/demo/demo.h')), '#define DEMO 1\n');
      assert.equal(await contentOf(byPath.get(`${site}/demo_extra.py`)), 'X = 1\n');
      assert.equal(await contentOf(byPath.get(`${site}/demo-1.0.dist-info/INSTALLER`)), 'uvimage');
      assert.equal(await contentOf(byPath.get(`${site}/demo-1.0.dist-info/REQUESTED`)), '');
      assert.ok(byPath.has(`${site}/demo/unlisted.txt`));
      assert.ok(![...byPath.keys()].some((path) => path.includes('.data/')), 'nothing is left under .data');

      const record = parseRecord(await contentOf(byPath.get(`${site}/demo-1.0.dist-info/RECORD`)), 'test');
      const line = (path: string) => record.find((entry) => entry.path === path);
      const hello = '#!/app/.venv/bin/python\nprint("hello")\n';
      assert.deepEqual(line('../../../bin/hello'), { path: '../../../bin/hello', hash: recordHash(Buffer.from(hello)), size: hello.length });
      assert.deepEqual(line('../../../share/demo/readme.txt'), { path: '../../../share/demo/readme.txt', hash: `sha256=${b64('data\n')}`, size: 5 });
      assert.ok(line('../../../include/site/python3.12/demo/demo.h'));
      assert.ok(line('demo_extra.py'));
      assert.deepEqual(line('demo/unlisted.txt'), { path: 'demo/unlisted.txt', hash: undefined, size: 14 }, 'healed: listed without a hash');
      assert.ok(line('../../../bin/greet')?.hash);
      assert.ok(line('demo-1.0.data/scripts/greet'), 'the replaced script keeps its old line, as in uv');
      assert.ok(line('demo-1.0.dist-info/direct_url.json'));
      const paths = record.map((entry) => entry.path);
      assert.deepEqual(paths, [...paths].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))), 'RECORD is sorted');

      // The whole thing goes into a layer.
      const layer = await writeLayer(store, installed.entries, { mtime: 0 });
      assert.match(layer.diffId, /^sha256:/);
    } finally {
      installed.close();
    }
  });

  test('a file that does not match its RECORD hash fails the layer write, and nothing is stored', async () => {
    const wheel = join(dir, 'tampered.whl');
    demoWheel(wheel, [{ name: 'demo/__init__.py', content: 'print("original")\n' }], {
      recordOverride: (lines) => lines.map((line) => (line.startsWith('demo/__init__.py,') ? `demo/__init__.py,sha256=${b64('print("evil!!!")\n')},18` : line)),
    });
    const installed = await installWheel(wheel, { scheme, filename: 'demo-1.0-py3-none-any.whl' });
    const before = (await readdir(join(store.root, 'blobs', 'sha256'))).length;
    await assert.rejects(writeLayer(store, installed.entries, { mtime: 0 }), (error: Error) => {
      assert.ok(error instanceof WheelError);
      assert.equal(error.message, 'wheel demo-1.0-py3-none-any.whl is refused: demo/__init__.py does not match the hash in its RECORD');
      return true;
    });
    installed.close();
    assert.equal((await readdir(join(store.root, 'blobs', 'sha256'))).length, before);
    assert.deepEqual(await readdir(join(store.root, 'tmp')), [], 'no temp file is left');
  });

  test('a size that differs from RECORD is refused before anything is written', async () => {
    const wheel = join(dir, 'size.whl');
    demoWheel(wheel, [{ name: 'demo/__init__.py', content: 'x = 1\n' }], {
      recordOverride: (lines) => lines.map((line) => (line.startsWith('demo/__init__.py,') ? line.replace(/,6$/, ',7') : line)),
    });
    await assert.rejects(installWheel(wheel, { scheme, filename: 'size.whl' }), (error: Error) => error instanceof WheelError && error.message === 'wheel size.whl is refused: demo/__init__.py is 6 bytes but RECORD says 7');
  });

  for (const [label, name, pattern] of [
    ['a path with ..', '../../../etc/cron.d/evil', /wheel hostile\.whl is refused: .*(invalid relative path|escapes)/],
    ['an absolute path', '/etc/passwd', /wheel hostile\.whl is refused: .*absolute path/],
    ['a .data path with ..', 'demo-1.0.data/data/../../../../../etc/evil', /wheel hostile\.whl is refused: .*(invalid relative path|escapes)/],
    ['a script named python', 'demo-1.0.data/scripts/python', /wheel hostile\.whl is refused: demo-1\.0\.data\/scripts\/python would replace the venv's python/],
    ['an unknown .data directory', 'demo-1.0.data/etc/passwd', /wheel hostile\.whl is invalid: unknown wheel data type "etc"/],
  ] as const) {
    test(`a wheel with ${label} is refused`, async () => {
      const wheel = join(dir, 'hostile.whl');
      demoWheel(wheel, [
        { name: 'demo/__init__.py', content: '' },
        { name, content: 'owned\n' },
      ]);
      await assert.rejects(installWheel(wheel, { scheme, filename: 'hostile.whl' }), (error: Error) => {
        assert.ok(error instanceof WheelError, `${error.name}: ${error.message}`);
        assert.match(error.message, pattern);
        assert.ok(!error.message.includes('\n'), 'one line');
        return true;
      });
    });
  }

  test('a symbolic link in the archive is refused', async () => {
    const wheel = join(dir, 'link.whl');
    demoWheel(wheel, [{ name: 'demo/link', content: '/etc/shadow', mode: 0o120777 }]);
    await assert.rejects(installWheel(wheel, { scheme, filename: 'link.whl' }), /wheel link\.whl is refused: entry "demo\/link" is a symbolic link/);
  });

  test('an entry point that escapes bin/ is refused', async () => {
    const wheel = join(dir, 'ep.whl');
    demoWheel(wheel, [{ name: 'demo-1.0.dist-info/entry_points.txt', content: '[console_scripts]\n../../../../usr/bin/env = demo:main\n' }]);
    await assert.rejects(installWheel(wheel, { scheme, filename: 'ep.whl' }), /wheel ep\.whl is refused: entry point "\.\.\/\.\.\/\.\.\/\.\.\/usr\/bin\/env" must resolve to a file within the scripts directory/);
  });

  test('every wheel opened is closed again: no file descriptor is left behind', async () => {
    const wheel = join(dir, 'fds.whl');
    demoWheel(wheel, [{ name: 'demo/__init__.py', content: 'x = 1\n' }]);
    const open = async () => (await readdir('/proc/self/fd')).length;
    const before = await open();
    for (let i = 0; i < 20; i++) {
      const installed = await installWheel(wheel, { scheme, filename: 'fds.whl' });
      await writeLayer(store, installed.entries, { mtime: 0 });
      installed.close();
    }
    await assert.rejects(installWheel(join(dir, 'missing.whl'), { scheme, filename: 'missing.whl' }), WheelError);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(await open(), before);
  });

  test('not a zip at all', async () => {
    const path = join(dir, 'broken.whl');
    execFileSync('sh', ['-c', `printf 'not a zip' > ${path}`]);
    await assert.rejects(installWheel(path, { scheme, filename: 'broken.whl' }), (error: Error) => error instanceof WheelError && error.message.startsWith('wheel broken.whl is not a valid zip archive: '));
  });

  test('entry points: pip3.N is derived for the target minor, extras are ignored', () => {
    const parsed = parseEntryPoints('[console_scripts]\npip = pip:main\npip3 = pip:main\npip3.8 = pip:main\ntool = mod:fn [extra1, extra2]\n', 12, 'test');
    assert.deepEqual(parsed.console.map((script) => script.name), ['pip', 'pip3', 'tool', 'pip3.12']);
  });

  test('RECORD: quoting, sorting and parsing round-trip', () => {
    const entries = [
      { path: 'b,with comma.py', hash: 'sha256=abc', size: 3 },
      { path: 'a.py', hash: undefined, size: undefined },
      { path: 'a.py', hash: 'sha256=x', size: 1 },
    ];
    const text = formatRecord(entries);
    assert.equal(text, 'a.py,,\na.py,sha256=x,1\n"b,with comma.py",sha256=abc,3\n');
    assert.deepEqual(parseRecord(text, 'test'), [entries[1], entries[2], entries[0]]);
  });
});
