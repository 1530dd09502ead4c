/**
 * The dynamic loader's rules (src/binary/loader.ts) on real ELF files: x86-64 objects built here
 * with gcc (DT_RPATH with --disable-new-dtags, DT_RUNPATH with --enable-new-dtags), aarch64 ones
 * from trixie's arm64 libc6 and libc-bin edited with patchelf. Each scenario is a small root file
 * system; the verdicts asserted for it are then checked against the real ld.so by running the
 * same trees in the Docker engine (amd64 natively, arm64 under qemu-user): a program the check
 * passes must start, one it fails must stop with the library it names.
 *
 * One corner is made with a byte edit: an object with both DT_RPATH and DT_RUNPATH (old
 * binutils wrote both for --enable-new-dtags; today's ld and patchelf write one), made by
 * patchelf --add-needed and then retagging that DT_NEEDED entry as DT_RUNPATH.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmod, copyFile, cp, mkdir, mkdtemp, open, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { elfFields, fileReader, parseElfHeader, readElfFile, readProgramHeaders } from '../../src/binary/elf.js';
import { expandDynamicStringTokens, findMissingLibraries, ImageTree, ldSoConfDirectories, loaderSystem, type LoaderOptions, type LoaderReport } from '../../src/binary/loader.js';
import { unpackDebianPackages } from '../harness/debian-packages.js';
import { check, requireDocker, run } from '../harness/docker.js';
import { imageTreeFromDirectory } from '../harness/image-tree.js';

let work: string;
let built: string;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'uvimage-loader-'));
  built = join(work, 'built');
  await mkdir(built);
});
after(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// Building objects.

interface LinkOptions {
  soname?: string;
  /** Objects (paths of built files) it links against: their sonames become its DT_NEEDED. */
  links?: string[];
  rpath?: string;
  runpath?: string;
}

function linkFlags(options: LinkOptions): string[] {
  const flags = [...(options.links ?? []), `-Wl,-rpath-link,${built}`];
  if (options.rpath !== undefined) flags.push('-Wl,--disable-new-dtags', `-Wl,-rpath,${options.rpath}`);
  if (options.runpath !== undefined) flags.push('-Wl,--enable-new-dtags', `-Wl,-rpath,${options.runpath}`);
  return flags;
}

/** A shared library `file` (in the build directory) from C source. */
async function library(file: string, source: string, options: LinkOptions = {}): Promise<string> {
  const out = join(built, file);
  await writeFile(`${out}.c`, source);
  execFileSync('gcc', ['-shared', '-fPIC', '-o', out, `${out}.c`, `-Wl,-soname,${options.soname ?? file}`, ...linkFlags(options)]);
  return out;
}

async function program(file: string, source: string, options: LinkOptions = {}): Promise<string> {
  const out = join(built, file);
  await writeFile(`${out}.c`, source);
  execFileSync('gcc', ['-o', out, `${out}.c`, ...linkFlags(options)]);
  return out;
}

/** A copy of `file` edited with patchelf. */
async function patched(file: string, name: string, args: string[]): Promise<string> {
  const out = join(built, name);
  await copyFile(file, out);
  execFileSync('patchelf', [...args, out]);
  return out;
}

/** Retags the DT_NEEDED entry whose string is `value` as DT_RUNPATH (see the top of the file). */
async function retagNeededAsRunpath(path: string, value: string): Promise<void> {
  const handle = await open(path, 'r+');
  try {
    const read = fileReader(handle);
    const header = parseElfHeader(await read(0, 64))!;
    const fields = elfFields(header.bits, header.littleEndian);
    const programs = await readProgramHeaders(read, header);
    const dynamic = programs.find((entry) => entry.type === 2)!;
    const entries = await read(dynamic.offset, dynamic.filesz);
    const tags: [at: number, tag: number, value: number][] = [];
    for (let at = 0; at + 16 <= entries.length; at += 16) tags.push([at, fields.word(entries, at), fields.word(entries, at + 8)]);
    const strtab = tags.find(([, tag]) => tag === 5)![2];
    const load = programs.find((entry) => entry.type === 1 && strtab >= entry.vaddr && strtab < entry.vaddr + entry.filesz)!;
    const strtabOffset = load.offset + strtab - load.vaddr;
    for (const [at, tag, offset] of tags) {
      if (tag !== 1) continue;
      const text = await read(strtabOffset + offset, value.length + 1);
      if (text.toString('latin1') !== `${value}\0`) continue;
      const patch = Buffer.alloc(8);
      fields.writeWord(patch, 29, 0);
      await handle.write(patch, 0, 8, dynamic.offset + at);
      return;
    }
    throw new Error(`${path} has no DT_NEEDED ${value}`);
  } finally {
    await handle.close();
  }
}

const depSource = 'int dep(void) { return 42; }\n';
const midSource = 'int dep(void);\nint mid(void) { return dep(); }\n';
const mainOf = (call: string) => `int ${call}(void);\nint main(void) { return ${call}() == 42 ? 0 : 1; }\n`;
/** Stands in for Python: dlopens the module given (RTLD_NOW, as CPython does) and prints dlerror(). */
const dlopenerSource = '#include <dlfcn.h>\n#include <stdio.h>\nint pre(void);\nint main(int argc, char **argv) { void *h = dlopen(argv[1], RTLD_NOW); if (!h) { fprintf(stderr, "%s\\n", dlerror()); return 127; } return pre() == 42 ? 0 : 1; }\n';

// ---------------------------------------------------------------------------------------------
// Root file systems.

type Layout = Record<string, string | { link: string } | { text: string }>;

async function writeRoot(root: string, layout: Layout): Promise<void> {
  for (const [path, what] of Object.entries(layout)) {
    const target = join(root, path);
    await mkdir(dirname(target), { recursive: true });
    if (typeof what === 'string') {
      await copyFile(what, target);
      await chmod(target, 0o755);
    } else if ('link' in what) await symlink(what.link, target);
    else await writeFile(target, what.text);
  }
}

/** The host's glibc (the objects built here need only libc.so.6), laid out as merged-/usr Debian has it. */
async function amd64Base(): Promise<Layout> {
  return {
    '/usr/lib/x86_64-linux-gnu/libc.so.6': await realpath('/lib/x86_64-linux-gnu/libc.so.6'),
    '/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2': await realpath('/lib64/ld-linux-x86-64.so.2'),
    '/lib': { link: 'usr/lib' },
    // An absolute target: resolved from the image's root, not the host's.
    '/lib64/ld-linux-x86-64.so.2': { link: '/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2' },
  };
}

interface Scenario {
  name: string;
  platform: 'linux/amd64' | 'linux/arm64';
  root: string;
  options: LoaderOptions;
  /** Each program the Docker check runs: argv, and the library its start must fail on (undefined: it must start). */
  runs: { argv: string[]; fails?: string }[];
}

const scenarios: Scenario[] = [];

async function scenario(
  name: string,
  platform: Scenario['platform'],
  layout: Layout,
  options: Partial<LoaderOptions>,
  runs: Scenario['runs'],
  prepare?: (root: string) => void,
): Promise<{ report: LoaderReport; tree: ImageTree; root: string }> {
  const root = join(work, 'roots', name);
  await mkdir(root, { recursive: true });
  if (platform === 'linux/amd64') await writeRoot(root, await amd64Base());
  else await cp(await arm64Base(), root, { recursive: true, verbatimSymlinks: true });
  await writeRoot(root, layout);
  prepare?.(root);
  const full: LoaderOptions = { system: loaderSystem(platform === 'linux/amd64' ? 'x86_64' : 'aarch64'), ...options };
  scenarios.push({ name, platform, root, options: full, runs });
  const tree = await imageTreeFromDirectory(root);
  return { report: findMissingLibraries(tree, full), tree, root };
}

/** The misses of a report as "name <- file [chain]" lines, for comparing whole reports at once. */
function lines(report: LoaderReport): string[] {
  return report.missing.flatMap((miss) =>
    miss.neededBy.map((needer) => `${miss.name} <- ${needer.file} [${needer.chain.join(' > ')}]${needer.rejected.length ? ` (${needer.rejected.map((r) => `${r.path} ${r.problem}`).join('; ')})` : ''}`),
  );
}

let arm64Root: Promise<string> | undefined;
/** trixie's arm64 libc6 and zstd with the libraries it and pzstd need, unpacked once, with the /lib symlink base-files makes. */
function arm64Base(): Promise<string> {
  arm64Root ??= (async () => {
    const root = join(work, 'arm64-base');
    await unpackDebianPackages(root, 'trixie', 'arm64', ['libc6', 'zstd', 'libzstd1', 'liblzma5', 'liblz4-1', 'libxxhash0', 'zlib1g', 'libstdc++6', 'libgcc-s1']);
    await symlink('usr/lib', join(root, 'lib'));
    return root;
  })();
  return arm64Root;
}

describe('the loader rules', () => {
  let dep: string;
  let mid: string;

  before(async () => {
    dep = await library('libdep.so.1', depSource);
    mid = await library('libmid.so.1', midSource, { links: [dep] });
  });

  test('DT_RPATH is inherited by what its object loads; DT_RUNPATH is not', async () => {
    const inherits = await program('prog-rpath', mainOf('mid'), { links: [mid], rpath: '/opt/rp' });
    const stops = await program('prog-runpath', mainOf('mid'), { links: [mid], runpath: '/opt/rn' });
    const { report } = await scenario(
      'inheritance',
      'linux/amd64',
      {
        '/opt/app/prog-rpath': inherits,
        '/opt/rp/libmid.so.1': mid,
        '/opt/rp/libdep.so.1': dep,
        '/opt/app/prog-runpath': stops,
        '/opt/rn/libmid.so.1': mid,
        '/opt/rn/libdep.so.1': dep,
      },
      {},
      [{ argv: ['/opt/app/prog-rpath'] }, { argv: ['/opt/app/prog-runpath'], fails: 'libdep.so.1' }],
    );
    assert.deepEqual(lines(report), ['libdep.so.1 <- /opt/rn/libmid.so.1 [/opt/app/prog-runpath > /opt/rn/libmid.so.1]']);
  });

  test('an object with DT_RUNPATH ignores the RPATH of its loaders and its own DT_RPATH', async () => {
    const midRunpath = await library('libmid-runpath.so.1', midSource, { soname: 'libmid.so.1', links: [dep], runpath: '/opt/rn' });
    const viaRpath = await program('prog-rp', mainOf('mid'), { links: [midRunpath], rpath: '/opt/rp' });
    const viaRpathPlain = await program('prog-rp-plain', mainOf('mid'), { links: [mid], rpath: '/opt/rp2' });
    // Both tags on one object: DT_RPATH /opt/bad (from the link), DT_RUNPATH /opt/good (retagged).
    const both = await patched(await program('prog-both-base', mainOf('dep'), { links: [dep], rpath: '/opt/bad' }), 'prog-both', ['--add-needed', '/opt/good']);
    await retagNeededAsRunpath(both, '/opt/good');
    const both2 = await readElfFile(both);
    assert.equal(both2?.rpath, '/opt/bad');
    assert.equal(both2?.runpath, '/opt/good');
    const dynamic = execFileSync('readelf', ['-d', both], { encoding: 'utf8' });
    assert.match(dynamic, /\(RPATH\)\s+Library rpath: \[\/opt\/bad\]/);
    assert.match(dynamic, /\(RUNPATH\)\s+Library runpath: \[\/opt\/good\]/);

    // A linker script where a library is looked for (as libc.so is one): longer than an ELF header, so ld.so reads it and calls it "invalid ELF header".
    const notLibrary = { text: '/* GNU ld script\n   Use the shared library, but some functions are only in the static library.  */\nGROUP ( libdep.so.1 )\n' };
    const { report } = await scenario(
      'runpath-over-rpath',
      'linux/amd64',
      {
        '/opt/app/prog-rp': viaRpath,
        '/opt/rp/libmid.so.1': midRunpath,
        '/opt/rp/libdep.so.1': notLibrary,
        '/opt/rn/libdep.so.1': dep,
        // The same without RUNPATH on libmid: the inherited RPATH reaches the linker script first, and the load fails there.
        '/opt/app/prog-rp-plain': viaRpathPlain,
        '/opt/rp2/libmid.so.1': mid,
        '/opt/rp2/libdep.so.1': notLibrary,
        '/opt/app/prog-both': both,
        '/opt/bad/libdep.so.1': notLibrary,
        '/opt/good/libdep.so.1': dep,
      },
      {},
      [{ argv: ['/opt/app/prog-rp'] }, { argv: ['/opt/app/prog-rp-plain'], fails: 'invalid ELF header' }, { argv: ['/opt/app/prog-both'] }],
    );
    assert.deepEqual(lines(report), ['libdep.so.1 <- /opt/rp2/libmid.so.1 [/opt/app/prog-rp-plain > /opt/rp2/libmid.so.1] (/opt/rp2/libdep.so.1 is not an ELF file)']);
  });

  test('$ORIGIN and ${ORIGIN} expand to the directory the object was found in; symlinks resolve inside the image, .. after the link', async () => {
    const midOrigin = await library('libmid-origin.so.1', midSource, { soname: 'libmid.so.1', links: [dep], runpath: '${ORIGIN}/deps' });
    const loop = await library('libloop.so.1', 'int loop(void) { return 0; }\n');
    const prog = await program('prog-origin', 'int mid(void);\nint loop(void);\nint main(void) { return mid() + loop() == 42 ? 0 : 1; }\n', { links: [midOrigin, loop], runpath: '$ORIGIN/../lib' });
    const dotdot = await program('prog-dotdot', mainOf('dep'), { links: [dep], runpath: '/app/link/../lib' });
    const { report } = await scenario(
      'origin',
      'linux/amd64',
      {
        '/app/bin/prog': prog,
        '/app/lib': { link: '/srv/lib' },
        '/srv/lib/libmid.so.1': midOrigin,
        '/srv/lib/deps/libdep.so.1': { link: 'libdep.so.1.0.0' },
        '/srv/lib/deps/libdep.so.1.0.0': dep,
        '/srv/lib/libloop.so.1': { link: 'libloop.so.1' },
        // /app/link/.. is /opt/x, not /app: the kernel takes '..' of where the link led.
        '/app/bin/prog-dotdot': dotdot,
        '/app/link': { link: '/opt/x/y' },
        '/opt/x/y/.keep': { text: '' },
        '/opt/x/lib/libdep.so.1': dep,
      },
      {},
      [{ argv: ['/app/bin/prog'], fails: 'libloop.so.1' }, { argv: ['/app/bin/prog-dotdot'] }],
    );
    assert.deepEqual(lines(report), ['libloop.so.1 <- /app/bin/prog [/app/bin/prog] (/app/bin/../lib/libloop.so.1 is a symlink loop)']);
    assert.equal(expandDynamicStringTokens('$ORIGIN/a:${ORIGIN}/b:$ORIGINX:$LIB/$PLATFORM:${PLATFORM}:$HOME', '/o', loaderSystem('x86_64')), '/o/a:/o/b:$ORIGINX:lib/x86_64-linux-gnu/x86_64:x86_64:$HOME');
    assert.equal(expandDynamicStringTokens('/usr/$LIB', '/o', loaderSystem('aarch64')), '/usr/lib/aarch64-linux-gnu');
  });

  test('ld.so.cache: the directories /etc/ld.so.conf names, includes and globs followed, only when the image has a cache', async () => {
    const prog = await program('prog-conf', mainOf('dep'), { links: [dep] });
    const skip = await library('libskip.so.1', 'int skip(void) { return 42; }\n');
    const progSkip = await program('prog-skip', mainOf('skip'), { links: [skip] });
    const layout: Layout = {
      '/usr/bin/prog-conf': prog,
      '/usr/bin/prog-skip': progSkip,
      '/etc/ld.so.conf': { text: 'include /etc/ld.so.conf.d/*.conf\n' },
      '/etc/ld.so.conf.d/a.conf': { text: '/opt/conf-a\n' },
      '/etc/ld.so.conf.d/b.conf': { text: '# an include relative to this file\ninclude extra/*.conf\n' },
      '/etc/ld.so.conf.d/extra/c.conf': { text: '  /opt/conf-c/   # a trailing slash and a comment\n' },
      '/etc/ld.so.conf.d/not-a-conf.txt': { text: '/opt/conf-skip\n' },
      '/opt/conf-c/libdep.so.1': dep,
      '/opt/conf-skip/libskip.so.1': skip,
    };
    const runs = [{ argv: ['/usr/bin/prog-conf'] }, { argv: ['/usr/bin/prog-skip'], fails: 'libskip.so.1' }];
    // The cache ldconfig makes from that configuration (the host's ldconfig, in the root; -X: no links made).
    const { report, tree } = await scenario('ld-so-conf', 'linux/amd64', layout, {}, runs, (root) => execFileSync('ldconfig', ['-X', '-r', root], { stdio: 'ignore' }));
    assert.ok(tree.node('/etc/ld.so.cache')?.type === 'file');
    assert.deepEqual(ldSoConfDirectories(tree), ['/opt/conf-a', '/opt/conf-c']);
    assert.deepEqual(report.cacheDirs, ['/opt/conf-a', '/opt/conf-c']);
    assert.deepEqual(lines(report), ['libskip.so.1 <- /usr/bin/prog-skip [/usr/bin/prog-skip]']);

    // Without a cache ld.so never reads ld.so.conf.
    const { report: noCache } = await scenario('ld-so-conf-no-cache', 'linux/amd64', layout, {}, [{ argv: ['/usr/bin/prog-conf'], fails: 'libdep.so.1' }]);
    assert.deepEqual(noCache.cacheDirs, []);
    assert.deepEqual(lines(noCache), ['libdep.so.1 <- /usr/bin/prog-conf [/usr/bin/prog-conf]', 'libskip.so.1 <- /usr/bin/prog-skip [/usr/bin/prog-skip]']);
  });

  test('a library of another machine in the path is skipped and the search goes on', async () => {
    const arm64 = await arm64Base();
    const foreignDep = await patched(join(arm64, 'usr/lib/aarch64-linux-gnu/libanl.so.1'), 'libdep-aarch64.so.1', ['--set-soname', 'libdep.so.1']);
    const foreignOther = await patched(join(arm64, 'usr/lib/aarch64-linux-gnu/libanl.so.1'), 'libother-aarch64.so.1', ['--set-soname', 'libother.so.1']);
    const other = await library('libother.so.1', 'int other(void) { return 42; }\n');
    const prog = await program('prog-mixed', mainOf('dep'), { links: [dep], runpath: '/opt/mixed' });
    const prog2 = await program('prog-mixed2', mainOf('other'), { links: [other], runpath: '/opt/mixed' });
    const { report } = await scenario(
      'machines',
      'linux/amd64',
      {
        '/opt/app/prog-mixed': prog,
        '/opt/app/prog-mixed2': prog2,
        '/opt/mixed/libdep.so.1': foreignDep,
        '/opt/mixed/libother.so.1': foreignOther,
        '/usr/lib/x86_64-linux-gnu/libdep.so.1': dep,
      },
      {},
      [{ argv: ['/opt/app/prog-mixed'] }, { argv: ['/opt/app/prog-mixed2'], fails: 'libother.so.1' }],
    );
    assert.deepEqual(lines(report), ['libother.so.1 <- /opt/app/prog-mixed2 [/opt/app/prog-mixed2] (/opt/mixed/libother.so.1 is for aarch64)']);
    assert.deepEqual(report.foreign, ['/opt/mixed/libdep.so.1', '/opt/mixed/libother.so.1']);
  });

  test('extension modules are loaded by their interpreter: its RPATH and what it loaded count, misses are reported through the chain', async () => {
    const pre = await library('libpre.so.1', 'int pre(void) { return 42; }\n');
    const helper = await library('libhelper.so.1', 'int helper(void) { return 1; }\n');
    const ghost = await library('libghost.so.1', 'int ghost(void) { return 1; }\n');
    // The interpreters: one with DT_RPATH (which reaches the modules' dependencies), one with DT_RUNPATH (which does not).
    const python = await program('python-rpath', dlopenerSource, { links: [pre], rpath: '$ORIGIN/../lib' });
    const python2 = await program('python-runpath', dlopenerSource, { links: [pre], runpath: '$ORIGIN/../lib' });
    // libbundled needs libpre (already loaded by the interpreter), libhelper (the interpreter's RPATH) and libghost (nowhere).
    const bundled = await library('libbundled.so.1', 'int pre(void); int helper(void); int ghost(void);\nint bundled(void) { return pre() + helper() + ghost(); }\n', { links: [pre, helper, ghost] });
    const module = await library('_ext.so', 'int bundled(void);\nint PyInit__ext(void) { return bundled(); }\n', { links: [bundled], runpath: '$ORIGIN/../pkg.libs' });
    const helped = await library('libhelped.so.1', 'int helper(void);\nint helped(void) { return helper(); }\n', { links: [helper] });
    const module2 = await library('_ext2.so', 'int helped(void);\nint PyInit__ext2(void) { return helped(); }\n', { links: [helped], runpath: '$ORIGIN' });
    const { report } = await scenario(
      'python',
      'linux/amd64',
      {
        '/python/bin/python3': python,
        '/python/lib/libpre.so.1': pre,
        '/python/lib/libhelper.so.1': helper,
        '/app/.venv/lib/python3.12/site-packages/pkg/_ext.so': module,
        '/app/.venv/lib/python3.12/site-packages/pkg.libs/libbundled.so.1': bundled,
        '/python2/bin/python3': python2,
        '/python2/lib/libpre.so.1': pre,
        '/python2/lib/libhelper.so.1': helper,
        '/app2/lib/python3.12/site-packages/mod2/_ext2.so': module2,
        '/app2/lib/python3.12/site-packages/mod2/libhelped.so.1': helped,
      },
      {
        pythonInterpreters: [
          { root: '/app/.venv', interpreter: '/python/bin/python3' },
          { root: '/app2', interpreter: '/python2/bin/python3' },
        ],
      },
      [
        { argv: ['/python/bin/python3', '/app/.venv/lib/python3.12/site-packages/pkg/_ext.so'], fails: 'libghost.so.1' },
        { argv: ['/python2/bin/python3', '/app2/lib/python3.12/site-packages/mod2/_ext2.so'], fails: 'libhelper.so.1' },
      ],
    );
    assert.deepEqual(lines(report), [
      'libghost.so.1 <- /app/.venv/lib/python3.12/site-packages/pkg.libs/libbundled.so.1 [/app/.venv/lib/python3.12/site-packages/pkg/_ext.so > /app/.venv/lib/python3.12/site-packages/pkg.libs/libbundled.so.1]',
      'libhelper.so.1 <- /app2/lib/python3.12/site-packages/mod2/libhelped.so.1 [/app2/lib/python3.12/site-packages/mod2/_ext2.so > /app2/lib/python3.12/site-packages/mod2/libhelped.so.1]',
    ]);
  });

  test('a shared object no program loads is checked on its own, from the one that loads it', async () => {
    const ghost = await library('libghost2.so.1', 'int ghost2(void) { return 1; }\n');
    const needsGhost = await library('libneedsghost.so.1', 'int ghost2(void);\nint needsghost(void) { return ghost2(); }\n', { links: [ghost] });
    // libtop loads libneedsghost through its DT_RPATH; libneedsghost alone could not find it, but is judged as libtop loads it.
    const top = await library('libtop.so.1', 'int needsghost(void);\nint top(void) { return needsghost(); }\n', { links: [needsGhost], rpath: '/opt/private' });
    const { report } = await scenario(
      'orphans',
      'linux/amd64',
      { '/usr/lib/x86_64-linux-gnu/libtop.so.1': top, '/opt/private/libneedsghost.so.1': needsGhost },
      {},
      [],
    );
    assert.deepEqual(lines(report), ['libghost2.so.1 <- /opt/private/libneedsghost.so.1 [/usr/lib/x86_64-linux-gnu/libtop.so.1 > /opt/private/libneedsghost.so.1]']);
  });

  test('aarch64: the aarch64-linux-gnu directories, not x86_64-linux-gnu or /lib64', async () => {
    // trixie's zstd for arm64 needs libzstd.so.1, liblzma.so.5, liblz4.so.1 (which needs libxxhash.so.0) and libz.so.1, all in /usr/lib/aarch64-linux-gnu.
    const { report, tree } = await scenario('aarch64', 'linux/arm64', {}, {}, [{ argv: ['/usr/bin/zstd', '--version'] }]);
    assert.deepEqual(lines(report), []);
    assert.deepEqual(report.foreign, []);
    assert.equal(tree.node('/usr/bin/zstd')?.type === 'file' && (tree.node('/usr/bin/zstd') as { elf?: { machine: string } }).elf?.machine, 'aarch64');
    // The same files judged as an amd64 image: every ELF file is foreign, nothing is checked.
    const asAmd64 = findMissingLibraries(tree, { system: loaderSystem('x86_64') });
    assert.deepEqual(asAmd64.missing, []);
    assert.ok(asAmd64.foreign.includes('/usr/bin/zstd'));

    // liblz4 moved to the directories of other platforms and distributions.
    const moveLz4 = (root: string): void => {
      for (const dir of ['usr/lib/x86_64-linux-gnu', 'usr/lib64']) {
        execFileSync('mkdir', ['-p', join(root, dir)]);
        execFileSync('sh', ['-c', `cp -a ${join(root, 'usr/lib/aarch64-linux-gnu')}/liblz4.so.1* ${join(root, dir)}/`]);
      }
      execFileSync('sh', ['-c', `rm ${join(root, 'usr/lib/aarch64-linux-gnu')}/liblz4.so.1*`]);
    };
    const { report: moved, tree: movedTree } = await scenario('aarch64-moved', 'linux/arm64', {}, {}, [{ argv: ['/usr/bin/zstd', '--version'], fails: 'liblz4.so.1' }], moveLz4);
    assert.deepEqual(lines(moved), ['liblz4.so.1 <- /usr/bin/zstd [/usr/bin/zstd]']);
    // A base of unknown distribution: /usr/lib64 is searched too.
    assert.deepEqual(lines(findMissingLibraries(movedTree, { system: loaderSystem('aarch64', 'any') })), []);
  });

  test('a missing program interpreter (PT_INTERP) is reported', () => {
    const tree = new ImageTree();
    const elf = { bits: 64 as const, littleEndian: true, machine: 'x86_64', kind: 'executable' as const, interpreter: '/lib64/ld-linux-x86-64.so.2', needed: ['libc.so.6'], noDefaultLib: false, dynamic: true };
    tree.add('/usr/bin/tool', { type: 'file', elf });
    tree.add('/usr/lib/x86_64-linux-gnu/libc.so.6', { type: 'file', elf: { ...elf, kind: 'shared', interpreter: undefined, needed: [], soname: 'libc.so.6' } });
    const report = findMissingLibraries(tree, { system: loaderSystem('x86_64') });
    assert.deepEqual(
      report.missing.map((miss) => [miss.name, miss.kind, miss.neededBy.map((needer) => needer.file)]),
      [['/lib64/ld-linux-x86-64.so.2', 'interpreter', ['/usr/bin/tool']]],
    );
  });
});

describe('the real ld.so agrees', () => {
  before(() => requireDocker());

  test('every scenario above, run in the Docker engine', async () => {
    assert.ok(scenarios.length >= 7, 'the scenarios ran first');
    const binfmt = await run('cat', ['/proc/sys/fs/binfmt_misc/qemu-aarch64']);
    assert.match(binfmt.stdout, /flags: .*F/, 'qemu-aarch64 must be registered with flag F (scripts/enable-binfmt)');
    for (const { name, platform, root, runs } of scenarios) {
      if (runs.length === 0) continue;
      const image = `uvimage-test/loader-${name}:latest`;
      // `docker import` ignores --platform on this engine; a scratch build of the tree records it.
      const context = join(work, 'contexts', name);
      await mkdir(context, { recursive: true });
      execFileSync('tar', ['-C', root, '-cf', join(context, 'root.tar'), '.']);
      await writeFile(join(context, 'Dockerfile'), 'FROM scratch\nADD root.tar /\n');
      await check('docker', ['build', '--quiet', '--platform', platform, '--tag', image, context]);
      try {
        for (const { argv, fails } of runs) {
          const result = await run('docker', ['run', '--rm', '--platform', platform, '--network', 'none', '--user', '65532', '--read-only', image, ...argv]);
          const what = `${name}: ${argv.join(' ')}`;
          if (fails === undefined) assert.equal(result.code, 0, `${what} should start: ${result.stderr}`);
          else {
            assert.notEqual(result.code, 0, `${what} should fail on ${fails}`);
            assert.ok(result.stderr.includes(fails), `${what} should fail on ${fails}: ${result.stderr}`);
          }
        }
      } finally {
        await run('docker', ['image', 'rm', '--force', image]);
      }
    }
  });
});
