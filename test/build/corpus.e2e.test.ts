/**
 * The corpus end to end (issue 11, point 7): every project of test/fixtures/projects built by the
 * CLI for linux/amd64, loaded into the Docker engine and checked as its smoke.json says, as 65532
 * on a read-only root (test/harness/corpus.ts); and a few under qemu-user for linux/arm64. Each
 * test prints one line saying what happened, so a run reports the whole corpus.
 *
 * Runtimes: amd64 builds use the CPython 3.12.1 stand-in made from pyenv's (the projects'
 * .python-version says 3.12); arm64 builds the Debian-made 3.13 stand-in with `--python 3.13`
 * (the only stand-in for aarch64; see build-e2e.test.ts). arm64 runs are slow under emulation
 * (30–60 s each), so three projects run there, chosen for what differs on arm64: data-app (the
 * largest native wheels: numpy, pandas, pyarrow), sdist-only (a wheel built on this amd64 host
 * goes into the arm64 image) and flask-gevent (gevent's compiled greenlets, and the source tree).
 *
 * The private-index project is locked against the tests' pypiserver (basic auth) and built with
 * the index's credentials; a second build has every wheel download redirected to another host,
 * which must get no credentials.
 *
 * Builds share the persistent test store, so a rerun downloads nothing.
 * Needs: a Docker engine (scripts/start-dockerd); for arm64 the qemu-aarch64 binfmt entry with
 * flag F (scripts/enable-binfmt); libpq-dev and gcc for native-libs' psycopg2.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { corpusProjects, runCorpusProject, type CorpusOutcome, type CorpusPlatform, type CorpusProject } from '../harness/corpus.js';
import { debianStandaloneMirror } from '../harness/debian-standalone-python.js';
import { requireDocker } from '../harness/docker.js';
import { startPrivateIndex, type PrivateIndex } from '../harness/private-index.js';
import { standaloneEnv } from '../harness/project-build.js';
import { standaloneMirror, type StandaloneMirror } from '../harness/standalone-python.js';

const arm64Projects = ['data-app', 'sdist-only', 'flask-gevent'];

const projects = await corpusProjects();
let mirror312: StandaloneMirror;
let mirror313: StandaloneMirror;
let privateIndex: PrivateIndex;
let work: string;

before(async () => {
  requireDocker();
  mirror312 = await standaloneMirror('3.12.1');
  mirror313 = await debianStandaloneMirror();
  privateIndex = await startPrivateIndex();
  work = await mkdtemp(join(tmpdir(), 'uvimage-corpus-e2e-'));
});

after(async () => {
  await privateIndex?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

/** Fails with everything the outcome says: the build's error line, each failed check and its output. */
function assertOutcome(outcome: CorpusOutcome): void {
  console.log(outcome.summary);
  if (outcome.ok) return;
  const details = [outcome.summary];
  if (outcome.build.code !== 0) details.push(outcome.build.stderr.trim().split('\n').slice(-8).join('\n'));
  for (const check of outcome.checks.filter((entry) => !entry.ok)) details.push(`--- ${check.name}:\n${check.output.trim().split('\n').slice(-12).join('\n')}`);
  assert.fail(details.join('\n'));
}

function runOn(project: CorpusProject, platform: CorpusPlatform): Promise<CorpusOutcome> {
  return platform === 'linux/amd64'
    ? runCorpusProject(project, { platform, runtimeEnv: standaloneEnv(mirror312), workDir: work, privateIndex, timeoutMs: 60_000 })
    : runCorpusProject(project, { platform, runtimeEnv: standaloneEnv(mirror313), python: '3.13', workDir: work, privateIndex, timeoutMs: 180_000 });
}

for (const project of projects) {
  test(`${project.name} on linux/amd64: ${project.smoke.description}`, async () => {
    assert.ok(project.smoke.platforms.includes('linux/amd64'));
    assertOutcome(await runOn(project, 'linux/amd64'));
  });
}

// The minimal flavour (issue 12): the same smoke on a base of only what each image's ELF files need.
for (const project of projects) {
  test(`${project.name} on linux/amd64 with the minimal base: ${project.smoke.description}`, async () => {
    const outcome = await runCorpusProject(project, { platform: 'linux/amd64', runtimeEnv: standaloneEnv(mirror312), workDir: work, privateIndex, timeoutMs: 60_000, flavour: 'minimal' });
    assertOutcome(outcome);
    const minimal = outcome.build.json!.platforms[0]!.minimal;
    assert.ok(minimal, 'the build reports the minimal selection');
    assert.ok(minimal.packages.includes('libc6') && minimal.leftOut.includes('gcc-14-base'), JSON.stringify(minimal));
  });
}

for (const name of arm64Projects) {
  const project = projects.find((entry) => entry.name === name)!;
  test(`${name} on linux/arm64 under qemu-user`, async () => {
    assert.ok(project.smoke.platforms.includes('linux/arm64'), `${name} supports arm64`);
    const binfmt = await readFile('/proc/sys/fs/binfmt_misc/qemu-aarch64', 'utf8').catch(() => '');
    assert.match(binfmt, /flags: .*F/, 'qemu-aarch64 must be registered with flag F (scripts/enable-binfmt)');
    assertOutcome(await runOn(project, 'linux/arm64'));
  });
}

test('private-index with every wheel download redirected to another host: the index got the credentials, the other host none', async (t) => {
  // A server of its own: its wheel is new, so this build downloads it (through the redirect).
  const redirecting = await startPrivateIndex();
  t.after(() => redirecting.stop());
  const project = projects.find((entry) => entry.smoke.privateIndex)!;
  const outcome = await runCorpusProject(project, {
    platform: 'linux/amd64', runtimeEnv: standaloneEnv(mirror312), workDir: work, privateIndex: redirecting, timeoutMs: 60_000,
    // uv has locked the copy by now: from here on every request is the build's.
    beforeBuild: () => {
      redirecting.proxy.resetStats();
      redirecting.redirectDownloads(true);
    },
  });
  const wheelPath = `/packages/${redirecting.wheel.filename}`;
  const atIndex = redirecting.proxy.log.filter((entry) => entry.path === wheelPath);
  const atOtherHost = redirecting.proxy.storageLog;
  console.log(
    `redirected: the index got ${atIndex.length} request(s) for the wheel, ${atIndex.filter((entry) => entry.authorization).length} with credentials; ` +
      `the other host ${atOtherHost.length}, ${atOtherHost.filter((entry) => entry.authorization).length} with credentials`,
  );
  assert.deepEqual(atOtherHost.filter((entry) => entry.authorization), [], 'no credentials to the other host');
  assertOutcome(outcome);
  assert.ok(atIndex.length > 0 && atIndex.every((entry) => entry.authorization && entry.status === 307), `the index was asked with credentials: ${JSON.stringify(atIndex)}`);
  assert.deepEqual(atOtherHost.map((entry) => entry.path), [wheelPath], 'the wheel came from the other host');
});
