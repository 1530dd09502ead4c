/**
 * `uvimage build` of examples/fastapi-hello: cold build (empty cache), build with a warm download
 * cache (every layer rewritten, nothing downloaded), rebuild after a one-line code change, the
 * image's size per layer, and the container's start-to-first-response time. Runs the compiled
 * CLI (dist/bundle/, built first) as a user would. The runtime is the python-build-standalone stand-in
 * made from this machine's CPython (GitHub is unreachable here), served from a local directory.
 */
import { spawnSync } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { standaloneMirror } from '../test/harness/standalone-python.js';
import { spread, stats } from './recipe/measure.js';

const median = (values: number[]): number => stats(values).median;

const repo = fileURLToPath(new URL('..', import.meta.url));
const MiB = 1024 * 1024;

interface BuildJson {
  digest: string;
  platforms: { layers: { role: string; size: number }[] }[];
}

/** Runs a command in the repository (the environment added to this one's), timed; a failure throws with the end of its stderr. */
export function run(command: string, args: string[], env: NodeJS.ProcessEnv = {}): { seconds: number; stdout: string; stderr: string } {
  const started = process.hrtime.bigint();
  const result = spawnSync(command, args, { cwd: repo, env: { ...process.env, ...env }, encoding: 'utf8', maxBuffer: 64 * MiB });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed: ${result.stderr.slice(-2000)}`);
  return { seconds, stdout: result.stdout, stderr: result.stderr };
}

export async function runBuildBench(): Promise<string> {
  run('npm', ['run', 'build', '--silent']);
  const mirror = await standaloneMirror('3.12.1');
  const work = await mkdtemp(join(tmpdir(), 'uvimage-bench-build-'));
  try {
    const project = join(work, 'fastapi-hello');
    await cp(join(repo, 'examples/fastapi-hello'), project, { recursive: true });
    const cache = join(work, 'cache');
    const env = { UVIMAGE_PYTHON_MIRROR: `file://${mirror.dir}`, UVIMAGE_PYTHON_DOWNLOADS_JSON: mirror.metadataPath, UVIMAGE_CACHE_DIR: cache };
    let layouts = 0;
    /** A build to `sinks`, by default a new OCI layout. */
    const build = (sinks: string[] = ['--oci', join(work, `oci-${++layouts}`)]) => {
      const result = run('node', ['dist/bundle/uvimage.js', 'build', project, '-t', 'uvimage-bench/fastapi-hello:latest', '--json', ...sinks], env);
      return { seconds: result.seconds, json: JSON.parse(result.stdout) as BuildJson };
    };

    const cold = build();
    // Warm downloads, no layers: the store keeps its blobs but forgets what built them.
    await rm(join(cache, 'records'), { recursive: true, force: true });
    const warmDownloads = build();
    const noChange = build();
    // One-line changes, each rebuild written to a new OCI layout, then each loaded into Docker
    // (the first load sends the whole image; the ones timed send what changed).
    const source = join(project, 'src/fastapi_hello/__init__.py');
    const original = await readFile(source, 'utf8');
    let edits = 0;
    const oneLineChange = async (sinks?: string[]) => {
      edits++;
      await writeFile(source, original.replace('Hello world', `Hello world (edit ${edits})`));
      return build(sinks);
    };
    const repetitions = 5;
    const toLayout: number[] = [];
    for (let i = 0; i < repetitions; i++) toLayout.push((await oneLineChange()).seconds);
    build(['--load']);
    const toDocker: number[] = [];
    let oneLine = noChange;
    for (let i = 0; i < repetitions; i++) {
      oneLine = await oneLineChange(['--load']);
      toDocker.push(oneLine.seconds);
    }

    // Start to first HTTP 200 of the rebuilt image.
    spawnSync('docker', ['rm', '-f', 'uvimage-bench-build']);
    const started = process.hrtime.bigint();
    run('docker', ['run', '-d', '--name', 'uvimage-bench-build', '--network', 'host', '--read-only', 'uvimage-bench/fastapi-hello:latest']);
    let firstResponse: number | undefined;
    for (let attempt = 0; attempt < 300 && firstResponse === undefined; attempt++) {
      const response = await fetch('http://127.0.0.1:8000/').catch(() => undefined);
      if (response?.ok) firstResponse = Number(process.hrtime.bigint() - started) / 1e9;
      else await new Promise((resolve) => setTimeout(resolve, 50));
    }
    spawnSync('docker', ['rm', '-f', 'uvimage-bench-build']);

    const layers = oneLine.json.platforms[0]!.layers;
    const total = layers.reduce((sum, layer) => sum + layer.size, 0);
    const inspect = JSON.parse(run('docker', ['image', 'inspect', 'uvimage-bench/fastapi-hello:latest']).stdout) as { Size: number }[];
    const lines = [
      '| run | wall time (s) |',
      '| --- | ---: |',
      `| cold build, empty cache (downloads from the Debian archive and PyPI) | ${cold.seconds.toFixed(2)} |`,
      `| warm download cache, every layer written again | ${warmDownloads.seconds.toFixed(2)} |`,
      `| rebuild, nothing changed | ${noChange.seconds.toFixed(2)} |`,
      `| rebuild after a one-line code change, to a new OCI layout (median of ${repetitions}; min–max) | ${spread(toLayout)} |`,
      `| rebuild after a one-line code change, --load into Docker (median of ${repetitions}; min–max) | ${spread(toDocker)} |`,
      `| container start to first HTTP 200 | ${firstResponse === undefined ? 'no answer' : firstResponse.toFixed(2)} |`,
      '',
      `Same digest for the cold and warm builds: ${cold.json.digest === warmDownloads.json.digest && warmDownloads.json.digest === noChange.json.digest ? 'yes' : 'NO'} (${cold.json.digest.slice(0, 19)}…).`,
      '',
      '| layer | compressed (MiB) |',
      '| --- | ---: |',
      ...layers.map((layer) => `| ${layer.role} | ${(layer.size / MiB).toFixed(2)} |`),
      `| **total** | **${(total / MiB).toFixed(2)}** |`,
      '',
      `Uncompressed (docker image inspect): ${(inspect[0]!.Size / 1e6).toFixed(1)} MB. The runtime is the stand-in made from pyenv's CPython 3.12.1 (unstripped, with a shared libpython), larger than python-build-standalone's stripped archive.`,
      '',
      `Target: rebuild after a one-line change under 1 s: **${median(toDocker) < 1 && median(toLayout) < 1 ? 'met' : 'missed'}** (median ${median(toLayout).toFixed(2)} s to an OCI layout, ${median(toDocker).toFixed(2)} s with --load; each includes Node.js start-up, \`uv build\` of the project and the bytecode of the project layer).`,
    ];
    return lines.join('\n');
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) process.stdout.write(`${await runBuildBench()}\n`);
