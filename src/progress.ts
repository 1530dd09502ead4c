/**
 * What the stages report while they work: transfers and writes as tasks with byte counts, and
 * one-off lines. The stages below the CLI only speak this interface; src/cli/progress.ts draws it
 * (live lines on a terminal, plain lines in logs), and silentProgress drops it.
 */
export interface Progress {
  start(id: string, label: string, totalBytes?: number): void;
  advance(id: string, bytes: number): void;
  finish(id: string, note?: string): void;
  /** A one-off informational line. */
  info(line: string): void;
}

export const silentProgress: Progress = {
  start() {},
  advance() {},
  finish() {},
  info() {},
};
