/**
 * Deterministic bytecode: `.py` sources compiled to `.pyc` by a CPython of the runtime's minor
 * version, with PEP 552 unchecked-hash invalidation. The pyc header carries a hash of the source
 * instead of its mtime, so the same source gives the same bytes on every build (no timestamp), and
 * the interpreter never rehashes the source at import (unchecked: the image is immutable).
 *
 * One long-lived interpreter compiles every file: a small server script reads requests from its
 * stdin and answers on stdout with a length-prefixed protocol, so thousands of files cost
 * thousands of compile() calls, not thousands of process starts. Requests are pipelined and
 * answered in order.
 *
 *   request:  u32 BE path length, u32 BE source length, path (UTF-8), source bytes
 *   response: u8 status (0 = pyc, 1 = the source does not compile), u32 BE length, payload
 *             (the pyc, or the error as UTF-8)
 *
 * co_filename is the path given (the file's path inside the image), as `compileall -d` would
 * make it, so tracebacks name the file where it lives at run time.
 */
import { spawn, execFile, type ChildProcessByStdio } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, posix } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { promisify } from 'node:util';
import { uvExecutable } from './uv.js';

export interface PycCompiler {
  /** The pyc for a source file at `imagePath`; undefined when it does not compile (as compileall skips it). */
  compile(source: Buffer, imagePath: string): Promise<Buffer | undefined>;
  close(): Promise<void>;
  /** The compiling interpreter's full version, e.g. '3.12.8'. */
  readonly version: string;
}

/** What openPycCompiler returns: a PycCompiler that also names its interpreter and cache tag. */
export interface HostPycCompiler extends PycCompiler {
  /** sys.implementation.cache_tag, e.g. 'cpython-312'. */
  readonly cacheTag: string;
  /** The interpreter doing the compiling. */
  readonly interpreter: string;
}

const execFileAsync = promisify(execFile);

/**
 * The server. `-s -S`: no user or site packages (nothing but the standard library is imported);
 * PYTHONHASHSEED=0 in its environment: frozenset constants are marshalled in iteration order,
 * which depends on string hashing, so a random seed would make the bytes vary between runs.
 */
const server = String.raw`
import sys, struct, importlib.util
from importlib._bootstrap_external import _code_to_hash_pyc
inp = sys.stdin.buffer
out = sys.stdout.buffer
def read(n):
    chunks = []
    while n:
        b = inp.read(n)
        if not b:
            sys.exit(0)
        chunks.append(b)
        n -= len(b)
    return b"".join(chunks)
out.write(("%s %s\n" % (".".join(map(str, sys.version_info[:3])), sys.implementation.cache_tag)).encode())
out.flush()
while True:
    head = inp.read(8)
    if len(head) < 8:
        break
    plen, slen = struct.unpack(">II", head)
    path = read(plen).decode("utf-8")
    source = read(slen) if slen else b""
    try:
        code = compile(source, path, "exec", dont_inherit=True)
        data = _code_to_hash_pyc(code, importlib.util.source_hash(source), checked=False)
        out.write(b"\0" + struct.pack(">I", len(data)))
        out.write(data)
    except Exception as e:
        message = ("%s: %s" % (type(e).__name__, e)).encode("utf-8", "replace")
        out.write(b"\1" + struct.pack(">I", len(message)))
        out.write(message)
    del source
    out.flush()
`;

/**
 * A compiler for `pythonMinor` ('3.12'), or undefined when no CPython of that minor version can
 * run on this machine (the caller then warns and installs no bytecode rather than wrong bytecode).
 * `workers` (default 1) starts that many servers, for machines with cores to spare.
 * Candidates, first that runs and has the right version: `options.interpreter`, what
 * `uv python find <minor>` returns, `python<minor>` on PATH, pyenv's versions directory.
 */
export async function openPycCompiler(
  pythonMinor: string,
  options: { interpreter?: string; env?: NodeJS.ProcessEnv; workers?: number } = {},
): Promise<HostPycCompiler | undefined> {
  if (!/^\d+\.\d+$/.test(pythonMinor)) throw new RangeError(`python minor version must look like '3.12', got ${JSON.stringify(pythonMinor)}`);
  const env = options.env ?? process.env;
  const candidates = options.interpreter ? [options.interpreter] : await findInterpreters(pythonMinor, env);
  for (const interpreter of candidates) {
    const compiler = await startCompiler(interpreter, env).catch(() => undefined);
    if (!compiler) continue;
    if (compiler.version.split('.').slice(0, 2).join('.') === pythonMinor && compiler.cacheTag.startsWith('cpython-')) {
      const workers = Math.max(1, Math.floor(options.workers ?? 1));
      if (workers === 1) return compiler;
      const more = await Promise.all(Array.from({ length: workers - 1 }, () => startCompiler(interpreter, env)));
      return poolOf([compiler, ...more]);
    }
    await compiler.close();
  }
  return undefined;
}

/**
 * Several servers of one interpreter behind the same interface (the \`workers\` option): each
 * request goes to the server with the fewest requests in flight. Every server compiles the same
 * way, so which one compiled a file does not change its bytes.
 */
function poolOf(compilers: HostPycCompiler[]): HostPycCompiler {
  const pending = compilers.map(() => 0);
  const first = compilers[0]!;
  return {
    version: first.version,
    cacheTag: first.cacheTag,
    interpreter: first.interpreter,
    async compile(source: Buffer, imagePath: string): Promise<Buffer | undefined> {
      let index = 0;
      for (let i = 1; i < compilers.length; i++) if (pending[i]! < pending[index]!) index = i;
      pending[index]!++;
      try {
        return await compilers[index]!.compile(source, imagePath);
      } finally {
        pending[index]!--;
      }
    },
    async close(): Promise<void> {
      await Promise.all(compilers.map((compiler) => compiler.close()));
    },
  };
}

/** `dir/__pycache__/name.<tag>.pyc` for `dir/name.py`, as importlib.util.cache_from_source names it. */
export function pycPathFor(imagePath: string, cacheTag: string): string {
  const dir = posix.dirname(imagePath);
  const base = posix.basename(imagePath);
  const dot = base.lastIndexOf('.');
  const stem = dot > 0 ? base.slice(0, dot) : base;
  const pyc = `${stem}.${cacheTag}.pyc`;
  return dir === '.' ? `__pycache__/${pyc}` : `${dir}/__pycache__/${pyc}`;
}

/** The cache tag for a CPython version ('3.12.8' or '3.12' -> 'cpython-312'). */
export function cpythonCacheTag(version: string): string {
  const [major, minor] = version.split('.');
  return `cpython-${major}${minor}`;
}

async function findInterpreters(minor: string, env: NodeJS.ProcessEnv): Promise<string[]> {
  // uv's managed interpreters first, then any uv finds; both asked at once (each takes a few
  // hundred milliseconds, paid by every build), their order kept.
  const uvFind = (args: string[]) =>
    execFileAsync(uvExecutable(env), ['python', 'find', '--no-project', ...args, minor], { env, timeout: 30_000 }).then(
      ({ stdout }) => stdout.trim(),
      () => '', // no uv, or no (managed) interpreter of that version
    );
  const found = (await Promise.all([uvFind(['--managed-python']), uvFind([])])).filter(Boolean);
  found.push(`python${minor}`);
  const pyenvRoot = env.PYENV_ROOT ?? join(env.HOME ?? homedir(), '.pyenv');
  try {
    const versions = (await readdir(join(pyenvRoot, 'versions')))
      .filter((name) => name === minor || name.startsWith(`${minor}.`))
      .sort((a, b) => compareVersions(b, a));
    for (const version of versions) found.push(join(pyenvRoot, 'versions', version, 'bin', `python${minor}`));
  } catch {
    // no pyenv
  }
  return [...new Set(found)];
}

function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map((part) => Number.parseInt(part, 10) || 0);
  const pb = b.split('.').map((part) => Number.parseInt(part, 10) || 0);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const diff = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (diff) return diff;
  }
  return 0;
}

interface Pending {
  resolve: (pyc: Buffer | undefined) => void;
  reject: (error: Error) => void;
}

async function startCompiler(interpreter: string, env: NodeJS.ProcessEnv): Promise<HostPycCompiler> {
  const childEnv: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(env)) if (!key.startsWith('PYTHON')) childEnv[key] = value;
  childEnv.PYTHONHASHSEED = '0';
  childEnv.PYTHONDONTWRITEBYTECODE = '1';
  const child: ChildProcessByStdio<Writable, Readable, Readable> = spawn(interpreter, ['-s', '-S', '-u', '-c', server], {
    env: childEnv,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (text: string) => {
    if (stderr.length < 4096) stderr += text;
  });
  child.stdin.on('error', () => {
    // EPIPE when the interpreter died; reported through the pending requests below.
  });

  const queue: Pending[] = [];
  let buffered: Buffer = Buffer.alloc(0);
  let hello: ((line: string) => void) | undefined;
  let failed: Error | undefined;
  let greeted = false;

  const fail = (error: Error): void => {
    failed ??= error;
    for (const pending of queue.splice(0)) pending.reject(failed);
  };

  child.stdout.on('data', (chunk: Buffer) => {
    buffered = buffered.length ? Buffer.concat([buffered, chunk]) : chunk;
    if (!greeted) {
      const newline = buffered.indexOf(10);
      if (newline < 0) return;
      greeted = true;
      hello?.(buffered.subarray(0, newline).toString('utf8'));
      buffered = buffered.subarray(newline + 1);
    }
    while (buffered.length >= 5) {
      const length = buffered.readUInt32BE(1);
      if (buffered.length < 5 + length) break;
      const status = buffered[0];
      const payload = Buffer.from(buffered.subarray(5, 5 + length));
      buffered = buffered.subarray(5 + length);
      const pending = queue.shift();
      if (!pending) {
        fail(new Error(`bytecode compiler ${interpreter} answered a request nobody made`));
        return;
      }
      pending.resolve(status === 0 ? payload : undefined);
    }
  });

  const exited = new Promise<void>((resolve) => {
    child.once('close', (code, signal) => {
      fail(new Error(`bytecode compiler ${interpreter} exited (${signal ?? `code ${code}`})${stderr ? `: ${stderr.trim().split('\n').pop()}` : ''}`));
      resolve();
    });
    child.once('error', (error) => {
      fail(new Error(`bytecode compiler ${interpreter} cannot run: ${error.message}`));
      resolve();
    });
  });

  const line = await new Promise<string>((resolve, reject) => {
    hello = resolve;
    const timer = setTimeout(() => reject(new Error(`bytecode compiler ${interpreter} did not start`)), 30_000);
    timer.unref();
    void exited.then(() => reject(failed ?? new Error(`bytecode compiler ${interpreter} exited`)));
  }).catch(async (error: unknown) => {
    child.kill();
    await exited;
    throw error;
  });
  const [version = '', cacheTag = ''] = line.trim().split(' ');

  return {
    version,
    cacheTag,
    interpreter,
    compile(source: Buffer, imagePath: string): Promise<Buffer | undefined> {
      if (failed) return Promise.reject(failed);
      const path = Buffer.from(imagePath, 'utf8');
      const head = Buffer.alloc(8);
      head.writeUInt32BE(path.length, 0);
      head.writeUInt32BE(source.length, 4);
      return new Promise<Buffer | undefined>((resolve, reject) => {
        queue.push({ resolve, reject });
        child.stdin.write(head);
        child.stdin.write(path);
        if (source.length) child.stdin.write(source);
      });
    },
    async close(): Promise<void> {
      if (child.exitCode === null && child.signalCode === null) child.stdin.end();
      await exited;
    },
  };
}
