/**
 * The CLI's view of Progress (src/progress.ts). On a TTY it redraws one status line per active
 * task on stderr; elsewhere (CI, pipes, --json) it prints a plain line when a task starts and when
 * it ends, so logs stay readable.
 */
import { formatBytes, silentProgress, type Progress } from '../progress.js';

interface Task {
  label: string;
  total?: number;
  done: number;
}

export function createProgress(options: { stream?: NodeJS.WriteStream; quiet?: boolean } = {}): Progress {
  const stream = options.stream ?? process.stderr;
  if (options.quiet) return silentProgress;
  return stream.isTTY ? new LiveProgress(stream) : new LineProgress(stream);
}

class LineProgress implements Progress {
  private readonly tasks = new Map<string, Task>();
  constructor(private readonly stream: NodeJS.WritableStream) {}
  start(id: string, label: string, totalBytes?: number): void {
    this.tasks.set(id, { label, total: totalBytes, done: 0 });
    this.stream.write(`${label}${totalBytes !== undefined ? ` (${formatBytes(totalBytes)})` : ''}\n`);
  }
  advance(id: string, bytes: number): void {
    const task = this.tasks.get(id);
    if (task) task.done += bytes;
  }
  finish(id: string, note?: string): void {
    const task = this.tasks.get(id);
    if (!task) return;
    this.tasks.delete(id);
    this.stream.write(`${task.label}: done${note ? `, ${note}` : ''}\n`);
  }
  info(line: string): void {
    this.stream.write(`${line}\n`);
  }
}

class LiveProgress implements Progress {
  private readonly tasks = new Map<string, Task>();
  private drawnLines = 0;
  private timer: NodeJS.Timeout | undefined;
  constructor(private readonly stream: NodeJS.WriteStream) {}
  start(id: string, label: string, totalBytes?: number): void {
    this.tasks.set(id, { label, total: totalBytes, done: 0 });
    this.schedule();
  }
  advance(id: string, bytes: number): void {
    const task = this.tasks.get(id);
    if (task) task.done += bytes;
    this.schedule();
  }
  finish(id: string, note?: string): void {
    const task = this.tasks.get(id);
    if (!task) return;
    this.tasks.delete(id);
    this.printAbove(`${task.label}: done${note ? `, ${note}` : ''}`);
  }
  info(line: string): void {
    this.printAbove(line);
  }
  private printAbove(line: string): void {
    this.clear();
    this.stream.write(`${line}\n`);
    this.draw();
  }
  private schedule(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.clear();
      this.draw();
    }, 100);
    this.timer.unref();
  }
  private clear(): void {
    for (let i = 0; i < this.drawnLines; i++) this.stream.write('\x1b[1A\x1b[2K');
    this.drawnLines = 0;
  }
  private draw(): void {
    for (const task of this.tasks.values()) {
      const amount = task.total ? `${formatBytes(task.done)} / ${formatBytes(task.total)}` : formatBytes(task.done);
      this.stream.write(`  ${task.label} ${amount}\n`);
      this.drawnLines++;
    }
  }
}
