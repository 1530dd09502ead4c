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
