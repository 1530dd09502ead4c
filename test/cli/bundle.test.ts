/**
 * The `uvimage` bin as installed: src compiled by tsc and bundled by scripts/bundle.mjs (what
 * `npm run build` does), into a temp directory. The rest of the suite runs the sources through
 * tsx; here the bundle must behave the same: the same image digests as the sources give, the
 * openpgp chunk loaded when an InRelease is verified, the xz decoder (WebAssembly, bundled) for
 * Packages.xz — with no node_modules anywhere above the bundle, as the package installs none.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { cliEnv, uvimage } from '../harness/cli.js';
import { check } from '../harness/docker.js';
import { compileBundle } from '../harness/installed-build.js';
import { fastapiHello, sharedCliCache } from '../harness/project-build.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));
let work: string;
let bin: string;

/** Runs a command as uvimage() runs the CLI (same environment); its stdout, or a failed test. */
const ok = (command: string, args: string[]): Promise<string> => check(command, args, { env: cliEnv() });

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'uvimage-bundle-'));
  bin = join(await compileBundle(work), 'uvimage.js');
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
