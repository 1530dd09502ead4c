/**
 * A Progress that writes down what the stages did, for tests that check a stage ran (or was
 * skipped): "Building six" when a task of the "Building" stage starts, "Building: built before"
 * when one is skipped, and every info line as it is.
 */
import { silentProgress, type Progress } from '../../src/progress.js';

export function recordingProgress(lines: string[]): Progress {
  return {
    stage(spec) {
      return {
        expect() {},
        begin(name) {
          lines.push(`${spec.doing} ${name}`);
          return silentProgress.stage(spec).begin(name);
        },
        skip(reason) {
          lines.push(`${spec.doing}: ${reason}`);
        },
        finish() {},
      };
    },
    info: (line) => lines.push(line),
  };
}
