/**
 * The `uvimage` bin as installed: src compiled by tsc and bundled by scripts/bundle.mjs (what
 * `npm run build` does), into a temp directory. The rest of the suite runs the sources through
 * tsx; here the bundle must behave the same: the same image digests as the sources give, the
 * openpgp chunk loaded when an InRelease is verified, the xz decoder (WebAssembly, bundled) for
 * Packages.xz — with no node_modules anywhere above the bundle, as the package installs none.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { cliEnv, uvimage } from '../harness/cli.js';
import { check } from '../harness/docker.js';
import { fastapiHello, sharedCliCache } from '../harness/project-build.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));
let work: string;
let bin: string;

/** Runs a command as uvimage() runs the CLI (same environment); its stdout, or a failed test. */
const ok = (command: string, args: string[]): Promise<string> => check(command, args, { env: cliEnv() });

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'uvimage-bundle-'));
  // tsc's output as in the repository: in an ES-module package (esbuild gives CommonJS modules'
  // default imports Node's meaning there), beside node_modules, where esbuild resolves the
  // dependencies; the bundle written apart from both, so it runs with no node_modules to fall back on.
  const compiled = join(work, 'compiled');
  await mkdir(compiled);
  await writeFile(join(compiled, 'package.json'), '{ "type": "module" }\n');
  await symlink(join(repo, 'node_modules'), join(compiled, 'node_modules'));
  await ok(join(repo, 'node_modules', '.bin', 'tsc'), ['-p', join(repo, 'tsconfig.json'), '--outDir', join(compiled, 'dist')]);
  await ok(process.execPath, [join(repo, 'scripts', 'bundle.mjs'), join(compiled, 'dist'), join(work, 'bundle')]);
  bin = join(work, 'bundle', 'uvimage.js');
});

after(async () => {
  await rm(work, { recursive: true, force: true });
});

test('the bundle is one module for the CLI and a chunk for openpgp, and says the package version', async () => {
  const files = await readdir(join(work, 'bundle'));
  assert.ok(files.includes('uvimage.js'), files.join(' '));
  assert.ok(files.some((name) => /^openpgp-.*\.js$/.test(name)), `openpgp loads on demand from its own chunk: ${files.join(' ')}`);
  const main = await readFile(bin, 'utf8');
  assert.ok(main.startsWith('#!/usr/bin/env node\n'), 'runnable as the bin');
  assert.doesNotMatch(main, /node_modules\/openpgp\//, 'openpgp is not in the main module');
  const { version } = JSON.parse(await readFile(join(repo, 'package.json'), 'utf8')) as { version: string };
  assert.equal((await ok(process.execPath, [bin, '--version'])).trim(), version);
});

test('the bundle builds the example to the same digest as the sources', async () => {
  const args = ['build', fastapiHello, '--runtime', 'debian', '--python', '3.13', '--cache-dir', sharedCliCache(), '--json'];
  const fromSources = await uvimage([...args, '--oci', join(work, 'from-sources')]);
  assert.equal(fromSources.code, 0, fromSources.stderr);
  const fromBundle = JSON.parse(await ok(process.execPath, [bin, ...args, '--oci', join(work, 'from-bundle')])) as { digest: string };
  assert.equal(fromBundle.digest, (JSON.parse(fromSources.stdout) as { digest: string }).digest);
});

test('the bundle verifies a fresh InRelease (openpgp chunk) and reads Packages.xz (the bundled xz decoder)', async () => {
  const cache = join(work, 'fresh-cache');
  const args = ['base', 'static', '--suite', 'trixie', '--cache-dir', cache, '--json'];
  const fromBundle = JSON.parse(await ok(process.execPath, [bin, ...args, '--oci', join(work, 'static-bundle')])) as { digest: string };
  const fromSources = await uvimage([...args, '--oci', join(work, 'static-sources')]);
  assert.equal(fromSources.code, 0, fromSources.stderr);
  assert.equal((JSON.parse(fromSources.stdout) as { digest: string }).digest, fromBundle.digest);
});
