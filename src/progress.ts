/**
 * What the stages of a build report while they work. Each stage declares itself
 * (`progress.stage({...})`: fetching the Debian index, downloading wheels, compiling bytecode,
 * writing layers, pushing blobs), says how much work it expects, and runs its tasks in it. The
 * stages below the CLI only speak this interface; src/cli/progress.ts draws it — one live line
 * per stage on a terminal, collapsing to one finished line with its time when the stage finishes
 * ("Downloaded 60 wheels (19.4 MiB) in 2.41s", as uv says "Prepared 60 packages in 1.2s"), or
 * a few plain lines per stage in logs — and silentProgress drops it.
 *
 * A stage that runs no task (everything was in the store already) is not shown at all. A stage
 * finished and then given more work starts again: it shows a second line for the second burst.
 */
export interface Progress {
  stage(spec: StageSpec): Stage;
  /** A one-off line (a warning, a file written beside the image). */
  info(line: string): void;
}

/**
 * How a stage is named. The live line reads `doing` + the unit's plural + `what` ("Downloading
 * wheels for amd64"), the finished line `done` + the count + the unit + `what` ("Downloaded 60
 * wheels for amd64"); a stage that counts nothing reads `doing`/`done` + `what` ("Downloading
 * Python 3.12.1", "Downloaded Python 3.12.1").
 */
export interface StageSpec {
  doing: string;
  done: string;
  /** What the stage counts, singular and plural: ['wheel', 'wheels']. */
  unit?: readonly [string, string];
  what?: string;
  /** Counted stages of a few things: the finished line names them ("Built fastapi-hello") when there are at most three. */
  names?: boolean;
  /** A fact for the finished line's parentheses beside the bytes: '3 of 5 layers already there'. */
  detail?: string;
  /**
   * The total is found as the work goes (the files of each wheel are counted as it is opened):
   * the live line shows the count alone ("664 files"), not an n/m whose m keeps moving.
   */
  growing?: boolean;
}

export interface Stage {
  /** Work to come: `count` things (of the stage's unit) and `bytes`, for the n/m and byte totals. */
  expect(count: number, bytes?: number): void;
  /**
   * One task starts (its name is shown on the live line while it runs). `bytes` adds to the
   * stage's byte total, for tasks whose size was not expected. The stage's time runs while any
   * of its tasks does.
   */
  begin(name: string, bytes?: number): StageTask;
  /** Expected things that needed no work, and why ('unchanged', 'already there'): counted in the finished line. */
  skip(reason: string, count?: number): void;
  /** The stage is over: its finished line is printed. Idempotent. */
  finish(): void;
}

export interface StageTask {
  /** Bytes moved or written (negative: a failed try's bytes taken back). */
  advance(bytes: number): void;
  /** Things of the stage's unit done within this task (files compiled of a wheel). */
  tick(count?: number): void;
  /** The task is done; `count` things of the stage's unit with it (default 1). */
  end(count?: number): void;
  /** The task failed: the stage's finished line says the stage failed. */
  fail(): void;
}

/**
 * The stages uvimage runs, by name: what each is called on the screen, in one place, so the
 * words stay the same wherever a stage is run from.
 */
export const stages = {
  debianIndex: (suite: string, arch: string): StageSpec => ({ doing: 'Fetching', done: 'Fetched', what: `the Debian ${suite} ${arch} index` }),
  /** One index file fetched on its own (a Contents file): "Debian trixie main Contents-amd64.gz". */
  debianIndexFile: (name: string): StageSpec => ({ doing: 'Fetching', done: 'Fetched', what: name }),
  debianPackages: (suite?: string, arch?: string): StageSpec => ({
    doing: 'Fetching',
    done: 'Fetched',
    unit: [`Debian${suite ? ` ${suite}` : ''} package`, `Debian${suite ? ` ${suite}` : ''} packages`],
    what: arch ? `for ${arch}` : undefined,
  }),
  baseLayers: (base: string, suite: string, arch: string): StageSpec => ({ doing: 'Writing', done: 'Wrote', unit: ['base layer', 'base layers'], what: `for ${arch}`, detail: `Debian ${suite} ${base}` }),
  runtimeDownload: (version: string, arch: string): StageSpec => ({ doing: 'Downloading', done: 'Downloaded', what: `Python ${version} for ${arch}` }),
  runtimeLayer: (version: string): StageSpec => ({ doing: 'Writing', done: 'Wrote', what: `the Python ${version} runtime layer` }),
  builds: (arch: string): StageSpec => ({ doing: 'Building', done: 'Built', unit: ['package', 'packages'], what: `for ${arch}`, names: true }),
  wheels: (arch: string): StageSpec => ({ doing: 'Downloading', done: 'Downloaded', unit: ['wheel', 'wheels'], what: `for ${arch}` }),
  bytecode: (arch: string): StageSpec => ({ doing: 'Compiling', done: 'Compiled', unit: ['file', 'files'], what: `to bytecode for ${arch}`, growing: true }),
  venvLayers: (arch: string): StageSpec => ({ doing: 'Writing', done: 'Wrote', unit: ['venv layer', 'venv layers'], what: `for ${arch}` }),
  push: (repository: string): StageSpec => ({ doing: 'Pushing', done: 'Pushed', unit: ['blob', 'blobs'], what: `to ${repository}` }),
  ociLayout: (dir: string): StageSpec => ({ doing: 'Writing', done: 'Wrote', what: `the OCI layout ${dir}` }),
  dockerArchive: (file: string): StageSpec => ({ doing: 'Writing', done: 'Wrote', what: `the docker-archive ${file}` }),
  load: (image: string, engine: 'Docker' | 'Podman', detail?: string): StageSpec => ({ doing: 'Loading', done: 'Loaded', what: `${image} into ${engine}`, detail }),
  baseResolve: (reference: string): StageSpec => ({ doing: 'Resolving', done: 'Resolved', what: reference }),
  baseLayer: (digest: string, repository: string): StageSpec => ({ doing: 'Downloading', done: 'Downloaded', what: `base layer ${digest.slice(7, 19)} of ${repository}` }),
  sboms: (): StageSpec => ({ doing: 'Making', done: 'Made', what: 'the SBOMs (CycloneDX, SPDX)' }),
  readLayers: (image: string): StageSpec => ({ doing: 'Reading', done: 'Read', unit: ['layer', 'layers'], what: `of ${image}` }),
  /** The layers the closure check (and the minimal flavour) read for their ELF files: only those not read before. */
  closureLayers: (arch: string): StageSpec => ({ doing: 'Reading', done: 'Read', unit: ['layer', 'layers'], what: `for the closure check (${arch})` }),
  plan: (): StageSpec => ({ doing: 'Planning', done: 'Planned', what: 'the build' }),
};

const silentTask: StageTask = { advance() {}, tick() {}, end() {}, fail() {} };
const silentStage: Stage = { expect() {}, begin: () => silentTask, skip() {}, finish() {} };

export const silentProgress: Progress = {
  stage: () => silentStage,
  info() {},
};

/**
 * Runs `work` as one task of `stage` (if there is one): ended when it resolves, failed when it
 * throws (the error goes on). Most tasks are this shape.
 */
export async function asTask<T>(stage: Stage | undefined, name: string, work: (task: StageTask) => Promise<T>, options: { bytes?: number; count?: number } = {}): Promise<T> {
  const task = stage ? stage.begin(name, options.bytes) : silentTask;
  try {
    const result = await work(task);
    task.end(options.count);
    return result;
  } catch (error) {
    task.fail();
    throw error;
  }
}

/** A byte count for people: 512 B, 4.2 KiB, 62.2 MiB. */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

/** A duration as uv prints it: 45ms, 2.41s, 3m 05s. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(2)}s`;
  const seconds = Math.round(ms / 1000);
  return `${Math.floor(seconds / 60)}m ${String(seconds % 60).padStart(2, '0')}s`;
}
