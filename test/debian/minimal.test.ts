/**
 * The minimal flavour's choice (src/base/minimal.ts) on real files: trixie's amd64 cc packages
 * unpacked as the candidate base, under a "runtime" and a "venv" of objects built here with gcc
 * and g++ — what they link and which glibc-loading symbols they import is what varies. What the
 * selection keeps is then what a real loader needs; the corpus e2e (test/build/corpus.e2e.test.ts)
 * runs real applications on it.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { parseBaseName } from '../../src/base/build.js';
import { flavourPackages, nsswitchFile } from '../../src/base/flavours.js';
import { UserError } from '../../src/errors.js';
import { alwaysKept, selectMinimalBase, type MinimalBaseSelection } from '../../src/base/minimal.js';
import { loaderSystem } from '../../src/binary/loader.js';
import { glibcLoadingSymbols, nssModules } from '../../src/facts/glibc.js';
import { unpackDebianPackages } from '../harness/debian-packages.js';
import { imageTreeFromDirectory } from '../harness/image-tree.js';

const candidates = flavourPackages('cc', 'trixie');
let work: string;
let baseRoot: string;
let owners: Map<string, string>;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'uvimage-minimal-'));
  baseRoot = join(work, 'base');
  await mkdir(baseRoot);
  owners = await unpackDebianPackages(baseRoot, 'trixie', 'amd64', candidates.filter((name) => name !== 'ca-certificates'));
});
after(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

const venvModule = '/app/.venv/lib/python3.12/site-packages/ext.so';

/** The candidate base with a program at /python/bin/python3 and an extension module, from C (or C++) source; the selection made on it. */
async function selectFor(name: string, parts: { program: string; module: string; moduleLanguage?: 'c' | 'c++'; programLibs?: string[] }): Promise<MinimalBaseSelection> {
  const root = join(work, name);
  execFileSync('cp', ['-a', `${baseRoot}/.`, root]);
  const compile = (language: 'c' | 'c++', source: string, out: string, flags: string[]) => {
    const file = `${out}.${language === 'c' ? 'c' : 'cc'}`;
    execFileSync('mkdir', ['-p', dirname(out)]);
    return writeFile(file, source).then(() => execFileSync(language === 'c' ? 'gcc' : 'g++', ['-o', out, file, ...flags]));
  };
  await compile('c', parts.program, join(root, 'python/bin/python3'), ['-pthread', ...(parts.programLibs ?? [])]);
  await compile(parts.moduleLanguage ?? 'c', parts.module, join(root, venvModule), ['-shared', '-fPIC']);
  execFileSync('rm', ['-f', join(root, 'python/bin/python3.c'), join(root, `${venvModule}.c`), join(root, `${venvModule}.cc`)]);
  const view = await imageTreeFromDirectory(root, { watchedImports: glibcLoadingSymbols });
  return selectMinimalBase({
    view,
    inBase: (path) => !path.startsWith('/python') && !path.startsWith('/app'),
    baseOwner: (path) => owners.get(path),
    candidates,
    always: alwaysKept('trixie'),
    system: loaderSystem('x86_64'),
    pythonInterpreters: [{ root: '/app/.venv', interpreter: '/python/bin/python3' }],
    workdir: '/app',
  });
}

const plainC = 'int main(void) { return 0; }\n';
const plainModule = 'int answer(void) { return 42; }\n';

test('a C program that exits threads and a C module: libc6 and libgcc-s1 (for pthread_exit), nothing else; libc6 loses what nothing loads', async () => {
  const selection = await selectFor('threads', {
    program: '#include <pthread.h>\n#include <math.h>\nvoid *run(void *arg) { pthread_exit(arg); }\nint main(int argc, char **argv) { pthread_t t; pthread_create(&t, 0, run, 0); pthread_join(t, 0); return (int)sqrt(argc); }\n',
    programLibs: ['-lm'],
    module: plainModule,
  });
  assert.deepEqual(selection.packages, candidates.filter((name) => ['libc6', 'libgcc-s1'].includes(name) || alwaysKept('trixie').includes(name)));
  assert.deepEqual(selection.leftOut.sort(), ['gcc-14-base', 'libgomp1', 'libssl3t64', 'libstdc++6', 'libzstd1', 'zlib1g']);
  assert.match(selection.keptFor['libgcc-s1']!.join(), /libgcc_s\.so\.1 \(glibc loads it for pthread_exit, which \/python\/bin\/python3 calls\)/);
  const libdir = 'usr/lib/x86_64-linux-gnu';
  const dropped = new Set(selection.dropped);
  // Loaded: the loader, libc, libm; NSS modules nsswitch.conf names.
  for (const kept of ['ld-linux-x86-64.so.2', 'libc.so.6', 'libm.so.6', ...nssModules('passwd: compat\nhosts: files dns\n')]) assert.ok(!dropped.has(`${libdir}/${kept}`), `${kept} is kept`);
  // Only preloaded, only for debuggers, or linked by nothing here.
  for (const gone of ['libmemusage.so', 'libpcprofile.so', 'libc_malloc_debug.so.0', 'libthread_db.so.1', 'libBrokenLocale.so.1', 'libmvec.so.1', 'libresolv.so.2']) {
    assert.ok(dropped.has(`${libdir}/${gone}`), `${gone} is left out`);
  }
  assert.equal(selection.gconv, false);
  assert.ok(dropped.has(`${libdir}/gconv`) && dropped.has(`${libdir}/gconv/gconv-modules`), 'the gconv modules go when nothing imports iconv_open');
  assert.ok(!dropped.has('usr/lib64/ld-linux-x86-64.so.2'), 'the /lib64 link to the loader stays');
});

test('a C++ module keeps libstdc++6 (and libgcc-s1, which it needs), with who needs it', async () => {
  const selection = await selectFor('cxx', {
    program: plainC,
    module: '#include <string>\nextern "C" int answer(void) { std::string text("forty-two"); return (int)text.size(); }\n',
    moduleLanguage: 'c++',
  });
  assert.ok(selection.packages.includes('libstdc++6') && selection.packages.includes('libgcc-s1'), JSON.stringify(selection.packages));
  assert.match(selection.keptFor['libstdc++6']!.join(), /libstdc\+\+\.so\.6 \(needed by ext\.so\)/);
  assert.ok(selection.leftOut.includes('libssl3t64'));
  // libstdc++ imports iconv_open (its codecvt and messages facets), so the gconv modules can be loaded.
  assert.equal(selection.gconv, true);
  assert.match(selection.gconvFor!, /libstdc\+\+\.so\.6/);
});

test('a program that calls iconv_open keeps the gconv modules; one with no threads leaves libgcc-s1 out', async () => {
  const selection = await selectFor('iconv', {
    program: '#include <iconv.h>\nint main(void) { iconv_t cd = iconv_open("UTF-8", "EUC-JP"); return cd == (iconv_t)-1; }\n',
    module: plainModule,
  });
  assert.equal(selection.gconv, true);
  assert.ok(!selection.dropped.some((path) => path.includes('/gconv')), 'nothing of gconv is left out');
  assert.ok(!selection.packages.includes('libgcc-s1'), 'nothing exits a thread or links libgcc_s');
});

test("the NSS modules kept are the ones distroless' nsswitch.conf names", () => {
  assert.deepEqual(nssModules(nsswitchFile), ['libnss_compat.so.2', 'libnss_db.so.2', 'libnss_dns.so.2', 'libnss_files.so.2', 'libnss_nis.so.2']);
  assert.deepEqual(nssModules('hosts: files [NOTFOUND=return] dns # comment\n# passwd: ldap\n'), ['libnss_dns.so.2', 'libnss_files.so.2']);
});

test('`uvimage base minimal` is refused: the minimal base exists only under an image', () => {
  assert.throws(() => parseBaseName('minimal'), (error: unknown) => error instanceof UserError && /computed from what an image's ELF files need.*uvimage build/.test(error.message));
  assert.equal(parseBaseName('cc'), 'cc');
});
