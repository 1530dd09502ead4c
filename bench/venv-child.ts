/**
 * Child process of bench/venv.ts: installs a locked project's venv into layers (no layer reuse,
 * downloads from the warm store) and prints one JSON line with the time it took. It runs in its
 * own process so its peak RSS (measured by the parent) is that of the install alone.
 *
 *   node --import tsx bench/venv-child.ts <project-dir> <store-dir> <interpreter> <python-version> <bytecode 0|1>
 */
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { BlobStore } from '../src/oci/store.js';
import { openPycCompiler } from '../src/python/bytecode.js';
import { planInstall } from '../src/python/install-set.js';
import { readUvLock } from '../src/python/lock.js';
import { readPyProject } from '../src/python/pyproject.js';
import { buildVenvLayers } from '../src/python/venv-layers.js';

export interface VenvChildResult {
  seconds: number;
  wheels: number;
  compressedBytes: number;
  uncompressedBytes: number;
  maxRssMiB: number;
}

const [projectDir, storeDir, interpreter, version, bytecodeFlag] = process.argv.slice(2);
if (!projectDir || !storeDir || !interpreter || !version) throw new Error('usage: venv-child.ts <project-dir> <store-dir> <interpreter> <python-version> <bytecode 0|1>');
const store = await BlobStore.open(storeDir);
const project = await readPyProject(projectDir);
const lock = await readUvLock(join(projectDir, 'uv.lock'));
const glibc = (process.env.BENCH_GLIBC ?? '2.36').split('.').map(Number) as [number, number];
const plan = planInstall(project, lock, { pythonVersion: version, implementation: 'cpython', os: 'linux', arch: process.arch === 'arm64' ? 'aarch64' : 'x86_64', glibc });
const started = process.hrtime.bigint();
const compiler = bytecodeFlag === '1' ? await openPycCompiler(version.split('.').slice(0, 2).join('.'), { interpreter, workers: availableParallelism() }) : undefined;
const layers = await buildVenvLayers(plan, {
  store,
  runtime: { interpreter, home: join(interpreter, '..'), version },
  projectDir,
  compiler,
  mtime: 0,
  reuse: false,
});
await compiler?.close();
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
const all = [...layers.dependencies, layers.project];
const result: VenvChildResult = {
  seconds,
  wheels: layers.packages.length,
  compressedBytes: all.reduce((sum, layer) => sum + layer.descriptor.size, 0),
  uncompressedBytes: all.reduce((sum, layer) => sum + layer.uncompressedSize, 0),
  maxRssMiB: Math.round(process.resourceUsage().maxRSS / 1024),
};
process.stdout.write(`${JSON.stringify(result)}\n`);
