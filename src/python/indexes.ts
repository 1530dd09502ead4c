/**
 * The package indexes of a project as uv reads them — `[[tool.uv.index]]` of the workspace root
 * (name, url, explicit, default) and of its uv.toml (`[[index]]`), then the environment's
 * `UV_INDEX` (space-separated `name=url` or `url`), `UV_DEFAULT_INDEX`, and the older
 * `UV_INDEX_URL` / `UV_EXTRA_INDEX_URL` — so downloads from an index get its credentials
 * (src/python/download.ts `credentialsFor`: URL userinfo, `UV_INDEX_<NAME>_USERNAME` /
 * `_PASSWORD`, netrc) and nothing else does. uv's docs: concepts/indexes.md.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UserError } from '../errors.js';
import { redactUrl } from '../net/proxy.js';
import type { PackageIndex } from './download.js';
import { parseToml, type PyProject } from './pyproject.js';

export interface ProjectIndex extends PackageIndex {
  explicit?: boolean;
  default?: boolean;
  /** Where it was declared: `pyproject.toml`, `uv.toml`, or the variable. */
  from: string;
}

function indexTables(value: unknown, file: string, key: string): ProjectIndex[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new UserError(`${file}: ${key} must be an array of tables ([[${key}]])`);
  return value.map((entry, position) => {
    const table = entry as Record<string, unknown>;
    if (typeof table !== 'object' || table === null || typeof table.url !== 'string') throw new UserError(`${file}: ${key}[${position}] needs a url`);
    if (table.name !== undefined && typeof table.name !== 'string') throw new UserError(`${file}: ${key}[${position}].name must be a string`);
    return { name: table.name as string | undefined, url: table.url, explicit: table.explicit === true, default: table.default === true, from: file };
  });
}

/** `name=url` or `url`, as UV_INDEX and UV_DEFAULT_INDEX write them. */
function fromVariable(text: string, variable: string, isDefault: boolean): ProjectIndex {
  const at = text.indexOf('=');
  const named = at > 0 && !text.slice(0, at).includes('://');
  return { name: named ? text.slice(0, at) : undefined, url: named ? text.slice(at + 1) : text, default: isDefault, from: variable };
}

export async function readIndexes(root: PyProject, env: NodeJS.ProcessEnv = process.env): Promise<ProjectIndex[]> {
  const indexes: ProjectIndex[] = [];
  const words = (name: string) => (env[name] ?? '').split(/\s+/).filter(Boolean);
  for (const entry of words('UV_INDEX')) indexes.push(fromVariable(entry, 'UV_INDEX', false));
  if (env.UV_DEFAULT_INDEX?.trim()) indexes.push(fromVariable(env.UV_DEFAULT_INDEX.trim(), 'UV_DEFAULT_INDEX', true));
  for (const url of words('UV_EXTRA_INDEX_URL')) indexes.push({ url, from: 'UV_EXTRA_INDEX_URL' });
  if (env.UV_INDEX_URL?.trim()) indexes.push({ url: env.UV_INDEX_URL.trim(), default: true, from: 'UV_INDEX_URL' });
  const pyproject = join(root.dir, 'pyproject.toml');
  indexes.push(...indexTables(root.toolUv.index, pyproject, 'tool.uv.index'));
  const uvTomlPath = join(root.dir, 'uv.toml');
  const uvToml = await readFile(uvTomlPath, 'utf8').catch(() => undefined);
  if (uvToml !== undefined) indexes.push(...indexTables(parseToml(uvTomlPath, uvToml).index, uvTomlPath, 'index'));
  for (const index of indexes) {
    try {
      new URL(index.url);
    } catch {
      throw new UserError(`${index.from}: index URL ${JSON.stringify(redactUrl(index.url))} is not a URL`);
    }
  }
  return indexes;
}
