/**
 * Benchmark of installing a large locked set (`fastapi[standard]`, ~60 packages) into layers,
 * beside what uv does on the same machine in the same run:
 *
 *   ours:  buildVenvLayers with a warm download cache (the store), no layer reuse, in a child
 *          process (time and peak RSS of the install alone)
 *   uv:    `uv sync --frozen --no-dev --no-editable` into a fresh venv with a warm uv cache,
 *          then `tar -czf` of that venv (what a Dockerfile build does before it has a layer)
 *
 * Both with and without bytecode (`uv sync --compile-bytecode`). The project is locked once
 * with `uv lock` into the bench cache ($BENCH_CACHE or ~/.cache/uvimage-bench), which also
 * holds the store and uv's cache, so reruns download nothing.
 *
 *   npx tsx bench/venv.ts
 *
 * Target: no slower than uv's install plus a tar of the venv; peak RSS under 256 MB.
 */
import { execFile as execFileCallback } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { pyenvPython, uvBinary } from '../test/harness/uv.js';
import type { VenvChildResult } from './venv-child.js';

const execFile = promisify(execFileCallback);

/**
 * The child as one plain JavaScript file (esbuild, a devDependency), so its wall time is that of
 * a built uvimage and not of compiling TypeScript at start-up; packages stay external and resolve
 * from the repository's node_modules. Falls back to running the TypeScript through tsx.
 */
async function childCommand(): Promise<string[]> {
  const outfile = fileURLToPath(new URL('../node_modules/.cache/uvimage-bench/venv-child.mjs', import.meta.url));
  try {
    const esbuild = (await import('esbuild')) as typeof import('esbuild');
    await esbuild.build({ entryPoints: [child], bundle: true, platform: 'node', format: 'esm', target: 'node20', packages: 'external', outfile, logLevel: 'silent' });
    return ['node', outfile];
  } catch {
    return ['node', '--import', 'tsx', child];
  }
}
const rssTargetMiB = 256;
const child = fileURLToPath(new URL('./venv-child.ts', import.meta.url));

/** Runs a command under Python's getrusage(RUSAGE_CHILDREN): wall seconds, peak RSS (MiB), stdout. */
async function measured(command: string[], env: NodeJS.ProcessEnv, cwd?: string): Promise<{ seconds: number; maxRssMiB: number; stdout: string }> {
  const wrapper = `
import json, resource, subprocess, sys, time
start = time.monotonic()
done = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE)
seconds = time.monotonic() - start
if done.returncode:
    sys.exit("command failed: " + " ".join(sys.argv[1:]))
sys.stderr.write(json.dumps({"seconds": seconds, "maxrss": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}) + "\\n")
sys.stdout.write(done.stdout.decode())
`;
  const { stdout, stderr } = await execFile('python3', ['-c', wrapper, ...command], { env, cwd, maxBuffer: 64 * 1024 * 1024 });
  const last = stderr.trim().split('\n').pop() ?? '{}';
  const parsed = JSON.parse(last) as { seconds: number; maxrss: number };
  return { seconds: parsed.seconds, maxRssMiB: Math.round(parsed.maxrss / 1024), stdout };
}

export async function runVenvBench(options: { log?: (line: string) => void } = {}): Promise<string> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const python = pyenvPython('3.12');
  if (!python) return '_Skipped: no CPython 3.12 in pyenv on this machine._\n';
  const uv = uvBinary();
  const cache = process.env.BENCH_CACHE ?? join(homedir(), '.cache', 'uvimage-bench');
  const projectDir = join(cache, 'fastapi-standard');
  const storeDir = join(cache, 'store');
  const env: NodeJS.ProcessEnv = { ...process.env, UV_CACHE_DIR: join(cache, 'uv'), UV_NO_CONFIG: '1', UV_PYTHON_DOWNLOADS: 'never', UV_NO_PROGRESS: '1' };
  const glibc = (await execFile('ldd', ['--version'])).stdout.split('\n')[0]?.match(/(\d+\.\d+)\s*$/)?.[1] ?? '2.36';
  const childEnv = { ...env, BENCH_GLIBC: glibc };

  await mkdir(projectDir, { recursive: true });
  if (!existsSync(join(projectDir, 'uv.lock'))) {
    log('locking fastapi[standard] ...');
    await writeFile(join(projectDir, 'pyproject.toml'), '[project]\nname = "bench-venv"\nversion = "0.1.0"\nrequires-python = ">=3.12"\ndependencies = ["fastapi[standard]"]\n');
    await execFile(uv, ['lock', '--python', python.interpreter], { cwd: projectDir, env });
  }
  const work = await mkdtemp(join(tmpdir(), 'uvimage-bench-venv-'));
  try {
    const command = await childCommand();
    const ours = (bytecode: boolean) =>
      measured([...command, projectDir, storeDir, python.interpreter, python.version, bytecode ? '1' : '0'], childEnv).then((run) => ({
        ...run,
        result: JSON.parse(run.stdout.trim().split('\n').pop()!) as VenvChildResult,
      }));
    const uvSync = async (bytecode: boolean, name: string) => {
      const venv = join(work, name, '.venv');
      const sync = await measured([uv, 'sync', '--frozen', '--no-dev', '--no-editable', '--python', python.interpreter, ...(bytecode ? ['--compile-bytecode'] : [])], { ...env, UV_PROJECT_ENVIRONMENT: venv }, projectDir);
      const tar = await measured(['tar', '-czf', join(work, `${name}.tar.gz`), '-C', join(work, name), '.venv'], env);
      return { sync, tar };
    };

    log('warming the caches (uv sync, our install) ...');
    await uvSync(false, 'warm');
    await ours(false);

    log('ours, no bytecode ...');
    const oursPlain = await ours(false);
    log(`  ${oursPlain.seconds.toFixed(2)} s, peak RSS ${oursPlain.maxRssMiB} MiB`);
    log('uv sync + tar, no bytecode ...');
    const uvPlain = await uvSync(false, 'plain');
    log(`  ${uvPlain.sync.seconds.toFixed(2)} s + ${uvPlain.tar.seconds.toFixed(2)} s`);
    log('ours, bytecode ...');
    const oursPyc = await ours(true);
    log(`  ${oursPyc.seconds.toFixed(2)} s, peak RSS ${oursPyc.maxRssMiB} MiB`);
    log('uv sync --compile-bytecode + tar ...');
    const uvPyc = await uvSync(true, 'pyc');
    log(`  ${uvPyc.sync.seconds.toFixed(2)} s + ${uvPyc.tar.seconds.toFixed(2)} s`);

    const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
    const row = (label: string, seconds: number, rss: string, note: string) => `| ${label} | ${seconds.toFixed(2)} | ${rss} | ${note} |`;
    const verdict = (oursSeconds: number, uvSeconds: number, rss: number) =>
      `${oursSeconds <= uvSeconds ? 'met' : 'NOT met'} (${(oursSeconds / uvSeconds).toFixed(2)}× uv + tar), RSS ${rss <= rssTargetMiB ? 'met' : 'NOT met'}`;
    return [
      `Locked set: \`fastapi[standard]\`, ${oursPlain.result.wheels} packages, CPython ${python.version}, uv ${(await execFile(uv, ['--version'])).stdout.trim().split(' ')[1]}. Warm caches on both sides (our store holds the wheels; uv's cache holds them unpacked). Wall time includes process start (${command.includes('tsx') ? 'Node + tsx' : 'Node, the child bundled to JavaScript as a build would be'} for ours).`,
      '',
      '| run | seconds | peak RSS (MiB) | notes |',
      '| --- | ---: | ---: | --- |',
      row('uvimage: venv into layers', oursPlain.seconds, String(oursPlain.maxRssMiB), `install ${oursPlain.result.seconds.toFixed(2)} s inside the process; layers ${mib(oursPlain.result.compressedBytes)} MiB gzip (${mib(oursPlain.result.uncompressedBytes)} MiB tar)`),
      row('uv sync (fresh venv)', uvPlain.sync.seconds, String(uvPlain.sync.maxRssMiB), 'hardlinks/clones from its cache'),
      row('tar -czf of that venv', uvPlain.tar.seconds, String(uvPlain.tar.maxRssMiB), ''),
      row('uvimage, with bytecode', oursPyc.seconds, String(oursPyc.maxRssMiB), `install ${oursPyc.result.seconds.toFixed(2)} s; layers ${mib(oursPyc.result.compressedBytes)} MiB gzip`),
      row('uv sync --compile-bytecode', uvPyc.sync.seconds, String(uvPyc.sync.maxRssMiB), ''),
      row('tar -czf of that venv', uvPyc.tar.seconds, String(uvPyc.tar.maxRssMiB), ''),
      '',
      `Target (no slower than uv sync + tar; peak RSS under ${rssTargetMiB} MB): without bytecode ${verdict(oursPlain.seconds, uvPlain.sync.seconds + uvPlain.tar.seconds, oursPlain.maxRssMiB)}; with bytecode ${verdict(oursPyc.seconds, uvPyc.sync.seconds + uvPyc.tar.seconds, oursPyc.maxRssMiB)}.`,
      '',
    ].join('\n');
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  process.stdout.write(await runVenvBench());
}
