#!/usr/bin/env node
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import { ExitStatus, UserError, describeError } from '../errors.js';
import { baseCommandDefinition } from './commands/base.js';
import { buildCommandDefinition } from './commands/build.js';
import { buildFromDirCommandDefinition } from './commands/build-from-dir.js';
import { configSchemaCommandDefinition } from './commands/config-schema.js';
import { diffCommandDefinition } from './commands/diff.js';
import { initCommandDefinition } from './commands/init.js';
import { inspectCommandDefinition } from './commands/inspect.js';
import { planCommandDefinition } from './commands/plan.js';
import { runCommandDefinition } from './commands/run.js';
import { abandonProgress } from './progress.js';
import { uvimageVersion } from '../version.js';

export function createProgram(): Command {
  const program = new Command('uvimage')
    .description('Build minimal, distroless, reproducible OCI images from uv projects, without a Docker daemon')
    .version(uvimageVersion)
    .exitOverride()
    .configureOutput({ outputError: (text, write) => write(text.startsWith('error:') ? `uvimage: ${text}` : text) });
  for (const command of [buildCommandDefinition(), runCommandDefinition(), buildFromDirCommandDefinition(), baseCommandDefinition(), planCommandDefinition(), configSchemaCommandDefinition(), initCommandDefinition(), inspectCommandDefinition(), diffCommandDefinition()]) {
    program.addCommand(command.exitOverride());
  }
  return program;
}

/** Maps failures to exit codes in one place: 1 for what the user can fix, 2 for a bug, a run container's own status. */
export async function main(argv: string[]): Promise<number> {
  const program = createProgram();
  const debug = argv.includes('--debug');
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version are successes; everything else commander reports is a usage error.
      return error.exitCode === 0 ? 0 : 1;
    }
    if (error instanceof ExitStatus) return error.code;
    // The error is the last thing on the screen: no live progress line is left under it.
    abandonProgress();
    if (error instanceof UserError) {
      process.stderr.write(`uvimage: error: ${error.message}\n`);
      if (debug && error.stack) process.stderr.write(`${error.stack}\n`);
      return 1;
    }
    process.stderr.write(`uvimage: internal error: ${describeError(error)}\n`);
    if (debug && error instanceof Error && error.stack) process.stderr.write(`${error.stack}\n`);
    else process.stderr.write('(this is a bug in uvimage; run with --debug for the stack trace)\n');
    return 2;
  }
}

function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  main(process.argv).then((code) => {
    process.exitCode = code;
  });
}
