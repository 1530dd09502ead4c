/**
 * The two kinds of failure uvimage reports, mapped to exit codes in one place (src/cli/main.ts):
 * a UserError is something the user can fix (bad input, unreachable registry, wrong credentials)
 * and exits 1 with one line; anything else is a bug in uvimage and exits 2. (An ExitStatus is
 * neither: a command that ran something passes on its status.)
 */
export class UserError extends Error {
  override readonly name = 'UserError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/**
 * The status a command ends with when it is another program's: `uvimage run` exits with its
 * container's status, or 128 + the signal that stopped it (130 for Ctrl-C), as a shell would.
 */
export class ExitStatus extends Error {
  override readonly name = 'ExitStatus';
  constructor(readonly code: number) {
    super(`exit status ${code}`);
  }
}

/** Why an unknown thrown value failed, as one line. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
