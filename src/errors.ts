/**
 * The two kinds of failure uvimage reports, mapped to exit codes in one place (src/cli/main.ts):
 * a UserError is something the user can fix (bad input, unreachable registry, wrong credentials)
 * and exits 1 with one line; anything else is a bug in uvimage and exits 2.
 */
export class UserError extends Error {
  override readonly name = 'UserError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Why an unknown thrown value failed, as one line. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
