/**
 * The npm package as people get it: a clean clone of this repository (what is committed, nothing
 * built), `npm ci`, `npm pack` (whose prepack builds it), the tarball installed globally into a
 * temporary prefix, and its `uvimage` bin building the example from a directory outside the
 * repository. The package must be the bundle alone: no dependencies to install, no install
 * script, nothing platform-specific.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { check, run } from '../harness/docker.js';
import { buildExampleInstalled } from '../harness/installed-build.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));
let work: string;
let tarball: string;
let packedFiles: string[];

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'uvimage-npm-package-'));
  const clone = join(work, 'clone');
  await check('git', ['clone', '--quiet', '--no-hardlinks', repo, clone]);
  await check('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: clone });
  const packed = JSON.parse(await check('npm', ['pack', '--json', '--pack-destination', work], { cwd: clone })) as { filename: string; files: { path: string }[] }[];
  tarball = join(work, packed[0]!.filename);
  packedFiles = packed[0]!.files.map((file) => file.path).sort();
});

after(async () => {
  await rm(work, { recursive: true, force: true });
});

test('npm pack of a clean clone builds the bundle into the package, and only it', async () => {
  assert.ok(packedFiles.includes('dist/bundle/uvimage.js'), packedFiles.join('\n'));
  assert.ok(packedFiles.some((path) => /^dist\/bundle\/openpgp-[^/]+\.js$/.test(path)), packedFiles.join('\n'));
  const unexpected = packedFiles.filter((path) => !path.startsWith('dist/bundle/') && !['package.json', 'README.md', 'LICENSE'].includes(path));
  assert.deepEqual(unexpected, [], 'nothing but the bundle, package.json and the README');
  assert.ok(packedFiles.every((path) => !path.endsWith('.node')), 'no native addon');
  const manifest = JSON.parse(await check('tar', ['-xOzf', tarball, 'package/package.json'])) as Record<string, Record<string, string> | undefined>;
  assert.deepEqual(manifest.dependencies ?? {}, {}, 'the bundle carries its dependencies');
  for (const hook of ['preinstall', 'install', 'postinstall', 'prepare']) assert.equal(manifest.scripts?.[hook], undefined, `no ${hook} script`);
});

test('installed globally into a prefix, its bin builds the example outside the repository', async () => {
  const prefix = join(work, 'prefix');
  const installed = await run('npm', ['install', '--global', '--prefix', prefix, '--no-audit', '--no-fund', tarball], { cwd: work });
  assert.equal(installed.code, 0, installed.stderr);
  assert.doesNotMatch(installed.stdout + installed.stderr, /install.?script/i, 'npm has no install script to warn about');
  const bin = join(prefix, 'bin', 'uvimage');
  assert.ok((await stat(bin)).mode & 0o111, 'npm linked an executable bin');
  const packageDir = join(prefix, 'lib', 'node_modules', 'uvimage');
  assert.deepEqual((await readdir(packageDir)).filter((name) => name === 'node_modules'), [], 'npm installed no dependencies');
  const { version } = JSON.parse(await readFile(join(repo, 'package.json'), 'utf8')) as { version: string };
  assert.equal((await check(bin, ['--version'], { cwd: work })).trim(), version);
  await buildExampleInstalled(join(work, 'projects'), 'npm-global', [bin], {});
});
