/**
 * Git dependencies as uv locks them (crates/uv-resolver/src/lock: `GitSource::from_url`):
 *
 *   source = { git = "<repository>?subdirectory=<dir>&tag=<t>#<full commit sha>" }
 *
 * The query holds the requested reference (`tag`, `branch` or `rev`; none for the default branch)
 * and the `subdirectory`; the fragment is the commit the lock pins. uvimage checks out exactly
 * that commit (a shallow fetch of the commit, else a full fetch), verifies HEAD is it, and builds
 * the (sub)directory with `uv build --wheel`; the wheel is cached in the store, keyed by the
 * commit, the subdirectory and the target, so a later build neither clones nor builds.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { UserError } from '../errors.js';
import type { BlobStore } from '../oci/store.js';
import type { PythonTarget } from './target.js';

/** Bumped when what the git wheel cache holds for the same key changes. */
export const gitWheelFormat = 1;

export interface LockedGitSource {
  /** The repository URL without query and fragment (what git fetches, and direct_url.json's `url`). */
  repository: string;
  /** The full commit the lock pins (40 hex, or 64 for SHA-256 repositories), lower case. */
  commit: string;
  /** Directory of the package inside the repository. */
  subdirectory?: string;
  /** What was asked for (`tag`/`branch`/`rev`), absent for the default branch. */
  reference?: { kind: 'tag' | 'branch' | 'rev'; name: string };
  /** `lfs=true`: the checkout needs Git LFS objects. */
  lfs: boolean;
}

/** Reads a lock's `git` source (and a `subdirectory` key beside it, if the query has none). */
export function parseGitSource(git: string, options: { name: string; subdirectory?: string }): LockedGitSource {
  const text = git.startsWith('git+') ? git.slice('git+'.length) : git;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UserError(`${options.name}: the lock's git source ${JSON.stringify(git)} is not a URL`);
  }
  const commit = decodeURIComponent(url.hash.replace(/^#/, '')).toLowerCase();
  if (!/^(?:[0-9a-f]{40}|[0-9a-f]{64})$/.test(commit)) {
    throw new UserError(`${options.name}: the lock's git source ${git} does not pin a full commit (#<sha>); run uv lock again`);
  }
  let reference: LockedGitSource['reference'];
  let subdirectory = options.subdirectory;
  let lfs = false;
  for (const [key, value] of url.searchParams) {
    if (key === 'tag' || key === 'branch' || key === 'rev') reference = { kind: key, name: value };
    else if (key === 'subdirectory') subdirectory = value;
    else if (key === 'lfs') lfs = value === 'true';
  }
  url.search = '';
  url.hash = '';
  if (subdirectory !== undefined) {
    subdirectory = subdirectory.replace(/\/+$/, '');
    const inside = relative('/repo', resolve('/repo', subdirectory));
    if (inside.startsWith('..') || subdirectory.startsWith('/')) throw new UserError(`${options.name}: git subdirectory ${JSON.stringify(subdirectory)} is outside the repository`);
    if (inside === '') subdirectory = undefined;
  }
  return { repository: url.href, commit, subdirectory, reference, lfs };
}

/** direct_url.json of a package installed from git, as uv serializes it. */
export function gitDirectUrl(source: LockedGitSource): string {
  const vcsInfo: Record<string, string> = { vcs: 'git', commit_id: source.commit };
  if (source.reference) vcsInfo.requested_revision = source.reference.name;
  const value: Record<string, unknown> = { url: source.repository, vcs_info: vcsInfo };
  if (source.subdirectory !== undefined) value.subdirectory = source.subdirectory;
  return JSON.stringify(value);
}

export interface GitCheckout {
  /** The directory to build: the checkout, or its subdirectory. */
  dir: string;
  cleanup(): Promise<void>;
}

/**
 * The repository at exactly the locked commit, in a temp directory of the store. A shallow fetch
 * of the commit is tried first (servers with protocol v2 or allow*SHA1InWant serve it); if the
 * server refuses, every branch and tag is fetched and the commit looked up among them.
 */
export async function checkoutGit(source: LockedGitSource, options: { store: BlobStore; name: string; env?: NodeJS.ProcessEnv }): Promise<GitCheckout> {
  const dir = options.store.tempPath('git');
  const cleanup = (): Promise<void> => rm(dir, { recursive: true, force: true });
  // Never wait on a credential prompt; the user's git configuration (credential helpers, insteadOf) applies.
  const env: NodeJS.ProcessEnv = { ...(options.env ?? process.env), GIT_TERMINAL_PROMPT: '0' };
  const git = (args: string[]): Promise<string> => runGit(['-C', dir, ...args], env, options.name);
  const what = `${options.name} (${source.repository} at ${source.commit})`;
  try {
    await mkdir(dir, { recursive: true });
    await git(['init', '--quiet']);
    await git(['config', 'advice.detachedHead', 'false']);
    let fetched = await git(['fetch', '--quiet', '--no-tags', '--depth', '1', source.repository, source.commit]).then(
      () => true,
      (error: unknown) => (isMissingGit(error) ? Promise.reject(error) : false),
    );
    if (!fetched) {
      try {
        await git(['fetch', '--quiet', '--tags', source.repository, '+refs/heads/*:refs/remotes/origin/*']);
      } catch (error) {
        if (isMissingGit(error)) throw error;
        throw new UserError(`fetching ${what} failed: ${(error as Error).message}`);
      }
      fetched = await git(['cat-file', '-e', `${source.commit}^{commit}`]).then(
        () => true,
        () => false,
      );
      if (!fetched) {
        throw new UserError(`${options.name}: commit ${source.commit} locked in uv.lock is not in ${source.repository} (was history rewritten? run uv lock again)`);
      }
    }
    await git(['checkout', '--quiet', '--detach', source.commit]);
    const head = (await git(['rev-parse', 'HEAD'])).trim().toLowerCase();
    if (head !== source.commit) throw new UserError(`${options.name}: checking out ${source.commit} of ${source.repository} gave ${head}, not the locked commit`);
    if (existsSync(join(dir, '.gitmodules'))) {
      await git(['submodule', 'update', '--init', '--recursive', '--quiet']).catch((error: unknown) => {
        throw new UserError(`${what}: its git submodules could not be fetched: ${(error as Error).message}`);
      });
    }
    if (source.lfs) {
      await git(['lfs', 'pull', source.repository]).catch((error: unknown) => {
        throw new UserError(`${what} needs Git LFS objects (lfs = true) and \`git lfs pull\` failed: ${(error as Error).message}`);
      });
    }
    const buildDir = source.subdirectory ? join(dir, source.subdirectory) : dir;
    if (!existsSync(buildDir)) throw new UserError(`${what}: the locked subdirectory ${source.subdirectory} does not exist at that commit`);
    return { dir: buildDir, cleanup };
  } catch (error) {
    await cleanup();
    throw error;
  }
}

/** A built wheel of a git source, remembered in the store. */
/** The cache key of a git source's wheel: the commit, the subdirectory, the target, the build's Python and timestamp. */
export function gitWheelKey(source: LockedGitSource, target: PythonTarget, python: string, mtime: number): string {
  return JSON.stringify({ format: gitWheelFormat, commit: source.commit, subdirectory: source.subdirectory ?? null, lfs: source.lfs, target, python, mtime });
}

class MissingGitError extends UserError {}

function isMissingGit(error: unknown): boolean {
  return error instanceof MissingGitError;
}

function runGit(args: string[], env: NodeJS.ProcessEnv, name: string): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    execFile('git', args, { env, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (!error) return resolvePromise(String(stdout));
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return reject(new MissingGitError(`installing ${name} from git needs git on PATH; it was not found`));
      const detail = String(stderr).trim().split('\n').filter(Boolean).slice(-2).join(' | ') || error.message;
      reject(new Error(detail));
    });
  });
}
