/**
 * Where a build's time goes (issue 15, point 1): `uvimage build examples/fastapi-hello` to an
 * OCI layout, (a) cold with downloads cached — the store holds every download (.debs, the
 * runtime archive, wheels) but no record of a built layer, as `npm run bench:recipe`'s cold
 * build — and (b) after adding a dependency (six) to a project built just before. Each stage's
 * time is the one the build reports on its finished progress line; medians of BENCH_REPEAT runs
 * (default 3). Stages overlap (wheels download while bytecode compiles; the venv layers are
 * written while their files are compiled), so they do not add up to the wall time: the
 * difference is Node.js start, planning and the overlaps.
 */
import { spawnSync } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { standaloneMirror } from '../test/harness/standalone-python.js';
import { uvBinary, uvEnv } from '../test/harness/uv.js';
import { run } from './build.js';
import { stats } from './recipe/measure.js';

const repo = fileURLToPath(new URL('..', import.meta.url));

/** The stages a build reports, by their finished lines. */
const stageNames: [name: string, line: RegExp][] = [
  ['Debian index (signed InRelease, Packages)', /^Fetched the Debian .* index/],
  ['planning (the Debian index parsed, uv lock --check, the bytecode interpreter)', /^Planned the build/],
  ['.debs (from the store)', /^Fetched \d+ Debian /],
  ['Debian base layers', /^Wrote \d+ base layers?/],
  ['runtime archive (from the store)', /^Downloaded Python /],
  ['runtime layer (read, trim, tar, gzip)', /^Wrote the Python .* runtime layer/],
  ['project wheel (uv build)', /^Built /],
  ['wheels (from the store)', /^Downloaded \d+ wheels?/],
  ['bytecode', /^Compiled \d+ files? to bytecode/],
  ['venv layers (install, tar, gzip)', /^Wrote \d+ venv layers?/],
  ['closure check (layers read for their ELF files)', /^Read \d+ layers? for the closure check/],
  ['output: OCI layout', /^Wrote the OCI layout/],
];

type Timings = Map<string, number>;

function stageTimes(stderr: string): Timings {
  const times: Timings = new Map();
  for (const line of stderr.split('\n')) {
    const match = / in (\d+(?:\.\d+)?)(ms|s)$/.exec(line.trim());
    if (!match) continue;
    const seconds = Number(match[1]) / (match[2] === 'ms' ? 1000 : 1);
    const name = stageNames.find(([, pattern]) => pattern.test(line.trim()))?.[0] ?? `other: ${line.trim().replace(/ in [\d.]+m?s$/, '')}`;
    times.set(name, (times.get(name) ?? 0) + seconds);
  }
  return times;
}

export async function runBreakdownBench(options: { log?: (line: string) => void } = {}): Promise<string> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const repeat = Number(process.env.BENCH_REPEAT ?? 3);
  const mirror = await standaloneMirror('3.12.1');
  const work = await mkdtemp(join(tmpdir(), 'uvimage-bench-breakdown-'));
  try {
    run('npm', ['run', 'build', '--silent']);
    const project = join(work, 'fastapi-hello');
    await cp(join(repo, 'examples/fastapi-hello'), project, { recursive: true });
    const withSix = join(work, 'fastapi-hello-six');
    await cp(project, withSix, { recursive: true });
    const pyproject = await readFile(join(withSix, 'pyproject.toml'), 'utf8');
    await writeFile(join(withSix, 'pyproject.toml'), pyproject.replace('dependencies = ["fastapi[standard]>=0.115"]', 'dependencies = ["fastapi[standard]>=0.115", "six"]'));
    const locked = spawnSync(uvBinary(), ['lock', '--quiet'], { cwd: withSix, env: uvEnv(), encoding: 'utf8' });
    if (locked.status !== 0 || !(await readFile(join(withSix, 'uv.lock'), 'utf8')).includes('name = "six"')) throw new Error(`uv lock did not add six: ${locked.stderr}`);

    const store = join(work, 'store');
    const env = { UV: uvBinary(), UVIMAGE_CACHE_DIR: store, UVIMAGE_PYTHON_MIRROR: `file://${mirror.dir}`, UVIMAGE_PYTHON_DOWNLOADS_JSON: mirror.metadataPath };
    let layouts = 0;
    const build = (dir: string): { seconds: number; times: Timings } => {
      const { seconds, stderr } = run('node', ['dist/bundle/uvimage.js', 'build', dir, '--oci', join(work, `oci-${++layouts}`)], env);
      return { seconds, times: stageTimes(stderr) };
    };
    const forgetLayers = () => rm(join(store, 'records'), { recursive: true, force: true });

    log('breakdown: priming the download store');
    build(project);
    build(withSix);
    const cold: { seconds: number; times: Timings }[] = [];
    const dependency: { seconds: number; times: Timings }[] = [];
    for (let r = 1; r <= repeat; r++) {
      log(`breakdown: repetition ${r}/${repeat}`);
      await forgetLayers();
      cold.push(build(project));
      dependency.push(build(withSix));
    }

    const names = [...new Set([...stageNames.map(([name]) => name), ...[...cold, ...dependency].flatMap((run) => [...run.times.keys()])])];
    const cell = (runs: { times: Timings }[], name: string): string => {
      const values = runs.map((run) => run.times.get(name) ?? 0);
      return values.every((value) => value === 0) ? '–' : stats(values).median.toFixed(2);
    };
    const rows = names.filter((name) => cell(cold, name) !== '–' || cell(dependency, name) !== '–').map((name) => `| ${name} | ${cell(cold, name)} | ${cell(dependency, name)} |`);
    const wall = (runs: { seconds: number }[]) => stats(runs.map((run) => run.seconds)).median.toFixed(2);
    return [
      `examples/fastapi-hello to an OCI layout, CPython 3.12.1 stand-in, Debian trixie cc base; medians of ${repeat}. Cold: the store holds every download, no built layer. Adding a dependency: six added and locked, built right after the project without it (so only what six changes is new).`,
      'Stages overlap (wheels download while bytecode compiles, venv layers are written while their files compile): they do not add up to the wall time; the rest is Node.js start, planning and the overlaps.',
      '',
      '| stage | cold, downloads cached (s) | adding a dependency (s) |',
      '| --- | ---: | ---: |',
      ...rows,
      `| **wall time** | **${wall(cold)}** | **${wall(dependency)}** |`,
    ].join('\n');
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
