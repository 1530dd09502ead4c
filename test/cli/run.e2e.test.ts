/**
 * `uvimage run` end to end (issue 14, point 6), with Docker and with Podman: the example built
 * for this machine, loaded, run as the image's user on a read-only root with a tmpfs /tmp; it
 * answers over HTTP on the port published with -p; Ctrl-C (SIGINT) stops it, the container is
 * gone and uvimage exits 130; arguments after -- reach the command, -e its environment, and
 * uvimage exits with the container's status, its stdout the container's alone.
 *
 * This machine's engines need two settings of their own, given the way users give them:
 *   - Docker runs without its default bridge (dockerd --bridge=none, see scripts/start-dockerd),
 *     so a published port needs a network that has one: the test creates a bridge network and
 *     passes --network (on a stock engine -p works without it);
 *   - Podman's default RLIMIT_NOFILE/NPROC are above what this sandbox lets runc set, so its
 *     containers.conf (CONTAINERS_CONF) sets lower default_ulimits; its storage is a private vfs
 *     store under the test's directory (CONTAINERS_STORAGE_CONF), leaving the machine's alone.
 * The runtime is the python-build-standalone stand-in, as in test/build/build.e2e.test.ts; builds
 * use the shared test store, so reruns download nothing.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { cliEnv } from '../harness/cli.js';
import { check, dockerRemoveImages, requireDocker, run, type RunResult } from '../harness/docker.js';
import { fastapiHello, sharedCliCache, standaloneEnv } from '../harness/project-build.js';
import { freePort } from '../harness/registry.js';
import { standaloneMirror, type StandaloneMirror } from '../harness/standalone-python.js';
import { uvBinary } from '../harness/uv.js';

const cli = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const network = `uvimage-run-e2e-${process.pid}`;
const image = 'uvimage-run/fastapi-hello:latest';

let standalone: StandaloneMirror;
let work: string;
/** What the engine commands of the test and of uvimage run see: Podman's private store and limits. */
let engineEnv: NodeJS.ProcessEnv;

before(async () => {
  requireDocker();
  standalone = await standaloneMirror('3.12.1');
  work = await mkdtemp(join(tmpdir(), 'uvimage-run-e2e-'));
  await check('docker', ['network', 'create', '--driver', 'bridge', network]);
  const podman = join(work, 'podman');
  await writeFile(join(work, 'storage.conf'), `[storage]\ndriver = "vfs"\nrunroot = "${podman}/run"\ngraphroot = "${podman}/root"\n`);
  await writeFile(join(work, 'containers.conf'), '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n');
  engineEnv = { ...process.env, CONTAINERS_STORAGE_CONF: join(work, 'storage.conf'), CONTAINERS_CONF: join(work, 'containers.conf') };
});

after(async () => {
  await run('docker', ['network', 'rm', network]);
  await dockerRemoveImages([image]);
  if (work) await rm(work, { recursive: true, force: true });
});

/** The environment of `uvimage run`: the stand-in runtime, the engines' settings. */
function runEnv(): NodeJS.ProcessEnv {
  return cliEnv({ ...engineEnv, UV: uvBinary(), ...standaloneEnv(standalone) });
}

function startRun(args: string[]): { child: ChildProcess; output: () => RunResult; exited: Promise<number | null> } {
  const child = spawn(process.execPath, ['--import', 'tsx', cli, 'run', ...args], { env: runEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout!.on('data', (chunk: Buffer) => out.push(chunk));
  child.stderr!.on('data', (chunk: Buffer) => err.push(chunk));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { child, exited, output: () => ({ code: child.exitCode, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }) };
}

/** GETs the URL until it answers; fails as soon as uvimage run has exited. */
async function firstAnswer(url: string, running: ReturnType<typeof startRun>, timeoutMs: number): Promise<{ status: number; body: string }> {
  const started = Date.now();
  for (;;) {
    if (running.child.exitCode !== null) assert.fail(`uvimage run exited (${running.child.exitCode}) before ${url} answered:\n${running.output().stderr}`);
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(3000) });
      return { status: response.status, body: await response.text() };
    } catch {
      // not listening yet
    }
    if (Date.now() - started > timeoutMs) assert.fail(`no answer from ${url} within ${timeoutMs / 1000} s:\n${running.output().stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

async function containersNamed(engine: string, name: string): Promise<string> {
  return (await check(engine, ['ps', '--all', '--filter', `name=^${name}$`, '--format', '{{.Names}}'], { env: engineEnv })).trim();
}

async function servesAndStopsOnCtrlC(engine: 'docker' | 'podman', engineArgs: string[]): Promise<void> {
  const port = await freePort();
  const name = `uvimage-run-e2e-${process.pid}-${engine}`;
  const running = startRun([fastapiHello, '--engine', engine, ...engineArgs, '-p', `127.0.0.1:${port}:8000`, '--name', name, '--cache-dir', sharedCliCache()]);
  try {
    const answer = await firstAnswer(`http://127.0.0.1:${port}/`, running, 180_000);
    assert.equal(answer.status, 200, answer.body);
    assert.deepEqual(JSON.parse(answer.body), { message: 'Hello world' });
    // As the image's user, on a read-only root, with the tmpfs at /tmp, as the engine reports it.
    const settings = (await check(engine, ['inspect', '--format', '{{.Config.User}} {{.HostConfig.ReadonlyRootfs}}', name], { env: engineEnv })).trim();
    assert.equal(settings, '65532 true');
    // (Podman adds /run and /var/tmp to a read-only container of its own accord.)
    const tmpfs = JSON.parse(await check(engine, ['inspect', '--format', '{{json .HostConfig.Tmpfs}}', name], { env: engineEnv })) as Record<string, string>;
    assert.match(tmpfs['/tmp'] ?? '', /mode=1777/);

    running.child.kill('SIGINT');
    assert.equal(await running.exited, 130, running.output().stderr);
    assert.equal(await containersNamed(engine, name), '', `no container ${name} is left`);
    const { stdout, stderr } = running.output();
    // The app's own output came through: FastAPI's banner and access log on stdout (nothing of
    // uvimage's there), uvicorn's log on stderr after the one line saying what runs.
    assert.match(stdout, /Starting FastAPI in production mode/);
    assert.match(stdout, /"GET \/ HTTP\/1\.1" 200/);
    assert.doesNotMatch(stdout, /^(built|Running|Built|Loaded|Wrote)/m);
    assert.match(stderr, new RegExp(`^Running ${engine} run --rm --name ${name} .*--read-only --tmpfs /tmp:\\S+ --user 65532 .*$`, 'm'));
    assert.match(stderr, /Uvicorn running on http:\/\/0\.0\.0\.0:8000/);
    assert.match(stderr, /Shutting down/, 'the app was stopped by the signal, not killed');
  } finally {
    running.child.kill('SIGKILL');
    await run(engine, ['rm', '--force', name], { env: engineEnv });
  }
}

/** Prints, as JSON, what the command got and where it may write; exits 3. */
const probe = [
  'import json, os, sys',
  'root = "writable"',
  'try:',
  '    open("/app/probe", "w")',
  'except OSError as error:',
  '    root = error.strerror',
  'open("/tmp/probe", "w").write("ok")',
  'print(json.dumps({"argv": sys.argv[1:], "uid": os.getuid(), "greeting": os.environ.get("GREETING"), "root": root}))',
  'sys.exit(3)',
].join('\n');

async function argumentsReachTheCommand(engine: 'docker' | 'podman'): Promise<void> {
  const running = startRun([fastapiHello, '--engine', engine, '-e', 'GREETING=hello there', '--cache-dir', sharedCliCache(), '--', 'python', '-c', probe, 'a', 'b c']);
  assert.equal(await running.exited, 3, running.output().stderr);
  const { stdout } = running.output();
  assert.deepEqual(JSON.parse(stdout), { argv: ['a', 'b c'], uid: 65532, greeting: 'hello there', root: 'Read-only file system' });
}

test('docker: answers on the published port as 65532 on a read-only root; Ctrl-C stops it, removes it, exits 130', async () => {
  await servesAndStopsOnCtrlC('docker', ['--network', network]);
});

test('docker: arguments after -- reach the command, -e its environment; the exit status is the container\'s', async () => {
  await argumentsReachTheCommand('docker');
});

test('podman: the same image loaded with podman load answers, stops on Ctrl-C and is removed', async () => {
  await servesAndStopsOnCtrlC('podman', []);
});

test('podman: arguments, environment and exit status', async () => {
  await argumentsReachTheCommand('podman');
});

test('bad flags are one line before anything is built', async () => {
  for (const [args, pattern] of [
    [['-p', '8000'], /-p "8000": expected HOST:CONTAINER/],
    [['-p', '70000:8000'], /ports 1-65535/],
    [['-e', '=x'], /-e "=x": expected KEY=VALUE or KEY/],
    [['--platform', 'linux/amd64,linux/arm64'], /builds one platform/],
    [['--sbom', 'out'], /uvimage run makes no SBOMs/],
  ] as const) {
    const running = startRun([fastapiHello, ...args]);
    assert.equal(await running.exited, 1);
    const { stderr, stdout } = running.output();
    assert.match(stderr, pattern);
    assert.equal(stderr.trim().split('\n').length, 1, stderr);
    assert.equal(stdout, '');
  }
});
