/**
 * Whether uv.lock is fresh, decided by uv itself: `uv lock --check --offline` in the workspace,
 * with the project's own uv settings, exactly what `uv sync --locked` would accept. A lock uv
 * accepts is never refused; a lock uv refuses is reported in uv's words. The project's
 * `[tool.uv] required-version` is checked against the uv that runs, before anything else.
 *
 * Asking uv costs a process (~0.2 s); a verdict of "fresh" is remembered in the store under
 * everything uv reads for it (the uv, the lock, every member's pyproject.toml, uv.toml, the UV_
 * environment), so a rebuild after a code change asks again only when one of those changed.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UserError } from '../errors.js';
import type { BlobStore } from '../oci/store.js';
import { matchesSpecifiers } from './pep440.js';
import type { PyProject } from './pyproject.js';
import { runUv, uvExecutable, UvFailed } from './uv.js';

export interface LockCheckOptions {
  env?: NodeJS.ProcessEnv;
  /** An interpreter for uv to use, so it does not search for one (the bytecode interpreter). */
  python?: string;
  /** Where "fresh" verdicts are remembered. */
  store?: BlobStore;
  /** The uv to run (locateUv's answer); default uvExecutable(env). */
  uv?: string;
}

/** The uv's version (`uv --version`: `uv 0.13.9 (…)`). */
export async function uvVersion(env: NodeJS.ProcessEnv = process.env, uv = uvExecutable(env)): Promise<string> {
  const { stdout } = await runUv(['--version'], { env, uv, cwd: tmpdir(), why: 'reading uv.lock' }).catch((error: unknown) => {
    throw error instanceof UvFailed ? new UserError(`${uv} --version failed: ${error.lastLines()}`) : error;
  });
  const version = /^uv (\d+\.\d+\.\d+\S*)/.exec(stdout.trim())?.[1];
  if (!version) throw new UserError(`${uv} --version said ${JSON.stringify(stdout.trim())}, not a uv version`);
  return version;
}

/** `[tool.uv] required-version` (pyproject.toml or uv.toml of the workspace root), if the project sets one. */
export async function requiresUvVersion(root: PyProject): Promise<boolean> {
  return (await requiredVersion(root)) !== undefined;
}

async function requiredVersion(root: PyProject): Promise<{ spec: string; where: string } | undefined> {
  const inPyproject = root.toolUv['required-version'];
  if (typeof inPyproject === 'string') return { spec: inPyproject, where: `${join(root.dir, 'pyproject.toml')}: tool.uv.required-version` };
  const uvToml = await readFile(join(root.dir, 'uv.toml'), 'utf8').catch(() => undefined);
  const match = uvToml && /^\s*required-version\s*=\s*["']([^"']+)["']/m.exec(uvToml);
  return match ? { spec: match[1]!, where: `${join(root.dir, 'uv.toml')}: required-version` } : undefined;
}

/** The uv a project wants: one line naming what it wants and what was found when they differ. */
export async function checkRequiredUv(root: PyProject, version: string, uv: string): Promise<void> {
  const required = await requiredVersion(root);
  if (!required) return;
  let ok: boolean;
  try {
    ok = matchesSpecifiers(version, required.spec);
  } catch {
    throw new UserError(`${required.where}: ${JSON.stringify(required.spec)} is not a version specifier`);
  }
  if (!ok) {
    throw new UserError(`${required.where} is ${JSON.stringify(required.spec)}, but the uv found (${uv}) is ${version}; install a uv that matches, or point $UV at one`);
  }
}

/** Everything `uv lock --check` reads, as one key: a remembered verdict holds only while all of it is unchanged. */
async function checkKey(root: PyProject, members: PyProject[], uv: string, version: string, env: NodeJS.ProcessEnv): Promise<string> {
  const hash = createHash('sha256');
  const add = (label: string, content: string | Buffer | undefined) => hash.update(`${label}\0${content === undefined ? '-' : createHash('sha256').update(content).digest('hex')}\0`);
  add('uv', `${uv} ${version}`);
  add('uv.lock', await readFile(join(root.dir, 'uv.lock')).catch(() => undefined));
  add('uv.toml', await readFile(join(root.dir, 'uv.toml')).catch(() => undefined));
  for (const project of [root, ...members]) add(project.dir, await readFile(join(project.dir, 'pyproject.toml')));
  for (const name of Object.keys(env).filter((key) => key.startsWith('UV_')).sort()) add(name, env[name]);
  return hash.digest('hex');
}

/**
 * Refuses a lock uv would refuse, in uv's words; `uv sync --locked` semantics. The uv's
 * required-version is checked first.
 */
export async function checkLockWithUv(root: PyProject, members: PyProject[], options: LockCheckOptions = {}): Promise<void> {
  const env = options.env ?? process.env;
  const uv = options.uv ?? uvExecutable(env);
  const version = await uvVersion(env, uv);
  await checkRequiredUv(root, version, uv);
  const key = await checkKey(root, members, uv, version, env);
  const ask = () => askUv(root, env, uv, options.python);
  await (options.store?.cached('uv-lock-check', key, ask, { valid: (record) => record === 'fresh' }) ?? ask());
}

async function askUv(root: PyProject, env: NodeJS.ProcessEnv, uv: string, python: string | undefined): Promise<'fresh'> {
  // --directory: uv works as if started in the workspace (its settings, its uv.toml); the process
  // itself starts elsewhere, so a version manager's shim in front of uv does not pick a Python by
  // the project's .python-version before uv even runs.
  const args = ['lock', '--check', '--offline', '--quiet', '--no-progress', '--color', 'never', '--directory', root.dir];
  if (python) args.push('--python', python);
  const lock = join(root.dir, 'uv.lock');
  try {
    await runUv(args, { env, uv, cwd: tmpdir(), why: `checking ${lock}` });
  } catch (error) {
    if (!(error instanceof UvFailed)) throw error;
    const said = error.lastLines();
    if (/needs to be updated|No solution found|Failed to (generate|parse)/.test(said)) throw new UserError(`uv lock --check refuses ${lock}: ${said}; run \`uv lock\`, or pass --frozen`);
    throw new UserError(`uv lock --check of ${lock} failed: ${said}`);
  }
  return 'fresh';
}
