/**
 * The uv that uvimage runs: $UV when set — uv puts its own path there for every process it
 * starts, so under `uv run` or `uvx` the very same uv is used, with no PATH lookup or version
 * manager's shim in between — else `uv` on PATH.
 */
export function uvExecutable(env: NodeJS.ProcessEnv = process.env): string {
  return env.UV?.trim() || 'uv';
}
