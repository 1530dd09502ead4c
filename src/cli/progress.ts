/**
 * The CLI's view of Progress (src/progress.ts), on stderr. On a terminal each running stage is
 * one live line — what it does, n/m, bytes, rate, the task at hand — redrawn in place, and a
 * finished stage collapses to one line with its time, printed above the live ones, as uv draws
 * its progress ("Downloaded 60 wheels (19.4 MiB) in 2.41s"). Elsewhere (CI, pipes) each stage
 * prints a line when it starts, one every 15 s while it runs, and its finished line: a few lines
 * per stage, never one per file. `--quiet` and `--json` print nothing here.
 */
import { formatBytes, formatDuration, silentProgress, type Progress, type Stage, type StageSpec, type StageTask } from '../progress.js';

/** A Progress the command owns: closed before the result is printed, so no live line is left under it. */
export interface CliProgress extends Progress {
  /** Finishes every stage still open (printing its line) and stops drawing. */
  close(): void;
}

export interface ProgressOptions {
  stream?: NodeJS.WriteStream;
  quiet?: boolean;
  /** Plain lines: how often a running stage says where it is; default 15 s. */
  heartbeatMs?: number;
}

export function createProgress(options: ProgressOptions = {}): CliProgress {
  if (options.quiet) return { ...silentProgress, close() {} };
  const stream = options.stream ?? process.stderr;
  // A terminal that cannot move its cursor (TERM=dumb: Emacs shells, some CI consoles) gets the plain lines.
  const live = stream.isTTY && process.env.TERM !== 'dumb';
  const view = live ? new LiveView(stream) : new PlainView(stream, options.heartbeatMs ?? 15_000);
  const progress = new StageBoard(view);
  openBoards.add(progress);
  return progress;
}

/**
 * Stops every board still drawing, printing the lines of stages that failed: called before an
 * error is printed, so the error is the last line and no live line is left on the screen.
 */
export function abandonProgress(): void {
  for (const board of openBoards) board.abandon();
}

const openBoards = new Set<StageBoard>();

/** One burst of work of a stage: from its first task to its finish. */
class Burst {
  expectedCount = 0;
  expectedBytes = 0;
  doneCount = 0;
  bytes = 0;
  readonly skips = new Map<string, number>();
  failed = false;
  readonly active: TaskState[] = [];
  /** Names of the tasks ended, for stages that name what they did. */
  readonly names: string[] = [];
  /** Whether a task ran: a burst of skips alone is not shown. */
  shown = false;
  busyMs = 0;
  activeSince: number | undefined;
  /** Recent (time, bytes) samples, for the live rate. */
  readonly samples: [number, number][] = [];
  lastHeartbeat = 0;
  constructor(readonly order: number) {}
}

interface TaskState {
  name: string;
}

class StageState implements Stage {
  burst: Burst | undefined;
  constructor(
    readonly spec: StageSpec,
    private readonly board: StageBoard,
  ) {}

  private current(): Burst {
    return (this.burst ??= this.board.openBurst(this));
  }

  expect(count: number, bytes = 0): void {
    const burst = this.current();
    burst.expectedCount += count;
    burst.expectedBytes += bytes;
    this.board.changed();
  }

  begin(name: string, bytes = 0): StageTask {
    const burst = this.current();
    const now = this.board.now();
    burst.expectedBytes += bytes;
    const state: TaskState = { name };
    if (burst.active.length === 0) burst.activeSince = now;
    burst.active.push(state);
    if (!burst.shown) {
      burst.shown = true;
      this.board.view.started(this, burst, now);
    }
    this.board.changed();
    let over = false;
    const close = (failed: boolean, count: number): void => {
      if (over) return;
      over = true;
      const at = this.board.now();
      burst.active.splice(burst.active.indexOf(state), 1);
      if (burst.active.length === 0 && burst.activeSince !== undefined) {
        burst.busyMs += at - burst.activeSince;
        burst.activeSince = undefined;
      }
      if (failed) burst.failed = true;
      else {
        burst.doneCount += count;
        burst.names.push(name);
      }
      this.board.changed();
    };
    return {
      advance: (moved) => {
        if (over) return;
        burst.bytes += moved;
        const at = this.board.now();
        burst.samples.push([at, burst.bytes]);
        while (burst.samples.length > 2 && at - burst.samples[0]![0] > rateWindowMs) burst.samples.shift();
        this.board.changed();
      },
      tick: (count = 1) => {
        if (over) return;
        burst.doneCount += count;
        this.board.changed();
      },
      end: (count = 1) => close(false, count),
      fail: () => close(true, 0),
    };
  }

  skip(reason: string, count = 1): void {
    const burst = this.current();
    burst.skips.set(reason, (burst.skips.get(reason) ?? 0) + count);
    this.board.changed();
  }

  finish(): void {
    const burst = this.burst;
    if (!burst) return;
    this.burst = undefined;
    this.board.closeBurst(this, burst);
  }
}

/** The live rate is taken over the last few seconds, so a stall shows. */
const rateWindowMs = 3000;

class StageBoard implements CliProgress {
  private readonly open = new Map<StageState, Burst>();
  private bursts = 0;
  constructor(readonly view: View) {}

  /** A monotonic clock: stage times do not jump with the wall clock. */
  now(): number {
    return performance.now();
  }

  stage(spec: StageSpec): Stage {
    return new StageState(spec, this);
  }

  info(line: string): void {
    this.view.line(line, this.running());
  }

  openBurst(stage: StageState): Burst {
    const burst = new Burst(this.bursts++);
    this.open.set(stage, burst);
    return burst;
  }

  closeBurst(stage: StageState, burst: Burst): void {
    this.open.delete(stage);
    const now = this.now();
    if (burst.activeSince !== undefined) {
      burst.busyMs += now - burst.activeSince;
      burst.activeSince = undefined;
    }
    if (burst.shown) this.view.line(finishedLine(stage.spec, burst, this.view.styled), this.running());
    else this.view.redraw(this.running());
  }

  changed(): void {
    this.view.changed(this.running());
  }

  /**
   * The stages drawn live, in the order they started: those with a task running or work still
   * expected. One idle between rounds of work (bytecode between two layers' wheels) is not drawn
   * until it has work again or finishes.
   */
  running(): Running[] {
    return [...this.open.entries()]
      .filter(([, burst]) => burst.shown && (burst.active.length > 0 || burst.doneCount < burst.expectedCount))
      .sort(([, a], [, b]) => a.order - b.order)
      .map(([stage, burst]) => ({ stage, burst }));
  }

  close(): void {
    for (const stage of [...this.open.keys()]) stage.finish();
    this.view.stop();
    openBoards.delete(this);
  }

  abandon(): void {
    for (const [stage, burst] of [...this.open.entries()]) {
      if (burst.failed) stage.finish();
      else this.open.delete(stage);
    }
    this.view.redraw([]);
    this.view.stop();
    openBoards.delete(this);
  }
}

interface Running {
  stage: StageState;
  burst: Burst;
}

interface View {
  /** Finished lines get bold counts and dim times. */
  readonly styled: boolean;
  started(stage: StageState, burst: Burst, now: number): void;
  /** A permanent line. */
  line(text: string, running: Running[]): void;
  changed(running: Running[]): void;
  redraw(running: Running[]): void;
  stop(): void;
}

/** The finished line of a burst: what was done, how much, in how long. */
export function finishedLine(spec: StageSpec, burst: Pick<Burst, 'doneCount' | 'bytes' | 'skips' | 'failed' | 'names' | 'busyMs' | 'expectedCount'>, styled = false): string {
  const bold = (text: string) => (styled ? `\x1b[1m${text}\x1b[22m` : text);
  const dim = (text: string) => (styled ? `\x1b[2m${text}\x1b[22m` : text);
  const what = spec.what ? ` ${spec.what}` : '';
  const facts = [spec.detail, burst.bytes > 0 ? formatBytes(burst.bytes) : undefined, ...[...burst.skips].map(([reason, count]) => `${count} ${reason}`)].filter(
    (fact): fact is string => fact !== undefined,
  );
  const time = dim(` in ${formatDuration(burst.busyMs)}`);
  if (burst.failed) {
    const done = spec.unit ? `, ${burst.doneCount} of ${Math.max(burst.expectedCount, burst.doneCount)} ${spec.unit[1]} done` : '';
    return `${spec.doing}${spec.unit ? ` ${spec.unit[1]}` : ''}${what} failed after ${formatDuration(burst.busyMs)}${done}`;
  }
  let head = spec.done;
  if (spec.unit) {
    const counted = spec.names && burst.names.length > 0 && burst.names.length <= 3 ? burst.names.join(', ') : `${burst.doneCount} ${spec.unit[burst.doneCount === 1 ? 0 : 1]}`;
    head += ` ${bold(counted)}`;
  }
  return `${head}${what}${facts.length > 0 ? ` (${facts.join(', ')})` : ''}${time}`;
}

/** The title of a running stage: "Downloading wheels for amd64". */
function runningTitle(spec: StageSpec): string {
  return `${spec.doing}${spec.unit ? ` ${spec.unit[1]}` : ''}${spec.what ? ` ${spec.what}` : ''}`;
}

/** Where a running burst is: "23/60", "7.1 MiB/19.4 MiB", "3.2 MiB/s". */
function runningFacts(spec: StageSpec, burst: Burst, now: number, withRate: boolean): string[] {
  const facts: string[] = [];
  if (spec.unit && spec.growing) facts.push(`${burst.doneCount} ${spec.unit[burst.doneCount === 1 ? 0 : 1]}`);
  else if (spec.unit && (burst.expectedCount > 0 || burst.doneCount > 0)) facts.push(`${burst.doneCount}/${Math.max(burst.expectedCount, burst.doneCount)}`);
  if (burst.expectedBytes > 0) facts.push(`${formatBytes(Math.max(0, burst.bytes))}/${formatBytes(Math.max(burst.expectedBytes, burst.bytes))}`);
  else if (burst.bytes > 0) facts.push(formatBytes(burst.bytes));
  if (withRate) {
    const rate = rateOf(burst, now);
    if (rate !== undefined) facts.push(`${formatBytes(Math.round(rate))}/s`);
  }
  return facts;
}

/** Bytes per second over the recent samples; undefined until there is enough to say. */
function rateOf(burst: Burst, now: number): number | undefined {
  const first = burst.samples[0];
  if (!first || burst.active.length === 0) return undefined;
  const span = now - first[0];
  if (span < 250) return undefined;
  return ((burst.bytes - first[1]) / span) * 1000;
}

const spinner = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/**
 * A terminal: the live area (one line per running stage) is redrawn in place at the bottom; a
 * permanent line is written above it. Live lines are cut to the terminal's width, since a
 * wrapped line would throw off the cursor moves that redraw them.
 */
class LiveView implements View {
  readonly styled: boolean;
  private drawn = 0;
  private frame = 0;
  private timer: NodeJS.Timeout | undefined;
  private pending = false;
  private last: Running[] = [];

  constructor(private readonly stream: NodeJS.WriteStream) {
    this.styled = !process.env.NO_COLOR;
  }

  started(): void {
    if (!this.timer) {
      this.timer = setInterval(() => {
        this.frame++;
        this.redraw(this.last);
      }, 100);
      this.timer.unref();
    }
  }

  line(text: string, running: Running[]): void {
    this.stream.write(`${this.erase()}${text}\n${this.draw(running)}`);
  }

  changed(running: Running[]): void {
    // Redrawn on the next tick at the latest; many advances between two ticks cost one draw.
    this.last = running;
    if (this.pending || this.drawn === running.length) return;
    this.pending = true;
    setImmediate(() => {
      this.pending = false;
      this.redraw(this.last);
    });
  }

  redraw(running: Running[]): void {
    this.last = running;
    if (this.drawn === 0 && running.length === 0) return;
    this.stream.write(`${this.erase()}${this.draw(running)}`);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.drawn > 0) this.stream.write(this.erase());
  }

  /**
   * Clears the live lines, bottom up, leaving the cursor at the start of the first. Line by line
   * (erase-line) rather than erase-below: terminals like tmux move a screen "cleared" from its
   * top-left corner into the scrollback, which would keep every frame drawn at the top.
   */
  private erase(): string {
    const text = `\r${'\x1b[1A\x1b[2K'.repeat(this.drawn)}`;
    this.drawn = 0;
    return text;
  }

  private draw(running: Running[]): string {
    this.last = running;
    const width = Math.max(20, (this.stream.columns || 80) - 1);
    const now = performance.now();
    let text = '';
    for (const { stage, burst } of running) {
      const facts = runningFacts(stage.spec, burst, now, true);
      const task = burst.active[burst.active.length - 1]?.name;
      const line = [`${spinner[this.frame % spinner.length]} ${runningTitle(stage.spec)}`, ...facts, ...(task ? [task] : [])].join('  ');
      text += `${cut(line, width)}\n`;
      this.drawn++;
    }
    return text;
  }
}

function cut(line: string, width: number): string {
  const chars = [...line];
  return chars.length <= width ? line : `${chars.slice(0, width - 1).join('')}…`;
}

/** Logs: a line as a stage starts, one every heartbeat while it runs, and its finished line. */
class PlainView implements View {
  readonly styled = false;
  private timer: NodeJS.Timeout | undefined;
  private last: Running[] = [];

  constructor(
    private readonly stream: NodeJS.WritableStream,
    private readonly heartbeatMs: number,
  ) {}

  started(stage: StageState, burst: Burst, now: number): void {
    burst.lastHeartbeat = now;
    // Only the title: what is expected may still grow (bytecode counts each wheel as it opens).
    this.stream.write(`${runningTitle(stage.spec)}…\n`);
    if (!this.timer) {
      this.timer = setInterval(() => this.heartbeat(), Math.min(this.heartbeatMs / 4, 1000));
      this.timer.unref();
    }
  }

  private heartbeat(): void {
    const now = performance.now();
    for (const { stage, burst } of this.last) {
      if (now - burst.lastHeartbeat < this.heartbeatMs) continue;
      burst.lastHeartbeat = now;
      this.stream.write(`${runningTitle(stage.spec)}: ${runningFacts(stage.spec, burst, now, true).join(', ') || 'working'}\n`);
    }
  }

  line(text: string, running: Running[]): void {
    this.last = running;
    this.stream.write(`${text}\n`);
  }

  changed(running: Running[]): void {
    this.last = running;
  }

  redraw(running: Running[]): void {
    this.last = running;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
