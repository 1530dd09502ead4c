/**
 * `npm run bench:recipe`: the recipe uvimage automates (../shared/seed/, a multi-stage Dockerfile
 * on `ghcr.io/astral-sh/uv` and `gcr.io/distroless/cc`) side by side with `uvimage build`, on the
 * same app (examples/fastapi-hello), the same uv.lock and the same CPython, in one run, with a
 * running Docker engine. Writes its section of docs/benchmarks.md (between the bench:recipe
 * markers; the rest of the file is kept) and prints it. BENCH_REPEAT sets the repetitions
 * (default 3).
 *
 * What the recipe pulls cannot be reached from these machines, so local stand-ins take its place
 * (bench/recipe/standins.ts); the report says what each one is.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { appendFile, cp, mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { check, run } from '../test/harness/docker.js';
import { startFaultProxy } from '../test/harness/fault-proxy.js';
import { startRegistry } from '../test/harness/registry.js';
import { serveDirectory, standaloneMirror } from '../test/harness/standalone-python.js';
import { writeBenchSection } from './report.js';
import { bytes, httpGet, mib, registryManifest, spread, startToFirst200, stats, timed } from './recipe/measure.js';
import { benchCacheDir, chooseDockerClient, ensureBuilderImage, ensureDistrolessCc, ensureUvBinaries, uvVersion } from './recipe/standins.js';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const exampleDir = join(repoRoot, 'examples', 'fastapi-hello');
const seedPath = process.env.BENCH_RECIPE_SEED ?? join(repoRoot, '..', 'shared', 'seed', 'building-a-python-docker-image-with-distroless-and-uv.md');
const suite = 'bookworm';
const pythonVersion = '3.12.1';
const appUrl = 'http://127.0.0.1:8000/';
/** Record kinds in uvimage's store that hold what a build made (not what it downloaded). */
const builtRecordKinds = ['debian-layers', 'standalone-layer', 'venv-layer', 'pyc-pack'];
/** BuildKit cache record types pruned for a cold build: all but exec.cachemount (uv's cache). */
const prunedCacheTypes = ['regular', 'source.local', 'internal', 'frontend', 'source.git.checkout'];

const log = (line: string) => process.stderr.write(`[bench:recipe] ${line}\n`);

/**
 * uvimage as users run it: src compiled by tsc into the work directory, bundled as `npm run
 * build` does, and run by node (its node_modules reached through a symlink). Falls back to tsx
 * on the sources if that fails.
 */
async function compileUvimage(work: string): Promise<{ command: string[]; note: string }> {
  const outDir = join(work, 'dist');
  const tsc = join(repoRoot, 'node_modules', '.bin', 'tsc');
  await symlink(join(repoRoot, 'node_modules'), join(work, 'node_modules'));
  // As in the package: its .js files are ES modules (esbuild imports CommonJS defaults the Node way only then).
  await writeFile(join(work, 'package.json'), '{ "type": "module" }\n');
  let result = await run(tsc, ['-p', join(repoRoot, 'tsconfig.json'), '--outDir', outDir, '--sourceMap', 'false']);
  if (result.code === 0) result = await run(process.execPath, [join(repoRoot, 'scripts', 'bundle.mjs'), outDir]);
  if (result.code === 0) {
    return { command: [process.execPath, join(outDir, 'bundle', 'uvimage.js')], note: 'uvimage runs as the installed `uvimage` bin does: compiled by tsc from src/, bundled (scripts/bundle.mjs), run by node' };
  }
  log(`building uvimage failed, running it with tsx instead:\n${result.stdout.slice(0, 2000)}`);
  return { command: [join(repoRoot, 'node_modules', '.bin', 'tsx'), join(repoRoot, 'src', 'cli', 'main.ts')], note: 'uvimage runs from src/ through tsx (building it failed), so each uvimage time includes transpiling at start' };
}

interface Adaptation {
  what: string;
  why: string;
}

/** The seed's Dockerfile, changed only where it downloads from and in the app's name. */
async function adaptedDockerfile(mirrorUrl: string): Promise<{ text: string; adaptations: Adaptation[] }> {
  const seed = await readFile(seedPath, 'utf8');
  const match = /```dockerfile\n([\s\S]*?)```/.exec(seed);
  if (!match) throw new Error(`no dockerfile block in ${seedPath}`);
  let text = match[1]!;
  const adaptations: Adaptation[] = [];
  const replace = (from: string, to: string, adaptation: Adaptation) => {
    if (!text.includes(from)) throw new Error(`the recipe has changed: ${JSON.stringify(from)} not found`);
    text = text.replace(from, to);
    adaptations.push(adaptation);
  };
  replace(
    'ENV UV_PYTHON_PREFERENCE=only-managed\n',
    `ENV UV_PYTHON_PREFERENCE=only-managed\nENV UV_PYTHON_INSTALL_MIRROR=${mirrorUrl} UV_PYTHON_DOWNLOADS_JSON_URL=${mirrorUrl}/download-metadata.json\n`,
    {
      what: `builder stage: \`ENV UV_PYTHON_INSTALL_MIRROR=${mirrorUrl} UV_PYTHON_DOWNLOADS_JSON_URL=${mirrorUrl}/download-metadata.json\` after \`UV_PYTHON_PREFERENCE\``,
      why: 'GitHub (python-build-standalone) cannot be reached; uv 0.13.9 reads a downloads JSON from an http URL, and with only the stand-in listed `uv python install 3.12` installs 3.12.1 (no pin needed)',
    },
  );
  replace('site-packages/uv_docker_example', 'site-packages/fastapi_hello', {
    what: 'CMD: the app package `uv_docker_example` → `fastapi_hello` (the path stays `/app/.venv/lib/python3.12/site-packages/…`)',
    why: 'the same app under its name in examples/fastapi-hello',
  });
  return { text, adaptations };
}

interface UvimageResult {
  digest: string;
  images: { layers: { digest: string; size: number }[]; compressedSize: number; config: string; digest: string }[];
  outputs: { sink: string; bytes?: number; digest: string }[];
}

/** Everything a measurement needs to know about one side. */
interface Side {
  cold: number[];
  line: number[];
  dep: number[];
  pushFirstSeconds: number[];
  pushFirstBytes: number[];
  pushLineSeconds: number[];
  pushLineBytes: number[];
  startSeconds: number[];
  /** Digests of the clean builds, one per repetition. */
  cleanDigests: string[];
  /** Pushed manifest digests of the clean builds. */
  pushedDigests: string[];
  size: number[];
  compressed: number[];
  layers: number[];
  user: string;
  bodies: string[];
}

const emptySide = (): Side => ({
  cold: [], line: [], dep: [], pushFirstSeconds: [], pushFirstBytes: [], pushLineSeconds: [], pushLineBytes: [],
  startSeconds: [], cleanDigests: [], pushedDigests: [], size: [], compressed: [], layers: [], user: '', bodies: [],
});

async function copyProject(from: string, to: string): Promise<void> {
  await rm(to, { recursive: true, force: true });
  await cp(from, to, { recursive: true, filter: (path) => !/(^|\/)(\.venv|__pycache__|dist|build|\.ruff_cache)$/.test(path) });
}

/** The project files a step changes, back to the base project's. */
async function resetProject(base: string, dir: string): Promise<void> {
  for (const file of ['pyproject.toml', 'uv.lock', join('src', 'fastapi_hello', '__init__.py')]) await cp(join(base, file), join(dir, file));
}

/** The one-line change to the app's code. */
async function changeOneLine(dir: string, revision: number): Promise<void> {
  await appendFile(join(dir, 'src', 'fastapi_hello', '__init__.py'), `BENCH_REVISION = ${revision}\n`);
}

async function addDependency(depVariant: string, dir: string): Promise<void> {
  for (const file of ['pyproject.toml', 'uv.lock']) await cp(join(depVariant, file), join(dir, file));
}

async function sha256File(path: string): Promise<string> {
  return createHash('sha256').update(await readFile(path)).digest('hex');
}

/** Removes from uvimage's store what a build made, keeping what it downloaded. */
async function stripBuiltOutputs(storeDir: string, results: UvimageResult[]): Promise<number> {
  const built = new Set<string>();
  for (const result of results) {
    built.add(result.digest);
    for (const image of result.images) {
      built.add(image.digest);
      built.add(image.config);
      for (const layer of image.layers) built.add(layer.digest);
    }
  }
  for (const kind of builtRecordKinds) {
    const dir = join(storeDir, 'records', kind);
    if (!existsSync(dir)) continue;
    for (const name of await readdir(dir)) {
      const text = await readFile(join(dir, name), 'utf8');
      for (const digest of text.match(/sha256:[0-9a-f]{64}/g) ?? []) built.add(digest);
    }
    await rm(dir, { recursive: true, force: true });
  }
  let removed = 0;
  for (const digest of built) {
    const path = join(storeDir, 'blobs', 'sha256', digest.slice('sha256:'.length));
    if (existsSync(path)) {
      await rm(path);
      removed++;
    }
  }
  return removed;
}

export async function runRecipeBench(): Promise<string> {
  const repeat = Number(process.env.BENCH_REPEAT ?? 3);
  if (!Number.isInteger(repeat) || repeat < 1) throw new Error(`BENCH_REPEAT must be a whole number ≥ 1, got ${process.env.BENCH_REPEAT}`);
  const started = new Date();
  const loadAtStart = loadavg()[0]!;
  const work = await mkdtemp(join(tmpdir(), 'uvimage-bench-recipe-'));
  const logFile = join(work, 'bench.log');
  log(`work directory ${work} (commands and their output: ${logFile})`);

  const { docker, note: dockerNote } = await chooseDockerClient();
  const engine = (await check(docker, ['version', '--format', '{{.Server.Version}}'])).trim();
  const uvDir = await ensureUvBinaries(log);
  const { command: uvimage, note: uvimageNote } = await compileUvimage(work);
  const uvEnv: NodeJS.ProcessEnv = {
    ...process.env,
    PATH: `${uvDir}:${process.env.PATH ?? ''}`,
    UV_CACHE_DIR: join(benchCacheDir(), 'uv-cache'),
    UV_NO_CONFIG: '1',
    UV_NO_PROGRESS: '1',
  };

  log('stand-ins: builder image, distroless cc, python-build-standalone mirror');
  const builder = await ensureBuilderImage(docker, suite, uvDir, log);
  const distroless = await ensureDistrolessCc(docker, suite, uvimage, { ...uvEnv, UVIMAGE_CACHE_DIR: join(benchCacheDir(), 'base-store') });
  const mirror = await standaloneMirror(pythonVersion);
  const server = await serveDirectory(mirror.dir);
  // A fresh registry (behind a counting proxy) for each repetition, so a first push is a first push.
  let registry = await startRegistry();
  let proxy = await startFaultProxy(registry.host);
  const cleanupRefs: string[] = [];
  const failures: string[] = [];
  const docEnv = { ...process.env, DOCKER_BUILDKIT: '1' };

  try {
    const { text: dockerfile, adaptations } = await adaptedDockerfile(server.url);

    // The app: the base project, and the same with one more dependency (six), locked by uv.
    const base = join(work, 'project');
    await copyProject(exampleDir, base);
    const depVariant = join(work, 'project-with-six');
    await copyProject(exampleDir, depVariant);
    const pyproject = await readFile(join(depVariant, 'pyproject.toml'), 'utf8');
    const withSix = pyproject.replace('dependencies = ["fastapi[standard]>=0.115"]', 'dependencies = ["fastapi[standard]>=0.115", "six"]');
    if (withSix === pyproject) throw new Error('examples/fastapi-hello/pyproject.toml: dependencies line not found');
    await writeFile(join(depVariant, 'pyproject.toml'), withSix);
    await timed(join(uvDir, 'uv'), ['lock', '--quiet'], { cwd: depVariant, env: uvEnv, logFile });
    if (!(await readFile(join(depVariant, 'uv.lock'), 'utf8')).includes('name = "six"')) throw new Error('uv lock did not add six');

    const recipeDir = join(work, 'recipe');
    await copyProject(base, recipeDir);
    await writeFile(join(recipeDir, 'Dockerfile'), dockerfile);
    const uvimageDir = join(work, 'uvimage');
    await copyProject(base, uvimageDir);

    const uvimageEnv = (cacheDir: string): NodeJS.ProcessEnv => ({
      ...uvEnv,
      UVIMAGE_CACHE_DIR: cacheDir,
      UVIMAGE_PYTHON_MIRROR: server.url,
      UVIMAGE_PYTHON_DOWNLOADS_JSON: mirror.metadataPath,
    });
    const uvimageBuild = async (cacheDir: string, tag: string, sink: '--load' | '--push' | '--oci', extra: string[] = []) => {
      const args = [...uvimage.slice(1), 'build', uvimageDir, '--json', '--debian-suite', suite, '-t', tag, sink, ...extra];
      let result;
      try {
        result = await timed(uvimage[0]!, args, { env: uvimageEnv(cacheDir), logFile });
      } catch (error) {
        // An internal error (exit 2) is retried once; the retry's time is the one recorded.
        if (!/exited with 2:/.test((error as Error).message)) throw error;
        failures.push(`retried after: ${(error as Error).message.split('\n').slice(0, 2).join(' ')}`);
        result = await timed(uvimage[0]!, args, { env: uvimageEnv(cacheDir), logFile });
      }
      return { seconds: result.seconds, json: JSON.parse(result.stdout) as UvimageResult };
    };

    // uvimage's downloads, kept warm: a store primed by building the base project and the one
    // with six, then stripped of everything those builds made. Each cold build starts from a
    // hard-linked copy of it (blobs are immutable; records are replaced by rename).
    const primeKey = createHash('sha256')
      .update(await sha256File(join(base, 'uv.lock')))
      .update(await sha256File(join(depVariant, 'uv.lock')))
      .update(`${suite} ${mirror.version} ${await sha256File(mirror.metadataPath)}`)
      .digest('hex')
      .slice(0, 16);
    const downloadsStore = join(benchCacheDir(), `uvimage-downloads-${primeKey}`);
    if (!existsSync(join(downloadsStore, 'primed'))) {
      log('priming uvimage\'s download store');
      await rm(downloadsStore, { recursive: true, force: true });
      const results: UvimageResult[] = [];
      results.push((await uvimageBuild(downloadsStore, 'uvimage-bench/prime:base', '--oci', [join(work, 'prime-oci-1')])).json);
      await addDependency(depVariant, uvimageDir);
      results.push((await uvimageBuild(downloadsStore, 'uvimage-bench/prime:dep', '--oci', [join(work, 'prime-oci-2')])).json);
      await resetProject(base, uvimageDir);
      const removed = await stripBuiltOutputs(downloadsStore, results);
      log(`download store ready (${removed} built blobs removed)`);
      await writeFile(join(downloadsStore, 'primed'), `${new Date().toISOString()}\n`);
    }

    const recipe = emptySide();
    const ours = emptySide();
    const ref = (name: string, tag: string) => `${proxy.host}/${name}:${tag}`;

    let completed = 0;
    for (let r = 1; r <= repeat; r++) {
      try {
        await repetition(r);
        completed = r;
      } catch (error) {
        if (completed === 0) throw error;
        failures.push(`repetition ${r} failed, results are from ${completed}: ${(error as Error).message.split('\n').slice(0, 3).join(' ')}`);
        log(failures.at(-1)!);
        break;
      }
    }

    async function repetition(r: number): Promise<void> {
      if (r > 1) {
        await proxy.stop();
        await registry.stop();
        registry = await startRegistry();
        proxy = await startFaultProxy(registry.host);
      }
      // --- the recipe: docker build ---
      log(`repetition ${r}/${repeat}: docker build (cold)`);
      await resetProject(base, recipeDir);
      for (const type of prunedCacheTypes) await timed(docker, ['builder', 'prune', '-af', '--filter', `type=${type}`], { logFile });
      const dockerBuild = (tag: string, noCache: boolean) =>
        timed(docker, ['build', '--network', 'host', '--progress', 'plain', ...(noCache ? ['--no-cache'] : []), '-t', tag, recipeDir], { env: docEnv, logFile });
      const coldRef = ref('recipe', `r${r}-cold`);
      cleanupRefs.push(coldRef);
      recipe.cold.push((await dockerBuild(coldRef, true)).seconds);
      const inspect = JSON.parse(await check(docker, ['image', 'inspect', coldRef]))[0] as { Id: string; Size: number; Config: { User?: string }; RootFS: { Layers: string[] } };
      recipe.cleanDigests.push(inspect.Id);
      recipe.size.push(inspect.Size);
      recipe.user = inspect.Config.User ?? '';
      proxy.resetStats();
      recipe.pushFirstSeconds.push((await timed(docker, ['push', coldRef], { logFile })).seconds);
      recipe.pushFirstBytes.push(proxy.stats.requestBytes);
      const pushed = await registryManifest(registry.host, 'recipe', `r${r}-cold`);
      recipe.pushedDigests.push(pushed.digest);
      recipe.compressed.push(pushed.compressed);
      recipe.layers.push(pushed.layers);
      log(`repetition ${r}/${repeat}: recipe container start`);
      const recipeStart = await startToFirst200(docker, coldRef, appUrl, logFile);
      recipe.startSeconds.push(recipeStart.seconds);
      recipe.bodies.push(recipeStart.body);

      log(`repetition ${r}/${repeat}: docker build after a one-line change`);
      await changeOneLine(recipeDir, r);
      const lineRef = ref('recipe', `r${r}-line`);
      cleanupRefs.push(lineRef);
      recipe.line.push((await dockerBuild(lineRef, false)).seconds);
      proxy.resetStats();
      recipe.pushLineSeconds.push((await timed(docker, ['push', lineRef], { logFile })).seconds);
      recipe.pushLineBytes.push(proxy.stats.requestBytes);

      log(`repetition ${r}/${repeat}: docker build after adding six`);
      await addDependency(depVariant, recipeDir);
      const depRef = ref('recipe', `r${r}-dep`);
      cleanupRefs.push(depRef);
      recipe.dep.push((await dockerBuild(depRef, false)).seconds);

      // --- uvimage build ---
      log(`repetition ${r}/${repeat}: uvimage build (cold)`);
      await resetProject(base, uvimageDir);
      const cacheDir = join(work, `uvimage-cache-r${r}`);
      await check('cp', ['-al', downloadsStore, cacheDir]);
      const ourCold = ref('uvimage', `r${r}-cold`);
      cleanupRefs.push(ourCold);
      const cold = await uvimageBuild(cacheDir, ourCold, '--load');
      ours.cold.push(cold.seconds);
      ours.cleanDigests.push(cold.json.digest);
      ours.compressed.push(cold.json.images[0]!.compressedSize);
      ours.layers.push(cold.json.images[0]!.layers.length);
      const ourInspect = JSON.parse(await check(docker, ['image', 'inspect', ourCold]))[0] as { Size: number; Config: { User?: string } };
      ours.size.push(ourInspect.Size);
      ours.user = ourInspect.Config.User ?? '';
      proxy.resetStats();
      const pushFirst = await uvimageBuild(cacheDir, ourCold, '--push');
      ours.pushFirstSeconds.push(pushFirst.seconds);
      ours.pushFirstBytes.push(proxy.stats.requestBytes);
      ours.pushedDigests.push((await registryManifest(registry.host, 'uvimage', `r${r}-cold`)).digest);
      log(`repetition ${r}/${repeat}: uvimage container start`);
      const ourStart = await startToFirst200(docker, ourCold, appUrl, logFile);
      ours.startSeconds.push(ourStart.seconds);
      ours.bodies.push(ourStart.body);

      log(`repetition ${r}/${repeat}: uvimage build after a one-line change`);
      await changeOneLine(uvimageDir, r);
      const ourLine = ref('uvimage', `r${r}-line`);
      cleanupRefs.push(ourLine);
      ours.line.push((await uvimageBuild(cacheDir, ourLine, '--load')).seconds);
      proxy.resetStats();
      ours.pushLineSeconds.push((await uvimageBuild(cacheDir, ourLine, '--push')).seconds);
      ours.pushLineBytes.push(proxy.stats.requestBytes);

      log(`repetition ${r}/${repeat}: uvimage build after adding six`);
      await addDependency(depVariant, uvimageDir);
      const ourDep = ref('uvimage', `r${r}-dep`);
      cleanupRefs.push(ourDep);
      ours.dep.push((await uvimageBuild(cacheDir, ourDep, '--load')).seconds);
      await rm(cacheDir, { recursive: true, force: true });
    }

    const section = renderSection({
      started, repeat: completed, failures, uvimageNote, load: [loadAtStart, loadavg()[0]!], docker, dockerNote, engine, builder, distroless, mirrorVersion: mirror.version, adaptations, dockerfile, recipe, ours,
    });
    return section;
  } finally {
    await proxy.stop();
    await registry.stop();
    await server.stop();
    if (cleanupRefs.length) await run(docker, ['image', 'rm', '--force', ...cleanupRefs]);
    if (!process.env.BENCH_KEEP) await rm(work, { recursive: true, force: true });
  }
}

interface RenderInput {
  uvimageNote: string;
  /** 1-minute load average at the start and at the end of the run. */
  load: [number, number];
  started: Date;
  repeat: number;
  failures: string[];
  docker: string;
  dockerNote: string;
  engine: string;
  builder: { ref: string; caBundle?: string };
  distroless: { ref: string; digest: string };
  mirrorVersion: string;
  adaptations: Adaptation[];
  dockerfile: string;
  recipe: Side;
  ours: Side;
}

const allSame = (values: string[]) => values.length > 1 && values.every((value) => value === values[0]);
const short = (digest: string) => digest.replace(/^sha256:/, '').slice(0, 12);
const ratio = (a: number, b: number) => (b === 0 ? '∞' : `${(a / b).toFixed(a / b >= 10 ? 0 : 1)}×`);
const verdict = (met: boolean) => (met ? '**met**' : '**missed**');
const describeUser = (user: string) => (user === '' ? '(unset: root)' : user === '0' || user === 'root' ? `\`${user}\` (root)` : `\`${user}\`${user === '65532' ? ' (nonroot)' : ''}`);

function renderSection(input: RenderInput): string {
  const { recipe, ours } = input;
  const median = (values: number[]) => stats(values).median;
  const cpu = cpus();
  const sizeShare = median(ours.size) / median(recipe.size);
  const lineSpeedup = median(recipe.line) / median(ours.line);
  const pushReduction = median(recipe.pushLineBytes) / median(ours.pushLineBytes);
  const ourIdentical = allSame(ours.cleanDigests);
  const recipeIdentical = allSame(recipe.cleanDigests) || allSame(recipe.pushedDigests);
  const nonRoot = ours.user !== '' && ours.user !== '0' && ours.user !== 'root';
  const sameBody = recipe.bodies.length > 0 && [...recipe.bodies, ...ours.bodies].every((body) => body === recipe.bodies[0]);
  const rows: [string, string, string, string][] = [
    ['cold build (s)', spread(recipe.cold), spread(ours.cold), ratio(median(recipe.cold), median(ours.cold))],
    ['rebuild after a one-line change to the app (s)', spread(recipe.line), spread(ours.line), ratio(median(recipe.line), median(ours.line))],
    ['rebuild after adding a dependency, six (s)', spread(recipe.dep), spread(ours.dep), ratio(median(recipe.dep), median(ours.dep))],
    ['image size, uncompressed (MiB)', spread(recipe.size, mib), spread(ours.size, mib), `${(sizeShare * 100).toFixed(0)}%`],
    ['image size, compressed layers (MiB)', spread(recipe.compressed, mib), spread(ours.compressed, mib), `${((median(ours.compressed) / median(recipe.compressed)) * 100).toFixed(0)}%`],
    ['layers', spread(recipe.layers, String), spread(ours.layers, String), ''],
    ['first push to an empty registry: bytes sent', spread(recipe.pushFirstBytes, bytes), spread(ours.pushFirstBytes, bytes), ratio(median(recipe.pushFirstBytes), median(ours.pushFirstBytes))],
    ['first push to an empty registry: time (s)', spread(recipe.pushFirstSeconds), spread(ours.pushFirstSeconds), ratio(median(recipe.pushFirstSeconds), median(ours.pushFirstSeconds))],
    ['push after the one-line change: bytes sent', spread(recipe.pushLineBytes, bytes), spread(ours.pushLineBytes, bytes), ratio(median(recipe.pushLineBytes), median(ours.pushLineBytes))],
    ['push after the one-line change: time (s)', spread(recipe.pushLineSeconds), spread(ours.pushLineSeconds), ratio(median(recipe.pushLineSeconds), median(ours.pushLineSeconds))],
    ['container start to first HTTP 200 (s)', spread(recipe.startSeconds), spread(ours.startSeconds), ''],
    ['runs as (`Config.User`)', describeUser(recipe.user), describeUser(ours.user), ''],
    [
      'digest of clean builds',
      `${allSame(recipe.cleanDigests) ? 'identical' : 'different'}: image IDs ${recipe.cleanDigests.map(short).join(', ')}; pushed manifests ${recipe.pushedDigests.map(short).join(', ')}`,
      `${ourIdentical ? 'identical' : 'different'}: ${ours.cleanDigests.map(short).join(', ')}`,
      '',
    ],
  ];
  const table = [
    '| measure | recipe (`docker build`) | uvimage | recipe ÷ uvimage |',
    '| --- | ---: | ---: | ---: |',
    ...rows.map((row) => `| ${row.join(' | ')} |`),
  ].join('\n');
  const lines = [
    '## uvimage vs the recipe\'s Dockerfile',
    '',
    `Command: \`npm run bench:recipe\` (BENCH_REPEAT=${input.repeat}). Written ${input.started.toISOString().slice(0, 16).replace('T', ' ')} UTC.`,
    '',
    `Machine: ${cpu.length} × ${cpu[0]?.model ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node.js ${process.version}, ${process.platform}/${process.arch}; Docker engine ${input.engine}, BuildKit through ${input.dockerNote}. 1-minute load average ${input.load[0].toFixed(1)} at the start, ${input.load[1].toFixed(1)} at the end${Math.max(...input.load) > cpu.length ? ' (other jobs shared the machine: times are noisy)' : ''}.`,
    '',
    `The same app (examples/fastapi-hello), the same uv.lock and the same CPython ${input.mirrorVersion}, built ${input.repeat} times each way in one run.`,
    `Times are wall-clock seconds, median (min–max); ${input.uvimageNote}, and each uvimage time includes starting Node.js.`,
    '',
    table,
    '',
    'Both images answer `GET /` with ' + (sameBody ? `the same body, \`${recipe.bodies[0]}\`.` : `different bodies: recipe ${JSON.stringify(recipe.bodies[0])}, uvimage ${JSON.stringify(ours.bodies[0])}.`),
    '',
    ...(input.failures.length ? ['Incidents in this run:', '', ...input.failures.map((failure) => `- ${failure}`), ''] : []),
    '### Targets',
    '',
    `- uvimage's image at most 60% of the recipe's (uncompressed): ${(sizeShare * 100).toFixed(0)}% — ${verdict(sizeShare <= 0.6)}.`,
    `- Rebuild after a one-line change ≥ 10× faster than docker build's cached rebuild: ${lineSpeedup.toFixed(1)}× — ${verdict(lineSpeedup >= 10)}.`,
    `- Push after a one-line change sends ≥ 10× fewer bytes: ${pushReduction.toFixed(1)}× (${bytes(median(recipe.pushLineBytes))} vs ${bytes(median(ours.pushLineBytes))}) — ${verdict(pushReduction >= 10)}.`,
    `- uvimage's digest identical across clean builds, the recipe's not: uvimage ${ourIdentical ? 'identical' : 'different'}, recipe ${recipeIdentical ? 'identical' : 'different'} — ${verdict(ourIdentical && !recipeIdentical)}.`,
    `- uvimage's container runs as non-root: ${describeUser(ours.user)} — ${verdict(nonRoot)}. The recipe's runs as ${describeUser(recipe.user)}: it sets no USER, and its base's user is root.`,
    '',
    '### What was compared',
    '',
    'These machines reach PyPI and Debian but not ghcr.io, gcr.io or GitHub, so what the recipe pulls is replaced by local stand-ins:',
    '',
    `- \`${input.builder.ref}\`: a Debian ${suite} minbase root filesystem (\`debootstrap --variant=minbase\`) with uv ${uvVersion} and uvx from PyPI's uv wheel in /usr/local/bin, \`docker import\`ed and tagged under that name (the image is cached as a tarball under ~/.cache/uvimage-test/bench/)` +
      (input.builder.caBundle ? `; on top, this machine's CA bundle with \`SSL_CERT_FILE\` pointing at it, because PyPI is reached through a TLS-intercepting egress proxy whose CA uv's built-in roots do not know. The builder stage only: nothing of it reaches the final image.` : '.'),
    `- \`${input.distroless.ref}\`: \`uvimage base cc --suite ${suite}\` (distroless' cc package set from Debian ${suite}'s .debs, ${short(input.distroless.digest)}), loaded and tagged under that name. The recipe's base is debian12 distroless; uvimage builds on its own cc assembled the same way with \`--debian-suite ${suite}\`, so both images sit on the same packages.`,
    `- python-build-standalone: the archive scripts/make-standalone-python makes from pyenv's CPython ${input.mirrorVersion} (python-build-standalone layout, its non-glibc libraries bundled), served from 127.0.0.1 as a release mirror with a uv-format download-metadata.json. The recipe's \`uv python install 3.12\` gets it through \`UV_PYTHON_INSTALL_MIRROR\` / \`UV_PYTHON_DOWNLOADS_JSON_URL\`, uvimage through \`UVIMAGE_PYTHON_MIRROR\` / \`UVIMAGE_PYTHON_DOWNLOADS_JSON\`. It is larger than a real python-build-standalone build (unstripped); uvimage trims tests, tkinter and the like from it, the recipe copies it whole.`,
    '- Wheels come from PyPI for both.',
    '',
    'The recipe\'s Dockerfile is the seed\'s, changed only here:',
    '',
    ...input.adaptations.map((adaptation) => `- ${adaptation.what} — ${adaptation.why}.`),
    '- Unchanged but worth knowing: `COPY --chown=python:python` and `--chown=app:app` name users distroless does not have; the engine\'s BuildKit leaves those files owned by root.',
    '',
    '### What each measure means',
    '',
    `- **Cold build.** Recipe: \`docker builder prune -af --filter type=…\` for every BuildKit record type but \`exec.cachemount\`, then \`docker build --no-cache\`: no layer is reused; uv's cache mount (\`/root/.cache/uv\`, wheels already downloaded) is kept, the base images are in the engine, the CPython comes from 127.0.0.1 and \`uv python install\` unpacks and compiles it again. uvimage: an empty layer cache (a fresh UVIMAGE_CACHE_DIR) holding only what earlier builds downloaded — the wheels, the verified Debian index and .debs, the CPython archive — so every layer, the bytecode and the project wheel are made again; uv's own cache (used by \`uv build\` for the project wheel) is warm. "Downloads cached" means the same for both: nothing is fetched from PyPI that was fetched before.`,
    '- **Rebuilds.** Recipe: `docker build` with its cache from the build before (cold, then the one-line change). uvimage: `uvimage build --load` with its cache from the builds before. Both end with the image in the engine; uvimage\'s time includes streaming the whole image to the engine (`--load`).',
    '- **One-line change:** a line appended to `src/fastapi_hello/__init__.py`. **Dependency:** `six` added to pyproject.toml and `uv lock` run (in a temp copy); six\'s wheel was downloaded before, for both.',
    '- **Sizes.** Uncompressed: `docker image inspect .Size`. Compressed: the sum of the layer sizes in the manifest pushed to the local registry (docker\'s gzip on push; uvimage\'s own layers).',
    '- **Bytes pushed:** request bytes through a counting proxy in front of a local distribution registry (Debian\'s docker-registry), for `docker push` and for `uvimage build --push` (which re-plans from its cache, then uploads only blobs the registry lacks). The push time of uvimage includes that re-planning.',
    '- **Start to first HTTP 200:** from just before `docker run -d --network host` until `GET http://127.0.0.1:8000/` answers 200 (polled every 20 ms).',
    '- **Digest of clean builds:** recipe: image IDs (config digests) and pushed manifest digests of the cold builds; uvimage: the manifest digest `--json` reports for each cold build.',
    '',
    '<details><summary>The Dockerfile as built</summary>',
    '',
    '```dockerfile',
    input.dockerfile.trimEnd(),
    '```',
    '',
    '</details>',
  ];
  return lines.join('\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const response = await httpGet(appUrl);
  if (response) throw new Error(`something already answers on ${appUrl}; the benchmark's containers need port 8000`);
  const section = await runRecipeBench();
  await writeBenchSection('recipe', section);
  process.stdout.write(`${section}\n`);
}
