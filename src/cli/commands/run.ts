/**
 * `uvimage run [dir] [-p HOST:CONTAINER] [-e K=V] [--engine docker|podman] [-- args…]`: the
 * project built for this machine's platform exactly as `uvimage build` builds it (withPlan,
 * executePlan), loaded into the engine — Docker through the --load sink, Podman with `podman
 * load` of a docker-archive written to a temp file — and run the way the recipe runs it: as the
 * image's user, on a read-only root, with a tmpfs at /tmp (distroless images have a /tmp, 1777,
 * that a read-only root would leave unwritable, and many Python libraries need one: tempfile,
 * multipart uploads, gunicorn's worker heartbeat files). Arguments after `--` replace the image's
 * command, as they do after `docker run IMAGE`.
 *
 * The engine is spoken to through its CLI (`docker run --rm …`, `podman run --rm …`), not the
 * Engine API: both CLIs take the same flags, so one path serves both engines; the CLI already
 * streams the container's output, passes signals on to it (--sig-proxy) and removes it on exit
 * (--rm); and it reads the user's own engine settings (contexts, rootless Podman, whose API
 * socket is usually not running). The output is the container's: stdout carries nothing of
 * uvimage's, its progress and one line saying what runs go to stderr.
 *
 * Ctrl-C (SIGINT), SIGTERM and SIGHUP are passed on to the container; once it is gone (after 10 s
 * or a second Ctrl-C it is removed by force) uvimage exits with 128 + the signal, 130 for Ctrl-C.
 * Otherwise it exits with the container's status.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { constants, tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Command, Option } from 'commander';
import { ExitStatus, UserError } from '../../errors.js';
import { formatPlatform, hostPlatform, parsePlatform } from '../../oci/platform.js';
import { executePlan } from '../../pipeline/execute.js';
import { asTask, stages } from '../../progress.js';
import { createProgress } from '../progress.js';
import { collect } from '../run.js';
import { addImageOptions, withPlan, type BuildOptions } from './build.js';

export type Engine = 'docker' | 'podman';

interface RunOptions extends Omit<BuildOptions, 'tag' | 'insecureRegistry'> {
  publish: string[];
  runEnv: string[];
  engine: Engine;
  network?: string;
  name?: string;
  insecureRegistry: string[];
}

/** Signals passed on to the container. */
const forwarded = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
/** How long a signalled container has to stop before it is removed by force (docker stop's default). */
const graceMs = 10_000;

/** `[IP:]HOST:CONTAINER[/proto]`, as docker run -p takes it (a host port is required: the run is for a person to reach). */
export function parsePublish(text: string): string {
  const match = /^(?:(\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]):)?(\d{1,5}):(\d{1,5})(?:\/(tcp|udp|sctp))?$/.exec(text);
  const valid = (port: string | undefined) => port !== undefined && Number(port) >= 1 && Number(port) <= 65535;
  if (!match || !valid(match[2]) || !valid(match[3])) throw new UserError(`-p ${JSON.stringify(text)}: expected HOST:CONTAINER (ports 1-65535), e.g. 8000:8000 or 127.0.0.1:8080:8000/tcp`);
  return text;
}

/** `KEY=VALUE`, or `KEY` to pass this environment's value on (as docker run -e does). */
export function parseRunEnv(text: string): string {
  if (!/^[^=\s]+(=[\s\S]*)?$/.test(text)) throw new UserError(`-e ${JSON.stringify(text)}: expected KEY=VALUE or KEY`);
  return text;
}

/**
 * The project and the container's arguments: commander hands over the operands before and after
 * `--` as one list, so the ones after it (raw argv) are taken off the end.
 */
function splitOperands(operands: string[], rawArgs: string[]): { project: string; args: string[] } {
  const dash = rawArgs.indexOf('--');
  const after = dash === -1 ? [] : rawArgs.slice(dash + 1);
  const before = operands.slice(0, operands.length - after.length);
  if (before.length > 1) throw new UserError(`uvimage run takes one project directory; put the container's arguments after --: uvimage run ${before[0]} -- ${before.slice(1).join(' ')}`);
  return { project: before[0] ?? '.', args: after };
}

/** A local image name for the run: uvimage-run/<directory name>:latest. */
function runTag(project: string): string {
  const name = basename(resolve(project)).toLowerCase().replace(/[^a-z0-9._-]+/g, '-').replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, '');
  return `uvimage-run/${name || 'project'}:latest`;
}

async function runCommand(operands: string[], options: RunOptions, command: Command): Promise<void> {
  // The program's raw argv (commander keeps it as rawArgs, untyped) says where `--` was.
  const { project, args } = splitOperands(operands, (command.parent as unknown as { rawArgs?: string[] } | null)?.rawArgs ?? []);
  for (const value of options.publish) parsePublish(value);
  for (const value of options.runEnv) parseRunEnv(value);
  if (options.platform?.includes(',')) throw new UserError(`--platform ${options.platform}: uvimage run builds one platform`);
  if (typeof options.sbom === 'string') throw new UserError(`--sbom ${options.sbom}: uvimage run makes no SBOMs; uvimage build --sbom does`);
  const platform = formatPlatform(options.platform ? parsePlatform(options.platform, '--platform') : hostPlatform());
  const engine = options.engine;
  const tag = runTag(project);
  const name = options.name ?? `uvimage-run-${randomBytes(4).toString('hex')}`;

  const temp = engine === 'podman' ? await mkdtemp(join(tmpdir(), 'uvimage-run-')) : undefined;
  let image: string;
  let user: string | undefined;
  try {
    const archive = temp ? join(temp, 'image.tar') : undefined;
    const build: BuildOptions = { ...options, platform, tag: [tag], load: engine === 'docker', tar: archive, loadPlatform: platform, push: false, json: false };
    await withPlan(project, build, 'required', async (plan, context) => {
      const { artifact, reports } = await executePlan(plan, { ...context, lock: context.locked.lock });
      await context.run.emit(artifact, { print: false });
      user = reports[0]?.config.User;
    });
    image = archive ? await podmanLoad(archive, tag, options.quiet) : tag;
  } finally {
    if (temp) await rm(temp, { recursive: true, force: true });
  }

  const engineArgs = [
    'run', '--rm', '--name', name, '--pull', 'never', '--platform', platform,
    '--read-only', '--tmpfs', '/tmp:rw,nosuid,nodev,mode=1777',
    ...(user ? ['--user', user] : []),
    ...(options.network ? ['--network', options.network] : []),
    ...options.publish.flatMap((value) => ['-p', value]),
    ...options.runEnv.flatMap((value) => ['-e', value]),
    image, ...args,
  ];
  if (!options.quiet) process.stderr.write(`Running ${[engine, ...engineArgs].map(shellWord).join(' ')}\n`);
  const status = await runContainer(engine, engineArgs, name);
  if (status !== 0) throw new ExitStatus(status);
}

/** `podman load` of the archive; the name it loaded the image as. */
async function podmanLoad(archive: string, tag: string, quiet?: boolean): Promise<string> {
  const progress = createProgress({ quiet });
  const stage = progress.stage(stages.load(tag, 'Podman'));
  const stdout = await asTask(stage, 'podman load', async () => {
    const { code, stdout, stderr } = await engineCommand('podman', ['load', '--input', archive]);
    if (code !== 0) throw new UserError(`podman load of the image failed: ${(stderr || stdout).trim().split('\n').pop()}`);
    return stdout;
  });
  progress.close();
  const loaded = /Loaded image(?:\(s\))?: ?(\S+)/.exec(stdout)?.[1];
  if (!loaded) throw new UserError(`podman load did not say which image it loaded: ${stdout.trim()}`);
  return loaded;
}

/**
 * `<engine> run …` with the container's output on ours, in a process group of its own so a
 * Ctrl-C at the terminal reaches uvimage alone, which passes it on once (the CLI proxies it to
 * the container) and makes sure the container is gone before exiting.
 */
async function runContainer(engine: Engine, args: string[], name: string): Promise<number> {
  const child = spawn(engine, args, { stdio: ['ignore', 'inherit', 'inherit'], detached: true });
  let signalled: (typeof forwarded)[number] | undefined;
  let grace: NodeJS.Timeout | undefined;
  const removeByForce = () => void engineCommand(engine, ['rm', '--force', name]);
  const onSignal = (signal: (typeof forwarded)[number]) => {
    if (signalled) return removeByForce(); // a second Ctrl-C: no more waiting
    signalled = signal;
    child.kill(signal);
    grace = setTimeout(removeByForce, graceMs);
  };
  const handlers = forwarded.map((signal) => [signal, () => onSignal(signal)] as const);
  for (const [signal, handler] of handlers) process.on(signal, handler);
  try {
    const exit = await new Promise<number>((resolvePromise, reject) => {
      child.on('error', (error: NodeJS.ErrnoException) => reject(error.code === 'ENOENT' ? new UserError(`uvimage run --engine ${engine}: there is no ${engine} on PATH`) : error));
      child.on('exit', (code, signal) => resolvePromise(code ?? 128 + (signal ? constants.signals[signal] : 0)));
    });
    if (!signalled) return exit;
    await removeContainer(engine, name);
    return 128 + constants.signals[signalled];
  } finally {
    if (grace) clearTimeout(grace);
    for (const [signal, handler] of handlers) process.off(signal, handler);
  }
}

/** Removes the container if it is still there, and waits until the engine no longer lists it. */
async function removeContainer(engine: Engine, name: string): Promise<void> {
  await engineCommand(engine, ['rm', '--force', name]);
  const deadline = Date.now() + graceMs;
  while ((await engineCommand(engine, ['container', 'inspect', name])).code === 0) {
    if (Date.now() > deadline) throw new UserError(`${engine} did not remove the container ${name}; remove it with: ${engine} rm --force ${name}`);
    await new Promise((resolvePromise) => setTimeout(resolvePromise, 200));
  }
}

function engineCommand(engine: Engine, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(engine, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.on('error', (error: NodeJS.ErrnoException) => reject(error.code === 'ENOENT' ? new UserError(`uvimage run --engine ${engine}: there is no ${engine} on PATH`) : error));
    child.on('close', (code) => resolvePromise({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }));
  });
}

/** A word as a shell would need it, for the line that says what runs. */
function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`;
}

export function runCommandDefinition(): Command {
  const command = new Command('run')
    .description("build the project for this machine, load it into Docker (or Podman) and run it as the image's user on a read-only root; arguments after -- replace its command")
    .usage('[options] [dir] [-- args...]')
    .argument('[args...]', 'the project directory (default .), then -- and the arguments for the container');
  return addImageOptions(command)
    .option('-p, --publish <HOST:CONTAINER>', 'publish a container port on the host, as docker run -p (repeatable)', collect, [])
    .option('-e, --run-env <KEY=VALUE>', 'environment variable for this run only, as docker run -e (repeatable; --env puts one in the image)', collect, [])
    .addOption(new Option('--engine <engine>', 'the container engine').choices(['docker', 'podman']).default('docker'))
    .option('--network <name>', 'the engine network to run in, as docker run --network')
    .option('--name <name>', 'the container name (default uvimage-run-<random>)')
    .option('--insecure-registry <host>', 'allow plain http to this registry (for --base; localhost and 127.0.0.1 always are)', collect, [])
    .option('--cache-dir <dir>', 'blob cache (default: $UVIMAGE_CACHE_DIR, else $XDG_CACHE_HOME/uvimage)')
    .option('-q, --quiet', 'print only errors and what the container prints')
    .option('--debug', 'print stack traces for errors')
    .action((operands: string[], options: RunOptions, self: Command) => runCommand(operands, options, self));
}
