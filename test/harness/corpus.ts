/**
 * The corpus (issue 11, point 7): our own test projects in the shapes real applications take,
 * in test/fixtures/projects/<name>/, each locked by real uv against real PyPI packages, and each
 * with a smoke.json saying how its image is checked. This module lists them, builds one with the
 * uvimage CLI for one platform (`--load` into the Docker engine), and runs its checks in Docker
 * the way the recipe runs images: as 65532, `--read-only`, on the host network (servers are told
 * to bind 127.0.0.1 on a free port through the env or arguments in smoke.json), each with a
 * timeout. It returns what happened rather than asserting, so a test can report every project.
 *
 * smoke.json:
 *   description  what shape of application the project stands for
 *   build        extra `uvimage build` arguments (e.g. ["--package", "api"])
 *   features     the uvimage features the project needs (`corpusFeatures` says what each means)
 *   platforms    the platforms its locked wheels allow
 *   privateIndex the project's dependency comes from the tests' private index (private-index.ts):
 *                the copy is pointed at the running index and locked, and the build gets the
 *                index's credentials
 *   checks       each one container run: `command` (the whole command line, entrypoint replaced;
 *                default: the image's own entrypoint and command) with `env`;
 *                passes when it exits 0 and its stdout holds `stdout`, or, with `http`, when it
 *                answers GET `path` on the port with `status` (default 200) and a body holding
 *                `body`. `{port}` in `env` values and `command` is a free port on 127.0.0.1.
 */
import { cp, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { uvimage } from './cli.js';
import { run } from './docker.js';
import { pointAtPrivateIndex, type PrivateIndex } from './private-index.js';
import { inspectImage, removeContainers, sharedCliCache, waitForHttp, type BuildJson } from './project-build.js';
import { freePort } from './registry.js';
import { uvBinary, uvCacheDir } from './uv.js';

export const corpusDir = fileURLToPath(new URL('../fixtures/projects', import.meta.url));

/** The uvimage features a corpus project can need, by the issue that asks for them. */
export const corpusFeatures = {
  package: 'issue 11.2: `--package` for a virtual workspace root',
  'source-tree': 'issue 11.3: the source tree of a project uv installs no module of, in the workdir',
  'default-command': 'issue 11.4: the image command chosen without `cmd` (one console script here)',
  'lock-check': 'issue 11.1: a lock uv accepts (`uv lock --check`) that a stricter check would refuse',
  'index-credentials': 'issue 11.5: `[[tool.uv.index]]` with UV_INDEX_<NAME>_USERNAME/_PASSWORD',
  workspace: 'workspace members built and installed',
  extras: 'extras chosen in [tool.uvimage]',
  groups: 'dependency groups chosen in [tool.uvimage]',
  markers: 'markers and forks of the lock evaluated for the target',
  sdist: 'a dependency PyPI has only as an sdist, built with uv',
  'system-libraries': 'issue 12: shared libraries the wheels expect from the system',
} as const;

export type CorpusFeature = keyof typeof corpusFeatures;
export type CorpusPlatform = 'linux/amd64' | 'linux/arm64';

const checkSchema = z.strictObject({
  name: z.string().min(1),
  command: z.array(z.string()).min(1).optional(),
  env: z.record(z.string(), z.string()).optional(),
  stdout: z.string().min(1).optional(),
  http: z.strictObject({ path: z.string().startsWith('/'), status: z.number().int().optional(), body: z.string().min(1) }).optional(),
}).refine((check) => (check.stdout === undefined) !== (check.http === undefined), 'a check expects either stdout or an http answer');

const smokeSchema = z.strictObject({
  description: z.string().min(1),
  build: z.array(z.string()),
  features: z.array(z.enum(Object.keys(corpusFeatures) as [CorpusFeature, ...CorpusFeature[]])),
  platforms: z.array(z.enum(['linux/amd64', 'linux/arm64'])).min(1),
  privateIndex: z.boolean().optional(),
  checks: z.array(checkSchema).min(1),
});

export type SmokeCheck = z.infer<typeof checkSchema>;
export type Smoke = z.infer<typeof smokeSchema>;

export interface CorpusProject {
  name: string;
  dir: string;
  smoke: Smoke;
}

/** Every project of the corpus, by name, its smoke.json validated. */
export async function corpusProjects(): Promise<CorpusProject[]> {
  const names = (await readdir(corpusDir, { withFileTypes: true })).filter((entry) => entry.isDirectory()).map((entry) => entry.name).sort();
  return Promise.all(names.map((name) => corpusProject(name)));
}

export async function corpusProject(name: string): Promise<CorpusProject> {
  const dir = join(corpusDir, name);
  const path = join(dir, 'smoke.json');
  const parsed = smokeSchema.safeParse(JSON.parse(await readFile(path, 'utf8')));
  if (!parsed.success) throw new Error(`${path}: ${parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('; ')}`);
  return { name, dir, smoke: parsed.data };
}

export interface CorpusRunOptions {
  platform: CorpusPlatform;
  /** The CLI's environment for the runtime, e.g. standaloneEnv(mirror) (project-build.ts). */
  runtimeEnv: NodeJS.ProcessEnv;
  /** `--python` for the build (the arm64 stand-in is 3.13; the projects' .python-version says 3.12). */
  python?: string;
  /** A temp directory the project is copied into (builds write into the source tree: setuptools' build/ and egg-info). */
  workDir: string;
  /** For projects with `privateIndex`: the running index (startPrivateIndex). */
  privateIndex?: PrivateIndex;
  /** Per check; default 60 s, give more under qemu. */
  timeoutMs?: number;
  /** Called with the copy's path once it is ready (and locked, for the private index), before the build. */
  beforeBuild?: (copy: string) => void | Promise<void>;
  /** Leave the image in the engine (default: removed after the checks). */
  keepImage?: boolean;
  /** The Debian flavour of the base (`--flavour`); default: the project's own (cc). */
  flavour?: string;
}

export interface CheckOutcome {
  name: string;
  ok: boolean;
  /** Passed: what was seen; failed: the first line that says why (an error, the last line of a traceback). */
  detail: string;
  /** The container's output (stdout then stderr), or the HTTP body. */
  output: string;
  ms: number;
}

export interface CorpusOutcome {
  project: string;
  platform: CorpusPlatform;
  image: string;
  build: { code: number | null; seconds: number; error?: string; stderr: string; json?: BuildJson };
  checks: CheckOutcome[];
  ok: boolean;
  /** One line for a report: `<project> <platform>: ok` or where it failed and the first line saying why. */
  summary: string;
}

/** Copies, builds (`--load`), runs every check of the project and removes its image; never throws for the project's own failures. */
export async function runCorpusProject(project: CorpusProject, options: CorpusRunOptions): Promise<CorpusOutcome> {
  const arch = options.platform.split('/')[1]!;
  const image = `uvimage-corpus/${project.name}:${arch}${options.flavour ? `-${options.flavour}` : ''}`;
  const label = `${project.name} ${options.platform}${options.flavour ? ` (${options.flavour} base)` : ''}`;
  const copy = await mkdtemp(join(options.workDir, `${project.name}-${arch}-`));
  await cp(project.dir, copy, { recursive: true });
  await rm(join(copy, 'smoke.json'));
  const buildEnv: NodeJS.ProcessEnv = {
    ...options.runtimeEnv,
    // The real uv, not pyenv's shim (which reads the project's .python-version), with the tests' cache.
    UV: uvBinary(),
    UV_CACHE_DIR: uvCacheDir(),
    UV_PYTHON_DOWNLOADS: 'never',
  };
  if (project.smoke.privateIndex) {
    if (!options.privateIndex) throw new Error(`${project.name} needs the private index (startPrivateIndex)`);
    await pointAtPrivateIndex(copy, options.privateIndex);
    Object.assign(buildEnv, options.privateIndex.credentialsEnv);
  }
  const args = ['build', copy, '--platform', options.platform, '-t', image, '--load', '--cache-dir', sharedCliCache(), '--json'];
  if (options.python) args.push('--python', options.python);
  if (options.flavour) args.push('--flavour', options.flavour);
  args.push(...project.smoke.build);

  await options.beforeBuild?.(copy);
  const started = Date.now();
  const result = await uvimage(args, buildEnv);
  const build: CorpusOutcome['build'] = { code: result.code, seconds: (Date.now() - started) / 1000, stderr: result.stderr };
  const outcome: CorpusOutcome = { project: project.name, platform: options.platform, image, build, checks: [], ok: false, summary: '' };
  try {
    if (result.code !== 0) {
      build.error = firstErrorLine(result.stderr) ?? `exit ${result.code}`;
      outcome.summary = `${label}: build failed (exit ${result.code}): ${build.error}`;
      return outcome;
    }
    build.json = JSON.parse(result.stdout) as BuildJson;
    const loaded = (await inspectImage(image)).Architecture;
    if (loaded !== arch) {
      outcome.summary = `${label}: the loaded image is ${loaded}, not ${arch}`;
      return outcome;
    }
    for (const check of project.smoke.checks) outcome.checks.push(await runCheck(image, check, options));
    const failed = outcome.checks.filter((check) => !check.ok);
    outcome.ok = failed.length === 0;
    outcome.summary = outcome.ok
      ? `${label}: ok (build ${build.seconds.toFixed(1)} s; ${outcome.checks.map((check) => `${check.name} ${check.ms} ms`).join(', ')})`
      : `${label}: built, ${failed.map((check) => `${check.name}: ${check.detail}`).join('; ')}`;
    return outcome;
  } finally {
    if (!options.keepImage) await run('docker', ['image', 'rm', '--force', image]);
    await rm(copy, { recursive: true, force: true });
  }
}

/** The `uvimage: error:` line, else the last line of stderr. */
function firstErrorLine(stderr: string): string | undefined {
  const lines = stderr.split('\n').map((line) => line.trim()).filter(Boolean);
  return lines.find((line) => line.startsWith('uvimage: error:')) ?? lines.at(-1);
}

/** What a failed Python program said last: the exception line of a traceback, or its last line. */
function lastProblemLine(output: string): string {
  const lines = output.split('\n').map((line) => line.trim()).filter(Boolean);
  return [...lines].reverse().find((line) => /^[A-Za-z_.]*(Error|Exception|Exit)\b|^error:|^Error:/i.test(line)) ?? lines.at(-1) ?? '(no output)';
}

let containerCounter = 0;

async function runCheck(image: string, check: SmokeCheck, options: CorpusRunOptions): Promise<CheckOutcome> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const port = await freePort();
  const fill = (text: string) => text.replaceAll('{port}', String(port));
  const name = `uvimage-corpus-${process.pid}-${++containerCounter}`;
  const dockerArgs = ['--name', name, '--network', 'host', '--read-only', '--user', '65532'];
  if (options.platform !== 'linux/amd64') dockerArgs.push('--platform', options.platform);
  for (const [key, value] of Object.entries(check.env ?? {})) dockerArgs.push('--env', `${key}=${fill(value)}`);
  // The whole command line replaces the image's: its first word as the entrypoint (found on the
  // image's PATH), so a check means the same whether the image runs its program as Entrypoint or Cmd.
  const [program, ...args] = (check.command ?? []).map(fill);
  if (program) dockerArgs.push('--entrypoint', program);
  const started = Date.now();
  const finish = (ok: boolean, detail: string, output: string): CheckOutcome => ({ name: check.name, ok, detail, output, ms: Date.now() - started });

  if (check.http) {
    const startedContainer = await run('docker', ['run', '--detach', ...dockerArgs, image, ...args]);
    if (startedContainer.code !== 0) return finish(false, `docker run failed: ${lastProblemLine(startedContainer.stderr)}`, startedContainer.stderr);
    try {
      const answer = await waitForHttp(`http://127.0.0.1:${port}${check.http.path}`, name, timeoutMs);
      const status = check.http.status ?? 200;
      if (answer.status !== status || !answer.body.includes(check.http.body)) {
        return finish(false, `GET ${check.http.path}: ${answer.status} ${answer.body.slice(0, 200)}`, answer.body);
      }
      return finish(true, `GET ${check.http.path}: ${answer.status} after ${answer.waitedMs} ms`, answer.body);
    } catch (error) {
      const logs = await run('docker', ['logs', name]);
      const output = `${logs.stdout}${logs.stderr}`;
      return finish(false, `${String((error as Error).message).split('\n')[0]} — ${lastProblemLine(output)}`, output);
    } finally {
      await removeContainers([name]);
    }
  }

  // A command: run to its end, or removed (and failed) at the timeout.
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    void run('docker', ['rm', '--force', name]);
  }, timeoutMs);
  const result = await run('docker', ['run', ...dockerArgs, image, ...args]);
  clearTimeout(timer);
  await removeContainers([name]);
  const output = `${result.stdout}${result.stderr}`;
  if (timedOut) return finish(false, `no end within ${timeoutMs / 1000} s`, output);
  if (result.code !== 0) return finish(false, `exit ${result.code}: ${lastProblemLine(result.stderr || result.stdout)}`, output);
  if (!result.stdout.includes(check.stdout!)) return finish(false, `stdout lacks ${JSON.stringify(check.stdout)}: ${result.stdout.trim().slice(0, 200)}`, output);
  return finish(true, result.stdout.trim().split('\n').find((line) => line.includes(check.stdout!)) ?? '', output);
}
